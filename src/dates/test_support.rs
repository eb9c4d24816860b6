//! Helpers the date tests share: an instant, zones by name, and one-line format, parse and
//! error calls with the pattern written out.

use chrono::{DateTime, Utc};

use super::{DateFormat, DateParseError, Zone};

/// The instant docs/events.md's example record was updated at; a Wednesday, in CET.
pub(super) const WATERMARK: &str = "2026-11-25T12:59:58.123456Z";

pub(super) fn instant(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test instant")
        .with_timezone(&Utc)
}

pub(super) fn zone(name: &str) -> Zone {
    Zone::parse(name).expect("test zone")
}

pub(super) fn format(pattern: &str, at: &str, zone_name: &str) -> String {
    let format = DateFormat::new(pattern).expect("test pattern");
    format.format(instant(at), &zone(zone_name))
}

pub(super) fn parse(
    pattern: &str,
    text: &str,
    zone_name: &str,
) -> Result<DateTime<Utc>, DateParseError> {
    DateFormat::new(pattern)
        .expect("test pattern")
        .parse(text, &zone(zone_name))
}

pub(super) fn parses_to(pattern: &str, text: &str, zone_name: &str, expected: &str) {
    assert_eq!(
        parse(pattern, text, zone_name),
        Ok(instant(expected)),
        "{text} with {pattern} in {zone_name}"
    );
}

pub(super) fn parse_error(pattern: &str, text: &str) -> String {
    match parse(pattern, text, "UTC") {
        Ok(parsed) => panic!("{text:?} parsed as {parsed} with {pattern}"),
        Err(error) => error.to_string(),
    }
}

pub(super) fn format_error(pattern: &str) -> String {
    match DateFormat::new(pattern) {
        Ok(format) => panic!("{pattern:?} compiled to {format:?}"),
        Err(error) => error.to_string(),
    }
}

/// The zones the property tests run in: fixed offsets, DST rules, a half-hour offset and Lord
/// Howe's half-hour DST shift.
pub(super) const ZONES: &[&str] = &[
    "UTC",
    "GMT+02:00",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
];
