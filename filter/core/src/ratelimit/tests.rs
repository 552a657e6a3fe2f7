use super::*;
use crate::config::test_support::policy;
use crate::config::Policy;

fn err(json: &str) -> String {
    Policy::from_json(json.as_bytes())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

const LIMITS: &str = r#""rateLimit":{"cluster":"ratelimit","limits":[
    {"name":"tenant-rpm","kind":"requests","per":["tenant"]},
    {"name":"agent-rpm","kind":"requests","per":["tenant","agent"]},
    {"name":"tokens","kind":"tokens","per":["tenant","model"]},
    {"name":"team-day","kind":"cost","per":["tenant","team"],"entries":{"window":"day"},"soft":0.2}],
  "prices":{"gpt-4o-mini":{"input":0.15,"output":0.6},"*":{"input":1,"output":2}}}"#;

fn sha(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn descriptors_name_kind_then_dimensions() {
    let p = policy(&format!("{{\"schemaVersion\":1,{LIMITS}}}"));
    let rl = p.rate_limit.clone().unwrap_or_else(|| unreachable!());
    assert_eq!(rl.timeout_ms, 100);
    assert_eq!(rl.domain, "tollgate");
    let who = Identity {
        tenant: "acme".into(),
        team: Some("core".into()),
        agent: Some("bot-1".into()),
        role: None,
    };
    let d: Vec<_> = rl
        .limits
        .iter()
        .map(|l| rl.descriptor(l, &who, "gpt-4o-mini"))
        .collect();
    let pairs = |v: &[(&str, &str)]| -> Option<Vec<(String, String)>> {
        Some(
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    };
    assert_eq!(d[0], pairs(&[("kind", "requests"), ("tenant", "acme")]));
    assert_eq!(
        d[1],
        pairs(&[("kind", "requests"), ("tenant", "acme"), ("agent", "bot-1")])
    );
    assert_eq!(
        d[2],
        pairs(&[
            ("kind", "tokens"),
            ("tenant", "acme"),
            ("model", "gpt-4o-mini")
        ])
    );
    assert_eq!(
        d[3],
        pairs(&[
            ("kind", "cost"),
            ("tenant", "acme"),
            ("team", "core"),
            ("window", "day")
        ])
    );
    // No agent: the per-agent limit does not apply.
    let anon = Identity {
        tenant: "acme".into(),
        ..Identity::default()
    };
    assert_eq!(rl.descriptor(&rl.limits[1], &anon, "m"), None);
    // Prices: exact model, else "*"; micro-USD per token, rounded up.
    assert_eq!(cost_micros(rl.price("gpt-4o-mini"), 1000, 100), 210);
    assert_eq!(cost_micros(rl.price("other"), 1, 1), 3);
}

#[test]
fn config_errors_name_the_field() {
    let base = |limits: &str| {
        format!(r#"{{"schemaVersion":1,"rateLimit":{{"cluster":"rl","limits":{limits}}}}}"#)
    };
    assert!(err(&base("[]")).contains("rateLimit.limits: must not be empty"));
    assert!(err(&base(
        r#"[{"name":"a b","kind":"requests","per":["tenant"]}]"#
    ))
    .contains("rateLimit.limits[0].name"));
    assert!(
        err(&base(r#"[{"name":"a","kind":"requests","per":["agent"]}]"#))
            .contains("rateLimit.limits[0].per")
    );
    assert!(
        err(&base(r#"[{"name":"a","kind":"cost","per":["tenant"]}]"#)).contains("rateLimit.prices")
    );
    assert!(err(&base(
        r#"[{"name":"a","kind":"requests","per":["tenant"],"soft":1.5}]"#
    ))
    .contains("soft"));
    assert!(err(r#"{"schemaVersion":1,"rateLimit":{"cluster":"rl","timeout":"20s","limits":[{"name":"a","kind":"requests","per":["tenant"]}]}}"#).contains("rateLimit.timeout"));
    assert!(
        err(r#"{"schemaVersion":1,"identity":{"apiKeys":[{"sha256":"abc","tenant":"t"}]}}"#)
            .contains("identity.apiKeys[0].sha256")
    );
}

#[test]
fn identity_from_api_key_headers_metadata_or_default() {
    let cfg = format!(
        r#"{{"schemaVersion":1,"identity":{{
            "tenant":[{{"metadata":["envoy.filters.http.jwt_authn","payload","tenant"]}},{{"header":"X-Tenant-Id"}}],
            "apiKeys":[{{"sha256":"{}","tenant":"acme","team":"core","agent":"bot-1"}}]}}}}"#,
        sha("sk-live-123")
    );
    let p = policy(&cfg);
    let ip = p.identity.clone().unwrap_or_else(|| unreachable!());
    let headers = |pairs: &'static [(&'static str, &'static str)]| {
        move |n: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    };
    let no_meta = |_: &[String]| None;
    // The bearer key wins.
    let h = headers(&[
        ("authorization", "Bearer sk-live-123"),
        ("x-tenant-id", "evil"),
    ]);
    assert_eq!(
        ip.resolve(&h, &no_meta),
        Some(Identity {
            tenant: "acme".into(),
            team: Some("core".into()),
            agent: Some("bot-1".into()),
            role: None,
        })
    );
    // Anthropic's x-api-key too; a wrong key falls back to the other sources.
    let h = headers(&[("x-api-key", "sk-live-123")]);
    assert_eq!(
        ip.resolve(&h, &no_meta).map(|i| i.tenant),
        Some("acme".into())
    );
    let h = headers(&[
        ("authorization", "Bearer wrong"),
        ("x-tenant-id", "globex"),
        ("x-agent-id", "a7"),
    ]);
    assert_eq!(
        ip.resolve(&h, &no_meta),
        Some(Identity {
            tenant: "globex".into(),
            team: None,
            agent: Some("a7".into()),
            role: None,
        })
    );
    // Metadata before the header; values must be printable and short.
    let meta = |p: &[String]| {
        (p.join(".") == "envoy.filters.http.jwt_authn.payload.tenant")
            .then(|| "initech".to_string())
    };
    assert_eq!(
        ip.resolve(&h, &meta).map(|i| i.tenant),
        Some("initech".into())
    );
    let bad = headers(&[("x-tenant-id", "has space")]);
    assert_eq!(ip.resolve(&bad, &no_meta), None);
    // Unknown tenant: refused, or the default.
    assert_eq!(ip.resolve(&headers(&[]), &no_meta), None);
    let p = policy(r#"{"schemaVersion":1,"identity":{"unknown":{"defaultTenant":"anonymous"}}}"#);
    let ip = p.identity.clone().unwrap_or_else(|| unreachable!());
    assert_eq!(
        ip.resolve(&headers(&[]), &no_meta).map(|i| i.tenant),
        Some("anonymous".into())
    );
}

#[test]
fn identity_values_are_bounded_at_128_bytes() {
    let p = policy(r#"{"schemaVersion":1,"identity":{"tenant":[{"header":"x-tenant-id"}]}}"#);
    let ip = p.identity.clone().unwrap_or_else(|| unreachable!());
    let no_meta = |_: &[String]| None;
    let at = "t".repeat(super::MAX_IDENTITY_LEN);
    let past = "t".repeat(super::MAX_IDENTITY_LEN + 1);
    for (value, want) in [(&at, Some(at.clone())), (&past, None)] {
        let h = |n: &str| (n == "x-tenant-id").then(|| value.clone());
        assert_eq!(ip.resolve(&h, &no_meta).map(|i| i.tenant), want);
    }
    // The configured default tenant obeys the same bound.
    let cfg = |t: &str| {
        format!(r#"{{"schemaVersion":1,"identity":{{"unknown":{{"defaultTenant":"{t}"}}}}}}"#)
    };
    assert!(Policy::from_json(cfg(&at).as_bytes()).is_ok());
    let e = Policy::from_json(cfg(&past).as_bytes())
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("identity.unknown.defaultTenant")),
        "{e:?}"
    );
}

#[test]
fn ietf_headers_from_statuses() {
    let s = vec![
        LimitStatus {
            name: "rpm".into(),
            kind: LimitKind::Cost,
            over: false,
            limit: Some((5, 60)),
            remaining: 2,
            reset_seconds: Some(38),
            soft: false,
        },
        LimitStatus {
            name: "day".into(),
            kind: LimitKind::Cost,
            over: false,
            limit: None,
            remaining: 0,
            reset_seconds: None,
            soft: false,
        },
        LimitStatus {
            name: "budget".into(),
            kind: LimitKind::Cost,
            over: true,
            limit: Some((1000, 86400)),
            remaining: 0,
            reset_seconds: None,
            soft: false,
        },
    ];
    assert_eq!(
        headers(&s),
        vec![
            (
                "ratelimit-policy",
                "\"rpm\";q=5;w=60, \"budget\";q=1000;w=86400".to_string()
            ),
            ("ratelimit", "\"rpm\";r=2;t=38, \"budget\";r=0".to_string()),
        ]
    );
    assert!(headers(&[]).is_empty());
}
