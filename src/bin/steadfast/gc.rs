//! `steadfast gc`: the chunks no committed checkpoint refers to, collected
//! through `DistributedCheckpoint::collect_chunks` (its lock protocol keeps
//! the chunks of saves in progress).

use std::fmt::Write as _;

use serde::Serialize;
use steadfast::checkpoint::ChunkCollectionReport;

use crate::location::Context;
use crate::output::{self, FailedObject, Failure, Outcome};

/// The JSON fields of `gc`, shown by `steadfast gc --help`.
pub const JSON_FIELDS: &str = "\
JSON (--json):
  { \"checkpoints\": [string] (committed checkpoints whose chunks were kept),
    \"kept\": number (chunks kept), \"deleted\": [string] (chunk digests),
    \"bytes_deleted\": number,
    \"deferred_by\": [string] (locks of saves in progress; nothing deleted),
    \"stale_locks_removed\": [string], \"stopped\": string | null,
    \"failed\": [ { \"key\": string, \"error\": string } ] }
Exit codes: 0 (also when it gave way to saves in progress); 1 when a
committed checkpoint's manifest or chunk index cannot be read (nothing was
deleted); 4 when listing failed, the collection stopped early, or some chunks
could not be deleted.";

/// A chunk collection, as `gc` and `retain` report it.
#[derive(Debug, Serialize)]
pub struct GcReport {
    checkpoints: Vec<String>,
    kept: usize,
    deleted: Vec<String>,
    bytes_deleted: u64,
    deferred_by: Vec<String>,
    stale_locks_removed: Vec<String>,
    stopped: Option<String>,
    failed: Vec<FailedObject>,
}

impl GcReport {
    /// The library's report, as the tool prints it.
    pub fn new(r: &ChunkCollectionReport) -> GcReport {
        GcReport {
            checkpoints: r.checkpoints.clone(),
            kept: r.kept,
            deleted: r.deleted.clone(),
            bytes_deleted: r.bytes_deleted,
            deferred_by: r.deferred_by.clone(),
            stale_locks_removed: r.stale_locks_removed.clone(),
            stopped: r.stopped.clone(),
            failed: output::failed_objects(&r.failed),
        }
    }

    /// Whether it went all the way.
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none() && self.failed.is_empty()
    }

    /// Whether there is nothing to tell: nothing deleted, nothing deferred,
    /// complete.
    pub fn is_quiet(&self) -> bool {
        self.deleted.is_empty()
            && self.deferred_by.is_empty()
            && self.stale_locks_removed.is_empty()
            && self.is_complete()
    }

    /// The report as text.
    pub fn text(&self, out: &mut String) {
        if !self.deferred_by.is_empty() {
            let _ = writeln!(
                out,
                "chunk collection gave way to {} save(s) in progress; nothing deleted, run gc again later",
                self.deferred_by.len()
            );
            return;
        }
        if self.deleted.is_empty() && self.kept == 0 && self.is_complete() {
            let _ = writeln!(out, "no chunks stored");
            return;
        }
        let _ = writeln!(
            out,
            "chunks: {} deleted ({}), {} kept for {} checkpoint(s)",
            self.deleted.len(),
            output::bytes(self.bytes_deleted),
            self.kept,
            self.checkpoints.len()
        );
        if !self.stale_locks_removed.is_empty() {
            let _ = writeln!(
                out,
                "stale locks removed: {}",
                self.stale_locks_removed.join(", ")
            );
        }
        if let Some(reason) = &self.stopped {
            let _ = writeln!(out, "stopped early: {reason}");
        }
        output::failed_text(out, &self.failed);
    }
}

/// Runs `gc`.
pub async fn run(ctx: &Context) -> Result<Outcome, Failure> {
    let ckpt = ctx.checkpoint()?;
    let collected = ckpt
        .collect_chunks()
        .await
        .map_err(|e| Failure::from_checkpoint(&e))?;
    let report = GcReport::new(&collected);
    let mut text = String::new();
    report.text(&mut text);
    let code = if report.is_complete() {
        output::OK
    } else {
        output::STORAGE
    };
    Ok(Outcome::new(&report, text, code))
}
