//! Tollgate's proxy-wasm plugin: the only crate that calls hostcalls. Every
//! decision lives in `tollgate-core`; this adapter forwards callbacks to
//! [`RequestFlow`] and implements [`Host`] with hostcalls.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use std::time::UNIX_EPOCH;
use tollgate_core::host::{Host, SharedData, SharedSetError};
use tollgate_core::metrics::Metric;
use tollgate_core::reply::LocalReply;
use tollgate_core::stream::{Next, RequestFlow};
use tollgate_core::telemetry::audit::AuditEvent;
use tollgate_core::telemetry::exporter::{ExportHost, Exporter};
use tollgate_core::telemetry::{self, otlp, SpanData};
use tollgate_core::Policy;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(GuardRoot::default()) });
}}

/// Metric ids, defined on first use and shared by every context of the VM.
#[derive(Default)]
struct Metrics {
    ids: RefCell<HashMap<Metric, u32>>,
}

impl Metrics {
    fn id(&self, metric: &Metric) -> Option<u32> {
        if let Some(id) = self.ids.borrow().get(metric) {
            return Some(*id);
        }
        let kind = if metric.is_histogram() {
            MetricType::Histogram
        } else {
            MetricType::Counter
        };
        let id = hostcalls::define_metric(kind, &metric.name()).ok()?;
        self.ids.borrow_mut().insert(metric.clone(), id);
        Some(id)
    }
}

/// The root context: compiles the configuration once per VM and drains
/// the VM's span queue to the collector on its timer.
#[derive(Default)]
struct GuardRoot {
    policy: Option<Rc<Policy>>,
    metrics: Rc<Metrics>,
    exporter: Option<Rc<RefCell<Exporter>>>,
}

/// How often the root context looks at the span queue.
const EXPORT_TICK: Duration = Duration::from_millis(100);

impl Context for GuardRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u16>().ok());
        if let Some(exporter) = self.exporter.clone() {
            let mut host = RootHost {
                metrics: self.metrics.clone(),
            };
            exporter
                .borrow_mut()
                .on_response(&mut host, token_id, status);
        }
    }
}

impl RootContext for GuardRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        let started = self.get_current_time();
        let now = now_micros();
        match Policy::from_json(&raw) {
            Ok(policy) => {
                let ms = self
                    .get_current_time()
                    .duration_since(started)
                    .map_or(0, |d| d.as_millis());
                log::info!(
                    "tollgate: configuration loaded ({} detectors) in {ms} ms",
                    policy.detectors.len()
                );
                let artifacts = tollgate_core::build::summary(policy.module_sha256.as_deref());
                let listed: Vec<String> =
                    artifacts.iter().map(|(n, s)| format!("{n}={s}")).collect();
                for (name, sha) in &artifacts {
                    count(&self.metrics, Metric::Build(name.clone(), sha.clone()), 1);
                }
                let ev = AuditEvent::new("config_loaded")
                    .detail("detectors", policy.detectors.len().to_string())
                    .detail("artifacts", listed.join(","));
                if policy.audit_log {
                    log::info!("{}", ev.line(None, now));
                }
                self.exporter = policy.traces.as_ref().map(|t| {
                    Rc::new(RefCell::new(Exporter::new(
                        t.exporter.clone(),
                        telemetry::exporter::Target {
                            cluster: t.cluster.clone(),
                            authority: t.authority.clone(),
                            path: t.path.clone(),
                            timeout_ms: t.timeout_ms,
                        },
                        otlp::Envelope::with_artifacts(&t.service_name, &t.project, &artifacts),
                    )))
                });
                if let Some(exporter) = &self.exporter {
                    let span = telemetry::config_span(&ev, now);
                    exporter
                        .borrow_mut()
                        .push(otlp::encode_span_field(&span), now, &mut |_, _| {});
                    self.set_tick_period(EXPORT_TICK);
                }
                if policy.rate_limit.is_some() || policy.anomaly.is_some() {
                    // Prompts are counted for the reservations: build the
                    // vocabularies now, not on the first request.
                    for e in [
                        tollgate_core::tokens::Encoding::O200kBase,
                        tollgate_core::tokens::Encoding::Cl100kBase,
                    ] {
                        tollgate_core::tokens::preload(e);
                    }
                }
                self.policy = Some(Rc::new(policy));
                true
            }
            Err(e) => {
                log::error!("tollgate: configuration rejected: {e}");
                let ev = AuditEvent::new("config_rejected").detail("error", e.to_string());
                log::error!("{}", ev.line(None, now));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(exporter) = self.exporter.clone() {
            let mut host = RootHost {
                metrics: self.metrics.clone(),
            };
            exporter.borrow_mut().tick(&mut host);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let policy = self.policy.clone()?;
        Some(Box::new(GuardStream {
            trap_on_header: policy.trap_on_header.clone(),
            flow: RequestFlow::new(policy),
            host: ProxyWasmHost {
                metrics: self.metrics.clone(),
                headers: RefCell::new(None),
                exporter: self.exporter.clone(),
            },
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One HTTP stream.
struct GuardStream {
    /// `testOnly.trapOnHeader` (fault tests only).
    trap_on_header: Option<String>,
    flow: RequestFlow,
    host: ProxyWasmHost,
}

fn action(next: Next) -> Action {
    match next {
        Next::Continue => Action::Continue,
        Next::Pause => Action::Pause,
    }
}

impl Context for GuardStream {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        let body = if response_size > 0 {
            hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size.min(1 << 20))
                .ok()
                .flatten()
        } else {
            None
        };
        self.flow
            .on_grpc_response(&mut self.host, token_id, status_code, body);
    }
}

impl HttpContext for GuardStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if let Some(name) = &self.trap_on_header {
            if self.host.request_header(name).is_some() {
                // Test-only (`testOnly.trapOnHeader`): a Wasm trap on purpose,
                // so the fault tests can show Envoy's `failure_policy`.
                log::error!("tollgate: testOnly.trapOnHeader {name} seen: aborting the VM");
                std::process::abort();
            }
        }
        action(self.flow.on_request_headers(&mut self.host, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.flow
                .on_request_body(&mut self.host, body_size, end_of_stream),
        )
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.flow.on_request_trailers(&mut self.host))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.flow.on_response_headers(&mut self.host, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.flow
                .on_response_body(&mut self.host, body_size, end_of_stream),
        )
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.flow.on_response_trailers(&mut self.host))
    }

    fn on_log(&mut self) {
        self.flow.on_log(&mut self.host);
    }
}

/// The root context's side of the exporter: HTTP callouts, time, metrics.
struct RootHost {
    metrics: Rc<Metrics>,
}

impl ExportHost for RootHost {
    fn dispatch_otlp(
        &mut self,
        cluster: &str,
        authority: &str,
        path: &str,
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, String> {
        hostcalls::dispatch_http_call(
            cluster,
            vec![
                (":method", "POST"),
                (":path", path),
                (":authority", authority),
                ("content-type", "application/x-protobuf"),
            ],
            Some(body),
            Vec::new(),
            Duration::from_millis(timeout_ms),
        )
        .map_err(|e| format!("{e:?}"))
    }

    fn now_micros(&self) -> u64 {
        now_micros()
    }

    fn count(&mut self, metric: Metric, n: u64) {
        count(&self.metrics, metric, n);
    }
}

fn count(metrics: &Metrics, metric: Metric, n: u64) {
    if let Some(id) = metrics.id(&metric) {
        let delta = i64::try_from(n).unwrap_or(i64::MAX);
        let _ = hostcalls::increment_metric(id, delta);
    }
}

fn now_micros() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// [`Host`] over proxy-wasm hostcalls. Hostcall failures are logged at debug
/// level and otherwise ignored: the core treats a missing value as absent.
struct ProxyWasmHost {
    metrics: Rc<Metrics>,
    /// All request headers, read with one hostcall on first use (each
    /// single-header hostcall costs a call back into the VM); dropped on any change.
    headers: RefCell<Option<Vec<(String, String)>>>,
    /// The VM's span queue (when traces are configured).
    exporter: Option<Rc<RefCell<Exporter>>>,
}

impl SharedData for ProxyWasmHost {
    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(v), Some(cas))) => Some((v, cas)),
            Ok((Some(v), None)) => Some((v, 0)),
            _ => None,
        }
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SharedSetError> {
        let cas = (cas != 0).then_some(cas);
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(proxy_wasm::types::Status::CasMismatch) => Err(SharedSetError::CasMismatch),
            Err(_) => Err(SharedSetError::Failed),
        }
    }
}

impl Host for ProxyWasmHost {
    fn request_header(&self, name: &str) -> Option<String> {
        let mut cache = self.headers.borrow_mut();
        let all = cache.get_or_insert_with(|| {
            hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default()
        });
        all.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        if value.is_none() && self.request_header(name).is_none() {
            // Removing an absent header: skip the hostcall.
            return;
        }
        *self.headers.borrow_mut() = None;
        if let Err(e) = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value) {
            log::debug!("tollgate: set_map_value({name}) failed: {e:?}");
        }
    }

    fn request_body(&self, start: usize, len: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, start, len)
            .ok()
            .flatten()
    }

    fn set_request_body(&mut self, body: &[u8]) {
        // start 0 and size usize::MAX replace the whole buffered body.
        if let Err(e) = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, usize::MAX, body) {
            log::warn!("tollgate: replacing the request body failed: {e:?}");
        }
    }

    fn add_response_header(&mut self, name: &str, value: &str) {
        if let Err(e) = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value) {
            log::debug!("tollgate: add_map_value({name}) failed: {e:?}");
        }
    }

    fn response_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpResponseHeaders, name)
            .ok()
            .flatten()
    }

    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        if let Err(e) = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value) {
            log::debug!("tollgate: set_map_value({name}) failed: {e:?}");
        }
    }

    fn response_body(&self, start: usize, len: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, start, len)
            .ok()
            .flatten()
    }

    fn set_response_body(&mut self, body: &[u8]) {
        if let Err(e) = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, usize::MAX, body) {
            log::warn!("tollgate: replacing the response body failed: {e:?}");
        }
    }

    fn send_reply(&mut self, reply: &LocalReply) {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Err(e) =
            hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body))
        {
            log::warn!("tollgate: send_http_response failed: {e:?}");
        }
    }

    fn count(&mut self, metric: Metric, n: u64) {
        count(&self.metrics, metric, n);
    }

    fn record(&mut self, metric: Metric, value: u64) {
        if let Some(id) = self.metrics.id(&metric) {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    fn metadata(&self, path: &[String]) -> Option<String> {
        let mut full: Vec<&str> = vec!["metadata", "filter_metadata"];
        full.extend(path.iter().map(String::as_str));
        let bytes = hostcalls::get_property(full).ok().flatten()?;
        String::from_utf8(bytes).ok()
    }

    fn dispatch_grpc(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, String> {
        hostcalls::dispatch_grpc_call(
            cluster,
            service,
            method,
            Vec::new(),
            Some(message),
            std::time::Duration::from_millis(timeout_ms),
        )
        .map_err(|e| format!("{e:?}"))
    }

    fn resume_request(&mut self) {
        if let Err(e) = hostcalls::resume_http_request() {
            log::warn!("tollgate: resuming the request failed: {e:?}");
        }
    }

    fn now_micros(&self) -> u64 {
        now_micros()
    }

    fn emit_span(&mut self, span: SpanData) {
        let Some(exporter) = self.exporter.clone() else {
            return;
        };
        if !exporter.borrow().has_room() {
            count(&self.metrics, Metric::TraceSpansDropped("queue_full"), 1);
            return;
        }
        let field = otlp::encode_span_field(&span);
        let metrics = self.metrics.clone();
        exporter
            .borrow_mut()
            .push(field, span.end_us, &mut |m, n| count(&metrics, m, n));
    }

    fn audit(&mut self, line: &str) {
        log::info!("{line}");
    }

    fn property(&self, path: &[&str]) -> Option<String> {
        let bytes = hostcalls::get_property(path.to_vec()).ok().flatten()?;
        match bytes.len() {
            // Numbers come as 8 little-endian bytes.
            8 => bytes
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(|b| u64::from_le_bytes(b).to_string()),
            _ => String::from_utf8(bytes).ok(),
        }
    }
}
