//! Date formats and timezones as Open Connectors instance files write them.
//!
//! This module owns three things, all pure (no I/O, no clock reads):
//! - compiling a Java `SimpleDateFormat` pattern, or the special formats `milliseconds` and
//!   `seconds`, into a [`DateFormat`];
//! - formatting an instant with it (for `${date:...}` in resource URLs) and parsing provider date
//!   text or JSON epoch numbers back into an instant (for `updatedDateField`/`createdDateField`);
//! - naming timezones ([`Zone`]): IANA names, `GMT`/`UTC` and fixed offsets.
//!
//! Java is followed wherever providers were configured against it (`XXX` prints `Z` for a zero
//! offset, `yy` pivots, names are English), with the deliberate exception of docs/instances.md#date-formats-and-url-macros: a run of
//! n `S` letters is n fraction digits, both when parsing and when formatting, never Java's
//! zero-padded millisecond count.
//!
//! One file a step: `zone` names timezones and resolves local times in them; `compile` turns a
//! pattern into tokens; `format` prints an instant with them; `parse` reads date text back (with
//! `cursor`, which reading zone names shares); `epoch` reads the `milliseconds`/`seconds`
//! numbers. This file holds the error types and [`DateFormat`], whose methods hand each job to
//! those files; [`Zone`] lives in `zone` and is re-exported here.

mod compile;
mod cursor;
mod doubt;
mod epoch;
mod format;
mod parse;
mod shared;
mod zone;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::json;

use compile::{Field, FieldSpec, Token, compile_pattern};
use epoch::{EpochUnit, parse_epoch_number, parse_epoch_text};
use format::format_pattern;
use parse::parse_pattern;

pub use doubt::Doubts;
pub use zone::Zone;

// English month and day names (`MMM`/`MMMM`, `EEE`/`EEEE`): formatting prints them, parsing
// reads them back.
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTH_ABBREVIATIONS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// Monday first, so that the index is `Weekday::num_days_from_monday`.
const DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const DAY_ABBREVIATIONS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a date format (`updatedDateFormat`, `${date:FORMAT}`) cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("empty date format")]
    Empty,
    #[error("unknown pattern letter '{letter}' at position {position} in \"{pattern}\"")]
    UnknownLetter {
        letter: char,
        position: usize,
        pattern: String,
    },
    #[error(
        "pattern letter '{letter}' ({meaning}) at position {position} in \"{pattern}\" is not supported by ocpoll"
    )]
    UnsupportedLetter {
        letter: char,
        meaning: &'static str,
        position: usize,
        pattern: String,
    },
    #[error(
        "too many '{letter}' at position {position} in \"{pattern}\": at most {max} are allowed"
    )]
    TooManyLetters {
        letter: char,
        max: usize,
        position: usize,
        pattern: String,
    },
    #[error("unterminated quote at position {position} in \"{pattern}\"")]
    UnterminatedQuote { position: usize, pattern: String },
}

/// Why a date value from a record (or any text) does not match its format. Only the date text
/// and the pattern appear in the message, never other record data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateParseError {
    #[error("\"{text}\" does not match \"{pattern}\": expected {expected} at position {position}")]
    Mismatch {
        text: String,
        pattern: String,
        expected: String,
        position: usize,
    },
    #[error(
        "\"{text}\" does not match \"{pattern}\": {field} {value} is out of range at position {position}"
    )]
    OutOfRange {
        text: String,
        pattern: String,
        field: &'static str,
        value: String,
        position: usize,
    },
    #[error(
        "\"{text}\" does not match \"{pattern}\": time zone \"{zone}\" at position {position} is neither an IANA name nor an abbreviation of the configured timezone"
    )]
    UnknownZoneName {
        text: String,
        pattern: String,
        zone: String,
        position: usize,
    },
    #[error("\"{text}\" does not match \"{pattern}\": there is no such date")]
    NoSuchDate { text: String, pattern: String },
    #[error("\"{text}\" is not a number of {unit} since 1970-01-01T00:00:00Z")]
    NotEpochNumber { text: String, unit: &'static str },
    #[error("{text} {unit} since 1970-01-01T00:00:00Z is negative or out of range")]
    EpochOutOfRange { text: String, unit: &'static str },
    #[error("expected a date for \"{pattern}\", found a JSON {found}")]
    UnexpectedJson {
        pattern: String,
        found: &'static str,
    },
}

/// Why a timezone name (`updatedDateTimezone`) is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error("unknown timezone \"{name}\"")]
    Unknown { name: String },
}

/// Date text quoted in an error is cut to this many characters: record fields can be huge.
const MAX_QUOTED_TEXT_CHARS: usize = 80;

/// The date text as quoted in errors: cut at a character boundary when very long.
fn quoted_text(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_TEXT_CHARS) {
        Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or("")),
        None => text.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled formats
// ---------------------------------------------------------------------------------------------

/// A compiled date format: a `SimpleDateFormat` pattern or an epoch number format. Cheap to
/// clone, and shared: formats compiled from the same text hold one compilation (see `shared`).
#[derive(Clone, Debug)]
pub struct DateFormat(Arc<Compiled>);

/// What a format's text compiles to.
#[derive(Debug, PartialEq)]
struct Compiled {
    spec: Box<str>,
    kind: FormatKind,
}

impl PartialEq for DateFormat {
    fn eq(&self, other: &DateFormat) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

#[derive(Clone, Debug, PartialEq)]
enum FormatKind {
    EpochMilliseconds,
    EpochSeconds,
    Pattern(Box<[Token]>),
}

impl DateFormat {
    /// "milliseconds" | "seconds" (epoch numbers) or a SimpleDateFormat pattern.
    pub fn new(spec: &str) -> Result<DateFormat, FormatError> {
        shared::compiled(spec, || {
            let kind = if spec.eq_ignore_ascii_case("milliseconds") {
                FormatKind::EpochMilliseconds
            } else if spec.eq_ignore_ascii_case("seconds") {
                FormatKind::EpochSeconds
            } else {
                FormatKind::Pattern(compile_pattern(spec)?.into_boxed_slice())
            };
            Ok(Compiled {
                spec: spec.into(),
                kind,
            })
        })
        .map(DateFormat)
    }

    /// The format as written in the configuration.
    pub fn spec(&self) -> &str {
        &self.0.spec
    }

    pub fn format(&self, instant: DateTime<Utc>, zone: &Zone) -> String {
        match &self.0.kind {
            FormatKind::EpochMilliseconds => instant.timestamp_millis().to_string(),
            FormatKind::EpochSeconds => instant.timestamp().to_string(),
            FormatKind::Pattern(tokens) => format_pattern(tokens, instant, zone),
        }
    }

    /// Parses the whole of `text`. Without a zone field in the pattern the local time is read
    /// in `zone`; with one, the offset in the text wins.
    pub fn parse(&self, text: &str, zone: &Zone) -> Result<DateTime<Utc>, DateParseError> {
        match &self.0.kind {
            FormatKind::EpochMilliseconds => parse_epoch_text(text, EpochUnit::Milliseconds),
            FormatKind::EpochSeconds => parse_epoch_text(text, EpochUnit::Seconds),
            FormatKind::Pattern(tokens) => parse_pattern(tokens, text, &self.0.spec, zone),
        }
    }

    /// A record field value: JSON strings via [`DateFormat::parse`]; for the epoch formats also
    /// JSON numbers, integer or not.
    pub fn parse_json(
        &self,
        value: &serde_json::Value,
        zone: &Zone,
    ) -> Result<DateTime<Utc>, DateParseError> {
        use serde_json::Value;
        let unit = match self.0.kind {
            FormatKind::EpochMilliseconds => Some(EpochUnit::Milliseconds),
            FormatKind::EpochSeconds => Some(EpochUnit::Seconds),
            FormatKind::Pattern(_) => None,
        };
        match (value, unit) {
            (Value::String(text), _) => self.parse(text, zone),
            (Value::Number(number), Some(unit)) => parse_epoch_number(number, unit),
            (other, _) => Err(DateParseError::UnexpectedJson {
                pattern: self.0.spec.to_string(),
                found: json::type_name(other),
            }),
        }
    }

    /// How many fraction digits this format carries: the number of `S` letters (at most 9,
    /// nanoseconds being the finest precision there is), 3 for milliseconds, else 0.
    pub fn fraction_digits(&self) -> u8 {
        match &self.0.kind {
            FormatKind::EpochMilliseconds => 3,
            FormatKind::EpochSeconds => 0,
            FormatKind::Pattern(tokens) => {
                let count: usize = field_specs(tokens)
                    .filter(|spec| spec.field == Field::Fraction)
                    .map(|spec| spec.count)
                    .sum();
                u8::try_from(count.min(9)).unwrap_or(9)
            }
        }
    }

    /// True when an `S` run directly follows another number with no '.' between them
    /// (Salesloft's `ssSSSSSS`): parsing copes, but `validate` warns about it.
    pub fn has_dotless_fraction(&self) -> bool {
        self.pattern_fields().any(|spec| spec.dot_optional)
    }

    /// What is doubtful in this pattern (`DD` beside `MM`, `MM` after `HH:`, ...), with the
    /// pattern probably meant; `None` for a pattern that says what it means.
    pub fn doubts(&self) -> Option<Doubts> {
        match &self.0.kind {
            FormatKind::Pattern(tokens) => doubt::doubts(tokens, &self.0.spec),
            _ => None,
        }
    }

    /// True when the pattern carries its own offset (`X`, `Z` or `z`). A quoted `'Z'` is a
    /// literal and does not count.
    pub fn has_zone_field(&self) -> bool {
        self.pattern_fields().any(|spec| spec.is_zone())
    }

    fn pattern_fields(&self) -> impl Iterator<Item = &FieldSpec> {
        let tokens: &[Token] = match &self.0.kind {
            FormatKind::Pattern(tokens) => tokens,
            _ => &[],
        };
        field_specs(tokens)
    }
}

fn field_specs(tokens: &[Token]) -> impl Iterator<Item = &FieldSpec> {
    tokens.iter().filter_map(|token| match token {
        Token::Field(spec) => Some(spec),
        Token::Literal(_) => None,
    })
}

impl fmt::Display for DateFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.spec)
    }
}
