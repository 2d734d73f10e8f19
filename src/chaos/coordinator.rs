//! [`ChaosCoordinator`]: any [`Coordinator`] with latency, errors and
//! partitions injected into its calls; a [`Membership`] too when the
//! wrapped coordinator is one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::config::ChaosConfig;
use super::partition::Partition;
use super::record::{ChaosRecorder, FaultKind};
use super::switch::{ChaosSwitch, Dice};
use crate::coordinator::{
    CasOutcome, Coordinator, CoordinatorError, EpochOutcome, EpochRecord, Leadership, LiveMember,
    Membership, MembershipWatch, Result, Role, Signal, Versioned,
};
use crate::ConfigError;

#[derive(Debug)]
struct Engine {
    config: ChaosConfig,
    switch: ChaosSwitch,
    recorder: ChaosRecorder,
    dice: Dice,
}

/// Any [`Coordinator`] with faults injected into its calls: latency and
/// transient errors at the rates of a [`ChaosConfig`], and the partitions
/// of a shared [`Partition`] controller.
///
/// For `barrier`, `all_gather`, `signal` and `wait_for_rank`, with the
/// switch on, a delay is drawn first (slept on tokio's clock), then an
/// error: the call fails with a transient
/// [`CoordinatorError::Unavailable`] and does not reach the coordinator, as
/// when the coordination service cannot be reached (the in-memory
/// coordinator's own injected failures do the same, and a
/// [`FaultTolerant`](crate::coordinator::FaultTolerant) wrapper retries
/// them). Then the partition: a collective, or a `wait_for_rank` for a rank
/// on the other side, waits until the partition heals, and fails with
/// [`CoordinatorError::Timeout`] naming the ranks out of reach if its
/// timeout comes first; time spent in the delay and the partition counts
/// against the call's timeout. A `signal` is not held up by a partition.
/// With the switch off the wrapper is transparent: no delay, no error, no
/// draw, and partitions are ignored.
///
/// The config's `wrong_result_rate` and `drop_rate` must be zero here (a
/// collective cannot be half-cancelled without breaking the round for
/// every rank; the in-memory coordinator's `kill` and `set_absent` faults
/// model a rank that is gone).
///
/// When the wrapped coordinator implements [`Membership`], so does the
/// wrapper, passing every membership call through unchanged (the rank,
/// epoch and role it reports are the wrapped handle's).
///
/// Give each rank's wrapper its own seed (say, the job's seed plus the
/// rank) or the same one; either way, the same seeds and the same order of
/// calls give the same faults.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::chaos::{ChaosConfig, ChaosCoordinator, Partition};
/// use steadfast::coordinator::{Coordinator, CoordinatorError, InMemoryCoordinator};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let partition = Partition::new();
/// let ranks: Vec<_> = InMemoryCoordinator::new(2)
///     .into_iter()
///     .map(|rank| {
///         ChaosCoordinator::builder(rank, ChaosConfig::default())
///             .partition(partition.clone())
///             .build()
///     })
///     .collect::<Result<_, _>>()?;
///
/// partition.cut([1], Duration::from_secs(60));
/// let (a, b) = tokio::join!(
///     ranks[0].barrier(Duration::from_secs(5)),
///     ranks[1].barrier(Duration::from_secs(5)),
/// );
/// assert!(matches!(a, Err(CoordinatorError::Timeout { ref missing, .. }) if missing == &[1]));
/// assert!(matches!(b, Err(CoordinatorError::Timeout { ref missing, .. }) if missing == &[0]));
///
/// partition.heal();
/// let (a, b) = tokio::join!(
///     ranks[0].barrier(Duration::from_secs(5)),
///     ranks[1].barrier(Duration::from_secs(5)),
/// );
/// assert!(a.is_ok() && b.is_ok());
/// # Ok(())
/// # }
/// ```
pub struct ChaosCoordinator<C> {
    inner: C,
    engine: Arc<Engine>,
    partition: Option<Partition>,
}

impl<C: Clone> Clone for ChaosCoordinator<C> {
    fn clone(&self) -> Self {
        ChaosCoordinator {
            inner: self.inner.clone(),
            engine: Arc::clone(&self.engine),
            partition: self.partition.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for ChaosCoordinator<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosCoordinator")
            .field("inner", &self.inner)
            .field("config", &self.engine.config)
            .field("switch", &self.engine.switch)
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl<C> ChaosCoordinator<C> {
    /// A builder wrapping `inner`, injecting what `config` says.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosConfig, ChaosCoordinator};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let chaos = ChaosCoordinator::builder(rank, ChaosConfig::default()).build()?;
    /// # let _ = chaos;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder(inner: C, config: ChaosConfig) -> ChaosCoordinatorBuilder<C> {
        ChaosCoordinatorBuilder {
            inner,
            config,
            switch: None,
            recorder: None,
            partition: None,
        }
    }

    /// The wrapped coordinator, reached without chaos.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosConfig, ChaosCoordinator};
    /// use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let chaos = ChaosCoordinator::builder(rank, ChaosConfig::default()).build()?;
    /// assert_eq!(chaos.inner().rank(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The on/off switch.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosConfig, ChaosCoordinator};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let chaos = ChaosCoordinator::builder(rank, ChaosConfig::default()).build()?;
    /// assert!(chaos.switch().is_on());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn switch(&self) -> &ChaosSwitch {
        &self.engine.switch
    }

    /// The recorder of what was injected.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosConfig, ChaosCoordinator};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let chaos = ChaosCoordinator::builder(rank, ChaosConfig::default()).build()?;
    /// assert_eq!(chaos.recorder().total(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn recorder(&self) -> &ChaosRecorder {
        &self.engine.recorder
    }

    /// The partition controller, if one was given.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosConfig, ChaosCoordinator};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let chaos = ChaosCoordinator::builder(rank, ChaosConfig::default()).build()?;
    /// assert!(chaos.partition().is_none());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn partition(&self) -> Option<&Partition> {
        self.partition.as_ref()
    }
}

impl<C: Coordinator> ChaosCoordinator<C> {
    /// The delay and the error of a call, before it reaches the
    /// coordinator; draws nothing while the switch is off.
    async fn enter(&self, operation: &'static str) -> Result<()> {
        let engine = &*self.engine;
        if !engine.switch.is_on() {
            return Ok(());
        }
        let (latency, error) = {
            let c = &engine.config;
            let mut roll = engine.dice.roll();
            let latency = roll
                .chance(c.latency_rate())
                .then(|| roll.delay(c.latency_range().0, c.latency_range().1));
            (latency, roll.chance(c.error_rate()))
        };
        let target = format!("rank {}", self.inner.rank());
        if let Some(latency) = latency {
            engine
                .recorder
                .record(FaultKind::Latency, operation, &target, Some(latency));
            tokio::time::sleep(latency).await;
        }
        if error {
            engine
                .recorder
                .record(FaultKind::Error, operation, &target, None);
            return Err(CoordinatorError::unavailable(format!(
                "chaos: injected failure of {operation} on {target}"
            )));
        }
        Ok(())
    }

    /// Holds a call while the partition keeps `unreachable` ranks out of
    /// reach; fails it with a timeout naming them at `deadline`.
    async fn cross(
        &self,
        operation: &'static str,
        timeout: Duration,
        deadline: Instant,
        unreachable: impl Fn(&Partition) -> Vec<usize>,
    ) -> Result<()> {
        let Some(partition) = &self.partition else {
            return Ok(());
        };
        if !self.engine.switch.is_on() || unreachable(partition).is_empty() {
            return Ok(());
        }
        let missing = partition.wait_reachable(deadline, unreachable).await;
        if missing.is_empty() {
            return Ok(());
        }
        self.engine.recorder.record(
            FaultKind::Partition,
            operation,
            &format!("rank {}", self.inner.rank()),
            None,
        );
        Err(CoordinatorError::Timeout {
            operation,
            after: timeout,
            missing,
        })
    }

    /// Chaos before a collective; returns the timeout left for it.
    async fn before_collective(
        &self,
        operation: &'static str,
        timeout: Duration,
    ) -> Result<Duration> {
        let start = Instant::now();
        let deadline = start.checked_add(timeout).unwrap_or_else(far_future);
        self.enter(operation).await?;
        let (rank, world) = (self.inner.rank(), self.inner.world_size());
        self.cross(operation, timeout, deadline, |p| {
            p.unreachable_from(rank, world)
        })
        .await?;
        Ok(timeout.saturating_sub(start.elapsed()))
    }
}

/// An instant far enough ahead to stand for "never".
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// Builds a [`ChaosCoordinator`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::chaos::{ChaosConfig, ChaosCoordinator, ChaosRecorder, ChaosSwitch, Partition};
/// use steadfast::coordinator::InMemoryCoordinator;
///
/// let config = ChaosConfig::builder()
///     .seed(11)
///     .latency_between(0.2, Duration::from_millis(1), Duration::from_millis(20))
///     .errors(0.05)
///     .build()?;
/// let rank = InMemoryCoordinator::new(1).remove(0);
/// let chaos = ChaosCoordinator::builder(rank, config)
///     .switch(ChaosSwitch::new(true))
///     .recorder(ChaosRecorder::new())
///     .partition(Partition::new())
///     .build()?;
/// # let _ = chaos;
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct ChaosCoordinatorBuilder<C> {
    inner: C,
    config: ChaosConfig,
    switch: Option<ChaosSwitch>,
    recorder: Option<ChaosRecorder>,
    partition: Option<Partition>,
}

impl<C> ChaosCoordinatorBuilder<C> {
    /// A switch shared with other wrappers (default: one of its own, on
    /// when the config is `enabled`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosConfig, ChaosCoordinator, ChaosSwitch};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let chaos = ChaosCoordinator::builder(rank, ChaosConfig::default())
    ///     .switch(ChaosSwitch::new(false))
    ///     .build()?;
    /// assert!(!chaos.switch().is_on());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn switch(mut self, switch: ChaosSwitch) -> Self {
        self.switch = Some(switch);
        self
    }

    /// A recorder shared with other wrappers (default: one of its own).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosConfig, ChaosCoordinator, ChaosRecorder};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let chaos = ChaosCoordinator::builder(rank, ChaosConfig::default())
    ///     .recorder(ChaosRecorder::new())
    ///     .build()?;
    /// # let _ = chaos;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn recorder(mut self, recorder: ChaosRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The partition controller shared by every rank's wrapper.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosConfig, ChaosCoordinator, Partition};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let chaos = ChaosCoordinator::builder(rank, ChaosConfig::default())
    ///     .partition(Partition::new())
    ///     .build()?;
    /// assert!(chaos.partition().is_some());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn partition(mut self, partition: Partition) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Checks the config and returns the wrapper.
    ///
    /// # Errors
    ///
    /// The config's [`ConfigError`], and `wrong_result_rate` or `drop_rate`
    /// above zero (a coordinator takes neither).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosConfig, ChaosCoordinator};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let config = ChaosConfig::builder().wrong_results(0.5).build()?;
    /// let err = ChaosCoordinator::builder(rank, config).build().unwrap_err();
    /// assert_eq!(err.field(), "wrong_result_rate");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn build(self) -> Result<ChaosCoordinator<C>, ConfigError> {
        self.config.validate()?;
        for (field, rate) in [
            ("wrong_result_rate", self.config.wrong_result_rate()),
            ("drop_rate", self.config.drop_rate()),
        ] {
            if rate > 0.0 {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "must be 0 for a coordinator, got {rate}: use the partition, or the \
                         in-memory coordinator's kill and absent faults"
                    ),
                ));
            }
        }
        let recorder = self.recorder.unwrap_or_default();
        recorder.seed_if_unset(self.config.seed());
        Ok(ChaosCoordinator {
            inner: self.inner,
            partition: self.partition,
            engine: Arc::new(Engine {
                switch: self
                    .switch
                    .unwrap_or_else(|| ChaosSwitch::new(self.config.enabled())),
                recorder,
                dice: Dice::new(self.config.seed()),
                config: self.config,
            }),
        })
    }
}

#[async_trait]
impl<C: Coordinator> Coordinator for ChaosCoordinator<C> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn world_size(&self) -> usize {
        self.inner.world_size()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn barrier(&self, timeout: Duration) -> Result<()> {
        let left = self.before_collective("barrier", timeout).await?;
        self.inner.barrier(left).await
    }

    async fn all_gather(&self, data: Vec<u8>, timeout: Duration) -> Result<Vec<Vec<u8>>> {
        let left = self.before_collective("all_gather", timeout).await?;
        self.inner.all_gather(data, left).await
    }

    async fn signal(&self, key: &str, payload: Vec<u8>) -> Result<u64> {
        self.enter("signal").await?;
        self.inner.signal(key, payload).await
    }

    async fn wait_for_rank(
        &self,
        rank: usize,
        key: &str,
        min_seq: u64,
        timeout: Duration,
    ) -> Result<Signal> {
        let start = Instant::now();
        let deadline = start.checked_add(timeout).unwrap_or_else(far_future);
        self.enter("wait_for_rank").await?;
        let me = self.inner.rank();
        self.cross("wait_for_rank", timeout, deadline, |p| {
            if p.separates(me, rank) {
                vec![rank]
            } else {
                Vec::new()
            }
        })
        .await?;
        let left = timeout.saturating_sub(start.elapsed());
        self.inner.wait_for_rank(rank, key, min_seq, left).await
    }
}

#[async_trait]
impl<C: Membership> Membership for ChaosCoordinator<C> {
    fn member_id(&self) -> &str {
        self.inner.member_id()
    }

    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }

    fn role(&self) -> Role {
        self.inner.role()
    }

    async fn current_epoch(&self) -> Result<EpochRecord> {
        self.inner.current_epoch().await
    }

    async fn propose_epoch(&self, expected: u64, next: &EpochRecord) -> Result<EpochOutcome> {
        self.inner.propose_epoch(expected, next).await
    }

    async fn enter_epoch(&self, record: &EpochRecord) -> Result<()> {
        self.inner.enter_epoch(record).await
    }

    async fn live_members(&self) -> Result<Vec<LiveMember>> {
        self.inner.live_members().await
    }

    fn watch_membership(&self) -> MembershipWatch {
        self.inner.watch_membership()
    }

    async fn declare_failed(&self, rank: usize, reason: &str) -> Result<()> {
        self.inner.declare_failed(rank, reason).await
    }

    async fn read_record(&self, key: &str) -> Result<Option<Versioned>> {
        self.inner.read_record(key).await
    }

    async fn list_records(&self, prefix: &str) -> Result<Vec<(String, Versioned)>> {
        self.inner.list_records(prefix).await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<CasOutcome> {
        self.inner.compare_and_set(key, expected, value).await
    }

    async fn put_fenced(
        &self,
        key: &str,
        value: Vec<u8>,
        leadership: Option<&Leadership>,
    ) -> Result<u64> {
        self.inner.put_fenced(key, value, leadership).await
    }

    async fn campaign(&self, timeout: Duration) -> Result<Leadership> {
        self.inner.campaign(timeout).await
    }

    async fn leader(&self) -> Result<Option<Leadership>> {
        self.inner.leader().await
    }

    async fn resign(&self, leadership: &Leadership) -> Result<()> {
        self.inner.resign(leadership).await
    }
}
