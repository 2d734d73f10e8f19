//! Errors shared across the crate.
//!
//! Each area has its own error type next to its code
//! ([`CoordinatorError`](crate::coordinator::CoordinatorError),
//! [`StorageError`](crate::storage::StorageError), ...). This module holds
//! the one they share: [`ConfigError`], returned when a policy is built with
//! values that cannot work.

use std::fmt;

/// A policy was configured with values that cannot work: a backoff factor
/// below 1, a NaN, a zero threshold, a maximum below its minimum.
///
/// It is returned by every builder's `build()` and names the field and what
/// is wrong with it.
///
/// # Examples
///
/// ```
/// use steadfast::ConfigError;
///
/// let err = ConfigError::new("factor", "must be at least 1.0, got 0.5");
/// assert_eq!(err.field(), "factor");
/// assert_eq!(err.to_string(), "invalid configuration: factor must be at least 1.0, got 0.5");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    /// A configuration error for `field`, saying what is wrong with it.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = steadfast::ConfigError::new("failure_threshold", "must be at least 1");
    /// assert_eq!(err.reason(), "must be at least 1");
    /// ```
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }

    /// The field that is wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::ConfigError::new("x", "bad").field(), "x");
    /// ```
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::ConfigError::new("x", "bad").reason(), "bad");
    /// ```
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {} {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// A configuration error is never transient: retrying with the same values
/// fails the same way.
impl crate::retry::Transient for ConfigError {
    fn is_transient(&self) -> bool {
        false
    }
}

/// Checks that a float is finite and at least `min`.
pub(crate) fn check_finite_at_least(
    field: &'static str,
    value: f64,
    min: f64,
) -> Result<(), ConfigError> {
    if !value.is_finite() {
        return Err(ConfigError::new(
            field,
            format!("must be a finite number, got {value}"),
        ));
    }
    if value < min {
        return Err(ConfigError::new(
            field,
            format!("must be at least {min}, got {value}"),
        ));
    }
    Ok(())
}

/// Checks that a float is a ratio in `(0, 1]`.
pub(crate) fn check_ratio(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if !(value.is_finite() && value > 0.0 && value <= 1.0) {
        return Err(ConfigError::new(
            field,
            format!("must be a ratio in (0, 1], got {value}"),
        ));
    }
    Ok(())
}
