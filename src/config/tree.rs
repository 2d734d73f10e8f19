//! The configuration as a tree of values, each remembering the key it was
//! written under and where ([`Origin`]): what a TOML text, a JSON text and
//! the environment are read into before the sections are deserialized from
//! it, so that every error can name its key and line.

use super::error::{ConfigFileError, Origin};

/// One value of the configuration, with the full key it was written under
/// and where.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    /// The full key, as written (`fault_tolerance.health.failure_threshold`).
    pub(crate) key: String,
    pub(crate) origin: Origin,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// The text of an environment variable: parsed to whatever type the key
    /// asks for (a number, a bool, a duration, a name).
    EnvText(String),
    Array(Vec<Node>),
    /// The entries in the order they were written; keys are unique.
    Table(Vec<(String, Node)>),
}

impl Node {
    /// An empty table at `key`.
    pub(crate) fn table(key: impl Into<String>, origin: Origin) -> Node {
        Node {
            value: Value::Table(Vec::new()),
            key: key.into(),
            origin,
        }
    }

    /// The entries, when this is a table.
    pub(crate) fn entries(&self) -> Option<&Vec<(String, Node)>> {
        match &self.value {
            Value::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// The entries, when this is a table.
    pub(crate) fn entries_mut(&mut self) -> Option<&mut Vec<(String, Node)>> {
        match &mut self.value {
            Value::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// The child at `name`, when this is a table that holds it.
    pub(crate) fn get(&self, name: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, n)| n)
    }

    /// Removes and returns the child at `name`.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Node> {
        let entries = self.entries_mut()?;
        let i = entries.iter().position(|(k, _)| k == name)?;
        Some(entries.remove(i).1)
    }

    /// The text, for a string (or an environment variable's text).
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) | Value::EnvText(s) => Some(s),
            _ => None,
        }
    }

    /// What kind of value this is, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) | Value::EnvText(_) => "a string",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }

    /// Sets `name` to `node` in this table, replacing a value already
    /// there (tables are merged key by key): how the environment overrides
    /// a file.
    pub(crate) fn overlay(&mut self, name: &str, node: Node) {
        let Some(entries) = self.entries_mut() else {
            return;
        };
        // A name from the environment (lower case, `_`) finds the file's
        // own spelling (`Payments`, `payments-api`).
        let loose = |k: &str| k.to_ascii_lowercase().replace('-', "_") == name;
        let found = match entries.iter().position(|(k, _)| k == name) {
            Some(i) => Some(i),
            None => entries.iter().position(|(k, _)| loose(k)),
        };
        match found.and_then(|i| entries.get_mut(i)) {
            Some((_, existing)) => match (&mut existing.value, node.value) {
                (Value::Table(_), Value::Table(children)) => {
                    for (k, child) in children {
                        existing.overlay(&k, child);
                    }
                }
                (_, value) => {
                    *existing = Node {
                        value,
                        key: node.key,
                        origin: node.origin,
                    }
                }
            },
            None => entries.push((name.to_string(), node)),
        }
    }

    /// Builds a tree from a serialized value (a config set in code, a
    /// preset), every node at `origin`, keys under `key`.
    pub(crate) fn from_json_value(value: serde_json::Value, key: &str, origin: &Origin) -> Node {
        let value = match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Value::Int(i),
                (None, Some(u), _) => Value::UInt(u),
                (_, _, Some(f)) => Value::Float(f),
                _ => Value::Null,
            },
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Node::from_json_value(v, &format!("{key}[{i}]"), origin))
                    .collect(),
            ),
            serde_json::Value::Object(map) => Value::Table(
                map.into_iter()
                    .map(|(k, v)| {
                        let child = Node::from_json_value(v, &join(key, &k), origin);
                        (k, child)
                    })
                    .collect(),
            ),
        };
        Node {
            value,
            key: key.to_string(),
            origin: origin.clone(),
        }
    }
}

/// `parent.child`, or `child` at the top.
pub(crate) fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// Adds `(name, node)` to a table being read, refusing a key written twice.
pub(crate) fn insert_unique(
    entries: &mut Vec<(String, Node)>,
    name: String,
    node: Node,
) -> Result<(), ConfigFileError> {
    if let Some((_, first)) = entries.iter().find(|(k, _)| *k == name) {
        return Err(ConfigFileError::Duplicate {
            file: None,
            key: node.key,
            origin: node.origin,
            other: first.key.clone(),
            other_origin: first.origin.clone(),
        });
    }
    entries.push((name, node));
    Ok(())
}
