//! Tests of `steadfast::config`: every key of the issue round-trips through
//! TOML and JSON, errors name their key (and line, or variable), the
//! environment wins over the file, feature-gated keys name their feature,
//! presets hold their documented values, and the example file parses.

use std::time::Duration;

use steadfast::breaker::SlidingWindow;
use steadfast::checkpoint::Compression;
use steadfast::config::{ConfigFileError, FaultToleranceConfig, Origin, Preset};
use steadfast::manager::{ReplicaLocation, StorageLocation};
use steadfast::recovery::RecoveryStrategyKind;
use steadfast::retry::Jitter;
use steadfast::storage::ConsistencyLevel;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Writes `config` as TOML and as JSON, reads both back, and checks that
/// they are `config` again; returns the two texts.
fn round_trip(config: &FaultToleranceConfig) -> (String, String) {
    let toml = config.to_toml_string().unwrap();
    assert_eq!(
        &FaultToleranceConfig::from_toml_str(&toml).unwrap(),
        config,
        "{toml}"
    );
    let json = config.to_json_string().unwrap();
    assert_eq!(
        &FaultToleranceConfig::from_json_str(&json).unwrap(),
        config,
        "{json}"
    );
    (toml, json)
}

/// The issue's keys with a checkpoint storage directory (no replicas).
const ISSUE_KEYS_WITH_STORAGE: &str = r#"
[fault_tolerance.checkpoint]
checkpoint_interval = "5m"
checkpoint_retention = "7d"
checkpoint_compression = "zstd:3"
checkpoint_storage = "/var/lib/job/checkpoints"

[fault_tolerance.replication]
replication_factor = 1
consistency_level = "all"
geo_distributed = false

[fault_tolerance.health]
heartbeat_interval = "2s"
failure_threshold = 4
detection_window = "1m"

[fault_tolerance.recovery]
recovery_strategy = "fastest_node"
recovery_timeout = "2m"
max_recovery_attempts = 7

[fault_tolerance.prediction]
prediction_enabled = true
prediction_model = "/models/failure.json"
prediction_interval = "30s"
"#;

/// The replication keys with three replicas in distinct domains.
const REPLICATED: &str = r#"
[fault_tolerance.replication]
replication_factor = 3
consistency_level = "quorum"
geo_distributed = true
replicas = [
    { location = "/mnt/a", domain = "a" },
    { location = "/mnt/b", domain = "b" },
    { location = "/mnt/c", domain = "c" },
]
"#;

fn check_issue_keys(config: &FaultToleranceConfig) {
    let c = &config.checkpoint;
    assert_eq!(c.interval, Some(secs(300)));
    assert_eq!(c.retention.max_age(), Some(secs(7 * 86_400)));
    assert_eq!(c.compression, Compression::Zstd { level: 3 });
    assert_eq!(
        c.storage,
        Some(StorageLocation::Local("/var/lib/job/checkpoints".into()))
    );
    assert_eq!(c.replication_factor, 1);
    assert_eq!(c.consistency_level, ConsistencyLevel::All);
    assert!(!c.geo_distributed);
    let h = &config.health;
    assert_eq!(h.heartbeat_interval(), secs(2));
    assert_eq!(h.failure_threshold(), 4);
    assert_eq!(h.detection_window(), secs(60));
    let r = &config.recovery;
    assert_eq!(r.recovery_strategy(), RecoveryStrategyKind::FastestNode);
    assert_eq!(r.recovery_timeout(), secs(120));
    assert_eq!(r.max_recovery_attempts(), 7);
    let p = &config.prediction;
    assert!(p.prediction_enabled());
    assert_eq!(p.prediction_model(), "/models/failure.json");
    assert_eq!(p.prediction_interval(), secs(30));
}

#[test]
fn every_key_of_the_issue_round_trips_through_toml_and_json() {
    let config = FaultToleranceConfig::from_toml_str(ISSUE_KEYS_WITH_STORAGE).unwrap();
    check_issue_keys(&config);
    let (toml, json) = round_trip(&config);
    for (key, value) in [
        ("checkpoint_interval", "\"5m\""),
        ("checkpoint_retention", "\"7d\""),
        ("checkpoint_compression", "\"zstd:3\""),
        ("checkpoint_storage", "\"/var/lib/job/checkpoints\""),
        ("consistency_level", "\"all\""),
        ("heartbeat_interval", "\"2s\""),
        ("failure_threshold", "4"),
        ("detection_window", "\"1m\""),
        ("recovery_strategy", "\"fastest_node\""),
        ("recovery_timeout", "\"2m\""),
        ("max_recovery_attempts", "7"),
        ("prediction_enabled", "true"),
        ("prediction_model", "\"/models/failure.json\""),
        ("prediction_interval", "\"30s\""),
    ] {
        assert!(toml.contains(&format!("{key} = {value}")), "{key}: {toml}");
        assert!(
            json.contains(&format!("\"{key}\": {value}")),
            "{key}: {json}"
        );
    }
    // The same file as JSON reads to the same configuration.
    assert_eq!(FaultToleranceConfig::from_json_str(&json).unwrap(), config);

    let replicated = FaultToleranceConfig::from_toml_str(REPLICATED).unwrap();
    let c = &replicated.checkpoint;
    assert_eq!(c.replication_factor, 3);
    assert_eq!(c.consistency_level, ConsistencyLevel::Quorum);
    assert!(c.geo_distributed);
    assert_eq!(
        c.replicas[1],
        ReplicaLocation::new(StorageLocation::Local("/mnt/b".into())).domain("b")
    );
    let (toml, json) = round_trip(&replicated);
    assert!(toml.contains("[fault_tolerance.replication]"), "{toml}");
    assert!(toml.contains("replication_factor = 3"), "{toml}");
    assert!(toml.contains("geo_distributed = true"), "{toml}");
    assert!(json.contains("\"replication_factor\": 3"), "{json}");
}

#[test]
fn the_issue_keys_may_be_written_flat_under_fault_tolerance() {
    let flat = r#"
        [fault_tolerance]
        checkpoint_interval = "5m"
        checkpoint_retention = "7d"
        checkpoint_compression = "zstd:3"
        checkpoint_storage = "/var/lib/job/checkpoints"
        replication_factor = 1
        consistency_level = "all"
        geo_distributed = false
        heartbeat_interval = "2s"
        failure_threshold = 4
        detection_window = "1m"
        recovery_strategy = "fastest_node"
        recovery_timeout = "2m"
        max_recovery_attempts = 7
        prediction_enabled = true
        prediction_model = "/models/failure.json"
        prediction_interval = "30s"
    "#;
    let config = FaultToleranceConfig::from_toml_str(flat).unwrap();
    check_issue_keys(&config);
    assert_eq!(
        config,
        FaultToleranceConfig::from_toml_str(ISSUE_KEYS_WITH_STORAGE).unwrap()
    );

    // Flat and in its section both: refused, naming both places.
    let err = FaultToleranceConfig::from_toml_str(
        "[fault_tolerance]\nheartbeat_interval = \"1s\"\n\n[fault_tolerance.health]\nheartbeat_interval = \"2s\"\n",
    )
    .unwrap_err();
    let ConfigFileError::Duplicate { key, other, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(key, "fault_tolerance.heartbeat_interval");
    assert_eq!(other, "fault_tolerance.health.heartbeat_interval");
}

#[test]
fn named_instances_are_read_and_built() {
    let config = FaultToleranceConfig::from_toml_str(
        r#"
        [fault_tolerance.breakers.payments]
        failure_threshold = 3
        sliding_window = { kind = "count", size = 100 }
        failure_rate_threshold = 0.5

        [fault_tolerance.retries.rpc]
        max_retries = 4
        initial_delay = "250ms"
        jitter = "full"

        [fault_tolerance.timeouts.db]
        default_timeout = "1m30s"

        [fault_tolerance.bulkheads.db]
        max_concurrent = 8

        [fault_tolerance.hedges.search]
        delay = "20ms"
        "#,
    )
    .unwrap();
    let payments = config.breaker("payments").unwrap();
    assert_eq!(payments.failure_threshold(), 3);
    assert_eq!(payments.sliding_window(), Some(SlidingWindow::count(100)));
    assert_eq!(payments.failure_rate_threshold(), Some(0.5));
    assert_eq!(config.build_breaker("payments").unwrap().config(), payments);
    let rpc = config.build_retry("rpc").unwrap();
    assert_eq!(rpc.max_retries(), 4);
    assert_eq!(rpc.initial_delay(), Duration::from_millis(250));
    assert_eq!(rpc.jitter(), Jitter::Full);
    assert_eq!(
        config.build_timeout("db").unwrap().default_timeout(),
        secs(90)
    );
    assert_eq!(
        config
            .build_bulkhead("db")
            .unwrap()
            .config()
            .max_concurrent(),
        8
    );
    assert_eq!(
        config.build_hedge("search").unwrap().config().delay(),
        Duration::from_millis(20)
    );
    round_trip(&config);

    let err = config.build_breaker("search").unwrap_err();
    let ConfigFileError::UnknownInstance { kind, known, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*kind, "breaker");
    assert_eq!(known, &["payments".to_string()]);
}

/// The key, origin and message of an error.
fn facts(err: &ConfigFileError) -> (&str, Origin, String) {
    (
        err.key().unwrap_or_else(|| panic!("no key in {err}")),
        err.origin().cloned().unwrap_or(Origin::Unknown),
        err.to_string(),
    )
}

#[test]
fn unknown_keys_bad_durations_and_wrong_types_name_the_key_and_line_in_toml() {
    for (text, key, line, says) in [
        (
            "[fault_tolerance.breakers.payments]\nfailure_treshold = 3\n",
            "fault_tolerance.breakers.payments.failure_treshold",
            2,
            "unknown key",
        ),
        (
            "[fault_tolerance]\nhelth = {}\n",
            "fault_tolerance.helth",
            2,
            "unknown key",
        ),
        (
            "[fault_tolerance.health]\n\nheartbeat_interval = \"soon\"\n",
            "fault_tolerance.health.heartbeat_interval",
            3,
            "soon",
        ),
        (
            "[fault_tolerance.retries.rpc]\ninitial_delay = \"5 parsecs\"\n",
            "fault_tolerance.retries.rpc.initial_delay",
            2,
            "parsecs",
        ),
        (
            "[fault_tolerance]\ncheckpoint_interval = \"-1s\"\n",
            "fault_tolerance.checkpoint_interval",
            2,
            "-1s",
        ),
        (
            "[fault_tolerance.health]\nfailure_threshold = \"many\"\n",
            "fault_tolerance.health.failure_threshold",
            2,
            "expected u32",
        ),
        (
            "[fault_tolerance.prediction]\nprediction_enabled = \"yes\"\n",
            "fault_tolerance.prediction.prediction_enabled",
            2,
            "expected a boolean",
        ),
        (
            "[fault_tolerance.breakers.payments]\nfailure_rate_threshold = 1.5\nsliding_window = { kind = \"count\", size = 10 }\n",
            "fault_tolerance.breakers.payments.failure_rate_threshold",
            2,
            "ratio",
        ),
        (
            "[fault_tolerance.recovery]\nmax_recovery_attempts = 0\n",
            "fault_tolerance.recovery.max_recovery_attempts",
            2,
            "at least 1",
        ),
        (
            "[fault_tolerance.recovery]\nrecovery_strategy = \"pray\"\n",
            "fault_tolerance.recovery.recovery_strategy",
            2,
            "pray",
        ),
        (
            "[fault_tolerance.replication]\nreplication_factor = 2\n",
            "fault_tolerance.replication.replication_factor",
            2,
            "no replica",
        ),
        (
            "[fault_tolerance.retries.rpc]\npreset = \"fast\"\n",
            "fault_tolerance.retries.rpc.preset",
            2,
            "fast",
        ),
    ] {
        let err = FaultToleranceConfig::from_toml_str(text).unwrap_err();
        let (got_key, origin, message) = facts(&err);
        assert_eq!(got_key, key, "{text}: {message}");
        assert_eq!(origin.line(), Some(line), "{text}: {message}");
        assert!(message.contains(says), "{text}: {message}");
        assert!(message.contains(key), "{message}");
        assert!(message.contains(&format!("line {line}")), "{message}");
    }
}

#[test]
fn errors_in_json_name_the_key_line_and_column() {
    let text = "{\"fault_tolerance\": {\n  \"breakers\": {\"payments\": {\n    \"recovery_timeout\": \"soon\"}}}}";
    let err = FaultToleranceConfig::from_json_str(text).unwrap_err();
    assert_eq!(
        err.key(),
        Some("fault_tolerance.breakers.payments.recovery_timeout")
    );
    assert_eq!(err.origin(), Some(&Origin::Text { line: 3, column: 5 }));

    let text = "{\"fault_tolerance\": {\n  \"health\": {\"heartbeat_intervall\": \"5s\"}}}";
    let err = FaultToleranceConfig::from_json_str(text).unwrap_err();
    assert!(matches!(err, ConfigFileError::UnknownKey { .. }), "{err}");
    assert_eq!(
        err.key(),
        Some("fault_tolerance.health.heartbeat_intervall")
    );
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().contains("`heartbeat_interval`"), "{err}");

    let text = "{\"fault_tolerance\": {\n  \"retries\": {\"rpc\": {\"max_retries\": -1}}}}";
    let err = FaultToleranceConfig::from_json_str(text).unwrap_err();
    assert_eq!(err.key(), Some("fault_tolerance.retries.rpc.max_retries"));
    assert_eq!(err.line(), Some(2));

    // A syntax error says where, as serde_json does.
    let err = FaultToleranceConfig::from_json_str("{\"fault_tolerance\": {\n  \"health\": }")
        .unwrap_err();
    assert!(matches!(err, ConfigFileError::Syntax { .. }), "{err}");
    assert_eq!(err.line(), Some(2));
}

#[test]
fn errors_of_a_file_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ft.toml");
    std::fs::write(
        &path,
        "[fault_tolerance.timeouts.db]\ndefault_timeout = \"0s\"\n",
    )
    .unwrap();
    let err = FaultToleranceConfig::from_path(&path).unwrap_err();
    assert_eq!(
        err.key(),
        Some("fault_tolerance.timeouts.db.default_timeout")
    );
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string().starts_with(&path.display().to_string()),
        "{err}"
    );

    let yaml = dir.path().join("ft.yaml");
    std::fs::write(&yaml, "").unwrap();
    assert!(matches!(
        FaultToleranceConfig::from_path(&yaml),
        Err(ConfigFileError::UnknownFormat { .. })
    ));
    assert!(matches!(
        FaultToleranceConfig::from_path(dir.path().join("missing.json")),
        Err(ConfigFileError::Io { .. })
    ));
}

#[test]
fn other_tables_of_the_document_are_the_applications() {
    let config = FaultToleranceConfig::from_toml_str(
        "[server]\nport = 8080\n\n[fault_tolerance.health]\nfailure_threshold = 2\n",
    )
    .unwrap();
    assert_eq!(config.health.failure_threshold(), 2);
    // ...but a document without the table is a mistake, not the defaults.
    let err =
        FaultToleranceConfig::from_toml_str("[fault_tolerence.health]\nfailure_threshold = 2\n")
            .unwrap_err();
    assert_eq!(err.key(), Some("fault_tolerance"));
    assert!(err.to_string().contains("fault_tolerence"), "{err}");
    assert_eq!(
        FaultToleranceConfig::from_toml_str("").unwrap(),
        FaultToleranceConfig::default()
    );
}

#[test]
fn the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fault_tolerance.toml");
    std::fs::write(
        &path,
        r#"
        [fault_tolerance]
        heartbeat_interval = "5s"

        [fault_tolerance.breakers.Payments-API]
        failure_threshold = 5
        recovery_timeout = "1m"

        [fault_tolerance.retries.rpc]
        preset = "rpc"
        "#,
    )
    .unwrap();
    let vars = [
        ("STEADFAST_HEALTH__HEARTBEAT_INTERVAL", "2s"),
        ("STEADFAST_BREAKERS__PAYMENTS_API__FAILURE_THRESHOLD", "9"),
        (
            "STEADFAST_BREAKERS__PAYMENTS_API__SLIDING_WINDOW",
            r#"{"kind": "count", "size": 20}"#,
        ),
        (
            "STEADFAST_BREAKERS__PAYMENTS_API__FAILURE_RATE_THRESHOLD",
            "0.5",
        ),
        ("STEADFAST_RETRIES__RPC__MAX_RETRIES", "6"),
        ("STEADFAST_RECOVERY_STRATEGY", "redistribute_work"),
        ("STEADFAST_PREDICTION__PREDICTION_ENABLED", "TRUE"),
        ("STEADFAST_REPLICATION__CONSISTENCY_LEVEL", "one"),
        ("HOME", "/root"),
    ];
    let config = FaultToleranceConfig::load_with_env(&path, vars).unwrap();
    // The variable wins over the flat key of the file.
    assert_eq!(config.health.heartbeat_interval(), secs(2));
    // It finds the file's instance whatever its spelling, and keeps the
    // file's other keys.
    let payments = config.breaker("Payments-API").unwrap();
    assert_eq!(payments.failure_threshold(), 9);
    assert_eq!(payments.recovery_timeout(), secs(60));
    assert_eq!(payments.sliding_window(), Some(SlidingWindow::count(20)));
    assert_eq!(payments.failure_rate_threshold(), Some(0.5));
    // Over a preset.
    let rpc = config.retry("rpc").unwrap();
    assert_eq!(rpc.max_retries(), 6);
    assert_eq!(rpc.initial_delay(), Duration::from_millis(50));
    assert_eq!(
        config.recovery.recovery_strategy(),
        RecoveryStrategyKind::RedistributeWork
    );
    assert!(config.prediction.prediction_enabled());
    assert_eq!(config.checkpoint.consistency_level, ConsistencyLevel::One);

    // The same over a config set in code.
    let from_code = FaultToleranceConfig::preset(Preset::Rpc)
        .with_env_overrides([("STEADFAST_TIMEOUTS__RPC__DEFAULT_TIMEOUT", "750ms")])
        .unwrap();
    assert_eq!(
        from_code.timeout("rpc").unwrap().default_timeout(),
        Duration::from_millis(750)
    );
    assert_eq!(from_code.retry("rpc"), Some(&Preset::Rpc.retry_policy()));

    // A file error keeps its line beside the environment.
    std::fs::write(&path, "[fault_tolerance.health]\n\nfailure_threshold = 0\n").unwrap();
    let err = FaultToleranceConfig::load_with_env(
        &path,
        [("STEADFAST_HEALTH__HEARTBEAT_INTERVAL", "2s")],
    )
    .unwrap_err();
    assert_eq!(err.line(), Some(3), "{err}");
}

#[test]
fn environment_errors_name_the_variable() {
    for (var, value, key, says) in [
        (
            "STEADFAST_HEALTH__HEARTBEAT_INTERVAL",
            "soon",
            "fault_tolerance.health.heartbeat_interval",
            "soon",
        ),
        (
            "STEADFAST_BREAKERS__PAYMENTS__FAILURE_RATE_THRESHOLD",
            "half",
            "fault_tolerance.breakers.payments.failure_rate_threshold",
            "expected f64",
        ),
        (
            "STEADFAST_HEALTH__HEARTBEAT_INTERVL",
            "5s",
            "fault_tolerance.health.heartbeat_intervl",
            "unknown key",
        ),
        (
            "STEADFAST_MAX_RECOVERY_ATTEMPTS",
            "-3",
            "fault_tolerance.max_recovery_attempts",
            "-3",
        ),
        (
            "STEADFAST_HEALTH____X",
            "1",
            "fault_tolerance.health..x",
            "`__`",
        ),
    ] {
        let err = FaultToleranceConfig::from_env_vars([(var, value)]).unwrap_err();
        let (got_key, origin, message) = facts(&err);
        assert_eq!(got_key, key, "{message}");
        assert_eq!(origin.variable(), Some(var), "{message}");
        assert!(message.contains(says), "{message}");
        assert!(message.contains(var), "{message}");
    }
    assert_eq!(
        FaultToleranceConfig::from_env_vars([("PATH", "/bin")]).unwrap(),
        FaultToleranceConfig::default()
    );
}

#[test]
fn presets_hold_their_documented_values() {
    let ms = Duration::from_millis;
    for (preset, retries, initial, max, jitter, elapsed, timeout) in [
        (
            Preset::Rpc,
            3,
            ms(50),
            secs(1),
            Jitter::Full,
            secs(5),
            secs(2),
        ),
        (
            Preset::Network,
            5,
            ms(200),
            secs(10),
            Jitter::Full,
            secs(60),
            secs(30),
        ),
        (
            Preset::Storage,
            6,
            ms(500),
            secs(30),
            Jitter::Equal,
            secs(600),
            secs(300),
        ),
    ] {
        let retry = preset.retry_policy();
        assert_eq!(retry.max_retries(), retries, "{preset}");
        assert_eq!(retry.initial_delay(), initial, "{preset}");
        assert_eq!(retry.max_delay(), max, "{preset}");
        assert_eq!(retry.factor(), 2.0, "{preset}");
        assert_eq!(retry.jitter(), jitter, "{preset}");
        assert_eq!(retry.max_elapsed(), Some(elapsed), "{preset}");
        assert_eq!(preset.timeout().default_timeout(), timeout, "{preset}");
        assert_eq!(preset.timeout().coordinator_grace(), secs(1), "{preset}");
    }
    for (preset, threshold, recovery, permits, successes, window, rate, slow) in [
        (
            Preset::Rpc,
            5,
            secs(10),
            1,
            1,
            Some(SlidingWindow::count(50)),
            Some(0.5),
            Some((secs(1), 0.8)),
        ),
        (
            Preset::Network,
            5,
            secs(30),
            2,
            2,
            Some(SlidingWindow::time(secs(60))),
            Some(0.5),
            Some((secs(5), 0.8)),
        ),
        (Preset::Storage, 3, secs(60), 1, 1, None, None, None),
    ] {
        let b = preset.breaker();
        assert_eq!(b.failure_threshold(), threshold, "{preset}");
        assert_eq!(b.recovery_timeout(), recovery, "{preset}");
        assert_eq!(b.half_open_permits(), permits, "{preset}");
        assert_eq!(b.success_threshold(), successes, "{preset}");
        assert_eq!(b.sliding_window(), window, "{preset}");
        assert_eq!(b.failure_rate_threshold(), rate, "{preset}");
        assert_eq!(
            b.slow_call_duration().zip(b.slow_call_rate_threshold()),
            slow,
            "{preset}"
        );
        if window.is_some() {
            assert_eq!(b.minimum_calls(), 20, "{preset}");
        }
    }

    // From code, and from a file with keys on top.
    let config = FaultToleranceConfig::preset(Preset::Network);
    assert_eq!(config.breaker("network"), Some(&Preset::Network.breaker()));
    assert_eq!(config.timeout("network"), Some(&Preset::Network.timeout()));
    round_trip(&config);
    let file = FaultToleranceConfig::from_toml_str(
        r#"
        [fault_tolerance.breakers.s3]
        preset = "storage"
        recovery_timeout = "2m"

        [fault_tolerance.timeouts.s3]
        preset = "Storage"
        "#,
    )
    .unwrap();
    let s3 = file.breaker("s3").unwrap();
    assert_eq!(s3.failure_threshold(), 3);
    assert_eq!(s3.recovery_timeout(), secs(120));
    assert_eq!(file.timeout("s3"), Some(&Preset::Storage.timeout()));
    let err =
        FaultToleranceConfig::from_toml_str("[fault_tolerance.bulkheads.db]\npreset = \"rpc\"\n")
            .unwrap_err();
    assert_eq!(err.key(), Some("fault_tolerance.bulkheads.db.preset"));
}

#[cfg(not(feature = "rate-limit"))]
#[test]
fn rate_limiters_without_the_feature_name_it() {
    let err = FaultToleranceConfig::from_toml_str(
        "\n[fault_tolerance.rate_limiters.api]\npermits = 10\n",
    )
    .unwrap_err();
    assert_eq!(err.feature(), Some("rate-limit"), "{err}");
    assert_eq!(err.key(), Some("fault_tolerance.rate_limiters"));
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().contains("`rate-limit`"), "{err}");
    let err =
        FaultToleranceConfig::from_env_vars([("STEADFAST_RATE_LIMITERS__API__PERMITS", "10")])
            .unwrap_err();
    assert_eq!(err.feature(), Some("rate-limit"), "{err}");
    // Plain serde names it too.
    let err = serde_json::from_str::<FaultToleranceConfig>(r#"{"rate_limiters": {}}"#).unwrap_err();
    assert!(err.to_string().contains("rate-limit"), "{err}");
}

#[cfg(feature = "rate-limit")]
#[test]
fn rate_limiters_with_the_feature_are_read_and_built() {
    let config = FaultToleranceConfig::from_toml_str(
        "[fault_tolerance.rate_limiters.api]\npermits = 10\nperiod = \"1s\"\n",
    )
    .unwrap();
    assert_eq!(config.rate_limiter("api").unwrap().permits(), 10);
    assert_eq!(
        config.build_rate_limiter("api").unwrap().config().period(),
        secs(1)
    );
    round_trip(&config);
    let err =
        FaultToleranceConfig::from_toml_str("[fault_tolerance.rate_limiters.api]\npermits = 0\n")
            .unwrap_err();
    assert_eq!(err.key(), Some("fault_tolerance.rate_limiters.api.permits"));
}

#[cfg(not(feature = "object-store"))]
#[test]
fn storage_urls_without_the_feature_name_it() {
    for text in [
        "[fault_tolerance.checkpoint]\ncheckpoint_storage = \"s3://bucket/run\"\n",
        "[fault_tolerance]\ncheckpoint_storage = \"s3://bucket/run\"\n",
        "[fault_tolerance.replication]\nreplication_factor = 2\nreplicas = [{ location = \"/a\" }, { location = \"gs://b\" }]\n",
    ] {
        let err = FaultToleranceConfig::from_toml_str(text).unwrap_err();
        assert_eq!(err.feature(), Some("object-store"), "{err}");
        assert!(err.line().is_some(), "{err}");
    }
    let err =
        FaultToleranceConfig::from_env_vars([("STEADFAST_CHECKPOINT_STORAGE", "s3://bucket/run")])
            .unwrap_err();
    assert_eq!(err.feature(), Some("object-store"), "{err}");
    assert_eq!(
        err.origin().and_then(Origin::variable),
        Some("STEADFAST_CHECKPOINT_STORAGE")
    );
}

#[cfg(feature = "object-store")]
#[test]
fn storage_urls_with_the_feature_are_read() {
    let config = FaultToleranceConfig::from_toml_str(
        "[fault_tolerance.checkpoint]\ncheckpoint_storage = \"s3://bucket/run\"\n",
    )
    .unwrap();
    assert_eq!(
        config.checkpoint.storage,
        Some(StorageLocation::Url("s3://bucket/run".into()))
    );
    round_trip(&config);
}

#[test]
fn the_example_file_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fault_tolerance.toml");
    let config = FaultToleranceConfig::from_path(path).unwrap();
    assert_eq!(config.checkpoint.interval, Some(secs(300)));
    assert_eq!(config.checkpoint.replication_factor, 3);
    assert!(config.checkpoint.geo_distributed);
    assert_eq!(config.health.failure_threshold(), 3);
    assert!(config.prediction.prediction_enabled());
    assert_eq!(
        config.breaker("search").unwrap().recovery_timeout(),
        secs(5)
    );
    assert_eq!(
        config.retry("checkpoint_storage").unwrap().max_retries(),
        10
    );
    for name in ["payments", "search"] {
        config.build_breaker(name).unwrap();
    }
    round_trip(&config);
    // The module documentation shows this very file.
    let docs = include_str!("../src/config/mod.rs");
    assert!(docs.contains("include_str!(\"../../examples/fault_tolerance.toml\")"));
}

#[test]
fn config_set_in_code_round_trips_with_every_section() {
    use steadfast::degradation::{HealthRules, ServiceLevel};
    use steadfast::health::{DetectionPolicy, HealthConfig, PhiAccrualConfig};
    use steadfast::pipeline::{BulkheadConfig, HedgeConfig};
    let config = FaultToleranceConfig::builder()
        .health(
            HealthConfig::builder()
                .detection(DetectionPolicy::PhiAccrual(PhiAccrualConfig::default()))
                .build()
                .unwrap(),
        )
        .degradation(
            HealthRules::builder()
                .on_unresponsive(ServiceLevel::ReadOnly)
                .build()
                .unwrap(),
        )
        .bulkhead(
            "db",
            BulkheadConfig::builder()
                .max_concurrent(3)
                .queue_timeout(Duration::from_millis(10))
                .build()
                .unwrap(),
        )
        .hedge(
            "search",
            HedgeConfig::builder().percentile(99.0).build().unwrap(),
        )
        .preset(Preset::Rpc)
        .preset(Preset::Network)
        .preset(Preset::Storage)
        .build()
        .unwrap();
    round_trip(&config);
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<FaultToleranceConfig>();
    assert_send_sync::<ConfigFileError>();
    assert_send_sync::<Origin>();
    assert_send_sync::<Preset>();
}
