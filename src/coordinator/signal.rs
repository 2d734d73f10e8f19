//! [`Signal`], what a rank raises under a key, and
//! [`validate_signal_key`], the one rule for signal keys that every
//! coordinator applies.

use super::{CoordinatorError, Result};

/// A signal raised by a rank: its sequence number and payload.
///
/// Sequence numbers start at 1 for the first signal a rank raises under a key
/// and grow by one with each new signal under that key. A `seq` of 0 means the
/// rank has not signalled yet.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::Signal;
///
/// let s = Signal { seq: 1, payload: b"ready".to_vec() };
/// assert!(s.is_raised());
/// assert!(!Signal::default().is_raised());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signal {
    /// The sequence number of this signal (0: never signalled).
    pub seq: u64,
    /// The bytes sent with the signal.
    pub payload: Vec<u8>,
}

impl Signal {
    /// Whether the rank has raised this signal at least once.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::Signal;
    /// assert!(Signal { seq: 3, payload: vec![] }.is_raised());
    /// ```
    pub fn is_raised(&self) -> bool {
        self.seq > 0
    }
}

/// Checks a signal key, the one rule every coordinator applies before it
/// touches anything: a key must not be empty and must not hold control
/// characters (a newline, a NUL byte, ...). Anything else, `/` included, is
/// a valid key.
///
/// [`Coordinator::signal`](super::Coordinator::signal) and
/// [`Coordinator::wait_for_rank`](super::Coordinator::wait_for_rank) refuse
/// a key this function refuses, with the same
/// [`CoordinatorError::InvalidArgument`]; an implementation of your own
/// should call it too (the conformance suite, `coordinator::conformance`
/// with the feature `testing`, checks it).
///
/// # Errors
///
/// [`CoordinatorError::InvalidArgument`] saying what is wrong with the key.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{validate_signal_key, CoordinatorError};
///
/// assert!(validate_signal_key("shard-written/step-7").is_ok());
/// assert!(matches!(validate_signal_key(""), Err(CoordinatorError::InvalidArgument(_))));
/// assert!(validate_signal_key("a\nb").is_err());
/// assert!(validate_signal_key("a\0b").is_err());
/// ```
pub fn validate_signal_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(CoordinatorError::InvalidArgument(
            "a signal key must not be empty".into(),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(CoordinatorError::InvalidArgument(format!(
            "a signal key must not hold control characters, got {key:?}"
        )));
    }
    Ok(())
}
