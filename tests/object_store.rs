//! `ObjectStoreStorage` on object_store's in-memory store, on its local file
//! system store, and on a real S3 server.
//!
//! The S3 tests read the server from `STEADFAST_S3_ENDPOINT` and
//! `STEADFAST_S3_BUCKET` (with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
//! and `AWS_REGION`); `.ci/services.sh` starts one (moto) and sets them.
//! Without them each S3 test fails in CI (`CI=true`) and, elsewhere, says it
//! skipped. Every test writes
//! under its own unique prefix of the bucket.
#![cfg(feature = "object-store")]

mod common;
use common::{server_var, unique};

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ObjectStore, RetryConfig};
use sha2::{Digest, Sha256};
use steadfast::retry::Transient;
use steadfast::storage::Bytes;
use steadfast::storage::{
    conformance, CheckpointStorage, ObjectStoreStorage, StorageError, MIN_PART_SIZE,
};
use tokio::io::AsyncReadExt;

struct S3Env {
    endpoint: String,
    bucket: String,
    key_id: String,
    secret: String,
    region: String,
}

fn s3_env(test: &str) -> Option<S3Env> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let endpoint = server_var(test, "STEADFAST_S3_ENDPOINT")?;
    let bucket = server_var(test, "STEADFAST_S3_BUCKET")?;
    Some(S3Env {
        endpoint,
        bucket,
        key_id: var("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "testing".into()),
        secret: var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "testing".into()),
        region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
    })
}

/// An S3 storage under a prefix of its own, opened from a URL as a user
/// would.
fn s3_storage(env: &S3Env, test: &str) -> ObjectStoreStorage {
    let url = format!("s3://{}/{}", env.bucket, unique(test));
    ObjectStoreStorage::from_url(
        &url,
        [
            ("aws_endpoint", env.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", env.key_id.as_str()),
            ("aws_secret_access_key", env.secret.as_str()),
            ("aws_region", env.region.as_str()),
        ],
    )
    .unwrap()
}

fn memory_storage() -> ObjectStoreStorage {
    ObjectStoreStorage::new(Arc::new(InMemory::new()))
}

fn local_storage(dir: &tempfile::TempDir) -> ObjectStoreStorage {
    ObjectStoreStorage::new(Arc::new(
        LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
    ))
}

#[tokio::test]
async fn conformance_on_in_memory() {
    conformance::run_all(&memory_storage()).await;
    conformance::longest_segment_round_trips(&memory_storage()).await;
    let shared: Arc<dyn CheckpointStorage> = Arc::new(memory_storage());
    conformance::run_all(&shared).await;
}

#[tokio::test]
async fn conformance_on_local_file_system() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(&local_storage(&dir)).await;
    let url_dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/nested/root", url_dir.path().display());
    let from_url = ObjectStoreStorage::from_url(&url, std::iter::empty::<(&str, &str)>()).unwrap();
    conformance::run_all(&from_url).await;
}

#[tokio::test]
async fn conformance_on_s3() {
    let Some(env) = s3_env("conformance_on_s3") else {
        return;
    };
    let storage = s3_storage(&env, "conformance");
    conformance::run_all(&storage).await;
    conformance::longest_segment_round_trips(&storage).await;
}

/// Two writers race to create the same key: exactly one wins, the other is
/// told the object already exists, and the winner's bytes are stored.
async fn put_if_absent_race(storage: &ObjectStoreStorage) {
    for round in 0..5 {
        let key = format!("race/{round}/metadata.json");
        let a = storage.put_if_absent(&key, Bytes::from_static(b"writer-a"));
        let b = storage.put_if_absent(&key, Bytes::from_static(b"writer-b"));
        let (a, b) = tokio::join!(a, b);
        let winner = match (&a, &b) {
            (Ok(()), Err(StorageError::AlreadyExists { key: k })) if k == &key => "writer-a",
            (Err(StorageError::AlreadyExists { key: k }), Ok(())) if k == &key => "writer-b",
            _ => panic!("expected exactly one winner, got {a:?} and {b:?}"),
        };
        assert_eq!(storage.get(&key).await.unwrap(), winner.as_bytes());
        storage.delete(&key).await.unwrap();
    }
}

#[tokio::test]
async fn concurrent_put_if_absent_has_one_winner() {
    put_if_absent_race(&memory_storage()).await;
    let dir = tempfile::tempdir().unwrap();
    put_if_absent_race(&local_storage(&dir)).await;
    if let Some(env) = s3_env("concurrent_put_if_absent_has_one_winner (S3)") {
        put_if_absent_race(&s3_storage(&env, "race")).await;
    }
}

/// A streamed object of more than 10 MiB goes up as a multipart upload
/// (three parts of the 5 MiB minimum), is invisible until its commit, and
/// reads back whole through `get_stream`; an aborted or dropped upload of
/// the same size leaves nothing.
async fn multipart_round_trip(storage: &ObjectStoreStorage) {
    let size = 10 * 1024 * 1024 + 12_345;
    let data: Vec<u8> = (0..size as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let key = "big/shard-00000.bin";
    let mut writer = storage.put_stream(key).await.unwrap();
    // Uneven chunks, so that parts are cut across chunk boundaries.
    for chunk in data.chunks(777_777) {
        writer.write(chunk).await.unwrap();
    }
    assert!(!storage.exists(key).await.unwrap(), "visible before commit");
    assert!(storage.list("big/").await.unwrap().is_empty());
    let meta = writer.commit().await.unwrap();
    assert_eq!((meta.key.as_str(), meta.size), (key, size as u64));
    assert_eq!(storage.head(key).await.unwrap().size, size as u64);

    let mut stream = storage.get_stream(key).await.unwrap();
    assert_eq!(stream.meta.size, size as u64);
    let mut read = Vec::new();
    stream.reader.read_to_end(&mut read).await.unwrap();
    assert_eq!(read.len(), size);
    assert_eq!(Sha256::digest(&read), Sha256::digest(&data));

    for abort in [true, false] {
        let other = "big/aborted.bin";
        let mut writer = storage.put_stream(other).await.unwrap();
        for chunk in data.chunks(1 << 20) {
            writer.write(chunk).await.unwrap();
        }
        if abort {
            writer.abort().await.unwrap();
        } else {
            drop(writer);
        }
        assert!(!storage.exists(other).await.unwrap());
    }
    let listed: Vec<String> = storage
        .list("big/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(listed, vec![key.to_string()]);
    storage.delete(key).await.unwrap();
    assert!(storage.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn multipart_streaming_of_a_large_object() {
    const { assert!(MIN_PART_SIZE * 2 < 10 * 1024 * 1024 + 12_345) };
    multipart_round_trip(&memory_storage()).await;
    let dir = tempfile::tempdir().unwrap();
    multipart_round_trip(&local_storage(&dir)).await;
    if let Some(env) = s3_env("multipart_streaming_of_a_large_object (S3)") {
        multipart_round_trip(&s3_storage(&env, "multipart")).await;
    }
}

#[tokio::test]
async fn s3_errors_map_to_storage_errors() {
    let Some(env) = s3_env("s3_errors_map_to_storage_errors") else {
        return;
    };
    let storage = s3_storage(&env, "errors");
    assert!(matches!(
        storage.get("missing").await.unwrap_err(),
        StorageError::NotFound { .. }
    ));
    assert!(matches!(
        storage.head("missing").await.unwrap_err(),
        StorageError::NotFound { .. }
    ));
    assert!(matches!(
        storage.get_stream("missing").await.unwrap_err(),
        StorageError::NotFound { .. }
    ));
    storage.delete("missing").await.unwrap();
    // Invalid keys never reach the server.
    assert!(matches!(
        storage.put("../escape", vec![].into()).await.unwrap_err(),
        StorageError::InvalidKey { .. }
    ));

    // A server that is not there: a transient backend error (the client's
    // own retries are turned off to keep the test short).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name(&env.bucket)
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_allow_http(true)
            .with_access_key_id(&env.key_id)
            .with_secret_access_key(&env.secret)
            .with_region(&env.region)
            .with_retry(RetryConfig {
                max_retries: 0,
                retry_timeout: Duration::from_secs(5),
                ..RetryConfig::default()
            })
            .build()
            .unwrap(),
    );
    let err = ObjectStoreStorage::new(nowhere)
        .get("any")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Backend { .. }) && err.is_transient(),
        "{err:?}"
    );
}

#[tokio::test]
async fn urls_open_the_right_store() {
    let memory =
        ObjectStoreStorage::from_url("memory://", std::iter::empty::<(&str, &str)>()).unwrap();
    memory.put("a", Bytes::from_static(b"x")).await.unwrap();
    assert!(memory.store().to_string().contains("InMemory"));

    let s3 = ObjectStoreStorage::from_url(
        "s3://bucket/some/prefix",
        [("aws_region", "us-east-1"), ("aws_skip_signature", "true")],
    )
    .unwrap();
    assert!(
        s3.store().to_string().contains("some/prefix"),
        "{}",
        s3.store()
    );

    for bad in ["not a url", "ftp://host/path", "gs://bucket/path"] {
        let err =
            ObjectStoreStorage::from_url(bad, std::iter::empty::<(&str, &str)>()).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::Backend {
                    transient: false,
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
    }
}
