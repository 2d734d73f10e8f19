//! The frames of a compressed shard, as the manifest records them
//! ([`ShardCompression`], [`FrameInfo`]), and their checks.
//!
//! A compressed shard is its uncompressed bytes cut into frames of a fixed
//! uncompressed size (the last one shorter), each compressed on its own as
//! an independent zstd frame, stored one after the other. Each frame is
//! recorded with its stored (compressed) size, the SHA-256 of its stored
//! bytes and its uncompressed size, so that a reader can verify a frame
//! before it decompresses it, knows exactly how many bytes it must produce,
//! and can read only the frames that hold the bytes it wants.
//!
//! Nothing recorded is trusted: [`ShardCompression`]'s checks (run by
//! [`Manifest::validate`](super::Manifest::validate)) refuse a codec this
//! build does not read, a frame size above [`MAX_FRAME_SIZE`], a frame whose
//! stored size is more than zstd can produce from it, and sizes that do not
//! add up, so that a hostile manifest cannot make a reader allocate more
//! than one frame at a time beyond what it has verified.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// The codec name of zstd frames in a manifest, the only one this build
/// reads.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{ShardCompression, ZSTD_CODEC};
/// assert_eq!(ShardCompression::zstd(1 << 20).codec, ZSTD_CODEC);
/// ```
pub const ZSTD_CODEC: &str = "zstd";

/// The largest uncompressed frame size a manifest may record (64 MiB): a
/// reader holds one frame at a time, so this bounds what it allocates before
/// a frame is verified.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{CheckpointOptions, MAX_FRAME_SIZE};
/// assert!(CheckpointOptions::builder().frame_size(MAX_FRAME_SIZE as usize + 1).build().is_err());
/// ```
pub const MAX_FRAME_SIZE: u64 = 64 * 1024 * 1024;

/// One frame of a compressed shard.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{sha256_hex, FrameInfo};
/// let frame = FrameInfo::new(3, sha256_hex(b"abc"), 1 << 20);
/// assert_eq!(frame.uncompressed_size, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FrameInfo {
    /// Its stored (compressed) size in bytes.
    pub size: u64,
    /// The SHA-256 of its stored bytes, lowercase hex.
    pub sha256: String,
    /// How many bytes it decompresses to.
    pub uncompressed_size: u64,
}

impl FrameInfo {
    /// A frame of `size` stored bytes whose digest is `sha256`, holding
    /// `uncompressed_size` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{sha256_hex, FrameInfo};
    /// assert_eq!(FrameInfo::new(1, sha256_hex(b"x"), 9).size, 1);
    /// ```
    pub fn new(size: u64, sha256: impl Into<String>, uncompressed_size: u64) -> Self {
        FrameInfo {
            size,
            sha256: sha256.into(),
            uncompressed_size,
        }
    }
}

/// How a compressed shard is stored: its codec, its frames in order, and
/// its uncompressed size.
///
/// The shard's own [`size`](super::ShardInfo::size) and
/// [`sha256`](super::ShardInfo::sha256) stay those of the stored object (the
/// frames one after the other); entry offsets are in uncompressed bytes.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{sha256_hex, FrameInfo, ShardCompression};
///
/// let mut layout = ShardCompression::zstd(4);
/// layout.push(FrameInfo::new(13, sha256_hex(b"first"), 4));
/// layout.push(FrameInfo::new(12, sha256_hex(b"second"), 2));
/// assert_eq!(layout.uncompressed_size, 6);
/// assert_eq!(layout.stored_size(), 25);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShardCompression {
    /// The codec: [`ZSTD_CODEC`]. A string, so that a manifest of a codec
    /// this build does not know is refused by name rather than unreadable.
    pub codec: String,
    /// The uncompressed size of every frame but the last (which holds the
    /// rest: at least one byte, at most this).
    pub frame_size: u64,
    /// The shard's uncompressed size: the sum of the frames' uncompressed
    /// sizes.
    pub uncompressed_size: u64,
    /// The frames, in the order they are stored.
    pub frames: Vec<FrameInfo>,
}

/// The frames that hold a range of a shard's uncompressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameSpan {
    /// The indices of the frames.
    pub(crate) frames: Range<usize>,
    /// Where they are in the stored object.
    pub(crate) stored: Range<u64>,
    /// The uncompressed offset of the first frame's first byte.
    pub(crate) uncompressed_start: u64,
}

impl ShardCompression {
    /// A zstd layout of frames of `frame_size` uncompressed bytes, with no
    /// frames yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let layout = steadfast::checkpoint::ShardCompression::zstd(1 << 20);
    /// assert!(layout.frames.is_empty());
    /// ```
    pub fn zstd(frame_size: u64) -> Self {
        ShardCompression {
            codec: ZSTD_CODEC.to_string(),
            frame_size,
            uncompressed_size: 0,
            frames: Vec::new(),
        }
    }

    /// Adds a frame at the end, counting its uncompressed size.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{sha256_hex, FrameInfo, ShardCompression};
    /// let mut layout = ShardCompression::zstd(8);
    /// layout.push(FrameInfo::new(9, sha256_hex(b"x"), 8));
    /// assert_eq!(layout.uncompressed_size, 8);
    /// ```
    pub fn push(&mut self, frame: FrameInfo) {
        self.uncompressed_size = self
            .uncompressed_size
            .saturating_add(frame.uncompressed_size);
        self.frames.push(frame);
    }

    /// The sum of the frames' stored sizes (saturating).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::checkpoint::ShardCompression::zstd(8).stored_size(), 0);
    /// ```
    pub fn stored_size(&self) -> u64 {
        self.frames
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.size))
    }

    /// The frames that hold the uncompressed bytes `range` (none for an
    /// empty range). The layout must be valid ([`check`](Self::check)) and
    /// the range inside the uncompressed size.
    pub(crate) fn span(&self, range: Range<u64>) -> FrameSpan {
        let mut stored_at = 0u64;
        let mut uncompressed_at = 0u64;
        let mut first = None;
        let mut span = FrameSpan {
            frames: 0..0,
            stored: 0..0,
            uncompressed_start: 0,
        };
        if range.start >= range.end {
            return span;
        }
        for (index, frame) in self.frames.iter().enumerate() {
            let frame_end = uncompressed_at.saturating_add(frame.uncompressed_size);
            if first.is_none() && frame_end > range.start {
                first = Some(index);
                span.stored.start = stored_at;
                span.uncompressed_start = uncompressed_at;
            }
            stored_at = stored_at.saturating_add(frame.size);
            if first.is_some() {
                span.frames = first.unwrap_or(index)..index + 1;
                span.stored.end = stored_at;
                if frame_end >= range.end {
                    break;
                }
            }
            uncompressed_at = frame_end;
        }
        span
    }

    /// The largest stored size zstd can produce from a frame of
    /// `uncompressed` bytes (zstd's `ZSTD_COMPRESSBOUND`).
    pub(crate) fn stored_bound(uncompressed: u64) -> u64 {
        const SMALL: u64 = 128 * 1024;
        let margin = if uncompressed < SMALL {
            (SMALL - uncompressed) >> 11
        } else {
            0
        };
        uncompressed
            .saturating_add(uncompressed >> 8)
            .saturating_add(margin)
    }

    /// Checks that the layout describes a possible shard of `stored_size`
    /// stored bytes: a codec this build reads, a frame size from 1 byte to
    /// [`MAX_FRAME_SIZE`], every frame holding at least one byte and exactly
    /// `frame_size` but the last (at most that), no stored frame larger than
    /// zstd can produce from its bytes, stored sizes that add up to
    /// `stored_size` and uncompressed sizes that add up to
    /// `uncompressed_size`, and digests of 64 lowercase hex digits.
    ///
    /// # Errors
    ///
    /// What is wrong, in words.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::ShardCompression;
    /// let mut layout = ShardCompression::zstd(1 << 20);
    /// assert!(layout.check(0).is_ok());
    /// layout.codec = "lz4".into();
    /// assert!(layout.check(0).unwrap_err().contains("lz4"));
    /// ```
    pub fn check(&self, stored_size: u64) -> Result<(), String> {
        if self.codec != ZSTD_CODEC {
            return Err(format!(
                "codec {:?} is not one this build reads (it reads {ZSTD_CODEC:?})",
                self.codec
            ));
        }
        if self.frame_size == 0 || self.frame_size > MAX_FRAME_SIZE {
            return Err(format!(
                "frame size {} is not between 1 byte and {MAX_FRAME_SIZE} bytes",
                self.frame_size
            ));
        }
        let bound = Self::stored_bound(self.frame_size);
        let last = self.frames.len().saturating_sub(1);
        let (mut stored, mut uncompressed) = (0u64, 0u64);
        for (index, frame) in self.frames.iter().enumerate() {
            let fits = if index == last {
                (1..=self.frame_size).contains(&frame.uncompressed_size)
            } else {
                frame.uncompressed_size == self.frame_size
            };
            if !fits {
                return Err(format!(
                    "frame {index} holds {} uncompressed bytes; every frame holds {} \
                     (the last one from 1 to {})",
                    frame.uncompressed_size, self.frame_size, self.frame_size
                ));
            }
            if frame.size > bound {
                return Err(format!(
                    "frame {index} has {} stored bytes, more than zstd makes of {} bytes ({bound})",
                    frame.size, self.frame_size
                ));
            }
            if !super::manifest::is_sha256_hex(&frame.sha256) {
                return Err(format!(
                    "frame {index} has digest {:?}, not 64 lowercase hex digits",
                    frame.sha256
                ));
            }
            stored = stored.saturating_add(frame.size);
            uncompressed = uncompressed.saturating_add(frame.uncompressed_size);
        }
        if stored != stored_size {
            return Err(format!(
                "its frames hold {stored} stored bytes, the shard {stored_size}"
            ));
        }
        if uncompressed != self.uncompressed_size {
            return Err(format!(
                "its frames hold {uncompressed} uncompressed bytes, the shard records {}",
                self.uncompressed_size
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::sha256_hex;

    fn layout(frame_size: u64, sizes: &[(u64, u64)]) -> ShardCompression {
        let mut l = ShardCompression::zstd(frame_size);
        for &(stored, uncompressed) in sizes {
            l.push(FrameInfo::new(stored, sha256_hex(b"f"), uncompressed));
        }
        l
    }

    #[test]
    fn spans_cover_exactly_the_frames_of_a_range() {
        // Frames of 10 uncompressed bytes: 0..10, 10..20, 20..25.
        let l = layout(10, &[(4, 10), (5, 10), (3, 5)]);
        assert!(l.check(12).is_ok());
        let span = |r: Range<u64>| {
            let s = l.span(r);
            (s.frames, s.stored, s.uncompressed_start)
        };
        assert_eq!(span(0..1), (0..1, 0..4, 0));
        assert_eq!(span(9..11), (0..2, 0..9, 0));
        assert_eq!(span(10..20), (1..2, 4..9, 10));
        assert_eq!(span(19..25), (1..3, 4..12, 10));
        assert_eq!(span(24..25), (2..3, 9..12, 20));
        assert_eq!(span(0..25), (0..3, 0..12, 0));
        assert_eq!(span(7..7).0, 0..0);
    }

    #[test]
    fn impossible_layouts_are_refused() {
        let ok = layout(10, &[(4, 10), (3, 5)]);
        assert!(ok.check(7).is_ok());
        assert!(ok.check(8).unwrap_err().contains("stored bytes"));
        let mut bad = ok.clone();
        bad.uncompressed_size = 16;
        assert!(bad.check(7).unwrap_err().contains("uncompressed bytes"));
        // A frame in the middle shorter than the frame size, the last longer.
        assert!(layout(10, &[(4, 9), (3, 5)]).check(7).is_err());
        assert!(layout(10, &[(4, 10), (3, 11)]).check(7).is_err());
        assert!(layout(10, &[(4, 10), (3, 0)]).check(7).is_err());
        // A frame claiming 1 TiB, a frame size above the maximum.
        assert!(layout(10, &[(4, 1 << 40)]).check(4).is_err());
        assert!(layout(1 << 40, &[(4, 1 << 40)])
            .check(4)
            .unwrap_err()
            .contains("frame size"));
        assert!(layout(0, &[]).check(0).is_err());
        // More stored bytes than zstd makes of a frame.
        let bound = ShardCompression::stored_bound(10);
        assert!(layout(10, &[(bound + 1, 10)]).check(bound + 1).is_err());
        assert!(layout(10, &[(bound, 10)]).check(bound).is_ok());
        let mut digest = ok.clone();
        digest.frames[0].sha256 = "xyz".into();
        assert!(digest.check(7).unwrap_err().contains("digest"));
    }

    #[test]
    fn the_stored_bound_is_zstds() {
        assert_eq!(
            ShardCompression::stored_bound(1 << 20),
            zstd::zstd_safe::compress_bound(1 << 20) as u64
        );
        assert_eq!(
            ShardCompression::stored_bound(100),
            zstd::zstd_safe::compress_bound(100) as u64
        );
        assert_eq!(
            ShardCompression::stored_bound(0),
            zstd::zstd_safe::compress_bound(0) as u64
        );
    }
}
