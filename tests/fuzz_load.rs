//! Fuzz-style property tests of the instance loader: whatever bytes an instance file holds,
//! loading it never panics, and a file without an instance has at least one error.

use ocpoll::instance::load::load_bytes;
use ocpoll::instance::{LoadedFile, SystemSecrets, UnresolvedSecrets};
use proptest::prelude::*;
use serde_json::{Map, Value};
use std::path::Path;

/// A path whose folder does not exist, so `${file:..}` references never find anything.
const PATH: &str = "/nonexistent-ocpoll-fuzz/instance.json";

fn load(bytes: &[u8]) -> LoadedFile {
    load_bytes(
        Path::new(PATH),
        bytes,
        UnresolvedSecrets::Warn,
        &SystemSecrets,
    )
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let loaded = load(bytes);
    prop_assert_eq!(loaded.path.as_path(), Path::new(PATH));
    let errors = loaded.findings.iter().filter(|f| f.is_error()).count();
    if loaded.instance.is_none() {
        prop_assert!(
            errors > 0,
            "rejected without an error: {:?}",
            loaded.findings
        );
    } else {
        prop_assert_eq!(
            errors,
            0,
            "an instance despite errors: {:?}",
            loaded.findings
        );
    }
    for finding in &loaded.findings {
        prop_assert!(!finding.message.is_empty());
        if let Some(position) = finding.position {
            prop_assert!(position.line >= 1 && position.column >= 1, "{:?}", finding);
        }
    }
    Ok(())
}

// ---- A grammar of instance-shaped JSON ----------------------------------------------------

/// Strings that mean something somewhere in an instance file, plus arbitrary ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", "true", "false", "TRUE", "15", "0", "-1", "1.5", "<minutes>", "null", "xxxx",
            "xxxxxxxxxxxx", "<INSERT>", "<INSTANCE_NAME>", "https://api.example.com",
            "http://localhost:1/cb", "ftp://x", "https://", "/hubs/crm/contacts", "a/b",
            "${env:HOME}", "${env:OCPOLL_FUZZ_UNSET}", "${env:}", "${file:missing.txt}",
            "${file:}", "${date:yyyy}", "polling", "webhooks", "auto", "cursor", "page", "none",
            "GMT", "UTC", "Mars/Olympus", "Europe/Paris", "GMT+02:00", "milliseconds",
            "seconds", "yyyy-MM-dd'T'HH:mm:ssXXX", "yyyy-QQ", "'", "''", "{id}", "é", "\u{0}",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

fn url() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "https://api.example.com",
        "/hubs/crm/contacts",
        "/calendars/{calendarId}/events",
        "{id}",
        "{",
        "}",
        "?where=updated_at>='",
        "${date:yyyy-MM-dd'T'HH:mm:ssXXX}",
        "${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}",
        "${date:milliseconds}",
        "${date:yyyy-QQ}",
        "${date:",
        "${unknown:x}",
        "${",
        "'",
        "''",
        "&pageSize=5",
        "%",
        "%zz",
        "é",
    ]);
    prop_oneof![
        4 => prop::collection::vec(pieces, 0..6).prop_map(|parts| parts.concat()),
        1 => ".{0,20}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e20f64..1e20).prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

/// Any JSON value, a few levels deep.
fn any_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A value for a known key: usually the right kind, sometimes anything at all.
fn loose(good: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![3 => good, 1 => any_value()].boxed()
}

/// An object with some of `fields` (each present with probability 3/4).
fn object_of(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let strategies: Vec<_> = fields
        .into_iter()
        .map(|(key, value)| prop::option::weighted(0.75, value).prop_map(move |v| (key, v)))
        .collect();
    (
        strategies,
        prop::collection::vec((text(), any_value()), 0..2),
    )
        .prop_map(|(known, extra)| {
            let mut map = Map::new();
            for (key, value) in known {
                if let Some(value) = value {
                    map.insert(key.to_owned(), value);
                }
            }
            for (key, value) in extra {
                map.insert(key, value);
            }
            Value::Object(map)
        })
        .boxed()
}

fn string(strategy: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Value> {
    strategy.prop_map(Value::String).boxed()
}

fn dates_configuration() -> BoxedStrategy<Value> {
    object_of(vec![
        ("updatedDateField", loose(string(text()))),
        ("updatedDateFormat", loose(string(text()))),
        ("updatedDateTimezone", loose(string(text()))),
        ("createdDateField", loose(string(text()))),
        ("createdDateFormat", loose(string(text()))),
        ("createdDateTimezone", loose(string(text()))),
    ])
}

fn resource() -> BoxedStrategy<Value> {
    object_of(vec![
        ("url", loose(string(url()))),
        ("idField", loose(string(text()))),
        ("datesConfiguration", loose(dates_configuration())),
        ("recordsPath", loose(string(text()))),
        (
            "pagination",
            loose(object_of(vec![
                ("type", loose(string(text()))),
                ("pageSize", loose(scalar())),
                ("cursorPath", loose(string(text()))),
                ("cursorParam", loose(string(text()))),
                ("pageParam", loose(string(text()))),
            ])),
        ),
        (
            "pathParams",
            loose(
                prop::collection::btree_map(text(), any_value(), 0..3)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ),
        ),
        ("lookbackSeconds", loose(scalar())),
    ])
}

fn configuration() -> BoxedStrategy<Value> {
    let resources = prop::collection::btree_map(text(), loose(resource()), 0..4)
        .prop_map(|map| Value::Object(map.into_iter().collect()));
    let keys = [
        "event.notification.enabled",
        "event.vendor.type",
        "event.notification.callback.url",
        "event.poller.refresh_interval",
        "event.poller.refresh_seconds",
        "base.url",
        "username",
        "password",
        "api.key",
        "api.key.header",
        "oauth.access.token",
        "oauth.token.url",
        "oauth.api.key",
        "oauth.api.secret",
        "oauth.user.refresh_token",
        "elements.user.secret",
        "elements.organization.secret",
        "elements.instance.token",
        "http.timeout.seconds",
        "event.notification.batch.size",
        "event.notification.batch.bytes",
    ];
    let mut fields: Vec<(&'static str, BoxedStrategy<Value>)> = keys
        .into_iter()
        .map(|key| {
            (
                key,
                prop::option::weighted(0.4, loose(scalar()))
                    .prop_map(|v| v.unwrap_or(Value::Null))
                    .boxed(),
            )
        })
        .collect();
    fields.push(("event.poller.configuration", loose(resources.boxed())));
    fields.push((
        "event.notification.signature.key",
        loose(prop::collection::vec(scalar(), 0..3).prop_map(Value::Array)),
    ));
    fields.push((
        "http.headers",
        loose(
            prop::collection::btree_map(text(), scalar(), 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ),
    ));
    object_of(fields)
}

fn instance() -> BoxedStrategy<Value> {
    object_of(vec![
        (
            "element",
            loose(object_of(vec![("key", loose(string(text())))])),
        ),
        ("name", loose(string(text()))),
        (
            "tags",
            loose(prop::collection::vec(scalar(), 0..3).prop_map(Value::Array)),
        ),
        ("providerData", loose(any_value())),
        ("configuration", loose(configuration())),
    ])
}

/// The instance as file bytes: compact or pretty, sometimes damaged.
fn instance_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        instance(),
        any::<bool>(),
        0u8..8,
        any::<prop::sample::Index>(),
        any::<u8>(),
    )
        .prop_map(|(value, pretty, damage, at, byte)| {
            let mut bytes = if pretty {
                serde_json::to_vec_pretty(&value).unwrap()
            } else {
                serde_json::to_vec(&value).unwrap()
            };
            let at = at.index(bytes.len() + 1);
            match damage {
                0 => bytes.truncate(at),
                1 => bytes.insert(at, byte),
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes)?;
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_value()) {
        check(&serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn instance_shaped_json_never_panics(bytes in instance_bytes()) {
        check(&bytes)?;
    }

    #[test]
    fn json_like_text_never_panics(
        text in prop::collection::vec(
            prop::sample::select(vec![
                "{", "}", "[", "]", ",", ":", "\"", "\"configuration\"", "\"url\"",
                "\"event.poller.configuration\"", "\"datesConfiguration\"", "\"name\"", "1",
                "-0.5e3", "true", "null", " ", "\n", "\\", "\\u00e9", "\\ud800", "é", "\u{feff}",
            ]),
            0..64,
        )
    ) {
        check(text.concat().as_bytes())?;
    }
}

/// A grammar that can only produce rejected files would make the "instance despite errors"
/// branch untested: make sure the valid path is reachable and taken.
#[test]
fn the_grammar_reaches_valid_instances() {
    let valid = serde_json::json!({
        "element": {"key": "k"},
        "name": "n",
        "configuration": {
            "base.url": "https://api.example.com",
            "event.notification.enabled": "true",
            "event.notification.callback.url": "http://localhost:1/cb",
            "event.poller.refresh_interval": "15",
            "event.poller.configuration": {
                "c": {"url": "/hubs/crm/contacts", "idField": ""}
            }
        }
    });
    let loaded = load(&serde_json::to_vec(&valid).unwrap());
    assert!(loaded.instance.is_some(), "{:?}", loaded.findings);
}
