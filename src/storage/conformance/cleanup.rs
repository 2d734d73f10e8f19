//! The check of `cleanup_temporary`: a committed object is never removed.

use super::*;

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
