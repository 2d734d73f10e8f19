//! The checkpoint manager under SIGKILL: a real child process trains, with
//! two ranks, and checkpoints through a `CheckpointManager` with
//! asynchronous, zstd-compressed saves to a local directory; the parent kills
//! it at seeded random moments, many times over the same directory.
//!
//! The child restores from the newest checkpoint when it starts (as a job
//! restarting after a crash does), then steps on, asking the manager for a
//! checkpoint at every step (one is taken whenever none is in flight, so a
//! background save is running almost all the time). It prints a line when a
//! save starts (the snapshot is taken) and rank 0 prints one when a save is
//! reported committed.
//!
//! Every other kill is aimed just after a save has started, the rest land
//! anywhere in the cycle of saves; how many hit a save in flight is counted
//! from what the child printed, and must be at least half.
//!
//! After every kill the parent restores with a fresh manager and checks
//! that:
//! - `restore_latest()` succeeds and restores, on every rank, exactly the
//!   state of the step the restored checkpoint was taken at;
//! - the restored checkpoint is one the child reported committed, or the one
//!   in flight at the kill (its commit may have landed unreported), and it is
//!   no older than the newest reported committed;
//! - nothing the kill left behind stops the next child from saving (each
//!   round's child must commit before it is killed).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use steadfast::checkpoint::{CheckpointOptions, Compression, DistributedCheckpoint};
use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
use steadfast::manager::{
    CheckpointEvent, CheckpointManager, JsonState, RecoveryFilter, RetentionPolicy,
};
use steadfast::retry::RetryPolicy;
use steadfast::storage::LocalFsStorage;

const DIR_VAR: &str = "STEADFAST_MANAGER_CRASH_DIR";
const CHILD: &str = "child_trains_until_killed";
const ROUNDS: u32 = 50;
const RANKS: usize = 2;
const SEED: u64 = 0x00c0_ffee_5eed;

/// What a rank trains: weights that follow from the rank and the step, so
/// that the parent can check every value. Half of them repeat, so zstd has
/// something to compress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Model {
    rank: usize,
    weights: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Progress {
    step: u64,
}

fn model_at(rank: usize, step: u64) -> Model {
    let len = 20_000 + (step % 7) as usize * 15_000;
    let weights = (0..len)
        .map(|i| {
            if i % 2 == 0 {
                0
            } else {
                (step as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add((i as u32) ^ (rank as u32))
            }
        })
        .collect();
    Model { rank, weights }
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(2)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
        .build()
        .unwrap()
}

/// Rank `rank`'s manager over `dir`, with its two states registered.
fn manager(
    dir: &Path,
    coordinator: InMemoryCoordinator,
) -> (
    CheckpointManager<LocalFsStorage, InMemoryCoordinator>,
    JsonState<Model>,
    JsonState<Progress>,
) {
    let storage = LocalFsStorage::new(dir).unwrap();
    let ckpt =
        DistributedCheckpoint::new(storage, coordinator, policy(), CheckpointOptions::default());
    let manager = CheckpointManager::builder(ckpt)
        .prefix("run")
        .every_n_steps(1)
        .compression(Compression::zstd_level(1))
        .retention(RetentionPolicy::keep_all().keep_last(4))
        .build()
        .unwrap();
    let model = JsonState::new(Model::default());
    let progress = JsonState::new(Progress::default());
    manager.register_state("model", model.clone()).unwrap();
    manager
        .register_state("progress", progress.clone())
        .unwrap();
    (manager, model, progress)
}

/// The child: restores, then trains and checkpoints until it is killed. Does
/// nothing unless run by the parent.
#[test]
#[ignore = "run by manager_survives_sigkill as a child process"]
fn child_trains_until_killed() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut ranks = Vec::new();
        for coordinator in InMemoryCoordinator::new(RANKS) {
            let dir = dir.clone();
            ranks.push(tokio::spawn(async move {
                let rank = coordinator.rank();
                let (manager, model, progress) = manager(Path::new(&dir), coordinator);
                if rank == 0 {
                    let mut events = Box::pin(manager.events());
                    tokio::spawn(async move {
                        while let Some(event) = events.next().await {
                            match event {
                                CheckpointEvent::Committed { info, .. } => {
                                    println!(
                                        "COMMITTED {} {} {}",
                                        info.name,
                                        info.sequence.unwrap(),
                                        info.step.unwrap()
                                    );
                                }
                                CheckpointEvent::Failed { name, error } => {
                                    eprintln!("FAILED {name} {error:?}");
                                    println!("FAILED {name}");
                                }
                                _ => {}
                            }
                        }
                    });
                }
                let restored = manager.restore_latest().await.unwrap();
                let mut step = match restored {
                    Some(_) => progress.get().step,
                    None => 0,
                };
                // Bounded, in case the parent never kills.
                for _ in 0..100_000 {
                    step += 1;
                    model.set(model_at(rank, step));
                    progress.set(Progress { step });
                    if let Some(pending) = manager.step().await.unwrap()
                        && rank == 0
                    {
                        println!("STARTED {} {step}", pending.name());
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        for rank in ranks {
            rank.await.unwrap();
        }
    });
}

/// What the child printed: the saves started and the commits reported.
#[derive(Default)]
struct Seen {
    /// Name → step, for every save started or committed.
    started: BTreeMap<String, u64>,
    /// Name → sequence, for every commit reported.
    committed: BTreeMap<String, u64>,
    /// The last save started and not (yet) reported committed.
    in_flight: Option<String>,
}

impl Seen {
    fn read(&mut self, line: &str, round: u32) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("STARTED"), Some(name), Some(step)) => {
                self.started.insert(name.to_string(), step.parse().unwrap());
                // The commit may be reported before the start is printed.
                if !self.committed.contains_key(name) {
                    self.in_flight = Some(name.to_string());
                }
            }
            (Some("COMMITTED"), Some(name), Some(sequence)) => {
                let step = words.next().unwrap().parse().unwrap();
                self.started.insert(name.to_string(), step);
                self.committed
                    .insert(name.to_string(), sequence.parse().unwrap());
                if self.in_flight.as_deref() == Some(name) {
                    self.in_flight = None;
                }
            }
            (Some("FAILED"), ..) => panic!("round {round}: a save failed: {line:?}"),
            _ => {}
        }
    }
}

#[test]
fn manager_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = SmallRng::seed_from_u64(SEED);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut seen = Seen::default();
    let mut kills_in_flight = 0;

    for round in 0..ROUNDS {
        let commits_before_kill = rng.random_range(1..=3);
        // Even rounds kill just after a save has started (its snapshot
        // taken, its write in the background); odd rounds at any moment of
        // the cycle of saves.
        let aim_at_a_save = round % 2 == 0;
        let extra = if aim_at_a_save {
            Duration::from_micros(rng.random_range(0..5_000))
        } else {
            Duration::from_micros(rng.random_range(0..60_000))
        };
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                CHILD,
                "--nocapture",
                "--ignored",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            // A panic of the child shows in this test's output.
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        seen.in_flight = None;
        let mut commits = 0;
        while commits < commits_before_kill {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("round {round}: the child stopped early"))
                .unwrap();
            commits += usize::from(line.starts_with("COMMITTED "));
            seen.read(&line, round);
        }
        while aim_at_a_save && seen.in_flight.is_none() {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("round {round}: the child stopped early"))
                .unwrap();
            seen.read(&line, round);
        }
        std::thread::sleep(extra);
        child.kill().unwrap();
        child.wait().unwrap();
        for line in lines.map_while(Result::ok) {
            seen.read(&line, round);
        }
        kills_in_flight += usize::from(seen.in_flight.is_some());
        let newest_reported = seen.committed.values().copied().max().unwrap();

        runtime.block_on(async {
            let mut restores = Vec::new();
            for coordinator in InMemoryCoordinator::new(RANKS) {
                let dir = dir.path().to_path_buf();
                restores.push(tokio::spawn(async move {
                    let rank = coordinator.rank();
                    let (manager, model, progress) = manager(&dir, coordinator);
                    let report = manager
                        .restore_latest()
                        .await
                        .unwrap_or_else(|e| panic!("rank {rank}: {e}"))
                        .unwrap_or_else(|| panic!("rank {rank}: nothing to restore"));
                    let step = progress.get().step;
                    assert_eq!(model.get(), model_at(rank, step), "rank {rank}");
                    assert!(
                        report.skipped.is_empty(),
                        "rank {rank}: {:?}",
                        report.skipped
                    );
                    // The points a fresh manager lists are ordered by sequence.
                    let points = manager
                        .recovery_points(&RecoveryFilter::all())
                        .await
                        .unwrap();
                    assert_eq!(points.first().map(|p| &p.name), Some(&report.point.name));
                    (report.point, step)
                }));
            }
            let mut restored = Vec::new();
            for restore in restores {
                restored.push(restore.await.unwrap());
            }
            let (point, step) = restored[0].clone();
            assert!(
                restored
                    .iter()
                    .all(|(p, s)| p.name == point.name && *s == step),
                "round {round}: the ranks restored different checkpoints"
            );
            let reported = seen.committed.contains_key(&point.name);
            assert!(
                reported || seen.in_flight.as_ref() == Some(&point.name),
                "round {round}: restored {} which was never reported committed nor in flight",
                point.name
            );
            assert!(
                point.sequence.unwrap() >= newest_reported,
                "round {round}: restored {} older than the newest reported commit",
                point.name
            );
            assert_eq!(
                seen.started.get(&point.name),
                Some(&step),
                "round {round}: {} holds the state of another step",
                point.name
            );
            assert_eq!(point.step, Some(step), "round {round}: {}", point.name);
        });
    }
    eprintln!(
        "{ROUNDS} kills, {kills_in_flight} while a background save was in flight, {} checkpoints committed",
        seen.committed.len()
    );
    assert!(
        kills_in_flight * 2 >= ROUNDS as usize,
        "only {kills_in_flight} of {ROUNDS} kills landed during a background save"
    );
}
