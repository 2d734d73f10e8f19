//! Retention: which committed checkpoints a [`RetentionPolicy`] keeps and
//! which it deletes, decided by a pure function ([`RetentionPolicy::plan`])
//! that the manager then carries out.
//!
//! The rules are Orbax's: keep the last N, keep everything younger than a
//! duration, keep every k-th step, keep one per period of wall time. A
//! checkpoint is kept when any rule set keeps it (their union); with no rule
//! set, everything is kept. Two checkpoints are kept whatever the rules say:
//! the newest (highest commit sequence) and every name the caller protects
//! (one being written or loaded, say).
//!
//! Order comes from the commit sequence the manifests record, never from a
//! wall clock or a step (see [`sort_newest_first`](super::sort_newest_first)).
//! Ages alone come from the wall time recorded at commit, compared with the
//! `now` the caller gives (read from the clock the manager is given, so that
//! tests set it); a commit time in the future (a clock that went back)
//! counts as age zero.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::checkpoint::CheckpointInfo;
use crate::error::ConfigError;

use super::points::commit_order;

/// Which committed checkpoints to keep: any of keep-last-N, keep younger
/// than an age, keep every k-th step, keep one per period; the union of the
/// rules set. The newest checkpoint and protected ones are always kept.
///
/// # Default
///
/// [`keep_all`](Self::keep_all): no rule, nothing deleted.
///
/// # Examples
///
/// ```
/// use std::collections::HashSet;
/// use std::time::{Duration, SystemTime};
/// use steadfast::checkpoint::Manifest;
/// use steadfast::manager::{KeepReason, RetentionPolicy};
///
/// let policy = RetentionPolicy::keep_all()
///     .keep_last(2)
///     .keep_every_n_steps(1000);
/// policy.validate()?;
///
/// let now = SystemTime::now();
/// let infos: Vec<_> = (1..=5u64)
///     .map(|i| {
///         let mut m = Manifest::new(format!("run/ckpt-{i:010}"), 1);
///         m.sequence = Some(i);
///         m.step = Some(i * 500);
///         m.info()
///     })
///     .collect();
/// let plan = policy.plan(&infos, now, &HashSet::new());
/// let deleted: Vec<_> = plan.delete.iter().map(|i| i.step.unwrap()).collect();
/// assert_eq!(deleted, [500, 1500]);
/// assert_eq!(plan.reason("run/ckpt-0000000005"), Some(KeepReason::Newest));
/// assert_eq!(plan.reason("run/ckpt-0000000004"), Some(KeepReason::Last));
/// assert_eq!(plan.reason("run/ckpt-0000000002"), Some(KeepReason::EveryNSteps));
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    last: Option<usize>,
    max_age: Option<Duration>,
    every_n_steps: Option<u64>,
    period: Option<Duration>,
}

impl RetentionPolicy {
    /// The policy with no rule: keeps everything (the default).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::RetentionPolicy;
    /// assert!(RetentionPolicy::keep_all().keeps_everything());
    /// assert_eq!(RetentionPolicy::keep_all(), RetentionPolicy::default());
    /// ```
    pub fn keep_all() -> Self {
        RetentionPolicy::default()
    }

    /// Keeps the `n` newest checkpoints, by commit sequence (Orbax's
    /// `max_to_keep`); `n` must be at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::RetentionPolicy;
    /// assert_eq!(RetentionPolicy::keep_all().keep_last(5).last(), Some(5));
    /// ```
    pub fn keep_last(mut self, n: usize) -> Self {
        self.last = Some(n);
        self
    }

    /// Keeps every checkpoint committed less than `age` ago (by the wall
    /// time recorded at commit); `age` must be more than zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::manager::RetentionPolicy;
    /// let week = Duration::from_secs(7 * 86_400);
    /// assert_eq!(RetentionPolicy::keep_all().keep_for(week).max_age(), Some(week));
    /// ```
    pub fn keep_for(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Keeps every checkpoint whose step is a multiple of `k` (a checkpoint
    /// without a step is not kept by this rule); `k` must be at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::RetentionPolicy;
    /// assert_eq!(RetentionPolicy::keep_all().keep_every_n_steps(10_000).every_n_steps(), Some(10_000));
    /// ```
    pub fn keep_every_n_steps(mut self, k: u64) -> Self {
        self.every_n_steps = Some(k);
        self
    }

    /// Keeps one checkpoint per `period` of wall time since the Unix epoch
    /// (Orbax's `keep_period` in time): of the checkpoints committed in one
    /// period, the oldest in commit order, so that what is kept does not
    /// change as the period fills; `period` must be more than zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::manager::RetentionPolicy;
    /// let day = Duration::from_secs(86_400);
    /// assert_eq!(RetentionPolicy::keep_all().keep_one_per(day).period(), Some(day));
    /// ```
    pub fn keep_one_per(mut self, period: Duration) -> Self {
        self.period = Some(period);
        self
    }

    /// The `n` of [`keep_last`](Self::keep_last), if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::manager::RetentionPolicy::keep_all().last(), None);
    /// ```
    pub fn last(&self) -> Option<usize> {
        self.last
    }

    /// The age of [`keep_for`](Self::keep_for), if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::manager::RetentionPolicy::keep_all().max_age(), None);
    /// ```
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// The `k` of [`keep_every_n_steps`](Self::keep_every_n_steps), if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::manager::RetentionPolicy::keep_all().every_n_steps(), None);
    /// ```
    pub fn every_n_steps(&self) -> Option<u64> {
        self.every_n_steps
    }

    /// The period of [`keep_one_per`](Self::keep_one_per), if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::manager::RetentionPolicy::keep_all().period(), None);
    /// ```
    pub fn period(&self) -> Option<Duration> {
        self.period
    }

    /// Whether no rule is set, so that [`plan`](Self::plan) deletes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::RetentionPolicy;
    /// assert!(!RetentionPolicy::keep_all().keep_last(3).keeps_everything());
    /// ```
    pub fn keeps_everything(&self) -> bool {
        self.last.is_none()
            && self.max_age.is_none()
            && self.every_n_steps.is_none()
            && self.period.is_none()
    }

    /// Checks the rules: a zero count, age, step interval or period is
    /// refused (it would keep nothing, or divide by zero).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] on field `keep_last`, `keep_for`,
    /// `keep_every_n_steps` or `keep_one_per`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::manager::RetentionPolicy;
    ///
    /// assert!(RetentionPolicy::keep_all().keep_last(1).validate().is_ok());
    /// let err = RetentionPolicy::keep_all().keep_for(Duration::ZERO).validate().unwrap_err();
    /// assert_eq!(err.field(), "keep_for");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_fields([
            "keep_last",
            "keep_for",
            "keep_every_n_steps",
            "keep_one_per",
        ])
    }

    /// [`validate`](Self::validate), naming the fields as the caller's
    /// config does (`[last, age, every_n_steps, period]`).
    pub(crate) fn validate_fields(&self, fields: [&'static str; 4]) -> Result<(), ConfigError> {
        let [last, age, steps, period] = fields;
        if self.last == Some(0) {
            return Err(ConfigError::new(
                last,
                "must be at least 1 when set (the newest checkpoint is always kept)",
            ));
        }
        if self.max_age.is_some_and(|a| a.is_zero()) {
            return Err(ConfigError::new(age, "must be greater than zero when set"));
        }
        if self.every_n_steps == Some(0) {
            return Err(ConfigError::new(steps, "must be at least 1 when set"));
        }
        if self.period.is_some_and(|p| p.is_zero()) {
            return Err(ConfigError::new(
                period,
                "must be greater than zero when set",
            ));
        }
        Ok(())
    }

    /// Decides which of `checkpoints` to keep and which to delete, at wall
    /// time `now`, never deleting the names in `protected`.
    ///
    /// A checkpoint is kept when any rule set keeps it (with no rule set,
    /// all are kept); the newest (highest commit sequence) and every
    /// protected name are always kept. `checkpoints` may come in any order;
    /// both lists of the plan are in commit order, oldest first. Every
    /// checkpoint given is in exactly one of the two lists. The policy is
    /// not validated here: a zero rule keeps nothing by that rule.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashSet;
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// use steadfast::checkpoint::Manifest;
    /// use steadfast::manager::{KeepReason, RetentionPolicy};
    ///
    /// let day = 86_400_000u64; // in milliseconds
    /// let infos: Vec<_> = (1..=10u64)
    ///     .map(|i| {
    ///         let mut m = Manifest::new(format!("c{i}"), 1);
    ///         m.sequence = Some(i);
    ///         m.created_at = i * day;
    ///         m.info()
    ///     })
    ///     .collect();
    /// let now = UNIX_EPOCH + Duration::from_millis(10 * day);
    /// let policy = RetentionPolicy::keep_all().keep_for(Duration::from_secs(3 * 86_400));
    /// let protected: HashSet<String> = ["c1".to_string()].into();
    /// let plan = policy.plan(&infos, now, &protected);
    /// let kept: Vec<_> = plan.keep.iter().map(|(i, _)| i.name.as_str()).collect();
    /// assert_eq!(kept, ["c1", "c8", "c9", "c10"]);
    /// assert_eq!(plan.reason("c1"), Some(KeepReason::Protected));
    /// assert_eq!(plan.reason("c8"), Some(KeepReason::Young));
    /// assert_eq!(plan.delete.len(), 6);
    /// ```
    pub fn plan(
        &self,
        checkpoints: &[CheckpointInfo],
        now: SystemTime,
        protected: &HashSet<String>,
    ) -> RetentionPlan {
        let mut ordered: Vec<&CheckpointInfo> = checkpoints.iter().collect();
        ordered.sort_by(|a, b| info_order(a).cmp(&info_order(b)));
        let count = ordered.len();
        // Positions, oldest first, kept by keep_one_per: the first of each
        // period in commit order.
        let mut first_of_period: HashSet<usize> = HashSet::new();
        if let Some(period) = self.period.filter(|p| !p.is_zero()) {
            let mut seen_periods = HashSet::new();
            for (index, info) in ordered.iter().enumerate() {
                if seen_periods.insert(period_index(info.created_at, period)) {
                    first_of_period.insert(index);
                }
            }
        }
        let mut plan = RetentionPlan::default();
        for (index, info) in ordered.into_iter().enumerate() {
            let from_newest = count - 1 - index;
            let reason = if from_newest == 0 {
                Some(KeepReason::Newest)
            } else if protected.contains(&info.name) {
                Some(KeepReason::Protected)
            } else if self.keeps_everything() {
                Some(KeepReason::NoRule)
            } else if self.last.is_some_and(|n| from_newest < n) {
                Some(KeepReason::Last)
            } else if self
                .max_age
                .is_some_and(|max| age(info.created_at, now) < max)
            {
                Some(KeepReason::Young)
            } else if self
                .every_n_steps
                .is_some_and(|k| k > 0 && info.step.is_some_and(|s| s % k == 0))
            {
                Some(KeepReason::EveryNSteps)
            } else if first_of_period.contains(&index) {
                Some(KeepReason::OnePerPeriod)
            } else {
                None
            };
            match reason {
                Some(reason) => plan.keep.push((info.clone(), reason)),
                None => plan.delete.push(info.clone()),
            }
        }
        plan
    }
}

fn info_order(info: &CheckpointInfo) -> (bool, u64, Option<u64>, SystemTime, &str) {
    commit_order(info.sequence, info.step, info.created_at, &info.name)
}

/// How long before `now` a checkpoint was committed; zero for a commit time
/// in the future (a clock that went back, or another host's clock ahead).
fn age(created_at: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(created_at).unwrap_or(Duration::ZERO)
}

/// Which period of wall time since the Unix epoch `t` falls in (period 0 for
/// a time before the epoch). `period` is not zero.
fn period_index(t: SystemTime, period: Duration) -> u128 {
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    since_epoch.as_nanos() / period.as_nanos().max(1)
}

/// What [`RetentionPolicy::plan`] decided: the checkpoints to delete and
/// those to keep, each with the reason it is kept; both in commit order,
/// oldest first.
///
/// # Examples
///
/// ```
/// use std::collections::HashSet;
/// use std::time::SystemTime;
/// use steadfast::checkpoint::Manifest;
/// use steadfast::manager::{KeepReason, RetentionPolicy};
///
/// let infos = vec![Manifest::new("a", 1).info()];
/// let plan = RetentionPolicy::keep_all().keep_last(1).plan(&infos, SystemTime::now(), &HashSet::new());
/// assert!(plan.delete.is_empty());
/// assert_eq!(plan.keep[0].1, KeepReason::Newest);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// The checkpoints to delete, oldest first.
    pub delete: Vec<CheckpointInfo>,
    /// The checkpoints to keep, oldest first, each with why.
    pub keep: Vec<(CheckpointInfo, KeepReason)>,
}

impl RetentionPlan {
    /// Why the checkpoint named `name` is kept; `None` when it is deleted
    /// or was not in the plan.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::RetentionPlan;
    /// assert_eq!(RetentionPlan::default().reason("a"), None);
    /// ```
    pub fn reason(&self, name: &str) -> Option<KeepReason> {
        self.keep
            .iter()
            .find(|(info, _)| info.name == name)
            .map(|(_, reason)| *reason)
    }

    /// The names of the checkpoints to delete, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::RetentionPlan;
    /// assert!(RetentionPlan::default().deleted_names().is_empty());
    /// ```
    pub fn deleted_names(&self) -> Vec<&str> {
        self.delete.iter().map(|info| info.name.as_str()).collect()
    }
}

/// Why [`RetentionPolicy::plan`] keeps a checkpoint: the first of these that
/// applies, in this order.
///
/// # Examples
///
/// ```
/// use steadfast::manager::KeepReason;
/// assert_eq!(KeepReason::EveryNSteps.to_string(), "every n steps");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeepReason {
    /// It is the newest checkpoint (highest commit sequence): always kept.
    Newest,
    /// The caller protected it (being written or loaded): always kept.
    Protected,
    /// One of the last N (`keep_last`).
    Last,
    /// Committed less than the age of `keep_for` ago.
    Young,
    /// Its step is a multiple of `keep_every_n_steps`.
    EveryNSteps,
    /// The oldest of its period (`keep_one_per`).
    OnePerPeriod,
    /// The policy has no rule, so everything is kept.
    NoRule,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeepReason::Newest => "newest",
            KeepReason::Protected => "protected",
            KeepReason::Last => "one of the last n",
            KeepReason::Young => "young",
            KeepReason::EveryNSteps => "every n steps",
            KeepReason::OnePerPeriod => "one per period",
            KeepReason::NoRule => "no rule",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: u64 = 86_400;

    fn info(name: &str, sequence: Option<u64>, step: Option<u64>, secs: u64) -> CheckpointInfo {
        CheckpointInfo {
            name: name.into(),
            step,
            sequence,
            created_at: UNIX_EPOCH + Duration::from_secs(secs),
            world_size: 1,
            total_size: 0,
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn none() -> HashSet<String> {
        HashSet::new()
    }

    fn kept(plan: &RetentionPlan) -> Vec<&str> {
        plan.keep.iter().map(|(i, _)| i.name.as_str()).collect()
    }

    /// `n` checkpoints c1..=cn, sequence i, step 100 i, committed on day i.
    fn daily(n: u64) -> Vec<CheckpointInfo> {
        (1..=n)
            .map(|i| info(&format!("c{i}"), Some(i), Some(i * 100), i * DAY))
            .collect()
    }

    #[test]
    fn keep_all_deletes_nothing() {
        let plan = RetentionPolicy::keep_all().plan(&daily(4), at(10 * DAY), &none());
        assert!(plan.delete.is_empty());
        assert_eq!(kept(&plan), ["c1", "c2", "c3", "c4"]);
        assert_eq!(plan.reason("c4"), Some(KeepReason::Newest));
        assert_eq!(plan.reason("c1"), Some(KeepReason::NoRule));
    }

    #[test]
    fn keep_last_keeps_the_newest_by_sequence() {
        // Given in any order, the commit sequence decides, not the time or step.
        let infos = vec![
            info("late-clock", Some(1), Some(900), 90 * DAY),
            info("b", Some(3), Some(10), DAY),
            info("a", Some(2), Some(500), 2 * DAY),
        ];
        let plan = RetentionPolicy::keep_all()
            .keep_last(2)
            .plan(&infos, at(100 * DAY), &none());
        assert_eq!(kept(&plan), ["a", "b"]);
        assert_eq!(plan.deleted_names(), ["late-clock"]);
        assert_eq!(plan.reason("b"), Some(KeepReason::Newest));
        assert_eq!(plan.reason("a"), Some(KeepReason::Last));
    }

    #[test]
    fn keep_for_keeps_young_checkpoints() {
        let plan = RetentionPolicy::keep_all()
            .keep_for(Duration::from_secs(2 * DAY))
            .plan(&daily(5), at(5 * DAY), &none());
        // c4 is one day old, c3 exactly two: not younger than two days.
        assert_eq!(kept(&plan), ["c4", "c5"]);
        assert_eq!(plan.reason("c4"), Some(KeepReason::Young));
    }

    #[test]
    fn a_commit_time_in_the_future_counts_as_age_zero() {
        let infos = vec![
            info("old", Some(1), None, 0),
            info("future", Some(2), None, 50 * DAY),
            info("newest", Some(3), None, 0),
        ];
        let plan = RetentionPolicy::keep_all()
            .keep_for(Duration::from_secs(1))
            .plan(&infos, at(DAY), &none());
        assert_eq!(plan.reason("future"), Some(KeepReason::Young));
        assert_eq!(plan.deleted_names(), ["old"]);
        assert_eq!(age(at(5), at(1)), Duration::ZERO);
    }

    #[test]
    fn keep_every_n_steps_keeps_multiples() {
        let mut infos = daily(6);
        infos.push(info("no-step", Some(0), None, 0));
        let plan = RetentionPolicy::keep_all()
            .keep_every_n_steps(200)
            .plan(&infos, at(0), &none());
        assert_eq!(kept(&plan), ["c2", "c4", "c6"]);
        assert_eq!(plan.deleted_names(), ["no-step", "c1", "c3", "c5"]);
        assert_eq!(plan.reason("c2"), Some(KeepReason::EveryNSteps));
    }

    #[test]
    fn keep_one_per_keeps_the_oldest_of_each_period() {
        // Four a day, six hours apart, for three days.
        let infos: Vec<_> = (0..12u64)
            .map(|i| info(&format!("c{i}"), Some(i + 1), None, i * DAY / 4 + 60))
            .collect();
        let plan = RetentionPolicy::keep_all()
            .keep_one_per(Duration::from_secs(DAY))
            .plan(&infos, at(3 * DAY), &none());
        assert_eq!(kept(&plan), ["c0", "c4", "c8", "c11"]);
        assert_eq!(plan.reason("c4"), Some(KeepReason::OnePerPeriod));
        assert_eq!(plan.reason("c11"), Some(KeepReason::Newest));
    }

    #[test]
    fn one_per_period_is_the_first_in_commit_order_not_in_time() {
        // The clock of the host that committed "second" was behind.
        let infos = vec![
            info("first", Some(1), None, DAY + 500),
            info("second", Some(2), None, DAY + 100),
            info("newest", Some(3), None, 5 * DAY),
        ];
        let plan = RetentionPolicy::keep_all()
            .keep_one_per(Duration::from_secs(DAY))
            .plan(&infos, at(5 * DAY), &none());
        assert_eq!(plan.deleted_names(), ["second"]);
    }

    #[test]
    fn rules_are_a_union() {
        let plan = RetentionPolicy::keep_all()
            .keep_last(1)
            .keep_for(Duration::from_secs(DAY + 1))
            .keep_every_n_steps(500)
            .plan(&daily(10), at(10 * DAY), &none());
        assert_eq!(kept(&plan), ["c5", "c9", "c10"]);
        assert_eq!(plan.reason("c5"), Some(KeepReason::EveryNSteps));
        assert_eq!(plan.reason("c9"), Some(KeepReason::Young));
    }

    #[test]
    fn protected_names_are_kept() {
        let protected: HashSet<String> = ["c2".to_string(), "absent".to_string()].into();
        let plan = RetentionPolicy::keep_all()
            .keep_last(1)
            .plan(&daily(4), at(0), &protected);
        assert_eq!(kept(&plan), ["c2", "c4"]);
        assert_eq!(plan.reason("c2"), Some(KeepReason::Protected));
    }

    #[test]
    fn checkpoints_without_a_sequence_sort_oldest() {
        let infos = vec![
            info("seq-1", Some(1), Some(1), 0),
            info("legacy", None, Some(99), 99 * DAY),
        ];
        let plan = RetentionPolicy::keep_all()
            .keep_last(1)
            .plan(&infos, at(100 * DAY), &none());
        assert_eq!(plan.deleted_names(), ["legacy"]);
        assert_eq!(plan.reason("seq-1"), Some(KeepReason::Newest));

        // Among checkpoints without a sequence: by step, then time.
        let legacy = vec![
            info("late", None, Some(2), DAY),
            info("early", None, Some(1), 2 * DAY),
        ];
        let plan = RetentionPolicy::keep_all()
            .keep_last(1)
            .plan(&legacy, at(0), &none());
        assert_eq!(plan.deleted_names(), ["early"]);
    }

    #[test]
    fn an_empty_list_plans_nothing() {
        let plan = RetentionPolicy::keep_all()
            .keep_last(1)
            .plan(&[], at(0), &none());
        assert_eq!(plan, RetentionPlan::default());
    }

    #[test]
    fn times_before_the_epoch_do_not_panic() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        let infos = vec![
            CheckpointInfo {
                created_at: before,
                ..info("a", Some(1), None, 0)
            },
            info("b", Some(2), None, 0),
        ];
        let plan = RetentionPolicy::keep_all()
            .keep_one_per(Duration::from_secs(1))
            .keep_for(Duration::from_secs(1))
            .plan(&infos, before, &none());
        assert_eq!(plan.keep.len() + plan.delete.len(), 2);
    }

    #[test]
    fn validate_refuses_zero_rules() {
        assert!(RetentionPolicy::keep_all().validate().is_ok());
        let cases = [
            (RetentionPolicy::keep_all().keep_last(0), "keep_last"),
            (
                RetentionPolicy::keep_all().keep_for(Duration::ZERO),
                "keep_for",
            ),
            (
                RetentionPolicy::keep_all().keep_every_n_steps(0),
                "keep_every_n_steps",
            ),
            (
                RetentionPolicy::keep_all().keep_one_per(Duration::ZERO),
                "keep_one_per",
            ),
        ];
        for (policy, field) in cases {
            assert_eq!(policy.validate().unwrap_err().field(), field);
        }
    }

    #[test]
    fn an_unvalidated_zero_rule_does_not_panic() {
        let policy = RetentionPolicy::keep_all()
            .keep_every_n_steps(0)
            .keep_one_per(Duration::ZERO);
        let plan = policy.plan(&daily(3), at(0), &none());
        assert_eq!(kept(&plan), ["c3"]);
    }

    fn arb_infos() -> impl Strategy<Value = Vec<CheckpointInfo>> {
        proptest::collection::vec(
            (
                proptest::option::weighted(0.9, 0u64..40),
                proptest::option::of(0u64..1_000),
                0u64..(20 * DAY),
            ),
            0..30,
        )
        .prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (sequence, step, secs))| info(&format!("c{i}"), sequence, step, secs))
                .collect()
        })
    }

    fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
        (
            proptest::option::of(1usize..10),
            proptest::option::of(1u64..(10 * DAY)),
            proptest::option::of(1u64..300),
            proptest::option::of(1u64..(5 * DAY)),
        )
            .prop_map(|(last, age, k, period)| {
                let mut p = RetentionPolicy::keep_all();
                if let Some(n) = last {
                    p = p.keep_last(n);
                }
                if let Some(a) = age {
                    p = p.keep_for(Duration::from_secs(a));
                }
                if let Some(k) = k {
                    p = p.keep_every_n_steps(k);
                }
                if let Some(s) = period {
                    p = p.keep_one_per(Duration::from_secs(s));
                }
                p
            })
    }

    /// The newest checkpoint in commit order.
    fn newest(infos: &[CheckpointInfo]) -> Option<&CheckpointInfo> {
        infos
            .iter()
            .max_by(|a, b| info_order(a).cmp(&info_order(b)))
    }

    proptest! {
        #[test]
        fn every_checkpoint_is_either_kept_or_deleted(
            infos in arb_infos(),
            policy in arb_policy(),
            now in 0u64..(30 * DAY),
        ) {
            let plan = policy.plan(&infos, at(now), &none());
            prop_assert_eq!(plan.keep.len() + plan.delete.len(), infos.len());
            let kept: HashSet<&str> = plan.keep.iter().map(|(i, _)| i.name.as_str()).collect();
            let deleted: HashSet<&str> = plan.delete.iter().map(|i| i.name.as_str()).collect();
            prop_assert!(kept.is_disjoint(&deleted));
            let all: HashSet<&str> = infos.iter().map(|i| i.name.as_str()).collect();
            let union: HashSet<&str> = kept.union(&deleted).copied().collect();
            prop_assert_eq!(union, all);
        }

        #[test]
        fn the_newest_and_protected_are_never_deleted(
            infos in arb_infos(),
            policy in arb_policy(),
            protect in proptest::collection::vec(0usize..30, 0..5),
            now in 0u64..(30 * DAY),
        ) {
            let protected: HashSet<String> = protect.iter().map(|i| format!("c{i}")).collect();
            let plan = policy.plan(&infos, at(now), &protected);
            if let Some(newest) = newest(&infos) {
                prop_assert_eq!(plan.reason(&newest.name), Some(KeepReason::Newest));
            }
            for deleted in &plan.delete {
                prop_assert!(!protected.contains(&deleted.name));
            }
        }

        #[test]
        fn keep_last_alone_keeps_exactly_the_n_newest(
            infos in arb_infos(),
            n in 1usize..10,
            now in 0u64..(30 * DAY),
        ) {
            let plan = RetentionPolicy::keep_all().keep_last(n).plan(&infos, at(now), &none());
            let mut ordered: Vec<&CheckpointInfo> = infos.iter().collect();
            ordered.sort_by(|a, b| info_order(b).cmp(&info_order(a)));
            let expected: HashSet<&str> = ordered.iter().take(n).map(|i| i.name.as_str()).collect();
            let kept: HashSet<&str> = plan.keep.iter().map(|(i, _)| i.name.as_str()).collect();
            prop_assert_eq!(kept, expected);
        }

        #[test]
        fn both_lists_are_in_commit_order(infos in arb_infos(), policy in arb_policy()) {
            let plan = policy.plan(&infos, at(10 * DAY), &none());
            prop_assert!(plan.delete.windows(2).all(|w| info_order(&w[0]) <= info_order(&w[1])));
            prop_assert!(plan.keep.windows(2).all(|w| info_order(&w[0].0) <= info_order(&w[1].0)));
        }
    }
}
