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
        }
    }

    pub fn is_histogram(&self) -> bool {
        matches!(self, Metric::DetectorTimeUs)
    }
}
