//! Checks of `list`: prefix filtering, sorting, and writes in progress
//! never listed.

use super::*;

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
