//! Integration tests of `steadfast::breaker`: every trip rule, half-open
//! admission, cancellation, events, forced open and reset, configuration,
//! a many-thread stress test and a property test against a reference model.

// The counting global allocator below is the one unsafe piece.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::error::Error as _;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use proptest::prelude::*;
use steadfast::breaker::{
    BreakerError, BreakerSnapshot, CircuitBreaker, CircuitBreakerBuilder, CircuitBreakerConfig,
    Permit, Rejected, SlidingWindow, State, StateChange, TransitionReason,
};
use steadfast::retry::Transient;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, Semaphore};
use tokio::time::{advance, sleep, Instant};

mod common;
use common::capture::Capture;

const SEC: Duration = Duration::from_secs(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn fail(breaker: &CircuitBreaker) {
    let r = breaker.call(|| async { Err::<(), _>("boom") }).await;
    assert!(matches!(r, Err(BreakerError::Inner("boom"))), "{r:?}");
}

async fn succeed(breaker: &CircuitBreaker) {
    let r = breaker.call(|| async { Ok::<_, &str>(()) }).await;
    assert!(r.is_ok(), "{r:?}");
}

/// Every change received so far, as (from, to, reason).
fn drain(rx: &mut broadcast::Receiver<StateChange>) -> Vec<(State, State, TransitionReason)> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(c) => out.push((c.from, c.to, c.reason)),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("event channel: {e:?}"),
        }
    }
}

// ---------------------------------------------------------------- trip rules

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_the_circuit() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(3)
        .build()
        .unwrap();
    let mut events = breaker.subscribe();

    fail(&breaker).await;
    fail(&breaker).await;
    succeed(&breaker).await; // breaks the run
    assert_eq!(breaker.snapshot().consecutive_failures, 0);
    fail(&breaker).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().consecutive_failures, 2);
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        drain(&mut events),
        [(
            State::Closed,
            State::Open,
            TransitionReason::ConsecutiveFailures
        )]
    );
    assert_eq!(breaker.snapshot().total.failures, 5);
}

#[tokio::test(start_paused = true)]
async fn count_window_failure_rate_opens_the_circuit() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(5)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let mut events = breaker.subscribe();

    // Below minimum_calls, even a 100% failure rate does not open it.
    for _ in 0..4 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().failure_rate, Some(1.0));
    breaker.reset();
    assert_eq!(breaker.snapshot().calls_in_window, 0);

    // S F S F S: 2 of 5 fail (40%).
    for i in 0..5 {
        if i % 2 == 1 {
            fail(&breaker).await;
        } else {
            succeed(&breaker).await;
        }
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().failure_rate, Some(0.4));
    // 3 of 6: 50% reaches the threshold.
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        drain(&mut events),
        [(State::Closed, State::Open, TransitionReason::FailureRate)]
    );
}

/// The rate rules are evaluated whenever the window changes, a success
/// included: the success that brings the window to `minimum_calls` trips a
/// failure rate already at its threshold.
#[tokio::test(start_paused = true)]
async fn a_success_that_brings_a_count_window_to_its_minimum_trips_the_rate() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let mut events = breaker.subscribe();
    fail(&breaker).await;
    fail(&breaker).await;
    succeed(&breaker).await;
    assert_eq!(breaker.state(), State::Closed);
    succeed(&breaker).await; // F F S S: 4 calls, 50%
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        drain(&mut events),
        [(State::Closed, State::Open, TransitionReason::FailureRate)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_success_that_brings_a_time_window_to_its_minimum_trips_the_rate() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::time(secs(10)))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let mut events = breaker.subscribe();
    fail(&breaker).await;
    fail(&breaker).await;
    succeed(&breaker).await;
    assert_eq!(breaker.state(), State::Closed);
    succeed(&breaker).await; // F F S S: 4 calls, 50%
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        drain(&mut events),
        [(State::Closed, State::Open, TransitionReason::FailureRate)]
    );
}

/// In a time window a success can raise the failure rate: the successes
/// that kept it low leave the window, and the success that follows sees
/// the failures left behind.
#[tokio::test(start_paused = true)]
async fn a_success_after_successes_left_a_time_window_trips_the_rate() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::time(secs(10)))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    for _ in 0..4 {
        succeed(&breaker).await;
    }
    advance(secs(5)).await;
    for _ in 0..3 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.snapshot().failure_rate, Some(3.0 / 7.0));
    assert_eq!(breaker.state(), State::Closed);
    advance(secs(5)).await; // the four successes leave
    succeed(&breaker).await; // F F F S: 75%
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_fast_call_that_brings_the_window_to_its_minimum_trips_the_slow_rate() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(2)
        .slow_call_duration(SEC)
        .slow_call_rate_threshold(0.5)
        .build()
        .unwrap();
    let r = breaker
        .call(|| async {
            sleep(secs(2)).await;
            Ok::<_, io::Error>(())
        })
        .await;
    assert!(r.is_ok());
    assert_eq!(breaker.state(), State::Closed);
    succeed(&breaker).await; // slow, fast: 50% slow
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn count_window_forgets_calls_beyond_its_size() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::count(4))
        .minimum_calls(4)
        .failure_rate_threshold(0.75)
        .build()
        .unwrap();
    fail(&breaker).await;
    fail(&breaker).await;
    succeed(&breaker).await;
    succeed(&breaker).await; // window F F S S: 50%
    fail(&breaker).await; // F S S F: 50% (the first failure left)
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().calls_in_window, 4);
    fail(&breaker).await; // S S F F
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker).await; // S F F F: 75%
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_failure_rate_opens_the_circuit() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::time(secs(10)))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let mut events = breaker.subscribe();

    for _ in 0..3 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.snapshot().calls_in_window, 3);
    // Those three leave the window: afterwards a success and a failure are
    // two calls, below the minimum, although 5 calls would be 80% failures.
    advance(secs(10)).await;
    assert_eq!(breaker.snapshot().calls_in_window, 0);
    succeed(&breaker).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().calls_in_window, 2);

    // Spread over the window: S S three seconds later, F three more later.
    advance(secs(3)).await;
    succeed(&breaker).await;
    succeed(&breaker).await;
    advance(secs(3)).await;
    fail(&breaker).await;
    assert_eq!(breaker.snapshot().failure_rate, Some(0.4));
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker).await; // 3 of 6
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        drain(&mut events),
        [(State::Closed, State::Open, TransitionReason::FailureRate)]
    );
}

#[tokio::test(start_paused = true)]
async fn time_window_with_custom_buckets_slides() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::time_with_bucket(
            Duration::from_millis(500),
            Duration::from_millis(100),
        ))
        .minimum_calls(3)
        .failure_rate_threshold(1.0)
        .build()
        .unwrap();
    fail(&breaker).await;
    advance(Duration::from_millis(250)).await;
    fail(&breaker).await;
    advance(Duration::from_millis(300)).await; // the first failure has left
    fail(&breaker).await;
    assert_eq!(breaker.snapshot().calls_in_window, 2);
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_call_rate_opens_the_circuit() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(4)
        .slow_call_duration(SEC)
        .slow_call_rate_threshold(0.5)
        .build()
        .unwrap();
    let mut events = breaker.subscribe();
    let call = |delay: Duration| {
        let breaker = breaker.clone();
        async move {
            breaker
                .call(|| async move {
                    sleep(delay).await;
                    Ok::<_, io::Error>(())
                })
                .await
                .unwrap();
        }
    };

    call(Duration::from_millis(10)).await;
    call(Duration::from_millis(900)).await;
    call(secs(2)).await; // slow
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().slow_call_rate, Some(1.0 / 3.0));
    call(Duration::from_millis(1_500)).await; // slow: 2 of 4
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        drain(&mut events),
        [(State::Closed, State::Open, TransitionReason::SlowCallRate)]
    );
}

#[tokio::test(start_paused = true)]
async fn slow_failures_count_for_both_rates() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::count(4))
        .minimum_calls(2)
        .failure_rate_threshold(0.9)
        .slow_call_duration(SEC)
        .slow_call_rate_threshold(0.5)
        .build()
        .unwrap();
    let mut events = breaker.subscribe();
    succeed(&breaker).await;
    let r = breaker
        .call(|| async {
            sleep(secs(3)).await;
            Err::<(), _>("slow and failed")
        })
        .await;
    assert!(r.is_err());
    assert_eq!(
        drain(&mut events),
        [(State::Closed, State::Open, TransitionReason::SlowCallRate)]
    );
}

// ---------------------------------------------------------------- half-open

async fn open_then_wait(breaker: &CircuitBreaker) {
    for _ in 0..breaker.config().failure_threshold() {
        fail(breaker).await;
    }
    assert_eq!(breaker.state(), State::Open);
    advance(breaker.config().recovery_timeout()).await;
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_no_more_than_its_permits_among_100_callers() {
    const PERMITS: usize = 3;
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .half_open_permits(PERMITS as u32)
        .success_threshold(PERMITS as u32)
        .build()
        .unwrap();
    open_then_wait(&breaker).await;

    let gate = Arc::new(Semaphore::new(0));
    let invoked = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let breaker = breaker.clone();
            let gate = gate.clone();
            let invoked = invoked.clone();
            tokio::spawn(async move {
                breaker
                    .call(|| async move {
                        invoked.fetch_add(1, Ordering::SeqCst);
                        // Trial calls are held here until the gate opens.
                        gate.acquire().await.unwrap().forget();
                        Ok::<_, io::Error>(())
                    })
                    .await
            })
        })
        .collect();
    // Let every task run up to its first await.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(invoked.load(Ordering::SeqCst), PERMITS);
    let snap = breaker.snapshot();
    assert_eq!(snap.state, State::HalfOpen);
    assert_eq!(snap.half_open_in_flight, PERMITS as u32);

    gate.add_permits(PERMITS);
    let mut admitted = 0;
    let mut rejected = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(BreakerError::Rejected {
                state: State::HalfOpen,
                retry_after: None,
            }) => rejected += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((admitted, rejected), (PERMITS, 100 - PERMITS));
    assert_eq!(invoked.load(Ordering::SeqCst), PERMITS);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn success_threshold_above_one_needs_that_many_trials() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .success_threshold(3)
        .build()
        .unwrap();
    let mut events = breaker.subscribe();
    open_then_wait(&breaker).await;

    succeed(&breaker).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(breaker.snapshot().half_open_successes, 1);
    succeed(&breaker).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    succeed(&breaker).await;
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        drain(&mut events),
        [
            (
                State::Closed,
                State::Open,
                TransitionReason::ConsecutiveFailures
            ),
            (
                State::Open,
                State::HalfOpen,
                TransitionReason::RecoveryTimeoutElapsed
            ),
            (
                State::HalfOpen,
                State::Closed,
                TransitionReason::TrialsSucceeded
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn trial_failure_reopens_with_a_fresh_timeout() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .recovery_timeout(secs(60))
        .success_threshold(2)
        .build()
        .unwrap();
    open_then_wait(&breaker).await;
    succeed(&breaker).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    advance(secs(5)).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.snapshot().half_open_successes, 0);

    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(rejected.retry_after, Some(secs(60)));
    advance(secs(60) - Duration::from_millis(1)).await;
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(rejected.retry_after, Some(Duration::from_millis(1)));
    advance(Duration::from_millis(1)).await;
    let permit = breaker.try_acquire().unwrap();
    assert!(permit.is_trial());
    // The successes of the earlier half-open period do not carry over.
    permit.success();
    assert_eq!(breaker.state(), State::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn rejected_calls_never_reach_the_operation() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    open_then_wait(&breaker).await;
    // A failed trial reopens it, with the whole recovery time ahead.
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
    let invoked = AtomicUsize::new(0);
    for _ in 0..50 {
        let r = breaker
            .call(|| async {
                invoked.fetch_add(1, Ordering::SeqCst);
                Ok::<_, io::Error>(())
            })
            .await;
        assert!(r.unwrap_err().is_rejected());
        let fallback_ran = breaker
            .call_with_fallback(
                || async {
                    invoked.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, io::Error>(1)
                },
                |e| async move {
                    assert!(e.is_rejected());
                    Ok(2)
                },
            )
            .await
            .unwrap();
        assert_eq!(fallback_ran, 2);
    }
    assert_eq!(invoked.load(Ordering::SeqCst), 0);
    assert_eq!(breaker.snapshot().total.rejections, 100);

    // Half-open with its one permit taken: refused at once, not run either.
    advance(breaker.config().recovery_timeout()).await;
    let held = breaker.try_acquire().unwrap();
    let r = breaker
        .call(|| async {
            invoked.fetch_add(1, Ordering::SeqCst);
            Ok::<_, io::Error>(())
        })
        .await;
    assert!(matches!(
        r,
        Err(BreakerError::Rejected {
            state: State::HalfOpen,
            retry_after: None
        })
    ));
    assert_eq!(invoked.load(Ordering::SeqCst), 0);
    held.success();
}

#[tokio::test(start_paused = true)]
async fn rejection_carries_the_remaining_recovery_time() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .recovery_timeout(secs(60))
        .build()
        .unwrap();
    fail(&breaker).await;
    advance(secs(20)).await;
    let err = breaker
        .call(|| async { Ok::<_, io::Error>(()) })
        .await
        .unwrap_err();
    match &err {
        BreakerError::Rejected { retry_after, state } => {
            assert_eq!(*retry_after, Some(secs(40)));
            assert_eq!(*state, State::Open);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(Transient::retry_after(&err), Some(secs(40)));
    assert!(err.source().is_none());

    advance(Duration::from_millis(39_500)).await;
    let rejected: Rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(rejected.retry_after, Some(Duration::from_millis(500)));
    assert_eq!(rejected.state, State::Open);
    assert_eq!(
        Transient::retry_after(&rejected),
        Some(Duration::from_millis(500))
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_half_open_call_frees_its_permit_and_is_not_a_success() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .success_threshold(2)
        .build()
        .unwrap();
    open_then_wait(&breaker).await;
    let invoked = AtomicUsize::new(0);

    // Polled once, then dropped while the operation is pending.
    let polled = breaker
        .call(|| async {
            invoked.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<(), io::Error>>().await
        })
        .now_or_never();
    assert!(polled.is_none());
    assert_eq!(invoked.load(Ordering::SeqCst), 1);
    let snap = breaker.snapshot();
    assert_eq!(snap.state, State::HalfOpen);
    assert_eq!(snap.half_open_in_flight, 0);
    assert_eq!(snap.half_open_successes, 0);

    // Dropped by losing a select! against a timer.
    tokio::select! {
        _ = breaker.call(|| async {
            invoked.fetch_add(1, Ordering::SeqCst);
            sleep(secs(3600)).await;
            Ok::<_, io::Error>(())
        }) => panic!("the call should not finish first"),
        _ = sleep(SEC) => {}
    }
    assert_eq!(invoked.load(Ordering::SeqCst), 2);
    assert_eq!(breaker.snapshot().half_open_in_flight, 0);

    // The permit is free: the next call is admitted; it is the first of the
    // two successes needed, so the abandoned calls counted for nothing.
    succeed(&breaker).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(breaker.snapshot().half_open_successes, 1);
    succeed(&breaker).await;
    assert_eq!(breaker.state(), State::Closed);
}

/// An abandoned trial call keeps its place until its operation has been
/// dropped: while the operation's destructor runs, no other trial is
/// admitted, so no more than `half_open_permits` operations are alive.
#[tokio::test(start_paused = true)]
async fn an_abandoned_trial_keeps_its_place_until_its_operation_is_dropped() {
    struct Operation {
        breaker: CircuitBreaker,
        alive: Arc<AtomicUsize>,
        most_alive: Arc<AtomicUsize>,
    }
    impl Drop for Operation {
        fn drop(&mut self) {
            // Another caller arrives while this operation is being dropped.
            if let Ok(permit) = self.breaker.try_acquire() {
                let alive = self.alive.load(Ordering::SeqCst) + 1;
                self.most_alive.fetch_max(alive, Ordering::SeqCst);
                drop(permit);
            }
            self.alive.fetch_sub(1, Ordering::SeqCst);
        }
    }

    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .half_open_permits(1)
        .build()
        .unwrap();
    open_then_wait(&breaker).await;
    let alive = Arc::new(AtomicUsize::new(0));
    let most_alive = Arc::new(AtomicUsize::new(0));
    let call = breaker.call(|| {
        alive.fetch_add(1, Ordering::SeqCst);
        most_alive.fetch_max(alive.load(Ordering::SeqCst), Ordering::SeqCst);
        let operation = Operation {
            breaker: breaker.clone(),
            alive: alive.clone(),
            most_alive: most_alive.clone(),
        };
        async move {
            let _operation = operation;
            std::future::pending::<Result<(), io::Error>>().await
        }
    });
    assert!(call.now_or_never().is_none());
    assert_eq!(alive.load(Ordering::SeqCst), 0);
    assert_eq!(most_alive.load(Ordering::SeqCst), 1);
    // The place is free once the call is gone.
    assert_eq!(breaker.snapshot().half_open_in_flight, 0);
    assert!(breaker.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_permit_in_closed_counts_as_nothing() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    fail(&breaker).await;
    drop(breaker.try_acquire().unwrap());
    assert_eq!(breaker.snapshot().consecutive_failures, 1);
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
}

// ---------------------------------------------------------------- calls

#[tokio::test(start_paused = true)]
async fn call_with_counts_only_the_errors_the_predicate_names() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    let is_failure = |e: &io::Error| e.kind() != io::ErrorKind::NotFound;
    for _ in 0..5 {
        let r = breaker
            .call_with(is_failure, || async {
                Err::<(), _>(io::Error::from(io::ErrorKind::NotFound))
            })
            .await;
        let err = r.unwrap_err();
        assert_eq!(err.inner().unwrap().kind(), io::ErrorKind::NotFound);
        assert_eq!(
            err.source().unwrap().to_string(),
            err.inner().unwrap().to_string()
        );
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().total.failures, 0);
    for _ in 0..2 {
        let _ = breaker
            .call_with(is_failure, || async {
                Err::<(), _>(io::Error::from(io::ErrorKind::TimedOut))
            })
            .await;
    }
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn fallback_runs_on_failure_and_rejection_only() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let fallbacks = AtomicUsize::new(0);
    let fallback = |e: BreakerError<String>| {
        fallbacks.fetch_add(1, Ordering::SeqCst);
        async move {
            match e {
                BreakerError::Inner(msg) => Ok(format!("cached after {msg}")),
                BreakerError::Rejected { .. } => Ok("cached while open".to_string()),
                other => Err(other.to_string()),
            }
        }
    };
    let ok = breaker
        .call_with_fallback(|| async { Ok("live".to_string()) }, fallback)
        .await;
    assert_eq!(ok.unwrap(), "live");
    assert_eq!(fallbacks.load(Ordering::SeqCst), 0);
    let failed = breaker
        .call_with_fallback(|| async { Err("timeout".to_string()) }, fallback)
        .await;
    assert_eq!(failed.unwrap(), "cached after timeout");
    assert_eq!(breaker.state(), State::Open);
    let rejected = breaker
        .call_with_fallback(|| async { Ok("live".to_string()) }, fallback)
        .await;
    assert_eq!(rejected.unwrap(), "cached while open");
    assert_eq!(fallbacks.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------- events

#[tokio::test(start_paused = true)]
async fn events_follow_a_full_cycle_in_order() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(2)
        .recovery_timeout(secs(10))
        .build()
        .unwrap();
    let mut events = breaker.subscribe();
    let start = Instant::now();

    fail(&breaker).await;
    fail(&breaker).await; // Closed -> Open at t=0
    advance(secs(10)).await;
    fail(&breaker).await; // Open -> HalfOpen -> Open at t=10
    advance(secs(10)).await;
    succeed(&breaker).await; // Open -> HalfOpen -> Closed at t=20
    advance(secs(1)).await;
    breaker.force_open(); // t=21
    breaker.force_open(); // already forced: no event
    advance(secs(1)).await;
    breaker.reset(); // t=22
    breaker.reset(); // already closed: no event

    let mut got = Vec::new();
    while let Ok(change) = events.try_recv() {
        got.push((
            change.from,
            change.to,
            change.reason,
            change.at.duration_since(start),
        ));
    }
    use State::*;
    use TransitionReason::*;
    assert_eq!(
        got,
        [
            (Closed, Open, ConsecutiveFailures, secs(0)),
            (Open, HalfOpen, RecoveryTimeoutElapsed, secs(10)),
            (HalfOpen, Open, TrialFailure, secs(10)),
            (Open, HalfOpen, RecoveryTimeoutElapsed, secs(20)),
            (HalfOpen, Closed, TrialsSucceeded, secs(20)),
            (Closed, Open, ForcedOpen, secs(21)),
            (Open, Closed, Reset, secs(22)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn every_subscriber_sees_every_change() {
    let breaker = CircuitBreaker::default();
    let mut a = breaker.subscribe();
    let mut b = breaker.clone().subscribe();
    breaker.force_open();
    breaker.reset();
    let expected = [
        (State::Closed, State::Open, TransitionReason::ForcedOpen),
        (State::Open, State::Closed, TransitionReason::Reset),
    ];
    assert_eq!(drain(&mut a), expected);
    assert_eq!(drain(&mut b), expected);
}

#[tokio::test(start_paused = true)]
async fn each_change_is_a_tracing_event() {
    let logs = Capture::start();

    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    fail(&breaker).await;
    breaker.reset();

    let events: Vec<_> = logs
        .events()
        .into_iter()
        .filter(|event| event.target == "steadfast::breaker")
        .map(|event| event.fields)
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["from"], "closed");
    assert_eq!(events[0]["to"], "open");
    assert_eq!(events[0]["reason"], "consecutive_failures");
    assert_eq!(events[1]["from"], "open");
    assert_eq!(events[1]["to"], "closed");
    assert_eq!(events[1]["reason"], "reset");
}

// ---------------------------------------------------------------- force / reset

#[tokio::test(start_paused = true)]
async fn forced_open_stays_open_until_reset() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(3)
        .recovery_timeout(secs(1))
        .build()
        .unwrap();
    fail(&breaker).await;
    fail(&breaker).await;
    breaker.force_open();
    advance(secs(3600)).await;
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(rejected.retry_after, None);
    assert_eq!(rejected.state, State::Open);
    let snap = breaker.snapshot();
    assert!(snap.forced);
    assert_eq!(snap.state, State::Open);
    assert_eq!(snap.time_in_state, secs(3600));

    breaker.reset();
    let snap = breaker.snapshot();
    assert_eq!(snap.state, State::Closed);
    assert!(!snap.forced);
    assert_eq!(snap.consecutive_failures, 0);
    // The two failures before force_open were cleared: it takes three again.
    fail(&breaker).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn force_open_from_half_open_invalidates_trials() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    open_then_wait(&breaker).await;
    let trial = breaker.try_acquire().unwrap();
    assert!(trial.is_trial());
    breaker.force_open();
    trial.success(); // from before force_open: ignored
    assert_eq!(breaker.state(), State::Open);
    assert!(breaker.snapshot().forced);
}

#[tokio::test(start_paused = true)]
async fn reset_clears_the_window() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(3)
        .failure_rate_threshold(0.6)
        .build()
        .unwrap();
    fail(&breaker).await;
    fail(&breaker).await;
    breaker.reset();
    assert_eq!(breaker.snapshot().calls_in_window, 0);
    assert_eq!(breaker.snapshot().failure_rate, None);
    fail(&breaker).await; // would be 3 of 3 without the reset
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn closing_clears_the_window() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(100)
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(3)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    for _ in 0..3 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.state(), State::Open);
    advance(breaker.config().recovery_timeout()).await;
    succeed(&breaker).await;
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().calls_in_window, 0);
    fail(&breaker).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Closed);
}

// ---------------------------------------------------------------- config

#[test]
fn invalid_configurations_name_the_field() {
    let cases: Vec<(CircuitBreakerBuilder, &str)> = vec![
        (
            CircuitBreakerConfig::builder().failure_threshold(0),
            "failure_threshold",
        ),
        (
            CircuitBreakerConfig::builder().recovery_timeout(Duration::ZERO),
            "recovery_timeout",
        ),
        (
            CircuitBreakerConfig::builder().half_open_permits(0),
            "half_open_permits",
        ),
        (
            CircuitBreakerConfig::builder().success_threshold(0),
            "success_threshold",
        ),
        (
            CircuitBreakerConfig::builder().minimum_calls(0),
            "minimum_calls",
        ),
        (
            CircuitBreakerConfig::builder()
                .sliding_window(SlidingWindow::count(5))
                .failure_rate_threshold(f64::NAN),
            "failure_rate_threshold",
        ),
        (
            CircuitBreakerConfig::builder()
                .sliding_window(SlidingWindow::count(5))
                .failure_rate_threshold(1.5),
            "failure_rate_threshold",
        ),
        (
            CircuitBreakerConfig::builder()
                .sliding_window(SlidingWindow::count(5))
                .slow_call_duration(SEC)
                .slow_call_rate_threshold(0.0),
            "slow_call_rate_threshold",
        ),
        (
            CircuitBreakerConfig::builder().sliding_window(SlidingWindow::count(0)),
            "sliding_window.size",
        ),
        (
            CircuitBreakerConfig::builder().sliding_window(SlidingWindow::time(Duration::ZERO)),
            "sliding_window.duration",
        ),
        (
            CircuitBreakerConfig::builder().failure_rate_threshold(0.5),
            "sliding_window",
        ),
    ];
    for (builder, field) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains(field));
    }
    let err = CircuitBreaker::builder()
        .success_threshold(0)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "success_threshold");
}

#[test]
fn config_round_trips_through_json_with_readable_durations() {
    let json = r#"{
        "failure_threshold": 4,
        "recovery_timeout": "60s",
        "half_open_permits": 2,
        "success_threshold": 3,
        "sliding_window": { "kind": "time", "duration": "2m", "bucket": "500ms" },
        "minimum_calls": 20,
        "failure_rate_threshold": 0.5,
        "slow_call_duration": "1.5s",
        "slow_call_rate_threshold": 0.8
    }"#;
    let config: CircuitBreakerConfig = serde_json::from_str(json).unwrap();
    assert_eq!(config.recovery_timeout(), secs(60));
    assert_eq!(
        config.sliding_window(),
        Some(SlidingWindow::time_with_bucket(
            secs(120),
            Duration::from_millis(500)
        ))
    );
    assert_eq!(
        config.slow_call_duration(),
        Some(Duration::from_millis(1_500))
    );

    let text = serde_json::to_string(&config).unwrap();
    assert!(text.contains(r#""recovery_timeout":"1m""#), "{text}");
    assert!(text.contains(r#""slow_call_duration":"1s500ms""#), "{text}");
    let back: CircuitBreakerConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back, config);

    let built = CircuitBreakerConfig::builder()
        .failure_threshold(4)
        .recovery_timeout(secs(60))
        .half_open_permits(2)
        .success_threshold(3)
        .sliding_window(SlidingWindow::time_with_bucket(
            secs(120),
            Duration::from_millis(500),
        ))
        .minimum_calls(20)
        .failure_rate_threshold(0.5)
        .slow_call_duration(Duration::from_millis(1_500))
        .slow_call_rate_threshold(0.8)
        .build()
        .unwrap();
    assert_eq!(built, config);

    // A count window, and the defaults filling in what is left out.
    let config: CircuitBreakerConfig = serde_json::from_str(
        r#"{"sliding_window":{"kind":"count","size":50},"failure_rate_threshold":0.25}"#,
    )
    .unwrap();
    assert_eq!(config.sliding_window(), Some(SlidingWindow::count(50)));
    assert_eq!(config.failure_threshold(), 5);
    let back: CircuitBreakerConfig =
        serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(back, config);

    // Invalid values are refused while deserializing, naming the field.
    let err =
        serde_json::from_str::<CircuitBreakerConfig>(r#"{"recovery_timeout":"0s"}"#).unwrap_err();
    assert!(err.to_string().contains("recovery_timeout"), "{err}");
    let err = serde_json::from_str::<CircuitBreakerConfig>(
        r#"{"sliding_window":{"kind":"count","size":5},"failure_rate_threshold":2.0}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("failure_rate_threshold"), "{err}");
}

// ---------------------------------------------------------------- auto traits

/// The serialized field names and defaults stay as they were (the rules
/// that are off are left out), and a misspelt field is refused.
#[test]
fn config_serialized_form_is_stable_and_refuses_unknown_fields() {
    let json = serde_json::to_string(&CircuitBreakerConfig::default()).unwrap();
    assert_eq!(
        json,
        r#"{"failure_threshold":5,"recovery_timeout":"1m","half_open_permits":1,"success_threshold":1,"minimum_calls":10}"#
    );
    assert_eq!(
        serde_json::from_str::<CircuitBreakerConfig>(&json).unwrap(),
        CircuitBreakerConfig::default()
    );
    let full = CircuitBreakerConfig::builder()
        .sliding_window(SlidingWindow::count(20))
        .failure_rate_threshold(0.5)
        .slow_call_duration(Duration::from_millis(1_500))
        .slow_call_rate_threshold(0.8)
        .build()
        .unwrap();
    let json = serde_json::to_string(&full).unwrap();
    assert_eq!(
        json,
        r#"{"failure_threshold":5,"recovery_timeout":"1m","half_open_permits":1,"success_threshold":1,"sliding_window":{"kind":"count","size":20},"minimum_calls":10,"failure_rate_threshold":0.5,"slow_call_duration":"1s500ms","slow_call_rate_threshold":0.8}"#
    );
    assert_eq!(
        serde_json::from_str::<CircuitBreakerConfig>(&json).unwrap(),
        full
    );

    let err =
        serde_json::from_str::<CircuitBreakerConfig>(r#"{"failure_treshold":3}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    assert!(err.to_string().contains("failure_treshold"), "{err}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CircuitBreaker>();
    assert_send_sync::<CircuitBreakerConfig>();
    assert_send_sync::<CircuitBreakerBuilder<CircuitBreaker>>();
    assert_send_sync::<CircuitBreakerBuilder<CircuitBreakerConfig>>();
    assert_send_sync::<Permit<'static>>();
    assert_send_sync::<Rejected>();
    assert_send_sync::<BreakerError<io::Error>>();
    assert_send_sync::<StateChange>();
    assert_send_sync::<BreakerSnapshot>();
    assert_send_sync::<SlidingWindow>();

    fn assert_send<T: Send>(_: &T) {}
    let breaker = CircuitBreaker::default();
    let fut = breaker.call(|| async { Ok::<_, io::Error>(()) });
    assert_send(&fut);
    fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<Rejected>();
    assert_error::<BreakerError<io::Error>>();
}

#[test]
fn clones_share_one_breaker_and_debug_shows_the_state() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let clone = breaker.clone();
    clone.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), State::Open);
    let debug = format!("{breaker:?}");
    assert!(debug.contains("Open"), "{debug}");
    assert!(debug.contains("failure_threshold: 1"), "{debug}");
}

// ---------------------------------------------------------------- allocation

/// Counts heap allocations per thread, so that a test can check that a piece
/// of code allocates nothing while other tests run on other threads.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: every method forwards to the system allocator with the caller's
// own arguments; the only addition is bumping a thread-local counter, which
// has a const initialiser and no destructor, so it never allocates itself.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(|n| n.get())
}

/// Full cycles (Closed, Open, HalfOpen, Closed, forced Open, Closed) with
/// every rule configured and a subscriber listening allocate nothing: the
/// breaker allocates only when it is built.
#[tokio::test(start_paused = true)]
async fn cycling_through_the_states_allocates_nothing() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(2)
        .recovery_timeout(SEC)
        .half_open_permits(2)
        .success_threshold(2)
        .sliding_window(SlidingWindow::time(secs(10)))
        .minimum_calls(100)
        .failure_rate_threshold(0.5)
        .slow_call_duration(SEC)
        .slow_call_rate_threshold(1.0)
        .build()
        .unwrap();
    let mut events = breaker.subscribe();
    // The counter sees allocations made on this thread.
    let before = allocations();
    std::hint::black_box(vec![0u8; 16]);
    assert_eq!(allocations() - before, 1);

    let mut counted = 0;
    for cycle in 0..200 {
        let before = allocations();
        let polled = breaker.call(|| async { Ok::<_, &str>(()) }).now_or_never();
        assert!(matches!(polled, Some(Ok(()))));
        breaker.try_acquire().unwrap().failure();
        breaker.try_acquire().unwrap().failure();
        assert_eq!(breaker.try_acquire().unwrap_err().state, State::Open);
        let open = allocations() - before;

        advance(SEC).await; // not counted: the test's own clock
        let before = allocations();
        let trial = breaker.try_acquire().unwrap();
        let abandoned = breaker.try_acquire().unwrap();
        drop(abandoned);
        trial.success();
        breaker.try_acquire().unwrap().success();
        assert_eq!(breaker.state(), State::Closed);
        breaker.force_open();
        breaker.reset();
        let snap = breaker.snapshot();
        assert_eq!(snap.state, State::Closed);
        while events.try_recv().is_ok() {}
        let closed = allocations() - before;
        // The first cycle may pay one-time costs outside the breaker
        // (registering tracing call sites).
        if cycle > 0 {
            counted += open + closed;
        }
    }
    assert_eq!(counted, 0, "allocations during 199 full cycles");
}

// ---------------------------------------------------------------- stress

/// A small deterministic generator, so each thread mixes outcomes without
/// sharing state.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn legal(change: &StateChange) -> bool {
    use State::*;
    use TransitionReason::*;
    matches!(
        (change.from, change.to, change.reason),
        (Closed, Open, ConsecutiveFailures | FailureRate)
            | (Open, HalfOpen, RecoveryTimeoutElapsed)
            | (HalfOpen, Open, TrialFailure)
            | (HalfOpen, Closed, TrialsSucceeded)
    )
}

/// 8 threads x 10,000 calls on one breaker that cycles through every state
/// (the recovery timeout is a few microseconds of real time; nothing waits
/// on it and no assertion depends on timing). Checks: never more trial calls
/// in flight than permits, every observed state consistent, every event a
/// legal edge chained to the previous one, and the counts add up.
#[test]
fn many_threads_keep_the_invariants() {
    const THREADS: u64 = 8;
    const CALLS: u64 = 10_000;
    const PERMITS: u32 = 4;
    let breaker = CircuitBreaker::builder()
        .failure_threshold(3)
        .recovery_timeout(Duration::from_micros(20))
        .half_open_permits(PERMITS)
        .success_threshold(2)
        .sliding_window(SlidingWindow::count(50))
        .minimum_calls(20)
        .failure_rate_threshold(0.6)
        .build()
        .unwrap();
    let mut events = breaker.subscribe();
    let stop = Arc::new(AtomicBool::new(false));

    let watcher = {
        let breaker = breaker.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut looks = 0u64;
            while !stop.load(Ordering::Acquire) {
                let s = breaker.snapshot();
                assert!(s.half_open_in_flight <= PERMITS, "{s:?}");
                assert!(s.half_open_successes <= 2, "{s:?}");
                assert!(!s.forced);
                assert!(s.calls_in_window <= 50, "{s:?}");
                if let Some(rate) = s.failure_rate {
                    assert!((0.0..=1.0).contains(&rate), "{s:?}");
                }
                looks += 1;
            }
            looks
        })
    };
    let listener = std::thread::spawn(move || {
        let mut seen = 0u64;
        let mut previous: Option<StateChange> = None;
        loop {
            match events.blocking_recv() {
                Ok(change) => {
                    assert!(legal(&change), "{change:?}");
                    if let Some(p) = previous {
                        assert_eq!(change.from, p.to, "{p:?} then {change:?}");
                        assert!(change.at >= p.at);
                    }
                    previous = Some(change);
                    seen += 1;
                }
                // Fell behind: the chain restarts at the next change.
                Err(RecvError::Lagged(n)) => {
                    previous = None;
                    seen += n;
                }
                Err(RecvError::Closed) => return seen,
            }
        }
    });

    let trials_in_flight = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let breaker = breaker.clone();
            let trials_in_flight = trials_in_flight.clone();
            std::thread::spawn(move || {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                let (mut admitted, mut rejected, mut failures, mut trials) =
                    (0u64, 0u64, 0u64, 0u64);
                for _ in 0..CALLS {
                    match breaker.try_acquire() {
                        Ok(permit) => {
                            admitted += 1;
                            if permit.is_trial() {
                                trials += 1;
                                trials_in_flight.fetch_add(1, Ordering::AcqRel);
                                std::thread::yield_now();
                                trials_in_flight.fetch_sub(1, Ordering::AcqRel);
                            }
                            match rng.next() % 10 {
                                0..=2 => {
                                    failures += 1;
                                    permit.failure();
                                }
                                3 => drop(permit),
                                _ => permit.success(),
                            }
                        }
                        Err(r) => {
                            rejected += 1;
                            match r.state {
                                State::HalfOpen => assert_eq!(r.retry_after, None),
                                State::Open => {
                                    let left = r.retry_after.expect("not forced");
                                    assert!(left <= Duration::from_micros(20));
                                }
                                State::Closed => panic!("a closed circuit refused a call"),
                            }
                        }
                    }
                }
                (admitted, rejected, failures, trials)
            })
        })
        .collect();

    let (mut admitted, mut rejected, mut failures, mut trials) = (0, 0, 0, 0);
    for w in workers {
        let (a, r, f, t) = w.join().unwrap();
        admitted += a;
        rejected += r;
        failures += f;
        trials += t;
    }
    stop.store(true, Ordering::Release);
    let looks = watcher.join().unwrap();
    let snap = breaker.snapshot();
    drop(breaker);
    let changes = listener.join().unwrap();

    assert_eq!(admitted + rejected, THREADS * CALLS);
    assert_eq!(snap.total.rejections, rejected);
    assert_eq!(snap.total.failures, failures);
    assert_eq!(trials_in_flight.load(Ordering::Acquire), 0);
    assert!(looks > 0);
    // With 30% failures and a threshold of 3, the breaker must have cycled.
    assert!(changes >= 3, "only {changes} state changes");
    assert!(trials > 0, "no trial call was ever admitted");
    assert!(rejected > 0, "no call was ever refused");
}

/// The same on a multi-thread runtime through `call`, with futures that
/// yield inside the operation and some that are cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_thread_runtime_calls_add_up() {
    let breaker = CircuitBreaker::builder()
        .failure_threshold(2)
        .recovery_timeout(Duration::from_micros(50))
        .half_open_permits(2)
        .build()
        .unwrap();
    let invoked = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let breaker = breaker.clone();
            let invoked = invoked.clone();
            tokio::spawn(async move {
                let mut rng = XorShift(0xDEAD_BEEF ^ (t + 1));
                let (mut ok, mut inner, mut rejected) = (0u64, 0u64, 0u64);
                for _ in 0..1_000 {
                    let fails = rng.next().is_multiple_of(4);
                    let invoked = &invoked;
                    let r = breaker
                        .call(|| async move {
                            invoked.fetch_add(1, Ordering::Relaxed);
                            tokio::task::yield_now().await;
                            if fails {
                                Err("down")
                            } else {
                                Ok(())
                            }
                        })
                        .await;
                    match r {
                        Ok(()) => ok += 1,
                        Err(BreakerError::Inner(_)) => inner += 1,
                        Err(BreakerError::Rejected { .. }) => rejected += 1,
                        Err(other) => panic!("{other:?}"),
                    }
                    let s = breaker.snapshot();
                    assert!(s.half_open_in_flight <= 2);
                }
                (ok, inner, rejected)
            })
        })
        .collect();
    let (mut ok, mut inner, mut rejected) = (0, 0, 0);
    for task in tasks {
        let (o, i, r) = task.await.unwrap();
        ok += o;
        inner += i;
        rejected += r;
    }
    assert_eq!(ok + inner + rejected, 32_000);
    assert_eq!(invoked.load(Ordering::Relaxed), ok + inner);
    let snap = breaker.snapshot();
    assert_eq!(snap.total.failures, inner);
    assert_eq!(snap.total.rejections, rejected);
}

// ---------------------------------------------------------------- model

#[derive(Debug, Clone, Copy)]
enum WindowKind {
    Count(u32),
    /// Whole seconds, one-second buckets.
    Time(u64),
}

#[derive(Debug, Clone)]
struct ModelConfig {
    failure_threshold: u32,
    recovery: Duration,
    success_threshold: u32,
    half_open_permits: u32,
    window: Option<WindowKind>,
    minimum_calls: u32,
    failure_rate: Option<f64>,
    slow: Option<(Duration, f64)>,
}

impl ModelConfig {
    fn build(&self) -> CircuitBreaker {
        let mut b = CircuitBreaker::builder()
            .failure_threshold(self.failure_threshold)
            .recovery_timeout(self.recovery)
            .success_threshold(self.success_threshold)
            .half_open_permits(self.half_open_permits)
            .minimum_calls(self.minimum_calls);
        match self.window {
            Some(WindowKind::Count(n)) => b = b.sliding_window(SlidingWindow::count(n)),
            Some(WindowKind::Time(s)) => b = b.sliding_window(SlidingWindow::time(secs(s))),
            None => {}
        }
        if let Some(rate) = self.failure_rate {
            b = b.failure_rate_threshold(rate);
        }
        if let Some((d, rate)) = self.slow {
            b = b.slow_call_duration(d).slow_call_rate_threshold(rate);
        }
        b.build().unwrap()
    }
}

fn model_config() -> impl Strategy<Value = ModelConfig> {
    let window = prop_oneof![
        Just(None),
        (1u32..=6).prop_map(|n| Some(WindowKind::Count(n))),
        (1u64..=4).prop_map(|s| Some(WindowKind::Time(s))),
    ];
    let rate = prop_oneof![Just(0.25), Just(0.5), Just(0.75), Just(1.0)];
    (
        1u32..=4,
        1u64..=5,
        1u32..=3,
        1u32..=2,
        window,
        1u32..=5,
        proptest::option::of(rate.clone()),
        proptest::option::of((prop_oneof![Just(500u64), Just(1_000)], rate)),
    )
        .prop_map(
            |(failure_threshold, recovery, success_threshold, permits, window, min, fr, slow)| {
                ModelConfig {
                    failure_threshold,
                    recovery: secs(recovery),
                    success_threshold,
                    half_open_permits: permits,
                    window,
                    minimum_calls: min,
                    failure_rate: window.and(fr),
                    slow: window.and(slow.map(|(ms, r)| (Duration::from_millis(ms), r))),
                }
            },
        )
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Acquire; if admitted, let `millis` pass, then record the outcome.
    Call {
        fail: bool,
        millis: u64,
    },
    /// Acquire and drop the permit without recording.
    Abandon,
    Advance(u64),
    ForceOpen,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<bool>(), 0u64..=6).prop_map(|(fail, q)| Op::Call { fail, millis: q * 250 }),
        1 => Just(Op::Abandon),
        4 => (0u64..=12).prop_map(|q| Op::Advance(q * 250)),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Reset),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ModelState {
    Closed { failures: u32 },
    Open { at: Duration, forced: bool },
    HalfOpen { successes: u32 },
}

/// The breaker as a plain sequential state machine.
struct Model {
    cfg: ModelConfig,
    now: Duration,
    state: ModelState,
    /// (end time, failed, slow) of Closed calls since the window was cleared.
    calls: VecDeque<(Duration, bool, bool)>,
    events: Vec<(State, State, TransitionReason)>,
}

impl Model {
    fn public_state(&self) -> State {
        match self.state {
            ModelState::Closed { .. } => State::Closed,
            ModelState::Open { .. } => State::Open,
            ModelState::HalfOpen { .. } => State::HalfOpen,
        }
    }

    fn go(&mut self, state: ModelState, reason: TransitionReason, announce: bool) {
        let from = self.public_state();
        self.state = state;
        if matches!(state, ModelState::Closed { .. }) {
            self.calls.clear();
        }
        if announce {
            self.events.push((from, self.public_state(), reason));
        }
    }

    /// Ok(trial?) or Err(retry_after).
    fn acquire(&mut self) -> Result<bool, Option<Duration>> {
        match self.state {
            ModelState::Closed { .. } => Ok(false),
            ModelState::HalfOpen { .. } => Ok(true),
            ModelState::Open { forced: true, .. } => Err(None),
            ModelState::Open { at, .. } => {
                let elapsed = self.now - at;
                if elapsed < self.cfg.recovery {
                    Err(Some(self.cfg.recovery - elapsed))
                } else {
                    self.go(
                        ModelState::HalfOpen { successes: 0 },
                        TransitionReason::RecoveryTimeoutElapsed,
                        true,
                    );
                    Ok(true)
                }
            }
        }
    }

    fn window_totals(&self) -> (u64, u64, u64) {
        let in_window: Vec<_> = match self.cfg.window {
            None => Vec::new(),
            Some(WindowKind::Count(n)) => self.calls.iter().rev().take(n as usize).collect(),
            Some(WindowKind::Time(s)) => {
                let epoch = self.now.as_secs();
                self.calls
                    .iter()
                    .filter(|(end, _, _)| epoch - end.as_secs() < s)
                    .collect()
            }
        };
        let calls = in_window.len() as u64;
        let failures = in_window.iter().filter(|c| c.1).count() as u64;
        let slow = in_window.iter().filter(|c| c.2).count() as u64;
        (calls, failures, slow)
    }

    fn record(&mut self, trial: bool, failed: bool, elapsed: Duration) {
        let slow = self.cfg.slow.is_some_and(|(d, _)| elapsed > d);
        match self.state {
            ModelState::HalfOpen { successes } if trial => {
                if failed {
                    let at = self.now;
                    self.go(
                        ModelState::Open { at, forced: false },
                        TransitionReason::TrialFailure,
                        true,
                    );
                } else if successes + 1 >= self.cfg.success_threshold {
                    self.go(
                        ModelState::Closed { failures: 0 },
                        TransitionReason::TrialsSucceeded,
                        true,
                    );
                } else {
                    self.state = ModelState::HalfOpen {
                        successes: successes + 1,
                    };
                }
            }
            ModelState::Closed { failures } if !trial => {
                if failed {
                    let failures = failures + 1;
                    self.state = ModelState::Closed { failures };
                    if failures >= self.cfg.failure_threshold {
                        let at = self.now;
                        self.go(
                            ModelState::Open { at, forced: false },
                            TransitionReason::ConsecutiveFailures,
                            true,
                        );
                        return;
                    }
                } else {
                    self.state = ModelState::Closed { failures: 0 };
                }
                if self.cfg.window.is_none() {
                    return;
                }
                // Every outcome, a success too, evaluates the rate rules.
                self.calls.push_back((self.now, failed, slow));
                let (calls, failures, slow_calls) = self.window_totals();
                let minimum = match self.cfg.window {
                    Some(WindowKind::Count(n)) => self.cfg.minimum_calls.min(n),
                    _ => self.cfg.minimum_calls,
                };
                if calls == 0 || calls < u64::from(minimum) {
                    return;
                }
                let at = self.now;
                if let Some(t) = self.cfg.failure_rate
                    && failures as f64 / calls as f64 >= t
                {
                    self.go(
                        ModelState::Open { at, forced: false },
                        TransitionReason::FailureRate,
                        true,
                    );
                    return;
                }
                if let Some((_, t)) = self.cfg.slow
                    && slow_calls as f64 / calls as f64 >= t
                {
                    self.go(
                        ModelState::Open { at, forced: false },
                        TransitionReason::SlowCallRate,
                        true,
                    );
                }
            }
            // The state changed while the call ran: its outcome is ignored.
            _ => {}
        }
    }
}

fn check(breaker: &CircuitBreaker, model: &Model) -> Result<(), TestCaseError> {
    let snap = breaker.snapshot();
    prop_assert_eq!(snap.state, model.public_state());
    match model.state {
        ModelState::Closed { failures } => {
            prop_assert_eq!(snap.consecutive_failures, failures);
        }
        ModelState::Open { forced, .. } => prop_assert_eq!(snap.forced, forced),
        ModelState::HalfOpen { successes } => {
            prop_assert_eq!(snap.half_open_successes, successes);
            prop_assert_eq!(snap.half_open_in_flight, 0);
        }
    }
    if model.cfg.window.is_some() && matches!(model.state, ModelState::Closed { .. }) {
        prop_assert_eq!(snap.calls_in_window, model.window_totals().0);
    }
    Ok(())
}

fn run_model(cfg: ModelConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let breaker = cfg.build();
        let mut events = breaker.subscribe();
        let mut model = Model {
            cfg,
            now: Duration::ZERO,
            state: ModelState::Closed { failures: 0 },
            calls: VecDeque::new(),
            events: Vec::new(),
        };
        let mut seen = Vec::new();
        for op in ops {
            match op {
                Op::Call { fail, millis } => {
                    let expected = model.acquire();
                    match (breaker.try_acquire(), expected) {
                        (Ok(permit), Ok(trial)) => {
                            prop_assert_eq!(permit.is_trial(), trial);
                            let elapsed = Duration::from_millis(millis);
                            advance(elapsed).await;
                            model.now += elapsed;
                            if fail {
                                permit.failure();
                            } else {
                                permit.success();
                            }
                            model.record(trial, fail, elapsed);
                        }
                        (Err(rejected), Err(retry_after)) => {
                            prop_assert_eq!(rejected.retry_after, retry_after);
                        }
                        (got, want) => {
                            prop_assert!(
                                false,
                                "breaker {:?}, model {:?}",
                                got.map(|p| p.is_trial()),
                                want
                            );
                        }
                    }
                }
                Op::Abandon => {
                    let expected = model.acquire();
                    let got = breaker.try_acquire();
                    prop_assert_eq!(got.is_ok(), expected.is_ok());
                }
                Op::Advance(millis) => {
                    advance(Duration::from_millis(millis)).await;
                    model.now += Duration::from_millis(millis);
                }
                Op::ForceOpen => {
                    breaker.force_open();
                    if !matches!(model.state, ModelState::Open { forced: true, .. }) {
                        let at = model.now;
                        model.go(
                            ModelState::Open { at, forced: true },
                            TransitionReason::ForcedOpen,
                            true,
                        );
                    }
                }
                Op::Reset => {
                    breaker.reset();
                    let announce = !matches!(model.state, ModelState::Closed { .. });
                    model.go(
                        ModelState::Closed { failures: 0 },
                        TransitionReason::Reset,
                        announce,
                    );
                }
            }
            check(&breaker, &model)?;
            seen.extend(drain(&mut events));
        }
        prop_assert_eq!(seen, model.events);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random sequences of successes, failures, abandoned calls, passing
    /// time, forced opens and resets: the breaker's state, counters, window,
    /// rejections (with their retry_after) and events match the model.
    #[test]
    fn breaker_matches_the_reference_model(
        cfg in model_config(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run_model(cfg, ops)?;
    }
}

// ---------------------------------------------------------------- owned permits

#[tokio::test(start_paused = true)]
async fn an_owned_permit_records_and_releases_as_a_borrowed_one() {
    fn send_sync<T: Send + Sync + 'static>(_: &T) {}
    let breaker = CircuitBreaker::builder()
        .failure_threshold(1)
        .recovery_timeout(secs(1))
        .half_open_permits(1)
        .build()
        .unwrap();
    let permit = breaker.try_acquire_owned().unwrap();
    send_sync(&permit);
    assert!(!permit.is_trial());
    // Recorded from another task, after the borrow of the breaker ended.
    tokio::spawn(async move { permit.failure() }).await.unwrap();
    assert_eq!(breaker.state(), State::Open);
    assert!(breaker.try_acquire_owned().is_err());

    advance(secs(1)).await;
    let trial = breaker.try_acquire_owned().unwrap();
    assert!(trial.is_trial());
    assert!(
        breaker.try_acquire_owned().is_err(),
        "the only trial place is taken"
    );
    drop(trial);
    let trial = breaker
        .try_acquire_owned()
        .expect("a dropped trial frees its place");
    trial.success();
    assert_eq!(breaker.state(), State::Closed);
}
