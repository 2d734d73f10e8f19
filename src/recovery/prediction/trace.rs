//! Labelled traces: a member's signals over time and whether (and when) it
//! failed ([`Trace`]), and a seeded generator of such traces
//! ([`TraceGenerator`]) with families of degradation that precede failures
//! and of noise that does not ([`TraceFamily`]).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::features::{Features, MemberSignals};
use super::PredictionError;

/// One observed signal of a trace.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::prediction::Signal;
/// let s = Signal::Outcome { ok: false, latency: Duration::from_millis(30) };
/// assert!(matches!(s, Signal::Outcome { ok: false, .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// A heartbeat arrived.
    Heartbeat,
    /// An operation ended, successfully or not, after `latency`.
    Outcome {
        /// Whether it succeeded.
        ok: bool,
        /// How long it took.
        #[serde(with = "crate::serde_duration")]
        latency: Duration,
    },
    /// A gauge was sampled.
    Gauge {
        /// The gauge's name.
        name: String,
        /// Its value.
        value: f64,
    },
    /// The caller's phi.
    Phi(f64),
}

/// A signal at an offset from the start of its trace.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::prediction::{Signal, TraceEvent};
/// let e = TraceEvent { at: Duration::from_secs(1), signal: Signal::Heartbeat };
/// assert_eq!(e.at, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// When, from the start of the trace.
    #[serde(with = "crate::serde_duration")]
    pub at: Duration,
    /// What.
    pub signal: Signal,
}

/// A family of generated traces. The first three degrade and fail; the
/// other three are noise that a predictor must not mistake for degradation.
///
/// Every trace beats every `heartbeat_interval` (1 s unless set) with a
/// jitter of 2–8% of it, makes 6–14 operations per interval (error rate
/// 0–2%, log-normal latencies with a p50 of 5–50 ms) and samples two gauges
/// each interval, `cpu_temperature` (45–70, noise 0.5–2) and
/// `memory_pressure` (0.2–0.6, noise 0.01–0.03). A failing trace degrades
/// from its onset (drawn in 30–60 intervals) for its lead (8–24 intervals),
/// following `progress^shape` (shape 0.7–1.5), and fails when the lead is
/// over: no event comes after. A noise trace lasts 100 intervals.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::prediction::TraceFamily;
/// assert!(TraceFamily::SlowingHeartbeat.fails());
/// assert!(!TraceFamily::Jitter.fails());
/// assert_eq!(TraceFamily::ALL.len(), 6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFamily {
    /// Fails. The heartbeat interval stretches to 2.5–5 times its normal
    /// length by the failure (a process thrashing, a host overloaded).
    SlowingHeartbeat,
    /// Fails. The error rate climbs to 35–80% and latencies double by the
    /// failure (a disk or a dependency giving way).
    RisingErrorRate,
    /// Fails. One gauge drifts 8–14 standard deviations out of its range by
    /// the failure (a temperature climbing, memory filling up).
    GaugeDrift,
    /// Does not fail. Heartbeat jitter of 15–30% of the interval, with 2–4
    /// heartbeats delayed to 1.5–2.2 intervals.
    Jitter,
    /// Does not fail. 2–4 short spikes of 1–2 intervals in which the error
    /// rate jumps to 10–30% and latencies to 1.5–3 times their normal.
    ShortSpikes,
    /// Does not fail. One gauge wanders 1.5–2.5 standard deviations away over
    /// 6–15 intervals, then comes back as slowly.
    WanderingGauge,
}

impl TraceFamily {
    /// Every family, failing ones first.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::TraceFamily;
    /// assert_eq!(TraceFamily::ALL.iter().filter(|f| f.fails()).count(), 3);
    /// ```
    pub const ALL: [TraceFamily; 6] = [
        TraceFamily::SlowingHeartbeat,
        TraceFamily::RisingErrorRate,
        TraceFamily::GaugeDrift,
        TraceFamily::Jitter,
        TraceFamily::ShortSpikes,
        TraceFamily::WanderingGauge,
    ];

    /// Whether traces of this family end in a failure.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::recovery::prediction::TraceFamily::GaugeDrift.fails());
    /// ```
    pub fn fails(self) -> bool {
        matches!(
            self,
            TraceFamily::SlowingHeartbeat | TraceFamily::RisingErrorRate | TraceFamily::GaugeDrift
        )
    }
}

/// One member's signals over time, labelled with its failure, if it failed:
/// what [`LogisticModel::train`](super::LogisticModel::train) learns from
/// and [`evaluate`](super::evaluate) measures on. Recorded from a real
/// system or made by a [`TraceGenerator`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::prediction::{Signal, Trace, TraceEvent};
///
/// let events = (1..=30u64)
///     .map(|s| TraceEvent { at: Duration::from_secs(s), signal: Signal::Heartbeat })
///     .collect();
/// let trace = Trace {
///     heartbeat_interval: Duration::from_secs(1),
///     events,
///     failure_at: Some(Duration::from_secs(31)),
///     onset: None,
///     family: None,
/// };
/// assert!(trace.fails());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The member's normal heartbeat interval: features are taken once per
    /// interval, and lead times are counted in intervals.
    #[serde(with = "crate::serde_duration")]
    pub heartbeat_interval: Duration,
    /// The signals, in order of time.
    pub events: Vec<TraceEvent>,
    /// When the member failed, if it did (no event comes after).
    #[serde(default, with = "crate::serde_duration::option")]
    pub failure_at: Option<Duration>,
    /// When the degradation that led to the failure began, if known: an
    /// alarm before it is a false alarm.
    #[serde(default, with = "crate::serde_duration::option")]
    pub onset: Option<Duration>,
    /// The family a generated trace belongs to.
    #[serde(default)]
    pub family: Option<TraceFamily>,
}

impl Trace {
    /// Whether the member failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{TraceFamily, TraceGenerator};
    /// let trace = TraceGenerator::new(7).generate(TraceFamily::Jitter);
    /// assert!(!trace.fails());
    /// ```
    pub fn fails(&self) -> bool {
        self.failure_at.is_some()
    }

    /// Refuses a trace the replay cannot make sense of.
    pub(crate) fn check(&self, index: usize) -> Result<(), PredictionError> {
        let malformed = |reason: String| PredictionError::MalformedTrace { index, reason };
        if self.heartbeat_interval.is_zero() {
            return Err(malformed("its heartbeat interval is zero".to_owned()));
        }
        let mut last = Duration::ZERO;
        for (i, event) in self.events.iter().enumerate() {
            if event.at < last {
                return Err(malformed(format!(
                    "event {i} comes before the one ahead of it"
                )));
            }
            last = event.at;
            if self.failure_at.is_some_and(|f| event.at > f) {
                return Err(malformed(format!("event {i} comes after the failure")));
            }
            match &event.signal {
                Signal::Gauge { value, .. } | Signal::Phi(value) if !value.is_finite() => {
                    return Err(malformed(format!("event {i} holds {value}")));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The features at every heartbeat interval from the start, until the
    /// failure (exclusive) or the last event, each after the events up to
    /// its instant were fed: `(offset, features)`.
    pub(crate) fn replay(&self) -> Vec<(Duration, Features)> {
        let base = Instant::now();
        let mut signals = MemberSignals::default();
        let end = self
            .failure_at
            .or_else(|| self.events.last().map(|e| e.at + self.heartbeat_interval))
            .unwrap_or(Duration::ZERO);
        let mut out = Vec::new();
        let mut next = 0;
        let mut tick = 1u32;
        while let Some(t) = self
            .heartbeat_interval
            .checked_mul(tick)
            .filter(|t| *t < end)
        {
            while let Some(event) = self.events.get(next).filter(|e| e.at <= t) {
                let at = base + event.at;
                match &event.signal {
                    Signal::Heartbeat => signals.heartbeat(at),
                    Signal::Outcome { ok, latency } => signals.outcome(*ok, *latency, at),
                    Signal::Gauge { name, value } => {
                        if signals.has_room_for(name) {
                            signals.gauge(name, *value, at);
                        }
                    }
                    Signal::Phi(phi) => signals.phi(*phi, at),
                }
                next += 1;
            }
            out.push((t, signals.features(base + t)));
            tick += 1;
        }
        out
    }
}

/// A seeded generator of labelled [`Trace`]s, in the families described on
/// [`TraceFamily`]. Every parameter of a trace (onset, lead, slope and
/// shape of its degradation, noise levels, spike times) is drawn from a
/// `StdRng` seeded with the generator's seed: the same seed gives the same
/// traces.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::prediction::{TraceFamily, TraceGenerator};
///
/// let a = TraceGenerator::new(42).generate(TraceFamily::RisingErrorRate);
/// let b = TraceGenerator::new(42).generate(TraceFamily::RisingErrorRate);
/// assert_eq!(a, b);
/// assert!(a.fails());
/// let batch = TraceGenerator::new(42).batch(6); // one of each family
/// assert_eq!(batch.iter().filter(|t| t.fails()).count(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct TraceGenerator {
    rng: StdRng,
    heartbeat_interval: Duration,
}

/// The per-trace baseline drawn for every family.
struct Baseline {
    jitter: f64,
    ops: u32,
    error_rate: f64,
    latency_p50: f64,
    latency_sigma: f64,
    temperature: (f64, f64),
    memory: (f64, f64),
}

/// How a trace departs from its baseline at one interval.
#[derive(Default)]
struct Departure {
    interval_factor: f64,
    error_rate: Option<f64>,
    latency_factor: f64,
    temperature_shift: f64,
    memory_shift: f64,
}

impl TraceGenerator {
    /// A generator seeded with `seed`, with a heartbeat interval of 1 s.
    ///
    /// # Examples
    ///
    /// ```
    /// let trace = steadfast::recovery::prediction::TraceGenerator::new(1).batch(1).remove(0);
    /// assert_eq!(trace.heartbeat_interval, std::time::Duration::from_secs(1));
    /// ```
    pub fn new(seed: u64) -> TraceGenerator {
        TraceGenerator {
            rng: StdRng::seed_from_u64(seed),
            heartbeat_interval: Duration::from_secs(1),
        }
    }

    /// The same generator with another heartbeat interval.
    ///
    /// # Errors
    ///
    /// [`PredictionError::OutOfRange`] for a zero interval.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::prediction::TraceGenerator;
    /// let g = TraceGenerator::new(1).with_heartbeat_interval(Duration::from_secs(5))?;
    /// assert!(TraceGenerator::new(1).with_heartbeat_interval(Duration::ZERO).is_err());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn with_heartbeat_interval(
        mut self,
        interval: Duration,
    ) -> Result<TraceGenerator, PredictionError> {
        if interval.is_zero() {
            return Err(PredictionError::OutOfRange {
                what: "heartbeat interval".to_owned(),
                expected: "greater than zero",
                value: 0.0,
            });
        }
        self.heartbeat_interval = interval;
        Ok(self)
    }

    /// `count` traces, cycling through [`TraceFamily::ALL`] (so half of
    /// them fail when `count` is a multiple of 6).
    ///
    /// # Examples
    ///
    /// ```
    /// let traces = steadfast::recovery::prediction::TraceGenerator::new(9).batch(12);
    /// assert_eq!(traces.len(), 12);
    /// ```
    pub fn batch(&mut self, count: usize) -> Vec<Trace> {
        (0..count)
            .map(|i| self.generate(TraceFamily::ALL[i % TraceFamily::ALL.len()]))
            .collect()
    }

    fn normal(&mut self) -> f64 {
        // Box-Muller
        let u1: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn baseline(&mut self) -> Baseline {
        Baseline {
            jitter: self.rng.random_range(0.02..0.08),
            ops: self.rng.random_range(6..=14),
            error_rate: self.rng.random_range(0.0..0.02),
            latency_p50: self.rng.random_range(0.005..0.05),
            latency_sigma: self.rng.random_range(0.2..0.4),
            temperature: (
                self.rng.random_range(45.0..70.0),
                self.rng.random_range(0.5..2.0),
            ),
            memory: (
                self.rng.random_range(0.2..0.6),
                self.rng.random_range(0.01..0.03),
            ),
        }
    }

    /// One trace of `family`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{TraceFamily, TraceGenerator};
    /// let trace = TraceGenerator::new(5).generate(TraceFamily::GaugeDrift);
    /// assert!(trace.onset.unwrap() < trace.failure_at.unwrap());
    /// ```
    pub fn generate(&mut self, family: TraceFamily) -> Trace {
        let mut base = self.baseline();
        let plan = self.plan(family, &mut base);
        let interval = self.heartbeat_interval.as_secs_f64();
        let mut events = Vec::new();
        let mut t = 0.0;
        let mut onset = None;
        for k in 0..plan.steps {
            if plan.onset == Some(k) {
                onset = Some(Duration::from_secs_f64(t));
            }
            let d = (plan.departure)(k);
            let jitter = (1.0 + base.jitter * self.normal()).max(0.2);
            let length = interval * jitter * d.interval_factor.max(0.2);
            let start = t;
            t += length;
            let error_rate = d.error_rate.unwrap_or(base.error_rate).clamp(0.0, 1.0);
            for op in 0..base.ops {
                let at = start + length * (f64::from(op) + 0.5) / f64::from(base.ops);
                let latency = base.latency_p50
                    * d.latency_factor.max(0.1)
                    * (base.latency_sigma * self.normal()).exp();
                let ok = self.rng.random::<f64>() >= error_rate;
                events.push(TraceEvent {
                    at: Duration::from_secs_f64(at),
                    signal: Signal::Outcome {
                        ok,
                        latency: Duration::from_secs_f64(latency.max(0.0)),
                    },
                });
            }
            let at = Duration::from_secs_f64(t);
            let temperature =
                base.temperature.0 + base.temperature.1 * (d.temperature_shift + self.normal());
            let memory = base.memory.0 + base.memory.1 * (d.memory_shift + self.normal());
            events.push(TraceEvent {
                at,
                signal: Signal::Gauge {
                    name: "cpu_temperature".to_owned(),
                    value: temperature,
                },
            });
            events.push(TraceEvent {
                at,
                signal: Signal::Gauge {
                    name: "memory_pressure".to_owned(),
                    value: memory,
                },
            });
            events.push(TraceEvent {
                at,
                signal: Signal::Heartbeat,
            });
        }
        let failure_at = family
            .fails()
            .then(|| Duration::from_secs_f64(t + interval));
        Trace {
            heartbeat_interval: self.heartbeat_interval,
            events,
            failure_at,
            onset,
            family: Some(family),
        }
    }
}

/// How one trace unfolds: its number of intervals, its onset (intervals)
/// and its departure from the baseline at each interval.
struct Plan {
    steps: u32,
    onset: Option<u32>,
    departure: Box<dyn Fn(u32) -> Departure>,
}

fn calm() -> Departure {
    Departure {
        interval_factor: 1.0,
        latency_factor: 1.0,
        ..Departure::default()
    }
}

impl TraceGenerator {
    fn plan(&mut self, family: TraceFamily, base: &mut Baseline) -> Plan {
        const NOISE_STEPS: u32 = 100;
        let onset: u32 = self.rng.random_range(30..=60);
        let lead: u32 = self.rng.random_range(8..=24);
        let shape: f64 = self.rng.random_range(0.7..1.5);
        let progress = move |k: u32| {
            if k < onset {
                0.0
            } else {
                (f64::from(k - onset + 1) / f64::from(lead))
                    .min(1.0)
                    .powf(shape)
            }
        };
        let failing = |departure: Box<dyn Fn(u32) -> Departure>| Plan {
            steps: onset + lead,
            onset: Some(onset),
            departure,
        };
        match family {
            TraceFamily::SlowingHeartbeat => {
                let end: f64 = self.rng.random_range(2.5..5.0);
                failing(Box::new(move |k| Departure {
                    interval_factor: 1.0 + (end - 1.0) * progress(k),
                    ..calm()
                }))
            }
            TraceFamily::RisingErrorRate => {
                let end: f64 = self.rng.random_range(0.35..0.8);
                let start = base.error_rate;
                failing(Box::new(move |k| Departure {
                    error_rate: Some(start + (end - start) * progress(k)),
                    latency_factor: 1.0 + progress(k),
                    ..calm()
                }))
            }
            TraceFamily::GaugeDrift => {
                let end: f64 = self.rng.random_range(8.0..14.0);
                let temperature = self.rng.random_bool(0.5);
                failing(Box::new(move |k| {
                    let shift = end * progress(k);
                    Departure {
                        temperature_shift: if temperature { shift } else { 0.0 },
                        memory_shift: if temperature { 0.0 } else { shift },
                        ..calm()
                    }
                }))
            }
            TraceFamily::Jitter => {
                base.jitter = self.rng.random_range(0.15..0.3);
                let count = self.rng.random_range(2..=4);
                let delays: Vec<(u32, f64)> = (0..count)
                    .map(|_| {
                        (
                            self.rng.random_range(10..NOISE_STEPS),
                            self.rng.random_range(1.5..2.2),
                        )
                    })
                    .collect();
                Plan {
                    steps: NOISE_STEPS,
                    onset: None,
                    departure: Box::new(move |k| Departure {
                        interval_factor: delays
                            .iter()
                            .find(|(at, _)| *at == k)
                            .map_or(1.0, |(_, f)| *f),
                        ..calm()
                    }),
                }
            }
            TraceFamily::ShortSpikes => {
                let count = self.rng.random_range(2..=4);
                let spikes: Vec<(u32, u32, f64, f64)> = (0..count)
                    .map(|_| {
                        (
                            self.rng.random_range(10..NOISE_STEPS - 2),
                            self.rng.random_range(1..=2),
                            self.rng.random_range(0.1..0.3),
                            self.rng.random_range(1.5..3.0),
                        )
                    })
                    .collect();
                Plan {
                    steps: NOISE_STEPS,
                    onset: None,
                    departure: Box::new(move |k| {
                        match spikes
                            .iter()
                            .find(|(at, len, _, _)| (*at..*at + *len).contains(&k))
                        {
                            Some((_, _, rate, latency)) => Departure {
                                error_rate: Some(*rate),
                                latency_factor: *latency,
                                ..calm()
                            },
                            None => calm(),
                        }
                    }),
                }
            }
            TraceFamily::WanderingGauge => {
                let start: u32 = self.rng.random_range(30..=60);
                let rise: u32 = self.rng.random_range(6..=15);
                let peak: f64 = self.rng.random_range(1.5..2.5);
                let temperature = self.rng.random_bool(0.5);
                Plan {
                    steps: NOISE_STEPS,
                    onset: None,
                    departure: Box::new(move |k| {
                        let shift = if k < start || k >= start + 2 * rise {
                            0.0
                        } else if k < start + rise {
                            peak * f64::from(k - start) / f64::from(rise)
                        } else {
                            peak * f64::from(start + 2 * rise - k) / f64::from(rise)
                        };
                        Departure {
                            temperature_shift: if temperature { shift } else { 0.0 },
                            memory_shift: if temperature { 0.0 } else { shift },
                            ..calm()
                        }
                    }),
                }
            }
        }
    }
}
