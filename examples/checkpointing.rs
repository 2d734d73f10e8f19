//! Automatic checkpoints of a training loop, a real crash, and recovery.
//!
//! A toy trainer registers two states with a `CheckpointManager`
//! (`agent_state`, its weights, and `evolution_progress`, how far it got),
//! and the manager checkpoints them on its own every 200 ms: asynchronously
//! (the loop waits only while the states are copied) and compressed with
//! zstd, to a directory. This program runs the trainer as a child process,
//! kills it with SIGKILL part-way, and starts it again: the new trainer
//! restores the newest checkpoint by itself and goes on. Then it lists the
//! recovery points, restores an earlier one, and lets retention by age clear
//! the old ones.
//!
//! Run it with `cargo run --example checkpointing`; it takes a few seconds.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use steadfast::checkpoint::{CheckpointOptions, Compression, DistributedCheckpoint};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::manager::{
    CheckpointEvent, CheckpointManager, JsonState, RecoveryFilter, RetentionPolicy,
};
use steadfast::retry::RetryPolicy;
use steadfast::storage::LocalFsStorage;

/// Set in the trainer's environment: the checkpoint directory.
const TRAINER_DIR: &str = "STEADFAST_EXAMPLE_TRAINER_DIR";
/// Set in the trainer's environment: stop cleanly after this many commits.
const TRAINER_COMMITS: &str = "STEADFAST_EXAMPLE_TRAINER_COMMITS";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The agent's weights: a toy that changes at every step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct AgentState {
    weights: Vec<f32>,
}

/// How far training got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct EvolutionProgress {
    step: u64,
    best_reward: f32,
}

fn train_one_step(agent: &mut AgentState, progress: &mut EvolutionProgress) {
    progress.step += 1;
    for (i, w) in agent.weights.iter_mut().enumerate() {
        *w = 0.99 * *w + 0.01 * ((progress.step as f32 + i as f32) % 10.0);
    }
    let reward = agent.weights.iter().take(8).sum::<f32>();
    progress.best_reward = progress.best_reward.max(reward);
}

/// A manager and the two states registered with it.
type Trainer = (
    CheckpointManager<LocalFsStorage, InMemoryCoordinator>,
    JsonState<AgentState>,
    JsonState<EvolutionProgress>,
);

/// One rank's manager over `dir`, checkpointing every 200 ms, with the two
/// states registered.
fn open_manager(dir: &Path, retention: RetentionPolicy) -> Result<Trainer, BoxError> {
    let storage = LocalFsStorage::new(dir)?;
    let rank = InMemoryCoordinator::new(1).remove(0);
    let ckpt = DistributedCheckpoint::new(
        storage,
        rank,
        RetryPolicy::default(),
        CheckpointOptions::default(),
    );
    let manager = CheckpointManager::builder(ckpt)
        .prefix("trainer")
        .interval(Duration::from_millis(200))
        .compression(Compression::zstd_level(1))
        .retention(retention)
        .build()?;
    let agent = JsonState::new(AgentState {
        weights: vec![0.0; 4096],
    });
    let progress = JsonState::new(EvolutionProgress::default());
    manager.register_state("agent_state", agent.clone())?;
    manager.register_state("evolution_progress", progress.clone())?;
    Ok((manager, agent, progress))
}

/// The trainer (the child process): restores what it can, trains with
/// automatic checkpoints, and stops cleanly after `commits` of them, unless
/// it is killed first.
async fn trainer(dir: &Path, commits: usize) -> Result<(), BoxError> {
    let (manager, agent, progress) = open_manager(dir, RetentionPolicy::keep_all())?;
    // What a killed save left behind (no manifest, so no checkpoint) goes
    // first; then the newest checkpoint that verifies is restored.
    let cleanup = manager.checkpoint().cleanup_on_start().await?;
    if !cleanup.removed.is_empty() {
        println!(
            "  trainer: removed what a killed save left: {:?}",
            cleanup.removed
        );
    }
    match manager.restore_latest().await? {
        Some(report) => {
            for (name, why) in &report.skipped {
                println!("  trainer: skipped {name}: {why}");
            }
            println!(
                "  trainer: restored {} (step {}), going on from there",
                report.point.name,
                progress.get().step
            );
        }
        None => println!("  trainer: no checkpoint yet, starting from scratch"),
    }
    let mut events = Box::pin(manager.events());
    let schedule = manager.start();
    let mut committed = 0;
    loop {
        agent.update(|a| progress.update(|p| train_one_step(a, p)));
        // Counts the step, recorded with the next checkpoint (the schedule
        // is by time here, so no step is due).
        manager.step().await?;
        // A step of "work".
        tokio::time::sleep(Duration::from_millis(5)).await;
        while let Some(Some(event)) = events.next().now_or_never() {
            if let CheckpointEvent::Committed { info, timings } = event {
                committed += 1;
                println!(
                    "  trainer: checkpoint {} committed at step {} ({} bytes stored, the loop waited {:?})",
                    info.name,
                    info.step.unwrap_or(0),
                    info.total_size,
                    timings.snapshot,
                );
            }
        }
        if committed >= commits {
            break;
        }
    }
    let last = schedule.stop(true).await?;
    if let Some(info) = last {
        println!(
            "  trainer: final checkpoint {} at step {}",
            info.name,
            info.step.unwrap_or(0)
        );
    }
    Ok(())
}

/// Runs the trainer as a child process. With `kill_after`, kills it with
/// SIGKILL once it has reported that many commits; otherwise waits for it
/// to stop by itself.
fn run_trainer(dir: &Path, commits: usize, kill_after: Option<usize>) -> Result<(), BoxError> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(TRAINER_DIR, dir)
        .env(TRAINER_COMMITS, commits.to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("the trainer has no stdout")?;
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if line.contains(" committed at step ") {
            seen += 1;
            if kill_after == Some(seen) {
                // Mid-run: the next background save may well be in flight.
                std::thread::sleep(Duration::from_millis(30));
                child.kill()?;
                println!("  ** SIGKILL: the trainer is gone, mid-run **");
                break;
            }
        }
    }
    let status = child.wait()?;
    if kill_after.is_none() && !status.success() {
        return Err(format!("the trainer failed: {status}").into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if let Ok(dir) = std::env::var(TRAINER_DIR) {
        let commits = std::env::var(TRAINER_COMMITS)?.parse()?;
        return trainer(Path::new(&dir), commits).await;
    }
    let dir = tempfile_dir()?;
    println!("checkpoints go to {}", dir.display());

    println!("\n1. The trainer runs, checkpointing every 200 ms, and is killed after 3 commits.");
    run_trainer(&dir, usize::MAX, Some(3))?;

    println!("\n2. Started again, it recovers by itself, and stops cleanly after 3 more.");
    run_trainer(&dir, 3, None)?;

    println!("\n3. The recovery points, newest first:");
    let (manager, _agent, progress) = open_manager(
        &dir,
        RetentionPolicy::keep_all().keep_for(Duration::from_millis(600)),
    )?;
    let points = manager.recovery_points(&RecoveryFilter::all()).await?;
    for point in &points {
        let age = SystemTime::now()
            .duration_since(point.committed_at)
            .unwrap_or_default();
        println!(
            "   {:<40} step {:>4}  sequence {:>3}  {:>6} bytes  {:>5} ms ago",
            point.name,
            point.step.unwrap_or(0),
            point.sequence.unwrap_or(0),
            point.size,
            age.as_millis()
        );
    }

    let earlier = points.get(points.len() / 2).ok_or("no recovery point")?;
    println!("\n4. Restore an earlier point: {}", earlier.name);
    let report = manager.restore(earlier).await?;
    println!(
        "   restored {:?} at step {} (resharded: {})",
        report.states,
        progress.get().step,
        report.resharded
    );

    println!("\n5. Retention by age keeps what is younger than 600 ms (and always the newest).");
    let retention = manager.apply_retention().await?;
    println!("   deleted {} old checkpoints", retention.removed.len());
    let left = manager.recovery_points(&RecoveryFilter::all()).await?;
    println!(
        "   {} left, the newest {}",
        left.len(),
        left.first().map_or("none", |p| p.name.as_str())
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> Result<std::path::PathBuf, BoxError> {
    let dir = std::env::temp_dir().join(format!("steadfast-checkpointing-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
