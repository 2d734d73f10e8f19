//! The tracing spans of a [`Retry`](super::Retry) and of the pipeline's
//! [`RetryStrategy`](crate::pipeline::RetryStrategy): `steadfast.retry` for
//! the whole sequence and `steadfast.retry.attempt` for each attempt, its
//! child (the scheme is documented in [`crate::spans`]).
//!
//! The spans open at the first failure, not at the first poll: an attempt
//! that succeeds at once is not a retry sequence, and its path holds no
//! span code at all (nothing to test, nothing to store, nothing to drop),
//! so a retry that succeeds at once costs what it cost without spans and
//! allocates nothing. When attempt 1 fails, the sequence's span is opened
//! (a child of the current span) with the span of attempt 1, closed at once
//! with its outcome; every later attempt runs inside its own span. Only an
//! enabled sequence span is kept, boxed with the attempt's, in the
//! `Retrying` allocated at the first retry (a sequence that gives up at its
//! first failure holds them for that poll only): the future itself holds
//! nothing more than a name, and its drop glue stays that of one field, so
//! it still inlines. When the sequence span is disabled, no attempt span is
//! made either.

use std::time::Duration;

use tracing::field::Empty;
use tracing::Span;

use super::error::GiveUp;

/// The spans of one retry sequence while a subscriber traces it.
struct Traced {
    sequence: Span,
    /// The attempt in flight; `Span::none()` between attempts.
    attempt: Span,
    /// Whether the sequence's outcome is recorded; if not when dropped,
    /// the retry was cancelled.
    finished: bool,
}

impl Drop for Traced {
    fn drop(&mut self) {
        if !self.finished {
            self.attempt.record("outcome", "cancelled");
            self.sequence.record("outcome", "cancelled");
        }
    }
}

/// The spans of a [`Retry`](super::Retry): `None` unless a subscriber wants
/// the sequence's span. Dropped out of line, as `Armed` is.
#[derive(Default)]
pub(crate) struct Spans(Option<Box<Traced>>);

impl Drop for Spans {
    #[inline]
    fn drop(&mut self) {
        if let Some(traced) = self.0.take() {
            close(traced);
        }
    }
}

#[cold]
#[inline(never)]
fn close(traced: Box<Traced>) {
    drop(traced);
}

impl Spans {
    /// Attempt number `attempts` failed: after attempt 1, opens the
    /// sequence's span and the (already ended) span of attempt 1, if a
    /// subscriber wants them.
    #[inline]
    pub(crate) fn failed(name: Option<&str>, attempts: u32) -> Spans {
        if attempts == 1 {
            open(name)
        } else {
            Spans(None)
        }
    }

    /// Whether a subscriber traces this sequence.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.0.is_some()
    }

    /// Opens the span of attempt number `attempt`; returns it, to enter.
    #[inline]
    pub(crate) fn begin_attempt(&mut self, attempt: u32) -> Option<Span> {
        let traced = self.0.as_mut()?;
        begin_attempt(traced, attempt);
        Some(traced.attempt.clone())
    }

    /// The span of the attempt in flight (or just ended), to enter.
    #[inline]
    pub(crate) fn attempt(&self) -> Option<Span> {
        self.0
            .as_ref()
            .filter(|traced| !traced.attempt.is_none())
            .map(|traced| traced.attempt.clone())
    }

    /// The attempt after `failed` failed ones succeeded.
    #[inline]
    pub(crate) fn succeeded(&mut self, failed: u32) {
        if let Some(traced) = &mut self.0 {
            finish(traced, failed.saturating_add(1), "ok");
        }
    }

    /// The attempt in flight failed and is retried after `delay`.
    #[inline]
    pub(crate) fn retrying(&mut self, delay: Duration) {
        if let Some(traced) = &mut self.0 {
            retrying(traced, delay);
        }
    }

    /// The loop gave up after `attempts` attempts.
    #[inline]
    pub(crate) fn gave_up(&mut self, attempts: u32, reason: GiveUp) {
        if let Some(traced) = &mut self.0 {
            finish(traced, attempts, outcome(reason));
        }
    }
}

#[cold]
#[inline(never)]
fn open(name: Option<&str>) -> Spans {
    let sequence = tracing::info_span!(
        target: "steadfast::retry",
        "steadfast.retry",
        name,
        attempts = Empty,
        outcome = Empty,
    );
    if sequence.is_disabled() {
        return Spans(None);
    }
    let mut traced = Box::new(Traced {
        sequence,
        attempt: Span::none(),
        finished: false,
    });
    begin_attempt(&mut traced, 1);
    Spans(Some(traced))
}

#[cold]
#[inline(never)]
fn begin_attempt(traced: &mut Traced, attempt: u32) {
    traced.attempt = tracing::debug_span!(
        target: "steadfast::retry",
        parent: &traced.sequence,
        "steadfast.retry.attempt",
        attempt,
        outcome = Empty,
        delay_ms = Empty,
    );
}

#[cold]
#[inline(never)]
fn retrying(traced: &mut Traced, delay: Duration) {
    traced.attempt.record("outcome", "retry");
    traced.attempt.record(
        "delay_ms",
        u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
    );
    // Closes the attempt's span: the wait is the sequence's, not the attempt's.
    traced.attempt = Span::none();
}

#[cold]
#[inline(never)]
fn finish(traced: &mut Traced, attempts: u32, outcome: &'static str) {
    traced.attempt.record("outcome", outcome);
    traced.attempt = Span::none();
    traced.sequence.record("attempts", attempts);
    traced.sequence.record("outcome", outcome);
    traced.finished = true;
    // Closes the sequence's span now, not when the future is dropped.
    traced.sequence = Span::none();
}

/// The `outcome` field of a sequence that gave up.
fn outcome(reason: GiveUp) -> &'static str {
    match reason {
        GiveUp::NotTransient => "not_retryable",
        GiveUp::Exhausted => "exhausted",
        GiveUp::ElapsedBudget => "elapsed_budget",
        GiveUp::BudgetExhausted => "retry_budget",
    }
}
