//! Integration tests of the DegradationManager: the permission matrix,
//! levels from several sources, the service level, events, and automatic
//! transitions driven by a health monitor.

mod common;
use common::drain;

use std::time::Duration;

use steadfast::degradation::{
    DegradationManager, HealthRules, LevelChange, OperationKind, ServiceLevel,
};
use steadfast::health::{HealthMonitor, MemberId};
use tokio::time::sleep;

use OperationKind::{Essential, Read, Write};
use ServiceLevel::{EssentialOnly, Normal, Offline, ReadOnly};

/// (component, old, new) of each change; `None` is the service.
fn summary(changes: &[LevelChange]) -> Vec<(Option<&str>, ServiceLevel, ServiceLevel)> {
    changes
        .iter()
        .map(|c| (c.component.as_deref(), c.old, c.new))
        .collect()
}

#[test]
fn permission_matrix() {
    let table = [
        (Normal, [true, true, true]),
        (ReadOnly, [true, false, true]),
        (EssentialOnly, [false, false, true]),
        (Offline, [false, false, false]),
    ];
    for (level, [read, write, essential]) in table {
        assert_eq!(level.allows(Read), read, "{level} read");
        assert_eq!(level.allows(Write), write, "{level} write");
        assert_eq!(level.allows(Essential), essential, "{level} essential");
    }
}

#[tokio::test(start_paused = true)]
async fn permission_matrix_through_the_manager() {
    let degradation = DegradationManager::new();
    for level in [Normal, ReadOnly, EssentialOnly, Offline] {
        degradation.set_level("c", level, "test");
        degradation.set_service_level(Normal, "test");
        for kind in [Read, Write, Essential] {
            assert_eq!(
                degradation.allows("c", kind),
                level.allows(kind),
                "{level} {kind:?}"
            );
            assert_eq!(degradation.service_allows(kind), level.allows(kind));
            assert!(
                degradation.allows("other", kind),
                "other components are not affected"
            );
        }
        degradation.set_level("c", Normal, "test");
        degradation.set_service_level(level, "test");
        for kind in [Read, Write, Essential] {
            // the explicit service level bounds every component
            assert_eq!(degradation.allows("c", kind), level.allows(kind));
            assert_eq!(degradation.allows("other", kind), level.allows(kind));
        }
    }
}

#[test]
fn levels_are_ordered() {
    assert!(Normal < ReadOnly && ReadOnly < EssentialOnly && EssentialOnly < Offline);
    let json = serde_json::to_string(&EssentialOnly).unwrap();
    assert_eq!(json, "\"essential_only\"");
    assert_eq!(
        serde_json::from_str::<ServiceLevel>(&json).unwrap(),
        EssentialOnly
    );
}

#[tokio::test(start_paused = true)]
async fn service_level_is_the_worst_and_events_follow_changes() {
    let degradation = DegradationManager::new();
    let mut events = degradation.subscribe();
    degradation.set_level("db", ReadOnly, "replica lag");
    degradation.set_level("queue", EssentialOnly, "disk full");
    degradation.set_level("db", ReadOnly, "still lagging"); // no change, no event
    assert_eq!(degradation.service_level(), EssentialOnly);
    degradation.set_level("queue", Normal, "disk cleaned");
    assert_eq!(degradation.service_level(), ReadOnly);
    degradation.set_service_level(Offline, "power cut");
    degradation.set_service_level(Normal, "power back");
    degradation.set_level("db", Normal, "caught up");
    assert_eq!(degradation.service_level(), Normal);
    assert!(degradation.components().is_empty());

    let got = drain(&mut events);
    assert_eq!(
        summary(&got),
        vec![
            (Some("db"), Normal, ReadOnly),
            (None, Normal, ReadOnly),
            (Some("queue"), Normal, EssentialOnly),
            (None, ReadOnly, EssentialOnly),
            (Some("queue"), EssentialOnly, Normal),
            (None, EssentialOnly, ReadOnly),
            (None, ReadOnly, Offline),
            (None, Offline, ReadOnly), // db still holds it at ReadOnly
            (Some("db"), ReadOnly, Normal),
            (None, ReadOnly, Normal),
        ]
    );
    assert_eq!(got[2].reason, "disk full");
    assert_eq!(got[3].reason, "disk full");
}

#[tokio::test(start_paused = true)]
async fn a_watcher_does_not_undo_the_operator() {
    let monitor = HealthMonitor::default();
    for r in 0..4usize {
        monitor.add_member(r);
    }
    let degradation = DegradationManager::new();
    degradation.set_level("training", EssentialOnly, "operator");
    let watcher = degradation
        .watch_health_as(&monitor, "training", HealthRules::default())
        .unwrap();
    let sweeper = monitor.start().unwrap();
    sleep(Duration::from_secs(66)).await; // all four failed: the watcher says Offline
    assert_eq!(degradation.level("training"), Offline);
    for r in 0..4usize {
        monitor.heartbeat(MemberId::Rank(r)).unwrap();
    }
    sleep(Duration::from_secs(1)).await;
    // recovered: the watcher withdraws, the operator's level stays
    assert_eq!(degradation.level("training"), EssentialOnly);
    assert_eq!(
        degradation.set_level("training", Normal, "operator done"),
        Normal
    );
    watcher.stop().await;
    sweeper.stop().await;
}

/// 8 ranks in one component; heartbeats every 5 s from those in `alive`.
async fn heartbeat_for(monitor: &HealthMonitor, alive: impl Fn(usize) -> bool, seconds: u64) {
    for _ in 0..seconds / 5 {
        sleep(Duration::from_secs(5)).await;
        for r in 0..8usize {
            if alive(r) {
                monitor.heartbeat(MemberId::Rank(r)).unwrap();
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn health_events_degrade_and_restore_a_component() {
    let monitor = HealthMonitor::default();
    for r in 0..8usize {
        monitor.add_member(r);
    }
    let degradation = DegradationManager::new();
    let mut events = degradation.subscribe();
    let watcher = degradation
        .watch_health_as(&monitor, "training", HealthRules::default())
        .unwrap();
    let sweeper = monitor.start().unwrap();

    heartbeat_for(&monitor, |_| true, 60).await;
    assert_eq!(degradation.level("training"), Normal);
    assert!(drain(&mut events).is_empty());

    // ranks 6 and 7 stop: Unresponsive after 30 s changes nothing (default
    // rules), Failed after 60 s makes the component ReadOnly
    heartbeat_for(&monitor, |r| r < 6, 40).await;
    assert_eq!(monitor.unresponsive_count(), 2);
    assert_eq!(degradation.level("training"), Normal);
    heartbeat_for(&monitor, |r| r < 6, 30).await;
    assert_eq!(monitor.failed().len(), 2);
    assert_eq!(degradation.level("training"), ReadOnly);
    assert!(degradation.allows("training", Read));
    assert!(!degradation.allows("training", Write));
    assert_eq!(degradation.service_level(), ReadOnly);
    let got = drain(&mut events);
    assert_eq!(
        summary(&got),
        vec![
            (Some("training"), Normal, ReadOnly),
            (None, Normal, ReadOnly)
        ]
    );
    assert_eq!(
        got[0].reason,
        "health: 2 of 8 members failed, 0 unresponsive"
    );

    // three more stop: 5 of 8 failed, a majority
    heartbeat_for(&monitor, |r| r < 3, 70).await;
    assert_eq!(degradation.level("training"), EssentialOnly);

    // every rank stops
    heartbeat_for(&monitor, |_| false, 70).await;
    assert_eq!(degradation.level("training"), Offline);
    assert!(!degradation.allows("training", Essential));

    // they all come back: restored on the heartbeats, without waiting for a sweep
    for r in 0..8usize {
        monitor.heartbeat(MemberId::Rank(r)).unwrap();
    }
    tokio::task::yield_now().await;
    assert_eq!(degradation.level("training"), Normal);
    assert_eq!(degradation.service_level(), Normal);
    let got = drain(&mut events);
    let last = got.last().unwrap();
    assert_eq!((last.component.as_deref(), last.new), (None, Normal));

    watcher.stop().await;
    sweeper.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stricter_rules_degrade_on_unresponsive_members() {
    let monitor = HealthMonitor::default();
    for r in 0..8usize {
        monitor.add_member(r);
    }
    let degradation = DegradationManager::new();
    let rules = HealthRules::builder()
        .on_unresponsive(ReadOnly)
        .on_any_failed(EssentialOnly)
        .build()
        .unwrap();
    let _watcher = degradation
        .watch_health_as(&monitor, "training", rules)
        .unwrap();
    let _sweeper = monitor.start().unwrap();
    heartbeat_for(&monitor, |r| r != 0, 40).await;
    assert_eq!(degradation.level("training"), ReadOnly);
    heartbeat_for(&monitor, |r| r != 0, 30).await;
    assert_eq!(degradation.level("training"), EssentialOnly);
}

#[tokio::test(start_paused = true)]
async fn members_map_to_components() {
    let monitor = HealthMonitor::default();
    for name in ["db-1", "db-2", "cache-1", "cache-2", "cache-3"] {
        monitor.add_member(name);
    }
    monitor.add_member(0usize); // a rank: no component, ignored
    let degradation = DegradationManager::new();
    let _watcher = degradation
        .watch_health(
            &monitor,
            |m: &MemberId| Some(m.as_component()?.split('-').next()?.to_string()),
            HealthRules::default(),
        )
        .unwrap();
    let _sweeper = monitor.start().unwrap();
    for _ in 0..14 {
        sleep(Duration::from_secs(5)).await;
        for name in ["db-1", "cache-1"] {
            monitor.heartbeat(name).unwrap();
        }
    }
    // db: 1 of 2 failed (not a majority); cache: 2 of 3 failed (a majority)
    assert_eq!(degradation.level("db"), ReadOnly);
    assert_eq!(degradation.level("cache"), EssentialOnly);
    assert_eq!(degradation.service_level(), EssentialOnly);
    assert_eq!(degradation.components().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn removed_members_stop_counting_at_the_next_tick() {
    let monitor = HealthMonitor::default();
    for r in 0..4usize {
        monitor.add_member(r);
    }
    let degradation = DegradationManager::new();
    let _watcher = degradation
        .watch_health_as(&monitor, "job", HealthRules::default())
        .unwrap();
    let _sweeper = monitor.start().unwrap();
    for _ in 0..14 {
        sleep(Duration::from_secs(5)).await;
        for r in 0..3usize {
            monitor.heartbeat(MemberId::Rank(r)).unwrap();
        }
    }
    assert_eq!(degradation.level("job"), ReadOnly);
    monitor.remove_member(MemberId::Rank(3)); // no event: seen at the next tick
    sleep(Duration::from_secs(5)).await;
    assert_eq!(degradation.level("job"), Normal);
}

#[tokio::test(start_paused = true)]
async fn stopping_or_dropping_a_watcher_withdraws_its_levels() {
    let monitor = HealthMonitor::default();
    monitor.add_member(0usize);
    let degradation = DegradationManager::new();
    let watcher = degradation
        .watch_health_as(&monitor, "job", HealthRules::default())
        .unwrap();
    let sweeper = monitor.start().unwrap();
    sleep(Duration::from_secs(70)).await;
    assert_eq!(degradation.level("job"), Offline);
    watcher.stop().await;
    assert_eq!(degradation.level("job"), Normal);

    let watcher = degradation
        .watch_health_as(&monitor, "job", HealthRules::default())
        .unwrap();
    let task = watcher.abort_handle();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(degradation.level("job"), Offline);
    drop(watcher);
    tokio::task::yield_now().await;
    assert!(task.is_finished());
    assert_eq!(degradation.level("job"), Normal);
    sweeper.stop().await;
}

#[test]
fn watching_needs_a_runtime() {
    let monitor = HealthMonitor::default();
    let degradation = DegradationManager::new();
    assert!(degradation
        .watch_health_as(&monitor, "job", HealthRules::default())
        .is_err());
}

#[test]
fn rules_serde_round_trip_and_validation() {
    let rules = HealthRules::builder()
        .on_unresponsive(ReadOnly)
        .on_any_failed(ReadOnly)
        .on_majority_failed(Offline)
        .on_all_failed(Offline)
        .build()
        .unwrap();
    let json = serde_json::to_string(&rules).unwrap();
    assert!(json.contains("\"read_only\""), "{json}");
    assert_eq!(serde_json::from_str::<HealthRules>(&json).unwrap(), rules);
    assert_eq!(
        serde_json::from_str::<HealthRules>("{}").unwrap(),
        HealthRules::default()
    );
    let err = serde_json::from_str::<HealthRules>(r#"{"on_all_failed":"normal"}"#).unwrap_err();
    assert!(err.to_string().contains("on_all_failed"), "{err}");
}

/// The serialized field names and defaults stay as they were, and a
/// misspelt field is refused.
#[test]
fn rules_serialized_form_is_stable_and_refuses_unknown_fields() {
    let json = serde_json::to_string(&HealthRules::default()).unwrap();
    assert_eq!(
        json,
        r#"{"on_unresponsive":"normal","on_any_failed":"read_only","on_majority_failed":"essential_only","on_all_failed":"offline"}"#
    );
    assert_eq!(
        serde_json::from_str::<HealthRules>(&json).unwrap(),
        HealthRules::default()
    );
    let err = serde_json::from_str::<HealthRules>(r#"{"on_failed":"offline"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    assert!(err.to_string().contains("on_failed"), "{err}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DegradationManager>();
    assert_send_sync::<LevelChange>();
    assert_send_sync::<HealthRules>();
    assert_send_sync::<ServiceLevel>();
}

mod breaker_watch {
    use std::time::Duration;

    use steadfast::breaker::{CircuitBreaker, State};
    use steadfast::degradation::{DegradationManager, OperationKind, ServiceLevel};
    use tokio::task::yield_now;

    use super::{drain, summary};

    #[tokio::test(start_paused = true)]
    async fn breaker_open_degrades_and_closed_restores() {
        let breaker = CircuitBreaker::builder()
            .failure_threshold(2)
            .recovery_timeout(Duration::from_secs(10))
            .success_threshold(1)
            .build()
            .unwrap();
        let degradation = DegradationManager::new();
        let mut events = degradation.subscribe();
        let watcher = degradation
            .watch_breaker("payments", &breaker, ServiceLevel::EssentialOnly)
            .unwrap();
        yield_now().await;
        assert_eq!(degradation.level("payments"), ServiceLevel::Normal);

        breaker.try_acquire().unwrap().failure();
        yield_now().await;
        assert_eq!(degradation.level("payments"), ServiceLevel::Normal);
        breaker.try_acquire().unwrap().failure();
        assert_eq!(breaker.state(), State::Open);
        yield_now().await;
        assert_eq!(degradation.level("payments"), ServiceLevel::EssentialOnly);
        assert!(!degradation.allows("payments", OperationKind::Read));
        assert!(degradation.allows("payments", OperationKind::Essential));

        // half-open: still degraded
        tokio::time::advance(Duration::from_secs(10)).await;
        let trial = breaker.try_acquire().unwrap();
        assert_eq!(breaker.state(), State::HalfOpen);
        yield_now().await;
        assert_eq!(degradation.level("payments"), ServiceLevel::EssentialOnly);
        // the trial succeeds: closed, restored
        trial.success();
        assert_eq!(breaker.state(), State::Closed);
        yield_now().await;
        assert_eq!(degradation.level("payments"), ServiceLevel::Normal);

        let got = drain(&mut events);
        assert_eq!(
            summary(&got),
            vec![
                (
                    Some("payments"),
                    ServiceLevel::Normal,
                    ServiceLevel::EssentialOnly
                ),
                (None, ServiceLevel::Normal, ServiceLevel::EssentialOnly),
                (
                    Some("payments"),
                    ServiceLevel::EssentialOnly,
                    ServiceLevel::Normal
                ),
                (None, ServiceLevel::EssentialOnly, ServiceLevel::Normal),
            ]
        );
        assert!(
            got[0].reason.contains("closed -> open"),
            "{}",
            got[0].reason
        );
        assert!(
            got[2].reason.contains("half-open -> closed"),
            "{}",
            got[2].reason
        );
        watcher.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_breaker_already_open_degrades_at_once_and_stopping_restores() {
        let breaker = CircuitBreaker::default();
        breaker.force_open();
        let degradation = DegradationManager::new();
        let watcher = degradation
            .watch_breaker("search", &breaker, ServiceLevel::ReadOnly)
            .unwrap();
        yield_now().await;
        assert_eq!(degradation.level("search"), ServiceLevel::ReadOnly);
        watcher.stop().await;
        assert_eq!(degradation.level("search"), ServiceLevel::Normal);
        assert_eq!(
            breaker.state(),
            State::Open,
            "the breaker itself is untouched"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_and_operator_levels_combine() {
        let breaker = CircuitBreaker::default();
        let degradation = DegradationManager::new();
        let _watcher = degradation
            .watch_breaker("db", &breaker, ServiceLevel::ReadOnly)
            .unwrap();
        degradation.set_level("db", ServiceLevel::Offline, "maintenance");
        breaker.force_open();
        yield_now().await;
        assert_eq!(degradation.level("db"), ServiceLevel::Offline);
        degradation.set_level("db", ServiceLevel::Normal, "maintenance over");
        assert_eq!(
            degradation.level("db"),
            ServiceLevel::ReadOnly,
            "the breaker is still open"
        );
        breaker.reset();
        yield_now().await;
        assert_eq!(degradation.level("db"), ServiceLevel::Normal);
    }
}
