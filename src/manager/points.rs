//! Recovery points: the checkpoints a job can go back to, described for
//! people ([`RecoveryPoint`]), chosen with a [`RecoveryFilter`] (a time
//! range, a step range, a label), and put in commit order
//! ([`sort_newest_first`]).
//!
//! Commit order is the order the manifests record: by commit sequence, never
//! by wall-clock time (clocks of different hosts disagree and can go back)
//! and never by step (after a restore to an earlier step, what is saved next
//! is the newest). The wall time of a point is there for display and for
//! filters that people write in wall time.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::time::SystemTime;

use crate::checkpoint::Manifest;

/// The metadata key under which a managed checkpoint records its label.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::Manifest;
/// use steadfast::manager::{RecoveryPoint, LABEL_KEY};
///
/// let mut manifest = Manifest::new("run/ckpt-0000000003-before-upgrade", 1);
/// manifest.metadata.insert(LABEL_KEY.into(), "before-upgrade".into());
/// assert_eq!(RecoveryPoint::from_manifest(&manifest).label.as_deref(), Some("before-upgrade"));
/// ```
pub const LABEL_KEY: &str = "steadfast.label";

/// A committed checkpoint a job can restore: its name, where it stands in
/// commit order, its step and label, when it was committed and how large it
/// is.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use steadfast::checkpoint::Manifest;
/// use steadfast::manager::RecoveryPoint;
///
/// let mut manifest = Manifest::new("run/ckpt-0000000012-step-1200", 4);
/// manifest.sequence = Some(12);
/// manifest.step = Some(1200);
/// manifest.created_at = 1_700_000_000_000;
/// let point = RecoveryPoint::from_manifest(&manifest);
/// assert_eq!(point.sequence, Some(12));
/// assert_eq!(point.step, Some(1200));
/// assert_eq!(point.world_size, 4);
/// assert_eq!(point.committed_at, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// assert_eq!(point.label, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPoint {
    /// The checkpoint's name.
    pub name: String,
    /// Its commit sequence (which orders points, newest highest); `None`
    /// for a checkpoint committed before sequences existed (format version
    /// 1), which sorts before every point that has one.
    pub sequence: Option<u64>,
    /// The step it was saved at, if any.
    pub step: Option<u64>,
    /// Its label (metadata key [`LABEL_KEY`]), if any.
    pub label: Option<String>,
    /// When it was committed, by the wall clock of the committing rank: for
    /// display and wall-time filters, not for ordering.
    pub committed_at: SystemTime,
    /// The total size of its shards, in bytes (as stored).
    pub size: u64,
    /// How many ranks saved it.
    pub world_size: usize,
    /// The metadata recorded with it (the label included).
    pub metadata: BTreeMap<String, String>,
}

impl RecoveryPoint {
    /// The point a committed manifest describes; its label is the metadata
    /// value under [`LABEL_KEY`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Manifest;
    /// use steadfast::manager::RecoveryPoint;
    ///
    /// let mut manifest = Manifest::new("run/ckpt-0000000001", 2);
    /// manifest.metadata.insert("schema_version".into(), "3".into());
    /// let point = RecoveryPoint::from_manifest(&manifest);
    /// assert_eq!(point.name, "run/ckpt-0000000001");
    /// assert_eq!(point.metadata["schema_version"], "3");
    /// assert_eq!(point.size, 0);
    /// ```
    pub fn from_manifest(manifest: &Manifest) -> Self {
        RecoveryPoint {
            name: manifest.name.clone(),
            sequence: manifest.sequence,
            step: manifest.step,
            label: manifest.metadata.get(LABEL_KEY).cloned(),
            committed_at: manifest.created_at_time(),
            size: manifest.total_size(),
            world_size: manifest.world_size,
            metadata: manifest.metadata.clone(),
        }
    }
}

/// Where a checkpoint stands in commit order, oldest lowest: first those
/// without a sequence (format version 1), by step, then commit time; then
/// every one with a sequence, by sequence. The name breaks ties. This is the
/// order of [`DistributedCheckpoint::list`](crate::DistributedCheckpoint::list),
/// which retention and recovery points share.
pub(crate) fn commit_order(
    sequence: Option<u64>,
    step: Option<u64>,
    committed_at: SystemTime,
    name: &str,
) -> (bool, u64, Option<u64>, SystemTime, &str) {
    match sequence {
        Some(sequence) => (true, sequence, None, SystemTime::UNIX_EPOCH, name),
        None => (false, 0, step, committed_at, name),
    }
}

fn point_order(p: &RecoveryPoint) -> (bool, u64, Option<u64>, SystemTime, &str) {
    commit_order(p.sequence, p.step, p.committed_at, &p.name)
}

/// Sorts points newest first, by commit sequence (never by time or step);
/// points without a sequence (format version 1) come last, by step, then
/// commit time, then name, all descending — the order of
/// [`DistributedCheckpoint::list`](crate::DistributedCheckpoint::list).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use steadfast::checkpoint::Manifest;
/// use steadfast::manager::{sort_newest_first, RecoveryPoint};
///
/// let point = |name: &str, sequence: Option<u64>, step: u64, secs: u64| {
///     let mut m = Manifest::new(name, 1);
///     m.sequence = sequence;
///     m.step = Some(step);
///     m.created_at = secs * 1_000;
///     RecoveryPoint::from_manifest(&m)
/// };
/// // "restored" was saved after a restore to step 10, on a host whose clock is behind.
/// let mut points = vec![
///     point("first", Some(1), 10, 100),
///     point("restored", Some(3), 11, 50),
///     point("abandoned", Some(2), 20, 200),
///     point("legacy", None, 5, 10),
/// ];
/// sort_newest_first(&mut points);
/// let names: Vec<_> = points.iter().map(|p| p.name.as_str()).collect();
/// assert_eq!(names, ["restored", "abandoned", "first", "legacy"]);
/// ```
pub fn sort_newest_first(points: &mut [RecoveryPoint]) {
    points.sort_by(|a, b| point_order(b).cmp(&point_order(a)));
}

/// Which recovery points a listing returns: every constraint set must hold
/// (no constraint: every point).
///
/// Each setter sets its own constraint, replacing an earlier call of the
/// same setter; constraints of different setters add up.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use steadfast::checkpoint::Manifest;
/// use steadfast::manager::{RecoveryFilter, RecoveryPoint};
///
/// let mut m = Manifest::new("run/ckpt-0000000004-step-400-nightly", 1);
/// m.sequence = Some(4);
/// m.step = Some(400);
/// m.created_at = 5_000;
/// m.metadata.insert(steadfast::manager::LABEL_KEY.into(), "nightly".into());
/// let point = RecoveryPoint::from_manifest(&m);
///
/// assert!(RecoveryFilter::all().matches(&point));
/// let filter = RecoveryFilter::all().steps(100..=400).label("nightly");
/// assert!(filter.matches(&point));
/// assert!(!RecoveryFilter::all().steps(401..).matches(&point));
/// assert!(!RecoveryFilter::all().committed_before(UNIX_EPOCH + Duration::from_secs(5)).matches(&point));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryFilter {
    /// Committed at or after this time.
    from: Option<SystemTime>,
    /// Committed at or before this time.
    to: Option<SystemTime>,
    /// Committed strictly before this time.
    before: Option<SystemTime>,
    /// A step in this range.
    steps: Option<(Bound<u64>, Bound<u64>)>,
    /// This label.
    label: Option<String>,
}

impl RecoveryFilter {
    /// A filter that every point passes.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::RecoveryFilter;
    /// assert_eq!(RecoveryFilter::all(), RecoveryFilter::default());
    /// ```
    pub fn all() -> Self {
        RecoveryFilter::default()
    }

    /// Only points committed from `from` to `to`, both included (wall time
    /// recorded at commit). A range whose end is before its start matches
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use steadfast::checkpoint::Manifest;
    /// use steadfast::manager::{RecoveryFilter, RecoveryPoint};
    ///
    /// let mut m = Manifest::new("c", 1);
    /// m.created_at = 60_000; // one minute after the epoch
    /// let point = RecoveryPoint::from_manifest(&m);
    /// let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
    /// assert!(RecoveryFilter::all().committed_between(at(60), at(120)).matches(&point));
    /// assert!(!RecoveryFilter::all().committed_between(at(61), at(120)).matches(&point));
    /// ```
    pub fn committed_between(mut self, from: SystemTime, to: SystemTime) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    /// Only points committed strictly before `t` (wall time recorded at
    /// commit).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use steadfast::checkpoint::Manifest;
    /// use steadfast::manager::{RecoveryFilter, RecoveryPoint};
    ///
    /// let mut m = Manifest::new("c", 1);
    /// m.created_at = 60_000;
    /// let point = RecoveryPoint::from_manifest(&m);
    /// let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
    /// assert!(RecoveryFilter::all().committed_before(at(61)).matches(&point));
    /// assert!(!RecoveryFilter::all().committed_before(at(60)).matches(&point));
    /// ```
    pub fn committed_before(mut self, t: SystemTime) -> Self {
        self.before = Some(t);
        self
    }

    /// Only points saved at a step in `range` (`100..200`, `1000..`, `..=50`);
    /// a point without a step does not match.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Manifest;
    /// use steadfast::manager::{RecoveryFilter, RecoveryPoint};
    ///
    /// let mut m = Manifest::new("c", 1);
    /// let no_step = RecoveryPoint::from_manifest(&m);
    /// m.step = Some(200);
    /// let point = RecoveryPoint::from_manifest(&m);
    /// assert!(!RecoveryFilter::all().steps(100..200).matches(&point));
    /// assert!(RecoveryFilter::all().steps(100..=200).matches(&point));
    /// assert!(!RecoveryFilter::all().steps(..).matches(&no_step));
    /// ```
    pub fn steps(mut self, range: impl RangeBounds<u64>) -> Self {
        self.steps = Some((range.start_bound().cloned(), range.end_bound().cloned()));
        self
    }

    /// Only points with this label.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Manifest;
    /// use steadfast::manager::{RecoveryFilter, RecoveryPoint, LABEL_KEY};
    ///
    /// let mut m = Manifest::new("c", 1);
    /// m.metadata.insert(LABEL_KEY.into(), "best".into());
    /// let point = RecoveryPoint::from_manifest(&m);
    /// assert!(RecoveryFilter::all().label("best").matches(&point));
    /// assert!(!RecoveryFilter::all().label("nightly").matches(&point));
    /// ```
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Whether `point` passes every constraint of this filter.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Manifest;
    /// use steadfast::manager::{RecoveryFilter, RecoveryPoint};
    ///
    /// let point = RecoveryPoint::from_manifest(&Manifest::new("c", 1));
    /// assert!(RecoveryFilter::all().matches(&point));
    /// assert!(!RecoveryFilter::all().label("x").matches(&point));
    /// ```
    pub fn matches(&self, point: &RecoveryPoint) -> bool {
        let at = point.committed_at;
        if self.from.is_some_and(|from| at < from)
            || self.to.is_some_and(|to| at > to)
            || self.before.is_some_and(|before| at >= before)
        {
            return false;
        }
        if let Some(range) = &self.steps {
            match point.step {
                Some(step) if range.contains(&step) => {}
                _ => return false,
            }
        }
        match &self.label {
            Some(label) => point.label.as_deref() == Some(label.as_str()),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn point(name: &str, sequence: Option<u64>, step: Option<u64>, secs: u64) -> RecoveryPoint {
        RecoveryPoint {
            name: name.into(),
            sequence,
            step,
            label: None,
            committed_at: UNIX_EPOCH + Duration::from_secs(secs),
            size: 0,
            world_size: 1,
            metadata: BTreeMap::new(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn names(points: &[RecoveryPoint]) -> Vec<&str> {
        points.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn from_manifest_reads_every_field() {
        let mut m = Manifest::new("run/ckpt-0000000009-step-90-best", 3);
        m.sequence = Some(9);
        m.step = Some(90);
        m.created_at = 12_345;
        m.metadata.insert(LABEL_KEY.into(), "best".into());
        m.metadata.insert("k".into(), "v".into());
        m.shards.push(crate::checkpoint::ShardInfo::new(
            0,
            "run/ckpt-0000000009-step-90-best/shard-0.bin",
            40,
            String::new(),
        ));
        m.shards.push(crate::checkpoint::ShardInfo::new(
            1,
            "run/ckpt-0000000009-step-90-best/shard-1.bin",
            2,
            String::new(),
        ));
        let p = RecoveryPoint::from_manifest(&m);
        assert_eq!(p.name, "run/ckpt-0000000009-step-90-best");
        assert_eq!(p.sequence, Some(9));
        assert_eq!(p.step, Some(90));
        assert_eq!(p.label.as_deref(), Some("best"));
        assert_eq!(p.committed_at, UNIX_EPOCH + Duration::from_millis(12_345));
        assert_eq!(p.size, 42);
        assert_eq!(p.world_size, 3);
        assert_eq!(p.metadata.len(), 2);
    }

    #[test]
    fn newest_first_is_by_sequence_not_time_or_step() {
        let mut points = vec![
            point("a", Some(1), Some(300), 900),
            point("b", Some(3), Some(100), 100),
            point("c", Some(2), Some(200), 500),
        ];
        sort_newest_first(&mut points);
        assert_eq!(names(&points), ["b", "c", "a"]);
    }

    #[test]
    fn points_without_a_sequence_sort_oldest() {
        let mut points = vec![
            point("legacy-new", None, Some(9), 9_000),
            point("seq", Some(1), Some(1), 1),
            point("legacy-old", None, Some(2), 100),
            point("legacy-nostep", None, None, 99_999),
        ];
        sort_newest_first(&mut points);
        assert_eq!(
            names(&points),
            ["seq", "legacy-new", "legacy-old", "legacy-nostep"]
        );
    }

    #[test]
    fn a_shared_sequence_is_ordered_by_name() {
        let mut points = vec![point("a", Some(5), None, 0), point("b", Some(5), None, 0)];
        sort_newest_first(&mut points);
        assert_eq!(names(&points), ["b", "a"]);
        points.reverse();
        sort_newest_first(&mut points);
        assert_eq!(names(&points), ["b", "a"]);
    }

    #[test]
    fn time_constraints_add_up() {
        let p = point("p", Some(1), None, 100);
        assert!(RecoveryFilter::all()
            .committed_between(at(100), at(100))
            .matches(&p));
        assert!(!RecoveryFilter::all()
            .committed_between(at(0), at(99))
            .matches(&p));
        assert!(!RecoveryFilter::all()
            .committed_between(at(200), at(0))
            .matches(&p));
        let both = RecoveryFilter::all()
            .committed_between(at(0), at(1_000))
            .committed_before(at(100));
        assert!(!both.matches(&p));
        assert!(both.matches(&point("q", Some(2), None, 99)));
    }

    #[test]
    fn step_ranges_and_missing_steps() {
        let p = point("p", Some(1), Some(10), 0);
        assert!(RecoveryFilter::all().steps(10..11).matches(&p));
        assert!(RecoveryFilter::all().steps(..=10).matches(&p));
        assert!(!RecoveryFilter::all().steps(..10).matches(&p));
        assert!(RecoveryFilter::all()
            .steps((Bound::Excluded(9), Bound::Unbounded))
            .matches(&p));
        let none = point("n", Some(2), None, 0);
        assert!(!RecoveryFilter::all().steps(0..).matches(&none));
        assert!(RecoveryFilter::all().matches(&none));
    }

    #[test]
    fn a_later_call_replaces_its_own_constraint() {
        let mut p = point("p", Some(1), Some(5), 0);
        p.label = Some("b".into());
        assert!(RecoveryFilter::all().label("a").label("b").matches(&p));
        assert!(RecoveryFilter::all().steps(0..1).steps(5..6).matches(&p));
        assert!(!RecoveryFilter::all().label("b").steps(6..).matches(&p));
    }

    #[test]
    fn a_label_filter_needs_a_label() {
        let p = point("p", Some(1), None, 0);
        assert!(!RecoveryFilter::all().label("").matches(&p));
    }
}
