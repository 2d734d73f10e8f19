//! A distributed job of several processes that meet through etcd and save a
//! sharded checkpoint; and, with `--standby`, a job that survives the
//! SIGKILL of a rank, a hot standby taking its place.
//!
//! Each rank is one process:
//!
//! ```text
//! cargo run --features etcd --example multi_process -- \
//!     --rank 0 --world-size 4 --etcd http://127.0.0.1:2379 \
//!     --storage file:///tmp/ckpt --job /jobs/demo-1
//! ```
//!
//! or let the launcher start `N` ranks on this machine and wait for them:
//!
//! ```text
//! cargo run --features etcd --example multi_process -- \
//!     --launch 4 --etcd http://127.0.0.1:2379 --storage file:///tmp/ckpt --job /jobs/demo-1
//! ```
//!
//! Every rank connects, meets the others at a barrier, agrees on a checkpoint
//! name (rank 0's choice, exchanged with an all-gather), saves its shard of
//! the checkpoint, meets the others again, loads its shard back and checks
//! it, and says what it did. `--storage` takes `file:///path`, or, with the
//! `object-store` feature, `s3://bucket/prefix` (credentials, region and a
//! custom endpoint come from the usual `AWS_*` environment variables, such as
//! `AWS_ENDPOINT` and `AWS_ALLOW_HTTP=true` for a local S3 server).
//!
//! # A job that survives a dead rank
//!
//! With `--standby K`, `--steps T` or `--kill-rank R` the processes run a
//! recovering job instead (the multi-process version of
//! `examples/recovery.rs`):
//!
//! ```text
//! cargo run --features etcd --example multi_process -- \
//!     --launch 3 --standby 1 --lease-ttl 2 --kill-rank 1 --kill-at-step 12 \
//!     --etcd http://127.0.0.1:2379 --storage file:///tmp/ckpt --job /jobs/demo-2
//! ```
//!
//! The launcher starts `N` ranks and `K` standbys
//! (`EtcdConfig::builder().standby(true)`). Every rank adds
//! `(rank + 1) * step` to its sum at each of `T` steps (40 by default), meets
//! the others at a barrier after each step and saves a fenced checkpoint
//! every 5 steps. Every process runs a `RecoveryCoordinator` (strategy
//! restart-from-checkpoint, an answer window of 200 ms, a quorum of a
//! majority of the ranks); the etcd lease (`--lease-ttl`, seconds) is the
//! failure detector. The launcher SIGKILLs the process of rank `R` once it
//! has finished step `S`; the survivors' round fails as soon as its lease
//! expires, they agree on a plan, a standby takes rank `R`, every rank
//! restores its progress from the last committed checkpoint, and the job
//! goes on at the same world size. The launcher prints the time from the
//! SIGKILL to the job's first step in the new epoch
//! (`failover: 2.41 s (kill → next step)`), and checks every rank's final
//! sum. Standbys that no recovery needed are stopped at the end.
//!
//! The processes report to the launcher on their standard output, one line
//! per event: `STEP rank=R member=M epoch=E step=S` after each step,
//! `RESULT rank=R member=M step=S sum=X` at the end.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use steadfast::checkpoint::{
    CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData,
};
use steadfast::coordinator::{Coordinator, EtcdConfig, EtcdCoordinator};
use steadfast::retry::RetryPolicy;
use steadfast::storage::CheckpointStorage;

const USAGE: &str = "usage:
  multi_process --rank R --world-size N --etcd ENDPOINTS --storage URL --job PREFIX
  multi_process --launch N --etcd ENDPOINTS --storage URL --job PREFIX

  the recovering job (any of --standby, --steps, --kill-rank turns it on):
  multi_process --launch N [--standby K] [--steps T] [--lease-ttl SECS]
                [--kill-rank R --kill-at-step S] --etcd ENDPOINTS --storage URL --job PREFIX
  multi_process (--rank R | --spare NAME) --world-size N --steps T [--lease-ttl SECS]
                --etcd ENDPOINTS --storage URL --job PREFIX

  ENDPOINTS  comma-separated etcd endpoints (http://host:2379,...)
  URL        file:///path, or s3://bucket/prefix (feature object-store)
  PREFIX     the job's etcd prefix, the same for every rank of one run
  K          standby processes the launcher starts beside the N ranks
  T          steps of the job (default 40)
  SECS       the etcd lease TTL, the failure detector (default 2)
  R, S       the launcher SIGKILLs rank R's process after its step S";

/// How long a rank waits for the others at each step.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Args {
    rank: Option<usize>,
    world_size: Option<usize>,
    launch: Option<usize>,
    etcd: Option<String>,
    storage: Option<String>,
    job: Option<String>,
    standby: Option<usize>,
    spare: Option<String>,
    steps: Option<u64>,
    lease_ttl: Option<u64>,
    kill_rank: Option<usize>,
    kill_at_step: Option<u64>,
}

impl Args {
    /// Whether the processes run the recovering job.
    fn recovering(&self) -> bool {
        self.standby.is_some()
            || self.spare.is_some()
            || self.steps.is_some()
            || self.kill_rank.is_some()
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args::default();
    while let Some(flag) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, text: String| {
            text.parse::<usize>()
                .map_err(|_| format!("{name} needs a number, got {text:?}"))
        };
        match flag.as_str() {
            "--rank" => parsed.rank = Some(number("--rank", value("--rank")?)?),
            "--world-size" => {
                parsed.world_size = Some(number("--world-size", value("--world-size")?)?)
            }
            "--launch" => parsed.launch = Some(number("--launch", value("--launch")?)?),
            "--etcd" => parsed.etcd = Some(value("--etcd")?),
            "--storage" => parsed.storage = Some(value("--storage")?),
            "--job" => parsed.job = Some(value("--job")?),
            "--standby" => parsed.standby = Some(number("--standby", value("--standby")?)?),
            "--spare" => parsed.spare = Some(value("--spare")?),
            "--steps" => parsed.steps = Some(number("--steps", value("--steps")?)? as u64),
            "--lease-ttl" => {
                parsed.lease_ttl = Some(number("--lease-ttl", value("--lease-ttl")?)? as u64)
            }
            "--kill-rank" => parsed.kill_rank = Some(number("--kill-rank", value("--kill-rank")?)?),
            "--kill-at-step" => {
                parsed.kill_at_step =
                    Some(number("--kill-at-step", value("--kill-at-step")?)? as u64)
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, String> {
    value
        .as_deref()
        .ok_or_else(|| format!("{name} is required"))
}

/// Opens the storage named by `url`.
fn open_storage(url: &str) -> Result<Arc<dyn CheckpointStorage>, String> {
    #[cfg(feature = "object-store")]
    {
        let storage = steadfast::storage::ObjectStoreStorage::from_url(url, std::env::vars())
            .map_err(|e| format!("cannot open storage {url}: {e}"))?;
        Ok(Arc::new(storage))
    }
    #[cfg(not(feature = "object-store"))]
    {
        let path = url.strip_prefix("file://").ok_or_else(|| {
            format!("storage {url}: this build reads file:///path only (enable the object-store feature for s3://)")
        })?;
        let storage = steadfast::storage::LocalFsStorage::new(path)
            .map_err(|e| format!("cannot open storage {url}: {e}"))?;
        Ok(Arc::new(storage))
    }
}

async fn run_rank(
    rank: usize,
    world_size: usize,
    etcd: &str,
    storage_url: &str,
    job: &str,
) -> Result<(), String> {
    let config = EtcdConfig::builder()
        .endpoints_csv(etcd)
        .prefix(job)
        .rank(rank)
        .world_size(world_size)
        .build()
        .map_err(|e| e.to_string())?;
    let coordinator = EtcdCoordinator::connect(config)
        .await
        .map_err(|e| format!("rank {rank}: connect: {e}"))?;
    println!(
        "rank {rank}: connected to etcd at {etcd} (job {job}, lease {:#x})",
        coordinator.lease_id()
    );

    coordinator
        .barrier(STEP_TIMEOUT)
        .await
        .map_err(|e| format!("rank {rank}: first barrier: {e}"))?;
    println!("rank {rank}: all {world_size} ranks are here");

    // Rank 0 names the checkpoint; every rank learns the name from it.
    let proposal = if rank == 0 {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!("run-{millis}").into_bytes()
    } else {
        Vec::new()
    };
    let proposals = coordinator
        .all_gather(proposal, STEP_TIMEOUT)
        .await
        .map_err(|e| format!("rank {rank}: all_gather: {e}"))?;
    let name = proposals
        .first()
        .and_then(|p| String::from_utf8(p.clone()).ok())
        .ok_or_else(|| format!("rank {rank}: rank 0 sent no usable name"))?;

    let storage = open_storage(storage_url)?;
    let checkpoint = DistributedCheckpoint::new(
        storage,
        coordinator.clone(),
        RetryPolicy::default(),
        CheckpointOptions::default(),
    );
    let weights: Vec<u8> = (0..64 * 1024).map(|i| (i * (rank + 1)) as u8).collect();
    let shard = ShardData::new()
        .with_entry(format!("layer.{rank}.weight"), weights.clone())
        .with_entry(format!("layer.{rank}.bias"), vec![rank as u8; 16]);
    let info = checkpoint
        .save(
            &name,
            &shard,
            SaveOptions::new().step(1).timeout(STEP_TIMEOUT),
        )
        .await
        .map_err(|e| format!("rank {rank}: save: {e}"))?;
    println!(
        "rank {rank}: saved my shard of checkpoint {name:?} ({} bytes in all, {} ranks)",
        info.total_size, info.world_size
    );

    coordinator
        .barrier(STEP_TIMEOUT)
        .await
        .map_err(|e| format!("rank {rank}: second barrier: {e}"))?;
    let loaded = checkpoint
        .load(&name, LoadOptions::default())
        .await
        .map_err(|e| format!("rank {rank}: load: {e}"))?;
    let mut expected = weights;
    expected.extend_from_slice(&[rank as u8; 16]);
    if loaded != expected {
        return Err(format!(
            "rank {rank}: loaded {} bytes that differ from the {} saved",
            loaded.len(),
            expected.len()
        ));
    }
    println!(
        "rank {rank}: loaded my shard back and checked it ({} bytes)",
        loaded.len()
    );
    coordinator
        .shutdown(STEP_TIMEOUT)
        .await
        .map_err(|e| format!("rank {rank}: shutdown: {e}"))?;
    println!("rank {rank}: done");
    Ok(())
}

async fn launch(n: usize, etcd: &str, storage: &str, job: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut children = Vec::new();
    for rank in 0..n {
        let child = tokio::process::Command::new(&exe)
            .args(["--rank", &rank.to_string()])
            .args(["--world-size", &n.to_string()])
            .args(["--etcd", etcd, "--storage", storage, "--job", job])
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start rank {rank}: {e}"))?;
        children.push((rank, child));
    }
    println!("launcher: started {n} ranks");
    let mut failed = Vec::new();
    for (rank, mut child) in children {
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for rank {rank}: {e}"))?;
        if !status.success() {
            failed.push(rank);
        }
    }
    if failed.is_empty() {
        println!("launcher: all {n} ranks succeeded");
        Ok(())
    } else {
        Err(format!("launcher: ranks {failed:?} failed"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("{message}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let run = async {
        let etcd = required(&args.etcd, "--etcd")?;
        let storage = required(&args.storage, "--storage")?;
        let job = required(&args.job, "--job")?;
        if args.recovering() {
            return job::main(&args, etcd, storage, job).await;
        }
        match (args.launch, args.rank, args.world_size) {
            (Some(n), None, None) if n > 0 => launch(n, etcd, storage, job).await,
            (None, Some(rank), Some(world_size)) => {
                run_rank(rank, world_size, etcd, storage, job).await
            }
            _ => Err("give either --launch N (N > 0), or --rank and --world-size".to_string()),
        }
    };
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// The recovering job: a worker loop on each process, the launcher that
/// kills a rank and measures the failover.
mod job {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use steadfast::checkpoint::{
        CheckpointOptions, DistributedCheckpoint, MembershipFence, SaveOptions, ShardData,
    };
    use steadfast::coordinator::{
        Coordinator, CoordinatorError, EtcdConfig, EtcdCoordinator, Membership,
    };
    use steadfast::recovery::{
        RecoveryCoordinator, RecoveryCoordinatorConfig, RecoveryEvent, RecoveryStrategyKind,
    };
    use steadfast::retry::RetryPolicy;
    use steadfast::storage::CheckpointStorage;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::sync::broadcast;
    use tokio::time::Instant;

    use super::{open_storage, Args, STEP_TIMEOUT};

    const DEFAULT_STEPS: u64 = 40;
    const CHECKPOINT_EVERY: u64 = 5;
    /// The work of one step.
    const STEP_WORK: Duration = Duration::from_millis(100);
    /// The etcd lease TTL: the failure detector. etcd itself rounds a
    /// shorter TTL up to its minimum (about 2 s with its default timings).
    const DEFAULT_LEASE_TTL: u64 = 2;
    /// How long the recovery leader waits for the survivors' answers.
    const ANSWER_WINDOW: Duration = Duration::from_millis(200);

    type Ckpt = Arc<DistributedCheckpoint<Arc<dyn CheckpointStorage>, EtcdCoordinator>>;

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
    fn expected_sum(rank: usize, steps: u64) -> u64 {
        (rank as u64 + 1) * steps * (steps + 1) / 2
    }

    pub(super) async fn main(
        args: &Args,
        etcd: &str,
        storage: &str,
        job: &str,
    ) -> Result<(), String> {
        let steps = args.steps.unwrap_or(DEFAULT_STEPS);
        let lease_ttl = args.lease_ttl.unwrap_or(DEFAULT_LEASE_TTL);
        if steps == 0 || lease_ttl == 0 {
            return Err("--steps and --lease-ttl must be above 0".into());
        }
        let common = Common {
            etcd: etcd.to_string(),
            storage: storage.to_string(),
            job: job.to_string(),
            steps,
            lease_ttl,
        };
        match (args.launch, args.rank, &args.spare, args.world_size) {
            (Some(n), None, None, None) if n > 0 => {
                let kill = match (args.kill_rank, args.kill_at_step) {
                    (Some(rank), Some(step)) if rank < n && step < steps => Some((rank, step)),
                    (None, None) => None,
                    _ => {
                        return Err(format!(
                            "--kill-rank R and --kill-at-step S go together, with R below {n} and S below {steps}"
                        ))
                    }
                };
                launch(n, args.standby.unwrap_or(0), kill, &common).await
            }
            (None, Some(rank), None, Some(n)) if rank < n => {
                work(Who::Rank(rank), n, &common).await
            }
            (None, None, Some(name), Some(n)) => work(Who::Spare(name.clone()), n, &common).await,
            _ => Err(
                "give --launch N (N > 0), or --world-size N with --rank R (R < N) or --spare NAME"
                    .into(),
            ),
        }
    }

    /// What every process of one run shares.
    struct Common {
        etcd: String,
        storage: String,
        job: String,
        steps: u64,
        lease_ttl: u64,
    }

    /// A process of the job: a rank, or a standby with its member id.
    #[derive(Debug, Clone)]
    enum Who {
        Rank(usize),
        Spare(String),
    }

    impl std::fmt::Display for Who {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Who::Rank(rank) => write!(f, "rank {rank}"),
                Who::Spare(name) => write!(f, "standby {name}"),
            }
        }
    }

    // ---- One process -----------------------------------------------------

    async fn work(who: Who, world_size: usize, common: &Common) -> Result<(), String> {
        let builder = EtcdConfig::builder()
            .endpoints_csv(&common.etcd)
            .prefix(common.job.as_str())
            .world_size(world_size)
            .lease_ttl(Duration::from_secs(common.lease_ttl));
        let builder = match &who {
            Who::Rank(rank) => builder.rank(*rank).member_id(format!("rank-{rank}")),
            Who::Spare(name) => builder.standby(true).member_id(name.as_str()),
        };
        let config = builder.build().map_err(|e| e.to_string())?;
        let member = EtcdCoordinator::connect(config)
            .await
            .map_err(|e| format!("{who}: connect: {e}"))?;
        let me = member.member_id().to_string();
        println!("{me}: connected to etcd (job {})", common.job);

        // Epoch 0 is complete once every rank has connected: the ranks meet
        // at a barrier, a standby waits until it can read the epoch.
        match &who {
            Who::Rank(_) => member
                .barrier(STEP_TIMEOUT)
                .await
                .map_err(|e| format!("{me}: first barrier: {e}"))?,
            Who::Spare(_) => {
                let deadline = Instant::now() + STEP_TIMEOUT;
                loop {
                    match member.current_epoch().await {
                        Ok(_) => break,
                        Err(CoordinatorError::Unavailable { .. }) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(100)).await
                        }
                        Err(e) => return Err(format!("{me}: reading the epoch: {e}")),
                    }
                }
            }
        }

        let storage = open_storage(&common.storage)?;
        let fence = MembershipFence::new(member.clone());
        let ckpt: Ckpt = Arc::new(
            DistributedCheckpoint::new(
                storage,
                member.clone(),
                RetryPolicy::default(),
                CheckpointOptions::default(),
            )
            .with_fence(fence.clone()),
        );
        let progress = Arc::new(Mutex::new(Progress::default()));
        let config = RecoveryCoordinatorConfig::builder()
            .recovery_strategy(RecoveryStrategyKind::RestartFromCheckpoint)
            .quorum_size(world_size / 2 + 1)
            .answer_window(ANSWER_WINDOW)
            .build()
            .map_err(|e| e.to_string())?;
        let (restore_ckpt, restore_into) = (Arc::clone(&ckpt), Arc::clone(&progress));
        let recovery = RecoveryCoordinator::builder(member.clone())
            .config(config)
            .checkpoints(Arc::clone(&ckpt))
            .fence(fence)
            .on_failure(move |ctx| {
                let (ckpt, progress) = (Arc::clone(&restore_ckpt), Arc::clone(&restore_into));
                async move {
                    let shard = ctx.assignment.shards.first().copied().ok_or("no shard")?;
                    let restored = match &ctx.plan.checkpoint {
                        Some(name) => {
                            let bytes = ckpt.load_entry(name, &format!("progress.{shard}")).await?;
                            Progress::from_bytes(&bytes).ok_or("a damaged progress entry")?
                        }
                        None => Progress::default(),
                    };
                    println!(
                        "{}: restores rank {shard}'s progress at step {} from {:?}",
                        ctx.member, restored.step, ctx.plan.checkpoint
                    );
                    *progress.lock().unwrap() = restored;
                    Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
                }
            })
            .build();
        let events = recovery.subscribe();
        if let Who::Rank(_) = who {
            let leader = recovery
                .establish_leader(STEP_TIMEOUT)
                .await
                .map_err(|e| format!("{me}: electing the first leader: {e}"))?;
            println!("{me}: the leader is {}", leader.member);
        }
        let handle = recovery.start();
        let finished = steps_loop(&member, &ckpt, &progress, events, common.steps).await;
        handle.stop().await;
        let (rank, done) = finished.map_err(|why| format!("{me}: {why}"))?;
        println!(
            "RESULT rank={rank} member={me} step={} sum={}",
            done.step, done.sum
        );
        member
            .shutdown(STEP_TIMEOUT)
            .await
            .map_err(|e| format!("{me}: shutdown: {e}"))?;
        Ok(())
    }

    /// The worker loop: wait for a rank, compute, checkpoint; after a
    /// failure wait for the recovery, which restored `progress`, and go on.
    /// Returns the rank and progress it finished with.
    async fn steps_loop(
        member: &EtcdCoordinator,
        ckpt: &Ckpt,
        progress: &Mutex<Progress>,
        mut events: broadcast::Receiver<RecoveryEvent>,
        steps: u64,
    ) -> Result<(usize, Progress), String> {
        // A standby waits until a recovery gives it a rank.
        while member.role().rank().is_none() {
            wait_for_recovery(member, &mut events, "is a standby").await?;
        }
        // The epoch this member's steps run in: its collectives must not run
        // in a newer epoch before the recovery that made it is confirmed
        // (its handlers restored `progress`), so check before every step
        // and every collective.
        let mut epoch = member.epoch();
        loop {
            if member.epoch() != epoch {
                wait_for_recovery(member, &mut events, "between steps").await?;
                epoch = member.epoch();
            }
            let mut now = *progress.lock().unwrap();
            if now.step == steps {
                return Ok((member.rank(), now));
            }
            now.step += 1;
            // The step's work.
            tokio::time::sleep(STEP_WORK).await;
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
                        SaveOptions::new().step(now.step).timeout(STEP_TIMEOUT),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            };
            match step.await {
                Ok(()) => {
                    *progress.lock().unwrap() = now;
                    println!(
                        "STEP rank={} member={} epoch={epoch} step={}",
                        member.rank(),
                        member.member_id(),
                        now.step
                    );
                }
                Err(e) => {
                    let why = format!("failed at step {}: {e}", now.step);
                    wait_for_recovery(member, &mut events, &why).await?;
                    epoch = member.epoch();
                }
            }
        }
    }

    /// Waits for the recovery this member takes part in.
    async fn wait_for_recovery(
        member: &EtcdCoordinator,
        events: &mut broadcast::Receiver<RecoveryEvent>,
        why: &str,
    ) -> Result<(), String> {
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
                    return Ok(());
                }
                Ok(RecoveryEvent::FailureDetected { rank, reason, .. }) => {
                    println!("{}: rank {rank} failed: {reason}", member.member_id())
                }
                Ok(RecoveryEvent::Fenced { epoch }) => {
                    return Err(format!("fenced: epoch {epoch} gives it no rank"))
                }
                Ok(RecoveryEvent::GaveUp { reason }) => {
                    return Err(format!("the recovery gave up: {reason}"))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("the recovery events broke: {e}")),
            }
        }
    }

    // ---- The launcher ----------------------------------------------------

    /// What a process said on one line of its standard output.
    #[derive(Debug, PartialEq)]
    enum Report {
        Step {
            rank: usize,
            epoch: u64,
            step: u64,
        },
        Result {
            rank: usize,
            member: String,
            sum: u64,
        },
    }

    /// Reads a `STEP ...` or `RESULT ...` line.
    fn parse_report(line: &str) -> Option<Report> {
        let mut words = line.split_whitespace();
        let kind = words.next()?;
        let fields: BTreeMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
        let num = |name: &str| fields.get(name)?.parse::<u64>().ok();
        match kind {
            "STEP" => Some(Report::Step {
                rank: num("rank")? as usize,
                epoch: num("epoch")?,
                step: num("step")?,
            }),
            "RESULT" => Some(Report::Result {
                rank: num("rank")? as usize,
                member: fields.get("member")?.to_string(),
                sum: num("sum")?,
            }),
            _ => None,
        }
    }

    async fn launch(
        n: usize,
        standbys: usize,
        kill: Option<(usize, u64)>,
        common: &Common,
    ) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<(usize, String)>();
        let whos: Vec<Who> = (0..n)
            .map(Who::Rank)
            .chain((0..standbys).map(|i| Who::Spare(format!("spare-{i}"))))
            .collect();
        let mut children = Vec::new();
        for (index, who) in whos.iter().enumerate() {
            let mut command = tokio::process::Command::new(&exe);
            match who {
                Who::Rank(rank) => command.args(["--rank", &rank.to_string()]),
                Who::Spare(name) => command.args(["--spare", name]),
            };
            let mut child = command
                .args(["--world-size", &n.to_string()])
                .args(["--steps", &common.steps.to_string()])
                .args(["--lease-ttl", &common.lease_ttl.to_string()])
                .args(["--etcd", &common.etcd, "--storage", &common.storage])
                .args(["--job", &common.job])
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start {who}: {e}"))?;
            let stdout = child.stdout.take().ok_or("no standard output")?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if tx.send((index, line)).is_err() {
                        break;
                    }
                }
            });
            children.push(child);
        }
        drop(tx);
        println!("launcher: started {n} ranks and {standbys} standbys");

        let mut killed: Option<(Instant, u64)> = None;
        let mut failover: Option<Duration> = None;
        let mut results: BTreeMap<usize, (String, u64)> = BTreeMap::new();
        let mut reported = Vec::new();
        let deadline = Instant::now() + STEP_TIMEOUT * 5;
        while results.len() < n {
            let next = tokio::time::timeout_at(deadline, lines.recv()).await;
            let Ok(Some((index, line))) = next else {
                break;
            };
            match parse_report(&line) {
                Some(Report::Step { rank, epoch, step }) => {
                    if let (Some((victim, at)), None) = (kill, killed)
                        && index == victim
                        && rank == victim
                        && step >= at
                    {
                        children[index]
                            .start_kill()
                            .map_err(|e| format!("cannot kill rank {victim}: {e}"))?;
                        killed = Some((Instant::now(), epoch));
                        println!("launcher: SIGKILLed rank {victim} after its step {step}");
                    }
                    if let (Some((at, old)), None) = (killed, failover)
                        && epoch > old
                    {
                        let took = at.elapsed();
                        failover = Some(took);
                        println!(
                            "failover: {:.2} s (kill → next step: step {step} of epoch {epoch})",
                            took.as_secs_f64()
                        );
                    }
                }
                Some(Report::Result { rank, member, sum }) => {
                    println!("{line}");
                    results.insert(rank, (member, sum));
                    reported.push(index);
                }
                None => println!("{line}"),
            }
        }

        // The ranks exit once done; a standby that no recovery needed waits
        // for one forever: stop it.
        let mut failed = Vec::new();
        for (index, mut child) in children.into_iter().enumerate() {
            let who = &whos[index];
            if index >= n && !reported.contains(&index) {
                child.start_kill().ok();
                child.wait().await.ok();
                println!("launcher: {who} was not needed; stopped it");
                continue;
            }
            match tokio::time::timeout(STEP_TIMEOUT, child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                // The rank it SIGKILLed.
                Ok(Ok(_)) if kill.is_some_and(|(rank, _)| index == rank) => {}
                Ok(Ok(status)) => failed.push(format!("{who} ({status})")),
                Ok(Err(e)) => failed.push(format!("{who} (waiting for it: {e})")),
                Err(_) => {
                    child.start_kill().ok();
                    failed.push(format!("{who} (did not exit)"));
                }
            }
        }

        let mut wrong = Vec::new();
        for rank in 0..n {
            let expected = expected_sum(rank, common.steps);
            match results.get(&rank) {
                Some((member, sum)) if *sum == expected => {
                    println!("launcher: rank {rank} ({member}): sum {sum} (expected {expected})")
                }
                Some((member, sum)) => wrong.push(format!(
                    "rank {rank} ({member}): sum {sum}, expected {expected}"
                )),
                None => wrong.push(format!("rank {rank}: no result")),
            }
        }
        if let Some((victim, _)) = kill {
            match results.get(&victim) {
                Some((member, _)) if member != &format!("rank-{victim}") => {
                    println!("launcher: rank {victim} was taken over by {member}")
                }
                _ => wrong.push(format!("rank {victim} was not taken over by a standby")),
            }
            if failover.is_none() {
                wrong.push("no step was completed after the kill".into());
            }
        }
        if !failed.is_empty() || !wrong.is_empty() {
            failed.extend(wrong);
            return Err(format!("launcher: the job failed: {}", failed.join("; ")));
        }
        println!("launcher: the job finished with the right result");
        Ok(())
    }
}
