//! Tests of the checkpoint manager's config: every key, defaults, round
//! trips and refusals.

use super::*;

const DAY: u64 = 86_400;

fn every_key(storage: &str) -> String {
    format!(
        r#"{{
            "checkpoint_interval": "5m",
            "checkpoint_every_n_steps": 1000,
            "checkpoint_retention": "7d",
            "checkpoint_keep_last": 5,
            "checkpoint_keep_every_n_steps": 10000,
            "checkpoint_keep_period": "1d",
            "checkpoint_compression": "zstd:1",
            "checkpoint_storage": "{storage}",
            "checkpoint_prefix": "run-1",
            "checkpoint_overlap": "queue",
            "checkpoint_save_timeout": "2m",
            "checkpoint_load_timeout": "10m"
        }}"#
    )
}

#[test]
fn parses_every_key() {
    let config: CheckpointManagerConfig = serde_json::from_str(&every_key("/var/ckpt")).unwrap();
    let expected = CheckpointManagerConfig {
        interval: Some(Duration::from_secs(300)),
        every_n_steps: Some(1000),
        retention: RetentionPolicy::keep_all()
            .keep_for(Duration::from_secs(7 * DAY))
            .keep_last(5)
            .keep_every_n_steps(10_000)
            .keep_one_per(Duration::from_secs(DAY)),
        compression: Compression::Zstd { level: 1 },
        storage: Some(StorageLocation::Local("/var/ckpt".into())),
        prefix: "run-1".into(),
        overlap: OverlapPolicy::Queue,
        save_timeout: Duration::from_secs(120),
        load_timeout: Some(Duration::from_secs(600)),
        ..CheckpointManagerConfig::default()
    };
    assert_eq!(config, expected);
}

#[test]
fn an_empty_config_is_the_default() {
    let config: CheckpointManagerConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config, CheckpointManagerConfig::default());
    assert_eq!(config.interval, None);
    assert_eq!(config.every_n_steps, None);
    assert!(config.retention.keeps_everything());
    assert_eq!(config.prefix, "checkpoints");
    assert_eq!(config.save_timeout, Duration::from_secs(300));
    assert!(config.validate().is_ok());
}

#[test]
fn round_trips() {
    let config: CheckpointManagerConfig = serde_json::from_str(&every_key("/var/ckpt")).unwrap();
    let json = serde_json::to_string(&config).unwrap();
    let back: CheckpointManagerConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
    assert!(json.contains(r#""checkpoint_retention":"7d""#), "{json}");
    assert!(
        json.contains(r#""checkpoint_compression":"zstd:1""#),
        "{json}"
    );

    let default = CheckpointManagerConfig::default();
    let json = serde_json::to_string(&default).unwrap();
    assert_eq!(
        json,
        r#"{"checkpoint_compression":"none","checkpoint_prefix":"checkpoints","checkpoint_overlap":"skip","checkpoint_save_timeout":"5m"}"#
    );
    let back: CheckpointManagerConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, default);
}

fn refused(json: &str) -> String {
    serde_json::from_str::<CheckpointManagerConfig>(json)
        .unwrap_err()
        .to_string()
}

#[test]
fn zero_values_are_refused_naming_the_key() {
    for (json, key) in [
        (r#"{"checkpoint_interval": "0s"}"#, "checkpoint_interval"),
        (
            r#"{"checkpoint_every_n_steps": 0}"#,
            "checkpoint_every_n_steps",
        ),
        (r#"{"checkpoint_retention": 0}"#, "checkpoint_retention"),
        (r#"{"checkpoint_keep_last": 0}"#, "checkpoint_keep_last"),
        (
            r#"{"checkpoint_keep_every_n_steps": 0}"#,
            "checkpoint_keep_every_n_steps",
        ),
        (
            r#"{"checkpoint_keep_period": "0ms"}"#,
            "checkpoint_keep_period",
        ),
        (
            r#"{"checkpoint_save_timeout": "0s"}"#,
            "checkpoint_save_timeout",
        ),
        (
            r#"{"checkpoint_load_timeout": "0s"}"#,
            "checkpoint_load_timeout",
        ),
    ] {
        let message = refused(json);
        assert!(message.contains(key), "{json}: {message}");
    }
}

#[test]
fn the_builder_refuses_what_deserialization_refuses() {
    let b = CheckpointManagerConfig::builder;
    let cases = [
        (b().interval(Duration::ZERO).build(), "checkpoint_interval"),
        (b().every_n_steps(0).build(), "checkpoint_every_n_steps"),
        (
            b().retention(RetentionPolicy::keep_all().keep_last(0))
                .build(),
            "checkpoint_keep_last",
        ),
        (
            b().retention(RetentionPolicy::keep_all().keep_for(Duration::ZERO))
                .build(),
            "checkpoint_retention",
        ),
        (
            b().compression(Compression::Zstd { level: 99 }).build(),
            "checkpoint_compression",
        ),
        (
            b().save_timeout(Duration::ZERO).build(),
            "checkpoint_save_timeout",
        ),
        (
            b().load_timeout(Duration::ZERO).build(),
            "checkpoint_load_timeout",
        ),
        (b().prefix("").build(), "checkpoint_prefix"),
        (b().prefix("a/../b").build(), "checkpoint_prefix"),
        (b().prefix("/abs").build(), "checkpoint_prefix"),
        (
            b().storage(StorageLocation::Local(std::path::PathBuf::new()))
                .build(),
            "checkpoint_storage",
        ),
    ];
    for (result, field) in cases {
        assert_eq!(result.unwrap_err().field(), field);
    }
}

#[test]
fn neither_interval_nor_steps_is_valid() {
    let config = CheckpointManagerConfig::builder().build().unwrap();
    assert_eq!((config.interval, config.every_n_steps), (None, None));
    let both = CheckpointManagerConfig::builder()
        .interval(Duration::from_millis(250))
        .every_n_steps(1)
        .build()
        .unwrap();
    assert_eq!(both.every_n_steps, Some(1));
}

#[test]
fn bad_values_are_refused() {
    assert!(refused(r#"{"checkpoint_compression": "lz4"}"#).contains("compression"));
    assert!(refused(r#"{"checkpoint_overlap": "drop"}"#).contains("drop"));
    assert!(refused(r#"{"checkpoint_interval": "soon"}"#).contains("soon"));
    assert!(refused(r#"{"checkpoint_storage": ""}"#).contains("checkpoint_storage"));
    assert!(refused(r#"{"checkpoint_prefix": "run/metadata.json"}"#).contains("checkpoint_prefix"));
    assert!(refused(r#"{"interval": "5m"}"#).contains("unknown field"));
}

#[cfg(not(feature = "object-store"))]
#[test]
fn a_storage_url_needs_the_object_store_feature() {
    assert!(refused(&every_key("s3://bucket/run")).contains("object-store"));
}

#[cfg(feature = "object-store")]
#[test]
fn urls_parse_and_round_trip_with_the_feature() {
    let config: CheckpointManagerConfig =
        serde_json::from_str(&every_key("s3://bucket/jobs/run-1")).unwrap();
    assert_eq!(
        config.storage,
        Some(StorageLocation::Url("s3://bucket/jobs/run-1".into()))
    );
    let back: CheckpointManagerConfig =
        serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(back, config);
}

#[test]
fn overlap_policies_parse_and_print() {
    for policy in [
        OverlapPolicy::Skip,
        OverlapPolicy::Wait,
        OverlapPolicy::Queue,
    ] {
        assert_eq!(policy.to_string().parse::<OverlapPolicy>().unwrap(), policy);
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(json, format!("\"{policy}\""));
    }
    assert_eq!(
        "WAIT".parse::<OverlapPolicy>().unwrap(),
        OverlapPolicy::Wait
    );
    assert_eq!(
        "later".parse::<OverlapPolicy>().unwrap_err().field(),
        "checkpoint_overlap"
    );
}

#[test]
fn types_are_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CheckpointManagerConfig>();
    assert_send_sync::<StorageLocation>();
}

#[test]
fn chunking_keys() {
    let read = |json: &str| serde_json::from_str::<CheckpointManagerConfig>(json);
    let on = read(r#"{"checkpoint_chunking": true, "checkpoint_digest": "blake3"}"#).unwrap();
    assert_eq!(on.chunking, Some(Chunking::default()));
    assert_eq!(on.digest, DigestAlgorithm::Blake3);
    let sized = read(r#"{"checkpoint_chunking": {"average_size": 65536}}"#).unwrap();
    assert_eq!(sized.chunking.unwrap().average_size(), 65536);
    assert_eq!(
        read(r#"{"checkpoint_chunking": false}"#).unwrap().chunking,
        None
    );
    // Round trip: the sizes are written out.
    let json = serde_json::to_string(&sized).unwrap();
    assert!(
        json.contains(r#""checkpoint_chunking":{"average_size":65536}"#),
        "{json}"
    );
    assert_eq!(read(&json).unwrap(), sized);
    for bad in [
        r#"{"checkpoint_chunking": {"average_size": 10}}"#,
        r#"{"checkpoint_chunking": "yes"}"#,
        r#"{"checkpoint_digest": "md5"}"#,
    ] {
        let err = read(bad).unwrap_err().to_string();
        assert!(
            err.contains("average_size") || err.contains("true, false") || err.contains("digest"),
            "{bad}: {err}"
        );
    }
}
