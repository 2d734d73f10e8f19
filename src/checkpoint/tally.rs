//! The tally of a save: every rank gathers the same reports of what each
//! rank wrote (or why it failed), and decides from them alone, with no I/O,
//! whether the checkpoint can be committed and whom to blame if not. Being a
//! pure function of the same reports, the decision is the same on every
//! rank.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::chunks::ShardChunks;
use super::frames::ShardCompression;
use super::manifest::{EntryLocation, Manifest, ShardInfo};
use super::options::SaveOptions;

/// What a rank tells the others after its write.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum RankReport {
    Written {
        name: String,
        key: String,
        size: u64,
        sha256: String,
        /// The codec and frames of a compressed shard.
        #[serde(default)]
        compression: Option<ShardCompression>,
        entries: Vec<WrittenEntry>,
        /// The summary of a chunked shard's index (absent from the reports
        /// of builds without chunks, which read as not chunked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chunks: Option<ShardChunks>,
    },
    Failed {
        name: String,
        kind: FailureKind,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum FailureKind {
    /// A committed checkpoint of that name exists.
    AlreadyExists,
    /// Anything else.
    Failed,
}

/// A rank's own shard, written.
#[derive(Debug)]
pub(super) struct Written {
    /// The shard's storage key.
    pub(super) key: String,
    /// Its size in bytes.
    pub(super) size: u64,
    /// Its SHA-256, lowercase hex.
    pub(super) sha256: String,
    /// The codec and frames of a compressed shard.
    pub(super) compression: Option<ShardCompression>,
    /// Its entries.
    pub(super) entries: Vec<WrittenEntry>,
    /// The summary of a chunked shard's index.
    pub(super) chunks: Option<ShardChunks>,
}

/// One entry of a rank's shard, as written: where it is in the shard's
/// uncompressed bytes, and the digest of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct WrittenEntry {
    pub(super) name: String,
    pub(super) offset: u64,
    pub(super) length: u64,
    pub(super) sha256: Option<String>,
}

/// What the gathered rank reports decide; every rank tallies the same
/// reports, so every rank reaches the same decision.
#[derive(Debug)]
pub(super) enum Tally {
    /// Every rank wrote its shard: the manifest rank 0 commits.
    Commit(Manifest),
    /// A rank found a committed checkpoint of that name: each rank deletes
    /// its own shard, and the prefix (someone else's checkpoint) is left
    /// alone.
    AlreadyExists,
    /// The save failed; these ranks are to blame.
    Failed {
        failed_ranks: Vec<usize>,
        reason: String,
        /// Whether a rank's own report of failure is the reason (a rank that
        /// failed then carries its own cause); `false` when the reports
        /// themselves cannot be assembled into a manifest.
        reported: bool,
    },
}

/// Decides from the reports gathered from every rank (indexed by rank)
/// whether checkpoint `name` can be committed, and whom to blame if not.
///
/// Failures come first: a report missing or extra (a faulty coordinator), a
/// report of another save, an unreadable report, or a rank's own failure.
/// If any rank found the name committed, the decision is
/// [`Tally::AlreadyExists`]; otherwise every failed rank is named. With no
/// failure, the reports are assembled into the manifest, which blames the
/// ranks whose reports conflict (an entry saved twice, an entry outside its
/// shard).
pub(super) fn tally(
    name: &str,
    world_size: usize,
    gathered: &[Vec<u8>],
    options: &SaveOptions,
) -> Tally {
    let mut failures: Vec<(usize, FailureKind, String)> = Vec::new();
    let mut written: Vec<(usize, Written)> = Vec::new();
    // A faulty coordinator may return too few or too many reports: blame
    // the ranks whose reports are missing or extra, the same on every rank.
    for missing in gathered.len()..world_size {
        failures.push((
            missing,
            FailureKind::Failed,
            format!(
                "no report (the coordinator returned {} reports for {world_size} ranks)",
                gathered.len()
            ),
        ));
    }
    for (from, bytes) in gathered.iter().enumerate() {
        if from >= world_size {
            failures.push((
                from,
                FailureKind::Failed,
                format!("a report from outside a world of {world_size} ranks"),
            ));
            continue;
        }
        match serde_json::from_slice::<RankReport>(bytes) {
            Ok(RankReport::Written { name: theirs, .. })
            | Ok(RankReport::Failed { name: theirs, .. })
                if theirs != name =>
            {
                failures.push((
                    from,
                    FailureKind::Failed,
                    format!("saving {theirs:?}, not {name:?}"),
                ));
            }
            Ok(RankReport::Written {
                key,
                size,
                sha256,
                compression,
                entries,
                chunks,
                ..
            }) => written.push((
                from,
                Written {
                    key,
                    size,
                    sha256,
                    compression,
                    entries,
                    chunks,
                },
            )),
            Ok(RankReport::Failed { kind, reason, .. }) => failures.push((from, kind, reason)),
            Err(e) => failures.push((
                from,
                FailureKind::Failed,
                format!("unreadable report ({e})"),
            )),
        }
    }
    if failures
        .iter()
        .any(|(_, kind, _)| *kind == FailureKind::AlreadyExists)
    {
        return Tally::AlreadyExists;
    }
    if !failures.is_empty() {
        let failed_ranks: BTreeSet<usize> = failures.iter().map(|(r, _, _)| *r).collect();
        let reason = failures
            .iter()
            .map(|(r, _, why)| format!("rank {r}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Tally::Failed {
            failed_ranks: failed_ranks.into_iter().collect(),
            reason,
            reported: true,
        };
    }
    match assemble_manifest(name, world_size, written, options) {
        Ok(manifest) => Tally::Commit(manifest),
        Err((failed_ranks, reason)) => Tally::Failed {
            failed_ranks,
            reason,
            reported: false,
        },
    }
}

/// Builds the manifest from every rank's report (the same on every rank),
/// or says which ranks are at fault.
fn assemble_manifest(
    name: &str,
    world_size: usize,
    mut written: Vec<(usize, Written)>,
    options: &SaveOptions,
) -> std::result::Result<Manifest, (Vec<usize>, String)> {
    written.sort_by_key(|(rank, _)| *rank);
    let mut manifest = Manifest::new(name, world_size);
    manifest.step = options.step;
    manifest.metadata = options.metadata.clone();
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (rank, w) in written {
        let mut shard = ShardInfo::new(rank, w.key, w.size, w.sha256);
        if let Some(layout) = w.compression {
            shard = shard.with_compression(layout);
        }
        if let Some(summary) = w.chunks {
            shard = shard.with_chunks(summary);
        }
        let uncompressed = shard.uncompressed_size();
        for WrittenEntry {
            name: entry,
            offset,
            length,
            sha256,
        } in &w.entries
        {
            if let Some(first) = owner.insert(entry.clone(), rank) {
                return Err((
                    if first == rank { vec![rank] } else { vec![first, rank] },
                    format!("entry {entry:?} is saved by rank {first} and rank {rank}; entry names must be unique"),
                ));
            }
            if offset
                .checked_add(*length)
                .is_none_or(|end| end > uncompressed)
            {
                return Err((
                    vec![rank],
                    format!("rank {rank}: entry {entry:?} lies outside its shard"),
                ));
            }
            let at = EntryLocation::new(rank, *offset, *length);
            manifest.entries.insert(
                entry.clone(),
                match sha256 {
                    Some(digest) => at.with_sha256(digest.clone()),
                    None => at,
                },
            );
        }
        manifest.shards.push(shard);
    }
    manifest.validate(name).map_err(|e| {
        (
            Vec::new(),
            format!("the assembled manifest is invalid: {e}"),
        )
    })?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::manifest::shard_key;

    fn entry(name: &str, offset: u64, length: u64) -> WrittenEntry {
        WrittenEntry {
            name: name.into(),
            offset,
            length,
            sha256: Some(super::super::manifest::sha256_hex(name.as_bytes())),
        }
    }

    #[test]
    fn duplicate_entries_across_ranks_blame_both() {
        let w = |key: &str| Written {
            key: key.into(),
            size: 1,
            sha256: super::super::manifest::sha256_hex(b"x"),
            compression: None,
            entries: vec![entry("e", 0, 1)],
            chunks: None,
        };
        let err = assemble_manifest(
            "c",
            2,
            vec![(1, w("c/shard-1.bin")), (0, w("c/shard-0.bin"))],
            &SaveOptions::new(),
        )
        .unwrap_err();
        assert_eq!(err.0, vec![0, 1]);
    }

    fn written(name: &str, rank: usize, entry: &str) -> Vec<u8> {
        serde_json::to_vec(&RankReport::Written {
            name: name.into(),
            key: shard_key(name, rank, 3, 1),
            size: 4,
            sha256: super::super::manifest::sha256_hex(b"abcd"),
            compression: None,
            entries: vec![self::entry(entry, 0, 4)],
            chunks: None,
        })
        .unwrap()
    }

    fn failed(name: &str, kind: FailureKind) -> Vec<u8> {
        serde_json::to_vec(&RankReport::Failed {
            name: name.into(),
            kind,
            reason: "disk full".into(),
        })
        .unwrap()
    }

    fn blamed(tally: Tally) -> (Vec<usize>, String, bool) {
        match tally {
            Tally::Failed {
                failed_ranks,
                reason,
                reported,
            } => (failed_ranks, reason, reported),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn every_rank_written_commits_in_rank_order() {
        let gathered = vec![
            written("c", 0, "a"),
            written("c", 1, "b"),
            written("c", 2, "d"),
        ];
        let Tally::Commit(manifest) = tally("c", 3, &gathered, &SaveOptions::new().step(7)) else {
            panic!("expected a commit");
        };
        assert_eq!(manifest.step, Some(7));
        let ranks: Vec<usize> = manifest.shards.iter().map(|s| s.rank).collect();
        assert_eq!(ranks, [0, 1, 2]);
        assert_eq!(manifest.entries["d"].rank, 2);
        assert_eq!(manifest.total_size(), 12);
    }

    #[test]
    fn a_failed_rank_is_blamed_with_its_reason() {
        let gathered = vec![
            written("c", 0, "a"),
            failed("c", FailureKind::Failed),
            written("c", 2, "d"),
        ];
        let (ranks, reason, reported) = blamed(tally("c", 3, &gathered, &SaveOptions::new()));
        assert_eq!(ranks, [1]);
        assert_eq!(reason, "rank 1: disk full");
        assert!(reported);
    }

    #[test]
    fn an_existing_checkpoint_outweighs_other_failures() {
        let gathered = vec![
            failed("c", FailureKind::Failed),
            failed("c", FailureKind::AlreadyExists),
            b"garbage".to_vec(),
        ];
        assert!(matches!(
            tally("c", 3, &gathered, &SaveOptions::new()),
            Tally::AlreadyExists
        ));
    }

    #[test]
    fn missing_extra_foreign_and_unreadable_reports_are_blamed() {
        // Too few reports: the missing ranks.
        let (ranks, reason, _) =
            blamed(tally("c", 3, &[written("c", 0, "a")], &SaveOptions::new()));
        assert_eq!(ranks, [1, 2]);
        assert!(reason.contains("1 reports for 3 ranks"), "{reason}");
        // Too many: the extra one.
        let gathered = vec![written("c", 0, "a"), written("c", 1, "b")];
        let (ranks, _, _) = blamed(tally("c", 1, &gathered, &SaveOptions::new()));
        assert_eq!(ranks, [1]);
        // A report of another save, and one that cannot be read.
        let gathered = vec![
            written("other", 0, "a"),
            b"{".to_vec(),
            written("c", 2, "d"),
        ];
        let (ranks, reason, reported) = blamed(tally("c", 3, &gathered, &SaveOptions::new()));
        assert_eq!(ranks, [0, 1]);
        assert!(reason.contains("saving \"other\", not \"c\""), "{reason}");
        assert!(reason.contains("rank 1: unreadable report"), "{reason}");
        assert!(reported);
    }

    #[test]
    fn conflicting_reports_blame_the_ranks_that_conflict() {
        let gathered = vec![
            written("c", 0, "a"),
            written("c", 1, "same"),
            written("c", 2, "same"),
        ];
        let (ranks, reason, reported) = blamed(tally("c", 3, &gathered, &SaveOptions::new()));
        assert_eq!(ranks, [1, 2]);
        assert!(reason.contains("entry names must be unique"), "{reason}");
        assert!(!reported);
    }

    #[test]
    fn a_chunked_report_commits_a_chunked_shard_and_an_older_report_still_reads() {
        use crate::checkpoint::DigestAlgorithm;
        let summary = ShardChunks::new(DigestAlgorithm::Blake3, "none", 2, 100);
        let chunked = serde_json::to_vec(&RankReport::Written {
            name: "c".into(),
            key: shard_key("c", 0, 2, 1),
            size: 10,
            sha256: super::super::manifest::sha256_hex(b"index"),
            compression: None,
            entries: vec![WrittenEntry {
                name: "w".into(),
                offset: 0,
                length: 100,
                sha256: None,
            }],
            chunks: Some(summary.clone()),
        })
        .unwrap();
        // A report of a build without chunks: no `chunks` field at all.
        let older = br#"{"Written":{"name":"c","key":"c/shard-00001-of-00002-0000000000000001.bin","size":4,"sha256":"88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589","entries":[{"name":"x","offset":0,"length":4,"sha256":null}]}}"#.to_vec();
        let Tally::Commit(manifest) = tally("c", 2, &[chunked, older], &SaveOptions::new()) else {
            panic!("expected a commit");
        };
        assert_eq!(manifest.shards[0].chunks, Some(summary));
        assert_eq!(manifest.shards[0].uncompressed_size(), 100);
        assert_eq!(manifest.shards[1].chunks, None);
        assert_eq!(manifest.entries["w"].length, 100);
    }

    #[test]
    fn every_rank_decides_the_same() {
        let gathered = vec![written("c", 0, "a"), failed("c", FailureKind::Failed)];
        let a = format!("{:?}", tally("c", 2, &gathered, &SaveOptions::new()));
        let b = format!(
            "{:?}",
            tally("c", 2, &gathered.clone(), &SaveOptions::new())
        );
        assert_eq!(a, b);
    }
}
