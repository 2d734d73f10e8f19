//! Key validation shared by every storage implementation.
//!
//! A key is checked as text, before any I/O: split on `/`, every segment
//! must be a plain, non-empty name (no `.` or `..`, no backslash, no NUL or
//! other control character), and the key must not start with `/`. A key
//! that passes names a place under a storage's root on every platform; an
//! implementation may refuse more (the local file system refuses the names
//! of its temporary files).

use super::{Result, StorageError};

/// Checks that `key` is a safe storage key.
///
/// A key is one or more segments separated by `/`. It is refused when it is
/// empty, starts with `/` (an absolute path), has an empty segment (`a//b`, a
/// trailing `/`), has a `.` or `..` segment, or contains a backslash, a NUL
/// byte or another control character. This runs before any I/O, so that no
/// key can reach outside a storage's root.
///
/// # Examples
///
/// ```
/// use steadfast::storage::validate_key;
///
/// assert!(validate_key("run-1/shard-0.bin").is_ok());
/// assert!(validate_key("../etc/passwd").is_err());
/// assert!(validate_key("/abs").is_err());
/// assert!(validate_key("a//b").is_err());
/// assert!(validate_key("a\\b").is_err());
/// assert!(validate_key("a\0b").is_err());
/// ```
pub fn validate_key(key: &str) -> Result<()> {
    let refuse = |reason: &'static str| {
        Err(StorageError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return refuse("the key is empty");
    }
    if key.starts_with('/') {
        return refuse("absolute paths are not allowed");
    }
    if key.contains('\\') {
        return refuse("backslashes are not allowed");
    }
    if key.contains('\0') {
        return refuse("NUL bytes are not allowed");
    }
    if key.chars().any(char::is_control) {
        return refuse("control characters are not allowed");
    }
    for segment in key.split('/') {
        match segment {
            "" => return refuse("empty path segments are not allowed"),
            "." | ".." => return refuse("`.` and `..` segments are not allowed"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a list prefix: the empty prefix (everything), or a valid key
/// optionally followed by one `/`.
///
/// # Examples
///
/// ```
/// use steadfast::storage::validate_prefix;
///
/// assert!(validate_prefix("").is_ok());
/// assert!(validate_prefix("run-1/").is_ok());
/// assert!(validate_prefix("run-1/shard-").is_ok());
/// assert!(validate_prefix("../").is_err());
/// ```
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    validate_key(prefix.strip_suffix('/').unwrap_or(prefix)).map_err(|_| StorageError::InvalidKey {
        key: prefix.to_string(),
        reason: "a prefix must be empty or a valid key, optionally ending in `/`",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_unsafe_form() {
        for bad in [
            "",
            "/",
            "/etc/passwd",
            "..",
            "../x",
            "a/../b",
            "a/..",
            ".",
            "./a",
            "a/./b",
            "a//b",
            "a/",
            "a\\b",
            "..\\x",
            "a\0b",
            "a\nb",
            "C:\\x",
        ] {
            assert!(
                matches!(validate_key(bad), Err(StorageError::InvalidKey { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn accepts_ordinary_keys() {
        for good in [
            "a",
            "a/b",
            "run-1/shard-00001.bin",
            "x..y",
            "...",
            "a.b/c_d-e",
            "ünï",
        ] {
            assert!(validate_key(good).is_ok(), "{good:?} should be accepted");
        }
    }

    #[test]
    fn prefixes() {
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("a/").is_ok());
        assert!(validate_prefix("a/b").is_ok());
        assert!(validate_prefix("a//").is_err());
        assert!(validate_prefix("/").is_err());
        assert!(validate_prefix("../").is_err());
    }
}
