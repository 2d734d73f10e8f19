//! A conformance suite for [`CheckpointStorage`] implementations: run it
//! against your own storage to check that it keeps the trait's contract.
//!
//! [`run_all`] runs every check; each check is also a public function, to run
//! alone or to find which one fails. The suite is a test helper: a check
//! **panics** on the first violation it finds, with a message that names the
//! check and says what was expected and what the storage did, which is what a
//! `#[test]` wants. Do not call it from production code.
//!
//! The suite expects an **empty** storage. Each check writes under its own
//! prefix (`conformance/<check>/`) and deletes what it wrote before it
//! returns, so the checks can run in any order on the same storage, and
//! [`run_all`] checks at the end that the storage is empty again.
//!
//! What is checked: round trips of whole and streamed objects (empty, small,
//! many chunks, 8 MiB in 64 KiB chunks), that `get_sized` refuses an object
//! of another size, that `get_range` reads exactly the range asked for and
//! refuses one past the end, that an overwrite is seen whole or not at all by a
//! concurrent reader, that `put_if_absent` lets exactly one of several
//! concurrent writers win, `head`, `exists`, idempotent deletes, `list`
//! (prefix filtering, sorting, no writes in progress), that an aborted or
//! dropped streamed write leaves nothing, nested keys, that
//! `cleanup_temporary` never removes a committed object, and that every
//! operation refuses every invalid key in [`INVALID_KEYS`] without writing
//! anything.
//!
//! # Examples
//!
//! ```
//! use steadfast::storage::{conformance, MemoryStorage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! conformance::run_all(&MemoryStorage::new()).await;
//! # }
//! ```

use std::fmt::Display;
use std::time::Duration;

use futures::future::join_all;
use tokio::io::AsyncReadExt;

use super::{Bytes, CheckpointStorage, ObjectMeta, Result, StorageError};

/// 256 bytes: one more than the longest key segment.
macro_rules! segment_of_256_bytes {
    () => {
        concat!(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
    };
}

macro_rules! ensure {
    ($check:expr, $cond:expr, $($what:tt)+) => {
        if !$cond {
            violated($check, format_args!($($what)+));
        }
    };
}

mod cleanup;
mod keys;
mod listing;
mod objects;
mod ranges;
mod streaming;

pub use cleanup::cleanup_keeps_committed_objects;
pub use keys::{invalid_keys_are_refused, longest_segment_round_trips, nested_keys};
pub use listing::{list_filters_by_prefix_and_sorts, list_hides_writes_in_progress};
pub use objects::{
    delete_is_idempotent, empty_object, exists_reports_presence, head_reports_metadata,
    missing_objects_are_not_found, overwrite_is_atomic, put_get_round_trip,
    put_if_absent_conflicts,
};
pub use ranges::get_range_reads_exactly_the_range;
pub use streaming::{
    aborted_write_leaves_nothing, get_sized_checks_the_size, large_object,
    streamed_write_round_trip,
};

/// Keys that every storage must refuse with [`StorageError::InvalidKey`], in
/// every operation: absolute paths, `..` and `.` segments, empty segments,
/// backslashes, NUL bytes and other control characters, segments longer
/// than 255 bytes, and segments shaped like the temporary files of
/// [`LocalFsStorage`](super::LocalFsStorage).
///
/// # Examples
///
/// ```
/// use steadfast::storage::{conformance::INVALID_KEYS, validate_key};
/// assert!(INVALID_KEYS.iter().all(|k| validate_key(k).is_err()));
/// ```
pub const INVALID_KEYS: &[&str] = &[
    "",
    "/",
    "/abs",
    "/etc/passwd",
    "..",
    "../escape",
    "a/../../escape",
    "a/..",
    ".",
    "./a",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "..\\escape",
    "C:\\escape",
    "a\0b",
    "a\nb",
    segment_of_256_bytes!(),
    concat!("run/", segment_of_256_bytes!(), "/shard"),
    ".shard.tmp-12-0123456789abcdef",
    "run/.metadata.json.tmp-4242-00000000deadbeef",
    "run/.step.tmp-1-0000000000000001/shard",
];

/// List prefixes that every storage must refuse with
/// [`StorageError::InvalidKey`].
///
/// # Examples
///
/// ```
/// use steadfast::storage::{conformance::INVALID_PREFIXES, validate_prefix};
/// assert!(INVALID_PREFIXES.iter().all(|p| validate_prefix(p).is_err()));
/// ```
pub const INVALID_PREFIXES: &[&str] = &["/", "/abs", "..", "../", "a//", "a/../", "a\\", "a\0"];

#[track_caller]
fn violated(check: &str, what: impl Display) -> ! {
    panic!("storage conformance check `{check}` failed: {what}")
}

#[track_caller]
fn ok<T>(check: &str, what: &str, result: Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => violated(check, format_args!("{what} returned an error: {e} ({e:?})")),
    }
}

/// The byte at `offset` of the test pattern: varied enough that a reordered,
/// repeated or missing chunk shows.
fn pattern_byte(seed: u64, offset: u64) -> u8 {
    let x = (offset ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 56) as u8) ^ (offset as u8)
}

fn pattern(seed: u64, start: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| pattern_byte(seed, start + i))
        .collect()
}

fn expect_not_found<T>(check: &str, what: &str, key: &str, result: Result<T>) {
    match result {
        Err(StorageError::NotFound { key: k }) if k == key => {}
        Err(e) => violated(
            check,
            format_args!("{what} of missing key {key:?}: expected NotFound, got {e} ({e:?})"),
        ),
        Ok(_) => violated(
            check,
            format_args!("{what} of missing key {key:?} succeeded; expected NotFound"),
        ),
    }
}

fn keys(metas: &[ObjectMeta]) -> Vec<&str> {
    metas.iter().map(|m| m.key.as_str()).collect()
}

async fn read_stream<S: CheckpointStorage + ?Sized>(
    check: &str,
    storage: &S,
    key: &str,
) -> (ObjectMeta, Vec<u8>) {
    let mut stream = ok(check, "get_stream", storage.get_stream(key).await);
    let mut data = Vec::new();
    if let Err(e) = stream.reader.read_to_end(&mut data).await {
        violated(
            check,
            format_args!("reading the stream of {key:?} failed: {e}"),
        );
    }
    (stream.meta, data)
}

async fn list_under<S: CheckpointStorage + ?Sized>(
    check: &str,
    storage: &S,
    prefix: &str,
) -> Vec<ObjectMeta> {
    ok(
        check,
        &format!("list({prefix:?})"),
        storage.list(prefix).await,
    )
}

async fn delete_all<S: CheckpointStorage + ?Sized>(check: &str, storage: &S, prefix: &str) {
    for meta in list_under(check, storage, prefix).await {
        ok(check, "delete", storage.delete(&meta.key).await);
    }
    let left = list_under(check, storage, prefix).await;
    ensure!(
        check,
        left.is_empty(),
        "objects left under {prefix:?} after deleting them all: {:?}",
        keys(&left)
    );
}

async fn assert_empty<S: CheckpointStorage + ?Sized>(check: &str, storage: &S, when: &str) {
    let all = list_under(check, storage, "").await;
    ensure!(
        check,
        all.is_empty(),
        "the storage must be empty {when}, but holds {:?}",
        keys(&all)
    );
}

/// Runs every check of the suite on `storage`, which must be empty, and
/// checks that it is empty again at the end.
///
/// # Panics
///
/// On the first violation, with a message naming the check.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use steadfast::storage::{conformance, CheckpointStorage, MemoryStorage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage: Arc<dyn CheckpointStorage> = Arc::new(MemoryStorage::new());
/// conformance::run_all(&storage).await;
/// # }
/// ```
pub async fn run_all<S: CheckpointStorage + ?Sized>(storage: &S) {
    assert_empty("run_all", storage, "before the suite runs").await;
    put_get_round_trip(storage).await;
    missing_objects_are_not_found(storage).await;
    overwrite_is_atomic(storage).await;
    put_if_absent_conflicts(storage).await;
    head_reports_metadata(storage).await;
    exists_reports_presence(storage).await;
    delete_is_idempotent(storage).await;
    list_filters_by_prefix_and_sorts(storage).await;
    list_hides_writes_in_progress(storage).await;
    streamed_write_round_trip(storage).await;
    get_sized_checks_the_size(storage).await;
    get_range_reads_exactly_the_range(storage).await;
    aborted_write_leaves_nothing(storage).await;
    invalid_keys_are_refused(storage).await;
    empty_object(storage).await;
    large_object(storage).await;
    nested_keys(storage).await;
    cleanup_keeps_committed_objects(storage).await;
    assert_empty("run_all", storage, "after the suite ran").await;
}
