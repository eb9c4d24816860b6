//! `ocpoll try`: one resource of one instance polled once as a dry run, to get its
//! configuration right (the date format, the filter, the id field, the records path).
//!
//! A trial does what a poll does up to change detection (expand the URL, authenticate, read
//! pages with the poll's own page reader, `poll::pages`, find the records, hold them to the
//! size limit, read ids and dates) and then only reports: it reads no state,
//! writes none, and sends nothing. OAuth tokens live in memory ([`MemoryTokenStore`]).
//!
//! What decides things is pure and tested on its own: [`inspect`] judges a record against the
//! watermark, [`suggest`] finds a date pattern that would read a date, [`Masker`] (the one
//! polls use too) keeps secrets out of the output, [`render`] writes the text report. This
//! file owns the requests.

pub mod inspect;
pub mod render;
pub mod suggest;

use crate::detect::{self, RecordProblem};
use crate::http::paginate::NEXT_PAGE_TOKEN_HEADER;
use crate::http::records::RecordsLocation;
use crate::http::{
    AuthSession, FetchError, HttpClient, MemoryTokenStore, Page, RecordLimits, RetryPolicy,
};
use crate::instance::finding::FindingReport;
use crate::instance::mask::Masker;
use crate::instance::{Instance, Pagination, PollMode, Resource};
use crate::poll::{self, PageRead, PageReader, PageSink, PollCaps, PollError, PollTarget};
use chrono::{DateTime, Utc};
use inspect::{Outcome, RecordReport, inspect_record, rfc3339};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use url::Url;

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct TrialOptions {
    /// `--since`: the watermark to pretend; `None` is a first poll's (one hour before `now`).
    pub since: Option<DateTime<Utc>>,
    /// `--pages`: stop after this many pages of each target.
    pub max_pages: u64,
    /// `--records`: show this many records of each target.
    pub max_records: usize,
    pub now: DateTime<Utc>,
}

/// The watermark a trial judges records against and the instant its URL asks from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub watermark: DateTime<Utc>,
    pub query_since: DateTime<Utc>,
}

/// Without `--since`, what a resource's first poll uses (docs/design.md#change-detection): it asks for the last
/// hour, and records after that instant are judged as changes. With it, what a poll from that
/// watermark does: it asks from the watermark minus `lookbackSeconds`.
pub fn plan(options: &TrialOptions, resource: &Resource) -> Plan {
    match options.since {
        None => {
            let query_since = detect::query_since(None, resource.lookback, options.now);
            Plan {
                watermark: query_since,
                query_since,
            }
        }
        Some(watermark) => Plan {
            watermark,
            query_since: detect::query_since(Some(watermark), resource.lookback, options.now),
        },
    }
}

/// One request of a trial.
#[derive(Clone, Debug, Serialize)]
pub struct RequestReport {
    /// The URL, secrets masked.
    pub url: String,
    /// The final status (after retries); `None` when no answer came.
    pub status: Option<u16>,
    pub bytes: Option<usize>,
    /// Retries it took, e.g. "HTTP 503, waited 0.0s".
    pub retries: Vec<String>,
    pub records: Option<usize>,
    /// How the next page was found ("page token (elements-next-page-token)", "cursor ..."),
    /// `None` on the last page.
    pub next: Option<String>,
    /// Why this request (or reading its records) failed.
    pub error: Option<String>,
}

/// One target: the resource with one `pathParams` value.
#[derive(Clone, Debug, Serialize)]
pub struct TargetReport {
    pub path_params: BTreeMap<String, String>,
    /// The expanded URL with the watermark in it, secrets masked.
    pub url: Option<String>,
    pub requests: Vec<RequestReport>,
    /// True when `--pages` stopped the trial before the last page.
    pub more_pages: bool,
    pub records_found: u64,
    /// Where the records were: the `recordsPath`, the body, or the member found by default.
    pub records_location: Option<String>,
    /// The first `--records` records.
    pub records: Vec<RecordReport>,
    /// Records after those that could not be read (at most `--records` of them).
    pub more_problem_records: Vec<RecordReport>,
    /// How many records of all those read would have each outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Records with a date that did not parse.
    pub date_errors: u64,
    /// Why the trial of this target stopped early (URL, authentication, request, body).
    pub error: Option<String>,
}

impl TargetReport {
    fn new(path_params: BTreeMap<String, String>) -> TargetReport {
        TargetReport {
            path_params,
            url: None,
            requests: Vec::new(),
            more_pages: false,
            records_found: 0,
            records_location: None,
            records: Vec::new(),
            more_problem_records: Vec::new(),
            outcomes: BTreeMap::new(),
            date_errors: 0,
            error: None,
        }
    }

    /// A request failed, or a record could not be read: the configuration needs work.
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.outcomes.contains_key(&Outcome::Unreadable)
    }
}

/// How a trial fetches: the client, retries and limits a poll would have (config.toml's).
pub struct Fetching {
    pub client: HttpClient,
    pub retry: RetryPolicy,
    pub limits: RecordLimits,
    pub caps: PollCaps,
}

/// Runs the trial of every target of the resource at `resource_index` (one per `pathParams`
/// value), one after the other.
pub async fn run(
    fetching: &Fetching,
    instance: &Arc<Instance>,
    resource_index: usize,
    options: &TrialOptions,
    masker: &Masker,
) -> Vec<TargetReport> {
    let targets: Vec<PollTarget> = poll::targets(instance)
        .into_iter()
        .filter(|target| target.resource == resource_index)
        .collect();
    let session = AuthSession::for_instance(instance, Arc::new(MemoryTokenStore::default()));
    let mut reports = Vec::new();
    for target in &targets {
        let mut report = TargetReport::new(target.path_params.clone());
        match &session {
            Ok(session) => {
                let trial = Trial {
                    fetching,
                    session,
                    target,
                    options,
                    masker,
                };
                trial.run(&mut report).await;
            }
            Err(error) => report.error = Some(format!("authentication: {error}")),
        }
        reports.push(report);
    }
    reports
}

struct Trial<'a> {
    fetching: &'a Fetching,
    session: &'a AuthSession,
    target: &'a PollTarget,
    options: &'a TrialOptions,
    masker: &'a Masker,
}

impl Trial<'_> {
    async fn run(&self, report: &mut TargetReport) {
        let resource = self.target.resource();
        let url = match self.expanded_url() {
            Ok(url) => url,
            Err(error) => {
                report.error = Some(self.masker.text(&error.to_string()));
                return;
            }
        };
        report.url = Some(self.masker.url(&url));
        // The same page reader as a poll: the same requests, records and size limit.
        let reader = PageReader {
            client: &self.fetching.client,
            session: self.session,
            retry: &self.fetching.retry,
            limits: &self.fetching.limits,
            caps: self.fetching.caps,
        };
        let mut sink = TrialSink {
            trial: self,
            report,
            watermark: plan(self.options, resource).watermark,
        };
        if let Err(error) = reader.read(self.target, url, &mut sink).await {
            let text = self.masker.text(&error.to_string());
            if let Some(request) = report.requests.last_mut() {
                if let PollError::Fetch(FetchError::Status { status, .. }) = &error {
                    request.status = Some(*status);
                }
                request.error = Some(text.clone());
            }
            report.error = Some(text);
        }
    }

    /// The resource URL with the plan's instant and this target's `pathParams`, as a poll
    /// expands it (window mode: in UTC; snapshot mode: the time of the poll, in UTC).
    fn expanded_url(&self) -> Result<Url, PollError> {
        let resource = self.target.resource();
        let since = plan(self.options, resource).query_since;
        match resource.mode() {
            PollMode::Watermark(dates) => self.target.expand_url(since, &dates.updated.zone),
            PollMode::Window => self.target.expand_url(since, &crate::dates::Zone::utc()),
            PollMode::Snapshot => self
                .target
                .expand_url(self.options.now, &crate::dates::Zone::utc()),
        }
    }

    fn judge(&self, record: &Value, report: &mut TargetReport, watermark: DateTime<Utc>) {
        let resource = self.target.resource();
        let mut judged = inspect_record(record, resource, watermark);
        mask_record(&mut judged, self.masker);
        self.add(judged, report);
    }

    /// A record a poll leaves out (too large, or not decodable), reported with a poll's words.
    fn unreadable(&self, problem: &RecordProblem, report: &mut TargetReport) {
        let mut judged = RecordReport {
            id: problem.record_id().map(str::to_owned),
            updated: None,
            created: None,
            outcome: Outcome::Unreadable,
            problem: Some(problem.to_string()),
            keys: None,
        };
        mask_record(&mut judged, self.masker);
        self.add(judged, report);
    }

    fn add(&self, judged: RecordReport, report: &mut TargetReport) {
        report.records_found += 1;
        *report.outcomes.entry(judged.outcome).or_default() += 1;
        report.date_errors += u64::from(judged.has_date_error());
        let max = self.options.max_records;
        if report.records.len() < max {
            report.records.push(judged);
        } else if judged.outcome == Outcome::Unreadable && report.more_problem_records.len() < max {
            report.more_problem_records.push(judged);
        }
    }
}

/// The trial's page sink: one [`RequestReport`] per request, each record judged and shown.
struct TrialSink<'t, 'r> {
    trial: &'t Trial<'t>,
    report: &'r mut TargetReport,
    watermark: DateTime<Utc>,
}

impl PageSink for TrialSink<'_, '_> {
    fn before_request(&mut self, url: &Url) -> bool {
        if self.report.requests.len() as u64 == self.trial.options.max_pages {
            self.report.more_pages = true;
            return false;
        }
        self.report.requests.push(RequestReport {
            url: self.trial.masker.url(url),
            status: None,
            bytes: None,
            retries: Vec::new(),
            records: None,
            next: None,
            error: None,
        });
        true
    }

    fn response(&mut self, page: &Page) {
        let Some(request) = self.report.requests.last_mut() else {
            return;
        };
        request.status = Some(page.status);
        request.bytes = Some(page.body.len());
        request.retries = page
            .retries
            .iter()
            .map(|note| format!("{}, waited {:.1}s", note.cause, note.waited.as_secs_f64()))
            .collect();
    }

    fn page(&mut self, read: PageRead<'_>) -> Result<(), PollError> {
        let resource = self.trial.target.resource();
        if self.report.records_location.is_none() {
            self.report.records_location = Some(records_location(resource, read.location));
        }
        for problem in &read.too_large {
            self.trial.unreadable(problem, self.report);
        }
        for record in read.records {
            match detect::decode(record) {
                Ok(record) => self.trial.judge(&record, self.report, self.watermark),
                Err(problem) => self.trial.unreadable(&problem, self.report),
            }
        }
        let next = read.next.map(|next| {
            self.trial
                .masker
                .text(&describe_next(&resource.pagination, read.page, next))
        });
        if let Some(request) = self.report.requests.last_mut() {
            request.records = Some(read.found);
            request.next = next;
        }
        Ok(())
    }
}

/// Record values are the provider's data, not the instance's secrets, but a record may echo
/// a credential back (a user record holding the API user's token); mask what is printed.
fn mask_record(record: &mut RecordReport, masker: &Masker) {
    let mask = |text: &mut Option<String>| {
        if let Some(value) = text {
            *value = masker.text(value);
        }
    };
    mask(&mut record.id);
    mask(&mut record.problem);
    for date in [&mut record.updated, &mut record.created]
        .into_iter()
        .flatten()
    {
        mask(&mut date.raw);
        mask(&mut date.error);
    }
}

/// Where the records were found, in words.
pub fn records_location(resource: &Resource, location: RecordsLocation) -> String {
    match location {
        RecordsLocation::Path => format!(
            "at recordsPath `{}`",
            resource
                .records_path
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        RecordsLocation::Body => "in the response body (an array)".to_owned(),
        RecordsLocation::Member(member) => {
            format!("in member `{member}` (found by default; no recordsPath)")
        }
    }
}

/// How the next page was found, in words, given the page that pointed to it.
pub fn describe_next(pagination: &Pagination, page: &Page, next: &Url) -> String {
    let param = |name: &str| {
        next.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    match pagination {
        Pagination::Auto { .. } if page.headers.contains_key(NEXT_PAGE_TOKEN_HEADER) => {
            format!(
                "page token {:?} ({NEXT_PAGE_TOKEN_HEADER} header, sent as nextPage)",
                param("nextPage")
            )
        }
        Pagination::Auto { .. } => "Link: rel=\"next\" header".to_owned(),
        Pagination::Cursor {
            cursor_path,
            cursor_param,
        } => format!(
            "cursor {:?} from `{cursor_path}`, sent as {cursor_param}",
            param(cursor_param)
        ),
        Pagination::Page { page_param } => {
            format!("page number {page_param}={}", param(page_param))
        }
        Pagination::None => "none".to_owned(),
    }
}

/// The whole trial, for `--json` and the text report.
#[derive(Clone, Debug, Serialize)]
pub struct TrialReport {
    pub file: String,
    pub instance: String,
    pub resource: String,
    /// "watermark" (a `datesConfiguration`), "window" (a date macro without one) or "snapshot".
    pub mode: &'static str,
    /// The authentication family (never the credentials).
    pub auth: &'static str,
    pub id_field: String,
    pub dates: Option<DatesShown>,
    /// The watermark records are judged against (watermark mode).
    pub watermark: Option<String>,
    /// "since" (`--since`) or "first poll" (one hour before now).
    pub watermark_from: &'static str,
    /// The instant the URL asks from: the watermark minus `lookbackSeconds`.
    pub query_since: Option<String>,
    pub lookback_seconds: u64,
    pub max_pages: u64,
    /// The instance file's warnings (a file with errors is not tried).
    pub findings: Vec<FindingReport>,
    pub targets: Vec<TargetReport>,
    /// Every request succeeded and every record was read.
    pub ok: bool,
}

/// The dates configuration, for the report's header.
#[derive(Clone, Debug, Serialize)]
pub struct DatesShown {
    pub updated_field: String,
    pub updated_format: String,
    pub updated_timezone: String,
    pub created_field: Option<String>,
    pub created_format: Option<String>,
}

impl TrialReport {
    pub fn new(
        file: &std::path::Path,
        instance: &Instance,
        resource: &Resource,
        options: &TrialOptions,
        findings: Vec<FindingReport>,
        targets: Vec<TargetReport>,
    ) -> TrialReport {
        let plan = plan(options, resource);
        let dates = resource.dates.as_ref().map(|dates| DatesShown {
            updated_field: dates.updated.path.to_string(),
            updated_format: dates.updated.format.spec().to_owned(),
            updated_timezone: dates.updated.zone.name().to_owned(),
            created_field: dates.created.as_ref().map(|c| c.path.to_string()),
            created_format: dates.created.as_ref().map(|c| c.format.spec().to_owned()),
        });
        // Window mode has a watermark too: the previous poll's time on the provider's clock.
        let has_watermark = resource.mode() != PollMode::Snapshot;
        TrialReport {
            file: file.display().to_string(),
            instance: instance.name.clone(),
            resource: resource.key.clone(),
            mode: resource.mode().name(),
            auth: instance.auth.kind(),
            id_field: resource.id_field.to_string(),
            dates,
            watermark: has_watermark.then(|| rfc3339(plan.watermark)),
            watermark_from: if options.since.is_some() {
                "since"
            } else {
                "first poll"
            },
            query_since: has_watermark.then(|| rfc3339(plan.query_since)),
            lookback_seconds: resource.lookback.as_secs(),
            max_pages: options.max_pages,
            findings,
            ok: !targets.iter().any(TargetReport::failed),
            targets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::{FieldPath, OtherKeys};
    use crate::url_macros::UrlTemplate;
    use serde_json::json;
    use std::time::Duration;

    fn resource(records_path: Option<&str>, lookback: u64) -> Resource {
        Resource {
            key: "contacts".into(),
            url: UrlTemplate::parse("https://p.example/contacts").unwrap(),
            id_field: FieldPath::parse("id"),
            dates: None,
            records_path: records_path.map(FieldPath::parse),
            pagination: Pagination::default(),
            path_params: BTreeMap::new(),
            lookback: Duration::from_secs(lookback),
            max_pages: None,
            max_poll_time: None,
            other_keys: OtherKeys::default(),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_default_plan_is_a_first_poll_and_since_subtracts_the_lookback() {
        let now = at("2026-03-01T10:00:00Z");
        let mut options = TrialOptions {
            since: None,
            max_pages: 3,
            max_records: 5,
            now,
        };
        let first = plan(&options, &resource(None, 60));
        assert_eq!(first.watermark, at("2026-03-01T09:00:00Z"));
        assert_eq!(first.query_since, at("2026-03-01T09:00:00Z"));
        options.since = Some(at("2026-02-01T00:00:00Z"));
        let since = plan(&options, &resource(None, 60));
        assert_eq!(since.watermark, at("2026-02-01T00:00:00Z"));
        assert_eq!(since.query_since, at("2026-01-31T23:59:00Z"));
    }

    #[test]
    fn records_location_names_the_path_or_the_member() {
        let location = |resource: &Resource, body: Value| {
            let page = Page {
                status: 200,
                headers: Default::default(),
                body: body.to_string().into(),
                date: None,
                retries: Vec::new(),
            };
            let found = crate::http::read_records(&page, resource.records_path.as_ref());
            records_location(resource, found.unwrap().location)
        };
        assert_eq!(
            location(
                &resource(None, 0),
                json!({"total": 1, "items": [{"id": 1}]})
            ),
            "in member `items` (found by default; no recordsPath)"
        );
        let with_path = resource(Some("response.people"), 0);
        assert_eq!(
            location(&with_path, json!({"response": {"people": []}})),
            "at recordsPath `response.people`"
        );
        assert_eq!(
            location(&resource(None, 0), json!([])),
            "in the response body (an array)"
        );
    }

    #[test]
    fn next_pages_are_described_by_how_they_were_found() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(NEXT_PAGE_TOKEN_HEADER, "o/2+==".parse().unwrap());
        let page = Page {
            status: 200,
            headers,
            body: bytes::Bytes::new(),
            date: None,
            retries: Vec::new(),
        };
        let next = Url::parse("https://p.example/c?pageSize=2&nextPage=o%2F2%2B%3D%3D").unwrap();
        assert_eq!(
            describe_next(&Pagination::Auto { page_size: 2 }, &page, &next),
            "page token \"o/2+==\" (elements-next-page-token header, sent as nextPage)"
        );
        let cursor = Pagination::Cursor {
            cursor_path: FieldPath::parse("meta.next"),
            cursor_param: "after".into(),
        };
        let next = Url::parse("https://p.example/c?after=c4").unwrap();
        assert_eq!(
            describe_next(&cursor, &page, &next),
            "cursor \"c4\" from `meta.next`, sent as after"
        );
        let numbered = Pagination::Page {
            page_param: "page".into(),
        };
        let next = Url::parse("https://p.example/c?page=3").unwrap();
        assert_eq!(describe_next(&numbered, &page, &next), "page number page=3");
    }
}
