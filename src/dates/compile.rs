//! Compiling a `SimpleDateFormat` pattern: the tokens a pattern becomes (literal text and
//! letter runs, [`Field`]s with their count and position) and the compiler that reads quotes,
//! maps letters to fields (rejecting the unknown and the unsupported) and marks numbers that
//! abut, which parsing must then read by width.

use super::FormatError;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Token {
    Literal(String),
    Field(FieldSpec),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct FieldSpec {
    pub(super) field: Field,
    /// How many times the letter is repeated.
    pub(super) count: usize,
    /// The letter as written (`Y` is read as `y`, `L` as `M`; `validate` says so).
    pub(super) letter: char,
    /// 1-based character position of the letter run in the pattern.
    pub(super) position: usize,
    /// Another number follows directly in the pattern (`HHmmss`), so this one can only be
    /// told apart by its width: parse exactly `count` digits.
    pub(super) fixed_width: bool,
    /// A fraction written right after another number without a '.' (`ssSSSSSS`): providers
    /// configured that way still send the dot, so parsing accepts one.
    pub(super) dot_optional: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
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

    pub(super) fn is_zone(&self) -> bool {
        matches!(
            self.field,
            Field::ZoneName | Field::ZoneRfc822 | Field::ZoneIso
        )
    }

    /// The pattern letters, for "expected ..." messages.
    pub(super) fn letters(&self) -> String {
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

// ---------------------------------------------------------------------------------------------
// Compiling a pattern
// ---------------------------------------------------------------------------------------------

pub(super) fn compile_pattern(pattern: &str) -> Result<Vec<Token>, FormatError> {
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
                letter: c,
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
        // `Y` is Java's week year, which differs from the year only around New Year: nobody
        // filtering by date means it, so it reads as the year (`validate` warns).
        'y' | 'Y' => Field::Year,
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::dates::DateFormat;
    use crate::dates::test_support::*;

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
            "pattern letter 'w' (week in year) at position 6 in \"YYYY-ww\" is not supported by ocpoll"
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn compiling_any_text_never_panics(pattern in "\\PC*") {
            let _ = DateFormat::new(&pattern);
        }
    }
}
