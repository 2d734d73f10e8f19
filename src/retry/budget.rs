//! A retry budget shared across calls: [`RetryBudget`], so that a failing
//! dependency is not hit with a retry storm, and its configuration,
//! [`RetryBudgetConfig`].
//!
//! A retry policy bounds the retries of one call; it does not bound the
//! retries of a thousand calls that fail at once, each retrying three
//! times: the dependency then sees four times its normal load exactly when
//! it is least able to take it. A budget (the idea of Finagle's
//! `RetryBudget` and tower's `TpsBudget`) bounds the retries of all the
//! calls that share it to a fraction of the calls themselves.
//!
//! The algorithm is described on [`RetryBudget`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::ConfigError;

/// Thousandths of a retry: what a retry withdraws.
const UNIT: i64 = 1_000;
/// The window is kept in this many slots.
const SLOTS: usize = 10;
/// The largest `ratio`: ten retries per call (1000 %).
const MAX_RATIO: f64 = 10.0;

/// Where a retry loop deposits its call and withdraws its retries: a
/// [`RetryBudget`], or [`NoBudget`] (the default of a
/// [`Retry`](crate::retry::Retry)), which allows every retry and compiles
/// away.
///
/// # Examples
///
/// ```
/// use steadfast::retry::{Budget, NoBudget};
///
/// NoBudget.deposit();
/// assert!(NoBudget.try_withdraw());
/// ```
pub trait Budget {
    /// Records a call.
    fn deposit(&self);

    /// Takes one retry from the budget; `false` when it has none left.
    fn try_withdraw(&self) -> bool;
}

/// The [`Budget`] of a retry without one: every retry is allowed, and the
/// calls cost nothing.
///
/// # Examples
///
/// ```
/// use steadfast::retry::{Budget, NoBudget};
/// assert!(NoBudget.try_withdraw());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBudget;

impl Budget for NoBudget {
    #[inline(always)]
    fn deposit(&self) {}

    #[inline(always)]
    fn try_withdraw(&self) -> bool {
        true
    }
}

/// The configuration of a [`RetryBudget`]: the share of calls that may be
/// retried, over which window, and a floor.
///
/// - `ttl`: how long a call's deposit counts (the sliding window);
///   greater than zero.
/// - `min_retries_per_second`: a floor, so that a service with few calls
///   can still retry; the budget always holds this many retries a second
///   of `ttl` besides the deposits.
/// - `ratio`: retries allowed per call, in `0.0..=10.0` (0.1 is 10 %).
///
/// In JSON a configuration reads
/// `{"ttl": "10s", "min_retries_per_second": 10, "ratio": 0.1}`; every field
/// may be left out and takes its default.
///
/// # Default
///
/// - `ttl`: 10 s
/// - `min_retries_per_second`: 10
/// - `ratio`: 0.1 (10 % of the calls)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::RetryBudgetConfig;
///
/// let config = RetryBudgetConfig::builder()
///     .ttl(Duration::from_secs(5))
///     .ratio(0.2)
///     .build()?;
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(json, r#"{"ttl":"5s","min_retries_per_second":10,"ratio":0.2}"#);
/// let back: RetryBudgetConfig = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, config);
///
/// let err = serde_json::from_str::<RetryBudgetConfig>(r#"{"ratio": 11.0}"#).unwrap_err();
/// assert!(err.to_string().contains("ratio"));
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RetryBudgetConfigRepr", into = "RetryBudgetConfigRepr")]
pub struct RetryBudgetConfig {
    ttl: Duration,
    min_retries_per_second: u32,
    ratio: f64,
}

impl Default for RetryBudgetConfig {
    /// The documented defaults (see the `# Default` list on the type).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::RetryBudgetConfig;
    /// assert_eq!(RetryBudgetConfig::default(), RetryBudgetConfig::builder().build()?);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    fn default() -> Self {
        RetryBudgetConfig {
            ttl: Duration::from_secs(10),
            min_retries_per_second: 10,
            ratio: 0.1,
        }
    }
}

impl RetryBudgetConfig {
    /// Checks every rule of the configuration; called by
    /// [`RetryBudgetConfigBuilder::build`] and by deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.ttl.is_zero() {
            return Err(ConfigError::new("ttl", "must be greater than zero"));
        }
        if !(self.ratio.is_finite() && (0.0..=MAX_RATIO).contains(&self.ratio)) {
            return Err(ConfigError::new(
                "ratio",
                format!(
                    "must be a number of retries per call in 0.0..={MAX_RATIO} (0 % to 1000 %), got {}",
                    self.ratio
                ),
            ));
        }
        Ok(())
    }

    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::RetryBudgetConfig;
    /// let config = RetryBudgetConfig::builder().min_retries_per_second(2).build()?;
    /// assert_eq!(config.min_retries_per_second(), 2);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> RetryBudgetConfigBuilder<RetryBudgetConfig> {
        RetryBudgetConfigBuilder::new()
    }

    /// How long a call's deposit counts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::retry::RetryBudgetConfig;
    /// assert_eq!(RetryBudgetConfig::default().ttl(), Duration::from_secs(10));
    /// ```
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The floor: retries a second of `ttl` allowed besides the deposits.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::RetryBudgetConfig;
    /// assert_eq!(RetryBudgetConfig::default().min_retries_per_second(), 10);
    /// ```
    pub fn min_retries_per_second(&self) -> u32 {
        self.min_retries_per_second
    }

    /// Retries allowed per call.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::RetryBudgetConfig;
    /// assert_eq!(RetryBudgetConfig::default().ratio(), 0.1);
    /// ```
    pub fn ratio(&self) -> f64 {
        self.ratio
    }
}

/// The serialized form of a [`RetryBudgetConfig`]: every field is optional
/// and defaults as the builder does.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RetryBudgetConfigRepr {
    #[serde(with = "crate::serde_duration")]
    ttl: Duration,
    min_retries_per_second: u32,
    ratio: f64,
}

impl Default for RetryBudgetConfigRepr {
    fn default() -> Self {
        RetryBudgetConfig::default().into()
    }
}

impl From<RetryBudgetConfig> for RetryBudgetConfigRepr {
    fn from(c: RetryBudgetConfig) -> Self {
        RetryBudgetConfigRepr {
            ttl: c.ttl,
            min_retries_per_second: c.min_retries_per_second,
            ratio: c.ratio,
        }
    }
}

impl TryFrom<RetryBudgetConfigRepr> for RetryBudgetConfig {
    type Error = ConfigError;

    fn try_from(r: RetryBudgetConfigRepr) -> Result<Self, ConfigError> {
        let config = RetryBudgetConfig {
            ttl: r.ttl,
            min_retries_per_second: r.min_retries_per_second,
            ratio: r.ratio,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Builds a [`RetryBudgetConfig`] (from [`RetryBudgetConfig::builder`]) or a
/// [`RetryBudget`] (from [`RetryBudget::builder`]).
///
/// Every setter takes the value as is; [`build`](Self::build) checks them all
/// and returns a [`ConfigError`] naming the first field that is wrong. The
/// type parameter only says what `build` returns.
///
/// # Default
///
/// The builder starts from the defaults listed on [`RetryBudgetConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::RetryBudget;
///
/// let budget = RetryBudget::builder().ratio(0.2).ttl(Duration::from_secs(30)).build()?;
/// assert_eq!(budget.config().ratio(), 0.2);
///
/// let err = RetryBudget::builder().ttl(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err.field(), "ttl");
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[must_use]
pub struct RetryBudgetConfigBuilder<T = RetryBudgetConfig> {
    config: RetryBudgetConfig,
    target: PhantomData<fn() -> T>,
}

impl<T> Clone for RetryBudgetConfigBuilder<T> {
    fn clone(&self) -> Self {
        RetryBudgetConfigBuilder {
            config: self.config.clone(),
            target: PhantomData,
        }
    }
}

impl<T> fmt::Debug for RetryBudgetConfigBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudgetConfigBuilder")
            .field("config", &self.config)
            .finish()
    }
}

impl<T> Default for RetryBudgetConfigBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RetryBudgetConfigBuilder<T> {
    fn new() -> Self {
        RetryBudgetConfigBuilder {
            config: RetryBudgetConfig::default(),
            target: PhantomData,
        }
    }

    /// Starts from an existing configuration instead of the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{RetryBudgetConfig, RetryBudgetConfigBuilder};
    ///
    /// let base = RetryBudgetConfig::builder().ratio(0.5).build()?;
    /// let tweaked = RetryBudgetConfigBuilder::<RetryBudgetConfig>::from_config(&base)
    ///     .min_retries_per_second(1)
    ///     .build()?;
    /// assert_eq!(tweaked.ratio(), 0.5);
    /// assert_eq!(tweaked.min_retries_per_second(), 1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn from_config(config: &RetryBudgetConfig) -> Self {
        RetryBudgetConfigBuilder {
            config: config.clone(),
            target: PhantomData,
        }
    }

    /// How long a call's deposit counts (greater than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::retry::RetryBudgetConfig::builder().ttl(Duration::from_secs(60)).build()?;
    /// assert_eq!(c.ttl(), Duration::from_secs(60));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// Retries a second of `ttl` allowed besides the deposits (0: none).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::retry::RetryBudgetConfig::builder().min_retries_per_second(0).build()?;
    /// assert_eq!(c.min_retries_per_second(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn min_retries_per_second(mut self, retries: u32) -> Self {
        self.config.min_retries_per_second = retries;
        self
    }

    /// Retries allowed per call, in `0.0..=10.0`: 0.1 allows 10 % of the
    /// calls to be retried.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::retry::RetryBudgetConfig::builder().ratio(0.25).build()?;
    /// assert_eq!(c.ratio(), 0.25);
    ///
    /// let err = steadfast::retry::RetryBudgetConfig::builder().ratio(f64::NAN).build().unwrap_err();
    /// assert_eq!(err.field(), "ratio");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.config.ratio = ratio;
        self
    }
}

impl RetryBudgetConfigBuilder<RetryBudgetConfig> {
    /// Checks every value and returns the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field that is wrong: a zero `ttl`, a
    /// `ratio` that is NaN, negative or above 10.0.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::RetryBudgetConfig;
    /// let err = RetryBudgetConfig::builder().ratio(-0.1).build().unwrap_err();
    /// assert_eq!(err.field(), "ratio");
    /// ```
    pub fn build(self) -> Result<RetryBudgetConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl RetryBudgetConfigBuilder<RetryBudget> {
    /// Checks every value and returns a new budget holding its reserve.
    ///
    /// # Errors
    ///
    /// The same [`ConfigError`]s as building a [`RetryBudgetConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let budget = steadfast::retry::RetryBudget::builder().min_retries_per_second(1).build()?;
    /// assert_eq!(budget.available(), 10); // 1 a second over 10 s
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(self) -> Result<RetryBudget, ConfigError> {
        self.config.validate()?;
        Ok(RetryBudget::new(self.config))
    }
}

/// A retry budget shared across calls: retries are limited to `ratio` of
/// the calls made in the last `ttl`, plus a floor of
/// `min_retries_per_second`; see *Algorithm* below.
///
/// Cheap to clone (an `Arc`): every clone is the same budget. Attach it to
/// a retry with [`Retry::budget`](crate::retry::Retry::budget); code that
/// runs its own attempts (a pipeline) calls [`deposit`](Self::deposit) once
/// per call and [`try_withdraw`](Self::try_withdraw) before each retry.
/// Time comes from `tokio::time`, so paused-time tests see the window move.
///
/// # Algorithm
///
/// The budget is a balance counted in thousandths of a retry, kept over a
/// sliding window of `ttl`:
///
/// - every call deposits `ratio × 1000` (a call is one, whatever its
///   retries; [`RetryBudget::deposit`]);
/// - every retry withdraws 1000, and is allowed only while the balance,
///   plus a fixed reserve of `min_retries_per_second × ttl × 1000`, holds
///   at least 1000 ([`RetryBudget::try_withdraw`]).
///
/// Deposits and withdrawals are recorded in one of ten slots, each covering
/// a tenth of `ttl` of `tokio::time`; a slot older than `ttl` is cleared
/// before the next use, so what it held (deposits and withdrawals alike)
/// leaves the balance. Hence, whenever a retry is allowed, the retries in
/// the window (itself included) are at most `ratio` times the calls in the
/// window plus the reserve: with the defaults, 10 % of the calls of the
/// last 10 s plus 10 retries a second. The window moves by tenths of
/// `ttl`, so it covers between 0.9 × `ttl` and `ttl` of history.
///
/// The slots, their sum and the current slot number sit behind one
/// `std::sync::Mutex`, held for a few additions and no allocation or await:
/// the whole state changes together, so one short lock is simpler than a
/// lock-free scheme and not slower at the rate calls start.
///
/// # Examples
///
/// ```
/// use steadfast::retry::{GiveUp, RetryBudget, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// // 10 % of the calls, no floor.
/// let budget = RetryBudget::builder().ratio(0.1).min_retries_per_second(0).build()?;
/// for _ in 0..10 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw()); // one retry for ten calls
/// assert!(!budget.try_withdraw());
///
/// let policy = RetryPolicy::default();
/// let err = policy
///     .retry(|| async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::TimedOut)) })
///     .budget(&budget)
///     .await
///     .unwrap_err();
/// assert_eq!(err.reason(), GiveUp::BudgetExhausted);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Shared>,
}

struct Shared {
    config: RetryBudgetConfig,
    /// What a call deposits, in thousandths of a retry.
    deposit: i64,
    /// What the budget holds besides the deposits, in thousandths.
    reserve: i64,
    /// The time one slot covers, in nanoseconds (at least 1).
    slot_nanos: u128,
    /// Slot numbers count from here.
    base: Instant,
    window: Mutex<Window>,
}

/// The sliding window: slot `tick % SLOTS` is the current one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Window {
    slots: [i64; SLOTS],
    /// The number of the current slot since `base`.
    tick: u64,
    /// The sum of `slots`.
    sum: i64,
}

impl Window {
    /// Moves the window to slot number `now`, clearing every slot that fell
    /// out of it (all of them after a silence of `ttl` or more).
    fn advance(&mut self, now: u64) {
        if now <= self.tick {
            return;
        }
        let steps = (now - self.tick).min(SLOTS as u64);
        for step in 1..=steps {
            let index = ((self.tick + step) % SLOTS as u64) as usize;
            self.sum -= self.slots[index];
            self.slots[index] = 0;
        }
        self.tick = now;
    }

    fn add(&mut self, amount: i64) {
        let index = (self.tick % SLOTS as u64) as usize;
        self.slots[index] = self.slots[index].saturating_add(amount);
        self.sum = self.sum.saturating_add(amount);
    }
}

impl RetryBudget {
    /// A budget with this configuration, holding its reserve.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::{RetryBudget, RetryBudgetConfig};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let budget = RetryBudget::new(RetryBudgetConfig::default());
    /// assert_eq!(budget.available(), 100); // 10 a second over 10 s
    /// # }
    /// ```
    pub fn new(config: RetryBudgetConfig) -> RetryBudget {
        let deposit = (config.ratio * UNIT as f64).round() as i64;
        let reserve =
            (f64::from(config.min_retries_per_second) * config.ttl.as_secs_f64() * UNIT as f64)
                .round() as i64;
        let slot_nanos = (config.ttl.as_nanos() / SLOTS as u128).max(1);
        RetryBudget {
            inner: Arc::new(Shared {
                config,
                deposit,
                reserve,
                slot_nanos,
                base: Instant::now(),
                window: Mutex::new(Window::default()),
            }),
        }
    }

    /// A builder starting from the defaults of [`RetryBudgetConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let budget = steadfast::retry::RetryBudget::builder().ratio(0.2).build()?;
    /// assert_eq!(budget.config().ratio(), 0.2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> RetryBudgetConfigBuilder<RetryBudget> {
        RetryBudgetConfigBuilder::new()
    }

    /// The configuration this budget was made with.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let budget = steadfast::retry::RetryBudget::default();
    /// assert_eq!(budget.config().min_retries_per_second(), 10);
    /// # }
    /// ```
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.inner.config
    }

    /// Records a call: adds `ratio` of a retry to the budget for `ttl`.
    /// Call it once per call, not per attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let budget = steadfast::retry::RetryBudget::builder()
    ///     .ratio(0.5)
    ///     .min_retries_per_second(0)
    ///     .build()?;
    /// budget.deposit();
    /// budget.deposit();
    /// assert_eq!(budget.available(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn deposit(&self) {
        if self.inner.deposit == 0 {
            return;
        }
        let mut window = self.window();
        window.add(self.inner.deposit);
    }

    /// Takes one retry from the budget if it holds one; `false` (and
    /// nothing taken) when the retry would go past the budget.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let budget = steadfast::retry::RetryBudget::builder()
    ///     .ratio(0.0)
    ///     .min_retries_per_second(1)
    ///     .ttl(std::time::Duration::from_secs(2))
    ///     .build()?;
    /// assert!(budget.try_withdraw());
    /// assert!(budget.try_withdraw());
    /// assert!(!budget.try_withdraw());
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_withdraw(&self) -> bool {
        let mut window = self.window();
        if self.inner.reserve.saturating_add(window.sum) < UNIT {
            return false;
        }
        window.add(-UNIT);
        true
    }

    /// How many retries the budget would allow now.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let budget = steadfast::retry::RetryBudget::builder().min_retries_per_second(0).build()?;
    /// assert_eq!(budget.available(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn available(&self) -> u64 {
        let balance = self.inner.reserve.saturating_add(self.window().sum);
        u64::try_from(balance / UNIT).unwrap_or(0)
    }

    /// The window, moved to now.
    fn window(&self) -> MutexGuard<'_, Window> {
        let elapsed = Instant::now().saturating_duration_since(self.inner.base);
        let tick = u64::try_from(elapsed.as_nanos() / self.inner.slot_nanos).unwrap_or(u64::MAX);
        let mut window = self.inner.window.lock().unwrap_or_else(|e| e.into_inner());
        window.advance(tick);
        window
    }
}

impl Default for RetryBudget {
    /// A budget with the default configuration: 10 % of the calls over
    /// 10 s, plus 10 retries a second.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// assert_eq!(steadfast::retry::RetryBudget::default().config().ratio(), 0.1);
    /// # }
    /// ```
    fn default() -> Self {
        RetryBudget::new(RetryBudgetConfig::default())
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("config", &self.inner.config)
            .field("available", &self.available())
            .finish()
    }
}

impl Budget for RetryBudget {
    #[inline]
    fn deposit(&self) {
        RetryBudget::deposit(self);
    }

    #[inline]
    fn try_withdraw(&self) -> bool {
        RetryBudget::try_withdraw(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_clears_the_slots_it_leaves() {
        let mut w = Window::default();
        w.add(5);
        w.advance(3);
        w.add(7);
        assert_eq!(w.sum, 12);
        // slot 0 leaves at tick 10, slot 3 at tick 13
        w.advance(9);
        assert_eq!(w.sum, 12);
        w.advance(10);
        assert_eq!(w.sum, 7);
        assert_eq!(w.slots[0], 0);
        w.add(-2);
        assert_eq!(w.sum, 5);
        w.advance(13);
        assert_eq!(w.sum, -2);
        // a long silence clears everything, once
        w.advance(1_000);
        assert_eq!(
            w,
            Window {
                tick: 1_000,
                ..Window::default()
            }
        );
        // time never goes back
        w.advance(999);
        assert_eq!(w.tick, 1_000);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_expire_after_ttl_and_withdrawals_with_them() {
        let budget = RetryBudget::builder()
            .ratio(0.5)
            .min_retries_per_second(0)
            .ttl(Duration::from_secs(10))
            .build()
            .unwrap();
        for _ in 0..4 {
            budget.deposit();
        }
        assert_eq!(budget.available(), 2);
        assert!(budget.try_withdraw());
        tokio::time::advance(Duration::from_secs(5)).await;
        budget.deposit();
        budget.deposit();
        assert_eq!(budget.available(), 2);
        // the first slot (+2000 - 1000) leaves at 10 s
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(budget.available(), 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(budget.available(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_reserve_is_the_floor_times_ttl() {
        let budget = RetryBudget::builder()
            .ratio(0.0)
            .min_retries_per_second(3)
            .ttl(Duration::from_millis(1_500))
            .build()
            .unwrap();
        assert_eq!(budget.available(), 4); // 4.5 retries, rounded down
        for _ in 0..4 {
            assert!(budget.try_withdraw());
        }
        assert!(!budget.try_withdraw());
        budget.deposit(); // a ratio of 0 deposits nothing
        assert!(!budget.try_withdraw());
        // the withdrawals leave the window with their slot
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(budget.available(), 4);
    }

    #[test]
    fn bad_input_names_the_field() {
        for ratio in [f64::NAN, -0.01, 10.01, f64::INFINITY] {
            let err = RetryBudgetConfig::builder()
                .ratio(ratio)
                .build()
                .unwrap_err();
            assert_eq!(err.field(), "ratio", "{ratio}");
        }
        for ratio in [0.0, 0.1, 1.0, 10.0] {
            assert!(RetryBudgetConfig::builder().ratio(ratio).build().is_ok());
        }
        let err = RetryBudgetConfig::builder()
            .ttl(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "ttl");
    }
}
