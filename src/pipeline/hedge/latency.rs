//! The latency record behind a percentile hedging delay: the last `window`
//! latencies of successful attempts, kept sorted, and the delay they give.
//!
//! # Algorithm
//!
//! The record holds two arrays of `window` nanosecond counts, allocated once
//! when the hedge is built, behind one mutex:
//!
//! - `ring`: the samples in order of arrival; the next sample overwrites the
//!   oldest once the ring is full;
//! - `sorted`: the same samples in ascending order.
//!
//! Recording a sample takes the lock and, once the window is full, finds the
//! oldest sample in `sorted` by binary search and the place of the new one
//! by another, then shifts the entries between the two places by one and
//! writes the new sample into the gap (nothing moves when the two are
//! equal): one `memmove` of at most `window` entries (at most [`HedgeConfig::MAX_WINDOW`](super::HedgeConfig::MAX_WINDOW)).
//! While the window fills, the sample is inserted the same way. No sample
//! allocates.
//!
//! The percentile is then read off `sorted` by the nearest-rank method: with
//! `n` samples, the `p`-th percentile is the sample of rank
//! `⌈p · n / 100⌉` (1-based), so p100 is the slowest sample and p50 of
//! `[10, 20, 30, 40]` is 20. With at least `min_samples` samples it is
//! stored, as nanoseconds (at least one millisecond, tokio's timer
//! resolution), in an atomic the callers read without the lock; with fewer,
//! the atomic holds a marker and callers use the fixed delay.
//!
//! So a call takes the lock once, when its winning attempt records its
//! latency, and holds it for two binary searches and one short `memmove`;
//! reading the delay is one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The stored delay while fewer than `min_samples` latencies are recorded.
const NOT_ENOUGH: u64 = u64::MAX;

/// The smallest delay a percentile gives: tokio's timer resolution. A
/// percentile of zero (every recent attempt answered at its first poll)
/// would otherwise start every hedge at once.
const FLOOR: Duration = Duration::from_millis(1);

/// The last `window` latencies of successful attempts and the delay they
/// give; shared by the clones of a hedge.
pub(super) struct LatencyRecord {
    percentile: f64,
    min_samples: usize,
    fallback: Duration,
    window: Mutex<Window>,
    /// The percentile in nanoseconds, or [`NOT_ENOUGH`].
    current: AtomicU64,
}

/// The samples, in order of arrival and sorted (see the module docs).
struct Window {
    ring: Box<[u64]>,
    sorted: Box<[u64]>,
    /// The ring slot the next sample goes to.
    next: usize,
    /// Samples held, at most `ring.len()`.
    len: usize,
}

impl LatencyRecord {
    /// An empty record; `window` and `min_samples` are validated (at least
    /// 1, `min_samples ≤ window`) by the config.
    pub(super) fn new(
        percentile: f64,
        window: usize,
        min_samples: usize,
        fallback: Duration,
    ) -> Self {
        LatencyRecord {
            percentile,
            min_samples: min_samples.max(1),
            fallback,
            window: Mutex::new(Window {
                ring: vec![0; window.max(1)].into_boxed_slice(),
                sorted: vec![0; window.max(1)].into_boxed_slice(),
                next: 0,
                len: 0,
            }),
            current: AtomicU64::new(NOT_ENOUGH),
        }
    }

    /// The delay to wait before the next hedge: the percentile of the
    /// recorded latencies, or the fixed delay while too few are recorded.
    #[inline]
    pub(super) fn delay(&self) -> Duration {
        match self.current.load(Ordering::Relaxed) {
            NOT_ENOUGH => self.fallback,
            nanos => Duration::from_nanos(nanos),
        }
    }

    /// Records the latency of a successful attempt.
    pub(super) fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(NOT_ENOUGH - 1);
        // Nothing under the lock panics; a poisoned lock still holds
        // consistent arrays.
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.insert(nanos);
        if window.len >= self.min_samples {
            let value = window.percentile(self.percentile);
            let floor = u64::try_from(FLOOR.as_nanos()).unwrap_or(0);
            self.current.store(value.max(floor), Ordering::Relaxed);
        }
    }

    /// The samples held, sorted (for tests).
    #[cfg(test)]
    fn sorted(&self) -> Vec<u64> {
        let window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.sorted[..window.len].to_vec()
    }
}

impl Window {
    /// Adds a sample, replacing the oldest once the window is full.
    fn insert(&mut self, sample: u64) {
        let capacity = self.ring.len();
        let slot = self.next;
        self.next = if slot + 1 == capacity { 0 } else { slot + 1 };
        if self.len < capacity {
            // Filling: shift the larger samples right by one.
            let at = self.sorted[..self.len].partition_point(|&s| s <= sample);
            self.sorted.copy_within(at..self.len, at + 1);
            self.sorted[at] = sample;
            self.len += 1;
        } else {
            let old = self.ring[slot];
            let sorted = &mut self.sorted[..];
            // The oldest sample is in `sorted`. Among equal entries the ones
            // nearest the new sample's place are taken, so that the fewest
            // entries move (none when the two are equal).
            if sample < old {
                // The first `old`, and the place after the samples equal
                // to the new one: the entries between move right.
                let from = sorted.partition_point(|&s| s < old);
                let to = sorted.partition_point(|&s| s <= sample);
                sorted.copy_within(to..from, to + 1);
                sorted[to] = sample;
            } else if sample > old {
                // The last `old`, and the place before the samples equal to
                // the new one: the entries between move left.
                let from = sorted.partition_point(|&s| s <= old).saturating_sub(1);
                let to = sorted.partition_point(|&s| s < sample);
                sorted.copy_within(from + 1..to, from);
                sorted[to - 1] = sample;
            }
        }
        self.ring[slot] = sample;
    }

    /// The nearest-rank percentile of the samples held (at least one).
    fn percentile(&self, p: f64) -> u64 {
        let n = self.len;
        // ⌈p·n/100⌉; the small bias keeps a product such as 99.9 × 1000,
        // not exact in binary, from rounding up to the next rank.
        let rank = (p * n as f64 / 100.0 - 1e-9).ceil();
        let rank = if rank.is_nan() || rank < 1.0 {
            1
        } else if rank >= n as f64 {
            n
        } else {
            rank as usize
        };
        self.sorted[rank - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_fixed_delay_holds_until_min_samples() {
        let r = LatencyRecord::new(50.0, 10, 3, ms(500));
        assert_eq!(r.delay(), ms(500));
        r.record(ms(10));
        r.record(ms(30));
        assert_eq!(r.delay(), ms(500));
        r.record(ms(20));
        assert_eq!(r.delay(), ms(20));
    }

    #[test]
    fn nearest_rank() {
        let r = LatencyRecord::new(50.0, 4, 1, ms(1));
        for n in [40, 10, 30, 20] {
            r.record(ms(n));
        }
        assert_eq!(r.delay(), ms(20));
        let w = r.window.lock().unwrap();
        assert_eq!(w.percentile(100.0), 40_000_000);
        assert_eq!(w.percentile(75.0), 30_000_000);
        assert_eq!(w.percentile(75.1), 40_000_000);
        assert_eq!(w.percentile(0.001), 10_000_000);
        drop(w);

        // 99.9 × 1000 is not exact in binary: still rank 999.
        let r = LatencyRecord::new(99.9, 1_000, 1, ms(1));
        for n in 1..=1_000 {
            r.record(ms(n));
        }
        assert_eq!(r.delay(), ms(999));
        let r = LatencyRecord::new(95.0, 100, 1, ms(1));
        for n in 1..=100 {
            r.record(ms(n));
        }
        assert_eq!(r.delay(), ms(95));
    }

    #[test]
    fn the_oldest_samples_leave_the_window() {
        let r = LatencyRecord::new(100.0, 3, 1, ms(1));
        for n in [50, 10, 20] {
            r.record(ms(n));
        }
        assert_eq!(r.delay(), ms(50));
        // 50 is the oldest: it goes, and the slowest left is 30.
        r.record(ms(30));
        assert_eq!(r.delay(), ms(30));
        assert_eq!(r.sorted(), vec![10_000_000, 20_000_000, 30_000_000]);
    }

    #[test]
    fn a_zero_percentile_is_floored_at_the_timer_resolution() {
        let r = LatencyRecord::new(95.0, 10, 1, ms(100));
        r.record(Duration::ZERO);
        assert_eq!(r.delay(), FLOOR);
    }

    #[test]
    fn many_threads_keep_the_window_consistent() {
        let r = std::sync::Arc::new(LatencyRecord::new(90.0, 64, 8, ms(5)));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000u64 {
                        r.record(Duration::from_nanos((t * 7_919 + i * 104_729) % 1_000_003));
                        let _ = r.delay();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let w = r.window.lock().unwrap();
        assert_eq!(w.len, 64);
        let mut ring = w.ring.to_vec();
        ring.sort_unstable();
        assert_eq!(ring, w.sorted.to_vec());
    }

    proptest! {
        /// The sorted array is always the ring's samples, sorted, and the
        /// delay is the nearest-rank percentile of the last `window`.
        #[test]
        fn matches_a_sorted_copy_of_the_last_window(
            window in 1usize..20,
            samples in proptest::collection::vec(0u64..50, 0..80),
            p in 1u32..=100,
        ) {
            let p = f64::from(p);
            let r = LatencyRecord::new(p, window, 1, ms(7));
            for (i, &s) in samples.iter().enumerate() {
                r.record(Duration::from_nanos(s));
                let start = (i + 1).saturating_sub(window);
                let mut last: Vec<u64> = samples[start..=i].to_vec();
                last.sort_unstable();
                prop_assert_eq!(r.sorted(), last.clone());
                let rank = ((p * last.len() as f64) / 100.0).ceil() as usize;
                let expected = last[rank.clamp(1, last.len()) - 1].max(1_000_000);
                prop_assert_eq!(r.delay(), Duration::from_nanos(expected));
            }
        }
    }
}
