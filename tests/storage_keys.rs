//! No key reaches outside a storage: invalid keys are refused by every
//! operation of every implementation, and `LocalFsStorage` does not follow
//! symbolic links planted under its root. One rule for every storage: a key
//! (or checkpoint name) one storage refuses, every storage refuses, before
//! any I/O.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use steadfast::checkpoint::{
    validate_name, CheckpointError, CheckpointOptions, DistributedCheckpoint, SaveOptions,
    ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::Bytes;

use steadfast::retry::Transient;
use steadfast::storage::{
    conformance::{INVALID_KEYS, INVALID_PREFIXES},
    CheckpointStorage, LocalFsStorage, MemoryStorage, StorageError,
};

/// Keys that try to escape, on top of the conformance suite's list.
const ESCAPES: &[&str] = &[
    "../outside/secret",
    "../../etc/passwd",
    "a/../../outside/planted",
    "/tmp/absolute",
    "/",
    "\0",
    "secret\0.bin",
    "a\\..\\..\\outside\\planted",
    "..\\outside",
    "a/b/../../..",
];

/// Every entry under `dir` (files, directories, links), relative, sorted.
/// Symbolic links are listed, not followed.
fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            out.push(entry.path().strip_prefix(base).unwrap().to_path_buf());
            if entry.file_type().unwrap().is_dir() {
                walk(base, &entry.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn expect_invalid<T>(what: &str, key: &str, result: steadfast::storage::Result<T>) {
    match result {
        Err(StorageError::InvalidKey { key: k, .. }) => assert_eq!(k, key),
        Err(e) => panic!("{what}({key:?}): expected InvalidKey, got {e:?}"),
        Ok(_) => panic!("{what}({key:?}) succeeded"),
    }
}

async fn every_operation_refuses(storage: &dyn CheckpointStorage) {
    for &key in INVALID_KEYS.iter().chain(ESCAPES) {
        expect_invalid(
            "put",
            key,
            storage.put(key, Bytes::from_static(b"escaped")).await,
        );
        expect_invalid(
            "put_if_absent",
            key,
            storage
                .put_if_absent(key, Bytes::from_static(b"escaped"))
                .await,
        );
        expect_invalid("get", key, storage.get(key).await);
        expect_invalid("head", key, storage.head(key).await);
        expect_invalid("exists", key, storage.exists(key).await);
        expect_invalid("delete", key, storage.delete(key).await);
        expect_invalid("put_stream", key, storage.put_stream(key).await);
        expect_invalid("get_stream", key, storage.get_stream(key).await);
    }
    for &prefix in INVALID_PREFIXES
        .iter()
        .chain(["../", "../outside/", "/tmp/"].iter())
    {
        expect_invalid("list", prefix, storage.list(prefix).await);
    }
}

#[tokio::test]
async fn memory_storage_refuses_escaping_keys() {
    let storage = MemoryStorage::new();
    every_operation_refuses(&storage).await;
    assert!(storage.is_empty());
    assert!(storage.calls().is_empty(), "refused before anything else");
}

#[tokio::test]
async fn local_fs_storage_refuses_escaping_keys_and_writes_nothing() {
    let outer = tempfile::tempdir().unwrap();
    fs::create_dir(outer.path().join("outside")).unwrap();
    fs::write(outer.path().join("outside/secret"), b"secret").unwrap();
    let storage = LocalFsStorage::new(outer.path().join("root")).unwrap();
    let before = tree(outer.path());

    every_operation_refuses(&storage).await;

    assert_eq!(tree(outer.path()), before, "nothing written anywhere");
    assert!(tree(storage.root()).is_empty());
    assert_eq!(
        fs::read(outer.path().join("outside/secret")).unwrap(),
        b"secret"
    );
}

#[tokio::test]
async fn local_fs_storage_refuses_names_reserved_for_temp_files() {
    let outer = tempfile::tempdir().unwrap();
    let storage = LocalFsStorage::new(outer.path()).unwrap();
    for key in [
        ".a.tmp-1-0123456789abcdef",
        "d/.x.tmp-99-00000000deadbeef/y",
    ] {
        expect_invalid("put", key, storage.put(key, vec![1].into()).await);
        expect_invalid("get", key, storage.get(key).await);
    }
    assert!(tree(storage.root()).is_empty());
}

/// Names that once passed `validate_key` and `MemoryStorage`, then failed on
/// `LocalFsStorage` only when it touched the disk: a segment longer than 255
/// bytes, and a segment shaped like a temporary file.
fn names_one_storage_used_to_refuse() -> Vec<String> {
    vec![
        "a".repeat(256),
        format!("run/{}", "\u{e9}".repeat(128)),
        format!("run/{}/step-1", "s".repeat(300)),
        ".a.tmp-1-0123456789abcdef".to_string(),
        "run/.step-1.tmp-4242-00000000deadbeef".to_string(),
        "d/.x.tmp-99-00000000deadbeef/y".to_string(),
    ]
}

async fn refuses_every_name(storage: &dyn CheckpointStorage) {
    for key in names_one_storage_used_to_refuse() {
        let key = key.as_str();
        expect_invalid("put", key, storage.put(key, Bytes::from_static(b"x")).await);
        expect_invalid(
            "put_if_absent",
            key,
            storage.put_if_absent(key, Bytes::from_static(b"x")).await,
        );
        expect_invalid("get", key, storage.get(key).await);
        expect_invalid("get_sized", key, storage.get_sized(key, 1).await);
        expect_invalid("head", key, storage.head(key).await);
        expect_invalid("exists", key, storage.exists(key).await);
        expect_invalid("delete", key, storage.delete(key).await);
        expect_invalid("put_stream", key, storage.put_stream(key).await);
        expect_invalid("get_stream", key, storage.get_stream(key).await);
    }
}

#[tokio::test]
async fn every_storage_refuses_long_and_temp_shaped_segments_before_any_io() {
    let memory = MemoryStorage::new();
    refuses_every_name(&memory).await;
    assert!(memory.calls().is_empty(), "refused before anything else");

    let dir = tempfile::tempdir().unwrap();
    let local = LocalFsStorage::new(dir.path().join("root")).unwrap();
    refuses_every_name(&local).await;
    assert!(tree(local.root()).is_empty());

    let shared: Arc<dyn CheckpointStorage> = Arc::new(MemoryStorage::new());
    refuses_every_name(shared.as_ref()).await;
}

#[tokio::test]
async fn every_storage_accepts_a_segment_of_255_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalFsStorage::new(dir.path()).unwrap();
    let memory = MemoryStorage::new();
    let storages: [&dyn CheckpointStorage; 2] = [&memory, &local];
    for storage in storages {
        for key in ["a".repeat(255), format!("{}/b", "\u{e9}".repeat(127))] {
            storage.put(&key, vec![1, 2].into()).await.unwrap();
            assert_eq!(storage.get(&key).await.unwrap(), &[1, 2][..]);
            storage.delete(&key).await.unwrap();
        }
    }
}

fn checkpoint<S: CheckpointStorage>(storage: S) -> DistributedCheckpoint<S, InMemoryCoordinator> {
    DistributedCheckpoint::new(
        storage,
        InMemoryCoordinator::new(1).remove(0),
        RetryPolicy::default(),
        CheckpointOptions::default(),
    )
}

async fn save_is_refused_as_an_invalid_name<S: CheckpointStorage>(storage: S) {
    let ckpt = checkpoint(storage);
    let shard = ShardData::new().with_entry("w", vec![1u8; 8]);
    for name in names_one_storage_used_to_refuse() {
        match ckpt.save(&name, &shard, SaveOptions::new()).await {
            Err(CheckpointError::InvalidName { name: refused, .. }) => assert_eq!(refused, name),
            other => panic!("saving {name:?}: expected InvalidName, got {other:?}"),
        }
    }
    // The longest segment is a name like any other.
    let longest = "n".repeat(255);
    ckpt.save(&longest, &shard, SaveOptions::new())
        .await
        .unwrap();
    assert_eq!(ckpt.list().await.unwrap()[0].name, longest);
}

#[tokio::test]
async fn checkpoint_names_follow_the_storage_rule_on_every_storage() {
    for name in names_one_storage_used_to_refuse() {
        assert!(
            matches!(
                validate_name(&name),
                Err(CheckpointError::InvalidName { .. })
            ),
            "validate_name accepted {name:?}"
        );
    }
    let memory = MemoryStorage::new();
    save_is_refused_as_an_invalid_name(memory.clone()).await;
    assert!(memory
        .keys()
        .iter()
        .all(|k| k.starts_with(&"n".repeat(255))));

    let dir = tempfile::tempdir().unwrap();
    let local = LocalFsStorage::new(dir.path()).unwrap();
    save_is_refused_as_an_invalid_name(local.clone()).await;
    assert_eq!(tree(local.root()).len(), 3, "{:?}", tree(local.root()));
}

#[cfg(unix)]
mod symlinks {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    struct Planted {
        outer: tempfile::TempDir,
        storage: LocalFsStorage,
    }

    impl Planted {
        fn outside(&self) -> PathBuf {
            self.outer.path().join("outside")
        }
    }

    /// A root holding `link` (a symbolic link to a directory outside the
    /// root), `filelink` (a link to a file outside), `real/dirlink` (a link
    /// deeper down) and one real object, `real/obj`.
    async fn planted() -> Planted {
        let outer = tempfile::tempdir().unwrap();
        let outside = outer.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"secret").unwrap();
        let storage = LocalFsStorage::new(outer.path().join("root")).unwrap();
        storage
            .put("real/obj", Bytes::from_static(b"mine"))
            .await
            .unwrap();
        symlink(&outside, storage.root().join("link")).unwrap();
        symlink(outside.join("secret"), storage.root().join("filelink")).unwrap();
        symlink(&outside, storage.root().join("real/dirlink")).unwrap();
        Planted { outer, storage }
    }

    fn expect_refused<T>(what: &str, result: steadfast::storage::Result<T>) {
        let err = match result {
            Err(err) => err,
            Ok(_) => panic!("{what}: followed a symbolic link out of the root"),
        };
        match &err {
            StorageError::Io { source, .. } => assert_eq!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{what}: {err:?}"
            ),
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn writes_through_a_symlink_are_refused() {
        let p = planted().await;
        let before = tree(&p.outside());
        let s = &p.storage;
        for key in [
            "link/planted",
            "link/new/deeper",
            "real/dirlink/planted",
            "filelink",
        ] {
            expect_refused("put", s.put(key, Bytes::from_static(b"escaped")).await);
            expect_refused(
                "put_if_absent",
                s.put_if_absent(key, Bytes::from_static(b"escaped")).await,
            );
            expect_refused("put_stream", s.put_stream(key).await);
        }
        assert_eq!(
            tree(&p.outside()),
            before,
            "nothing written outside the root"
        );
        assert_eq!(fs::read(p.outside().join("secret")).unwrap(), b"secret");
        assert!(
            fs::symlink_metadata(s.root().join("filelink"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link itself was not replaced"
        );
    }

    #[tokio::test]
    async fn reads_through_a_symlink_are_refused() {
        let p = planted().await;
        let s = &p.storage;
        for key in ["link/secret", "real/dirlink/secret", "filelink"] {
            expect_refused("get", s.get(key).await);
            expect_refused("head", s.head(key).await);
            expect_refused("exists", s.exists(key).await);
            expect_refused("get_stream", s.get_stream(key).await);
        }
    }

    #[tokio::test]
    async fn deletes_through_a_symlink_are_refused() {
        let p = planted().await;
        let s = &p.storage;
        for key in ["link/secret", "real/dirlink/secret", "filelink"] {
            expect_refused("delete", s.delete(key).await);
        }
        assert_eq!(fs::read(p.outside().join("secret")).unwrap(), b"secret");
        assert!(s.root().join("filelink").symlink_metadata().is_ok());
    }

    #[tokio::test]
    async fn list_does_not_follow_symlinks() {
        let p = planted().await;
        let s = &p.storage;
        let keys: Vec<String> = s
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(keys, ["real/obj"]);
        let keys: Vec<String> = s
            .list("real/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(keys, ["real/obj"]);
        expect_refused("list", s.list("link/").await);
        expect_refused("list", s.list("real/dirlink/").await);
        // A prefix that ends inside the link's name does not enter it either.
        assert!(s.list("lin").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn cleanup_does_not_follow_symlinks() {
        let p = planted().await;
        let foreign_temp = p.outside().join(".secret.tmp-1-0000000000000001");
        fs::write(&foreign_temp, b"not ours").unwrap();
        let report = p.storage.cleanup_temp_files(Duration::ZERO).await.unwrap();
        assert!(report.removed.is_empty(), "{report:?}");
        assert!(foreign_temp.exists());
    }

    #[tokio::test]
    async fn a_symlinked_root_is_resolved_once() {
        let outer = tempfile::tempdir().unwrap();
        fs::create_dir(outer.path().join("real-root")).unwrap();
        symlink(
            outer.path().join("real-root"),
            outer.path().join("root-link"),
        )
        .unwrap();
        let storage = LocalFsStorage::new(outer.path().join("root-link")).unwrap();
        assert_eq!(
            storage.root(),
            outer.path().canonicalize().unwrap().join("real-root")
        );
        storage.put("a", vec![1].into()).await.unwrap();
        assert_eq!(fs::read(outer.path().join("real-root/a")).unwrap(), [1]);
    }
}
