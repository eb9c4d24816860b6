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
//! offset, `yy` pivots, names are English), with SPEC section 4's deliberate exception: a run of
//! n `S` letters is n fraction digits, both when parsing and when formatting, never Java's
//! zero-padded millisecond count.

use std::fmt::{self, Write as _};

use chrono::{
    DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::{OffsetName, Tz};

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

/// Two-digit years (`yy`) below this become 20xx, the others 19xx. Java pivots around "now minus
/// 80 years", which would make parsing depend on the clock; a fixed pivot keeps it pure.
const TWO_DIGIT_YEAR_PIVOT: u32 = 46;

/// More digits than this in one numeric field cannot be a date (and would overflow a `u32`).
const MAX_NUMBER_DIGITS: usize = 9;

/// Date text quoted in an error is cut to this many characters: record fields can be huge.
const MAX_QUOTED_TEXT_CHARS: usize = 80;

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

// ---------------------------------------------------------------------------------------------
// Zone
// ---------------------------------------------------------------------------------------------

/// A timezone: an IANA zone (with its DST rules) or a fixed offset from UTC.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    name: String,
    rules: ZoneRules,
}

#[derive(Clone, Debug, PartialEq)]
enum ZoneRules {
    /// `label` is what the `z` letter prints, as Java would: "UTC", "GMT", "GMT+02:00".
    Fixed {
        offset: FixedOffset,
        label: String,
    },
    Iana(Tz),
}

impl Zone {
    pub fn utc() -> Zone {
        Zone::zero_offset("UTC", "UTC")
    }

    /// GMT, the zone of `${gmtDate:...}`.
    pub fn gmt() -> Zone {
        Zone::zero_offset("GMT", "GMT")
    }

    /// Accepts "UTC", "GMT", "Z", offsets with or without a GMT/UTC prefix ("GMT+02:00",
    /// "GMT-5", "UTC+0530", "+02:00") and IANA names ("Europe/Berlin"), the latter
    /// case-insensitively when the exact spelling is unknown.
    pub fn parse(name: &str) -> Result<Zone, ZoneError> {
        let trimmed = name.trim();
        if let Some(rules) = fixed_zone_rules(trimmed) {
            return Ok(Zone {
                name: trimmed.to_string(),
                rules,
            });
        }
        match find_iana_zone(trimmed) {
            Some(tz) => Ok(Zone {
                name: trimmed.to_string(),
                rules: ZoneRules::Iana(tz),
            }),
            None => Err(ZoneError::Unknown {
                name: name.to_string(),
            }),
        }
    }

    /// The name as configured (trimmed).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn zero_offset(name: &str, label: &str) -> Zone {
        Zone {
            name: name.to_string(),
            rules: ZoneRules::Fixed {
                offset: utc_offset(),
                label: label.to_string(),
            },
        }
    }

    fn offset_at(&self, instant: DateTime<Utc>) -> FixedOffset {
        match &self.rules {
            ZoneRules::Fixed { offset, .. } => *offset,
            ZoneRules::Iana(tz) => tz.offset_from_utc_datetime(&instant.naive_utc()).fix(),
        }
    }

    /// What `z` prints: the zone's abbreviation when it has a real one, else "GMT+hh:mm" like
    /// Java does for zones it has no name for (tzdb writes "+0530"-style placeholders there).
    fn abbreviation_at(&self, instant: DateTime<Utc>) -> String {
        match &self.rules {
            ZoneRules::Fixed { label, .. } => label.clone(),
            ZoneRules::Iana(tz) => {
                let offset = tz.offset_from_utc_datetime(&instant.naive_utc());
                match offset.abbreviation() {
                    Some(name) if name.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                        name.to_string()
                    }
                    _ => gmt_label(offset.fix()),
                }
            }
        }
    }

    fn local_offsets(&self, local: NaiveDateTime) -> LocalResult<FixedOffset> {
        match &self.rules {
            ZoneRules::Fixed { offset, .. } => LocalResult::Single(*offset),
            ZoneRules::Iana(tz) => tz.offset_from_local_datetime(&local).map(|o| o.fix()),
        }
    }

    /// The instant of a local time, resolved like Java's lenient calendar: a time in a DST gap
    /// is shifted forward by the gap, a time in a fall-back overlap is the earlier instant.
    fn resolve_local(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.local_offsets(local) {
            LocalResult::Single(offset) => local_to_utc(local, offset),
            LocalResult::Ambiguous(a, b) => {
                let first = local_to_utc(local, a)?;
                let second = local_to_utc(local, b)?;
                Some(first.min(second))
            }
            LocalResult::None => local_to_utc(local, self.offset_before_gap(local)?),
        }
    }

    /// The offset in force just before the DST gap that swallows `local`. Interpreting the
    /// missing local time with it lands after the gap, shifted forward by the gap's length.
    fn offset_before_gap(&self, local: NaiveDateTime) -> Option<FixedOffset> {
        // Gaps are an hour or less almost everywhere; Samoa once skipped a whole day.
        (1..=48).find_map(|hours| {
            let probe = local.checked_sub_signed(TimeDelta::try_hours(hours)?)?;
            match self.local_offsets(probe) {
                LocalResult::Single(offset) => Some(offset),
                LocalResult::Ambiguous(_, later) => Some(later),
                LocalResult::None => None,
            }
        })
    }

    /// The offset a zone abbreviation found in date text ("CEST", "EST") stands for in this zone
    /// around the local time `local`, if this zone uses that abbreviation there.
    fn offset_for_abbreviation(&self, local: NaiveDateTime, name: &str) -> Option<FixedOffset> {
        match &self.rules {
            ZoneRules::Fixed { offset, label } => {
                label.eq_ignore_ascii_case(name).then_some(*offset)
            }
            ZoneRules::Iana(tz) => {
                // The offsets valid at that local time first, then those on either side of a
                // nearby transition, so "02:30 EDT" on the spring-forward day still resolves.
                let local_candidates = match tz.offset_from_local_datetime(&local) {
                    LocalResult::Single(o) => vec![o],
                    LocalResult::Ambiguous(a, b) => vec![a, b],
                    LocalResult::None => Vec::new(),
                };
                let nearby = [-14, 14].into_iter().filter_map(|hours| {
                    let probe = local.checked_add_signed(TimeDelta::try_hours(hours)?)?;
                    Some(tz.offset_from_utc_datetime(&probe))
                });
                local_candidates
                    .into_iter()
                    .chain(nearby)
                    .find(|o| {
                        o.abbreviation()
                            .is_some_and(|a| a.eq_ignore_ascii_case(name))
                    })
                    .map(|o| o.fix())
            }
        }
    }
}

fn utc_offset() -> FixedOffset {
    Utc.fix()
}

fn local_to_utc(local: NaiveDateTime, offset: FixedOffset) -> Option<DateTime<Utc>> {
    offset
        .from_local_datetime(&local)
        .single()
        .map(|dt| dt.with_timezone(&Utc))
}

/// "UTC"/"GMT"/"Z" and offsets, with or without a "GMT"/"UTC" prefix.
fn fixed_zone_rules(name: &str) -> Option<ZoneRules> {
    let zero = |label: &str| ZoneRules::Fixed {
        offset: utc_offset(),
        label: label.to_string(),
    };
    if ["UTC", "UT", "Z"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    {
        return Some(zero("UTC"));
    }
    if name.eq_ignore_ascii_case("GMT") {
        return Some(zero("GMT"));
    }
    let offset_text = strip_gmt_prefix(name).unwrap_or(name);
    if !offset_text.starts_with(['+', '-']) {
        return None;
    }
    let mut cursor = Cursor::new(offset_text);
    let offset = read_signed_offset(&mut cursor)?;
    cursor.is_done().then(|| ZoneRules::Fixed {
        offset,
        label: gmt_label(offset),
    })
}

/// The rest after a case-insensitive "GMT" or "UTC" prefix.
fn strip_gmt_prefix(name: &str) -> Option<&str> {
    let prefix = name.get(..3)?;
    let is_gmt = prefix.eq_ignore_ascii_case("GMT") || prefix.eq_ignore_ascii_case("UTC");
    is_gmt.then(|| name.get(3..)).flatten()
}

fn find_iana_zone(name: &str) -> Option<Tz> {
    if let Ok(tz) = name.parse::<Tz>() {
        return Some(tz);
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
        .copied()
}

/// "GMT+02:00", Java's name for a zone that is only an offset.
fn gmt_label(offset: FixedOffset) -> String {
    format!("GMT{}", offset_text(offset, OffsetStyle::Colon))
}

#[derive(Clone, Copy)]
enum OffsetStyle {
    /// "+02"
    Hours,
    /// "+0200"
    Compact,
    /// "+02:00"
    Colon,
}

/// An offset as Java prints it; seconds (only in historical local mean times) are dropped.
fn offset_text(offset: FixedOffset, style: OffsetStyle) -> String {
    let seconds = offset.local_minus_utc();
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes_total = seconds.unsigned_abs() / 60;
    let (hours, minutes) = (minutes_total / 60, minutes_total % 60);
    match style {
        OffsetStyle::Hours => format!("{sign}{hours:02}"),
        OffsetStyle::Compact => format!("{sign}{hours:02}{minutes:02}"),
        OffsetStyle::Colon => format!("{sign}{hours:02}:{minutes:02}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled formats
// ---------------------------------------------------------------------------------------------

/// A compiled date format: a `SimpleDateFormat` pattern or an epoch number format.
#[derive(Clone, Debug, PartialEq)]
pub struct DateFormat {
    spec: String,
    kind: FormatKind,
}

#[derive(Clone, Debug, PartialEq)]
enum FormatKind {
    EpochMilliseconds,
    EpochSeconds,
    Pattern(Vec<Token>),
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Literal(String),
    Field(FieldSpec),
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct FieldSpec {
    field: Field,
    /// How many times the letter is repeated.
    count: usize,
    /// 1-based character position of the letter run in the pattern.
    position: usize,
    /// Another number follows directly in the pattern (`HHmmss`), so this one can only be
    /// told apart by its width: parse exactly `count` digits.
    fixed_width: bool,
    /// A fraction written right after another number without a '.' (`ssSSSSSS`): providers
    /// configured that way still send the dot, so parsing accepts one.
    dot_optional: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Year,
    Month,
    DayOfMonth,
    DayOfYear,
    /// H, 0-23
    HourOfDay,
    /// k, 1-24
    HourOfDayFromOne,
    /// K, 0-11
    HourOfHalfDay,
    /// h, 1-12
    HourOfHalfDayFromOne,
    Minute,
    Second,
    Fraction,
    DayName,
    IsoDayNumber,
    AmPm,
    /// z
    ZoneName,
    /// Z
    ZoneRfc822,
    /// X
    ZoneIso,
}

impl FieldSpec {
    fn is_numeric(&self) -> bool {
        match self.field {
            Field::Month => self.count <= 2,
            Field::DayName | Field::AmPm | Field::ZoneName | Field::ZoneRfc822 | Field::ZoneIso => {
                false
            }
            _ => true,
        }
    }

    fn is_zone(&self) -> bool {
        matches!(
            self.field,
            Field::ZoneName | Field::ZoneRfc822 | Field::ZoneIso
        )
    }

    /// The pattern letters, for "expected ..." messages.
    fn letters(&self) -> String {
        let letter = match self.field {
            Field::Year => 'y',
            Field::Month => 'M',
            Field::DayOfMonth => 'd',
            Field::DayOfYear => 'D',
            Field::HourOfDay => 'H',
            Field::HourOfDayFromOne => 'k',
            Field::HourOfHalfDay => 'K',
            Field::HourOfHalfDayFromOne => 'h',
            Field::Minute => 'm',
            Field::Second => 's',
            Field::Fraction => 'S',
            Field::DayName => 'E',
            Field::IsoDayNumber => 'u',
            Field::AmPm => 'a',
            Field::ZoneName => 'z',
            Field::ZoneRfc822 => 'Z',
            Field::ZoneIso => 'X',
        };
        std::iter::repeat_n(letter, self.count.min(12)).collect()
    }
}

impl Token {
    fn numeric_field(&self) -> Option<&FieldSpec> {
        match self {
            Token::Field(spec) if spec.is_numeric() => Some(spec),
            _ => None,
        }
    }
}

impl DateFormat {
    /// "milliseconds" | "seconds" (epoch numbers) or a SimpleDateFormat pattern.
    pub fn new(spec: &str) -> Result<DateFormat, FormatError> {
        let kind = if spec.eq_ignore_ascii_case("milliseconds") {
            FormatKind::EpochMilliseconds
        } else if spec.eq_ignore_ascii_case("seconds") {
            FormatKind::EpochSeconds
        } else {
            FormatKind::Pattern(compile_pattern(spec)?)
        };
        Ok(DateFormat {
            spec: spec.to_string(),
            kind,
        })
    }

    /// The format as written in the configuration.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    pub fn format(&self, instant: DateTime<Utc>, zone: &Zone) -> String {
        match &self.kind {
            FormatKind::EpochMilliseconds => instant.timestamp_millis().to_string(),
            FormatKind::EpochSeconds => instant.timestamp().to_string(),
            FormatKind::Pattern(tokens) => format_pattern(tokens, instant, zone),
        }
    }

    /// Parses the whole of `text`. Without a zone field in the pattern the local time is read
    /// in `zone`; with one, the offset in the text wins.
    pub fn parse(&self, text: &str, zone: &Zone) -> Result<DateTime<Utc>, DateParseError> {
        match &self.kind {
            FormatKind::EpochMilliseconds => parse_epoch_text(text, EpochUnit::Milliseconds),
            FormatKind::EpochSeconds => parse_epoch_text(text, EpochUnit::Seconds),
            FormatKind::Pattern(tokens) => PatternParser::new(text, &self.spec).run(tokens, zone),
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
        let unit = match self.kind {
            FormatKind::EpochMilliseconds => Some(EpochUnit::Milliseconds),
            FormatKind::EpochSeconds => Some(EpochUnit::Seconds),
            FormatKind::Pattern(_) => None,
        };
        match (value, unit) {
            (Value::String(text), _) => self.parse(text, zone),
            (Value::Number(number), Some(unit)) => parse_epoch_number(number, unit),
            (other, _) => Err(DateParseError::UnexpectedJson {
                pattern: self.spec.clone(),
                found: json_type_name(other),
            }),
        }
    }

    /// How many fraction digits this format carries: the number of `S` letters (at most 9,
    /// nanoseconds being the finest precision there is), 3 for milliseconds, else 0.
    pub fn fraction_digits(&self) -> u8 {
        match &self.kind {
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

    /// True when the pattern carries its own offset (`X`, `Z` or `z`). A quoted `'Z'` is a
    /// literal and does not count.
    pub fn has_zone_field(&self) -> bool {
        self.pattern_fields().any(|spec| spec.is_zone())
    }

    fn pattern_fields(&self) -> impl Iterator<Item = &FieldSpec> {
        let tokens: &[Token] = match &self.kind {
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
        f.write_str(&self.spec)
    }
}

// ---------------------------------------------------------------------------------------------
// Compiling a pattern
// ---------------------------------------------------------------------------------------------

fn compile_pattern(pattern: &str) -> Result<Vec<Token>, FormatError> {
    if pattern.is_empty() {
        return Err(FormatError::Empty);
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut index = 0;
    while let Some(&c) = chars.get(index) {
        if c == '\'' {
            index = read_quoted(&chars, index, &mut literal, pattern)?;
        } else if c.is_ascii_alphabetic() {
            let count = chars
                .get(index..)
                .unwrap_or(&[])
                .iter()
                .take_while(|&&x| x == c)
                .count();
            let field = field_for_letter(c, count, index + 1, pattern)?;
            flush_literal(&mut literal, &mut tokens);
            tokens.push(Token::Field(FieldSpec {
                field,
                count,
                position: index + 1,
                fixed_width: false,
                dot_optional: false,
            }));
            index += count;
        } else {
            // Everything that is neither a letter nor a quote is literal text, as in Java.
            literal.push(c);
            index += 1;
        }
    }
    flush_literal(&mut literal, &mut tokens);
    mark_abutting_numbers(&mut tokens);
    // Every resource keeps one or two compiled patterns for as long as ocpoll runs.
    tokens.shrink_to_fit();
    Ok(tokens)
}

fn flush_literal(literal: &mut String, tokens: &mut Vec<Token>) {
    if !literal.is_empty() {
        tokens.push(Token::Literal(std::mem::take(literal)));
    }
}

/// Reads a quote at `start`: `''` is a literal quote, `'text'` is literal text in which `''`
/// is a quote again. Returns the index after it.
fn read_quoted(
    chars: &[char],
    start: usize,
    literal: &mut String,
    pattern: &str,
) -> Result<usize, FormatError> {
    if chars.get(start + 1) == Some(&'\'') {
        literal.push('\'');
        return Ok(start + 2);
    }
    let mut index = start + 1;
    loop {
        match (chars.get(index), chars.get(index + 1)) {
            (None, _) => {
                return Err(FormatError::UnterminatedQuote {
                    position: start + 1,
                    pattern: pattern.to_string(),
                });
            }
            (Some('\''), Some('\'')) => {
                literal.push('\'');
                index += 2;
            }
            (Some('\''), _) => return Ok(index + 1),
            (Some(&c), _) => {
                literal.push(c);
                index += 1;
            }
        }
    }
}

fn field_for_letter(
    letter: char,
    count: usize,
    position: usize,
    pattern: &str,
) -> Result<Field, FormatError> {
    let unsupported = |meaning| FormatError::UnsupportedLetter {
        letter,
        meaning,
        position,
        pattern: pattern.to_string(),
    };
    let field = match letter {
        'y' => Field::Year,
        'M' | 'L' => Field::Month,
        'd' => Field::DayOfMonth,
        'D' => Field::DayOfYear,
        'H' => Field::HourOfDay,
        'k' => Field::HourOfDayFromOne,
        'K' => Field::HourOfHalfDay,
        'h' => Field::HourOfHalfDayFromOne,
        'm' => Field::Minute,
        's' => Field::Second,
        'S' => Field::Fraction,
        'E' => Field::DayName,
        'u' => Field::IsoDayNumber,
        'a' => Field::AmPm,
        'z' => Field::ZoneName,
        'Z' => Field::ZoneRfc822,
        'X' if count > 3 => {
            // Java rejects XXXX too: there is no such ISO 8601 offset form.
            return Err(FormatError::TooManyLetters {
                letter,
                max: 3,
                position,
                pattern: pattern.to_string(),
            });
        }
        'X' => Field::ZoneIso,
        'G' => return Err(unsupported("era")),
        'Y' => return Err(unsupported("week year")),
        'w' => return Err(unsupported("week in year")),
        'W' => return Err(unsupported("week in month")),
        'F' => return Err(unsupported("day of week in month")),
        _ => {
            return Err(FormatError::UnknownLetter {
                letter,
                position,
                pattern: pattern.to_string(),
            });
        }
    };
    Ok(field)
}

/// Marks numbers that another number follows directly (fixed width when parsing) and
/// fractions that directly follow another number (may be preceded by a '.' in the text).
fn mark_abutting_numbers(tokens: &mut [Token]) {
    let numeric: Vec<bool> = tokens.iter().map(|t| t.numeric_field().is_some()).collect();
    for (index, token) in tokens.iter_mut().enumerate() {
        let Token::Field(spec) = token else { continue };
        let next_is_number = numeric.get(index + 1).copied().unwrap_or(false);
        let previous_is_number = index
            .checked_sub(1)
            .and_then(|previous| numeric.get(previous).copied())
            .unwrap_or(false);
        spec.fixed_width = spec.is_numeric() && next_is_number;
        spec.dot_optional = spec.field == Field::Fraction && previous_is_number;
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

fn format_pattern(tokens: &[Token], instant: DateTime<Utc>, zone: &Zone) -> String {
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

/// n `S` print the first n digits of the fraction of the second, truncated (SPEC section 4).
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

// ---------------------------------------------------------------------------------------------
// Parsing patterns
// ---------------------------------------------------------------------------------------------

/// A position in the text being parsed. `pos` is a byte index that only ever moves by whole
/// characters, so slicing at it cannot split a UTF-8 sequence.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn is_done(&self) -> bool {
        self.rest().is_empty()
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.pos += expected.len_utf8();
            true
        } else {
            false
        }
    }

    /// Consumes up to `max` ASCII digits and returns them.
    fn digits(&mut self, max: usize) -> &'a str {
        let rest = self.rest();
        let len = rest
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        self.pos += len;
        rest.get(..len).unwrap_or("")
    }

    /// Consumes `name` if the text continues with it, ignoring ASCII case.
    fn eat_ignore_case(&mut self, name: &str) -> bool {
        let matches = self
            .rest()
            .get(..name.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(name));
        if matches {
            self.pos += name.len();
        }
        matches
    }

    /// Consumes a run of characters that may form a zone identifier ("Europe/Berlin").
    fn zone_identifier(&mut self) -> &'a str {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+')))
            .unwrap_or(rest.len());
        self.pos += len;
        rest.get(..len).unwrap_or("")
    }

    /// 1-based character position, for messages.
    fn char_position(&self, byte_pos: usize) -> usize {
        self.text.get(..byte_pos).map_or(0, |s| s.chars().count()) + 1
    }
}

/// Reads "+hh", "+hhmm", "+hh:mm" (or '-'); hours 0-23 and minutes 0-59 like Java's offsets.
fn read_signed_offset(cursor: &mut Cursor<'_>) -> Option<FixedOffset> {
    let sign = if cursor.eat('+') {
        1
    } else if cursor.eat('-') {
        -1
    } else {
        return None;
    };
    let hours: i32 = cursor.digits(2).parse().ok()?;
    let minutes: i32 = if cursor.eat(':') || cursor.peek().is_some_and(|c| c.is_ascii_digit()) {
        let text = cursor.digits(2);
        if text.len() != 2 {
            return None;
        }
        text.parse().ok()?
    } else {
        0
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

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
            Some(TextZone::Iana(tz)) => Zone {
                name: tz.name().to_string(),
                rules: ZoneRules::Iana(*tz),
            }
            .resolve_local(local),
            Some(TextZone::Name { name, position }) => {
                if let Some(offset) = zone.offset_for_abbreviation(local, name) {
                    local_to_utc(local, offset)
                } else if let Some(tz) = find_iana_zone(name) {
                    Zone {
                        name: name.clone(),
                        rules: ZoneRules::Iana(tz),
                    }
                    .resolve_local(local)
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
fn fraction_to_nanos(digits: &str) -> u32 {
    let mut nanos: u32 = 0;
    let mut scale: u32 = 100_000_000;
    for digit in digits.bytes().take(9) {
        nanos += u32::from(digit - b'0') * scale;
        scale /= 10;
    }
    nanos
}

/// The date text as quoted in errors: cut at a character boundary when very long.
fn quoted_text(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_TEXT_CHARS) {
        Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or("")),
        None => text.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Epoch numbers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum EpochUnit {
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
fn parse_epoch_text(text: &str, unit: EpochUnit) -> Result<DateTime<Utc>, DateParseError> {
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

fn parse_epoch_number(
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

fn json_type_name(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The instant EVENTS.md's example record was updated at; a Wednesday, in CET.
    const WATERMARK: &str = "2026-11-25T12:59:58.123456Z";

    fn instant(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test instant")
            .with_timezone(&Utc)
    }

    fn zone(name: &str) -> Zone {
        Zone::parse(name).expect("test zone")
    }

    fn format(pattern: &str, at: &str, zone_name: &str) -> String {
        let format = DateFormat::new(pattern).expect("test pattern");
        format.format(instant(at), &zone(zone_name))
    }

    fn parse(pattern: &str, text: &str, zone_name: &str) -> Result<DateTime<Utc>, DateParseError> {
        DateFormat::new(pattern)
            .expect("test pattern")
            .parse(text, &zone(zone_name))
    }

    fn parses_to(pattern: &str, text: &str, zone_name: &str, expected: &str) {
        assert_eq!(
            parse(pattern, text, zone_name),
            Ok(instant(expected)),
            "{text} with {pattern} in {zone_name}"
        );
    }

    fn parse_error(pattern: &str, text: &str) -> String {
        match parse(pattern, text, "UTC") {
            Ok(parsed) => panic!("{text:?} parsed as {parsed} with {pattern}"),
            Err(error) => error.to_string(),
        }
    }

    fn format_error(pattern: &str) -> String {
        match DateFormat::new(pattern) {
            Ok(format) => panic!("{pattern:?} compiled to {format:?}"),
            Err(error) => error.to_string(),
        }
    }

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

    // --- zones ------------------------------------------------------------------------------

    #[test]
    fn berlin_summer_and_winter() {
        let pattern = "yyyy-MM-dd HH:mm:ss";
        assert_eq!(
            format(pattern, "2026-07-15T10:00:00Z", "Europe/Berlin"),
            "2026-07-15 12:00:00"
        );
        assert_eq!(
            format(pattern, "2026-01-15T10:00:00Z", "Europe/Berlin"),
            "2026-01-15 11:00:00"
        );
        parses_to(
            pattern,
            "2026-07-15 12:00:00",
            "Europe/Berlin",
            "2026-07-15T10:00:00Z",
        );
        parses_to(
            pattern,
            "2026-01-15 11:00:00",
            "Europe/Berlin",
            "2026-01-15T10:00:00Z",
        );
    }

    #[test]
    fn new_york_gap_shifts_forward_and_overlap_takes_the_earlier_instant() {
        let pattern = "yyyy-MM-dd HH:mm:ss";
        // 02:30 does not exist on 2026-03-08: Java's lenient calendar reads it as 03:30 EDT.
        parses_to(
            pattern,
            "2026-03-08 02:30:00",
            "America/New_York",
            "2026-03-08T07:30:00Z",
        );
        // 01:30 happens twice on 2026-11-01: first in EDT (-4), then in EST (-5).
        parses_to(
            pattern,
            "2026-11-01 01:30:00",
            "America/New_York",
            "2026-11-01T05:30:00Z",
        );
        parses_to(
            "yyyy-MM-dd HH:mm:ss z",
            "2026-11-01 01:30:00 EST",
            "America/New_York",
            "2026-11-01T06:30:00Z",
        );
    }

    #[test]
    fn fixed_offset_zones() {
        assert_eq!(format("XXX z", WATERMARK, "GMT+02:00"), "+02:00 GMT+02:00");
        assert_eq!(format("XXX z", WATERMARK, "GMT-05:30"), "-05:30 GMT-05:30");
        assert_eq!(format("XXX", WATERMARK, "GMT-5"), "-05:00");
        assert_eq!(format("XXX", WATERMARK, "UTC+0530"), "+05:30");
        assert_eq!(format("XXX", WATERMARK, "+02:00"), "+02:00");
        assert_eq!(format("XXX z", WATERMARK, "Z"), "Z UTC");
        parses_to(
            "yyyy-MM-dd HH:mm",
            "2026-11-25 07:29",
            "GMT-05:30",
            "2026-11-25T12:59:00Z",
        );
        assert_eq!(zone("GMT+02:00").name(), "GMT+02:00");
    }

    #[test]
    fn zone_names_are_iana_or_offsets() {
        assert_eq!(
            Zone::parse("europe/berlin"),
            Zone::parse("Europe/Berlin").map(|z| Zone {
                name: "europe/berlin".to_string(),
                ..z
            })
        );
        assert_eq!(Zone::parse("UTC"), Ok(Zone::utc()));
        assert_eq!(Zone::parse("GMT"), Ok(Zone::gmt()));
        assert_eq!(
            Zone::parse("Mars/Olympus").map_err(|e| e.to_string()),
            Err("unknown timezone \"Mars/Olympus\"".to_string())
        );
        for bad in ["", "GMT+25", "GMT+02:61", "+", "GMT+02:0", "UTC+02x"] {
            assert!(Zone::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    // --- errors -----------------------------------------------------------------------------

    #[test]
    fn pattern_errors_name_the_letter_and_position() {
        assert_eq!(
            format_error("yyyy-QQ"),
            "unknown pattern letter 'Q' at position 6 in \"yyyy-QQ\""
        );
        assert_eq!(
            format_error("yyyy-MM-dd'T"),
            "unterminated quote at position 11 in \"yyyy-MM-dd'T\""
        );
        assert_eq!(format_error(""), "empty date format");
        assert_eq!(
            format_error("YYYY-ww"),
            "pattern letter 'Y' (week year) at position 1 in \"YYYY-ww\" is not supported by ocpoll"
        );
        assert_eq!(
            format_error("HH:mmXXXX"),
            "too many 'X' at position 6 in \"HH:mmXXXX\": at most 3 are allowed"
        );
        assert_eq!(
            format_error("é yyyy q"),
            "unknown pattern letter 'q' at position 8 in \"é yyyy q\""
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

    // --- epoch numbers ----------------------------------------------------------------------

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

    const ZONES: &[&str] = &[
        "UTC",
        "GMT+02:00",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
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

        #[test]
        fn compiling_any_text_never_panics(pattern in "\\PC*") {
            let _ = DateFormat::new(&pattern);
        }

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
