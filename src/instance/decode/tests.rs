//! Unit tests of every decoding rule (docs/instances.md), on JSON values, without files.

use super::*;
use crate::instance::model::{SignatureEncoding, WebhookObjectType, WebhookSignature};
use serde_json::json;
use std::collections::HashMap;

/// A fake environment and file system for secret references.
#[derive(Default)]
struct FakeSecrets {
    env: HashMap<String, String>,
    files: HashMap<PathBuf, String>,
    scope: SecretScope,
}

impl SecretSource for FakeSecrets {
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn file(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn scope(&self) -> &SecretScope {
        &self.scope
    }
}

fn decode_with(value: &Value, secrets: &FakeSecrets, unresolved: UnresolvedSecrets) -> Decoded {
    let ctx = DecodeContext {
        file_stem: "stem",
        base_dir: Path::new("/etc/ocpoll/instances.d"),
        unresolved,
        secrets,
    };
    decode(value, &ctx)
}

fn decode_value(value: &Value) -> Decoded {
    decode_with(value, &FakeSecrets::default(), UnresolvedSecrets::Warn)
}

/// A valid instance to start each test from.
fn valid() -> Value {
    json!({
        "element": {"key": "salesloft"},
        "name": "salesloft-prod",
        "tags": ["crm"],
        "configuration": {
            "base.url": "https://api.example.com/v2",
            "event.notification.enabled": "true",
            "event.notification.callback.url": "https://hooks.example.com/in",
            "event.poller.refresh_interval": "15",
            "event.poller.configuration": {
                "contacts": {
                    "url": "/contacts?updated_since=${date:yyyy-MM-dd'T'HH:mm:ssXXX}",
                    "idField": "id",
                    "datesConfiguration": {
                        "updatedDateField": "updated_at",
                        "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
                        "updatedDateTimezone": "GMT",
                        "createdDateField": "created_at"
                    }
                }
            }
        }
    })
}

/// `valid()` with `changes` applied to its configuration (null removes a key).
fn with_config(changes: Value) -> Value {
    let mut value = valid();
    let config = value["configuration"].as_object_mut().unwrap();
    for (key, change) in changes.as_object().unwrap() {
        if change.is_null() {
            config.remove(key);
        } else {
            config.insert(key.clone(), change.clone());
        }
    }
    value
}

/// `valid()` with `changes` applied to the contacts resource (null removes a key).
fn with_resource(changes: Value) -> Value {
    let mut value = valid();
    let resource = value["configuration"]["event.poller.configuration"]["contacts"]
        .as_object_mut()
        .unwrap();
    for (key, change) in changes.as_object().unwrap() {
        if change.is_null() {
            resource.remove(key);
        } else {
            resource.insert(key.clone(), change.clone());
        }
    }
    value
}

fn findings_text(decoded: &Decoded) -> Vec<String> {
    decoded
        .findings
        .iter()
        .map(|f| format!("{:?} {}: {}", f.severity, f.path, f.message))
        .collect()
}

/// Asserts one finding of `severity` at `path` whose message contains `phrase`.
#[track_caller]
fn assert_finding(decoded: &Decoded, severity: Severity, path: &str, phrase: &str) {
    let found = decoded.findings.iter().any(|f| {
        f.severity == severity && f.path.to_string() == path && f.message.contains(phrase)
    });
    assert!(
        found,
        "no {severity:?} at {path} containing {phrase:?}; findings: {:#?}",
        findings_text(decoded)
    );
}

const CONTACTS: &str = "configuration.event.poller.configuration.contacts";

#[test]
fn the_valid_instance_decodes_without_findings() {
    let decoded = decode_value(&valid());
    assert!(
        decoded.findings.is_empty(),
        "{:#?}",
        findings_text(&decoded)
    );
    let instance = decoded.instance.unwrap();
    assert_eq!(instance.name, "salesloft-prod");
    assert_eq!(instance.element_key.as_deref(), Some("salesloft"));
    assert_eq!(instance.tags, vec!["crm"]);
    assert!(instance.is_polled());
    assert_eq!(instance.refresh_interval, Some(Duration::from_secs(900)));
    assert_eq!(*instance.auth, Auth::None);
    let contacts = &instance.resources[0];
    assert_eq!(contacts.key, "contacts");
    assert_eq!(contacts.id_field.to_string(), "id");
    assert_eq!(contacts.pagination, Pagination::Auto { page_size: 200 });
    let dates = contacts.dates.as_ref().unwrap();
    assert_eq!(dates.updated.path.to_string(), "updated_at");
    // The created date inherits the updated date's format and zone.
    let created = dates.created.as_ref().unwrap();
    assert_eq!(created.format, dates.updated.format);
    assert_eq!(created.zone, dates.updated.zone);
}

#[test]
fn loose_typing_accepts_strings_booleans_and_numbers() {
    for (enabled, interval) in [
        (json!(true), json!(15)),
        (json!("true"), json!("15")),
        (json!("TRUE"), json!(15.0)),
    ] {
        let decoded = decode_value(&with_config(json!({
            "event.notification.enabled": enabled,
            "event.poller.refresh_interval": interval,
        })));
        let instance = decoded.instance.expect("valid");
        assert!(instance.events_enabled);
        assert_eq!(instance.refresh_interval, Some(Duration::from_secs(900)));
    }
    let decoded = decode_value(&with_config(json!({"event.notification.enabled": "maybe"})));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.event.notification.enabled",
        "\"maybe\" is not true or false",
    );
}

#[test]
fn placeholder_and_fractional_intervals_are_errors() {
    let decoded = decode_value(&with_config(
        json!({"event.poller.refresh_interval": "<minutes>"}),
    ));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.event.poller.refresh_interval",
        "\"<minutes>\" is not a number of minutes",
    );
    assert!(decoded.instance.is_none());
    for bad in [json!(15.5), json!("15.5"), json!(-1), json!({"m": 1})] {
        let decoded = decode_value(&with_config(json!({"event.poller.refresh_interval": bad})));
        assert_finding(
            &decoded,
            Severity::Error,
            "configuration.event.poller.refresh_interval",
            "is not a number of minutes",
        );
    }
    let decoded = decode_value(&with_config(json!({"event.poller.refresh_interval": 0})));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.event.poller.refresh_interval",
        "at least 1 minute",
    );
}

#[test]
fn refresh_seconds_overrides_minutes_and_an_interval_is_required() {
    let decoded = decode_value(&with_config(json!({"event.poller.refresh_seconds": "2"})));
    assert_eq!(
        decoded.instance.unwrap().refresh_interval,
        Some(Duration::from_secs(2))
    );
    let decoded = decode_value(&with_config(json!({"event.poller.refresh_interval": null})));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.event.poller.refresh_interval",
        "missing",
    );
}

#[test]
fn enabled_events_need_an_absolute_http_callback() {
    let decoded = decode_value(&with_config(
        json!({"event.notification.callback.url": null}),
    ));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.event.notification.callback.url",
        "no callback URL",
    );
    for bad in [
        "/relative/path",
        "ftp://files.example.com/x",
        "<YOUR_CALLBACK_URL>",
        "http://",
    ] {
        let decoded = decode_value(&with_config(
            json!({"event.notification.callback.url": bad}),
        ));
        assert_finding(
            &decoded,
            Severity::Error,
            "configuration.event.notification.callback.url",
            "is not an absolute http(s) URL",
        );
    }
}

#[test]
fn disabled_events_are_valid_without_callback_and_not_polled() {
    let decoded = decode_value(&with_config(json!({
        "event.notification.enabled": false,
        "event.notification.callback.url": null,
        "event.poller.refresh_interval": null,
        "event.poller.configuration": null,
    })));
    assert!(
        decoded.findings.is_empty(),
        "{:#?}",
        findings_text(&decoded)
    );
    let instance = decoded.instance.unwrap();
    assert!(!instance.events_enabled);
    assert!(!instance.is_polled());
}

#[test]
fn disabled_events_beside_resources_warn_that_nothing_is_polled() {
    let enabled = "configuration.event.notification.enabled";
    for (changes, phrase) in [
        (
            json!({"event.notification.enabled": false}),
            "events are disabled, so nothing will be polled",
        ),
        (
            json!({"event.notification.enabled": "false"}),
            "events are disabled, so nothing will be polled",
        ),
        (
            json!({"event.notification.enabled": null}),
            "missing, so events are disabled (the default) and nothing will be polled",
        ),
    ] {
        let decoded = decode_value(&with_config(changes));
        assert_eq!(decoded.findings.len(), 1, "{:#?}", findings_text(&decoded));
        assert_finding(&decoded, Severity::Warning, enabled, phrase);
        assert_finding(
            &decoded,
            Severity::Warning,
            enabled,
            "\"event.poller.configuration\" lists resources",
        );
        // Still valid, as SPEC says, and not polled.
        assert!(!decoded.instance.unwrap().is_polled());
    }
    // No resources, or an unresolved reference (already reported): no such warning.
    let decoded = decode_value(&with_config(json!({
        "event.notification.enabled": false,
        "event.poller.configuration": {},
    })));
    assert!(
        decoded.findings.is_empty(),
        "{:#?}",
        findings_text(&decoded)
    );
    let decoded = decode_value(&with_config(
        json!({"event.notification.enabled": "${env:UNSET}"}),
    ));
    assert_eq!(decoded.findings.len(), 1, "{:#?}", findings_text(&decoded));
    assert_finding(
        &decoded,
        Severity::Warning,
        enabled,
        "unresolved secret: set UNSET",
    );
}

#[test]
fn misspelled_keys_near_a_known_one_are_warned_about_at_every_level() {
    let mut value = with_resource(json!({
        "idField": null,
        "idFeild": "id",
        "lookbakSeconds": 60,
        "pagination": {"type": "cursor", "cursorPath": "next", "cursorParm": "c"},
    }));
    let config = value["configuration"].as_object_mut().unwrap();
    config.insert("event.notification.batch.sise".into(), json!("10"));
    config.insert("Base.Url".into(), json!("https://other.example.com"));
    let dates = config["event.poller.configuration"]["contacts"]["datesConfiguration"]
        .as_object_mut()
        .unwrap();
    dates.insert("updatedDateFeild".into(), json!("x"));
    value["tagz"] = json!(["x"]);
    let decoded = decode_value(&value);
    let dates = format!("{CONTACTS}.datesConfiguration");
    for (path, meant) in [
        (format!("{CONTACTS}.idFeild"), "idField"),
        (format!("{CONTACTS}.lookbakSeconds"), "lookbackSeconds"),
        (format!("{CONTACTS}.pagination.cursorParm"), "cursorParam"),
        (
            "configuration.event.notification.batch.sise".to_owned(),
            "event.notification.batch.size",
        ),
        ("configuration.Base.Url".to_owned(), "base.url"),
        (format!("{dates}.updatedDateFeild"), "updatedDateField"),
        ("tagz".to_owned(), "tags"),
    ] {
        assert_finding(
            &decoded,
            Severity::Warning,
            &path,
            &format!("is not a key ocpoll knows and is ignored; did you mean `{meant}`?"),
        );
    }
    // The misspelled idField is missing, so that is an error too.
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{CONTACTS}.idField"),
        "missing",
    );
    assert_eq!(decoded.findings.len(), 8, "{:#?}", findings_text(&decoded));
}

#[test]
fn unknown_keys_near_nothing_known_stay_silent() {
    let mut value = with_config(json!({
        "filter.response.nulls": "true",
        "oauth.callback.url": "https://example.com/cb",
        "oauth.user.refresh_time": "1",
        "custom.provider.setting": "x",
        "uri": "https://example.com",
    }));
    value["configuration"]["event.poller.configuration"]["contacts"]["objectName"] = json!("x");
    value["description"] = json!("crm");
    let decoded = decode_value(&value);
    assert!(
        decoded.findings.is_empty(),
        "{:#?}",
        findings_text(&decoded)
    );
    assert_eq!(near_miss("idfield", RESOURCE_KEYS), Some("idField"));
    assert_eq!(near_miss("urls", RESOURCE_KEYS), Some("url"));
    assert_eq!(
        near_miss("uri", RESOURCE_KEYS),
        None,
        "three letters: case only"
    );
    assert_eq!(near_miss("URL", RESOURCE_KEYS), Some("url"));
    assert_eq!(near_miss("url", RESOURCE_KEYS), None, "a known key");
}

#[test]
fn base_url_must_be_absolute_and_relative_urls_need_it() {
    let decoded = decode_value(&with_config(json!({"base.url": "api.example.com"})));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.base.url",
        "is not an absolute http(s) URL",
    );
    let decoded = decode_value(&with_config(json!({"base.url": null})));
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{CONTACTS}.url"),
        "relative but configuration has no \"base.url\"",
    );
    // An absolute resource URL needs no base.
    let decoded = decode_value(&{
        let mut value = with_config(json!({"base.url": null}));
        value["configuration"]["event.poller.configuration"]["contacts"]["url"] =
            json!("https://api.example.com/contacts");
        value
    });
    assert!(decoded.instance.is_some(), "{:#?}", findings_text(&decoded));
}

#[test]
fn an_invalid_base_url_is_reported_once() {
    let decoded = decode_value(&with_config(json!({"base.url": "${env:BASE}"})));
    // Unresolved: a warning, and the relative URL is not blamed for it.
    assert!(
        decoded.findings.iter().all(|f| !f.is_error()),
        "{:#?}",
        findings_text(&decoded)
    );
    let decoded = decode_value(&with_config(json!({"base.url": "not-a-url"})));
    let errors: Vec<_> = decoded.findings.iter().filter(|f| f.is_error()).collect();
    assert_eq!(errors.len(), 1, "{:#?}", findings_text(&decoded));
    assert_eq!(errors[0].path.to_string(), "configuration.base.url");
}

#[test]
fn huge_intervals_are_errors_not_overflows() {
    for key in [
        "event.poller.refresh_interval",
        "event.poller.refresh_seconds",
    ] {
        let decoded = decode_value(&with_config(json!({key: "18446744073709551615"})));
        assert_finding(
            &decoded,
            Severity::Error,
            &format!("configuration.{key}"),
            "at most a year",
        );
    }
}

#[test]
fn a_resource_needs_a_url_and_an_id_field() {
    let decoded = decode_value(&with_resource(json!({"url": null, "idField": null})));
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{CONTACTS}.url"),
        "has no \"url\"",
    );
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{CONTACTS}.idField"),
        "missing \"idField\"",
    );
    // An empty idField is allowed: records are identified by their content.
    let decoded = decode_value(&with_resource(json!({"idField": ""})));
    assert!(decoded.instance.unwrap().resources[0].id_field.is_empty());
}

#[test]
fn unknown_macros_and_bad_formats_in_urls_are_errors() {
    let decoded = decode_value(&with_resource(json!({"url": "/c?since=${foo:yyyy}"})));
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{CONTACTS}.url"),
        "of the url",
    );
    let decoded = decode_value(&with_resource(json!({"url": "/c?since=${date:yyyy-QQ}"})));
    assert_finding(&decoded, Severity::Error, &format!("{CONTACTS}.url"), "'Q'");
}

#[test]
fn bad_date_formats_and_timezones_are_errors() {
    let decoded = decode_value(&with_resource(json!({"datesConfiguration": {
        "updatedDateField": "updated",
        "updatedDateFormat": "yyyy-QQ",
        "updatedDateTimezone": "Mars/Olympus",
    }})));
    let dates = format!("{CONTACTS}.datesConfiguration");
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{dates}.updatedDateFormat"),
        "'Q'",
    );
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{dates}.updatedDateTimezone"),
        "Mars/Olympus",
    );
    let decoded = decode_value(&with_resource(
        json!({"datesConfiguration": {"updatedDateFormat": "seconds"}}),
    ));
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{dates}.updatedDateField"),
        "missing",
    );
}

#[test]
fn dotless_fraction_formats_are_warned_about() {
    let decoded = decode_value(&with_resource(json!({"datesConfiguration": {
        "updatedDateField": "updated_at",
        "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ssSSSSSSXXX",
    }})));
    assert_finding(
        &decoded,
        Severity::Warning,
        &format!("{CONTACTS}.datesConfiguration.updatedDateFormat"),
        "without a '.'",
    );
    assert!(decoded.instance.is_some());
}

#[test]
fn doubtful_date_patterns_are_warned_about_with_the_pattern_meant() {
    let decoded = decode_value(&with_resource(json!({
        "url": "/contacts?since=${date:yyyy-MM-dd'T'HH:MM:ss}",
        "datesConfiguration": {
            "updatedDateField": "updated_at",
            "updatedDateFormat": "YYYY-MM-DD'T'hh:mm:SS",
        },
    })));
    let format = format!("{CONTACTS}.datesConfiguration.updatedDateFormat");
    for phrase in [
        "YYYY is Java's week year",
        "DD is the day of the year",
        "hh is the hour on a 12-hour clock",
        "SS is the fraction of a second",
    ] {
        assert_finding(&decoded, Severity::Warning, &format, phrase);
    }
    assert_finding(
        &decoded,
        Severity::Warning,
        &format,
        "\"YYYY-MM-DD'T'hh:mm:SS\": DD is the day of the year (1-366), beside a month: the day of \
         the month is dd; did you mean \"yyyy-MM-dd'T'HH:mm:ss\"?",
    );
    assert_finding(
        &decoded,
        Severity::Warning,
        &format!("{CONTACTS}.url"),
        "date format \"yyyy-MM-dd'T'HH:MM:ss\": MM after the hour is the month: minutes are mm; \
         did you mean \"yyyy-MM-dd'T'HH:mm:ss\"? (at character 17 of the url)",
    );
    assert_eq!(decoded.findings.len(), 5, "{:#?}", findings_text(&decoded));
    // Warnings: the instance is valid and YYYY reads as the year.
    assert!(decoded.instance.is_some());
    // A pattern from a secret reference is named, never quoted.
    let secrets = FakeSecrets {
        env: HashMap::from([("FORMAT".to_owned(), "yyyy-MM-DD".to_owned())]),
        ..FakeSecrets::default()
    };
    let value = with_resource(json!({"datesConfiguration": {
        "updatedDateField": "updated_at",
        "updatedDateFormat": "${env:FORMAT}",
    }}));
    let decoded = decode_with(&value, &secrets, UnresolvedSecrets::Warn);
    assert_eq!(
        findings_text(&decoded),
        [format!(
            "Warning {format}: \"${{env:FORMAT}}\": DD is the day of the year (1-366), beside a \
             month: the day of the month is dd"
        )]
    );
}

#[test]
fn missing_datesconfiguration_is_snapshot_mode() {
    let decoded = decode_value(&with_resource(json!({"datesConfiguration": null})));
    assert!(decoded.instance.unwrap().resources[0].dates.is_none());
}

#[test]
fn placeholders_need_path_params() {
    let url = "/calendars/{calendarId}/changed-events";
    let decoded = decode_value(&with_resource(json!({"url": url})));
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{CONTACTS}.url"),
        "{calendarId} has no value",
    );
    let decoded = decode_value(&with_resource(json!({
        "url": url,
        "pathParams": {"calendarId": ["primary", "team@example.com"]},
    })));
    let instance = decoded.instance.expect("valid with pathParams");
    assert_eq!(
        instance.resources[0].path_params["calendarId"],
        vec!["primary", "team@example.com"]
    );
    // A single value may be given without a list; an unused one is a warning.
    let decoded = decode_value(&with_resource(json!({
        "url": url,
        "pathParams": {"calendarId": "primary", "unused": "x"},
    })));
    assert_finding(
        &decoded,
        Severity::Warning,
        &format!("{CONTACTS}.pathParams.unused"),
        "unused",
    );
    assert!(decoded.instance.is_some());
}

#[test]
fn placeholder_secrets_are_warnings_and_never_shown() {
    for placeholder in [
        "xxxxxxxxxxxxxxxxxx",
        "XXXXXXXX",
        "<INSERT_PASSWORD>",
        "<INSERT>",
        "<password>",
    ] {
        let decoded = decode_value(&with_config(
            json!({"username": "me", "password": placeholder}),
        ));
        assert_finding(
            &decoded,
            Severity::Warning,
            "configuration.password",
            "placeholder",
        );
        assert!(decoded.instance.is_some());
        for line in findings_text(&decoded) {
            assert!(!line.contains(placeholder), "{line}");
        }
    }
}

#[test]
fn every_problem_of_a_file_is_reported() {
    let mut value = with_config(json!({
        "event.poller.refresh_interval": "<minutes>",
        "event.notification.callback.url": "not a url",
        "base.url": null,
    }));
    value["configuration"]["event.poller.configuration"]["other"] = json!({"idField": "id"});
    let decoded = decode_value(&value);
    let errors = decoded.findings.iter().filter(|f| f.is_error()).count();
    assert_eq!(errors, 4, "{:#?}", findings_text(&decoded));
}

#[test]
fn the_salesloft_seed_mis_nesting_is_explained() {
    let mut value = valid();
    let resources = value["configuration"]["event.poller.configuration"]
        .as_object_mut()
        .unwrap();
    resources.insert("name".into(), json!("false"));
    resources.insert("providerData".into(), json!({"code": "x"}));
    resources["contacts"]["oauth.user.refresh_token"] = json!("null");
    let decoded = decode_value(&value);
    let poller = "configuration.event.poller.configuration";
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{poller}.name"),
        "found \"false\"",
    );
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{poller}.name"),
        "check the closing braces",
    );
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{poller}.providerData.url"),
        "check the closing braces",
    );
    assert_finding(
        &decoded,
        Severity::Warning,
        &format!("{CONTACTS}.oauth.user.refresh_token"),
        "not a resource setting",
    );
}

#[test]
fn names_fall_back_to_the_file_stem_and_may_not_contain_a_slash() {
    let mut value = valid();
    value["name"] = json!("<INSTANCE_NAME>");
    let decoded = decode_value(&value);
    assert_eq!(decoded.instance.as_ref().unwrap().name, "stem");
    assert_finding(&decoded, Severity::Warning, "name", "placeholder");
    value.as_object_mut().unwrap().remove("name");
    assert_eq!(decode_value(&value).instance.unwrap().name, "stem");
    value["name"] = json!("team/prod");
    assert_finding(
        &decode_value(&value),
        Severity::Error,
        "name",
        "may not contain '/'",
    );
    value["name"] = json!(42);
    assert_finding(
        &decode_value(&value),
        Severity::Error,
        "name",
        "expected a string",
    );
}

#[test]
fn the_root_must_be_an_object_with_a_configuration() {
    let decoded = decode_value(&json!([1, 2]));
    assert_finding(&decoded, Severity::Error, "", "found an array");
    let decoded = decode_value(&json!({"name": "x"}));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration",
        "missing \"configuration\"",
    );
    let decoded = decode_value(&json!({"name": "x", "configuration": "yes"}));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration",
        "expected an object",
    );
}

#[test]
fn each_auth_family_is_recognised() {
    let cases = [
        (json!({"username": "u", "password": "p"}), "basic"),
        (json!({"api.key": "k"}), "api key"),
        (json!({"oauth.access.token": "t"}), "bearer token"),
        (
            json!({"oauth.token.url": "https://auth.example.com/token", "oauth.api.key": "id",
                   "oauth.api.secret": "s", "oauth.user.refresh_token": "r"}),
            "oauth2 refresh",
        ),
        (
            json!({"elements.user.secret": "u", "elements.organization.secret": "o",
                   "elements.instance.token": "e", "username": "ignored", "password": "ignored"}),
            "open connectors hub",
        ),
    ];
    for (keys, kind) in cases {
        let decoded = decode_value(&with_config(keys));
        let instance = decoded
            .instance
            .unwrap_or_else(|| panic!("{kind}: {:#?}", findings_text(&decode_value(&valid()))));
        assert_eq!(instance.auth.kind(), kind);
    }
    let decoded = decode_value(&with_config(
        json!({"api.key": "k", "api.key.header": "X-SmartToken"}),
    ));
    assert_eq!(
        *decoded.instance.unwrap().auth,
        Auth::ApiKey {
            header: "X-SmartToken".into(),
            key: Secret::new("k")
        }
    );
}

#[test]
fn conflicting_or_incomplete_auth_is_reported() {
    let decoded = decode_value(&with_config(
        json!({"username": "u", "password": "p", "api.key": "k"}),
    ));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration",
        "several authentication methods",
    );
    let decoded = decode_value(&with_config(json!({"password": "p"})));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.username",
        "missing",
    );
    let decoded = decode_value(&with_config(json!({"elements.user.secret": "u"})));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.elements.instance.token",
        "missing",
    );
    let decoded = decode_value(&with_config(
        json!({"oauth.token.url": "https://a.example.com/t"}),
    ));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.oauth.token.url",
        "needs oauth.api.key",
    );
    // The provider app's credentials alone (as in the seeds) are a warning: no auth is sent.
    let decoded = decode_value(&with_config(
        json!({"oauth.api.key": "id", "oauth.api.secret": "s"}),
    ));
    assert_finding(
        &decoded,
        Severity::Warning,
        "configuration.oauth.api.key",
        "sends no authentication",
    );
    assert_eq!(*decoded.instance.unwrap().auth, Auth::None);
}

#[test]
fn secret_references_resolve_and_missing_ones_depend_on_the_mode() {
    let mut secrets = FakeSecrets::default();
    secrets.env.insert("CRM_PASSWORD".into(), "from-env".into());
    secrets.files.insert(
        PathBuf::from("/etc/ocpoll/instances.d/secrets/key"),
        "from-file\n".into(),
    );
    let value = with_config(json!({
        "username": "u",
        "password": "${env:CRM_PASSWORD}",
        "event.notification.signature.key": "${file:secrets/key}",
    }));
    let decoded = decode_with(&value, &secrets, UnresolvedSecrets::Fail);
    let instance = decoded.instance.expect("resolved");
    let Auth::Basic { password, .. } = &*instance.auth else {
        panic!("basic auth expected");
    };
    assert_eq!(password.expose(), "from-env");
    assert_eq!(instance.signature_keys[0].expose(), "from-file");

    let missing =
        with_config(json!({"username": "u", "password": "${env:NOPE}", "api.key.header": null}));
    let decoded = decode_with(&missing, &FakeSecrets::default(), UnresolvedSecrets::Warn);
    assert_finding(
        &decoded,
        Severity::Warning,
        "configuration.password",
        "unresolved secret: set NOPE",
    );
    assert!(decoded.instance.is_some());
    let decoded = decode_with(&missing, &FakeSecrets::default(), UnresolvedSecrets::Fail);
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.password",
        "unresolved secret: set NOPE",
    );
    assert!(decoded.instance.is_none());

    let missing_file = with_config(json!({"event.notification.signature.key": "${file:gone.txt}"}));
    let decoded = decode_with(
        &missing_file,
        &FakeSecrets::default(),
        UnresolvedSecrets::Warn,
    );
    assert_finding(
        &decoded,
        Severity::Warning,
        "configuration.event.notification.signature.key",
        "unresolved secret: file /etc/ocpoll/instances.d/gone.txt not readable (",
    );
}

/// systemd credentials (issue 14): `${file:$CREDENTIALS_DIRECTORY/NAME}` reads NAME from the
/// folder systemd names in that variable; without the variable it is unresolved, and it says
/// why; a look-alike variable name is an ordinary relative path.
#[test]
fn file_references_may_start_at_the_credentials_directory() {
    let mut secrets = FakeSecrets::default();
    secrets.env.insert(
        "CREDENTIALS_DIRECTORY".into(),
        "/run/credentials/ocpoll.service".into(),
    );
    secrets.files.insert(
        PathBuf::from("/run/credentials/ocpoll.service/crm-signature-key"),
        "from-credential\n".into(),
    );
    let value = with_config(json!({
        "event.notification.signature.key": "${file:$CREDENTIALS_DIRECTORY/crm-signature-key}",
    }));
    let decoded = decode_with(&value, &secrets, UnresolvedSecrets::Fail);
    let instance = decoded.instance.expect("resolved");
    assert_eq!(instance.signature_keys[0].expose(), "from-credential");

    let decoded = decode_with(&value, &FakeSecrets::default(), UnresolvedSecrets::Warn);
    assert_finding(
        &decoded,
        Severity::Warning,
        "configuration.event.notification.signature.key",
        "unresolved secret: set CREDENTIALS_DIRECTORY (systemd sets it for a service with LoadCredential=)",
    );

    let look_alike = with_config(json!({
        "event.notification.signature.key": "${file:$CREDENTIALS_DIRECTORYX/key}",
    }));
    let decoded = decode_with(&look_alike, &secrets, UnresolvedSecrets::Warn);
    assert_finding(
        &decoded,
        Severity::Warning,
        "configuration.event.notification.signature.key",
        "file /etc/ocpoll/instances.d/$CREDENTIALS_DIRECTORYX/key not readable",
    );
}

/// Issue 13, item 11: `[secrets]` limits what references read; a reference outside the scope
/// is an error of its key even for `validate` (Warn), and the message shows no value.
#[test]
fn secret_references_outside_the_scope_are_errors_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("secrets");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("key"), "file-secret-value\n").unwrap();
    std::fs::write(tmp.path().join("outside"), "outside-secret-value").unwrap();
    let mut secrets = FakeSecrets::default();
    secrets.env.insert("CRM_PASSWORD".into(), "from-env".into());
    secrets
        .env
        .insert("HOME".into(), "home-secret-value".into());
    let canonical_key = std::fs::canonicalize(root.join("key")).unwrap();
    secrets
        .files
        .insert(canonical_key, "file-secret-value\n".into());
    secrets.scope = SecretScope {
        env_prefixes: Some(vec!["CRM_".into()]),
        file_roots: Some(vec![root.clone()]),
    };
    let allowed = with_config(json!({
        "username": "u",
        "password": "${env:CRM_PASSWORD}",
        "event.notification.signature.key": format!("${{file:{}}}", root.join("key").display()),
    }));
    let decoded = decode_with(&allowed, &secrets, UnresolvedSecrets::Fail);
    let instance = decoded.instance.expect("allowed references resolve");
    assert_eq!(instance.signature_keys[0].expose(), "file-secret-value");

    for mode in [UnresolvedSecrets::Warn, UnresolvedSecrets::Fail] {
        let refused = with_config(json!({
            "username": "u",
            "password": "${env:HOME}",
            "event.notification.signature.key":
                format!("${{file:{}/../outside}}", root.display()),
        }));
        let decoded = decode_with(&refused, &secrets, mode);
        assert!(decoded.instance.is_none(), "{:?}", decoded.findings);
        assert_finding(
            &decoded,
            Severity::Error,
            "configuration.password",
            "${env:HOME}: environment variable HOME is outside [secrets] env_prefixes (\"CRM_\")",
        );
        assert_finding(
            &decoded,
            Severity::Error,
            "configuration.event.notification.signature.key",
            "is outside [secrets] file_roots",
        );
        let shown = format!("{:?}", decoded.findings);
        assert!(!shown.contains("secret-value"), "{shown}");
    }
}

#[test]
fn no_secret_reaches_debug_output_or_findings() {
    let mut secrets = FakeSecrets::default();
    secrets
        .env
        .insert("TOKEN".into(), "env-secret-value".into());
    let value = with_config(json!({
        "elements.user.secret": "hub-user-secret",
        "elements.organization.secret": "hub-org-secret",
        "elements.instance.token": "${env:TOKEN}",
        "event.notification.signature.key": ["sig-key-one", "sig-key-two"],
        "http.headers": {"X-Api-Token": "header-secret"},
        "providerSecret": "unknown-key-secret",
        "event.poller.refresh_interval": "<minutes>",
    }));
    let decoded = decode_with(&value, &secrets, UnresolvedSecrets::Warn);
    assert!(decoded.instance.is_none());
    let valid_value = with_config(json!({
        "elements.user.secret": "hub-user-secret",
        "elements.organization.secret": "hub-org-secret",
        "elements.instance.token": "${env:TOKEN}",
        "event.notification.signature.key": ["sig-key-one", "sig-key-two"],
        "http.headers": {"X-Api-Token": "header-secret"},
        "providerSecret": "unknown-key-secret",
    }));
    let instance = decode_with(&valid_value, &secrets, UnresolvedSecrets::Warn)
        .instance
        .expect("valid");
    let shown = format!("{instance:?} {instance:#?} {:?}", findings_text(&decoded));
    for secret in [
        "hub-user-secret",
        "hub-org-secret",
        "env-secret-value",
        "sig-key-one",
        "sig-key-two",
        "header-secret",
        "unknown-key-secret",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked");
    }
    assert_eq!(instance.signature_keys.len(), 2);
}

#[test]
fn a_whsec_signature_key_must_be_base64() {
    let key = "event.notification.signature.key";
    let good = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    assert!(
        decode_value(&with_config(json!({key: good})))
            .instance
            .is_some()
    );
    let decoded = decode_value(&with_config(json!({key: [good, "whsec_%%hidden-key%%"]})));
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("configuration.{key}[1]"),
        "whsec_",
    );
    assert!(
        findings_text(&decoded)
            .iter()
            .all(|line| !line.contains("hidden-key"))
    );
}

#[test]
fn unknown_keys_are_kept() {
    let decoded = decode_value(&with_config(json!({"filter.response.nulls": "true"})));
    let instance = decoded.instance.unwrap();
    assert_eq!(
        instance.other_configuration.get("filter.response.nulls"),
        Some(&json!("true"))
    );
}

#[test]
fn webhooks_instances_are_valid_received_and_not_polled() {
    let decoded = decode_value(&with_config(json!({"event.vendor.type": "webhooks"})));
    assert_finding(
        &decoded,
        Severity::Warning,
        "configuration.event.poller.configuration",
        "a webhooks instance is not polled",
    );
    let instance = decoded.instance.unwrap();
    assert!(!instance.is_polled());
    assert!(instance.receives_webhooks());
    let webhook = instance.webhook.unwrap();
    assert!(webhook.signature.is_none() && webhook.standardize.is_none());
    let decoded = decode_value(&with_config(json!({"event.vendor.type": "carrier-pigeon"})));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.event.vendor.type",
        "not an event type",
    );
}

/// A webhooks instance: `valid()` turned into one, with `changes` applied to its configuration.
fn webhooks_with(changes: Value) -> Value {
    let mut base = json!({
        "event.vendor.type": "webhooks",
        "event.poller.configuration": null,
        "event.poller.refresh_interval": null,
    });
    for (key, value) in changes.as_object().unwrap() {
        base[key] = value.clone();
    }
    with_config(base)
}

#[test]
fn webhook_signatures_decode_and_are_checked() {
    let decoded = decode_value(&webhooks_with(json!({
        "webhook.signature.header": "X-Hub-Signature-256",
        "webhook.signature.key": "s3cr3t-value",
        "webhook.signature.prefix": "sha256=",
        "webhook.delivery.header": "X-GitHub-Delivery",
        "webhook.rate.per_minute": "120",
    })));
    assert!(decoded.findings.is_empty(), "{:?}", decoded.findings);
    let webhook = decoded.instance.unwrap().webhook.unwrap();
    assert_eq!(
        webhook.signature,
        Some(WebhookSignature::Hmac {
            header: "X-Hub-Signature-256".into(),
            key: Secret::new("s3cr3t-value"),
            encoding: SignatureEncoding::Hex,
            prefix: "sha256=".into(),
        })
    );
    assert_eq!(
        webhook.delivery_header.as_deref(),
        Some("X-GitHub-Delivery")
    );
    assert_eq!(webhook.rate_per_minute, 120);

    let cases = [
        (
            json!({"webhook.signature.key": "k"}),
            "configuration.webhook.signature.header",
            "missing",
        ),
        (
            json!({"webhook.signature.header": "X-Sig"}),
            "configuration.webhook.signature.key",
            "missing",
        ),
        (
            json!({"webhook.signature.header": "X Sig", "webhook.signature.key": "k"}),
            "configuration.webhook.signature.header",
            "not a valid HTTP header name",
        ),
        (
            json!({"webhook.signature.header": "X-Sig", "webhook.signature.key": "k",
                   "webhook.signature.encoding": "base32"}),
            "configuration.webhook.signature.encoding",
            "not \"hex\" or \"base64\"",
        ),
        (
            json!({"webhook.signature.type": "rsa"}),
            "configuration.webhook.signature.type",
            "not a signature type",
        ),
        (
            json!({"webhook.signature.type": "standard-webhooks", "webhook.signature.key": "whsec_%%%"}),
            "configuration.webhook.signature.key",
            "not base64",
        ),
        (
            json!({"webhook.rate.per_minute": 0}),
            "configuration.webhook.rate.per_minute",
            "at least 1",
        ),
        (
            json!({"webhook.invalid.body": "drop"}),
            "configuration.webhook.invalid.body",
            "not \"reject\" or \"raw\"",
        ),
    ];
    for (changes, path, message) in cases {
        let decoded = decode_value(&webhooks_with(changes.clone()));
        assert_finding(&decoded, Severity::Error, path, message);
        assert!(decoded.instance.is_none(), "{changes}");
    }
    // The key is a secret: never quoted, whatever is wrong around it.
    let decoded = decode_value(&webhooks_with(
        json!({"webhook.signature.key": "s3cr3t-value"}),
    ));
    assert!(!format!("{:?}", decoded.findings).contains("s3cr3t"));
}

#[test]
fn webhook_configuration_decodes_like_a_resource_without_a_url() {
    let decoded = decode_value(&webhooks_with(json!({"webhook.configuration": {
        "recordsPath": "data.items",
        "idField": "id",
        "objectTypeField": "type",
        "eventTypeField": "action",
        "eventTypeMap": {"opened": "CREATED", "closed": "deleted"},
        "datesConfiguration": {"updatedDateField": "updated", "updatedDateFormat": "milliseconds"}
    }})));
    assert!(decoded.findings.is_empty(), "{:?}", decoded.findings);
    let standardize = decoded
        .instance
        .unwrap()
        .webhook
        .unwrap()
        .standardize
        .unwrap();
    assert_eq!(
        standardize.records_path,
        Some(FieldPath::parse("data.items"))
    );
    assert_eq!(
        standardize.object_type,
        WebhookObjectType::Field(FieldPath::parse("type"))
    );
    assert_eq!(standardize.event_type_map.len(), 2);
    assert!(standardize.dates.is_some());

    let cases = [
        (
            json!({"objectType": "a", "objectTypeField": "b"}),
            "configuration.webhook.configuration.objectTypeField",
            "not both",
        ),
        (
            json!({"eventTypeField": "a", "eventTypeMap": {"x": "MOVED"}}),
            "configuration.webhook.configuration.eventTypeMap.x",
            "not CREATED, UPDATED or DELETED",
        ),
        (
            json!({"datesConfiguration": {"updatedDateField": "u", "updatedDateFormat": "yyyy-QQ"}}),
            "configuration.webhook.configuration.datesConfiguration.updatedDateFormat",
            "",
        ),
        (
            json!({"recordsPath": ""}),
            "configuration.webhook.configuration.recordsPath",
            "empty",
        ),
    ];
    for (configuration, path, message) in cases {
        let decoded = decode_value(&webhooks_with(
            json!({"webhook.configuration": configuration}),
        ));
        assert_finding(&decoded, Severity::Error, path, message);
    }
    let decoded = decode_value(&webhooks_with(
        json!({"webhook.configuration": {"idFeld": "id"}}),
    ));
    assert_finding(
        &decoded,
        Severity::Warning,
        "configuration.webhook.configuration.idFeld",
        "did you mean `idField`",
    );
    // webhook keys on a polling instance are reported as ignored.
    let decoded = decode_value(&with_config(json!({"webhook.signature.header": "X-Sig"})));
    assert_finding(
        &decoded,
        Severity::Warning,
        "configuration.webhook.signature.header",
        "not a webhooks instance",
    );
}

#[test]
fn resource_options_decode() {
    let decoded = decode_value(&with_resource(json!({
        "recordsPath": "data.items",
        "lookbackSeconds": "30",
        "pagination": {"type": "cursor", "cursorPath": "meta.next", "cursorParam": "after"},
    })));
    let instance = decoded.instance.unwrap();
    let resource = &instance.resources[0];
    assert_eq!(
        resource.records_path.as_ref().unwrap().to_string(),
        "data.items"
    );
    assert_eq!(resource.lookback, Duration::from_secs(30));
    assert_eq!(
        resource.pagination,
        Pagination::Cursor {
            cursor_path: FieldPath::parse("meta.next"),
            cursor_param: "after".into()
        }
    );
    for (pagination, expected) in [
        (
            json!({"type": "page"}),
            Pagination::Page {
                page_param: "page".into(),
            },
        ),
        (json!({"type": "none"}), Pagination::None),
        (json!({"pageSize": 50}), Pagination::Auto { page_size: 50 }),
    ] {
        let decoded = decode_value(&with_resource(json!({"pagination": pagination})));
        assert_eq!(decoded.instance.unwrap().resources[0].pagination, expected);
    }
    let decoded = decode_value(&with_resource(json!({"pagination": {"type": "cursor"}})));
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{CONTACTS}.pagination.cursorPath"),
        "missing",
    );
    let decoded = decode_value(&with_resource(json!({"pagination": {"type": "scroll"}})));
    assert_finding(
        &decoded,
        Severity::Error,
        &format!("{CONTACTS}.pagination.type"),
        "not a pagination type",
    );
}

#[test]
fn http_and_notification_options_decode() {
    let decoded = decode_value(&with_config(json!({
        "http.headers": {"Accept": "application/json"},
        "http.timeout.seconds": "20",
        "http.ca.file": "ca.pem",
        "event.notification.batch.size": "10",
        "event.notification.batch.bytes": 65536,
        "event.notification.retry.hours": 2,
    })));
    let instance = decoded.instance.unwrap();
    assert_eq!(instance.http.timeout, Duration::from_secs(20));
    assert_eq!(instance.http.headers[0].0, "Accept");
    assert_eq!(
        instance.http.ca_file,
        Some(PathBuf::from("/etc/ocpoll/instances.d/ca.pem"))
    );
    assert_eq!(instance.notification.batch_size, 10);
    assert_eq!(instance.notification.batch_bytes, 65536);
    assert_eq!(
        instance.notification.retry_for,
        Some(Duration::from_secs(7200))
    );
    let decoded = decode_value(&with_config(json!({
        "http.headers": {"Bad Header": "x"},
        "event.notification.batch.size": 0,
    })));
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.http.headers.Bad Header",
        "not a valid HTTP header name",
    );
    assert_finding(
        &decoded,
        Severity::Error,
        "configuration.event.notification.batch.size",
        "at least 1",
    );
}

#[test]
fn placeholder_detection() {
    for yes in [
        "xxxx",
        "XXXXXXXXXXXX",
        "<INSERT>",
        "<INSERT_TOKEN>",
        "<Google app Client ID>",
        "null",
    ] {
        assert!(is_placeholder(yes), "{yes}");
    }
    for no in ["xxx", "x1xx", "secret", "a<b>", "hunter2"] {
        assert!(!is_placeholder(no), "{no}");
    }
}
