//! [`CheckpointSource`]: where the recovery leader finds the checkpoint that
//! every rank restores from.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use crate::checkpoint::{CheckpointError, DistributedCheckpoint};
use crate::coordinator::Coordinator;
use crate::retry::Transient;
use crate::storage::CheckpointStorage;

/// An error of a checkpoint source.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Names the checkpoint a recovery plan restores from.
///
/// Implemented by [`DistributedCheckpoint`] (and `Arc` of one): the newest
/// checkpoint that verifies (every shard read and checked), falling back
/// past checkpoints that do not; under a fence, only confirmed commits are
/// candidates. A read that does not verify but may have been damaged on the
/// way (bytes that do not match, a transient storage error) is read again,
/// a few times with short pauses on tokio's clock, before the checkpoint is
/// judged not to verify.
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

/// How many times each part of a checkpoint (its manifest, each shard) is
/// read and checked before the checkpoint is judged not to verify.
const VERIFY_ATTEMPTS: u32 = 5;

/// The pause before the second reading of a part; doubled before each
/// further one (on tokio's clock).
const VERIFY_PAUSE: Duration = Duration::from_millis(50);

/// Whether a failure to verify may come from damage on the way rather than
/// from the stored checkpoint: bytes that do not match (a flipped bit or a
/// short read in transit looks the same as a damaged object), or a storage
/// error that is transient.
fn may_pass_on_another_read(error: &CheckpointError) -> bool {
    matches!(error, CheckpointError::Corrupted { .. }) || error.is_transient()
}

/// Runs `check` until it succeeds, fails in a way another read cannot
/// change, or has run [`VERIFY_ATTEMPTS`] times.
async fn with_rereads<T, F, Fut>(name: &str, mut check: F) -> Result<T, CheckpointError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CheckpointError>>,
{
    let mut pause = VERIFY_PAUSE;
    let mut attempt = 1;
    loop {
        match check().await {
            Err(e) if attempt < VERIFY_ATTEMPTS && may_pass_on_another_read(&e) => {
                tracing::debug!(target: super::TARGET, name, attempt, error = %e, "a checkpoint read does not verify; reading it again");
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The newest checkpoint that verifies. Each part (the manifest, then each
/// shard) is read again when it fails in a way a read damaged on the way
/// explains (bytes that do not match, a transient storage error), up to five
/// times with pauses of 50 ms doubling on tokio's clock, so that one damaged
/// read does not make the plan fall back past a good checkpoint; a
/// checkpoint whose part fails every read is skipped.
#[async_trait]
impl<S: CheckpointStorage, C: Coordinator> CheckpointSource for DistributedCheckpoint<S, C> {
    async fn latest_verified(&self) -> Result<Option<String>, SourceError> {
        for info in self.list().await? {
            let name = info.name.as_str();
            let verified = async {
                let manifest = with_rereads(name, || self.manifest(name)).await?;
                for shard in &manifest.shards {
                    with_rereads(name, || self.verify_shard(name, shard)).await?;
                }
                Ok::<_, CheckpointError>(())
            };
            match verified.await {
                Ok(()) => return Ok(Some(info.name)),
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
