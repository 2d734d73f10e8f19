//! The `steadfast` command-line tool, run as a real child process on
//! checkpoint directories the library wrote: a good checkpoint (two ranks,
//! zstd), a corrupt one (a byte of its shard flipped on disk), an
//! uncommitted one (shards without a manifest), and chunked ones. Each
//! command's text and JSON output and its exit code.
//!
//! The checkpoints are written before the tool runs; nothing waits on the
//! clock (ages come from a manual wall clock at save time, and the clean-up
//! grace is given as `0s` where leftovers must go).

#[cfg(feature = "object-store")]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use steadfast::checkpoint::{
    CheckpointOptions, Chunking, Compression, DistributedCheckpoint, Manifest, ManualClock,
    SaveOptions, ShardData, MANIFEST_FILE_NAME,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::LocalFsStorage;
use tempfile::TempDir;

type Ckpt = DistributedCheckpoint<LocalFsStorage, InMemoryCoordinator>;

const DAY: Duration = Duration::from_secs(86_400);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn handle(dir: &Path, rank: InMemoryCoordinator) -> Ckpt {
    DistributedCheckpoint::new(
        LocalFsStorage::new(dir).unwrap(),
        rank,
        RetryPolicy::default(),
        CheckpointOptions::default(),
    )
}

fn rank0(dir: &Path) -> Ckpt {
    handle(dir, InMemoryCoordinator::new(1).remove(0))
}

/// Deterministic bytes that neither compress nor repeat.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One rank saves `name` with entries `weights` and `optimizer`.
async fn save_one(dir: &Path, name: &str, step: u64) {
    let shard = ShardData::new()
        .with_entry("weights", noise(step, 4096))
        .with_entry("optimizer", noise(step + 1000, 4096));
    rank0(dir)
        .save(name, &shard, SaveOptions::new().step(step))
        .await
        .unwrap();
}

/// Two ranks save `name`, compressed with zstd.
async fn save_two_ranks(dir: &Path, name: &str, step: u64) {
    let saves: Vec<_> = InMemoryCoordinator::new(2)
        .into_iter()
        .map(|rank| {
            let ckpt = handle(dir, rank);
            let name = name.to_string();
            tokio::spawn(async move {
                let r = ckpt.rank();
                let shard = ShardData::new()
                    .with_entry(format!("rank-{r}/weights"), vec![r as u8; 2048])
                    .with_entry(format!("rank-{r}/step"), step.to_le_bytes().to_vec());
                let options = SaveOptions::new()
                    .step(step)
                    .compression(Compression::zstd_level(1))
                    .metadata("job", "cli-test");
                ckpt.save(&name, &shard, options).await
            })
        })
        .collect();
    for save in saves {
        save.await.unwrap().unwrap();
    }
}

/// The shard files of checkpoint `name` on disk.
fn shard_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let file = p.file_name().unwrap().to_string_lossy();
            file.starts_with("shard-") && file.ends_with(".bin")
        })
        .collect();
    files.sort();
    files
}

/// Flips the bits of the byte at `offset` of `file`, in place.
fn flip(file: &Path, offset: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[offset] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

/// A directory holding `corrupt` (step 10, one rank, a byte of its
/// `weights` flipped on disk), `good` (step 20, two ranks, zstd) and
/// `crashed` (a shard, no manifest).
fn fixture() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        save_one(dir.path(), "corrupt", 10).await;
        save_two_ranks(dir.path(), "good", 20).await;
        save_one(dir.path(), "crashed", 30).await;
    });
    // Entries are stored in the order given: `weights` is the first 4 KiB.
    let [shard] = &shard_files(dir.path(), "corrupt")[..] else {
        panic!("one shard");
    };
    flip(shard, 100);
    std::fs::remove_file(dir.path().join("crashed").join(MANIFEST_FILE_NAME)).unwrap();
    dir
}

fn manifest(dir: &Path, name: &str) -> Manifest {
    let bytes = std::fs::read(dir.join(name).join(MANIFEST_FILE_NAME)).unwrap();
    Manifest::from_bytes(name, &bytes).unwrap()
}

/// What a run of the tool gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", self.stdout))
    }
}

fn steadfast<I, A>(args: I) -> Run
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The tool on `dir` (given as the first argument), with `args` after it.
fn on(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec![dir.as_os_str().to_owned()];
    all.extend(args.iter().map(|a| a.into()));
    steadfast(all)
}

fn names(list: &Value) -> Vec<String> {
    list["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn list_shows_only_committed_checkpoints_newest_first() {
    let dir = fixture();
    let run = on(dir.path(), &["list"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{}", run.stdout);
    assert!(lines[1].starts_with("good "), "{}", run.stdout);
    assert!(lines[2].starts_with("corrupt "), "{}", run.stdout);
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(!run.stdout.contains("crashed"));
    assert!(
        lines[1].contains("zstd") && lines[1].contains(" 20 "),
        "{}",
        lines[1]
    );

    let run = steadfast([
        "--dir".as_ref(),
        dir.path().as_os_str(),
        "list".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let list = run.json();
    assert_eq!(names(&list), ["good", "corrupt"]);
    let good = &list["checkpoints"][0];
    let m = manifest(dir.path(), "good");
    assert_eq!(good["step"], 20);
    assert_eq!(good["sequence"], m.sequence.unwrap());
    assert_eq!(good["world_size"], 2);
    assert_eq!(good["shards"], 2);
    assert_eq!(good["total_size"], m.total_size());
    assert_eq!(good["committed_at_ms"], m.created_at);
    assert!(good["committed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(good["codec"], "zstd");
    assert_eq!(good["chunked"], false);
    assert_eq!(list["checkpoints"][1]["codec"], "none");
    assert_eq!(list["unreadable"], Value::Array(vec![]));
}

#[test]
fn show_prints_the_manifest() {
    let dir = fixture();
    let m = manifest(dir.path(), "good");
    let run = on(dir.path(), &["show", "good"]);
    assert_eq!(run.code, 0, "{run:?}");
    for expected in [
        "checkpoint  good",
        "version 5",
        "world size  2",
        "codec       zstd",
        "metadata    job = cli-test",
        "rank-0/weights",
        "rank-1/step",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} in\n{}",
            run.stdout
        );
    }
    for shard in &m.shards {
        assert!(run.stdout.contains(&shard.key), "{}", run.stdout);
        assert!(run.stdout.contains(&shard.sha256), "{}", run.stdout);
    }

    let shown = on(dir.path(), &["show", "good", "--json"]).json();
    assert_eq!(shown["name"], "good");
    assert_eq!(shown["format_version"], m.format_version);
    assert_eq!(shown["step"], 20);
    assert_eq!(shown["world_size"], 2);
    assert_eq!(shown["commit"], Value::Null);
    assert_eq!(shown["checksum"], m.checksum.as_str());
    assert_eq!(shown["metadata"]["job"], "cli-test");
    let shards = shown["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    for (shown, shard) in shards.iter().zip(&m.shards) {
        assert_eq!(shown["rank"], shard.rank);
        assert_eq!(shown["key"], shard.key.as_str());
        assert_eq!(shown["size"], shard.size);
        assert_eq!(shown["sha256"], shard.sha256.as_str());
        assert_eq!(shown["codec"], "zstd");
        assert_eq!(shown["uncompressed_size"], shard.uncompressed_size());
        assert_eq!(shown["chunks"], Value::Null);
    }
    let entries = shown["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    let weights = entries
        .iter()
        .find(|e| e["name"] == "rank-1/weights")
        .unwrap();
    assert_eq!(weights["rank"], 1);
    assert_eq!(weights["length"], 2048);
    assert_eq!(
        weights["sha256"],
        m.entries["rank-1/weights"].sha256.as_deref().unwrap()
    );

    let missing = on(dir.path(), &["show", "crashed", "--json"]);
    assert_eq!(missing.code, 3, "{missing:?}");
    assert_eq!(missing.json()["error"]["kind"], "not_found");
    let missing = on(dir.path(), &["show", "crashed"]);
    assert_eq!(missing.code, 3);
    assert!(missing.stderr.contains("crashed"), "{missing:?}");
    assert!(missing.stdout.is_empty());
}

#[test]
fn verify_of_the_good_checkpoint_exits_0() {
    let dir = fixture();
    let run = on(dir.path(), &["verify", "good"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with("ok       good  (2 shards,"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 checkpoint: 1 ok, 0 corrupt"),
        "{}",
        run.stdout
    );

    let report = on(dir.path(), &["verify", "good", "--json"]);
    assert_eq!(report.code, 0);
    // No progress bar without a terminal, and none with --json.
    assert!(report.stderr.is_empty(), "{report:?}");
    let report = report.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["verified"], 1);
    let good = &report["checkpoints"][0];
    assert_eq!(good["status"], "ok");
    assert_eq!(good["shards_ok"], 2);
    assert!(report["bytes_read"].as_u64().unwrap() >= manifest(dir.path(), "good").total_size());
}

#[test]
fn verify_of_the_corrupt_checkpoint_names_the_shard_and_the_entry() {
    let dir = fixture();
    let m = manifest(dir.path(), "corrupt");
    let shard = &m.shards[0];
    let run = on(dir.path(), &["verify", "corrupt"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.starts_with("CORRUPT  corrupt"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("shard {} (rank 0)", shard.key)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("expected sha256 {}", shard.sha256)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("damaged entries: weights\n"),
        "{}",
        run.stdout
    );

    let report = on(dir.path(), &["verify", "corrupt", "--json"]);
    assert_eq!(report.code, 1);
    let report = report.json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["corrupt"], 1);
    let checked = &report["checkpoints"][0];
    assert_eq!(checked["status"], "corrupt");
    assert_eq!(checked["shards_ok"], 0);
    let problem = &checked["problems"][0];
    assert_eq!(problem["kind"], "shard");
    assert_eq!(problem["rank"], 0);
    assert_eq!(problem["shard"], shard.key.as_str());
    assert_eq!(problem["object"], shard.key.as_str());
    assert_eq!(problem["entries"], serde_json::json!(["weights"]));
    assert_eq!(problem["expected"], format!("sha256 {}", shard.sha256));
    let found = problem["found"].as_str().unwrap();
    assert!(
        found.starts_with("sha256 ") && found != problem["expected"],
        "{found}"
    );
}

#[test]
fn verify_reports_every_damaged_shard_not_only_the_first() {
    let dir = fixture();
    let m = manifest(dir.path(), "good");
    for file in shard_files(dir.path(), "good") {
        // Inside the first zstd frame of each (compressed) shard.
        flip(&file, 20);
    }
    let run = on(dir.path(), &["verify", "good", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let report = run.json();
    let problems = report["checkpoints"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    for (problem, shard) in problems.iter().zip(&m.shards) {
        assert_eq!(problem["kind"], "shard");
        assert_eq!(problem["rank"], shard.rank);
        assert_eq!(problem["object"], shard.key.as_str());
        let entries = problem["entries"].as_array().unwrap();
        assert!(
            entries.contains(&Value::from(format!("rank-{}/weights", shard.rank))),
            "{problem}"
        );
    }
}

#[test]
fn verify_all_checks_every_committed_checkpoint() {
    let dir = fixture();
    let run = on(dir.path(), &["verify", "--all"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("ok       good"), "{}", run.stdout);
    assert!(run.stdout.contains("CORRUPT  corrupt"), "{}", run.stdout);
    assert!(!run.stdout.contains("crashed"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("2 checkpoints: 1 ok, 1 corrupt, 0 unreadable"),
        "{}",
        run.stdout
    );

    let report = on(dir.path(), &["verify", "--all", "--json"]).json();
    let statuses: Vec<(&str, &str)> = report["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("good", "ok"), ("corrupt", "corrupt")]);

    // Once the corrupt one is gone, everything verifies.
    assert_eq!(on(dir.path(), &["delete", "corrupt"]).code, 0);
    assert_eq!(on(dir.path(), &["verify", "--all"]).code, 0);
}

#[test]
fn a_damaged_manifest_is_unreadable_in_list_and_corrupt_in_verify() {
    let dir = fixture();
    let path = dir.path().join("good").join(MANIFEST_FILE_NAME);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"step\": 20", "\"step\": 21")).unwrap();

    let list = on(dir.path(), &["list", "--json"]);
    assert_eq!(list.code, 0, "{list:?}");
    let list = list.json();
    assert_eq!(names(&list), ["corrupt"]);
    assert_eq!(list["unreadable"][0]["name"], "good");
    assert!(list["unreadable"][0]["error"]
        .as_str()
        .unwrap()
        .contains("checksum"));

    let run = on(dir.path(), &["verify", "good", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let problem = &run.json()["checkpoints"][0]["problems"][0];
    assert_eq!(problem["kind"], "manifest");
    assert_eq!(problem["object"], "good/metadata.json");
    assert_eq!(problem["rank"], Value::Null);

    let all = on(dir.path(), &["verify", "--all", "--json"]).json();
    assert_eq!(all["corrupt"], 2);
    assert_eq!(on(dir.path(), &["show", "good"]).code, 1);
}

#[test]
fn delete_removes_the_manifest_first_then_the_shards() {
    let dir = fixture();
    let run = on(dir.path(), &["delete", "good", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["name"], "good");
    let deleted: Vec<&str> = report["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(deleted.len(), 3, "{deleted:?}");
    assert_eq!(deleted[0], "good/metadata.json");
    assert!(deleted[1..].iter().all(|k| k.starts_with("good/shard-")));
    assert!(!dir.path().join("good").exists());
    assert_eq!(
        names(&on(dir.path(), &["list", "--json"]).json()),
        ["corrupt"]
    );
    // The others are untouched.
    assert_eq!(shard_files(dir.path(), "crashed").len(), 1);

    let again = on(dir.path(), &["delete", "good"]);
    assert_eq!(again.code, 3, "{again:?}");
    assert!(again.stderr.contains("good"));

    let run = on(dir.path(), &["delete", "corrupt"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "deleted corrupt (2 objects)\n");
}

/// Checkpoints `step-1` to `step-4`, committed in that order.
fn four_steps() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        for step in 1..=4 {
            save_one(dir.path(), &format!("step-{step}"), step).await;
        }
    });
    dir
}

#[test]
fn retain_keep_last() {
    let dir = four_steps();
    let dry = on(
        dir.path(),
        &["retain", "--keep-last", "2", "--dry-run", "--json"],
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    let dry = dry.json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["removed"], serde_json::json!(["step-1", "step-2"]));
    assert_eq!(
        dry["kept"][0],
        serde_json::json!({"name": "step-4", "reason": "newest"})
    );
    assert_eq!(
        dry["kept"][1],
        serde_json::json!({"name": "step-3", "reason": "one of the last n"})
    );
    assert_eq!(names(&on(dir.path(), &["list", "--json"]).json()).len(), 4);

    let run = on(dir.path(), &["retain", "--keep-last", "2"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("deleted step-1\n"), "{}", run.stdout);
    assert!(run.stdout.contains("deleted step-2\n"), "{}", run.stdout);
    assert!(run.stdout.contains("keep    step-3"), "{}", run.stdout);
    assert_eq!(
        names(&on(dir.path(), &["list", "--json"]).json()),
        ["step-4", "step-3"]
    );
    assert!(!dir.path().join("step-1").exists());

    // The newest is always kept.
    let run = on(dir.path(), &["retain", "--keep-last", "1", "--json"]);
    assert_eq!(run.json()["removed"], serde_json::json!(["step-3"]));
    let zero = on(dir.path(), &["retain", "--keep-last", "0"]);
    assert_eq!(zero.code, 2, "{zero:?}");
}

#[test]
fn retain_with_a_prefix_leaves_other_names_alone() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        for (step, name) in ["run-a/1", "run-b/1", "run-a/2", "run-b/2"]
            .into_iter()
            .enumerate()
        {
            save_one(dir.path(), name, step as u64).await;
        }
    });
    let run = on(
        dir.path(),
        &["retain", "--keep-last", "1", "--prefix", "run-a", "--json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["removed"], serde_json::json!(["run-a/1"]));
    assert_eq!(
        names(&on(dir.path(), &["list", "--json"]).json()),
        ["run-b/2", "run-a/2", "run-b/1"]
    );
}

#[test]
fn retain_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    block_on(async {
        // Committed 30 and 10 days ago by the clock the saves read, then now.
        for (name, age) in [
            ("month-old", 30 * DAY),
            ("ten-days-old", 10 * DAY),
            ("fresh", Duration::ZERO),
        ] {
            let ckpt = rank0(dir.path()).with_wall_clock(ManualClock::new(now - age));
            ckpt.save(
                name,
                &ShardData::new().with_entry("a", vec![1; 16]),
                SaveOptions::new(),
            )
            .await
            .unwrap();
        }
    });
    let run = on(dir.path(), &["retain", "--max-age", "14d", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["removed"], serde_json::json!(["month-old"]));
    assert_eq!(report["max_age_secs"], 14.0 * 86_400.0);
    assert_eq!(
        names(&on(dir.path(), &["list", "--json"]).json()),
        ["fresh", "ten-days-old"]
    );
    let run = on(dir.path(), &["retain", "--max-age", "1w"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("deleted ten-days-old"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("keep    fresh  (newest)"),
        "{}",
        run.stdout
    );

    let bad = on(dir.path(), &["retain", "--max-age", "7"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("missing unit"), "{}", bad.stderr);
}

/// Every file under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn cleanup_removes_the_uncommitted_leftovers_and_nothing_else() {
    let dir = fixture();
    // A temporary file an interrupted write left behind.
    std::fs::write(
        dir.path().join("good").join(".x.tmp-4242-00000000deadbeef"),
        b"partial",
    )
    .unwrap();
    let before = files(dir.path());

    // Within the default grace (10 minutes) a save may still be writing.
    let run = on(dir.path(), &["cleanup", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["recent"], serde_json::json!(["crashed"]));
    assert_eq!(report["removed"], serde_json::json!([]));
    assert_eq!(report["grace_secs"], 600.0);
    assert_eq!(files(dir.path()), before);

    let run = on(dir.path(), &["cleanup", "--grace", "0s"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("removed uncommitted crashed/"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("removed 1 temporary file(s)"),
        "{}",
        run.stdout
    );
    let expected: Vec<String> = before
        .into_iter()
        .filter(|f| !f.starts_with("crashed") && !f.contains(".tmp-"))
        .collect();
    assert_eq!(files(dir.path()), expected);
    assert!(!dir.path().join("crashed").exists());
    // What was committed is as it was (the corrupt one too).
    assert_eq!(on(dir.path(), &["verify", "good"]).code, 0);
    assert_eq!(on(dir.path(), &["verify", "corrupt"]).code, 1);

    let run = on(dir.path(), &["cleanup", "--grace", "0s"]);
    assert_eq!(run.stdout, "nothing to clean up\n");
}

/// Chunked checkpoints `c1` and `c2` of different bytes, 4 KiB chunks.
fn chunked() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let ckpt = rank0(dir.path());
        for (i, name) in ["c1", "c2"].into_iter().enumerate() {
            let shard = ShardData::new().with_entry("weights", noise(i as u64 + 7, 64 << 10));
            let options = SaveOptions::new()
                .step(i as u64)
                .chunking(Chunking::with_average_size(4096).unwrap());
            ckpt.save(name, &shard, options).await.unwrap();
        }
    });
    dir
}

fn chunk_files(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| f.starts_with("chunks/") && !f.starts_with("chunks/locks"))
        .collect()
}

#[test]
fn gc_collects_the_chunks_of_deleted_checkpoints() {
    let dir = chunked();
    let list = on(dir.path(), &["list", "--json"]).json();
    assert_eq!(list["checkpoints"][0]["chunked"], true);
    let all_chunks = chunk_files(dir.path()).len();
    assert!(all_chunks > 10, "{all_chunks}");

    // Nothing to collect while both are committed.
    let run = on(dir.path(), &["gc", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["deleted"], serde_json::json!([]));
    assert_eq!(report["kept"], all_chunks);

    // A delete leaves the chunks; gc takes those no one refers to.
    assert_eq!(on(dir.path(), &["delete", "c1"]).code, 0);
    assert_eq!(chunk_files(dir.path()).len(), all_chunks);
    let run = on(dir.path(), &["gc"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("chunks: "), "{}", run.stdout);
    let left = chunk_files(dir.path()).len();
    assert!(left < all_chunks && left > 0, "{left} of {all_chunks}");
    assert_eq!(on(dir.path(), &["verify", "c2"]).code, 0);
    let report = on(dir.path(), &["gc", "--json"]).json();
    assert_eq!(report["deleted"], serde_json::json!([]));
    assert_eq!(report["checkpoints"], serde_json::json!(["c2"]));
}

#[test]
fn verify_names_a_damaged_chunk() {
    let dir = chunked();
    let chunk = &chunk_files(dir.path())[0];
    flip(&dir.path().join(chunk), 0);
    let run = on(dir.path(), &["verify", "--all", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let report = run.json();
    let damaged: Vec<&Value> = report["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "corrupt")
        .collect();
    assert!(!damaged.is_empty());
    let problem = &damaged[0]["problems"][0];
    assert_eq!(problem["kind"], "chunk");
    assert_eq!(problem["object"], chunk.as_str());
    assert_eq!(problem["entries"], serde_json::json!(["weights"]));
    let digest = chunk.strip_prefix("chunks/").unwrap();
    assert_eq!(problem["expected"], format!("sha256 {digest}"));

    // gc refuses nothing here (manifests and indexes are fine) and keeps
    // the damaged chunk, which a checkpoint refers to.
    assert_eq!(on(dir.path(), &["gc"]).code, 0);
    assert!(dir.path().join(chunk).exists());
}

#[test]
fn usage_errors_exit_2_and_a_missing_directory_3() {
    let dir = fixture();
    let none = steadfast(["list"]);
    assert_eq!(none.code, 2, "{none:?}");
    assert!(none.stderr.contains("no location"), "{}", none.stderr);
    assert_eq!(on(dir.path(), &["retain"]).code, 2);
    assert_eq!(on(dir.path(), &["verify"]).code, 2);
    assert_eq!(on(dir.path(), &["verify", "good", "--all"]).code, 2);
    assert_eq!(on(dir.path(), &["frobnicate"]).code, 2);
    let bad_name = on(dir.path(), &["show", "../escape", "--json"]);
    assert_eq!(bad_name.code, 2, "{bad_name:?}");
    assert_eq!(bad_name.json()["error"]["kind"], "usage");

    let missing = dir.path().join("no-such-dir");
    let run = on(&missing, &["list"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("no directory"), "{}", run.stderr);
    assert!(!missing.exists(), "listing must not create the directory");
}

#[cfg(not(feature = "object-store"))]
#[test]
fn a_storage_url_needs_the_object_store_feature() {
    let run = steadfast(["s3://bucket/jobs/run-1", "list"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("`object-store` feature"),
        "{}",
        run.stderr
    );
}

#[cfg(feature = "object-store")]
#[test]
fn a_storage_url_is_opened_through_object_store() {
    use steadfast::storage::ObjectStoreStorage;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/bucket", dir.path().display());
    block_on(async {
        let storage =
            ObjectStoreStorage::from_url(&url, std::iter::empty::<(&str, &str)>()).unwrap();
        let rank = InMemoryCoordinator::new(1).remove(0);
        let ckpt = DistributedCheckpoint::new(
            storage,
            rank,
            RetryPolicy::default(),
            CheckpointOptions::default(),
        );
        ckpt.save(
            "remote",
            &ShardData::new().with_entry("a", vec![5; 64]),
            SaveOptions::new().step(3),
        )
        .await
        .unwrap();
    });
    let list = steadfast([url.as_str(), "list", "--json"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert_eq!(names(&list.json()), ["remote"]);
    assert_eq!(steadfast([url.as_str(), "verify", "remote"]).code, 0);
}

/// The tool on an S3 server (`.ci/services.sh` starts one): the location
/// is an `s3://` URL, and the endpoint and credentials come from the
/// `AWS_*` environment variables, as a user sets them.
#[cfg(feature = "object-store")]
#[test]
fn on_an_s3_bucket() {
    use steadfast::storage::ObjectStoreStorage;

    let test = "cli_on_an_s3_bucket";
    let Some(endpoint) = common::server_var(test, "STEADFAST_S3_ENDPOINT") else {
        return;
    };
    let Some(bucket) = common::server_var(test, "STEADFAST_S3_BUCKET") else {
        return;
    };
    let url = format!("s3://{bucket}/{}", common::unique(test));
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let (key_id, secret, region) = (
        var("AWS_ACCESS_KEY_ID", "testing"),
        var("AWS_SECRET_ACCESS_KEY", "testing"),
        var("AWS_REGION", "us-east-1"),
    );
    block_on(async {
        let options = [
            ("aws_endpoint", endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", key_id.as_str()),
            ("aws_secret_access_key", secret.as_str()),
            ("aws_region", region.as_str()),
        ];
        let storage = ObjectStoreStorage::from_url(&url, options).unwrap();
        let rank = InMemoryCoordinator::new(1).remove(0);
        let ckpt = DistributedCheckpoint::new(
            storage,
            rank,
            RetryPolicy::default(),
            CheckpointOptions::default(),
        );
        for step in [1, 2] {
            let shard = ShardData::new().with_entry("a", vec![step as u8; 64]);
            ckpt.save(
                &format!("step-{step}"),
                &shard,
                SaveOptions::new().step(step),
            )
            .await
            .unwrap();
        }
    });
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_steadfast"))
            .arg(&url)
            .args(args)
            .env("AWS_ENDPOINT", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", &key_id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_REGION", &region)
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    };
    let list = run(&["list", "--json"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert_eq!(names(&list.json()), ["step-2", "step-1"]);
    let verify = run(&["verify", "--all"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert_eq!(run(&["retain", "--keep-last", "1"]).code, 0);
    assert_eq!(names(&run(&["list", "--json"]).json()), ["step-2"]);
}

#[test]
fn help_documents_the_commands_exit_codes_and_json_fields() {
    let help = steadfast(["--help"]);
    assert_eq!(help.code, 0);
    for command in [
        "list", "show", "verify", "delete", "retain", "cleanup", "gc",
    ] {
        assert!(
            help.stdout.contains(command),
            "{command} in {}",
            help.stdout
        );
    }
    assert!(help.stdout.contains("Exit codes:"), "{}", help.stdout);
    assert!(help.stdout.contains("3  not found"), "{}", help.stdout);
    for (command, field) in [
        ("list", "\"unreadable\""),
        ("show", "\"entries\""),
        ("verify", "\"problems\""),
        ("delete", "\"deleted\""),
        ("retain", "\"removed\""),
        ("cleanup", "\"temporary_removed\""),
        ("gc", "\"bytes_deleted\""),
    ] {
        let help = steadfast([command, "--help"]);
        assert_eq!(help.code, 0, "{help:?}");
        assert!(
            help.stdout.contains(field),
            "{field} in {command} --help:\n{}",
            help.stdout
        );
    }
}
