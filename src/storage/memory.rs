//! [`MemoryStorage`]: an in-memory [`CheckpointStorage`] for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;

use super::{
    validate_key, validate_prefix, CheckpointStorage, ObjectMeta, ObjectStream, ObjectWriter,
    Result, StorageError,
};

#[derive(Debug, Clone)]
struct StoredObject {
    data: Arc<Vec<u8>>,
    last_modified: SystemTime,
}

impl StoredObject {
    fn meta(&self, key: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size: self.data.len() as u64,
            last_modified: Some(self.last_modified),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, StoredObject>,
}

/// An in-memory [`CheckpointStorage`]: the mock that tests of everything
/// above the storage use.
///
/// Clones share the same objects.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{CheckpointStorage, MemoryStorage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> steadfast::storage::Result<()> {
/// let storage = MemoryStorage::new();
/// let view = storage.clone();
/// storage.put("a/1", vec![1, 2, 3]).await?;
/// assert_eq!(view.list("a/").await?.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    inner: Arc<RwLock<Inner>>,
}

impl MemoryStorage {
    /// An empty storage.
    ///
    /// # Examples
    ///
    /// ```
    /// let storage = steadfast::storage::MemoryStorage::new();
    /// assert!(storage.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How many objects are stored.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::storage::MemoryStorage::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// Whether no object is stored.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::storage::MemoryStorage::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stored key, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::storage::MemoryStorage::new().keys().is_empty());
    /// ```
    pub fn keys(&self) -> Vec<String> {
        self.read().objects.keys().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while the lock was held cannot leave the map half-updated:
        // every update is a single insert or remove.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self, key: &str, data: Vec<u8>, only_if_absent: bool) -> Result<ObjectMeta> {
        let object = StoredObject {
            data: Arc::new(data),
            last_modified: SystemTime::now(),
        };
        let meta = object.meta(key);
        let mut inner = self.write();
        if only_if_absent && inner.objects.contains_key(key) {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        inner.objects.insert(key.to_string(), object);
        Ok(meta)
    }

    fn lookup(&self, key: &str) -> Result<StoredObject> {
        self.read()
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_string(),
            })
    }
}

#[async_trait]
impl CheckpointStorage for MemoryStorage {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<()> {
        validate_key(key)?;
        self.store(key, data, false).map(drop)
    }

    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<()> {
        validate_key(key)?;
        self.store(key, data, true).map(drop)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        validate_key(key)?;
        Ok(self.lookup(key)?.data.as_ref().clone())
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        Ok(self.lookup(key)?.meta(key))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.write().objects.remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        Ok(self
            .read()
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| o.meta(k))
            .collect())
    }

    async fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        validate_key(key)?;
        Ok(Box::new(MemoryWriter {
            storage: self.clone(),
            key: key.to_string(),
            buffer: Vec::new(),
        }))
    }

    async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
        validate_key(key)?;
        let object = self.lookup(key)?;
        let meta = object.meta(key);
        Ok(ObjectStream {
            meta,
            reader: Box::pin(std::io::Cursor::new(SharedBytes(object.data))),
        })
    }
}

/// Lets a cursor read from shared bytes without copying them.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

struct MemoryWriter {
    storage: MemoryStorage,
    key: String,
    buffer: Vec<u8>,
}

#[async_trait]
impl ObjectWriter for MemoryWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.buffer.extend_from_slice(chunk);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<ObjectMeta> {
        let MemoryWriter {
            storage,
            key,
            buffer,
        } = *self;
        storage.store(&key, buffer, false)
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
