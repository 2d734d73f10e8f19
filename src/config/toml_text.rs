//! Reads a TOML text into a [`Node`] tree, each value with its line and
//! column (from the spans the `toml` crate keeps).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

use super::error::{ConfigFileError, Origin};
use super::tree::{insert_unique, join, Node, Value};

/// The key under which the `toml` crate hands a datetime to a visitor.
const DATETIME_KEY: &str = "$__toml_private_datetime";

/// A TOML value as the `toml` crate reads it, before positions are turned
/// into lines.
enum Raw {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Spanned<Raw>>),
    Table(Vec<(Spanned<String>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        i64::try_from(v)
            .map(Raw::Int)
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries: Vec<(Spanned<String>, Spanned<Raw>)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            if key.get_ref() == DATETIME_KEY {
                // A datetime: kept as its text.
                let text: String = map.next_value()?;
                return Ok(Raw::Str(text));
            }
            entries.push((key, map.next_value()?));
        }
        Ok(Raw::Table(entries))
    }
}

/// Reads `text` as a TOML document.
///
/// # Errors
///
/// [`ConfigFileError::Syntax`] with the position the parser stopped at.
pub(crate) fn read(text: &str) -> Result<Node, ConfigFileError> {
    let raw: Spanned<Raw> = toml::from_str(text).map_err(|e| ConfigFileError::Syntax {
        file: None,
        format: "TOML",
        origin: e
            .span()
            .map_or(Origin::Unknown, |span| Origin::at_offset(text, span.start)),
        message: e.message().trim().to_string(),
    })?;
    convert(text, raw, String::new())
}

fn convert(text: &str, raw: Spanned<Raw>, key: String) -> Result<Node, ConfigFileError> {
    let origin = Origin::at_offset(text, raw.span().start);
    let value = match raw.into_inner() {
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::Float(f) => Value::Float(f),
        Raw::Str(s) => Value::Str(s),
        Raw::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(text, item, format!("{key}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Raw::Table(raw_entries) => {
            let mut entries = Vec::with_capacity(raw_entries.len());
            for (name, value) in raw_entries {
                let name_origin = Origin::at_offset(text, name.span().start);
                let name = name.into_inner();
                let mut child = convert(text, value, join(&key, &name))?;
                // A value's position is where its key is written (for a
                // table, its `[header]`).
                child.origin = name_origin;
                insert_unique(&mut entries, name, child)?;
            }
            Value::Table(entries)
        }
    };
    Ok(Node { value, key, origin })
}
