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
    /// A text value of Envoy's dynamic metadata:
    /// `metadata.filter_metadata.<path[0]>.<path[1]>...`.
    fn metadata(&self, path: &[String]) -> Option<String>;
    /// Start a gRPC call to `cluster`; its answer comes to
    /// `RequestFlow::on_grpc_response` with the returned token.
    fn dispatch_grpc(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, String>;
    /// Let a request paused by the filter go on to the upstream.
    fn resume_request(&mut self);
}

/// A gRPC call a [`FakeHost`] was asked to make.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcCall {
    pub token: u32,
    pub cluster: String,
    pub service: String,
    pub method: String,
    pub message: Vec<u8>,
    pub timeout_ms: u64,
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
    /// Dynamic metadata by dotted path (`envoy.filters.http.jwt_authn.payload.tenant`).
    pub metadata: BTreeMap<String, String>,
    pub grpc_calls: Vec<GrpcCall>,
    /// Make `dispatch_grpc` fail (the cluster is unknown).
    pub grpc_dispatch_fails: bool,
    /// How often `resume_request` was called.
    pub resumed: u32,
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

    fn metadata(&self, path: &[String]) -> Option<String> {
        self.metadata.get(&path.join(".")).cloned()
    }

    fn dispatch_grpc(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, String> {
        if self.grpc_dispatch_fails {
            return Err(format!("unknown cluster {cluster}"));
        }
        let token = self.grpc_calls.len() as u32 + 1;
        self.grpc_calls.push(GrpcCall {
            token,
            cluster: cluster.into(),
            service: service.into(),
            method: method.into(),
            message: message.to_vec(),
            timeout_ms,
        });
        Ok(token)
    }

    fn resume_request(&mut self) {
        self.resumed += 1;
    }
}
