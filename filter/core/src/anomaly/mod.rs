//! Per-tenant statistical anomaly detection, shared by every worker VM through
//! proxy-wasm shared data.
//!
//! # Signals
//! Five signals per tenant, counted in fixed windows (`window`, e.g. `"1m"`,
//! aligned to multiples of the window on the host clock so every VM agrees):
//!
//! | signal | value in a window |
//! |---|---|
//! | `requests` | requests |
//! | `tokens` | tokens (the request's estimate plus what the response adds) |
//! | `cost` | micro-USD |
//! | `injection` | fraction of the window's requests with an injection finding |
//! | `errors` | fraction of the window's responses with status >= 400 ([`is_error_status`]) |
//!
//! Errors count 4xx as well as 5xx: probing with bad keys, malformed or
//! oversized requests and path scans show up as 4xx, and they are the tenant's
//! doing; a tenant that drives the upstream into 5xx is worth a look too. The
//! filter's own refusals (this module's throttle and block among them) are not
//! responses of the upstream and should not be observed, or a throttle would
//! feed its own error signal.
//!
//! The rates are judged only when the window holds at least `minRequests`
//! requests (responses for `errors`), and fold into their baseline only from
//! such windows.
//!
//! # Baseline
//! When a window closes, each value folds into a moving mean and variance
//! (the incremental EWMA form `d = x - m; m += a d; v = (1 - b)(v + b d^2)`).
//! Fold `i` uses `a = b = 1/i` while `1/i >= alpha`: the first `1/alpha`
//! windows give the plain mean and variance of what was seen (no pull towards
//! the starting zero). After them `a = alpha` and `b = alpha / 4`: the mean
//! follows the traffic at `alpha`, the variance four times slower (some 40
//! windows at alpha 0.1), so a calm stretch does not shrink the spread until
//! ordinary noise looks like `sigma` spreads. Windows skipped entirely (no
//! traffic, or the clock jumped several windows) fold zeros into the count
//! signals in closed form, exact and constant-time for any number of them:
//! `k` zeros take `m` to `A^k m` and `v` to `B^k v + b m^2 B (B^k - A^2k) / (B - A^2)`,
//! `A = 1 - a`, `B = 1 - b` (and merge into the plain average while it lasts).
//! The tenant's first window is partial (it began mid-window) and is dropped.
//!
//! From the second window on (warm-up included) a value folds clipped to 2
//! spreads above the mean (the formula below with 2 for `sigma`): ordinary
//! noise is almost never clipped; a flood, or a tenant's first windows, teach
//! the baseline at most 2 spreads a window. A lasting change is still learnt:
//! held by `throttle`, a tenant at 10 times its rate is let through a few per
//! cent more each window and is the norm after some 20 windows; a step to 2
//! or 3 times is learnt in a window or two.
//!
//! # Check
//! A spike is caught within its window: the current, partial window is judged
//! on every checked observation (counts only grow, so the partial count
//! crosses the threshold as soon as the whole window's would). A value is
//! anomalous when it is above
//!
//! ```text
//! counts: m + sigma max(c std, poisson, minStdFraction m) + u sigma^2 / 4
//! rates:  (N p + sigma N max(c std, sqrt(p (1 - p) / N), minStdFraction p) + sigma^2 / 4) / n
//! ```
//!
//! `std` is the learnt spread, taken at its upper confidence bound
//! `c = 1 + sqrt(2 / (k - 1))`, `k` the windows it rests on (at most
//! `2 / b - 1`, 79 at alpha 0.1; `c` is then 1.16): a spread learnt from few
//! windows is uncertain, and taken too small it makes false alarms. The floors
//! keep a calm history (or zero variance) from alarming on ordinary noise:
//! `poisson` is the spread of a Poisson count of the same mean (`sqrt(m)`
//! requests; `u sqrt(m_requests)` tokens or micro-USD, `u` the learnt tokens
//! or cost per request, at least 1), the rates' floor the binomial spread.
//! The `sigma^2 / 4` term is the square-root (Anscombe) correction for small
//! counts: Poisson and binomial tails are heavier than a normal's when the
//! mean is a handful, and `(sqrt(m) + sigma/2)^2` is where a Poisson count is
//! `sigma` spreads high on the square-root scale. So at the default sigma of
//! 4 a tenant with no traffic in its history may send 4 requests in a window
//! without alarm; one used to 1 a window about 10, to 10 about 28, to 200
//! about 280. Five times the usual rate is caught from about 5 a window up;
//! below that Poisson noise is as large.
//!
//! A rate is judged as a count of flagged requests (errors) out of the
//! window's expected total `N = max(n, mean requests)`, `n` its requests
//! (responses) so far: the count only grows, so until `n` passes the usual
//! total its threshold is fixed and judging every request adds no false
//! alarms (the fraction of a small `n`, looked at anew on every request,
//! would). Value and threshold are reported as fractions of `n`.
//!
//! Measured by `steady_traffic_soak` (Poisson arrivals at 1 to 200 a window,
//! request sizes +-30 %, the rate itself wandering +-25 % or not; 500 000
//! windows): about 1 window in 100 000 raises a false alarm at sigma 4.
//!
//! A signal raises no alarm before `warmup` windows have folded into it (for
//! `tokens` and `cost`, also `warmup` windows with requests, which teach the
//! size of a request).
//!
//! # Actions
//! The module decides; the caller acts on the [`Verdict`].
//! - `flag`: the request passes, marked; `retryAfterSecs` is the end of the window.
//! - `throttle`: refuse while a signal of the current window is above its
//!   threshold: the counts only grow, so the rest of the window is refused and
//!   the tenant is held to about its normal rate; retry at the end of the window.
//! - `block`: refuse every request of the tenant for `blockFor` after an
//!   anomaly; the until-time is in the tenant's state (every VM refuses), and an
//!   anomaly while blocked extends it. A blocked verdict may have no signals
//!   (the block of an earlier anomaly).
//!
//! Refused requests still count: the signals measure what the tenant attempts.
//!
//! # Calls
//! The request path calls [`observe`] with `requests: 1`, the token and cost
//! estimates, `injection: 0/1` and `check: true` before forwarding; the end of
//! the exchange calls it with `responses: 1`, `errors: 0/1`, the tokens the
//! response added beyond the estimate and `check: false` (errors are judged at
//! the tenant's next request).
//!
//! # Shared state
//! One key per tenant, `tollgate.anomaly.v1.<tenant>`, holding a fixed
//! 200-byte little-endian record ([`STATE_LEN`]; layout in `state.rs`, version byte
//! first). Every observation reads it, updates it and writes it back with the
//! CAS token it read; on a CAS mismatch (another VM wrote in between) it
//! starts over, at most [`CAS_ATTEMPTS`] times, then gives up (the observation
//! is lost, the verdict of the last attempt stands, `contention` says so).
//! A record that does not decode (short, another version, another window
//! length, non-finite numbers, a bucket in the future) starts over (`reset`).
//!
//! A key believed missing is created with a CAS token no live key holds
//! (`u32::MAX`), so two VMs creating the same tenant at once do not
//! overwrite each other: the second write mismatches and merges.
//!
//! Shared data cannot be deleted, so the number of tenant keys is bounded:
//! the key `tollgate.anomaly.tenants.v1` (version byte, then a `u32` count,
//! little-endian) counts the tenants ever tracked since Envoy started. A new
//! tenant is tracked while the count is below `maxTenants`; the VM whose
//! write created its key counts it (once per tenant). Beyond the cap, and for
//! tenant names empty or longer than [`MAX_TENANT_LEN`] bytes, a tenant is
//! `untracked` (no state, no verdict). VMs creating different tenants at the
//! same instant at the cap may pass it by one each (the keys stay bounded by
//! the cap plus the worker count).

mod state;

use crate::host::{SharedData, SharedSetError};
use serde::Deserialize;
use state::State;

pub use state::STATE_LEN;

/// Prefix of the tenants' keys in shared data.
pub const KEY_PREFIX: &str = "tollgate.anomaly.v1.";
/// The key counting tracked tenants (not under [`KEY_PREFIX`]: no tenant can take it).
pub const REGISTRY_KEY: &str = "tollgate.anomaly.tenants.v1";
/// Longest tenant name tracked, in bytes.
pub const MAX_TENANT_LEN: usize = 64;
/// Read-modify-write attempts on a CAS mismatch before giving up.
pub const CAS_ATTEMPTS: u32 = 8;

const REGISTRY_VERSION: u8 = 1;
const MICROS: u64 = 1_000_000;
const MAX_SPAN_US: u64 = 24 * 3600 * MICROS;

/// One signal of a tenant's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum Signal {
    /// Requests per window.
    Requests,
    /// Tokens per window.
    Tokens,
    /// Cost per window, micro-USD.
    Cost,
    /// Fraction of the window's requests with an injection finding.
    Injection,
    /// Fraction of the window's responses with status >= 400.
    Errors,
}

impl Signal {
    pub const ALL: [Signal; 5] = [
        Signal::Requests,
        Signal::Tokens,
        Signal::Cost,
        Signal::Injection,
        Signal::Errors,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Requests => "requests",
            Signal::Tokens => "tokens",
            Signal::Cost => "cost",
            Signal::Injection => "injection",
            Signal::Errors => "errors",
        }
    }
}

/// What an anomaly does to the tenant's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum AnomalyAction {
    /// The request passes, marked.
    #[default]
    Flag,
    /// Requests are refused while the current window is above its threshold.
    Throttle,
    /// Every request of the tenant is refused for `blockFor`.
    Block,
}

impl AnomalyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyAction::Flag => "flag",
            AnomalyAction::Throttle => "throttle",
            AnomalyAction::Block => "block",
        }
    }
}

/// Per-tenant anomaly detection: each tenant's traffic against its own
/// learnt baseline, shared by all worker VMs.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Length of a window, e.g. `"10s"`, `"1m"` (units `ms`, `s`, `m`, `h`;
    /// 1 s to 24 h). Signals are counted per window and a spike is caught
    /// within its window.
    #[serde(default = "default_window")]
    pub window: String,
    /// Weight of the newest window in the baseline's moving mean and variance,
    /// above 0 and at most 1 (0.1: about the last 10 windows).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// How many spreads above the baseline a window must be to be anomalous (above 0).
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Windows a signal learns before it may raise an alarm (1 to 10000).
    #[serde(default = "default_warmup")]
    pub warmup: u32,
    /// Fewest requests (responses) in a window for the injection (error) rate to be judged.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Floor of the spread as a fraction of the mean (0 to 1), so a
    /// steady history does not make every small rise an alarm.
    #[serde(default = "default_min_std_fraction")]
    pub min_std_fraction: f64,
    /// Most tenants tracked (1 to 100000); others are not watched. Counts every
    /// tenant seen since Envoy started (shared data cannot be deleted).
    #[serde(default = "default_max_tenants")]
    pub max_tenants: u32,
    /// What an anomaly does: `flag` the request, `throttle` the tenant to its
    /// normal rate for the rest of the window, or `block` it for `blockFor`.
    #[serde(default)]
    pub action: AnomalyAction,
    /// How long `block` refuses the tenant's requests, e.g. `"60s"` (1 s to 24 h).
    #[serde(default = "default_block_for")]
    pub block_for: String,
    /// The signals judged (all are counted): `requests`, `tokens`, `cost`,
    /// `injection`, `errors`.
    #[serde(default = "default_signals")]
    pub signals: Vec<Signal>,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            window: default_window(),
            alpha: default_alpha(),
            sigma: default_sigma(),
            warmup: default_warmup(),
            min_requests: default_min_requests(),
            min_std_fraction: default_min_std_fraction(),
            max_tenants: default_max_tenants(),
            action: AnomalyAction::default(),
            block_for: default_block_for(),
            signals: default_signals(),
        }
    }
}

fn default_window() -> String {
    "1m".into()
}
fn default_alpha() -> f64 {
    0.1
}
fn default_sigma() -> f64 {
    4.0
}
fn default_warmup() -> u32 {
    6
}
fn default_min_requests() -> u64 {
    10
}
fn default_min_std_fraction() -> f64 {
    0.1
}
fn default_max_tenants() -> u32 {
    1000
}
fn default_block_for() -> String {
    "60s".into()
}
fn default_signals() -> Vec<Signal> {
    Signal::ALL.to_vec()
}

/// An invalid [`AnomalyConfig`] field (its camelCase name) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct AnomalyConfigError {
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> AnomalyConfigError {
    AnomalyConfigError {
        field,
        reason: reason.into(),
    }
}

/// The compiled [`AnomalyConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyPolicy {
    window_us: u64,
    alpha: f64,
    sigma: f64,
    warmup: u32,
    min_requests: u64,
    min_std_fraction: f64,
    max_tenants: u32,
    action: AnomalyAction,
    block_for_us: u64,
    signals: Vec<Signal>,
}

impl AnomalyPolicy {
    pub fn from_config(c: &AnomalyConfig) -> Result<AnomalyPolicy, AnomalyConfigError> {
        let span = |field, s: &str| {
            let us = parse_span_us(s).map_err(|e| invalid(field, e))?;
            if (MICROS..=MAX_SPAN_US).contains(&us) {
                Ok(us)
            } else {
                Err(invalid(field, format!("{s:?} must be between 1s and 24h")))
            }
        };
        let window_us = span("window", &c.window)?;
        let block_for_us = span("blockFor", &c.block_for)?;
        if !(c.alpha > 0.0 && c.alpha <= 1.0) {
            return Err(invalid("alpha", "must be above 0 and at most 1"));
        }
        if !(c.sigma.is_finite() && c.sigma > 0.0) {
            return Err(invalid("sigma", "must be a number above 0"));
        }
        if !(1..=10_000).contains(&c.warmup) {
            return Err(invalid("warmup", "must be between 1 and 10000"));
        }
        if c.min_requests == 0 {
            return Err(invalid("minRequests", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&c.min_std_fraction) {
            return Err(invalid("minStdFraction", "must be between 0 and 1"));
        }
        if !(1..=100_000).contains(&c.max_tenants) {
            return Err(invalid("maxTenants", "must be between 1 and 100000"));
        }
        if c.signals.is_empty() {
            return Err(invalid("signals", "must name at least one signal"));
        }
        let mut signals: Vec<Signal> = Vec::with_capacity(Signal::ALL.len());
        for s in &c.signals {
            if signals.contains(s) {
                return Err(invalid("signals", format!("{} is named twice", s.as_str())));
            }
            signals.push(*s);
        }
        Ok(AnomalyPolicy {
            window_us,
            alpha: c.alpha,
            sigma: c.sigma,
            warmup: c.warmup,
            min_requests: c.min_requests,
            min_std_fraction: c.min_std_fraction,
            max_tenants: c.max_tenants,
            action: c.action,
            block_for_us,
            signals,
        })
    }

    /// The window length in seconds (rounded up).
    pub fn window_secs(&self) -> u64 {
        self.window_us.div_ceil(MICROS)
    }

    pub fn action(&self) -> AnomalyAction {
        self.action
    }
}

/// `"10s"`, `"1m"`, `"250ms"`, `"1h"` to microseconds.
fn parse_span_us(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like \"10s\" or \"1m\""))?;
    let scale = match unit {
        "ms" => 1_000,
        "s" => MICROS,
        "m" => 60 * MICROS,
        "h" => 3600 * MICROS,
        _ => return Err(format!("{s:?}: the unit must be ms, s, m or h")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Whether a response status counts towards the `errors` signal.
pub fn is_error_status(status: u16) -> bool {
    status >= 400
}

/// What one call adds to the tenant's current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation {
    pub requests: u64,
    pub tokens: u64,
    pub cost_micros: u64,
    /// Requests with an injection finding.
    pub injection: u64,
    pub responses: u64,
    /// Responses with an error status ([`is_error_status`]).
    pub errors: u64,
}

impl Observation {
    fn add(&mut self, o: &Observation) {
        self.requests = self.requests.saturating_add(o.requests);
        self.tokens = self.tokens.saturating_add(o.tokens);
        self.cost_micros = self.cost_micros.saturating_add(o.cost_micros);
        self.injection = self.injection.saturating_add(o.injection);
        self.responses = self.responses.saturating_add(o.responses);
        self.errors = self.errors.saturating_add(o.errors);
    }
}

/// One anomalous signal: its value in the current window and the threshold it passed.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalAlarm {
    pub signal: Signal,
    pub value: f64,
    pub threshold: f64,
}

/// The decision on a checked observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub action: AnomalyAction,
    /// The anomalous signals (at most one per signal); empty for a request
    /// refused by the block of an earlier anomaly.
    pub signals: Vec<SignalAlarm>,
    /// Seconds until the tenant may try again: the end of the window (flag,
    /// throttle) or of the block (at least 1).
    pub retry_after_secs: u64,
}

impl Verdict {
    /// Whether the request is to be refused (throttle and block).
    pub fn refuses(&self) -> bool {
        self.action != AnomalyAction::Flag
    }
}

/// The outcome of [`observe`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnomalyResult {
    /// An anomaly (or a block in force), when the call asked for a check.
    pub verdict: Option<Verdict>,
    /// The tenant is not tracked: its name is empty or too long, or
    /// `maxTenants` are tracked already.
    pub untracked: bool,
    /// Other VMs kept writing the tenant's state: the observation was dropped
    /// after [`CAS_ATTEMPTS`] attempts (the verdict is that of the last one).
    pub contention: bool,
    /// The host refused a write: the observation was dropped.
    pub write_failed: bool,
    /// The stored state did not decode and started over.
    pub reset: bool,
}

/// Add `obs` to the tenant's current window (rolling the windows up to
/// `now_micros`) and, when `check`, judge the window's signals.
pub fn observe(
    policy: &AnomalyPolicy,
    store: &mut dyn SharedData,
    tenant: &str,
    now_micros: u64,
    obs: &Observation,
    check: bool,
) -> AnomalyResult {
    let mut result = AnomalyResult::default();
    if tenant.is_empty() || tenant.len() > MAX_TENANT_LEN {
        result.untracked = true;
        return result;
    }
    let key = format!("{KEY_PREFIX}{tenant}");
    for _ in 0..CAS_ATTEMPTS {
        let (mut state, cas, creating) = match store.shared_get(&key) {
            Some((bytes, cas)) => {
                let decoded = State::decode(&bytes, policy.window_us, now_micros);
                result.reset = decoded.is_none();
                let state = decoded.unwrap_or_else(|| State::new(policy.window_us, now_micros));
                (state, cas, false)
            }
            None => {
                if tracked_tenants(store) >= policy.max_tenants {
                    result.untracked = true;
                    return result;
                }
                (State::new(policy.window_us, now_micros), CREATE_CAS, true)
            }
        };
        state.advance(policy, now_micros);
        state.bucket.add(obs);
        result.verdict = if check {
            state.judge(policy, now_micros)
        } else {
            None
        };
        match store.shared_set(&key, &state.encode(), cas) {
            Ok(()) => {
                if creating {
                    count_tenant(store);
                }
                return result;
            }
            Err(SharedSetError::CasMismatch) => continue,
            Err(SharedSetError::Failed) => {
                result.write_failed = true;
                return result;
            }
        }
    }
    result.contention = true;
    result
}

/// The CAS token a key believed missing is written with. The host takes any
/// token for a key that does not exist and refuses a nonzero one that is not
/// the key's, so if another VM created the key in between, the write fails
/// with a mismatch (and is retried on the other's value) instead of
/// overwriting it. Tokens are handed out in sequence from 1: a live key holds
/// this one only after 4 billion writes, and then the race is merely lost.
const CREATE_CAS: u32 = u32::MAX;

/// Count a tenant whose key this VM created. Bounded retries; if other VMs
/// keep writing the registry the tenant goes uncounted (the tally errs low by
/// one, the cap by one tenant).
fn count_tenant(store: &mut dyn SharedData) {
    for _ in 0..CAS_ATTEMPTS {
        let (count, cas) = match store.shared_get(REGISTRY_KEY) {
            // An unreadable registry starts over from zero.
            Some((bytes, cas)) => (decode_registry(&bytes).unwrap_or(0), cas),
            None => (0, CREATE_CAS),
        };
        let next = encode_registry(count.saturating_add(1));
        match store.shared_set(REGISTRY_KEY, &next, cas) {
            Err(SharedSetError::CasMismatch) => continue,
            Ok(()) | Err(SharedSetError::Failed) => return,
        }
    }
}

fn encode_registry(count: u32) -> [u8; 5] {
    let c = count.to_le_bytes();
    [REGISTRY_VERSION, c[0], c[1], c[2], c[3]]
}

fn decode_registry(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [REGISTRY_VERSION, a, b, c, d] => Some(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// The number of tenants the registry counts (for tests and diagnostics).
pub fn tracked_tenants(store: &dyn SharedData) -> u32 {
    store
        .shared_get(REGISTRY_KEY)
        .and_then(|(b, _)| decode_registry(&b))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
