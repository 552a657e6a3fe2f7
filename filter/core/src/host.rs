//! The host trait: everything the request state machine needs from Envoy.
//! `ProxyWasmHost` in the plugin crate implements it with hostcalls;
//! [`FakeHost`] implements it in memory for native tests.

use crate::metrics::Metric;
use crate::reply::LocalReply;
use crate::telemetry::SpanData;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Why a [`SharedData::shared_set`] did not store its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedSetError {
    /// Another VM wrote the key since it was read: read again and retry.
    CasMismatch,
    /// The host refused the write.
    Failed,
}

/// Key-value data shared by every VM of the plugin (proxy-wasm shared data):
/// all worker threads see the same values. Writes are compare-and-swap.
pub trait SharedData {
    /// The value of `key` and its CAS token, if the key exists.
    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Store `value` if the key's CAS token is still `cas` (0: unconditionally).
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SharedSetError>;
}

pub trait Host: SharedData {
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
    /// The exchange is over: queue its span for export.
    fn emit_span(&mut self, span: SpanData);
    /// Write an audit line to the proxy's log.
    fn audit(&mut self, line: &str);
    /// A request property (`["request", "method"]`, `["response", "code"]`).
    fn property(&self, path: &[&str]) -> Option<String>;
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
    /// Spans the flow emitted, and audit lines it wrote.
    pub spans: Vec<SpanData>,
    pub audit_lines: Vec<String>,
    /// Properties by dotted path (`response.code`).
    pub properties: BTreeMap<String, String>,
    /// Shared data; clone the `Rc` into another `FakeHost` to model two VMs.
    pub shared: Rc<RefCell<FakeShared>>,
}

/// The shared-data store of [`FakeHost`]: values with CAS tokens, as Envoy keeps them.
#[derive(Debug, Default)]
pub struct FakeShared {
    pub values: BTreeMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
}

impl SharedData for FakeShared {
    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.values.get(key).cloned()
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SharedSetError> {
        if let Some((_, current)) = self.values.get(key) {
            if cas != 0 && cas != *current {
                return Err(SharedSetError::CasMismatch);
            }
        }
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        self.values
            .insert(key.to_string(), (value.to_vec(), self.next_cas));
        Ok(())
    }
}

impl SharedData for FakeHost {
    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared.borrow().shared_get(key)
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SharedSetError> {
        self.shared.borrow_mut().shared_set(key, value, cas)
    }
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

    fn emit_span(&mut self, span: SpanData) {
        self.spans.push(span);
    }

    fn audit(&mut self, line: &str) {
        self.audit_lines.push(line.to_string());
    }

    fn property(&self, path: &[&str]) -> Option<String> {
        self.properties.get(&path.join(".")).cloned()
    }
}
