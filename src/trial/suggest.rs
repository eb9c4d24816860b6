//! Which common date pattern would read a date that the configured one does not.
//!
//! Date-format mismatches are the most common configuration mistake, so `ocpoll try` tries a
//! record's date against a list of patterns providers really send and suggests the first that
//! reads it as a plausible date. The list goes from the most specific to the most lenient, so
//! that a date with an offset is not "explained" by a pattern that would ignore it.
//!
//! Parsing reads a fraction of any width with any `S` run, but the width matters: events carry
//! as many fraction digits as the format has `S` letters. So the suggestion's `S` run is
//! widened or narrowed to the digits the date really has.

use crate::dates::{DateFormat, Zone};
use chrono::{DateTime, Datelike, Utc};
use serde_json::Value;

/// The patterns tried, in order. ISO 8601 first (with and without fraction and offset), then
/// the space-separated SQL style, HTTP dates, day-first and month-first forms, epochs last.
pub const COMMON_PATTERNS: &[&str] = &[
    "yyyy-MM-dd'T'HH:mm:ssXXX",
    "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
    "yyyy-MM-dd'T'HH:mm:ssZ",
    "yyyy-MM-dd'T'HH:mm:ss.SSSZ",
    "yyyy-MM-dd'T'HH:mm:ss",
    "yyyy-MM-dd'T'HH:mm:ss.SSS",
    "yyyy-MM-dd'T'HH:mm",
    "yyyy-MM-dd HH:mm:ssXXX",
    "yyyy-MM-dd HH:mm:ss.SSSXXX",
    "yyyy-MM-dd HH:mm:ss",
    "yyyy-MM-dd HH:mm:ss.SSS",
    "EEE, dd MMM yyyy HH:mm:ss zzz",
    "EEE, dd MMM yyyy HH:mm:ss Z",
    "EEE MMM dd HH:mm:ss zzz yyyy",
    "yyyy-MM-dd",
    "MM/dd/yyyy HH:mm:ss",
    "dd.MM.yyyy HH:mm:ss",
    "yyyyMMdd'T'HHmmss'Z'",
    "milliseconds",
    "seconds",
];

/// Dates outside these years are not what the field means (an epoch read in the wrong unit
/// lands in 1970 or in the year 50,000), so a pattern that gives one is not suggested.
const PLAUSIBLE_YEARS: std::ops::RangeInclusive<i32> = 1971..=2200;

/// A pattern from [`COMMON_PATTERNS`] (its fraction as wide as the date's) that reads
/// `value` as a plausible date, with what it read; `None` when none does. `zone` is the
/// field's configured timezone (used by patterns without an offset).
pub fn suggest_pattern(value: &Value, zone: &Zone) -> Option<(String, DateTime<Utc>)> {
    COMMON_PATTERNS.iter().find_map(|pattern| {
        let pattern = match value {
            Value::String(text) => with_fraction_width(pattern, fraction_digits(text)),
            _ => (*pattern).to_owned(),
        };
        let format = DateFormat::new(&pattern).ok()?;
        let parsed = format.parse_json(value, zone).ok()?;
        PLAUSIBLE_YEARS
            .contains(&parsed.year())
            .then_some((pattern, parsed))
    })
}

/// How many digits follow the first `.` that comes right after a digit (the seconds), at
/// most 9; `None` when the text has no such fraction.
fn fraction_digits(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let dot = (1..bytes.len())
        .find(|&index| bytes[index] == b'.' && bytes[index - 1].is_ascii_digit())?;
    let digits = bytes[dot + 1..]
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    (1..=9).contains(&digits).then_some(digits)
}

/// `pattern` with its `S` run replaced by `digits` letters (unchanged without either).
fn with_fraction_width(pattern: &str, digits: Option<usize>) -> String {
    match (pattern.find('S'), digits) {
        (Some(start), Some(digits)) => {
            let end = pattern[start..]
                .find(|c| c != 'S')
                .map_or(pattern.len(), |offset| start + offset);
            format!(
                "{}{}{}",
                &pattern[..start],
                "S".repeat(digits),
                &pattern[end..]
            )
        }
        _ => pattern.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn suggest(value: Value) -> Option<String> {
        suggest_pattern(&value, &Zone::utc()).map(|(pattern, _)| pattern)
    }

    #[test]
    fn fraction_widths_follow_the_date() {
        assert_eq!(fraction_digits("2026-11-25T12:59:58.123456Z"), Some(6));
        assert_eq!(fraction_digits("12:59:58.1"), Some(1));
        assert_eq!(fraction_digits("v.2 2026-11-25"), None);
        assert_eq!(fraction_digits("2026-11-25"), None);
        assert_eq!(fraction_digits(".5"), None);
        assert_eq!(with_fraction_width("ss.SSSXXX", Some(6)), "ss.SSSSSSXXX");
        assert_eq!(with_fraction_width("ss.SSS", Some(2)), "ss.SS");
        assert_eq!(with_fraction_width("ssXXX", Some(2)), "ssXXX");
        assert_eq!(with_fraction_width("ss.SSS", None), "ss.SSS");
    }

    #[test]
    fn every_common_pattern_compiles() {
        for pattern in COMMON_PATTERNS {
            assert!(DateFormat::new(pattern).is_ok(), "{pattern}");
        }
    }

    #[test]
    fn iso_dates_get_the_matching_fraction_and_offset() {
        assert_eq!(
            suggest(json!("2026-11-25T12:59:58Z")).as_deref(),
            Some("yyyy-MM-dd'T'HH:mm:ssXXX")
        );
        assert_eq!(
            suggest(json!("2026-11-25T12:59:58+01:00")).as_deref(),
            Some("yyyy-MM-dd'T'HH:mm:ssXXX")
        );
        assert_eq!(
            suggest(json!("2026-11-25T12:59:58.123Z")).as_deref(),
            Some("yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
        );
        assert_eq!(
            suggest(json!("2026-11-25T12:59:58.123456+00:00")).as_deref(),
            Some("yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
        );
        assert_eq!(
            suggest(json!("2026-11-25T12:59:58.123456789Z")).as_deref(),
            Some("yyyy-MM-dd'T'HH:mm:ss.SSSSSSSSSXXX")
        );
        assert!(suggest(json!("2026-11-25T12:59:58+0100")).is_some());
        assert_eq!(
            suggest(json!("2026-11-25T12:59:58")).as_deref(),
            Some("yyyy-MM-dd'T'HH:mm:ss")
        );
    }

    #[test]
    fn the_suggestion_reads_the_right_instant() {
        let (_, parsed) = suggest_pattern(&json!("2026-11-25T12:59:58.5+01:00"), &Zone::utc())
            .expect("a suggestion");
        assert_eq!(parsed.to_rfc3339(), "2026-11-25T11:59:58.500+00:00");
        // Without an offset in the text, the configured zone applies.
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let (pattern, parsed) =
            suggest_pattern(&json!("2026-11-25 12:00:00"), &berlin).expect("a suggestion");
        assert_eq!(pattern, "yyyy-MM-dd HH:mm:ss");
        assert_eq!(parsed.to_rfc3339(), "2026-11-25T11:00:00+00:00");
    }

    #[test]
    fn other_common_shapes() {
        assert_eq!(
            suggest(json!("2026-11-25 12:59:58")).as_deref(),
            Some("yyyy-MM-dd HH:mm:ss")
        );
        assert_eq!(
            suggest(json!("Wed, 25 Nov 2026 12:59:58 GMT")).as_deref(),
            Some("EEE, dd MMM yyyy HH:mm:ss zzz")
        );
        assert_eq!(
            suggest(json!("Wed, 25 Nov 2026 12:59:58 +0000")).as_deref(),
            Some("EEE, dd MMM yyyy HH:mm:ss Z")
        );
        assert_eq!(suggest(json!("2026-11-25")).as_deref(), Some("yyyy-MM-dd"));
        assert_eq!(
            suggest(json!("11/25/2026 12:59:58")).as_deref(),
            Some("MM/dd/yyyy HH:mm:ss")
        );
    }

    #[test]
    fn epochs_are_told_apart_by_magnitude() {
        assert_eq!(
            suggest(json!(1795957205123_i64)).as_deref(),
            Some("milliseconds")
        );
        assert_eq!(
            suggest(json!("1795957205123")).as_deref(),
            Some("milliseconds")
        );
        assert_eq!(suggest(json!(1795957205)).as_deref(), Some("seconds"));
        assert_eq!(suggest(json!("1795957205")).as_deref(), Some("seconds"));
    }

    #[test]
    fn nothing_is_suggested_for_what_is_not_a_date() {
        assert_eq!(suggest(json!("yesterday")).as_deref(), None);
        assert_eq!(suggest(json!("")).as_deref(), None);
        assert_eq!(suggest(json!(true)).as_deref(), None);
        assert_eq!(suggest(json!({"date": "2026-11-25"})).as_deref(), None);
        assert_eq!(suggest(json!(42)).as_deref(), None);
    }
}
