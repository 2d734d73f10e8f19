//! Replicated reads: find which replicas hold a key (the visibility rule:
//! W of the replicas that answered), then read the first copy that
//! verifies, in read order, falling back to the next; copies found missing
//! or bad are handed to read repair.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use super::envelope::{self, Footer, FOOTER_LEN};
use super::{count, ReplicatedStorage};
use crate::storage::{
    check_range, validate_key, Bytes, ObjectMeta, ObjectReader, ObjectStream, ReplicaFailure,
    Result, StorageError,
};

/// Objects up to this size are read whole and verified before a
/// `get_stream` returns; larger ones are verified as they stream.
const VERIFY_BEFORE_STREAMING: u64 = 4 * 1024 * 1024;

/// Where a key's copies are, as far as the replicas that answered say.
pub(super) struct Located {
    /// The replicas that hold a copy, with the copy's stored metadata, in
    /// read order (replicas that have not failed recently first).
    pub(super) holders: Vec<(usize, ObjectMeta)>,
    /// The replicas that answered without a copy (or with an object too
    /// short to be one).
    pub(super) missing: Vec<usize>,
}

impl Located {
    /// The metadata to report: the payload's size, from the first holder in
    /// replica order.
    pub(super) fn meta(&self, key: &str) -> ObjectMeta {
        let first = self.holders.iter().min_by_key(|(i, _)| *i).map(|(_, m)| m);
        ObjectMeta {
            key: key.to_string(),
            size: first.map_or(0, |m| m.size.saturating_sub(FOOTER_LEN)),
            last_modified: first.and_then(|m| m.last_modified),
        }
    }
}

fn corrupt(
    storage: &ReplicatedStorage,
    key: &str,
    replica: usize,
    reason: String,
) -> ReplicaFailure {
    storage.inner.failure(
        replica,
        StorageError::CorruptCopy {
            key: key.to_string(),
            replica,
            reason,
        },
    )
}

/// What reading the copies of one key found: the replicas whose copy is
/// missing or bad (for read repair), and every failure (for the error).
struct Attempts {
    bad: Vec<usize>,
    failures: Vec<ReplicaFailure>,
}

impl Attempts {
    fn new(located: &Located) -> Self {
        Attempts {
            bad: located.missing.clone(),
            failures: Vec::new(),
        }
    }

    /// Records a failed read of replica `i`'s copy: a missing copy is bad, a
    /// failing replica is not (a rewrite would fail too).
    fn failed(&mut self, storage: &ReplicatedStorage, i: usize, e: StorageError) {
        match &e {
            StorageError::NotFound { .. } => self.bad.push(i),
            StorageError::CorruptCopy { .. } | StorageError::LengthMismatch { .. } => {
                self.bad.push(i)
            }
            _ => storage.inner.record(i, false),
        }
        self.failures.push(storage.inner.failure(i, e));
    }

    /// The payload of replica `i`'s copy as `read` returned it, if the copy
    /// verifies; otherwise records why not and returns `None`.
    fn accept(
        &mut self,
        storage: &ReplicatedStorage,
        key: &str,
        i: usize,
        read: Result<Bytes>,
    ) -> Option<Bytes> {
        match read.map(|stored| envelope::open(&stored).map(|(payload, _)| payload)) {
            Ok(Ok(payload)) => Some(payload),
            Ok(Err(reason)) => {
                let failure = corrupt(storage, key, i, reason);
                self.bad.push(i);
                self.failures.push(failure);
                None
            }
            Err(e) => {
                self.failed(storage, i, e);
                None
            }
        }
    }

    /// The error when no copy could be read: `NotFound` when every copy
    /// vanished meanwhile (a delete), `NoVerifiedCopy` otherwise.
    fn into_error(self, key: &str) -> StorageError {
        if self
            .failures
            .iter()
            .all(|f| matches!(*f.error, StorageError::NotFound { .. }))
        {
            return StorageError::NotFound {
                key: key.to_string(),
            };
        }
        StorageError::NoVerifiedCopy {
            key: key.to_string(),
            failures: self.failures.into(),
        }
    }
}

/// The answers to a `locate` so far.
#[derive(Default)]
struct Found {
    holders: Vec<(usize, ObjectMeta)>,
    missing: Vec<usize>,
    errored: Vec<usize>,
    failures: Vec<ReplicaFailure>,
}

impl Found {
    fn take(&mut self, storage: &ReplicatedStorage, i: usize, result: Result<ObjectMeta>) {
        match result {
            Ok(meta) if meta.size >= FOOTER_LEN => self.holders.push((i, meta)),
            Ok(_) | Err(StorageError::NotFound { .. }) => self.missing.push(i),
            Err(e) => {
                storage.inner.record(i, false);
                self.errored.push(i);
                self.failures.push(storage.inner.failure(i, e));
            }
        }
    }

    fn held(&self) -> Vec<usize> {
        self.holders.iter().map(|(i, _)| *i).collect()
    }

    fn answered(&self) -> usize {
        self.holders.len() + self.missing.len()
    }
}

impl ReplicatedStorage {
    /// Asks every replica for the key's metadata, until W hold it (and
    /// enough answered), or every replica answered.
    ///
    /// # Errors
    ///
    /// [`StorageError::NotFound`] when the key is held by fewer than W of
    /// the replicas that answered; [`StorageError::QuorumNotReached`] when
    /// fewer replicas answered than a read needs.
    pub(super) async fn locate(&self, key: &str) -> Result<Located> {
        self.find(key, true).await
    }

    /// [`locate`](Self::locate), checking the replicas that did not answer
    /// in time for read repair when `probe` says so.
    pub(super) async fn find(&self, key: &str, probe: bool) -> Result<Located> {
        validate_key(key)?;
        let inner = &self.inner;
        let needed = inner.answers_needed();
        let mut pending: FuturesUnordered<_> = inner
            .replicas
            .iter()
            .enumerate()
            .map(|(i, slot)| async move { (i, slot.storage.head(key).await) })
            .collect();
        let mut found = Found::default();
        while let Some((i, result)) = pending.next().await {
            found.take(self, i, result);
            if inner.quorum_met(&found.held()) && found.answered() >= needed {
                break;
            }
        }
        // The answers already in, without waiting for the others.
        while let Some(Some((i, result))) = pending.next().now_or_never() {
            found.take(self, i, result);
        }
        drop(pending);
        let Found {
            mut holders,
            missing,
            errored,
            failures,
        } = found;
        let held: Vec<usize> = holders.iter().map(|(i, _)| *i).collect();
        let answered = holders.len() + missing.len();
        if answered < needed {
            return Err(StorageError::QuorumNotReached {
                operation: "read",
                key: key.to_string(),
                needed: count(needed),
                succeeded: count(answered),
                failures: failures.into(),
            });
        }
        if !inner.quorum_met(&held) {
            return Err(StorageError::NotFound {
                key: key.to_string(),
            });
        }
        // The replicas that have not answered yet may lack a copy: check
        // them in the background, for read repair.
        let unanswered: Vec<usize> = (0..inner.replicas.len())
            .filter(|i| !held.contains(i) && !missing.contains(i) && !errored.contains(i))
            .collect();
        if probe {
            self.probe(key, unanswered);
        }
        let order = inner.read_order(held);
        holders.sort_by_key(|(i, _)| order.iter().position(|o| o == i));
        Ok(Located { holders, missing })
    }

    pub(super) async fn head_replicated(&self, key: &str) -> Result<ObjectMeta> {
        Ok(self.locate(key).await?.meta(key))
    }

    pub(super) async fn get_verified(&self, key: &str) -> Result<Bytes> {
        let located = self.locate(key).await?;
        self.read_whole(key, &located).await
    }

    /// The payload of the first copy that verifies, in read order.
    async fn read_whole(&self, key: &str, located: &Located) -> Result<Bytes> {
        let mut attempts = Attempts::new(located);
        for &(i, _) in &located.holders {
            let read = self.inner.replicas[i].storage.get(key).await;
            if let Some(payload) = attempts.accept(self, key, i, read) {
                self.schedule_repair(key, attempts.bad);
                return Ok(payload);
            }
        }
        Err(self.give_up(key, attempts))
    }

    pub(super) async fn get_sized_verified(&self, key: &str, size: u64) -> Result<Bytes> {
        let located = self.locate(key).await?;
        let mut attempts = Attempts::new(&located);
        let mut other_size = None;
        for &(i, ref meta) in &located.holders {
            let payload = meta.size - FOOTER_LEN;
            let Some(stored_size) = size.checked_add(FOOTER_LEN).filter(|_| payload == size) else {
                other_size.get_or_insert(payload);
                continue;
            };
            let read = self.inner.replicas[i]
                .storage
                .get_sized(key, stored_size)
                .await;
            if let Some(payload) = attempts.accept(self, key, i, read) {
                self.schedule_repair(key, attempts.bad);
                return Ok(payload);
            }
        }
        if let (Some(actual), true) = (other_size, attempts.failures.is_empty()) {
            return Err(StorageError::LengthMismatch {
                key: key.to_string(),
                expected: size,
                actual,
            });
        }
        Err(self.give_up(key, attempts))
    }

    /// Reads `range` of the first copy whose footer matches its length.
    /// The digest is not checked (it needs every byte): a range read
    /// checks the copy's length and format, and the checkpoint layer
    /// checks the bytes against its own digests.
    pub(super) async fn get_range_checked(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let located = self.locate(key).await?;
        let mut attempts = Attempts::new(&located);
        for &(i, ref meta) in &located.holders {
            let payload = meta.size - FOOTER_LEN;
            check_range(key, &range, payload)?;
            let storage = &self.inner.replicas[i].storage;
            let (data, footer) = futures::join!(
                storage.get_range(key, range.clone()),
                storage.get_range(key, payload..meta.size)
            );
            let checked = footer.and_then(|footer| {
                Footer::decode(&footer)
                    .and_then(|f| {
                        if f.payload_len == payload {
                            Ok(())
                        } else {
                            Err(format!(
                                "the footer records {} payload bytes, the copy holds {payload}",
                                f.payload_len
                            ))
                        }
                    })
                    .map_err(|reason| StorageError::CorruptCopy {
                        key: key.to_string(),
                        replica: i,
                        reason,
                    })
            });
            match checked.and(data) {
                Ok(bytes) if bytes.len() as u64 == range.end - range.start => {
                    self.schedule_repair(key, attempts.bad);
                    return Ok(bytes);
                }
                Ok(bytes) => attempts.failed(
                    self,
                    i,
                    StorageError::CorruptCopy {
                        key: key.to_string(),
                        replica: i,
                        reason: format!(
                            "a range of {} bytes read {}",
                            range.end - range.start,
                            bytes.len()
                        ),
                    },
                ),
                Err(e) => attempts.failed(self, i, e),
            }
        }
        Err(self.give_up(key, attempts))
    }

    pub(super) async fn get_stream_verified(&self, key: &str) -> Result<ObjectStream> {
        let located = self.locate(key).await?;
        let meta = located.meta(key);
        if meta.size <= VERIFY_BEFORE_STREAMING {
            // Small enough to verify before the first byte is handed out
            // (a manifest, say), with the fallback of a whole read.
            let payload = self.read_whole(key, &located).await?;
            return Ok(ObjectStream {
                meta: ObjectMeta {
                    size: payload.len() as u64,
                    ..meta
                },
                reader: Box::pin(std::io::Cursor::new(payload)),
            });
        }
        let mut attempts = Attempts::new(&located);
        for &(i, _) in &located.holders {
            match self.inner.replicas[i].storage.get_stream(key).await {
                Ok(stream) if stream.meta.size >= FOOTER_LEN => {
                    let payload = stream.meta.size - FOOTER_LEN;
                    self.schedule_repair(key, attempts.bad);
                    let reader = VerifyingReader {
                        inner: stream.reader,
                        remaining: payload,
                        payload_len: payload,
                        hasher: Sha256::new(),
                        footer: Vec::with_capacity(FOOTER_LEN as usize),
                        scratch: Vec::new(),
                        state: State::Payload,
                        on_bad: Some((self.clone(), key.to_string(), i)),
                    };
                    return Ok(ObjectStream {
                        meta: ObjectMeta {
                            key: key.to_string(),
                            size: payload,
                            last_modified: stream.meta.last_modified,
                        },
                        reader: Box::pin(reader) as ObjectReader,
                    });
                }
                Ok(stream) => attempts.failed(
                    self,
                    i,
                    StorageError::CorruptCopy {
                        key: key.to_string(),
                        replica: i,
                        reason: format!(
                            "the copy has {} bytes, fewer than its {FOOTER_LEN}-byte footer",
                            stream.meta.size
                        ),
                    },
                ),
                Err(e) => attempts.failed(self, i, e),
            }
        }
        Err(self.give_up(key, attempts))
    }

    /// No copy could be read: repair what can be (from a copy a later read
    /// may find), and say why.
    fn give_up(&self, key: &str, attempts: Attempts) -> StorageError {
        attempts.into_error(key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Payload,
    Footer,
    Done,
    Failed,
}

/// Passes a copy's payload through, hashing it, then reads the footer and
/// fails the read that reaches the end when the length or digest does not
/// match (and reports the copy for repair).
struct VerifyingReader {
    inner: ObjectReader,
    remaining: u64,
    payload_len: u64,
    hasher: Sha256,
    footer: Vec<u8>,
    scratch: Vec<u8>,
    state: State,
    on_bad: Option<(ReplicatedStorage, String, usize)>,
}

/// How much of the payload one poll reads at most.
const SCRATCH_LEN: usize = 256 * 1024;

impl VerifyingReader {
    fn fail(&mut self, kind: io::ErrorKind, reason: String) -> io::Error {
        self.state = State::Failed;
        if let Some((storage, key, replica)) = self.on_bad.take() {
            tracing::warn!(
                target: super::TARGET,
                replica = %storage.inner.name(replica),
                key = %key,
                reason = %reason,
                "a streamed copy did not verify"
            );
            storage.schedule_repair(&key, vec![replica]);
            return io::Error::new(
                kind,
                format!(
                    "the copy of {key:?} on replica {} is damaged: {reason}",
                    storage.inner.name(replica)
                ),
            );
        }
        io::Error::new(kind, reason)
    }
}

impl AsyncRead for VerifyingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match this.state {
                State::Done => return Poll::Ready(Ok(())),
                State::Failed => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the copy failed its verification",
                    )))
                }
                State::Payload if this.remaining == 0 => this.state = State::Footer,
                State::Payload => {
                    if buf.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    let want = (buf.remaining() as u64)
                        .min(this.remaining)
                        .min(SCRATCH_LEN as u64) as usize;
                    if this.scratch.len() < want {
                        this.scratch.resize(want, 0);
                    }
                    let mut read = ReadBuf::new(&mut this.scratch[..want]);
                    match this.inner.as_mut().poll_read(cx, &mut read) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) => {}
                    }
                    let n = read.filled().len();
                    if n == 0 {
                        let reason = format!(
                            "the copy ends after {} of its {} payload bytes",
                            this.payload_len - this.remaining,
                            this.payload_len
                        );
                        return Poll::Ready(Err(this.fail(io::ErrorKind::UnexpectedEof, reason)));
                    }
                    this.hasher.update(&this.scratch[..n]);
                    buf.put_slice(&this.scratch[..n]);
                    this.remaining -= n as u64;
                    return Poll::Ready(Ok(()));
                }
                State::Footer => {
                    let mut rest = [0u8; FOOTER_LEN as usize];
                    let missing = FOOTER_LEN as usize - this.footer.len();
                    if missing == 0 {
                        let footer = Footer::decode(&this.footer);
                        let digest: [u8; 32] = std::mem::take(&mut this.hasher).finalize().into();
                        let problem = match footer {
                            Err(reason) => Some(reason),
                            Ok(f) if f.payload_len != this.payload_len => Some(format!(
                                "the footer records {} payload bytes, the copy holds {}",
                                f.payload_len, this.payload_len
                            )),
                            Ok(f) if f.digest != digest => Some(format!(
                                "the payload's SHA-256 is {}, its footer records {}",
                                envelope::hex(&digest),
                                envelope::hex(&f.digest)
                            )),
                            Ok(_) => None,
                        };
                        if let Some(reason) = problem {
                            return Poll::Ready(Err(this.fail(io::ErrorKind::InvalidData, reason)));
                        }
                        this.state = State::Done;
                        continue;
                    }
                    let mut read = ReadBuf::new(&mut rest[..missing]);
                    match this.inner.as_mut().poll_read(cx, &mut read) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) => {}
                    }
                    if read.filled().is_empty() {
                        let reason = "the copy ends inside its footer".to_string();
                        return Poll::Ready(Err(this.fail(io::ErrorKind::UnexpectedEof, reason)));
                    }
                    this.footer.extend_from_slice(read.filled());
                }
            }
        }
    }
}
