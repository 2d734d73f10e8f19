//! What feeds a [`RecoveryCoordinator`] besides the coordinator's own
//! membership events: a health monitor's failures, declared to the whole
//! job, and a failure predictor's warnings, handed over for preemptive
//! migration.

use tokio::task::JoinHandle;

use crate::coordinator::Membership;
use crate::health::{Failure, FailureStream, MemberId};
use crate::recovery::prediction::{FailurePredictor, PredictionError};

use super::runner::RecoveryCoordinator;
use super::TARGET;

impl<M: Membership> RecoveryCoordinator<M> {
    /// Declares failed, to every rank of the job, each rank that a health
    /// monitor reports failed ([`HealthMonitor::failure_stream`](crate::health::HealthMonitor::failure_stream)):
    /// every collective waiting for it fails at once and the job recovers,
    /// as when its process dies. Ranks are those of the current epoch.
    /// A suspected partition is not declared (the members it names are
    /// reported one by one as they fail, and the side without a quorum does
    /// not plan). The task ends with the stream; abort it to stop earlier.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::health::{HealthConfig, HealthMonitor};
    /// use steadfast::recovery::{RecoveryCoordinator, RecoveryEvent};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let ranks = InMemoryCoordinator::new(2);
    /// let monitor = HealthMonitor::new(HealthConfig::builder().heartbeat_timeout(Duration::from_secs(1)).check_interval(Duration::from_millis(500)).build().unwrap());
    /// monitor.add_member(1usize); // rank 1
    /// let recovery = RecoveryCoordinator::builder(ranks[0].clone()).build();
    /// let mut events = recovery.subscribe();
    /// let _declaring = recovery.declare_failures_from(monitor.failure_stream());
    /// let _running = recovery.start();
    /// tokio::time::sleep(Duration::from_secs(3)).await; // rank 1 stays silent
    /// monitor.check_now();
    /// loop {
    ///     if let RecoveryEvent::FailureDetected { rank, .. } = events.recv().await.unwrap() {
    ///         assert_eq!(rank, 1);
    ///         break;
    ///     }
    /// }
    /// # }
    /// ```
    pub fn declare_failures_from(&self, mut failures: FailureStream) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(failure) = failures.recv().await {
                if matches!(failure, Failure::SuspectedPartition { .. }) {
                    tracing::warn!(target: TARGET, %failure, "a partition is suspected; its members are declared as they fail");
                    continue;
                }
                for rank in failure.members().iter().filter_map(MemberId::as_rank) {
                    let reason = format!("health: {failure}");
                    if let Err(e) = this.membership().declare_failed(rank, &reason).await {
                        tracing::warn!(target: TARGET, rank, error = %e, "declaring a failed rank failed");
                    }
                }
            }
        })
    }

    /// Hands each member whose predicted probability of failure crosses
    /// `threshold` over for preemptive migration
    /// ([`migrate`](Self::migrate)): the job recovers as from a
    /// [`FailureCause::Predicted`](super::FailureCause::Predicted) failure,
    /// while the member is still alive. Members are ranks of the current
    /// epoch ([`MemberId::Rank`]) or members named by their id (any other
    /// [`MemberId`] with a name).
    ///
    /// # Errors
    ///
    /// [`PredictionError::InvalidThreshold`] for a threshold outside 0..=1.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// use steadfast::recovery::RecoveryCoordinator;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::recovery::prediction::PredictionError> {
    /// let recovery = RecoveryCoordinator::builder(InMemoryCoordinator::new(2).remove(0)).build();
    /// let predictor = FailurePredictor::default();
    /// recovery.migrate_predicted(&predictor, 0.9)?;
    /// assert!(recovery.migrate_predicted(&predictor, 1.5).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn migrate_predicted(
        &self,
        predictor: &FailurePredictor,
        threshold: f64,
    ) -> Result<(), PredictionError> {
        let this = self.clone();
        predictor.on_predicted_failure(threshold, move |prediction| {
            let this = this.clone();
            async move {
                let member = match &prediction.member {
                    MemberId::Rank(rank) => match this.membership().current_epoch().await {
                        Ok(epoch) => epoch.ranks.get(*rank).cloned(),
                        Err(e) => {
                            tracing::warn!(target: TARGET, error = %e, "reading the epoch for a migration failed");
                            None
                        }
                    },
                    other => other.name().map(str::to_string),
                };
                let Some(member) = member else {
                    tracing::warn!(target: TARGET, member = %prediction.member, "a predicted failure names no member of the job");
                    return;
                };
                if let Err(e) = this.migrate(&member, prediction.probability).await {
                    tracing::warn!(target: TARGET, member, error = %e, "a preemptive migration failed");
                }
            }
        })
    }
}
