//! Where the checkpoints are: the location given on the command line opened
//! as a storage, and the one-rank [`DistributedCheckpoint`] every command
//! works through.

use std::sync::Arc;

use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, MANIFEST_FILE_NAME};
use steadfast::manager::StorageLocation;
use steadfast::storage::CheckpointStorage;
use steadfast::{InMemoryCoordinator, RetryPolicy};

use crate::output::Failure;

/// A checkpoint handle of one rank (the tool is rank 0 of a job of one: it
/// commits nothing, and runs the clean-ups a committing rank runs).
pub type Ckpt<S> = DistributedCheckpoint<S, InMemoryCoordinator>;

/// The opened location and the output mode.
#[derive(Debug)]
pub struct Context {
    /// The storage holding the checkpoints.
    pub storage: Arc<dyn CheckpointStorage>,
    /// The location as given.
    pub location: String,
    /// Whether the output is JSON.
    pub json: bool,
}

impl Context {
    /// Opens `location`: a directory that must exist (it is never created),
    /// or a storage URL in a build with the `object-store` feature.
    pub async fn open(location: &str, json: bool) -> Result<Context, Failure> {
        let parsed: StorageLocation = location
            .parse()
            .map_err(|e: steadfast::ConfigError| Failure::usage(e.reason()))?;
        if let StorageLocation::Local(path) = &parsed {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(Failure::usage(format!(
                        "{} is not a directory",
                        path.display()
                    )));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Failure::not_found(format!(
                        "no directory {}",
                        path.display()
                    )));
                }
                Err(e) => {
                    return Err(Failure::storage(format!("{}: {e}", path.display())));
                }
            }
        }
        let storage = parsed
            .open()
            .await
            .map_err(|e| Failure::storage(e.to_string()))?;
        Ok(Context {
            storage,
            location: location.to_string(),
            json,
        })
    }

    /// A checkpoint handle on the storage, with the default options.
    pub fn checkpoint(&self) -> Result<Ckpt<Arc<dyn CheckpointStorage>>, Failure> {
        checkpoint_on(self.storage.clone(), CheckpointOptions::default())
    }

    /// The names of every checkpoint whose prefix holds a manifest object,
    /// readable or not, sorted by name.
    pub async fn manifest_names(&self) -> Result<Vec<String>, Failure> {
        let objects = self
            .storage
            .list("")
            .await
            .map_err(|e| Failure::storage(format!("listing {} failed: {e}", self.location)))?;
        let suffix = format!("/{MANIFEST_FILE_NAME}");
        Ok(objects
            .into_iter()
            .filter_map(|o| o.key.strip_suffix(&suffix).map(str::to_string))
            .filter(|name| name.split('/').next() != Some(steadfast::checkpoint::CHUNKS_PREFIX))
            .collect())
    }
}

/// A checkpoint handle of rank 0 of a job of one on `storage`.
pub fn checkpoint_on<S: CheckpointStorage>(
    storage: S,
    options: CheckpointOptions,
) -> Result<Ckpt<S>, Failure> {
    let rank = InMemoryCoordinator::new(1)
        .into_iter()
        .next()
        .ok_or_else(|| Failure::storage("no coordinator for one rank"))?;
    Ok(DistributedCheckpoint::new(
        storage,
        rank,
        RetryPolicy::default(),
        options,
    ))
}
