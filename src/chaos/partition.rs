//! [`Partition`]: the shared controller of a network partition between the
//! ranks of a job, which every rank's
//! [`ChaosCoordinator`](super::ChaosCoordinator) consults.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// One cut: the ranks on one side, and when it heals (`None`: when
/// [`Partition::heal`] is called).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cut {
    side: BTreeSet<usize>,
    until: Option<Instant>,
}

/// A network partition between the ranks of a job: a set of ranks that
/// cannot reach the others for a while.
///
/// One controller is shared by every rank's
/// [`ChaosCoordinator`](super::ChaosCoordinator) (clones share it). While a
/// partition is active and separates the job's ranks, a collective
/// (`barrier`, `all_gather`) waits for the partition to heal; if its
/// timeout comes first it fails on every rank with
/// [`CoordinatorError::Timeout`](crate::coordinator::CoordinatorError::Timeout)
/// naming the ranks on the other side, as a real partition makes it fail.
/// A `wait_for_rank` for a rank on the other side does the same. The
/// partition heals by itself after its duration, on tokio's clock (so a
/// test on paused time moves through it at once), or when
/// [`heal`](Self::heal) is called; a collective waiting for it then goes
/// on.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::chaos::Partition;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let partition = Partition::new();
/// partition.cut([3], Duration::from_secs(10));
/// assert!(partition.separates(0, 3));
/// assert!(!partition.separates(0, 1));
/// tokio::time::advance(Duration::from_secs(10)).await;
/// assert!(!partition.is_active()); // healed
/// # }
/// ```
#[derive(Clone)]
pub struct Partition {
    state: Arc<watch::Sender<Option<Cut>>>,
}

impl Default for Partition {
    fn default() -> Self {
        Partition::new()
    }
}

impl fmt::Debug for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partition")
            .field("isolated", &self.isolated())
            .finish()
    }
}

impl Partition {
    /// A controller with no partition.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!steadfast::chaos::Partition::new().is_active());
    /// ```
    pub fn new() -> Self {
        Partition {
            state: Arc::new(watch::Sender::new(None)),
        }
    }

    /// Cuts `ranks` off from the others for `duration`, from now on
    /// tokio's clock; replaces any partition in place.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let partition = steadfast::chaos::Partition::new();
    /// partition.cut([0, 1], Duration::from_secs(5));
    /// assert_eq!(partition.isolated(), vec![0, 1]);
    /// # }
    /// ```
    pub fn cut(&self, ranks: impl IntoIterator<Item = usize>, duration: Duration) {
        let until = Instant::now().checked_add(duration);
        self.set(ranks, until);
    }

    /// Cuts `ranks` off from the others until [`heal`](Self::heal) is
    /// called.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let partition = steadfast::chaos::Partition::new();
    /// partition.cut_until_healed([2]);
    /// assert!(partition.is_active());
    /// partition.heal();
    /// assert!(!partition.is_active());
    /// # }
    /// ```
    pub fn cut_until_healed(&self, ranks: impl IntoIterator<Item = usize>) {
        self.set(ranks, None);
    }

    fn set(&self, ranks: impl IntoIterator<Item = usize>, until: Option<Instant>) {
        let side: BTreeSet<usize> = ranks.into_iter().collect();
        tracing::info!(target: super::TARGET, ranks = ?side, ?until, "partition cut");
        self.state.send_replace(Some(Cut { side, until }));
    }

    /// Ends the partition now.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let partition = steadfast::chaos::Partition::new();
    /// partition.cut_until_healed([1]);
    /// partition.heal();
    /// assert!(!partition.separates(0, 1));
    /// # }
    /// ```
    pub fn heal(&self) {
        if self.state.send_replace(None).is_some() {
            tracing::info!(target: super::TARGET, "partition healed");
        }
    }

    /// The cut in force now, if any.
    fn current(&self) -> Option<Cut> {
        let cut = self.state.borrow().clone()?;
        match cut.until {
            Some(until) if Instant::now() >= until => None,
            _ => Some(cut),
        }
    }

    /// Whether a partition is in force now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!steadfast::chaos::Partition::new().is_active());
    /// ```
    pub fn is_active(&self) -> bool {
        self.current().is_some()
    }

    /// The ranks cut off now (empty when none).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::chaos::Partition::new().isolated().is_empty());
    /// ```
    pub fn isolated(&self) -> Vec<usize> {
        self.current()
            .map(|cut| cut.side.into_iter().collect())
            .unwrap_or_default()
    }

    /// Whether ranks `a` and `b` are on different sides now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let partition = steadfast::chaos::Partition::new();
    /// partition.cut([1], Duration::from_secs(1));
    /// assert!(partition.separates(1, 2));
    /// assert!(!partition.separates(2, 3));
    /// # }
    /// ```
    pub fn separates(&self, a: usize, b: usize) -> bool {
        self.current()
            .is_some_and(|cut| cut.side.contains(&a) != cut.side.contains(&b))
    }

    /// The ranks of `0..world_size` that `rank` cannot reach now.
    pub(super) fn unreachable_from(&self, rank: usize, world_size: usize) -> Vec<usize> {
        match self.current() {
            Some(cut) => {
                let mine = cut.side.contains(&rank);
                (0..world_size)
                    .filter(|r| cut.side.contains(r) != mine)
                    .collect()
            }
            None => Vec::new(),
        }
    }

    /// Waits until `rank` can reach every rank in `needed(…)` or `deadline`
    /// passes; returns the ranks still unreachable at the deadline (empty
    /// when it got through).
    pub(super) async fn wait_reachable(
        &self,
        deadline: Instant,
        unreachable: impl Fn(&Partition) -> Vec<usize>,
    ) -> Vec<usize> {
        let mut changes = self.state.subscribe();
        loop {
            changes.borrow_and_update();
            let missing = unreachable(self);
            if missing.is_empty() || Instant::now() >= deadline {
                return missing;
            }
            let heals_at = self
                .current()
                .and_then(|cut| cut.until)
                .map_or(deadline, |until| until.min(deadline));
            tokio::select! {
                _ = tokio::time::sleep_until(heals_at) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(heals_at).await;
                    }
                }
            }
        }
    }
}
