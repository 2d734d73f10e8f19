//! Checks of streamed writes and reads: round trips, `get_sized`, aborted
//! and dropped writes, and a large object in many chunks.

use super::*;

/// Size of the large object written by [`large_object`].
const LARGE_SIZE: usize = 8 * 1024 * 1024;

/// Chunk size of the large object's streamed write and read.
const LARGE_CHUNK: usize = 64 * 1024;

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
