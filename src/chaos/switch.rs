//! [`ChaosSwitch`], the shared on/off switch of injection, and the seeded
//! dice every wrapper draws its faults from.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Turns injection on and off while a test runs, from any task.
///
/// Clones share the switch: hand one to every wrapper (through their
/// builders' `switch` methods) and flip all of them at once. While it is
/// off, a wrapper is transparent: it calls straight through, adds no delay
/// and draws nothing from its random generator, so turning it on again
/// continues the same sequence of faults.
///
/// # Examples
///
/// ```
/// use steadfast::chaos::ChaosSwitch;
///
/// let switch = ChaosSwitch::new(true);
/// let other_task = switch.clone();
/// other_task.turn_off();
/// assert!(!switch.is_on());
/// switch.turn_on();
/// assert!(other_task.is_on());
/// ```
#[derive(Clone)]
pub struct ChaosSwitch {
    on: Arc<AtomicBool>,
}

impl ChaosSwitch {
    /// A switch, on or off.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!steadfast::chaos::ChaosSwitch::new(false).is_on());
    /// ```
    pub fn new(on: bool) -> Self {
        ChaosSwitch {
            on: Arc::new(AtomicBool::new(on)),
        }
    }

    /// Whether injection is on.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::chaos::ChaosSwitch::new(true).is_on());
    /// ```
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Turns injection on or off.
    ///
    /// # Examples
    ///
    /// ```
    /// let switch = steadfast::chaos::ChaosSwitch::new(false);
    /// switch.set(true);
    /// assert!(switch.is_on());
    /// ```
    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Release);
    }

    /// Turns injection on.
    ///
    /// # Examples
    ///
    /// ```
    /// let switch = steadfast::chaos::ChaosSwitch::new(false);
    /// switch.turn_on();
    /// assert!(switch.is_on());
    /// ```
    pub fn turn_on(&self) {
        self.set(true);
    }

    /// Turns injection off: every wrapper sharing the switch becomes
    /// transparent.
    ///
    /// # Examples
    ///
    /// ```
    /// let switch = steadfast::chaos::ChaosSwitch::new(true);
    /// switch.turn_off();
    /// assert!(!switch.is_on());
    /// ```
    pub fn turn_off(&self) {
        self.set(false);
    }
}

impl Default for ChaosSwitch {
    /// A switch that is on.
    fn default() -> Self {
        ChaosSwitch::new(true)
    }
}

impl fmt::Debug for ChaosSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosSwitch")
            .field("on", &self.is_on())
            .finish()
    }
}

/// The seeded random generator of one wrapper. Every draw happens under its
/// lock, in the order of the calls, so that the same seed and the same
/// order of calls give the same faults.
#[derive(Debug)]
pub(super) struct Dice {
    rng: Mutex<SmallRng>,
}

/// The draws of one call, taken under one lock.
pub(super) struct Roll<'a> {
    rng: std::sync::MutexGuard<'a, SmallRng>,
}

impl Dice {
    pub(super) fn new(seed: u64) -> Self {
        Dice {
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
        }
    }

    /// Starts the draws of one call.
    pub(super) fn roll(&self) -> Roll<'_> {
        Roll {
            rng: self.rng.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

impl Roll<'_> {
    /// Whether a fault of `rate` happens; draws nothing when `rate` is 0.
    pub(super) fn chance(&mut self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        self.rng.random::<f64>() < rate
    }

    /// A delay in `min..=max`; draws nothing when they are equal.
    pub(super) fn delay(&mut self, min: Duration, max: Duration) -> Duration {
        if max <= min {
            return min;
        }
        let span = u64::try_from((max - min).as_nanos()).unwrap_or(u64::MAX);
        min + Duration::from_nanos(self.rng.random_range(0..=span))
    }

    /// A number to place a flipped bit or a tear with.
    pub(super) fn number(&mut self) -> u64 {
        self.rng.random()
    }
}
