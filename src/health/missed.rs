//! The missed-heartbeat detector: how a silence turns into a count of
//! missed heartbeats, and the per-member history of the gaps in which
//! heartbeats were missed, counted over a sliding detection window.
//!
//! All times are nanoseconds since the monitor's base instant. With `I` the
//! heartbeat interval and `h = I / 2` (rounded down) the grace, the `k`-th
//! heartbeat after one at `L` is due at `L + k·I` and counts as missed
//! once the silence exceeds `k·I + h`, that is from the instant
//! `t_k = L + k·I + h` on: a heartbeat may come up to half an interval late
//! (jitter, a slow scheduler) without counting as missed.

use std::collections::VecDeque;
use std::time::Duration;

use crate::health::HealthConfig;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The missed-heartbeat terms of a [`HealthConfig`], in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct MissedParams {
    /// `heartbeat_interval`, at least 1.
    pub(super) interval: u64,
    /// Half the interval: how late a heartbeat may be before it is missed.
    pub(super) grace: u64,
    /// `failure_threshold`.
    pub(super) threshold: u64,
    /// `detection_window`.
    pub(super) window: u64,
}

impl MissedParams {
    pub(super) fn new(config: &HealthConfig) -> MissedParams {
        let interval = nanos(config.heartbeat_interval()).max(1);
        MissedParams {
            interval,
            grace: interval / 2,
            threshold: u64::from(config.failure_threshold()),
            window: nanos(config.detection_window()),
        }
    }

    /// How many heartbeats were missed in a silence of `silent`: the `k`
    /// with `k·I + h < silent`.
    pub(super) fn missed(&self, silent: u64) -> u64 {
        if silent <= self.grace {
            0
        } else {
            (silent - self.grace - 1) / self.interval
        }
    }

    /// Of the first `count` heartbeats missed after a heartbeat at `from`,
    /// how many were missed at most one window before `now` (`t_k` at or
    /// after `now - window`).
    pub(super) fn in_window(&self, from: u64, count: u64, now: u64) -> u64 {
        if count == 0 {
            return 0;
        }
        let start = now.saturating_sub(self.window);
        let first = from
            .saturating_add(self.interval)
            .saturating_add(self.grace);
        if first >= start {
            return count;
        }
        // The smallest k with from + k·I + h >= start; k >= 2 here.
        let k_min = (start - from - self.grace).div_ceil(self.interval);
        count.saturating_sub(k_min.saturating_sub(1))
    }

    /// When the last of `count` heartbeats missed after `from` was missed.
    fn last_missed_at(&self, from: u64, count: u64) -> u64 {
        from.saturating_add(count.saturating_mul(self.interval))
            .saturating_add(self.grace)
    }
}

/// The gaps, closed by a heartbeat, in which a member missed heartbeats and
/// whose last miss is still inside the detection window: `(from, count)`,
/// the heartbeat that opened the gap and how many were missed in it, oldest
/// first. A gap leaves once its last miss is older than the window, so the
/// history holds at most about `window / (1.5 · interval)` entries.
#[derive(Debug, Default)]
pub(super) struct MissedHistory {
    gaps: VecDeque<(u64, u64)>,
}

impl MissedHistory {
    /// Records a gap closed by a heartbeat at `now`: after a heartbeat at
    /// `from`, `count` heartbeats were missed.
    pub(super) fn record(&mut self, params: &MissedParams, from: u64, count: u64, now: u64) {
        self.prune(params, now);
        if count > 0 {
            self.gaps.push_back((from, count));
        }
    }

    /// How many heartbeats of the closed gaps were missed within the window
    /// ending at `now`.
    pub(super) fn count(&mut self, params: &MissedParams, now: u64) -> u64 {
        self.prune(params, now);
        self.gaps
            .iter()
            .map(|&(from, count)| params.in_window(from, count, now))
            .fold(0u64, u64::saturating_add)
    }

    fn prune(&mut self, params: &MissedParams, now: u64) {
        let start = now.saturating_sub(params.window);
        while let Some(&(from, count)) = self.gaps.front() {
            if params.last_missed_at(from, count) >= start {
                break;
            }
            self.gaps.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn params() -> MissedParams {
        MissedParams {
            interval: 10 * S,
            grace: 5 * S,
            threshold: 3,
            window: 60 * S,
        }
    }

    #[test]
    fn a_heartbeat_is_missed_half_an_interval_after_it_was_due() {
        let p = params();
        assert_eq!(p.missed(0), 0);
        assert_eq!(p.missed(15 * S), 0);
        assert_eq!(p.missed(15 * S + 1), 1);
        assert_eq!(p.missed(25 * S), 1);
        assert_eq!(p.missed(25 * S + 1), 2);
        assert_eq!(p.missed(u64::MAX), (u64::MAX - 5 * S - 1) / (10 * S));
    }

    #[test]
    fn the_window_counts_the_misses_of_its_last_stretch() {
        let p = params();
        // Misses after a heartbeat at 0: at 15 s, 25 s, 35 s, ...
        assert_eq!(p.in_window(0, 3, 40 * S), 3);
        // At 75 s the window starts at 15 s: the miss at 15 s is inside.
        assert_eq!(p.in_window(0, 3, 75 * S), 3);
        assert_eq!(p.in_window(0, 3, 75 * S + 1), 2);
        assert_eq!(p.in_window(0, 3, 95 * S), 1);
        assert_eq!(p.in_window(0, 3, 95 * S + 1), 0);
        assert_eq!(p.in_window(0, 0, 10 * S), 0);
        assert_eq!(p.in_window(100 * S, 6, 165 * S), 6);
        // A long silence: only the last six misses fit in a minute.
        assert_eq!(p.in_window(0, 100, 1005 * S + 1), 6);
    }

    #[test]
    fn the_history_forgets_gaps_that_left_the_window() {
        let p = params();
        let mut history = MissedHistory::default();
        history.record(&p, 0, 1, 20 * S); // missed at 15 s
        history.record(&p, 20 * S, 2, 50 * S); // missed at 35 s and 45 s
        history.record(&p, 50 * S, 0, 55 * S);
        assert_eq!(history.gaps.len(), 2);
        assert_eq!(history.count(&p, 60 * S), 3);
        assert_eq!(history.count(&p, 75 * S), 3);
        assert_eq!(history.count(&p, 75 * S + 1), 2);
        assert_eq!(history.gaps.len(), 1);
        assert_eq!(history.count(&p, 105 * S + 1), 0);
        assert!(history.gaps.is_empty());
    }
}
