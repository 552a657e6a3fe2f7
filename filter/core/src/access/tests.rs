use super::*;

fn policy(json: &str, ids: &[&str]) -> Result<AccessPolicy, ConfigError> {
    let c: AccessConfig = serde_json::from_str(json).map_err(|e| ConfigError::at("", e))?;
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    AccessPolicy::compile(&c, &ids)
}

#[test]
fn globs() {
    assert!(glob("gpt-4o*", "gpt-4o-mini"));
    assert!(glob("gpt-4o*", "gpt-4o"));
    assert!(!glob("gpt-4o*", "xgpt-4o"));
    assert!(glob("*", ""));
    assert!(glob("a*b*c", "a--b--c"));
    assert!(!glob("a*b*c", "a--b--"));
    assert!(glob("/v1/models*", "/v1/models/gpt-4o"));
    assert!(!glob("exact", "exact2"));
}

#[test]
fn profile_chain_picks_the_last_level_that_sets_a_field() {
    let p = policy(
        r#"{"default":{"maxTokens":10,"models":["a"]},
            "roles":{"r":{"maxTokens":30}},
            "tenants":{"t":{"maxTokens":20,"roles":{"r":{"models":["b"]}}}}}"#,
        &[],
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    let prof = p.profile(Some("t"), Some("r"));
    assert_eq!(prof.max_tokens().map(|x| x.0), Some(30));
    assert!(prof.check_model(Some("b")).is_ok());
    assert!(prof.check_model(Some("a")).is_err());
    assert_eq!(prof.name(), "tenant:t/role:r");
    let prof = p.profile(Some("t"), None);
    assert_eq!(prof.max_tokens().map(|x| x.0), Some(20));
    assert!(prof.check_model(Some("a")).is_ok());
    let prof = p.profile(None, Some("unknown-role"));
    assert_eq!(prof.max_tokens().map(|x| x.0), Some(10));
    assert_eq!(prof.name(), "default");
}
