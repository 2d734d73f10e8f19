//! Feature extraction: the bounded per-member signal windows
//! ([`MemberSignals`]) and the fixed feature vector ([`Features`]) the model
//! reads.
//!
//! Every feature compares a member with its own past (its *baseline*), so
//! that one model serves members with heartbeats every 100 ms and every 10 s,
//! latencies of microseconds and of seconds, temperatures and percentages.
//! Every feature is clamped to `-50..=50`, so that one wild value cannot
//! swamp the others.

use std::collections::VecDeque;
use std::f64::consts::{LN_10, SQRT_2};
use std::time::Duration;

use tokio::time::Instant;

use super::PredictionError;

/// Heartbeat arrivals kept per member (63 intervals).
pub(crate) const HEARTBEAT_WINDOW: usize = 64;
/// Intervals of the "recent" heartbeat mean.
const RECENT_INTERVALS: usize = 4;
/// Intervals of the heartbeat slope; older ones form the baseline.
const SLOPE_INTERVALS: usize = 16;
/// Outcomes (success or error, with a latency) kept per member.
pub(crate) const OUTCOME_WINDOW: usize = 256;
/// Outcomes of the recent error rate and p50.
const RECENT_OUTCOMES: usize = 32;
/// Outcomes of the medium error rate and p99; older ones form the baseline.
const MEDIUM_OUTCOMES: usize = 96;
/// Samples kept per gauge.
pub(crate) const GAUGE_WINDOW: usize = 64;
/// Samples of a gauge's recent level.
const RECENT_GAUGE: usize = 8;
/// Samples of a gauge's slope; older ones form the baseline.
const GAUGE_SLOPE: usize = 16;
/// Distinct gauges one member keeps.
pub(crate) const MAX_GAUGES: usize = 16;
/// The largest magnitude of a feature.
const FEATURE_LIMIT: f64 = 50.0;
/// The largest phi reported (phi past 30 says nothing more).
const PHI_LIMIT: f64 = 30.0;

/// How many features the model reads.
pub const FEATURE_COUNT: usize = 11;

/// The names of the features, in the order of [`Features::values`].
///
/// | name | what it measures |
/// |---|---|
/// | `heartbeat_recent_ratio` | `ln` of the mean of the last 4 heartbeat intervals over the baseline interval (the median of the intervals older than the last 16, or of all while fewer are known) |
/// | `heartbeat_slope` | least-squares slope of the last 16 intervals, times 16, over the baseline interval: how much longer the intervals grew across the window |
/// | `silence` | `ln` of the time since the last heartbeat over the baseline interval, floored at 0 |
/// | `phi` | the phi-accrual suspicion level: the last phi fed by the caller, or computed from the intervals (normal model, standard deviation at least a quarter of the mean, as the health monitor assumes before it has measured one), at most 30 |
/// | `error_rate_recent` | errors among the last 32 outcomes |
/// | `error_rate_medium` | errors among the last 96 outcomes |
/// | `error_rate_rise` | `error_rate_medium` minus the error rate of the older outcomes |
/// | `latency_p50_ratio` | `ln` of the p50 latency of the last 32 outcomes over the baseline p50 (of the outcomes older than the last 96, or of all) |
/// | `latency_p99_ratio` | `ln` of the p99 latency of the last 96 outcomes over the baseline p99 |
/// | `gauge_level` | over every gauge, the largest distance of the mean of its last 8 samples from its baseline mean, in baseline standard deviations |
/// | `gauge_slope` | over every gauge, the largest least-squares change across its last 16 samples, in baseline standard deviations |
///
/// # Examples
///
/// ```
/// use steadfast::recovery::prediction::{FEATURE_COUNT, FEATURE_NAMES};
/// assert_eq!(FEATURE_NAMES.len(), FEATURE_COUNT);
/// assert_eq!(FEATURE_NAMES[0], "heartbeat_recent_ratio");
/// ```
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
    "heartbeat_recent_ratio",
    "heartbeat_slope",
    "silence",
    "phi",
    "error_rate_recent",
    "error_rate_medium",
    "error_rate_rise",
    "latency_p50_ratio",
    "latency_p99_ratio",
    "gauge_level",
    "gauge_slope",
];

/// One member's features at one instant, in the order of
/// [`FEATURE_NAMES`]. A signal never fed leaves its features at 0 (no
/// change from the baseline).
///
/// # Examples
///
/// ```
/// use steadfast::recovery::prediction::{Features, FEATURE_COUNT};
///
/// let mut values = [0.0; FEATURE_COUNT];
/// values[4] = 0.5; // error_rate_recent
/// let features = Features::new(values)?;
/// assert_eq!(features.get("error_rate_recent"), Some(0.5));
/// assert_eq!(features.get("no such feature"), None);
/// assert!(Features::new([f64::NAN; FEATURE_COUNT]).is_err());
/// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Features {
    values: [f64; FEATURE_COUNT],
}

impl Features {
    /// Features from their values, in the order of [`FEATURE_NAMES`].
    ///
    /// # Errors
    ///
    /// [`PredictionError::NotFinite`] when a value is NaN or infinite.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{Features, FEATURE_COUNT};
    /// let zero = Features::new([0.0; FEATURE_COUNT])?;
    /// assert_eq!(zero.values(), &[0.0; FEATURE_COUNT]);
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn new(values: [f64; FEATURE_COUNT]) -> Result<Features, PredictionError> {
        for (name, value) in FEATURE_NAMES.iter().zip(values) {
            if !value.is_finite() {
                return Err(PredictionError::NotFinite {
                    what: format!("feature {name}"),
                    value,
                });
            }
        }
        Ok(Features { values })
    }

    /// The values, in the order of [`FEATURE_NAMES`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{Features, FEATURE_COUNT};
    /// let f = Features::new([1.0; FEATURE_COUNT])?;
    /// assert_eq!(f.values().iter().sum::<f64>(), FEATURE_COUNT as f64);
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn values(&self) -> &[f64; FEATURE_COUNT] {
        &self.values
    }

    /// The value of the feature named `name`, if there is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{Features, FEATURE_COUNT};
    /// let f = Features::new([0.0; FEATURE_COUNT])?;
    /// assert_eq!(f.get("phi"), Some(0.0));
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn get(&self, name: &str) -> Option<f64> {
        FEATURE_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.values[i])
    }
}

/// `ln erfc(x)` for `x >= 0`, from the Chebyshev fit of Numerical Recipes
/// (fractional error below 1.2e-7), kept in the log domain so that it does
/// not underflow.
fn ln_erfc_nonneg(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() - x * x + poly
}

/// phi of a standardized silence `z`: `-log10 P(Z > z)`, at most
/// [`PHI_LIMIT`].
pub(crate) fn phi_of_z(z: f64) -> f64 {
    let x = z / SQRT_2;
    // P(Z > z) = erfc(z / sqrt 2) / 2
    let ln_tail = if x >= 0.0 {
        ln_erfc_nonneg(x) - std::f64::consts::LN_2
    } else {
        (1.0 - 0.5 * ln_erfc_nonneg(-x).exp()).ln()
    };
    (-ln_tail / LN_10).clamp(0.0, PHI_LIMIT)
}

/// A ring buffer of at most `capacity` items.
#[derive(Debug, Clone)]
struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> Ring<T> {
    fn new(capacity: usize) -> Self {
        Ring {
            items: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    fn push(&mut self, item: T) {
        if self.items.len() >= self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }
}

/// One outcome: whether it failed, and its latency in seconds.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    error: bool,
    latency: f64,
}

/// One named gauge's last samples.
#[derive(Debug, Clone)]
struct Gauge {
    name: String,
    samples: Ring<f64>,
}

/// Everything the predictor keeps about one member, bounded: the last
/// [`HEARTBEAT_WINDOW`] heartbeat arrivals, the last [`OUTCOME_WINDOW`]
/// outcomes, the last [`GAUGE_WINDOW`] samples of each of at most
/// [`MAX_GAUGES`] gauges, and the last phi fed.
#[derive(Debug, Clone)]
pub(crate) struct MemberSignals {
    arrivals: Ring<Instant>,
    outcomes: Ring<Outcome>,
    gauges: Vec<Gauge>,
    phi: Option<f64>,
    /// The latest instant any signal was observed at.
    pub(crate) last_seen: Option<Instant>,
}

impl Default for MemberSignals {
    fn default() -> Self {
        MemberSignals {
            arrivals: Ring::new(HEARTBEAT_WINDOW),
            outcomes: Ring::new(OUTCOME_WINDOW),
            gauges: Vec::new(),
            phi: None,
            last_seen: None,
        }
    }
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn std_dev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / values.len() as f64).sqrt()
}

/// The `q`-quantile (nearest rank) of `values`, sorted in place.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The least-squares slope of `values` against their index.
fn slope(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let x_mean = (n - 1) as f64 / 2.0;
    let y_mean = mean(values);
    let mut num = 0.0;
    let mut den = 0.0;
    for (i, y) in values.iter().enumerate() {
        let dx = i as f64 - x_mean;
        num += dx * (y - y_mean);
        den += dx * dx;
    }
    num / den
}

/// `ln(a / b)`, 0 when either is not positive.
fn ln_ratio(a: f64, b: f64) -> f64 {
    if a > 0.0 && b > 0.0 {
        (a / b).ln()
    } else {
        0.0
    }
}

/// Splits `values` into (older, last `recent`); while fewer than
/// `min_older` older values exist, the baseline is all of them.
fn baseline_split(values: &[f64], recent: usize, min_older: usize) -> &[f64] {
    let older = values.len().saturating_sub(recent);
    if older >= min_older {
        &values[..older]
    } else {
        values
    }
}

impl MemberSignals {
    fn touch(&mut self, at: Instant) {
        self.last_seen = Some(self.last_seen.map_or(at, |l| l.max(at)));
    }

    /// Records a heartbeat arrival; one earlier than the last is taken as
    /// arriving with it.
    pub(crate) fn heartbeat(&mut self, at: Instant) {
        let at = self.arrivals.items.back().map_or(at, |last| at.max(*last));
        self.arrivals.push(at);
        self.touch(at);
    }

    /// Records one operation's outcome.
    pub(crate) fn outcome(&mut self, ok: bool, latency: Duration, at: Instant) {
        self.outcomes.push(Outcome {
            error: !ok,
            latency: latency.as_secs_f64(),
        });
        self.touch(at);
    }

    /// Records the caller's phi.
    pub(crate) fn phi(&mut self, phi: f64, at: Instant) {
        self.phi = Some(phi);
        self.touch(at);
    }

    /// Whether a gauge named `name` is kept, or there is room for it.
    pub(crate) fn has_room_for(&self, name: &str) -> bool {
        self.gauges.len() < MAX_GAUGES || self.gauges.iter().any(|g| g.name == name)
    }

    /// Records a gauge sample (the caller checked [`has_room_for`](Self::has_room_for)).
    pub(crate) fn gauge(&mut self, name: &str, value: f64, at: Instant) {
        match self.gauges.iter_mut().find(|g| g.name == name) {
            Some(gauge) => gauge.samples.push(value),
            None => {
                let mut samples = Ring::new(GAUGE_WINDOW);
                samples.push(value);
                self.gauges.push(Gauge {
                    name: name.to_owned(),
                    samples,
                });
            }
        }
        self.touch(at);
    }

    /// The features at `now`.
    pub(crate) fn features(&self, now: Instant) -> Features {
        let mut v = [0.0; FEATURE_COUNT];
        self.heartbeat_features(now, &mut v);
        self.outcome_features(&mut v);
        self.gauge_features(&mut v);
        for value in &mut v {
            *value = if value.is_finite() {
                value.clamp(-FEATURE_LIMIT, FEATURE_LIMIT)
            } else {
                0.0
            };
        }
        Features { values: v }
    }

    fn heartbeat_features(&self, now: Instant, v: &mut [f64; FEATURE_COUNT]) {
        let arrivals = &self.arrivals.items;
        let intervals: Vec<f64> = arrivals
            .iter()
            .zip(arrivals.iter().skip(1))
            .map(|(a, b)| b.duration_since(*a).as_secs_f64())
            .collect();
        if let Some(phi) = self.phi {
            v[3] = phi.min(PHI_LIMIT);
        }
        if intervals.is_empty() {
            return;
        }
        let mut base: Vec<f64> = baseline_split(&intervals, SLOPE_INTERVALS, 4).to_vec();
        let baseline = quantile(&mut base, 0.5);
        if baseline <= 0.0 {
            return;
        }
        let recent = &intervals[intervals.len().saturating_sub(RECENT_INTERVALS)..];
        v[0] = ln_ratio(mean(recent), baseline);
        let window = &intervals[intervals.len().saturating_sub(SLOPE_INTERVALS)..];
        v[1] = slope(window) * window.len() as f64 / baseline;
        let silence = arrivals.back().map_or(0.0, |last| {
            now.saturating_duration_since(*last).as_secs_f64()
        });
        v[2] = ln_ratio(silence, baseline).max(0.0);
        if self.phi.is_none() {
            let m = mean(&intervals);
            let sd = std_dev(&intervals).max(0.25 * m);
            if sd > 0.0 {
                v[3] = phi_of_z((silence - m) / sd);
            }
        }
    }

    fn outcome_features(&self, v: &mut [f64; FEATURE_COUNT]) {
        let outcomes: Vec<Outcome> = self.outcomes.items.iter().copied().collect();
        if outcomes.is_empty() {
            return;
        }
        let rate = |o: &[Outcome]| {
            if o.is_empty() {
                0.0
            } else {
                o.iter().filter(|o| o.error).count() as f64 / o.len() as f64
            }
        };
        let latencies = |o: &[Outcome]| o.iter().map(|o| o.latency).collect::<Vec<f64>>();
        let n = outcomes.len();
        let recent = &outcomes[n.saturating_sub(RECENT_OUTCOMES)..];
        let medium = &outcomes[n.saturating_sub(MEDIUM_OUTCOMES)..];
        let older = &outcomes[..n.saturating_sub(MEDIUM_OUTCOMES)];
        v[4] = rate(recent);
        v[5] = rate(medium);
        v[6] = if older.is_empty() {
            0.0
        } else {
            rate(medium) - rate(older)
        };
        let base = if older.len() >= RECENT_OUTCOMES {
            older
        } else {
            &outcomes[..]
        };
        let mut base = latencies(base);
        let base_p50 = quantile(&mut base, 0.5);
        // sorted already: the second quantile reads it as it is
        let base_p99 = quantile(&mut base, 0.99);
        v[7] = ln_ratio(quantile(&mut latencies(recent), 0.5), base_p50);
        v[8] = ln_ratio(quantile(&mut latencies(medium), 0.99), base_p99);
    }

    fn gauge_features(&self, v: &mut [f64; FEATURE_COUNT]) {
        for gauge in &self.gauges {
            let samples: Vec<f64> = gauge.samples.items.iter().copied().collect();
            if samples.len() < 2 {
                continue;
            }
            let base = baseline_split(&samples, GAUGE_SLOPE, 8);
            let base_mean = mean(base);
            let scale = std_dev(base).max(1e-6 + 0.01 * base_mean.abs());
            let recent = &samples[samples.len().saturating_sub(RECENT_GAUGE)..];
            let level = (mean(recent) - base_mean).abs() / scale;
            let window = &samples[samples.len().saturating_sub(GAUGE_SLOPE)..];
            let change = (slope(window) * window.len() as f64).abs() / scale;
            v[9] = v[9].max(level);
            v[10] = v[10].max(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_matches_the_normal_tail() {
        // P(Z > 0) = 0.5: phi = log10 2
        assert!((phi_of_z(0.0) - 2f64.log10()).abs() < 1e-6);
        // P(Z > 3) = 1.3499e-3
        assert!((phi_of_z(3.0) - (-(1.349_898e-3f64).log10())).abs() < 1e-5);
        assert!(phi_of_z(-5.0) < 1e-6);
        assert_eq!(phi_of_z(100.0), PHI_LIMIT);
    }

    #[test]
    fn steady_heartbeats_have_neutral_features() {
        let start = Instant::now();
        let mut s = MemberSignals::default();
        for i in 0..100u64 {
            s.heartbeat(start + Duration::from_secs(i));
        }
        let f = s.features(start + Duration::from_millis(99_500));
        assert!(f.values[0].abs() < 1e-9);
        assert!(f.values[1].abs() < 1e-9);
        assert_eq!(f.values[2], 0.0);
        assert!(f.values[3] < 1.0);
        assert_eq!(s.arrivals.items.len(), HEARTBEAT_WINDOW);
    }

    #[test]
    fn slowing_heartbeats_raise_ratio_slope_and_silence() {
        let start = Instant::now();
        let mut s = MemberSignals::default();
        let mut t = 0.0;
        for i in 0..60 {
            t += if i < 40 {
                1.0
            } else {
                1.0 + 0.15 * f64::from(i - 40)
            };
            s.heartbeat(start + Duration::from_secs_f64(t));
        }
        let f = s.features(start + Duration::from_secs_f64(t + 5.0));
        assert!(f.values[0] > 1.0, "{f:?}");
        assert!(f.values[1] > 1.0, "{f:?}");
        assert!(f.values[2] > 1.0, "{f:?}");
        assert!(f.values[3] > 3.0, "{f:?}");
    }

    #[test]
    fn gauges_drift_in_baseline_deviations() {
        let start = Instant::now();
        let mut s = MemberSignals::default();
        for i in 0..40 {
            let value = if i < 30 {
                60.0 + if i % 2 == 0 { 1.0 } else { -1.0 }
            } else {
                60.0 + 2.0 * f64::from(i - 29)
            };
            s.gauge("t", value, start);
        }
        let f = s.features(start);
        assert!(f.values[9] > 5.0, "{f:?}");
        assert!(f.values[10] > 5.0, "{f:?}");
    }
}
