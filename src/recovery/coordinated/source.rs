//! [`CheckpointSource`]: where the recovery leader finds the checkpoint that
//! every rank restores from.

use async_trait::async_trait;

use crate::checkpoint::DistributedCheckpoint;
use crate::coordinator::Coordinator;
use crate::storage::CheckpointStorage;

/// An error of a checkpoint source.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Names the checkpoint a recovery plan restores from.
///
/// Implemented by [`DistributedCheckpoint`] (and `Arc` of one): the newest
/// checkpoint that verifies (every shard read and checked), falling back
/// past checkpoints that do not; under a fence, only confirmed commits are
/// candidates.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
/// use steadfast::coordinator::InMemoryCoordinator;
/// use steadfast::recovery::CheckpointSource;
/// use steadfast::retry::RetryPolicy;
/// use steadfast::storage::MemoryStorage;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let rank = InMemoryCoordinator::new(1).remove(0);
/// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
/// assert_eq!(ckpt.latest_verified().await?, None);
/// ckpt.save("step-1", &ShardData::new().with_entry("w", vec![1]), SaveOptions::new().step(1)).await?;
/// assert_eq!(ckpt.latest_verified().await?.as_deref(), Some("step-1"));
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait CheckpointSource: Send + Sync + 'static {
    /// The newest checkpoint that verifies, `None` when there is none.
    async fn latest_verified(&self) -> Result<Option<String>, SourceError>;
}

#[async_trait]
impl<S: CheckpointStorage, C: Coordinator> CheckpointSource for DistributedCheckpoint<S, C> {
    async fn latest_verified(&self) -> Result<Option<String>, SourceError> {
        for info in self.list().await? {
            match self.verify(&info.name).await {
                Ok(_) => return Ok(Some(info.name)),
                Err(e) => {
                    tracing::warn!(target: super::TARGET, name = %info.name, error = %e, "a checkpoint does not verify; the recovery plan falls back past it");
                }
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl<T: CheckpointSource + ?Sized> CheckpointSource for std::sync::Arc<T> {
    async fn latest_verified(&self) -> Result<Option<String>, SourceError> {
        (**self).latest_verified().await
    }
}
