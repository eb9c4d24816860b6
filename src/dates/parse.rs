//! Parsing date text with a compiled pattern: reading each field (numbers by width where
//! numbers abut, names ignoring case, offsets and zone names), then resolving the fields into
//! an instant in the zone the text names or the configured one. Errors quote the text and say
//! what was expected where.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use super::compile::{Field, FieldSpec, Token};
use super::cursor::{Cursor, read_signed_offset};
use super::zone::{find_iana_zone, local_to_utc, utc_offset};
use super::{
    DAY_ABBREVIATIONS, DAY_NAMES, DateParseError, MONTH_ABBREVIATIONS, MONTH_NAMES, Zone,
    quoted_text,
};

/// Two-digit years (`yy`) below this become 20xx, the others 19xx. Java pivots around "now minus
/// 80 years", which would make parsing depend on the clock; a fixed pivot keeps it pure.
const TWO_DIGIT_YEAR_PIVOT: u32 = 46;

/// More digits than this in one numeric field cannot be a date (and would overflow a `u32`).
const MAX_NUMBER_DIGITS: usize = 9;

/// A zone read from the date text.
enum TextZone {
    Offset(FixedOffset),
    Iana(Tz),
    /// An abbreviation ("CEST"), resolved against the configured zone once the local time is
    /// known; `position` is where it started, for the error.
    Name {
        name: String,
        position: usize,
    },
}

/// Field values read so far; what the text does not give defaults like Java's
/// (1970-01-01T00:00:00).
#[derive(Default)]
struct ParsedFields {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    hour_of_day: Option<u32>,
    hour_of_half_day: Option<u32>,
    pm: Option<bool>,
    minute: Option<u32>,
    second: Option<u32>,
    nanos: Option<u32>,
    zone: Option<TextZone>,
}

/// Reads the whole of `text` with a compiled `pattern` (`tokens`); `zone` is the configured
/// timezone, for local times and zone abbreviations.
pub(super) fn parse_pattern(
    tokens: &[Token],
    text: &str,
    pattern: &str,
    zone: &Zone,
) -> Result<DateTime<Utc>, DateParseError> {
    PatternParser::new(text, pattern).run(tokens, zone)
}

struct PatternParser<'a> {
    cursor: Cursor<'a>,
    pattern: &'a str,
    fields: ParsedFields,
}

impl<'a> PatternParser<'a> {
    fn new(text: &'a str, pattern: &'a str) -> Self {
        PatternParser {
            cursor: Cursor::new(text),
            pattern,
            fields: ParsedFields::default(),
        }
    }

    fn run(mut self, tokens: &[Token], zone: &Zone) -> Result<DateTime<Utc>, DateParseError> {
        for token in tokens {
            match token {
                Token::Literal(literal) => self.expect_literal(literal)?,
                Token::Field(spec) => self.read_field(spec)?,
            }
        }
        if !self.cursor.is_done() {
            return Err(self.mismatch_here("end of text"));
        }
        self.resolve(zone)
    }

    fn expect_literal(&mut self, literal: &str) -> Result<(), DateParseError> {
        for expected in literal.chars() {
            if !self.cursor.eat(expected) {
                return Err(self.mismatch_here(format!("'{expected}'")));
            }
        }
        Ok(())
    }

    fn read_field(&mut self, spec: &FieldSpec) -> Result<(), DateParseError> {
        match spec.field {
            Field::Year => {
                let year = self.read_year(spec)?;
                self.fields.year = Some(year);
            }
            Field::Month if spec.count <= 2 => {
                self.fields.month = Some(self.read_number_in(spec, "month", 1, 12)?);
            }
            Field::Month => {
                let index = self.read_name(spec, &MONTH_NAMES, &MONTH_ABBREVIATIONS)?;
                self.fields.month = u32::try_from(index + 1).ok();
            }
            Field::DayOfMonth => self.fields.day = Some(self.read_number_in(spec, "day", 1, 31)?),
            Field::DayOfYear => {
                self.fields.day_of_year = Some(self.read_number_in(spec, "day of year", 1, 366)?);
            }
            Field::HourOfDay => {
                self.fields.hour_of_day = Some(self.read_number_in(spec, "hour", 0, 23)?);
            }
            Field::HourOfDayFromOne => {
                self.fields.hour_of_day = Some(self.read_number_in(spec, "hour", 1, 24)? % 24);
            }
            Field::HourOfHalfDay => {
                self.fields.hour_of_half_day = Some(self.read_number_in(spec, "hour", 0, 11)?);
            }
            Field::HourOfHalfDayFromOne => {
                self.fields.hour_of_half_day = Some(self.read_number_in(spec, "hour", 1, 12)? % 12);
            }
            Field::Minute => self.fields.minute = Some(self.read_number_in(spec, "minute", 0, 59)?),
            Field::Second => self.fields.second = Some(self.read_number_in(spec, "second", 0, 59)?),
            Field::Fraction => {
                let nanos = self.read_fraction(spec)?;
                self.fields.nanos = Some(nanos);
            }
            Field::DayName => {
                // The day name must be a real one, but the date comes from the other fields.
                self.read_name(spec, &DAY_NAMES, &DAY_ABBREVIATIONS)?;
            }
            Field::IsoDayNumber => {
                self.read_number_in(spec, "day of week", 1, 7)?;
            }
            Field::AmPm => {
                let index = self.read_name(spec, &["AM", "PM"], &[])?;
                self.fields.pm = Some(index == 1);
            }
            Field::ZoneName => {
                let zone = self.read_zone_name(spec)?;
                self.fields.zone = Some(zone);
            }
            Field::ZoneRfc822 | Field::ZoneIso => {
                let offset = self.read_offset(spec)?;
                self.fields.zone = Some(TextZone::Offset(offset));
            }
        }
        Ok(())
    }

    /// Reads a number: exactly `count` digits when another number follows directly in the
    /// pattern, else every digit present (at least one).
    fn read_number(&mut self, spec: &FieldSpec) -> Result<(u32, usize), DateParseError> {
        let start = self.cursor.pos;
        let digits = if spec.fixed_width {
            self.cursor.digits(spec.count)
        } else {
            self.cursor.digits(usize::MAX)
        };
        let too_short = digits.is_empty() || (spec.fixed_width && digits.len() < spec.count);
        if too_short {
            self.cursor.pos = start;
            let expected = if spec.fixed_width {
                format!("{} digits ({})", spec.count, spec.letters())
            } else {
                format!("digits ({})", spec.letters())
            };
            return Err(self.mismatch_here(expected));
        }
        if digits.len() > MAX_NUMBER_DIGITS {
            return Err(self.out_of_range("number", digits, start));
        }
        let value = digits
            .parse::<u32>()
            .map_err(|_| self.out_of_range("number", digits, start))?;
        Ok((value, digits.len()))
    }

    fn read_number_in(
        &mut self,
        spec: &FieldSpec,
        name: &'static str,
        min: u32,
        max: u32,
    ) -> Result<u32, DateParseError> {
        let start = self.cursor.pos;
        let (value, _) = self.read_number(spec)?;
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(self.out_of_range(name, &value.to_string(), start))
        }
    }

    /// `yy` (or `y`) with exactly two digits pivots into 1946-2045; other years are literal.
    fn read_year(&mut self, spec: &FieldSpec) -> Result<i32, DateParseError> {
        let start = self.cursor.pos;
        let (value, digits) = self.read_number(spec)?;
        let value = if spec.count <= 2 && digits == 2 {
            if value < TWO_DIGIT_YEAR_PIVOT {
                2000 + value
            } else {
                1900 + value
            }
        } else {
            value
        };
        i32::try_from(value).map_err(|_| self.out_of_range("year", &value.to_string(), start))
    }

    /// Reads a fraction of a second: n digits mean n fraction digits, whatever the pattern's
    /// count (unless another number follows), truncated to nanoseconds.
    fn read_fraction(&mut self, spec: &FieldSpec) -> Result<u32, DateParseError> {
        if spec.dot_optional {
            self.cursor.eat('.');
        }
        let start = self.cursor.pos;
        let digits = if spec.fixed_width {
            self.cursor.digits(spec.count)
        } else {
            self.cursor.digits(usize::MAX)
        };
        if digits.is_empty() || (spec.fixed_width && digits.len() < spec.count) {
            self.cursor.pos = start;
            return Err(
                self.mismatch_here(format!("fraction-of-second digits ({})", spec.letters()))
            );
        }
        Ok(fraction_to_nanos(digits))
    }

    /// Matches one of `names` (then `abbreviations`) ignoring case; returns its index.
    fn read_name(
        &mut self,
        spec: &FieldSpec,
        names: &[&str],
        abbreviations: &[&str],
    ) -> Result<usize, DateParseError> {
        // Full names first: "May" aside, an abbreviation is a prefix of its full name.
        let found = [names, abbreviations].into_iter().find_map(|list| {
            list.iter()
                .position(|name| self.cursor.eat_ignore_case(name))
        });
        found.ok_or_else(|| {
            let expected = match spec.field {
                Field::Month => format!("a month name ({})", spec.letters()),
                Field::DayName => format!("a day name ({})", spec.letters()),
                _ => format!("AM or PM ({})", spec.letters()),
            };
            self.mismatch_here(expected)
        })
    }

    /// `Z` and `X`: leniently "Z", "+hh", "+hhmm" or "+hh:mm" whatever the letter count.
    fn read_offset(&mut self, spec: &FieldSpec) -> Result<FixedOffset, DateParseError> {
        let start = self.cursor.pos;
        if self.cursor.eat('Z') {
            return Ok(utc_offset());
        }
        read_signed_offset(&mut self.cursor).ok_or_else(|| {
            self.cursor.pos = start;
            self.mismatch_here(format!(
                "an offset like Z, +02, +0200 or +02:00 ({})",
                spec.letters()
            ))
        })
    }

    /// `z`: "GMT"/"UTC" with an optional offset, "Z", an IANA name, or an abbreviation that
    /// is checked against the configured zone later.
    fn read_zone_name(&mut self, spec: &FieldSpec) -> Result<TextZone, DateParseError> {
        let start = self.cursor.pos;
        let expected = || format!("a time zone ({})", spec.letters());
        if self.cursor.eat_ignore_case("GMT") || self.cursor.eat_ignore_case("UTC") {
            let after_prefix = self.cursor.pos;
            if let Some(offset) = read_signed_offset(&mut self.cursor) {
                return Ok(TextZone::Offset(offset));
            }
            self.cursor.pos = after_prefix;
            if !self.cursor.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                return Ok(TextZone::Offset(utc_offset()));
            }
            self.cursor.pos = start;
        }
        let identifier = self.cursor.zone_identifier();
        if identifier == "Z" {
            return Ok(TextZone::Offset(utc_offset()));
        }
        if !identifier.is_empty() && identifier.chars().all(|c| c.is_ascii_alphabetic()) {
            return Ok(TextZone::Name {
                name: identifier.to_string(),
                position: self.cursor.char_position(start),
            });
        }
        match find_iana_zone(identifier) {
            Some(tz) if !identifier.is_empty() => Ok(TextZone::Iana(tz)),
            _ => {
                self.cursor.pos = start;
                Err(self.mismatch_here(expected()))
            }
        }
    }

    fn resolve(self, zone: &Zone) -> Result<DateTime<Utc>, DateParseError> {
        let local = self.local_date_time()?;
        let instant = match &self.fields.zone {
            None => zone.resolve_local(local),
            Some(TextZone::Offset(offset)) => local_to_utc(local, *offset),
            Some(TextZone::Iana(tz)) => {
                Zone::from_iana(tz.name().to_string(), *tz).resolve_local(local)
            }
            Some(TextZone::Name { name, position }) => {
                if let Some(offset) = zone.offset_for_abbreviation(local, name) {
                    local_to_utc(local, offset)
                } else if let Some(tz) = find_iana_zone(name) {
                    Zone::from_iana(name.clone(), tz).resolve_local(local)
                } else {
                    return Err(DateParseError::UnknownZoneName {
                        text: quoted_text(self.cursor.text),
                        pattern: self.pattern.to_string(),
                        zone: name.clone(),
                        position: *position,
                    });
                }
            }
        };
        instant.ok_or_else(|| self.no_such_date())
    }

    fn local_date_time(&self) -> Result<NaiveDateTime, DateParseError> {
        let f = &self.fields;
        let year = f.year.unwrap_or(1970);
        // A day of year only decides the date when no month or day says otherwise.
        let date = match (f.month, f.day, f.day_of_year) {
            (None, None, Some(day_of_year)) => NaiveDate::from_yo_opt(year, day_of_year),
            (month, day, _) => NaiveDate::from_ymd_opt(year, month.unwrap_or(1), day.unwrap_or(1)),
        };
        let pm_hours = if f.pm == Some(true) { 12 } else { 0 };
        let hour = f
            .hour_of_day
            .unwrap_or_else(|| f.hour_of_half_day.unwrap_or(0) + pm_hours);
        let time = NaiveTime::from_hms_nano_opt(
            hour,
            f.minute.unwrap_or(0),
            f.second.unwrap_or(0),
            f.nanos.unwrap_or(0),
        );
        match (date, time) {
            (Some(date), Some(time)) => Ok(date.and_time(time)),
            _ => Err(self.no_such_date()),
        }
    }

    fn mismatch_here(&self, expected: impl Into<String>) -> DateParseError {
        DateParseError::Mismatch {
            text: quoted_text(self.cursor.text),
            pattern: self.pattern.to_string(),
            expected: expected.into(),
            position: self.cursor.char_position(self.cursor.pos),
        }
    }

    fn out_of_range(&self, field: &'static str, value: &str, byte_pos: usize) -> DateParseError {
        DateParseError::OutOfRange {
            text: quoted_text(self.cursor.text),
            pattern: self.pattern.to_string(),
            field,
            value: quoted_text(value),
            position: self.cursor.char_position(byte_pos),
        }
    }

    fn no_such_date(&self) -> DateParseError {
        DateParseError::NoSuchDate {
            text: quoted_text(self.cursor.text),
            pattern: self.pattern.to_string(),
        }
    }
}

/// "5" is half a second, "123456" 123456 microseconds; digits past the ninth are dropped.
pub(super) fn fraction_to_nanos(digits: &str) -> u32 {
    let mut nanos: u32 = 0;
    let mut scale: u32 = 100_000_000;
    for digit in digits.bytes().take(9) {
        nanos += u32::from(digit - b'0') * scale;
        scale /= 10;
    }
    nanos
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::dates::test_support::*;
    use crate::dates::{DateFormat, Zone};

    #[test]
    fn zone_names_unknown_to_the_configured_zone_are_errors() {
        let pattern = "EEE, dd MMM yyyy HH:mm:ss z";
        assert_eq!(
            parse_error(pattern, "Wed, 25 Nov 2026 12:59:58 PST"),
            "\"Wed, 25 Nov 2026 12:59:58 PST\" does not match \"EEE, dd MMM yyyy HH:mm:ss z\": \
             time zone \"PST\" at position 27 is neither an IANA name nor an abbreviation of the \
             configured timezone"
        );
        assert!(
            parse_error(pattern, "Xyz, 25 Nov 2026 12:59:58 GMT")
                .ends_with("expected a day name (EEE) at position 1")
        );
    }

    #[test]
    fn wrong_literal_names_what_was_expected_where() {
        assert_eq!(
            parse_error("yyyy-MM-dd'T'HH:mm:ss'Z'", "2026-11-25 12:00"),
            "\"2026-11-25 12:00\" does not match \"yyyy-MM-dd'T'HH:mm:ss'Z'\": expected 'T' at position 11"
        );
    }

    #[test]
    fn trailing_text_is_an_error() {
        assert_eq!(
            parse_error("yyyy-MM-dd", "2026-11-25x"),
            "\"2026-11-25x\" does not match \"yyyy-MM-dd\": expected end of text at position 11"
        );
        assert!(
            parse_error("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2026-11-25T12:59:58.123Zé")
                .ends_with("expected end of text at position 25")
        );
    }

    #[test]
    fn out_of_range_fields_are_errors() {
        assert_eq!(
            parse_error("yyyy-MM-dd", "2026-13-01"),
            "\"2026-13-01\" does not match \"yyyy-MM-dd\": month 13 is out of range at position 6"
        );
        assert!(parse_error("HH:mm", "24:00").contains("hour 24 is out of range at position 1"));
        assert_eq!(
            parse_error("yyyy-MM-dd", "2026-02-30"),
            "\"2026-02-30\" does not match \"yyyy-MM-dd\": there is no such date"
        );
        assert!(parse_error("yyyy", "12345678901").contains("number 12345678901 is out of range"));
    }

    #[test]
    fn empty_and_non_ascii_text_are_errors_not_panics() {
        assert_eq!(
            parse_error("yyyy-MM-dd", ""),
            "\"\" does not match \"yyyy-MM-dd\": expected digits (yyyy) at position 1"
        );
        assert!(parse_error("yyyy-MM-dd", "２０２６-11-25").contains("at position 1"));
        assert!(
            parse_error("dd MMM yyyy", "25 Növ 2026").contains("month name (MMM) at position 4")
        );
        assert!(
            parse_error("EEE, dd MMM yyyy HH:mm:ss z", "Wed, 25 Nov 2026 12:59:58 ü")
                .contains("time zone (z)")
        );
        let long = "9".repeat(500);
        assert!(
            parse_error("yyyy", &long).len() < 300,
            "long text is cut in errors"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parsing_any_text_never_panics(
            pattern in "[yMLdDHkKhmsSEuazZXGQ'., :+/-]{1,16}",
            text in "[0-9A-Za-z:+. ,'/-]{0,24}|\\PC{0,24}",
            zone_name in proptest::sample::select(ZONES),
        ) {
            let zone = zone(zone_name);
            if let Ok(format) = DateFormat::new(&pattern) {
                let _ = format.parse(&text, &zone);
                let _ = format.parse_json(&serde_json::Value::String(text.clone()), &zone);
            }
            let _ = Zone::parse(&text);
            for special in ["milliseconds", "seconds"] {
                let _ = DateFormat::new(special).expect("special").parse(&text, &zone);
            }
        }
    }
}
