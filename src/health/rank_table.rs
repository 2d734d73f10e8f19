//! The rank table: the hot state of every rank (last heartbeat, status,
//! failure mark, presence: 16 bytes), indexed by rank, read and written by heartbeats
//! and sweeps with atomics and no lock.
//!
//! [`Hot`] is the per-member entry; [`RankTable`] holds one for each rank
//! below [`RANK_TABLE_LIMIT`] in segments that never move, so that a
//! heartbeat of a rank finds its entry without the registry's lock. A named
//! component (or an unusually high rank) keeps its [`Hot`] in its registry
//! slot instead.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::OnceLock;

use super::HealthStatus;

/// What heartbeats and sweeps read and write for one member: 16 bytes.
#[derive(Debug)]
pub(super) struct Hot {
    /// Latest heartbeat (or registration), nanoseconds since the monitor's base instant.
    pub(super) last: AtomicU64,
    /// In a registry slot's own entry, the rank whose state is in the
    /// [`RankTable`] instead (this entry is then unused); [`NOT_IN_TABLE`]
    /// otherwise, and in the table's own entries. Set when the entry is
    /// made and never changed (it fills what would be padding).
    pub(super) table_rank: u32,
    /// [`HealthStatus::encode`]d.
    pub(super) status: AtomicU8,
    /// Set by [`HealthMonitor::mark_failed`](super::HealthMonitor::mark_failed): Failed whatever the silence
    /// says, until the member's next heartbeat.
    pub(super) declared_failed: AtomicBool,
    /// Whether the entry belongs to a current member. Only the entries of
    /// the [`RankTable`] are ever vacant while reachable.
    pub(super) present: AtomicBool,
}

impl Hot {
    pub(super) fn vacant() -> Hot {
        Hot::pointing_to(NOT_IN_TABLE)
    }

    /// A vacant entry of a slot whose rank's state is in the table at
    /// `table_rank` ([`NOT_IN_TABLE`]: none).
    pub(super) fn pointing_to(table_rank: u32) -> Hot {
        Hot {
            last: AtomicU64::new(0),
            table_rank,
            status: AtomicU8::new(HealthStatus::Healthy.encode()),
            declared_failed: AtomicBool::new(false),
            present: AtomicBool::new(false),
        }
    }

    /// A member's state as it is added: Healthy, silent since `now`.
    pub(super) fn reset(&self, now: u64) {
        self.last.store(now, SeqCst);
        self.status.store(HealthStatus::Healthy.encode(), SeqCst);
        self.declared_failed.store(false, SeqCst);
        self.present.store(true, SeqCst);
    }
}

/// [`Hot::table_rank`] of an entry whose member's state is its own.
pub(super) const NOT_IN_TABLE: u32 = u32::MAX;

/// Ranks per segment of the [`RankTable`] (16 KiB of entries).
pub(super) const RANK_SEGMENT: usize = 1024;

/// The hot state of every rank below [`RANK_TABLE_LIMIT`], by rank, outside
/// the registry's lock.
///
/// Segments of [`RANK_SEGMENT`] entries are allocated when a rank in them
/// is first added (under the registry's write lock) and never move or go
/// away while the monitor lives, so a heartbeat reads its rank's entry with
/// no lock at all: one atomic load says whether the rank is a member, one
/// `fetch_max` records the heartbeat. A removed rank's entry is marked
/// vacant; a heartbeat racing with the removal at worst raises the time of
/// an entry that the next `add_member` of that rank resets anyway. The
/// directory of segments is 24 KiB, allocated with the monitor.
#[derive(Debug)]
pub(super) struct RankTable {
    pub(super) segments: Box<[OnceLock<Box<[Hot]>>]>,
}

impl RankTable {
    pub(super) fn new() -> RankTable {
        RankTable {
            segments: (0..RANK_TABLE_LIMIT / RANK_SEGMENT)
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// The entry of `rank`, if its segment exists.
    #[inline]
    pub(super) fn get(&self, rank: usize) -> Option<&Hot> {
        self.segments
            .get(rank / RANK_SEGMENT)?
            .get()?
            .get(rank % RANK_SEGMENT)
    }

    /// The entry of `rank`, allocating its segment; `None` for a rank at or
    /// above [`RANK_TABLE_LIMIT`].
    pub(super) fn entry(&self, rank: usize) -> Option<&Hot> {
        let segment = self.segments.get(rank / RANK_SEGMENT)?;
        segment
            .get_or_init(|| (0..RANK_SEGMENT).map(|_| Hot::vacant()).collect())
            .get(rank % RANK_SEGMENT)
    }
}

/// Ranks below this keep their hot state in the [`RankTable`] and are found
/// through [`Registry::ranks`](super::registry::Registry::ranks), a plain array, rather than the hash index;
/// higher ones (unusual) are found only through the index and keep their
/// state in their slot, so that one odd rank number cannot make the tables
/// large (at most 4 MiB and 16 MiB).
pub(super) const RANK_TABLE_LIMIT: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Hot>(), 16);
    }
}
