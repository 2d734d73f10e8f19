//! The layout of a configuration file, between what is written and what the
//! sections read: the `[fault_tolerance]` table of a document, the flat keys
//! (`heartbeat_interval` right under `[fault_tolerance]`) and the
//! `[fault_tolerance.replication]` section moved into their sections,
//! `preset = "..."` in an instance expanded, and the keys that need a cargo
//! feature this build does not include refused, naming it.

use super::error::{ConfigFileError, Origin};
use super::presets::Preset;
use super::tree::{join, Node, Value};

/// The table every key lives under.
pub(crate) const ROOT: &str = "fault_tolerance";

/// The sections of `[fault_tolerance]`, as written.
pub(crate) const SECTIONS: &[&str] = &[
    "checkpoint",
    "replication",
    "health",
    "recovery",
    "prediction",
    "degradation",
    "breakers",
    "retries",
    "timeouts",
    "bulkheads",
    "hedges",
    "rate_limiters",
];

/// The tables of named instances.
pub(crate) const INSTANCE_KINDS: &[&str] = &[
    "breakers",
    "retries",
    "timeouts",
    "bulkheads",
    "hedges",
    "rate_limiters",
];

/// The keys of `[fault_tolerance.replication]`, each the checkpoint
/// manager's `checkpoint_<key>`.
pub(crate) const REPLICATION_KEYS: &[&str] = &[
    "replication_factor",
    "consistency_level",
    "geo_distributed",
    "replicas",
];

/// The keys that may be written right under `[fault_tolerance]`, and the
/// section each belongs to (besides every `checkpoint_*` key, which belongs
/// to `checkpoint`).
const FLAT_KEYS: &[(&str, &str)] = &[
    ("heartbeat_interval", "health"),
    ("failure_threshold", "health"),
    ("detection_window", "health"),
    ("recovery_strategy", "recovery"),
    ("recovery_timeout", "recovery"),
    ("max_recovery_attempts", "recovery"),
    ("replication_factor", "checkpoint"),
    ("consistency_level", "checkpoint"),
    ("geo_distributed", "checkpoint"),
    ("prediction_enabled", "prediction"),
    ("prediction_model", "prediction"),
    ("prediction_interval", "prediction"),
];

/// Where a flat key goes: its section and its key there.
fn flat_target(name: &str) -> Option<(&'static str, String)> {
    if name.starts_with("checkpoint_") {
        return Some(("checkpoint", name.to_string()));
    }
    FLAT_KEYS
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(key, section)| {
            let canonical = if *section == "checkpoint" {
                format!("checkpoint_{key}")
            } else {
                (*key).to_string()
            };
            (*section, canonical)
        })
}

fn invalid(node: &Node, message: impl Into<String>) -> ConfigFileError {
    ConfigFileError::Invalid {
        file: None,
        key: node.key.clone(),
        origin: node.origin.clone(),
        message: message.into(),
    }
}

/// The `[fault_tolerance]` table of a document. Other top-level tables
/// belong to the application and are left alone; a document with keys but
/// no `[fault_tolerance]` table is refused (a misspelt table name would
/// otherwise be ignored).
pub(crate) fn fault_tolerance_table(mut document: Node) -> Result<Node, ConfigFileError> {
    let Some(entries) = document.entries() else {
        return Err(invalid(
            &document,
            format!("the document must be a table holding `{ROOT}`"),
        ));
    };
    if entries.is_empty() {
        return Ok(Node::table(ROOT, Origin::Unknown));
    }
    match document.remove(ROOT) {
        Some(table) if table.entries().is_some() => Ok(table),
        Some(other) => Err(invalid(
            &other,
            format!("must be a table, got {}", other.kind()),
        )),
        None => {
            let found: Vec<String> = document
                .entries()
                .map(|e| e.iter().map(|(k, _)| format!("`{k}`")).collect())
                .unwrap_or_default();
            Err(ConfigFileError::UnknownKey {
                file: None,
                key: ROOT.to_string(),
                origin: Origin::Text { line: 1, column: 1 },
                expected: format!(
                    "the document has no `{ROOT}` table (it holds {})",
                    found.join(", ")
                ),
            })
        }
    }
}

/// Moves the flat keys and the replication section of `table` (a
/// `[fault_tolerance]` table) into their sections, refusing a setting
/// written both ways.
pub(crate) fn route(table: &mut Node) -> Result<(), ConfigFileError> {
    let Some(entries) = table.entries_mut() else {
        return Ok(());
    };
    let mut moves: Vec<(&'static str, String, Node)> = Vec::new();
    let mut kept = Vec::with_capacity(entries.len());
    for (name, node) in std::mem::take(entries) {
        if name == "replication" {
            let Value::Table(children) = node.value else {
                return Err(invalid(
                    &node,
                    format!("must be a table, got {}", node.kind()),
                ));
            };
            for (key, child) in children {
                if !REPLICATION_KEYS.contains(&key.as_str()) {
                    return Err(ConfigFileError::UnknownKey {
                        file: None,
                        key: child.key,
                        origin: child.origin,
                        expected: super::de::expected_keys(REPLICATION_KEYS),
                    });
                }
                moves.push(("checkpoint", format!("checkpoint_{key}"), child));
            }
        } else if SECTIONS.contains(&name.as_str()) {
            kept.push((name, node));
        } else if let Some((section, canonical)) = flat_target(&name) {
            moves.push((section, canonical, node));
        } else {
            kept.push((name, node));
        }
    }
    *entries = kept;
    for (section, canonical, node) in moves {
        if table.get(section).is_none() {
            let key = join(&table.key, section);
            if let Some(entries) = table.entries_mut() {
                entries.push((section.to_string(), Node::table(key, node.origin.clone())));
            }
        }
        let Some(target) = table
            .entries_mut()
            .and_then(|e| e.iter_mut().find(|(k, _)| k == section))
            .map(|(_, n)| n)
        else {
            continue;
        };
        if target.entries().is_none() {
            return Err(invalid(
                target,
                format!("must be a table, got {}", target.kind()),
            ));
        }
        let alias = canonical.trim_start_matches("checkpoint_");
        if let Some(first) = target.get(&canonical).or_else(|| target.get(alias)) {
            return Err(ConfigFileError::Duplicate {
                file: None,
                key: node.key,
                origin: node.origin,
                other: first.key.clone(),
                other_origin: first.origin.clone(),
            });
        }
        if let Some(entries) = target.entries_mut() {
            entries.push((canonical, node));
        }
    }
    Ok(())
}

/// Expands `preset = "..."` in every instance of `table` (a routed
/// `[fault_tolerance]` table): the instance becomes the preset's values,
/// with the instance's own keys replacing them.
pub(crate) fn expand_presets(table: &mut Node) -> Result<(), ConfigFileError> {
    let Some(entries) = table.entries_mut() else {
        return Ok(());
    };
    for (kind, instances) in entries.iter_mut() {
        if !INSTANCE_KINDS.contains(&kind.as_str()) {
            continue;
        }
        let Some(instances) = instances.entries_mut() else {
            continue;
        };
        for (_, instance) in instances.iter_mut() {
            let Some(preset_node) = instance.remove("preset") else {
                continue;
            };
            let Some(name) = preset_node.as_str() else {
                return Err(invalid(
                    &preset_node,
                    format!("must be a preset name, got {}", preset_node.kind()),
                ));
            };
            let preset: Preset = name
                .parse()
                .map_err(|e: crate::ConfigError| invalid(&preset_node, e.reason()))?;
            let values = match kind.as_str() {
                "retries" => serde_json::to_value(preset.retry_policy()),
                "breakers" => serde_json::to_value(preset.breaker()),
                "timeouts" => serde_json::to_value(preset.timeout()),
                _ => {
                    return Err(invalid(
                        &preset_node,
                        "presets exist for retries, breakers and timeouts only",
                    ))
                }
            }
            .map_err(|e| invalid(&preset_node, e.to_string()))?;
            let mut expanded = Node::from_json_value(values, &instance.key, &preset_node.origin);
            expanded.origin = instance.origin.clone();
            if let (Some(base), Value::Table(own)) = (
                expanded.entries_mut(),
                std::mem::replace(&mut instance.value, Value::Null),
            ) {
                for (key, node) in own {
                    match base.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, slot)) => *slot = node,
                        None => base.push((key, node)),
                    }
                }
            }
            *instance = expanded;
        }
    }
    Ok(())
}

/// Refuses the keys of a routed `[fault_tolerance]` table that need a cargo
/// feature this build does not include.
pub(crate) fn check_features(table: &Node) -> Result<(), ConfigFileError> {
    #[cfg(not(feature = "rate-limit"))]
    if let Some(node) = table.get("rate_limiters") {
        return Err(feature_missing(node, "rate-limit"));
    }
    #[cfg(not(feature = "object-store"))]
    if let Some(checkpoint) = table.get("checkpoint") {
        if let Some(storage) = checkpoint.get("checkpoint_storage")
            && storage.as_str().is_some_and(has_url_scheme)
        {
            return Err(feature_missing(storage, "object-store"));
        }
        let replicas = checkpoint
            .get("checkpoint_replicas")
            .or_else(|| checkpoint.get("replicas"));
        if let Some(Value::Array(replicas)) = replicas.map(|r| &r.value) {
            for replica in replicas {
                if let Some(location) = replica.get("location")
                    && location.as_str().is_some_and(has_url_scheme)
                {
                    return Err(feature_missing(location, "object-store"));
                }
            }
        }
    }
    let _ = table;
    Ok(())
}

#[cfg(not(all(feature = "rate-limit", feature = "object-store")))]
fn feature_missing(node: &Node, feature: &'static str) -> ConfigFileError {
    ConfigFileError::FeatureMissing {
        file: None,
        key: node.key.clone(),
        origin: node.origin.clone(),
        feature,
    }
}

/// Whether a storage location is a URL (`s3://bucket`), as
/// [`StorageLocation`](crate::manager::StorageLocation) reads it: a scheme
/// of two or more characters (so that `C:\` stays a path) before `://`.
#[cfg(not(feature = "object-store"))]
fn has_url_scheme(text: &str) -> bool {
    let Some((scheme, _)) = text.trim().split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    scheme.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Splits the canonical serialized form for writing: the checkpoint
/// section's replication keys go to `[fault_tolerance.replication]`.
pub(crate) fn split_replication(table: &mut serde_json::Map<String, serde_json::Value>) {
    let mut replication = serde_json::Map::new();
    if let Some(serde_json::Value::Object(checkpoint)) = table.get_mut("checkpoint") {
        for key in REPLICATION_KEYS {
            if let Some(value) = checkpoint.remove(&format!("checkpoint_{key}")) {
                replication.insert((*key).to_string(), value);
            }
        }
    }
    if !replication.is_empty() {
        table.insert(
            "replication".to_string(),
            serde_json::Value::Object(replication),
        );
    }
}
