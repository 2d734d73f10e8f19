//! The structural checks of a manifest ([`Manifest::validate`]): what makes
//! a manifest describe a possible checkpoint, whatever bytes it was read
//! from.

use std::collections::HashSet;

use super::error::{CheckpointError, Result};
#[cfg(doc)]
use super::frames::{ShardCompression, MAX_FRAME_SIZE};
use super::manifest::{
    created_at_time, is_sha256_hex, Manifest, FORMAT_VERSION, MANIFEST_FILE_NAME,
};
use crate::storage::validate_key;

impl Manifest {
    /// Checks that the manifest describes a possible checkpoint named `name`:
    /// a supported format version (with a commit sequence only from version
    /// 2 on, compressed shards and entry digests only from version 3 on,
    /// chunked shards only from version 4 on),
    /// the right name, a commit time this
    /// platform can represent, a world size of at least
    /// one, ranks `0..world_size` each exactly once, every shard key a valid
    /// key directly inside `NAME/` (and not the manifest), digests of 64
    /// lowercase hex digits, the frames of a compressed shard possible
    /// ([`ShardCompression::check`]: a codec this build reads, sizes that
    /// add up, no frame above [`MAX_FRAME_SIZE`]), and every entry inside
    /// its shard's uncompressed bytes.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::ValidationFailed`] saying what is wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{sha256_hex, Manifest, ShardInfo};
    ///
    /// let mut m = Manifest::new("c", 1);
    /// m.shards.push(ShardInfo::new(
    ///     0,
    ///     "other/shard-00000-of-00001-0000000000000001.bin",
    ///     0,
    ///     sha256_hex(b""),
    /// ));
    /// assert!(m.validate("c").is_err()); // the shard is outside `c/`
    /// ```
    pub fn validate(&self, name: &str) -> Result<()> {
        let invalid = |reason: String| {
            Err(CheckpointError::ValidationFailed {
                name: name.to_string(),
                reason,
            })
        };
        if self.format_version == 0 || self.format_version > FORMAT_VERSION {
            return invalid(format!(
                "format version {} is not one this build reads (1 to {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.format_version < 2 && self.sequence.is_some() {
            return invalid(format!(
                "format version {} records no commit sequence, yet one is there",
                self.format_version
            ));
        }
        if self.format_version < 5 && self.commit.is_some() {
            return invalid(format!(
                "format version {} records no commit stamp, yet one is there",
                self.format_version
            ));
        }
        if self.name != name {
            return invalid(format!(
                "the manifest names checkpoint {:?}, not {name:?}",
                self.name
            ));
        }
        if created_at_time(self.created_at).is_none() {
            return invalid(format!(
                "the commit time {} ms after the Unix epoch cannot be represented",
                self.created_at
            ));
        }
        if self.world_size == 0 {
            return invalid("the world size is 0".into());
        }
        if self.shards.len() != self.world_size {
            return invalid(format!(
                "{} shards listed for a world of {} ranks",
                self.shards.len(),
                self.world_size
            ));
        }
        let prefix = format!("{name}/");
        let mut seen_ranks = vec![false; self.world_size];
        let mut seen_keys = HashSet::new();
        for shard in &self.shards {
            match seen_ranks.get_mut(shard.rank) {
                None => {
                    return invalid(format!(
                        "shard {:?} belongs to rank {}, outside a world of {} ranks",
                        shard.key, shard.rank, self.world_size
                    ))
                }
                Some(true) => return invalid(format!("rank {} is listed twice", shard.rank)),
                Some(seen) => *seen = true,
            }
            if let Err(e) = validate_key(&shard.key) {
                return invalid(format!("shard key {:?} is not a valid key: {e}", shard.key));
            }
            match shard.key.strip_prefix(&prefix) {
                Some(file) if !file.is_empty() && !file.contains('/') => {
                    if file == MANIFEST_FILE_NAME {
                        return invalid(format!("shard key {:?} is the manifest", shard.key));
                    }
                }
                _ => {
                    return invalid(format!(
                        "shard key {:?} is not directly inside {prefix:?}",
                        shard.key
                    ))
                }
            }
            if !seen_keys.insert(shard.key.as_str()) {
                return invalid(format!("shard key {:?} is listed twice", shard.key));
            }
            if !is_sha256_hex(&shard.sha256) {
                return invalid(format!(
                    "shard {:?} has digest {:?}, not 64 lowercase hex digits",
                    shard.key, shard.sha256
                ));
            }
            if let Some(layout) = &shard.compression {
                if self.format_version < 3 {
                    return invalid(format!(
                        "format version {} records no compressed shards, yet shard {:?} is compressed",
                        self.format_version, shard.key
                    ));
                }
                if let Err(reason) = layout.check(shard.size) {
                    return invalid(format!("compressed shard {:?}: {reason}", shard.key));
                }
            }
            if let Some(summary) = &shard.chunks {
                if self.format_version < 4 {
                    return invalid(format!(
                        "format version {} records no chunked shards, yet shard {:?} is chunked",
                        self.format_version, shard.key
                    ));
                }
                if shard.compression.is_some() {
                    return invalid(format!(
                        "shard {:?} is both chunked and compressed as one object",
                        shard.key
                    ));
                }
                if let Err(reason) = summary.check() {
                    return invalid(format!("chunked shard {:?}: {reason}", shard.key));
                }
            }
        }
        for (entry, at) in &self.entries {
            if entry.is_empty() {
                return invalid("an entry has an empty name".into());
            }
            let Some(shard) = self.shard(at.rank) else {
                return invalid(format!(
                    "entry {entry:?} is in the shard of rank {}, which is not listed",
                    at.rank
                ));
            };
            match at.end() {
                Some(end) if end <= shard.uncompressed_size() => {}
                _ => {
                    return invalid(format!(
                        "entry {entry:?} (offset {}, length {}) runs past the end of shard {:?} ({} bytes)",
                        at.offset, at.length, shard.key, shard.uncompressed_size()
                    ))
                }
            }
            if let Some(digest) = &at.sha256 {
                if self.format_version < 3 {
                    return invalid(format!(
                        "format version {} records no entry digests, yet entry {entry:?} has one",
                        self.format_version
                    ));
                }
                if !is_sha256_hex(digest) {
                    return invalid(format!(
                        "entry {entry:?} has digest {digest:?}, not 64 lowercase hex digits"
                    ));
                }
            }
        }
        Ok(())
    }
}
