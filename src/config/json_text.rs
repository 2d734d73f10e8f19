//! Reads a JSON text into a [`Node`] tree, each value with the line and
//! column of its key.
//!
//! `serde_json` checks the syntax first (its error says where the text goes
//! wrong); this small reader then walks the text, which is known to be
//! valid JSON of bounded depth, to keep the position of every key, which
//! `serde_json::Value` does not.

use super::error::{ConfigFileError, Origin};
use super::tree::{insert_unique, join, Node, Value};

/// Reads `text` as a JSON document.
///
/// # Errors
///
/// [`ConfigFileError::Syntax`] with the line and column `serde_json`
/// reports; [`ConfigFileError::Duplicate`] for a key written twice in one
/// object.
pub(crate) fn read(text: &str) -> Result<Node, ConfigFileError> {
    read_at(text, "", &|offset| Origin::at_offset(text, offset))
}

/// Reads `text` as JSON, its keys under `key`, each value at the origin
/// `origin_of` gives for its byte offset (the environment reads a variable's
/// JSON value with every origin the variable).
pub(crate) fn read_at(
    text: &str,
    key: &str,
    origin_of: &dyn Fn(usize) -> Origin,
) -> Result<Node, ConfigFileError> {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(ConfigFileError::Syntax {
            file: None,
            format: "JSON",
            origin: match origin_of(0) {
                Origin::Text { .. } => Origin::Text {
                    line: e.line(),
                    column: e.column(),
                },
                other => other,
            },
            message: strip_position(&e.to_string()),
        });
    }
    let mut reader = Reader {
        text,
        pos: 0,
        origin_of,
    };
    reader.skip_ws();
    let origin = origin_of(reader.pos);
    reader.value(key.to_string(), origin)
}

/// serde_json's message without its ` at line L column C` suffix, which
/// the error carries apart.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
    origin_of: &'a dyn Fn(usize) -> Origin,
}

impl<'a> Reader<'a> {
    fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    fn rest(&self) -> &[u8] {
        self.bytes().get(self.pos..).unwrap_or(&[])
    }

    fn text_to(&self, end: usize) -> &'a str {
        self.text.get(self.pos..end).unwrap_or("")
    }

    fn peek(&self) -> u8 {
        self.bytes().get(self.pos).copied().unwrap_or(0)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    /// Fails for text serde_json accepted but this reader does not: it does
    /// not happen, but is an error rather than a panic if it ever did.
    fn unexpected(&self) -> ConfigFileError {
        ConfigFileError::Syntax {
            file: None,
            format: "JSON",
            origin: (self.origin_of)(self.pos),
            message: "unexpected character".to_string(),
        }
    }

    fn value(&mut self, key: String, origin: Origin) -> Result<Node, ConfigFileError> {
        self.skip_ws();
        let value = match self.peek() {
            b'{' => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        b'}' => {
                            self.pos += 1;
                            break;
                        }
                        b',' => self.pos += 1,
                        b'"' => {
                            let key_origin = (self.origin_of)(self.pos);
                            let name = self.string()?;
                            self.skip_ws();
                            if self.peek() != b':' {
                                return Err(self.unexpected());
                            }
                            self.pos += 1;
                            let child = self.value(join(&key, &name), key_origin)?;
                            insert_unique(&mut entries, name, child)?;
                        }
                        _ => return Err(self.unexpected()),
                    }
                }
                Value::Table(entries)
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        b']' => {
                            self.pos += 1;
                            break;
                        }
                        b',' => self.pos += 1,
                        _ => {
                            let item_origin = (self.origin_of)(self.pos);
                            let item_key = format!("{key}[{}]", items.len());
                            items.push(self.value(item_key, item_origin)?);
                        }
                    }
                }
                Value::Array(items)
            }
            b'"' => Value::Str(self.string()?),
            b't' | b'f' | b'n' => {
                let word_len = self
                    .rest()
                    .iter()
                    .take_while(|b| b.is_ascii_alphabetic())
                    .count();
                let word = self.text_to(self.pos + word_len);
                self.pos += word_len;
                match word {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    _ => return Err(self.unexpected()),
                }
            }
            _ => self.number()?,
        };
        Ok(Node { value, key, origin })
    }

    fn number(&mut self) -> Result<Value, ConfigFileError> {
        let len = self
            .rest()
            .iter()
            .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        let text = self.text_to(self.pos + len);
        self.pos += len;
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Ok(Value::UInt(u));
        }
        text.parse::<f64>()
            .map(Value::Float)
            .map_err(|_| self.unexpected())
    }

    /// A string, its escapes decoded by serde_json (the reader only finds
    /// where it ends).
    fn string(&mut self) -> Result<String, ConfigFileError> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek() {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    break;
                }
                0 => return Err(self.unexpected()),
                _ => self.pos += 1,
            }
        }
        serde_json::from_str(self.text.get(start..self.pos).unwrap_or(""))
            .map_err(|_| self.unexpected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_values_and_the_position_of_every_key() {
        let text = "{\n  \"a\": {\"b\\\"c\": \"x\\u00e9\\n\", \"n\": -3, \"u\": 18446744073709551615,\n  \"f\": 1.5e3, \"t\": true, \"z\": null, \"l\": [1, {\"k\": false}]}}";
        let root = read(text).unwrap();
        let a = root.get("a").unwrap();
        assert_eq!(a.origin, Origin::Text { line: 2, column: 3 });
        let bc = a.get("b\"c").unwrap();
        assert_eq!(bc.value, Value::Str("x\u{e9}\n".into()));
        assert_eq!(bc.key, "a.b\"c");
        assert_eq!(a.get("n").unwrap().value, Value::Int(-3));
        assert_eq!(a.get("u").unwrap().value, Value::UInt(u64::MAX));
        assert_eq!(a.get("f").unwrap().value, Value::Float(1500.0));
        assert_eq!(
            a.get("f").unwrap().origin,
            Origin::Text { line: 3, column: 3 }
        );
        assert_eq!(a.get("z").unwrap().value, Value::Null);
        let Value::Array(items) = &a.get("l").unwrap().value else {
            panic!("not an array")
        };
        assert_eq!(items[1].get("k").unwrap().key, "a.l[1].k");
    }

    #[test]
    fn refuses_bad_syntax_and_keys_written_twice() {
        let err = read("{\"a\": 1,\n \"a\": 2}").unwrap_err();
        assert!(matches!(err, ConfigFileError::Duplicate { .. }), "{err}");
        assert_eq!(err.line(), Some(2));
        let err = read("{\"a\": [1, 2,]}").unwrap_err();
        assert!(matches!(err, ConfigFileError::Syntax { .. }), "{err}");
        assert!(read("").is_err());
    }
}
