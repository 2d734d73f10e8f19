//! Checks of keys: every invalid key refused by every operation, nested
//! keys, and the longest segment the key rule allows.

use super::*;

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
        expect_invalid(check, "get_range", key, storage.get_range(key, 0..0).await);
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

/// A key segment of 255 bytes, the longest [`validate_key`](crate::storage::validate_key)
/// accepts, works in every operation (in a directory name and as the last
/// segment), and names that merely resemble a temporary file's are ordinary
/// keys.
///
/// Not part of [`run_all`]: a storage may hold shorter names only. The
/// crate runs it on [`MemoryStorage`](crate::storage::MemoryStorage),
/// [`LocalFsStorage`](crate::storage::LocalFsStorage) and S3; `object_store`'s own
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
