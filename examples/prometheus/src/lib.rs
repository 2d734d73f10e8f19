//! steadfast's metrics (feature `metrics`) served to Prometheus: the
//! exporter of `metrics-exporter-prometheus` installed with its own HTTP
//! listener on 127.0.0.1 ([`install`]), a workload that exercises a named
//! breaker, a named retry, checkpoint saves and a coordinated recovery
//! ([`workload`]), and what a scraper needs to read it back: a plain HTTP
//! GET over a `TcpStream` ([`scrape`]) and a parser of the text exposition
//! format ([`parse`]).
//!
//! `src/main.rs` runs it as a program; `tests/scrape.rs` checks the numbers
//! over HTTP; `benches/overhead.rs` measures what the metrics cost on the
//! hot paths.

use std::collections::BTreeMap;
use std::error::Error;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use steadfast::breaker::CircuitBreaker;
use steadfast::checkpoint::{
    CheckpointOptions, DistributedCheckpoint, MembershipFence, SaveOptions, ShardData,
};
use steadfast::coordinator::{InMemoryCoordinator, Membership};
use steadfast::metrics::RetryMetrics;
use steadfast::recovery::{
    RecoveryCoordinator, RecoveryCoordinatorConfig, RecoveryEvent, RecoveryStrategyKind,
};
use steadfast::retry::RetryPolicy;
use steadfast::storage::MemoryStorage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A boxed error, for the example's plumbing.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Installs the Prometheus exporter as the global recorder, serving
/// `/metrics` on `addr` (port 0: a free port), describes steadfast's
/// metrics, and returns the address it serves on.
///
/// Call it once per process, inside a tokio runtime, before building the
/// breakers and checkpoints whose metrics it should show.
///
/// # Errors
///
/// No free port, or the exporter could not be installed (a recorder was
/// already installed, or the port is taken).
pub fn install(addr: SocketAddr) -> Result<SocketAddr, BoxError> {
    let addr = if addr.port() == 0 {
        // The exporter binds when it is built and does not say the port it
        // got: take a free one from the system first.
        TcpListener::bind(addr)?.local_addr()?
    } else {
        addr
    };
    // Histograms are rendered as summaries (quantiles); `set_buckets` on the
    // builder would make them Prometheus histograms instead.
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()?;
    steadfast::metrics::describe();
    Ok(addr)
}

/// What [`workload`] did, to compare with what the exporter shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Done {
    /// Breaker `payments`: calls that succeeded.
    pub breaker_successes: u64,
    /// Breaker `payments`: calls that failed.
    pub breaker_failures: u64,
    /// Breaker `payments`: calls refused while Open.
    pub breaker_rejections: u64,
    /// Retry `rpc`: attempts.
    pub retry_attempts: u64,
    /// Retry `rpc`: give-ups.
    pub retry_give_ups: u64,
    /// Checkpoint saves that committed, every rank counted.
    pub saves_committed: u64,
    /// Checkpoint saves that failed.
    pub saves_failed: u64,
    /// Members that carried out a recovery.
    pub recoveries: u64,
    /// Failed ranks the recovery coordinators detected.
    pub failures_detected: u64,
}

/// Runs a named breaker, a named retry, checkpoint saves (one that commits
/// on every rank, one whose storage fails) and a coordinated recovery (a
/// job of 2 ranks and a standby loses rank 1), and says what happened.
///
/// # Errors
///
/// A step that should have worked did not.
pub async fn workload() -> Result<Done, BoxError> {
    let mut done = Done::default();

    // A breaker that opens after 2 failures in a row.
    let breaker = CircuitBreaker::builder()
        .name("payments")
        .failure_threshold(2)
        .recovery_timeout(Duration::from_secs(60))
        .build()?;
    for _ in 0..3 {
        breaker.call(|| async { Ok::<_, io::Error>(()) }).await?;
        done.breaker_successes += 1;
    }
    for _ in 0..2 {
        let failed = breaker
            .call(|| async { Err::<(), _>(io::Error::other("declined")) })
            .await;
        if failed.is_ok() {
            return Err("a failing call succeeded".into());
        }
        done.breaker_failures += 1;
    }
    if breaker
        .call(|| async { Ok::<_, io::Error>(()) })
        .await
        .is_err()
    {
        done.breaker_rejections += 1;
    }

    // A retry that succeeds at the second attempt, then one that gives up.
    let policy = RetryPolicy::builder()
        .max_retries(2)
        .initial_delay(Duration::from_millis(1))
        .build()?;
    let retry = RetryMetrics::new("rpc");
    let mut calls = 0;
    retry
        .retry(&policy, || {
            calls += 1;
            let n = calls;
            async move {
                if n < 2 {
                    Err(io::Error::from(io::ErrorKind::TimedOut))
                } else {
                    Ok(())
                }
            }
        })
        .await?;
    done.retry_attempts += 2;
    let gave_up = retry
        .retry(&policy, || async {
            Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset))
        })
        .await;
    done.retry_attempts += u64::from(gave_up.map_or_else(|e| e.attempts(), |()| 0));
    done.retry_give_ups += 1;

    // One rank alone: a save whose storage refuses every write.
    let storage = MemoryStorage::new();
    let single = DistributedCheckpoint::new(
        storage.clone(),
        InMemoryCoordinator::new(1).remove(0),
        RetryPolicy::builder()
            .max_retries(1)
            .initial_delay(Duration::from_millis(1))
            .build()?,
        CheckpointOptions::default(),
    );
    {
        use steadfast::storage::testing::Operation;
        storage.faults().fail_next(Operation::Put, 100);
        storage.faults().fail_next(Operation::PutStream, 100);
        let shard = ShardData::new().with_entry("weights", vec![0u8; 64]);
        if single
            .save("broken", &shard, SaveOptions::new())
            .await
            .is_ok()
        {
            return Err("a save on failing storage committed".into());
        }
        done.saves_failed += 1;
        storage.faults().clear();
    }

    recover(&mut done).await?;
    Ok(done)
}

/// A job of 2 ranks and a standby saves a checkpoint, loses rank 1, and
/// recovers: the standby takes rank 1 over.
async fn recover(done: &mut Done) -> Result<(), BoxError> {
    let config = RecoveryCoordinatorConfig::builder()
        .recovery_strategy(RecoveryStrategyKind::RestartFromCheckpoint)
        .quorum_size(1)
        .recovery_timeout(Duration::from_secs(30))
        .answer_window(Duration::from_millis(100))
        .build()?;
    let storage = MemoryStorage::new();
    let ranks = InMemoryCoordinator::new(2);
    let spare = ranks[0].add_standby("spare-0")?;
    let mut members = Vec::new();
    for handle in ranks.into_iter().chain([spare]) {
        let fence = MembershipFence::new(handle.clone());
        let ckpt = Arc::new(
            DistributedCheckpoint::new(
                storage.clone(),
                handle.clone(),
                RetryPolicy::default(),
                CheckpointOptions::default(),
            )
            .with_fence(fence.clone()),
        );
        let recovery = RecoveryCoordinator::builder(handle.clone())
            .config(config)
            .checkpoints(Arc::clone(&ckpt))
            .fence(fence)
            .on_failure(|_ctx| async { Ok(()) })
            .build();
        let events = recovery.subscribe();
        members.push((handle, ckpt, recovery, events));
    }
    for (_, _, recovery, _) in &members[..2] {
        recovery.establish_leader(Duration::from_secs(10)).await?;
    }
    let tasks: Vec<_> = members.iter().map(|m| m.2.start()).collect();
    let saves: Vec<_> = members[..2]
        .iter()
        .enumerate()
        .map(|(rank, (_, ckpt, _, _))| {
            let ckpt = Arc::clone(ckpt);
            tokio::spawn(async move {
                let shard = ShardData::new().with_entry(format!("state.{rank}"), vec![1u8; 64]);
                ckpt.save("step-1", &shard, SaveOptions::new().step(1))
                    .await
            })
        })
        .collect();
    for save in saves {
        save.await??;
        done.saves_committed += 1;
    }

    members[0].0.faults().kill(1);
    for (handle, _, _, events) in &mut members {
        if handle.member_id() == "rank-1" {
            continue;
        }
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(RecoveryEvent::FailureDetected { .. }) => done.failures_detected += 1,
                    Ok(RecoveryEvent::Recovered { .. }) => {
                        done.recoveries += 1;
                        return Ok(());
                    }
                    Ok(RecoveryEvent::GaveUp { reason }) => return Err(reason.into()),
                    Ok(_) => {}
                    Err(e) => return Err(BoxError::from(e)),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait).await??;
    }
    for task in tasks {
        task.stop().await;
    }
    // What the members said besides, the dead one's too.
    for (_, _, _, events) in &mut members {
        while let Ok(event) = events.try_recv() {
            match event {
                RecoveryEvent::FailureDetected { .. } => done.failures_detected += 1,
                RecoveryEvent::Recovered { .. } => done.recoveries += 1,
                _ => {}
            }
        }
    }
    Ok(())
}

/// GETs `path` from `addr` over HTTP/1.1 with a plain `TcpStream` and
/// returns the body of a `200 OK`.
///
/// # Errors
///
/// The connection failed, or the answer was not a `200 OK`.
pub async fn scrape(addr: SocketAddr, path: &str) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8(answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or("an HTTP answer without a blank line after its head")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("GET {path}: {status}").into());
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    Ok(if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    })
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut body: &str) -> Result<String, BoxError> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or("a chunk without its size")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("a chunk shorter than its size")?;
        out.push_str(chunk);
        body = rest.get(size..).unwrap_or("").trim_start_matches("\r\n");
    }
}

/// One sample of the text exposition format: a name, its labels, a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name, with its suffix (`_total`, `_bucket`, `_sum`...).
    pub name: String,
    /// The labels, by name.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// What a scrape holds: the type each metric family declared (`# TYPE`)
/// and every sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// `# TYPE name type`, by name.
    pub types: BTreeMap<String, String>,
    /// Every sample line, in order.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the sample `name` whose labels include every one of
    /// `labels`, if exactly one matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut matching = self.samples.iter().filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        });
        let first = matching.next()?;
        matching.next().is_none().then_some(first.value)
    }
}

/// Parses the Prometheus text exposition format (version 0.0.4): `# TYPE`
/// and `# HELP` comments, and sample lines `name{label="value",...} value
/// [timestamp]`, with the escapes `\\`, `\"` and `\n` in label values.
///
/// # Errors
///
/// A line that is none of these, with its number.
pub fn parse(text: &str) -> Result<Exposition, BoxError> {
    let mut out = Exposition::default();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what}: {line:?}", number + 1);
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE") {
                let name = words.next().ok_or_else(|| bad("a TYPE without a name"))?;
                let kind = words.next().ok_or_else(|| bad("a TYPE without a type"))?;
                out.types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .ok_or_else(|| bad("a sample without a value"))?;
        let name = &line[..name_end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(bad("a bad metric name").into());
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(inner).map_err(|e| bad(&e))?;
            labels = parsed;
            rest = after;
        }
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| bad("a sample without a value"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| bad("a value that is not a number"))?,
        };
        out.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// Parses `a="1",b="2"}` and returns the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, rest) = s.split_once('=').ok_or("a label without '='")?;
        let mut chars = rest
            .strip_prefix('"')
            .ok_or("a label value without quotes")?
            .chars();
        let mut value = String::new();
        loop {
            match chars.next().ok_or("an unclosed label value")? {
                '"' => break,
                '\\' => match chars.next().ok_or("an escape at the end")? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        labels.insert(key.trim().to_string(), value);
        s = chars.as_str().trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types_labels_escapes_and_special_values() {
        let text = "# HELP x_total Some help.\n# TYPE x_total counter\n\
                    x_total{name=\"a \\\"b\\\"\",outcome=\"ok\"} 3\n\
                    y_bucket{le=\"+Inf\"} 2 1700000000\ny_sum 0.5\nz NaN\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.types["x_total"], "counter");
        assert_eq!(parsed.value("x_total", &[("name", "a \"b\"")]), Some(3.0));
        assert_eq!(parsed.value("y_bucket", &[("le", "+Inf")]), Some(2.0));
        assert_eq!(parsed.value("y_sum", &[]), Some(0.5));
        assert!(parsed.value("z", &[]).unwrap().is_nan());
        assert!(parse("x_total{name=\"open 1\n").is_err());
        assert!(parse("bad-name 1\n").is_err());
    }

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            "abcde"
        );
    }
}
