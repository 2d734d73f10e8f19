//! The breaker's state word: every fact the hot path needs, packed into one
//! `u64` that lives in an `AtomicU64` and changes only by compare-and-swap.
//!
//! # Bit layout
//!
//! ```text
//!  63            48 47            32 31                     3   2   1 0
//! +----------------+----------------+-------------------------+---+-----+
//! |            payload (32)         |   generation (29 bits)  | F | st  |
//! +----------------+----------------+-------------------------+---+-----+
//!
//! st (bits 0-1)   state: 00 Closed, 01 Open, 10 HalfOpen (11 is never written)
//! F  (bit 2)      forced open: set by `force_open`, cleared only by `reset`
//! generation      grows by one (mod 2^29) on every transition; a permit
//!                 remembers the generation it was issued in, and its result
//!                 is ignored once the generation has moved on
//! payload         Closed:   bits 32-63 = consecutive failures (saturating)
//!                 HalfOpen: bits 32-47 = trial calls in flight,
//!                           bits 48-63 = trial successes so far
//!                 Open:     zero
//! ```
//!
//! The low 32 bits (state, forced bit, generation) are the *header*. Only a
//! transition changes the header, and transitions are serialised by a mutex;
//! the payload is changed by callers on the hot path with compare-and-swap
//! and never by a plain store.

use super::State;

const STATE_MASK: u64 = 0b11;
const CLOSED: u64 = 0b00;
const OPEN: u64 = 0b01;
const HALF_OPEN: u64 = 0b10;
const FORCED_BIT: u64 = 1 << 2;
const GENERATION_SHIFT: u32 = 3;
const GENERATION_BITS: u32 = 29;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;
const HEADER_MASK: u64 = 0xFFFF_FFFF;
const PAYLOAD_SHIFT: u32 = 32;
const SUCCESSES_SHIFT: u32 = 16;

/// The largest number of half-open trial calls in flight, and of trial
/// successes, that the payload can count (16 bits each).
pub(crate) const MAX_TRIAL_COUNT: u32 = u16::MAX as u32;

/// One decoded value of the state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(u64);

impl Word {
    /// A word from its raw bits.
    pub(crate) const fn from_bits(bits: u64) -> Self {
        Word(bits)
    }

    /// The raw bits.
    pub(crate) const fn bits(self) -> u64 {
        self.0
    }

    /// A word with every field given.
    pub(crate) fn new(state: State, forced: bool, generation: u32, payload: u32) -> Self {
        let st = match state {
            State::Closed => CLOSED,
            State::Open => OPEN,
            State::HalfOpen => HALF_OPEN,
        };
        let forced = if forced { FORCED_BIT } else { 0 };
        let generation = (u64::from(generation) & GENERATION_MASK) << GENERATION_SHIFT;
        Word(st | forced | generation | (u64::from(payload) << PAYLOAD_SHIFT))
    }

    /// The initial word: Closed, generation 0, no failures.
    pub(crate) const fn initial() -> Self {
        Word(CLOSED)
    }

    /// The state in bits 0-1. The pattern `11` is never written; were it
    /// read, it would be taken as Open, the safe side.
    pub(crate) fn state(self) -> State {
        match self.0 & STATE_MASK {
            CLOSED => State::Closed,
            HALF_OPEN => State::HalfOpen,
            _ => State::Open,
        }
    }

    /// Whether the circuit was forced open.
    pub(crate) fn forced(self) -> bool {
        self.0 & FORCED_BIT != 0
    }

    /// The generation, counting transitions mod 2^29.
    pub(crate) fn generation(self) -> u32 {
        ((self.0 >> GENERATION_SHIFT) & GENERATION_MASK) as u32
    }

    /// The generation that follows this word's.
    pub(crate) fn next_generation(self) -> u32 {
        (self.generation().wrapping_add(1)) & (GENERATION_MASK as u32)
    }

    /// State, forced bit and generation: what only a transition changes.
    pub(crate) fn header(self) -> u32 {
        (self.0 & HEADER_MASK) as u32
    }

    /// The upper 32 bits.
    fn payload(self) -> u32 {
        (self.0 >> PAYLOAD_SHIFT) as u32
    }

    /// The same header with another payload.
    pub(crate) fn with_payload(self, payload: u32) -> Self {
        Word((self.0 & HEADER_MASK) | (u64::from(payload) << PAYLOAD_SHIFT))
    }

    /// Consecutive failures (meaningful in Closed).
    pub(crate) fn consecutive_failures(self) -> u32 {
        self.payload()
    }

    /// Trial calls in flight (meaningful in HalfOpen).
    pub(crate) fn trials_in_flight(self) -> u32 {
        self.payload() & 0xFFFF
    }

    /// Trial successes so far (meaningful in HalfOpen).
    pub(crate) fn trial_successes(self) -> u32 {
        self.payload() >> SUCCESSES_SHIFT
    }

    /// The payload for HalfOpen: trials in flight and trial successes, each
    /// clamped to 16 bits (the configuration keeps both well below).
    pub(crate) fn trials_payload(in_flight: u32, successes: u32) -> u32 {
        (in_flight.min(MAX_TRIAL_COUNT)) | (successes.min(MAX_TRIAL_COUNT) << SUCCESSES_SHIFT)
    }
}

impl std::fmt::Debug for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Word");
        s.field("state", &self.state())
            .field("forced", &self.forced())
            .field("generation", &self.generation());
        match self.state() {
            State::Closed => s.field("consecutive_failures", &self.consecutive_failures()),
            State::HalfOpen => s
                .field("trials_in_flight", &self.trials_in_flight())
                .field("trial_successes", &self.trial_successes()),
            State::Open => &mut s,
        };
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        for state in [State::Closed, State::Open, State::HalfOpen] {
            for forced in [false, true] {
                for generation in [0, 1, 12_345, GENERATION_MASK as u32] {
                    for payload in [0, 1, 0xFFFF, 0x1234_5678, u32::MAX] {
                        let w = Word::new(state, forced, generation, payload);
                        assert_eq!(w.state(), state);
                        assert_eq!(w.forced(), forced);
                        assert_eq!(w.generation(), generation);
                        assert_eq!(w.payload(), payload);
                        assert_eq!(w.with_payload(7).header(), w.header());
                        assert_eq!(w.with_payload(7).payload(), 7);
                    }
                }
            }
        }
    }

    #[test]
    fn generation_wraps_within_its_bits() {
        let w = Word::new(State::Open, false, GENERATION_MASK as u32, 0);
        assert_eq!(w.next_generation(), 0);
        let next = Word::new(State::Closed, false, w.next_generation(), 0);
        assert_eq!(next.state(), State::Closed);
        assert!(!next.forced());
    }

    #[test]
    fn half_open_payload_splits_in_two() {
        let w = Word::new(State::HalfOpen, false, 3, Word::trials_payload(5, 2));
        assert_eq!(w.trials_in_flight(), 5);
        assert_eq!(w.trial_successes(), 2);
        let full = Word::trials_payload(MAX_TRIAL_COUNT + 10, MAX_TRIAL_COUNT + 10);
        let w = w.with_payload(full);
        assert_eq!(w.trials_in_flight(), MAX_TRIAL_COUNT);
        assert_eq!(w.trial_successes(), MAX_TRIAL_COUNT);
    }

    #[test]
    fn initial_is_closed_without_failures() {
        let w = Word::initial();
        assert_eq!(w.state(), State::Closed);
        assert_eq!(w.consecutive_failures(), 0);
        assert_eq!(w.generation(), 0);
        assert_eq!(Word::from_bits(w.bits()), w);
    }
}
