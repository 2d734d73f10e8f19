//! The exporter on 127.0.0.1 serves steadfast's metrics over HTTP: after
//! the workload, a scrape parses and every count equals what the workload
//! did.

use std::net::{Ipv4Addr, SocketAddr};

use steadfast_prometheus_example::{install, parse, scrape, workload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_what_the_workload_did() {
    let addr = install(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    let done = workload().await.unwrap();
    let body = scrape(addr, "/metrics").await.unwrap();
    let metrics = parse(&body).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| {
        metrics
            .value(name, labels)
            .unwrap_or_else(|| panic!("no single {name} {labels:?} in:\n{body}"))
    };

    // The families and their types.
    for (name, kind) in [
        ("fault_tolerance_breaker_calls_total", "counter"),
        ("fault_tolerance_breaker_rejections_total", "counter"),
        ("fault_tolerance_breaker_state", "gauge"),
        ("fault_tolerance_retry_attempts_total", "counter"),
        ("fault_tolerance_retry_give_ups_total", "counter"),
        ("fault_tolerance_checkpoints_total", "counter"),
        ("fault_tolerance_checkpoint_duration_seconds", "summary"),
        ("fault_tolerance_recoveries_total", "counter"),
        ("fault_tolerance_recovery_duration_seconds", "summary"),
        ("fault_tolerance_failures_detected_total", "counter"),
    ] {
        assert_eq!(
            metrics.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE of {name}"
        );
    }

    let payments = [("name", "payments")];
    let calls = |outcome| {
        value(
            "fault_tolerance_breaker_calls_total",
            &[("name", "payments"), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("success"), done.breaker_successes as f64);
    assert_eq!(calls("failure"), done.breaker_failures as f64);
    assert_eq!(
        value("fault_tolerance_breaker_rejections_total", &payments),
        done.breaker_rejections as f64
    );
    assert_eq!(
        value("fault_tolerance_breaker_state", &payments),
        1.0,
        "Open"
    );

    let rpc = [("name", "rpc")];
    assert_eq!(
        value("fault_tolerance_retry_attempts_total", &rpc),
        done.retry_attempts as f64
    );
    assert_eq!(
        value("fault_tolerance_retry_give_ups_total", &rpc),
        done.retry_give_ups as f64
    );

    let saves = |outcome| value("fault_tolerance_checkpoints_total", &[("outcome", outcome)]);
    assert_eq!(saves("success"), done.saves_committed as f64);
    assert_eq!(saves("failure"), done.saves_failed as f64);
    assert_eq!(
        value(
            "fault_tolerance_checkpoint_duration_seconds_count",
            &[("outcome", "success")]
        ),
        done.saves_committed as f64
    );

    assert_eq!(
        value(
            "fault_tolerance_recoveries_total",
            &[("outcome", "success")]
        ),
        done.recoveries as f64
    );
    assert_eq!(
        value("fault_tolerance_recovery_duration_seconds_count", &[]),
        done.recoveries as f64
    );
    assert!(done.failures_detected >= 1);
    assert_eq!(
        value(
            "fault_tolerance_failures_detected_total",
            &[("source", "recovery"), ("kind", "rank_failed")]
        ),
        done.failures_detected as f64
    );
}
