//! Integrity checks: the user's own checks of a restore (a schema version, a
//! sanity check on values), run on top of the sizes and digests that every
//! load already verifies, before any state is restored.
//!
//! A check implements [`IntegrityCheck`] and answers an
//! [`IntegrityVerdict`] per state: accept, accept with a warning (attached
//! to the restore's report), or reject (the restore fails, and nothing is
//! restored). [`IntegrityChecks`] runs a list of them in order, collects the
//! warnings and stops at the first rejection, naming the check. Ready
//! checks: [`RequireMetadata`] (a metadata key of the checkpoint has a
//! value), [`NonEmpty`] (a state has bytes), and [`FnCheck`] (a closure).

use std::fmt;
use std::sync::Arc;

use super::error::IntegrityRejection;
use super::points::RecoveryPoint;

/// A check of the states about to be restored from a checkpoint, run before
/// any of them is restored.
///
/// It must be cheap to call once per state and deterministic: every rank
/// runs it on its own states.
///
/// # Examples
///
/// ```
/// use steadfast::manager::{IntegrityCheck, IntegrityVerdict, RecoveryPoint};
///
/// /// Refuses a state that is not JSON.
/// #[derive(Debug)]
/// struct IsJson;
///
/// impl IntegrityCheck for IsJson {
///     fn name(&self) -> &str {
///         "is_json"
///     }
///     fn check(&self, _point: &RecoveryPoint, state: &str, bytes: &[u8]) -> IntegrityVerdict {
///         match serde_json::from_slice::<serde_json::Value>(bytes) {
///             Ok(_) => IntegrityVerdict::Accept,
///             Err(e) => IntegrityVerdict::Reject(format!("{state} is not JSON: {e}")),
///         }
///     }
/// }
///
/// let point = RecoveryPoint::from_manifest(&steadfast::checkpoint::Manifest::new("c", 1));
/// assert_eq!(IsJson.check(&point, "model", b"{}"), IntegrityVerdict::Accept);
/// assert!(IsJson.check(&point, "model", b"{").is_reject());
/// ```
pub trait IntegrityCheck: Send + Sync + fmt::Debug + 'static {
    /// The check's name, as reports and errors show it.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{IntegrityCheck, NonEmpty};
    /// assert_eq!(NonEmpty.name(), "non_empty");
    /// ```
    fn name(&self) -> &str;

    /// Judges the bytes of `state` (its registered name) read from `point`.
    /// Runs on each restored state's bytes before any state is restored.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Manifest;
    /// use steadfast::manager::{IntegrityCheck, IntegrityVerdict, NonEmpty, RecoveryPoint};
    ///
    /// let point = RecoveryPoint::from_manifest(&Manifest::new("c", 1));
    /// assert_eq!(NonEmpty.check(&point, "model", b"x"), IntegrityVerdict::Accept);
    /// ```
    fn check(&self, point: &RecoveryPoint, state: &str, bytes: &[u8]) -> IntegrityVerdict;
}

/// Forwards to the shared check, so that one check can sit in several lists.
impl<T: IntegrityCheck + ?Sized> IntegrityCheck for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn check(&self, point: &RecoveryPoint, state: &str, bytes: &[u8]) -> IntegrityVerdict {
        (**self).check(point, state, bytes)
    }
}

/// Forwards to the boxed check.
impl<T: IntegrityCheck + ?Sized> IntegrityCheck for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn check(&self, point: &RecoveryPoint, state: &str, bytes: &[u8]) -> IntegrityVerdict {
        (**self).check(point, state, bytes)
    }
}

/// What an [`IntegrityCheck`] says of a state.
///
/// # Examples
///
/// ```
/// use steadfast::manager::IntegrityVerdict;
///
/// assert!(IntegrityVerdict::Accept.is_accept());
/// assert!(IntegrityVerdict::Warn("old schema".into()).is_accept());
/// assert!(IntegrityVerdict::Reject("wrong schema".into()).is_reject());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntegrityVerdict {
    /// The state may be restored.
    Accept,
    /// The state may be restored; the message joins the restore's warnings.
    Warn(String),
    /// The state must not be restored: the restore fails with this reason.
    Reject(String),
}

impl IntegrityVerdict {
    /// Whether the state may be restored (accepted, with or without a
    /// warning).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!steadfast::manager::IntegrityVerdict::Reject("no".into()).is_accept());
    /// ```
    pub fn is_accept(&self) -> bool {
        !self.is_reject()
    }

    /// Whether the state is refused.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!steadfast::manager::IntegrityVerdict::Accept.is_reject());
    /// ```
    pub fn is_reject(&self) -> bool {
        matches!(self, IntegrityVerdict::Reject(_))
    }
}

/// Requires a metadata key of the checkpoint to hold a value: a schema
/// version, say, recorded with every save. A checkpoint without the key, or
/// with another value, is rejected.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::Manifest;
/// use steadfast::manager::{IntegrityCheck, RecoveryPoint, RequireMetadata};
///
/// let check = RequireMetadata::new("schema_version", "3");
/// assert_eq!(check.name(), "require_metadata(schema_version=3)");
///
/// let mut manifest = Manifest::new("c", 1);
/// assert!(check.check(&RecoveryPoint::from_manifest(&manifest), "model", b"x").is_reject());
/// manifest.metadata.insert("schema_version".into(), "3".into());
/// assert!(check.check(&RecoveryPoint::from_manifest(&manifest), "model", b"x").is_accept());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireMetadata {
    key: String,
    value: String,
    name: String,
}

impl RequireMetadata {
    /// Requires metadata `key` to equal `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let check = steadfast::manager::RequireMetadata::new("format", "v2");
    /// assert_eq!(check.key(), "format");
    /// assert_eq!(check.value(), "v2");
    /// ```
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        let value = value.into();
        let name = format!("require_metadata({key}={value})");
        RequireMetadata { key, value, name }
    }

    /// The metadata key checked.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::manager::RequireMetadata::new("k", "v").key(), "k");
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value required.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::manager::RequireMetadata::new("k", "v").value(), "v");
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl IntegrityCheck for RequireMetadata {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, point: &RecoveryPoint, _state: &str, _bytes: &[u8]) -> IntegrityVerdict {
        match point.metadata.get(&self.key) {
            Some(found) if *found == self.value => IntegrityVerdict::Accept,
            Some(found) => IntegrityVerdict::Reject(format!(
                "metadata {:?} is {found:?}, {:?} is required",
                self.key, self.value
            )),
            None => IntegrityVerdict::Reject(format!(
                "metadata {:?} is missing, {:?} is required",
                self.key, self.value
            )),
        }
    }
}

/// Rejects a state with no bytes (a snapshot that wrote nothing).
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::Manifest;
/// use steadfast::manager::{IntegrityCheck, IntegrityVerdict, NonEmpty, RecoveryPoint};
///
/// let point = RecoveryPoint::from_manifest(&Manifest::new("c", 1));
/// assert_eq!(
///     NonEmpty.check(&point, "model", b""),
///     IntegrityVerdict::Reject("the state has no bytes".into())
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NonEmpty;

impl IntegrityCheck for NonEmpty {
    fn name(&self) -> &str {
        "non_empty"
    }

    fn check(&self, _point: &RecoveryPoint, _state: &str, bytes: &[u8]) -> IntegrityVerdict {
        if bytes.is_empty() {
            IntegrityVerdict::Reject("the state has no bytes".into())
        } else {
            IntegrityVerdict::Accept
        }
    }
}

/// A check written as a closure over the point, the state's name and its
/// bytes.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::Manifest;
/// use steadfast::manager::{FnCheck, IntegrityCheck, IntegrityVerdict, RecoveryPoint};
///
/// let small = FnCheck::new("under_1_mib", |_point, state, bytes| {
///     if bytes.len() < 1 << 20 {
///         IntegrityVerdict::Accept
///     } else {
///         IntegrityVerdict::Warn(format!("{state} is {} bytes", bytes.len()))
///     }
/// });
/// let point = RecoveryPoint::from_manifest(&Manifest::new("c", 1));
/// assert_eq!(small.name(), "under_1_mib");
/// assert_eq!(small.check(&point, "model", b"x"), IntegrityVerdict::Accept);
/// ```
pub struct FnCheck<F> {
    name: String,
    check: F,
}

impl<F> FnCheck<F>
where
    F: Fn(&RecoveryPoint, &str, &[u8]) -> IntegrityVerdict + Send + Sync + 'static,
{
    /// A check named `name` that calls `check`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{FnCheck, IntegrityVerdict};
    /// let always = FnCheck::new("always", |_, _, _| IntegrityVerdict::Accept);
    /// assert_eq!(format!("{always:?}"), "FnCheck { name: \"always\", .. }");
    /// ```
    pub fn new(name: impl Into<String>, check: F) -> Self {
        FnCheck {
            name: name.into(),
            check,
        }
    }
}

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCheck")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F> IntegrityCheck for FnCheck<F>
where
    F: Fn(&RecoveryPoint, &str, &[u8]) -> IntegrityVerdict + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, point: &RecoveryPoint, state: &str, bytes: &[u8]) -> IntegrityVerdict {
        (self.check)(point, state, bytes)
    }
}

/// A list of integrity checks, run in the order they were added.
///
/// `Clone` shares the checks. Each warning is prefixed with the check's name
/// and the state's, so that a report says where it came from; the first
/// rejection stops the run.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::Manifest;
/// use steadfast::manager::{FnCheck, IntegrityChecks, IntegrityVerdict, NonEmpty, RecoveryPoint};
///
/// let checks = IntegrityChecks::new()
///     .with(NonEmpty)
///     .with(FnCheck::new("small", |_, _, bytes| {
///         if bytes.len() > 2 { IntegrityVerdict::Warn("large".into()) } else { IntegrityVerdict::Accept }
///     }));
/// let point = RecoveryPoint::from_manifest(&Manifest::new("c", 1));
///
/// let warnings = checks.run(&point, "model", b"abc")?;
/// assert_eq!(warnings, ["small: state \"model\": large"]);
///
/// let rejection = checks.run(&point, "model", b"").unwrap_err();
/// assert_eq!(rejection.check, "non_empty");
/// assert_eq!(rejection.state, "model");
/// # Ok::<(), steadfast::manager::IntegrityRejection>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct IntegrityChecks {
    checks: Vec<Arc<dyn IntegrityCheck>>,
}

impl IntegrityChecks {
    /// An empty list, which accepts everything.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::manager::IntegrityChecks::new().is_empty());
    /// ```
    pub fn new() -> Self {
        IntegrityChecks::default()
    }

    /// Adds a check at the end of the list.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{IntegrityChecks, NonEmpty};
    /// let mut checks = IntegrityChecks::new();
    /// checks.push(NonEmpty);
    /// assert_eq!(checks.len(), 1);
    /// ```
    pub fn push(&mut self, check: impl IntegrityCheck) {
        self.checks.push(Arc::new(check));
    }

    /// Adds a check at the end of the list, by value.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{IntegrityChecks, NonEmpty, RequireMetadata};
    /// let checks = IntegrityChecks::new().with(NonEmpty).with(RequireMetadata::new("v", "1"));
    /// assert_eq!(checks.names(), ["non_empty", "require_metadata(v=1)"]);
    /// ```
    #[must_use]
    pub fn with(mut self, check: impl IntegrityCheck) -> Self {
        self.push(check);
        self
    }

    /// How many checks the list holds.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::manager::IntegrityChecks::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether the list holds no check.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{IntegrityChecks, NonEmpty};
    /// assert!(!IntegrityChecks::new().with(NonEmpty).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// The names of the checks, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{IntegrityChecks, NonEmpty};
    /// assert_eq!(IntegrityChecks::new().with(NonEmpty).names(), ["non_empty"]);
    /// ```
    pub fn names(&self) -> Vec<&str> {
        self.checks.iter().map(|c| c.name()).collect()
    }

    /// Runs every check on the bytes of `state` read from `point`, in order.
    ///
    /// # Errors
    ///
    /// The first rejection, as an [`IntegrityRejection`] naming the
    /// checkpoint, the state and the check; the checks after it do not run.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Manifest;
    /// use steadfast::manager::{IntegrityChecks, RecoveryPoint, RequireMetadata};
    ///
    /// let checks = IntegrityChecks::new().with(RequireMetadata::new("schema_version", "3"));
    /// let point = RecoveryPoint::from_manifest(&Manifest::new("c", 1));
    /// let err = checks.run(&point, "model", b"{}").unwrap_err();
    /// assert_eq!(err.checkpoint, "c");
    /// assert!(err.reason.contains("missing"));
    /// ```
    pub fn run(
        &self,
        point: &RecoveryPoint,
        state: &str,
        bytes: &[u8],
    ) -> Result<Vec<String>, IntegrityRejection> {
        let mut warnings = Vec::new();
        for check in &self.checks {
            match check.check(point, state, bytes) {
                IntegrityVerdict::Accept => {}
                IntegrityVerdict::Warn(message) => {
                    warnings.push(format!("{}: state {state:?}: {message}", check.name()));
                }
                IntegrityVerdict::Reject(reason) => {
                    return Err(IntegrityRejection {
                        checkpoint: point.name.clone(),
                        state: state.to_string(),
                        check: check.name().to_string(),
                        reason,
                    });
                }
            }
        }
        Ok(warnings)
    }

    /// Runs every check on each of `states` (name and bytes), in order:
    /// the warnings of them all, or the first rejection.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run), for the first state rejected.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Manifest;
    /// use steadfast::manager::{IntegrityChecks, NonEmpty, RecoveryPoint};
    ///
    /// let checks = IntegrityChecks::new().with(NonEmpty);
    /// let point = RecoveryPoint::from_manifest(&Manifest::new("c", 1));
    /// let states: [(&str, &[u8]); 2] = [("model", b"w"), ("optimizer", b"")];
    /// assert_eq!(checks.run_all(&point, states).unwrap_err().state, "optimizer");
    /// ```
    pub fn run_all<'a>(
        &self,
        point: &RecoveryPoint,
        states: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Vec<String>, IntegrityRejection> {
        let mut warnings = Vec::new();
        for (state, bytes) in states {
            warnings.extend(self.run(point, state, bytes)?);
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Manifest;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn point() -> RecoveryPoint {
        let mut m = Manifest::new("run/ckpt-0000000001", 1);
        m.metadata.insert("schema_version".into(), "3".into());
        RecoveryPoint::from_manifest(&m)
    }

    #[test]
    fn require_metadata_accepts_only_the_value() {
        let p = point();
        assert_eq!(
            RequireMetadata::new("schema_version", "3").check(&p, "s", b""),
            IntegrityVerdict::Accept
        );
        let wrong = RequireMetadata::new("schema_version", "4").check(&p, "s", b"");
        assert_eq!(
            wrong,
            IntegrityVerdict::Reject(
                "metadata \"schema_version\" is \"3\", \"4\" is required".into()
            )
        );
        assert!(RequireMetadata::new("other", "3")
            .check(&p, "s", b"")
            .is_reject());
    }

    #[test]
    fn non_empty() {
        assert!(NonEmpty.check(&point(), "s", b"").is_reject());
        assert!(NonEmpty.check(&point(), "s", b"\0").is_accept());
    }

    #[test]
    fn an_empty_list_accepts_everything() {
        assert_eq!(IntegrityChecks::new().run(&point(), "s", b""), Ok(vec![]));
    }

    #[test]
    fn warnings_are_collected_in_order() {
        let checks = IntegrityChecks::new()
            .with(FnCheck::new("a", |_, _, _| {
                IntegrityVerdict::Warn("one".into())
            }))
            .with(NonEmpty)
            .with(FnCheck::new("b", |_, state, _| {
                IntegrityVerdict::Warn(format!("two for {state}"))
            }));
        let warnings = checks
            .run_all(&point(), [("x", &b"1"[..]), ("y", &b"2"[..])])
            .unwrap();
        assert_eq!(
            warnings,
            [
                "a: state \"x\": one",
                "b: state \"x\": two for x",
                "a: state \"y\": one",
                "b: state \"y\": two for y",
            ]
        );
    }

    #[test]
    fn the_first_rejection_stops_the_run() {
        let after = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&after);
        let checks = IntegrityChecks::new()
            .with(FnCheck::new("warns", |_, _, _| {
                IntegrityVerdict::Warn("w".into())
            }))
            .with(RequireMetadata::new("schema_version", "9"))
            .with(FnCheck::new("after", move |_, _, _| {
                counter.fetch_add(1, Ordering::SeqCst);
                IntegrityVerdict::Accept
            }));
        let err = checks.run(&point(), "model", b"x").unwrap_err();
        assert_eq!(err.checkpoint, "run/ckpt-0000000001");
        assert_eq!(err.state, "model");
        assert_eq!(err.check, "require_metadata(schema_version=9)");
        assert_eq!(after.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn shared_and_boxed_checks_forward() {
        let shared: Arc<dyn IntegrityCheck> = Arc::new(NonEmpty);
        let boxed: Box<dyn IntegrityCheck> = Box::new(RequireMetadata::new("schema_version", "3"));
        let checks = IntegrityChecks::new().with(Arc::clone(&shared)).with(boxed);
        assert_eq!(
            checks.names(),
            ["non_empty", "require_metadata(schema_version=3)"]
        );
        assert!(checks.run(&point(), "s", b"x").is_ok());
        // Clones share the checks.
        let copy = checks.clone();
        assert_eq!(copy.len(), 2);
    }

    #[test]
    fn the_trait_is_object_safe_and_types_are_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<IntegrityChecks>();
        assert_send_sync::<Box<dyn IntegrityCheck>>();
        assert_send_sync::<RequireMetadata>();
        let _: &dyn IntegrityCheck = &NonEmpty;
    }
}
