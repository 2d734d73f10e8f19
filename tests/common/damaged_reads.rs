//! A storage whose streamed reads of one key come back damaged on the way (a
//! flipped bit, a different one each time) for a number of reads, while the
//! stored object stays intact: the transient damage of a network or a
//! flaky disk controller, aimed at exactly one object.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use steadfast::storage::{
    Bytes, CheckpointStorage, MemoryStorage, ObjectMeta, ObjectStream, ObjectWriter,
    Result as StorageResult,
};
use tokio::io::AsyncReadExt;

/// A [`MemoryStorage`] whose `get_stream` of the key set with
/// [`damage`](DamagedReads::damage) returns the object with one bit flipped,
/// for the next `reads` reads of that key.
#[derive(Debug, Clone, Default)]
pub struct DamagedReads {
    pub inner: MemoryStorage,
    target: Arc<Mutex<Option<String>>>,
    remaining: Arc<AtomicU64>,
    damaged: Arc<AtomicU64>,
}

impl DamagedReads {
    pub fn new(inner: MemoryStorage) -> Self {
        DamagedReads {
            inner,
            ..DamagedReads::default()
        }
    }

    /// Damages the next `reads` streamed reads of `key` (`u64::MAX`: every
    /// read).
    pub fn damage(&self, key: &str, reads: u64) {
        *self.target.lock().unwrap() = Some(key.to_string());
        self.remaining.store(reads, Ordering::SeqCst);
    }

    /// Stops damaging reads.
    pub fn heal(&self) {
        *self.target.lock().unwrap() = None;
        self.remaining.store(0, Ordering::SeqCst);
    }

    /// How many reads came back damaged so far.
    pub fn damaged(&self) -> u64 {
        self.damaged.load(Ordering::SeqCst)
    }

    fn takes_damage(&self, key: &str) -> bool {
        if self.target.lock().unwrap().as_deref() != Some(key) {
            return false;
        }
        self.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[async_trait]
impl CheckpointStorage for DamagedReads {
    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.inner.put_if_absent(key, data).await
    }
    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> StorageResult<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn put_stream(&self, key: &str) -> StorageResult<Box<dyn ObjectWriter>> {
        self.inner.put_stream(key).await
    }
    async fn get_stream(&self, key: &str) -> StorageResult<ObjectStream> {
        let mut stream = self.inner.get_stream(key).await?;
        if !self.takes_damage(key) {
            return Ok(stream);
        }
        let mut bytes = Vec::new();
        stream.reader.read_to_end(&mut bytes).await.map_err(|e| {
            steadfast::storage::StorageError::Io {
                key: key.to_string(),
                operation: "get_stream",
                source: e,
            }
        })?;
        let n = self.damaged.fetch_add(1, Ordering::SeqCst);
        if !bytes.is_empty() {
            let bit = (n.wrapping_mul(7_919).wrapping_add(13) as usize) % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        Ok(ObjectStream {
            meta: stream.meta,
            reader: Box::pin(std::io::Cursor::new(bytes)),
        })
    }
}
