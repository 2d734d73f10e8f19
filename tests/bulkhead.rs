//! The bulkhead: its limits, its queue timeout, the order of its queue, its
//! counts under cancellation and under many threads, its configuration, and
//! the allocations of its admission path.
//!
//! Every test but the many-thread one runs on paused time; none waits on the
//! wall clock.

// The counting global allocator at the end of the file is the one unsafe
// piece.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::pipeline::{
    Bulkhead, BulkheadConfig, BulkheadError, BulkheadPermit, BulkheadRejected, BulkheadSnapshot,
    OwnedBulkheadPermit,
};
use tokio::task::JoinHandle;
use tokio::time::{advance, Instant};

mod common;
use common::counting_alloc::count_allocations;

fn bulkhead(max_concurrent: u32, max_queued: u32) -> Bulkhead {
    Bulkhead::builder()
        .max_concurrent(max_concurrent)
        .max_queued(max_queued)
        .build()
        .unwrap()
}

/// Lets every spawned task run until it waits (the runtime is
/// current-thread, and yielding does not let paused time move).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Counts the operations running at once and the most seen.
#[derive(Default)]
struct Running {
    now: AtomicU32,
    most: AtomicU32,
}

impl Running {
    fn enter(&self) -> RunningGuard<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        RunningGuard(self)
    }
}

struct RunningGuard<'a>(&'a Running);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn at_most_n_run_k_queue_and_the_rest_are_full() {
    const N: u32 = 3;
    const K: u32 = 2;
    const EXTRA: u32 = 4;
    let bulkhead = bulkhead(N, K);
    let running = Arc::new(Running::default());

    let calls: Vec<JoinHandle<Result<u32, BulkheadError<io::Error>>>> = (0..N + K + EXTRA)
        .map(|i| {
            let bulkhead = bulkhead.clone();
            let running = running.clone();
            tokio::spawn(async move {
                bulkhead
                    .call(|| async move {
                        let _running = running.enter();
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        Ok(i)
                    })
                    .await
            })
        })
        .collect();
    settle().await;

    assert_eq!(bulkhead.in_use(), N);
    assert_eq!(bulkhead.queued(), K);
    assert_eq!(running.now.load(Ordering::SeqCst), N);
    let finished: Vec<_> = calls.iter().filter(|c| c.is_finished()).collect();
    assert_eq!(
        finished.len(),
        EXTRA as usize,
        "the calls beyond N + K end at once"
    );

    // The first N finish at 10 s and hand their slots to the K waiters.
    advance(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(bulkhead.in_use(), K);
    assert_eq!(bulkhead.queued(), 0);
    advance(Duration::from_secs(10)).await;
    settle().await;

    let mut ok = Vec::new();
    let mut full = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(i) => ok.push(i),
            Err(BulkheadError::Rejected(BulkheadRejected::Full {
                max_concurrent,
                max_queued,
            })) => {
                assert_eq!((max_concurrent, max_queued), (N, K));
                full += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    // The first N + K callers in order of arrival ran, the rest were refused.
    assert_eq!(ok, (0..N + K).collect::<Vec<_>>());
    assert_eq!(full, EXTRA);
    assert_eq!(running.most.load(Ordering::SeqCst), N);
    let snap = bulkhead.snapshot();
    assert_eq!((snap.in_use, snap.queued), (0, 0));
    assert_eq!(
        (snap.rejected_full, snap.queue_timeouts),
        (u64::from(EXTRA), 0)
    );
}

#[tokio::test(start_paused = true)]
async fn try_acquire_never_waits_and_is_full_when_every_slot_is_taken() {
    let bulkhead = bulkhead(2, 5);
    let a = bulkhead.try_acquire().unwrap();
    let _b = bulkhead.try_acquire().unwrap();
    // A queue does not make try_acquire wait.
    assert_eq!(
        bulkhead.try_acquire().unwrap_err(),
        BulkheadRejected::Full {
            max_concurrent: 2,
            max_queued: 5
        }
    );
    assert_eq!(bulkhead.queued(), 0);
    drop(a);
    assert_eq!(bulkhead.in_use(), 1);
    let _c = bulkhead.try_acquire().unwrap();
    assert_eq!(bulkhead.in_use(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_queue_timeout_fires_at_exactly_the_configured_time() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queued(1)
        .queue_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();

    let waiter = {
        let bulkhead = bulkhead.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let result = bulkhead.acquire().await.map(drop);
            (result, start.elapsed())
        })
    };
    settle().await;
    assert_eq!(bulkhead.queued(), 1);

    advance(Duration::from_millis(99)).await;
    settle().await;
    assert!(!waiter.is_finished(), "refused before the queue timeout");
    assert_eq!(bulkhead.queued(), 1);

    advance(Duration::from_millis(1)).await;
    settle().await;
    assert!(
        waiter.is_finished(),
        "still waiting after the queue timeout"
    );
    let (result, waited) = waiter.await.unwrap();
    assert_eq!(
        result.unwrap_err(),
        BulkheadRejected::QueueTimeout {
            waited: Duration::from_millis(100)
        }
    );
    assert_eq!(waited, Duration::from_millis(100));
    assert_eq!(bulkhead.queued(), 0);
    assert_eq!(bulkhead.snapshot().queue_timeouts, 1);

    // The slot is still held: the timed-out waiter took nothing.
    assert_eq!(bulkhead.in_use(), 1);
    drop(held);
    assert_eq!(bulkhead.in_use(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_served_before_its_timeout_is_not_refused() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queued(1)
        .queue_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let waiter = {
        let bulkhead = bulkhead.clone();
        tokio::spawn(async move { bulkhead.call(|| async { Ok::<_, io::Error>(1) }).await })
    };
    settle().await;
    advance(Duration::from_millis(99)).await;
    drop(held);
    assert_eq!(waiter.await.unwrap().unwrap(), 1);
    assert_eq!(bulkhead.snapshot().queue_timeouts, 0);
}

#[tokio::test(start_paused = true)]
async fn without_a_queue_timeout_a_waiter_waits_until_a_slot_frees() {
    let bulkhead = bulkhead(1, 1);
    let held = bulkhead.try_acquire().unwrap();
    let waiter = {
        let bulkhead = bulkhead.clone();
        tokio::spawn(async move { bulkhead.acquire().await.map(drop) })
    };
    settle().await;
    advance(Duration::from_secs(24 * 3_600)).await;
    settle().await;
    assert!(!waiter.is_finished());
    drop(held);
    waiter.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_queue_is_first_come_first_served() {
    let bulkhead = bulkhead(1, 5);
    let held = bulkhead.try_acquire().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..5 {
        let bulkhead = bulkhead.clone();
        let order = order.clone();
        waiters.push(tokio::spawn(async move {
            let _slot = bulkhead.acquire().await.unwrap();
            order.lock().unwrap().push(i);
            // Hold the slot a while, so that the next waiter must wait for it.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }));
        // Each waiter joins the queue before the next is spawned.
        settle().await;
    }
    assert_eq!(bulkhead.queued(), 5);

    drop(held);
    // The freed slot went to the first waiter: try_acquire cannot overtake.
    assert!(bulkhead.try_acquire().unwrap_err().is_full());
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!((bulkhead.in_use(), bulkhead.queued()), (0, 0));
}

/// Polls a future once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_gives_its_queue_place_back() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queued(1)
        .queue_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();

    let mut waiting = Box::pin(bulkhead.acquire());
    assert!(poll_once(&mut waiting).is_pending());
    assert_eq!(bulkhead.queued(), 1);
    // The one place is taken.
    assert!(bulkhead.acquire().await.unwrap_err().is_full());

    drop(waiting);
    assert_eq!(bulkhead.queued(), 0);

    // The place is free again, and the next waiter gets the slot.
    let next = {
        let bulkhead = bulkhead.clone();
        tokio::spawn(async move { bulkhead.call(|| async { Ok::<_, io::Error>("next") }).await })
    };
    settle().await;
    assert_eq!(bulkhead.queued(), 1);
    drop(held);
    assert_eq!(next.await.unwrap().unwrap(), "next");
    let snap = bulkhead.snapshot();
    assert_eq!((snap.in_use, snap.queued), (0, 0));
    assert_eq!((snap.rejected_full, snap.queue_timeouts), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_after_its_slot_was_handed_to_it_gives_the_slot_back() {
    let bulkhead = bulkhead(1, 2);
    let held = bulkhead.try_acquire().unwrap();
    let mut first = Box::pin(bulkhead.acquire());
    let mut second = Box::pin(bulkhead.acquire());
    assert!(poll_once(&mut first).is_pending());
    assert!(poll_once(&mut second).is_pending());
    assert_eq!(bulkhead.queued(), 2);

    // The freed slot is handed to `first`, which has not run yet.
    drop(held);
    assert_eq!(bulkhead.in_use(), 1);
    drop(first);
    // It passes on to `second`.
    assert_eq!(bulkhead.queued(), 1);
    let permit = match poll_once(&mut second) {
        Poll::Ready(permit) => permit.unwrap(),
        Poll::Pending => panic!("the slot given back by a dropped waiter was lost"),
    };
    assert_eq!((bulkhead.in_use(), bulkhead.queued()), (1, 0));
    drop(permit);
    drop(second);
    assert_eq!((bulkhead.in_use(), bulkhead.queued()), (0, 0));
    assert!(bulkhead.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_while_waiting_or_running_frees_what_it_held() {
    let bulkhead = bulkhead(1, 1);
    let dropped = Arc::new(AtomicBool::new(false));

    /// Notes that the operation was dropped, and checks that its slot was
    /// still held then: the operation goes first, the slot after it, so no
    /// more than `max_concurrent` operations are ever alive.
    struct SetOnDrop(Arc<AtomicBool>, Bulkhead);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            assert_eq!(
                self.1.in_use(),
                1,
                "the slot was freed before the operation was dropped"
            );
            self.0.store(true, Ordering::SeqCst);
        }
    }

    let running = {
        let bulkhead = bulkhead.clone();
        let dropped = dropped.clone();
        tokio::spawn(async move {
            let inner = bulkhead.clone();
            bulkhead
                .call(|| async move {
                    let _guard = SetOnDrop(dropped, inner);
                    tokio::time::sleep(Duration::from_secs(3_600)).await;
                    Ok::<_, io::Error>(())
                })
                .await
        })
    };
    let waiting = {
        let bulkhead = bulkhead.clone();
        tokio::spawn(async move { bulkhead.call(|| async { Ok::<_, io::Error>(()) }).await })
    };
    settle().await;
    assert_eq!((bulkhead.in_use(), bulkhead.queued()), (1, 1));

    waiting.abort();
    settle().await;
    assert_eq!((bulkhead.in_use(), bulkhead.queued()), (1, 0));

    running.abort();
    settle().await;
    assert!(dropped.load(Ordering::SeqCst), "the operation was dropped");
    assert_eq!((bulkhead.in_use(), bulkhead.queued()), (0, 0));
    let _slot = bulkhead.try_acquire().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_returns_its_error_and_frees_the_slot() {
    let bulkhead = bulkhead(1, 0);
    let err = bulkhead
        .call(|| async { Err::<(), _>(io::Error::other("boom")) })
        .await
        .unwrap_err();
    assert_eq!(err.inner().unwrap().to_string(), "boom");
    assert_eq!(err.to_string(), "call failed: boom");
    assert_eq!(bulkhead.in_use(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_call_never_runs_the_operation() {
    // A queue timeout, so that a call wrongly queued ends (paused time moves
    // on when every task waits) instead of waiting for ever.
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queued(0)
        .queue_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    let mut ran = false;
    let err = bulkhead
        .call(|| {
            ran = true;
            async { Ok::<_, io::Error>(()) }
        })
        .await
        .unwrap_err();
    assert!(err.rejection().unwrap().is_full(), "{err}");
    assert!(!ran);
}

/// 8 threads × 10,000 calls through one bulkhead on a multi-thread runtime:
/// a mix of `call`, `try_acquire` and waits abandoned after their first
/// poll. No more than N operations ever run at once, the queue never holds
/// more than its bound, and every call is counted once.
#[test]
fn many_threads_keep_the_limits_and_every_count_adds_up() {
    const THREADS: u64 = 8;
    const CALLS: u64 = 10_000;
    const N: u32 = 4;
    const K: u32 = 8;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS as usize)
        .build()
        .unwrap();
    let bulkhead = bulkhead(N, K);
    let running = Arc::new(Running::default());
    let most_queued = Arc::new(AtomicU32::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let full = Arc::new(AtomicU64::new(0));
    let abandoned = Arc::new(AtomicU64::new(0));

    rt.block_on(async {
        let tasks: Vec<_> = (0..THREADS)
            .map(|t| {
                let bulkhead = bulkhead.clone();
                let running = running.clone();
                let most_queued = most_queued.clone();
                let (ok, full, abandoned) = (ok.clone(), full.clone(), abandoned.clone());
                tokio::spawn(async move {
                    for i in 0..CALLS {
                        most_queued.fetch_max(bulkhead.queued(), Ordering::SeqCst);
                        assert!(bulkhead.in_use() <= N);
                        match (t + i) % 5 {
                            0 => match bulkhead.try_acquire() {
                                Ok(_permit) => {
                                    let _running = running.enter();
                                    tokio::task::yield_now().await;
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(BulkheadRejected::Full { .. }) => {
                                    full.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(other) => panic!("unexpected {other}"),
                            },
                            1 => {
                                // Poll once, then drop: a waiter leaving the
                                // queue, or a slot taken and freed at once.
                                let mut wait = pin!(bulkhead.acquire());
                                match wait.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                                    Poll::Ready(Ok(_permit)) => {
                                        ok.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Poll::Ready(Err(_)) => {
                                        full.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Poll::Pending => {
                                        abandoned.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                            _ => {
                                let result = bulkhead
                                    .call(|| async {
                                        let _running = running.enter();
                                        tokio::task::yield_now().await;
                                        Ok::<_, io::Error>(())
                                    })
                                    .await;
                                match result {
                                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                                    Err(BulkheadError::Rejected(BulkheadRejected::Full {
                                        ..
                                    })) => full.fetch_add(1, Ordering::Relaxed),
                                    Err(other) => panic!("unexpected {other}"),
                                };
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });

    let (ok, full, abandoned) = (
        ok.load(Ordering::SeqCst),
        full.load(Ordering::SeqCst),
        abandoned.load(Ordering::SeqCst),
    );
    assert_eq!(ok + full + abandoned, THREADS * CALLS);
    assert!(ok > 0);
    assert!(running.most.load(Ordering::SeqCst) <= N);
    assert!(most_queued.load(Ordering::SeqCst) <= K);
    let snap = bulkhead.snapshot();
    assert_eq!((snap.in_use, snap.queued), (0, 0), "{snap:?}");
    assert_eq!(snap.rejected_full, full);
    assert_eq!(snap.queue_timeouts, 0);
    // Every slot is free again.
    let all: Vec<_> = (0..N).map(|_| bulkhead.try_acquire().unwrap()).collect();
    assert_eq!(bulkhead.in_use(), N);
    drop(all);
}

#[test]
fn zero_concurrency_is_refused_naming_the_field() {
    let err = Bulkhead::builder().max_concurrent(0).build().unwrap_err();
    assert_eq!(err.field(), "max_concurrent");
    let err = BulkheadConfig::builder()
        .max_concurrent(0)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "max_concurrent");
    let err = serde_json::from_str::<BulkheadConfig>(r#"{"max_concurrent": 0}"#).unwrap_err();
    assert!(err.to_string().contains("max_concurrent"), "{err}");
    let err = BulkheadConfig::builder()
        .queue_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "queue_timeout");
}

#[test]
fn config_round_trips_through_serde() {
    for config in [
        BulkheadConfig::default(),
        BulkheadConfig::builder()
            .max_concurrent(32)
            .max_queued(100)
            .queue_timeout(Duration::from_millis(1_500))
            .build()
            .unwrap(),
    ] {
        let json = serde_json::to_string(&config).unwrap();
        let back: BulkheadConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config, "{json}");
    }
    let json = serde_json::to_string(&BulkheadConfig::default()).unwrap();
    assert_eq!(json, r#"{"max_concurrent":10,"max_queued":0}"#);
    let config: BulkheadConfig =
        serde_json::from_str(r#"{"max_concurrent": 2, "queue_timeout": "1.5s"}"#).unwrap();
    assert_eq!(config.queue_timeout(), Some(Duration::from_millis(1_500)));
    assert_eq!(config.max_queued(), 0);
    let bulkhead = Bulkhead::new(config.clone());
    assert_eq!(bulkhead.config(), &config);
}

#[test]
fn unknown_fields_are_refused() {
    let err = serde_json::from_str::<BulkheadConfig>(r#"{"max_concurent": 4}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn an_owned_permit_holds_its_slot_until_dropped_and_hands_it_to_the_first_waiter() {
    let b = bulkhead(1, 1);
    let owned = b.try_acquire_owned().unwrap();
    assert_eq!(b.in_use(), 1);
    assert!(b.try_acquire_owned().unwrap_err().is_full());
    assert_eq!(b.snapshot().rejected_full, 1);

    let other = b.clone();
    let waiter = tokio::spawn(async move { other.acquire().await.map(drop) });
    settle().await;
    assert_eq!(b.queued(), 1);
    // Freed from another thread: the slot goes to the waiter.
    std::thread::spawn(move || drop(owned)).join().unwrap();
    waiter.await.unwrap().unwrap();
    assert_eq!((b.in_use(), b.queued()), (0, 0));
    assert!(b.try_acquire_owned().is_ok());
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Bulkhead>();
    send_sync::<BulkheadPermit<'static>>();
    send_sync::<OwnedBulkheadPermit>();
    send_sync::<BulkheadConfig>();
    send_sync::<BulkheadRejected>();
    send_sync::<BulkheadSnapshot>();
    send_sync::<BulkheadError<io::Error>>();
    let bulkhead = Bulkhead::default();
    send(&bulkhead.acquire());
    send(&bulkhead.call(|| async { Ok::<_, io::Error>(()) }));
    fn clone<T: Clone>() {}
    clone::<Bulkhead>();
}

// Allocations of the admission path, counted per thread by a global
// allocator.

#[global_allocator]
static ALLOCATOR: common::counting_alloc::Counting = common::counting_alloc::Counting;

#[test]
fn admission_with_free_slots_allocates_nothing() {
    let bulkhead = bulkhead(2, 4);
    let (admitted, allocations) = count_allocations(|| {
        let mut admitted = 0;
        for _ in 0..1_000 {
            if let Ok(permit) = bulkhead.try_acquire() {
                admitted += 1;
                drop(permit);
            }
            let mut call = pin!(bulkhead.call(|| async { Ok::<_, io::Error>(1) }));
            if let Poll::Ready(Ok(n)) = call.as_mut().poll(&mut Context::from_waker(Waker::noop()))
            {
                admitted += n;
            }
        }
        admitted
    });
    assert_eq!(admitted, 2_000);
    assert_eq!(allocations, 0);
}
