//! Hedging: when each attempt starts, which one wins, what happens to the
//! others, the last error, the percentile delay, cancellation at every
//! point, the counts, the configuration, and the allocations of the
//! single-attempt path.
//!
//! Every test but the many-thread one runs on paused time; none waits on the
//! wall clock.

// The counting global allocator at the end of the file is the one unsafe
// piece.

use std::cell::Cell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::breaker::CircuitBreaker;
use steadfast::pipeline::{Hedge, HedgeConfig, HedgeSnapshot};
use tokio::time::{advance, Instant};

mod common;
use common::counting_alloc::count_allocations;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn hedge(max_attempts: u32, delay: Duration) -> Hedge {
    Hedge::builder()
        .max_attempts(max_attempts)
        .delay(delay)
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

/// Polls a future once with a waker that does nothing.
fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// The attempts of a test: attempt `i` waits `plan[i].0`, then answers
/// `plan[i].1` (`Ok(i)` or `Err("error i")`). It notes when each attempt
/// started, how many are alive, the most alive at once, and which were
/// dropped before they answered.
struct Script {
    plan: Vec<(Duration, bool)>,
    origin: Instant,
    started: Mutex<Vec<Duration>>,
    alive: AtomicU32,
    most_alive: AtomicU32,
    dropped: Mutex<Vec<usize>>,
}

impl Script {
    /// `plan`: (latency, succeeds) per attempt.
    fn new(plan: &[(u64, bool)]) -> Arc<Script> {
        Arc::new(Script {
            plan: plan.iter().map(|&(l, ok)| (ms(l), ok)).collect(),
            origin: Instant::now(),
            started: Mutex::new(Vec::new()),
            alive: AtomicU32::new(0),
            most_alive: AtomicU32::new(0),
            dropped: Mutex::new(Vec::new()),
        })
    }

    /// The operation for `Hedge::call`: starts the next attempt of the plan.
    fn attempt(self: &Arc<Self>) -> impl Future<Output = Result<usize, String>> + Send + 'static {
        let script = self.clone();
        let index = {
            let mut started = script.started.lock().unwrap();
            started.push(script.origin.elapsed());
            started.len() - 1
        };
        let (latency, ok) = script.plan[index];
        let alive = script.alive.fetch_add(1, Ordering::SeqCst) + 1;
        script.most_alive.fetch_max(alive, Ordering::SeqCst);
        let guard = Alive {
            script,
            index,
            answered: false,
        };
        async move {
            let mut guard = guard;
            tokio::time::sleep(latency).await;
            guard.answered = true;
            if ok {
                Ok(index)
            } else {
                Err(format!("error {index}"))
            }
        }
    }

    /// When each attempt started, from the script's creation.
    fn starts(&self) -> Vec<Duration> {
        self.started.lock().unwrap().clone()
    }

    fn dropped(&self) -> Vec<usize> {
        let mut d = self.dropped.lock().unwrap().clone();
        d.sort_unstable();
        d
    }

    fn alive(&self) -> u32 {
        self.alive.load(Ordering::SeqCst)
    }
}

/// The drop guard of an attempt.
struct Alive {
    script: Arc<Script>,
    index: usize,
    answered: bool,
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.script.alive.fetch_sub(1, Ordering::SeqCst);
        if !self.answered {
            self.script.dropped.lock().unwrap().push(self.index);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_answer_before_the_delay_is_the_only_attempt() {
    let hedge = hedge(3, ms(100));
    let script = Script::new(&[(99, true), (1, true), (1, true)]);
    let start = Instant::now();
    let answer = hedge.call(|| script.attempt()).await.unwrap();
    assert_eq!(answer, 0);
    assert_eq!(start.elapsed(), ms(99));
    assert_eq!(script.starts(), vec![ms(0)]);
    assert_eq!(script.alive(), 0);
    let snap = hedge.snapshot();
    assert_eq!((snap.calls, snap.hedges, snap.failed), (1, 0, 0));
    assert_eq!(snap.wins, vec![1, 0, 0]);

    // Ready at the first poll: the same, at no time.
    let answer = hedge.call(|| async { Ok::<_, ()>(7) }).await.unwrap();
    assert_eq!(answer, 7);
    assert_eq!(hedge.snapshot().wins, vec![2, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_attempt_gets_a_hedge_after_exactly_the_delay_and_the_faster_wins() {
    let hedge = hedge(2, ms(100));
    let script = Script::new(&[(3_600_000, true), (10, true)]);
    let call = {
        let (hedge, script) = (hedge.clone(), script.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let answer = hedge.call(|| script.attempt()).await;
            (answer, start.elapsed())
        })
    };
    settle().await;
    assert_eq!(script.starts().len(), 1);

    advance(ms(99)).await;
    settle().await;
    assert_eq!(script.starts().len(), 1, "hedged before the delay");

    advance(ms(1)).await;
    settle().await;
    assert_eq!(script.starts(), vec![ms(0), ms(100)]);
    assert_eq!(script.alive(), 2);

    advance(ms(10)).await;
    let (answer, took) = call.await.unwrap();
    assert_eq!(answer.unwrap(), 1, "the faster hedge wins");
    assert_eq!(took, ms(110));
    // The slow first attempt was dropped before the call returned.
    assert_eq!(script.dropped(), vec![0]);
    assert_eq!(script.alive(), 0);
    let snap = hedge.snapshot();
    assert_eq!((snap.calls, snap.hedges), (1, 1));
    assert_eq!(snap.wins, vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn at_most_max_attempts_are_in_flight() {
    const HOUR: u64 = 3_600_000;
    let hedge = hedge(3, ms(10));
    // The third attempt, started at 20 ms, answers at 70 ms.
    let script = Script::new(&[(HOUR, true), (HOUR, true), (50, true), (1, true)]);
    let call = {
        let (hedge, script) = (hedge.clone(), script.clone());
        tokio::spawn(async move { hedge.call(|| script.attempt()).await })
    };
    settle().await;
    for _ in 0..6 {
        advance(ms(10)).await;
        settle().await;
    }
    // At 60 ms: three in flight, started 10 ms apart, and no fourth.
    assert_eq!(script.starts(), vec![ms(0), ms(10), ms(20)]);
    assert_eq!(script.alive(), 3);
    assert!(!call.is_finished());

    advance(ms(10)).await;
    assert_eq!(call.await.unwrap().unwrap(), 2);
    assert_eq!(script.most_alive.load(Ordering::SeqCst), 3);
    assert_eq!(script.dropped(), vec![0, 1]);
    assert_eq!(script.alive(), 0);
    let snap = hedge.snapshot();
    assert_eq!((snap.calls, snap.hedges), (1, 2));
    assert_eq!(snap.wins, vec![0, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_fails_the_last_error_is_returned() {
    // Attempt 0 fails last (at 300 ms); attempt 1 starts at 100 ms and
    // fails at 150 ms, which starts attempt 2 at once; it fails at 170 ms.
    let hedge = hedge(3, ms(100));
    let script = Script::new(&[(300, false), (50, false), (20, false)]);
    let start = Instant::now();
    let err = hedge.call(|| script.attempt()).await.unwrap_err();
    assert_eq!(err, "error 0", "the error of the attempt that failed last");
    assert_eq!(start.elapsed(), ms(300));
    assert_eq!(script.starts(), vec![ms(0), ms(100), ms(150)]);
    assert_eq!(script.dropped(), Vec::<usize>::new());
    let snap = hedge.snapshot();
    assert_eq!((snap.calls, snap.hedges, snap.failed), (1, 2, 1));
    assert_eq!(snap.succeeded(), 0);

    // Failing at once: each failure starts the next at once, and the last
    // started is the last to fail.
    let script = Script::new(&[(0, false), (0, false), (0, false)]);
    let start = Instant::now();
    let err = hedge.call(|| script.attempt()).await.unwrap_err();
    assert_eq!(err, "error 2");
    assert_eq!(start.elapsed(), ms(0));
    assert_eq!(hedge.snapshot().failed, 2);
}

#[tokio::test(start_paused = true)]
async fn a_failure_starts_the_next_attempt_at_once() {
    let hedge = hedge(2, ms(100));
    let script = Script::new(&[(5, false), (10, true)]);
    let start = Instant::now();
    assert_eq!(hedge.call(|| script.attempt()).await.unwrap(), 1);
    assert_eq!(script.starts(), vec![ms(0), ms(5)]);
    assert_eq!(start.elapsed(), ms(15));
}

#[tokio::test(start_paused = true)]
async fn without_hedge_on_failure_the_next_attempt_waits_for_the_delay() {
    let hedge = Hedge::builder()
        .max_attempts(3)
        .delay(ms(100))
        .hedge_on_failure(false)
        .build()
        .unwrap();
    // Attempt 0 fails at 5 ms; attempt 1 starts at 100 ms all the same.
    let script = Script::new(&[(5, false), (300, true), (10, true)]);
    let start = Instant::now();
    assert_eq!(hedge.call(|| script.attempt()).await.unwrap(), 2);
    assert_eq!(script.starts(), vec![ms(0), ms(100), ms(200)]);
    assert_eq!(start.elapsed(), ms(210));
    assert_eq!(script.dropped(), vec![1]);

    // Every attempt fails: the timer alone starts them, and the last error
    // comes back.
    let script = Script::new(&[(0, false), (0, false), (0, false)]);
    let start = Instant::now();
    assert_eq!(
        hedge.call(|| script.attempt()).await.unwrap_err(),
        "error 2"
    );
    assert_eq!(script.starts(), vec![ms(0), ms(100), ms(200)]);
    assert_eq!(start.elapsed(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn a_percentile_delay_adapts_after_enough_samples() {
    let hedge = Hedge::builder()
        .max_attempts(2)
        .delay(ms(1_000))
        .percentile(50.0)
        .window(4)
        .min_samples(3)
        .build()
        .unwrap();
    let clone = hedge.clone();
    for (i, latency) in [20, 60, 40].into_iter().enumerate() {
        assert_eq!(hedge.delay(), ms(1_000), "the fixed delay until 3 samples");
        let script = Script::new(&[(latency, true)]);
        clone.call(|| script.attempt()).await.unwrap();
        assert_eq!(hedge.snapshot().wins[0], i as u64 + 1);
    }
    // p50 (nearest rank) of [20, 40, 60], shared by the clones.
    assert_eq!(hedge.delay(), ms(40));
    assert_eq!(clone.delay(), ms(40));

    // A slow call is hedged after exactly 40 ms now; the hedge's own
    // latency (5 ms) is recorded.
    let script = Script::new(&[(3_600_000, true), (5, true)]);
    let start = Instant::now();
    assert_eq!(hedge.call(|| script.attempt()).await.unwrap(), 1);
    assert_eq!(script.starts(), vec![ms(0), ms(40)]);
    assert_eq!(start.elapsed(), ms(45));
    // [20, 60, 40, 5]: p50 is 20.
    assert_eq!(hedge.delay(), ms(20));

    // The window slides: 100 replaces 20, then 100 replaces 60.
    for _ in 0..2 {
        let script = Script::new(&[(100, true), (100, true)]);
        hedge.call(|| script.attempt()).await.unwrap();
    }
    // [40, 5, 100, 100] (two hedged calls whose first attempt won at 100 ms,
    // each having started a hedge at 20 ms, then 40 ms).
    assert_eq!(hedge.delay(), ms(40));
    let snap = hedge.snapshot();
    assert_eq!(snap.calls, 6);
    assert_eq!(snap.wins, vec![5, 1]);
    assert_eq!(snap.hedges, 3);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_answers_at_its_first_poll_records_zero_and_the_delay_stays_above_1ms() {
    let hedge = Hedge::builder()
        .delay(ms(500))
        .percentile(95.0)
        .min_samples(1)
        .build()
        .unwrap();
    hedge.call(|| async { Ok::<_, ()>(()) }).await.unwrap();
    assert_eq!(hedge.delay(), ms(1));
}

/// The points at which the cancellation test drops the call.
#[derive(Debug, Clone, Copy)]
enum DropAt {
    /// Before it was ever polled: the first attempt exists, nothing ran.
    Unpolled,
    /// After the first poll: the first attempt waits, the timer is armed.
    FirstPending,
    /// After the first hedge started: two attempts in flight.
    Hedged,
    /// After the first attempt failed and the next started at once.
    AfterFailure,
    /// Every attempt in flight, no timer left.
    AllInFlight,
    /// Every attempt but the last failed; the last in flight.
    LastInFlight,
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_at_any_point_drops_every_attempt_and_counts_it_once() {
    const HOUR: u64 = 3_600_000;
    let cases = [
        (DropAt::Unpolled, 0, 1, 0),
        (DropAt::FirstPending, 0, 1, 0),
        (DropAt::Hedged, 100, 2, 1),
        (DropAt::AfterFailure, 20, 2, 1),
        (DropAt::AllInFlight, 200, 3, 2),
        (DropAt::LastInFlight, 40, 3, 2),
    ];
    for (at, wait, attempts, hedges) in cases {
        let hedge = hedge(3, ms(100));
        let plan: &[(u64, bool)] = match at {
            DropAt::AfterFailure => &[(10, false), (HOUR, true), (HOUR, true)],
            DropAt::LastInFlight => &[(10, false), (10, false), (HOUR, true)],
            _ => &[(HOUR, true), (HOUR, true), (HOUR, true)],
        };
        let script = Script::new(plan);
        let op = || script.attempt();
        let mut call = Box::pin(hedge.call(op));
        if !matches!(at, DropAt::Unpolled) {
            assert!(poll_once(call.as_mut()).is_pending(), "{at:?}");
            // Let time pass in 10 ms steps, polling as a task would be.
            for _ in 0..wait / 10 {
                advance(ms(10)).await;
                assert!(poll_once(call.as_mut()).is_pending(), "{at:?}");
            }
        }
        // The first attempt is made when the call is first polled (an
        // async fn runs nothing before).
        let expected_alive = match at {
            DropAt::Unpolled => 0,
            DropAt::AfterFailure => 1,
            DropAt::LastInFlight => 1,
            _ => attempts,
        };
        assert_eq!(
            script.starts().len(),
            attempts as usize * usize::from(!matches!(at, DropAt::Unpolled)),
            "{at:?}"
        );
        assert_eq!(script.alive(), expected_alive, "{at:?}");
        let before = hedge.snapshot();
        assert_eq!(before.cancelled, 0, "{at:?}");

        drop(call);
        assert_eq!(script.alive(), 0, "{at:?}: every attempt dropped");
        let snap = hedge.snapshot();
        assert_eq!(
            snap,
            expected_snapshot(
                u64::from(!matches!(at, DropAt::Unpolled)),
                hedges,
                u64::from(!matches!(at, DropAt::Unpolled)),
            ),
            "{at:?}"
        );
        assert_eq!(
            snap.succeeded() + snap.failed + snap.cancelled,
            snap.calls,
            "{at:?}"
        );

        // The hedge works on as before.
        let answer = hedge.call(|| async { Ok::<_, String>(9) }).await.unwrap();
        assert_eq!(answer, 9);
    }
}

/// A snapshot of a 3-attempt hedge with these counts and no wins.
fn expected_snapshot(calls: u64, hedges: u64, cancelled: u64) -> HedgeSnapshot {
    let mut snap = Hedge::builder().max_attempts(3).build().unwrap().snapshot();
    snap.calls = calls;
    snap.hedges = hedges;
    snap.cancelled = cancelled;
    snap
}

#[tokio::test(start_paused = true)]
async fn a_hedged_call_counts_once_in_the_snapshot_and_in_a_breaker() {
    let hedge = hedge(3, ms(10));
    let breaker = CircuitBreaker::default();

    // Three attempts, all failing: one call, one failure.
    let script = Script::new(&[(15, false), (30, false), (30, false)]);
    let err = breaker
        .call(|| hedge.call(|| script.attempt()))
        .await
        .unwrap_err();
    assert_eq!(err.into_inner().unwrap(), "error 2");
    assert_eq!(script.starts().len(), 3);
    let snap = hedge.snapshot();
    assert_eq!((snap.calls, snap.hedges, snap.failed), (1, 2, 1));
    let b = breaker.snapshot();
    assert_eq!((b.consecutive_failures, b.total.failures), (1, 1));

    // Two attempts, the hedge wins: one call, one success.
    let script = Script::new(&[(100, true), (5, true)]);
    assert_eq!(
        breaker
            .call(|| hedge.call(|| script.attempt()))
            .await
            .unwrap(),
        1
    );
    let snap = hedge.snapshot();
    assert_eq!((snap.calls, snap.hedges, snap.failed), (2, 3, 1));
    assert_eq!(snap.wins, vec![0, 1, 0]);
    assert_eq!(snap.succeeded() + snap.failed + snap.cancelled, snap.calls);
    let b = breaker.snapshot();
    assert_eq!((b.consecutive_failures, b.total.failures), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_single_attempt_hedge_is_a_pass_through() {
    let hedge = Hedge::builder()
        .max_attempts(1)
        .delay(Duration::ZERO)
        .build()
        .unwrap();
    let script = Script::new(&[(3_000, false), (1, true)]);
    let err = hedge.call(|| script.attempt()).await.unwrap_err();
    assert_eq!(err, "error 0");
    assert_eq!(script.starts().len(), 1);
    assert_eq!(hedge.snapshot().hedges, 0);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_hedge_reaches_the_caller_and_drops_the_others() {
    let hedge = hedge(2, ms(10));
    let script = Script::new(&[(3_600_000, true)]);
    let task = {
        let (hedge, script) = (hedge.clone(), script.clone());
        tokio::spawn(async move {
            let made = AtomicU32::new(0);
            hedge
                .call(|| {
                    let first = made.fetch_add(1, Ordering::SeqCst) == 0;
                    let attempt = first.then(|| script.attempt());
                    async move {
                        match attempt {
                            Some(attempt) => attempt.await,
                            None => panic!("the hedge panics"),
                        }
                    }
                })
                .await
        })
    };
    let err = task.await.unwrap_err();
    assert!(err.is_panic(), "the panic reached the caller's task");
    assert_eq!(script.alive(), 0);
    assert_eq!(script.dropped(), vec![0]);
    assert_eq!(hedge.snapshot().cancelled, 1);
}

#[test]
fn bad_input_is_refused_naming_the_field() {
    let field = |b: steadfast::pipeline::HedgeConfigBuilder<Hedge>| b.build().unwrap_err().field();
    assert_eq!(
        field(Hedge::builder().max_attempts(2).delay(Duration::ZERO)),
        "delay"
    );
    assert_eq!(field(Hedge::builder().max_attempts(0)), "max_attempts");
    assert_eq!(field(Hedge::builder().percentile(0.0)), "percentile");
    assert_eq!(field(Hedge::builder().percentile(100.1)), "percentile");
    assert_eq!(field(Hedge::builder().percentile(f64::NAN)), "percentile");
    assert_eq!(field(Hedge::builder().window(0)), "window");
    assert_eq!(
        field(Hedge::builder().window(5).min_samples(6)),
        "min_samples"
    );
    for (json, name) in [
        (r#"{"max_attempts": 2, "delay": 0}"#, "delay"),
        (r#"{"max_attempts": 0}"#, "max_attempts"),
        (r#"{"percentile": -5}"#, "percentile"),
        (r#"{"window": 0}"#, "window"),
    ] {
        let err = serde_json::from_str::<HedgeConfig>(json).unwrap_err();
        assert!(err.to_string().contains(name), "{json}: {err}");
    }
    // One attempt needs no delay.
    assert!(Hedge::builder()
        .max_attempts(1)
        .delay(Duration::ZERO)
        .build()
        .is_ok());
}

#[test]
fn config_round_trips_through_serde() {
    for config in [
        HedgeConfig::default(),
        HedgeConfig::builder()
            .max_attempts(4)
            .delay(ms(1_500))
            .percentile(99.5)
            .window(1_000)
            .min_samples(50)
            .hedge_on_failure(false)
            .build()
            .unwrap(),
    ] {
        let json = serde_json::to_string(&config).unwrap();
        let back: HedgeConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config, "{json}");
    }
    let json = serde_json::to_string(&HedgeConfig::default()).unwrap();
    assert_eq!(
        json,
        r#"{"max_attempts":2,"delay":"100ms","window":100,"min_samples":20,"hedge_on_failure":true}"#
    );
    let config: HedgeConfig =
        serde_json::from_str(r#"{"max_attempts": 3, "delay": "50ms", "percentile": 95}"#).unwrap();
    assert_eq!(config.percentile(), Some(95.0));
    let hedge = Hedge::new(config.clone());
    assert_eq!(hedge.config(), &config);
    let err = serde_json::from_str::<HedgeConfig>(r#"{"delays": "1s"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[test]
fn public_types_are_send_and_sync_and_the_call_needs_no_sync_operation() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Hedge>();
    send_sync::<HedgeConfig>();
    send_sync::<HedgeSnapshot>();
    fn clone<T: Clone>() {}
    clone::<Hedge>();
    let hedge = Hedge::default();
    // A `Send` operation that is not `Sync` (it holds a `Cell`).
    let counter = Cell::new(0u32);
    let op = move || {
        counter.set(counter.get() + 1);
        async { Ok::<_, std::io::Error>(()) }
    };
    send(&hedge.call(op));
}

/// 8 threads × 10,000 calls through one hedge with a percentile delay on a
/// multi-thread runtime: attempts that fail at once (which start the next
/// at once, no timer needed), that yield before answering, and calls
/// abandoned after their first poll. Every call is counted once.
#[test]
fn many_threads_every_count_adds_up() {
    const THREADS: u64 = 8;
    const CALLS: u64 = 10_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS as usize)
        .enable_time()
        .build()
        .unwrap();
    let hedge = Hedge::builder()
        .max_attempts(3)
        .delay(Duration::from_secs(3_600))
        .percentile(90.0)
        .window(64)
        .min_samples(64)
        .build()
        .unwrap();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let abandoned = Arc::new(AtomicU64::new(0));
    let attempts = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..THREADS)
            .map(|t| {
                let hedge = hedge.clone();
                let (ok, failed, abandoned, attempts) = (
                    ok.clone(),
                    failed.clone(),
                    abandoned.clone(),
                    attempts.clone(),
                );
                tokio::spawn(async move {
                    for i in 0..CALLS {
                        // How many attempts fail before one succeeds (3: all).
                        let failures = (t + i) % 4;
                        let made = AtomicU64::new(0);
                        let op = || {
                            attempts.fetch_add(1, Ordering::Relaxed);
                            let n = made.fetch_add(1, Ordering::Relaxed);
                            async move {
                                if n % 2 == 1 {
                                    tokio::task::yield_now().await;
                                }
                                if n < failures {
                                    Err(n)
                                } else {
                                    Ok(n)
                                }
                            }
                        };
                        if i % 7 == 0 {
                            let mut call = pin!(hedge.call(op));
                            match poll_once(call.as_mut()) {
                                Poll::Ready(Ok(_)) => ok.fetch_add(1, Ordering::Relaxed),
                                Poll::Ready(Err(_)) => failed.fetch_add(1, Ordering::Relaxed),
                                Poll::Pending => abandoned.fetch_add(1, Ordering::Relaxed),
                            };
                        } else {
                            // Once the percentile replaces the hour, the
                            // delay is 1 ms: a hedge may start on time too,
                            // so a success may come from a later attempt.
                            match hedge.call(op).await {
                                Ok(n) => {
                                    assert!(n >= failures);
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(_) => {
                                    assert_eq!(failures, 3);
                                    failed.fetch_add(1, Ordering::Relaxed);
                                }
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
    let snap = hedge.snapshot();
    let (ok, failed, abandoned) = (
        ok.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
        abandoned.load(Ordering::SeqCst),
    );
    assert_eq!(ok + failed + abandoned, THREADS * CALLS);
    assert!(abandoned > 0 && failed > 0 && ok > 0);
    assert_eq!(snap.calls, THREADS * CALLS);
    assert_eq!(snap.succeeded(), ok);
    assert_eq!(snap.failed, failed);
    assert_eq!(snap.cancelled, abandoned);
    assert_eq!(snap.hedges + snap.calls, attempts.load(Ordering::SeqCst));
    // Zero-latency answers and yields: the percentile is the floor.
    assert!(
        hedge.delay() < Duration::from_secs(1),
        "{:?}",
        hedge.delay()
    );
}

// Allocations of the single-attempt path, counted per thread by a global
// allocator.

#[global_allocator]
static ALLOCATOR: common::counting_alloc::Counting = common::counting_alloc::Counting;

/// A future pending at its first poll (having woken its task) and ready at
/// the second.
struct WaitOnce(bool);

impl Future for WaitOnce {
    type Output = Result<u32, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0 {
            Poll::Ready(Ok(1))
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[test]
fn the_single_attempt_path_allocates_nothing_and_a_hedge_allocates() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _enter = rt.enter();
    for hedge in [
        hedge(3, ms(100)),
        Hedge::builder().percentile(95.0).build().unwrap(),
    ] {
        // Ready at the first poll, and pending once (arming the timer)
        // then ready before the delay.
        let (answered, allocations) = count_allocations(|| {
            let mut answered = 0;
            for _ in 0..1_000 {
                let mut call = pin!(hedge.call(|| async { Ok::<_, ()>(1) }));
                if let Poll::Ready(Ok(n)) = poll_once(call.as_mut()) {
                    answered += n;
                }
                let mut call = pin!(hedge.call(|| WaitOnce(false)));
                assert!(poll_once(call.as_mut()).is_pending());
                if let Poll::Ready(Ok(n)) = poll_once(call.as_mut()) {
                    answered += n;
                }
            }
            answered
        });
        assert_eq!(answered, 2_000);
        assert_eq!(allocations, 0, "{hedge:?}");
    }

    // A failure starts a hedge at once: that allocates the set of hedges.
    let hedge = hedge(2, ms(100));
    let made = AtomicU32::new(0);
    let (answer, allocations) = count_allocations(|| {
        let mut call = pin!(hedge.call(|| {
            let n = made.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(())
                } else {
                    Ok(n)
                }
            }
        }));
        poll_once(call.as_mut())
    });
    assert!(matches!(answer, Poll::Ready(Ok(1))));
    assert!(allocations > 0);
}
