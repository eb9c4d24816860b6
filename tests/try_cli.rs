//! `ocpoll try` end to end: the real binary against the loopback mock provider (served on this
//! test's tokio runtime while the binary runs as a child process), with a mock receiver as the
//! callback that must receive nothing, and a state path that must never be created.

mod support;
mod util;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use std::path::PathBuf;
use support::mock_provider::{MockAuth, MockBuilder, MockProvider, Paging, SinceFilter};
use support::mock_receiver::MockReceiver;
use tokio::runtime::Runtime;
use util::{Dir, Run};

const SECONDS: &str = "yyyy-MM-dd'T'HH:mm:ss'Z'";

struct Env {
    dir: Dir,
    rt: Runtime,
    receiver: MockReceiver,
}

impl Env {
    fn new() -> Env {
        let dir = Dir::new();
        dir.create(
            "config.toml",
            "[poll]\nretries = 1\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 0\n",
        );
        let rt = util::runtime();
        let receiver = rt.block_on(MockReceiver::start(&[]));
        Env { dir, rt, receiver }
    }

    fn start(&self, builder: MockBuilder) -> MockProvider {
        self.rt.block_on(builder.start())
    }

    fn write(&self, instance: &Value) -> PathBuf {
        let text = serde_json::to_string_pretty(instance).expect("instance JSON");
        self.dir.create("crm.json", &text)
    }

    /// `ocpoll try crm.json --config config.toml ARGS...`
    fn try_(&self, args: &[&str]) -> Run {
        self.dir
            .command()
            .args(["try", "crm.json", "--config", "config.toml"])
            .args(args)
            .run()
    }

    fn json(&self, args: &[&str]) -> (Run, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.try_(&all);
        let value = serde_json::from_slice(&run.output.stdout)
            .unwrap_or_else(|error| panic!("--json output is not JSON: {error}\n{}", run.show()));
        (run, value)
    }

    /// Nothing was written anywhere and nothing was sent.
    fn assert_no_side_effects(&self) {
        assert!(
            !self.dir.join("state.db").exists(),
            "try created the state file"
        );
        let default_state = self.dir.join("home/.local/state");
        let entries: Vec<_> = std::fs::read_dir(&default_state)
            .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(
            entries.is_empty(),
            "try wrote to the state folder: {entries:?}"
        );
        assert_eq!(self.receiver.request_count(), 0, "try sent a notification");
    }
}

/// An instance polling `contacts` at `url`, dates in `pattern`, the receiver as its callback.
fn instance(env: &Env, url: &str, pattern: &str) -> Value {
    json!({
        "element": {"key": "examplecrm"},
        "name": "example-crm",
        "configuration": {
            "event.notification.enabled": true,
            "event.notification.callback.url": env.receiver.url(),
            "event.poller.refresh_interval": 15,
            "event.poller.configuration": {
                "contacts": {
                    "url": url,
                    "idField": "id",
                    "datesConfiguration": {
                        "updatedDateField": "updated_at",
                        "updatedDateFormat": pattern,
                        "updatedDateTimezone": "GMT",
                        "createdDateField": "created_at",
                        "createdDateFormat": pattern
                    }
                }
            }
        }
    })
}

fn where_url(mock: &MockProvider, pattern: &str) -> String {
    format!(
        "{}?where=updated_at>='${{gmtDate:{pattern}}}'",
        mock.resource_url()
    )
}

/// The instance with Open Connectors' page token pagination at `page_size` records a page.
fn paged(mut instance: Value, page_size: u32) -> Value {
    contacts(&mut instance)["pagination"] = json!({"type": "auto", "pageSize": page_size});
    instance
}

fn contacts(instance: &mut Value) -> &mut Value {
    &mut instance["configuration"]["event.poller.configuration"]["contacts"]
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn seconds(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The URL the mock saw for request `index`, as the binary would print it.
fn seen_url(mock: &MockProvider, index: usize) -> String {
    let requests = mock.requests();
    let request = requests.get(index).expect("the mock saw the request");
    format!(
        "{}{}",
        mock.base_url().as_str().trim_end_matches('/'),
        request.path_and_query
    )
}

#[test]
fn happy_path_shows_url_requests_pages_records_and_events() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder().paging(Paging::PageToken { page_size: 2 }));
    let now = Utc::now();
    let minutes = |m: i64| now - TimeDelta::minutes(m);
    mock.upsert(
        "c1",
        minutes(30),
        json!({"created_at": seconds(minutes(40))}),
    );
    mock.upsert(
        "c2",
        minutes(20),
        json!({"created_at": "2026-01-01T00:00:00Z"}),
    );
    mock.upsert(
        "c3",
        minutes(10),
        json!({"created_at": seconds(minutes(10))}),
    );
    env.write(&paged(
        instance(&env, &where_url(&mock, SECONDS), SECONDS),
        2,
    ));
    let run = env.try_(&[]);
    run.assert_code(0);
    let out = run.stdout();

    // Two pages, followed by page token; the URLs printed are those the provider got.
    assert_eq!(mock.request_count(), 2, "{}", run.show());
    assert!(
        out.contains(&format!("GET 1  {}", seen_url(&mock, 0))),
        "{out}"
    );
    assert!(
        out.contains(&format!("GET 2  {}", seen_url(&mock, 1))),
        "{out}"
    );
    assert!(out.contains("HTTP 200"), "{out}");
    assert!(
        out.contains("2 records; next: page token \"o/2+==\" (elements-next-page-token header"),
        "{out}"
    );
    assert!(out.contains("1 record; last page"), "{out}");

    // The expanded URL carries the default watermark: one hour before now.
    let since = mock.requests()[0]
        .param("where")
        .and_then(|clause| {
            clause
                .strip_prefix("updated_at>='")?
                .strip_suffix('\'')
                .map(str::to_owned)
        })
        .expect("a where clause");
    let since_at = at(&since);
    assert!(
        (since_at - (now - TimeDelta::hours(1))).num_seconds().abs() <= 5,
        "{since}"
    );
    let url_line = out
        .lines()
        .find(|l| l.starts_with("URL "))
        .expect("a URL line");
    assert!(
        url_line.contains(&since.replace(':', "%3A")),
        "{url_line} lacks {since}"
    );
    assert!(
        out.contains(&format!("watermark: {}", since.trim_end_matches('Z'))),
        "{out}"
    );
    assert!(out.contains("a real first poll sends nothing"), "{out}");

    // Records, where they were, their dates and events.
    assert!(
        out.contains("records: 3 found in the response body (an array)"),
        "{out}"
    );
    assert!(out.contains("record 1: id c1"), "{out}");
    let c1_updated = seconds(minutes(30));
    assert!(
        out.contains(&format!("updated_at: \"{c1_updated}\" -> {c1_updated}")),
        "{out}"
    );
    assert!(
        out.contains("created_at: \"2026-01-01T00:00:00Z\" -> 2026-01-01T00:00:00Z"),
        "{out}"
    );
    let events: Vec<&str> = out
        .lines()
        .filter_map(|line| line.trim().strip_prefix("event: "))
        .collect();
    assert_eq!(events, ["CREATED", "UPDATED", "CREATED"], "{out}");
    assert!(
        out.contains("summary: 3 records: 2 CREATED, 1 UPDATED"),
        "{out}"
    );
    env.assert_no_side_effects();
}

#[test]
fn since_sets_the_watermark_and_the_lookback_widens_the_query() {
    let env = Env::new();
    // The provider ignores the filter, so records older than the watermark come back too.
    let mock = env.start(MockProvider::builder().since(SinceFilter::None));
    mock.upsert("old", at("2026-03-01T09:00:00Z"), json!({}));
    mock.upsert("window", at("2026-03-01T09:59:30Z"), json!({}));
    mock.upsert("same", at("2026-03-01T10:00:00Z"), json!({}));
    mock.upsert("new", at("2026-03-01T10:05:00Z"), json!({}));
    let mut instance = instance(&env, &where_url(&mock, SECONDS), SECONDS);
    contacts(&mut instance)["lookbackSeconds"] = json!(60);
    env.write(&instance);
    let run = env.try_(&["--since", "2026-03-01T10:00:00Z"]);
    run.assert_code(0);
    let out = run.stdout();
    assert_eq!(
        mock.requests()[0].param("where").as_deref(),
        Some("updated_at>='2026-03-01T09:59:00Z'")
    );
    assert!(
        out.contains(
            "watermark: 2026-03-01T10:00:00Z (--since); the URL asks from 2026-03-01T09:59:00Z (lookbackSeconds 60)"
        ),
        "{out}"
    );
    let events: Vec<&str> = out
        .lines()
        .filter_map(|line| line.trim().strip_prefix("event: "))
        .collect();
    assert_eq!(
        events,
        [
            "older than the watermark: no event",
            "no event if already seen at the watermark",
            "no event if already seen at the watermark",
            "UPDATED",
        ],
        "{out}"
    );

    // A relative time: one hour ago.
    let run = env.try_(&["--since", "1h"]);
    run.assert_code(0);
    assert!(run.stdout().contains("(--since)"), "{}", run.show());
    let since = mock.requests()[1].param("where").expect("a where clause");
    // One hour ago minus the lookback (60 s), give or take the run's own seconds.
    let asked = since
        .strip_prefix("updated_at>='")
        .and_then(|rest| rest.strip_suffix('\''))
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .unwrap_or_else(|| panic!("a date in {since:?}"))
        .with_timezone(&Utc);
    let expected = Utc::now() - TimeDelta::hours(1) - TimeDelta::seconds(60);
    assert!(
        (asked - expected).num_seconds().abs() <= 30,
        "{since}: expected about {}",
        seconds(expected)
    );

    let run = env.try_(&["--since", "last tuesday"]);
    run.assert_code(2);
    assert!(run.stderr().contains("--since"), "{}", run.show());
    env.assert_no_side_effects();
}

#[test]
fn pages_limits_the_requests() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder().paging(Paging::PageToken { page_size: 1 }));
    let now = Utc::now();
    for (index, id) in ["a", "b", "c", "d"].iter().enumerate() {
        mock.upsert(id, now - TimeDelta::minutes(10 + index as i64), json!({}));
    }
    env.write(&paged(
        instance(&env, &where_url(&mock, SECONDS), SECONDS),
        1,
    ));
    let run = env.try_(&["--pages", "1"]);
    run.assert_code(0);
    assert_eq!(mock.request_count(), 1, "{}", run.show());
    let out = run.stdout();
    assert!(
        out.contains("stopped after 1 page (--pages 1); more pages follow"),
        "{out}"
    );
    assert!(!out.contains("GET 2"), "{out}");
    // The default is 3.
    let run = env.try_(&[]);
    run.assert_code(0);
    assert_eq!(mock.request_count(), 1 + 3, "{}", run.show());
    assert!(
        run.stdout().contains("stopped after 3 pages (--pages 3)"),
        "{}",
        run.show()
    );
    env.try_(&["--pages", "0"]).assert_code(2);
}

#[test]
fn a_date_mismatch_shows_the_string_the_pattern_and_a_suggestion() {
    let env = Env::new();
    let sql = "yyyy-MM-dd HH:mm:ss";
    let mock = env.start(MockProvider::builder().date_format(sql, "UTC"));
    mock.upsert("c1", at("2026-03-01T10:05:00Z"), json!({}));
    // The filter is right (the provider's format), the record format is not.
    env.write(&instance(&env, &where_url(&mock, sql), SECONDS));
    let run = env.try_(&["--since", "2026-03-01T10:00:00Z"]);
    run.assert_code(1);
    let out = run.stdout();
    assert!(
        out.contains(
            "updated_at: \"2026-03-01 10:05:00\" does not parse with \"yyyy-MM-dd'T'HH:mm:ss'Z'\""
        ),
        "{out}"
    );
    assert!(
        out.contains("suggestion: \"yyyy-MM-dd HH:mm:ss\" reads it as 2026-03-01T10:05:00Z"),
        "{out}"
    );
    assert!(out.contains("event: skipped: cannot be read"), "{out}");
    assert!(out.contains("1 record date did not parse"), "{out}");

    let (run, report) = env.json(&["--since", "2026-03-01T10:00:00Z"]);
    run.assert_code(1);
    assert_eq!(report["ok"], false);
    let updated = &report["targets"][0]["records"][0]["updated"];
    assert_eq!(updated["raw"], "2026-03-01 10:05:00");
    assert_eq!(updated["pattern"], SECONDS);
    assert_eq!(updated["suggestion"], sql);
    assert_eq!(updated["suggestion_reads"], "2026-03-01T10:05:00Z");
    assert_eq!(report["targets"][0]["date_errors"], 1);
    env.assert_no_side_effects();
}

#[test]
fn json_has_the_same_information() {
    let env = Env::new();
    let mock = env.start(
        MockProvider::builder()
            .records_member("data")
            .paging(Paging::PageToken { page_size: 1 }),
    );
    mock.upsert(
        "c1",
        at("2026-03-01T10:05:00Z"),
        json!({"created_at": "2026-03-01T10:05:00Z"}),
    );
    mock.upsert(
        "c2",
        at("2026-03-01T10:06:00Z"),
        json!({"created_at": "2026-02-01T00:00:00Z"}),
    );
    env.write(&paged(
        instance(&env, &where_url(&mock, SECONDS), SECONDS),
        1,
    ));
    let (run, report) = env.json(&["--since", "2026-03-01T10:00:00Z"]);
    run.assert_code(0);
    assert_eq!(report["ok"], true);
    assert_eq!(report["instance"], "example-crm");
    assert_eq!(report["resource"], "contacts");
    assert_eq!(report["mode"], "watermark");
    assert_eq!(report["watermark"], "2026-03-01T10:00:00Z");
    assert_eq!(report["watermark_from"], "since");
    assert_eq!(report["dates"]["updated_format"], SECONDS);
    let target = &report["targets"][0];
    assert!(
        target["url"]
            .as_str()
            .unwrap()
            .contains("2026-03-01T10%3A00%3A00Z"),
        "{target}"
    );
    let requests = target["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["status"], 200);
    assert!(requests[0]["bytes"].as_u64().unwrap() > 20);
    assert_eq!(requests[0]["records"], 1);
    assert!(
        requests[0]["next"]
            .as_str()
            .unwrap()
            .starts_with("page token")
    );
    assert_eq!(requests[1]["next"], Value::Null);
    assert_eq!(requests[0]["url"], seen_url(&mock, 0));
    assert_eq!(target["records_found"], 2);
    assert_eq!(
        target["records_location"],
        "in member `data` (found by default; no recordsPath)"
    );
    let records = target["records"].as_array().unwrap();
    assert_eq!(records[0]["id"], "c1");
    assert_eq!(records[0]["updated"]["raw"], "2026-03-01T10:05:00Z");
    assert_eq!(records[0]["updated"]["parsed"], "2026-03-01T10:05:00Z");
    assert_eq!(records[0]["outcome"], "CREATED");
    assert_eq!(records[1]["outcome"], "UPDATED");
    assert_eq!(target["outcomes"], json!({"CREATED": 1, "UPDATED": 1}));
    env.assert_no_side_effects();
}

#[test]
fn secrets_never_appear_in_the_output() {
    let env = Env::new();
    let password = "pw-Secret-123";
    let mock = env.start(MockProvider::builder().auth(MockAuth::Basic {
        username: "ada".into(),
        password: password.into(),
    }));
    mock.upsert("c1", at("2026-03-01T10:05:00Z"), json!({}));
    let url = format!(
        "{}&access_token=TOKEN-in-URL-456&filter={password}",
        where_url(&mock, SECONDS)
    );
    let mut instance = instance(&env, &url, SECONDS);
    let config = &mut instance["configuration"];
    config["username"] = json!("ada");
    config["password"] = json!(password);
    config["http.headers"] = json!({"X-Extra": "header-Secret-789"});
    config["event.notification.signature.key"] = json!("sig-Secret-000");
    env.write(&instance);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ada:{password}"));
    let secrets = [
        password,
        "TOKEN-in-URL-456",
        "header-Secret-789",
        "sig-Secret-000",
        basic.as_str(),
    ];
    for args in [
        &["--since", "2026-03-01T10:00:00Z"][..],
        &["--json", "--since", "2026-03-01T10:00:00Z"],
    ] {
        let run = env.try_(args);
        run.assert_code(0);
        // The provider got them (the request really authenticated and carried the query) ...
        let seen = mock.requests().last().unwrap().path_and_query.clone();
        assert!(seen.contains("TOKEN-in-URL-456"), "{seen}");
        // ... the output never shows them.
        for secret in secrets {
            assert!(
                !run.stdout().contains(secret),
                "{secret} in stdout\n{}",
                run.show()
            );
            assert!(
                !run.stderr().contains(secret),
                "{secret} in stderr\n{}",
                run.show()
            );
        }
        assert!(run.stdout().contains("access_token=***"), "{}", run.show());
        assert!(run.stdout().contains("filter=***"), "{}", run.show());
    }
    // A failing request's error is masked too.
    let wrong = env.start(MockProvider::builder().auth(MockAuth::Bearer {
        token: "other".into(),
    }));
    let url = format!("{}?key={password}", wrong.resource_url());
    let mut instance = super_instance(&env, &url);
    instance["configuration"]["oauth.access.token"] = json!("bearer-Secret-321");
    env.write(&instance);
    let run = env.try_(&[]);
    run.assert_code(1);
    assert!(run.stdout().contains("HTTP 401"), "{}", run.show());
    for secret in [password, "bearer-Secret-321"] {
        assert!(!run.stdout().contains(secret), "{}", run.show());
        assert!(!run.stderr().contains(secret), "{}", run.show());
    }
    env.assert_no_side_effects();
}

/// An instance in snapshot mode (no dates) at `url`.
fn super_instance(env: &Env, url: &str) -> Value {
    let mut instance = instance(env, url, SECONDS);
    contacts(&mut instance)
        .as_object_mut()
        .unwrap()
        .remove("datesConfiguration");
    instance
}

#[test]
fn snapshot_mode_says_so_and_shows_the_ids() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("s1", at("2026-03-01T10:05:00Z"), json!({}));
    mock.upsert("s2", at("2026-03-01T10:06:00Z"), json!({}));
    env.write(&super_instance(&env, mock.resource_url().as_str()));
    let run = env.try_(&[]);
    run.assert_code(0);
    let out = run.stdout();
    assert!(
        out.contains("mode: snapshot (no datesConfiguration)"),
        "{out}"
    );
    assert!(out.contains("record 1: id s1"), "{out}");
    assert!(out.contains("record 2: id s2"), "{out}");
    assert!(!out.contains("event:"), "{out}");
    assert!(
        out.contains("summary: 2 records: 2 read (snapshot)"),
        "{out}"
    );
}

#[test]
fn a_missing_id_or_records_array_shows_the_keys_found() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder().records_member("contacts"));
    mock.upsert(
        "c1",
        at("2026-03-01T10:05:00Z"),
        json!({"email": "ada@example.com"}),
    );
    env.write(&instance(&env, &where_url(&mock, SECONDS), SECONDS));
    let run = env.try_(&["--since", "2026-03-01T10:00:00Z"]);
    run.assert_code(1);
    assert!(
        run.stdout().contains(
            "no records array in the response: expected an array, or one array member among data, items, results, records, value (top-level keys: contacts); set `recordsPath`"
        ),
        "{}",
        run.show()
    );

    let mut instance = instance(&env, &where_url(&mock, SECONDS), SECONDS);
    contacts(&mut instance)["recordsPath"] = json!("contacts");
    contacts(&mut instance)["idField"] = json!("contactId");
    env.write(&instance);
    let run = env.try_(&["--since", "2026-03-01T10:00:00Z"]);
    run.assert_code(1);
    let out = run.stdout();
    assert!(
        out.contains("records: 1 found at recordsPath `contacts`"),
        "{out}"
    );
    assert!(
        out.contains("problem: record has no `contactId` (idField)"),
        "{out}"
    );
    assert!(
        out.contains("its top-level keys: id, updated_at, email"),
        "{out}"
    );
}

/// Issue 14: an unresolved secret reads the same in `validate`, `try` and `tick`: one wording,
/// a warning where the file is only checked, an error (and no request) where it is used.
#[test]
fn an_unresolved_secret_reads_the_same_in_validate_try_and_tick() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let mut instance = instance(&env, &where_url(&mock, SECONDS), SECONDS);
    instance["configuration"]["api.key"] = json!("${env:ACME_API_KEY}");
    env.write(&instance);
    let wording = "configuration.api.key: unresolved secret: set ACME_API_KEY";

    let validate = env.dir.run(["validate", "crm.json"]);
    validate.assert_code(0);
    let warned = "configuration.api.key: warning: unresolved secret: set ACME_API_KEY";
    assert!(validate.stdout().contains(warned), "{}", validate.show());

    let tried = env.try_(&[]);
    tried.assert_code(1);
    assert!(tried.stderr().contains(wording), "{}", tried.show());
    assert!(!tried.stderr().contains("warning:"), "{}", tried.show());
    assert!(
        tried
            .stderr()
            .contains("crm.json is not tried: 1 error above"),
        "{}",
        tried.show()
    );

    env.dir.create_dir("instances.d");
    std::fs::rename(
        env.dir.join("crm.json"),
        env.dir.join("instances.d/crm.json"),
    )
    .unwrap();
    let ticked = env.dir.run([
        "tick",
        "--all",
        "--config",
        "config.toml",
        "--state",
        "state.db",
    ]);
    ticked.assert_code(1);
    assert!(ticked.stderr().contains(wording), "{}", ticked.show());
    assert_eq!(mock.request_count(), 0);
}

#[test]
fn usage_errors_and_bad_files() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let mut instance = instance(&env, &where_url(&mock, SECONDS), SECONDS);
    let second = contacts(&mut instance).clone();
    instance["configuration"]["event.poller.configuration"]["leads"] = second;
    env.write(&instance);
    let run = env.try_(&[]);
    run.assert_code(2);
    assert!(
        run.stderr()
            .contains("has several resources; name one: contacts, leads"),
        "{}",
        run.show()
    );
    let run = env.try_(&["people"]);
    run.assert_code(2);
    assert!(
        run.stderr().contains("its resources: contacts, leads"),
        "{}",
        run.show()
    );
    env.try_(&["leads", "--pages", "1"]).assert_code(0);

    // An invalid file: its findings, as validate prints them, and exit 1.
    env.dir.create("crm.json", "{\n  \"name\": \"x\",\n  \"configuration\": {\"event.poller.refresh_interval\": \"<minutes>\"}\n}\n");
    let run = env.try_(&[]);
    run.assert_code(1);
    assert!(run.stderr().contains("crm.json:3:"), "{}", run.show());
    assert_eq!(mock.request_count(), 1);

    // A file that cannot be read.
    let run = env.dir.command().args(["try", "missing.json"]).run();
    run.assert_code(78);
    assert!(run.stderr().contains("missing.json"), "{}", run.show());
    env.assert_no_side_effects();
}
