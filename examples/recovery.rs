//! Coordinated recovery in one process: three ranks and a standby of an
//! `InMemoryCoordinator` job compute a sum over 30 steps, checkpointing
//! every 5. At step 13 rank 2 dies. The survivors' step fails at once
//! (naming rank 2), they agree on a plan through the coordinator, the
//! standby takes over rank 2 from the last checkpoint, every rank restores
//! that checkpoint, and the job finishes with the right result.
//!
//! Run with `cargo run --example recovery`. It takes well under a second.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::checkpoint::{
    CheckpointOptions, DistributedCheckpoint, MembershipFence, SaveOptions, ShardData,
};
use steadfast::coordinator::{Coordinator, CoordinatorFaults, InMemoryCoordinator, Membership};
use steadfast::recovery::{RecoveryCoordinator, RecoveryCoordinatorConfig, RecoveryEvent};
use steadfast::retry::RetryPolicy;
use steadfast::storage::MemoryStorage;
use tokio::sync::broadcast;

const STEPS: u64 = 30;
const CHECKPOINT_EVERY: u64 = 5;
const DIES_AT: u64 = 13;
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

type Ckpt = Arc<DistributedCheckpoint<MemoryStorage, InMemoryCoordinator>>;

/// What a rank has computed: the last step it finished and its sum.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Progress {
    step: u64,
    sum: u64,
}

impl Progress {
    fn to_bytes(self) -> Vec<u8> {
        [self.step.to_le_bytes(), self.sum.to_le_bytes()].concat()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (step, sum) = bytes.split_first_chunk::<8>()?;
        Some(Progress {
            step: u64::from_le_bytes(*step),
            sum: u64::from_le_bytes(sum.try_into().ok()?),
        })
    }
}

/// Each rank adds `(rank + 1) * step` at every step.
fn expected_sum(rank: usize) -> u64 {
    (1..=STEPS).map(|step| (rank as u64 + 1) * step).sum()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "steadfast::recovery=info".into()),
        )
        .compact()
        .init();

    let storage = MemoryStorage::new();
    let ranks = InMemoryCoordinator::new(3);
    let standby = ranks[0].add_standby("spare-0")?;
    let faults = ranks[0].faults();
    let config = RecoveryCoordinatorConfig::builder()
        .quorum_size(2)
        .answer_window(Duration::from_millis(200))
        .build()?;

    let mut workers = Vec::new();
    for member in ranks.into_iter().chain([standby]) {
        let fence = MembershipFence::new(member.clone());
        let ckpt: Ckpt = Arc::new(
            DistributedCheckpoint::new(
                storage.clone(),
                member.clone(),
                RetryPolicy::default(),
                CheckpointOptions::default(),
            )
            .with_fence(fence.clone()),
        );
        let progress = Arc::new(Mutex::new(Progress::default()));
        let (restore_ckpt, restore_into) = (Arc::clone(&ckpt), Arc::clone(&progress));
        let recovery = RecoveryCoordinator::builder(member.clone())
            .config(config)
            .checkpoints(Arc::clone(&ckpt))
            .fence(fence)
            .on_failure(move |ctx| {
                let (ckpt, progress) = (Arc::clone(&restore_ckpt), Arc::clone(&restore_into));
                async move {
                    let restored = match &ctx.plan.checkpoint {
                        Some(name) => {
                            let bytes = ckpt
                                .load_entry(name, &format!("progress.{}", ctx.assignment.shards[0]))
                                .await?;
                            Progress::from_bytes(&bytes).ok_or("a damaged progress entry")?
                        }
                        None => Progress::default(),
                    };
                    println!(
                        "  {} restores rank {}'s progress at step {} from {:?}",
                        ctx.member, ctx.assignment.shards[0], restored.step, ctx.plan.checkpoint
                    );
                    *progress.lock().unwrap() = restored;
                    Ok(())
                }
            })
            .build();
        let events = recovery.subscribe();
        if member.role().rank().is_some() {
            recovery.establish_leader(Duration::from_secs(5)).await.ok();
        }
        let handle = recovery.start();
        workers.push(tokio::spawn(work(
            member,
            ckpt,
            progress,
            events,
            handle,
            faults.clone(),
        )));
    }

    let mut results = Vec::new();
    for worker in workers {
        results.push(worker.await?);
    }
    let mut finished: Vec<(usize, Progress)> = results.into_iter().flatten().collect();
    finished.sort_by_key(|(rank, _)| *rank);
    println!("the job finished:");
    for (rank, progress) in &finished {
        println!(
            "  rank {rank}: step {} sum {} (expected {})",
            progress.step,
            progress.sum,
            expected_sum(*rank)
        );
        assert_eq!(
            progress.sum,
            expected_sum(*rank),
            "rank {rank} has the wrong result"
        );
    }
    assert_eq!(
        finished.len(),
        3,
        "three ranks finish, the standby among them"
    );
    println!("every rank has the right result");
    Ok(())
}

/// One member's loop: wait for a rank, compute, checkpoint; after a failure
/// wait for the recovery, which restored `progress`, and go on. Returns the
/// rank and progress it finished with, `None` if it died.
async fn work(
    member: InMemoryCoordinator,
    ckpt: Ckpt,
    progress: Arc<Mutex<Progress>>,
    mut events: broadcast::Receiver<RecoveryEvent>,
    handle: steadfast::recovery::RecoveryHandle,
    faults: CoordinatorFaults,
) -> Option<(usize, Progress)> {
    // A standby waits until a recovery gives it a rank.
    while member.role().rank().is_none() {
        wait_for_recovery(&member, &mut events, "is a standby").await?;
    }
    // The epoch this member's steps run in. Its collectives must not run in
    // a newer epoch before the recovery that made it is confirmed (its
    // handlers restored `progress`): check before every step and every
    // collective.
    let mut epoch = member.epoch();
    loop {
        if member.epoch() != epoch {
            wait_for_recovery(&member, &mut events, "between steps").await?;
            epoch = member.epoch();
        }
        let mut now = *progress.lock().unwrap();
        if now.step == STEPS {
            handle.stop().await;
            return Some((member.rank(), now));
        }
        now.step += 1;
        if member.member_id() == "rank-2" && now.step == DIES_AT {
            println!("rank 2 dies at step {DIES_AT} (its process would be SIGKILLed)");
            faults.kill(2);
            handle.stop().await;
            return None;
        }
        // The step's work.
        tokio::time::sleep(Duration::from_millis(10)).await;
        now.sum += (member.rank() as u64 + 1) * now.step;
        if member.epoch() != epoch {
            continue;
        }
        let step = async {
            member
                .barrier(STEP_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            if now.step.is_multiple_of(CHECKPOINT_EVERY) {
                let shard = ShardData::new()
                    .with_entry(format!("progress.{}", member.rank()), now.to_bytes());
                ckpt.save(
                    &format!("step-{}", now.step),
                    &shard,
                    SaveOptions::new().step(now.step),
                )
                .await
                .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        };
        match step.await {
            Ok(()) => *progress.lock().unwrap() = now,
            Err(e) => {
                let why = format!("at step {}: {e}", now.step);
                wait_for_recovery(&member, &mut events, &why).await?;
                epoch = member.epoch();
            }
        }
    }
}

/// Waits for the recovery this member takes part in; `None` if the job went
/// on without it.
async fn wait_for_recovery(
    member: &InMemoryCoordinator,
    events: &mut broadcast::Receiver<RecoveryEvent>,
    why: &str,
) -> Option<()> {
    println!("{} {why}; waiting for the recovery", member.member_id());
    loop {
        match events.recv().await {
            Ok(RecoveryEvent::Recovered { plan, took }) => {
                println!(
                    "{} recovered as rank {} of epoch {} ({took:?} after it noticed the failure)",
                    member.member_id(),
                    member.rank(),
                    plan.epoch
                );
                return Some(());
            }
            Ok(RecoveryEvent::Fenced { .. }) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
