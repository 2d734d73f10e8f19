//! Key validation shared by every storage implementation.
//!
//! A key is checked as text, before any I/O: split on `/`, every segment
//! must be a plain, non-empty name (no `.` or `..`, no backslash, no NUL or
//! other control character) of at most 255 bytes that is not shaped like a
//! temporary file of [`LocalFsStorage`](super::LocalFsStorage), and the key
//! must not start with `/`. A key that passes names a place under a
//! storage's root on every platform, and the rule is the same on every
//! storage: a key (or checkpoint name) that a test accepted on
//! [`MemoryStorage`](super::MemoryStorage) is accepted by the local file
//! system and by an object store too.

use super::{Result, StorageError};

/// The longest key segment, in bytes: the longest file name of common file
/// systems (ext4, XFS, APFS, NTFS counts 255 UTF-16 units).
const MAX_SEGMENT_BYTES: usize = 255;

/// Checks that `key` is a safe storage key.
///
/// A key is one or more segments separated by `/`. It is refused when it is
/// empty, starts with `/` (an absolute path), has an empty segment (`a//b`, a
/// trailing `/`), has a `.` or `..` segment, contains a backslash, a NUL
/// byte or another control character, has a segment longer than 255 bytes,
/// or has a segment shaped like the temporary files of
/// [`LocalFsStorage`](super::LocalFsStorage)
/// (`.<name>.tmp-<pid>-<16 hex digits>`). This runs before any I/O, so that
/// no key can reach outside a storage's root, and every storage refuses the
/// same keys.
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
/// assert!(validate_key(&"x".repeat(255)).is_ok());
/// assert!(validate_key(&"x".repeat(256)).is_err());
/// assert!(validate_key("run/.shard.tmp-12-0123456789abcdef").is_err());
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
            _ if segment.len() > MAX_SEGMENT_BYTES => {
                return refuse("a segment is longer than 255 bytes")
            }
            _ if is_temp_name(segment) => {
                return refuse("the name is reserved for the temporary files of writes in progress")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a name is shaped like the temporary files of
/// [`LocalFsStorage`](super::LocalFsStorage):
/// `.<anything>.tmp-<decimal pid>-<16 lowercase hex digits>`. No storage
/// accepts it as a key segment, so that a key valid on one storage is valid
/// on all.
pub(crate) fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some(at) = rest.rfind(".tmp-") else {
        return false;
    };
    let Some((pid, random)) = rest[at + ".tmp-".len()..].split_once('-') else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 16
        && random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
            ".a.tmp-1-0123456789abcdef",
            "run/.shard-0.bin.tmp-4242-00000000deadbeef/x",
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
    fn segments_of_at_most_255_bytes_are_accepted() {
        assert!(validate_key(&"a".repeat(255)).is_ok());
        assert!(validate_key(&format!("{}/b", "a".repeat(255))).is_ok());
        // Bytes, not characters: 128 two-byte characters are 256 bytes.
        assert!(validate_key(&"é".repeat(127)).is_ok());
        for long in [
            "a".repeat(256),
            "é".repeat(128),
            format!("a/{}/b", "z".repeat(300)),
        ] {
            assert!(
                matches!(validate_key(&long), Err(StorageError::InvalidKey { .. })),
                "a {}-byte segment should be refused",
                long.len()
            );
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
