//! A tour of steadfast's resilience primitives in a few seconds, with no
//! set-up: a retry with jitter that succeeds after transient failures, a
//! circuit breaker that opens, rejects, half-opens and closes, a timeout that
//! fires, and a 4-rank barrier with a timeout.
//!
//! Run with `cargo run --example quickstart`. The `tracing` output shows
//! what the library does; set `RUST_LOG=steadfast=debug` for more.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use steadfast::breaker::{BreakerError, CircuitBreaker};
use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
use steadfast::retry::{Jitter, RetryPolicy, Retryable};
use steadfast::timeout::{TimeoutError, TimeoutHandler};
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "steadfast=info".into()),
        )
        .with_target(true)
        .compact()
        .init();

    retry_with_jitter().await?;
    circuit_breaker().await?;
    timeout_fires().await?;
    barrier_with_timeout().await?;
    println!("\nquickstart finished");
    Ok(())
}

/// A flaky service that resets the connection twice, then answers.
async fn retry_with_jitter() -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== 1. retry with jitter: a service that fails twice, then answers");
    let policy = RetryPolicy::builder()
        .max_retries(5)
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(400))
        .jitter(Jitter::Equal)
        .max_elapsed(Duration::from_secs(5))
        .build()?;
    let calls = AtomicU32::new(0);
    let flaky_service = || async {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= 2 {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("connection reset (call {n})"),
            ))
        } else {
            Ok(format!("hello after {n} calls"))
        }
    };
    let started = Instant::now();
    let answer = flaky_service
        .retry(&policy)
        .notify(|attempt, err: &io::Error, delay| {
            println!("   retry {attempt} in {delay:?} after: {err}");
        })
        .await?;
    println!("   answer: {answer:?} in {:?}", started.elapsed());

    let not_found = (|| async { Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)) })
        .retry(&policy)
        .await
        .unwrap_err();
    println!(
        "   a NotFound is not transient: {} attempt(s), reason: {}",
        not_found.attempts(),
        not_found.reason()
    );
    Ok(())
}

/// A dependency that is down for a while: the breaker opens, rejects without
/// calling it, lets a trial through after the recovery timeout, and closes.
async fn circuit_breaker() -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== 2. circuit breaker: open, reject, half-open, close");
    let breaker = CircuitBreaker::builder()
        .failure_threshold(3)
        .recovery_timeout(Duration::from_millis(300))
        .success_threshold(2)
        .build()?;
    let mut changes = breaker.subscribe();
    let reached = AtomicU32::new(0);
    let dependency = |up: bool| {
        reached.fetch_add(1, Ordering::SeqCst);
        async move {
            if up {
                Ok("pong")
            } else {
                Err(io::Error::from(io::ErrorKind::ConnectionRefused))
            }
        }
    };

    for i in 1..=3 {
        let result = breaker.call(|| dependency(false)).await;
        println!(
            "   call {i} while the dependency is down: {}",
            describe(&result)
        );
    }
    let before = reached.load(Ordering::SeqCst);
    let rejected = breaker.call(|| dependency(true)).await;
    println!("   call 4: {}", describe(&rejected));
    println!(
        "   the dependency was not called: {}",
        reached.load(Ordering::SeqCst) == before
    );
    if let Err(BreakerError::Rejected {
        retry_after: Some(wait),
        ..
    }) = rejected
    {
        println!("   waiting {wait:?} as the rejection says");
        tokio::time::sleep(wait).await;
    }
    for i in 5..=6 {
        let result = breaker.call(|| dependency(true)).await;
        println!(
            "   call {i} (trial): {} -> state {:?}",
            describe(&result),
            breaker.state()
        );
    }
    while let Ok(change) = changes.try_recv() {
        println!(
            "   event: {:?} -> {:?} ({:?})",
            change.from, change.to, change.reason
        );
    }
    Ok(())
}

fn describe<T: std::fmt::Debug>(result: &Result<T, BreakerError<io::Error>>) -> String {
    match result {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("error: {e}"),
    }
}

/// An operation that takes longer than it may.
async fn timeout_fires() -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== 3. timeout: a slow operation is cut off");
    let handler = TimeoutHandler::default();
    let fast = handler
        .run(Duration::from_millis(200), async { "fast answer" })
        .await?;
    println!("   within the limit: {fast:?}");
    let slow = handler
        .run(Duration::from_millis(200), async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "never seen"
        })
        .await;
    match slow {
        Err(err @ TimeoutError::Elapsed { .. }) => println!("   cut off: {err}"),
        other => println!("   unexpected: {other:?}"),
    }
    Ok(())
}

/// Four ranks meet at a barrier; then one of them never arrives, and the
/// others learn which one within the timeout.
async fn barrier_with_timeout() -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== 4. a 4-rank barrier with a timeout");
    let ranks = InMemoryCoordinator::new(4);
    let handler = TimeoutHandler::default();
    let limit = Some(Duration::from_millis(300));

    let started = Instant::now();
    let tasks: Vec<_> = ranks
        .iter()
        .cloned()
        .map(|rank| {
            tokio::spawn(async move {
                // Ranks arrive at different times.
                tokio::time::sleep(Duration::from_millis(20 * rank.rank() as u64)).await;
                handler.barrier(&rank, limit).await
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    println!(
        "   all 4 ranks passed the barrier in {:?}",
        started.elapsed()
    );

    ranks[0].faults().set_absent(3, true);
    println!("   rank 3 now never arrives");
    let started = Instant::now();
    let tasks: Vec<_> = ranks[..3]
        .iter()
        .cloned()
        .map(|rank| tokio::spawn(async move { (rank.rank(), handler.barrier(&rank, limit).await) }))
        .collect();
    for task in tasks {
        let (rank, result) = task.await?;
        match result {
            Ok(()) => println!("   rank {rank}: passed (unexpected)"),
            Err(err) => println!(
                "   rank {rank}: {err} (missing ranks: {:?})",
                err.missing_ranks()
            ),
        }
    }
    println!("   gave up after {:?}", started.elapsed());
    Ok(())
}
