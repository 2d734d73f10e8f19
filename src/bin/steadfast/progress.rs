//! The progress of a verification: a storage that counts the bytes read
//! through it ([`Counted`]), and the bar that shows them on standard error.
//!
//! Counting at the storage, rather than after each shard, moves the bar
//! while one large shard is read, whatever the library reads it with (whole
//! objects, ranges or streams).

use std::io::IsTerminal;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use steadfast::storage::{
    Bytes, CheckpointStorage, ObjectMeta, ObjectReader, ObjectStream, ObjectWriter, Result,
};
use tokio::io::{AsyncRead, ReadBuf};

/// Whether a bar is shown: not with `--json`, and only when standard error
/// is a terminal.
pub fn visible(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// The bar of a verification of `total` bytes: on standard error when it is
/// a terminal and the output is not JSON, hidden otherwise.
pub fn bar(total: u64, json: bool) -> ProgressBar {
    if !visible(json) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:20!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A storage that forwards every call to `inner` and counts the bytes read.
#[derive(Debug, Clone)]
pub struct Counted {
    inner: Arc<dyn CheckpointStorage>,
    read: Arc<AtomicU64>,
    bar: ProgressBar,
}

impl Counted {
    /// Counts the reads of `inner`, moving `bar` with them.
    pub fn new(inner: Arc<dyn CheckpointStorage>, bar: ProgressBar) -> Counted {
        Counted {
            inner,
            read: Arc::new(AtomicU64::new(0)),
            bar,
        }
    }

    /// The bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    fn count(&self, n: u64) {
        self.read.fetch_add(n, Ordering::Relaxed);
        self.bar.inc(n);
    }
}

/// A reader that counts what it yields.
struct CountingReader {
    inner: ObjectReader,
    counted: Counted,
}

impl AsyncRead for CountingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner.as_mut().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let n = buf.filled().len().saturating_sub(before);
            self.counted.count(n as u64);
        }
        polled
    }
}

#[async_trait]
impl CheckpointStorage for Counted {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<()> {
        self.inner.put_if_absent(key, data).await
    }
    async fn get(&self, key: &str) -> Result<Bytes> {
        let bytes = self.inner.get(key).await?;
        self.count(bytes.len() as u64);
        Ok(bytes)
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        self.inner.put_stream(key).await
    }
    async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
        let stream = self.inner.get_stream(key).await?;
        Ok(ObjectStream {
            meta: stream.meta,
            reader: Box::pin(CountingReader {
                inner: stream.reader,
                counted: self.clone(),
            }),
        })
    }
    async fn get_sized(&self, key: &str, size: u64) -> Result<Bytes> {
        let bytes = self.inner.get_sized(key, size).await?;
        self.count(bytes.len() as u64);
        Ok(bytes)
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let bytes = self.inner.get_range(key, range).await?;
        self.count(bytes.len() as u64);
        Ok(bytes)
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }
    async fn cleanup_temporary(&self, older_than: Duration) -> Result<u64> {
        self.inner.cleanup_temporary(older_than).await
    }
}
