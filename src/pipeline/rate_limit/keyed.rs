//! The keyed rate limiter, [`KeyedRateLimiter`]: one limit per key (a user,
//! a tenant, a host), each with the same configuration, and the
//! housekeeping that bounds its memory.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;

use super::limiter::Core;
use super::{RateLimitError, RateLimited, RateLimiterConfig, RateLimiterConfigBuilder, TokioClock};

/// governor's keyed limiter on tokio's clock, its states in a sharded map.
type Keyed<K> = governor::RateLimiter<K, DashMapStateStore<K>, TokioClock, NoOpMiddleware<Nanos>>;

/// A rate limit per key: each key (a user, a tenant, a host) gets its own
/// `permits` per `period` and its own `burst`, as a
/// [`RateLimiter`](super::RateLimiter) would, independently of the others.
///
/// The methods are those of [`RateLimiter`](super::RateLimiter) with a key:
/// [`check`](Self::check), [`acquire`](Self::acquire) (waiting in wait
/// mode, up to `max_wait`), [`call`](Self::call). A key is stored the first
/// time it is used, holding one atomic word of state; a
/// `KeyedRateLimiter` is cheap to clone, and clones share the keys.
///
/// # Memory
///
/// Keys are never dropped on their own: a limiter fed with many distinct
/// keys (client addresses) grows until told to forget. Call
/// [`retain_recent`](Self::retain_recent) now and then (from a
/// [`tokio::time::interval`] task, say): it drops every key whose state is
/// the same as a new key's (its full burst is back), so forgetting never
/// lets a key through more than it would have been. Follow it with
/// [`shrink_to_fit`](Self::shrink_to_fit) to give the map's memory back.
/// [`len`](Self::len) counts the keys held.
///
/// # How it works
///
/// The states are governor's, in its sharded concurrent map (`dashmap`):
/// a check on a known key takes a shard's read lock and does one
/// compare-and-swap; a new key takes that shard's write lock once. The
/// limit, the clock and the waiting are as described on
/// [`RateLimiter`](super::RateLimiter).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::KeyedRateLimiter;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let per_user = KeyedRateLimiter::<&str>::builder()
///     .rate(1, Duration::from_secs(1))
///     .build()?;
///
/// assert!(per_user.check(&"alice").is_ok());
/// assert!(per_user.check(&"alice").is_err());
/// // Bob has his own limit.
/// assert!(per_user.check(&"bob").is_ok());
/// assert_eq!(per_user.len(), 2);
///
/// tokio::time::advance(Duration::from_secs(5)).await;
/// per_user.retain_recent();
/// assert_eq!(per_user.len(), 0);
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub struct KeyedRateLimiter<K>
where
    K: Hash + Eq + Clone + Send + Sync,
{
    shared: Arc<Shared<K>>,
}

/// What the clones of a keyed rate limiter share.
struct Shared<K: Hash + Eq + Clone> {
    limiter: Keyed<K>,
    core: Core,
}

impl<K> Clone for KeyedRateLimiter<K>
where
    K: Hash + Eq + Clone + Send + Sync,
{
    fn clone(&self) -> Self {
        KeyedRateLimiter {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> KeyedRateLimiter<K>
where
    K: Hash + Eq + Clone + Send + Sync,
{
    /// A keyed rate limiter with the given configuration for every key,
    /// holding no key yet; its clock starts now, by tokio's time.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{KeyedRateLimiter, RateLimiterConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let config = RateLimiterConfig::builder().permits(3).build()?;
    /// let limiter: KeyedRateLimiter<u64> = KeyedRateLimiter::new(config);
    /// assert!(limiter.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(config: RateLimiterConfig) -> Self {
        let core = Core::new(config);
        let limiter = governor::RateLimiter::dashmap_with_clock(core.config.quota(), core.clock);
        KeyedRateLimiter {
            shared: Arc::new(Shared { limiter, core }),
        }
    }

    /// A builder for a keyed rate limiter, starting from the defaults
    /// listed on [`RateLimiterConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::KeyedRateLimiter;
    ///
    /// let limiter = KeyedRateLimiter::<String>::builder()
    ///     .rate(5, Duration::from_secs(1))
    ///     .build()?;
    /// assert_eq!(limiter.config().permits(), 5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> RateLimiterConfigBuilder<KeyedRateLimiter<K>> {
        RateLimiterConfigBuilder::default()
    }

    /// The configuration every key of this limiter follows.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{KeyedRateLimiter, RateLimiterConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::<u32>::new(RateLimiterConfig::default());
    /// assert_eq!(limiter.config().burst(), 100);
    /// # }
    /// ```
    pub fn config(&self) -> &RateLimiterConfig {
        &self.shared.core.config
    }

    /// Takes a permit of `key` if one is free; never waits, whatever the
    /// mode.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] when no permit of `key` is free, with the time until
    /// the next one frees in `retry_after`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::KeyedRateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let limiter = KeyedRateLimiter::builder().rate(2, Duration::from_secs(1)).burst(1).build()?;
    /// assert!(limiter.check(&7_u32).is_ok());
    /// assert_eq!(limiter.check(&7).unwrap_err().retry_after, Duration::from_millis(500));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn check(&self, key: &K) -> Result<(), RateLimited> {
        let shared = &*self.shared;
        match shared.limiter.check_key(key) {
            Ok(()) => Ok(()),
            Err(refusal) => Err(shared.core.reject_now(&refusal)),
        }
    }

    /// Takes a permit of `key`: at once if one is free; otherwise, in
    /// reject mode, refuses at once, and in wait mode waits for the key's
    /// next permit if it frees within `max_wait`.
    ///
    /// # Cancellation
    ///
    /// Nothing is reserved while the future waits: dropping it takes no
    /// permit and leaves the limiter as it was.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] when no permit of `key` is free (reject mode), or
    /// none frees within `max_wait` (wait mode).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{KeyedRateLimiter, RateLimitMode};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let limiter = KeyedRateLimiter::builder()
    ///     .rate(1, Duration::from_secs(1))
    ///     .mode(RateLimitMode::Wait)
    ///     .max_wait(Duration::from_secs(2))
    ///     .build()?;
    /// limiter.acquire(&"tenant-a").await.unwrap();
    /// let start = tokio::time::Instant::now();
    /// limiter.acquire(&"tenant-a").await.unwrap();
    /// assert_eq!(start.elapsed(), Duration::from_secs(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self, key: &K) -> Result<(), RateLimited> {
        let shared = &*self.shared;
        match shared.limiter.check_key(key) {
            Ok(()) => Ok(()),
            Err(refusal) => {
                shared
                    .core
                    .after_refusal(refusal, || shared.limiter.check_key(key))
                    .await
            }
        }
    }

    /// Runs `f` once `key` has a permit, taken as
    /// [`acquire`](Self::acquire) does (waiting in wait mode).
    ///
    /// A refused call never invokes `f`. The permit is used whether the
    /// operation succeeds or fails.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future while it waits takes no permit;
    /// dropping it while the operation runs drops the operation.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::Rejected`] with the [`RateLimited`] when refused,
    /// [`RateLimitError::Inner`] with the operation's own error.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::KeyedRateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let limiter = KeyedRateLimiter::builder().build()?;
    /// let host = "db-1".to_string();
    /// let rows = limiter.call(&host, || async { Ok::<_, std::io::Error>(3) }).await.unwrap();
    /// assert_eq!(rows, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call<F, Fut, T, E>(&self, key: &K, f: F) -> Result<T, RateLimitError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.acquire(key).await?;
        f().await.map_err(RateLimitError::Inner)
    }

    /// Forgets every key whose state is the same as a new key's: its full
    /// burst has come back, so it would be let through exactly as if it
    /// had never been seen. Bounds the memory of a limiter fed with many
    /// keys; see the type's `# Memory` section.
    ///
    /// It visits every key (locking one shard of the map at a time), so
    /// call it now and then, not on every call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::KeyedRateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let limiter = KeyedRateLimiter::builder().rate(10, Duration::from_secs(1)).build()?;
    /// for client in 0..1_000_u32 {
    ///     limiter.check(&client).unwrap();
    /// }
    /// assert_eq!(limiter.len(), 1_000);
    ///
    /// // Every key is still limited 50 ms later: each is kept.
    /// tokio::time::advance(Duration::from_millis(50)).await;
    /// limiter.retain_recent();
    /// assert_eq!(limiter.len(), 1_000);
    ///
    /// // A second later every key has its burst back: each is forgotten.
    /// tokio::time::advance(Duration::from_secs(1)).await;
    /// limiter.retain_recent();
    /// limiter.shrink_to_fit();
    /// assert!(limiter.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn retain_recent(&self) {
        self.shared.limiter.retain_recent();
    }

    /// Gives back the memory of the keys already forgotten (by
    /// [`retain_recent`](Self::retain_recent)), as far as the map can.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::KeyedRateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::<u8>::builder().build().unwrap();
    /// limiter.retain_recent();
    /// limiter.shrink_to_fit();
    /// assert!(limiter.is_empty());
    /// # }
    /// ```
    pub fn shrink_to_fit(&self) {
        self.shared.limiter.shrink_to_fit();
    }

    /// How many keys the limiter holds now (read without a global lock, so
    /// it may be stale under concurrent use).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::KeyedRateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::builder().build().unwrap();
    /// limiter.check(&"a").unwrap();
    /// limiter.check(&"b").unwrap();
    /// assert_eq!(limiter.len(), 2);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.shared.limiter.len()
    }

    /// Whether the limiter holds no key.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::KeyedRateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = KeyedRateLimiter::<String>::builder().build().unwrap();
    /// assert!(limiter.is_empty());
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.shared.limiter.is_empty()
    }
}

impl<K> fmt::Debug for KeyedRateLimiter<K>
where
    K: Hash + Eq + Clone + Send + Sync,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("config", &self.shared.core.config)
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}
