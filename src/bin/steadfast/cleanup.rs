//! `steadfast cleanup`: what saves that never committed left behind,
//! removed as `DistributedCheckpoint::cleanup_on_start` removes it, with the
//! grace given (zero too): `cleanup_uncommitted`, then the storage's
//! `cleanup_temporary`.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use steadfast::checkpoint::CheckpointOptions;

use crate::duration;
use crate::location::Context;
use crate::output::{self, FailedObject, Failure, Outcome};

/// The JSON fields of `cleanup`, shown by `steadfast cleanup --help`.
pub const JSON_FIELDS: &str = "\
JSON (--json):
  { \"grace_secs\": number,
    \"removed\": [string] (prefixes of uncommitted saves removed),
    \"recent\": [string] (uncommitted prefixes kept: written within the grace),
    \"deleted\": [string] (object keys),
    \"temporary_removed\": number (temporary files of interrupted writes),
    \"failed\": [ { \"key\": string, \"error\": string } ] }
Exit codes: 0; 4 when listing failed or some objects could not be deleted.";

#[derive(Debug, Serialize)]
struct CleanupReport {
    grace_secs: f64,
    removed: Vec<String>,
    recent: Vec<String>,
    deleted: Vec<String>,
    temporary_removed: u64,
    failed: Vec<FailedObject>,
}

/// Runs `cleanup`.
pub async fn run(ctx: &Context, grace: Option<Duration>) -> Result<Outcome, Failure> {
    let grace = grace.unwrap_or_else(|| CheckpointOptions::default().cleanup_grace());
    let ckpt = ctx.checkpoint()?;
    let mut cleaned = ckpt
        .cleanup_uncommitted(grace)
        .await
        .map_err(|e| Failure::from_checkpoint(&e))?;
    match ctx.storage.cleanup_temporary(grace).await {
        Ok(removed) => cleaned.temporary = removed,
        Err(e) => cleaned.objects.failed.push((String::new(), e)),
    }
    let report = CleanupReport {
        grace_secs: grace.as_secs_f64(),
        removed: cleaned.removed.clone(),
        recent: cleaned.recent.clone(),
        deleted: cleaned.objects.deleted.clone(),
        temporary_removed: cleaned.temporary,
        failed: output::failed_objects(&cleaned.objects.failed),
    };
    let mut text = String::new();
    if report.removed.is_empty() && report.temporary_removed == 0 && report.recent.is_empty() {
        let _ = writeln!(text, "nothing to clean up");
    }
    for prefix in &report.removed {
        let _ = writeln!(text, "removed uncommitted {prefix}/");
    }
    if report.temporary_removed > 0 {
        let _ = writeln!(
            text,
            "removed {} temporary file(s)",
            report.temporary_removed
        );
    }
    for prefix in &report.recent {
        let _ = writeln!(
            text,
            "kept {prefix}/: uncommitted, written less than {} ago (a save in progress?)",
            duration::format(grace)
        );
    }
    output::failed_text(&mut text, &report.failed);
    let code = if report.failed.is_empty() {
        output::OK
    } else {
        output::STORAGE
    };
    Ok(Outcome::new(&report, text, code))
}
