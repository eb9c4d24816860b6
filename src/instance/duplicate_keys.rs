//! Keys given twice in one JSON object: JSON parsers keep the last one and drop the others
//! without a word, so `validate` reports each such key as an error naming every position.
//!
//! Parsing notices duplicates on the way (a flag, at no extra cost); only a file that has some
//! is parsed a second time, with positions, to say where they are.

use crate::instance::finding::{Finding, JsonPath, Position};
use jsonc_parser::ast;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

/// Parses `text` as serde_json does (the last of repeated keys wins), and says whether some
/// object repeated a key.
pub(crate) fn parse(text: &str) -> Result<(Value, bool), serde_json::Error> {
    let repeated = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Checked(&repeated).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok((value, repeated.get()))
}

/// One error per repeated key of every object in the document, at its last occurrence.
pub(crate) fn findings(root: &ast::Value, text: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    walk(root, &JsonPath::root(), text, &mut findings);
    findings
}

fn walk(value: &ast::Value, path: &JsonPath, text: &str, findings: &mut Vec<Finding>) {
    match value {
        ast::Value::Object(object) => {
            let mut offsets: HashMap<&str, Vec<usize>> = HashMap::new();
            for property in &object.properties {
                offsets
                    .entry(property.name.as_str())
                    .or_default()
                    .push(property.range.start);
            }
            for property in &object.properties {
                let name = property.name.as_str();
                let key_path = path.key(name);
                if let Some(starts) = offsets.remove(name).filter(|starts| starts.len() > 1) {
                    let positions: Vec<Position> = starts
                        .iter()
                        .map(|&start| Position::of_offset(text, start))
                        .collect();
                    findings.push(repeated_key(key_path.clone(), &positions));
                }
                walk(&property.value, &key_path, text, findings);
            }
        }
        ast::Value::Array(array) => {
            for (index, element) in array.elements.iter().enumerate() {
                walk(element, &path.index(index), text, findings);
            }
        }
        _ => {}
    }
}

fn repeated_key(path: JsonPath, positions: &[Position]) -> Finding {
    let shown: Vec<String> = positions
        .iter()
        .map(|p| format!("{}:{}", p.line, p.column))
        .collect();
    let (last, earlier) = shown.split_last().expect("two positions or more");
    let times = match positions.len() {
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    };
    let message = format!(
        "this key is given {times} in one object, at {} and {last}; only the last one ({last}) \
         counts and the other{} silently ignored: keep one and delete the rest",
        earlier.join(", "),
        if earlier.len() == 1 { " is" } else { "s are" },
    );
    let at = *positions.last().expect("two positions or more");
    Finding::error(path, message).at(at)
}

/// Builds a `serde_json::Value` like its own `Deserialize`, setting the flag when an object
/// repeats a key.
#[derive(Clone, Copy)]
struct Checked<'a>(&'a Cell<bool>);

impl<'de> DeserializeSeed<'de> for Checked<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            if object.insert(key, value).is_some() {
                self.0.set(true);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_those_serde_json_gives() {
        let text =
            r#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"c": {}}, "a": 18446744073709551615}"#;
        let (value, repeated) = parse(text).unwrap();
        assert!(repeated);
        assert_eq!(value, serde_json::from_str::<Value>(text).unwrap());
        let (_, repeated) = parse(r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#).unwrap();
        assert!(!repeated, "one key in different objects is no repetition");
        assert!(parse("{} x").is_err());
    }
}
