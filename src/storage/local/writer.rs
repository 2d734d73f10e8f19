//! The streamed write of a [`LocalFsStorage`]: chunks handed to blocking
//! tasks that write the temporary file while the caller goes on, flushes
//! started in the background, and the commit that publishes the file.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use super::atomic::{create_temp, publish, remove_temp_quietly};
use super::paths::Target;
use super::{
    blocking, io_error, object_meta, validate_key, LocalFsStorage, ObjectMeta, ObjectWriter,
    Result, StorageError, TARGET,
};

/// Bytes a streamed write gathers before handing them to the file; owned
/// chunks at least this large go to the file as they are.
pub(super) const STREAM_BUFFER: usize = 256 * 1024;

impl LocalFsStorage {
    /// Opens a streamed write to a new temporary file.
    pub(super) async fn open_writer(&self, key: &str) -> Result<LocalWriter> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        let (target, temp, file) = blocking(key, "put_stream", move || {
            let (temp, file) = create_temp(&target, "put_stream", false)?;
            Ok((target, temp, file))
        })
        .await?;
        tracing::debug!(target: TARGET, storage = "local", key, "streamed write started");
        Ok(LocalWriter {
            target: Arc::new(target),
            temp: Some(temp),
            file: Some(Arc::new(file)),
            staging: Vec::new(),
            in_flight: None,
            written: 0,
            broken: false,
            background: self.background_sync.map(|every| BackgroundSync {
                every,
                unsynced: 0,
                running: None,
            }),
        })
    }
}

/// A streamed write to a temporary file, renamed into place on commit.
///
/// Small writes gather in `staging`; a full staging buffer, or an owned
/// chunk of at least [`STREAM_BUFFER`] bytes ([`ObjectWriter::write_buf`]),
/// goes to a blocking task that writes it to the file while the caller goes
/// on. One such write runs at a time: the next waits for it, takes back its
/// buffer for reuse, and surfaces its error.
pub(super) struct LocalWriter {
    target: Arc<Target>,
    /// The temporary file's path; `None` once committed or aborted.
    temp: Option<PathBuf>,
    /// The temporary file, shared with the blocking tasks that write and
    /// flush it; `None` once committed or aborted.
    file: Option<Arc<fs::File>>,
    /// Bytes accepted but not yet handed to a blocking write.
    staging: Vec<u8>,
    /// The blocking write in progress; it gives its buffer back.
    in_flight: Option<tokio::task::JoinHandle<io::Result<Vec<u8>>>>,
    /// Bytes accepted so far.
    written: u64,
    /// Set when a blocking write failed: the file has a hole, so every
    /// later call fails.
    broken: bool,
    /// The flushes started while writing; `None` when the storage flushes
    /// only at commit.
    background: Option<BackgroundSync>,
}

/// The background flushes of one streamed write
/// ([`LocalFsStorage::with_background_sync`]).
pub(super) struct BackgroundSync {
    /// Bytes between two flushes.
    every: u64,
    /// Bytes handed to the file since the last flush started.
    unsynced: u64,
    /// The flush in progress, if any.
    running: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl BackgroundSync {
    /// Counts `written` more bytes handed to `file`; once `every` have built
    /// up, waits for the flush in progress and starts the next one.
    async fn wrote(&mut self, written: usize, file: &Arc<fs::File>) -> io::Result<()> {
        self.unsynced = self.unsynced.saturating_add(written as u64);
        if self.unsynced < self.every {
            return Ok(());
        }
        self.wait().await?;
        self.unsynced = 0;
        let file = Arc::clone(file);
        self.running = Some(tokio::task::spawn_blocking(move || file.sync_data()));
        Ok(())
    }

    /// Waits for the flush in progress, if any, and returns its outcome.
    async fn wait(&mut self) -> io::Result<()> {
        // Taken only once finished, as `finish_write` does.
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        let outcome = running
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("a background flush failed: {e}"))));
        self.running = None;
        outcome
    }
}

/// The outcome of a blocking task, a panic or cancellation of which is an
/// I/O error of the write.
pub(super) fn joined<T>(
    result: std::result::Result<io::Result<T>, tokio::task::JoinError>,
) -> io::Result<T> {
    result.unwrap_or_else(|e| Err(io::Error::other(format!("a file write failed: {e}"))))
}

impl LocalWriter {
    fn fail(&self) -> impl FnOnce(io::Error) -> StorageError + '_ {
        io_error(&self.target.key, "put_stream")
    }

    /// The file, or the error of a write that cannot go on.
    fn open_file(&self) -> Result<Arc<fs::File>> {
        match &self.file {
            Some(_) if self.broken => Err(self.fail()(io::Error::other(
                "an earlier write to the file failed",
            ))),
            Some(file) => Ok(Arc::clone(file)),
            None => Err(self.fail()(io::Error::other(
                "the write was already finished",
            ))),
        }
    }

    /// Waits for the blocking write in progress, if any; returns its
    /// buffer, emptied. A failed write breaks the writer.
    async fn settle(&mut self) -> io::Result<Option<Vec<u8>>> {
        match finish_write(&mut self.in_flight).await {
            Ok(buffer) => Ok(buffer.map(|mut buffer| {
                buffer.clear();
                buffer
            })),
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// Hands `buffer` to a blocking write, after the one in progress;
    /// returns that one's buffer, emptied, or a new one.
    async fn dispatch(&mut self, buffer: Vec<u8>) -> Result<Vec<u8>> {
        let file = self.open_file()?;
        let spare = match self.settle().await {
            Ok(spare) => spare.unwrap_or_default(),
            Err(e) => return Err(self.fail()(e)),
        };
        let len = buffer.len();
        let writer = Arc::clone(&file);
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            (&*writer).write_all(&buffer).map(|()| buffer)
        }));
        if let Some(background) = self.background.as_mut()
            && let Err(e) = background.wrote(len, &file).await
        {
            self.broken = true;
            return Err(self.fail()(e));
        }
        Ok(spare)
    }

    /// Hands the staged bytes to a blocking write, if there are any.
    async fn dispatch_staging(&mut self) -> Result<()> {
        if self.staging.is_empty() {
            return Ok(());
        }
        let staged = std::mem::take(&mut self.staging);
        self.staging = self.dispatch(staged).await?;
        Ok(())
    }

    /// Waits for every task that holds the file. Returns the first error.
    async fn quiesce(&mut self) -> io::Result<()> {
        finish_tasks(&mut self.in_flight, &mut self.background).await
    }
}

/// Waits for a blocking write, if one is in progress, and returns its
/// buffer. The task is awaited in place and taken only once finished: a
/// caller that drops this future leaves it tracked, so that the next call
/// still waits for it and two writes never run at once.
pub(super) async fn finish_write(
    in_flight: &mut Option<tokio::task::JoinHandle<io::Result<Vec<u8>>>>,
) -> io::Result<Option<Vec<u8>>> {
    let Some(task) = in_flight.as_mut() else {
        return Ok(None);
    };
    let outcome = joined(task.await);
    *in_flight = None;
    outcome.map(Some)
}

/// Waits for every task that holds a streamed write's file: the write in
/// progress and the background flush. Returns the first error.
pub(super) async fn finish_tasks(
    in_flight: &mut Option<tokio::task::JoinHandle<io::Result<Vec<u8>>>>,
    background: &mut Option<BackgroundSync>,
) -> io::Result<()> {
    let written = finish_write(in_flight).await.map(drop);
    let flushed = match background {
        Some(background) => background.wait().await,
        None => Ok(()),
    };
    written.and(flushed)
}

#[async_trait]
impl ObjectWriter for LocalWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.open_file()?;
        self.staging.extend_from_slice(chunk);
        self.written += chunk.len() as u64;
        if self.staging.len() >= STREAM_BUFFER {
            self.dispatch_staging().await?;
        }
        Ok(())
    }

    async fn write_buf(&mut self, mut chunk: Vec<u8>) -> Result<Vec<u8>> {
        if chunk.len() < STREAM_BUFFER || !self.staging.is_empty() {
            // Small, or behind staged bytes that must go first: copied.
            self.write(&chunk).await?;
            chunk.clear();
            return Ok(chunk);
        }
        self.open_file()?;
        self.written += chunk.len() as u64;
        self.dispatch(chunk).await
    }

    async fn commit(mut self: Box<Self>) -> Result<ObjectMeta> {
        // A writer that cannot go on still removes its temporary file.
        let usable = self.open_file().map(drop);
        let staged = match usable {
            Ok(()) => self.dispatch_staging().await,
            Err(_) => Ok(()),
        };
        // A background flush that failed fails the write: the error is
        // reported once by the kernel, so the final fsync might not see it.
        let settled = self.quiesce().await.map_err(|e| self.fail()(e));
        self.background = None;
        let (Some(file), Some(temp)) = (self.file.take(), self.temp.take()) else {
            return Err(self.fail()(io::Error::other(
                "the write was already finished",
            )));
        };
        let target = Arc::clone(&self.target);
        let written = self.written;
        let ready = usable.and(staged).and(settled);
        let key = target.key.clone();
        let result = blocking(&key, "put_stream", move || {
            if let Err(e) = ready {
                drop(file);
                remove_temp_quietly(&temp);
                return Err(e);
            }
            let result = (|| {
                file.sync_all()
                    .map_err(io_error(&target.key, "put_stream"))?;
                let meta = file
                    .metadata()
                    .map_err(io_error(&target.key, "put_stream"))?;
                drop(file);
                if meta.len() != written {
                    return Err(StorageError::LengthMismatch {
                        key: target.key.clone(),
                        expected: written,
                        actual: meta.len(),
                    });
                }
                // Time has passed since the write began: check the path again.
                if let Some(existing) = target.inspect("put_stream", false)?
                    && existing.is_dir()
                {
                    return Err(io_error(&target.key, "put_stream")(io::Error::other(
                        format!("{} is a directory", target.path.display()),
                    )));
                }
                publish(&target, &temp, false, "put_stream")?;
                Ok(object_meta(&target.key, &meta))
            })();
            if result.is_err() {
                remove_temp_quietly(&temp);
            }
            result
        })
        .await?;
        tracing::debug!(target: TARGET, storage = "local", key, size = written, "streamed write committed");
        Ok(result)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        // Their outcomes no longer matter; waiting for them closes the last
        // handles on the file before the file is removed.
        let _ = self.quiesce().await;
        self.background = None;
        drop(self.file.take());
        if let Some(temp) = self.temp.take() {
            let key = self.target.key.clone();
            blocking(
                &self.target.key,
                "put_stream",
                move || match fs::remove_file(&temp) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_error(&key, "put_stream")(e)),
                },
            )
            .await?;
            tracing::debug!(target: TARGET, storage = "local", key = %self.target.key, "streamed write aborted");
        }
        Ok(())
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        drop(self.file.take());
        let Some(temp) = self.temp.take() else {
            return;
        };
        tracing::debug!(
            target: TARGET,
            storage = "local",
            key = %self.target.key,
            "streamed write dropped without commit"
        );
        let mut in_flight = self.in_flight.take();
        let mut background = self.background.take();
        // Inside a runtime, the removal goes to the blocking pool, after
        // the tasks that still hold the file open; outside one, there is no
        // executor to block, so it runs here.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let _ = finish_tasks(&mut in_flight, &mut background).await;
                    drop((in_flight, background));
                    let _ = tokio::task::spawn_blocking(move || remove_temp_quietly(&temp)).await;
                });
            }
            Err(_) => {
                drop((in_flight, background));
                remove_temp_quietly(&temp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use super::super::paths::is_temp_name;
    use crate::storage::{Bytes, CheckpointStorage};

    /// A writer whose background flush in progress will fail, as an
    /// `fdatasync` that hit a disk error would.
    async fn writer_with_a_failing_flush(storage: &LocalFsStorage, key: &str) -> LocalWriter {
        let mut writer = storage.open_writer(key).await.unwrap();
        let background = writer
            .background
            .as_mut()
            .expect("background flushes are on");
        background.running = Some(tokio::task::spawn_blocking(|| {
            Err(io::Error::other("injected disk error"))
        }));
        writer
    }

    fn temp_files(root: &Path) -> Vec<String> {
        fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| is_temp_name(name))
            .collect()
    }

    #[tokio::test]
    async fn a_failed_background_flush_fails_the_commit_and_keeps_the_previous_object() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path()).unwrap();
        storage
            .put("obj", Bytes::from_static(b"previous"))
            .await
            .unwrap();
        let mut writer = writer_with_a_failing_flush(&storage, "obj").await;
        writer.write(b"new bytes").await.unwrap();
        match Box::new(writer).commit().await {
            Err(StorageError::Io {
                key,
                operation: "put_stream",
                source,
            }) => {
                assert_eq!(key, "obj");
                assert_eq!(source.to_string(), "injected disk error");
            }
            other => panic!("expected the flush's error, got {other:?}"),
        }
        assert_eq!(storage.get("obj").await.unwrap(), &b"previous"[..]);
        assert!(temp_files(storage.root()).is_empty());
    }

    #[tokio::test]
    async fn a_failed_background_flush_fails_the_write_that_starts_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path())
            .unwrap()
            .with_background_sync(Some(10));
        let mut writer = writer_with_a_failing_flush(&storage, "obj").await;
        // Staged, not yet handed to the file: no flush to start.
        writer.write(&[1; 9]).await.unwrap();
        let err = writer.write(&[1; STREAM_BUFFER]).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::Io { operation: "put_stream", source, .. }
                if source.to_string() == "injected disk error"),
            "{err:?}"
        );
        // The file may now miss bytes: the writer refuses to go on.
        assert!(writer.write(&[1]).await.is_err());
        assert!(Box::new(writer).abort().await.is_ok());
        assert!(temp_files(storage.root()).is_empty());
    }

    #[tokio::test]
    async fn a_failed_file_write_fails_the_next_call_and_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path()).unwrap();
        storage
            .put("obj", Bytes::from_static(b"previous"))
            .await
            .unwrap();
        for commit_next in [false, true] {
            let mut writer = storage.open_writer("obj").await.unwrap();
            writer.in_flight = Some(tokio::task::spawn_blocking(|| {
                Err(io::Error::other("injected write error"))
            }));
            let err = if commit_next {
                Box::new(writer).commit().await.unwrap_err()
            } else {
                let err = writer.write_buf(vec![0; STREAM_BUFFER]).await.unwrap_err();
                assert!(writer.write(&[0]).await.is_err());
                assert!(Box::new(writer).commit().await.is_err());
                err
            };
            assert!(
                matches!(&err, StorageError::Io { operation: "put_stream", source, .. }
                    if source.to_string() == "injected write error"),
                "{err:?}"
            );
            assert_eq!(storage.get("obj").await.unwrap(), &b"previous"[..]);
            assert!(temp_files(storage.root()).is_empty());
        }
    }

    #[tokio::test]
    async fn owned_chunks_go_to_the_file_as_they_are_and_small_ones_are_staged() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path()).unwrap();
        let mut writer = storage.open_writer("obj").await.unwrap();
        let small = writer.write_buf(vec![1; 100]).await.unwrap();
        assert!(small.is_empty());
        assert_eq!(writer.staging.len(), 100);
        assert!(writer.in_flight.is_none());
        // Behind staged bytes, a large chunk is staged too (order is kept).
        writer.write_buf(vec![2; STREAM_BUFFER]).await.unwrap();
        assert!(writer.staging.is_empty());
        assert!(writer.in_flight.is_some());
        let big = vec![3; STREAM_BUFFER + 1];
        let pointer = big.as_ptr();
        let returned = writer.write_buf(big).await.unwrap();
        assert!(returned.is_empty());
        assert_ne!(returned.as_ptr(), pointer, "the chunk itself was kept");
        let meta = Box::new(writer).commit().await.unwrap();
        assert_eq!(meta.size, 100 + 2 * STREAM_BUFFER as u64 + 1);
        let bytes = storage.get("obj").await.unwrap();
        assert!(bytes[..100].iter().all(|&b| b == 1));
        assert!(bytes[100..100 + STREAM_BUFFER].iter().all(|&b| b == 2));
        assert!(bytes[100 + STREAM_BUFFER..].iter().all(|&b| b == 3));
    }

    #[tokio::test]
    async fn flushes_start_once_the_interval_has_built_up() {
        let dir = tempfile::tempdir().unwrap();
        let every = STREAM_BUFFER as u64 + 1000;
        let storage = LocalFsStorage::new(dir.path())
            .unwrap()
            .with_background_sync(Some(every));
        let mut writer = storage.open_writer("obj").await.unwrap();
        writer.write(&[1; STREAM_BUFFER]).await.unwrap();
        let background = writer.background.as_ref().unwrap();
        assert!(background.running.is_none());
        assert_eq!(background.unsynced, STREAM_BUFFER as u64);
        writer.write(&[1; STREAM_BUFFER]).await.unwrap();
        let background = writer.background.as_ref().unwrap();
        assert!(background.running.is_some());
        assert_eq!(background.unsynced, 0);
        let meta = Box::new(writer).commit().await.unwrap();
        assert_eq!(meta.size, 2 * STREAM_BUFFER as u64);

        let storage = storage.with_background_sync(None);
        let mut writer = storage.open_writer("obj").await.unwrap();
        writer.write(&[1; 2 * STREAM_BUFFER]).await.unwrap();
        assert!(writer.background.is_none());
        Box::new(writer).abort().await.unwrap();
    }

    #[tokio::test]
    async fn a_write_dropped_while_it_waits_fails_the_commit_and_never_overlaps() {
        use futures::FutureExt;

        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path()).unwrap();
        let mut writer = storage.open_writer("obj").await.unwrap();
        // A write in progress that finishes only when released.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        writer.in_flight = Some(tokio::task::spawn_blocking(move || {
            let _ = hold.recv();
            Ok(Vec::new())
        }));
        // The next write waits for it; polled once, then dropped.
        assert!(writer
            .write_buf(vec![7; STREAM_BUFFER])
            .now_or_never()
            .is_none());
        assert!(
            writer.in_flight.is_some(),
            "the write in progress is still tracked, so no second one starts beside it"
        );
        release.send(()).unwrap();
        match Box::new(writer).commit().await {
            Err(StorageError::LengthMismatch {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (STREAM_BUFFER as u64, 0)),
            other => panic!("expected a length mismatch, got {other:?}"),
        }
        assert!(temp_files(storage.root()).is_empty());
        assert!(!storage.exists("obj").await.unwrap());
    }
}
