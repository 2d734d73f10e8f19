//! `steadfast verify NAME | --all`: reads and checks every byte of
//! checkpoints, shard by shard, and says where each is damaged.
//!
//! Each shard is checked through `DistributedCheckpoint::verify_shard`
//! (size and SHA-256; frames of a compressed shard; the chunk index and
//! every chunk of a chunked shard), so that every damaged shard is found,
//! not only the first. In a damaged shard, each entry that carries its own
//! digest (and every entry of a chunked shard) is then loaded alone, to name
//! the damaged entries.

use std::fmt::Write as _;

use serde::Serialize;
use steadfast::checkpoint::{
    manifest_key, CheckpointError, CheckpointOptions, ChunkIndex, Manifest, ShardInfo,
    CHUNKS_PREFIX,
};

use crate::location::{checkpoint_on, Ckpt, Context};
use crate::output::{self, Failure, Outcome};
use crate::progress::{self, Counted};

/// The JSON fields of `verify`, shown by `steadfast verify --help`.
pub const JSON_FIELDS: &str = "\
JSON (--json):
  {
    \"ok\": bool, \"verified\": number, \"corrupt\": number,
    \"unreadable\": number, \"bytes_read\": number,
    \"checkpoints\": [
      { \"name\": string, \"status\": \"ok\" | \"corrupt\" | \"unreadable\",
        \"shards\": number, \"shards_ok\": number, \"total_size\": number,
        \"problems\": [
          { \"kind\": \"manifest\" | \"shard\" | \"chunk\" | \"unreadable\",
            \"rank\": number | null, \"shard\": string | null (the shard's key),
            \"object\": string (the damaged object: manifest, shard or chunk key),
            \"entries\": [string] (the damaged entries found in the shard),
            \"expected\": string | null, \"found\": string | null,
            \"message\": string } ] } ]
  }
\"unreadable\" is a checkpoint or shard that could not be read for another
reason than damage (a storage failure, a manifest of a newer format).
Exit codes: 0 all verified; 1 something is damaged; 3 no checkpoint NAME;
4 nothing damaged, but something could not be read.";

/// Where a checkpoint is damaged, or why it could not be read.
#[derive(Debug, Serialize)]
struct Problem {
    kind: &'static str,
    rank: Option<usize>,
    shard: Option<String>,
    object: String,
    entries: Vec<String>,
    expected: Option<String>,
    found: Option<String>,
    message: String,
}

impl Problem {
    fn new(name: &str, shard: Option<&ShardInfo>, e: &CheckpointError) -> Problem {
        let manifest = manifest_key(name);
        let mut problem = Problem {
            kind: "unreadable",
            rank: shard.map(|s| s.rank),
            shard: shard.map(|s| s.key.clone()),
            object: shard.map_or_else(|| manifest.clone(), |s| s.key.clone()),
            entries: Vec::new(),
            expected: None,
            found: None,
            message: output::chain(e),
        };
        match e {
            CheckpointError::Corrupted {
                shard: object,
                expected,
                actual,
                ..
            } => {
                problem.kind = if *object == manifest {
                    "manifest"
                } else if object.starts_with(CHUNKS_PREFIX) {
                    "chunk"
                } else {
                    "shard"
                };
                problem.object = object.clone();
                problem.expected = Some(expected.clone());
                problem.found = Some(actual.clone());
            }
            CheckpointError::ValidationFailed { .. } => {
                problem.kind = "manifest";
                problem.object = manifest;
            }
            _ => {}
        }
        problem
    }

    fn is_damage(&self) -> bool {
        self.kind != "unreadable"
    }
}

/// One checkpoint's verification.
#[derive(Debug, Serialize)]
struct Checked {
    name: String,
    status: &'static str,
    shards: usize,
    shards_ok: usize,
    total_size: u64,
    problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
struct VerifyReport {
    ok: bool,
    verified: usize,
    corrupt: usize,
    unreadable: usize,
    bytes_read: u64,
    checkpoints: Vec<Checked>,
}

/// Runs `verify NAME` or `verify --all`.
pub async fn run(ctx: &Context, name: Option<&str>, all: bool) -> Result<Outcome, Failure> {
    let plain = ctx.checkpoint()?;
    let names: Vec<String> = match name {
        Some(name) if !all => vec![name.to_string()],
        _ => {
            // Newest first, then the manifests `list` passes over because
            // they cannot be read: those are damage to report too.
            let mut names: Vec<String> = plain
                .list()
                .await
                .map_err(|e| Failure::from_checkpoint(&e))?
                .into_iter()
                .map(|info| info.name)
                .collect();
            for stored in ctx.manifest_names().await? {
                if !names.contains(&stored) {
                    names.push(stored);
                }
            }
            names
        }
    };
    let mut manifests = Vec::new();
    for name in names {
        match plain.manifest(&name).await {
            // Deleted since the listing.
            Err(CheckpointError::NotFound { .. }) if all => {}
            Err(e @ (CheckpointError::NotFound { .. } | CheckpointError::InvalidName { .. })) => {
                return Err(Failure::from_checkpoint(&e));
            }
            read => manifests.push((name, read)),
        }
    }
    // What each shard costs to read, known before the bar starts.
    let show = progress::visible(ctx.json);
    let mut planned = Vec::new();
    for (_, manifest) in &manifests {
        let mut sizes = Vec::new();
        if let Ok(m) = manifest {
            for shard in &m.shards {
                sizes.push(planned_size(ctx, m, shard, show).await);
            }
        }
        planned.push(sizes);
    }
    let total = planned.iter().flatten().sum();
    let bar = progress::bar(total, ctx.json);
    let counted = Counted::new(ctx.storage.clone(), bar.clone());
    let ckpt = checkpoint_on(counted.clone(), CheckpointOptions::default())?;
    let mut report = VerifyReport {
        ok: true,
        verified: 0,
        corrupt: 0,
        unreadable: 0,
        bytes_read: 0,
        checkpoints: Vec::new(),
    };
    let mut done = 0u64;
    for ((name, manifest), sizes) in manifests.into_iter().zip(planned) {
        bar.set_message(name.clone());
        let checked = match manifest {
            Err(e) => Checked {
                problems: vec![Problem::new(&name, None, &e)],
                name,
                status: "",
                shards: 0,
                shards_ok: 0,
                total_size: 0,
            },
            Ok(m) => {
                let mut checked = Checked {
                    name: name.clone(),
                    status: "",
                    shards: m.shards.len(),
                    shards_ok: 0,
                    total_size: m.total_size(),
                    problems: Vec::new(),
                };
                for (shard, size) in m.shards.iter().zip(sizes) {
                    match ckpt.verify_shard(&name, shard).await {
                        Ok(()) => checked.shards_ok += 1,
                        Err(e) => {
                            let mut problem = Problem::new(&name, Some(shard), &e);
                            if problem.is_damage() {
                                problem.entries = damaged_entries(&ckpt, &m, shard).await;
                            }
                            checked.problems.push(problem);
                        }
                    }
                    done = done.saturating_add(size);
                    bar.set_position(done);
                }
                checked
            }
        };
        report.checkpoints.push(finish(
            checked,
            &mut report.verified,
            &mut report.corrupt,
            &mut report.unreadable,
        ));
    }
    bar.finish_and_clear();
    report.bytes_read = counted.bytes_read();
    report.ok = report.corrupt == 0 && report.unreadable == 0;
    let code = if report.corrupt > 0 {
        output::CORRUPT
    } else if report.unreadable > 0 {
        output::STORAGE
    } else {
        output::OK
    };
    let text = text(&report);
    Ok(Outcome::new(&report, text, code))
}

/// Sets the checkpoint's status and counts it.
fn finish(
    mut checked: Checked,
    verified: &mut usize,
    corrupt: &mut usize,
    unreadable: &mut usize,
) -> Checked {
    checked.status = if checked.problems.iter().any(Problem::is_damage) {
        *corrupt += 1;
        "corrupt"
    } else if !checked.problems.is_empty() {
        *unreadable += 1;
        "unreadable"
    } else {
        *verified += 1;
        "ok"
    };
    checked
}

/// The bytes a verification of `shard` reads: the shard object, and for a
/// chunked shard its chunks (from its index, read only when a bar is shown;
/// estimated from the raw size otherwise, or when the index is damaged).
async fn planned_size(ctx: &Context, manifest: &Manifest, shard: &ShardInfo, show: bool) -> u64 {
    let Some(summary) = &shard.chunks else {
        return shard.size;
    };
    let estimate = shard.size.saturating_add(summary.uncompressed_size);
    if !show {
        return estimate;
    }
    let Ok(bytes) = ctx.storage.get_sized(&shard.key, shard.size).await else {
        return estimate;
    };
    match ChunkIndex::from_bytes(&manifest.name, &shard.key, &bytes, summary) {
        Ok(index) => index
            .chunks
            .iter()
            .fold(shard.size, |sum, c| sum.saturating_add(c.size)),
        Err(_) => estimate,
    }
}

/// The entries of a damaged shard that do not load: each entry that carries
/// its own digest (or lies in a chunked shard) is loaded and verified alone.
/// Entries of older formats, which only the whole shard verifies, are not
/// named.
async fn damaged_entries(
    ckpt: &Ckpt<Counted>,
    manifest: &Manifest,
    shard: &ShardInfo,
) -> Vec<String> {
    let mut damaged = Vec::new();
    for (entry, at) in &manifest.entries {
        if at.rank != shard.rank || (shard.chunks.is_none() && at.sha256.is_none()) {
            continue;
        }
        if let Err(CheckpointError::Corrupted { .. }) = ckpt.load_entry(&manifest.name, entry).await
        {
            damaged.push(entry.clone());
        }
    }
    damaged
}

fn text(report: &VerifyReport) -> String {
    let mut out = String::new();
    if report.checkpoints.is_empty() {
        let _ = writeln!(out, "no committed checkpoints to verify");
        return out;
    }
    for c in &report.checkpoints {
        match c.status {
            "ok" => {
                let _ = writeln!(
                    out,
                    "ok       {}  ({} shard{}, {})",
                    c.name,
                    c.shards,
                    if c.shards == 1 { "" } else { "s" },
                    output::bytes(c.total_size)
                );
            }
            status => {
                let label = if status == "corrupt" {
                    "CORRUPT"
                } else {
                    "UNREADABLE"
                };
                let _ = writeln!(out, "{label:<9}{}", c.name);
                for p in &c.problems {
                    let _ = writeln!(out, "  {}", where_text(p));
                    if !p.entries.is_empty() {
                        let _ = writeln!(out, "    damaged entries: {}", p.entries.join(", "));
                    }
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "{} checkpoint{}: {} ok, {} corrupt, {} unreadable; {} read",
        report.checkpoints.len(),
        if report.checkpoints.len() == 1 {
            ""
        } else {
            "s"
        },
        report.verified,
        report.corrupt,
        report.unreadable,
        output::bytes(report.bytes_read)
    );
    out
}

/// Where a problem is, and what was expected and found.
fn where_text(p: &Problem) -> String {
    let place = match (p.kind, &p.shard, p.rank) {
        ("chunk", Some(shard), Some(rank)) => {
            format!("chunk {} of shard {shard} (rank {rank})", p.object)
        }
        (kind, Some(_), Some(rank)) => format!("{kind} {} (rank {rank})", p.object),
        (kind, _, _) => format!("{kind} {}", p.object),
    };
    match (&p.expected, &p.found) {
        (Some(expected), Some(found)) => {
            format!("{place}: expected {expected}, found {found}")
        }
        _ => format!("{place}: {}", p.message),
    }
}
