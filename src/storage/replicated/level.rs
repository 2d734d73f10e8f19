//! [`ConsistencyLevel`]: how many replicas a write of a
//! [`ReplicatedStorage`](super::ReplicatedStorage) needs (W), and so how
//! many a read consults (R = N − W + 1).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::ConfigError;

/// How many replicas a write needs, and so how many a read needs.
///
/// With N replicas: `One` writes need 1 acknowledgement, `Quorum`
/// ⌊N/2⌋+1, `All` N; reads need N − W + 1 answers (and at least W, see
/// [`ReplicatedStorage`](super::ReplicatedStorage)). Written `"one"`, `"quorum"` or `"all"` in a
/// config file.
///
/// # Examples
///
/// ```
/// use steadfast::storage::ConsistencyLevel;
///
/// assert_eq!(ConsistencyLevel::default(), ConsistencyLevel::Quorum);
/// assert_eq!(ConsistencyLevel::Quorum.write_quorum(3), 2);
/// assert_eq!(ConsistencyLevel::Quorum.read_quorum(3), 2);
/// assert_eq!(ConsistencyLevel::One.read_quorum(3), 3);
/// assert_eq!("all".parse::<ConsistencyLevel>()?, ConsistencyLevel::All);
/// assert_eq!(serde_json::to_string(&ConsistencyLevel::One).unwrap(), "\"one\"");
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsistencyLevel {
    /// A write succeeds once one replica holds it.
    One,
    /// A write succeeds once a majority holds it (the default).
    #[default]
    Quorum,
    /// A write succeeds once every replica holds it.
    All,
}

impl ConsistencyLevel {
    /// W: how many replicas of `n` must acknowledge a write.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::ConsistencyLevel;
    /// assert_eq!(ConsistencyLevel::One.write_quorum(3), 1);
    /// assert_eq!(ConsistencyLevel::Quorum.write_quorum(4), 3);
    /// assert_eq!(ConsistencyLevel::All.write_quorum(3), 3);
    /// ```
    pub fn write_quorum(self, n: usize) -> usize {
        match self {
            ConsistencyLevel::One => 1.min(n),
            ConsistencyLevel::Quorum => n / 2 + 1,
            ConsistencyLevel::All => n,
        }
    }

    /// R = N − W + 1: how many replicas of `n` a read consults so that it
    /// overlaps every successful write.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::ConsistencyLevel;
    /// assert_eq!(ConsistencyLevel::All.read_quorum(3), 1);
    /// ```
    pub fn read_quorum(self, n: usize) -> usize {
        (n + 1).saturating_sub(self.write_quorum(n))
    }

    /// The level's name in a config file.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::storage::ConsistencyLevel::Quorum.name(), "quorum");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ConsistencyLevel::One => "one",
            ConsistencyLevel::Quorum => "quorum",
            ConsistencyLevel::All => "all",
        }
    }
}

impl fmt::Display for ConsistencyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ConsistencyLevel {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        match text.trim() {
            "one" => Ok(ConsistencyLevel::One),
            "quorum" => Ok(ConsistencyLevel::Quorum),
            "all" => Ok(ConsistencyLevel::All),
            other => Err(ConfigError::new(
                "consistency_level",
                format!("must be \"one\", \"quorum\" or \"all\", got {other:?}"),
            )),
        }
    }
}

// Read as `FromStr` does, so that a wrong value names the key.
crate::serde_text::deserialize_from_str!(ConsistencyLevel);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorums_overlap_at_every_level_and_size() {
        for n in 1..8 {
            for level in [
                ConsistencyLevel::One,
                ConsistencyLevel::Quorum,
                ConsistencyLevel::All,
            ] {
                let (w, r) = (level.write_quorum(n), level.read_quorum(n));
                assert!(w >= 1 && w <= n && r >= 1 && r <= n, "{level} {n}");
                assert!(r + w > n, "{level} {n}");
            }
        }
    }

    #[test]
    fn levels_parse_and_print() {
        for level in [
            ConsistencyLevel::One,
            ConsistencyLevel::Quorum,
            ConsistencyLevel::All,
        ] {
            assert_eq!(level.name().parse::<ConsistencyLevel>().unwrap(), level);
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(
                serde_json::from_str::<ConsistencyLevel>(&json).unwrap(),
                level
            );
        }
        assert_eq!(
            "most".parse::<ConsistencyLevel>().unwrap_err().field(),
            "consistency_level"
        );
    }
}
