//! [`ReplicatedStorage`]: a [`CheckpointStorage`] that keeps a copy of every
//! object on each of N other storages (replicas), with quorum writes,
//! verified reads, read repair and a scrub ([`ReplicatedStorage::repair`]).
//!
//! The protocol is written down on [`ReplicatedStorage`].
//!
//! The code is split by mechanism: `level.rs` (the consistency levels),
//! `builder.rs` (replicas and the checks of the settings), `envelope.rs`
//! (the footer), `write.rs`, `read.rs`, `listing.rs`, `repair.rs`.

mod builder;
mod envelope;
mod level;
mod listing;
mod read;
mod repair;
mod write;

pub use builder::{Replica, ReplicatedStorageBuilder};
pub use level::ConsistencyLevel;
pub use repair::{KeyRepair, RepairOutcome, RepairReport, RepairStats};

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::time::Instant;

use super::{
    Bytes, CheckpointStorage, ObjectMeta, ObjectStream, ObjectWriter, ReplicaFailure, Result,
    StorageError,
};

const TARGET: &str = "steadfast::storage::replicated";

/// How long a replica that failed stays last in read order.
const RECENT_FAILURE: Duration = Duration::from_secs(30);

/// A number of replicas as the errors record it.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A replica as the storage holds it: its storage, its name in errors and
/// its recent failures (reads try replicas that have not failed first).
struct Slot {
    storage: Arc<dyn CheckpointStorage>,
    domain: Option<String>,
    /// `#<index>`, and ` (<domain>)` when it has one.
    name: String,
    /// When it last failed (tokio's clock).
    failed_at: Mutex<Option<Instant>>,
}

/// Counts background tasks, so that tests and shutdowns can wait for them.
struct InFlight {
    count: watch::Sender<usize>,
}

impl InFlight {
    fn new() -> Self {
        InFlight {
            count: watch::Sender::new(0),
        }
    }

    fn start(self: &Arc<Self>) -> InFlightGuard {
        self.count.send_modify(|n| *n += 1);
        InFlightGuard(Arc::clone(self))
    }

    async fn wait(&self) {
        let mut rx = self.count.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail here.
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// Marks one background task in flight until dropped.
struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.count.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// For each (replica, key) with a write running: the ticket of the last
/// write started, and what says it ended.
type Tails = HashMap<(usize, String), (u64, oneshot::Receiver<()>)>;

/// One write's turn at a (replica, key): it waits for the write started
/// before it on that key and replica, and the next one waits for it (until
/// the turn is dropped). Writes of a key to a replica thus land in the
/// order they started, even when some run on in the background.
struct Turn {
    inner: Arc<Inner>,
    replica: usize,
    key: String,
    ticket: u64,
    previous: Option<oneshot::Receiver<()>>,
    /// Dropped with the turn: tells the next write to go.
    _done: oneshot::Sender<()>,
}

impl Turn {
    /// Takes the next turn at `key` on `replica`, now (in the order the
    /// calls are made).
    fn take(inner: &Arc<Inner>, replica: usize, key: &str) -> Turn {
        Turn::take_locked(&mut inner.tails(), inner, replica, key)
    }

    /// Takes a turn with the map of tails locked.
    fn take_locked(tails: &mut Tails, inner: &Arc<Inner>, replica: usize, key: &str) -> Turn {
        let (done, next) = oneshot::channel();
        let ticket = inner.tickets.fetch_add(1, Ordering::Relaxed);
        let previous = tails
            .insert((replica, key.to_string()), (ticket, next))
            .map(|(_, rx)| rx);
        Turn {
            inner: Arc::clone(inner),
            replica,
            key: key.to_string(),
            ticket,
            previous,
            _done: done,
        }
    }

    /// Takes the next turn at `key` on each of `replicas`, at once (under
    /// one lock): every batch of turns is in the same order on every
    /// replica, so that a task waiting for several turns never waits in a
    /// cycle.
    fn take_many(
        inner: &Arc<Inner>,
        replicas: impl IntoIterator<Item = usize>,
        key: &str,
    ) -> Vec<Turn> {
        let mut tails = inner.tails();
        replicas
            .into_iter()
            .map(|replica| Turn::take_locked(&mut tails, inner, replica, key))
            .collect()
    }

    /// Waits until the write before this one has ended.
    async fn wait(&mut self) {
        if let Some(previous) = self.previous.take() {
            // An error only says the previous turn was dropped: it ended.
            let _ = previous.await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut tails = self.inner.tails();
        let tail = (self.replica, std::mem::take(&mut self.key));
        if tails.get(&tail).is_some_and(|(t, _)| *t == self.ticket) {
            tails.remove(&tail);
        }
    }
}

struct Inner {
    replicas: Vec<Slot>,
    level: ConsistencyLevel,
    distinct_domains: bool,
    allow_put_if_absent_at_one: bool,
    write_quorum: usize,
    read_quorum: usize,
    writes: Arc<InFlight>,
    repairs: Arc<InFlight>,
    repair_permits: Arc<Semaphore>,
    stats: repair::Counters,
    /// The last write started on each (replica, key) still running, with
    /// its ticket: the next write of that key to that replica waits for it.
    tails: Mutex<Tails>,
    tickets: AtomicU64,
}

impl Inner {
    fn tails(&self) -> std::sync::MutexGuard<'_, Tails> {
        // Every critical section is one map operation: a panic cannot leave
        // the map half-updated.
        self.tails.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the replicas in `indices` make a write quorum: W of them,
    /// in W distinct failure domains when that is required.
    fn quorum_met(&self, indices: &[usize]) -> bool {
        self.distinct(indices) >= self.write_quorum
    }

    /// How many of `indices` count towards a quorum: all of them, or the
    /// number of distinct domains among them when domains must differ.
    fn distinct(&self, indices: &[usize]) -> usize {
        if !self.distinct_domains {
            return indices.len();
        }
        let mut domains: Vec<&str> = indices
            .iter()
            .filter_map(|&i| self.replicas.get(i).and_then(|s| s.domain.as_deref()))
            .collect();
        domains.sort_unstable();
        domains.dedup();
        domains.len()
    }

    /// Reads need this many answers: R, and at least W (a key is shown only
    /// when W replicas that answered hold it).
    fn answers_needed(&self) -> usize {
        self.read_quorum.max(self.write_quorum)
    }

    fn failure(&self, replica: usize, error: StorageError) -> ReplicaFailure {
        ReplicaFailure {
            replica: self.name(replica),
            error: Box::new(error),
        }
    }

    fn name(&self, replica: usize) -> String {
        self.replicas
            .get(replica)
            .map_or_else(|| format!("#{replica}"), |s| s.name.clone())
    }

    /// Records a replica's failure (a success changes nothing: a replica
    /// that failed stays last in read order for [`RECENT_FAILURE`]).
    fn record(&self, replica: usize, ok: bool) {
        if ok {
            return;
        }
        if let Some(slot) = self.replicas.get(replica) {
            *slot.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
    }

    /// Whether the replica failed within the last [`RECENT_FAILURE`].
    fn failed_recently(&self, replica: usize) -> bool {
        self.replicas.get(replica).is_some_and(|slot| {
            slot.failed_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|at| at.elapsed() < RECENT_FAILURE)
        })
    }

    /// Replica indices in read order: those without recent failures first,
    /// each group in replica order.
    fn read_order(&self, indices: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut order: Vec<usize> = indices.into_iter().collect();
        order.sort_by_key(|&i| (self.failed_recently(i), i));
        order
    }
}

/// A [`CheckpointStorage`] over N replicas: quorum writes, reads that
/// verify every copy, read repair and a scrub.
///
/// # Protocol
///
/// With N replicas and a [`ConsistencyLevel`], a write needs W
/// acknowledgements (`One`: 1, `Quorum`: ⌊N/2⌋+1, `All`: N) and a read R =
/// N − W + 1 answers, so that R + W > N: any R replicas that answer include
/// one that acknowledged every successful write.
///
/// - **Copies verify themselves.** Each replica stores the payload followed
///   by a 52-byte footer (magic, version, payload length, SHA-256 of the
///   payload). `head` and `list` report payload sizes (stored size − 52).
/// - **Writes** (`put`, `put_stream`, `delete`) go to every replica at once
///   and succeed once W replicas acknowledge (a delete once max(R, W) did,
///   so that fewer than W copies are left and no read shows the key; W
///   replicas in distinct failure
///   domains, with [`require_distinct_domains`](ReplicatedStorageBuilder::require_distinct_domains)).
///   The writes still running then go on in the background: a slow replica
///   never holds up an acknowledged write, and its copy lands (or fails,
///   logged and counted, for [`repair`](ReplicatedStorage::repair) to fix)
///   later; [`ReplicatedStorage::wait_for_writes`] waits for them. Writes
///   of one key to one replica run in the order they started, so a late
///   copy never lands over a newer one (or after a delete). A write
///   that fails leaves the copies that landed where they are: fewer than W,
///   so nothing shows them (below). The error
///   ([`StorageError::QuorumNotReached`]) names every replica that failed,
///   with its error, and how many were needed.
/// - **Visibility.** A key exists only when W of the replicas that answered
///   hold a copy of it: `list`, `exists`, `head` and every read
///   (`get`, `get_sized`, `get_range`, `get_stream`) follow this one rule,
///   and need at least max(R, W) replicas to answer (they fail with
///   [`StorageError::QuorumNotReached`], naming the unreachable replicas,
///   rather than report a key missing that they could not see). So a
///   checkpoint whose manifest reached fewer than W replicas is never
///   listed, never loaded, and a deleted object never comes back from the
///   replica that missed the delete. The price: a key that W replicas
///   acknowledged but one of them lost (or cannot be reached) while another
///   never got its copy is hidden until a repair or the replica comes back.
///   At `Quorum` one replica of three may be down; at `One` and `All`
///   reads need every replica. A read of one key returns as soon as W
///   replicas that hold it answered; `list` waits for every replica's
///   answer (a replica that fails answers at once; one that hangs holds the
///   listing: bound the call with a timeout where that matters).
/// - **Reads** return the first copy whose length and digest verify,
///   trying replicas that have not failed in the last 30 seconds first (in
///   replica order otherwise), and fall back to
///   the next on a missing, short, damaged or failing copy. `get_range`
///   reads the range and the footer, and checks the copy's length and
///   format but not its digest, which needs every byte: the checkpoint layer
///   verifies each range it reads against its own digests. `get_stream` of
///   an object up to 4 MiB (a manifest) reads and verifies it whole before
///   returning, with the same fallback as `get`; a larger object is hashed
///   as it streams, and the read that reaches its end fails (an
///   [`io::ErrorKind::InvalidData`](std::io::ErrorKind::InvalidData) error)
///   when the digest does not match: a caller must not use the bytes of a
///   stream that failed (the checkpoint layer verifies every shard it
///   streams by its own digest too), and the copy is repaired.
/// - **Read repair.** A read that found a copy missing, short or damaged
///   rewrites it from a verified copy in a background task (a read that
///   returned before every replica answered checks the others in the
///   background too; at most
///   [`max_repairs_in_flight`](ReplicatedStorageBuilder::max_repairs_in_flight)
///   at once; more are skipped and counted, for the scrub to fix), counted
///   in [`ReplicatedStorage::repair_stats`]. A repair first waits for the
///   writes and deletes of the key already started on every replica, and
///   those started after it wait for the repair; it then rewrites only a
///   key still visible, so it never brings back a deleted key;
///   [`ReplicatedStorage::wait_for_repairs`] waits for them.
/// - **`put_if_absent`** asks the replicas one after the other, in their
///   fixed order (the same for every writer), until one creates the copy or
///   already holds one: that replica is the arbiter of a race, since two
///   writers reach it first, and a copy already there ends the write with
///   [`StorageError::AlreadyExists`]. After the arbiter the other replicas
///   are asked at once, and the write succeeds once W hold its copy; a
///   replica that answers with another writer's copy has it overwritten once
///   the write has won. So at `Quorum` two writers never both win (each
///   needs a majority), and when the arbiter answers both, one of them
///   wins. A writer that did not win deletes the copies it created (those
///   that still hold its bytes) and reports `AlreadyExists` (it met another
///   copy) or [`StorageError::QuorumNotReached`]. A copy left on the
///   arbiter by a write that crashed half-way (held by fewer than W, so not
///   visible) makes later `put_if_absent` calls of that key report
///   `AlreadyExists`: the scrub reports such keys
///   ([`RepairOutcome::BelowQuorum`]); delete them to free the name. At
///   `One` two writers could each win on a different replica, so
///   `put_if_absent` is refused
///   ([`StorageError::ConditionalWriteNeedsQuorum`]) unless
///   [`allow_put_if_absent_at_one`](ReplicatedStorageBuilder::allow_put_if_absent_at_one)
///   says the caller accepts that.
/// - **`cleanup_temporary`** runs on every replica and needs W of them to
///   succeed.
///
///
/// Clones share the replicas, the background tasks and the counters.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{
///     Bytes, CheckpointStorage, ConsistencyLevel, MemoryStorage, Replica, ReplicatedStorage,
/// };
/// use steadfast::storage::testing::Operation;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b, c) = (MemoryStorage::new(), MemoryStorage::new(), MemoryStorage::new());
/// let storage = ReplicatedStorage::builder()
///     .replica(Replica::new(a.clone()).domain("rack-a"))
///     .replica(Replica::new(b.clone()).domain("rack-b"))
///     .replica(Replica::new(c.clone()).domain("rack-c"))
///     .consistency(ConsistencyLevel::Quorum)
///     .build()?;
///
/// c.faults().fail_next(Operation::Put, 1); // one replica down: still a quorum
/// storage.put("run/shard-0", Bytes::from_static(b"weights")).await?;
/// assert_eq!(storage.get("run/shard-0").await?, &b"weights"[..]);
/// assert_eq!(storage.head("run/shard-0").await?.size, 7);
///
/// // The read found c's copy missing and rewrote it.
/// storage.wait_for_repairs().await;
/// assert_eq!(c.keys(), ["run/shard-0"]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ReplicatedStorage {
    inner: Arc<Inner>,
}

impl fmt::Debug for ReplicatedStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let replicas: Vec<&str> = self
            .inner
            .replicas
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        f.debug_struct("ReplicatedStorage")
            .field("replicas", &replicas)
            .field("consistency", &self.inner.level)
            .field("write_quorum", &self.inner.write_quorum)
            .field("read_quorum", &self.inner.read_quorum)
            .field("distinct_domains", &self.inner.distinct_domains)
            .finish_non_exhaustive()
    }
}

impl ReplicatedStorage {
    /// A builder with no replica yet, `Quorum` consistency, and domains not
    /// required to differ.
    ///
    /// # Default
    ///
    /// - consistency: [`ConsistencyLevel::Quorum`]
    /// - require_distinct_domains: `false`
    /// - allow_put_if_absent_at_one: `false`
    /// - max_repairs_in_flight: 16
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
    ///
    /// let storage = ReplicatedStorage::builder()
    ///     .replicas((0..3).map(|_| Replica::new(MemoryStorage::new())))
    ///     .build()?;
    /// assert_eq!(storage.write_quorum(), 2);
    /// assert!(ReplicatedStorage::builder().build().is_err()); // no replica
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> ReplicatedStorageBuilder {
        ReplicatedStorageBuilder::new()
    }

    /// The number of replicas, N.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
    /// let storage = ReplicatedStorage::builder().replica(Replica::new(MemoryStorage::new())).build()?;
    /// assert_eq!(storage.replica_count(), 1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn replica_count(&self) -> usize {
        self.inner.replicas.len()
    }

    /// W: how many replicas acknowledge a write before it succeeds.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{ConsistencyLevel, MemoryStorage, Replica, ReplicatedStorage};
    /// let storage = ReplicatedStorage::builder()
    ///     .replicas((0..3).map(|_| Replica::new(MemoryStorage::new())))
    ///     .consistency(ConsistencyLevel::All)
    ///     .build()?;
    /// assert_eq!(storage.write_quorum(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn write_quorum(&self) -> usize {
        self.inner.write_quorum
    }

    /// R = N − W + 1: how many replicas a read consults at least.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
    /// let storage = ReplicatedStorage::builder()
    ///     .replicas((0..5).map(|_| Replica::new(MemoryStorage::new())))
    ///     .build()?;
    /// assert_eq!((storage.write_quorum(), storage.read_quorum()), (3, 3));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn read_quorum(&self) -> usize {
        self.inner.read_quorum
    }

    /// The consistency level.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{ConsistencyLevel, MemoryStorage, Replica, ReplicatedStorage};
    /// let storage = ReplicatedStorage::builder().replica(Replica::new(MemoryStorage::new())).build()?;
    /// assert_eq!(storage.consistency(), ConsistencyLevel::Quorum);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn consistency(&self) -> ConsistencyLevel {
        self.inner.level
    }

    /// Waits until every write still running in the background (on the
    /// replicas beyond the W that acknowledged it) has finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::storage::{Bytes, CheckpointStorage, MemoryStorage, Replica, ReplicatedStorage};
    /// use steadfast::storage::testing::Operation;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let slow = MemoryStorage::new();
    /// slow.faults().set_latency(Operation::Put, Duration::from_secs(30));
    /// let storage = ReplicatedStorage::builder()
    ///     .replica(Replica::new(MemoryStorage::new()))
    ///     .replica(Replica::new(MemoryStorage::new()))
    ///     .replica(Replica::new(slow.clone()))
    ///     .build()?;
    /// storage.put("k", Bytes::from_static(b"v")).await?; // acknowledged by two
    /// assert!(slow.is_empty());
    /// storage.wait_for_writes().await;
    /// assert_eq!(slow.keys(), ["k"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for_writes(&self) {
        self.inner.writes.wait().await;
    }

    /// Waits until every read repair started so far has finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let storage = ReplicatedStorage::builder().replica(Replica::new(MemoryStorage::new())).build()?;
    /// storage.wait_for_repairs().await; // none running: returns at once
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for_repairs(&self) {
        self.inner.repairs.wait().await;
    }

    /// The read repairs counted so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
    /// let storage = ReplicatedStorage::builder().replica(Replica::new(MemoryStorage::new())).build()?;
    /// assert_eq!(storage.repair_stats().repaired, 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn repair_stats(&self) -> RepairStats {
        self.inner.stats.snapshot()
    }
}

#[async_trait]
impl CheckpointStorage for ReplicatedStorage {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.put_replicated(key, data).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<()> {
        self.put_if_absent_replicated(key, data).await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        self.get_verified(key).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.head_replicated(key).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.delete_replicated(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.list_replicated(prefix).await
    }

    async fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        self.put_stream_replicated(key).await
    }

    async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
        self.get_stream_verified(key).await
    }

    async fn get_sized(&self, key: &str, size: u64) -> Result<Bytes> {
        self.get_sized_verified(key, size).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.get_range_checked(key, range).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        match self.head_replicated(key).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn cleanup_temporary(&self, older_than: Duration) -> Result<u64> {
        self.cleanup_replicated(older_than).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_storage_is_send_and_sync() {
        assert_send_sync::<ReplicatedStorage>();
        assert_send_sync::<Replica>();
    }
}
