//! Finding the records in a page body (docs/instances.md, `recordsPath`).
//!
//! With `recordsPath` the records are the array at that path. Without it: the body itself when
//! it is an array, else the one array-valued member among [`DEFAULT_MEMBERS`]. Anything else is
//! an error that says what the body looked like, so the user can set `recordsPath`.
//!
//! [`read_records`] finds the records without decoding them: each is a slice of the page's
//! text (`RawValue`), decoded one at a time by whoever reads it ([`crate::detect::decode`]).
//! A tree of every record of a large page took about 19 times the page's bytes (a 61 MiB page
//! of 1.1 million small records: 1.1 GiB, issue 13); slices take 16 bytes a record. Only the
//! body *around* the records is decoded whole (the paginator reads a cursor from it). A body
//! that is not what was expected is then decoded whole once more, by [`parse_body`] and
//! [`locate_records`], to say exactly what it looked like.
//!
//! A decoded record keeps the provider's key order (the crate enables serde_json's
//! `preserve_order`); [`raw_json`] re-serialises it for the event's `raw` member, so every event
//! carries compact JSON whatever the provider's layout. The difference a receiver could see:
//! numbers are re-printed (`1.50` becomes `1.5`, `1e3` becomes `1000.0`) and whitespace is
//! dropped.

use crate::http::client::{Page, excerpt};
use crate::instance::FieldPath;
use crate::json;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;
use thiserror::Error;

/// How large one record may be (`[http] max_record_bytes`, default 1 MiB, counted as the
/// provider sent it): the poller reports a larger record as a problem of that record. (The page's own limit, `max_page_bytes`, is the
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

/// A page's records, found but not decoded (see the module doc).
#[derive(Debug)]
pub struct PageRecords<'b> {
    /// Each record as the provider sent it, in page order.
    pub records: Vec<&'b RawValue>,
    pub location: RecordsLocation,
    /// The body with its records array emptied: where the paginator reads a cursor.
    pub rest: Value,
}

/// Where a page's records were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordsLocation {
    /// The body is the array.
    Body,
    /// A default member (no `recordsPath`).
    Member(&'static str),
    /// At `recordsPath`.
    Path,
}

/// Finds the records of `page` (see the module doc), leaving each undecoded.
pub fn read_records<'b>(
    page: &'b Page,
    records_path: Option<&FieldPath>,
) -> Result<PageRecords<'b>, RecordsError> {
    let trimmed = page.body.trim_ascii();
    if trimmed.is_empty() {
        let empty = parse_body(page)?;
        return Ok(PageRecords {
            records: Vec::new(),
            location: RecordsLocation::Body,
            rest: empty,
        });
    }
    let records_path = records_path.filter(|path| !path.is_empty());
    if let Some(found) = shallow_records(trimmed, records_path) {
        return Ok(found);
    }
    // Not the expected shape: the whole tree says what the body looked like.
    let body = parse_body(page)?;
    locate_records(&body, records_path)?;
    // The tree found records where the slices did not: a body both readers should agree on.
    Err(RecordsError::NotJson {
        reason: "the records could not be read one by one".to_owned(),
        excerpt: excerpt(&page.body),
    })
}

/// The records of a body of the expected shape; `None` for anything else (not UTF-8 or not
/// JSON, no records where they should be), left to the whole-tree reader's errors.
fn shallow_records<'b>(
    body: &'b [u8],
    records_path: Option<&FieldPath>,
) -> Option<PageRecords<'b>> {
    let text = std::str::from_utf8(body).ok()?;
    let (array, location) = match records_path {
        Some(path) => {
            let whole: &RawValue = serde_json::from_str(text).ok()?;
            let array = path
                .steps()
                .try_fold(whole, |value, step| members(value)?.remove(step))?;
            (array, RecordsLocation::Path)
        }
        None if text.starts_with('[') => (serde_json::from_str(text).ok()?, RecordsLocation::Body),
        None => default_array(text)?,
    };
    let records: Vec<&RawValue> = serde_json::from_str(array.get()).ok()?;
    let rest = match location {
        RecordsLocation::Body => Value::Array(Vec::new()),
        _ => serde_json::from_str(&emptied(text, array.get())?).ok()?,
    };
    Some(PageRecords {
        records,
        location,
        rest,
    })
}

/// An object's members, undecoded; `None` when `value` is not an object.
fn members(value: &RawValue) -> Option<HashMap<String, &RawValue>> {
    value
        .get()
        .starts_with('{')
        .then(|| serde_json::from_str(value.get()).ok())
        .flatten()
}

/// The one default member holding an array, as [`default_member`] picks it.
fn default_array(text: &str) -> Option<(&RawValue, RecordsLocation)> {
    let members: HashMap<String, &RawValue> = serde_json::from_str(text).ok()?;
    let mut arrays = DEFAULT_MEMBERS
        .into_iter()
        .filter_map(|name| Some((name, *members.get(name)?)))
        .filter(|(_, value)| value.get().starts_with('['));
    let (name, array) = arrays.next()?;
    match arrays.next() {
        Some(_) => None,
        None => Some((array, RecordsLocation::Member(name))),
    }
}

/// `text` with `inner` (a slice of it) replaced by an empty array.
fn emptied(text: &str, inner: &str) -> Option<String> {
    let start = (inner.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start
        .checked_add(inner.len())
        .filter(|end| *end <= text.len())?;
    Some([&text[..start], "[]", &text[end..]].concat())
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

    /// The records `read_records` finds in `body`, decoded.
    fn read(body: &Value, records_path: Option<&FieldPath>) -> Result<Vec<Value>, RecordsError> {
        read_text(&body.to_string(), records_path)
    }

    fn read_text(body: &str, records_path: Option<&FieldPath>) -> Result<Vec<Value>, RecordsError> {
        let page = page(200, body);
        let found = read_records(&page, records_path)?;
        Ok(found
            .records
            .iter()
            .map(|raw| serde_json::from_str(raw.get()).unwrap())
            .collect())
    }

    #[test]
    fn an_array_body_is_the_records() {
        let records = read(&json!([{"id": 1}, {"id": 2}]), None).unwrap();
        assert_eq!(records, [json!({"id": 1}), json!({"id": 2})]);
    }

    #[test]
    fn the_single_default_member_is_found() {
        for member in DEFAULT_MEMBERS {
            let body = json!({"total": 3, member: [{"id": 1}], "meta": {"next": null}});
            assert_eq!(locate_records(&body, None).unwrap().len(), 1, "{member}");
            assert_eq!(read(&body, None).unwrap(), [json!({"id": 1})]);
        }
        // A non-array `data` next to an array `items` does not compete.
        let body = json!({"data": "x", "items": [1, 2]});
        assert_eq!(read(&body, None).unwrap(), [json!(1), json!(2)]);
    }

    #[test]
    fn records_path_reaches_nested_arrays() {
        let body = json!({"response": {"contacts": [{"id": "a"}]}});
        let records_path = path("response.contacts");
        assert_eq!(locate_records(&body, Some(&records_path)).unwrap().len(), 1);
        assert_eq!(
            read(&body, Some(&records_path)).unwrap(),
            [json!({"id": "a"})]
        );
        // An empty path means the default rules.
        assert_eq!(read(&json!([1]), Some(&path(""))).unwrap(), [json!(1)]);
    }

    #[test]
    fn records_path_errors_say_what_is_there() {
        let body = json!({"response": {"contacts": {"id": "a"}}, "status": "ok"});
        assert_eq!(
            read(&body, Some(&path("response.contacts"))),
            Err(RecordsError::PathNotArray {
                path: "response.contacts".into(),
                found: "an object"
            })
        );
        let error = read(&body, Some(&path("response.people"))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`recordsPath` response.people is not in the response (top-level keys: response, status)"
        );
    }

    #[test]
    fn no_array_lists_the_keys_found() {
        let error = read(&json!({"contacts": [1], "total": 1}), None).unwrap_err();
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
        let error = read(&json!({"data": [1], "results": [2], "value": 3}), None);
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
            read(&json!({"data": {"id": 1}}), None),
            Err(RecordsError::MemberIsObject {
                member: "data".into()
            })
        );
        assert_eq!(
            read(&json!("hello"), None),
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
        let records = read(&body, None).unwrap();
        assert_eq!(raw_json(&records[0]), r#"{"zeta":1,"alpha":{"y":2,"b":3}}"#);
    }

    #[test]
    fn records_are_slices_of_the_page_in_any_layout() {
        let text = "\n { \"meta\" : { \"next\" : \"c2\" } ,\n  \"data\" :\n [ { \"id\" : 1 } ,\n {\"id\":2} ] }\n";
        let spaced = page(200, text);
        let found = read_records(&spaced, None).unwrap();
        let raw: Vec<&str> = found.records.iter().map(|record| record.get()).collect();
        assert_eq!(raw, [r#"{ "id" : 1 }"#, r#"{"id":2}"#]);
        assert_eq!(found.location, RecordsLocation::Member("data"));
        // The rest of the body keeps its cursor, without the records.
        assert_eq!(found.rest, json!({"meta": {"next": "c2"}, "data": []}));

        let nested = page(
            200,
            r#"{"response": {"contacts": [{"id": "a"}], "cursor": 7}}"#,
        );
        let found = read_records(&nested, Some(&path("response.contacts"))).unwrap();
        assert_eq!(found.location, RecordsLocation::Path);
        assert_eq!(found.records.len(), 1);
        assert_eq!(
            found.rest,
            json!({"response": {"contacts": [], "cursor": 7}})
        );

        let array = page(200, " [1, 2, 3] ");
        let found = read_records(&array, None).unwrap();
        assert_eq!(
            (found.location, found.records.len()),
            (RecordsLocation::Body, 3)
        );
    }

    #[test]
    fn read_records_reports_bad_bodies_as_the_tree_reader_does() {
        for (body, records_path) in [
            ("<html>", None),
            (r#"{"contacts": [1], "total": 1}"#, None),
            (r#"{"data": [1], "results": [2]}"#, None),
            (r#"{"data": {"id": 1}}"#, None),
            (r#""hello""#, None),
            (
                r#"{"response": {"contacts": {"id": "a"}}}"#,
                Some(path("response.contacts")),
            ),
            (r#"{"response": {}}"#, Some(path("response.people"))),
            (r#"[1, 2"#, None),
        ] {
            let page = page(200, body);
            let expected = parse_body(&page)
                .and_then(|tree| locate_records(&tree, records_path.as_ref()).map(|_| ()))
                .unwrap_err();
            assert_eq!(
                read_records(&page, records_path.as_ref()).unwrap_err(),
                expected,
                "{body}"
            );
        }
        let not_utf8 = Page {
            body: bytes::Bytes::from_static(b"[\"\xff\"]"),
            ..page(200, "")
        };
        assert!(matches!(
            read_records(&not_utf8, None),
            Err(RecordsError::NotJson { .. })
        ));
        assert_eq!(read_records(&page(204, ""), None).unwrap().records.len(), 0);
        assert_eq!(
            read_records(&page(200, ""), None).unwrap_err(),
            RecordsError::Empty { status: 200 }
        );
    }

    #[test]
    fn a_number_too_large_for_a_record_still_lets_the_page_be_read() {
        // The slices only check the syntax; decoding the one record fails, not the page.
        let page = page(200, r#"[{"id": 1}, {"id": 2, "n": 1e400}]"#);
        let records = read_records(&page, None).unwrap().records;
        assert_eq!(records.len(), 2);
        assert!(serde_json::from_str::<Value>(records[1].get()).is_err());
    }
}
