//! Local replies in the API's own error shape.

use crate::api::ErrorStyle;
use serde_json::json;

/// A reply the filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request was refused; names the metric tag and the error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// A detector's block action; the finding type that caused it (`DENY_LIST`).
    Policy(&'static str),
    /// The body is larger than `maxBodyBytes`.
    BodyTooLarge,
    /// The body is not valid JSON.
    MalformedJson,
    /// A detector in `block` mode ran out of its time budget.
    Degraded(&'static str),
    /// The caller's tenant is not known and the policy refuses such requests.
    Unauthenticated,
    /// A request, token or cost limit is exhausted.
    RateLimited,
    /// The tenant's traffic is anomalous and the anomaly policy throttles or blocks it.
    Anomaly,
    /// The rate-limit service failed and its failure mode is `deny`.
    LimiterUnavailable,
    /// The caller's profile does not allow this (endpoint, model, tool): the decision's kind.
    Forbidden(&'static str),
    /// The request is over a cap of the caller's profile (output tokens,
    /// prompt size, messages, flooding): the decision's kind.
    OverCap(&'static str),
}

impl RefusalReason {
    pub fn status(self) -> u16 {
        match self {
            RefusalReason::Policy(_) => 403,
            RefusalReason::BodyTooLarge => 413,
            RefusalReason::MalformedJson => 400,
            RefusalReason::Degraded(_) => 503,
            RefusalReason::Unauthenticated => 401,
            RefusalReason::RateLimited => 429,
            RefusalReason::Anomaly => 429,
            RefusalReason::LimiterUnavailable => 503,
            RefusalReason::Forbidden(_) => 403,
            RefusalReason::OverCap(_) => 400,
        }
    }

    /// OpenAI-style `code`.
    pub fn code(self) -> &'static str {
        match self {
            RefusalReason::Policy(_) => "content_policy_violation",
            RefusalReason::BodyTooLarge => "request_too_large",
            RefusalReason::MalformedJson => "invalid_json",
            RefusalReason::Degraded(_) => "detector_unavailable",
            RefusalReason::Unauthenticated => "invalid_api_key",
            RefusalReason::RateLimited => "rate_limit_exceeded",
            RefusalReason::Anomaly => "anomalous_traffic",
            RefusalReason::LimiterUnavailable => "rate_limiter_unavailable",
            RefusalReason::Forbidden(_) => "permission_denied",
            RefusalReason::OverCap(_) => "request_exceeds_policy",
        }
    }

    /// The metric tag: the finding type for policy blocks, else the reason.
    pub fn tag(self) -> &'static str {
        match self {
            RefusalReason::Policy(kind) => kind,
            RefusalReason::BodyTooLarge => "BODY_TOO_LARGE",
            RefusalReason::MalformedJson => "MALFORMED_JSON",
            RefusalReason::Degraded(_) => "DEGRADED",
            RefusalReason::Unauthenticated => "UNAUTHENTICATED",
            RefusalReason::RateLimited => "RATE_LIMITED",
            RefusalReason::Anomaly => "ANOMALY",
            RefusalReason::LimiterUnavailable => "LIMITER_UNAVAILABLE",
            RefusalReason::Forbidden(kind) | RefusalReason::OverCap(kind) => kind,
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            RefusalReason::Degraded(_) | RefusalReason::LimiterUnavailable => "server_error",
            RefusalReason::Unauthenticated => "invalid_request_error",
            RefusalReason::RateLimited | RefusalReason::Anomaly => "requests",
            _ => "invalid_request_error",
        }
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            RefusalReason::Policy(_) | RefusalReason::Forbidden(_) => "permission_error",
            RefusalReason::OverCap(_) => "invalid_request_error",
            RefusalReason::BodyTooLarge => "request_too_large",
            RefusalReason::MalformedJson => "invalid_request_error",
            RefusalReason::Degraded(_) | RefusalReason::LimiterUnavailable => "api_error",
            RefusalReason::Unauthenticated => "authentication_error",
            RefusalReason::RateLimited | RefusalReason::Anomaly => "rate_limit_error",
        }
    }
}

/// Build the error reply for `reason` in `style`, carrying `x-request-id`.
pub fn error_reply(
    style: ErrorStyle,
    reason: RefusalReason,
    message: &str,
    request_id: &str,
) -> LocalReply {
    let body = match style {
        ErrorStyle::Openai => json!({
            "error": {
                "message": message,
                "type": reason.openai_type(),
                "param": null,
                "code": reason.code(),
            }
        }),
        ErrorStyle::Anthropic => json!({
            "type": "error",
            "error": {
                "type": reason.anthropic_type(),
                "message": message,
            }
        }),
    };
    LocalReply {
        status: reason.status(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-request-id".into(), request_id.into()),
        ],
        body: body.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(r: &LocalReply) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap_or_default()
    }

    #[test]
    fn openai_shape() {
        let r = error_reply(
            ErrorStyle::Openai,
            RefusalReason::BodyTooLarge,
            "too big",
            "rid-1",
        );
        assert_eq!(r.status, 413);
        assert_eq!(
            parsed(&r),
            json!({"error":{"message":"too big","type":"invalid_request_error","param":null,"code":"request_too_large"}})
        );
        assert!(r.headers.contains(&("x-request-id".into(), "rid-1".into())));
    }

    #[test]
    fn anthropic_shape() {
        let r = error_reply(
            ErrorStyle::Anthropic,
            RefusalReason::Policy("DENY_LIST"),
            "blocked",
            "rid-2",
        );
        assert_eq!(r.status, 403);
        assert_eq!(
            parsed(&r),
            json!({"type":"error","error":{"type":"permission_error","message":"blocked"}})
        );
    }
}
