//! Naming a JSON value's type in messages ("found a JSON number", "the response is an
//! object"). One table, so that every message names the types alike.

use serde_json::Value;

/// The type of `value` as a bare word, for messages that put their own words in front ("a JSON
/// number"): "null", "boolean", "number", "string", "array" or "object".
pub(crate) fn type_name(value: &Value) -> &'static str {
    names(value).0
}

/// The type of `value` with its article, to stand alone ("found an object"): "null",
/// "a boolean", "a number", "a string", "an array" or "an object".
pub(crate) fn a_type(value: &Value) -> &'static str {
    names(value).1
}

/// (bare, with its article) for each JSON type.
fn names(value: &Value) -> (&'static str, &'static str) {
    match value {
        Value::Null => ("null", "null"),
        Value::Bool(_) => ("boolean", "a boolean"),
        Value::Number(_) => ("number", "a number"),
        Value::String(_) => ("string", "a string"),
        Value::Array(_) => ("array", "an array"),
        Value::Object(_) => ("object", "an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_has_a_bare_name_and_one_with_its_article() {
        let cases = [
            (json!(null), "null", "null"),
            (json!(true), "boolean", "a boolean"),
            (json!(1.5), "number", "a number"),
            (json!("x"), "string", "a string"),
            (json!([1]), "array", "an array"),
            (json!({"a": 1}), "object", "an object"),
        ];
        for (value, bare, with_article) in cases {
            assert_eq!(type_name(&value), bare, "{value}");
            assert_eq!(a_type(&value), with_article, "{value}");
        }
    }
}
