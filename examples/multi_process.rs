//! A distributed job of several processes that meet through etcd and save a
//! sharded checkpoint.
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

  ENDPOINTS  comma-separated etcd endpoints (http://host:2379,...)
  URL        file:///path, or s3://bucket/prefix (feature object-store)
  PREFIX     the job's etcd prefix, the same for every rank of one run";

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
