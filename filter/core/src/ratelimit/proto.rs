//! The messages of Envoy's `envoy.service.ratelimit.v3.RateLimitService`
//! (`rls.proto`), encoded and decoded by hand: the filter needs one request
//! and one response shape, and a protobuf runtime in the wasm would cost more
//! than these hundred lines. Field numbers are rls.proto's:
//!
//! ```text
//! RateLimitRequest    { string domain = 1; repeated RateLimitDescriptor descriptors = 2;
//!                       uint32 hits_addend = 3; }
//! RateLimitDescriptor { repeated Entry entries = 1; }   Entry { string key = 1; string value = 2; }
//! RateLimitResponse   { Code overall_code = 1; repeated DescriptorStatus statuses = 2;
//!                       repeated HeaderValue response_headers_to_add = 3; ... }
//! DescriptorStatus    { Code code = 1; RateLimit current_limit = 2; uint32 limit_remaining = 3;
//!                       google.protobuf.Duration duration_until_reset = 4; }
//! RateLimit           { uint32 requests_per_unit = 1; Unit unit = 2; string name = 3; }
//! Duration            { int64 seconds = 1; int32 nanos = 2; }
//! ```
//! Unknown fields are skipped, as protobuf requires.

/// The longest `google.protobuf.Duration`, in seconds (10,000 years): the
/// bound of a decoded `duration_until_reset`.
pub const MAX_DURATION_SECONDS: u64 = 315_576_000_000;

/// `RateLimitResponse.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Code {
    #[default]
    Unknown,
    Ok,
    OverLimit,
}

impl Code {
    fn from_i64(v: u64) -> Code {
        match v {
            1 => Code::Ok,
            2 => Code::OverLimit,
            _ => Code::Unknown,
        }
    }
}

/// `RateLimit.Unit`, as seconds per window (0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unit(pub u64);

impl Unit {
    /// The unit of `RateLimit.Unit`'s enum value `v` (0 seconds when unknown).
    pub(crate) fn from_enum(v: u64) -> Unit {
        Unit(match v {
            1 => 1,
            2 => 60,
            3 => 3_600,
            4 => 86_400,
            5 => 30 * 86_400,
            6 => 365 * 86_400,
            7 => 7 * 86_400,
            _ => 0,
        })
    }
}

/// One descriptor's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescriptorStatus {
    pub code: Code,
    /// `current_limit.requests_per_unit` and its window.
    pub limit: Option<(u32, Unit)>,
    pub limit_name: String,
    pub remaining: u32,
    /// `duration_until_reset` in whole seconds (rounded up).
    pub reset_seconds: Option<u64>,
}

/// The decoded `RateLimitResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateLimitResponse {
    pub overall: Code,
    pub statuses: Vec<DescriptorStatus>,
    /// `response_headers_to_add` (key, value).
    pub headers: Vec<(String, String)>,
}

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed RateLimitResponse: {0}")]
pub struct DecodeError(&'static str);

/// Encode a `RateLimitRequest`.
pub fn encode_request(
    domain: &str,
    descriptors: &[Vec<(String, String)>],
    hits_addend: u32,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_bytes(&mut out, 1, domain.as_bytes());
    for d in descriptors {
        let mut desc = Vec::new();
        for (k, v) in d {
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, k.as_bytes());
            put_bytes(&mut entry, 2, v.as_bytes());
            put_bytes(&mut desc, 1, &entry);
        }
        put_bytes(&mut out, 2, &desc);
    }
    if hits_addend != 0 {
        put_varint(&mut out, 3 << 3);
        put_varint(&mut out, u64::from(hits_addend));
    }
    out
}

/// Decode a `RateLimitResponse` (at most 256 statuses and headers each).
pub fn decode_response(bytes: &[u8]) -> Result<RateLimitResponse, DecodeError> {
    let mut r = RateLimitResponse::default();
    for field in Fields::new(bytes) {
        match field? {
            (1, Value::Varint(v)) => r.overall = Code::from_i64(v),
            (2, Value::Bytes(b)) if r.statuses.len() < 256 => r.statuses.push(decode_status(b)?),
            (3, Value::Bytes(b)) if r.headers.len() < 256 => {
                // config.core.v3.HeaderValue { key = 1; value = 2; raw_value = 3; }
                let (mut k, mut v) = (String::new(), String::new());
                for f in Fields::new(b) {
                    match f? {
                        (1, Value::Bytes(x)) => k = lossy(x),
                        (2 | 3, Value::Bytes(x)) => v = lossy(x),
                        _ => {}
                    }
                }
                if !k.is_empty() {
                    r.headers.push((k, v));
                }
            }
            _ => {}
        }
    }
    Ok(r)
}

fn decode_status(bytes: &[u8]) -> Result<DescriptorStatus, DecodeError> {
    let mut s = DescriptorStatus::default();
    for field in Fields::new(bytes) {
        match field? {
            (1, Value::Varint(v)) => s.code = Code::from_i64(v),
            (2, Value::Bytes(b)) => {
                let (mut n, mut unit) = (0u32, Unit::default());
                for f in Fields::new(b) {
                    match f? {
                        (1, Value::Varint(v)) => n = u32::try_from(v).unwrap_or(u32::MAX),
                        (2, Value::Varint(v)) => unit = Unit::from_enum(v),
                        (3, Value::Bytes(x)) => s.limit_name = lossy(x),
                        _ => {}
                    }
                }
                s.limit = Some((n, unit));
            }
            (3, Value::Varint(v)) => s.remaining = u32::try_from(v).unwrap_or(u32::MAX),
            (4, Value::Bytes(b)) => {
                let (mut secs, mut nanos) = (0u64, 0u64);
                for f in Fields::new(b) {
                    match f? {
                        (1, Value::Varint(v)) => secs = v,
                        (2, Value::Varint(v)) => nanos = v,
                        _ => {}
                    }
                }
                // `seconds` is an int64: a negative one (two's complement on the wire)
                // means "now", and no Duration is longer than 10,000 years.
                let secs = if (secs as i64) < 0 { 0 } else { secs };
                let secs = secs.saturating_add(u64::from(nanos > 0));
                s.reset_seconds = Some(secs.min(MAX_DURATION_SECONDS));
            }
            _ => {}
        }
    }
    Ok(s)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

/// The fields of one message, in order.
struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields {
            rest: bytes,
            failed: false,
        }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, tail) = self.rest.split_first()?;
            self.rest = tail;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Some(a)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let item = (|| {
            let key = self.varint().ok_or(DecodeError("truncated key"))?;
            let value = match key & 7 {
                0 => Value::Varint(self.varint().ok_or(DecodeError("truncated varint"))?),
                1 => {
                    self.take(8).ok_or(DecodeError("truncated fixed64"))?;
                    Value::Other
                }
                2 => {
                    let n = self.varint().ok_or(DecodeError("truncated length"))?;
                    let n = usize::try_from(n).map_err(|_| DecodeError("length"))?;
                    Value::Bytes(self.take(n).ok_or(DecodeError("truncated bytes"))?)
                }
                5 => {
                    self.take(4).ok_or(DecodeError("truncated fixed32"))?;
                    Value::Other
                }
                _ => return Err(DecodeError("unsupported wire type")),
            };
            Ok((key >> 3, value))
        })();
        if item.is_err() {
            self.failed = true;
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_are_rls_proto() {
        let d = vec![vec![
            ("kind".to_string(), "requests".to_string()),
            ("tenant".to_string(), "acme".to_string()),
        ]];
        let got = encode_request("tollgate", &d, 7);
        let want: Vec<u8> = [
            &[0x0a, 8][..],
            b"tollgate",
            &[0x12, 34, 0x0a, 16, 0x0a, 4],
            b"kind",
            &[0x12, 8],
            b"requests",
            &[0x0a, 14, 0x0a, 6],
            b"tenant",
            &[0x12, 4],
            b"acme",
            &[0x18, 7],
        ]
        .concat();
        assert_eq!(got, want);
        // hits_addend 0 is left out (the service counts 1).
        assert!(!encode_request("d", &[], 0).contains(&0x18));
    }

    #[test]
    fn response_decodes_statuses_and_skips_unknown_fields() {
        // overall OVER_LIMIT; one status: OVER_LIMIT, limit 5/minute named "rpm",
        // remaining 0, reset 42 s 5 ns; an unknown fixed32 field 9; a header.
        let mut limit = vec![0x08, 5, 0x10, 2, 0x1a, 3];
        limit.extend_from_slice(b"rpm");
        let mut status = vec![0x08, 2, 0x12, limit.len() as u8];
        status.extend_from_slice(&limit);
        status.extend_from_slice(&[0x18, 0, 0x22, 4, 0x08, 42, 0x10, 5]);
        let mut header = vec![0x0a, 1, b'x', 0x12, 1, b'y'];
        let mut msg = vec![0x08, 2, 0x12, status.len() as u8];
        msg.extend_from_slice(&status);
        msg.extend_from_slice(&[0x4d, 1, 2, 3, 4]);
        msg.push(0x1a);
        msg.push(header.len() as u8);
        msg.append(&mut header);
        let r = decode_response(&msg).unwrap_or_default();
        assert_eq!(r.overall, Code::OverLimit);
        assert_eq!(
            r.statuses,
            vec![DescriptorStatus {
                code: Code::OverLimit,
                limit: Some((5, Unit(60))),
                limit_name: "rpm".into(),
                remaining: 0,
                reset_seconds: Some(43),
            }]
        );
        assert_eq!(r.headers, vec![("x".to_string(), "y".to_string())]);
        assert!(decode_response(&[0x12, 10, 1]).is_err());
    }
}
