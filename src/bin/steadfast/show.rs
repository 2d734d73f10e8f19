//! `steadfast show NAME`: one checkpoint's manifest, in full.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use steadfast::checkpoint::{Manifest, ShardInfo};

use crate::location::Context;
use crate::output::{self, Failure, Outcome};

/// The JSON fields of `show`, shown by `steadfast show --help`.
pub const JSON_FIELDS: &str = "\
JSON (--json):
  {
    \"name\": string, \"format_version\": number, \"step\": number | null,
    \"sequence\": number | null, \"world_size\": number,
    \"committed_at\": string (RFC 3339), \"committed_at_ms\": number,
    \"commit\": { \"epoch\": number, \"leader\": string, \"term\": number } | null,
    \"checksum\": string (the manifest's own SHA-256),
    \"total_size\": number, \"uncompressed_size\": number,
    \"codec\": \"none\" | \"zstd\" | \"mixed\", \"chunked\": bool,
    \"metadata\": { string: string },
    \"shards\": [ { \"rank\": number, \"key\": string, \"size\": number,
                  \"sha256\": string, \"codec\": string, \"uncompressed_size\": number,
                  \"frames\": number | null (compressed shards),
                  \"chunks\": { \"digest\": \"sha256\" | \"blake3\", \"codec\": string,
                              \"count\": number } | null } ],
    \"entries\": [ { \"name\": string, \"rank\": number, \"offset\": number,
                   \"length\": number, \"sha256\": string | null } ]
  }
Exit codes: 0; 1 when the manifest is damaged; 3 when there is no such
checkpoint.";

#[derive(Debug, Serialize)]
struct ChunksShown {
    digest: String,
    codec: String,
    count: u64,
}

#[derive(Debug, Serialize)]
struct ShardShown {
    rank: usize,
    key: String,
    size: u64,
    sha256: String,
    codec: String,
    uncompressed_size: u64,
    frames: Option<usize>,
    chunks: Option<ChunksShown>,
}

impl ShardShown {
    fn new(shard: &ShardInfo) -> ShardShown {
        ShardShown {
            rank: shard.rank,
            key: shard.key.clone(),
            size: shard.size,
            sha256: shard.sha256.clone(),
            codec: output::shard_codec(shard),
            uncompressed_size: shard.uncompressed_size(),
            frames: shard.compression.as_ref().map(|c| c.frames.len()),
            chunks: shard.chunks.as_ref().map(|c| ChunksShown {
                digest: c.digest.to_string(),
                codec: c.codec.clone(),
                count: c.chunk_count,
            }),
        }
    }
}

#[derive(Debug, Serialize)]
struct EntryShown {
    name: String,
    rank: usize,
    offset: u64,
    length: u64,
    sha256: Option<String>,
}

#[derive(Debug, Serialize)]
struct CommitShown {
    epoch: u64,
    leader: String,
    term: u64,
}

#[derive(Debug, Serialize)]
struct ShowReport {
    name: String,
    format_version: u32,
    step: Option<u64>,
    sequence: Option<u64>,
    world_size: usize,
    committed_at: String,
    committed_at_ms: u64,
    commit: Option<CommitShown>,
    checksum: String,
    total_size: u64,
    uncompressed_size: u64,
    codec: String,
    chunked: bool,
    metadata: BTreeMap<String, String>,
    shards: Vec<ShardShown>,
    entries: Vec<EntryShown>,
}

impl ShowReport {
    fn new(m: &Manifest) -> ShowReport {
        ShowReport {
            name: m.name.clone(),
            format_version: m.format_version,
            step: m.step,
            sequence: m.sequence,
            world_size: m.world_size,
            committed_at: output::rfc3339(m.created_at),
            committed_at_ms: m.created_at,
            commit: m.commit.as_ref().map(|c| CommitShown {
                epoch: c.epoch,
                leader: c.leader.clone(),
                term: c.term,
            }),
            checksum: m.checksum.clone(),
            total_size: m.total_size(),
            uncompressed_size: m
                .shards
                .iter()
                .fold(0u64, |sum, s| sum.saturating_add(s.uncompressed_size())),
            codec: output::checkpoint_codec(&m.shards),
            chunked: m.shards.iter().any(|s| s.chunks.is_some()),
            metadata: m.metadata.clone(),
            shards: m.shards.iter().map(ShardShown::new).collect(),
            entries: m
                .entries
                .iter()
                .map(|(name, at)| EntryShown {
                    name: name.clone(),
                    rank: at.rank,
                    offset: at.offset,
                    length: at.length,
                    sha256: at.sha256.clone(),
                })
                .collect(),
        }
    }
}

/// Runs `show NAME`.
pub async fn run(ctx: &Context, name: &str) -> Result<Outcome, Failure> {
    let ckpt = ctx.checkpoint()?;
    let manifest = ckpt
        .manifest(name)
        .await
        .map_err(|e| Failure::from_checkpoint(&e))?;
    let report = ShowReport::new(&manifest);
    let text = text(&report);
    Ok(Outcome::new(&report, text, output::OK))
}

fn text(r: &ShowReport) -> String {
    let mut out = String::new();
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<12}{value}");
    };
    field("checkpoint", r.name.clone());
    field("format", format!("version {}", r.format_version));
    field("step", r.step.map_or_else(|| "-".into(), |s| s.to_string()));
    field(
        "sequence",
        r.sequence.map_or_else(|| "-".into(), |s| s.to_string()),
    );
    field("world size", r.world_size.to_string());
    field("committed", r.committed_at.clone());
    field(
        "commit",
        match &r.commit {
            Some(c) => format!(
                "fenced: epoch {}, leader {:?}, term {}",
                c.epoch, c.leader, c.term
            ),
            None => "not fenced".into(),
        },
    );
    field(
        "size",
        format!(
            "{} stored ({} bytes), {} uncompressed",
            output::bytes(r.total_size),
            r.total_size,
            output::bytes(r.uncompressed_size)
        ),
    );
    field("codec", r.codec.clone());
    field("chunked", if r.chunked { "yes" } else { "no" }.into());
    field("checksum", format!("sha256 {}", r.checksum));
    for (key, value) in &r.metadata {
        field("metadata", format!("{key} = {value}"));
    }
    let _ = writeln!(out, "\nshards ({}):", r.shards.len());
    let rows: Vec<Vec<String>> = r
        .shards
        .iter()
        .map(|s| {
            let layout = match (&s.chunks, s.frames) {
                (Some(c), _) => format!(
                    "{} chunk{} ({})",
                    c.count,
                    if c.count == 1 { "" } else { "s" },
                    c.digest
                ),
                (None, Some(1)) => "1 frame".into(),
                (None, Some(frames)) => format!("{frames} frames"),
                (None, None) => "raw".into(),
            };
            vec![
                s.rank.to_string(),
                s.size.to_string(),
                s.uncompressed_size.to_string(),
                s.codec.clone(),
                layout,
                s.sha256.clone(),
                s.key.clone(),
            ]
        })
        .collect();
    output::table(
        &mut out,
        &["RANK", "SIZE", "RAW", "CODEC", "LAYOUT", "SHA-256", "KEY"],
        &[true, true, true, false, false, false, false],
        &rows,
    );
    let _ = writeln!(out, "\nentries ({}):", r.entries.len());
    let rows: Vec<Vec<String>> = r
        .entries
        .iter()
        .map(|e| {
            vec![
                e.name.clone(),
                e.rank.to_string(),
                e.offset.to_string(),
                e.length.to_string(),
                e.sha256.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::table(
        &mut out,
        &["NAME", "RANK", "OFFSET", "LENGTH", "SHA-256"],
        &[false, true, true, true, false],
        &rows,
    );
    out
}
