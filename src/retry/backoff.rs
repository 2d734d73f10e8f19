//! The delay sequence between attempts: [`Backoff`] and [`Jitter`].

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// How a computed delay is randomised, so that many clients that failed
/// together do not retry together.
///
/// With `base` the exponential delay of an attempt (capped at `max_delay`):
///
/// | kind | delay |
/// |---|---|
/// | `None` | `base` |
/// | `Full` | uniform in `[0, base]` |
/// | `Equal` | `base / 2` plus uniform in `[0, base / 2]` |
/// | `Decorrelated` | uniform in `[initial_delay, 3 × previous delay]`, capped at `max_delay` |
///
/// # Examples
///
/// ```
/// use steadfast::retry::{Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::builder().jitter(Jitter::Full).build()?;
/// assert_eq!(policy.jitter(), Jitter::Full);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// No randomness: the exponential delay itself.
    #[default]
    None,
    /// Uniform between zero and the exponential delay.
    Full,
    /// Half the exponential delay, plus uniform up to the other half.
    Equal,
    /// Uniform between the initial delay and three times the previous delay.
    Decorrelated,
}

/// The delays before each retry of a [`RetryPolicy`](super::RetryPolicy), as
/// an iterator.
///
/// It yields one delay per retry, `max_retries` in all, then `None`. The
/// random source is created only when a jittered delay is first needed, so a
/// call that succeeds at once pays nothing for it; [`Backoff::seeded`] gives
/// a reproducible sequence.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::RetryPolicy;
///
/// let policy = RetryPolicy::builder()
///     .max_retries(4)
///     .initial_delay(Duration::from_millis(100))
///     .max_delay(Duration::from_millis(500))
///     .build()?;
/// let delays: Vec<_> = policy.backoff().collect();
/// assert_eq!(delays, [100, 200, 400, 500].map(Duration::from_millis));
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_delay: Duration,
    max_delay: Duration,
    factor: f64,
    jitter: Jitter,
    remaining: u32,
    /// The exponential delay of the next retry, before jitter.
    next_base: Duration,
    /// The previous delay, for decorrelated jitter.
    previous: Duration,
    seed: Option<u64>,
    rng: Option<SmallRng>,
}

impl Backoff {
    pub(crate) fn new(
        initial_delay: Duration,
        max_delay: Duration,
        factor: f64,
        jitter: Jitter,
        retries: u32,
    ) -> Self {
        Backoff {
            initial_delay,
            max_delay,
            factor,
            jitter,
            remaining: retries,
            next_base: initial_delay.min(max_delay),
            previous: initial_delay,
            seed: None,
            rng: None,
        }
    }

    /// The same sequence with a fixed random seed: two backoffs with the same
    /// policy and seed yield the same delays.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{Jitter, RetryPolicy};
    ///
    /// let policy = RetryPolicy::builder().jitter(Jitter::Decorrelated).build()?;
    /// let a: Vec<_> = policy.backoff().seeded(7).collect();
    /// let b: Vec<_> = policy.backoff().seeded(7).collect();
    /// assert_eq!(a, b);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn seeded(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self.rng = None;
        self
    }

    fn rng(&mut self) -> &mut SmallRng {
        let seed = self.seed;
        self.rng.get_or_insert_with(|| match seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_rng(&mut rand::rng()),
        })
    }

    /// Uniform in `[low, high]` (both inclusive).
    fn uniform(&mut self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return low;
        }
        let low_ns = saturating_nanos(low);
        let high_ns = saturating_nanos(high);
        Duration::from_nanos(self.rng().random_range(low_ns..=high_ns))
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let base = self.next_base;
        // The next base: multiplied by the factor, capped. Computed in f64
        // and clamped, so that a long sequence never overflows.
        let grown = base.as_secs_f64() * self.factor;
        self.next_base =
            Duration::try_from_secs_f64(grown).map_or(self.max_delay, |d| d.min(self.max_delay));
        let delay = match self.jitter {
            Jitter::None => base,
            Jitter::Full => self.uniform(Duration::ZERO, base),
            Jitter::Equal => {
                let half = base / 2;
                half + self.uniform(Duration::ZERO, base - half)
            }
            Jitter::Decorrelated => {
                let low = self.initial_delay.min(self.max_delay);
                let high = self.previous.saturating_mul(3).min(self.max_delay);
                let d = self.uniform(low, high.max(low));
                self.previous = d;
                d
            }
        };
        Some(delay)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Backoff {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn exponential_and_capped() {
        let b = Backoff::new(ms(100), ms(1_000), 2.0, Jitter::None, 6);
        assert_eq!(
            b.collect::<Vec<_>>(),
            [100, 200, 400, 800, 1_000, 1_000].map(ms)
        );
    }

    #[test]
    fn factor_one_is_constant() {
        let b = Backoff::new(ms(250), ms(1_000), 1.0, Jitter::None, 3);
        assert_eq!(b.collect::<Vec<_>>(), [250, 250, 250].map(ms));
    }

    #[test]
    fn huge_sequences_do_not_overflow() {
        let b = Backoff::new(
            ms(1),
            Duration::from_secs(86_400),
            10.0,
            Jitter::None,
            10_000,
        );
        assert_eq!(b.last(), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn exact_size() {
        let mut b = Backoff::new(ms(1), ms(2), 2.0, Jitter::Full, 3);
        assert_eq!(b.len(), 3);
        b.next();
        assert_eq!(b.len(), 2);
    }
}
