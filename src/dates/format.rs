//! Formatting an instant with a compiled pattern (`${date:...}` in resource URLs): each
//! field as Java prints it, except that n `S` letters are the first n fraction digits.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike, Utc};

use super::compile::{Field, FieldSpec, Token};
use super::zone::{OffsetStyle, offset_text};
use super::{DAY_ABBREVIATIONS, DAY_NAMES, MONTH_ABBREVIATIONS, MONTH_NAMES, Zone};

pub(super) fn format_pattern(tokens: &[Token], instant: DateTime<Utc>, zone: &Zone) -> String {
    let offset = zone.offset_at(instant);
    let local = instant.with_timezone(&offset).naive_local();
    let mut out = String::with_capacity(32);
    for token in tokens {
        match token {
            Token::Literal(text) => out.push_str(text),
            Token::Field(spec) => format_field(&mut out, spec, local, offset, || {
                zone.abbreviation_at(instant)
            }),
        }
    }
    out
}

fn format_field(
    out: &mut String,
    spec: &FieldSpec,
    local: NaiveDateTime,
    offset: FixedOffset,
    zone_abbreviation: impl FnOnce() -> String,
) {
    let count = spec.count;
    let weekday = local.weekday().num_days_from_monday() as usize;
    match spec.field {
        Field::Year => format_year(out, local.year(), count),
        Field::Month => format_month(out, local.month0() as usize, count),
        Field::DayOfMonth => push_number(out, local.day(), count),
        Field::DayOfYear => push_number(out, local.ordinal(), count),
        Field::HourOfDay => push_number(out, local.hour(), count),
        Field::HourOfDayFromOne => push_number(out, hour_from_one(local.hour(), 24), count),
        Field::HourOfHalfDay => push_number(out, local.hour() % 12, count),
        Field::HourOfHalfDayFromOne => push_number(out, hour_from_one(local.hour(), 12), count),
        Field::Minute => push_number(out, local.minute(), count),
        Field::Second => push_number(out, local.second(), count),
        Field::Fraction => format_fraction(out, local.nanosecond(), count),
        Field::DayName => out.push_str(pick_name(&DAY_ABBREVIATIONS, &DAY_NAMES, weekday, count)),
        Field::IsoDayNumber => push_number(out, local.weekday().number_from_monday(), count),
        Field::AmPm => out.push_str(if local.hour() < 12 { "AM" } else { "PM" }),
        Field::ZoneName => out.push_str(&zone_abbreviation()),
        Field::ZoneRfc822 => out.push_str(&offset_text(offset, OffsetStyle::Compact)),
        Field::ZoneIso => format_iso_offset(out, offset, count),
    }
}

/// k and h count from one: hour 0 is 24 (k) or 12 (h).
fn hour_from_one(hour: u32, modulus: u32) -> u32 {
    match hour % modulus {
        0 => modulus,
        h => h,
    }
}

fn push_number(out: &mut String, value: u32, width: usize) {
    let _ = write!(out, "{value:0width$}");
}

/// Java: `yy` is the last two digits, any other count is the full year zero-padded.
fn format_year(out: &mut String, year: i32, count: usize) {
    if count == 2 {
        let _ = write!(out, "{:02}", year.rem_euclid(100));
    } else {
        let _ = write!(out, "{year:0count$}");
    }
}

fn format_month(out: &mut String, month0: usize, count: usize) {
    if count <= 2 {
        let month = u32::try_from(month0 + 1).unwrap_or(1);
        push_number(out, month, count);
    } else {
        out.push_str(pick_name(&MONTH_ABBREVIATIONS, &MONTH_NAMES, month0, count));
    }
}

/// 1-3 letters print the abbreviation, 4 or more the full name (Java's rule for E and M).
fn pick_name(
    abbreviations: &[&'static str],
    names: &[&'static str],
    index: usize,
    count: usize,
) -> &'static str {
    let list = if count >= 4 { names } else { abbreviations };
    list.get(index).copied().unwrap_or("")
}

/// n `S` print the first n digits of the fraction of the second, truncated (docs/instances.md#date-formats-and-url-macros).
fn format_fraction(out: &mut String, nanos: u32, count: usize) {
    // chrono represents a leap second as nanos >= 1e9; print it as the end of the second.
    let nanos = nanos.min(999_999_999);
    let digits = format!("{nanos:09}");
    out.push_str(digits.get(..count.min(9)).unwrap_or(""));
    out.extend(std::iter::repeat_n('0', count.saturating_sub(9)));
}

/// Java's X: "Z" for a zero offset, else "+02", "+0200" or "+02:00" for X, XX, XXX.
fn format_iso_offset(out: &mut String, offset: FixedOffset, count: usize) {
    if offset.local_minus_utc() == 0 {
        out.push('Z');
        return;
    }
    let style = match count {
        1 => OffsetStyle::Hours,
        2 => OffsetStyle::Compact,
        _ => OffsetStyle::Colon,
    };
    out.push_str(&offset_text(offset, style));
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use proptest::prelude::*;

    use crate::dates::DateFormat;
    use crate::dates::test_support::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn formatting_never_panics(
            pattern in "[yMLdDHkKhmsSEuazZX'., :+/-]{1,16}",
            seconds in -8_000_000_000_000i64..8_000_000_000_000,
            zone_name in proptest::sample::select(ZONES),
        ) {
            let zone = zone(zone_name);
            if let (Ok(format), Some(at)) = (DateFormat::new(&pattern), DateTime::from_timestamp(seconds, 0)) {
                let _ = format.format(at, &zone);
            }
        }
    }
}
