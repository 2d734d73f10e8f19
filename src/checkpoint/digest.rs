//! [`DigestAlgorithm`]: the hash that addresses and verifies the chunks of a
//! chunked shard, SHA-256 (the default) or BLAKE3.
//!
//! Every manifest, shard and entry digest of the checkpoint format stays
//! SHA-256: that is the one digest an old checkpoint needs to be read. A
//! chunked save may address its chunks by BLAKE3 instead, for jobs whose
//! saves are bound by hashing; the shard's chunk index records which, and a
//! load verifies each chunk with the algorithm recorded. In configuration it
//! is written `"sha256"` or `"blake3"`.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::manifest::to_hex;
use crate::error::ConfigError;

/// The hash of a chunk's stored bytes, which is also its address
/// (`chunks/<hex digest>`).
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::DigestAlgorithm;
///
/// assert_eq!(DigestAlgorithm::default(), DigestAlgorithm::Sha256);
/// let blake3: DigestAlgorithm = "blake3".parse().unwrap();
/// assert_eq!(blake3.hex(b"").len(), 64);
/// assert_eq!(blake3.to_string(), "blake3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// SHA-256, the digest of every other part of a checkpoint.
    #[default]
    Sha256,
    /// BLAKE3 (256-bit output), several times faster than SHA-256 on one
    /// core.
    Blake3,
}

impl DigestAlgorithm {
    /// The name written in chunk indexes and configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::DigestAlgorithm;
    /// assert_eq!(DigestAlgorithm::Sha256.name(), "sha256");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Blake3 => "blake3",
        }
    }

    /// The lowercase hex digest of `bytes` (64 characters for both
    /// algorithms).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{sha256_hex, DigestAlgorithm};
    /// assert_eq!(DigestAlgorithm::Sha256.hex(b"abc"), sha256_hex(b"abc"));
    /// assert_ne!(DigestAlgorithm::Blake3.hex(b"abc"), sha256_hex(b"abc"));
    /// ```
    pub fn hex(&self, bytes: &[u8]) -> String {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        hasher.finish_hex()
    }

    /// A hasher that takes the bytes in pieces.
    pub(crate) fn hasher(&self) -> ChunkHasher {
        match self {
            DigestAlgorithm::Sha256 => ChunkHasher::Sha256(Box::default()),
            DigestAlgorithm::Blake3 => ChunkHasher::Blake3(Box::default()),
        }
    }
}

/// A running digest of one of the [`DigestAlgorithm`]s.
pub(crate) enum ChunkHasher {
    Sha256(Box<Sha256>),
    Blake3(Box<blake3::Hasher>),
}

impl ChunkHasher {
    /// Adds `bytes` to the digest.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            ChunkHasher::Sha256(h) => h.update(bytes),
            ChunkHasher::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    /// The lowercase hex digest of everything added.
    pub(crate) fn finish_hex(self) -> String {
        match self {
            ChunkHasher::Sha256(h) => to_hex(&h.finalize()),
            ChunkHasher::Blake3(h) => to_hex(h.finalize().as_bytes()),
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DigestAlgorithm {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("sha256") || text.eq_ignore_ascii_case("sha-256") {
            Ok(DigestAlgorithm::Sha256)
        } else if text.eq_ignore_ascii_case("blake3") {
            Ok(DigestAlgorithm::Blake3)
        } else {
            Err(ConfigError::new(
                "digest",
                format!("unknown digest {text:?}: expected \"sha256\" or \"blake3\""),
            ))
        }
    }
}

crate::serde_text::serde_as_text!(DigestAlgorithm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(
            DigestAlgorithm::Sha256.hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            DigestAlgorithm::Blake3.hex(b"abc"),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        let mut pieces = DigestAlgorithm::Blake3.hasher();
        pieces.update(b"a");
        pieces.update(b"bc");
        assert_eq!(pieces.finish_hex(), DigestAlgorithm::Blake3.hex(b"abc"));
    }

    #[test]
    fn parses_prints_and_refuses() {
        for (text, expected) in [
            ("sha256", DigestAlgorithm::Sha256),
            ("SHA-256", DigestAlgorithm::Sha256),
            (" blake3 ", DigestAlgorithm::Blake3),
        ] {
            assert_eq!(text.parse::<DigestAlgorithm>().unwrap(), expected);
        }
        let err = "md5".parse::<DigestAlgorithm>().unwrap_err();
        assert_eq!(err.field(), "digest");
        let json = serde_json::to_string(&DigestAlgorithm::Blake3).unwrap();
        assert_eq!(json, "\"blake3\"");
        assert!(serde_json::from_str::<DigestAlgorithm>("\"crc32\"").is_err());
    }
}
