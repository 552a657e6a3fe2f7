//! A tenant's state and its binary record in shared data.
//!
//! Layout, version 1, little-endian, [`STATE_LEN`] = 200 bytes:
//!
//! | offset | type | field |
//! |---|---|---|
//! | 0 | u8 | version (1) |
//! | 1 | u8 | flags: bit 0, the current window is partial (dropped when it closes) |
//! | 2 | 6 bytes | reserved, 0 |
//! | 8 | u64 | window length, µs (another length: the record starts over) |
//! | 16 | u64 | start of the current window, µs (a multiple of the length) |
//! | 24 | u64 | blocked until, µs (0: not blocked) |
//! | 32 | 6 × u64 | current window: requests, tokens, cost (µUSD), injection, responses, errors |
//! | 80 | 5 × (f64, f64, u32) | mean, variance, folds: requests, tokens, cost, injection, errors |
//! | 180 | u32 | windows with requests folded into the request sizes |
//! | 184 | f64 | tokens per request |
//! | 192 | f64 | cost per request, µUSD |

use super::{AnomalyAction, AnomalyPolicy, Observation, Signal, SignalAlarm, Verdict, MICROS};

/// Length of a tenant's record.
pub const STATE_LEN: usize = 200;
const VERSION: u8 = 1;
const PARTIAL: u8 = 1;
/// The variance moves at this fraction of the mean's pace: a spread learnt
/// over some 40 windows (alpha 0.1) is steady enough that a calm stretch
/// does not make ordinary noise look like `sigma` spreads.
const VARIANCE_PACE: f64 = 0.25;
/// A closing window's value folds clipped to this many spreads above the
/// mean (Huber): noise is almost never clipped, a flood teaches the baseline
/// at most 2 spreads a window.
const CLIP_SPREADS: f64 = 2.0;

/// The weights of fold `i` (from 1) on the mean and on the variance.
fn weights(i: u32, alpha: f64) -> (f64, f64) {
    let average = 1.0 / f64::from(i.max(1));
    if average >= alpha {
        (average, average)
    } else {
        (alpha, alpha * VARIANCE_PACE)
    }
}

/// The learnt spread is taken at its upper confidence bound: a spread
/// learnt from few windows is uncertain, and taking it too small is what
/// makes false alarms. `1 + sqrt(2 / (k - 1))` (about 2 standard errors of a
/// standard deviation from `k` samples), `k` the windows it rests on: those
/// folded, at most the `2 / b - 1` the moving variance remembers.
fn confidence(n: u32, alpha: f64) -> f64 {
    let remembered = 2.0 / (alpha * VARIANCE_PACE) - 1.0;
    let k = f64::from(n).min(remembered).max(2.0);
    1.0 + (2.0 / (k - 1.0)).sqrt()
}

/// How many folds average (the last `i` with `1/i >= alpha`).
fn averaging_folds(alpha: f64) -> u64 {
    let mut n = (1.0 / alpha).floor() as u64;
    // Agree with `weights` to the last bit.
    while n > 0 && weights(n.min(u64::from(u32::MAX)) as u32, alpha).0 < alpha {
        n -= 1;
    }
    n
}

/// The moving mean and variance of one signal.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Stat {
    pub mean: f64,
    pub var: f64,
    /// Windows folded (saturating).
    pub n: u32,
}

impl Stat {
    /// Fold one window's value: the plain running mean and variance for the
    /// first `1/alpha` windows; after them the mean moves by `alpha`, the
    /// variance by [`VARIANCE_PACE`]` * alpha`.
    pub fn fold(&mut self, x: f64, alpha: f64) {
        self.n = self.n.saturating_add(1);
        let (a, b) = weights(self.n, alpha);
        let d = x - self.mean;
        self.mean += a * d;
        self.var = (1.0 - b) * (self.var + b * d * d);
    }

    /// Fold `k` windows of zero in closed form (what `k` calls of `fold(0.0)` give).
    pub fn fold_zeros(&mut self, k: u64, alpha: f64) {
        if k == 0 {
            return;
        }
        // The averaging folds: merge j zeros into the plain mean and variance.
        let n = u64::from(self.n);
        let j = k.min(averaging_folds(alpha).saturating_sub(n));
        if j > 0 {
            let (n0, nj) = (n as f64, (n + j) as f64);
            let m2 = n0 * self.var + self.mean * self.mean * n0 * j as f64 / nj;
            self.mean *= n0 / nj;
            self.var = m2 / nj;
        }
        // The moving ones: with A = 1 - a, B = 1 - b, each zero takes m to
        // A m and v to B (v + b m^2), so after k of them m is A^k m and v is
        // B^k v + b m^2 B (B^k - A^2k) / (B - A^2).
        let rest = k - j;
        if rest > 0 {
            let (a, b) = (alpha, alpha * VARIANCE_PACE);
            let kf = rest as f64;
            let (ln_a, ln_b) = ((-a).ln_1p(), (-b).ln_1p());
            let bk = (kf * ln_b).exp();
            let a2k = (2.0 * kf * ln_a).exp();
            let e = kf * (ln_b - 2.0 * ln_a);
            // B^k - A^2k, without cancellation when they are close.
            let diff = if e < 1.0 { a2k * e.exp_m1() } else { bk - a2k };
            let gap = 2.0 * a - a * a - b; // B - A^2, above 0 as b < a
            self.var = bk * self.var + b * self.mean * self.mean * (1.0 - b) * diff / gap;
            self.mean *= (kf * ln_a).exp();
        }
        self.n = self.n.saturating_add(u32::try_from(k).unwrap_or(u32::MAX));
    }

    fn valid(&self, max_mean: f64) -> bool {
        self.mean.is_finite()
            && self.var.is_finite()
            && self.mean >= 0.0
            && self.mean <= max_mean
            && self.var >= 0.0
    }
}

/// A tenant's windows and baseline.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct State {
    pub flags: u8,
    pub window_us: u64,
    pub bucket_start_us: u64,
    pub blocked_until_us: u64,
    pub bucket: Observation,
    pub requests: Stat,
    pub tokens: Stat,
    pub cost: Stat,
    pub injection: Stat,
    pub errors: Stat,
    pub unit_n: u32,
    pub tokens_per_request: f64,
    pub cost_per_request: f64,
}

impl State {
    /// A tenant first seen at `now`: its window began before it did, so it is partial.
    pub fn new(window_us: u64, now: u64) -> State {
        let w = window_us.max(1);
        let start = now - now % w;
        State {
            flags: if start == now { 0 } else { PARTIAL },
            window_us: w,
            bucket_start_us: start,
            blocked_until_us: 0,
            bucket: Observation::default(),
            requests: Stat::default(),
            tokens: Stat::default(),
            cost: Stat::default(),
            injection: Stat::default(),
            errors: Stat::default(),
            unit_n: 0,
            tokens_per_request: 0.0,
            cost_per_request: 0.0,
        }
    }

    fn stat(&self, s: Signal) -> &Stat {
        match s {
            Signal::Requests => &self.requests,
            Signal::Tokens => &self.tokens,
            Signal::Cost => &self.cost,
            Signal::Injection => &self.injection,
            Signal::Errors => &self.errors,
        }
    }

    /// The current window's value of `s` and, for the rates, their denominator.
    fn current(&self, s: Signal) -> (f64, u64) {
        let b = &self.bucket;
        match s {
            Signal::Requests => (b.requests as f64, b.requests),
            Signal::Tokens => (b.tokens as f64, b.requests),
            Signal::Cost => (b.cost_micros as f64, b.requests),
            Signal::Injection => (fraction(b.injection, b.requests), b.requests),
            Signal::Errors => (fraction(b.errors, b.responses), b.responses),
        }
    }

    /// The value above which `s` is anomalous in a window whose rate
    /// denominator is `n`; `None` while it warms up (or `n` is too small).
    fn threshold(&self, p: &AnomalyPolicy, s: Signal, n: u64) -> Option<f64> {
        self.limit(p, s, n, p.sigma, p.warmup)
    }

    /// `sigma` spreads above the baseline of `s` (the module doc's
    /// formulas), once `ready` windows have folded into it.
    fn limit(&self, p: &AnomalyPolicy, s: Signal, n: u64, sigma: f64, ready: u32) -> Option<f64> {
        let st = self.stat(s);
        if st.n < ready {
            return None;
        }
        let sd = st.var.sqrt() * confidence(st.n, p.alpha);
        let m = st.mean;
        let floor = p.min_std_fraction * m;
        match s {
            Signal::Requests => Some(m + sigma * sd.max(m.sqrt()).max(floor) + sigma * sigma / 4.0),
            Signal::Tokens | Signal::Cost => {
                if self.unit_n < ready {
                    return None;
                }
                let per_request = match s {
                    Signal::Tokens => self.tokens_per_request,
                    _ => self.cost_per_request,
                };
                let u = per_request.max(1.0);
                let poisson = u * self.requests.mean.sqrt();
                Some(m + sigma * sd.max(poisson).max(floor) + u * sigma * sigma / 4.0)
            }
            Signal::Injection | Signal::Errors => {
                if n < p.min_requests || n == 0 {
                    return None;
                }
                // Judged as a count out of the window's expected total,
                // `big = max(n, mean requests)`: flagged requests only grow
                // within the window, so until `n` passes the usual total the
                // count has one fixed threshold, and checking every request
                // adds no false alarms (the fraction of a small `n` would be
                // looked at anew by every request).
                let nf = n as f64;
                let big = nf.max(self.requests.mean);
                let pm = m.min(1.0);
                let binomial = (pm * (1.0 - pm) / big).sqrt();
                let at_big = pm + sigma * sd.max(binomial).max(floor) + sigma * sigma / (4.0 * big);
                Some(at_big * big / nf)
            }
        }
    }

    /// Close the windows up to the one holding `now`.
    pub fn advance(&mut self, p: &AnomalyPolicy, now: u64) {
        let w = self.window_us.max(1);
        let start = now - now % w;
        // The same window, or another VM's clock a little ahead of this one's.
        if start <= self.bucket_start_us {
            return;
        }
        let windows = (start - self.bucket_start_us) / w;
        self.close(p);
        self.requests.fold_zeros(windows - 1, p.alpha);
        self.tokens.fold_zeros(windows - 1, p.alpha);
        self.cost.fold_zeros(windows - 1, p.alpha);
        self.bucket = Observation::default();
        self.bucket_start_us = start;
        self.flags &= !PARTIAL;
    }

    /// Fold the current window into the baseline, each value clipped to
    /// [`CLIP_SPREADS`] above it from the second window on, warm-up
    /// included (a flood does not become the norm at once, nor a tenant's
    /// first windows a baseline that hides the next flood).
    fn close(&mut self, p: &AnomalyPolicy) {
        if self.flags & PARTIAL != 0 {
            return;
        }
        let spreads = CLIP_SPREADS.min(p.sigma);
        let clipped = |s: Signal| {
            let (v, n) = self.current(s);
            match self.limit(p, s, n, spreads, 1) {
                Some(t) => v.min(t),
                None => v,
            }
        };
        let requests = clipped(Signal::Requests);
        let tokens = clipped(Signal::Tokens);
        let cost = clipped(Signal::Cost);
        let injection = clipped(Signal::Injection);
        let errors = clipped(Signal::Errors);
        let b = self.bucket;
        self.requests.fold(requests, p.alpha);
        self.tokens.fold(tokens, p.alpha);
        self.cost.fold(cost, p.alpha);
        if b.requests >= p.min_requests {
            self.injection.fold(injection, p.alpha);
        }
        if b.responses >= p.min_requests {
            self.errors.fold(errors, p.alpha);
        }
        if b.requests > 0 {
            self.unit_n = self.unit_n.saturating_add(1);
            let a = p.alpha.max(1.0 / f64::from(self.unit_n));
            let r = b.requests as f64;
            self.tokens_per_request += a * (tokens / r - self.tokens_per_request);
            self.cost_per_request += a * (cost / r - self.cost_per_request);
        }
    }

    /// The verdict on the current window (and the block in force).
    pub fn judge(&mut self, p: &AnomalyPolicy, now: u64) -> Option<Verdict> {
        let mut alarms = Vec::with_capacity(p.signals.len());
        for &s in &p.signals {
            let (value, n) = self.current(s);
            if let Some(threshold) = self.threshold(p, s, n) {
                if value > threshold {
                    alarms.push(SignalAlarm {
                        signal: s,
                        value,
                        threshold,
                    });
                }
            }
        }
        match p.action {
            AnomalyAction::Flag | AnomalyAction::Throttle => {
                if alarms.is_empty() {
                    return None;
                }
                let end = self.bucket_start_us.saturating_add(self.window_us);
                Some(Verdict {
                    action: p.action,
                    signals: alarms,
                    retry_after_secs: secs_until(now, end),
                })
            }
            AnomalyAction::Block => {
                if !alarms.is_empty() {
                    let until = now.saturating_add(p.block_for_us);
                    self.blocked_until_us = self.blocked_until_us.max(until);
                }
                if now >= self.blocked_until_us {
                    return None;
                }
                Some(Verdict {
                    action: AnomalyAction::Block,
                    signals: alarms,
                    retry_after_secs: secs_until(now, self.blocked_until_us),
                })
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATE_LEN);
        out.push(VERSION);
        out.push(self.flags);
        out.extend_from_slice(&[0; 6]);
        for v in [self.window_us, self.bucket_start_us, self.blocked_until_us] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let b = &self.bucket;
        for v in [
            b.requests,
            b.tokens,
            b.cost_micros,
            b.injection,
            b.responses,
            b.errors,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for s in Signal::ALL {
            let st = self.stat(s);
            out.extend_from_slice(&st.mean.to_le_bytes());
            out.extend_from_slice(&st.var.to_le_bytes());
            out.extend_from_slice(&st.n.to_le_bytes());
        }
        out.extend_from_slice(&self.unit_n.to_le_bytes());
        out.extend_from_slice(&self.tokens_per_request.to_le_bytes());
        out.extend_from_slice(&self.cost_per_request.to_le_bytes());
        out
    }

    /// The state in `bytes`, if it is a well-formed record for this window
    /// length whose current window does not start after the next one.
    pub fn decode(bytes: &[u8], window_us: u64, now: u64) -> Option<State> {
        if bytes.len() != STATE_LEN {
            return None;
        }
        let mut r = Reader { bytes, at: 0 };
        if r.u8()? != VERSION {
            return None;
        }
        let flags = r.u8()?;
        r.skip(6)?;
        let window = r.u64()?;
        let bucket_start_us = r.u64()?;
        let blocked_until_us = r.u64()?;
        if window != window_us
            || window == 0
            || bucket_start_us % window != 0
            || bucket_start_us > now.saturating_add(window)
        {
            return None;
        }
        let bucket = Observation {
            requests: r.u64()?,
            tokens: r.u64()?,
            cost_micros: r.u64()?,
            injection: r.u64()?,
            responses: r.u64()?,
            errors: r.u64()?,
        };
        let mut stat = |max_mean: f64| -> Option<Stat> {
            let st = Stat {
                mean: r.f64()?,
                var: r.f64()?,
                n: r.u32()?,
            };
            st.valid(max_mean).then_some(st)
        };
        let requests = stat(f64::MAX)?;
        let tokens = stat(f64::MAX)?;
        let cost = stat(f64::MAX)?;
        let injection = stat(1.0)?;
        let errors = stat(1.0)?;
        let unit_n = r.u32()?;
        let tokens_per_request = r.f64()?;
        let cost_per_request = r.f64()?;
        let size_ok = |v: f64| v.is_finite() && v >= 0.0;
        if !size_ok(tokens_per_request) || !size_ok(cost_per_request) {
            return None;
        }
        Some(State {
            flags: flags & PARTIAL,
            window_us: window,
            bucket_start_us,
            blocked_until_us,
            bucket,
            requests,
            tokens,
            cost,
            injection,
            errors,
            unit_n,
            tokens_per_request,
            cost_per_request,
        })
    }
}

/// `k / n` (at most 1; 0 when `n` is 0).
fn fraction(k: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        k.min(n) as f64 / n as f64
    }
}

/// Whole seconds from `now` to `end`, rounded up, at least 1.
fn secs_until(now: u64, end: u64) -> u64 {
    end.saturating_sub(now).div_ceil(MICROS).max(1)
}

/// Reads little-endian fields off a byte slice, `None` past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.at.checked_add(N)?;
        let out = self.bytes.get(self.at..end)?.try_into().ok()?;
        self.at = end;
        Some(out)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.at.checked_add(n)?;
        self.bytes.get(self.at..end)?;
        self.at = end;
        Some(())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    fn f64(&mut self) -> Option<f64> {
        self.take().map(f64::from_le_bytes)
    }
}
