//! Metric names. The plugin defines them as Envoy stats (prefixed
//! `wasmcustom.` by Envoy); the Envoy configs extract the `reason` and
//! `status` tags so Prometheus shows `tollgate_requests_blocked{reason="deny_list"}`.

/// A counter or histogram the core asks the host to record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Metric {
    Requests,
    Allowed,
    Flagged,
    Redacted,
    Blocked(&'static str),
    LocalReply(u16),
    BodyBytesScanned,
    NonJsonPassthrough,
    /// A detector ran out of its time budget and the request went on without it.
    Degraded(&'static str),
    /// Histogram, microseconds spent in detection per request.
    DetectorTimeUs,
    /// Responses scanned, rewritten (redacted or pseudonyms restored), blocked.
    ResponsesScanned,
    ResponsesRewritten,
    ResponsesBlocked(&'static str),
    /// Responses that could not be scanned (too large, compressed, not JSON).
    ResponsesUnscanned(&'static str),
    /// Streamed responses scanned (also counted in `ResponsesScanned`).
    StreamsScanned,
    /// Findings flagged in streamed responses.
    StreamsFlagged,
    /// Bytes a stream still held when it ended with trailers (which cannot
    /// carry body bytes): dropped, not sent unchecked.
    StreamBytesDropped,
    /// Token usage of streamed responses: reported by the upstream or estimated.
    TokensInput,
    TokensOutput,
    /// Streams whose output tokens were estimated (no usage arrived).
    TokensEstimated,
    /// Rate-limit checks by result: `ok`, `failed`, `settle`, `settle_failed`.
    LimitCalls(&'static str),
    /// Requests refused (429) by a limit, by the limit's name.
    LimitExceeded(String),
    /// Requests past a limit's soft threshold, by the limit's name.
    LimitSoft(String),
    /// Tokens of usage settled after responses.
    TokensSettled,
    /// Reserved but not used, which the unsigned `hits_addend` cannot give back.
    LimitUnsettled(&'static str),
    /// Spans the collector accepted.
    TraceSpansExported,
    /// Spans dropped, by reason: `queue_full`, `too_large`, `collector`
    /// (retries used up), `rejected` (the collector refused the batch).
    TraceSpansDropped(&'static str),
    /// Spans sent again after a failed batch.
    TraceSpansRetried,
    /// Export batches by result: `ok`, `failed`, `rejected`.
    TraceBatches(&'static str),
    /// Audit events by event name.
    AuditEvents(&'static str),
    /// Anomalies raised, by tenant and signal.
    Anomalies(String, &'static str),
    /// Tenants the anomaly detector could not track (cap, long name), or a
    /// shared-data update that lost every compare-and-swap.
    AnomalyUntracked,
    AnomalyContention,
    /// One per VM that loaded this build: an artifact and its sha256
    /// (`module` when `moduleSha256` is set, and each embedded model file).
    Build(String, String),
    /// Requests to fine-tuning and file-upload endpoints (OWASP LLM04: what
    /// goes into training is recorded; the filter cannot judge a dataset).
    TrainingUploads,
    /// Decisions recorded but not enforced (shadow mode), by kind.
    Shadow(&'static str),
    /// Requests the access profile changed, by what: `max_tokens`, `tools`, `canary`.
    AccessRewrites(&'static str),
}

impl Metric {
    /// The stat name.
    pub fn name(&self) -> String {
        match self {
            Metric::Requests => "tollgate.requests".into(),
            Metric::Allowed => "tollgate.requests_allowed".into(),
            Metric::Flagged => "tollgate.requests_flagged".into(),
            Metric::Redacted => "tollgate.requests_redacted".into(),
            Metric::Blocked(reason) => format!(
                "tollgate.requests_blocked.reason.{}",
                reason.to_ascii_lowercase()
            ),
            Metric::LocalReply(status) => format!("tollgate.local_replies.status.{status}"),
            Metric::Degraded(detector) => format!("tollgate.degraded.detector.{detector}"),
            Metric::BodyBytesScanned => "tollgate.body_bytes_scanned".into(),
            Metric::NonJsonPassthrough => "tollgate.non_json_passthrough".into(),
            Metric::DetectorTimeUs => "tollgate.detector_time_us".into(),
            Metric::ResponsesScanned => "tollgate.responses_scanned".into(),
            Metric::ResponsesRewritten => "tollgate.responses_rewritten".into(),
            Metric::ResponsesBlocked(reason) => format!(
                "tollgate.responses_blocked.reason.{}",
                reason.to_ascii_lowercase()
            ),
            Metric::ResponsesUnscanned(why) => format!("tollgate.responses_unscanned.reason.{why}"),
            Metric::StreamsScanned => "tollgate.streams_scanned".into(),
            Metric::StreamsFlagged => "tollgate.streams_flagged".into(),
            Metric::StreamBytesDropped => "tollgate.stream_bytes_dropped".into(),
            Metric::TokensInput => "tollgate.tokens_input".into(),
            Metric::TokensOutput => "tollgate.tokens_output".into(),
            Metric::TokensEstimated => "tollgate.tokens_estimated".into(),
            Metric::LimitCalls(r) => format!("tollgate.ratelimit_calls.result.{r}"),
            Metric::LimitExceeded(n) => format!("tollgate.ratelimit_exceeded.limit.{n}"),
            Metric::LimitSoft(n) => format!("tollgate.budget_soft.limit.{n}"),
            Metric::TokensSettled => "tollgate.tokens_settled".into(),
            Metric::LimitUnsettled(k) => format!("tollgate.ratelimit_unsettled.kind.{k}"),
            Metric::TraceSpansExported => "tollgate.trace_spans_exported".into(),
            Metric::TraceSpansDropped(r) => format!("tollgate.trace_spans_dropped.reason.{r}"),
            Metric::TraceSpansRetried => "tollgate.trace_spans_retried".into(),
            Metric::TraceBatches(r) => format!("tollgate.trace_batches.result.{r}"),
            Metric::AuditEvents(e) => format!("tollgate.audit_events.kind.{e}"),
            Metric::Anomalies(t, s) => {
                format!("tollgate.anomalies.tenant.{}.signal.{s}", stat_safe(t))
            }
            Metric::AnomalyUntracked => "tollgate.anomaly_untracked".into(),
            Metric::AnomalyContention => "tollgate.anomaly_contention".into(),
            Metric::Build(name, sha) => crate::build::metric_name(name, sha),
            Metric::TrainingUploads => "tollgate.training_uploads".into(),
            Metric::Shadow(k) => format!(
                "tollgate.shadow_decisions.reason.{}",
                k.to_ascii_lowercase()
            ),
            Metric::AccessRewrites(k) => format!("tollgate.access_rewrites.kind.{k}"),
        }
    }

    pub fn is_histogram(&self) -> bool {
        matches!(self, Metric::DetectorTimeUs)
    }
}

/// A value usable inside a stat name: `[A-Za-z0-9_-]`, others become `_`
/// (a dot would split the name into more tags).
pub fn stat_safe(v: &str) -> String {
    v.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
