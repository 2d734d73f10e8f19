//! Checks of whole objects: round trips, missing objects, atomic overwrites,
//! `put_if_absent` races, `head`, `exists`, deletes and the empty object.

use super::*;

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
