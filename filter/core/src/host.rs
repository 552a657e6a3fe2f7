//! The host trait: everything the request state machine needs from Envoy.
//! `ProxyWasmHost` in the plugin crate implements it with hostcalls;
//! [`FakeHost`] implements it in memory for native tests.

use crate::metrics::Metric;
use crate::reply::LocalReply;
use std::collections::BTreeMap;

pub trait Host {
    /// A request header (pseudo-headers such as `:path` included).
    fn request_header(&self, name: &str) -> Option<String>;
    /// Set (`Some`) or remove (`None`) a request header.
    fn set_request_header(&mut self, name: &str, value: Option<&str>);
    /// The buffered request body, `len` bytes from `start`.
    fn request_body(&self, start: usize, len: usize) -> Option<Vec<u8>>;
    /// Replace the whole buffered request body.
    fn set_request_body(&mut self, body: &[u8]);
    /// Add a response header (called from the response-headers callback).
    fn add_response_header(&mut self, name: &str, value: &str);
    /// A response header (`:status` included).
    fn response_header(&self, name: &str) -> Option<String>;
    /// Set (`Some`) or remove (`None`) a response header (while the response
    /// headers are held: in their callback, or later if it paused).
    fn set_response_header(&mut self, name: &str, value: Option<&str>);
    /// The buffered response body, `len` bytes from `start`.
    fn response_body(&self, start: usize, len: usize) -> Option<Vec<u8>>;
    /// Replace the whole buffered response body.
    fn set_response_body(&mut self, body: &[u8]);
    /// Answer the request locally.
    fn send_reply(&mut self, reply: &LocalReply);
    /// Add `n` to a counter.
    fn count(&mut self, metric: Metric, n: u64);
    /// Record a histogram value.
    fn record(&mut self, metric: Metric, value: u64);
    /// Monotonic-enough clock in microseconds (for detector time).
    fn now_micros(&self) -> u64;
}

/// An in-memory host for tests: headers, body, what was sent and counted.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub request_headers: BTreeMap<String, String>,
    pub request_body: Vec<u8>,
    /// The upstream's response headers as the filter left them (lower-case names).
    pub response_headers: Vec<(String, String)>,
    pub response_body: Vec<u8>,
    pub replies: Vec<LocalReply>,
    pub counters: BTreeMap<String, u64>,
    pub histograms: BTreeMap<String, Vec<u64>>,
    pub clock_us: u64,
}

impl FakeHost {
    pub fn new(headers: &[(&str, &str)]) -> Self {
        FakeHost {
            request_headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            ..FakeHost::default()
        }
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

impl Host for FakeHost {
    fn request_header(&self, name: &str) -> Option<String> {
        self.request_headers.get(name).cloned()
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => {
                self.request_headers.insert(name.to_string(), v.to_string());
            }
            None => {
                self.request_headers.remove(name);
            }
        }
    }

    fn request_body(&self, start: usize, len: usize) -> Option<Vec<u8>> {
        let end = start.checked_add(len)?.min(self.request_body.len());
        self.request_body.get(start..end).map(<[u8]>::to_vec)
    }

    fn set_request_body(&mut self, body: &[u8]) {
        self.request_body = body.to_vec();
    }

    fn add_response_header(&mut self, name: &str, value: &str) {
        self.response_headers
            .push((name.to_string(), value.to_string()));
    }

    fn response_header(&self, name: &str) -> Option<String> {
        self.response_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        self.response_headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            self.response_headers
                .push((name.to_ascii_lowercase(), v.to_string()));
        }
    }

    fn response_body(&self, start: usize, len: usize) -> Option<Vec<u8>> {
        let end = start.checked_add(len)?.min(self.response_body.len());
        self.response_body.get(start..end).map(<[u8]>::to_vec)
    }

    fn set_response_body(&mut self, body: &[u8]) {
        self.response_body = body.to_vec();
    }

    fn send_reply(&mut self, reply: &LocalReply) {
        self.replies.push(reply.clone());
    }

    fn count(&mut self, metric: Metric, n: u64) {
        *self.counters.entry(metric.name()).or_insert(0) += n;
    }

    fn record(&mut self, metric: Metric, value: u64) {
        self.histograms
            .entry(metric.name())
            .or_default()
            .push(value);
    }

    fn now_micros(&self) -> u64 {
        self.clock_us
    }
}
