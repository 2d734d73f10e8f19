//! The footer each replica stores after a copy's payload, so that any read
//! can verify a copy's length and digest without asking another replica.
//!
//! Layout of a stored copy (all integers little-endian):
//!
//! ```text
//! [payload: n bytes][SHA-256 of payload: 32][n: u64, 8][version: u32, 4][magic "SFREPLCA": 8]
//! ```
//!
//! The footer has a fixed length ([`FOOTER_LEN`], 52 bytes), so the payload
//! size of a copy is its stored size minus 52, known from a `head` or a
//! `list` alone; the magic sits last so that a reader of the end of an
//! object sees at once whether it is a copy written by
//! [`ReplicatedStorage`](super::ReplicatedStorage).

use sha2::{Digest, Sha256};

/// The length of the footer after every copy's payload.
pub(crate) const FOOTER_LEN: u64 = 52;

/// The footer's magic bytes.
const MAGIC: &[u8; 8] = b"SFREPLCA";

/// The footer's format version.
const VERSION: u32 = 1;

/// A decoded footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) digest: [u8; 32],
    pub(crate) payload_len: u64,
}

impl Footer {
    /// The footer of `payload`.
    pub(crate) fn of(payload: &[u8]) -> Footer {
        Footer {
            digest: Sha256::digest(payload).into(),
            payload_len: payload.len() as u64,
        }
    }

    /// The footer's bytes.
    pub(crate) fn encode(&self) -> [u8; FOOTER_LEN as usize] {
        let mut out = [0u8; FOOTER_LEN as usize];
        out[..32].copy_from_slice(&self.digest);
        out[32..40].copy_from_slice(&self.payload_len.to_le_bytes());
        out[40..44].copy_from_slice(&VERSION.to_le_bytes());
        out[44..52].copy_from_slice(MAGIC);
        out
    }

    /// Decodes a footer; `Err` says what is wrong with it.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Footer, String> {
        if bytes.len() as u64 != FOOTER_LEN {
            return Err(format!(
                "the footer has {} bytes, not {FOOTER_LEN}",
                bytes.len()
            ));
        }
        if &bytes[44..52] != MAGIC {
            return Err("the copy has no replica footer (wrong magic)".to_string());
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&bytes[40..44]);
        let version = u32::from_le_bytes(version);
        if version != VERSION {
            return Err(format!(
                "the footer is of version {version}, which this build does not know"
            ));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&bytes[..32]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[32..40]);
        Ok(Footer {
            digest,
            payload_len: u64::from_le_bytes(len),
        })
    }
}

/// The bytes a replica stores for `payload`: the payload, then its footer.
pub(crate) fn seal(payload: &[u8]) -> bytes::Bytes {
    let footer = Footer::of(payload).encode();
    let mut stored = Vec::with_capacity(payload.len() + footer.len());
    stored.extend_from_slice(payload);
    stored.extend_from_slice(&footer);
    stored.into()
}

/// Checks a whole stored copy; returns its payload (sharing its bytes) and
/// its footer, or what is wrong with it.
pub(crate) fn open(stored: &bytes::Bytes) -> Result<(bytes::Bytes, Footer), String> {
    let size = stored.len() as u64;
    if size < FOOTER_LEN {
        return Err(format!(
            "the copy has {size} bytes, fewer than its {FOOTER_LEN}-byte footer"
        ));
    }
    let split = stored.len() - FOOTER_LEN as usize;
    let footer = Footer::decode(&stored[split..])?;
    if footer.payload_len != split as u64 {
        return Err(format!(
            "the footer records {} payload bytes, the copy holds {split}",
            footer.payload_len
        ));
    }
    let payload = stored.slice(..split);
    let digest: [u8; 32] = Sha256::digest(&payload).into();
    if digest != footer.digest {
        return Err(format!(
            "the payload's SHA-256 is {}, its footer records {}",
            hex(&digest),
            hex(&footer.digest)
        ));
    }
    Ok((payload, footer))
}

/// Lowercase hexadecimal of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_copy_opens_and_a_damaged_one_does_not() {
        let stored = seal(b"weights");
        assert_eq!(stored.len() as u64, 7 + FOOTER_LEN);
        let (payload, footer) = open(&stored).unwrap();
        assert_eq!(payload, &b"weights"[..]);
        assert_eq!(footer.payload_len, 7);

        let mut flipped = stored.to_vec();
        flipped[0] ^= 1;
        assert!(open(&flipped.into()).unwrap_err().contains("SHA-256"));
        let short = stored.slice(1..);
        assert!(open(&short).is_err());
        assert!(open(&bytes::Bytes::from_static(b"tiny")).is_err());
        let mut no_magic = stored.to_vec();
        let last = no_magic.len() - 1;
        no_magic[last] = b'x';
        assert!(open(&no_magic.into()).unwrap_err().contains("magic"));
    }

    #[test]
    fn an_empty_payload_has_a_footer_alone() {
        let stored = seal(b"");
        assert_eq!(stored.len() as u64, FOOTER_LEN);
        assert!(open(&stored).unwrap().0.is_empty());
    }
}
