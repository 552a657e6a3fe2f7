//! Raw serde types of the plugin configuration, exactly as users write them.

use crate::api::ApiKind;
use crate::detect::{Action, Channel};
use serde::Deserialize;

/// The Tollgate plugin configuration (JSON, handed over by Envoy or Istio).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    /// Version of this configuration format. Must be 1.
    pub schema_version: u32,
    /// Largest request body the filter buffers and scans; larger bodies get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// What to do with a request body that claims or looks like JSON but does not parse.
    #[serde(default)]
    pub malformed_json: MalformedJson,
    /// What to do with JSON bodies of no known LLM API.
    #[serde(default)]
    pub unknown_json: UnknownJson,
    /// Route overrides: the first whose prefix matches decides the API; otherwise it is chosen by path.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Detectors, run in order on every scannable text.
    #[serde(default)]
    pub detectors: Vec<DetectorConfig>,
    /// Also send `x-tollgate-findings` and `x-tollgate-action` back to the client
    /// (they always go to the upstream when a request is flagged). Off by default:
    /// telling a caller which rule fired helps an attacker iterate.
    #[serde(default)]
    pub expose_findings: bool,
    /// How responses are handled: compression, and the streamed (SSE) scanner.
    #[serde(default)]
    pub responses: ResponsesConfig,
    /// Who is calling: tenant, team and agent, for limits and budgets.
    #[serde(default)]
    pub identity: Option<IdentityConfig>,
    /// Request, token and cost limits through Envoy's global rate-limit service.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// One OTLP trace per exchange, exported to a collector (Phoenix, Jaeger,
    /// an OpenTelemetry collector) through an Envoy cluster.
    #[serde(default)]
    pub traces: Option<TracesConfig>,
    /// Hold the request headers until the body is checked (needs Envoy's
    /// `allow_on_headers_stop_iteration: true`). `false` for hosts that cannot
    /// set it (Istio's WasmPlugin): the headers go on at once without
    /// `content-length` (the body may be rewritten), the body is held until
    /// checked, and a refused request's upstream stream is reset before any
    /// of its body is sent. Findings headers then reach only the client.
    #[serde(default = "yes")]
    pub pause_at_headers: bool,
    /// The audit trail of security decisions in Envoy's log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Per-tenant anomaly detection on request rate, tokens, cost,
    /// injection rate and error rate.
    #[serde(default)]
    pub anomaly: Option<crate::anomaly::AnomalyConfig>,
    /// Per-tenant and per-role policy: endpoints, models, caps, tools,
    /// detectors, actions, shadow mode, system prompt leakage, flooding.
    #[serde(default)]
    pub access: Option<super::AccessConfig>,
    /// The sha256 (64 hex digits) of this module as the deployment pinned it
    /// (Istio WasmPlugin `sha256`, Envoy `vm_config.code.remote.sha256`):
    /// reported in traces, the audit trail and metrics next to the sha256 of
    /// every embedded model.
    #[serde(default)]
    pub module_sha256: Option<String>,
    /// Settings for fault-injection tests only; never set in a deployment.
    #[serde(default)]
    pub test_only: Option<TestOnlyConfig>,
}

/// Settings that exist for the fault tests (`tests/faults`) and nothing else.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestOnlyConfig {
    /// A request carrying this header makes the VM abort (a Wasm trap), to
    /// show Envoy's `failure_policy`. Test-only: a deployment never sets it.
    #[serde(default)]
    pub trap_on_header: Option<String>,
}

/// OTLP/HTTP trace export.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracesConfig {
    /// The Envoy cluster of the collector.
    pub cluster: String,
    /// The `:authority` of export requests (default: the cluster name).
    #[serde(default)]
    pub authority: Option<String>,
    /// The OTLP/HTTP traces path.
    #[serde(default = "default_traces_path")]
    pub path: String,
    /// Time the collector has to answer one batch, e.g. `"2s"`.
    #[serde(default = "default_traces_timeout")]
    pub timeout: String,
    /// `service.name` of the resource.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// `openinference.project.name` of the resource (Phoenix's project).
    #[serde(default = "default_service_name")]
    pub project: String,
    /// Prompt and response texts in the span: `none`, or `redacted` (every
    /// finding replaced by `<TYPE>`, whatever the action was).
    #[serde(default)]
    pub content: TraceContent,
    /// The most bytes of each text kept in a span.
    #[serde(default = "default_max_content_bytes")]
    pub max_content_bytes: u32,
    /// A batch is sent when it holds this many spans...
    #[serde(default = "default_batch_spans")]
    pub batch_spans: u32,
    /// ...or this many bytes...
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: u32,
    /// ...or its oldest span has waited this long.
    #[serde(default = "default_flush_interval")]
    pub flush_interval: String,
    /// Spans held per worker at most; past it new spans are dropped and counted.
    #[serde(default = "default_max_queue_spans")]
    pub max_queue_spans: u32,
    /// Bytes of encoded spans held per worker at most.
    #[serde(default = "default_max_queue_bytes")]
    pub max_queue_bytes: u32,
    /// Retries of a failed batch before its spans are dropped (counted).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The first retry's delay; each next one doubles, up to `maxRetryBackoff`.
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff: String,
    #[serde(default = "default_max_retry_backoff")]
    pub max_retry_backoff: String,
}

/// Texts in traces.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum TraceContent {
    #[default]
    None,
    Redacted,
}

/// The audit trail.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    /// Write each security decision as a JSON line (prefixed `tollgate.audit `) to Envoy's log.
    #[serde(default = "yes")]
    pub log: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { log: true }
    }
}

fn default_traces_path() -> String {
    "/v1/traces".into()
}
fn default_traces_timeout() -> String {
    "2s".into()
}
fn default_service_name() -> String {
    "tollgate".into()
}
fn default_max_content_bytes() -> u32 {
    4096
}
fn default_batch_spans() -> u32 {
    512
}
fn default_batch_bytes() -> u32 {
    1024 * 1024
}
fn default_flush_interval() -> String {
    "1s".into()
}
fn default_max_queue_spans() -> u32 {
    4096
}
fn default_max_queue_bytes() -> u32 {
    8 * 1024 * 1024
}
fn default_max_retries() -> u32 {
    3
}
fn default_retry_backoff() -> String {
    "500ms".into()
}
fn default_max_retry_backoff() -> String {
    "5s".into()
}

/// Where the tenant, team and agent of a request come from.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityConfig {
    /// Sources tried in order; the first that yields a value wins. An API key
    /// from `apiKeys` wins over all of them.
    #[serde(default = "default_tenant_sources")]
    pub tenant: Vec<IdentitySourceConfig>,
    #[serde(default = "default_team_sources")]
    pub team: Vec<IdentitySourceConfig>,
    #[serde(default = "default_agent_sources")]
    pub agent: Vec<IdentitySourceConfig>,
    /// The caller's role, for `access` profiles (set it from a verified
    /// source: `jwt_authn` metadata, or a header your auth layer sets).
    #[serde(default = "default_role_sources")]
    pub role: Vec<IdentitySourceConfig>,
    /// Bearer keys (`authorization: Bearer ...` or `x-api-key`) by SHA-256,
    /// each naming its tenant, team and agent. Compared in constant time.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// A request whose tenant is not known: refused (401), or given a default tenant.
    #[serde(default)]
    pub unknown: UnknownIdentity,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            tenant: default_tenant_sources(),
            team: default_team_sources(),
            agent: default_agent_sources(),
            role: default_role_sources(),
            api_keys: Vec::new(),
            unknown: UnknownIdentity::default(),
        }
    }
}

fn default_tenant_sources() -> Vec<IdentitySourceConfig> {
    vec![IdentitySourceConfig::Header("x-tenant-id".into())]
}
fn default_team_sources() -> Vec<IdentitySourceConfig> {
    vec![IdentitySourceConfig::Header("x-team-id".into())]
}
fn default_agent_sources() -> Vec<IdentitySourceConfig> {
    vec![IdentitySourceConfig::Header("x-agent-id".into())]
}
fn default_role_sources() -> Vec<IdentitySourceConfig> {
    vec![IdentitySourceConfig::Header("x-role".into())]
}

/// One source of an identity value.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum IdentitySourceConfig {
    /// A request header.
    Header(String),
    /// A path into Envoy's dynamic metadata, e.g. `["envoy.filters.http.jwt_authn",
    /// "payload", "tenant"]` (claims set by `jwt_authn`).
    Metadata(Vec<String>),
}

/// One API key.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Hex SHA-256 of the key (never the key itself).
    pub sha256: String,
    pub tenant: String,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

/// What a request of unknown tenant gets.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum UnknownIdentity {
    /// 401 in the API's error shape.
    #[default]
    Reject,
    /// This tenant.
    DefaultTenant(String),
}

/// Limits through Envoy's rate-limit service (`envoy.service.ratelimit.v3`).
/// The numbers live in the service's configuration; the filter sends the
/// descriptors and how much each request charges.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The Envoy cluster of the rate-limit service (HTTP/2).
    pub cluster: String,
    /// The rate-limit domain.
    #[serde(default = "default_domain")]
    pub domain: String,
    /// Time the filter waits for the service, e.g. `"100ms"`.
    #[serde(default = "default_rl_timeout")]
    pub timeout: String,
    /// When the service fails or times out: `deny` (503) or `allow` (the
    /// request passes, marked `x-tollgate-degraded: ratelimit` and counted).
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// The limits, each one descriptor.
    pub limits: Vec<LimitConfig>,
    /// Prices per model, USD per million tokens (cost limits charge micro-USD).
    #[serde(default)]
    pub prices: std::collections::BTreeMap<String, PriceConfig>,
    /// Output tokens reserved when the request sets no `max_tokens`.
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
    /// A stream whose output passes what its token and cost budgets still
    /// allow: `end` it there with the API's error event, or let it `finish`
    /// (and settle afterwards).
    #[serde(default)]
    pub mid_stream: MidStream,
}

/// What happens when a budget runs out in the middle of a stream.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum MidStream {
    #[default]
    End,
    Finish,
}

fn default_domain() -> String {
    "tollgate".into()
}
fn default_rl_timeout() -> String {
    "100ms".into()
}
fn default_max_tokens() -> u32 {
    1024
}

/// A failing dependency: refuse or let through (visibly). Ordered: `deny` is stricter.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    #[default]
    Deny,
    Allow,
}

/// One limit: a descriptor `[("kind", kind), (dimension, value)..., entries...]`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitConfig {
    /// Named in the 429 and in the `RateLimit` headers.
    pub name: String,
    /// What a request charges: 1, its tokens, or its cost in micro-USD.
    pub kind: LimitKind,
    /// The identity dimensions of the descriptor, in order.
    pub per: Vec<Dimension>,
    /// Extra descriptor entries, e.g. `{"window": "day"}`.
    #[serde(default)]
    pub entries: std::collections::BTreeMap<String, String>,
    /// Soft threshold: below this share of the limit remaining (0..1) the
    /// response gets `x-tollgate-budget-warning`, the request still passes.
    #[serde(default)]
    pub soft: Option<f64>,
    /// This limit's own failure mode (default: the block's).
    #[serde(default)]
    pub failure_mode: Option<FailureMode>,
}

/// What one request charges a limit.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum LimitKind {
    Requests,
    Tokens,
    Cost,
}

impl LimitKind {
    /// The descriptor's `kind` value and the metric tag.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::Cost => "cost",
        }
    }
}

/// An identity dimension of a descriptor.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum Dimension {
    Tenant,
    Team,
    Agent,
    Model,
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceConfig {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
}

/// Response handling.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponsesConfig {
    /// Ask the upstream for an uncompressed response (`accept-encoding:
    /// identity`) whenever the filter may need to read it. A response that
    /// comes compressed anyway is passed on unscanned and counted
    /// (`responses_unscanned{reason="encoded"}`).
    #[serde(default = "yes")]
    pub identity_encoding: bool,
    /// Text always held back at the end of each streamed text, in bytes, on
    /// top of what the filter holds because a pattern may still be completing
    /// there (a word, a group of digits, a placeholder, a PEM block).
    #[serde(default)]
    pub hold_back_bytes: u32,
    /// The most text held back for one streamed text; past it the oldest
    /// part is released even if a match might still be completing.
    #[serde(default = "default_max_hold_bytes")]
    pub max_hold_bytes: u32,
    /// Tool-call arguments are held until the call is complete and checked;
    /// a call with longer arguments ends the stream with an error.
    #[serde(default = "default_max_tool_args_bytes")]
    pub max_tool_args_bytes: u32,
    /// For OpenAI streams: add `stream_options.include_usage` when the client
    /// did not ask, so the filter learns the token usage, and remove the extra
    /// usage chunk (and the `"usage":null` fields) before the client sees them.
    #[serde(default = "yes")]
    pub stream_usage: bool,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        ResponsesConfig {
            identity_encoding: true,
            hold_back_bytes: 0,
            max_hold_bytes: default_max_hold_bytes(),
            max_tool_args_bytes: default_max_tool_args_bytes(),
            stream_usage: true,
        }
    }
}

fn default_max_hold_bytes() -> u32 {
    2048
}

fn default_max_tool_args_bytes() -> u32 {
    64 * 1024
}

fn default_max_body_bytes() -> u64 {
    1024 * 1024
}

/// Handling of malformed JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum MalformedJson {
    /// Answer 400 in the API's error shape.
    #[default]
    Reject,
    /// Forward it untouched and flag it (`x-tollgate-findings: MALFORMED_JSON`).
    PassThrough,
}

/// Handling of JSON bodies of no known API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum UnknownJson {
    /// Scan every string value in the body.
    #[default]
    ScanStrings,
    /// Forward untouched without scanning.
    PassThrough,
}

/// A route override.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteConfig {
    /// Request path prefix, e.g. `/azure/openai/deployments/`.
    pub path_prefix: String,
    /// The API requests under the prefix speak.
    pub api: ApiKind,
}

/// One detector, chosen by `type`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", serde(tag = "type", rename_all = "camelCase"))]
pub enum DetectorConfig {
    /// Phrases matched case-insensitively after Unicode normalisation.
    DenyList(DenyListConfig),
    /// Prompt injection and jailbreaks: curated rules plus the n-gram model.
    Injection(InjectionConfig),
    /// PII and secrets: validated patterns and (full build) NER, one action per type.
    Pii(PiiConfig),
    /// Unsafe markup in answers: exfiltration images and links, HTML, script URLs.
    Output(super::output::OutputConfig),
}

/// The PII and secrets detector.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PiiConfig {
    /// Identifier used in rule ids (`<id>.<rule>`), metrics and logs.
    pub id: String,
    /// What each type gets, by upper-case type name (`EMAIL`, `CREDIT_CARD`,
    /// `PERSON`, `AWS_ACCESS_KEY`, ...). Absent: every type, secrets blocked,
    /// the rest masked (PERSON, LOCATION and ORGANIZATION only in the full build).
    #[serde(default)]
    pub types: Option<std::collections::BTreeMap<String, PiiActionConfig>>,
    /// Matches scoring below this (after context words) are ignored.
    #[serde(default = "half")]
    pub min_score: f32,
    /// Use the NER model for PERSON, LOCATION and ORGANIZATION. Absent: used
    /// when the build has it and a NER type is configured; `true` refuses to
    /// load on the model-free build.
    #[serde(default)]
    pub ner: Option<bool>,
    /// Windows of 128 tokens the NER model looks at per text at most (1 to 16).
    #[serde(default = "four")]
    pub ner_max_windows: usize,
    /// Refused: a plaintext secret has no place in the plugin config (use `hashKeyEnv`).
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Name of an environment variable of the VM holding the secret for `hash`
    /// (HMAC-SHA256, at least 16 bytes): Envoy `vm_config.environment_variables`,
    /// Istio `vmConfig.env` (e.g. `valueFrom: HOST` fed by a Kubernetes Secret).
    #[serde(default)]
    pub hash_key_env: Option<String>,
    /// Channels scanned; empty or absent means all.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Scan request bodies.
    #[serde(default = "yes")]
    pub requests: bool,
    /// Scan (non-streamed) response bodies.
    #[serde(default = "yes")]
    pub responses: bool,
    /// What a request gets when the NER model fails to run: `allow` (forwarded
    /// with `x-tollgate-degraded`, the patterns' findings stand) or `block` (503).
    #[serde(default)]
    pub on_error: crate::detect::OnTimeout,
}

fn half() -> f32 {
    0.5
}

fn four() -> usize {
    4
}

/// What one PII type gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum PiiActionConfig {
    /// Not detected.
    Allow,
    /// Forwarded unchanged, reported in `x-tollgate-findings`.
    Flag,
    /// Replaced by `[TYPE]`.
    Mask,
    /// Every letter and digit but the last four replaced by `*`.
    PartialMask,
    /// Replaced by `[TYPE:<HMAC-SHA256 tag>]`, the same for the same value
    /// in every request (needs `hashKey` or `hashKeyEnv`).
    Hash,
    /// Replaced by `<TYPE_n>` in the request and put back in the response.
    Pseudonymize,
    /// The request is refused.
    Block,
}

/// The prompt-injection detector.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InjectionConfig {
    /// Identifier used in rule ids (`<id>.model`), metrics and logs.
    pub id: String,
    /// Use the built-in curated rules (`filter/core/rules/injection.json`).
    #[serde(default = "yes")]
    pub rules: bool,
    /// Use the built-in n-gram model (`models/injection/ngram.tgng`).
    #[serde(default = "yes")]
    pub model: bool,
    /// Use the second-stage model (`models/injection/tiny/`: ONNX run with
    /// tract) where the n-gram model is unsure. Absent: used when the build
    /// has it (the full build does; the model-free build does not). `true`
    /// refuses to load on a build without it; `false` turns it off.
    #[serde(default)]
    pub second_stage: Option<bool>,
    /// Windows of the second stage's length scored per text at most (1 to 8);
    /// a longer text's windows are ranked by the n-gram model.
    #[serde(default = "two")]
    pub max_windows: usize,
    /// Thresholds on the combined score per channel.
    #[serde(default)]
    pub channels: InjectionChannelsConfig,
    /// Time the detector may spend per request, e.g. `"5ms"` or `"800us"`;
    /// absent means no budget.
    #[serde(default)]
    pub time_budget: Option<String>,
    /// What a request gets when the budget runs out: `allow` (forwarded with
    /// `x-tollgate-degraded`) or `block` (503).
    #[serde(default)]
    pub on_timeout: crate::detect::OnTimeout,
    /// What a request gets when a stage fails to run (the model errors):
    /// `allow` (forwarded with `x-tollgate-degraded`, the first stage's
    /// verdict stands) or `block` (503).
    #[serde(default)]
    pub on_error: crate::detect::OnTimeout,
    /// Also scan responses with the `assistant` channel's thresholds (enable
    /// that channel too): the whole detector on JSON answers, the curated
    /// rules on streams (an injection the model echoes, mid-stream).
    #[serde(default)]
    pub responses: bool,
}

fn yes() -> bool {
    true
}

fn two() -> usize {
    2
}

/// Thresholds per channel. Indirect injection lives in tool results and
/// documents, so those default to lower thresholds; assistant text is not scored by default.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InjectionChannelsConfig {
    #[serde(default = "direct_thresholds")]
    pub user: ThresholdsConfig,
    #[serde(default = "direct_thresholds")]
    pub system: ThresholdsConfig,
    #[serde(default = "off_thresholds")]
    pub assistant: ThresholdsConfig,
    #[serde(default = "indirect_thresholds")]
    pub tool: ThresholdsConfig,
    #[serde(default = "indirect_thresholds")]
    pub document: ThresholdsConfig,
}

impl Default for InjectionChannelsConfig {
    fn default() -> Self {
        InjectionChannelsConfig {
            user: direct_thresholds(),
            system: direct_thresholds(),
            assistant: off_thresholds(),
            tool: indirect_thresholds(),
            document: indirect_thresholds(),
        }
    }
}

/// Scores at or above `flag` are flagged, at or above `block` blocked.
#[derive(Debug, Clone, Copy, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThresholdsConfig {
    /// Score this channel at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    pub flag: f32,
    pub block: f32,
}

/// Default block threshold for user and system text: the lowest combined score
/// at which the dev split's false-positive rate is <= 1% (measured with
/// `tollgate eval`; dev FPR 0.9%, TPR 86.5%). The flag threshold 0.7 is where
/// it is <= 2% (1.9%, TPR 89.0%).
pub const DEFAULT_DIRECT_BLOCK: f32 = 0.82;

fn direct_thresholds() -> ThresholdsConfig {
    ThresholdsConfig {
        enabled: true,
        flag: 0.7,
        block: DEFAULT_DIRECT_BLOCK,
    }
}

/// Tool results and documents: more sensitive (indirect injection hides there);
/// on the dev split these would be FPR 2.8% (flag) and 1.5% (block).
fn indirect_thresholds() -> ThresholdsConfig {
    ThresholdsConfig {
        enabled: true,
        flag: 0.6,
        block: 0.75,
    }
}

fn off_thresholds() -> ThresholdsConfig {
    ThresholdsConfig {
        enabled: false,
        flag: 0.5,
        block: 0.8,
    }
}

/// A deny list of phrases.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DenyListConfig {
    /// Identifier used in rule ids (`deny-list.<id>`), metrics and logs.
    pub id: String,
    /// Phrases; matched after NFKC, case folding, removal of invisible characters and white-space folding.
    pub phrases: Vec<String>,
    /// What to do on a match.
    pub action: Action,
    /// Channels the list applies to; empty or absent means all.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Also scan responses, streamed ones included (a phrase the model echoes).
    #[serde(default)]
    pub responses: bool,
}

/// Marks a nested path inside an error message so [`super::PluginConfig::from_json`]
/// can join it to the outer path (serde's tagged enums lose it otherwise).
pub(crate) const NESTED_PATH_MARK: char = '\u{1}';

fn variant<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    value: serde_json::Value,
) -> Result<T, E> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            E::custom(inner)
        } else {
            E::custom(format!("{NESTED_PATH_MARK}{path}{NESTED_PATH_MARK}{inner}"))
        }
    })
}

impl<'de> Deserialize<'de> for DetectorConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::deserialize(d)?;
        let kind = match map.remove("type") {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => return Err(D::Error::custom("`type` must be a string")),
            None => return Err(D::Error::missing_field("type")),
        };
        let rest = serde_json::Value::Object(map);
        match kind.as_str() {
            "denyList" => variant(rest).map(DetectorConfig::DenyList),
            "injection" => variant(rest).map(DetectorConfig::Injection),
            "pii" => variant(rest).map(DetectorConfig::Pii),
            "output" => variant(rest).map(DetectorConfig::Output),
            other => Err(D::Error::unknown_variant(
                other,
                &["denyList", "injection", "pii", "output"],
            )),
        }
    }
}
