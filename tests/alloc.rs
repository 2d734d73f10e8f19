//! Heap allocations on the hot paths, counted by a global allocator.
//!
//! Two ways of counting:
//!
//! - per thread, only while a test has counting switched on for its own
//!   thread ([`count_allocations`], [`live_bytes`]): for code that runs on
//!   the test's thread (a current-thread runtime);
//! - across every thread, the bytes live and their peak
//!   ([`measure_peak`]): for code that runs on a multi-thread runtime and
//!   its blocking pool, such as a checkpoint save.
//!
//! The tests of this file run one at a time (they take [`SERIAL`]), so that
//! the global count of one test does not see the allocations of another.

// The counting global allocator below is the one unsafe piece.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::breaker::{CircuitBreaker, SlidingWindow, State};
use steadfast::checkpoint::{
    CheckpointOptions, Compression, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::health::{HealthMonitor, MemberId, MemberRef};
use steadfast::retry::RetryPolicy;
use steadfast::storage::LocalFsStorage;

struct Counting;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES_LIVE: Cell<i64> = const { Cell::new(0) };
}

static GLOBAL_ENABLED: AtomicBool = AtomicBool::new(false);
static GLOBAL_LIVE: AtomicI64 = AtomicI64::new(0);
static GLOBAL_PEAK: AtomicI64 = AtomicI64::new(0);

fn note(bytes: i64, is_alloc: bool) {
    let _ = ENABLED.try_with(|enabled| {
        if enabled.get() {
            if is_alloc {
                let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
            }
            let _ = BYTES_LIVE.try_with(|b| b.set(b.get() + bytes));
        }
    });
    if GLOBAL_ENABLED.load(Ordering::Relaxed) {
        let live = GLOBAL_LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        GLOBAL_PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64, true);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64), false);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64, true);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Taken by every test, so that they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` and returns how many allocations it made on this thread.
fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    ALLOCATIONS.with(|a| a.set(0));
    ENABLED.with(|e| e.set(true));
    let r = f();
    ENABLED.with(|e| e.set(false));
    (r, ALLOCATIONS.with(Cell::get))
}

/// Counts this thread's allocations and live bytes from now on.
fn start_counting() {
    ALLOCATIONS.with(|a| a.set(0));
    BYTES_LIVE.with(|b| b.set(0));
    ENABLED.with(|e| e.set(true));
}

/// This thread's bytes allocated and not freed since [`start_counting`],
/// and the number of allocations.
fn live_bytes() -> (i64, u64) {
    (BYTES_LIVE.with(Cell::get), ALLOCATIONS.with(Cell::get))
}

fn stop_counting() {
    ENABLED.with(|e| e.set(false));
}

/// Runs `f` and returns its result and the highest number of bytes that
/// were live, on all threads together, above what was live when it began.
fn measure_peak<R>(f: impl FnOnce() -> R) -> (R, i64) {
    GLOBAL_LIVE.store(0, Ordering::SeqCst);
    GLOBAL_PEAK.store(0, Ordering::SeqCst);
    GLOBAL_ENABLED.store(true, Ordering::SeqCst);
    let r = f();
    GLOBAL_ENABLED.store(false, Ordering::SeqCst);
    (r, GLOBAL_PEAK.load(Ordering::SeqCst))
}

/// Polls a future that must be ready at once.
fn poll_once<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the future was expected to be ready at once"),
    }
}

#[test]
fn retry_that_succeeds_at_once_allocates_nothing() {
    let _serial = serial();
    let policy = RetryPolicy::default();
    // Warm up anything lazily initialised (tracing's callsite registry).
    let _ = poll_once(policy.retry(|| async { Ok::<_, std::io::Error>(1) }));
    let (result, allocations) = count_allocations(|| {
        let mut sum = 0u64;
        for i in 0..1_000u64 {
            sum += poll_once(policy.retry(|| async move { Ok::<_, std::io::Error>(i) })).unwrap();
        }
        sum
    });
    assert_eq!(result, 499_500);
    assert_eq!(allocations, 0);
}

#[test]
fn the_counter_sees_allocations() {
    let _serial = serial();
    let (_, allocations) = count_allocations(|| Box::new(7u64));
    assert_eq!(allocations, 1);
    let (_, peak) = measure_peak(|| drop(std::hint::black_box(vec![0u8; 1 << 20])));
    assert!(peak >= 1 << 20, "peak {peak}");
}

#[test]
fn a_retry_that_retries_allocates_once_not_per_retry() {
    let _serial = serial();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let policy = RetryPolicy::builder().max_retries(20).build().unwrap();
    let failing = |failures: u32| {
        let mut calls = 0;
        policy.retry(move || {
            calls += 1;
            let fail = calls <= failures;
            async move {
                if fail {
                    Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
                } else {
                    Ok(calls)
                }
            }
        })
    };
    let counted = |failures: u32| {
        rt.block_on(async {
            let fut = failing(failures);
            start_counting();
            let calls = fut.await.unwrap();
            let (_, allocations) = live_bytes();
            stop_counting();
            (calls, allocations)
        })
    };
    // Warm up the runtime's timer and tracing's callsites.
    counted(2);
    let (calls, two) = counted(2);
    assert_eq!(calls, 3);
    let (calls, twelve) = counted(12);
    assert_eq!(calls, 13);
    // The backoff and the timer are allocated at the first retry and
    // reused by every later one: ten more retries, no more allocations.
    assert!(two >= 1, "a retry allocates its backoff and timer once");
    assert_eq!(two, twelve);
}

#[test]
fn a_closed_breaker_allocates_nothing() {
    let _serial = serial();
    let breaker = CircuitBreaker::default();
    // Warm up anything lazily initialised.
    breaker.try_acquire().unwrap().success();
    let _ = poll_once(breaker.call(|| async { Ok::<_, std::io::Error>(1) }));
    let (sum, allocations) = count_allocations(|| {
        let mut sum = 0u64;
        for i in 0..1_000u64 {
            let permit = breaker.try_acquire().unwrap();
            permit.success();
            sum += poll_once(breaker.call(|| async move { Ok::<_, std::io::Error>(i) })).unwrap();
        }
        sum
    });
    assert_eq!(sum, 499_500);
    assert_eq!(allocations, 0);
}

#[test]
fn a_heartbeat_allocates_nothing_however_the_member_is_named() {
    let _serial = serial();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let monitor = HealthMonitor::default();
    monitor.add_member(3usize);
    monitor.add_member(1_000_000usize); // beyond the rank table: the hash index
    monitor.add_member("database");
    let db = MemberId::from("database");
    let name = String::from("database");
    monitor.heartbeat("database").unwrap();
    let (_, allocations) = count_allocations(|| {
        for _ in 0..1_000 {
            monitor.heartbeat(3usize).unwrap();
            monitor.heartbeat(1_000_000usize).unwrap();
            monitor.heartbeat("database").unwrap();
            monitor.heartbeat(&db).unwrap();
            monitor.heartbeat(&name).unwrap();
            monitor.heartbeat(MemberRef::Component("database")).unwrap();
            assert!(monitor.status("database").is_some());
            assert!(monitor.contains(&db));
        }
    });
    assert_eq!(allocations, 0);
}

/// Trips `breaker` open with real failures, lets its recovery timeout pass
/// on the paused clock, and closes it with trial successes: one cycle
/// Closed, Open, HalfOpen, Closed.
async fn cycle(breaker: &CircuitBreaker, recovery: Duration) {
    for _ in 0..breaker.config().failure_threshold() {
        breaker.try_acquire().unwrap().failure();
    }
    assert_eq!(breaker.state(), State::Open);
    assert!(breaker.try_acquire().is_err());
    tokio::time::advance(recovery).await;
    for _ in 0..breaker.config().success_threshold() {
        breaker.try_acquire().unwrap().success();
    }
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn cycling_through_the_states_does_not_grow_memory() {
    let _serial = serial();
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(cycles());
}

/// 100,000 cycles of two breakers, on the paused clock of a current-thread
/// runtime, so that every allocation would be counted on this thread.
async fn cycles() {
    let recovery = Duration::from_secs(5);
    let plain = CircuitBreaker::builder()
        .failure_threshold(2)
        .recovery_timeout(recovery)
        .success_threshold(2)
        .half_open_permits(2)
        .build()
        .unwrap();
    let windowed = CircuitBreaker::builder()
        .failure_threshold(3)
        .sliding_window(SlidingWindow::count(16))
        .failure_rate_threshold(0.9)
        .recovery_timeout(recovery)
        .build()
        .unwrap();
    let mut events = plain.subscribe();
    for breaker in [&plain, &windowed] {
        // Warm up: the first transitions initialise tracing's callsites.
        cycle(breaker, recovery).await;
    }
    while events.try_recv().is_ok() {}

    start_counting();
    for i in 0..100_000 {
        for breaker in [&plain, &windowed] {
            cycle(breaker, recovery).await;
        }
        if i % 10 == 0 {
            // A subscriber that keeps up, and one that lags (the channel
            // holds 64 changes): neither makes the breaker allocate.
            while events.try_recv().is_ok() {}
        }
    }
    let (bytes, allocations) = live_bytes();
    stop_counting();
    assert_eq!(bytes, 0, "bytes left allocated after 200,000 cycles");
    assert_eq!(allocations, 0, "allocations made by 200,000 cycles");
    assert!(plain.snapshot().total.failures >= 200_000);
}

/// The size of the checkpoint the memory tests save, from
/// `STEADFAST_ALLOC_CKPT_MB` (default 128).
fn checkpoint_mb() -> usize {
    std::env::var("STEADFAST_ALLOC_CKPT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&mb: &usize| mb >= 4)
        .unwrap_or(128)
}

/// Bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// What a save may hold in memory above its input: for each of the four
/// ranks a chunk buffer and the storage's write buffer (1 MiB each by
/// default), plus the runtime's threads and bookkeeping. Far below a shard
/// of the default test (32 MiB), so that a rank that buffered its shard
/// fails the test.
const SAVE_OVERHEAD_BOUND: i64 = 16 << 20;
/// The bound for a 1 GiB checkpoint and above.
const SAVE_BOUND_1GIB: i64 = 64 << 20;
/// What a compressed save may hold above its input: 4 MiB for each of the
/// four ranks (three frame buffers of 1 MiB and zstd's context, which
/// allocates through Rust's allocator and so is counted here), plus the
/// runtime's threads and bookkeeping as above.
const COMPRESSED_SAVE_BOUND: i64 = 4 * (4 << 20) + (4 << 20);

/// Saves a checkpoint of `checkpoint_mb()` in four shards to a local file
/// system, as entries (`streamed: false`) or from readers, and returns the
/// peak of the bytes live above the input during the save.
fn peak_of_save(streamed: bool) -> (i64, usize) {
    peak_of_save_with(streamed, Compression::None)
}

/// [`peak_of_save`], saving with `compression`.
fn peak_of_save_with(streamed: bool, compression: Compression) -> (i64, usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalFsStorage::new(dir.path()).unwrap();
    let shard_len = checkpoint_mb() / 4 * (1 << 20);
    let shards: Vec<_> = (0..4u64)
        .map(|r| ShardData::new().with_entry(format!("rank.{r}"), noise(shard_len, r + 1)))
        .collect();
    let ranks: Vec<_> = InMemoryCoordinator::new(4)
        .into_iter()
        .map(|rank| {
            std::sync::Arc::new(DistributedCheckpoint::new(
                storage.clone(),
                rank,
                RetryPolicy::no_retry(),
                CheckpointOptions::default(),
            ))
        })
        .collect();
    let shards: Vec<_> = shards.into_iter().map(std::sync::Arc::new).collect();
    let ((), peak) = measure_peak(|| {
        rt.block_on(async {
            let saves: Vec<_> = ranks
                .iter()
                .zip(&shards)
                .map(|(rank, shard)| {
                    let (rank, shard) = (rank.clone(), shard.clone());
                    tokio::spawn(async move {
                        if streamed {
                            rank.save_stream(
                                "memory",
                                || {
                                    let shard = shard.clone();
                                    async move { Ok(ShardReader { shard, at: 0 }) }
                                },
                                SaveOptions::new().compression(compression),
                            )
                            .await
                        } else {
                            rank.save(
                                "memory",
                                &shard,
                                SaveOptions::new().compression(compression),
                            )
                            .await
                        }
                    })
                })
                .collect();
            for save in saves {
                save.await.unwrap().unwrap();
            }
        })
    });
    // The checkpoint is really there, whole.
    let loaded = rt
        .block_on(ranks[3].load("memory", LoadOptions::default()))
        .unwrap();
    assert_eq!(loaded.len(), shard_len);
    assert_eq!(loaded.as_slice(), shards[3].entries()[0].1.as_slice());
    (peak, shard_len)
}

/// An `AsyncRead` over a shard's only entry, which borrows nothing from the
/// test (the closure of `save_stream` makes one per attempt).
struct ShardReader {
    shard: std::sync::Arc<ShardData>,
    at: usize,
}

impl tokio::io::AsyncRead for ShardReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let at = self.at;
        let bytes = &self.shard.entries()[0].1[at..];
        let n = bytes.len().min(buf.remaining());
        buf.put_slice(&bytes[..n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

fn check_save_peak(streamed: bool) {
    let _serial = serial();
    let (peak, shard_len) = peak_of_save(streamed);
    let bound = if checkpoint_mb() >= 1024 {
        SAVE_BOUND_1GIB
    } else {
        SAVE_OVERHEAD_BOUND
    };
    eprintln!(
        "save of {} MiB ({}): peak {:.1} MiB above the input (bound {} MiB, shard {} MiB)",
        checkpoint_mb(),
        if streamed { "streamed" } else { "entries" },
        peak as f64 / (1 << 20) as f64,
        bound >> 20,
        shard_len >> 20,
    );
    assert!(
        peak <= bound,
        "the save held {peak} bytes above its input (bound {bound})"
    );
}

#[test]
fn a_save_does_not_copy_its_shards() {
    check_save_peak(false);
}

#[test]
fn a_streamed_save_does_not_buffer_its_shards() {
    check_save_peak(true);
}

fn check_compressed_save_peak(streamed: bool) {
    let _serial = serial();
    let (peak, shard_len) = peak_of_save_with(streamed, Compression::zstd_level(1));
    eprintln!(
        "compressed save of {} MiB ({}): peak {:.1} MiB above the input (bound {} MiB, shard {} MiB)",
        checkpoint_mb(),
        if streamed { "streamed" } else { "entries" },
        peak as f64 / (1 << 20) as f64,
        COMPRESSED_SAVE_BOUND >> 20,
        shard_len >> 20,
    );
    assert!(
        peak <= COMPRESSED_SAVE_BOUND,
        "the compressed save held {peak} bytes above its input (bound {COMPRESSED_SAVE_BOUND})"
    );
}

#[test]
fn a_compressed_save_holds_a_few_frames_per_rank() {
    check_compressed_save_peak(false);
}

#[test]
fn a_compressed_streamed_save_holds_a_few_frames_per_rank() {
    check_compressed_save_peak(true);
}
