//! The `milliseconds` and `seconds` formats: epoch numbers, as text or as JSON numbers
//! (integer or not, exponents included), read without float rounding in the fraction.

use chrono::{DateTime, Utc};

use super::parse::fraction_to_nanos;
use super::{DateParseError, quoted_text};

#[derive(Clone, Copy)]
pub(super) enum EpochUnit {
    Milliseconds,
    Seconds,
}

impl EpochUnit {
    fn name(self) -> &'static str {
        match self {
            EpochUnit::Milliseconds => "milliseconds",
            EpochUnit::Seconds => "seconds",
        }
    }
}

/// "1795611598", "1795611598.123456" (seconds) or "1795611598123" (milliseconds). Decimal
/// text is read digit by digit so that no float rounding creeps into the fraction.
pub(super) fn parse_epoch_text(
    text: &str,
    unit: EpochUnit,
) -> Result<DateTime<Utc>, DateParseError> {
    let not_a_number = || DateParseError::NotEpochNumber {
        text: quoted_text(text),
        unit: unit.name(),
    };
    let out_of_range = || DateParseError::EpochOutOfRange {
        text: quoted_text(text),
        unit: unit.name(),
    };
    let only_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) if only_digits(fraction) => (whole, fraction),
        Some(_) => return Err(not_a_number()),
        None => (text, ""),
    };
    if whole.strip_prefix('-').is_some_and(only_digits) {
        return Err(out_of_range());
    }
    if !only_digits(whole) {
        return Err(not_a_number());
    }
    let whole: u64 = whole.parse().map_err(|_| out_of_range())?;
    let fraction_nanos = fraction_to_nanos(fraction);
    let (seconds, nanos) = match unit {
        EpochUnit::Seconds => (whole, fraction_nanos),
        EpochUnit::Milliseconds => {
            let millis_nanos = u32::try_from(whole % 1000).unwrap_or(0) * 1_000_000;
            (whole / 1000, millis_nanos + fraction_nanos / 1000)
        }
    };
    let seconds = i64::try_from(seconds).map_err(|_| out_of_range())?;
    DateTime::from_timestamp(seconds, nanos).ok_or_else(out_of_range)
}

pub(super) fn parse_epoch_number(
    number: &serde_json::Number,
    unit: EpochUnit,
) -> Result<DateTime<Utc>, DateParseError> {
    let text = number.to_string();
    if !text.contains(['e', 'E']) {
        return parse_epoch_text(&text, unit);
    }
    // serde_json writes very large or very small floats with an exponent; spell them out.
    let value = number.as_f64().unwrap_or(f64::NAN);
    // NaN and infinities are outside the range too.
    if !(0.0..1e19).contains(&value) {
        return Err(DateParseError::EpochOutOfRange {
            text: quoted_text(&text),
            unit: unit.name(),
        });
    }
    parse_epoch_text(&format!("{value:.9}"), unit)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::dates::test_support::*;
    use crate::dates::{DateFormat, Zone};

    #[test]
    fn epoch_milliseconds() {
        let format = DateFormat::new("milliseconds").expect("format");
        let utc = Zone::utc();
        assert_eq!(format.format(instant(WATERMARK), &utc), "1795611598123");
        assert_eq!(format.fraction_digits(), 3);
        let expected = Ok(instant("2026-11-25T12:59:58.123Z"));
        assert_eq!(format.parse_json(&json!(1795611598123u64), &utc), expected);
        assert_eq!(format.parse_json(&json!("1795611598123"), &utc), expected);
        assert_eq!(format.parse("1795611598123", &utc), expected);
        assert_eq!(
            format.parse_json(&json!(1795611598123.5), &utc),
            Ok(instant("2026-11-25T12:59:58.1235Z"))
        );
    }

    #[test]
    fn epoch_seconds() {
        let format = DateFormat::new("seconds").expect("format");
        let utc = Zone::utc();
        assert_eq!(format.format(instant(WATERMARK), &utc), "1795611598");
        assert_eq!(format.fraction_digits(), 0);
        assert_eq!(format.to_string(), "seconds");
        assert_eq!(
            format.parse_json(&json!(1795611598), &utc),
            Ok(instant("2026-11-25T12:59:58Z"))
        );
        assert_eq!(
            format.parse_json(&json!(1795611598.123456), &utc),
            Ok(instant("2026-11-25T12:59:58.123456Z"))
        );
        assert_eq!(
            format.parse_json(&json!("1795611598.5"), &utc),
            Ok(instant("2026-11-25T12:59:58.5Z"))
        );
    }

    #[test]
    fn bad_epoch_values_are_errors() {
        let seconds = DateFormat::new("seconds").expect("format");
        let utc = Zone::utc();
        let error = |value: serde_json::Value| {
            seconds
                .parse_json(&value, &utc)
                .expect_err("should be rejected")
                .to_string()
        };
        assert_eq!(
            error(json!(-5)),
            "-5 seconds since 1970-01-01T00:00:00Z is negative or out of range"
        );
        assert_eq!(
            error(json!("-5")),
            "-5 seconds since 1970-01-01T00:00:00Z is negative or out of range"
        );
        assert_eq!(
            error(json!("abc")),
            "\"abc\" is not a number of seconds since 1970-01-01T00:00:00Z"
        );
        for bad in [
            json!(""),
            json!("1."),
            json!(".5"),
            json!("1e3"),
            json!(" 1"),
        ] {
            assert!(error(bad.clone()).contains("is not a number"), "{bad}");
        }
        assert!(error(json!("99999999999999999999")).contains("out of range"));
        assert!(error(json!(1e300)).contains("out of range"));
        assert!(error(json!(u64::MAX)).contains("out of range"));
        assert_eq!(
            error(json!(true)),
            "expected a date for \"seconds\", found a JSON boolean"
        );
        let pattern = DateFormat::new("yyyy").expect("format");
        assert_eq!(
            pattern
                .parse_json(&json!(2026), &utc)
                .map_err(|e| e.to_string()),
            Err("expected a date for \"yyyy\", found a JSON number".to_string())
        );
    }
}
