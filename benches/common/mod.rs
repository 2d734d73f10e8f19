//! Helpers shared by the benches.
//!
//! Futures that complete at once are polled a single time with a no-op
//! waker, so that the figures measure the combinators, not an executor. The
//! same helper polls steadfast's futures, the peers' and the bare operation,
//! and it is inlined, as `.await` inlines a future's `poll` into the state
//! machine that awaits it.

#![allow(dead_code)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future that must be ready at once, and returns its output.
#[inline(always)]
pub fn poll_once<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a future that is ready at once"),
    }
}

/// Polls a future that must be pending once and then ready, and returns
/// its output.
#[inline(always)]
pub fn poll_twice<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    if fut.as_mut().poll(&mut cx).is_ready() {
        panic!("expected a future that waits once");
    }
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a future that is ready at the second poll"),
    }
}

/// The bare operation: an `async fn` that succeeds at once.
pub async fn operation(x: u64) -> Result<u64, std::io::Error> {
    Ok(black_box(x))
}

/// The bare operation, synchronous.
#[inline(never)]
pub fn operation_sync(x: u64) -> Result<u64, std::io::Error> {
    Ok(black_box(x))
}

/// A future that is pending at its first poll (having woken its task) and
/// ready with `value` at the second.
pub struct WaitOnce {
    waited: bool,
    value: u64,
}

impl WaitOnce {
    pub fn new(value: u64) -> Self {
        WaitOnce {
            waited: false,
            value,
        }
    }
}

impl Future for WaitOnce {
    type Output = Result<u64, std::io::Error>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.waited {
            Poll::Ready(Ok(black_box(self.value)))
        } else {
            self.waited = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// The thread counts to compare: 1, 2 and 16, keeping those the machine
/// has cores for (at least 1 and 2, so that the comparison always runs).
pub fn thread_counts() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    [1, 2, 16]
        .into_iter()
        .filter(|&n| n <= cores.max(2))
        .collect()
}
