//! Ranks as separate OS processes, meeting through a real etcd and saving
//! sharded checkpoints to local files and to S3.
//!
//! The test binary starts copies of itself: each child runs the ignored
//! test `rank_process` (`--ignored --exact rank_process`), which reads its
//! role from `STEADFAST_MP_*` environment variables and plays one rank. The
//! children report on their standard output, one `RESULT ...` line each; a
//! child that sees anything unexpected exits with a failure.
//!
//! The tests need `STEADFAST_ETCD_ENDPOINTS` (and, for S3,
//! `STEADFAST_S3_ENDPOINT` and `STEADFAST_S3_BUCKET`), as set by
//! `.ci/services.sh`; without them they fail in CI (`CI=true`) and, elsewhere,
//! say they skipped.
#![cfg(feature = "etcd")]

mod common;
use common::{server_var, unique};

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use steadfast::checkpoint::{
    CheckpointError, CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData,
};
use steadfast::coordinator::{
    Coordinator, CoordinatorError, EtcdConfig, EtcdCoordinator, InMemoryCoordinator,
};
use steadfast::retry::RetryPolicy;
use steadfast::storage::{CheckpointStorage, LocalFsStorage};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long anything in these tests may take before it is a failure.
const PATIENCE: Duration = Duration::from_secs(120);

/// The timeout of the steps of a save in the crash test: long enough for a
/// loaded machine, short enough to keep the test quick.
const SAVE_TIMEOUT: Duration = Duration::from_secs(8);

const WORLD: usize = 4;

fn endpoints(test: &str) -> Option<String> {
    server_var(test, "STEADFAST_ETCD_ENDPOINTS")
}

/// Where the checkpoint bytes go.
#[derive(Debug, Clone)]
enum StorageSpec {
    Local(std::path::PathBuf),
    #[cfg(feature = "object-store")]
    S3 {
        url: String,
    },
}

impl StorageSpec {
    fn to_env(&self) -> String {
        match self {
            StorageSpec::Local(path) => format!("local:{}", path.display()),
            #[cfg(feature = "object-store")]
            StorageSpec::S3 { url } => format!("s3:{url}"),
        }
    }

    fn from_env(text: &str) -> StorageSpec {
        if let Some(path) = text.strip_prefix("local:") {
            return StorageSpec::Local(path.into());
        }
        #[cfg(feature = "object-store")]
        if let Some(url) = text.strip_prefix("s3:") {
            return StorageSpec::S3 { url: url.into() };
        }
        panic!("unknown storage {text:?}")
    }

    fn open(&self) -> Arc<dyn CheckpointStorage> {
        match self {
            StorageSpec::Local(path) => Arc::new(LocalFsStorage::new(path).unwrap()),
            #[cfg(feature = "object-store")]
            StorageSpec::S3 { url } => Arc::new(s3_storage(url)),
        }
    }
}

#[cfg(feature = "object-store")]
fn s3_storage(url: &str) -> steadfast::storage::ObjectStoreStorage {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    steadfast::storage::ObjectStoreStorage::from_url(
        url,
        [
            ("aws_endpoint", var("STEADFAST_S3_ENDPOINT")),
            ("aws_allow_http", "true".to_string()),
            ("aws_access_key_id", var("AWS_ACCESS_KEY_ID")),
            ("aws_secret_access_key", var("AWS_SECRET_ACCESS_KEY")),
            ("aws_region", var("AWS_REGION")),
        ],
    )
    .unwrap()
}

/// What a child process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Barrier, all-gather, save, barrier, load and verify.
    SaveAndLoad,
    /// Save; the rank `victim` stops in the middle of writing its shard,
    /// says so, and waits to be killed; the others must fail naming it.
    CrashDuringSave { victim: usize },
}

fn spawn_rank(endpoints: &str, job: &str, rank: usize, storage: &StorageSpec, role: Role) -> Child {
    let exe = std::env::current_exe().unwrap();
    let role = match role {
        Role::SaveAndLoad => "save-and-load".to_string(),
        Role::CrashDuringSave { victim } => format!("crash-during-save:{victim}"),
    };
    Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "rank_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STEADFAST_MP_ROLE", role)
        .env("STEADFAST_MP_ENDPOINTS", endpoints)
        .env("STEADFAST_MP_JOB", job)
        .env("STEADFAST_MP_RANK", rank.to_string())
        .env("STEADFAST_MP_WORLD", WORLD.to_string())
        .env("STEADFAST_MP_STORAGE", storage.to_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A child's output lines, read as they come, and its exit status.
struct Running {
    rank: usize,
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn new(rank: usize, mut child: Child) -> Running {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (stream, tag) in [
            (
                Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                "",
            ),
            (Box::new(stderr), "stderr: "),
        ] {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(format!("{tag}{line}")).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            rank,
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line that holds `prefix`; returns the line from there.
    async fn wait_for_line(&mut self, prefix: &str) -> String {
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                // libtest may print its own "test rank_process ... " first.
                if let Some(at) = line.find(prefix) {
                    return Some(line[at..].to_string());
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "rank {} never printed {prefix:?}; its output:\n{}",
                self.rank,
                self.seen.join("\n")
            ),
        }
    }

    /// Waits for the child to exit successfully; returns its `RESULT` line.
    async fn finish(mut self) -> String {
        let result = self.wait_for_line("RESULT ").await;
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("child did not exit")
            .unwrap();
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        assert!(
            status.success(),
            "rank {} failed ({status}); its output:\n{}",
            self.rank,
            self.seen.join("\n")
        );
        result
    }
}

/// Lists the committed checkpoints in `storage` (listing needs no
/// coordination: a one-rank in-memory coordinator will do).
async fn committed(storage: Arc<dyn CheckpointStorage>) -> Vec<String> {
    let lister = DistributedCheckpoint::new(
        storage,
        InMemoryCoordinator::new(1).remove(0),
        RetryPolicy::default(),
        CheckpointOptions::default(),
    );
    lister
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|info| info.name)
        .collect()
}

async fn four_processes_save_and_load(endpoints: &str, storage: StorageSpec) {
    let job = unique("mp-save-load");
    let children: Vec<Running> = (0..WORLD)
        .map(|rank| {
            Running::new(
                rank,
                spawn_rank(endpoints, &job, rank, &storage, Role::SaveAndLoad),
            )
        })
        .collect();
    let mut results = Vec::new();
    for child in children {
        results.push(child.finish().await);
    }
    // Every rank gathered the same ranks and committed the same checkpoint.
    for (rank, result) in results.iter().enumerate() {
        assert_eq!(
            result,
            &format!("RESULT rank={rank} gathered=0,1,2,3 saved=step-7 loaded=ok"),
        );
    }
    assert_eq!(committed(storage.open()).await, vec!["step-7".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_save_and_load_on_local_files() {
    let Some(endpoints) = endpoints("four_processes_save_and_load_on_local_files") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    four_processes_save_and_load(&endpoints, StorageSpec::Local(dir.path().to_path_buf())).await;
}

#[cfg(feature = "object-store")]
fn s3_spec(test: &str) -> Option<StorageSpec> {
    server_var(test, "STEADFAST_S3_ENDPOINT")?;
    let bucket = server_var(test, "STEADFAST_S3_BUCKET")?;
    Some(StorageSpec::S3 {
        url: format!("s3://{bucket}/{}", unique(test)),
    })
}

#[cfg(feature = "object-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_save_and_load_on_s3() {
    let Some(endpoints) = endpoints("four_processes_save_and_load_on_s3") else {
        return;
    };
    let Some(storage) = s3_spec("mp-s3") else {
        return;
    };
    four_processes_save_and_load(&endpoints, storage).await;
}

async fn a_rank_killed_mid_save(endpoints: &str, storage: StorageSpec) {
    let job = unique("mp-crash");
    let victim = 2;
    let role = Role::CrashDuringSave { victim };
    let mut children: Vec<Running> = (0..WORLD)
        .map(|rank| Running::new(rank, spawn_rank(endpoints, &job, rank, &storage, role)))
        .collect();
    // The victim is in the middle of writing its shard: kill it (SIGKILL).
    let mut dead = children.remove(victim);
    dead.wait_for_line("MID-SAVE").await;
    dead.child.start_kill().unwrap();
    let status = dead.child.wait().await.unwrap();
    assert!(!status.success(), "the victim was killed: {status}");

    for (i, child) in children.into_iter().enumerate() {
        let rank = if i < victim { i } else { i + 1 };
        let result = child.finish().await;
        assert_eq!(
            result,
            format!("RESULT rank={rank} save=failed missing=[{victim}] visible=none"),
        );
    }
    assert!(
        committed(storage.open()).await.is_empty(),
        "no checkpoint may become visible"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rank_killed_mid_save_leaves_no_checkpoint_on_local_files() {
    let Some(endpoints) = endpoints("a_rank_killed_mid_save_leaves_no_checkpoint_on_local_files")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    a_rank_killed_mid_save(&endpoints, StorageSpec::Local(dir.path().to_path_buf())).await;
}

#[cfg(feature = "object-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rank_killed_mid_save_leaves_no_checkpoint_on_s3() {
    let Some(endpoints) = endpoints("a_rank_killed_mid_save_leaves_no_checkpoint_on_s3") else {
        return;
    };
    let Some(storage) = s3_spec("mp-crash-s3") else {
        return;
    };
    a_rank_killed_mid_save(&endpoints, storage).await;
}

// ---- The example: a hot standby takes over a killed rank ---------------

/// The `multi_process` example's binary, built beside this test's
/// (`cargo test` builds the examples; `cargo test --test multi_process`
/// alone does not: build it with `cargo build --features etcd --example
/// multi_process`). Missing, or older than its source, it fails the test in
/// CI and skips it elsewhere, as a missing server does.
fn example_binary(test: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent()?.parent()?;
    let binary = dir
        .join("examples")
        .join(format!("multi_process{}", std::env::consts::EXE_SUFFIX));
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/multi_process.rs");
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let problem = match (modified(&binary), modified(&source)) {
        (None, _) => format!("{} is not built", binary.display()),
        (Some(built), Some(edited)) if built < edited => {
            format!("{} is older than its source", binary.display())
        }
        _ => return Some(binary),
    };
    let fix = "build it with `cargo build --features etcd --example multi_process`";
    if common::in_ci() {
        panic!("{test}: {problem}: {fix}");
    }
    eprintln!("{test}: skipped: {problem} ({fix})");
    None
}

/// Three ranks and a standby, as processes of the example; the launcher
/// SIGKILLs rank 1 after its step 12. The job must finish with every rank's
/// sum right, rank 1 held by the standby, and the time from the SIGKILL to
/// the job's next step under 5 s (the lease TTL, 2 s, is the failure
/// detector).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_standby_takes_over_a_killed_rank_within_5s() {
    standby_takes_over("a_hot_standby_takes_over_a_killed_rank_within_5s", 1, 12).await;
}

/// The same with rank 0, the leader that commits, SIGKILLed after its step
/// 14, in the step whose end saves a checkpoint: its leadership ends with
/// its lease, a survivor is elected, the plan restores the last checkpoint
/// the old leader committed, and the new leader commits the next ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_another_and_the_job_finishes() {
    standby_takes_over(
        "killing_the_leader_elects_another_and_the_job_finishes",
        0,
        14,
    )
    .await;
}

async fn standby_takes_over(test: &str, kill_rank: usize, kill_at_step: u64) {
    let Some(endpoints) = endpoints(test) else {
        return;
    };
    let Some(binary) = example_binary(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let job = unique("mp-standby");
    let run = Command::new(binary)
        .args(["--launch", "3", "--standby", "1", "--lease-ttl", "2"])
        .args(["--kill-rank", &kill_rank.to_string()])
        .args(["--kill-at-step", &kill_at_step.to_string()])
        .args(["--etcd", &endpoints, "--job", &job])
        .arg("--storage")
        .arg(format!("file://{}", dir.path().display()))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the example did not finish")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = format!(
        "its output:\n{stdout}\nits errors:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the example failed; {report}");
    let lines: Vec<&str> = stdout.lines().collect();
    // Every rank's sum is right, rank 1's computed by the standby.
    for rank in 0..3usize {
        let member = if rank == kill_rank {
            "spare-0".to_string()
        } else {
            format!("rank-{rank}")
        };
        let sum = (rank + 1) * 40 * 41 / 2;
        let result = format!("RESULT rank={rank} member={member} step=40 sum={sum}");
        assert!(lines.contains(&result.as_str()), "no {result:?}; {report}");
    }
    let taken_over = format!("launcher: rank {kill_rank} was taken over by spare-0");
    assert!(lines.contains(&taken_over.as_str()), "{report}");
    let failover: f64 = lines
        .iter()
        .find_map(|line| {
            line.strip_prefix("failover: ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no failover line; {report}"));
    eprintln!("{test}: failover {failover:.2} s (kill → next step)");
    assert!(failover < 5.0, "failover took {failover} s; {report}");
}

// ---- The child side ----------------------------------------------------

/// The entry point of the child processes; not a test of its own (it is
/// ignored, and the other tests run it with `--ignored --exact`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of the rank processes that the other tests start"]
async fn rank_process() {
    let env: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("STEADFAST_MP_"))
        .collect();
    if env.is_empty() {
        eprintln!(
            "rank_process: skipped: the other tests of this file run it in their child processes"
        );
        return;
    }
    let get = |name: &str| {
        env.get(name)
            .unwrap_or_else(|| panic!("{name} not set"))
            .clone()
    };
    let rank: usize = get("STEADFAST_MP_RANK").parse().unwrap();
    let world: usize = get("STEADFAST_MP_WORLD").parse().unwrap();
    let config = EtcdConfig::builder()
        .endpoints_csv(&get("STEADFAST_MP_ENDPOINTS"))
        .prefix(get("STEADFAST_MP_JOB"))
        .rank(rank)
        .world_size(world)
        // A killed rank is gone after 5 s; a live one renews every 1.7 s.
        .lease_ttl(Duration::from_secs(5))
        .build()
        .unwrap();
    let coordinator = EtcdCoordinator::connect(config).await.unwrap();
    let storage = StorageSpec::from_env(&get("STEADFAST_MP_STORAGE")).open();
    let checkpoint = DistributedCheckpoint::new(
        storage,
        coordinator.clone(),
        RetryPolicy::default(),
        CheckpointOptions::default(),
    );
    let role = get("STEADFAST_MP_ROLE");
    let result = if role == "save-and-load" {
        save_and_load(rank, &coordinator, &checkpoint).await
    } else if let Some(victim) = role.strip_prefix("crash-during-save:") {
        crash_during_save(rank, victim.parse().unwrap(), &checkpoint).await
    } else {
        panic!("unknown role {role:?}")
    };
    println!("RESULT {result}");
    coordinator.shutdown(PATIENCE).await.ok();
}

fn shard_of(rank: usize) -> ShardData {
    ShardData::new()
        .with_entry(
            format!("layer.{rank}.weight"),
            vec![rank as u8; 100_000 + rank],
        )
        .with_entry(
            format!("layer.{rank}.bias"),
            format!("bias-{rank}").into_bytes(),
        )
}

async fn save_and_load<S: CheckpointStorage>(
    rank: usize,
    coordinator: &EtcdCoordinator,
    checkpoint: &DistributedCheckpoint<S, EtcdCoordinator>,
) -> String {
    coordinator.barrier(PATIENCE).await.unwrap();
    let gathered = coordinator
        .all_gather(rank.to_string().into_bytes(), PATIENCE)
        .await
        .unwrap();
    let gathered: Vec<String> = gathered
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    let shard = shard_of(rank);
    let info = checkpoint
        .save(
            "step-7",
            &shard,
            SaveOptions::new().step(7).timeout(PATIENCE),
        )
        .await
        .unwrap();
    assert_eq!(info.world_size, WORLD);
    coordinator.barrier(PATIENCE).await.unwrap();
    let loaded = checkpoint
        .load("step-7", LoadOptions::default())
        .await
        .unwrap();
    let expected: Vec<u8> = shard
        .entries()
        .iter()
        .flat_map(|(_, data)| data.iter().copied())
        .collect();
    assert_eq!(loaded, expected, "rank {rank} loaded other bytes");
    // Any rank can read any rank's entries by name.
    let other = (rank + 1) % WORLD;
    assert_eq!(
        checkpoint
            .load_entry("step-7", &format!("layer.{other}.bias"))
            .await
            .unwrap(),
        format!("bias-{other}").into_bytes()
    );
    format!(
        "rank={rank} gathered={} saved={} loaded=ok",
        gathered.join(","),
        info.name
    )
}

async fn crash_during_save<S: CheckpointStorage>(
    rank: usize,
    victim: usize,
    checkpoint: &DistributedCheckpoint<S, EtcdCoordinator>,
) -> String {
    let options = SaveOptions::new().step(1).timeout(SAVE_TIMEOUT);
    if rank == victim {
        // Write part of the shard, say so, and never finish: the parent
        // kills this process here.
        let result = checkpoint
            .save_stream(
                "step-1",
                || async {
                    Ok(StallingReader {
                        sent: 0,
                        announced: false,
                    })
                },
                options,
            )
            .await;
        return format!("rank={rank} victim survived: {result:?}");
    }
    let err = checkpoint
        .save("step-1", &shard_of(rank), options)
        .await
        .unwrap_err();
    // The victim's lease expires (5 s) before the save's steps time out
    // (8 s): the round fails at once naming it; a loaded machine may still
    // see the timeout first, which names it too.
    let missing = match &err {
        CheckpointError::Timeout { missing_ranks, .. } => missing_ranks.clone(),
        CheckpointError::Coordinator(CoordinatorError::RanksFailed { ranks, .. }) => ranks.to_vec(),
        other => panic!("rank {rank}: expected a failure naming rank {victim}, got {other}"),
    };
    let visible = match checkpoint.list().await.unwrap().is_empty() {
        true => "none".to_string(),
        false => "some".to_string(),
    };
    format!("rank={rank} save=failed missing={missing:?} visible={visible}")
}

/// A shard source that yields 1 MiB, announces `MID-SAVE` on standard
/// output, and then never yields again.
struct StallingReader {
    sent: usize,
    announced: bool,
}

impl tokio::io::AsyncRead for StallingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        const BEFORE_STALL: usize = 1 << 20;
        if self.sent < BEFORE_STALL {
            let n = buf.remaining().min(BEFORE_STALL - self.sent);
            buf.put_slice(&vec![0xAB; n]);
            self.sent += n;
            return std::task::Poll::Ready(Ok(()));
        }
        if !self.announced {
            self.announced = true;
            println!("MID-SAVE");
        }
        // Never woken: the process is killed while it waits here.
        std::task::Poll::Pending
    }
}
