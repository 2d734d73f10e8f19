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
//! of another size, that an overwrite is seen whole or not at all by a
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

/// Size of the large object written by [`large_object`].
const LARGE_SIZE: usize = 8 * 1024 * 1024;

/// Chunk size of the large object's streamed write and read.
const LARGE_CHUNK: usize = 64 * 1024;

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

macro_rules! ensure {
    ($check:expr, $cond:expr, $($what:tt)+) => {
        if !$cond {
            violated($check, format_args!($($what)+));
        }
    };
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
    aborted_write_leaves_nothing(storage).await;
    invalid_keys_are_refused(storage).await;
    empty_object(storage).await;
    large_object(storage).await;
    nested_keys(storage).await;
    cleanup_keeps_committed_objects(storage).await;
    assert_empty("run_all", storage, "after the suite ran").await;
}

/// `put` then `get` returns the same bytes; `list` shows the object with its
/// size.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::put_get_round_trip(&storage).await;
/// # }
/// ```
pub async fn put_get_round_trip<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "put_get_round_trip";
    let prefix = "conformance/round-trip/";
    let key = "conformance/round-trip/object.bin";
    let data = pattern(1, 0, 4099);
    ok(check, "put", storage.put(key, data.clone().into()).await);
    let got = ok(check, "get", storage.get(key).await);
    ensure!(
        check,
        got == data,
        "get returned {} bytes that differ from the {} bytes put",
        got.len(),
        data.len()
    );
    let listed = list_under(check, storage, prefix).await;
    ensure!(
        check,
        keys(&listed) == [key] && listed[0].size == data.len() as u64,
        "list({prefix:?}) returned {listed:?}; expected one object {key:?} of {} bytes",
        data.len()
    );
    delete_all(check, storage, prefix).await;
}

/// `get`, `head` and `get_stream` of a key never written fail with
/// [`StorageError::NotFound`] naming the key.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::missing_objects_are_not_found(&storage).await;
/// # }
/// ```
pub async fn missing_objects_are_not_found<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "missing_objects_are_not_found";
    for key in [
        "conformance/missing/object",
        "conformance/missing/deep/er/object",
    ] {
        expect_not_found(check, "get", key, storage.get(key).await);
        expect_not_found(check, "head", key, storage.head(key).await);
        expect_not_found(check, "get_stream", key, storage.get_stream(key).await);
    }
}

/// Overwriting an object replaces it whole: readers running at the same time
/// see the old bytes or the new bytes, never a mix or a prefix.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::overwrite_is_atomic(&storage).await;
/// # }
/// ```
pub async fn overwrite_is_atomic<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "overwrite_is_atomic";
    let prefix = "conformance/overwrite/";
    let key = "conformance/overwrite/object";
    let first = vec![b'a'; 300_000];
    let second = vec![b'b'; 200_000];
    ok(check, "put", storage.put(key, first.clone().into()).await);
    let writes = async {
        for round in 0..8 {
            let data = if round % 2 == 0 { &second } else { &first };
            ok(
                check,
                "put (overwrite)",
                storage.put(key, data.clone().into()).await,
            );
        }
    };
    let reads = async {
        for _ in 0..24 {
            let got = ok(check, "get during overwrites", storage.get(key).await);
            ensure!(
                check,
                got == first || got == second,
                "a get during overwrites returned {} bytes that are neither the old object nor the new one",
                got.len()
            );
        }
    };
    futures::join!(writes, reads);
    let got = ok(check, "get", storage.get(key).await);
    ensure!(
        check,
        got == first,
        "after the last overwrite get returned {} bytes, not the last object written",
        got.len()
    );
    let meta = ok(check, "head", storage.head(key).await);
    ensure!(
        check,
        meta.size == first.len() as u64,
        "head reports {} bytes after the overwrite; expected {}",
        meta.size,
        first.len()
    );
    delete_all(check, storage, prefix).await;
}

/// `put_if_absent` fails with [`StorageError::AlreadyExists`] when an object
/// exists and leaves it unchanged; of several concurrent `put_if_absent`
/// calls on one key exactly one wins, and its bytes are stored.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::put_if_absent_conflicts(&storage).await;
/// # }
/// ```
pub async fn put_if_absent_conflicts<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "put_if_absent_conflicts";
    let prefix = "conformance/put-if-absent/";
    let key = "conformance/put-if-absent/object";
    ok(
        check,
        "put_if_absent",
        storage
            .put_if_absent(key, Bytes::from_static(b"first"))
            .await,
    );
    match storage
        .put_if_absent(key, Bytes::from_static(b"second"))
        .await
    {
        Err(StorageError::AlreadyExists { key: k }) if k == key => {}
        Err(e) => violated(
            check,
            format_args!(
                "put_if_absent over an existing object: expected AlreadyExists, got {e} ({e:?})"
            ),
        ),
        Ok(()) => violated(check, "put_if_absent over an existing object succeeded"),
    }
    let got = ok(check, "get", storage.get(key).await);
    ensure!(
        check,
        got == b"first"[..],
        "a refused put_if_absent changed the object to {got:?}"
    );

    ok(check, "delete", storage.delete(key).await);
    ok(
        check,
        "put_if_absent after delete",
        storage
            .put_if_absent(key, Bytes::from_static(b"again"))
            .await,
    );
    ok(check, "delete", storage.delete(key).await);

    let racers: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 1024 + usize::from(i)]).collect();
    let results = join_all(
        racers
            .iter()
            .map(|data| storage.put_if_absent(key, data.clone().into())),
    )
    .await;
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(()) => winners.push(i),
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => violated(
                check,
                format_args!(
                    "a concurrent put_if_absent failed with {e} ({e:?}) instead of AlreadyExists"
                ),
            ),
        }
    }
    ensure!(
        check,
        winners.len() == 1,
        "{} of 8 concurrent put_if_absent calls succeeded (writers {winners:?}); exactly one must",
        winners.len()
    );
    let got = ok(check, "get", storage.get(key).await);
    ensure!(
        check,
        got == racers[winners[0]],
        "the stored object is not the one the winning put_if_absent wrote"
    );
    delete_all(check, storage, prefix).await;
}

/// `head` reports the key and the size of the object; a missing key is
/// [`StorageError::NotFound`].
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::head_reports_metadata(&storage).await;
/// # }
/// ```
pub async fn head_reports_metadata<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "head_reports_metadata";
    let prefix = "conformance/head/";
    let key = "conformance/head/object";
    ok(check, "put", storage.put(key, vec![7; 1234].into()).await);
    let meta = ok(check, "head", storage.head(key).await);
    ensure!(
        check,
        meta.key == key && meta.size == 1234,
        "head returned {meta:?}; expected key {key:?} and size 1234"
    );
    expect_not_found(
        check,
        "head",
        "conformance/head/other",
        storage.head("conformance/head/other").await,
    );
    delete_all(check, storage, prefix).await;
}

/// `exists` is false before a put, true after it, false after a delete.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::exists_reports_presence(&storage).await;
/// # }
/// ```
pub async fn exists_reports_presence<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "exists_reports_presence";
    let prefix = "conformance/exists/";
    let key = "conformance/exists/object";
    ensure!(
        check,
        !ok(check, "exists", storage.exists(key).await),
        "exists is true before any put"
    );
    ok(check, "put", storage.put(key, vec![1].into()).await);
    ensure!(
        check,
        ok(check, "exists", storage.exists(key).await),
        "exists is false after a put"
    );
    ok(check, "delete", storage.delete(key).await);
    ensure!(
        check,
        !ok(check, "exists", storage.exists(key).await),
        "exists is true after a delete"
    );
    delete_all(check, storage, prefix).await;
}

/// Deleting removes the object; deleting it again, or deleting a key never
/// written, succeeds.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::delete_is_idempotent(&storage).await;
/// # }
/// ```
pub async fn delete_is_idempotent<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "delete_is_idempotent";
    let key = "conformance/delete/object";
    ok(
        check,
        "delete of a key never written",
        storage.delete("conformance/delete/never/written").await,
    );
    ok(check, "put", storage.put(key, vec![1, 2, 3].into()).await);
    ok(check, "delete", storage.delete(key).await);
    expect_not_found(check, "get after delete", key, storage.get(key).await);
    ok(check, "second delete", storage.delete(key).await);
    let left = list_under(check, storage, "conformance/delete/").await;
    ensure!(
        check,
        left.is_empty(),
        "objects listed after their delete: {:?}",
        keys(&left)
    );
}

/// `list` returns exactly the objects whose keys start with the prefix (a
/// prefix may end inside a segment), sorted by key, with their sizes.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::list_filters_by_prefix_and_sorts(&storage).await;
/// # }
/// ```
pub async fn list_filters_by_prefix_and_sorts<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "list_filters_by_prefix_and_sorts";
    let p = "conformance/list/";
    // Written out of order, each with its own size.
    let objects = ["b/2", "a/sub/3", "ab", "a/10", "a-x", "a/1"];
    for (i, name) in objects.iter().enumerate() {
        ok(
            check,
            "put",
            storage
                .put(&format!("{p}{name}"), vec![0; 10 + i].into())
                .await,
        );
    }
    let size_of = |name: &str| 10 + objects.iter().position(|o| *o == name).unwrap_or(0) as u64;
    let cases: [(&str, &[&str]); 6] = [
        ("", &["a-x", "a/1", "a/10", "a/sub/3", "ab", "b/2"]),
        ("a/", &["a/1", "a/10", "a/sub/3"]),
        ("a", &["a-x", "a/1", "a/10", "a/sub/3", "ab"]),
        ("a/1", &["a/1", "a/10"]),
        ("b/2", &["b/2"]),
        ("zzz/", &[]),
    ];
    for (suffix, expected) in cases {
        let prefix = format!("{p}{suffix}");
        let listed = list_under(check, storage, &prefix).await;
        let expected_keys: Vec<String> = expected.iter().map(|e| format!("{p}{e}")).collect();
        ensure!(
            check,
            keys(&listed) == expected_keys,
            "list({prefix:?}) returned {:?}; expected {expected_keys:?} (sorted)",
            keys(&listed)
        );
        for meta in &listed {
            let name = &meta.key[p.len()..];
            ensure!(
                check,
                meta.size == size_of(name),
                "list reports {} bytes for {:?}, which holds {}",
                meta.size,
                meta.key,
                size_of(name)
            );
        }
    }
    let everything = list_under(check, storage, "").await;
    let all_keys = keys(&everything);
    ensure!(
        check,
        all_keys.windows(2).all(|w| w[0] < w[1]),
        "list(\"\") is not sorted: {all_keys:?}"
    );
    delete_all(check, storage, p).await;
}

/// A streamed write in progress is invisible: not listed (no temporary
/// object shows), not readable, until its commit.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::list_hides_writes_in_progress(&storage).await;
/// # }
/// ```
pub async fn list_hides_writes_in_progress<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "list_hides_writes_in_progress";
    let prefix = "conformance/in-progress/";
    let key = "conformance/in-progress/object";
    let mut writer = ok(check, "put_stream", storage.put_stream(key).await);
    ok(check, "write", writer.write(&[5; 1024]).await);
    for listed_prefix in [prefix, ""] {
        let listed = list_under(check, storage, listed_prefix).await;
        ensure!(
            check,
            listed.is_empty(),
            "list({listed_prefix:?}) shows {:?} while a streamed write is in progress",
            keys(&listed)
        );
    }
    ensure!(
        check,
        !ok(check, "exists", storage.exists(key).await),
        "an object being streamed exists before its commit"
    );
    expect_not_found(check, "get before commit", key, storage.get(key).await);
    let meta = ok(check, "commit", writer.commit().await);
    ensure!(
        check,
        meta.key == key && meta.size == 1024,
        "commit returned {meta:?}; expected key {key:?} and 1024 bytes"
    );
    let listed = list_under(check, storage, prefix).await;
    ensure!(
        check,
        keys(&listed) == [key],
        "after the commit list({prefix:?}) returned {:?}; expected [{key:?}]",
        keys(&listed)
    );
    delete_all(check, storage, prefix).await;
}

/// An object written in many chunks of varied sizes through `put_stream`
/// reads back whole through `get` and through `get_stream`, whose metadata
/// gives its size.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::streamed_write_round_trip(&storage).await;
/// # }
/// ```
pub async fn streamed_write_round_trip<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "streamed_write_round_trip";
    let prefix = "conformance/stream/";
    let key = "conformance/stream/object";
    let mut expected = Vec::new();
    let mut writer = ok(check, "put_stream", storage.put_stream(key).await);
    for i in 0..100u64 {
        let len = (i * 37 % 5000 + 1) as usize;
        let chunk = pattern(2, expected.len() as u64, len);
        ok(check, "write", writer.write(&chunk).await);
        expected.extend_from_slice(&chunk);
    }
    let meta = ok(check, "commit", writer.commit().await);
    ensure!(
        check,
        meta.key == key && meta.size == expected.len() as u64,
        "commit returned {meta:?}; expected key {key:?} and {} bytes",
        expected.len()
    );
    let got = ok(check, "get", storage.get(key).await);
    ensure!(
        check,
        got == expected,
        "get returned {} bytes that differ from the {} bytes streamed",
        got.len(),
        expected.len()
    );
    let (meta, streamed) = read_stream(check, storage, key).await;
    ensure!(
        check,
        meta.size == expected.len() as u64 && meta.key == key,
        "get_stream metadata {meta:?}; expected key {key:?} and {} bytes",
        expected.len()
    );
    ensure!(
        check,
        streamed == expected,
        "get_stream yielded {} bytes that differ from the {} bytes streamed",
        streamed.len(),
        expected.len()
    );
    delete_all(check, storage, prefix).await;
}

/// `get_sized` returns the object when its size is the one asked for, fails
/// with [`StorageError::LengthMismatch`] (saying both sizes) when it is not,
/// and with [`StorageError::NotFound`] when there is no object.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::get_sized_checks_the_size(&storage).await;
/// # }
/// ```
pub async fn get_sized_checks_the_size<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "get_sized_checks_the_size";
    let prefix = "conformance/sized/";
    let key = "conformance/sized/object";
    let data = pattern(7, 0, 10_007);
    let size = data.len() as u64;
    ok(check, "put", storage.put(key, data.clone().into()).await);
    let got = ok(check, "get_sized", storage.get_sized(key, size).await);
    ensure!(
        check,
        got == data,
        "get_sized returned {} bytes that differ from the {size} bytes put",
        got.len()
    );
    for wrong in [0, size - 1, size + 1, u64::MAX] {
        match storage.get_sized(key, wrong).await {
            Err(StorageError::LengthMismatch {
                key: k,
                expected,
                actual,
            }) => ensure!(
                check,
                k == key && expected == wrong && actual == size,
                "get_sized({key:?}, {wrong}) reported key {k:?}, expected {expected} and \
                 actual {actual}; expected key {key:?}, expected {wrong} and actual {size}"
            ),
            other => violated(
                check,
                format_args!(
                    "get_sized({key:?}, {wrong}) of an object of {size} bytes returned {:?}; \
                     expected LengthMismatch",
                    other.map(|bytes| bytes.len())
                ),
            ),
        }
    }
    let missing = "conformance/sized/missing";
    expect_not_found(
        check,
        "get_sized",
        missing,
        storage.get_sized(missing, 1).await,
    );
    delete_all(check, storage, prefix).await;
}

/// A streamed write that is aborted, or dropped without a commit, leaves
/// nothing visible, and a previous object under its key stays intact.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::aborted_write_leaves_nothing(&storage).await;
/// # }
/// ```
pub async fn aborted_write_leaves_nothing<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "aborted_write_leaves_nothing";
    let prefix = "conformance/abort/";
    let fresh = "conformance/abort/fresh";
    let existing = "conformance/abort/existing";

    let mut writer = ok(check, "put_stream", storage.put_stream(fresh).await);
    ok(check, "write", writer.write(&[1; 4096]).await);
    ok(check, "abort", writer.abort().await);
    let untouched = ok(check, "put_stream", storage.put_stream(fresh).await);
    ok(
        check,
        "abort of an unwritten stream",
        untouched.abort().await,
    );
    let mut dropped = ok(check, "put_stream", storage.put_stream(fresh).await);
    ok(check, "write", dropped.write(&[2; 4096]).await);
    drop(dropped);
    ensure!(
        check,
        !ok(check, "exists", storage.exists(fresh).await),
        "an aborted or dropped streamed write left an object"
    );

    ok(
        check,
        "put",
        storage.put(existing, Bytes::from_static(b"previous")).await,
    );
    let mut writer = ok(check, "put_stream", storage.put_stream(existing).await);
    ok(check, "write", writer.write(b"replacement").await);
    ok(check, "abort", writer.abort().await);
    let mut dropped = ok(check, "put_stream", storage.put_stream(existing).await);
    ok(check, "write", dropped.write(b"replacement").await);
    drop(dropped);
    let got = ok(check, "get", storage.get(existing).await);
    ensure!(
        check,
        got == b"previous"[..],
        "an aborted or dropped streamed write changed the previous object to {got:?}"
    );

    let listed = list_under(check, storage, prefix).await;
    ensure!(
        check,
        keys(&listed) == [existing],
        "list({prefix:?}) returned {:?}; expected only [{existing:?}]",
        keys(&listed)
    );
    delete_all(check, storage, prefix).await;
}

fn expect_invalid<T>(check: &str, operation: &str, key: &str, result: Result<T>) {
    match result {
        Err(StorageError::InvalidKey { .. }) => {}
        Err(e) => violated(
            check,
            format_args!("{operation}({key:?}): expected InvalidKey, got {e} ({e:?})"),
        ),
        Ok(_) => violated(
            check,
            format_args!("{operation}({key:?}) succeeded; the key must be refused"),
        ),
    }
}

/// Every operation refuses every key of [`INVALID_KEYS`] (and `list` every
/// prefix of [`INVALID_PREFIXES`]) with [`StorageError::InvalidKey`], and
/// nothing is written.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::invalid_keys_are_refused(&storage).await;
/// # }
/// ```
pub async fn invalid_keys_are_refused<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "invalid_keys_are_refused";
    let before = list_under(check, storage, "").await;
    for &key in INVALID_KEYS {
        expect_invalid(
            check,
            "put",
            key,
            storage.put(key, Bytes::from_static(b"x")).await,
        );
        expect_invalid(
            check,
            "put_if_absent",
            key,
            storage.put_if_absent(key, Bytes::from_static(b"x")).await,
        );
        expect_invalid(check, "get", key, storage.get(key).await);
        expect_invalid(check, "head", key, storage.head(key).await);
        expect_invalid(check, "exists", key, storage.exists(key).await);
        expect_invalid(check, "delete", key, storage.delete(key).await);
        expect_invalid(check, "put_stream", key, storage.put_stream(key).await);
        expect_invalid(check, "get_stream", key, storage.get_stream(key).await);
        expect_invalid(check, "get_sized", key, storage.get_sized(key, 0).await);
    }
    for &prefix in INVALID_PREFIXES {
        expect_invalid(check, "list", prefix, storage.list(prefix).await);
    }
    let after = list_under(check, storage, "").await;
    ensure!(
        check,
        after == before,
        "refused calls changed the storage: it held {:?} and now holds {:?}",
        keys(&before),
        keys(&after)
    );
}

/// An empty object is stored, listed with size 0 and read back empty, both
/// when put whole and when streamed with no write.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::empty_object(&storage).await;
/// # }
/// ```
pub async fn empty_object<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "empty_object";
    let prefix = "conformance/empty/";
    let put_key = "conformance/empty/put";
    let streamed_key = "conformance/empty/streamed";
    ok(check, "put", storage.put(put_key, Bytes::new()).await);
    let writer = ok(check, "put_stream", storage.put_stream(streamed_key).await);
    let meta = ok(check, "commit", writer.commit().await);
    ensure!(
        check,
        meta.size == 0,
        "an empty streamed write committed {} bytes",
        meta.size
    );
    for key in [put_key, streamed_key] {
        let got = ok(check, "get", storage.get(key).await);
        ensure!(
            check,
            got.is_empty(),
            "get({key:?}) returned {} bytes; expected none",
            got.len()
        );
        let meta = ok(check, "head", storage.head(key).await);
        ensure!(
            check,
            meta.size == 0,
            "head({key:?}) reports {} bytes; expected 0",
            meta.size
        );
        let (meta, streamed) = read_stream(check, storage, key).await;
        ensure!(
            check,
            meta.size == 0 && streamed.is_empty(),
            "get_stream({key:?}) reports {} bytes and yields {}; expected 0 and 0",
            meta.size,
            streamed.len()
        );
    }
    let listed = list_under(check, storage, prefix).await;
    ensure!(
        check,
        keys(&listed) == [put_key, streamed_key] && listed.iter().all(|m| m.size == 0),
        "list({prefix:?}) returned {listed:?}; expected the two empty objects"
    );
    delete_all(check, storage, prefix).await;
}

/// An 8 MiB object streamed in 64 KiB chunks reads back exactly, through
/// `get_stream` in 64 KiB reads and through `get`.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::large_object(&storage).await;
/// # }
/// ```
pub async fn large_object<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "large_object";
    let prefix = "conformance/large/";
    let key = "conformance/large/object";
    let mut writer = ok(check, "put_stream", storage.put_stream(key).await);
    for offset in (0..LARGE_SIZE).step_by(LARGE_CHUNK) {
        let chunk = pattern(3, offset as u64, LARGE_CHUNK);
        ok(check, "write", writer.write(&chunk).await);
    }
    let meta = ok(check, "commit", writer.commit().await);
    ensure!(
        check,
        meta.size == LARGE_SIZE as u64,
        "commit reports {} bytes; expected {LARGE_SIZE}",
        meta.size
    );

    let mut stream = ok(check, "get_stream", storage.get_stream(key).await);
    ensure!(
        check,
        stream.meta.size == LARGE_SIZE as u64,
        "get_stream reports {} bytes; expected {LARGE_SIZE}",
        stream.meta.size
    );
    let mut buffer = vec![0u8; LARGE_CHUNK];
    let mut offset = 0u64;
    loop {
        let n = match stream.reader.read(&mut buffer).await {
            Ok(n) => n,
            Err(e) => violated(
                check,
                format_args!("reading the stream at byte {offset} failed: {e}"),
            ),
        };
        if n == 0 {
            break;
        }
        ensure!(
            check,
            buffer[..n] == pattern(3, offset, n)[..],
            "get_stream yielded wrong bytes in the {n} bytes at offset {offset}"
        );
        offset += n as u64;
        ensure!(
            check,
            offset <= LARGE_SIZE as u64,
            "get_stream yielded more than {LARGE_SIZE} bytes"
        );
    }
    ensure!(
        check,
        offset == LARGE_SIZE as u64,
        "get_stream yielded {offset} bytes; expected {LARGE_SIZE}"
    );
    drop(stream);

    let whole = ok(check, "get", storage.get(key).await);
    ensure!(
        check,
        whole.len() == LARGE_SIZE && whole == pattern(3, 0, LARGE_SIZE),
        "get returned {} bytes that differ from the {LARGE_SIZE} bytes streamed",
        whole.len()
    );
    delete_all(check, storage, prefix).await;
}

/// Keys several segments deep are stored, listed by any of their directory
/// prefixes, and deleted independently of their neighbours; a key can be
/// written again after its directory was emptied.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::nested_keys(&storage).await;
/// # }
/// ```
pub async fn nested_keys<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "nested_keys";
    let p = "conformance/nested/";
    let deep = "conformance/nested/a/b/c/d/e/f.bin";
    let middle = "conformance/nested/a/b/x.bin";
    let top = "conformance/nested/top.bin";
    for (i, key) in [deep, middle, top].into_iter().enumerate() {
        ok(
            check,
            "put",
            storage.put(key, pattern(4 + i as u64, 0, 100).into()).await,
        );
    }
    for (i, key) in [deep, middle, top].into_iter().enumerate() {
        let got = ok(check, "get", storage.get(key).await);
        ensure!(
            check,
            got == pattern(4 + i as u64, 0, 100),
            "get({key:?}) returned other bytes"
        );
    }
    let listed = list_under(check, storage, "conformance/nested/a/b/").await;
    ensure!(
        check,
        keys(&listed) == [deep, middle],
        "list of a/b/ returned {:?}; expected [{deep:?}, {middle:?}]",
        keys(&listed)
    );
    ok(check, "delete", storage.delete(deep).await);
    ensure!(
        check,
        ok(check, "exists", storage.exists(middle).await),
        "deleting {deep:?} removed its neighbour {middle:?}"
    );
    let listed = list_under(check, storage, p).await;
    ensure!(
        check,
        keys(&listed) == [middle, top],
        "after deleting {deep:?}, list returned {:?}; expected [{middle:?}, {top:?}]",
        keys(&listed)
    );
    ok(
        check,
        "put again after delete",
        storage.put(deep, vec![9; 3].into()).await,
    );
    let got = ok(check, "get", storage.get(deep).await);
    ensure!(
        check,
        got == [9u8, 9, 9][..],
        "get({deep:?}) after rewriting returned {got:?}"
    );
    delete_all(check, storage, p).await;
}

/// `cleanup_temporary`, even with an age of zero, never removes a committed
/// object: whole, conditional and streamed writes all keep their bytes, and
/// the listing is unchanged.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::cleanup_keeps_committed_objects(&storage).await;
/// # }
/// ```
pub async fn cleanup_keeps_committed_objects<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "cleanup_keeps_committed_objects";
    let prefix = "conformance/cleanup/";
    let objects = [
        ("conformance/cleanup/put", pattern(31, 0, 100)),
        ("conformance/cleanup/nested/if-absent", pattern(32, 0, 7)),
        (
            "conformance/cleanup/nested/deeper/streamed",
            pattern(33, 0, 3000),
        ),
        ("conformance/cleanup/empty", Vec::new()),
    ];
    ok(
        check,
        "put",
        storage.put(objects[0].0, objects[0].1.clone().into()).await,
    );
    ok(
        check,
        "put_if_absent",
        storage
            .put_if_absent(objects[1].0, objects[1].1.clone().into())
            .await,
    );
    let mut writer = ok(check, "put_stream", storage.put_stream(objects[2].0).await);
    for chunk in objects[2].1.chunks(1000) {
        ok(check, "write", writer.write(chunk).await);
    }
    ok(check, "commit", writer.commit().await);
    ok(
        check,
        "put",
        storage.put(objects[3].0, objects[3].1.clone().into()).await,
    );
    let before = list_under(check, storage, prefix).await;

    for older_than in [Duration::from_secs(3600), Duration::ZERO] {
        ok(
            check,
            "cleanup_temporary",
            storage.cleanup_temporary(older_than).await,
        );
        for (key, data) in &objects {
            let got = ok(check, "get after cleanup_temporary", storage.get(key).await);
            if got != *data {
                violated(
                    check,
                    format!(
                        "{key:?} holds {} bytes after cleanup_temporary({older_than:?}), not the {} committed",
                        got.len(),
                        data.len()
                    ),
                );
            }
        }
        let after = list_under(check, storage, prefix).await;
        if after != before {
            violated(
                check,
                format!(
                    "the listing changed across cleanup_temporary({older_than:?}): {:?} became {:?}",
                    keys(&before),
                    keys(&after)
                ),
            );
        }
    }
    delete_all(check, storage, prefix).await;
}

/// A key segment of 255 bytes, the longest [`validate_key`](super::validate_key)
/// accepts, works in every operation (in a directory name and as the last
/// segment), and names that merely resemble a temporary file's are ordinary
/// keys.
///
/// Not part of [`run_all`]: a storage may hold shorter names only. The
/// crate runs it on [`MemoryStorage`](super::MemoryStorage),
/// [`LocalFsStorage`](super::LocalFsStorage) and S3; `object_store`'s own
/// local file system (a `file://` URL) fails it, since it appends `#<n>`
/// to the name of the file it stages and percent-encodes non-ASCII bytes.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::longest_segment_round_trips(&storage).await;
/// # }
/// ```
pub async fn longest_segment_round_trips<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "longest_segment_round_trips";
    let prefix = "conformance/longest/";
    let long = "l".repeat(255);
    let names = [
        format!("{prefix}{long}"),
        format!("{prefix}{long}/shard"),
        format!("{prefix}{}", "\u{e9}".repeat(127)),
        format!("{prefix}.step.tmp-old"),
        format!("{prefix}step.tmp-1-0123456789abcdef"),
    ];
    // `a` and `a/b` cannot both exist on a file system: the first key goes
    // before the second is written.
    for (i, key) in names.iter().enumerate() {
        let data = pattern(40 + i as u64, 0, 10 + i);
        ok(check, "put", storage.put(key, data.clone().into()).await);
        let got = ok(check, "get", storage.get(key).await);
        ensure!(check, got == data, "{key:?} read back other bytes");
        let mut writer = ok(check, "put_stream", storage.put_stream(key).await);
        ok(check, "write", writer.write(&data).await);
        ok(check, "commit", writer.commit().await);
        let (meta, streamed) = read_stream(check, storage, key).await;
        ensure!(
            check,
            meta.key == *key && streamed == data,
            "the streamed read of {key:?} differs"
        );
        let listed = list_under(check, storage, prefix).await;
        ensure!(
            check,
            keys(&listed) == [key.as_str()],
            "listing {prefix:?} gave {:?}",
            keys(&listed)
        );
        ok(check, "delete", storage.delete(key).await);
        ensure!(
            check,
            !ok(check, "exists", storage.exists(key).await),
            "{key:?} still exists after delete"
        );
    }
    delete_all(check, storage, prefix).await;
}
