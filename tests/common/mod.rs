//! Helpers shared by the integration tests: the rule for tests that need a
//! server, unique names, the tracing set-up, and the capture of logs.
//!
//! Each test file that uses it says `mod common;`; a file uses only some of
//! the helpers, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod capture;
pub mod counting_alloc;
pub mod damaged_reads;

/// Whether these tests run in CI (`CI=true`, as `.ci/run` is started).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// The value of the server variable `name` (`STEADFAST_ETCD_ENDPOINTS`, say).
///
/// When it is missing or empty: in CI the test fails, naming the variable,
/// because a test that needs a server must never pass without one there;
/// elsewhere it prints that `test` skipped and returns `None`.
pub fn server_var(test: &str, name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ if in_ci() => panic!(
            "{test}: {name} is not set, and CI=true: start the services with \
             `source .ci/services.sh` (a test of a server never passes without it in CI)"
        ),
        _ => {
            eprintln!(
                "{test}: skipped: {name} not set (`source .ci/services.sh` starts the servers)"
            );
            None
        }
    }
}

/// A prefix (or name) that no other test, and no earlier run, uses:
/// `steadfast-tests/<test>-<pid>-<nanoseconds>`.
pub fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("steadfast-tests/{test}-{}-{nanos}", std::process::id())
}

/// Logs of the crate, shown with `RUST_LOG=steadfast=debug` and
/// `--nocapture`.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Every event waiting in `rx`, oldest first, without waiting for more; a
/// lagged or closed stream fails the test.
pub fn drain<T: Clone>(rx: &mut tokio::sync::broadcast::Receiver<T>) -> Vec<T> {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(event) => out.push(event),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("event stream broken: {e:?}"),
        }
    }
}
