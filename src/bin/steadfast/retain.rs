//! `steadfast retain`: deletes the checkpoints that `--keep-last` and
//! `--max-age` do not keep, as a `CheckpointManager` applies its retention:
//! the plan from `RetentionPolicy::plan`, each deletion through
//! `DistributedCheckpoint::delete` (manifest first), then the chunks no
//! checkpoint refers to any more.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use steadfast::checkpoint::{manifest_key, CheckpointError};
use steadfast::manager::RetentionPolicy;

use crate::duration;
use crate::gc::GcReport;
use crate::location::Context;
use crate::output::{self, FailedObject, Failure, Outcome};

/// The JSON fields of `retain`, shown by `steadfast retain --help`.
pub const JSON_FIELDS: &str = "\
JSON (--json):
  { \"dry_run\": bool, \"keep_last\": number | null, \"max_age_secs\": number | null,
    \"kept\": [ { \"name\": string, \"reason\": \"newest\" | \"one of the last n\" | \"young\" } ]
              (newest first),
    \"removed\": [string] (oldest first; with --dry-run, what would be removed),
    \"failed\": [ { \"key\": string, \"error\": string } ],
    \"chunks\": (the `gc` report, after a deletion) | null,
    \"chunks_error\": string | null }
Exit codes: 0; 1 when the chunk collection found a damaged checkpoint; 4 when
listing failed or some objects could not be deleted.";

/// The rules given on the command line.
#[derive(Debug)]
pub struct Rules {
    /// `--keep-last`.
    pub keep_last: Option<u64>,
    /// `--max-age`.
    pub max_age: Option<Duration>,
    /// `--prefix`.
    pub prefix: Option<String>,
    /// `--dry-run`.
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
struct Kept {
    name: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct RetainReport {
    dry_run: bool,
    keep_last: Option<u64>,
    max_age_secs: Option<f64>,
    kept: Vec<Kept>,
    removed: Vec<String>,
    failed: Vec<FailedObject>,
    chunks: Option<GcReport>,
    chunks_error: Option<String>,
}

/// Runs `retain`.
pub async fn run(ctx: &Context, rules: Rules) -> Result<Outcome, Failure> {
    let mut policy = RetentionPolicy::keep_all();
    if let Some(n) = rules.keep_last {
        let n = usize::try_from(n)
            .map_err(|_| Failure::usage(format!("--keep-last {n} is too large")))?;
        policy = policy.keep_last(n);
    }
    if let Some(age) = rules.max_age {
        policy = policy.keep_for(age);
    }
    policy.validate().map_err(|e| {
        let flag = if e.field() == "keep_for" {
            "--max-age"
        } else {
            "--keep-last"
        };
        Failure::usage(format!("{flag}: {}", e.reason()))
    })?;
    let ckpt = ctx.checkpoint()?;
    let scope = rules
        .prefix
        .as_deref()
        .map(|p| format!("{}/", p.trim_end_matches('/')));
    let infos: Vec<_> = ckpt
        .list()
        .await
        .map_err(|e| Failure::from_checkpoint(&e))?
        .into_iter()
        .filter(|info| scope.as_deref().is_none_or(|s| info.name.starts_with(s)))
        .collect();
    let plan = policy.plan(&infos, SystemTime::now(), &HashSet::new());
    let mut report = RetainReport {
        dry_run: rules.dry_run,
        keep_last: rules.keep_last,
        max_age_secs: rules.max_age.map(|a| a.as_secs_f64()),
        // `list` gives newest first; the report keeps that order.
        kept: infos
            .iter()
            .filter_map(|info| {
                plan.reason(&info.name).map(|reason| Kept {
                    name: info.name.clone(),
                    reason: reason.to_string(),
                })
            })
            .collect(),
        removed: Vec::new(),
        failed: Vec::new(),
        chunks: None,
        chunks_error: None,
    };
    let mut code = output::OK;
    if rules.dry_run {
        report.removed = plan
            .deleted_names()
            .into_iter()
            .map(str::to_string)
            .collect();
    } else {
        for info in &plan.delete {
            match ckpt.delete(&info.name).await {
                Ok(objects) => {
                    report
                        .failed
                        .extend(output::failed_objects(&objects.failed));
                    report.removed.push(info.name.clone());
                }
                // Deleted meanwhile.
                Err(CheckpointError::NotFound { .. }) => {}
                Err(e) => report.failed.push(FailedObject {
                    key: manifest_key(&info.name),
                    error: output::chain(&e),
                }),
            }
        }
        if !report.removed.is_empty() {
            match ckpt.collect_chunks().await {
                Ok(collected) => {
                    let chunks = GcReport::new(&collected);
                    if !chunks.is_complete() {
                        code = output::STORAGE;
                    }
                    report.chunks = Some(chunks);
                }
                Err(e) => {
                    code = output::checkpoint_code(&e);
                    report.chunks_error = Some(output::chain(&e));
                }
            }
        }
    }
    if !report.failed.is_empty() {
        code = output::STORAGE;
    }
    let text = text(&report, &rules);
    Ok(Outcome::new(&report, text, code))
}

fn text(report: &RetainReport, rules: &Rules) -> String {
    let mut out = String::new();
    let mut said = Vec::new();
    if let Some(n) = rules.keep_last {
        said.push(format!("the last {n}"));
    }
    if let Some(age) = rules.max_age {
        said.push(format!("those younger than {}", duration::format(age)));
    }
    let _ = writeln!(
        out,
        "keeping {}{}",
        said.join(" and "),
        if rules.dry_run {
            " (dry run: nothing deleted)"
        } else {
            ""
        }
    );
    for k in &report.kept {
        let _ = writeln!(out, "keep    {}  ({})", k.name, k.reason);
    }
    let verb = if rules.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for name in &report.removed {
        let _ = writeln!(out, "{verb} {name}");
    }
    if report.removed.is_empty() {
        let _ = writeln!(out, "nothing to delete");
    }
    output::failed_text(&mut out, &report.failed);
    if let Some(chunks) = &report.chunks
        && !chunks.is_quiet()
    {
        chunks.text(&mut out);
    }
    if let Some(e) = &report.chunks_error {
        let _ = writeln!(out, "collecting chunks failed: {e}");
    }
    out
}
