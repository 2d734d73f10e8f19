//! Damaged checkpoints on a real file system: flipped bytes, truncated and
//! missing shards, empty, truncated and oversized manifests, manifests whose
//! shard keys escape the checkpoint or whose sizes and digests lie. Each
//! load fails with a clear error naming the damaged object; none returns
//! wrong bytes, none panics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use steadfast::checkpoint::{
    manifest_key, CheckpointError, CheckpointOptions, DistributedCheckpoint, LoadOptions, Manifest,
    SaveOptions, ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::retry::RetryPolicy;
use steadfast::storage::LocalFsStorage;

const NAME: &str = "run/step-7";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ckpt: DistributedCheckpoint<LocalFsStorage, InMemoryCoordinator>,
    manifest: Manifest,
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(1)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(1))
        .build()
        .unwrap()
}

fn shard() -> ShardData {
    ShardData::new()
        .with_entry(
            "embedding",
            (0..3000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        )
        .with_entry("head", vec![0xAB; 1000])
        .with_entry("step", b"7".to_vec())
}

fn shard_bytes() -> Vec<u8> {
    shard()
        .entries()
        .iter()
        .flat_map(|(_, d)| d.clone())
        .collect()
}

/// A committed one-rank checkpoint `NAME` and another one, `other`, on a
/// fresh directory.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let storage = LocalFsStorage::new(&root).unwrap();
    let rank = InMemoryCoordinator::new(1).remove(0);
    let options = CheckpointOptions::builder()
        .chunk_size(512)
        .build()
        .unwrap();
    let ckpt = DistributedCheckpoint::new(storage, rank, policy(), options);
    ckpt.save(NAME, &shard(), SaveOptions::new().step(7))
        .await
        .unwrap();
    ckpt.save(
        "other",
        &ShardData::new().with_entry("x", vec![1; 100]),
        SaveOptions::new(),
    )
    .await
    .unwrap();
    let manifest = ckpt.manifest(NAME).await.unwrap();
    assert_eq!(
        ckpt.load(NAME, LoadOptions::default()).await.unwrap(),
        shard_bytes()
    );
    Fixture {
        _dir: dir,
        root,
        ckpt,
        manifest,
    }
}

impl Fixture {
    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn shard_key(&self) -> String {
        self.manifest.shards[0].key.clone()
    }

    fn manifest_path(&self) -> PathBuf {
        self.path(&manifest_key(NAME))
    }

    fn rewrite_manifest(&self, change: impl FnOnce(&mut Manifest)) {
        let mut manifest = self.manifest.clone();
        change(&mut manifest);
        // A self-consistent manifest: its checksum matches its content.
        std::fs::write(self.manifest_path(), manifest.to_bytes().unwrap()).unwrap();
    }

    /// Every way of reading the checkpoint fails, and the error names `key`.
    async fn assert_refused(&self, key: &str) -> CheckpointError {
        self.assert_refused_but(key, &[]).await
    }

    /// Every way of reading the checkpoint fails, and the error names `key`,
    /// except that the entries in `intact` (whose own bytes are undamaged,
    /// in a checkpoint whose entries carry digests) are read and verified
    /// alone: they load, with exactly their bytes.
    async fn assert_refused_but(&self, key: &str, intact: &[&str]) -> CheckpointError {
        let load = self.ckpt.load(NAME, LoadOptions::default()).await;
        let entry = self.ckpt.load_entry(NAME, "head").await;
        let entries = self.ckpt.load_entries(NAME, |_| true).await;
        let verify = self.ckpt.verify(NAME).await;
        let listed = self.ckpt.list().await.unwrap();
        let expected: std::collections::BTreeMap<String, Vec<u8>> =
            shard().entries().iter().cloned().collect();
        let entry = if intact.contains(&"head") {
            assert_eq!(
                entry.unwrap(),
                expected["head"],
                "an intact entry loads whole"
            );
            None
        } else {
            Some(entry.err())
        };
        let entries = if ["embedding", "head", "step"]
            .iter()
            .all(|e| intact.contains(e))
        {
            assert_eq!(entries.unwrap(), expected, "intact entries load whole");
            None
        } else {
            Some(entries.err())
        };
        let refused = [
            Some(("load", load.err())),
            entry.map(|e| ("load_entry", e)),
            entries.map(|e| ("load_entries", e)),
            Some(("verify", verify.err())),
        ];
        for (what, err) in refused.into_iter().flatten() {
            let err =
                err.unwrap_or_else(|| panic!("{what} returned bytes from a damaged checkpoint"));
            // Keys are quoted (`Debug`) in messages.
            let quoted = format!("{key:?}");
            assert!(
                err.to_string().contains(&quoted),
                "{what}: {err} does not name {quoted}"
            );
        }
        let err = self
            .ckpt
            .load(NAME, LoadOptions::default())
            .await
            .unwrap_err();
        // The other checkpoint is untouched and still loads.
        assert_eq!(
            self.ckpt.load_entry("other", "x").await.unwrap(),
            vec![1; 100]
        );
        if matches!(err, CheckpointError::Corrupted { ref shard, .. } if *shard == self.shard_key())
        {
            // A damaged shard does not hide the checkpoint from the list:
            // its manifest is fine; loading is what refuses it.
            assert!(listed.iter().any(|i| i.name == NAME));
        } else {
            assert!(
                listed.iter().all(|i| i.name != NAME),
                "a damaged manifest is not listed"
            );
        }
        err
    }
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0xFF;
    std::fs::write(path, bytes).unwrap();
}

fn expect_corrupted(err: &CheckpointError, key: &str) -> (String, String) {
    match err {
        CheckpointError::Corrupted {
            name,
            shard,
            expected,
            actual,
        } => {
            assert_eq!(name, NAME);
            assert_eq!(shard, key);
            (expected.clone(), actual.clone())
        }
        other => panic!("expected Corrupted naming {key:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_flipped_byte_anywhere_in_a_shard_is_caught() {
    let size = shard_bytes().len();
    // Entries without digests (format version 2): any damage to the shard
    // refuses every entry. With digests (version 3), each entry is
    // verified alone: the undamaged ones load.
    for (with_digests, at, intact) in [
        (false, 0, &[][..]),
        (false, size / 2, &[]),
        (false, size - 1, &[]),
        (true, 0, &["head", "step"][..]),
        (true, 3500, &["embedding", "step"]),
        (true, size - 1, &["embedding", "head"]),
    ] {
        let f = fixture().await;
        if !with_digests {
            f.rewrite_manifest(|m| m.entries.values_mut().for_each(|at| at.sha256 = None));
        }
        let key = f.shard_key();
        flip(&f.path(&key), at);
        let err = f.assert_refused_but(&key, intact).await;
        let (expected, actual) = expect_corrupted(&err, &key);
        assert_eq!(expected, format!("sha256 {}", f.manifest.shards[0].sha256));
        assert!(
            actual.starts_with("sha256 ") && actual != expected,
            "{actual}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_shard_of_several_mib_is_caught() {
    // A shard this large is written with background flushes (every 256 KiB
    // here) and hashed on the blocking pool when loaded.
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalFsStorage::new(dir.path())
        .unwrap()
        .with_background_sync(Some(256 * 1024));
    let rank = InMemoryCoordinator::new(1).remove(0);
    let ckpt = DistributedCheckpoint::new(storage, rank, policy(), CheckpointOptions::default());
    let bytes: Vec<u8> = (0..3 * 1024 * 1024 + 17u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    ckpt.save(
        NAME,
        &ShardData::new().with_entry("big", bytes.clone()),
        SaveOptions::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        ckpt.load(NAME, LoadOptions::default()).await.unwrap(),
        bytes
    );
    let manifest = ckpt.manifest(NAME).await.unwrap();
    let key = manifest.shards[0].key.clone();
    flip(&dir.path().join(&key), bytes.len() / 3);
    for err in [
        ckpt.load(NAME, LoadOptions::default()).await.unwrap_err(),
        ckpt.load_entry(NAME, "big").await.unwrap_err(),
        ckpt.verify(NAME).await.unwrap_err(),
    ] {
        let (expected, actual) = expect_corrupted(&err, &key);
        assert_eq!(expected, format!("sha256 {}", manifest.shards[0].sha256));
        assert!(
            actual.starts_with("sha256 ") && actual != expected,
            "{actual}"
        );
    }
}

#[tokio::test]
async fn a_truncated_or_missing_shard_is_caught() {
    let f = fixture().await;
    let key = f.shard_key();
    let bytes = std::fs::read(f.path(&key)).unwrap();
    std::fs::write(f.path(&key), &bytes[..bytes.len() - 100]).unwrap();
    let err = f.assert_refused(&key).await;
    let (expected, actual) = expect_corrupted(&err, &key);
    assert_eq!(expected, format!("{} bytes", bytes.len()));
    assert_eq!(actual, format!("{} bytes", bytes.len() - 100));

    // Grown by a byte.
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(f.path(&key), &longer).unwrap();
    let err = f.assert_refused(&key).await;
    expect_corrupted(&err, &key);

    std::fs::remove_file(f.path(&key)).unwrap();
    let err = f.assert_refused(&key).await;
    let (_, actual) = expect_corrupted(&err, &key);
    assert_eq!(actual, "no object");
}

#[tokio::test]
async fn a_flipped_byte_anywhere_in_the_manifest_is_caught() {
    let key = manifest_key(NAME);
    let len = std::fs::read(fixture().await.manifest_path())
        .unwrap()
        .len();
    for at in [0, len / 3, len / 2, 2 * len / 3, len - 1] {
        let f = fixture().await;
        flip(&f.manifest_path(), at);
        let err = f.assert_refused(&key).await;
        assert!(
            matches!(
                err,
                CheckpointError::Corrupted { .. } | CheckpointError::ValidationFailed { .. }
            ),
            "byte {at}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_changed_digit_in_the_manifest_breaks_its_checksum() {
    let f = fixture().await;
    let key = manifest_key(NAME);
    let text = std::fs::read_to_string(f.manifest_path()).unwrap();
    // Move the "head" entry by one byte: valid JSON, a valid layout, but
    // not what was written.
    let offset = f.manifest.entries["head"].offset;
    let from = format!("\"offset\": {offset}");
    assert!(text.contains(&from), "{text}");
    let tampered = text.replacen(&from, &format!("\"offset\": {}", offset + 1), 1);
    std::fs::write(f.manifest_path(), tampered).unwrap();
    let err = f.assert_refused(&key).await;
    let (expected, _) = expect_corrupted(&err, &key);
    assert!(expected.contains("checksum"), "{expected}");
}

#[tokio::test]
async fn empty_and_truncated_manifests_are_caught() {
    let key = manifest_key(NAME);
    let f = fixture().await;
    std::fs::write(f.manifest_path(), b"").unwrap();
    let err = f.assert_refused(&key).await;
    expect_corrupted(&err, &key);

    let f = fixture().await;
    let bytes = std::fs::read(f.manifest_path()).unwrap();
    for keep in [1, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(f.manifest_path(), &bytes[..keep]).unwrap();
        let err = f.assert_refused(&key).await;
        expect_corrupted(&err, &key);
    }
}

#[tokio::test]
async fn an_oversized_manifest_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalFsStorage::new(dir.path()).unwrap();
    let rank = InMemoryCoordinator::new(1).remove(0);
    let options = CheckpointOptions::builder()
        .max_manifest_size(1024)
        .build()
        .unwrap();
    let ckpt = DistributedCheckpoint::new(storage, rank, policy(), options);
    let mut big = ShardData::new();
    for i in 0..100 {
        big.push(format!("entry-with-a-long-name-{i:04}"), vec![i as u8]);
    }
    // The save writes the manifest; reading it back is refused.
    ckpt.save("big", &big, SaveOptions::new()).await.unwrap();
    let err = ckpt.load("big", LoadOptions::default()).await.unwrap_err();
    let key = manifest_key("big");
    match err {
        CheckpointError::Corrupted {
            shard, expected, ..
        } => {
            assert_eq!(shard, key);
            assert_eq!(expected, "at most 1024 bytes");
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[tokio::test]
async fn shard_keys_that_escape_the_checkpoint_are_refused() {
    let other_shard = {
        let f = fixture().await;
        f.ckpt.manifest("other").await.unwrap().shards[0].clone()
    };
    for escape in [
        "../other/x".to_string(),
        "run/../other/x".to_string(),
        other_shard.key.clone(),
        "run/step-70/shard-00000-of-00001-0000000000000000.bin".to_string(),
        "run/step-7/nested/shard.bin".to_string(),
        "/etc/passwd".to_string(),
        "run/step-7/metadata.json".to_string(),
        "run\\step-7\\x".to_string(),
    ] {
        let f = fixture().await;
        f.rewrite_manifest(|m| {
            // Everything else matches the other checkpoint's real shard, so
            // only the key can give it away.
            m.shards[0].key = escape.clone();
            m.shards[0].size = other_shard.size;
            m.shards[0].sha256 = other_shard.sha256.clone();
            m.entries
                .retain(|_, at| at.offset + at.length <= other_shard.size);
        });
        let err = f.assert_refused(&escape).await;
        assert!(
            matches!(&err, CheckpointError::ValidationFailed { reason, .. } if reason.contains(&format!("{escape:?}"))),
            "{escape:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_shard_size_that_lies_is_caught() {
    let f = fixture().await;
    let key = f.shard_key();
    let real = f.manifest.shards[0].size;
    f.rewrite_manifest(|m| m.shards[0].size = real + 10);
    let err = f.assert_refused(&key).await;
    let (expected, actual) = expect_corrupted(&err, &key);
    assert_eq!(expected, format!("{} bytes", real + 10));
    assert_eq!(actual, format!("{real} bytes"));

    // Smaller than the shard, and than the last entry: the layout is
    // impossible.
    let f = fixture().await;
    let key = f.shard_key();
    f.rewrite_manifest(|m| m.shards[0].size = real - 1);
    let err = f.assert_refused(&key).await;
    assert!(
        matches!(err, CheckpointError::ValidationFailed { .. }),
        "{err:?}"
    );

    // Smaller, with the index shrunk to fit: the stored size gives it away.
    let f = fixture().await;
    let key = f.shard_key();
    f.rewrite_manifest(|m| {
        m.shards[0].size = real - 1;
        m.entries.remove("step");
    });
    let err = f.assert_refused(&key).await;
    let (expected, actual) = expect_corrupted(&err, &key);
    assert_eq!(expected, format!("{} bytes", real - 1));
    assert_eq!(actual, format!("{real} bytes"));
}

#[tokio::test]
async fn a_digest_that_lies_is_caught() {
    let f = fixture().await;
    let key = f.shard_key();
    f.rewrite_manifest(|m| {
        m.shards[0].sha256 = steadfast::checkpoint::sha256_hex(b"something else");
        m.entries.values_mut().for_each(|at| at.sha256 = None);
    });
    let err = f.assert_refused(&key).await;
    expect_corrupted(&err, &key);

    // With entry digests, each entry is checked against its own: the
    // shard's digest is checked by a whole load and by `verify`.
    let f = fixture().await;
    let key = f.shard_key();
    f.rewrite_manifest(|m| {
        m.shards[0].sha256 = steadfast::checkpoint::sha256_hex(b"something else")
    });
    let err = f
        .assert_refused_but(&key, &["embedding", "head", "step"])
        .await;
    expect_corrupted(&err, &key);

    // An entry digest that lies refuses that entry alone.
    let f = fixture().await;
    let key = f.shard_key();
    f.rewrite_manifest(|m| {
        m.entries.get_mut("head").unwrap().sha256 =
            Some(steadfast::checkpoint::sha256_hex(b"something else"))
    });
    let (expected, actual) =
        expect_corrupted(&f.ckpt.load_entry(NAME, "head").await.unwrap_err(), &key);
    assert_eq!(
        expected,
        format!(
            "sha256 {}",
            steadfast::checkpoint::sha256_hex(b"something else")
        )
    );
    assert_eq!(
        actual,
        format!(
            "sha256 {}",
            steadfast::checkpoint::sha256_hex(&[0xAB; 1000])
        )
    );
    assert!(f.ckpt.load_entries(NAME, |_| true).await.is_err());
    assert_eq!(f.ckpt.load_entry(NAME, "step").await.unwrap(), b"7");
}

mod manifest_bytes {
    //! Whatever bytes a manifest holds, reading it never panics, and what it
    //! accepts describes a checkpoint that stays inside its prefix.

    use proptest::prelude::*;
    use steadfast::checkpoint::{sha256_hex, EntryLocation, Manifest, ShardInfo};

    const NAME: &str = "run/step-7";

    /// A valid two-rank manifest, as stored.
    fn valid_bytes() -> Vec<u8> {
        let mut m = Manifest::new(NAME, 2);
        m.step = Some(7);
        for rank in 0..2 {
            m.shards.push(ShardInfo::new(
                rank,
                format!("{NAME}/shard-{rank:05}-of-00002-00000000000000aa.bin"),
                16,
                sha256_hex(&[rank as u8; 16]),
            ));
        }
        m.entries.insert("w".into(), EntryLocation::new(1, 4, 12));
        m.metadata.insert("k".into(), "v".into());
        m.to_bytes().unwrap()
    }

    /// Checks what an accepted manifest promises, and that every accessor
    /// works on it.
    fn check_accepted(m: &Manifest) {
        assert_eq!(m.name, NAME);
        assert!(m.world_size >= 1);
        assert_eq!(m.shards.len(), m.world_size);
        let mut ranks: Vec<usize> = m.shards.iter().map(|s| s.rank).collect();
        ranks.sort_unstable();
        assert_eq!(ranks, (0..m.world_size).collect::<Vec<_>>());
        for shard in &m.shards {
            let file = shard
                .key
                .strip_prefix(&format!("{NAME}/"))
                .expect("a shard key inside the prefix");
            assert!(!file.is_empty() && !file.contains('/') && file != "metadata.json");
            assert!(file != "." && file != ".." && !file.contains('\\') && !file.contains('\0'));
            assert_eq!(shard.sha256.len(), 64);
        }
        for at in m.entries.values() {
            let shard = m.shard(at.rank).expect("an entry's shard is listed");
            assert!(at.end().is_some_and(|end| end <= shard.size));
        }
        let _ = (m.info(), m.total_size(), m.created_at_time());
        m.validate(NAME).unwrap();
    }

    fn read(bytes: &[u8]) {
        if let Ok(m) = Manifest::from_bytes(NAME, bytes) {
            check_accepted(&m);
        }
    }

    /// A byte-level edit of a stored manifest.
    #[derive(Debug, Clone)]
    enum Edit {
        Flip { at: usize, mask: u8 },
        Insert { at: usize, byte: u8 },
        Remove { at: usize },
        Truncate { at: usize },
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Edit::Flip { at, mask }),
            (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
            any::<usize>().prop_map(|at| Edit::Remove { at }),
            any::<usize>().prop_map(|at| Edit::Truncate { at }),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
        if bytes.is_empty() {
            return;
        }
        let len = bytes.len();
        match *edit {
            Edit::Flip { at, mask } => bytes[at % len] ^= mask,
            Edit::Insert { at, byte } => bytes.insert(at % (len + 1), byte),
            Edit::Remove { at } => {
                bytes.remove(at % len);
            }
            Edit::Truncate { at } => bytes.truncate(at % len),
        }
    }

    /// Values chosen to hit the edges: keys that escape, sizes and offsets
    /// that overflow, ranks out of range.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(format!("{NAME}/shard-a.bin")),
            Just(format!("{NAME}/shard-b.bin")),
            Just(format!("{NAME}/metadata.json")),
            Just(format!("{NAME}/../escape.bin")),
            Just(format!("{NAME}/sub/shard.bin")),
            Just(format!("{NAME}/")),
            Just(format!("{NAME}//x")),
            Just("run/step-70/shard.bin".to_string()),
            Just("run/step-8/shard-a.bin".to_string()),
            Just("/etc/passwd".to_string()),
            Just("..".to_string()),
            Just(format!("{NAME}/a\\b")),
            Just(format!("{NAME}/a\0b")),
            "[a-z./\\\\]{0,12}".prop_map(|k| format!("{NAME}/{k}")),
        ]
    }

    fn number() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..64u64,
            Just(u64::MAX),
            Just(u64::MAX - 1),
            Just(1 << 63),
            any::<u64>(),
        ]
    }

    fn small_or_huge() -> impl Strategy<Value = usize> {
        prop_oneof![0..4usize, Just(usize::MAX), any::<usize>()]
    }

    prop_compose! {
        fn shard()(
            rank in small_or_huge(),
            key in key(),
            size in number(),
            digest in prop_oneof![
                Just(sha256_hex(b"x")),
                Just(sha256_hex(b"x").to_uppercase()),
                "[0-9a-g]{0,70}",
            ],
        ) -> ShardInfo {
            ShardInfo::new(rank, key, size, digest)
        }
    }

    prop_compose! {
        fn manifest()(
            name in prop_oneof![Just(NAME.to_string()), Just("run/step-8".to_string()), Just(String::new())],
            version in prop_oneof![Just(1u32), Just(0u32), Just(2u32), any::<u32>()],
            world_size in small_or_huge(),
            created_at in number(),
            sequence in prop::option::of(number()),
            shards in prop::collection::vec(shard(), 0..4),
            entries in prop::collection::btree_map(
                "[a-z]{0,3}",
                (small_or_huge(), number(), number()),
                0..4,
            ),
        ) -> Manifest {
            let mut m = Manifest::new(name, world_size);
            m.format_version = version;
            m.created_at = created_at;
            m.sequence = sequence;
            m.shards = shards;
            m.entries = entries
                .into_iter()
                .map(|(k, (rank, offset, length))| (k, EntryLocation::new(rank, offset, length)))
                .collect();
            m
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            read(&bytes);
        }

        #[test]
        fn edited_manifests_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
            let mut bytes = valid_bytes();
            for e in &edits {
                apply(&mut bytes, e);
            }
            read(&bytes);
        }

        #[test]
        fn checksummed_manifests_of_any_content_are_checked(m in manifest()) {
            // A correct checksum does not make a manifest trusted: every
            // field is checked, and nothing panics.
            if let Ok(bytes) = m.to_bytes() {
                read(&bytes);
            }
            let _ = m.validate(NAME);
            let _ = (m.info(), m.total_size(), m.created_at_time());
        }

        #[test]
        fn json_with_edited_values_never_panics(
            field in prop::sample::select(vec![
                "format_version", "world_size", "created_at", "rank", "size", "offset", "length", "step",
            ]),
            value in prop_oneof![
                Just("18446744073709551615".to_string()),
                Just("18446744073709551616".to_string()),
                Just("-1".to_string()),
                Just("1e308".to_string()),
                Just("null".to_string()),
                Just("\"1\"".to_string()),
                Just("[]".to_string()),
                (0..1000u64).prop_map(|n| n.to_string()),
            ],
        ) {
            let text = String::from_utf8(valid_bytes()).unwrap();
            let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let value: serde_json::Value = serde_json::from_str(&value).unwrap_or(serde_json::Value::Null);
            set_everywhere(&mut json, field, &value);
            // With the checksum recomputed by hand too, so that the values
            // reach the structural checks.
            let bytes = serde_json::to_vec(&json).unwrap();
            read(&bytes);
            if let Ok(mut m) = serde_json::from_value::<Manifest>(json) {
                m.checksum = m.compute_checksum();
                read(&serde_json::to_vec(&m).unwrap());
            }
        }
    }

    fn set_everywhere(json: &mut serde_json::Value, field: &str, value: &serde_json::Value) {
        match json {
            serde_json::Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if k == field {
                        *v = value.clone();
                    } else {
                        set_everywhere(v, field, value);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for v in items {
                    set_everywhere(v, field, value);
                }
            }
            _ => {}
        }
    }
}
