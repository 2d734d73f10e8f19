//! Serde for the crate's small config values written as text
//! (`"zstd:1"`, `"blake3"`, `"quorum"`, `"skip"`): read through their
//! [`FromStr`](std::str::FromStr), so that a wrong value gets the same
//! error (naming the key) from a config file as from a parse, and written
//! through their [`Display`](std::fmt::Display).

/// Implements `Deserialize` for `$type` through its `FromStr`.
macro_rules! deserialize_from_str {
    ($type:ty) => {
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Implements `Serialize` through `Display` and `Deserialize` through
/// `FromStr` for `$type`.
macro_rules! serde_as_text {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        $crate::serde_text::deserialize_from_str!($type);
    };
}

pub(crate) use deserialize_from_str;
pub(crate) use serde_as_text;
