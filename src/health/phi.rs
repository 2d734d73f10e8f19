//! The phi-accrual failure detector: the normal tail probability, phi, and
//! the sliding window of inter-arrival times kept per member.
//!
//! phi is `-log10(P_later(t))`, where `t` is the time since the last
//! heartbeat and `P_later(t) = 1 - CDF(t)` is the probability that the next
//! heartbeat comes later than `t`, with the inter-arrival times taken as
//! normally distributed. The tail is computed in the log domain, so phi stays
//! finite and exact for silences far past the point where `P_later`
//! underflows a `f64`.

use std::collections::VecDeque;
use std::f64::consts::{LN_10, PI, SQRT_2};

/// `ln(sqrt(2 * pi))`.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

/// `erf(x)` for `0 <= x`, from the series
/// `erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))`,
/// whose terms are all positive (no cancellation). Used for `x < 3/sqrt(2)`.
fn erf_series(x: f64) -> f64 {
    let mut term = x;
    let mut sum = x;
    let mut n = 0u32;
    while n < 500 {
        n += 1;
        term *= 2.0 * x * x / f64::from(2 * n + 1);
        sum += term;
        if term <= 1e-17 * sum {
            break;
        }
    }
    2.0 / PI.sqrt() * (-x * x).exp() * sum
}

/// The Mills ratio `P(Z > z) / pdf(z)` for `z >= 3`, from its continued
/// fraction `1 / (z + 1/(z + 2/(z + 3/(z + ...))))`, evaluated with the
/// modified Lentz method.
fn mills_ratio(z: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut f = z;
    let mut c = f;
    let mut d = 0.0;
    for j in 1..10_000u32 {
        let a = f64::from(j);
        d = z + a * d;
        if d == 0.0 {
            d = TINY;
        }
        c = z + a / c;
        if c == 0.0 {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    1.0 / f
}

/// `P(Z > z)` for a standard normal `Z` and `z >= 0`, directly (it may
/// underflow to 0 for very large `z`; use [`ln_normal_tail`] there).
fn normal_tail_nonneg(z: f64) -> f64 {
    if z < 3.0 {
        0.5 * (1.0 - erf_series(z / SQRT_2))
    } else {
        (-z * z / 2.0 - LN_SQRT_2PI).exp() * mills_ratio(z)
    }
}

/// `ln P(Z > z)` for a standard normal `Z`, accurate to about 1e-12 relative
/// for every finite `z` (no underflow for large `z`).
pub(crate) fn ln_normal_tail(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z < 0.0 {
        // P(Z > z) = 1 - P(Z > -z)
        (-normal_tail_nonneg(-z)).ln_1p()
    } else if z < 3.0 {
        normal_tail_nonneg(z).ln()
    } else if z.is_infinite() {
        f64::NEG_INFINITY
    } else {
        -z * z / 2.0 - LN_SQRT_2PI + mills_ratio(z).ln()
    }
}

/// phi for a standardized silence `z = (elapsed - mean) / std`:
/// `-log10 P(Z > z)`.
pub(crate) fn phi_of_z(z: f64) -> f64 {
    let phi = -ln_normal_tail(z) / LN_10;
    // -0.0 for z = -inf reads oddly; phi is never negative.
    phi.max(0.0)
}

/// phi of a member silent for `elapsed`, whose heartbeats arrive every
/// `mean` on average with standard deviation `std` (all in the same unit;
/// `std > 0`).
pub(crate) fn phi(elapsed: f64, mean: f64, std: f64) -> f64 {
    phi_of_z((elapsed - mean) / std)
}

/// The `z` at which phi reaches `threshold` (phi grows with `z`), found by
/// bisection. Comparing `z` against it in a sweep is the same test as
/// `phi >= threshold`, without evaluating the tail for every member.
pub(crate) fn z_for_phi(threshold: f64) -> f64 {
    let mut lo = -40.0_f64;
    let mut hi = 1.0_f64;
    while phi_of_z(hi) < threshold && hi < 1e150 {
        hi *= 2.0;
    }
    if phi_of_z(lo) >= threshold {
        return lo;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if phi_of_z(mid) >= threshold {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo <= 1e-12 * hi.abs().max(1.0) {
            break;
        }
    }
    hi
}

/// The sliding window of one member's heartbeat inter-arrival times, in
/// nanoseconds, with exact integer running sums for the mean and the
/// (population) variance.
#[derive(Debug, Default)]
pub(crate) struct PhiWindow {
    samples: VecDeque<u64>,
    sum: u128,
    sum_sq: u128,
    last_arrival: Option<u64>,
}

impl PhiWindow {
    /// Records a heartbeat that arrived at `now` (nanoseconds since the
    /// monitor's base instant). The interval since the previous heartbeat
    /// joins the window, dropping the oldest past `max_samples`. Returns the
    /// window's mean and standard deviation (nanoseconds), or `None` while it
    /// holds no interval.
    pub(crate) fn record(&mut self, now: u64, max_samples: usize) -> Option<(f64, f64)> {
        if let Some(last) = self.last_arrival {
            let interval = now.saturating_sub(last);
            if self.samples.len() >= max_samples
                && let Some(old) = self.samples.pop_front()
            {
                let old = u128::from(old);
                self.sum = self.sum.saturating_sub(old);
                self.sum_sq = self.sum_sq.saturating_sub(old * old);
            }
            self.samples.push_back(interval);
            let i = u128::from(interval);
            self.sum = self.sum.saturating_add(i);
            self.sum_sq = self.sum_sq.saturating_add(i * i);
        }
        self.last_arrival = Some(self.last_arrival.map_or(now, |l| l.max(now)));
        self.stats()
    }

    /// Mean and population standard deviation of the window (nanoseconds).
    pub(crate) fn stats(&self) -> Option<(f64, f64)> {
        let n = self.samples.len() as u128;
        if n == 0 {
            return None;
        }
        let mean = self.sum as f64 / n as f64;
        // n^2 * variance = n * sum_sq - sum^2, exact in integers.
        let scaled = n
            .saturating_mul(self.sum_sq)
            .saturating_sub(self.sum.saturating_mul(self.sum));
        let variance = scaled as f64 / (n as f64 * n as f64);
        Some((mean, variance.sqrt()))
    }

    /// How many intervals the window holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values of `erfc`, from the tables of the error function.
    #[test]
    fn tail_matches_known_erfc_values() {
        let cases = [
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 0.004_677_734_981_047_266),
            (3.0, 2.209_049_699_858_544e-5),
        ];
        for (x, erfc) in cases {
            // P(Z > z) = erfc(z / sqrt 2) / 2
            let tail = ln_normal_tail(x * SQRT_2).exp();
            let expected = erfc / 2.0;
            assert!(
                ((tail - expected) / expected).abs() < 1e-10,
                "x={x}: {tail} vs {expected}"
            );
        }
        assert!((ln_normal_tail(0.0).exp() - 0.5).abs() < 1e-15);
        // symmetric: P(Z > -z) = 1 - P(Z > z)
        for z in [0.1, 1.0, 2.5, 3.5, 7.0] {
            let sum = ln_normal_tail(z).exp() + ln_normal_tail(-z).exp();
            assert!((sum - 1.0).abs() < 1e-14, "z={z}: {sum}");
        }
    }

    #[test]
    fn tail_is_continuous_where_methods_meet() {
        let below = ln_normal_tail(3.0 - 1e-9);
        let at = ln_normal_tail(3.0);
        assert!((below - at).abs() < 1e-7, "{below} vs {at}");
    }

    #[test]
    fn phi_stays_finite_far_in_the_tail() {
        // P(Z > 60) is about 1e-784: it underflows a f64, its logarithm does not.
        let p = phi_of_z(60.0);
        // asymptotically ln Q(z) = -z^2/2 - ln(z sqrt(2 pi)) + ln(1 - 1/z^2 + 3/z^4)
        let z: f64 = 60.0;
        let expected = -(-z * z / 2.0 - (z * (2.0 * PI).sqrt()).ln()
            + (1.0 - 1.0 / (z * z) + 3.0 / z.powi(4)).ln())
            / LN_10;
        assert!((p - expected).abs() < 1e-6, "{p} vs {expected}");
        assert_eq!(phi_of_z(f64::INFINITY), f64::INFINITY);
        assert_eq!(phi_of_z(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn z_for_phi_inverts_phi() {
        for threshold in [0.1, 1.0, 8.0, 16.0, 100.0] {
            let z = z_for_phi(threshold);
            assert!((phi_of_z(z) - threshold).abs() < 1e-6, "{threshold}: {z}");
        }
    }

    #[test]
    fn window_keeps_max_samples_and_exact_stats() {
        let mut w = PhiWindow::default();
        assert_eq!(w.record(0, 3), None);
        // intervals 1, 2, 3, 4 (seconds) with a window of 3: keeps 2, 3, 4
        let mut t = 0;
        for i in 1..=4u64 {
            t += i * 1_000_000_000;
            w.record(t, 3);
        }
        assert_eq!(w.len(), 3);
        let (mean, std) = w.stats().unwrap();
        assert!((mean - 3e9).abs() < 1e-3);
        // population variance of 2, 3, 4 is 2/3
        assert!((std - (2.0f64 / 3.0).sqrt() * 1e9).abs() < 1e-3);
    }
}
