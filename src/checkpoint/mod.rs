//! Crash-safe checkpoints: sharded saves committed by a manifest, verified
//! loads, listing, deletion and retention.
//!
//! A checkpoint is either complete and verified, or it does not exist.

mod error;
mod manifest;
mod shard;

pub use error::{CheckpointError, Result};
pub use manifest::{
    manifest_key, sha256_hex, validate_name, CheckpointInfo, EntryLocation, Manifest, ShardInfo,
    FORMAT_VERSION, MANIFEST_FILE_NAME,
};
pub use shard::ShardData;
