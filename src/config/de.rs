//! A serde `Deserializer` over a [`Node`] tree: the sections deserialize
//! through their own serde forms (which validate), and every error comes
//! back with the full key and origin of the value it is about.
//!
//! Two things set it apart from deserializing a `serde_json::Value`:
//!
//! - an error is located at the deepest node it came from: a wrong type or a
//!   bad duration at its key, an unknown key at that key, and a value a
//!   section's validation refuses (a [`ConfigError`](crate::ConfigError),
//!   which names its field) at that field's key in the section;
//! - the text of an environment variable becomes whatever the key asks for:
//!   a number for a number, a bool for a bool, a name for an enum.

use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};

use super::error::{ConfigFileError, Origin};
use super::tree::{join, Node, Value};

/// The prefix of a [`ConfigError`](crate::ConfigError)'s message, after
/// which comes the field it names.
const CONFIG_ERROR_PREFIX: &str = "invalid configuration: ";

/// An error of deserialization, located at a key once the node it came
/// from is known.
#[derive(Debug)]
pub(crate) struct DeError {
    kind: Kind,
    located: Option<(String, Origin)>,
}

#[derive(Debug)]
enum Kind {
    Message(String),
    UnknownField { expected: &'static [&'static str] },
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Message(m) => f.write_str(m),
            Kind::UnknownField { expected } => {
                write!(f, "unknown key, expected one of {expected:?}")
            }
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            kind: Kind::Message(msg.to_string()),
            located: None,
        }
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            kind: Kind::UnknownField { expected },
            located: None,
        }
    }
}

impl DeError {
    /// Locates an error that is not located yet at `node`, or, for a
    /// [`ConfigError`](crate::ConfigError) that names a field of the table
    /// `node`, at that field.
    pub(crate) fn at(mut self, node: &Node) -> Self {
        if self.located.is_some() {
            return self;
        }
        let Kind::Message(message) = &self.kind else {
            self.located = Some((node.key.clone(), node.origin.clone()));
            return self;
        };
        let Some((field, reason)) = message
            .strip_prefix(CONFIG_ERROR_PREFIX)
            .and_then(|rest| rest.split_once(' '))
        else {
            self.located = Some((node.key.clone(), node.origin.clone()));
            return self;
        };
        let (field, reason) = (field.to_string(), reason.to_string());
        if node.entries().is_some() {
            let child = [field.as_str(), field.trim_start_matches("checkpoint_")]
                .iter()
                .find_map(|name| node.get(name));
            self.kind = Kind::Message(reason);
            self.located = Some(match child {
                Some(child) => (child.key.clone(), child.origin.clone()),
                None => (join(&node.key, &field), node.origin.clone()),
            });
        } else {
            let last = node.key.rsplit('.').next().unwrap_or("");
            if last == field || last == field.trim_start_matches("checkpoint_") {
                self.kind = Kind::Message(reason);
            } else {
                self.kind = Kind::Message(format!("{field} {reason}"));
            }
            self.located = Some((node.key.clone(), node.origin.clone()));
        }
        self
    }

    /// The error as the crate reports it.
    pub(crate) fn into_file_error(self) -> ConfigFileError {
        let (key, origin) = self.located.unwrap_or((String::new(), Origin::Unknown));
        match self.kind {
            Kind::UnknownField { expected } => ConfigFileError::UnknownKey {
                file: None,
                key,
                origin,
                expected: expected_keys(expected),
            },
            Kind::Message(message) => ConfigFileError::Invalid {
                file: None,
                key,
                origin,
                message,
            },
        }
    }
}

/// "expected one of `a`, `b`" for an unknown key.
pub(crate) fn expected_keys(expected: &[&str]) -> String {
    if expected.is_empty() {
        return "no key is expected there".to_string();
    }
    let list: Vec<String> = expected.iter().map(|k| format!("`{k}`")).collect();
    format!("expected one of {}", list.join(", "))
}

/// Deserializes `T` from `node`, every error located.
pub(crate) fn from_node<'de, T: serde::Deserialize<'de>>(
    node: &Node,
) -> Result<T, ConfigFileError> {
    T::deserialize(NodeDe(node)).map_err(|e| e.at(node).into_file_error())
}

/// The deserializer of one node.
pub(crate) struct NodeDe<'a>(pub(crate) &'a Node);

/// How an environment variable's text reads when the key does not say
/// what it expects (a duration: `30` or `"30s"`; an untyped map).
fn guess<'de, V: Visitor<'de>>(text: &str, visitor: V) -> Result<V::Value, DeError> {
    let t = text.trim();
    match t {
        "true" => return visitor.visit_bool(true),
        "false" => return visitor.visit_bool(false),
        _ => {}
    }
    let numeric = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '.')
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
    if numeric {
        if let Ok(u) = t.parse::<u64>() {
            return visitor.visit_u64(u);
        }
        if let Ok(i) = t.parse::<i64>() {
            return visitor.visit_i64(i);
        }
        if let Ok(f) = t.parse::<f64>() {
            return visitor.visit_f64(f);
        }
    }
    visitor.visit_str(text)
}

/// For the typed requests: the environment's text parsed as `$t`.
macro_rules! typed {
    ($($method:ident => $t:ty, $visit:ident;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                match &self.0.value {
                    Value::EnvText(text) => match text.trim().parse::<$t>() {
                        Ok(v) => visitor.$visit(v),
                        Err(_) => Err(de::Error::invalid_value(Unexpected::Str(text), &visitor)),
                    },
                    _ => self.deserialize_any(visitor),
                }
            }
        )*
    };
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) if *i >= 0 => visitor.visit_u64(i.unsigned_abs()),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::EnvText(s) => guess(s, visitor),
            Value::Array(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
            }),
            Value::Table(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::EnvText(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" => visitor.visit_bool(true),
                "false" => visitor.visit_bool(false),
                _ => Err(de::Error::invalid_value(Unexpected::Str(text), &visitor)),
            },
            _ => self.deserialize_any(visitor),
        }
    }

    typed! {
        deserialize_u8 => u8, visit_u8;
        deserialize_u16 => u16, visit_u16;
        deserialize_u32 => u32, visit_u32;
        deserialize_u64 => u64, visit_u64;
        deserialize_i8 => i8, visit_i8;
        deserialize_i16 => i16, visit_i16;
        deserialize_i32 => i32, visit_i32;
        deserialize_i64 => i64, visit_i64;
        deserialize_f32 => f32, visit_f32;
        deserialize_f64 => f64, visit_f64;
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0.as_str() {
            Some(text) => visitor.visit_str(text),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::Str(text) | Value::EnvText(text) => {
                let name: StrDeserializer<'_, DeError> = text.trim().into_deserializer();
                visitor.visit_enum(name)
            }
            Value::Table(entries) if entries.len() == 1 => match entries.first() {
                Some((name, node)) => visitor.visit_enum(EnumDe { name, node }),
                None => self.deserialize_any(visitor),
            },
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
    }
}

struct SeqDe<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de> SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(NodeDe(node))
                .map(Some)
                .map_err(|e| e.at(node)),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a> {
    entries: std::slice::Iter<'a, (String, Node)>,
    value: Option<&'a Node>,
}

impl<'de> MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((name, node)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(node);
        let key: StrDeserializer<'_, DeError> = name.as_str().into_deserializer();
        seed.deserialize(key).map(Some).map_err(|e| e.at(node))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some(node) => seed.deserialize(NodeDe(node)).map_err(|e| e.at(node)),
            None => Err(de::Error::custom("a value was asked for before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumDe<'a> {
    name: &'a str,
    node: &'a Node,
}

impl<'de, 'a> EnumAccess<'de> for EnumDe<'a> {
    type Error = DeError;
    type Variant = NodeDe<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'a>), DeError> {
        let name: StrDeserializer<'_, DeError> = self.name.into_deserializer();
        let variant = seed.deserialize(name).map_err(|e| e.at(self.node))?;
        Ok((variant, NodeDe(self.node)))
    }
}

impl<'de> VariantAccess<'de> for NodeDe<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match &self.0.value {
            Value::Null => Ok(()),
            Value::Table(entries) if entries.is_empty() => Ok(()),
            _ => Err(<DeError as de::Error>::custom(format!(
                "expected no value for this variant, got {}",
                self.0.kind()
            ))
            .at(self.0)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        let node = self.0;
        seed.deserialize(self).map_err(|e| e.at(node))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        self.deserialize_any(visitor).map_err(|e| e.at(node))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let node = self.0;
        self.deserialize_any(visitor).map_err(|e| e.at(node))
    }
}
