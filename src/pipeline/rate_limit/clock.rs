//! [`TokioClock`]: governor's [`Clock`] on [`tokio::time`], so that a rate
//! limiter follows paused and advanced time in tests like every other timer
//! of the crate.

use std::time::Duration;

use governor::clock::Clock;
use governor::nanos::Nanos;
use tokio::time::Instant;

/// A [`governor`] clock that reads [`tokio::time::Instant::now`].
///
/// governor's own clocks read the system's monotonic clock, which tokio's
/// paused time (`#[tokio::test(start_paused = true)]`,
/// `tokio::time::advance`) cannot move. This one reads tokio's clock, so
/// a rate limiter built on it refills as tokio's time goes by, paused or
/// not. Its readings are [`Nanos`] since the clock was created (a reading
/// from before that is zero; one past about 584 years stays there).
///
/// The crate's [`RateLimiter`](super::RateLimiter) and
/// [`KeyedRateLimiter`](super::KeyedRateLimiter) run on it; it is public so
/// that a `governor` limiter of your own can run on the same time.
///
/// It does not implement governor's `ReasonablyRealtime` on purpose:
/// governor's waiting methods (`until_ready` and the like) sleep with
/// `futures-timer` on real time, which paused tokio time would not wake.
/// Wait with [`tokio::time::sleep`] instead, as the crate's limiters do.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use governor::{Quota, RateLimiter};
/// use steadfast::pipeline::TokioClock;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let quota = Quota::per_second(NonZeroU32::new(1).unwrap());
/// let limiter = RateLimiter::direct_with_clock(quota, TokioClock::new());
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_err());
///
/// tokio::time::advance(Duration::from_secs(1)).await;
/// assert!(limiter.check().is_ok());
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokioClock {
    /// The tokio instant that reads as zero.
    origin: Instant,
}

impl TokioClock {
    /// A clock that reads zero now, by [`tokio::time::Instant::now`].
    ///
    /// # Examples
    ///
    /// ```
    /// use governor::clock::Clock;
    /// use steadfast::pipeline::TokioClock;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let clock = TokioClock::new();
    /// tokio::time::advance(std::time::Duration::from_millis(5)).await;
    /// assert_eq!(clock.now().as_u64(), 5_000_000);
    /// # }
    /// ```
    pub fn new() -> Self {
        TokioClock {
            origin: Instant::now(),
        }
    }

    /// The tokio instant of a reading of this clock; `None` past what a
    /// tokio instant can hold.
    pub(crate) fn instant_of(&self, reading: Nanos) -> Option<Instant> {
        self.origin
            .checked_add(Duration::from_nanos(reading.as_u64()))
    }
}

impl Default for TokioClock {
    /// The same as [`TokioClock::new`]: a clock that reads zero now.
    ///
    /// # Examples
    ///
    /// ```
    /// use governor::clock::Clock;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let clock = steadfast::pipeline::TokioClock::default();
    /// assert_eq!(clock.now().as_u64(), 0);
    /// # }
    /// ```
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    #[inline]
    fn now(&self) -> Nanos {
        let since = Instant::now().saturating_duration_since(self.origin);
        // A `u64` of nanoseconds holds 584 years.
        Nanos::new(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_time_and_maps_readings_back() {
        let clock = TokioClock::new();
        let start = Instant::now();
        assert_eq!(clock.now(), Nanos::new(0));
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.now(), Nanos::from(Duration::from_millis(1_500)));
        assert_eq!(
            clock.instant_of(Nanos::from(Duration::from_secs(2))),
            Some(start + Duration::from_secs(2))
        );
    }
}
