//! [`Chaos`]: latency, errors, wrong results and cancellations injected into
//! any async operation, on its own or as a [`Strategy`] of a
//! [`Pipeline`](crate::pipeline::Pipeline).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::config::ChaosConfig;
use super::error::{ChaosError, Dropped};
use super::record::{ChaosRecorder, FaultKind};
use super::switch::{ChaosSwitch, Dice};
use crate::pipeline::{Next, PipelineError, Strategy};
use crate::ConfigError;

type ErrorFactory<E> = Arc<dyn Fn() -> E + Send + Sync>;
type Mutation<T> = Arc<dyn Fn(T) -> T + Send + Sync>;

/// What one call suffers, drawn in a fixed order: latency, cancellation,
/// error, wrong result.
#[derive(Debug, Default)]
struct Plan {
    latency: Option<Duration>,
    drop: bool,
    error: bool,
    wrong: bool,
}

struct Inner<T, E> {
    config: ChaosConfig,
    switch: ChaosSwitch,
    recorder: ChaosRecorder,
    dice: Dice,
    error: Option<ErrorFactory<E>>,
    mutate: Option<Mutation<T>>,
}

/// Fault injection for any async operation: latency, errors from your own
/// error factory, wrong results from your own mutation of the `Ok` value,
/// and cancelled calls — each at the rate its [`ChaosConfig`] gives, drawn
/// from a generator seeded with the config's seed.
///
/// Run a call through it with [`run`](Self::run), or put it in a
/// [`Pipeline`](crate::pipeline::Pipeline) as a strategy
/// ([`PipelineBuilder::strategy`](crate::pipeline::PipelineBuilder::strategy)):
/// innermost, it hits each attempt, so the retries, breakers and timeouts
/// outside it are what the test exercises.
///
/// For each call, with the switch on, the faults are drawn in this order,
/// each only when its rate is above zero: a delay (slept on tokio's
/// clock), then a cancellation, then an error (the operation does not run),
/// then a wrong result (applied to a success). The same seed and the same
/// order of calls give the same faults; with the switch off, or every rate
/// at zero, a call goes straight through: no delay, no draw.
///
/// Clones share the generator, the switch and the recorder.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::chaos::{Chaos, ChaosConfig, FaultKind};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let chaos = Chaos::builder(ChaosConfig::builder().seed(7).errors(1.0).build()?)
///     .error_with(|| io::Error::new(io::ErrorKind::ConnectionReset, "injected"))
///     .build()?;
/// let result = chaos.run(|| async { Ok::<_, io::Error>(42) }).await;
/// assert!(result.is_err());
/// assert_eq!(chaos.recorder().count(FaultKind::Error), 1);
///
/// chaos.switch().turn_off(); // transparent from now on
/// assert_eq!(chaos.run(|| async { Ok::<_, io::Error>(42) }).await.unwrap(), 42);
/// # Ok(())
/// # }
/// ```
pub struct Chaos<T, E> {
    inner: Arc<Inner<T, E>>,
}

impl<T, E> Clone for Chaos<T, E> {
    fn clone(&self) -> Self {
        Chaos {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T, E> fmt::Debug for Chaos<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("config", &self.inner.config)
            .field("switch", &self.inner.switch)
            .field("recorder", &self.inner.recorder)
            .finish_non_exhaustive()
    }
}

impl<T, E> Chaos<T, E> {
    /// A builder injecting what `config` says.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{Chaos, ChaosConfig};
    /// let chaos: Chaos<u32, String> = Chaos::builder(ChaosConfig::default()).build()?;
    /// # let _ = chaos;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder(config: ChaosConfig) -> ChaosBuilder<T, E> {
        ChaosBuilder {
            switch: None,
            recorder: None,
            error: None,
            mutate: None,
            config,
        }
    }

    /// The configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{Chaos, ChaosConfig};
    /// let chaos: Chaos<(), ()> = Chaos::builder(ChaosConfig::builder().seed(3).build()?).build()?;
    /// assert_eq!(chaos.config().seed(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn config(&self) -> &ChaosConfig {
        &self.inner.config
    }

    /// The on/off switch; clones of it flip this wrapper.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{Chaos, ChaosConfig};
    /// let chaos: Chaos<(), ()> = Chaos::builder(ChaosConfig::default()).build()?;
    /// chaos.switch().turn_off();
    /// assert!(!chaos.switch().is_on());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn switch(&self) -> &ChaosSwitch {
        &self.inner.switch
    }

    /// The recorder of what was injected.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{Chaos, ChaosConfig};
    /// let chaos: Chaos<(), ()> = Chaos::builder(ChaosConfig::default()).build()?;
    /// assert_eq!(chaos.recorder().total(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn recorder(&self) -> &ChaosRecorder {
        &self.inner.recorder
    }

    /// Draws what the next call suffers; nothing when off.
    fn plan(&self) -> Plan {
        let inner = &*self.inner;
        if !inner.switch.is_on() {
            return Plan::default();
        }
        let c = &inner.config;
        let mut roll = inner.dice.roll();
        let latency = roll
            .chance(c.latency_rate())
            .then(|| roll.delay(c.latency_range().0, c.latency_range().1));
        let drop = roll.chance(c.drop_rate());
        let error = !drop && roll.chance(c.error_rate());
        let wrong = !drop && !error && roll.chance(c.wrong_result_rate());
        Plan {
            latency,
            drop,
            error,
            wrong,
        }
    }

    fn record(&self, kind: FaultKind, latency: Option<Duration>) {
        self.inner.recorder.record(kind, "call", "", latency);
    }

    /// Sleeps the planned delay, if any.
    async fn delay(&self, plan: &Plan) {
        if let Some(latency) = plan.latency {
            self.record(FaultKind::Latency, Some(latency));
            tokio::time::sleep(latency).await;
        }
    }

    /// Polls `call` for `drop_after` (never, when zero) and drops it.
    async fn cancel<F: Future>(&self, call: F) -> Dropped {
        let after = self.inner.config.drop_after();
        if !after.is_zero() {
            let _ = tokio::time::timeout(after, call).await;
        }
        self.record(FaultKind::Dropped, None);
        Dropped {
            operation: "call",
            after,
        }
    }

    fn injected_error(&self) -> Option<E> {
        let factory = self.inner.error.as_ref()?;
        self.record(FaultKind::Error, None);
        Some(factory())
    }

    fn mutated(&self, value: T) -> T {
        match &self.inner.mutate {
            Some(mutate) => {
                self.record(FaultKind::WrongResult, None);
                mutate(value)
            }
            None => value,
        }
    }

    /// Runs `operation` under chaos.
    ///
    /// # Errors
    ///
    /// [`ChaosError::Operation`] with the operation's error or an injected
    /// one; [`ChaosError::Dropped`] when the call was cancelled.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future drops the operation's future with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::chaos::{Chaos, ChaosConfig, ChaosError};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let config = ChaosConfig::builder()
    ///     .latency(1.0, Duration::from_millis(100))
    ///     .drops(1.0, Duration::from_millis(10))
    ///     .build()?;
    /// let chaos: Chaos<u8, String> = Chaos::builder(config).build()?;
    /// let started = tokio::time::Instant::now();
    /// let result = chaos
    ///     .run(|| async {
    ///         tokio::time::sleep(Duration::from_secs(1)).await;
    ///         Ok(1)
    ///     })
    ///     .await;
    /// assert!(matches!(result, Err(ChaosError::Dropped(_))));
    /// assert_eq!(started.elapsed(), Duration::from_millis(110));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run<F, Fut>(&self, operation: F) -> Result<T, ChaosError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let plan = self.plan();
        self.delay(&plan).await;
        if plan.drop {
            return Err(ChaosError::Dropped(self.cancel(operation()).await));
        }
        if plan.error
            && let Some(error) = self.injected_error()
        {
            return Err(ChaosError::Operation(error));
        }
        let result = operation().await.map_err(ChaosError::Operation)?;
        Ok(if plan.wrong {
            self.mutated(result)
        } else {
            result
        })
    }
}

/// Chaos in a pipeline: each call that reaches it may be delayed, fail
/// with an injected error ([`PipelineError::Operation`]), have its success
/// altered, or be cancelled; a cancelled call is reported as
/// [`PipelineError::TimedOut`] with `after` the time it was polled, the
/// error a pipeline gives a call it abandoned.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::chaos::{Chaos, ChaosConfig, FaultKind};
/// use steadfast::pipeline::Pipeline;
/// use steadfast::retry::RetryPolicy;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let chaos = Chaos::builder(ChaosConfig::builder().seed(1).errors(0.5).build()?)
///     .error_with(|| io::Error::from(io::ErrorKind::ConnectionReset))
///     .build()?;
/// let pipeline = Pipeline::builder()
///     .retry(RetryPolicy::builder().max_retries(20).build()?)
///     .strategy(chaos.clone())
///     .build()?;
/// let answer = pipeline.execute(|| async { Ok::<_, io::Error>("pong") }).await.unwrap();
/// assert_eq!(answer, "pong"); // the retry outlasted the injected errors
/// println!("{}", chaos.recorder().stats());
/// # Ok(())
/// # }
/// ```
impl<T: Send, E: Send> Strategy<T, E> for Chaos<T, E> {
    async fn execute<N: Next<T, E>>(&self, next: N) -> Result<T, PipelineError<E>> {
        let plan = self.plan();
        self.delay(&plan).await;
        if plan.drop {
            let dropped = self.cancel(next.call()).await;
            return Err(PipelineError::TimedOut {
                after: dropped.after,
            });
        }
        if plan.error
            && let Some(error) = self.injected_error()
        {
            return Err(PipelineError::Operation(error));
        }
        let result = next.call().await?;
        Ok(if plan.wrong {
            self.mutated(result)
        } else {
            result
        })
    }
}

/// Builds a [`Chaos`]: the config, and the error factory and the mutation
/// its rates need.
///
/// # Examples
///
/// ```
/// use steadfast::chaos::{Chaos, ChaosConfig, ChaosRecorder, ChaosSwitch};
///
/// let switch = ChaosSwitch::new(false);
/// let recorder = ChaosRecorder::with_log(64);
/// let chaos = Chaos::builder(ChaosConfig::builder().wrong_results(0.1).build()?)
///     .mutate_with(|n: u64| n + 1)
///     .switch(switch.clone())
///     .recorder(recorder.clone())
///     .build()?;
/// # let _: Chaos<u64, String> = chaos;
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[must_use]
pub struct ChaosBuilder<T, E> {
    config: ChaosConfig,
    switch: Option<ChaosSwitch>,
    recorder: Option<ChaosRecorder>,
    error: Option<ErrorFactory<E>>,
    mutate: Option<Mutation<T>>,
}

impl<T, E> fmt::Debug for ChaosBuilder<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T, E> ChaosBuilder<T, E> {
    /// The error an injected failure returns (needed when `error_rate` is
    /// above zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{Chaos, ChaosConfig};
    /// let chaos: Chaos<(), String> = Chaos::builder(ChaosConfig::builder().errors(1.0).build()?)
    ///     .error_with(|| "injected".to_string())
    ///     .build()?;
    /// # let _ = chaos;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn error_with(mut self, factory: impl Fn() -> E + Send + Sync + 'static) -> Self {
        self.error = Some(Arc::new(factory));
        self
    }

    /// How a wrong result alters a success (needed when
    /// `wrong_result_rate` is above zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{Chaos, ChaosConfig};
    /// let chaos: Chaos<Vec<u8>, ()> = Chaos::builder(ChaosConfig::builder().wrong_results(1.0).build()?)
    ///     .mutate_with(|mut v: Vec<u8>| { v.reverse(); v })
    ///     .build()?;
    /// # let _ = chaos;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn mutate_with(mut self, mutation: impl Fn(T) -> T + Send + Sync + 'static) -> Self {
        self.mutate = Some(Arc::new(mutation));
        self
    }

    /// A switch shared with other wrappers (default: a switch of its own,
    /// on when the config is `enabled`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{Chaos, ChaosConfig, ChaosSwitch};
    /// let switch = ChaosSwitch::new(true);
    /// let chaos: Chaos<(), ()> = Chaos::builder(ChaosConfig::default()).switch(switch.clone()).build()?;
    /// switch.turn_off();
    /// assert!(!chaos.switch().is_on());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn switch(mut self, switch: ChaosSwitch) -> Self {
        self.switch = Some(switch);
        self
    }

    /// A recorder shared with other wrappers (default: one of its own,
    /// without a log).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{Chaos, ChaosConfig, ChaosRecorder};
    /// let recorder = ChaosRecorder::new();
    /// let chaos: Chaos<(), ()> = Chaos::builder(ChaosConfig::default()).recorder(recorder).build()?;
    /// # let _ = chaos;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn recorder(mut self, recorder: ChaosRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Checks the config and that each rate above zero has what it needs.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`]: the config's own, `error_rate` above zero without
    /// [`error_with`](Self::error_with), `wrong_result_rate` above zero
    /// without [`mutate_with`](Self::mutate_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{Chaos, ChaosConfig};
    /// let err = Chaos::<(), String>::builder(ChaosConfig::builder().errors(0.5).build()?)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "error_rate");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn build(self) -> Result<Chaos<T, E>, ConfigError> {
        self.config.validate()?;
        if self.config.error_rate() > 0.0 && self.error.is_none() {
            return Err(ConfigError::new(
                "error_rate",
                "is above zero, but no error factory was given (`error_with`)",
            ));
        }
        if self.config.wrong_result_rate() > 0.0 && self.mutate.is_none() {
            return Err(ConfigError::new(
                "wrong_result_rate",
                "is above zero, but no mutation was given (`mutate_with`)",
            ));
        }
        let recorder = self.recorder.unwrap_or_default();
        recorder.seed_if_unset(self.config.seed());
        Ok(Chaos {
            inner: Arc::new(Inner {
                switch: self
                    .switch
                    .unwrap_or_else(|| ChaosSwitch::new(self.config.enabled())),
                recorder,
                dice: Dice::new(self.config.seed()),
                error: self.error,
                mutate: self.mutate,
                config: self.config,
            }),
        })
    }
}
