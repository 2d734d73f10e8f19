//! [`FailurePredictor`]: per-member signal windows, a [`LogisticModel`],
//! labels derived as members live or fail, predictions, and the hooks
//! called when a member's probability of failure crosses a threshold.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::config::{PredictionConfig, LOGISTIC_MODEL};
use super::features::{Features, MemberSignals, MAX_GAUGES};
use super::hook::{check_threshold, Hook, PredictionHandle};
use super::model::{check_horizon, Evidence, LogisticModel};
use super::trace::Trace;
use super::PredictionError;
use crate::health::{AsMember, MemberId};

/// Feature snapshots kept per member for labels derived later.
const SNAPSHOT_LIMIT: usize = 512;
/// Features named as evidence in a prediction.
const EVIDENCE_COUNT: usize = 3;

/// A member's probability of failing within a horizon, with the features
/// that weighed most towards it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::prediction::FailurePredictor;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::recovery::prediction::PredictionError> {
/// let predictor = FailurePredictor::default();
/// predictor.observe_heartbeat(0usize, tokio::time::Instant::now());
/// // untrained: nothing is predicted
/// assert!(predictor.predict_failures(Duration::from_secs(60))?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PredictedFailure {
    /// The member.
    pub member: MemberId,
    /// The probability that it fails within `horizon`.
    pub probability: f64,
    /// The horizon.
    pub horizon: Duration,
    /// When the prediction was made.
    pub at: Instant,
    /// The features that pushed the probability up the most (at most 3,
    /// largest first).
    pub evidence: Vec<Evidence>,
    /// Every feature of the member at `at`.
    pub features: Features,
}

/// One member: its signals, and the snapshots of its features taken by
/// [`FailurePredictor::check_now`] and not labelled yet.
#[derive(Default)]
struct MemberState {
    signals: MemberSignals,
    snapshots: VecDeque<(Instant, Features)>,
}

struct State {
    model: LogisticModel,
    members: HashMap<MemberId, MemberState>,
    hooks: Vec<Hook>,
    learning: bool,
}

struct Inner {
    config: PredictionConfig,
    state: Mutex<State>,
}

/// Turns health signals per member into a probability of failure within a
/// horizon, learns as members live and fail, and hands the members it
/// expects to fail to registered hooks (for preemptive migration).
///
/// See the [module documentation](super) for the features and the model.
///
/// **Time.** Every observation carries its instant, a
/// [`tokio::time::Instant`] (pass `Instant::now()` as it happens, or the
/// instant a recorded signal was taken); [`predict_failures`](Self::predict_failures)
/// and [`check_now`](Self::check_now) judge at tokio's `Instant::now()`, so
/// that tests run on paused time, and
/// [`predict_failures_at`](Self::predict_failures_at) at an explicit
/// instant.
///
/// **Memory.** Per member: 64 heartbeat arrivals, 256 outcomes, 16 gauges
/// of 64 samples, and at most 512 unlabelled feature snapshots.
///
/// **Labels as it runs.** Each [`check_now`](Self::check_now) (the
/// evaluation task calls it every `prediction_interval`) takes a snapshot
/// of every member's features. A snapshot older than the model's horizon
/// plus one interval, of a member still alive, is learnt as "did not fail";
/// when a member is [reported failed](Self::report_failure), its snapshots
/// within the horizon before the failure are learnt as "failed".
///
/// The predictor is a handle: `Clone` shares it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::prediction::{FailurePredictor, LogisticModel, TraceGenerator};
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::recovery::prediction::PredictionError> {
/// let predictor = FailurePredictor::default();
/// let mut model = LogisticModel::new(Duration::from_secs(10))?;
/// model.train(&TraceGenerator::new(1).batch(30))?;
/// predictor.set_model(model);
///
/// let start = Instant::now();
/// // rank 0 beats every second; rank 1 too, then ever more slowly
/// let mut t = 0.0;
/// for s in 0..60u64 {
///     predictor.observe_heartbeat(1usize, start + Duration::from_secs_f64(t));
///     t += if s < 40 { 1.0 } else { 1.0 + (s - 40) as f64 * 0.2 };
/// }
/// for s in 0..=t as u64 {
///     predictor.observe_heartbeat(0usize, start + Duration::from_secs(s));
/// }
/// let now = start + Duration::from_secs_f64(t);
/// let predictions = predictor.predict_failures_at(Duration::from_secs(10), now)?;
/// assert_eq!(predictions[0].member, 1usize.into()); // most likely first
/// assert!(predictions[0].probability > predictions[1].probability);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FailurePredictor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FailurePredictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("FailurePredictor")
            .field("config", &self.inner.config)
            .field("members", &state.members.len())
            .field("hooks", &state.hooks.len())
            .field("trained", &state.model.is_trained())
            .finish()
    }
}

impl Default for FailurePredictor {
    fn default() -> Self {
        FailurePredictor::new(PredictionConfig::default(), LogisticModel::default())
    }
}

impl FailurePredictor {
    /// A predictor with `config` and `model`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::prediction::{FailurePredictor, LogisticModel, PredictionConfig};
    /// let predictor = FailurePredictor::new(
    ///     PredictionConfig::default(),
    ///     LogisticModel::new(Duration::from_secs(30))?,
    /// );
    /// assert_eq!(predictor.model().horizon(), Duration::from_secs(30));
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn new(config: PredictionConfig, model: LogisticModel) -> FailurePredictor {
        FailurePredictor {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    model,
                    members: HashMap::new(),
                    hooks: Vec::new(),
                    learning: true,
                }),
            }),
        }
    }

    /// A predictor as `config` says: with a fresh [`LogisticModel`] when
    /// `prediction_model` is `"logistic"`, otherwise with the model saved at
    /// that path.
    ///
    /// # Errors
    ///
    /// [`PredictionError::ModelFile`] or [`PredictionError::ModelFormat`]
    /// when the saved model cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{FailurePredictor, PredictionConfig};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), steadfast::recovery::prediction::PredictionError> {
    /// let predictor = FailurePredictor::from_config(&PredictionConfig::default()).await?;
    /// assert!(!predictor.model().is_trained());
    /// let missing = PredictionConfig::builder().prediction_model("/no/model.json").build().unwrap();
    /// assert!(FailurePredictor::from_config(&missing).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn from_config(
        config: &PredictionConfig,
    ) -> Result<FailurePredictor, PredictionError> {
        let model = if config.prediction_model() == LOGISTIC_MODEL {
            LogisticModel::default()
        } else {
            LogisticModel::load(config.prediction_model()).await?
        };
        Ok(FailurePredictor::new(config.clone(), model))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements: a panic elsewhere
        // does not leave it half-updated.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = steadfast::recovery::prediction::FailurePredictor::default();
    /// assert!(!p.config().prediction_enabled());
    /// ```
    pub fn config(&self) -> &PredictionConfig {
        &self.inner.config
    }

    /// A copy of the model as it is now (to save it, for example).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = steadfast::recovery::prediction::FailurePredictor::default();
    /// assert_eq!(p.model().examples(), (0, 0));
    /// ```
    pub fn model(&self) -> LogisticModel {
        self.lock().model.clone()
    }

    /// Replaces the model (a loaded or separately trained one).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::prediction::{FailurePredictor, LogisticModel};
    /// let p = FailurePredictor::default();
    /// p.set_model(LogisticModel::new(Duration::from_secs(5))?);
    /// assert_eq!(p.model().horizon(), Duration::from_secs(5));
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn set_model(&self, model: LogisticModel) {
        self.lock().model = model;
    }

    /// Trains the model on labelled traces (see [`LogisticModel::train`]);
    /// returns how many examples were learnt from.
    ///
    /// # Errors
    ///
    /// [`PredictionError::MalformedTrace`] for a trace that cannot be
    /// replayed (the model is then unchanged).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{FailurePredictor, TraceGenerator};
    /// let p = FailurePredictor::default();
    /// p.train(&TraceGenerator::new(4).batch(6))?;
    /// assert!(p.model().is_trained());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn train(&self, history: &[Trace]) -> Result<usize, PredictionError> {
        let mut model = self.model();
        let examples = model.train(history)?;
        self.lock().model = model;
        Ok(examples)
    }

    /// Turns on or off the labels derived as members live and fail (on by
    /// default): with learning off, [`check_now`](Self::check_now) and
    /// [`report_failure`](Self::report_failure) leave the model as it is
    /// and keep no snapshots (a model vetted offline, a test of the hooks). [`train`](Self::train)
    /// and [`learn`](Self::learn) still teach it.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let p = FailurePredictor::default();
    /// p.set_learning(false);
    /// p.observe_heartbeat(0usize, tokio::time::Instant::now());
    /// p.check_now().await;
    /// assert_eq!(p.report_failure(0usize, tokio::time::Instant::now()), 0);
    /// assert_eq!(p.model().examples(), (0, 0));
    /// # }
    /// ```
    pub fn set_learning(&self, enabled: bool) {
        self.lock().learning = enabled;
    }

    /// Learns from one labelled example (see [`LogisticModel::learn`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{FailurePredictor, Features};
    /// let p = FailurePredictor::default();
    /// p.learn(&Features::new([0.0; 11])?, false);
    /// assert_eq!(p.model().examples(), (0, 1));
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn learn(&self, features: &Features, failed_within_horizon: bool) {
        self.lock().model.learn(features, failed_within_horizon);
    }

    /// Records a heartbeat of `member` that arrived at `at` (one earlier
    /// than the member's last is taken as arriving with it). A member is
    /// known from its first observation on.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// let p = FailurePredictor::default();
    /// p.observe_heartbeat("cache", tokio::time::Instant::now());
    /// assert_eq!(p.members(), vec!["cache".into()]);
    /// ```
    pub fn observe_heartbeat(&self, member: impl AsMember, at: Instant) {
        self.with_member(member, |s| s.heartbeat(at));
    }

    /// Records the outcome of one operation of `member`: whether it
    /// succeeded, and how long it took.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// let p = FailurePredictor::default();
    /// p.observe_outcome(2usize, false, Duration::from_millis(40), tokio::time::Instant::now());
    /// let f = p.features(2usize, tokio::time::Instant::now()).unwrap();
    /// assert_eq!(f.get("error_rate_recent"), Some(1.0));
    /// ```
    pub fn observe_outcome(&self, member: impl AsMember, ok: bool, latency: Duration, at: Instant) {
        self.with_member(member, |s| s.outcome(ok, latency, at));
    }

    /// Records the phi of `member` as the caller's failure detector
    /// computed it (for example from the
    /// [`HealthMonitor`](crate::health::HealthMonitor)); while none is fed,
    /// phi is computed from the heartbeats.
    ///
    /// # Errors
    ///
    /// [`PredictionError::NotFinite`] or [`PredictionError::OutOfRange`]
    /// for a NaN, infinite or negative phi.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// let p = FailurePredictor::default();
    /// let now = tokio::time::Instant::now();
    /// p.observe_phi(0usize, 3.5, now)?;
    /// assert_eq!(p.features(0usize, now).unwrap().get("phi"), Some(3.5));
    /// assert!(p.observe_phi(0usize, -1.0, now).is_err());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn observe_phi(
        &self,
        member: impl AsMember,
        phi: f64,
        at: Instant,
    ) -> Result<(), PredictionError> {
        let member = member.into_member_id();
        if !phi.is_finite() {
            return Err(PredictionError::NotFinite {
                what: format!("phi of {member}"),
                value: phi,
            });
        }
        if phi < 0.0 {
            return Err(PredictionError::OutOfRange {
                what: format!("phi of {member}"),
                expected: "at least 0",
                value: phi,
            });
        }
        self.with_member(member, |s| s.phi(phi, at));
        Ok(())
    }

    /// Records a sample of the gauge `name` of `member` (a temperature, a
    /// memory pressure, a queue length...). Each gauge is compared with its
    /// own baseline, so any unit works.
    ///
    /// # Errors
    ///
    /// [`PredictionError::NotFinite`] for a NaN or infinite value,
    /// [`PredictionError::TooManyGauges`] past 16 gauges for one member.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// let p = FailurePredictor::default();
    /// let now = tokio::time::Instant::now();
    /// p.observe_gauge(0usize, "cpu_temperature", 61.5, now)?;
    /// assert!(p.observe_gauge(0usize, "cpu_temperature", f64::INFINITY, now).is_err());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn observe_gauge(
        &self,
        member: impl AsMember,
        name: &str,
        value: f64,
        at: Instant,
    ) -> Result<(), PredictionError> {
        let member = member.as_member();
        if !value.is_finite() {
            return Err(PredictionError::NotFinite {
                what: format!("gauge {name} of {member}"),
                value,
            });
        }
        let mut state = self.lock();
        let id = member.to_member_id();
        let entry = state.members.entry(id).or_default();
        if !entry.signals.has_room_for(name) {
            return Err(PredictionError::TooManyGauges {
                member: member.to_string(),
                name: name.to_owned(),
                limit: MAX_GAUGES,
            });
        }
        entry.signals.gauge(name, value, at);
        Ok(())
    }

    fn with_member(&self, member: impl AsMember, f: impl FnOnce(&mut MemberSignals)) {
        let member = member.into_member_id();
        f(&mut self.lock().members.entry(member).or_default().signals);
    }

    /// The members known, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// let p = FailurePredictor::default();
    /// assert!(p.members().is_empty());
    /// ```
    pub fn members(&self) -> Vec<MemberId> {
        let mut members: Vec<MemberId> = self.lock().members.keys().cloned().collect();
        members.sort();
        members
    }

    /// Forgets `member` and its signals, without learning from them (a
    /// member that left on purpose). Returns whether it was known.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// let p = FailurePredictor::default();
    /// p.observe_heartbeat(1usize, tokio::time::Instant::now());
    /// assert!(p.remove_member(1usize));
    /// assert!(!p.remove_member(1usize));
    /// ```
    pub fn remove_member(&self, member: impl AsMember) -> bool {
        let member = member.into_member_id();
        let mut state = self.lock();
        for hook in &mut state.hooks {
            hook.forget(&member);
        }
        state.members.remove(&member).is_some()
    }

    /// Reports that `member` failed at `at`: the snapshots of its features
    /// taken within the model's horizon before `at` are learnt as "failed",
    /// older ones as "did not fail", and the member is forgotten. Returns
    /// how many examples were learnt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let p = FailurePredictor::default();
    /// p.observe_heartbeat(0usize, Instant::now());
    /// p.check_now().await; // a snapshot of rank 0's features
    /// tokio::time::advance(Duration::from_secs(5)).await;
    /// assert_eq!(p.report_failure(0usize, Instant::now()), 1);
    /// assert_eq!(p.model().examples(), (1, 0));
    /// # }
    /// ```
    pub fn report_failure(&self, member: impl AsMember, at: Instant) -> usize {
        let member = member.into_member_id();
        let mut state = self.lock();
        for hook in &mut state.hooks {
            hook.forget(&member);
        }
        let Some(entry) = state.members.remove(&member) else {
            return 0;
        };
        let horizon = state.model.horizon();
        let mut learnt = 0;
        if !state.learning {
            return 0;
        }
        for (taken, features) in entry.snapshots {
            if taken > at {
                continue;
            }
            state
                .model
                .learn(&features, at.duration_since(taken) <= horizon);
            learnt += 1;
        }
        tracing::debug!(target: "steadfast::prediction", %member, learnt, "member failed");
        learnt
    }

    /// The features of `member` at `now`, if it is known.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// let p = FailurePredictor::default();
    /// assert!(p.features(0usize, tokio::time::Instant::now()).is_none());
    /// ```
    pub fn features(&self, member: impl AsMember, now: Instant) -> Option<Features> {
        let member = member.into_member_id();
        self.lock()
            .members
            .get(&member)
            .map(|m| m.signals.features(now))
    }

    /// The probability of failure within `horizon` of every known member at
    /// tokio's `Instant::now()`, most likely first. **A model with no
    /// training data predicts nothing**: the list is empty until the model
    /// [is trained](LogisticModel::is_trained).
    ///
    /// # Errors
    ///
    /// [`PredictionError::ZeroHorizon`] for a zero horizon.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::prediction::{FailurePredictor, PredictionError};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let p = FailurePredictor::default();
    /// assert!(p.predict_failures(Duration::from_secs(60)).unwrap().is_empty());
    /// assert!(matches!(p.predict_failures(Duration::ZERO), Err(PredictionError::ZeroHorizon { .. })));
    /// # }
    /// ```
    pub fn predict_failures(
        &self,
        horizon: Duration,
    ) -> Result<Vec<PredictedFailure>, PredictionError> {
        self.predict_failures_at(horizon, Instant::now())
    }

    /// [`predict_failures`](Self::predict_failures) at an explicit instant.
    ///
    /// # Errors
    ///
    /// [`PredictionError::ZeroHorizon`] for a zero horizon.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// let p = FailurePredictor::default();
    /// let now = tokio::time::Instant::now();
    /// assert!(p.predict_failures_at(Duration::from_secs(1), now)?.is_empty());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn predict_failures_at(
        &self,
        horizon: Duration,
        now: Instant,
    ) -> Result<Vec<PredictedFailure>, PredictionError> {
        check_horizon(horizon)?;
        let state = self.lock();
        predictions(&state, horizon, now)
    }

    /// Registers `handler`, called with the prediction of each member whose
    /// probability of failure within the model's horizon reaches
    /// `threshold` at a [`check_now`](Self::check_now): once per crossing,
    /// not again until the probability has fallen below the threshold and
    /// reached it again (or the member was removed and came back). Handlers
    /// are awaited one after the other, outside the predictor's lock; this
    /// is where a recovery coordinator hands a member over for migration.
    ///
    /// # Errors
    ///
    /// [`PredictionError::InvalidThreshold`] for a threshold outside
    /// `0..=1`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// let p = FailurePredictor::default();
    /// p.on_predicted_failure(0.8, |prediction| async move {
    ///     println!("migrating {} away ({:.0}%)", prediction.member, prediction.probability * 100.0);
    /// })?;
    /// assert!(p.on_predicted_failure(1.5, |_| async {}).is_err());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn on_predicted_failure<F, Fut>(
        &self,
        threshold: f64,
        handler: F,
    ) -> Result<(), PredictionError>
    where
        F: Fn(PredictedFailure) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        check_threshold(threshold)?;
        self.lock().hooks.push(Hook::new(threshold, handler));
        Ok(())
    }

    /// One evaluation at tokio's `Instant::now()`: takes a snapshot of every
    /// member's features (labelling the snapshots old enough as "did not
    /// fail"), predicts at the model's horizon, and calls the hooks of the
    /// members that crossed their threshold. Returns the predictions (empty
    /// while the model is untrained).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let p = FailurePredictor::default();
    /// p.observe_heartbeat(0usize, tokio::time::Instant::now());
    /// assert!(p.check_now().await.is_empty()); // untrained
    /// # }
    /// ```
    pub async fn check_now(&self) -> Vec<PredictedFailure> {
        let now = Instant::now();
        let mut calls = Vec::new();
        let predictions = {
            let mut state = self.lock();
            let state = &mut *state;
            let ripe = state.model.horizon() + self.inner.config.prediction_interval();
            let mut taken = Vec::with_capacity(state.members.len());
            for (member, entry) in state.members.iter_mut() {
                let features = entry.signals.features(now);
                taken.push((member.clone(), features));
                while let Some((taken, old)) = entry.snapshots.front().copied() {
                    if now.saturating_duration_since(taken) < ripe
                        && entry.snapshots.len() < SNAPSHOT_LIMIT
                    {
                        break;
                    }
                    entry.snapshots.pop_front();
                    if state.learning && now.saturating_duration_since(taken) >= ripe {
                        state.model.learn(&old, false);
                    }
                }
                if state.learning {
                    entry.snapshots.push_back((now, features));
                }
            }
            let horizon = state.model.horizon();
            let predictions = judge(&state.model, taken, horizon, now).unwrap_or_default();
            for hook in &mut state.hooks {
                hook.retain(|m| predictions.iter().any(|p| &p.member == m));
                for prediction in &predictions {
                    if hook.crosses(prediction) {
                        calls.push((hook.handler.clone(), prediction.clone()));
                    }
                }
            }
            predictions
        };
        for (handler, prediction) in calls {
            tracing::info!(
                target: "steadfast::prediction",
                member = %prediction.member,
                probability = prediction.probability,
                "failure predicted"
            );
            handler(prediction).await;
        }
        predictions
    }

    /// Starts the periodic evaluation: [`check_now`](Self::check_now) every
    /// `prediction_interval` (the first after one interval), until the
    /// returned handle is stopped or dropped, or every clone of the
    /// predictor is dropped.
    ///
    /// # Errors
    ///
    /// [`PredictionError::NoRuntime`] outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::FailurePredictor;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::recovery::prediction::PredictionError> {
    /// let handle = FailurePredictor::default().start()?;
    /// handle.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(&self) -> Result<PredictionHandle, PredictionError> {
        let predictor = Arc::downgrade(&self.inner);
        let period = self.inner.config.prediction_interval();
        PredictionHandle::spawn(move |mut stop| async move {
            let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    _ = ticker.tick() => {
                        let Some(inner) = predictor.upgrade() else { break };
                        FailurePredictor { inner }.check_now().await;
                    }
                }
            }
        })
    }
}

/// Every known member's prediction at `now`, most likely first; empty while
/// the model is untrained.
fn predictions(
    state: &State,
    horizon: Duration,
    now: Instant,
) -> Result<Vec<PredictedFailure>, PredictionError> {
    if !state.model.is_trained() {
        return Ok(Vec::new());
    }
    let taken = state
        .members
        .iter()
        .map(|(member, entry)| (member.clone(), entry.signals.features(now)))
        .collect();
    judge(&state.model, taken, horizon, now)
}

/// The predictions of `model` for the features `taken` of each member at
/// `now`, most likely first; empty while the model is untrained.
fn judge(
    model: &LogisticModel,
    taken: Vec<(MemberId, Features)>,
    horizon: Duration,
    now: Instant,
) -> Result<Vec<PredictedFailure>, PredictionError> {
    let mut out = Vec::new();
    for (member, features) in taken {
        if let Some(probability) = model.probability(&features, horizon)? {
            out.push(PredictedFailure {
                member,
                probability,
                horizon,
                at: now,
                evidence: model.evidence(&features, EVIDENCE_COUNT),
                features,
            });
        }
    }
    out.sort_by(|a, b| {
        b.probability
            .total_cmp(&a.probability)
            .then_with(|| a.member.cmp(&b.member))
    });
    Ok(out)
}
