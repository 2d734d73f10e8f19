//! [`Fallback`]: what a call returns when the rest of the pipeline fails.

use std::future::Future;

use super::error::PipelineError;
use super::strategy::{Next, Strategy};

/// What a call returns when the rest of the pipeline fails: a value
/// ([`value`](Self::value)), or the answer of an async closure that receives
/// the error ([`with`](Self::with)). [`when`](Self::when) limits it to some
/// errors; the others come through.
///
/// A fallback never hides a panic: it runs on errors only, and a panic in
/// the operation (or in a strategy) unwinds through it to the caller.
///
/// # Examples
///
/// ```
/// use std::io;
/// use steadfast::pipeline::{Fallback, Pipeline, PipelineError};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let pipeline = Pipeline::builder()
///     .fallback(Fallback::with(|error: PipelineError<io::Error>| async move {
///         eprintln!("serving the cached page: {error}");
///         Ok("cached page".to_string())
///     }))
///     .build()?;
///
/// let page = pipeline
///     .execute(|| async { Err(io::Error::from(io::ErrorKind::ConnectionRefused)) })
///     .await
///     .unwrap();
/// assert_eq!(page, "cached page");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Fallback<K, P = AnyError> {
    kind: K,
    handles: P,
}

/// A [`Fallback`] that returns a copy of a value.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{Fallback, FallbackValue};
/// let _fallback: Fallback<FallbackValue<u32>> = Fallback::value(0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FallbackValue<T>(T);

/// A [`Fallback`] that calls an async closure with the error.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{Fallback, FallbackWith, PipelineError};
///
/// let _fallback = Fallback::with(|_: PipelineError<std::io::Error>| async { Ok::<u8, std::io::Error>(0) });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FallbackWith<F>(F);

/// The default error filter of a [`Fallback`]: it handles every error.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{AnyError, Fallback, FallbackValue};
/// let _fallback: Fallback<FallbackValue<u8>, AnyError> = Fallback::value(1);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyError;

impl<T> Fallback<FallbackValue<T>> {
    /// Returns a clone of `value` when the rest of the pipeline fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Fallback, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let pipeline = Pipeline::builder().fallback(Fallback::value(vec![0u8])).build()?;
    /// let bytes = pipeline.execute(|| async { Err::<Vec<u8>, _>("down") }).await.unwrap();
    /// assert_eq!(bytes, [0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn value(value: T) -> Self {
        Fallback {
            kind: FallbackValue(value),
            handles: AnyError,
        }
    }
}

impl<F> Fallback<FallbackWith<F>> {
    /// Calls `fallback` with the error when the rest of the pipeline fails,
    /// and returns its answer. An error it returns comes out as
    /// [`PipelineError::FallbackFailed`], which also says what made it run.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Fallback, Pipeline, PipelineError, StoppedBy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let pipeline = Pipeline::builder()
    ///     .fallback(Fallback::with(|_: PipelineError<&str>| async { Err::<u8, _>("no cache") }))
    ///     .build()?;
    /// let err = pipeline.execute(|| async { Err("down") }).await.unwrap_err();
    /// assert_eq!(err.stopped_by(), StoppedBy::Fallback);
    /// assert_eq!(err.operation_error(), Some(&"no cache"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with(fallback: F) -> Self {
        Fallback {
            kind: FallbackWith(fallback),
            handles: AnyError,
        }
    }
}

impl<K, P> Fallback<K, P> {
    /// Runs the fallback only for the errors for which `handles` returns
    /// `true`; the others come through as they are.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{Fallback, Pipeline, PipelineError};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// // Serve a default only when the dependency was not even tried.
    /// let pipeline = Pipeline::builder()
    ///     .fallback(Fallback::value(0).when(|e: &PipelineError<&str>| e.is_rejection()))
    ///     .build()?;
    /// let err = pipeline.execute(|| async { Err::<u32, _>("bad request") }).await;
    /// assert!(err.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn when<Q>(self, handles: Q) -> Fallback<K, Q> {
        Fallback {
            kind: self.kind,
            handles,
        }
    }
}

/// Which errors a [`Fallback`] handles.
///
/// Implemented by [`AnyError`] and by predicates
/// `Fn(&PipelineError<E>) -> bool`.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::{AnyError, FallbackFilter, PipelineError};
/// assert!(AnyError.handles(&PipelineError::Operation("down")));
/// ```
pub trait FallbackFilter<E> {
    /// Whether the fallback runs for `error`.
    fn handles(&self, error: &PipelineError<E>) -> bool;
}

impl<E> FallbackFilter<E> for AnyError {
    #[inline]
    fn handles(&self, _: &PipelineError<E>) -> bool {
        true
    }
}

impl<E, Q: Fn(&PipelineError<E>) -> bool> FallbackFilter<E> for Q {
    fn handles(&self, error: &PipelineError<E>) -> bool {
        self(error)
    }
}

impl<T, E, P> Strategy<T, E> for Fallback<FallbackValue<T>, P>
where
    T: Clone + Send + Sync,
    E: Send,
    P: FallbackFilter<E> + Sync,
{
    async fn execute<N: Next<T, E>>(&self, next: N) -> Result<T, PipelineError<E>> {
        match next.call().await {
            Err(error) if self.handles.handles(&error) => {
                report(&error);
                Ok(self.kind.0.clone())
            }
            outcome => outcome,
        }
    }
}

impl<T, E, P, F, Fut> Strategy<T, E> for Fallback<FallbackWith<F>, P>
where
    T: Send,
    E: Send,
    P: FallbackFilter<E> + Sync,
    F: Fn(PipelineError<E>) -> Fut + Sync,
    Fut: Future<Output = Result<T, E>> + Send,
{
    async fn execute<N: Next<T, E>>(&self, next: N) -> Result<T, PipelineError<E>> {
        match next.call().await {
            Err(error) if self.handles.handles(&error) => {
                report(&error);
                let cause = error.stopped_by();
                let attempts = error.attempts();
                (self.kind.0)(error)
                    .await
                    .map_err(|error| PipelineError::FallbackFailed {
                        error,
                        cause,
                        attempts,
                    })
            }
            outcome => outcome,
        }
    }
}

/// The event of a fallback that runs.
#[cold]
fn report<E>(error: &PipelineError<E>) {
    tracing::debug!(
        target: "steadfast::pipeline",
        stopped_by = %error.stopped_by(),
        attempts = error.attempts(),
        "running the fallback"
    );
}
