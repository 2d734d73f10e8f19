//! `steadfast`: look into a checkpoint directory (or bucket) and keep it
//! tidy, from a shell.
//!
//! The tool works on the checkpoints that [`DistributedCheckpoint`] and
//! `CheckpointManager` write: a checkpoint `NAME` is the prefix `NAME/`
//! holding one shard object per rank and its manifest, `NAME/metadata.json`,
//! written last (the commit point); chunked checkpoints keep their
//! content-addressed chunks under `chunks/`. Every command goes through the
//! library's own calls, so the tool sees exactly what a job sees:
//!
//! | command | what it does | library call |
//! |---|---|---|
//! | `list` | the committed checkpoints, newest first | `DistributedCheckpoint::list`, `manifest` |
//! | `show NAME` | one manifest: shards, entries, sizes, digests, codec | `DistributedCheckpoint::manifest` |
//! | `verify NAME`, `verify --all` | reads and checks every byte, says where it is damaged | `DistributedCheckpoint::verify_shard`, `load_entry` |
//! | `delete NAME` | manifest first, then the shards | `DistributedCheckpoint::delete` |
//! | `retain --keep-last N`, `--max-age 7d` | deletes what the rules do not keep | `RetentionPolicy::plan`, `delete`, `collect_chunks` |
//! | `cleanup` | shards without a manifest, temporary files | `DistributedCheckpoint::cleanup_on_start` |
//! | `gc` | chunks no committed checkpoint refers to | `DistributedCheckpoint::collect_chunks` |
//!
//! The location is a directory (`--dir PATH`, or the first argument:
//! `steadfast ./checkpoints list`) or, in a build with the `object-store`
//! feature, a storage URL (`s3://bucket/prefix`, credentials from the
//! `AWS_*` environment variables). Output is for people by default, and one
//! JSON document on standard output with `--json`; the exit code says how it
//! went (0 ok, 1 corruption, 2 usage, 3 not found, 4 storage failure).
//! `steadfast --help` and `steadfast COMMAND --help` document every
//! argument and every JSON field.
//!
//! The binary is built with the `cli` feature:
//! `cargo install steadfast --features cli` (add `object-store` for URLs).
//!
//! [`DistributedCheckpoint`]: steadfast::DistributedCheckpoint

mod cleanup;
mod delete;
mod duration;
mod gc;
mod list;
mod location;
mod output;
mod progress;
mod retain;
mod show;
mod verify;

use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Parser, Subcommand};

use location::Context;
use output::{Failure, Outcome};

/// Exit codes and conventions, shown at the end of `steadfast --help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  corruption: a checkpoint failed verification (verify), or a damaged
     checkpoint stopped a command (show of a damaged manifest, gc)
  2  usage error: bad arguments, a bad duration or checkpoint name, a storage
     URL in a build without the `object-store` feature
  3  not found: no such checkpoint, or no such directory
  4  storage failure: listing, reading or deleting failed (also when only some
     objects could not be deleted; they are listed)

With --json, standard output holds exactly one JSON document: the command's
report (its fields are listed in `steadfast COMMAND --help`), or, on failure,
{\"error\": {\"kind\": \"corrupt\" | \"usage\" | \"not_found\" | \"storage\",
\"code\": N, \"message\": \"...\"}}. Sizes are in bytes, times are RFC 3339
(UTC) with the milliseconds since the Unix epoch beside them (`*_ms`), durations
are in seconds (`*_secs`). Argument errors found by the parser itself are printed
on standard error, as plain text, with exit code 2.

Examples:
  steadfast ./checkpoints list
  steadfast --dir ./checkpoints show run/ckpt-0000000042-step-4200
  steadfast ./checkpoints verify --all --json
  steadfast ./checkpoints retain --keep-last 5 --max-age 7d --dry-run
  steadfast s3://bucket/jobs/train-42 list    (with the object-store feature)";

/// Inspect, verify and tidy steadfast checkpoints in a directory or bucket.
///
/// A checkpoint NAME is the prefix NAME/ holding one shard per rank and a
/// manifest, NAME/metadata.json, written last: a prefix without a manifest is
/// not a checkpoint (`cleanup` removes such leftovers). Chunked checkpoints
/// keep their chunks under chunks/ (`gc` removes those no checkpoint needs).
#[derive(Debug, Parser)]
#[command(name = "steadfast", version, after_help = EXIT_CODES)]
struct Cli {
    /// The checkpoint directory, or a storage URL such as s3://bucket/prefix
    /// (needs a build with the `object-store` feature). Same as --dir.
    #[arg(value_name = "LOCATION")]
    location: Option<String>,

    /// The checkpoint directory, or a storage URL such as s3://bucket/prefix
    /// (needs a build with the `object-store` feature; credentials and region
    /// come from the AWS_* environment variables).
    #[arg(short = 'd', long = "dir", value_name = "LOCATION", global = true)]
    dir: Option<String>,

    /// Print one JSON document on standard output instead of text (no
    /// progress bar).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the committed checkpoints, newest first.
    ///
    /// A checkpoint is committed when its manifest is stored and valid;
    /// prefixes without a manifest are not listed (see `cleanup`), and
    /// manifests that cannot be read are listed apart, as unreadable (see
    /// `verify --all`).
    #[command(after_help = list::JSON_FIELDS)]
    List,

    /// Show the manifest of checkpoint NAME: format version, step, sequence,
    /// world size, commit stamp, shards, entries, sizes, digests and codec.
    ///
    /// Shows what the manifest records, after checking the manifest's own
    /// checksum; `verify NAME` reads and checks the bytes it describes.
    #[command(after_help = show::JSON_FIELDS)]
    Show {
        /// The checkpoint's name, as `list` prints it.
        name: String,
    },

    /// Read and check every byte of checkpoint NAME, or of every checkpoint.
    ///
    /// Checks the manifest's checksum and structure, then every shard: its
    /// size and SHA-256, each frame of a compressed shard, and for a chunked
    /// shard its chunk index and every chunk against its address. Every
    /// damaged shard is reported, with the damaged entries found in it, the
    /// object (shard, chunk or manifest) and the expected and found size or
    /// digest. Exits with 1 when anything is damaged. A progress bar shows
    /// the bytes read on standard error when it is a terminal (never with
    /// --json).
    #[command(
        after_help = verify::JSON_FIELDS,
        group(ArgGroup::new("what").required(true).args(["name", "all"]))
    )]
    Verify {
        /// The checkpoint to verify.
        name: Option<String>,
        /// Verify every checkpoint that has a manifest, readable or not.
        #[arg(long)]
        all: bool,
    },

    /// Delete checkpoint NAME: its manifest first (it stops being visible at
    /// once), then every object under NAME/.
    ///
    /// An interrupted delete leaves no half checkpoint: what is left has no
    /// manifest, and `cleanup` or another `delete` removes it. Chunks the
    /// checkpoint used are left for `gc`.
    #[command(after_help = delete::JSON_FIELDS)]
    Delete {
        /// The checkpoint to delete.
        name: String,
    },

    /// Delete the checkpoints a retention rule does not keep.
    ///
    /// A checkpoint is kept when any rule given keeps it: one of the newest N
    /// (--keep-last, by commit sequence), or committed less than --max-age
    /// ago (by the commit time its manifest records). The newest checkpoint
    /// is always kept. Each deletion goes manifest first, as `delete` does;
    /// then the chunks no checkpoint refers to any more are collected, as
    /// `gc` does.
    #[command(
        after_help = retain::JSON_FIELDS,
        group(ArgGroup::new("rule").required(true).multiple(true).args(["keep_last", "max_age"]))
    )]
    Retain {
        /// Keep the N newest checkpoints (N at least 1).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        keep_last: Option<u64>,
        /// Keep every checkpoint committed less than this long ago: 7d, 12h,
        /// 90m, 1w, 1h30m (units ms, s, m, h, d, w).
        #[arg(long, value_name = "AGE", value_parser = duration::parse)]
        max_age: Option<Duration>,
        /// Only the checkpoints whose names start with PREFIX/ (a
        /// CheckpointManager's prefix); the others are left alone.
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        /// Say what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },

    /// Remove what saves that never committed left behind.
    ///
    /// Removes every prefix that holds shards but no manifest, and the
    /// storage's temporary files of interrupted writes, once they are older
    /// than --grace, so that a save still in progress keeps its files.
    /// Committed checkpoints (even one with a damaged manifest) are never
    /// touched. Whether a fenced job confirmed a manifest lives in its
    /// coordinator, which this tool does not reach: such manifests are left
    /// alone. Chunks of saves that died are collected by `gc`.
    #[command(after_help = cleanup::JSON_FIELDS)]
    Cleanup {
        /// Leave alone what was written less than this long ago (default
        /// 10m, the library's cleanup grace). 0s removes every leftover:
        /// only when no job is saving.
        #[arg(long, value_name = "AGE", value_parser = duration::parse)]
        grace: Option<Duration>,
    },

    /// Delete the chunks under chunks/ that no committed checkpoint refers
    /// to.
    ///
    /// Safe beside running jobs: it takes the library's collection lock and
    /// gives way to chunked saves in progress (it then deletes nothing and
    /// says so). A committed checkpoint whose manifest or chunk index cannot
    /// be read stops it before anything is deleted (exit code 1): repair or
    /// delete that checkpoint first.
    #[command(after_help = gc::JSON_FIELDS)]
    Gc,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return output::fail(
                json,
                &Failure::storage(format!("starting the runtime failed: {e}")),
            );
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(outcome) => output::print(json, &outcome),
        Err(failure) => output::fail(json, &failure),
    }
}

async fn run(cli: Cli) -> Result<Outcome, Failure> {
    let location = match (cli.location, cli.dir) {
        (Some(a), Some(b)) if a != b => {
            return Err(Failure::usage(format!(
                "two locations given, {a:?} and --dir {b:?}: give one"
            )));
        }
        (Some(location), _) | (None, Some(location)) => location,
        (None, None) => {
            return Err(Failure::usage(
                "no location: give the checkpoint directory (or storage URL) as the first \
                 argument or with --dir",
            ));
        }
    };
    let ctx = Context::open(&location, cli.json).await?;
    match cli.command {
        Command::List => list::run(&ctx).await,
        Command::Show { name } => show::run(&ctx, &name).await,
        Command::Verify { name, all } => verify::run(&ctx, name.as_deref(), all).await,
        Command::Delete { name } => delete::run(&ctx, &name).await,
        Command::Retain {
            keep_last,
            max_age,
            prefix,
            dry_run,
        } => {
            let rules = retain::Rules {
                keep_last,
                max_age,
                prefix,
                dry_run,
            };
            retain::run(&ctx, rules).await
        }
        Command::Cleanup { grace } => cleanup::run(&ctx, grace).await,
        Command::Gc => gc::run(&ctx).await,
    }
}
