//! [`HealthMonitor::follow_members`]: the liveness a coordinator sees (a
//! stream of [`MemberEvent`]s, such as the etcd coordinator's member watch)
//! turned into the members, heartbeats and failures of a health monitor.
//!
//! The coordinator reports who joined and who left; the monitor decides
//! what that means for health. The arrow runs one way: `health` consumes
//! `coordinator` events, and no coordinator knows about health.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::MissedTickBehavior;

use crate::coordinator::{CoordinatorError, MemberEvent};
use crate::health::{DetectionPolicy, HealthError, HealthMonitor, MonitorHandle};

impl HealthMonitor {
    /// Feeds this monitor with the liveness `members` reports: every rank
    /// `0..world_size` becomes a member ([`MemberId::Rank`](crate::health::MemberId::Rank)), and a rank is
    /// heard from (one heartbeat every half `heartbeat_timeout`, or every
    /// half `heartbeat_interval` with
    /// [`DetectionPolicy::MissedHeartbeats`]) from its
    /// `Joined` event for as long as it has not left.
    ///
    /// With the etcd coordinator, pass its member watch
    /// (`monitor.follow_members(world_size, coordinator.watch_members())`):
    /// a rank is then alive for as long as its lease lives.
    ///
    /// - `Left { graceful: false }` (for etcd: the rank's lease expired, its
    ///   process died or lost etcd for longer than the TTL): the rank is
    ///   marked Failed at once ([`HealthMonitor::mark_failed`]) and its
    ///   heartbeats stop, so it stays Failed until it joins again.
    /// - `Left { graceful: true }` (a clean exit, for etcd through
    ///   `EtcdCoordinator::shutdown`): the rank is removed from the monitor;
    ///   a clean exit is not a failure.
    /// - A rank that never joins is marked Unresponsive and then Failed by
    ///   the monitor's own sweep, after `heartbeat_timeout` and twice that.
    /// - An `Err` item (the coordinator could not be reached) is logged
    ///   (target `steadfast::health`) and the ranks last seen alive keep
    ///   being heard from: an outage of the coordination service is not a
    ///   failure of the ranks.
    ///
    /// A member the caller removed on purpose stays removed until the
    /// stream says the rank joined again. The reporting runs in a
    /// background task until the returned handle is stopped or dropped, or
    /// the stream ends. The monitor must be swept ([`HealthMonitor::start`])
    /// for silences to show.
    ///
    /// # Errors
    ///
    /// [`HealthError::NoRuntime`] when called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::MemberEvent;
    /// use steadfast::health::{HealthMonitor, HealthStatus, MemberId};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = HealthMonitor::default();
    /// let (events, members) = futures::channel::mpsc::unbounded();
    /// let reporter = monitor.follow_members(2, members)?;
    /// assert_eq!(monitor.len(), 2); // both ranks are members at once
    ///
    /// events.unbounded_send(Ok(MemberEvent::Joined { rank: 0 })).unwrap();
    /// events.unbounded_send(Ok(MemberEvent::Joined { rank: 1 })).unwrap();
    /// events.unbounded_send(Ok(MemberEvent::Left { rank: 1, graceful: false })).unwrap();
    /// tokio::time::sleep(Duration::from_millis(1)).await;
    /// assert_eq!(monitor.status(0usize), Some(HealthStatus::Healthy));
    /// assert_eq!(monitor.status(1usize), Some(HealthStatus::Failed));
    /// reporter.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// With etcd (feature `etcd`):
    ///
    /// ```no_run
    /// # #[cfg(feature = "etcd")]
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use steadfast::coordinator::{Coordinator, EtcdConfig, EtcdCoordinator};
    /// use steadfast::health::HealthMonitor;
    ///
    /// let config = EtcdConfig::builder().prefix("/jobs/train-42").world_size(4).build()?;
    /// let coordinator = EtcdCoordinator::connect(config).await?;
    /// let monitor = HealthMonitor::default();
    /// let _sweeper = monitor.start()?;
    /// let _liveness = monitor.follow_members(coordinator.world_size(), coordinator.watch_members())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn follow_members<S>(
        &self,
        world_size: usize,
        members: S,
    ) -> Result<MonitorHandle, HealthError>
    where
        S: Stream<Item = Result<MemberEvent, CoordinatorError>> + Send + 'static,
    {
        let monitor = self.clone();
        let handle = MonitorHandle::spawn("member liveness", move |stop| {
            follow(monitor, members, stop)
        })?;
        for rank in 0..world_size {
            self.add_member(rank);
        }
        Ok(handle)
    }
}

/// The task of [`HealthMonitor::follow_members`].
async fn follow<S>(monitor: HealthMonitor, members: S, mut stop: tokio::sync::oneshot::Receiver<()>)
where
    S: Stream<Item = Result<MemberEvent, CoordinatorError>> + Send + 'static,
{
    let mut members = std::pin::pin!(members);
    let mut alive: BTreeSet<usize> = BTreeSet::new();
    let config = monitor.config();
    let beat = match config.detection() {
        DetectionPolicy::MissedHeartbeats => config.heartbeat_interval(),
        _ => config.heartbeat_timeout(),
    };
    let period = (beat / 2).max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            event = members.next() => {
                let Some(event) = event else { return };
                on_event(&monitor, &mut alive, event);
            }
            _ = ticker.tick() => {
                for &rank in &alive {
                    // A member the caller removed stays removed.
                    let _ = monitor.heartbeat(rank);
                }
            }
        }
    }
}

fn on_event(
    monitor: &HealthMonitor,
    alive: &mut BTreeSet<usize>,
    event: Result<MemberEvent, CoordinatorError>,
) {
    match event {
        Ok(MemberEvent::Joined { rank }) => {
            monitor.add_member(rank);
            let _ = monitor.heartbeat(rank);
            alive.insert(rank);
        }
        Ok(MemberEvent::Left {
            rank,
            graceful: true,
        }) => {
            alive.remove(&rank);
            monitor.remove_member(rank);
        }
        Ok(MemberEvent::Left {
            rank,
            graceful: false,
        }) => {
            alive.remove(&rank);
            tracing::warn!(
                target: "steadfast::health",
                member = rank,
                "a rank left without shutting down; reporting it failed"
            );
            // A member the caller removed stays removed.
            let _ = monitor.mark_failed(rank);
        }
        Err(error) => tracing::warn!(
            target: "steadfast::health",
            %error,
            "member watch failed; the ranks last seen alive are still heard from"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HealthConfig, HealthStatus};
    use futures::channel::mpsc;

    fn monitor() -> HealthMonitor {
        HealthMonitor::new(
            HealthConfig::builder()
                .heartbeat_timeout(Duration::from_secs(4))
                .check_interval(Duration::from_millis(100))
                .build()
                .unwrap(),
        )
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn joined_ranks_are_heard_from_until_they_leave() {
        let monitor = monitor();
        let sweeper = monitor.start().unwrap();
        let (events, members) = mpsc::unbounded();
        let reporter = monitor.follow_members(3, members).unwrap();
        assert_eq!(monitor.len(), 3);
        events
            .unbounded_send(Ok(MemberEvent::Joined { rank: 0 }))
            .unwrap();
        events
            .unbounded_send(Ok(MemberEvent::Joined { rank: 1 }))
            .unwrap();
        settle().await;
        // Long past the heartbeat timeout, the joined ranks are still
        // Healthy (heard from every 2 s); rank 2 never joined.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(monitor.status(0usize), Some(HealthStatus::Healthy));
        assert_eq!(monitor.status(1usize), Some(HealthStatus::Healthy));
        assert_eq!(monitor.status(2usize), Some(HealthStatus::Failed));

        // A clean exit is removed; a failure is Failed at once.
        events
            .unbounded_send(Ok(MemberEvent::Left {
                rank: 0,
                graceful: true,
            }))
            .unwrap();
        events
            .unbounded_send(Ok(MemberEvent::Left {
                rank: 1,
                graceful: false,
            }))
            .unwrap();
        settle().await;
        assert!(!monitor.contains(0usize));
        assert_eq!(monitor.status(1usize), Some(HealthStatus::Failed));

        // A rank that joins again is Healthy again.
        events
            .unbounded_send(Ok(MemberEvent::Joined { rank: 1 }))
            .unwrap();
        settle().await;
        assert_eq!(monitor.status(1usize), Some(HealthStatus::Healthy));
        reporter.stop().await;
        sweeper.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_of_the_stream_is_not_a_failure_of_the_ranks() {
        let monitor = monitor();
        let sweeper = monitor.start().unwrap();
        let (events, members) = mpsc::unbounded();
        let reporter = monitor.follow_members(1, members).unwrap();
        events
            .unbounded_send(Ok(MemberEvent::Joined { rank: 0 }))
            .unwrap();
        events
            .unbounded_send(Err(CoordinatorError::unavailable("etcd is down")))
            .unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(monitor.status(0usize), Some(HealthStatus::Healthy));
        assert!(!reporter.is_finished());
        // The task ends with its stream.
        drop(events);
        settle().await;
        assert!(reporter.is_finished());
        sweeper.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn with_missed_heartbeats_ranks_are_heard_from_every_half_interval() {
        let monitor = HealthMonitor::new(
            HealthConfig::builder()
                .detection(crate::health::DetectionPolicy::MissedHeartbeats)
                .heartbeat_interval(Duration::from_secs(1))
                .failure_threshold(1)
                .detection_window(Duration::from_secs(1))
                .check_interval(Duration::from_millis(100))
                .build()
                .unwrap(),
        );
        let sweeper = monitor.start().unwrap();
        let (events, members) = mpsc::unbounded();
        let reporter = monitor.follow_members(2, members).unwrap();
        events
            .unbounded_send(Ok(MemberEvent::Joined { rank: 0 }))
            .unwrap();
        // Heard from every 15 s (half the timeout), rank 0 would miss its
        // first beat after 1.5 s and fail.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(monitor.status(0usize), Some(HealthStatus::Healthy));
        assert_eq!(monitor.status(1usize), Some(HealthStatus::Failed));
        reporter.stop().await;
        sweeper.stop().await;
    }

    #[test]
    fn needs_a_runtime() {
        let (_events, members) = mpsc::unbounded::<Result<MemberEvent, CoordinatorError>>();
        let err = HealthMonitor::default()
            .follow_members(1, members)
            .unwrap_err();
        assert!(matches!(err, HealthError::NoRuntime { .. }), "{err:?}");
    }
}
