//! The crate's own flows under chaos (feature `chaos`), on the in-memory
//! coordinator and storage, on paused time: distributed checkpoints, the
//! checkpoint manager, coordinated recovery, retries and breakers, under
//! single faults, several at once, partitions and cascading failures. Each
//! flow ends by turning chaos off and checking that no committed checkpoint
//! was lost and that every visible one loads and verifies, byte for byte.
//!
//! And the wrappers themselves: the same seed gives the same faults, a
//! wrapper switched off (or at rate 0) is transparent, rates are validated,
//! and the switch flips at run time from another task.
//!
//! Every failure message starts with the recorder's stats, which name the
//! seed: set `CHAOS_SEED` to replay a run with another seed.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use steadfast::breaker::CircuitBreaker;
use steadfast::chaos::{
    Chaos, ChaosConfig, ChaosCoordinator, ChaosError, ChaosRecorder, ChaosStorage, ChaosSwitch,
    FaultKind, Partition, StorageChaosConfig,
};
use steadfast::checkpoint::{
    CheckpointError, CheckpointOptions, DistributedCheckpoint, LoadOptions, MembershipFence,
    SaveOptions, ShardData,
};
use steadfast::coordinator::{
    Coordinator, CoordinatorError, InMemoryCoordinator, Membership, Role,
};
use steadfast::manager::{CheckpointManager, JsonState, RecoveryFilter};
use steadfast::pipeline::{Pipeline, PipelineError, StoppedBy};
use steadfast::recovery::{
    RecoveryCoordinator, RecoveryCoordinatorConfig, RecoveryEvent, RecoveryStrategyKind,
};
use steadfast::retry::RetryPolicy;
use steadfast::storage::testing::Operation;
use steadfast::storage::{CheckpointStorage, MemoryStorage, StorageError};
use tokio::sync::broadcast;
use tokio::time::Instant;

type Store = ChaosStorage<MemoryStorage>;
type Coord = ChaosCoordinator<InMemoryCoordinator>;
type Ckpt = Arc<DistributedCheckpoint<Store, Coord>>;

/// The seed of this run: `CHAOS_SEED`, or a fixed one.
fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1234)
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(3)
        .initial_delay(Duration::from_millis(10))
        .build()
        .unwrap()
}

/// Storage chaos of every kind, at moderate rates.
fn every_storage_fault(seed: u64) -> StorageChaosConfig {
    StorageChaosConfig::builder()
        .seed(seed)
        .latency_between(0.3, Duration::from_millis(1), Duration::from_millis(40))
        .errors(0.05)
        .drops(0.02, Duration::from_millis(1))
        .failed_writes(0.05)
        .corrupt_reads(0.05)
        .torn_reads(0.05)
        .build()
        .unwrap()
}

/// The bytes rank `rank` saves in checkpoint `name`.
fn shard_bytes(name: &str, rank: usize) -> Vec<u8> {
    format!("{name}:{rank};").repeat(40).into_bytes()
}

/// A job of `world` ranks, each with its own chaos storage (over one
/// `MemoryStorage`) and chaos coordinator, sharing one switch, one
/// recorder and one partition controller.
struct Job {
    storage: MemoryStorage,
    switch: ChaosSwitch,
    recorder: ChaosRecorder,
    partition: Partition,
    ckpts: Vec<Ckpt>,
    /// What each attempted save wrote, by name, by rank.
    attempts: BTreeMap<String, Vec<Vec<u8>>>,
    /// The saves that returned success on some rank.
    committed: BTreeSet<String>,
}

impl Job {
    fn new(world: usize, storage: impl Fn(u64) -> StorageChaosConfig, coord: ChaosConfig) -> Job {
        let seed = seed();
        let memory = MemoryStorage::new();
        let switch = ChaosSwitch::new(true);
        let recorder = ChaosRecorder::with_log(10_000).seed(seed);
        let partition = Partition::new();
        let ckpts = InMemoryCoordinator::new(world)
            .into_iter()
            .enumerate()
            .map(|(rank, handle)| {
                let store = ChaosStorage::builder(memory.clone(), storage(seed + rank as u64))
                    .switch(switch.clone())
                    .recorder(recorder.clone())
                    .build()
                    .unwrap();
                let coord = ChaosCoordinator::builder(handle, coord.clone())
                    .switch(switch.clone())
                    .recorder(recorder.clone())
                    .partition(partition.clone())
                    .build()
                    .unwrap();
                Arc::new(DistributedCheckpoint::new(
                    store,
                    coord,
                    policy(),
                    CheckpointOptions::default(),
                ))
            })
            .collect();
        Job {
            storage: memory,
            switch,
            recorder,
            partition,
            ckpts,
            attempts: BTreeMap::new(),
            committed: BTreeSet::new(),
        }
    }

    /// Every rank saves `name`; returns each rank's outcome.
    async fn save(&mut self, name: &str, step: u64) -> Vec<Result<(), CheckpointError>> {
        let world = self.ckpts.len();
        self.attempts.insert(
            name.to_string(),
            (0..world).map(|r| shard_bytes(name, r)).collect(),
        );
        let tasks: Vec<_> = self
            .ckpts
            .iter()
            .map(|ckpt| {
                let (ckpt, name) = (Arc::clone(ckpt), name.to_string());
                tokio::spawn(async move {
                    let rank = ckpt.rank();
                    let shard = ShardData::new()
                        .with_entry(format!("state.{rank}"), shard_bytes(&name, rank));
                    ckpt.save(
                        &name,
                        &shard,
                        SaveOptions::new()
                            .step(step)
                            .timeout(Duration::from_secs(30)),
                    )
                    .await
                    .map(|_| ())
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        if outcomes.iter().any(Result::is_ok) {
            self.committed.insert(name.to_string());
        }
        outcomes
    }

    /// Under chaos, a load of any checkpoint either fails or returns the
    /// bytes that were saved: never other bytes.
    async fn load_under_chaos(&self, name: &str) {
        for ckpt in &self.ckpts {
            let rank = ckpt.rank();
            if let Ok(bytes) = ckpt.load(name, LoadOptions::default()).await {
                assert_eq!(
                    bytes,
                    self.attempts[name][rank],
                    "{}: rank {rank} loaded other bytes than it saved in {name}",
                    self.recorder.stats()
                );
            }
            if let Ok(bytes) = ckpt.load_entry(name, &format!("state.{rank}")).await {
                assert_eq!(
                    bytes,
                    self.attempts[name][rank],
                    "{}",
                    self.recorder.stats()
                );
            }
        }
    }

    /// Chaos off: every committed checkpoint is listed, and every listed
    /// one verifies and holds exactly the bytes its save wrote.
    async fn check_no_loss(&self) {
        self.switch.turn_off();
        self.partition.heal();
        check_visible(
            &self.ckpts[0],
            &self.attempts,
            &self.committed,
            &self.recorder,
        )
        .await;
    }
}

/// Every committed name is listed, and every listed checkpoint verifies and
/// holds, for each rank, the bytes its save wrote.
async fn check_visible<S: CheckpointStorage, C: Coordinator>(
    ckpt: &DistributedCheckpoint<S, C>,
    attempts: &BTreeMap<String, Vec<Vec<u8>>>,
    committed: &BTreeSet<String>,
    recorder: &ChaosRecorder,
) {
    let stats = recorder.stats();
    let listed: BTreeSet<String> = ckpt
        .list()
        .await
        .unwrap_or_else(|e| panic!("{stats}: list failed: {e}"))
        .into_iter()
        .map(|info| info.name)
        .collect();
    for name in committed {
        assert!(
            listed.contains(name),
            "{stats}: committed checkpoint {name} is lost; listed: {listed:?}"
        );
    }
    for name in &listed {
        let manifest = ckpt
            .verify(name)
            .await
            .unwrap_or_else(|e| panic!("{stats}: visible checkpoint {name} does not verify: {e}"));
        let saved = attempts
            .get(name)
            .unwrap_or_else(|| panic!("{stats}: {name} is listed but was never saved"));
        assert_eq!(manifest.world_size, saved.len(), "{stats}");
        for (rank, bytes) in saved.iter().enumerate() {
            let loaded = ckpt
                .load_entry(name, &format!("state.{rank}"))
                .await
                .unwrap_or_else(|e| panic!("{stats}: {name} rank {rank}: {e}"));
            assert_eq!(
                &loaded, bytes,
                "{stats}: {name} rank {rank} holds other bytes"
            );
        }
    }
}

// ---------------------------------------------------------------------
// The wrappers themselves.
// ---------------------------------------------------------------------

fn everything(seed: u64) -> ChaosConfig {
    ChaosConfig::builder()
        .seed(seed)
        .latency_between(0.4, Duration::from_millis(1), Duration::from_millis(100))
        .errors(0.2)
        .wrong_results(0.2)
        .drops(0.1, Duration::from_millis(5))
        .build()
        .unwrap()
}

fn operation_chaos(config: ChaosConfig) -> Chaos<u64, io::Error> {
    Chaos::builder(config)
        .error_with(|| io::Error::other("injected"))
        .mutate_with(|n| n + 1_000_000)
        .recorder(ChaosRecorder::with_log(1_000))
        .build()
        .unwrap()
}

/// What 200 calls through `chaos` return, and how long each took.
async fn outcomes(chaos: &Chaos<u64, io::Error>) -> Vec<(Result<u64, String>, Duration)> {
    let mut out = Vec::new();
    for i in 0..200u64 {
        let start = Instant::now();
        let result = chaos
            .run(|| async move { Ok::<_, io::Error>(i) })
            .await
            .map_err(|e| e.to_string());
        out.push((result, start.elapsed()));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_faults() {
    let a = operation_chaos(everything(42));
    let b = operation_chaos(everything(42));
    let c = operation_chaos(everything(43));
    let (ra, rb, rc) = (outcomes(&a).await, outcomes(&b).await, outcomes(&c).await);
    assert_eq!(ra, rb);
    assert_eq!(a.recorder().log(), b.recorder().log());
    assert_ne!(ra, rc, "another seed, other faults");
    let stats = a.recorder().stats();
    for kind in [
        FaultKind::Latency,
        FaultKind::Error,
        FaultKind::WrongResult,
        FaultKind::Dropped,
    ] {
        assert!(stats.count(kind) > 0, "{stats}: no {kind}");
    }
    assert!(stats.to_string().starts_with("seed 42: "), "{stats}");

    // Storage: the same calls, the same seed, the same faults and bytes.
    async fn storage_run(seed: u64) -> (Vec<String>, Vec<steadfast::chaos::InjectedFault>) {
        let memory = MemoryStorage::new();
        let storage = ChaosStorage::builder(memory, every_storage_fault(seed))
            .recorder(ChaosRecorder::with_log(1_000))
            .build()
            .unwrap();
        let mut seen = Vec::new();
        for i in 0..100 {
            let key = format!("k/{}", i % 7);
            seen.push(format!(
                "{:?}",
                storage.put(&key, vec![i as u8; 64].into()).await
            ));
            seen.push(format!("{:?}", storage.get(&key).await));
            seen.push(format!("{:?}", storage.get_range(&key, 3..40).await));
        }
        (seen, storage.recorder().log())
    }
    let (s1, log1) = storage_run(7).await;
    let (s2, log2) = storage_run(7).await;
    assert_eq!(s1, s2);
    assert_eq!(log1, log2);
    assert!(!log1.is_empty());
}

#[tokio::test(start_paused = true)]
async fn switched_off_or_at_rate_zero_a_wrapper_is_transparent() {
    // Operation: the switch off, then rate 0.
    let off = operation_chaos(everything(1));
    off.switch().turn_off();
    let zero = operation_chaos(ChaosConfig::builder().seed(1).build().unwrap());
    for chaos in [&off, &zero] {
        for (i, (result, took)) in outcomes(chaos).await.into_iter().enumerate() {
            assert_eq!(result, Ok(i as u64));
            assert_eq!(took, Duration::ZERO);
        }
        assert_eq!(chaos.recorder().total(), 0);
    }

    // No draw while off: calls made while off do not shift the faults of
    // the calls made after.
    let through = operation_chaos(everything(9));
    let paused = operation_chaos(everything(9));
    let mut expected = Vec::new();
    for i in 0..50u64 {
        expected.push(
            through
                .run(|| async move { Ok(i) })
                .await
                .map_err(|e| e.to_string()),
        );
    }
    let mut got = Vec::new();
    for i in 0..50u64 {
        if i == 20 {
            paused.switch().turn_off();
            for j in 0..30u64 {
                assert_eq!(paused.run(|| async move { Ok(j) }).await.unwrap(), j);
            }
            paused.switch().turn_on();
        }
        got.push(
            paused
                .run(|| async move { Ok(i) })
                .await
                .map_err(|e| e.to_string()),
        );
    }
    assert_eq!(got, expected);

    // Storage and coordinator: the same answers as the bare ones, no time.
    let bare = MemoryStorage::new();
    let wrapped = ChaosStorage::builder(MemoryStorage::new(), every_storage_fault(3))
        .build()
        .unwrap();
    wrapped.switch().turn_off();
    let start = Instant::now();
    for i in 0..50u8 {
        let key = format!("a/{i}");
        let data = vec![i; 100];
        bare.put(&key, data.clone().into()).await.unwrap();
        wrapped.put(&key, data.into()).await.unwrap();
        assert_eq!(
            bare.get(&key).await.unwrap(),
            wrapped.get(&key).await.unwrap()
        );
        assert_eq!(
            bare.get_range(&key, 5..9).await.unwrap(),
            wrapped.get_range(&key, 5..9).await.unwrap()
        );
        assert_eq!(
            bare.get_sized(&key, 100).await.unwrap(),
            wrapped.get_sized(&key, 100).await.unwrap()
        );
    }
    let keys =
        |l: Vec<steadfast::storage::ObjectMeta>| l.into_iter().map(|m| m.key).collect::<Vec<_>>();
    assert_eq!(
        keys(bare.list("a").await.unwrap()),
        keys(wrapped.list("a").await.unwrap())
    );
    assert!(matches!(
        wrapped.get("missing").await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(wrapped.recorder().total(), 0);

    let ranks: Vec<Coord> = InMemoryCoordinator::new(2)
        .into_iter()
        .map(|r| {
            let config = ChaosConfig::builder().seed(5).errors(1.0).build().unwrap();
            let chaos = ChaosCoordinator::builder(r, config).build().unwrap();
            chaos.switch().turn_off();
            chaos
        })
        .collect();
    let (a, b) = tokio::join!(
        ranks[0].all_gather(vec![0], Duration::from_secs(1)),
        ranks[1].all_gather(vec![1], Duration::from_secs(1)),
    );
    assert_eq!(a.unwrap(), vec![vec![0], vec![1]]);
    assert_eq!(b.unwrap(), vec![vec![0], vec![1]]);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[test]
fn rates_and_ranges_are_validated() {
    for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        let err = ChaosConfig::builder().errors(bad).build().unwrap_err();
        assert_eq!(err.field(), "error_rate");
        let err = ChaosConfig::builder()
            .latency(bad, Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "latency_rate");
        let err = StorageChaosConfig::builder()
            .corrupt_reads(bad)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "corrupt_read_rate");
        let err = StorageChaosConfig::builder()
            .failed_writes(bad)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "failed_write_rate");
    }
    for edge in [0.0, 1.0] {
        assert!(ChaosConfig::builder()
            .drops(edge, Duration::ZERO)
            .build()
            .is_ok());
    }
    let err = ChaosConfig::builder()
        .latency_between(1.0, Duration::from_secs(2), Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "max_latency");
    assert_eq!(
        StorageChaosConfig::builder()
            .operations([])
            .build()
            .unwrap_err()
            .field(),
        "operations"
    );
    // Deserialization checks the same rules, and names unknown keys.
    for (json, field) in [
        (r#"{"error_rate": 2}"#, "error_rate"),
        (r#"{"drop_rate": -1}"#, "drop_rate"),
        (
            r#"{"min_latency": "2s", "max_latency": "1s"}"#,
            "max_latency",
        ),
        (r#"{"error_rat": 0.5}"#, "error_rat"),
    ] {
        let err = serde_json::from_str::<ChaosConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{json}: {err}");
    }
    let err = serde_json::from_str::<StorageChaosConfig>(r#"{"operations": ["gte"]}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gte"), "{err}");
    // A rate above zero needs what it injects.
    let err = Chaos::<u8, String>::builder(ChaosConfig::builder().errors(0.1).build().unwrap())
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "error_rate");
    let err =
        Chaos::<u8, String>::builder(ChaosConfig::builder().wrong_results(0.1).build().unwrap())
            .build()
            .unwrap_err();
    assert_eq!(err.field(), "wrong_result_rate");
    // A coordinator takes no wrong results and no drops.
    let rank = InMemoryCoordinator::new(1).remove(0);
    let config = ChaosConfig::builder()
        .drops(0.1, Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(
        ChaosCoordinator::builder(rank, config)
            .build()
            .unwrap_err()
            .field(),
        "drop_rate"
    );
}

#[tokio::test(start_paused = true)]
async fn the_switch_flips_at_run_time_from_another_task() {
    let chaos: Chaos<u32, String> =
        Chaos::builder(ChaosConfig::builder().errors(1.0).build().unwrap())
            .error_with(|| "injected".to_string())
            .build()
            .unwrap();
    let switch = chaos.switch().clone();
    let flipper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        switch.turn_off();
        tokio::time::sleep(Duration::from_secs(5)).await;
        switch.turn_on();
    });
    let mut seen = Vec::new();
    for second in 0..15 {
        seen.push((second, chaos.run(|| async { Ok(1) }).await.is_ok()));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    flipper.await.unwrap();
    for (second, ok) in seen {
        assert_eq!(ok, (5..10).contains(&second), "second {second}");
    }
    assert_eq!(chaos.recorder().count(FaultKind::Error), 10);
}

#[tokio::test(start_paused = true)]
async fn latency_is_slept_on_tokios_clock_and_drops_cancel_the_operation() {
    let config = ChaosConfig::builder()
        .latency_between(1.0, Duration::from_millis(10), Duration::from_millis(20))
        .build()
        .unwrap();
    let chaos: Chaos<(), ()> = Chaos::builder(config).build().unwrap();
    for _ in 0..20 {
        let start = Instant::now();
        chaos.run(|| async { Ok(()) }).await.unwrap();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(10) && took <= Duration::from_millis(20),
            "{took:?}"
        );
    }

    // Never polled: the operation's body never runs.
    let ran = Arc::new(AtomicBool::new(false));
    let never: Chaos<(), io::Error> = Chaos::builder(
        ChaosConfig::builder()
            .drops(1.0, Duration::ZERO)
            .build()
            .unwrap(),
    )
    .build()
    .unwrap();
    let flag = Arc::clone(&ran);
    let err = never
        .run(|| async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ChaosError::Dropped(d) if d.after == Duration::ZERO));
    assert!(!ran.load(Ordering::SeqCst));

    // Dropped mid-way: started, then dropped after 50 ms; what it holds is
    // released (its drop guard runs), and it never finishes.
    struct Guard(Arc<AtomicBool>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let released = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let midway: Chaos<(), io::Error> = Chaos::builder(
        ChaosConfig::builder()
            .drops(1.0, Duration::from_millis(50))
            .build()
            .unwrap(),
    )
    .build()
    .unwrap();
    let (r, f) = (Arc::clone(&released), Arc::clone(&finished));
    let start = Instant::now();
    let err = midway
        .run(|| async move {
            let _guard = Guard(r);
            tokio::time::sleep(Duration::from_secs(1)).await;
            f.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(err.is_dropped());
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert!(released.load(Ordering::SeqCst) && !finished.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn retries_and_breakers_under_injected_errors_and_wrong_results() {
    // A retry outlasts a 30 % error rate; a check of the value would catch
    // the wrong results, which the recorder counts.
    let chaos: Chaos<u64, io::Error> = Chaos::builder(
        ChaosConfig::builder()
            .seed(seed())
            .errors(0.3)
            .wrong_results(0.1)
            .drops(0.05, Duration::from_millis(1))
            .build()
            .unwrap(),
    )
    .error_with(|| io::Error::from(io::ErrorKind::ConnectionReset))
    .mutate_with(|n| n ^ 1)
    .build()
    .unwrap();
    let pipeline = Pipeline::builder()
        .retry(
            RetryPolicy::builder()
                .max_retries(10)
                .initial_delay(Duration::from_millis(1))
                .build()
                .unwrap(),
        )
        .strategy(chaos.clone())
        .build()
        .unwrap();
    let mut wrong = 0;
    for i in 0..200u64 {
        let answer = pipeline
            .execute(|| async move { Ok::<_, io::Error>(i) })
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", chaos.recorder().stats()));
        if answer != i {
            wrong += 1;
        }
    }
    let stats = chaos.recorder().stats();
    assert_eq!(wrong, stats.count(FaultKind::WrongResult), "{stats}");
    assert!(
        stats.count(FaultKind::Error) > 0 && stats.count(FaultKind::Dropped) > 0,
        "{stats}"
    );

    // A breaker opens when every call fails, and closes once chaos stops.
    let failing: Chaos<u64, io::Error> =
        Chaos::builder(ChaosConfig::builder().errors(1.0).build().unwrap())
            .error_with(|| io::Error::from(io::ErrorKind::ConnectionReset))
            .build()
            .unwrap();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(5)
        .build()
        .unwrap();
    let guarded = Pipeline::builder()
        .circuit_breaker(breaker.clone())
        .strategy(failing.clone())
        .build()
        .unwrap();
    let mut stopped = Vec::new();
    for _ in 0..10 {
        let err = guarded
            .execute(|| async { Ok::<u64, io::Error>(1) })
            .await
            .unwrap_err();
        stopped.push(err.stopped_by());
    }
    assert!(stopped.contains(&StoppedBy::CircuitBreaker), "{stopped:?}");
    assert_eq!(failing.recorder().count(FaultKind::Error), 5);
    failing.switch().turn_off();
    let mut recovered = false;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if guarded
            .execute(|| async { Ok::<u64, io::Error>(1) })
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the breaker never closed once chaos stopped");
    let dropped: Result<u64, PipelineError<io::Error>> = Pipeline::of(
        Chaos::builder(
            ChaosConfig::builder()
                .drops(1.0, Duration::from_millis(3))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap(),
    )
    .execute(|| async { Ok(1) })
    .await;
    assert!(
        matches!(dropped, Err(PipelineError::TimedOut { after }) if after == Duration::from_millis(3))
    );
}

// ---------------------------------------------------------------------
// Storage faults against the checkpoint layer.
// ---------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn corrupt_and_torn_reads_are_detected_and_never_returned() {
    for (label, config) in [
        ("corrupt", StorageChaosConfig::builder().corrupt_reads(1.0)),
        ("torn", StorageChaosConfig::builder().torn_reads(1.0)),
    ] {
        let mut job = Job::new(
            2,
            |seed| config.clone().seed(seed).build().unwrap(),
            ChaosConfig::default(),
        );
        job.switch.turn_off();
        for r in job.save("clean", 1).await {
            r.unwrap();
        }
        job.switch.turn_on();
        for ckpt in &job.ckpts {
            let rank = ckpt.rank();
            let load = ckpt.load("clean", LoadOptions::default()).await;
            assert!(
                load.is_err(),
                "{label}: a damaged read was returned: {load:?}"
            );
            let entry = ckpt.load_entry("clean", &format!("state.{rank}")).await;
            assert!(
                entry.is_err(),
                "{label}: a damaged entry was returned: {entry:?}"
            );
            assert!(ckpt.verify("clean").await.is_err(), "{label}");
        }
        let kind = if label == "corrupt" {
            FaultKind::CorruptRead
        } else {
            FaultKind::TornRead
        };
        assert!(job.recorder.count(kind) > 0, "{}", job.recorder.stats());
        job.check_no_loss().await;
    }
}

#[tokio::test(start_paused = true)]
async fn one_fault_at_a_time_no_committed_checkpoint_is_lost() {
    type Faults = fn(u64) -> StorageChaosConfig;
    let faults: [(&str, Faults); 6] = [
        ("errors", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .errors(0.3)
                .build()
                .unwrap()
        }),
        ("drops", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .drops(0.2, Duration::from_millis(2))
                .build()
                .unwrap()
        }),
        ("failed writes", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .failed_writes(0.3)
                .build()
                .unwrap()
        }),
        ("corrupt reads", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .corrupt_reads(0.3)
                .build()
                .unwrap()
        }),
        ("torn reads", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .torn_reads(0.3)
                .build()
                .unwrap()
        }),
        ("latency", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .latency_between(1.0, Duration::from_millis(1), Duration::from_secs(2))
                .build()
                .unwrap()
        }),
    ];
    for (label, config) in faults {
        let mut job = Job::new(3, config, ChaosConfig::default());
        for step in 0..8 {
            let name = format!("step-{step}");
            job.save(&name, step).await;
            job.load_under_chaos(&name).await;
        }
        assert!(job.recorder.total() > 0, "{label}: nothing injected");
        job.check_no_loss().await;
        if label == "latency" || label == "corrupt reads" || label == "torn reads" {
            // Reads and delays never fail a save.
            assert_eq!(job.committed.len(), 8, "{label}: {}", job.recorder.stats());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn several_faults_at_once_on_storage_and_coordinator() {
    let coord = ChaosConfig::builder()
        .latency_between(0.3, Duration::from_millis(1), Duration::from_millis(200))
        .errors(0.02)
        .build()
        .unwrap();
    let mut job = Job::new(4, every_storage_fault, coord);
    for step in 0..15 {
        let name = format!("step-{step}");
        job.save(&name, step).await;
        job.load_under_chaos(&name).await;
    }
    let stats = job.recorder.stats();
    assert!(
        stats.count(FaultKind::Latency) > 0 && stats.count(FaultKind::Error) > 0,
        "{stats}"
    );
    assert!(!job.committed.is_empty(), "{stats}: nothing committed");
    // A later clean-up finds every leftover of the failed saves, and leaves
    // every committed checkpoint.
    job.switch.turn_off();
    let report = job.ckpts[0]
        .cleanup_uncommitted(Duration::ZERO)
        .await
        .unwrap();
    assert!(report.objects.failed.is_empty(), "{report:?}");
    job.check_no_loss().await;
    let listed: BTreeSet<String> = job.ckpts[0]
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    for object in job.storage.list("").await.unwrap() {
        let prefix = object.key.rsplit_once('/').map_or("", |(p, _)| p);
        assert!(
            listed.contains(prefix),
            "{stats}: leftover {} after the clean-up",
            object.key
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_partition_fails_saves_on_both_sides_until_it_heals() {
    let mut job = Job::new(
        4,
        |s| StorageChaosConfig::builder().seed(s).build().unwrap(),
        ChaosConfig::default(),
    );
    for r in job.save("before", 1).await {
        r.unwrap();
    }
    job.partition.cut([3], Duration::from_secs(120));
    let start = Instant::now();
    let during = job.save("during", 2).await;
    assert!(during.iter().all(Result::is_err), "{during:?}");
    assert!(
        matches!(&during[3], Err(CheckpointError::Timeout { missing_ranks, .. }) if missing_ranks.contains(&0))
            || matches!(
                &during[3],
                Err(CheckpointError::Coordinator(
                    CoordinatorError::Timeout { .. }
                ))
            ),
        "{:?}",
        during[3]
    );
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "saves wait for their timeout"
    );
    assert!(job.recorder.count(FaultKind::Partition) > 0);
    // Wait out the partition; the job goes on.
    tokio::time::sleep_until(start + Duration::from_secs(120)).await;
    assert!(!job.partition.is_active());
    for step in 3..6 {
        for r in job.save(&format!("after-{step}"), step).await {
            r.unwrap();
        }
    }
    // A short partition only delays a collective.
    job.partition.cut([0, 1], Duration::from_secs(10));
    let start = Instant::now();
    for r in job.save("short", 9).await {
        r.unwrap();
    }
    assert!(start.elapsed() >= Duration::from_secs(10));
    job.load_under_chaos("short").await;
    job.check_no_loss().await;
}

#[tokio::test(start_paused = true)]
async fn cascading_failures_storage_then_coordinator_then_partition_then_a_dead_rank() {
    let coord = ChaosConfig::builder()
        .latency_between(0.5, Duration::from_millis(1), Duration::from_millis(50))
        .errors(0.05)
        .build()
        .unwrap();
    let mut job = Job::new(4, every_storage_fault, coord);
    let mut step = 0;
    let mut save = async |job: &mut Job| {
        step += 1;
        let name = format!("step-{step}");
        job.save(&name, step).await;
        job.load_under_chaos(&name).await;
    };
    for _ in 0..4 {
        save(&mut job).await;
    }
    // Then a partition on top of it.
    job.partition.cut([1, 2], Duration::from_secs(45));
    for _ in 0..3 {
        save(&mut job).await;
    }
    // Then rank 3 dies for good: every save fails, nothing is lost.
    job.ckpts[0].coordinator().inner().faults().kill(3);
    let before = job.committed.len();
    for _ in 0..3 {
        let name = format!("dead-{}", job.attempts.len());
        let outcomes = job.save(&name, 100).await;
        assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
    }
    assert_eq!(job.committed.len(), before);
    job.check_no_loss().await;
    println!("{}", job.recorder.stats());
}

#[tokio::test(start_paused = true)]
async fn retention_under_chaos_keeps_the_newest_committed() {
    let mut job = Job::new(2, every_storage_fault, ChaosConfig::default());
    let mut order = Vec::new();
    for step in 0..12 {
        let name = format!("step-{step:02}");
        job.save(&name, step).await;
        if job.committed.contains(&name) {
            order.push(name);
        }
        let _ = job.ckpts[0].retain_last(3).await;
    }
    job.switch.turn_off();
    let listed: Vec<String> = job.ckpts[0]
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    for name in order.iter().rev().take(3) {
        assert!(
            listed.contains(name),
            "{}: {name} lost; listed {listed:?}",
            job.recorder.stats()
        );
    }
    // What retention removed is no longer expected; the rest must verify.
    let kept: BTreeSet<String> = listed.iter().cloned().collect();
    let committed: BTreeSet<String> = job.committed.intersection(&kept).cloned().collect();
    check_visible(&job.ckpts[0], &job.attempts, &committed, &job.recorder).await;
}

// ---------------------------------------------------------------------
// The checkpoint manager.
// ---------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_manager_saves_and_restores_under_storage_chaos() {
    let seed = seed();
    let memory = MemoryStorage::new();
    let switch = ChaosSwitch::new(true);
    let recorder = ChaosRecorder::new().seed(seed);
    let managers: Vec<_> = InMemoryCoordinator::new(3)
        .into_iter()
        .enumerate()
        .map(|(rank, handle)| {
            let storage =
                ChaosStorage::builder(memory.clone(), every_storage_fault(seed + rank as u64))
                    .switch(switch.clone())
                    .recorder(recorder.clone())
                    .build()
                    .unwrap();
            let ckpt =
                DistributedCheckpoint::new(storage, handle, policy(), CheckpointOptions::default());
            CheckpointManager::builder(ckpt)
                .prefix("run")
                .every_n_steps(1)
                .build()
                .unwrap()
        })
        .collect();
    let tasks: Vec<_> = managers
        .into_iter()
        .map(|m| {
            tokio::spawn(async move {
                let rank = m.checkpoint().rank() as u64;
                let value = JsonState::new(0u64);
                m.register_state("value", value.clone()).unwrap();
                let mut committed = Vec::new();
                for step in 1..=10u64 {
                    value.set(step * 10 + rank);
                    if let Ok(Some(pending)) = m.step().await {
                        let name = pending.name().to_string();
                        if pending.wait().await.is_ok() {
                            committed.push((name, step));
                        }
                    }
                }
                (m, value, committed)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    switch.turn_off();
    let stats = recorder.stats();
    let committed: BTreeSet<(String, u64)> = results.iter().flat_map(|r| r.2.clone()).collect();
    assert!(
        !committed.is_empty(),
        "{stats}: the manager committed nothing"
    );
    let m = &results[0].0;
    let points = m.recovery_points(&RecoveryFilter::all()).await.unwrap();
    let visible: BTreeSet<&str> = points.iter().map(|p| p.name.as_str()).collect();
    for (name, _) in &committed {
        assert!(visible.contains(name.as_str()), "{stats}: {name} lost");
    }
    for point in &points {
        m.checkpoint()
            .verify(&point.name)
            .await
            .unwrap_or_else(|e| panic!("{stats}: {} does not verify: {e}", point.name));
    }
    // Every rank restores the newest checkpoint, with its own value.
    let newest = committed.iter().map(|(_, step)| *step).max().unwrap();
    let restores = join_all(results.iter().map(|(m, value, _)| async move {
        value.set(0);
        let report = m.restore_latest().await.unwrap().unwrap();
        (
            m.checkpoint().rank() as u64,
            report.point.step.unwrap(),
            value.get(),
        )
    }))
    .await;
    for (rank, step, value) in restores {
        assert!(
            step >= newest,
            "{stats}: restored step {step}, newest committed {newest}"
        );
        assert_eq!(value, step * 10 + rank, "{stats}");
    }
}

// ---------------------------------------------------------------------
// Coordinated recovery, under load.
// ---------------------------------------------------------------------

struct Member {
    handle: Coord,
    ckpt: Ckpt,
    state: Arc<Mutex<Vec<u8>>>,
    recovery: RecoveryCoordinator<Coord>,
    events: broadcast::Receiver<RecoveryEvent>,
}

fn member(handle: Coord, storage: Store) -> Member {
    let fence = MembershipFence::new(handle.clone());
    let ckpt: Ckpt = Arc::new(
        DistributedCheckpoint::new(
            storage,
            handle.clone(),
            policy(),
            CheckpointOptions::default(),
        )
        .with_fence(fence.clone()),
    );
    let state = Arc::new(Mutex::new(Vec::new()));
    let (into, from) = (Arc::clone(&state), Arc::clone(&ckpt));
    let config = RecoveryCoordinatorConfig::builder()
        .recovery_strategy(RecoveryStrategyKind::RestartFromCheckpoint)
        .quorum_size(2)
        .recovery_timeout(Duration::from_secs(120))
        .answer_window(Duration::from_millis(500))
        .build()
        .unwrap();
    let recovery = RecoveryCoordinator::builder(handle.clone())
        .config(config)
        .checkpoints(Arc::clone(&ckpt))
        .fence(fence)
        .on_failure(move |ctx| {
            let (state, ckpt) = (Arc::clone(&into), Arc::clone(&from));
            async move {
                let Some(name) = &ctx.plan.checkpoint else {
                    return Ok(());
                };
                let mut restored = Vec::new();
                for shard in &ctx.assignment.shards {
                    restored.extend(ckpt.load_entry(name, &format!("state.{shard}")).await?);
                }
                *state.lock().unwrap() = restored;
                Ok(())
            }
        })
        .build();
    let events = recovery.subscribe();
    Member {
        handle,
        ckpt,
        state,
        recovery,
        events,
    }
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_under_chaos_and_heavy_load() {
    let seed = seed();
    let memory = MemoryStorage::new();
    let switch = ChaosSwitch::new(true);
    let recorder = ChaosRecorder::new().seed(seed);
    let handles = InMemoryCoordinator::new(3);
    let spare = handles[0].add_standby("spare-0").unwrap();
    let latency = ChaosConfig::builder()
        .seed(seed)
        .latency_between(0.5, Duration::from_millis(1), Duration::from_millis(30))
        .build()
        .unwrap();
    // Writes fail and every call is slow, but reads are not damaged: the
    // recovery plan reads a checkpoint that does not verify again before it
    // falls back past it, but the restore below (`load_entry` in the
    // handler) refuses a damaged entry without reading it again, and after
    // three failed attempts at the plan the recovery gives up (seed 1234).
    let storage_faults = |s: u64| {
        StorageChaosConfig::builder()
            .seed(s)
            .latency_between(0.5, Duration::from_millis(1), Duration::from_millis(30))
            .errors(0.05)
            .failed_writes(0.05)
            .build()
            .unwrap()
    };
    let mut members: Vec<Member> = handles
        .into_iter()
        .chain([spare])
        .enumerate()
        .map(|(i, h)| {
            let handle = ChaosCoordinator::builder(h, latency.clone())
                .switch(switch.clone())
                .recorder(recorder.clone())
                .build()
                .unwrap();
            let storage = ChaosStorage::builder(memory.clone(), storage_faults(seed + i as u64))
                .switch(switch.clone())
                .recorder(recorder.clone())
                .build()
                .unwrap();
            member(handle, storage)
        })
        .collect();
    let leaders = join_all(
        members
            .iter()
            .filter(|m| m.handle.role() != Role::Standby)
            .map(|m| m.recovery.establish_leader(Duration::from_secs(10))),
    )
    .await;
    for leader in leaders {
        assert_eq!(leader.unwrap().member, "rank-0");
    }
    let tasks: Vec<_> = members.iter().map(|m| m.recovery.start()).collect();

    // Heavy load: a stream of calls through a chaotic pipeline runs all
    // along, and the ranks save until one save commits.
    let load = Chaos::builder(
        ChaosConfig::builder()
            .seed(seed)
            .latency_between(1.0, Duration::from_millis(1), Duration::from_millis(5))
            .errors(0.2)
            .build()
            .unwrap(),
    )
    .error_with(|| io::Error::from(io::ErrorKind::ConnectionReset))
    .recorder(recorder.clone())
    .build()
    .unwrap();
    let served = Arc::new(AtomicU32::new(0));
    let background = {
        let (served, pipeline) = (
            Arc::clone(&served),
            Pipeline::builder()
                .retry(
                    RetryPolicy::builder()
                        .max_retries(5)
                        .initial_delay(Duration::from_millis(1))
                        .build()
                        .unwrap(),
                )
                .strategy(load)
                .build()
                .unwrap(),
        );
        tokio::spawn(async move {
            for _ in 0..2_000 {
                if pipeline
                    .execute(|| async { Ok::<_, io::Error>(()) })
                    .await
                    .is_ok()
                {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let state_of = |name: &str, rank: usize| shard_bytes(name, rank);
    let mut attempts = BTreeMap::new();
    let mut committed = BTreeSet::new();
    for attempt in 0..10 {
        let name = format!("step-{attempt}");
        let saves = members
            .iter()
            .filter(|m| matches!(m.handle.role(), Role::Rank(_)))
            .map(|m| {
                let rank = m.handle.rank();
                *m.state.lock().unwrap() = state_of(&name, rank);
                let shard =
                    ShardData::new().with_entry(format!("state.{rank}"), state_of(&name, rank));
                let (ckpt, name) = (Arc::clone(&m.ckpt), name.clone());
                async move {
                    ckpt.save(
                        &name,
                        &shard,
                        SaveOptions::new()
                            .step(attempt)
                            .timeout(Duration::from_secs(30)),
                    )
                    .await
                }
            });
        let outcomes = join_all(saves).await;
        attempts.insert(
            name.clone(),
            (0..3).map(|r| state_of(&name, r)).collect::<Vec<_>>(),
        );
        if outcomes.iter().any(Result::is_ok) {
            committed.insert(name);
            break;
        }
    }
    let stats = recorder.stats();
    assert!(!committed.is_empty(), "{stats}: no save committed");

    // Rank 2 dies while the load goes on; the standby takes its place from
    // the newest checkpoint that verifies.
    members[0].handle.inner().faults().kill(2);
    let spare = members
        .iter_mut()
        .find(|m| m.handle.member_id() == "spare-0")
        .unwrap();
    let plan = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            match spare.events.recv().await {
                Ok(RecoveryEvent::Recovered { plan, .. }) => return plan,
                Ok(RecoveryEvent::GaveUp { reason }) => panic!("{stats}: gave up: {reason}"),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{stats}: no recovery within 300 s"));
    let name = plan
        .checkpoint
        .clone()
        .expect("the plan restores a checkpoint");
    assert!(
        committed.contains(&name),
        "{stats}: the plan restores {name}, not the newest committed {committed:?}"
    );
    assert_eq!(spare.handle.role(), Role::Rank(2));
    assert_eq!(*spare.state.lock().unwrap(), state_of(&name, 2), "{stats}");
    background.await.unwrap();
    assert!(
        served.load(Ordering::Relaxed) > 1_500,
        "{}",
        recorder.stats()
    );
    for task in tasks {
        drop(task);
    }
    // Chaos off: everything committed is there and verifies.
    switch.turn_off();
    let survivor = members
        .iter()
        .find(|m| m.handle.member_id() == "rank-0")
        .unwrap();
    check_visible(&survivor.ckpt, &attempts, &committed, &recorder).await;
}

#[tokio::test(start_paused = true)]
async fn a_commit_read_back_damaged_on_the_way_never_deletes_a_committed_checkpoint() {
    // The manifest's write lands but reports an error, and reading it back
    // returns damaged bytes: the committer must not take them for another
    // save's manifest and roll back, which would delete the shards of a
    // checkpoint whose manifest is stored.
    for damage in ["corrupt", "torn"] {
        let mut job = Job::new(
            2,
            |seed| {
                let config = StorageChaosConfig::builder()
                    .seed(seed)
                    .operations([Operation::PutIfAbsent, Operation::GetStream])
                    .failed_writes(1.0);
                match damage {
                    "corrupt" => config.corrupt_reads(1.0),
                    _ => config.torn_reads(1.0),
                }
                .build()
                .unwrap()
            },
            ChaosConfig::default(),
        );
        // The save may fail (the outcome is unknown) or succeed (a damaged
        // read-back that still reads as the same manifest); either way the
        // checkpoint stays whole.
        job.save("landed", 1).await;
        let stats = job.recorder.stats();
        assert!(stats.count(FaultKind::FailedWrite) > 0, "{damage}: {stats}");
        job.check_no_loss().await;
        let listed = job.ckpts[0].list().await.unwrap();
        assert_eq!(listed.len(), 1, "{damage}: the manifest landed");
    }
}

#[tokio::test(start_paused = true)]
async fn storage_faults_hit_the_selected_operations_one_bit_or_the_tail() {
    use tokio::io::AsyncReadExt;
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let config = |damage: &str| {
        let b = StorageChaosConfig::builder().seed(seed()).operations([
            Operation::Get,
            Operation::GetStream,
            Operation::GetRange,
        ]);
        match damage {
            "corrupt" => b.corrupt_reads(1.0),
            _ => b.torn_reads(1.0),
        }
        .build()
        .unwrap()
    };
    let corrupt = ChaosStorage::builder(MemoryStorage::new(), config("corrupt"))
        .build()
        .unwrap();
    let torn = ChaosStorage::builder(MemoryStorage::new(), config("torn"))
        .build()
        .unwrap();
    for storage in [&corrupt, &torn] {
        // Writes and heads are not selected: they pass through.
        storage.put("k", data.clone().into()).await.unwrap();
        assert_eq!(storage.head("k").await.unwrap().size, 10_000);
    }
    let flipped_bits = |read: &[u8], from: &[u8]| -> u32 {
        read.iter()
            .zip(from)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    };
    for _ in 0..20 {
        let read = corrupt.get("k").await.unwrap();
        assert_eq!((read.len(), flipped_bits(&read, &data)), (10_000, 1));
        let range = corrupt.get_range("k", 100..600).await.unwrap();
        assert_eq!(flipped_bits(&range, &data[100..600]), 1);
        let mut stream = corrupt.get_stream("k").await.unwrap();
        let mut bytes = Vec::new();
        stream.reader.read_to_end(&mut bytes).await.unwrap();
        assert_eq!((bytes.len(), flipped_bits(&bytes, &data)), (10_000, 1));

        let read = torn.get("k").await.unwrap();
        assert!(read.len() < 10_000 && data.starts_with(&read));
        let mut stream = torn.get_stream("k").await.unwrap();
        assert_eq!(
            stream.meta.size, 10_000,
            "the size still claims the whole object"
        );
        let mut bytes = Vec::new();
        stream.reader.read_to_end(&mut bytes).await.unwrap();
        assert!(bytes.len() < 10_000 && data.starts_with(&bytes));
    }
    assert_eq!(corrupt.recorder().count(FaultKind::CorruptRead), 60);
    assert_eq!(torn.recorder().count(FaultKind::TornRead), 40);
    // get_sized knows the size to expect: a torn read is a length mismatch.
    let sized_torn = ChaosStorage::builder(MemoryStorage::new(), config("torn"))
        .build()
        .unwrap();
    sized_torn
        .inner()
        .put("k", data.clone().into())
        .await
        .unwrap();
    assert!(matches!(
        sized_torn.get_sized("k", 10_000).await,
        Err(StorageError::LengthMismatch {
            expected: 10_000,
            ..
        })
    ));
}
