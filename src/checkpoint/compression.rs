//! [`Compression`]: how a save stores its shard's bytes, raw or compressed
//! with zstd at a chosen level.
//!
//! It is written in configuration as a string: `"none"`, `"zstd"` (level
//! [`Compression::DEFAULT_ZSTD_LEVEL`]) or `"zstd:LEVEL"` (`"zstd:1"`).

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// How a save stores its shard: raw, or compressed with zstd.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::Compression;
///
/// let zstd: Compression = "zstd:1".parse()?;
/// assert_eq!(zstd, Compression::Zstd { level: 1 });
/// assert_eq!(zstd.to_string(), "zstd:1");
/// assert_eq!("none".parse::<Compression>()?, Compression::None);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Stored as given.
    #[default]
    None,
    /// Compressed with zstd at `level` (from [`Compression::MIN_ZSTD_LEVEL`]
    /// to [`Compression::MAX_ZSTD_LEVEL`]; 1 is fast, 3 is zstd's default, 19
    /// and above are slow and small).
    Zstd {
        /// The zstd compression level.
        level: i32,
    },
}

impl Compression {
    /// The level of `"zstd"` without one: zstd's own default.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Compression;
    /// assert_eq!(Compression::zstd(), Compression::Zstd { level: Compression::DEFAULT_ZSTD_LEVEL });
    /// ```
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

    /// The fastest level accepted (zstd's negative levels trade ratio for
    /// speed).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Compression;
    /// assert!(Compression::Zstd { level: Compression::MIN_ZSTD_LEVEL }.validate().is_ok());
    /// ```
    pub const MIN_ZSTD_LEVEL: i32 = -7;

    /// The strongest level accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Compression;
    /// assert!(Compression::Zstd { level: Compression::MAX_ZSTD_LEVEL + 1 }.validate().is_err());
    /// ```
    pub const MAX_ZSTD_LEVEL: i32 = 22;

    /// zstd at [`DEFAULT_ZSTD_LEVEL`](Self::DEFAULT_ZSTD_LEVEL).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::checkpoint::Compression::zstd().to_string(), "zstd:3");
    /// ```
    pub fn zstd() -> Self {
        Compression::Zstd {
            level: Self::DEFAULT_ZSTD_LEVEL,
        }
    }

    /// zstd at `level` (checked by [`validate`](Self::validate)).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Compression;
    /// assert_eq!(Compression::zstd_level(1), Compression::Zstd { level: 1 });
    /// ```
    pub fn zstd_level(level: i32) -> Self {
        Compression::Zstd { level }
    }

    /// Whether bytes are stored compressed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Compression;
    /// assert!(!Compression::None.is_compressed());
    /// assert!(Compression::zstd().is_compressed());
    /// ```
    pub fn is_compressed(&self) -> bool {
        !matches!(self, Compression::None)
    }

    /// Checks the level.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] on field `compression` for a zstd level outside
    /// [`MIN_ZSTD_LEVEL`](Self::MIN_ZSTD_LEVEL)..=[`MAX_ZSTD_LEVEL`](Self::MAX_ZSTD_LEVEL).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Compression;
    /// assert_eq!(Compression::zstd_level(40).validate().unwrap_err().field(), "compression");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Compression::None => Ok(()),
            Compression::Zstd { level } => {
                if (Self::MIN_ZSTD_LEVEL..=Self::MAX_ZSTD_LEVEL).contains(&level) {
                    Ok(())
                } else {
                    Err(ConfigError::new(
                        "compression",
                        format!(
                            "zstd level {level} is outside {}..={}",
                            Self::MIN_ZSTD_LEVEL,
                            Self::MAX_ZSTD_LEVEL
                        ),
                    ))
                }
            }
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
        }
    }
}

impl FromStr for Compression {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim();
        let parsed = match text.split_once(':') {
            None if text.eq_ignore_ascii_case("none") => Compression::None,
            None if text.eq_ignore_ascii_case("zstd") => Compression::zstd(),
            Some((codec, level)) if codec.trim().eq_ignore_ascii_case("zstd") => {
                let level = level.trim().parse::<i32>().map_err(|_| {
                    ConfigError::new(
                        "compression",
                        format!("{level:?} in {text:?} is not a zstd level (an integer)"),
                    )
                })?;
                Compression::Zstd { level }
            }
            _ => {
                return Err(ConfigError::new(
                    "compression",
                    format!(
                    "unknown compression {text:?}: expected \"none\", \"zstd\" or \"zstd:LEVEL\""
                ),
                ))
            }
        };
        parsed.validate()?;
        Ok(parsed)
    }
}

crate::serde_text::serde_as_text!(Compression);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, expected) in [
            ("none", Compression::None),
            ("NONE", Compression::None),
            ("zstd", Compression::Zstd { level: 3 }),
            ("zstd:1", Compression::Zstd { level: 1 }),
            (" zstd : -5 ", Compression::Zstd { level: -5 }),
            ("zstd:22", Compression::Zstd { level: 22 }),
        ] {
            assert_eq!(text.parse::<Compression>().unwrap(), expected, "{text:?}");
            assert_eq!(
                expected.to_string().parse::<Compression>().unwrap(),
                expected
            );
        }
        for bad in ["", "gzip", "zstd:", "zstd:x", "zstd:23", "zstd:-8", "lz4:1"] {
            let err = bad.parse::<Compression>().unwrap_err();
            assert_eq!(err.field(), "compression", "{bad:?}");
        }
    }

    #[test]
    fn serde_is_the_string_form() {
        let json = serde_json::to_string(&Compression::zstd_level(1)).unwrap();
        assert_eq!(json, "\"zstd:1\"");
        let back: Compression = serde_json::from_str("\"zstd\"").unwrap();
        assert_eq!(back, Compression::zstd());
        assert!(serde_json::from_str::<Compression>("\"brotli\"").is_err());
    }
}
