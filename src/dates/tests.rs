//! Tests of [`DateFormat`] as a whole: each format and parses its own output, for the seeds'
//! patterns and the other Java patterns providers use, and a property that parsing a formatted
//! instant gives it back. Tests of one step alone stand in that step's file.

use chrono::{DateTime, LocalResult, Timelike, Utc};
use proptest::prelude::*;

use super::DateFormat;
use super::test_support::*;

// --- the seeds' formats ------------------------------------------------------------------

#[test]
fn salesloft_url_format_prints_z_for_gmt_and_offsets_elsewhere() {
    let pattern = "yyyy-MM-dd'T'HH:mm:ssXXX";
    assert_eq!(format(pattern, WATERMARK, "GMT"), "2026-11-25T12:59:58Z");
    assert_eq!(
        format(pattern, WATERMARK, "Europe/Berlin"),
        "2026-11-25T13:59:58+01:00"
    );
    parses_to(
        pattern,
        "2026-11-25T12:59:58Z",
        "GMT",
        "2026-11-25T12:59:58Z",
    );
    parses_to(
        pattern,
        "2026-11-25T12:59:58+00:00",
        "GMT",
        "2026-11-25T12:59:58Z",
    );
    parses_to(
        pattern,
        "2026-11-25T13:59:58+01:00",
        "UTC",
        "2026-11-25T12:59:58Z",
    );
}

#[test]
fn salesloft_dotless_fraction_accepts_the_dot_the_provider_sends() {
    let pattern = "yyyy-MM-dd'T'HH:mm:ssSSSSSSXXX";
    let expected = WATERMARK;
    parses_to(pattern, "2026-11-25T12:59:58.123456+00:00", "GMT", expected);
    parses_to(pattern, "2026-11-25T12:59:58123456+00:00", "GMT", expected);
    assert_eq!(
        format(pattern, WATERMARK, "GMT"),
        "2026-11-25T12:59:58123456Z"
    );
    let compiled = DateFormat::new(pattern).expect("pattern");
    assert!(compiled.has_dotless_fraction());
    assert!(compiled.has_zone_field());
    assert_eq!(compiled.fraction_digits(), 6);
}

#[test]
fn dotted_microseconds_read_any_width_as_a_fraction() {
    let pattern = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX";
    assert_eq!(
        format(pattern, WATERMARK, "GMT"),
        "2026-11-25T12:59:58.123456Z"
    );
    parses_to(
        pattern,
        "2026-11-25T12:59:58.123456+00:00",
        "GMT",
        WATERMARK,
    );
    parses_to(
        pattern,
        "2026-11-25T12:59:58.1+00:00",
        "GMT",
        "2026-11-25T12:59:58.1Z",
    );
    parses_to(
        pattern,
        "2026-11-25T12:59:58.123456789987+00:00",
        "GMT",
        "2026-11-25T12:59:58.123456789Z",
    );
    assert!(
        !DateFormat::new(pattern)
            .expect("pattern")
            .has_dotless_fraction()
    );
}

#[test]
fn google_milliseconds_with_a_literal_z() {
    let pattern = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'";
    assert_eq!(
        format(pattern, WATERMARK, "GMT"),
        "2026-11-25T12:59:58.123Z"
    );
    // Truncated, not rounded: .999999 stays in the same millisecond.
    assert_eq!(
        format(pattern, "2026-11-25T12:59:58.999999Z", "GMT"),
        "2026-11-25T12:59:58.999Z"
    );
    parses_to(
        pattern,
        "2026-11-25T12:59:58.123Z",
        "GMT",
        "2026-11-25T12:59:58.123Z",
    );
    let compiled = DateFormat::new(pattern).expect("pattern");
    assert!(!compiled.has_zone_field(), "a quoted 'Z' is a literal");
    assert_eq!(compiled.fraction_digits(), 3);
}

#[test]
fn generic_guide_seconds_with_a_literal_z() {
    let pattern = "yyyy-MM-dd'T'HH:mm:ss'Z'";
    assert_eq!(format(pattern, WATERMARK, "GMT"), "2026-11-25T12:59:58Z");
    parses_to(
        pattern,
        "2026-11-25T12:59:58Z",
        "GMT",
        "2026-11-25T12:59:58Z",
    );
    assert_eq!(
        DateFormat::new(pattern).expect("pattern").fraction_digits(),
        0
    );
}

// --- other Java patterns -----------------------------------------------------------------

#[test]
fn rfc_1123_style_with_zone_names() {
    let pattern = "EEE, dd MMM yyyy HH:mm:ss z";
    assert_eq!(
        format(pattern, WATERMARK, "GMT"),
        "Wed, 25 Nov 2026 12:59:58 GMT"
    );
    assert_eq!(
        format(pattern, WATERMARK, "UTC"),
        "Wed, 25 Nov 2026 12:59:58 UTC"
    );
    assert_eq!(
        format(pattern, WATERMARK, "Europe/Berlin"),
        "Wed, 25 Nov 2026 13:59:58 CET"
    );
    assert_eq!(
        format(pattern, "2026-07-15T10:00:00Z", "Europe/Berlin"),
        "Wed, 15 Jul 2026 12:00:00 CEST"
    );
    assert_eq!(
        format(pattern, WATERMARK, "GMT+02:00"),
        "Wed, 25 Nov 2026 14:59:58 GMT+02:00"
    );
    // tzdb has no letters for Lord Howe, so Java's GMT form is printed.
    assert_eq!(
        format(pattern, WATERMARK, "Australia/Lord_Howe"),
        "Wed, 25 Nov 2026 23:59:58 GMT+11:00"
    );
    let expected = "2026-11-25T12:59:58Z";
    parses_to(
        pattern,
        "Wed, 25 Nov 2026 12:59:58 GMT",
        "Europe/Berlin",
        expected,
    );
    parses_to(
        pattern,
        "wed, 25 nov 2026 13:59:58 CET",
        "Europe/Berlin",
        expected,
    );
    parses_to(
        pattern,
        "Wed, 25 Nov 2026 07:59:58 EST",
        "America/New_York",
        expected,
    );
    parses_to(
        pattern,
        "Wed, 25 Nov 2026 14:59:58 GMT+02:00",
        "UTC",
        expected,
    );
    parses_to(
        pattern,
        "Wed, 25 Nov 2026 12:59:58 Z",
        "Europe/Berlin",
        expected,
    );
    parses_to(
        pattern,
        "Wed, 25 Nov 2026 13:59:58 Europe/Berlin",
        "UTC",
        expected,
    );
}

#[test]
fn twelve_hour_clock_with_am_pm() {
    let pattern = "EEE MMM dd hh:mm:ss a yyyy";
    assert_eq!(
        format(pattern, WATERMARK, "GMT"),
        "Wed Nov 25 12:59:58 PM 2026"
    );
    assert_eq!(
        format(pattern, "2026-11-25T00:30:00Z", "GMT"),
        "Wed Nov 25 12:30:00 AM 2026"
    );
    parses_to(
        pattern,
        "Wed Nov 25 12:59:58 PM 2026",
        "GMT",
        "2026-11-25T12:59:58Z",
    );
    parses_to(
        pattern,
        "Wed Nov 25 12:30:00 am 2026",
        "GMT",
        "2026-11-25T00:30:00Z",
    );
    parses_to(
        pattern,
        "Wed Nov 25 01:30:00 PM 2026",
        "GMT",
        "2026-11-25T13:30:00Z",
    );
}

#[test]
fn other_hour_letters_count_like_java() {
    assert_eq!(
        format("kk:mm KK a", "2026-11-25T00:30:00Z", "UTC"),
        "24:30 00 AM"
    );
    assert_eq!(
        format("kk:mm KK a", "2026-11-25T13:05:00Z", "UTC"),
        "13:05 01 PM"
    );
    parses_to(
        "yyyy-MM-dd kk:mm",
        "2026-11-25 24:30",
        "UTC",
        "2026-11-25T00:30:00Z",
    );
    parses_to(
        "yyyy-MM-dd KK:mm a",
        "2026-11-25 01:05 PM",
        "UTC",
        "2026-11-25T13:05:00Z",
    );
}

#[test]
fn abutting_numbers_take_their_width() {
    let pattern = "yyyyMMddHHmmss";
    assert_eq!(format(pattern, WATERMARK, "UTC"), "20261125125958");
    parses_to(pattern, "20261125125958", "UTC", "2026-11-25T12:59:58Z");
    assert_eq!(
        parse_error(pattern, "202611251259"),
        "\"202611251259\" does not match \"yyyyMMddHHmmss\": expected digits (ss) at position 13"
    );
}

#[test]
fn two_digit_years_pivot_at_46() {
    let pattern = "dd/MM/yy";
    assert_eq!(format(pattern, WATERMARK, "UTC"), "25/11/26");
    parses_to(pattern, "25/11/26", "UTC", "2026-11-25T00:00:00Z");
    parses_to(pattern, "01/01/45", "UTC", "2045-01-01T00:00:00Z");
    parses_to(pattern, "01/01/46", "UTC", "1946-01-01T00:00:00Z");
    parses_to(pattern, "01/01/2026", "UTC", "2026-01-01T00:00:00Z");
}

#[test]
fn rfc_822_offsets() {
    assert_eq!(format("Z", WATERMARK, "Europe/Berlin"), "+0100");
    assert_eq!(format("Z", WATERMARK, "GMT"), "+0000");
    assert_eq!(format("Z", WATERMARK, "America/New_York"), "-0500");
    let pattern = "yyyy-MM-dd HH:mm Z";
    let expected = "2026-11-25T12:59:00Z";
    parses_to(pattern, "2026-11-25 14:59 +0200", "UTC", expected);
    parses_to(pattern, "2026-11-25 14:59 +02:00", "UTC", expected);
    parses_to(pattern, "2026-11-25 12:59 Z", "Europe/Berlin", expected);
    parses_to(pattern, "2026-11-25 07:29 -05:30", "UTC", expected);
}

#[test]
fn iso_offsets_in_three_widths() {
    assert_eq!(format("X", WATERMARK, "Asia/Kolkata"), "+05");
    assert_eq!(format("XX", WATERMARK, "Asia/Kolkata"), "+0530");
    assert_eq!(format("XXX", WATERMARK, "Asia/Kolkata"), "+05:30");
    assert_eq!(format("XXX", WATERMARK, "America/New_York"), "-05:00");
    for zero_offset in ["X", "XX", "XXX"] {
        assert_eq!(format(zero_offset, WATERMARK, "UTC"), "Z");
    }
    let pattern = "yyyy-MM-dd HH:mmX";
    let expected = "2026-11-25T12:59:00Z";
    parses_to(pattern, "2026-11-25 17:59+05", "UTC", expected);
    parses_to(pattern, "2026-11-25 18:29+0530", "UTC", expected);
    parses_to(pattern, "2026-11-25 18:29+05:30", "UTC", expected);
    parses_to(pattern, "2026-11-25 12:59Z", "Asia/Kolkata", expected);
}

#[test]
fn quoted_text_and_escaped_quotes() {
    assert_eq!(format("h 'o''clock' a", WATERMARK, "UTC"), "12 o'clock PM");
    assert_eq!(format("''HH''", WATERMARK, "UTC"), "'12'");
    parses_to(
        "h 'o''clock' a",
        "12 o'clock PM",
        "UTC",
        "1970-01-01T12:00:00Z",
    );
    parses_to(
        "h 'o''clock' a",
        "3 o'clock AM",
        "UTC",
        "1970-01-01T03:00:00Z",
    );
}

#[test]
fn day_of_year_iso_day_and_long_names() {
    assert_eq!(format("yyyy-DDD u", WATERMARK, "UTC"), "2026-329 3");
    parses_to("yyyy-DDD u", "2026-329 3", "UTC", "2026-11-25T00:00:00Z");
    let pattern = "EEEE, MMMM d, yyyy";
    assert_eq!(
        format(pattern, WATERMARK, "UTC"),
        "Wednesday, November 25, 2026"
    );
    parses_to(
        pattern,
        "WEDNESDAY, november 25, 2026",
        "UTC",
        "2026-11-25T00:00:00Z",
    );
    parses_to(pattern, "Wed, Nov 25, 2026", "UTC", "2026-11-25T00:00:00Z");
}

// --- properties -------------------------------------------------------------------------

const ROUND_TRIP_PATTERNS: &[&str] = &[
    "yyyy-MM-dd'T'HH:mm:ssXXX",
    "yyyy-MM-dd'T'HH:mm:ssSSSSSSXXX",
    "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
    "yyyy-MM-dd'T'HH:mm:ss'Z'",
    "yyyy-MM-dd'T'HH:mm:ss.SSSSSSSSSXX",
    "yyyy-MM-dd'T'HH:mm:ss.SZ",
    "EEE, dd MMM yyyy HH:mm:ss z",
    "EEEE MMMM dd hh:mm:ss a yyyy",
    "EEE MMM dd hh:mm:ss a yyyy",
    "yyyyMMddHHmmss",
    "yyyy-DDD kk:mm:ss.SSS",
    "yyyy-MM-dd KK:mm:ss a XXX",
    "h 'o''clock' mm:ss a, dd/MM/yyyy",
    "milliseconds",
    "seconds",
];

fn truncated(at: DateTime<Utc>, digits: u8) -> DateTime<Utc> {
    let unit = 10u32.pow(9 - u32::from(digits.min(9)));
    let nanos = at.nanosecond() - at.nanosecond() % unit;
    at.with_nanosecond(nanos).unwrap_or(at)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn format_then_parse_gives_the_instant_back(
        pattern in proptest::sample::select(ROUND_TRIP_PATTERNS),
        zone_name in proptest::sample::select(ZONES),
        seconds in 0i64..4_102_444_800,
        nanos in 0u32..1_000_000_000,
    ) {
        let format = DateFormat::new(pattern).expect("pattern");
        let zone = zone(zone_name);
        let at = DateTime::from_timestamp(seconds, nanos).expect("in range");
        if !format.has_zone_field() {
            // Without an offset in the text, a local time in a DST overlap or gap cannot
            // say which instant it was.
            let local = at.with_timezone(&zone.offset_at(at)).naive_local();
            prop_assume!(matches!(zone.local_offsets(local), LocalResult::Single(_)));
        }
        let text = format.format(at, &zone);
        let parsed = format.parse(&text, &zone);
        prop_assert_eq!(parsed, Ok(truncated(at, format.fraction_digits())), "{}", text);
    }
}
