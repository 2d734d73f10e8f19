//! Heap allocations on the hot paths, counted by a global allocator.
//!
//! Allocations are counted per thread, only while a test has counting
//! switched on, so that tests running side by side do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use steadfast::retry::RetryPolicy;

struct Counting;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES_LIVE: Cell<i64> = const { Cell::new(0) };
}

fn note(bytes: i64, is_alloc: bool) {
    let _ = ENABLED.try_with(|enabled| {
        if enabled.get() {
            if is_alloc {
                let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
            }
            let _ = BYTES_LIVE.try_with(|b| b.set(b.get() + bytes));
        }
    });
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

/// Runs `f` and returns how many allocations it made on this thread.
fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    ALLOCATIONS.with(|a| a.set(0));
    ENABLED.with(|e| e.set(true));
    let r = f();
    ENABLED.with(|e| e.set(false));
    (r, ALLOCATIONS.with(Cell::get))
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
    let (_, allocations) = count_allocations(|| Box::new(7u64));
    assert_eq!(allocations, 1);
}
