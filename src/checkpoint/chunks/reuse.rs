//! Reusing the chunks of a base checkpoint for entries the caller reports
//! unchanged ([`ShardData::with_unchanged_entry`]): the save reads the base's
//! manifest once and the chunk indexes it needs once each, and copies each
//! unchanged entry's run of chunks and its length, without reading or
//! hashing the entry's bytes.
//!
//! Entries are cut into chunks one by one, so an entry's bytes are a whole
//! run of its shard's chunks: the run starts where the entry starts and
//! ends where it ends. Anything else (no such entry in the base, a base not
//! chunked, chunked with another digest or codec, an entry not on chunk
//! boundaries, a chunk the storage lost) fails the save on this rank with
//! the reason, which starts with [`REUSE_FAILED`].
//!
//! [`ShardData::with_unchanged_entry`]: crate::checkpoint::ShardData::with_unchanged_entry

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crate::coordinator::Coordinator;
use crate::storage::CheckpointStorage;

use super::super::distributed::DistributedCheckpoint;
use super::super::manifest::Manifest;
use super::index::{ChunkIndex, ChunkRef};
use super::write::ChunkPlan;

/// How the reason of a save that could not reuse an unchanged entry
/// starts: a caller that sees it can save again with every entry's bytes.
pub(crate) const REUSE_FAILED: &str = "cannot reuse unchanged entry";

/// The base checkpoint of a save, read once.
pub(in crate::checkpoint) struct Base {
    name: String,
    manifest: Manifest,
    /// The chunk indexes read so far, by rank.
    indexes: HashMap<usize, ChunkIndex>,
}

/// An unchanged entry, as the base stores it.
pub(in crate::checkpoint) struct Reused {
    pub(in crate::checkpoint) chunks: Vec<ChunkRef>,
    pub(in crate::checkpoint) length: u64,
    pub(in crate::checkpoint) sha256: Option<String>,
}

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// Reads the manifest of the base checkpoint `name`.
    pub(in crate::checkpoint) async fn open_base(&self, name: &str) -> Result<Base, String> {
        let manifest = self
            .manifest(name)
            .await
            .map_err(|e| format!("{REUSE_FAILED}: base checkpoint {name:?}: {e}"))?;
        Ok(Base {
            name: name.to_string(),
            manifest,
            indexes: HashMap::new(),
        })
    }

    /// The chunks, length and digest of `entry` in the base, for a save
    /// that stores chunks as `plan` says.
    pub(in crate::checkpoint) async fn base_entry(
        &self,
        base: &mut Base,
        entry: &str,
        plan: &ChunkPlan,
    ) -> Result<Reused, String> {
        let fail = |why: String| format!("{REUSE_FAILED} {entry:?}: {why}");
        let Some(at) = base.manifest.entries.get(entry).cloned() else {
            return Err(fail(format!(
                "base checkpoint {:?} has no such entry",
                base.name
            )));
        };
        let Some(shard) = base.manifest.shard(at.rank).cloned() else {
            return Err(fail(format!(
                "base checkpoint {:?} has no shard for rank {}",
                base.name, at.rank
            )));
        };
        let Some(summary) = shard.chunks.clone() else {
            return Err(fail(format!(
                "base checkpoint {:?} is not chunked",
                base.name
            )));
        };
        if summary.digest != plan.digest || summary.codec != plan.codec() {
            return Err(fail(format!(
                "base checkpoint {:?} stores chunks addressed by {} with codec {:?}, this save {} with {:?}",
                base.name,
                summary.digest,
                summary.codec,
                plan.digest,
                plan.codec()
            )));
        }
        let index = match base.indexes.entry(at.rank) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(
                self.chunk_index(&base.name, &shard, &summary)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
            ),
        };
        let end = at.offset.saturating_add(at.length);
        let mut chunks = Vec::new();
        let mut start = 0u64;
        for chunk in &index.chunks {
            let chunk_end = start.saturating_add(chunk.raw_size);
            if start >= at.offset && chunk_end <= end {
                chunks.push(chunk.clone());
            } else if start < end && chunk_end > at.offset {
                return Err(fail(format!(
                    "its bytes {}..{end} do not fall on the base's chunk boundaries",
                    at.offset
                )));
            }
            start = chunk_end;
        }
        let covered = chunks
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.raw_size));
        if covered != at.length {
            return Err(fail(format!(
                "the base's chunks cover {covered} of its {} bytes",
                at.length
            )));
        }
        Ok(Reused {
            chunks,
            length: at.length,
            sha256: at.sha256,
        })
    }
}
