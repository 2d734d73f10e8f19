//! Tests of the manifest: encoding, checksums, versions, validation.

use super::*;

fn two_rank_manifest() -> Manifest {
    let mut m = Manifest::new("run/step-1", 2);
    m.step = Some(1);
    for rank in 0..2 {
        m.shards.push(ShardInfo::new(
            rank,
            shard_key("run/step-1", rank, 2, 7),
            10,
            sha256_hex(&[rank as u8; 10]),
        ));
    }
    m.entries.insert("w".into(), EntryLocation::new(1, 2, 8));
    m.metadata.insert("model".into(), "tiny".into());
    m
}

#[test]
fn round_trips_with_checksum() {
    let m = two_rank_manifest();
    let bytes = m.to_bytes().unwrap();
    let read = Manifest::from_bytes("run/step-1", &bytes).unwrap();
    assert_eq!(read.checksum, m.compute_checksum());
    let mut without = read.clone();
    without.checksum.clear();
    assert_eq!(without, m);
}

#[test]
fn a_changed_value_breaks_the_checksum() {
    let bytes = two_rank_manifest().to_bytes().unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let tampered = text.replacen("\"offset\": 2", "\"offset\": 1", 1);
    assert_ne!(tampered, text);
    let err = Manifest::from_bytes("run/step-1", tampered.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Corrupted { shard, .. } if shard == "run/step-1/metadata.json"),
        "{err}"
    );
}

#[test]
fn versions() {
    let err = Manifest::from_bytes("c", br#"{"format_version": 6, "anything": []}"#).unwrap_err();
    assert!(matches!(
        err,
        CheckpointError::IncompatibleVersion {
            found: 6,
            supported: FORMAT_VERSION,
            ..
        }
    ));
    assert_eq!(FORMAT_VERSION, 5);
    let mut m = two_rank_manifest();
    m.format_version = 0;
    assert!(matches!(
        m.validate("run/step-1"),
        Err(CheckpointError::ValidationFailed { .. })
    ));
}

#[test]
fn a_commit_stamp_is_written_only_when_there_is_one() {
    let mut m = two_rank_manifest();
    let bytes = m.to_bytes().unwrap();
    assert!(!String::from_utf8(bytes).unwrap().contains("commit"));
    m.commit = Some(CommitStamp {
        epoch: 7,
        leader: "host-a".into(),
        term: 19,
    });
    let read = Manifest::from_bytes("run/step-1", &m.to_bytes().unwrap()).unwrap();
    assert_eq!(read.commit, m.commit);
    // A version 4 manifest that claims a stamp is not one.
    m.format_version = 4;
    let err = Manifest::from_bytes("run/step-1", &m.to_bytes().unwrap()).unwrap_err();
    assert!(err.to_string().contains("commit stamp"), "{err}");
}

#[test]
fn a_version_1_manifest_keeps_its_checksum_and_has_no_sequence() {
    let mut m = two_rank_manifest();
    m.format_version = 1;
    let bytes = m.to_bytes().unwrap();
    assert!(!String::from_utf8(bytes.clone())
        .unwrap()
        .contains("sequence"));
    let read = Manifest::from_bytes("run/step-1", &bytes).unwrap();
    assert_eq!((read.format_version, read.sequence), (1, None));
    // A version 1 manifest that claims a sequence is not one.
    m.sequence = Some(4);
    let bytes = m.to_bytes().unwrap();
    assert!(matches!(
        Manifest::from_bytes("run/step-1", &bytes),
        Err(CheckpointError::ValidationFailed { .. })
    ));
    m.format_version = 2;
    let read = Manifest::from_bytes("run/step-1", &m.to_bytes().unwrap()).unwrap();
    assert_eq!(read.info().sequence, Some(4));
}

fn compressed(m: &mut Manifest) {
    use super::super::frames::{FrameInfo, ShardCompression};
    let mut layout = ShardCompression::zstd(8);
    layout.push(FrameInfo::new(6, sha256_hex(b"a"), 8));
    layout.push(FrameInfo::new(4, sha256_hex(b"b"), 4));
    m.shards[1].compression = Some(layout);
    m.entries.get_mut("w").unwrap().length = 10;
    m.entries.get_mut("w").unwrap().sha256 = Some(sha256_hex(b"w"));
}

#[test]
fn version_3_records_frames_and_entry_digests() {
    let mut m = two_rank_manifest();
    compressed(&mut m);
    let read = Manifest::from_bytes("run/step-1", &m.to_bytes().unwrap()).unwrap();
    assert_eq!(read.shards[1].uncompressed_size(), 12);
    assert_eq!(read.shards[1].compression, m.shards[1].compression);
    assert_eq!(read.entries["w"].sha256, m.entries["w"].sha256);
    // A raw shard and an entry without a digest write no new field, so
    // that a version 2 manifest keeps its checksum.
    let text = String::from_utf8(two_rank_manifest().to_bytes().unwrap()).unwrap();
    assert!(!text.contains("compression") && !text.contains("\"sha256\": null"));
}

#[test]
fn a_version_2_manifest_with_version_3_fields_is_refused() {
    let mut m = two_rank_manifest();
    m.format_version = 2;
    compressed(&mut m);
    let reason = |m: &Manifest| match Manifest::from_bytes("run/step-1", &m.to_bytes().unwrap()) {
        Err(CheckpointError::ValidationFailed { reason, .. }) => reason,
        other => panic!("expected a validation failure, got {other:?}"),
    };
    assert!(reason(&m).contains("compressed"), "{}", reason(&m));
    m.shards[1].compression = None;
    m.entries.get_mut("w").unwrap().length = 8;
    assert!(reason(&m).contains("entry digests"), "{}", reason(&m));
}

#[test]
fn an_unknown_codec_is_refused_by_name() {
    let mut m = two_rank_manifest();
    compressed(&mut m);
    if let Some(layout) = m.shards[1].compression.as_mut() {
        layout.codec = "brotli".into();
    }
    match Manifest::from_bytes("run/step-1", &m.to_bytes().unwrap()) {
        Err(CheckpointError::ValidationFailed { reason, .. }) => {
            assert!(reason.contains("\"brotli\""), "{reason}")
        }
        other => panic!("expected a validation failure, got {other:?}"),
    }
}

#[test]
fn structural_checks() {
    let check = |f: &dyn Fn(&mut Manifest)| {
        let mut m = two_rank_manifest();
        f(&mut m);
        let bytes = m.to_bytes().unwrap();
        match Manifest::from_bytes("run/step-1", &bytes) {
            Err(CheckpointError::ValidationFailed { reason, .. }) => reason,
            other => panic!("expected a validation failure, got {other:?}"),
        }
    };
    check(&|m| m.name = "other".into());
    check(&|m| m.world_size = 0);
    check(&|m| m.world_size = 3);
    check(&|m| m.shards[1].rank = 0);
    check(&|m| m.shards[1].rank = 5);
    check(&|m| m.shards[1].key = "run/other/x.bin".into());
    check(&|m| m.shards[1].key = "run/step-1/../x".into());
    check(&|m| m.shards[1].key = "/abs/x".into());
    check(&|m| m.shards[1].key = "run/step-2/shard.bin".into());
    check(&|m| m.shards[1].key = "run/step-1/metadata.json".into());
    check(&|m| m.shards[1].key = m.shards[0].key.clone());
    check(&|m| m.shards[1].sha256 = "ABC".into());
    check(&|m| m.shards[1].sha256 = m.shards[1].sha256.to_uppercase());
    check(&|m| m.entries.get_mut("w").unwrap().length = 9);
    check(&|m| m.entries.get_mut("w").unwrap().offset = u64::MAX);
    check(&|m| m.entries.get_mut("w").unwrap().rank = 2);
    check(&|m| m.entries.get_mut("w").unwrap().sha256 = Some("ABC".into()));
    // Entries end at the uncompressed end of a compressed shard.
    check(&|m| {
        compressed(m);
        m.entries.get_mut("w").unwrap().length = 11;
    });
    check(&|m| {
        compressed(m);
        m.shards[1].size = 11;
    });
    let reason = check(&|m| {
        m.entries.insert(String::new(), EntryLocation::new(0, 0, 0));
    });
    assert!(reason.contains("empty name"));
}

#[test]
fn garbage_is_corrupted_not_a_panic() {
    for bytes in [
        &b""[..],
        b"{",
        b"null",
        b"[]",
        b"{\"format_version\": \"1\"}",
        b"{\"format_version\": 1}",
        b"\xff\xfe",
    ] {
        let err = Manifest::from_bytes("c", bytes).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupted { .. }), "{err}");
    }
}

#[test]
fn names() {
    assert!(validate_name("a").is_ok());
    assert!(validate_name("a/b").is_ok());
    for bad in [
        "",
        "a/",
        "/a",
        "a/../b",
        "metadata.json",
        "x/metadata.json",
        "chunks",
        "chunks/a",
    ] {
        assert!(validate_name(bad).is_err(), "{bad:?}");
    }
    assert!(is_shard_file_name(
        "shard-00000-of-00001-0000000000000001.bin"
    ));
    assert!(!is_shard_file_name("metadata.json"));
    assert_eq!(to_hex(&[0x00, 0xab, 0x7f]), "00ab7f");
}
