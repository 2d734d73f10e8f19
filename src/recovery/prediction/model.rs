//! [`LogisticModel`]: online logistic regression over standardized
//! [`Features`], with L2 regularisation and a learning rate; serializable, so that a trained model can be saved and loaded.

use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::features::{Features, FEATURE_COUNT, FEATURE_NAMES};
use super::trace::Trace;
use super::PredictionError;

/// The format version written by [`LogisticModel::save`].
const FORMAT_VERSION: u32 = 1;
/// The largest magnitude of a standardized feature.
const STANDARD_LIMIT: f64 = 10.0;

/// One feature's part in a prediction: its value and how much it moved the
/// log-odds of failure (its weight times its standardized value).
///
/// # Examples
///
/// ```
/// use steadfast::recovery::prediction::Evidence;
/// let e = Evidence { feature: "silence", value: 2.0, contribution: 3.5 };
/// assert!(e.contribution > 0.0); // pushed towards failure
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// The feature's name (one of [`FEATURE_NAMES`]).
    pub feature: &'static str,
    /// Its value.
    pub value: f64,
    /// Its contribution to the log-odds of failure.
    pub contribution: f64,
}

/// Failure probability model: logistic regression on the [`Features`],
/// learnt online by stochastic gradient descent.
///
/// - **Standardisation.** Each feature is standardized with the running
///   mean and variance (Welford) of every example the model has learnt
///   from, and clamped to ±10 standard deviations.
/// - **Updates.** For an example `x` with label `y` (1: the member failed
///   within the horizon), `p = sigmoid(b + w·x)`, and
///   `w -= rate * ((p - y) * x + l2 * w)`, `b -= rate * (p - y)`. The
///   classes are not reweighted, so that the probability stays an estimate
///   of how often members with such features did fail within the horizon.
/// - **Horizon.** The model answers "will this member fail within
///   [`horizon`](Self::horizon)", the horizon its labels were made with. For
///   another horizon `h` the probability is converted as if failures came at
///   a constant rate: `1 - (1 - p)^(h / horizon)`.
/// - **No data, no guess.** Until the model has learnt from at least one
///   example of each class, [`probability`](Self::probability) is `None`
///   and the predictor predicts nothing.
///
/// # Default
///
/// - horizon: 1 minute
/// - learning rate: 0.05
/// - L2 weight: 1e-4
/// - epochs of [`train`](Self::train): 50
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::recovery::prediction::{LogisticModel, TraceGenerator};
///
/// let mut model = LogisticModel::new(Duration::from_secs(10))?;
/// let features = steadfast::recovery::prediction::Features::new([0.0; 11])?;
/// assert_eq!(model.probability(&features, Duration::from_secs(10))?, None); // untrained
///
/// let history = TraceGenerator::new(1).batch(12);
/// model.train(&history)?;
/// let p = model.probability(&features, Duration::from_secs(10))?.unwrap();
/// assert!((0.0..=1.0).contains(&p));
///
/// let saved = serde_json::to_string(&model).unwrap();
/// let loaded: LogisticModel = serde_json::from_str(&saved).unwrap();
/// assert_eq!(loaded.examples(), model.examples());
/// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LogisticModelRepr", into = "LogisticModelRepr")]
pub struct LogisticModel {
    horizon: Duration,
    learning_rate: f64,
    l2: f64,
    epochs: u32,
    weights: [f64; FEATURE_COUNT],
    bias: f64,
    count: u64,
    mean: [f64; FEATURE_COUNT],
    m2: [f64; FEATURE_COUNT],
    positives: u64,
    negatives: u64,
}

impl Default for LogisticModel {
    fn default() -> Self {
        LogisticModel {
            horizon: Duration::from_secs(60),
            learning_rate: 0.05,
            l2: 1e-4,
            epochs: 50,
            weights: [0.0; FEATURE_COUNT],
            bias: 0.0,
            count: 0,
            mean: [0.0; FEATURE_COUNT],
            m2: [0.0; FEATURE_COUNT],
            positives: 0,
            negatives: 0,
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl LogisticModel {
    /// An untrained model predicting failures within `horizon`.
    ///
    /// # Errors
    ///
    /// [`PredictionError::ZeroHorizon`] for a zero horizon.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::prediction::LogisticModel;
    /// let model = LogisticModel::new(Duration::from_secs(30))?;
    /// assert!(!model.is_trained());
    /// assert!(LogisticModel::new(Duration::ZERO).is_err());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn new(horizon: Duration) -> Result<LogisticModel, PredictionError> {
        check_horizon(horizon)?;
        Ok(LogisticModel {
            horizon,
            ..LogisticModel::default()
        })
    }

    /// The same model with another learning rate (finite, in `(0, 10]`).
    ///
    /// # Errors
    ///
    /// [`PredictionError::InvalidModel`] for a rate outside that range.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::LogisticModel;
    /// let model = LogisticModel::default().with_learning_rate(0.1)?;
    /// assert_eq!(model.learning_rate(), 0.1);
    /// assert!(LogisticModel::default().with_learning_rate(0.0).is_err());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn with_learning_rate(mut self, rate: f64) -> Result<LogisticModel, PredictionError> {
        self.learning_rate = rate;
        self.validate()?;
        Ok(self)
    }

    /// The same model with another L2 weight (finite, at least 0).
    ///
    /// # Errors
    ///
    /// [`PredictionError::InvalidModel`] for a negative or non-finite weight.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::LogisticModel;
    /// let model = LogisticModel::default().with_l2(0.01)?;
    /// assert_eq!(model.l2(), 0.01);
    /// assert!(LogisticModel::default().with_l2(-1.0).is_err());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn with_l2(mut self, l2: f64) -> Result<LogisticModel, PredictionError> {
        self.l2 = l2;
        self.validate()?;
        Ok(self)
    }

    /// The same model with another number of passes over the history in
    /// [`train`](Self::train) (at least 1).
    ///
    /// # Errors
    ///
    /// [`PredictionError::InvalidModel`] for 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::LogisticModel;
    /// assert_eq!(LogisticModel::default().with_epochs(5)?.epochs(), 5);
    /// assert!(LogisticModel::default().with_epochs(0).is_err());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn with_epochs(mut self, epochs: u32) -> Result<LogisticModel, PredictionError> {
        self.epochs = epochs;
        self.validate()?;
        Ok(self)
    }

    /// The horizon the model's labels are made with.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let model = steadfast::recovery::prediction::LogisticModel::default();
    /// assert_eq!(model.horizon(), Duration::from_secs(60));
    /// ```
    pub fn horizon(&self) -> Duration {
        self.horizon
    }

    /// The learning rate.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::prediction::LogisticModel::default().learning_rate(), 0.05);
    /// ```
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    /// The L2 weight.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::prediction::LogisticModel::default().l2(), 1e-4);
    /// ```
    pub fn l2(&self) -> f64 {
        self.l2
    }

    /// The passes over the history in [`train`](Self::train).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::prediction::LogisticModel::default().epochs(), 50);
    /// ```
    pub fn epochs(&self) -> u32 {
        self.epochs
    }

    /// Whether the model has learnt from at least one failure and one
    /// non-failure: until then it predicts nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{Features, LogisticModel};
    /// let mut model = LogisticModel::default();
    /// let calm = Features::new([0.0; 11])?;
    /// let mut bad = [0.0; 11];
    /// bad[2] = 3.0;
    /// model.learn(&calm, false);
    /// assert!(!model.is_trained());
    /// model.learn(&Features::new(bad)?, true);
    /// assert!(model.is_trained());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn is_trained(&self) -> bool {
        self.positives > 0 && self.negatives > 0
    }

    /// How many examples the model has learnt from: (failed within the
    /// horizon, did not).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::recovery::prediction::LogisticModel::default().examples(), (0, 0));
    /// ```
    pub fn examples(&self) -> (u64, u64) {
        (self.positives, self.negatives)
    }

    /// The weights, by feature name, in standardized units.
    ///
    /// # Examples
    ///
    /// ```
    /// let w = steadfast::recovery::prediction::LogisticModel::default().weights();
    /// assert_eq!(w[0], ("heartbeat_recent_ratio", 0.0));
    /// ```
    pub fn weights(&self) -> [(&'static str, f64); FEATURE_COUNT] {
        let mut out = [("", 0.0); FEATURE_COUNT];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = (FEATURE_NAMES[i], self.weights[i]);
        }
        out
    }

    fn standardize(&self, features: &Features) -> [f64; FEATURE_COUNT] {
        let mut x = [0.0; FEATURE_COUNT];
        for (i, (xi, value)) in x.iter_mut().zip(features.values()).enumerate() {
            let variance = if self.count > 1 {
                self.m2[i] / self.count as f64
            } else {
                0.0
            };
            *xi = if variance > 1e-18 {
                ((value - self.mean[i]) / variance.sqrt()).clamp(-STANDARD_LIMIT, STANDARD_LIMIT)
            } else {
                0.0
            };
        }
        x
    }

    fn observe_stats(&mut self, features: &Features) {
        self.count += 1;
        let n = self.count as f64;
        for (i, value) in features.values().iter().enumerate() {
            let delta = value - self.mean[i];
            self.mean[i] += delta / n;
            self.m2[i] += delta * (value - self.mean[i]);
        }
    }

    fn step(&mut self, features: &Features, failed: bool) {
        let x = self.standardize(features);
        let z = self.bias + self.weights.iter().zip(&x).map(|(w, x)| w * x).sum::<f64>();
        let gradient = sigmoid(z) - if failed { 1.0 } else { 0.0 };
        for (w, xi) in self.weights.iter_mut().zip(&x) {
            *w -= self.learning_rate * (gradient * xi + self.l2 * *w);
        }
        self.bias -= self.learning_rate * gradient;
    }

    fn count_label(&mut self, failed: bool) {
        if failed {
            self.positives += 1;
        } else {
            self.negatives += 1;
        }
    }

    /// Learns from one example: `features` of a member, and whether it
    /// failed within the [horizon](Self::horizon) after they were taken.
    /// The standardisation is updated first, then one gradient step is made.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{Features, LogisticModel};
    /// let mut model = LogisticModel::default();
    /// model.learn(&Features::new([0.0; 11])?, false);
    /// assert_eq!(model.examples(), (0, 1));
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn learn(&mut self, features: &Features, failed_within_horizon: bool) {
        self.observe_stats(features);
        self.count_label(failed_within_horizon);
        self.step(features, failed_within_horizon);
    }

    /// Learns from a batch of labelled examples: the standardisation takes
    /// in all of them first, then [`epochs`](Self::epochs) passes of
    /// gradient steps are made over them in an order shuffled with a fixed
    /// seed (the same examples always give the same model).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{Features, LogisticModel};
    /// let calm = Features::new([0.0; 11])?;
    /// let mut v = [0.0; 11];
    /// v[4] = 0.6;
    /// let failing = Features::new(v)?;
    /// let mut model = LogisticModel::default();
    /// model.fit(&[(calm, false), (failing, true)]);
    /// let h = model.horizon();
    /// assert!(model.probability(&failing, h)?.unwrap() > model.probability(&calm, h)?.unwrap());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn fit(&mut self, examples: &[(Features, bool)]) {
        for (features, failed) in examples {
            self.observe_stats(features);
            self.count_label(*failed);
        }
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut rng = StdRng::seed_from_u64(0x5eed_fa11);
        for _ in 0..self.epochs {
            order.shuffle(&mut rng);
            for &i in &order {
                let (features, failed) = &examples[i];
                self.step(features, *failed);
            }
        }
    }

    /// Trains on labelled traces: each trace is replayed, its features taken
    /// at every heartbeat interval until its failure, and each labelled
    /// "failed within the horizon" when its failure comes at most
    /// [`horizon`](Self::horizon) later; then [`fit`](Self::fit). Returns how
    /// many examples were learnt from.
    ///
    /// # Errors
    ///
    /// [`PredictionError::MalformedTrace`] for a trace whose events are out
    /// of order, come after its failure, or hold a non-finite value.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::prediction::{LogisticModel, TraceGenerator};
    /// let mut model = LogisticModel::new(Duration::from_secs(10))?;
    /// let examples = model.train(&TraceGenerator::new(3).batch(6))?;
    /// assert!(examples > 0);
    /// assert!(model.is_trained());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn train(&mut self, history: &[Trace]) -> Result<usize, PredictionError> {
        let mut examples = Vec::new();
        for (index, trace) in history.iter().enumerate() {
            trace.check(index)?;
            for (at, features) in trace.replay() {
                let failed = trace
                    .failure_at
                    .is_some_and(|failure| failure.saturating_sub(at) <= self.horizon);
                examples.push((features, failed));
            }
        }
        self.fit(&examples);
        Ok(examples.len())
    }

    /// The probability that a member with these features fails within
    /// `horizon`, or `None` while the model [is not
    /// trained](Self::is_trained).
    ///
    /// # Errors
    ///
    /// [`PredictionError::ZeroHorizon`] for a zero horizon.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::recovery::prediction::{Features, LogisticModel};
    /// let model = LogisticModel::default();
    /// let f = Features::new([0.0; 11])?;
    /// assert_eq!(model.probability(&f, Duration::from_secs(60))?, None);
    /// assert!(model.probability(&f, Duration::ZERO).is_err());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn probability(
        &self,
        features: &Features,
        horizon: Duration,
    ) -> Result<Option<f64>, PredictionError> {
        check_horizon(horizon)?;
        if !self.is_trained() {
            return Ok(None);
        }
        let x = self.standardize(features);
        let z = self.bias + self.weights.iter().zip(&x).map(|(w, x)| w * x).sum::<f64>();
        let p = sigmoid(z);
        let p = if horizon == self.horizon {
            p
        } else {
            let ratio = horizon.as_secs_f64() / self.horizon.as_secs_f64();
            1.0 - (1.0 - p).powf(ratio)
        };
        Ok(Some(p.clamp(0.0, 1.0)))
    }

    /// The features that pushed a prediction towards failure the most, at
    /// most `count`, largest first (only positive contributions).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{Features, LogisticModel};
    /// let model = LogisticModel::default();
    /// assert!(model.evidence(&Features::new([0.0; 11])?, 3).is_empty());
    /// # Ok::<(), steadfast::recovery::prediction::PredictionError>(())
    /// ```
    pub fn evidence(&self, features: &Features, count: usize) -> Vec<Evidence> {
        let x = self.standardize(features);
        let mut evidence: Vec<Evidence> = (0..FEATURE_COUNT)
            .map(|i| Evidence {
                feature: FEATURE_NAMES[i],
                value: features.values()[i],
                contribution: self.weights[i] * x[i],
            })
            .filter(|e| e.contribution > 0.0)
            .collect();
        evidence.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        evidence.truncate(count);
        evidence
    }

    /// Writes the model to `path` as JSON (through a temporary file renamed
    /// over it, so that a reader never sees half a model).
    ///
    /// # Errors
    ///
    /// [`PredictionError::ModelFile`] when the file cannot be written.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::LogisticModel;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), steadfast::recovery::prediction::PredictionError> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("model.json");
    /// LogisticModel::default().save(&path).await?;
    /// assert_eq!(LogisticModel::load(&path).await?, LogisticModel::default());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn save(&self, path: impl AsRef<Path>) -> Result<(), PredictionError> {
        let path = path.as_ref();
        let write_error = |source| PredictionError::ModelFile {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| write_error(std::io::Error::other(e)))?;
        let mut temp = path.as_os_str().to_owned();
        temp.push(".tmp");
        tokio::fs::write(&temp, json).await.map_err(write_error)?;
        tokio::fs::rename(&temp, path).await.map_err(write_error)
    }

    /// Reads a model written by [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// [`PredictionError::ModelFile`] when the file cannot be read,
    /// [`PredictionError::ModelFormat`] when it does not hold a valid model.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::prediction::{LogisticModel, PredictionError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let err = LogisticModel::load("/no/such/model.json").await.unwrap_err();
    /// assert!(matches!(err, PredictionError::ModelFile { .. }));
    /// # }
    /// ```
    pub async fn load(path: impl AsRef<Path>) -> Result<LogisticModel, PredictionError> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| PredictionError::ModelFile {
                action: "read",
                path: path.to_path_buf(),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|source| PredictionError::ModelFormat {
            path: path.to_path_buf(),
            source,
        })
    }

    fn validate(&self) -> Result<(), PredictionError> {
        check_horizon(self.horizon)?;
        let invalid =
            |parameter, reason: String| PredictionError::InvalidModel { parameter, reason };
        if !(self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.learning_rate <= 10.0)
        {
            return Err(invalid(
                "learning_rate",
                format!("must be within (0, 10], got {}", self.learning_rate),
            ));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(invalid(
                "l2",
                format!("must be a finite number at least 0, got {}", self.l2),
            ));
        }
        if self.epochs == 0 {
            return Err(invalid("epochs", "must be at least 1".to_owned()));
        }
        let all_finite = self
            .weights
            .iter()
            .chain(&self.mean)
            .chain(&self.m2)
            .chain(std::iter::once(&self.bias))
            .all(|v| v.is_finite());
        if !all_finite {
            return Err(invalid("weights", "must all be finite numbers".to_owned()));
        }
        Ok(())
    }
}

/// Refuses a zero horizon.
pub(crate) fn check_horizon(horizon: Duration) -> Result<(), PredictionError> {
    if horizon.is_zero() {
        Err(PredictionError::ZeroHorizon { horizon })
    } else {
        Ok(())
    }
}

/// The serialized form of a [`LogisticModel`], checked on load.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogisticModelRepr {
    format_version: u32,
    #[serde(with = "crate::serde_duration")]
    horizon: Duration,
    learning_rate: f64,
    l2: f64,
    epochs: u32,
    weights: [f64; FEATURE_COUNT],
    bias: f64,
    count: u64,
    mean: [f64; FEATURE_COUNT],
    m2: [f64; FEATURE_COUNT],
    positives: u64,
    negatives: u64,
}

impl From<LogisticModel> for LogisticModelRepr {
    fn from(m: LogisticModel) -> Self {
        LogisticModelRepr {
            format_version: FORMAT_VERSION,
            horizon: m.horizon,
            learning_rate: m.learning_rate,
            l2: m.l2,
            epochs: m.epochs,
            weights: m.weights,
            bias: m.bias,
            count: m.count,
            mean: m.mean,
            m2: m.m2,
            positives: m.positives,
            negatives: m.negatives,
        }
    }
}

impl TryFrom<LogisticModelRepr> for LogisticModel {
    type Error = PredictionError;

    fn try_from(r: LogisticModelRepr) -> Result<Self, PredictionError> {
        if r.format_version != FORMAT_VERSION {
            return Err(PredictionError::InvalidModel {
                parameter: "format_version",
                reason: format!(
                    "is {}, this version reads {FORMAT_VERSION}",
                    r.format_version
                ),
            });
        }
        let model = LogisticModel {
            horizon: r.horizon,
            learning_rate: r.learning_rate,
            l2: r.l2,
            epochs: r.epochs,
            weights: r.weights,
            bias: r.bias,
            count: r.count,
            mean: r.mean,
            m2: r.m2,
            positives: r.positives,
            negatives: r.negatives,
        };
        model.validate()?;
        Ok(model)
    }
}
