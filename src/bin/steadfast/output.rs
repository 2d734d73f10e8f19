//! What a command hands back (a report as JSON and as text, and an exit
//! code), how a failure is told, and the formats shared by the commands:
//! sizes, times, tables.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use serde::Serialize;
use steadfast::checkpoint::{CheckpointError, ShardInfo};
use steadfast::storage::StorageError;

/// Everything went as asked.
pub const OK: u8 = 0;
/// A checkpoint is damaged.
pub const CORRUPT: u8 = 1;
/// The command line is wrong.
pub const USAGE: u8 = 2;
/// No such checkpoint or directory.
pub const NOT_FOUND: u8 = 3;
/// The storage failed.
pub const STORAGE: u8 = 4;

/// A command's result: its report, the same as text, and the exit code.
#[derive(Debug)]
pub struct Outcome {
    /// The report as pretty JSON, its fields in their declared order.
    json: String,
    text: String,
    code: u8,
}

impl Outcome {
    /// `report` (as JSON) and `text`, exiting with `code`.
    pub fn new(report: &impl Serialize, text: String, code: u8) -> Outcome {
        match serde_json::to_string_pretty(report) {
            Ok(json) => Outcome { json, text, code },
            Err(e) => Outcome {
                json: error_document(&Failure::storage(format!("encoding the report: {e}"))),
                text,
                code: STORAGE,
            },
        }
    }
}

/// Why a command stopped, with the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: USAGE,
            message: message.into(),
        }
    }

    /// Nothing of that name (exit code 3).
    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure {
            code: NOT_FOUND,
            message: message.into(),
        }
    }

    /// A storage failure (exit code 4).
    pub fn storage(message: impl Into<String>) -> Failure {
        Failure {
            code: STORAGE,
            message: message.into(),
        }
    }

    /// A checkpoint error, with the exit code its kind calls for.
    pub fn from_checkpoint(e: &CheckpointError) -> Failure {
        let message = chain(e);
        Failure {
            code: checkpoint_code(e),
            message,
        }
    }
}

/// The exit code a checkpoint error calls for.
pub fn checkpoint_code(e: &CheckpointError) -> u8 {
    match e {
        CheckpointError::NotFound { .. } | CheckpointError::EntryNotFound { .. } => NOT_FOUND,
        CheckpointError::InvalidName { .. } => USAGE,
        CheckpointError::Corrupted { .. }
        | CheckpointError::ValidationFailed { .. }
        | CheckpointError::CollectionRefused { .. } => CORRUPT,
        _ => STORAGE,
    }
}

/// An error and its sources, joined by ": " (each source once, even when
/// the message already quotes it).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A storage error as text, for the `failed` lists of the reports.
pub fn storage_text(e: &StorageError) -> String {
    chain(e)
}

/// An object that could not be deleted, as the reports list it.
#[derive(Debug, Serialize)]
pub struct FailedObject {
    /// The object's key (empty for the storage's temporary objects).
    pub key: String,
    /// Why.
    pub error: String,
}

/// The failed objects of a library report.
pub fn failed_objects(failed: &[(String, StorageError)]) -> Vec<FailedObject> {
    failed
        .iter()
        .map(|(key, e)| FailedObject {
            key: key.clone(),
            error: storage_text(e),
        })
        .collect()
}

/// Lines telling the failed objects, for the text output.
pub fn failed_text(out: &mut String, failed: &[FailedObject]) {
    for f in failed {
        let key = if f.key.is_empty() {
            "(temporary objects)"
        } else {
            f.key.as_str()
        };
        let _ = writeln!(out, "  could not delete {key}: {}", f.error);
    }
}

fn kind_name(code: u8) -> &'static str {
    match code {
        CORRUPT => "corrupt",
        USAGE => "usage",
        NOT_FOUND => "not_found",
        _ => "storage",
    }
}

/// The JSON document of a failure.
#[derive(Serialize)]
struct ErrorDocument<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    kind: &'static str,
    code: u8,
    message: &'a str,
}

fn error_document(failure: &Failure) -> String {
    let document = ErrorDocument {
        error: ErrorBody {
            kind: kind_name(failure.code),
            code: failure.code,
            message: &failure.message,
        },
    };
    // Serializing strings and a number cannot fail; should it, the kind
    // and code still go out.
    serde_json::to_string_pretty(&document).unwrap_or_else(|_| {
        format!(
            "{{\"error\": {{\"kind\": \"{}\", \"code\": {}}}}}",
            kind_name(failure.code),
            failure.code
        )
    })
}

/// Prints a command's outcome (JSON on standard output, or its text) and
/// returns its exit code.
pub fn print(json: bool, outcome: &Outcome) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let written = if json {
        writeln!(stdout, "{}", outcome.json)
    } else {
        write!(stdout, "{}", outcome.text)
    };
    // A closed pipe (`steadfast list | head`) is not the command's failure.
    let _ = written.and_then(|()| stdout.flush());
    ExitCode::from(outcome.code)
}

/// Tells a failure (a JSON error document on standard output, or a line on
/// standard error) and returns its exit code.
pub fn fail(json: bool, failure: &Failure) -> ExitCode {
    if json {
        let text = error_document(failure);
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
    } else {
        eprintln!("steadfast: error: {}", failure.message);
    }
    ExitCode::from(failure.code)
}

/// A size for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC, to the millisecond:
/// `2026-12-03T06:23:34.123Z`.
pub fn rfc3339(millis: u64) -> String {
    let secs = millis / 1000;
    let milli = millis % 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Days to a civil date (the proleptic Gregorian calendar), after Howard
    // Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// The codec of a shard as stored: `none`, or the codec of its frames or
/// chunks (`zstd`).
pub fn shard_codec(shard: &ShardInfo) -> String {
    if let Some(chunks) = &shard.chunks {
        return chunks.codec.clone();
    }
    shard
        .compression
        .as_ref()
        .map_or_else(|| "none".to_string(), |c| c.codec.clone())
}

/// The codec of a checkpoint: its shards' codec when they agree, `mixed`
/// otherwise, `none` without shards.
pub fn checkpoint_codec(shards: &[ShardInfo]) -> String {
    let mut codecs: Vec<String> = shards.iter().map(shard_codec).collect();
    codecs.sort();
    codecs.dedup();
    match codecs.len() {
        0 => "none".to_string(),
        1 => codecs.remove(0),
        _ => "mixed".to_string(),
    }
}

/// Rows as a table with a header, columns padded to their widest cell
/// (right-aligned where `right` says), two spaces apart.
pub fn table(out: &mut String, header: &[&str], right: &[bool], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                text.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                let _ = write!(text, "{cell:>width$}");
            } else {
                let _ = write!(text, "{cell:<width$}");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(out, &mut header.iter().copied());
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(rfc3339(1_796_279_014_123), "2026-12-03T06:23:34.123Z");
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
