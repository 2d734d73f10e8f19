//! Lock-free sliding windows for the failure-rate and slow-call-rate rules.
//!
//! Both kinds are allocated once, when the breaker is built, and then only
//! updated through atomics: recording a call never takes a lock and never
//! allocates.
//!
//! **Count-based** (the last `N` calls): a ring of `N` one-byte slots and a
//! cursor. A call takes the next position with `fetch_add` on the cursor and
//! swaps its outcome into that slot; the outcome it displaces is subtracted
//! from three aggregate counters (calls, failures, slow calls) and its own
//! added, so the aggregates always equal the sum of the slots once the
//! callers in flight have finished. Reading the totals is three loads.
//!
//! **Time-based** (the last `T`, in buckets of `B`): `T / B` buckets, each
//! three words (calls, failures, slow calls). A word packs the bucket's
//! epoch tag (the index `now / B` since the breaker was built, 40 low bits)
//! with its count (24 bits). A call updates the bucket of the current epoch
//! with compare-and-swap: when the tag is current, it adds one; when the tag
//! is older, the slot is recycled by writing the new tag with a count of
//! one. Reading the totals walks the buckets and keeps each word whose tag is
//! one of the epochs in the window, so stale buckets need no sweeping.
//!
//! A bucket counts at most 16,777,215 calls; calls beyond that in the same
//! bucket are not sampled (their failures and slowness neither), which keeps
//! the bucket's rates true. Tags wrap after 2^40 buckets (about 35 years at
//! the smallest bucket, one millisecond).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use super::SlidingWindow;

/// What a window holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowTotals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

/// A sliding window of either kind.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count { size } => Window::Count(CountWindow::new(size)),
            SlidingWindow::Time { duration, bucket } => {
                Window::Time(TimeWindow::new(duration, bucket))
            }
        }
    }

    /// Whether recording needs the time (`now_nanos`).
    pub(crate) fn needs_clock(&self) -> bool {
        matches!(self, Window::Time(_))
    }

    /// Records one call that ended `now_nanos` after the breaker's base
    /// instant (ignored by the count-based window).
    pub(crate) fn record(&self, now_nanos: u64, failure: bool, slow: bool) {
        match self {
            Window::Count(w) => w.record(failure, slow),
            Window::Time(w) => w.record(now_nanos, failure, slow),
        }
    }

    /// The calls in the window at `now_nanos`.
    pub(crate) fn totals(&self, now_nanos: u64) -> WindowTotals {
        match self {
            Window::Count(w) => w.totals(),
            Window::Time(w) => w.totals(now_nanos),
        }
    }

    /// The time bucket `now_nanos` falls in (always 0 for a count-based
    /// window): between two outcomes recorded in the same bucket, no call
    /// leaves the window by age.
    pub(crate) fn bucket_of(&self, now_nanos: u64) -> u64 {
        match self {
            Window::Count(_) => 0,
            Window::Time(w) => w.epoch(now_nanos),
        }
    }

    /// Empties the window.
    pub(crate) fn clear(&self) {
        match self {
            Window::Count(w) => w.clear(),
            Window::Time(w) => w.clear(),
        }
    }
}

const CALL: u8 = 1;
const FAILURE: u8 = 1 << 1;
const SLOW: u8 = 1 << 2;

/// The last `N` calls.
#[derive(Debug)]
pub(crate) struct CountWindow {
    /// One outcome per position: 0 (empty) or `CALL` with optional
    /// `FAILURE` and `SLOW` bits.
    slots: Box<[AtomicU8]>,
    /// Positions handed out so far; the next slot is `cursor % N`.
    cursor: AtomicU64,
    /// Aggregates over the slots. They are updated after the slot swap and
    /// may be read, for a moment, one call ahead of or behind the slots; as
    /// `u32`s used with wrapping arithmetic, a transient negative reads as a
    /// huge value and is clamped.
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

impl CountWindow {
    fn new(size: u32) -> Self {
        let size = size.max(1) as usize;
        CountWindow {
            slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
            cursor: AtomicU64::new(0),
            calls: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            slow: AtomicU32::new(0),
        }
    }

    fn record(&self, failure: bool, slow: bool) {
        let code = CALL | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
        let position = self.cursor.fetch_add(1, Ordering::Relaxed);
        let index = (position % self.slots.len() as u64) as usize;
        let old = self.slots[index].swap(code, Ordering::AcqRel);
        self.apply(old, code);
    }

    /// Moves the aggregates from a slot's `old` outcome to its `new` one.
    fn apply(&self, old: u8, new: u8) {
        for (bit, counter) in [
            (CALL, &self.calls),
            (FAILURE, &self.failures),
            (SLOW, &self.slow),
        ] {
            match (old & bit != 0, new & bit != 0) {
                (false, true) => {
                    counter.fetch_add(1, Ordering::AcqRel);
                }
                (true, false) => {
                    counter.fetch_sub(1, Ordering::AcqRel);
                }
                _ => {}
            }
        }
    }

    /// A counter's value, a transient negative clamped to zero and the
    /// value to the window's size.
    fn read(&self, counter: &AtomicU32) -> u64 {
        let v = counter.load(Ordering::Acquire) as i32;
        (v.max(0) as u64).min(self.slots.len() as u64)
    }

    fn totals(&self) -> WindowTotals {
        let read = |c: &AtomicU32| self.read(c);
        let calls = read(&self.calls);
        WindowTotals {
            calls,
            failures: read(&self.failures).min(calls),
            slow: read(&self.slow).min(calls),
        }
    }

    fn clear(&self) {
        for slot in self.slots.iter() {
            let old = slot.swap(0, Ordering::AcqRel);
            self.apply(old, 0);
        }
    }
}

const TAG_BITS: u32 = 40;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

fn pack(tag: u64, count: u64) -> u64 {
    ((tag & TAG_MASK) << COUNT_BITS) | (count & COUNT_MASK)
}

fn tag_of(word: u64) -> u64 {
    word >> COUNT_BITS
}

fn count_of(word: u64) -> u64 {
    word & COUNT_MASK
}

/// What happened when a call was added to a bucket word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Added {
    /// Counted.
    Counted,
    /// The bucket is full (or holds a later epoch): not counted.
    Skipped,
}

/// One time bucket: three tagged counters.
#[derive(Debug)]
struct Bucket {
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

/// The calls of the last `T`, in buckets of `B`.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    bucket_nanos: u64,
}

impl TimeWindow {
    fn new(duration: Duration, bucket: Duration) -> Self {
        let bucket_nanos = u64::try_from(bucket.as_nanos()).unwrap_or(u64::MAX).max(1);
        let count = (duration.as_nanos() / u128::from(bucket_nanos)).max(1);
        let count = usize::try_from(count).unwrap_or(1);
        TimeWindow {
            buckets: (0..count)
                .map(|_| Bucket {
                    calls: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    slow: AtomicU64::new(0),
                })
                .collect(),
            bucket_nanos,
        }
    }

    fn epoch(&self, now_nanos: u64) -> u64 {
        now_nanos / self.bucket_nanos
    }

    fn bucket(&self, epoch: u64) -> &Bucket {
        &self.buckets[(epoch % self.buckets.len() as u64) as usize]
    }

    fn record(&self, now_nanos: u64, failure: bool, slow: bool) {
        let epoch = self.epoch(now_nanos);
        let bucket = self.bucket(epoch);
        if add(&bucket.calls, epoch) == Added::Skipped {
            return;
        }
        if failure {
            add(&bucket.failures, epoch);
        }
        if slow {
            add(&bucket.slow, epoch);
        }
    }

    fn totals(&self, now_nanos: u64) -> WindowTotals {
        let current = self.epoch(now_nanos);
        let mut totals = WindowTotals::default();
        for back in 0..self.buckets.len() as u64 {
            let Some(epoch) = current.checked_sub(back) else {
                break;
            };
            let bucket = self.bucket(epoch);
            let tag = epoch & TAG_MASK;
            let read = |word: &AtomicU64| {
                let w = word.load(Ordering::Acquire);
                if tag_of(w) == tag {
                    count_of(w)
                } else {
                    0
                }
            };
            let calls = read(&bucket.calls);
            totals.calls += calls;
            totals.failures += read(&bucket.failures).min(calls);
            totals.slow += read(&bucket.slow).min(calls);
        }
        totals
    }

    fn clear(&self) {
        for bucket in self.buckets.iter() {
            bucket.calls.store(0, Ordering::Release);
            bucket.failures.store(0, Ordering::Release);
            bucket.slow.store(0, Ordering::Release);
        }
    }
}

/// Adds one call of `epoch` to a tagged counter.
fn add(word: &AtomicU64, epoch: u64) -> Added {
    let tag = epoch & TAG_MASK;
    let mut current = word.load(Ordering::Acquire);
    loop {
        let stored = tag_of(current);
        let next = if stored == tag {
            let count = count_of(current);
            if count == COUNT_MASK {
                return Added::Skipped;
            }
            pack(tag, count + 1)
        } else if is_later(stored, tag) {
            // The slot already belongs to a later epoch: this call ended more
            // than a window ago (its caller was descheduled that long).
            return Added::Skipped;
        } else {
            pack(tag, 1)
        };
        match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Added::Counted,
            Err(actual) => current = actual,
        }
    }
}

/// Whether tag `a` is a later epoch than tag `b`, comparing modulo 2^40.
fn is_later(a: u64, b: u64) -> bool {
    let diff = a.wrapping_sub(b) & TAG_MASK;
    diff != 0 && diff < (1 << (TAG_BITS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn count_window_keeps_the_last_n() {
        let w = CountWindow::new(4);
        assert_eq!(w.totals(), WindowTotals::default());
        w.record(true, false);
        w.record(true, true);
        w.record(false, false);
        assert_eq!(
            w.totals(),
            WindowTotals {
                calls: 3,
                failures: 2,
                slow: 1
            }
        );
        w.record(false, false);
        w.record(false, false); // displaces the first failure
        assert_eq!(
            w.totals(),
            WindowTotals {
                calls: 4,
                failures: 1,
                slow: 1
            }
        );
        w.record(false, false); // displaces the slow failure
        assert_eq!(
            w.totals(),
            WindowTotals {
                calls: 4,
                failures: 0,
                slow: 0
            }
        );
        w.clear();
        assert_eq!(w.totals(), WindowTotals::default());
        w.record(true, false);
        assert_eq!(w.totals().failures, 1);
    }

    #[test]
    fn time_window_forgets_old_buckets() {
        let w = TimeWindow::new(Duration::from_secs(3), Duration::from_secs(1));
        w.record(0, true, false);
        w.record(SEC / 2, false, true);
        w.record(SEC + 1, false, false);
        let t = w.totals(SEC + 1);
        assert_eq!((t.calls, t.failures, t.slow), (3, 1, 1));
        // At 3s, epoch 0 has left the window (epochs 1, 2, 3 remain).
        let t = w.totals(3 * SEC);
        assert_eq!((t.calls, t.failures, t.slow), (1, 0, 0));
        // Recording at 3s recycles the slot of epoch 0.
        w.record(3 * SEC, true, false);
        let t = w.totals(3 * SEC + 5);
        assert_eq!((t.calls, t.failures), (2, 1));
        // Long idle: everything is stale without any sweeping.
        assert_eq!(w.totals(1_000 * SEC), WindowTotals::default());
        w.record(1_000 * SEC, false, false);
        assert_eq!(w.totals(1_000 * SEC).calls, 1);
        w.clear();
        assert_eq!(w.totals(1_000 * SEC), WindowTotals::default());
    }

    #[test]
    fn late_call_does_not_clobber_a_newer_bucket() {
        let w = TimeWindow::new(Duration::from_secs(2), Duration::from_secs(1));
        w.record(2 * SEC, false, false); // epoch 2, slot 0
        w.record(0, true, false); // epoch 0, slot 0: older, skipped
        let t = w.totals(2 * SEC);
        assert_eq!((t.calls, t.failures), (1, 0));
    }

    #[test]
    fn a_full_bucket_stops_sampling() {
        let word = AtomicU64::new(pack(7, COUNT_MASK - 1));
        assert_eq!(add(&word, 7), Added::Counted);
        assert_eq!(add(&word, 7), Added::Skipped);
        assert_eq!(count_of(word.load(Ordering::Relaxed)), COUNT_MASK);
        assert_eq!(add(&word, 8), Added::Counted);
        assert_eq!(word.load(Ordering::Relaxed), pack(8, 1));
    }

    #[test]
    fn tags_compare_modulo() {
        assert!(is_later(5, 4));
        assert!(!is_later(4, 5));
        assert!(!is_later(4, 4));
        assert!(is_later(0, TAG_MASK));
    }

    #[test]
    fn count_window_aggregates_match_slots_after_concurrent_use() {
        let w = std::sync::Arc::new(CountWindow::new(7));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000u32 {
                        w.record((i + t) % 3 == 0, (i + t) % 5 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut expected = WindowTotals::default();
        for slot in w.slots.iter() {
            let s = slot.load(Ordering::Relaxed);
            expected.calls += u64::from(s & CALL != 0);
            expected.failures += u64::from(s & FAILURE != 0);
            expected.slow += u64::from(s & SLOW != 0);
        }
        assert_eq!(w.totals(), expected);
        assert_eq!(expected.calls, 7);
    }
}
