//! The text report of `ocpoll try`: what a person reads while fixing a resource's
//! configuration. Pure: a [`TrialReport`] in, text out. Everything in the report is already
//! masked.

use crate::trial::inspect::{DateReport, Outcome, RecordReport};
use crate::trial::{RequestReport, TargetReport, TrialReport};
use std::fmt::Write as _;

/// The whole report as text.
pub fn render(report: &TrialReport) -> String {
    let mut out = String::new();
    header(&mut out, report);
    for target in &report.targets {
        out.push('\n');
        target_section(&mut out, report, target);
    }
    out
}

fn header(out: &mut String, report: &TrialReport) {
    line(
        out,
        format!(
            "instance {} ({}), resource {}; auth: {}",
            report.instance, report.file, report.resource, report.auth
        ),
    );
    match &report.dates {
        Some(dates) => {
            let mut fields = format!(
                "{} as \"{}\" ({})",
                dates.updated_field, dates.updated_format, dates.updated_timezone
            );
            if let (Some(field), Some(format)) = (&dates.created_field, &dates.created_format) {
                let _ = write!(fields, ", created {field} as \"{format}\"");
            }
            line(
                out,
                format!(
                    "mode: watermark; id field `{}`; updated {fields}",
                    report.id_field
                ),
            );
        }
        None if report.mode == "window" => line(
            out,
            format!(
                "mode: window (no datesConfiguration, a date macro in the URL): the URL asks \
                 from the previous poll's time on the provider's clock minus lookbackSeconds, and \
                 every record returned is an UPDATED event unless an overlapping window already \
                 sent it unchanged (the state knows, try does not); id field `{}`",
                report.id_field
            ),
        ),
        None => line(
            out,
            format!(
                "mode: snapshot (no datesConfiguration): every poll reads the whole resource and \
                 compares it with the previous poll's records (kept in the state, which try does \
                 not read); id field `{}`",
                report.id_field
            ),
        ),
    }
    if let (Some(watermark), Some(since)) = (&report.watermark, &report.query_since) {
        let mut text = format!("watermark: {watermark}");
        if report.watermark_from == "since" {
            text.push_str(" (--since)");
        } else {
            text.push_str(
                " (a first poll's: one hour ago; a real first poll sends nothing, it only \
                 records a baseline)",
            );
        }
        if since != watermark {
            let _ = write!(
                text,
                "; the URL asks from {since} (lookbackSeconds {})",
                report.lookback_seconds
            );
        }
        line(out, text);
    }
}

fn target_section(out: &mut String, report: &TrialReport, target: &TargetReport) {
    if !target.path_params.is_empty() {
        let params: Vec<String> = target
            .path_params
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        line(out, format!("pathParams {}", params.join(", ")));
    }
    if let Some(url) = &target.url {
        line(out, format!("URL    {url}"));
    }
    for (index, request) in target.requests.iter().enumerate() {
        request_lines(out, index + 1, request);
    }
    if target.more_pages {
        line(
            out,
            format!(
                "stopped after {} (--pages {}); more pages follow",
                plural(report.max_pages, "page"),
                report.max_pages
            ),
        );
    }
    if let Some(error) = &target.error {
        line(out, format!("error: {error}"));
    }
    if let Some(location) = &target.records_location {
        line(
            out,
            format!("records: {} found {location}", target.records_found),
        );
    }
    for (index, record) in target.records.iter().enumerate() {
        record_lines(out, &format!("record {}", index + 1), record);
    }
    if !target.more_problem_records.is_empty() {
        line(out, "later records that cannot be read:".to_owned());
        for record in &target.more_problem_records {
            record_lines(out, "record", record);
        }
    }
    if target.records_found > 0 || target.error.is_none() {
        line(out, summary(target));
    }
}

fn request_lines(out: &mut String, number: usize, request: &RequestReport) {
    line(out, format!("GET {number:<2} {}", request.url));
    let mut parts = Vec::new();
    if let Some(status) = request.status {
        parts.push(format!("HTTP {status}"));
    }
    if let Some(bytes) = request.bytes {
        parts.push(plural(bytes as u64, "byte"));
    }
    if let Some(records) = request.records {
        parts.push(plural(records as u64, "record"));
    }
    for retry in &request.retries {
        parts.push(format!("retried after {retry}"));
    }
    let mut text = parts.join(", ");
    match (&request.error, &request.next) {
        (Some(_), _) => text.push_str(if text.is_empty() {
            "failed"
        } else {
            "; failed"
        }),
        (None, Some(next)) => {
            let _ = write!(text, "; next: {next}");
        }
        (None, None) => text.push_str("; last page"),
    }
    line(out, format!("       {text}"));
}

fn record_lines(out: &mut String, label: &str, record: &RecordReport) {
    let id = record.id.as_deref().unwrap_or("(none)");
    line(out, format!("  {label}: id {id}"));
    for date in [&record.updated, &record.created].into_iter().flatten() {
        date_lines(out, date);
    }
    if let Some(problem) = &record.problem
        && !record.has_date_error()
    {
        line(out, format!("    problem: {problem}"));
    }
    if let Some(keys) = &record.keys {
        line(out, format!("    its top-level keys: {}", keys.join(", ")));
    }
    let outcome = match record.outcome {
        Outcome::Snapshot => return,
        other => other.describe(),
    };
    line(out, format!("    event: {outcome}"));
}

fn date_lines(out: &mut String, date: &DateReport) {
    let Some(raw) = &date.raw else {
        line(out, format!("    {}: (none)", date.field));
        return;
    };
    match (&date.parsed, &date.error) {
        (Some(parsed), _) => line(out, format!("    {}: \"{raw}\" -> {parsed}", date.field)),
        (None, Some(error)) => {
            line(
                out,
                format!(
                    "    {}: \"{raw}\" does not parse with \"{}\"",
                    date.field, date.pattern
                ),
            );
            line(out, format!("      {error}"));
            match (&date.suggestion, &date.suggestion_reads) {
                (Some(pattern), Some(reads)) => line(
                    out,
                    format!("      suggestion: \"{pattern}\" reads it as {reads}"),
                ),
                _ => line(out, "      no common pattern reads it either".to_owned()),
            }
        }
        (None, None) => line(out, format!("    {}: \"{raw}\"", date.field)),
    }
}

/// "3 records: 1 CREATED, 1 UPDATED, 1 older than the watermark; 1 date did not parse".
fn summary(target: &TargetReport) -> String {
    let counts: Vec<String> = target
        .outcomes
        .iter()
        .map(|(outcome, count)| {
            let words = match outcome {
                Outcome::Created => "CREATED",
                Outcome::Updated => "UPDATED",
                Outcome::AtWatermark => "at the watermark (no event if already seen)",
                Outcome::OlderThanWatermark => "older than the watermark",
                Outcome::Snapshot => "read (snapshot)",
                Outcome::Unreadable => "cannot be read",
            };
            format!("{count} {words}")
        })
        .collect();
    let mut text = format!("summary: {}", plural(target.records_found, "record"));
    if !counts.is_empty() {
        let _ = write!(text, ": {}", counts.join(", "));
    }
    if target.date_errors > 0 {
        let _ = write!(
            text,
            "; {} did not parse",
            plural(target.date_errors, "record date")
        );
    }
    text
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn line(out: &mut String, text: String) {
    out.push_str(&text);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::inspect::DateReport;
    use std::collections::BTreeMap;

    fn report(targets: Vec<TargetReport>) -> TrialReport {
        TrialReport {
            file: "crm.json".into(),
            instance: "crm".into(),
            resource: "contacts".into(),
            mode: "watermark",
            auth: "basic",
            id_field: "id".into(),
            dates: None,
            watermark: Some("2026-03-01T10:00:00Z".into()),
            watermark_from: "since",
            query_since: Some("2026-03-01T10:00:00Z".into()),
            lookback_seconds: 0,
            max_pages: 1,
            findings: Vec::new(),
            targets,
            ok: false,
        }
    }

    #[test]
    fn a_mismatch_puts_string_pattern_and_suggestion_together() {
        let record = RecordReport {
            id: Some("7".into()),
            updated: Some(DateReport {
                field: "updated_at".into(),
                raw: Some("2026-03-01 10:05:00".into()),
                pattern: "yyyy-MM-dd'T'HH:mm:ssXXX".into(),
                parsed: None,
                error: Some("does not match".into()),
                suggestion: Some("yyyy-MM-dd HH:mm:ss".into()),
                suggestion_reads: Some("2026-03-01T10:05:00Z".into()),
            }),
            created: None,
            outcome: Outcome::Unreadable,
            problem: Some("`updated_at`: does not match".into()),
            keys: None,
        };
        let target = TargetReport {
            path_params: BTreeMap::from([("calendarId".into(), "primary".into())]),
            url: Some("https://p.example/c".into()),
            requests: vec![RequestReport {
                url: "https://p.example/c?page=1".into(),
                status: Some(200),
                bytes: Some(120),
                retries: vec!["HTTP 503, waited 0.0s".into()],
                records: Some(1),
                next: Some("page number page=2".into()),
                error: None,
            }],
            more_pages: true,
            records_found: 1,
            records_location: Some("in the response body (an array)".into()),
            records: vec![record],
            more_problem_records: Vec::new(),
            outcomes: BTreeMap::from([(Outcome::Unreadable, 1)]),
            date_errors: 1,
            error: None,
        };
        let text = render(&report(vec![target]));
        let expected = "\
pathParams calendarId=primary
URL    https://p.example/c
GET 1  https://p.example/c?page=1
       HTTP 200, 120 bytes, 1 record, retried after HTTP 503, waited 0.0s; next: page number page=2
stopped after 1 page (--pages 1); more pages follow
records: 1 found in the response body (an array)
  record 1: id 7
    updated_at: \"2026-03-01 10:05:00\" does not parse with \"yyyy-MM-dd'T'HH:mm:ssXXX\"
      does not match
      suggestion: \"yyyy-MM-dd HH:mm:ss\" reads it as 2026-03-01T10:05:00Z
    event: skipped: cannot be read
summary: 1 record: 1 cannot be read; 1 record date did not parse
";
        assert!(text.ends_with(expected), "{text}");
        assert!(text.starts_with("instance crm (crm.json), resource contacts; auth: basic\n"));
        assert!(
            text.contains("watermark: 2026-03-01T10:00:00Z (--since)\n"),
            "{text}"
        );
    }
}
