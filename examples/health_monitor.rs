//! Health monitoring of a distributed job, with graceful degradation.
//!
//! Eight ranks exchange heartbeats through an in-memory coordinator, one
//! [`CoordinatorHeartbeat`] task per rank. Rank 0's monitor is watched by a
//! [`DegradationManager`]. At 20 s ranks 6 and 7 stop: rank 0's monitor
//! reports them Unresponsive (silent > 30 s) and then Failed (> 60 s), and
//! the training service degrades to ReadOnly. At 120 s they come back and the
//! service recovers.
//!
//! Time is tokio's paused clock, so the two-minute timeline runs in a
//! fraction of a second.
//!
//! ```text
//! cargo run --example health_monitor
//! ```

use std::time::Duration;

use steadfast::coordinator::InMemoryCoordinator;
use steadfast::degradation::{DegradationManager, HealthRules, OperationKind};
use steadfast::health::{
    CoordinatorHeartbeat, HealthMonitor, HealthStatus, HeartbeatConfig, MonitorHandle,
};
use tokio::time::{sleep, Instant};

const WORLD_SIZE: usize = 8;
const STOPPING: [usize; 2] = [6, 7];

fn stamp(start: Instant) -> String {
    format!("[{:>6.1}s]", start.elapsed().as_secs_f64())
}

fn start_rank(rank: &InMemoryCoordinator, monitor: &HealthMonitor) -> MonitorHandle {
    CoordinatorHeartbeat::new(rank.clone(), monitor.clone(), HeartbeatConfig::default())
        .start()
        .expect("running inside a tokio runtime")
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let start = Instant::now();
    let ranks = InMemoryCoordinator::new(WORLD_SIZE);
    // Each rank watches its peers with a monitor of its own (30 s timeout,
    // 5 s sweeps); this example follows rank 0's.
    let monitors: Vec<HealthMonitor> = (0..WORLD_SIZE).map(|_| HealthMonitor::default()).collect();
    let observer = &monitors[0];
    let degradation = DegradationManager::new();

    let mut health_events = observer.subscribe();
    let mut level_events = degradation.subscribe();
    let printer = tokio::spawn(async move {
        loop {
            tokio::select! {
                change = health_events.recv() => match change {
                    Ok(c) => println!(
                        "{} health   {:<8} {} -> {}",
                        stamp(start), c.member.to_string(), c.old, c.new
                    ),
                    Err(_) => break,
                },
                change = level_events.recv() => match change {
                    Ok(c) => println!(
                        "{} level    {:<8} {} -> {}   ({})",
                        stamp(start),
                        c.component.as_deref().unwrap_or("service"),
                        c.old,
                        c.new,
                        c.reason
                    ),
                    Err(_) => break,
                },
            }
        }
    });

    let mut beats: Vec<Option<MonitorHandle>> = ranks
        .iter()
        .zip(&monitors)
        .map(|(rank, monitor)| Some(start_rank(rank, monitor)))
        .collect();
    let sweeper = observer.start().expect("running inside a tokio runtime");
    let watcher = degradation
        .watch_health_as(observer, "training", HealthRules::default())
        .expect("running inside a tokio runtime");
    println!(
        "{} {} ranks heartbeat every 1 s; rank 0 watches them",
        stamp(start),
        WORLD_SIZE
    );

    sleep(Duration::from_secs(20)).await;
    println!("{} ranks 6 and 7 stop", stamp(start));
    for rank in STOPPING {
        if let Some(handle) = beats[rank].take() {
            handle.stop().await;
        }
    }

    sleep(Duration::from_secs(100)).await;
    let snapshot = observer.snapshot();
    println!(
        "{} rank 0 sees {} healthy, {} failed; writes allowed: {}",
        stamp(start),
        snapshot.count(HealthStatus::Healthy),
        snapshot.count(HealthStatus::Failed),
        degradation.allows("training", OperationKind::Write),
    );
    for member in snapshot
        .members
        .iter()
        .filter(|m| m.status != HealthStatus::Healthy)
    {
        println!(
            "{}   {} silent for {:.0} s",
            stamp(start),
            member.member,
            member.silent_for.as_secs_f64()
        );
    }

    println!("{} ranks 6 and 7 come back", stamp(start));
    for rank in STOPPING {
        beats[rank] = Some(start_rank(&ranks[rank], &monitors[rank]));
    }
    sleep(Duration::from_secs(10)).await;
    println!(
        "{} rank 0 sees {} healthy; writes allowed: {}; service level: {}",
        stamp(start),
        observer.healthy().len(),
        degradation.allows("training", OperationKind::Write),
        degradation.service_level(),
    );
    assert_eq!(observer.status(7usize), Some(HealthStatus::Healthy));

    watcher.stop().await;
    sweeper.stop().await;
    for handle in beats.into_iter().flatten() {
        handle.stop().await;
    }
    drop(monitors);
    drop(degradation);
    let _ = printer.await;
}
