//! `ocpoll validate` over the seed bodies exactly as the Open Connectors documentation prints
//! them (tests/fixtures/seeds/, see shared/seeds/README.md): the real inputs users paste.
//!
//! Each test lists every finding the file must produce (severity, JSON path and a key phrase of
//! the message), so a missing finding and a new spurious one both fail.

mod util;

use std::path::Path;
use util::{Dir, Finding};

const ERROR: &str = "error";
const WARNING: &str = "warning";

/// What one finding must look like: severity, exact JSON path, phrases its message contains.
type Expected<'a> = (&'a str, &'a str, &'a [&'a str]);

const RELATIVE: &[&str] = &["is relative", "\"base.url\""];
const PLACEHOLDER_SECRET: &[&str] = &["looks like a placeholder", "value hidden"];

const CONTACTS: &str = "configuration.event.poller.configuration.contacts";
const CALENDAR: &str =
    "configuration.event.poller.configuration.calendars/{calendarId}/changed-events";
const PRIMARY: &str = "configuration.event.poller.configuration.calendars/primary/changed-events";
const GROUPS: &str = "configuration.event.poller.configuration.changed-groups";
/// One field for both dates: read as no created field (docs/design.md#change-detection).
const SAME_DATE_FIELD: &[&str] = &["the same field as \"updatedDateField\"", "UPDATED"];

fn created_field_of(resource: &str) -> String {
    format!("{resource}.datesConfiguration.createdDateField")
}
const MESSAGES: &str = "configuration.event.poller.configuration.changed-messages";

fn validate_seed(name: &str) -> (util::Run, Vec<Finding>) {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seeds");
    assert!(seeds.join(name).is_file(), "missing fixture {name}");
    let dir = Dir::new();
    let run = dir
        .command()
        .current_dir(&seeds)
        .args(["validate", "--format", "json", name])
        .run();
    run.assert_no_panic();
    let findings = run.findings();
    for finding in &findings {
        assert_eq!(finding.file, name, "{finding:?}");
        assert!(
            finding.line.is_some() && finding.column.is_some(),
            "every seed finding has a position: {finding:?}"
        );
    }
    (run, findings)
}

/// Every expected finding is there, once, and there is nothing else.
fn assert_findings(name: &str, expected_exit: i32, expected: &[Expected]) {
    let (run, findings) = validate_seed(name);
    let mut unmatched: Vec<&Finding> = findings.iter().collect();
    let mut missing = Vec::new();
    for (severity, path, phrases) in expected {
        let found = unmatched.iter().position(|f| {
            f.severity == *severity
                && f.path == *path
                && phrases.iter().all(|phrase| f.message.contains(phrase))
        });
        match found {
            Some(index) => {
                unmatched.remove(index);
            }
            None => missing.push(format!("{severity} {path}: {phrases:?}")),
        }
    }
    assert!(
        missing.is_empty() && unmatched.is_empty(),
        "{name}:\nmissing:\n  {}\nunexpected:\n  {}\n{}",
        missing.join("\n  "),
        unmatched
            .iter()
            .map(|f| format!("{} {}: {}", f.severity, f.path, f.message))
            .collect::<Vec<_>>()
            .join("\n  "),
        run.show()
    );
    run.assert_code(expected_exit);
    // The text output agrees with the JSON output.
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seeds");
    let text = Dir::new()
        .command()
        .current_dir(&seeds)
        .args(["validate", name])
        .run();
    text.assert_code(expected_exit);
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let warnings = findings.len() - errors;
    let plural = |n: usize, noun: &str| {
        if n == 1 {
            format!("1 {noun}")
        } else {
            format!("{n} {noun}s")
        }
    };
    let valid = usize::from(errors == 0);
    assert_eq!(
        text.summary(),
        format!(
            "1 file: {valid} valid, {} invalid; {}, {}",
            1 - valid,
            plural(errors, "error"),
            plural(warnings, "warning")
        ),
        "{}",
        text.show()
    );
    for finding in &findings {
        let mut line = format!(
            "{name}:{}:{}: ",
            finding.line.unwrap(),
            finding.column.unwrap()
        );
        if !finding.path.is_empty() {
            line.push_str(&format!("{}: ", finding.path));
        }
        if !finding.is_error() {
            line.push_str("warning: ");
        }
        line.push_str(&finding.message);
        assert!(text.lines().contains(&line), "{line}\n{}", text.show());
    }
}

#[test]
fn salesloft_body() {
    assert_findings(
        "salesloft-body.json",
        1,
        &[
            // The brace mistake: instance keys read as resources, with a hint.
            (
                ERROR,
                "configuration.event.poller.configuration.name",
                &["found \"false\"", "check the closing braces"],
            ),
            (
                ERROR,
                "configuration.event.poller.configuration.eventsEnabled",
                &["found \"false\"", "check the closing braces"],
            ),
            (
                ERROR,
                "configuration.event.poller.configuration.providerData.url",
                &["has no \"url\"", "check the closing braces"],
            ),
            (
                ERROR,
                "configuration.event.poller.configuration.providerData.idField",
                &["missing \"idField\""],
            ),
            // ... and OAuth user keys inside the contacts resource.
            (
                WARNING,
                "configuration.event.poller.configuration.contacts.oauth.user.refresh_time",
                &["not a resource setting", "check the closing braces"],
            ),
            (
                WARNING,
                "configuration.event.poller.configuration.contacts.oauth.user.refresh_token",
                &["not a resource setting", "check the closing braces"],
            ),
            // Placeholder OAuth client credentials, and no way to use them.
            (WARNING, "configuration.oauth.api.key", PLACEHOLDER_SECRET),
            (
                WARNING,
                "configuration.oauth.api.secret",
                PLACEHOLDER_SECRET,
            ),
            (
                WARNING,
                "configuration.oauth.api.key",
                &["OAuth client credentials without"],
            ),
            // Events are off while a resource is configured: nothing would be polled.
            (
                WARNING,
                "configuration.event.notification.enabled",
                &["events are disabled", "nothing will be polled"],
            ),
            // Salesloft's dotless fraction.
            (
                WARNING,
                "configuration.event.poller.configuration.contacts.datesConfiguration.updatedDateFormat",
                &["ssSSSSSSXXX", "without a '.'"],
            ),
            (
                WARNING,
                "configuration.event.poller.configuration.contacts.datesConfiguration.createdDateFormat",
                &["ssSSSSSSXXX", "without a '.'"],
            ),
            // The URL: relative without base.url, and its stray trailing quote.
            (
                ERROR,
                "configuration.event.poller.configuration.contacts.url",
                RELATIVE,
            ),
            (
                WARNING,
                "configuration.event.poller.configuration.contacts.url",
                &["unbalanced single quote"],
            ),
            (
                WARNING,
                "name",
                &["<INSTANCE_NAME>", "placeholder", "salesloft-body"],
            ),
            (WARNING, "tags[0]", &["<Add_Your_Tag>", "placeholder"]),
        ],
    );
}

#[test]
fn salesloft_body_quote_warning_points_at_the_stray_quote() {
    let (_, findings) = validate_seed("salesloft-body.json");
    let url = "/hubs/crm/contacts?where=updated_at>='${date:yyyy-MM-dd'T'HH:mm:ssXXX}''";
    let quote = findings
        .iter()
        .find(|f| f.message.contains("unbalanced single quote"))
        .expect("the quote warning");
    // The last character of the URL is the one without a partner.
    assert!(
        quote
            .message
            .contains(&format!("at character {} of the url", url.chars().count())),
        "{quote:?}"
    );
    assert_eq!(quote.path, format!("{CONTACTS}.url"));
}

#[test]
fn salesloft_curl() {
    assert_findings(
        "salesloft-curl.json",
        1,
        &[
            (
                ERROR,
                "configuration.event.notification.callback.url",
                &["events are enabled but no callback URL"],
            ),
            (
                WARNING,
                "configuration.oauth.api.secret",
                PLACEHOLDER_SECRET,
            ),
            (
                WARNING,
                "configuration.oauth.api.secret",
                &["OAuth client credentials without"],
            ),
            (
                WARNING,
                "providerData.code",
                &["placeholder", "value hidden"],
            ),
            (
                ERROR,
                "configuration.event.poller.configuration.contacts.url",
                RELATIVE,
            ),
        ],
    );
    // This body's URL has balanced quotes, and its formats have their dot.
    let (_, findings) = validate_seed("salesloft-curl.json");
    assert!(!findings.iter().any(|f| f.message.contains("quote")));
    assert!(!findings.iter().any(|f| f.message.contains("without a '.'")));
}

#[test]
fn googlesuite_body() {
    assert_findings(
        "googlesuite-body.json",
        1,
        &[
            (
                ERROR,
                "configuration.event.poller.refresh_interval",
                &["\"<minutes>\" is not a number of minutes"],
            ),
            // Both problems of the {calendarId} URL: one does not hide the other.
            (ERROR, &calendar_url(), RELATIVE),
            (
                ERROR,
                &calendar_url(),
                &["{calendarId} has no value", "pathParams"],
            ),
            (ERROR, &url_of(PRIMARY), RELATIVE),
            (ERROR, &url_of(GROUPS), RELATIVE),
            (WARNING, &created_field_of(GROUPS), SAME_DATE_FIELD),
            (ERROR, &url_of(MESSAGES), RELATIVE),
            (WARNING, "configuration.oauth.api.key", PLACEHOLDER_SECRET),
            (
                WARNING,
                "configuration.oauth.api.secret",
                PLACEHOLDER_SECRET,
            ),
            (
                WARNING,
                "configuration.oauth.api.key",
                &["OAuth client credentials without"],
            ),
            (
                WARNING,
                "providerData.code",
                &["placeholder", "value hidden"],
            ),
            (WARNING, "name", &["<INSTANCE_NAME>", "googlesuite-body"]),
            (WARNING, "tags[0]", &["<Add_Your_Tag>"]),
        ],
    );
}

#[test]
fn googlesuite_curl() {
    assert_findings(
        "googlesuite-curl.json",
        1,
        &[
            (ERROR, &calendar_url(), RELATIVE),
            (
                ERROR,
                &calendar_url(),
                &["{calendarId} has no value", "pathParams"],
            ),
            (ERROR, &url_of(PRIMARY), RELATIVE),
            (ERROR, &url_of(GROUPS), RELATIVE),
            (WARNING, &created_field_of(GROUPS), SAME_DATE_FIELD),
            (ERROR, &url_of(MESSAGES), RELATIVE),
            (WARNING, "configuration.oauth.api.key", PLACEHOLDER_SECRET),
            (
                WARNING,
                "configuration.oauth.api.secret",
                PLACEHOLDER_SECRET,
            ),
            (
                WARNING,
                "configuration.oauth.api.key",
                &["OAuth client credentials without"],
            ),
            (
                WARNING,
                "providerData.code",
                &["placeholder", "value hidden"],
            ),
        ],
    );
}

#[test]
fn guide_polling() {
    assert_findings(
        "guide-polling.json",
        1,
        &[
            (
                ERROR,
                "configuration.event.poller.refresh_interval",
                &["\"<minutes>\" is not a number of minutes"],
            ),
            (WARNING, "configuration.password", PLACEHOLDER_SECRET),
            (
                WARNING,
                "configuration.event.notification.signature.key",
                PLACEHOLDER_SECRET,
            ),
            (ERROR, &url_of(CONTACTS), RELATIVE),
            (WARNING, &created_field_of(CONTACTS), SAME_DATE_FIELD),
            (WARNING, "name", &["<INSTANCE_NAME>", "guide-polling"]),
            (WARNING, "tags[0]", &["<Add_Your_Tag>"]),
        ],
    );
}

#[test]
fn guide_polling_refresh_interval_position() {
    let (_, findings) = validate_seed("guide-polling.json");
    let interval = findings
        .iter()
        .find(|f| f.path == "configuration.event.poller.refresh_interval")
        .unwrap();
    // `    "event.poller.refresh_interval": "<minutes>",` is line 11 of the seed.
    assert_eq!((interval.line, interval.column), (Some(11), Some(5)));
}

#[test]
fn guide_webhooks() {
    assert_findings(
        "guide-webhooks.json",
        0,
        &[
            (WARNING, "configuration.password", PLACEHOLDER_SECRET),
            (
                WARNING,
                "configuration.event.notification.signature.key",
                PLACEHOLDER_SECRET,
            ),
            (WARNING, "name", &["<INSTANCE_NAME>", "guide-webhooks"]),
            (WARNING, "tags[0]", &["<Add_Your_Tag>"]),
        ],
    );
}

#[test]
fn all_seeds_together_report_each_file() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seeds");
    let run = Dir::new()
        .command()
        .current_dir(&seeds)
        .args(["validate", "."])
        .run();
    run.assert_code(1);
    // Two bodies share the name "API Instance with Polling": both are reported as duplicates
    // only if both are otherwise valid, and neither is, so the summary counts the six files.
    assert!(
        run.summary().starts_with("6 files: 1 valid, 5 invalid; "),
        "{}",
        run.show()
    );
    run.assert_stdout_contains("./guide-webhooks.json: OK (4 warnings)");
}

fn url_of(resource: &str) -> String {
    format!("{resource}.url")
}

fn calendar_url() -> String {
    url_of(CALENDAR)
}
