//! The span exporter of one VM: a bounded queue that exchanges append to
//! and the root context drains, on its timer, in OTLP/HTTP batches.
//!
//! A request never waits for it: appending is a push onto a queue, and a
//! full queue drops the span (counted). One batch is in flight at a time; a
//! batch that fails (no answer, 429 or 5xx) is retried after a backoff that
//! doubles up to a cap, at most `max_retries` times, then dropped (counted).
//! A batch the collector refuses (other 4xx) is dropped at once.

use super::otlp::Envelope;
use crate::metrics::Metric;
use std::collections::VecDeque;

/// Compiled batching and retry settings (see `traces` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterSettings {
    pub batch_spans: usize,
    pub batch_bytes: usize,
    pub flush_interval_us: u64,
    pub max_queue_spans: usize,
    pub max_queue_bytes: usize,
    pub max_retries: u32,
    pub backoff_us: u64,
    pub max_backoff_us: u64,
}

/// What the exporter needs from the host (the plugin's root context).
pub trait ExportHost {
    /// POST `body` (OTLP protobuf) to `cluster`; the answer comes to
    /// [`Exporter::on_response`] with the returned token.
    fn dispatch_otlp(
        &mut self,
        cluster: &str,
        authority: &str,
        path: &str,
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, String>;
    fn now_micros(&self) -> u64;
    fn count(&mut self, metric: Metric, n: u64);
}

#[derive(Debug)]
struct Batch {
    body: Vec<u8>,
    spans: usize,
    attempts: u32,
}

/// Where the collector is and how to talk to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
}

#[derive(Debug)]
pub struct Exporter {
    settings: ExporterSettings,
    target: Target,
    envelope: Envelope,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// When the oldest queued span was queued.
    oldest_us: Option<u64>,
    inflight: Option<(u32, Batch)>,
    /// A failed batch and when to send it again.
    retry: Option<(u64, Batch)>,
}

impl Exporter {
    pub fn new(settings: ExporterSettings, target: Target, envelope: Envelope) -> Exporter {
        Exporter {
            settings,
            target,
            envelope,
            queue: VecDeque::new(),
            queued_bytes: 0,
            oldest_us: None,
            inflight: None,
            retry: None,
        }
    }

    /// Spans waiting (not counting a batch in flight or waiting to be retried).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether a span would be queued now (checked before encoding one, so
    /// a collector that is down costs no encoding of spans that would be dropped).
    pub fn has_room(&self) -> bool {
        self.queue.len() < self.settings.max_queue_spans
            && self.queued_bytes < self.settings.max_queue_bytes
    }

    /// A batch is in flight or waits for its retry.
    pub fn busy(&self) -> bool {
        self.inflight.is_some() || self.retry.is_some()
    }

    /// Queue one encoded span (a `ScopeSpans.spans` field); `false` when it
    /// was dropped because the queue is full or the span alone is too large.
    pub fn push(&mut self, span: Vec<u8>, now_us: u64, count: &mut dyn FnMut(Metric, u64)) -> bool {
        if span.len() > self.settings.batch_bytes {
            count(Metric::TraceSpansDropped("too_large"), 1);
            return false;
        }
        if self.queue.len() >= self.settings.max_queue_spans
            || self.queued_bytes + span.len() > self.settings.max_queue_bytes
        {
            count(Metric::TraceSpansDropped("queue_full"), 1);
            return false;
        }
        self.queued_bytes += span.len();
        self.queue.push_back(span);
        self.oldest_us.get_or_insert(now_us);
        true
    }

    /// The root context's timer: send a batch when one is due (full by
    /// count or bytes, or its oldest span has waited `flush_interval`), or
    /// the retry of a failed one when its backoff is over.
    pub fn tick(&mut self, host: &mut dyn ExportHost) {
        if self.inflight.is_some() {
            return;
        }
        let now = host.now_micros();
        if let Some((due, _)) = &self.retry {
            if now < *due {
                return;
            }
            if let Some((_, batch)) = self.retry.take() {
                host.count(Metric::TraceSpansRetried, batch.spans as u64);
                self.send(host, batch);
            }
            return;
        }
        let due = self.queue.len() >= self.settings.batch_spans
            || self.queued_bytes >= self.settings.batch_bytes
            || self
                .oldest_us
                .is_some_and(|t| now.saturating_sub(t) >= self.settings.flush_interval_us);
        if !due || self.queue.is_empty() {
            return;
        }
        let batch = self.take_batch(now);
        self.send(host, batch);
    }

    fn take_batch(&mut self, now: u64) -> Batch {
        let mut spans: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        while let Some(front) = self.queue.front() {
            if spans.len() >= self.settings.batch_spans
                || (!spans.is_empty() && bytes + front.len() > self.settings.batch_bytes)
            {
                break;
            }
            let Some(s) = self.queue.pop_front() else {
                break;
            };
            bytes += s.len();
            spans.push(s);
        }
        self.queued_bytes = self.queued_bytes.saturating_sub(bytes);
        self.oldest_us = if self.queue.is_empty() {
            None
        } else {
            Some(now)
        };
        let body = self.envelope.request(spans.iter().map(Vec::as_slice));
        Batch {
            body,
            spans: spans.len(),
            attempts: 0,
        }
    }

    fn send(&mut self, host: &mut dyn ExportHost, mut batch: Batch) {
        batch.attempts += 1;
        let t = &self.target;
        match host.dispatch_otlp(&t.cluster, &t.authority, &t.path, &batch.body, t.timeout_ms) {
            Ok(token) => self.inflight = Some((token, batch)),
            Err(_) => self.failed(host, batch),
        }
    }

    /// The collector's answer to batch `token`: its HTTP status, or `None`
    /// when there was none (connection failure, timeout).
    pub fn on_response(&mut self, host: &mut dyn ExportHost, token: u32, status: Option<u16>) {
        let Some((t, _)) = &self.inflight else {
            return;
        };
        if *t != token {
            return;
        }
        let Some((_, batch)) = self.inflight.take() else {
            return;
        };
        match status {
            Some(s) if (200..300).contains(&s) => {
                host.count(Metric::TraceBatches("ok"), 1);
                host.count(Metric::TraceSpansExported, batch.spans as u64);
                // A full batch waiting goes now, not at the next tick: the
                // export rate is a batch per round trip, not per tick.
                self.tick(host);
            }
            Some(s) if s != 429 && (400..500).contains(&s) => {
                // Retrying a request the collector refuses cannot help.
                host.count(Metric::TraceBatches("rejected"), 1);
                host.count(Metric::TraceSpansDropped("rejected"), batch.spans as u64);
            }
            // After a failure the next batch waits for the tick (and the backoff).
            _ => self.failed(host, batch),
        }
    }

    fn failed(&mut self, host: &mut dyn ExportHost, batch: Batch) {
        host.count(Metric::TraceBatches("failed"), 1);
        if batch.attempts > self.settings.max_retries {
            host.count(Metric::TraceSpansDropped("collector"), batch.spans as u64);
            return;
        }
        let shift = batch.attempts.saturating_sub(1).min(20);
        let backoff = self
            .settings
            .backoff_us
            .saturating_mul(1u64 << shift)
            .min(self.settings.max_backoff_us);
        let due = host.now_micros().saturating_add(backoff);
        self.retry = Some((due, batch));
    }
}
