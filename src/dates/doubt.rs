//! Patterns that compile but cannot be what their author meant, each seen in real
//! configurations: `DD` (day of year) beside `MM`, `MM` (month) after `HH:`, `SS` (fraction)
//! without `ss`, `YYYY` (Java's week year) and `hh` (12-hour clock) without `a`.
//!
//! `validate` warns about each, with the pattern probably meant: every doubt of the pattern
//! fixed at once, so following the suggestion clears all of them.

use super::compile::{Field, FieldSpec, Token};

/// What is doubtful in one pattern, and the pattern probably meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doubts {
    /// One sentence per doubt, naming the letters as written.
    pub reasons: Vec<String>,
    /// The pattern with every doubt fixed.
    pub meant: String,
}

pub(super) fn doubts(tokens: &[Token], spec: &str) -> Option<Doubts> {
    let fields: Vec<&FieldSpec> = tokens
        .iter()
        .filter_map(|token| match token {
            Token::Field(spec) => Some(spec),
            Token::Literal(_) => None,
        })
        .collect();
    let has = |wanted: Field| fields.iter().any(|spec| spec.field == wanted);
    // (position, count, replacement, reason)
    let mut fixes: Vec<(usize, usize, String, String)> = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let Token::Field(field) = token else { continue };
        let written = written(field);
        let fix = |letter: char, reason: String| {
            let count = field.count;
            (
                field.position,
                count,
                letter.to_string().repeat(count),
                reason,
            )
        };
        match field.field {
            Field::DayOfYear if has(Field::Month) => fixes.push(fix(
                'd',
                format!("{written} is the day of the year (1-366), beside a month: the day of the month is {}", "d".repeat(field.count)),
            )),
            Field::Month if field.count <= 2 && after_hour_and_colon(tokens, index) => {
                fixes.push(fix(
                    'm',
                    format!("{written} after the hour is the month: minutes are {}", "m".repeat(field.count)),
                ));
            }
            Field::Fraction if !has(Field::Second) => {
                let count = field.count.min(2);
                fixes.push((
                    field.position,
                    field.count,
                    "s".repeat(count),
                    format!(
                        "{written} is the fraction of a second, and there are no seconds (ss)"
                    ),
                ));
            }
            Field::Year if field.letter == 'Y' => fixes.push(fix(
                'y',
                format!(
                    "{written} is Java's week year, which is the next year in the last days of \
                     December (ocpoll reads it as the year)"
                ),
            )),
            Field::HourOfHalfDayFromOne | Field::HourOfHalfDay if !has(Field::AmPm) => {
                fixes.push(fix(
                    'H',
                    format!(
                        "{written} is the hour on a 12-hour clock and there is no AM/PM marker (a): \
                         1 PM and 1 AM both read as 01"
                    ),
                ));
            }
            _ => {}
        }
    }
    if fixes.is_empty() {
        return None;
    }
    let mut meant: Vec<char> = spec.chars().collect();
    // Right to left, so that earlier positions stay valid when a run changes length.
    let mut by_position = fixes.clone();
    by_position.sort_by_key(|fix| std::cmp::Reverse(fix.0));
    for (position, count, replacement, _) in by_position {
        let start = position - 1;
        meant.splice(start..start + count, replacement.chars());
    }
    Some(Doubts {
        reasons: fixes.into_iter().map(|fix| fix.3).collect(),
        meant: meant.into_iter().collect(),
    })
}

/// The letter run as the pattern writes it.
fn written(field: &FieldSpec) -> String {
    field.letter.to_string().repeat(field.count)
}

/// True when the field at `index` follows an hour field and a literal ending in ':'.
fn after_hour_and_colon(tokens: &[Token], index: usize) -> bool {
    let Some(before) = index.checked_sub(2) else {
        return false;
    };
    let colon = matches!(&tokens[index - 1], Token::Literal(text) if text.ends_with(':'));
    let hour = matches!(
        &tokens[before],
        Token::Field(spec) if matches!(
            spec.field,
            Field::HourOfDay | Field::HourOfDayFromOne | Field::HourOfHalfDay | Field::HourOfHalfDayFromOne
        )
    );
    colon && hour
}

#[cfg(test)]
mod tests {
    use crate::dates::DateFormat;

    fn doubts(pattern: &str) -> Option<(Vec<String>, String)> {
        let format = DateFormat::new(pattern).expect("compiles");
        format.doubts().map(|doubts| (doubts.reasons, doubts.meant))
    }

    #[track_caller]
    fn assert_meant(pattern: &str, meant: &str, phrase: &str) {
        let (reasons, suggestion) =
            doubts(pattern).unwrap_or_else(|| panic!("no doubt about {pattern}"));
        assert_eq!(suggestion, meant, "{pattern}");
        assert!(reasons.iter().any(|r| r.contains(phrase)), "{reasons:?}");
        assert!(
            DateFormat::new(&suggestion).unwrap().doubts().is_none(),
            "{suggestion}"
        );
    }

    #[test]
    fn each_doubt_comes_with_the_pattern_meant() {
        assert_meant("yyyy-MM-DD", "yyyy-MM-dd", "DD is the day of the year");
        assert_meant(
            "yyyy-MM-dd'T'HH:MM:ss",
            "yyyy-MM-dd'T'HH:mm:ss",
            "MM after the hour is the month",
        );
        assert_meant(
            "yyyy-MM-dd HH:mm:SS",
            "yyyy-MM-dd HH:mm:ss",
            "SS is the fraction of a second",
        );
        assert_meant("YYYY-MM-dd", "yyyy-MM-dd", "YYYY is Java's week year");
        assert_meant(
            "yyyy-MM-dd hh:mm:ss",
            "yyyy-MM-dd HH:mm:ss",
            "hh is the hour on a 12-hour clock",
        );
        assert_meant("dd.MM.YY KK:mm", "dd.MM.yy HH:mm", "KK is the hour");
    }

    #[test]
    fn all_doubts_are_fixed_at_once() {
        let (reasons, meant) = doubts("YYYY-MM-DD'T'hh:MM:SS").unwrap();
        assert_eq!(meant, "yyyy-MM-dd'T'HH:mm:ss");
        assert_eq!(reasons.len(), 5, "{reasons:?}");
    }

    #[test]
    fn patterns_that_say_what_they_mean_raise_no_doubt() {
        for pattern in [
            "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
            "yyyy-MM-dd'T'HH:mm:ssSSSSSSXXX",
            "hh:mm a",
            "yyyy-D",
            "EEE, dd MMM yyyy HH:mm:ss zzz",
            "MMM dd HH:mm",
            "milliseconds",
            "'DD MM SS YYYY hh'",
        ] {
            assert_eq!(doubts(pattern), None, "{pattern}");
        }
        for pattern in crate::trial::suggest::COMMON_PATTERNS {
            assert_eq!(doubts(pattern), None, "{pattern}");
        }
    }
}
