//! [`Chunking`]: the sizes FastCDC cuts a chunked shard's entries into.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// How a chunked save cuts its entries into content-defined chunks: an
/// average size, with chunks between a quarter and four times of it (the
/// last chunk of an entry may be shorter).
///
/// Smaller chunks find smaller changes (a change rewrites about one chunk
/// around it) at the cost of more objects and a longer chunk index. In
/// configuration, `{ "average_size": 1048576 }`.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::Chunking;
///
/// # fn main() -> Result<(), steadfast::ConfigError> {
/// assert_eq!(Chunking::default().average_size(), 1 << 20);
/// let small = Chunking::with_average_size(64 * 1024)?;
/// assert_eq!((small.min_size(), small.max_size()), (16 * 1024, 256 * 1024));
/// assert!(Chunking::with_average_size(100).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ChunkingRepr", into = "ChunkingRepr")]
pub struct Chunking {
    average_size: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ChunkingRepr {
    average_size: u32,
}

impl Default for ChunkingRepr {
    fn default() -> Self {
        ChunkingRepr {
            average_size: Chunking::DEFAULT_AVERAGE_SIZE,
        }
    }
}

impl From<Chunking> for ChunkingRepr {
    fn from(c: Chunking) -> Self {
        ChunkingRepr {
            average_size: c.average_size,
        }
    }
}

impl TryFrom<ChunkingRepr> for Chunking {
    type Error = ConfigError;

    fn try_from(r: ChunkingRepr) -> Result<Self, ConfigError> {
        Chunking::with_average_size(r.average_size)
    }
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking {
            average_size: Self::DEFAULT_AVERAGE_SIZE,
        }
    }
}

impl Chunking {
    /// The default average chunk size: 1 MiB.
    pub const DEFAULT_AVERAGE_SIZE: u32 = 1 << 20;
    /// The smallest average size accepted: 1 KiB.
    pub const MIN_AVERAGE_SIZE: u32 = 1 << 10;
    /// The largest average size accepted: 4 MiB (chunks up to 16 MiB).
    pub const MAX_AVERAGE_SIZE: u32 = 4 << 20;

    /// Chunks of `bytes` on average.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for `chunking.average_size` outside
    /// [`MIN_AVERAGE_SIZE`](Self::MIN_AVERAGE_SIZE)..=[`MAX_AVERAGE_SIZE`](Self::MAX_AVERAGE_SIZE).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Chunking;
    /// assert_eq!(Chunking::with_average_size(4096).unwrap().average_size(), 4096);
    /// ```
    pub fn with_average_size(bytes: u32) -> Result<Self, ConfigError> {
        let chunking = Chunking {
            average_size: bytes,
        };
        chunking.validate()?;
        Ok(chunking)
    }

    /// Checks the sizes; [`with_average_size`](Self::with_average_size) and
    /// deserialization call it.
    ///
    /// # Errors
    ///
    /// As [`with_average_size`](Self::with_average_size).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::checkpoint::Chunking::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if (Self::MIN_AVERAGE_SIZE..=Self::MAX_AVERAGE_SIZE).contains(&self.average_size) {
            Ok(())
        } else {
            Err(ConfigError::new(
                "chunking.average_size",
                format!(
                    "{} bytes is outside {}..={}",
                    self.average_size,
                    Self::MIN_AVERAGE_SIZE,
                    Self::MAX_AVERAGE_SIZE
                ),
            ))
        }
    }

    /// The average chunk size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::checkpoint::Chunking::default().average_size(), 1 << 20);
    /// ```
    pub fn average_size(&self) -> u32 {
        self.average_size
    }

    /// The smallest chunk cut (a quarter of the average), except an entry's
    /// last.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::checkpoint::Chunking::default().min_size(), 256 * 1024);
    /// ```
    pub fn min_size(&self) -> u32 {
        self.average_size / 4
    }

    /// The largest chunk (four times the average).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::checkpoint::Chunking::default().max_size(), 4 << 20);
    /// ```
    pub fn max_size(&self) -> u32 {
        self.average_size.saturating_mul(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_serde() {
        assert!(Chunking::with_average_size(Chunking::MIN_AVERAGE_SIZE).is_ok());
        assert!(Chunking::with_average_size(Chunking::MAX_AVERAGE_SIZE).is_ok());
        assert!(Chunking::with_average_size(Chunking::MIN_AVERAGE_SIZE - 1).is_err());
        assert!(Chunking::with_average_size(Chunking::MAX_AVERAGE_SIZE + 1).is_err());
        let c: Chunking = serde_json::from_str(r#"{"average_size": 65536}"#).unwrap();
        assert_eq!(c.average_size(), 65536);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"average_size":65536}"#
        );
        let d: Chunking = serde_json::from_str("{}").unwrap();
        assert_eq!(d, Chunking::default());
        assert!(serde_json::from_str::<Chunking>(r#"{"average_size": 10}"#).is_err());
        assert!(serde_json::from_str::<Chunking>(r#"{"avg": 4096}"#).is_err());
    }
}
