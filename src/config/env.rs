//! Environment variables as a configuration tree.
//!
//! A variable `STEADFAST_<KEY>__<KEY>...` sets the key path below
//! `[fault_tolerance]` that its name spells, in lower case, with `__`
//! between the keys:
//!
//! | variable | key |
//! |---|---|
//! | `STEADFAST_HEALTH__HEARTBEAT_INTERVAL=5s` | `fault_tolerance.health.heartbeat_interval` |
//! | `STEADFAST_HEARTBEAT_INTERVAL=5s` | the same (a flat key) |
//! | `STEADFAST_BREAKERS__PAYMENTS__FAILURE_RATE_THRESHOLD=0.5` | `fault_tolerance.breakers.payments.failure_rate_threshold` |
//! | `STEADFAST_RETRIES__RPC__PRESET=rpc` | `fault_tolerance.retries.rpc.preset` |
//! | `STEADFAST_REPLICATION__REPLICAS=[{"location": "/a"}]` | `fault_tolerance.replication.replicas` (JSON) |
//!
//! A value is text, read as the key expects it: a number, `true` or
//! `false`, a duration (`250ms`, `1m30s`), a name. A value that starts with
//! `[` or `{` is read as JSON (a list of replicas, a sliding window). An
//! instance name matches the file's whatever its case, and `_` in the
//! variable matches `-` in the file (`PAYMENTS_API` is `payments-api`).

use super::error::{ConfigFileError, Origin};
use super::json_text;
use super::layout::ROOT;
use super::tree::{join, Node, Value};

/// The prefix of every variable read.
pub(crate) const PREFIX: &str = "STEADFAST_";

/// Reads the variables that start with [`PREFIX`] into a
/// `[fault_tolerance]` table, as written (not routed yet).
pub(crate) fn read<I, K, V>(vars: I) -> Result<Node, ConfigFileError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.as_ref().starts_with(PREFIX))
        .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
        .collect();
    // The process environment comes in no particular order: sorted, a
    // clash between two variables is reported the same way every time.
    vars.sort();
    let mut table = Node::table(ROOT, Origin::Unknown);
    for (variable, text) in vars {
        let origin = Origin::Env {
            variable: variable.clone(),
        };
        let path: Vec<String> = variable
            .get(PREFIX.len()..)
            .unwrap_or("")
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigFileError::Invalid {
                file: None,
                key: join(ROOT, &path.join(".")),
                origin,
                message: "a variable names keys separated by `__`, none of them empty \
                          (STEADFAST_HEALTH__HEARTBEAT_INTERVAL)"
                    .to_string(),
            });
        }
        let key = join(ROOT, &path.join("."));
        let node = if text.trim_start().starts_with(['[', '{']) {
            let at = origin.clone();
            json_text::read_at(&text, &key, &move |_| at.clone())?
        } else {
            Node {
                value: Value::EnvText(text),
                key,
                origin: origin.clone(),
            }
        };
        insert(&mut table, &path, node, &origin)?;
    }
    Ok(table)
}

/// Sets `path` in `table` to `node`, creating the tables on the way.
fn insert(
    table: &mut Node,
    path: &[String],
    node: Node,
    origin: &Origin,
) -> Result<(), ConfigFileError> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut current = table;
    for name in parents {
        let key = join(&current.key, name);
        if current.entries().is_none() {
            return Err(clash(current, origin));
        }
        let Some(entries) = current.entries_mut() else {
            return Ok(());
        };
        let i = match entries.iter().position(|(k, _)| k == name) {
            Some(i) => i,
            None => {
                entries.push((name.clone(), Node::table(key, origin.clone())));
                entries.len() - 1
            }
        };
        current = match entries.get_mut(i) {
            Some((_, child)) => child,
            None => return Ok(()),
        };
    }
    if current.entries().is_none() {
        return Err(clash(current, origin));
    }
    if let Some(first) = current.get(last) {
        return Err(ConfigFileError::Duplicate {
            file: None,
            key: node.key,
            origin: node.origin,
            other: first.key.clone(),
            other_origin: first.origin.clone(),
        });
    }
    if let Some(entries) = current.entries_mut() {
        entries.push((last.clone(), node));
    }
    Ok(())
}

/// Two variables where one sets a value and the other a key inside it.
fn clash(node: &Node, origin: &Origin) -> ConfigFileError {
    ConfigFileError::Duplicate {
        file: None,
        key: node.key.clone(),
        origin: origin.clone(),
        other: node.key.clone(),
        other_origin: node.origin.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_key_paths_and_json_values_trees() {
        let table = read([
            ("STEADFAST_BREAKERS__PAYMENTS__FAILURE_THRESHOLD", "3"),
            ("STEADFAST_REPLICATION__REPLICAS", r#"[{"location": "/a"}]"#),
            ("OTHER", "x"),
        ])
        .unwrap();
        let threshold = table
            .get("breakers")
            .and_then(|b| b.get("payments"))
            .and_then(|p| p.get("failure_threshold"))
            .unwrap();
        assert_eq!(threshold.value, Value::EnvText("3".into()));
        assert_eq!(
            threshold.key,
            "fault_tolerance.breakers.payments.failure_threshold"
        );
        let replicas = table
            .get("replication")
            .and_then(|r| r.get("replicas"))
            .unwrap();
        assert!(matches!(&replicas.value, Value::Array(items) if items.len() == 1));
        assert_eq!(
            replicas.origin.variable(),
            Some("STEADFAST_REPLICATION__REPLICAS")
        );
        assert!(table.get("other").is_none());
    }

    #[test]
    fn a_value_and_a_key_inside_it_clash() {
        let err = read([("STEADFAST_HEALTH", "5"), ("STEADFAST_HEALTH__X", "1")]).unwrap_err();
        assert!(matches!(err, ConfigFileError::Duplicate { .. }), "{err}");
        let err = read([("STEADFAST_HEALTH__X", "1"), ("steadfast_health__x", "2")]);
        assert!(
            err.is_ok(),
            "only the STEADFAST_ prefix in upper case is read"
        );
        let err = read([("STEADFAST_HEALTH__X", "1"), ("STEADFAST_health__x", "2")]).unwrap_err();
        assert!(matches!(err, ConfigFileError::Duplicate { .. }), "{err}");
    }
}
