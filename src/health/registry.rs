//! The member registry: a slab of member slots (`Vec<Slot>`) indexed by a
//! hash map from [`MemberId`] to slot and, for ranks, by a plain array from
//! rank to slot; the [`HealthMonitor`](super::HealthMonitor) keeps it behind
//! one `RwLock`. A slot holds a member's detector state (phi accrual, or
//! its history of missed heartbeats) and, for members outside the
//! [rank table](super::rank_table), its hot state.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use super::missed::MissedHistory;
use super::phi::PhiWindow;
use super::rank_table::{Hot, RANK_TABLE_LIMIT};
use super::{HealthError, MemberId, MemberRef};

/// A key of the index, owned ([`MemberId`]) or borrowed ([`MemberRef`]):
/// the index holds `MemberId`s and is searched with a `MemberRef` through
/// `dyn Key`, so that looking up a component by name allocates nothing.
/// Both hash and compare as their `MemberRef` (`MemberId`'s own `Hash`
/// does the same).
pub(super) trait Key {
    fn key(&self) -> MemberRef<'_>;
}

impl Key for MemberId {
    fn key(&self) -> MemberRef<'_> {
        self.as_member_ref()
    }
}

impl Key for MemberRef<'_> {
    fn key(&self) -> MemberRef<'_> {
        *self
    }
}

impl<'a> Borrow<dyn Key + 'a> for MemberId {
    fn borrow(&self) -> &(dyn Key + 'a) {
        self
    }
}

impl Hash for dyn Key + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for dyn Key + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn Key + '_ {}

/// The phi-accrual state of one member.
#[derive(Debug)]
pub(super) struct PhiSlot {
    pub(super) window: Mutex<PhiWindow>,
    /// Effective mean interval (window mean + acceptable pause), `f64` bits,
    /// nanoseconds.
    pub(super) mean: AtomicU64,
    /// Effective standard deviation (at least the minimum), `f64` bits,
    /// nanoseconds.
    pub(super) std: AtomicU64,
}

/// The state a detection policy keeps per member, beside the hot state.
#[derive(Debug)]
pub(super) enum Detector {
    /// [`DetectionPolicy::PhiAccrual`](super::DetectionPolicy::PhiAccrual).
    Phi(PhiSlot),
    /// [`DetectionPolicy::MissedHeartbeats`](super::DetectionPolicy::MissedHeartbeats).
    Missed(Mutex<MissedHistory>),
}

#[derive(Debug)]
pub(super) struct Slot {
    /// `None`: a free slot. Boxed, so that the slot stays small whatever
    /// the size of a [`MemberId`]; a sweep reads it only to emit a change.
    pub(super) member: Option<Box<MemberId>>,
    /// The member's hot state, unless it is a rank below
    /// [`RANK_TABLE_LIMIT`], whose state is in the [`RankTable`] (see
    /// [`HealthMonitor::hot`](super::HealthMonitor)).
    pub(super) own: Hot,
    /// Boxed, so that a slot stays at 32 bytes: the fixed-timeout
    /// heartbeat and sweep touch little memory per member. `None` with the
    /// fixed-timeout policy.
    pub(super) detector: Option<Box<Detector>>,
}

impl Slot {
    pub(super) fn vacant() -> Slot {
        Slot {
            member: None,
            own: Hot::vacant(),
            detector: None,
        }
    }

    /// The member's phi-accrual state, with that policy.
    #[inline]
    pub(super) fn phi(&self) -> Option<&PhiSlot> {
        match self.detector.as_deref() {
            Some(Detector::Phi(phi)) => Some(phi),
            _ => None,
        }
    }

    /// The member's history of missed heartbeats, with that policy.
    #[inline]
    pub(super) fn missed(&self) -> Option<&Mutex<MissedHistory>> {
        match self.detector.as_deref() {
            Some(Detector::Missed(history)) => Some(history),
            _ => None,
        }
    }
}

/// The hasher of the member index: a multiply-rotate word hash with a
/// final avalanche, several times cheaper than the default SipHash for the
/// short keys of members. It is not meant to resist chosen-key flooding;
/// member ids are chosen by the application, not by its clients.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct MemberHasher {
    pub(super) state: u64,
}

/// An odd constant with well-spread bits (from the golden ratio).
pub(super) const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl MemberHasher {
    pub(super) fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(26) ^ word).wrapping_mul(MIX);
    }
}

impl Hasher for MemberHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // the length tells "ab" from "ab\0"
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // avalanche, so that the table's high-bit tags see every input bit
        let mut x = self.state;
        x ^= x >> 32;
        x = x.wrapping_mul(MIX);
        x ^ (x >> 29)
    }
}

#[derive(Debug, Default)]
pub(super) struct Registry {
    /// Every member's slot index.
    pub(super) index: HashMap<MemberId, usize, BuildHasherDefault<MemberHasher>>,
    /// For `MemberId::Rank(r)` with `r < RANK_TABLE_LIMIT`: entry `r` is the
    /// slot index plus one, 0 when rank `r` is not a member. A heartbeat of
    /// a rank reads one entry here (4 bytes, so 100,000 ranks fit in the
    /// CPU's cache) instead of hashing and probing the index.
    pub(super) ranks: Vec<u32>,
    pub(super) slots: Vec<Slot>,
    pub(super) free: Vec<usize>,
}

impl Registry {
    /// The slot index of a member, if it is one.
    #[inline]
    pub(super) fn slot_index(&self, member: MemberRef<'_>) -> Option<usize> {
        if let MemberRef::Rank(rank) = member
            && rank < RANK_TABLE_LIMIT
        {
            return match self.ranks.get(rank) {
                Some(&entry) if entry != 0 => Some(entry as usize - 1),
                _ => None,
            };
        }
        self.index.get(&member as &dyn Key).copied()
    }

    /// Whether `member` is a member.
    pub(super) fn contains(&self, member: MemberRef<'_>) -> bool {
        self.index.contains_key(&member as &dyn Key)
    }

    /// The slot of a member, if it is one.
    #[inline]
    pub(super) fn get(&self, member: MemberRef<'_>) -> Option<&Slot> {
        self.slot_index(member)
            .and_then(|index| self.slots.get(index))
    }

    /// The slot of a registered member.
    #[inline]
    pub(super) fn slot(&self, member: MemberRef<'_>) -> Result<&Slot, HealthError> {
        self.get(member).ok_or_else(|| HealthError::UnknownMember {
            member: member.to_member_id(),
        })
    }

    /// Places a new member's slot (reusing a free one) and indexes it.
    pub(super) fn insert(&mut self, member: MemberId, slot: Slot) {
        let index = match self.free.pop() {
            Some(free) if free < self.slots.len() => {
                self.slots[free] = slot;
                free
            }
            _ => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        if let MemberId::Rank(rank) = member
            && rank < RANK_TABLE_LIMIT
        {
            if self.ranks.len() <= rank {
                self.ranks.resize(rank + 1, 0);
            }
            // More than u32::MAX - 1 members cannot be registered: the
            // process would run out of memory long before.
            self.ranks[rank] = u32::try_from(index + 1).unwrap_or(0);
        }
        self.index.insert(member, index);
    }

    /// Unindexes a member and frees its slot. Returns whether it was one.
    pub(super) fn remove(&mut self, member: MemberRef<'_>) -> bool {
        let Some(index) = self.index.remove(&member as &dyn Key) else {
            return false;
        };
        if let MemberRef::Rank(rank) = member
            && let Some(entry) = self.ranks.get_mut(rank)
        {
            *entry = 0;
        }
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Slot::vacant();
            self.free.push(index);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    fn hash(member: &MemberId) -> u64 {
        BuildHasherDefault::<MemberHasher>::default().hash_one(member)
    }

    #[test]
    fn member_hashes_spread() {
        let ranks: HashSet<u64> = (0..100_000usize)
            .map(|r| hash(&MemberId::Rank(r)))
            .collect();
        assert_eq!(ranks.len(), 100_000);
        // the top 7 bits (the table's tags) take every value over a few ranks
        let tags: HashSet<u64> = (0..2_000usize)
            .map(|r| hash(&MemberId::Rank(r)) >> 57)
            .collect();
        assert_eq!(tags.len(), 128);
        let names = [
            "",
            "a",
            "ab",
            "ab\0",
            "db-1",
            "db-2",
            "database-primary",
            "database-primarz",
        ];
        let hashes: HashSet<u64> = names.iter().map(|n| hash(&MemberId::from(*n))).collect();
        assert_eq!(hashes.len(), names.len());
        assert_ne!(hash(&MemberId::Rank(0)), hash(&MemberId::from("")));
    }

    #[test]
    fn a_slot_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }
}
