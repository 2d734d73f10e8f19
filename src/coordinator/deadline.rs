//! Deadlines of coordinator calls, shared by every coordinator and by the
//! callers that bound them.
//!
//! Two helpers, one for each side of a call:
//!
//! - inside a coordinator, [`deadline_after`] turns the caller's `timeout`
//!   into the instant at which the call gives up and names the ranks that
//!   did not arrive (`Duration::MAX` means "as long as it takes");
//! - around a coordinator, [`bound_call`] awaits a call that was handed a
//!   timeout for at most that timeout plus a grace period: the coordinator
//!   reports its own timeout (with the missing ranks) first, and the bound
//!   only catches a coordinator that does not honour its timeout.
//!
//! [`TimeoutHandler`](crate::timeout::TimeoutHandler)'s coordinator
//! operations and the [`FaultTolerant`](super::FaultTolerant) wrapper both
//! bound their calls with [`bound_call`].

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::Abandoned;

/// How far away a deadline is put when `now + timeout` cannot be
/// represented: about 30 years.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The instant `timeout` from now, or one about 30 years away when that
/// cannot be represented (`Duration::MAX` means "wait as long as it
/// takes").
///
/// Every coordinator of this crate computes the deadline of a waiting
/// operation with it, once, when the call starts, so that everything the
/// call does (an injected delay, a retried request, the wait itself) counts
/// against the caller's timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::deadline_after;
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let now = Instant::now();
/// assert_eq!(deadline_after(Duration::from_secs(5)), now + Duration::from_secs(5));
/// assert!(deadline_after(Duration::MAX) > now);
/// # }
/// ```
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// Awaits `call`, a coordinator operation that was handed `timeout`, for at
/// most `timeout + grace`; [`Abandoned`] when it has not returned by then
/// (and `call` is dropped, which cancels it).
///
/// This is the one way the crate bounds a coordinator call. Which to use:
///
/// - call the coordinator directly when you trust it to honour its timeout
///   (both coordinators of this crate do: a timeout names the missing ranks
///   and breaks the round for every rank);
/// - [`TimeoutHandler::barrier`](crate::timeout::TimeoutHandler::barrier)
///   and its siblings when you want a default timeout and errors as
///   [`TimeoutError`](crate::timeout::TimeoutError)s, with no retries;
/// - [`FaultTolerant`](super::FaultTolerant) when transient failures
///   (`Unavailable`) should be retried and recorded in an
///   [`ErrorRecoveryManager`](crate::recovery::ErrorRecoveryManager);
/// - this function in a layer of your own.
///
/// All three bound the call the same way, with this function.
///
/// # Cancellation
///
/// Dropping the returned future drops `call`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{bound_call, Coordinator, InMemoryCoordinator};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ranks = InMemoryCoordinator::new(2);
/// let timeout = Duration::from_secs(5);
/// // Rank 1 never comes: the coordinator's own timeout names it, well
/// // within the grace.
/// let outcome = bound_call("barrier", timeout, Duration::from_secs(1), ranks[0].barrier(timeout)).await;
/// let err = outcome.expect("returned within its timeout").unwrap_err();
/// assert_eq!(err.missing_ranks(), &[1]);
///
/// // A call that never returns is abandoned at the timeout plus the grace.
/// let hung = bound_call("barrier", timeout, Duration::from_secs(1), std::future::pending::<()>()).await;
/// assert_eq!(hung.unwrap_err().after, Duration::from_secs(6));
/// # }
/// ```
pub async fn bound_call<F: Future>(
    operation: &'static str,
    timeout: Duration,
    grace: Duration,
    call: F,
) -> Result<F::Output, Abandoned> {
    let after = timeout.saturating_add(grace);
    match tokio::time::timeout_at(deadline_after(after), call).await {
        Ok(output) => Ok(output),
        Err(_) => Err(Abandoned { operation, after }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadline_after_saturates() {
        let now = Instant::now();
        assert!(deadline_after(Duration::MAX) > now);
        assert_eq!(deadline_after(Duration::ZERO), now);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bound_past_the_clock_is_decades_away() {
        let never = bound_call(
            "barrier",
            Duration::MAX,
            Duration::MAX,
            std::future::pending::<()>(),
        );
        tokio::select! {
            _ = never => panic!("an overflowing bound fired"),
            () = tokio::time::sleep(Duration::from_secs(20 * 365 * 86_400)) => {}
        }
    }
}
