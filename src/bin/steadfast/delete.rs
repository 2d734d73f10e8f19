//! `steadfast delete NAME`: one checkpoint, manifest first, through
//! `DistributedCheckpoint::delete`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::location::Context;
use crate::output::{self, FailedObject, Failure, Outcome};

/// The JSON fields of `delete`, shown by `steadfast delete --help`.
pub const JSON_FIELDS: &str = "\
JSON (--json):
  { \"name\": string,
    \"deleted\": [string] (object keys, the manifest first),
    \"failed\": [ { \"key\": string, \"error\": string } ] }
Exit codes: 0; 3 when nothing is stored under NAME/; 4 when some objects
could not be deleted (the checkpoint stays whole and visible when its manifest
could not be deleted).";

#[derive(Debug, Serialize)]
struct DeleteReport {
    name: String,
    deleted: Vec<String>,
    failed: Vec<FailedObject>,
}

/// Runs `delete NAME`.
pub async fn run(ctx: &Context, name: &str) -> Result<Outcome, Failure> {
    let ckpt = ctx.checkpoint()?;
    let removed = ckpt
        .delete(name)
        .await
        .map_err(|e| Failure::from_checkpoint(&e))?;
    let report = DeleteReport {
        name: name.to_string(),
        deleted: removed.deleted.clone(),
        failed: output::failed_objects(&removed.failed),
    };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "deleted {name} ({} object{})",
        report.deleted.len(),
        if report.deleted.len() == 1 { "" } else { "s" }
    );
    output::failed_text(&mut text, &report.failed);
    let code = if report.failed.is_empty() {
        output::OK
    } else {
        output::STORAGE
    };
    Ok(Outcome::new(&report, text, code))
}
