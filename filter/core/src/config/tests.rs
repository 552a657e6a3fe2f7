use super::*;

fn err(json: &str) -> String {
    match Policy::from_json(json.as_bytes()) {
        Ok(_) => String::from("<accepted>"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn default_policy_compiles() {
    let p = Policy::default_policy();
    assert!(p.is_ok(), "{p:?}");
    let p = Policy::from_json(b"  ");
    assert!(p.is_ok());
}

#[test]
fn minimal_config_uses_defaults() {
    let p = Policy::from_json(br#"{"schemaVersion":1}"#);
    let p = match p {
        Ok(p) => p,
        Err(e) => unreachable!("{e}"),
    };
    assert_eq!(p.max_body_bytes, 1024 * 1024);
    assert_eq!(p.malformed_json, MalformedJson::Reject);
    assert_eq!(p.unknown_json, UnknownJson::ScanStrings);
    assert!(p.detectors.is_empty());
}

#[test]
fn unknown_field_is_named() {
    assert_eq!(
        err(r#"{"schemaVersion":1,"maxBodyByte":5}"#),
        "config.maxBodyByte: unknown field `maxBodyByte`, expected one of `schemaVersion`, `maxBodyBytes`, `malformedJson`, `unknownJson`, `routes`, `detectors`, `exposeFindings`, `responses`, `identity`, `rateLimit`, `traces`, `pauseAtHeaders`, `audit`, `anomaly`, `access`, `moduleSha256`, `testOnly` at line 1 column 32"
    );
}

#[test]
fn test_only_trap_header_is_off_unless_set_and_checked() {
    let p = Policy::from_json(br#"{"schemaVersion":1}"#);
    assert!(matches!(p, Ok(ref p) if p.trap_on_header.is_none()));
    let p = Policy::from_json(
        br#"{"schemaVersion":1,"testOnly":{"trapOnHeader":" X-Tollgate-Test-Trap "}}"#,
    );
    assert!(
        matches!(p, Ok(ref p) if p.trap_on_header.as_deref() == Some("x-tollgate-test-trap")),
        "{p:?}"
    );
    assert_eq!(
        err(r#"{"schemaVersion":1,"testOnly":{"trapOnHeader":"bad header"}}"#),
        "config.testOnly.trapOnHeader: must be a header name ([A-Za-z0-9-]+)"
    );
    assert!(err(r#"{"schemaVersion":1,"testOnly":{"trap":"x"}}"#).contains("unknown field `trap`"));
}

#[test]
fn nested_errors_name_the_path() {
    let e = err(
        r#"{"schemaVersion":1,"detectors":[{"type":"denyList","id":"a","action":"block","phrases":["x", 3]}]}"#,
    );
    assert!(
        e.starts_with("config.detectors[0].phrases[1]: invalid type: integer `3`"),
        "{e}"
    );
    let e = err(
        r#"{"schemaVersion":1,"detectors":[{"type":"denyList","id":"a","action":"drop","phrases":["x"]}]}"#,
    );
    assert!(
        e.starts_with("config.detectors[0].action: unknown variant `drop`"),
        "{e}"
    );
    let e = err(
        r#"{"schemaVersion":1,"detectors":[{"type":"denyList","id":"a","action":"block","phrases":["x"],"extra":1}]}"#,
    );
    assert!(e.contains("unknown field `extra`"), "{e}");
    assert!(e.starts_with("config.detectors[0]"), "{e}");
    let e = err(r#"{"schemaVersion":1,"detectors":[{"type":"regexList"}]}"#);
    assert!(e.contains("unknown variant `regexList`"), "{e}");
}

#[test]
fn semantic_errors_name_the_field() {
    assert_eq!(
        err(r#"{"schemaVersion":2}"#),
        "config.schemaVersion: unsupported version 2, this build reads 1"
    );
    assert!(err(r#"{}"#).contains("missing field `schemaVersion`"));
    assert_eq!(
        err(r#"{"schemaVersion":1,"maxBodyBytes":0}"#),
        "config.maxBodyBytes: must be between 1 and 67108864"
    );
    assert_eq!(
        err(r#"{"schemaVersion":1,"routes":[{"pathPrefix":"v1","api":"openaiChat"}]}"#),
        "config.routes[0].pathPrefix: must start with '/'"
    );
    assert_eq!(
        err(
            r#"{"schemaVersion":1,"detectors":[{"type":"denyList","id":"a","action":"block","phrases":["ok"," \u200b "]}]}"#
        ),
        "config.detectors[0].phrases[1]: phrase is empty after normalisation"
    );
    assert_eq!(
        err(
            r#"{"schemaVersion":1,"detectors":[{"type":"denyList","id":"a","action":"block","phrases":[]}]}"#
        ),
        "config.detectors[0].phrases: must not be empty"
    );
    assert_eq!(
        err(r#"{"schemaVersion":1,"detectors":[
            {"type":"denyList","id":"a","action":"block","phrases":["x"]},
            {"type":"denyList","id":"a","action":"flag","phrases":["y"]}]}"#),
        "config.detectors[1].id: duplicate detector id \"a\""
    );
    assert_eq!(
        err("{not json"),
        "config: key must be a string at line 1 column 2"
    );
}

#[test]
fn route_overrides_win_over_the_path() {
    let p = Policy::from_json(
        br#"{"schemaVersion":1,"routes":[{"pathPrefix":"/llm/","api":"anthropicMessages"}]}"#,
    );
    let p = match p {
        Ok(p) => p,
        Err(e) => unreachable!("{e}"),
    };
    assert_eq!(
        p.api_for_path("/llm/v1/chat/completions"),
        ApiKind::AnthropicMessages
    );
    assert_eq!(p.api_for_path("/v1/chat/completions"), ApiKind::OpenaiChat);
    assert_eq!(
        p.api_for_path("/v1/messages?beta=true"),
        ApiKind::AnthropicMessages
    );
    assert_eq!(p.api_for_path("/other"), ApiKind::UnknownJson);
}

#[test]
fn injection_time_budget_is_parsed_and_checked() {
    assert_eq!(parse_duration_us("5ms"), Ok(5_000));
    assert_eq!(parse_duration_us("800us"), Ok(800));
    assert_eq!(parse_duration_us("1s"), Ok(1_000_000));
    assert_eq!(
        err(
            r#"{"schemaVersion":1,"detectors":[{"type":"injection","id":"pi","timeBudget":"5 minutes"}]}"#
        ),
        "config.detectors[0].timeBudget: \"5 minutes\": the unit must be us, ms or s"
    );
    assert_eq!(
        err(
            r#"{"schemaVersion":1,"detectors":[{"type":"injection","id":"pi","timeBudget":"0ms"}]}"#
        ),
        "config.detectors[0].timeBudget: \"0ms\" must be above zero and fit in 64 bits"
    );
    assert_eq!(
        err(
            r#"{"schemaVersion":1,"detectors":[{"type":"injection","id":"pi","channels":{"user":{"flag":0.9,"block":0.5}}}]}"#
        ),
        "config.detectors[0].channels.user: flag and block must be in 0..=1 with flag <= block"
    );
    assert_eq!(
        err(
            r#"{"schemaVersion":1,"detectors":[{"type":"injection","id":"pi","timeBudget":"2ms","onTimeout":"block"}]}"#
        ),
        "<accepted>"
    );
}

#[test]
fn pii_hash_key_from_the_environment() {
    let cfg = |extra: &str| {
        format!(
            r#"{{"schemaVersion":1,"detectors":[{{"type":"pii","id":"p","ner":false,"types":{{"EMAIL":"hash"}}{extra}}}]}}"#
        )
    };
    std::env::set_var("TOLLGATE_TEST_PII_KEY", "a-secret-of-24-bytes-....");
    assert!(Policy::from_json(cfg(r#","hashKeyEnv":"TOLLGATE_TEST_PII_KEY""#).as_bytes()).is_ok());
    let e = Policy::from_json(cfg(r#","hashKeyEnv":"TOLLGATE_TEST_PII_KEY_UNSET""#).as_bytes())
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("config.detectors[0].hashKeyEnv: environment variable TOLLGATE_TEST_PII_KEY_UNSET is not set")
    );
    // A plaintext key is refused, and the error never prints it.
    for extra in [
        r#","hashKey":"0123456789abcdef-plain""#,
        r#","hashKey":"0123456789abcdef-plain","hashKeyEnv":"TOLLGATE_TEST_PII_KEY""#,
    ] {
        let e = Policy::from_json(cfg(extra).as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("config.detectors[0].hashKey: plaintext secrets are refused"),
            "{e}"
        );
        assert!(!e.contains("0123456789abcdef-plain"), "{e}");
    }
}
