//! Finding the records in a page body (docs/instances.md, `recordsPath`).
//!
//! With `recordsPath` the records are the array at that path. Without it: the body itself when
//! it is an array, else the one array-valued member among [`DEFAULT_MEMBERS`]. Anything else is
//! an error that says what the body looked like, so the user can set `recordsPath`.
//!
//! Records stay `serde_json::Value`s in the provider's key order (the crate enables serde_json's
//! `preserve_order`); [`raw_json`] re-serialises one for the event's `raw` member. That is
//! chosen over keeping each record's original text (`RawValue`) because the records path is only
//! known at run time, and re-serialising only the changed records costs less than capturing
//! every record's text. The difference a receiver could see: numbers are re-printed
//! (`1.50` becomes `1.5`, `1e3` becomes `1000.0`) and whitespace is dropped.

use crate::http::client::{Page, excerpt};
use crate::instance::FieldPath;
use crate::json;
use serde_json::Value;
use thiserror::Error;

/// How large one record may be (`[http] max_record_bytes`, default 1 MiB): the poller reports a
/// larger record as a problem of that record. (The page's own limit, `max_page_bytes`, is the
/// fetch's: [`crate::http::RetryPolicy::max_page_bytes`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordLimits {
    /// The most bytes one record's JSON may have.
    pub max_record_bytes: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits {
            max_record_bytes: 1024 * 1024,
        }
    }
}

/// Where records are looked for when `recordsPath` is not set.
pub const DEFAULT_MEMBERS: [&str; 5] = ["data", "items", "results", "records", "value"];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordsError {
    #[error("the response is not JSON ({reason}); it starts with: {excerpt}")]
    NotJson { reason: String, excerpt: String },
    #[error("the response is empty (HTTP {status}), not JSON")]
    Empty { status: u16 },
    #[error("`recordsPath` {path} is not in the response (top-level keys: {keys})")]
    PathMissing { path: String, keys: String },
    #[error("`recordsPath` {path} is {found}, not an array of records")]
    PathNotArray { path: String, found: &'static str },
    #[error(
        "no records array in the response: expected an array, or one array member among data, items, results, records, value (top-level keys: {keys}); set `recordsPath`"
    )]
    NoRecordsArray { keys: String },
    #[error("several arrays could hold the records ({members}); set `recordsPath` to one of them")]
    SeveralArrays { members: String },
    #[error(
        "`{member}` is an object, not an array of records; set `recordsPath` to the array inside it"
    )]
    MemberIsObject { member: String },
    #[error("the response is {found}, not an array or object of records")]
    NotAContainer { found: &'static str },
}

/// Parses a page body as JSON. A 204 or an empty body with a 2xx status means no records.
pub fn parse_body(page: &Page) -> Result<Value, RecordsError> {
    let trimmed = page.body.trim_ascii();
    if trimmed.is_empty() {
        return if page.status == 204 {
            Ok(Value::Array(Vec::new()))
        } else {
            Err(RecordsError::Empty {
                status: page.status,
            })
        };
    }
    serde_json::from_slice(trimmed).map_err(|error| RecordsError::NotJson {
        reason: error.to_string(),
        excerpt: excerpt(&page.body),
    })
}

/// The records array in `body`, borrowed (to count records before the body is consumed).
pub fn locate_records<'b>(
    body: &'b Value,
    records_path: Option<&FieldPath>,
) -> Result<&'b Vec<Value>, RecordsError> {
    let path = match records_path {
        Some(path) if !path.is_empty() => path,
        _ => return default_records(body),
    };
    match path.get(body) {
        Some(Value::Array(records)) => Ok(records),
        Some(other) => Err(RecordsError::PathNotArray {
            path: path.to_string(),
            found: json::a_type(other),
        }),
        None => Err(RecordsError::PathMissing {
            path: path.to_string(),
            keys: top_level_keys(body),
        }),
    }
}

/// Takes the records out of `body` (see the module doc for where they are looked for).
pub fn extract_records(
    mut body: Value,
    records_path: Option<&FieldPath>,
) -> Result<Vec<Value>, RecordsError> {
    // Locate first (borrowing, with good errors), then walk the same way mutably to move the
    // array out without copying it.
    locate_records(&body, records_path)?;
    let steps: Vec<String> = match records_path {
        Some(path) if !path.is_empty() => path.to_string().split('.').map(str::to_owned).collect(),
        _ => match default_member(&body)? {
            Some(member) => vec![member.to_owned()],
            None => Vec::new(),
        },
    };
    let mut target = &mut body;
    for step in &steps {
        target = match target.get_mut(step.as_str()) {
            Some(next) => next,
            None => return Ok(Vec::new()),
        };
    }
    match target.take() {
        Value::Array(records) => Ok(records),
        _ => Ok(Vec::new()),
    }
}

/// A record as JSON text, in the provider's key order.
pub fn raw_json(record: &Value) -> String {
    record.to_string()
}

fn default_records(body: &Value) -> Result<&Vec<Value>, RecordsError> {
    if let Value::Array(records) = body {
        return Ok(records);
    }
    let member = default_member(body)?;
    match member.and_then(|name| body.get(name)) {
        Some(Value::Array(records)) => Ok(records),
        _ => Err(RecordsError::NoRecordsArray {
            keys: top_level_keys(body),
        }),
    }
}

/// Which default member holds the records: `None` for an array body, an error when there is
/// no candidate or more than one.
fn default_member(body: &Value) -> Result<Option<&'static str>, RecordsError> {
    let object = match body {
        Value::Array(_) => return Ok(None),
        Value::Object(object) => object,
        other => {
            return Err(RecordsError::NotAContainer {
                found: json::a_type(other),
            });
        }
    };
    let arrays: Vec<&'static str> = DEFAULT_MEMBERS
        .into_iter()
        .filter(|name| object.get(*name).is_some_and(Value::is_array))
        .collect();
    match arrays.as_slice() {
        [one] => Ok(Some(*one)),
        [] => {
            let object_member = DEFAULT_MEMBERS
                .into_iter()
                .find(|name| object.get(*name).is_some_and(Value::is_object));
            Err(match object_member {
                Some(member) => RecordsError::MemberIsObject {
                    member: member.to_owned(),
                },
                None => RecordsError::NoRecordsArray {
                    keys: top_level_keys(body),
                },
            })
        }
        several => Err(RecordsError::SeveralArrays {
            members: several.join(", "),
        }),
    }
}

/// The body's top-level keys for messages (the first 20, in the provider's order).
fn top_level_keys(body: &Value) -> String {
    match body {
        Value::Object(object) if object.is_empty() => "none".to_owned(),
        Value::Object(object) => {
            let mut keys: Vec<&str> = object.keys().take(20).map(String::as_str).collect();
            if object.len() > 20 {
                keys.push("...");
            }
            keys.join(", ")
        }
        other => format!("none, the response is {}", json::a_type(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(status: u16, body: &str) -> Page {
        Page {
            status,
            headers: Default::default(),
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
            date: None,
            retries: Vec::new(),
        }
    }

    fn path(dotted: &str) -> FieldPath {
        FieldPath::parse(dotted)
    }

    #[test]
    fn an_array_body_is_the_records() {
        let records = extract_records(json!([{"id": 1}, {"id": 2}]), None).unwrap();
        assert_eq!(records, [json!({"id": 1}), json!({"id": 2})]);
    }

    #[test]
    fn the_single_default_member_is_found() {
        for member in DEFAULT_MEMBERS {
            let body = json!({"total": 3, member: [{"id": 1}], "meta": {"next": null}});
            assert_eq!(locate_records(&body, None).unwrap().len(), 1, "{member}");
            assert_eq!(extract_records(body, None).unwrap(), [json!({"id": 1})]);
        }
        // A non-array `data` next to an array `items` does not compete.
        let body = json!({"data": "x", "items": [1, 2]});
        assert_eq!(extract_records(body, None).unwrap(), [json!(1), json!(2)]);
    }

    #[test]
    fn records_path_reaches_nested_arrays() {
        let body = json!({"response": {"contacts": [{"id": "a"}]}});
        let records_path = path("response.contacts");
        assert_eq!(locate_records(&body, Some(&records_path)).unwrap().len(), 1);
        assert_eq!(
            extract_records(body, Some(&records_path)).unwrap(),
            [json!({"id": "a"})]
        );
        // An empty path means the default rules.
        assert_eq!(
            extract_records(json!([1]), Some(&path(""))).unwrap(),
            [json!(1)]
        );
    }

    #[test]
    fn records_path_errors_say_what_is_there() {
        let body = json!({"response": {"contacts": {"id": "a"}}, "status": "ok"});
        assert_eq!(
            extract_records(body.clone(), Some(&path("response.contacts"))),
            Err(RecordsError::PathNotArray {
                path: "response.contacts".into(),
                found: "an object"
            })
        );
        let error = extract_records(body, Some(&path("response.people"))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`recordsPath` response.people is not in the response (top-level keys: response, status)"
        );
    }

    #[test]
    fn no_array_lists_the_keys_found() {
        let error = extract_records(json!({"contacts": [1], "total": 1}), None).unwrap_err();
        assert_eq!(
            error,
            RecordsError::NoRecordsArray {
                keys: "contacts, total".into()
            }
        );
        assert!(error.to_string().contains("set `recordsPath`"));
    }

    #[test]
    fn several_candidate_arrays_are_ambiguous() {
        let error = extract_records(json!({"data": [1], "results": [2], "value": 3}), None);
        assert_eq!(
            error,
            Err(RecordsError::SeveralArrays {
                members: "data, results".into()
            })
        );
    }

    #[test]
    fn an_object_where_records_should_be_is_an_error() {
        assert_eq!(
            extract_records(json!({"data": {"id": 1}}), None),
            Err(RecordsError::MemberIsObject {
                member: "data".into()
            })
        );
        assert_eq!(
            extract_records(json!("hello"), None),
            Err(RecordsError::NotAContainer { found: "a string" })
        );
    }

    #[test]
    fn html_is_not_json_and_the_error_shows_its_start() {
        let error = parse_body(&page(
            200,
            "<!DOCTYPE html>\n<html><head><title>Maintenance</title></head></html>",
        ))
        .unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("the response is not JSON"), "{message}");
        assert!(
            message.ends_with("it starts with: <!DOCTYPE html> <html><head><title>Maintenance</title></head></html>"),
            "{message}"
        );
    }

    #[test]
    fn empty_bodies() {
        assert_eq!(parse_body(&page(204, "")), Ok(json!([])));
        assert_eq!(
            parse_body(&page(200, "  \n")),
            Err(RecordsError::Empty { status: 200 })
        );
        assert_eq!(parse_body(&page(200, " [1] ")), Ok(json!([1])));
    }

    #[test]
    fn raw_json_keeps_the_provider_key_order() {
        let body = parse_body(&page(200, r#"[{"zeta": 1, "alpha": {"y": 2, "b": 3}}]"#)).unwrap();
        let records = extract_records(body, None).unwrap();
        assert_eq!(raw_json(&records[0]), r#"{"zeta":1,"alpha":{"y":2,"b":3}}"#);
    }
}
