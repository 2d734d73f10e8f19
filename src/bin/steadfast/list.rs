//! `steadfast list`: the committed checkpoints, newest first, with their
//! manifests' summaries; manifests that cannot be read are listed apart.

use std::fmt::Write as _;

use serde::Serialize;
use steadfast::checkpoint::Manifest;

use crate::location::Context;
use crate::output::{self, Failure, Outcome};

/// The JSON fields of `list`, shown by `steadfast list --help`.
pub const JSON_FIELDS: &str = "\
JSON (--json):
  {
    \"location\": string,
    \"checkpoints\": [            newest first (by commit sequence)
      { \"name\": string, \"step\": number | null, \"sequence\": number | null,
        \"world_size\": number, \"shards\": number,
        \"total_size\": number (stored bytes), \"uncompressed_size\": number,
        \"committed_at\": string (RFC 3339), \"committed_at_ms\": number,
        \"codec\": \"none\" | \"zstd\" | \"mixed\", \"chunked\": bool,
        \"fenced\": bool (committed under a fence: see `show`) } ],
    \"unreadable\": [ { \"name\": string, \"error\": string } ]
  }
Exit code 0, also when some manifests are unreadable (verify says why).";

/// One committed checkpoint, as `list` reports it.
#[derive(Debug, Serialize)]
pub struct Listed {
    name: String,
    step: Option<u64>,
    sequence: Option<u64>,
    world_size: usize,
    shards: usize,
    total_size: u64,
    uncompressed_size: u64,
    committed_at: String,
    committed_at_ms: u64,
    codec: String,
    chunked: bool,
    fenced: bool,
}

impl Listed {
    fn new(manifest: &Manifest) -> Listed {
        Listed {
            name: manifest.name.clone(),
            step: manifest.step,
            sequence: manifest.sequence,
            world_size: manifest.world_size,
            shards: manifest.shards.len(),
            total_size: manifest.total_size(),
            uncompressed_size: manifest
                .shards
                .iter()
                .fold(0u64, |sum, s| sum.saturating_add(s.uncompressed_size())),
            committed_at: output::rfc3339(manifest.created_at),
            committed_at_ms: manifest.created_at,
            codec: output::checkpoint_codec(&manifest.shards),
            chunked: manifest.shards.iter().any(|s| s.chunks.is_some()),
            fenced: manifest.commit.is_some(),
        }
    }
}

/// A manifest that is stored but cannot be read.
#[derive(Debug, Serialize)]
pub struct Unreadable {
    name: String,
    error: String,
}

#[derive(Debug, Serialize)]
struct ListReport {
    location: String,
    checkpoints: Vec<Listed>,
    unreadable: Vec<Unreadable>,
}

/// Runs `list`.
pub async fn run(ctx: &Context) -> Result<Outcome, Failure> {
    let ckpt = ctx.checkpoint()?;
    let infos = ckpt
        .list()
        .await
        .map_err(|e| Failure::from_checkpoint(&e))?;
    let mut report = ListReport {
        location: ctx.location.clone(),
        checkpoints: Vec::new(),
        unreadable: Vec::new(),
    };
    for info in &infos {
        match ckpt.manifest(&info.name).await {
            Ok(manifest) => report.checkpoints.push(Listed::new(&manifest)),
            // Deleted since the listing.
            Err(steadfast::checkpoint::CheckpointError::NotFound { .. }) => {}
            Err(e) => report.unreadable.push(Unreadable {
                name: info.name.clone(),
                error: output::chain(&e),
            }),
        }
    }
    for name in ctx.manifest_names().await? {
        if infos.iter().any(|info| info.name == name) {
            continue;
        }
        match ckpt.manifest(&name).await {
            Ok(_) | Err(steadfast::checkpoint::CheckpointError::NotFound { .. }) => {}
            Err(e) => report.unreadable.push(Unreadable {
                name,
                error: output::chain(&e),
            }),
        }
    }
    let text = text(&report);
    Ok(Outcome::new(&report, text, output::OK))
}

fn text(report: &ListReport) -> String {
    let mut out = String::new();
    if report.checkpoints.is_empty() {
        let _ = writeln!(out, "no committed checkpoints in {}", report.location);
    } else {
        let rows: Vec<Vec<String>> = report
            .checkpoints
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.step.map_or_else(|| "-".into(), |s| s.to_string()),
                    c.sequence.map_or_else(|| "-".into(), |s| s.to_string()),
                    c.shards.to_string(),
                    output::bytes(c.total_size),
                    c.committed_at.clone(),
                    c.codec.clone(),
                    if c.chunked { "yes" } else { "no" }.to_string(),
                ]
            })
            .collect();
        output::table(
            &mut out,
            &[
                "NAME",
                "STEP",
                "SEQ",
                "SHARDS",
                "SIZE",
                "COMMITTED",
                "CODEC",
                "CHUNKED",
            ],
            &[false, true, true, true, true, false, false, false],
            &rows,
        );
    }
    if !report.unreadable.is_empty() {
        let _ = writeln!(
            out,
            "\n{} manifest(s) cannot be read (run `verify --all`):",
            report.unreadable.len()
        );
        for u in &report.unreadable {
            let _ = writeln!(out, "  {}: {}", u.name, u.error);
        }
    }
    out
}
