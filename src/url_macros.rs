//! Resource URL templates: `${date:FORMAT}`, `${gmtDate:FORMAT}` and `{pathParam}` (docs/instances.md#date-formats-and-url-macros).
//!
//! This module owns reading a resource's `url` once into a [`UrlTemplate`] (reporting every
//! problem in it, for `validate`), the warnings `validate` shows about it, and expanding it for
//! one poll. It is pure: the caller passes the watermark (already minus `lookbackSeconds`), the
//! resource's `updatedDateTimezone` and its `pathParams` values.
//!
//! Only the expansions are percent-encoded; the literal text of the URL is sent as written,
//! because users paste URLs that already carry their own encoding.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::dates::{DateFormat, FormatError, Zone};

/// Everything but RFC 3986's unreserved characters (ALPHA DIGIT `-._~`) is encoded: safe both in
/// a query value (`:` and `+` must not reach the provider raw) and in a path segment (`/`).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A parsed resource URL, ready to expand for each poll.
#[derive(Clone, Debug)]
pub struct UrlTemplate {
    raw: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug)]
enum Part {
    /// Text sent as written; `offset` is its byte offset in the URL.
    Literal {
        text: String,
        offset: usize,
    },
    Date {
        zone: MacroZone,
        format: DateFormat,
        offset: usize,
    },
    PathParam {
        name: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MacroZone {
    /// `${date:...}`: the resource's `updatedDateTimezone`.
    Resource,
    /// `${gmtDate:...}`: always GMT.
    Gmt,
}

/// One problem in a URL, at the byte offset of the `${` that starts the macro.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset} of the URL: {kind}")]
pub struct MacroError {
    pub offset: usize,
    pub kind: MacroErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacroErrorKind {
    #[error("unterminated macro: `${{` has no closing `}}`")]
    Unterminated,
    #[error(
        "unknown macro `${{{name}:...}}`: URLs may only contain ${{date:FORMAT}} and ${{gmtDate:FORMAT}}"
    )]
    UnknownMacro { name: String },
    #[error(
        "secret reference `${{{name}:...}}` inside a URL: secret references must be the whole value of a key"
    )]
    SecretReference { name: String },
    #[error("`${{{name}:...}}` has an empty date format")]
    EmptyFormat { name: String },
    // The date error is part of the message rather than a `source`: `validate` prints one line.
    #[error("bad date format in `${{{name}:...}}`: {cause}")]
    BadFormat { name: String, cause: FormatError },
}

/// Something `validate` should point out although the URL can be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroWarning {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for MacroWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {} of the URL: {}", self.offset, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("no value for path parameter {{{name}}} in pathParams")]
    MissingPathParam { name: String },
}

impl UrlTemplate {
    /// Parses every macro and placeholder, and returns all problems found, not just the first.
    pub fn parse(url: &str) -> Result<UrlTemplate, Vec<MacroError>> {
        let mut scanner = Scanner::new(url);
        scanner.scan();
        if scanner.errors.is_empty() {
            Ok(UrlTemplate {
                raw: url.to_string(),
                parts: scanner.parts,
            })
        } else {
            Err(scanner.errors)
        }
    }

    /// The URL as configured.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Names of the `{placeholders}`, in order of first appearance.
    pub fn path_params(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let Part::PathParam { name } = part
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    pub fn has_date_macro(&self) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::Date { .. }))
    }

    /// Warnings for `validate`: an unbalanced single quote in the literal text, and date
    /// formats that write a fraction right after the seconds without a '.'.
    pub fn warnings(&self) -> Vec<MacroWarning> {
        let mut warnings: Vec<MacroWarning> = self.unbalanced_quote_warning().into_iter().collect();
        warnings.extend(self.parts.iter().flat_map(doubtful_pattern_warnings));
        warnings.extend(self.parts.iter().filter_map(dotless_fraction_warning));
        warnings
    }

    /// The URL for one poll: date macros formatted from `watermark` and percent-encoded,
    /// placeholders filled from `path_params` and percent-encoded as path segments.
    pub fn expand(
        &self,
        watermark: DateTime<Utc>,
        zone: &Zone,
        path_params: &BTreeMap<String, String>,
    ) -> Result<String, ExpandError> {
        let gmt = Zone::gmt();
        let mut url = String::with_capacity(self.raw.len() + 16);
        for part in &self.parts {
            match part {
                Part::Literal { text, .. } => url.push_str(text),
                Part::Date {
                    zone: which,
                    format,
                    ..
                } => {
                    let zone = if *which == MacroZone::Gmt { &gmt } else { zone };
                    url.extend(utf8_percent_encode(&format.format(watermark, zone), ENCODE));
                }
                Part::PathParam { name } => {
                    let value = path_params
                        .get(name)
                        .ok_or_else(|| ExpandError::MissingPathParam { name: name.clone() })?;
                    url.extend(utf8_percent_encode(value, ENCODE));
                }
            }
        }
        Ok(url)
    }

    /// Quotes in the literal text pair up left to right (`where=x>='${date:...}'`); with an odd
    /// count the last one has no partner, which is where the Salesloft seed's stray `''` is.
    fn unbalanced_quote_warning(&self) -> Option<MacroWarning> {
        let quote_offsets: Vec<usize> = self
            .parts
            .iter()
            .filter_map(|part| match part {
                Part::Literal { text, offset } => Some((text, *offset)),
                _ => None,
            })
            .flat_map(|(text, offset)| text.match_indices('\'').map(move |(i, _)| offset + i))
            .collect();
        if quote_offsets.len().is_multiple_of(2) {
            return None;
        }
        let offset = *quote_offsets.last()?;
        Some(MacroWarning {
            offset,
            message: format!(
                "unbalanced single quote: the URL's text outside its macros has {} `'`, so this \
                 one has no partner and the provider will likely reject the query",
                quote_offsets.len()
            ),
        })
    }
}

/// A warning per doubt about a macro's date pattern (`DD` beside `MM`, `MM` after `HH:`, ...).
fn doubtful_pattern_warnings(part: &Part) -> Vec<MacroWarning> {
    let Part::Date { format, offset, .. } = part else {
        return Vec::new();
    };
    let Some(doubts) = format.doubts() else {
        return Vec::new();
    };
    doubts
        .reasons
        .iter()
        .map(|reason| MacroWarning {
            offset: *offset,
            message: format!(
                "date format \"{format}\": {reason}; did you mean \"{}\"?",
                doubts.meant
            ),
        })
        .collect()
}

fn dotless_fraction_warning(part: &Part) -> Option<MacroWarning> {
    let Part::Date { format, offset, .. } = part else {
        return None;
    };
    format.has_dotless_fraction().then(|| MacroWarning {
        offset: *offset,
        message: format!(
            "date format \"{format}\" writes the fraction of a second right after the previous \
             number without a '.', so the URL will carry e.g. \"58123456\"; the provider probably \
             expects \"ss.SSSSSS\""
        ),
    })
}

/// Walks the URL once, collecting parts and every error.
struct Scanner<'a> {
    url: &'a str,
    /// Byte index; only ever set to the index of an ASCII character or the end, so slicing at
    /// it stays on character boundaries.
    pos: usize,
    literal_start: usize,
    parts: Vec<Part>,
    errors: Vec<MacroError>,
}

impl<'a> Scanner<'a> {
    fn new(url: &'a str) -> Self {
        Scanner {
            url,
            pos: 0,
            literal_start: 0,
            parts: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn scan(&mut self) {
        while let Some(rest) = self.url.get(self.pos..) {
            let Some(found) = rest.find(['$', '{']) else {
                break;
            };
            let start = self.pos + found;
            if rest.get(found..).is_some_and(|r| r.starts_with("${")) {
                self.flush_literal(start);
                self.pos = self.scan_macro(start);
                self.literal_start = self.pos;
            } else if rest.get(found..).is_some_and(|r| r.starts_with('{')) {
                self.pos = self.scan_path_param(start);
            } else {
                // A '$' not followed by '{' is ordinary text.
                self.pos = start + 1;
            }
        }
        self.flush_literal(self.url.len());
    }

    fn flush_literal(&mut self, end: usize) {
        let text = self.url.get(self.literal_start..end).unwrap_or("");
        if !text.is_empty() {
            self.parts.push(Part::Literal {
                text: text.to_string(),
                offset: self.literal_start,
            });
        }
    }

    /// `{name}` is a placeholder when the name is a plain identifier; any other brace is text
    /// (a query may well contain JSON). Returns where scanning continues.
    fn scan_path_param(&mut self, start: usize) -> usize {
        let after_brace = start + 1;
        let rest = self.url.get(after_brace..).unwrap_or("");
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(rest.len());
        let name = rest.get(..name_len).unwrap_or("");
        let closed = rest.get(name_len..).is_some_and(|r| r.starts_with('}'));
        if name.is_empty() || !closed {
            return after_brace;
        }
        self.flush_literal(start);
        self.parts.push(Part::PathParam {
            name: name.to_string(),
        });
        self.literal_start = after_brace + name_len + 1;
        self.literal_start
    }

    /// Reads `${name:format}` starting at `start`; returns where scanning continues.
    fn scan_macro(&mut self, start: usize) -> usize {
        let body_start = start + 2;
        let body = self.url.get(body_start..).unwrap_or("");
        let Some(name_end) = body.find([':', '}']) else {
            self.error(start, MacroErrorKind::Unterminated);
            return self.url.len();
        };
        let name = body.get(..name_end).unwrap_or("");
        let (format, end) = if body.get(name_end..).is_some_and(|r| r.starts_with('}')) {
            ("", body_start + name_end + 1)
        } else {
            let format_start = name_end + 1;
            let format_body = body.get(format_start..).unwrap_or("");
            let Some(format_len) = closing_brace_outside_quotes(format_body) else {
                self.error(start, MacroErrorKind::Unterminated);
                return self.url.len();
            };
            let format = format_body.get(..format_len).unwrap_or("");
            (format, body_start + format_start + format_len + 1)
        };
        match macro_part(name, format, start) {
            Ok(part) => self.parts.push(part),
            Err(kind) => self.error(start, kind),
        }
        end
    }

    fn error(&mut self, offset: usize, kind: MacroErrorKind) {
        self.errors.push(MacroError { offset, kind });
    }
}

/// The byte index of the first `}` not inside single quotes: patterns quote text (`'T'`), and
/// Java writes a quote inside quoted text as `''`, which toggles twice and so stays consistent.
fn closing_brace_outside_quotes(format: &str) -> Option<usize> {
    let mut in_quotes = false;
    for (index, c) in format.char_indices() {
        match c {
            '\'' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(index),
            _ => {}
        }
    }
    None
}

fn macro_part(name: &str, format: &str, offset: usize) -> Result<Part, MacroErrorKind> {
    let zone = match name {
        "date" => MacroZone::Resource,
        "gmtDate" => MacroZone::Gmt,
        "env" | "file" => {
            return Err(MacroErrorKind::SecretReference {
                name: name.to_string(),
            });
        }
        _ => {
            return Err(MacroErrorKind::UnknownMacro {
                name: name.to_string(),
            });
        }
    };
    if format.is_empty() {
        return Err(MacroErrorKind::EmptyFormat {
            name: name.to_string(),
        });
    }
    let format = DateFormat::new(format).map_err(|cause| MacroErrorKind::BadFormat {
        name: name.to_string(),
        cause,
    })?;
    Ok(Part::Date {
        zone,
        format,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SALESLOFT_CURL_URL: &str =
        "/hubs/crm/contacts?where=updated_at>='${date:yyyy-MM-dd'T'HH:mm:ssXXX}'";
    const SALESLOFT_BODY_URL: &str =
        "/hubs/crm/contacts?where=updated_at>='${date:yyyy-MM-dd'T'HH:mm:ssXXX}''";
    const GENERIC_GUIDE_URL: &str =
        "/hubs/crm/contacts?where=lastUpdated>'${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}'";
    const GOOGLE_CALENDAR_URL: &str = "/hubs/general/calendars/{calendarId}/changed-events";

    fn watermark() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T12:59:58.123456Z")
            .expect("test instant")
            .with_timezone(&Utc)
    }

    fn template(url: &str) -> UrlTemplate {
        UrlTemplate::parse(url).expect("test URL parses")
    }

    fn expand_in(url: &str, zone: &str) -> String {
        let zone = Zone::parse(zone).expect("test zone");
        template(url)
            .expand(watermark(), &zone, &BTreeMap::new())
            .expect("expands")
    }

    fn expand_with(url: &str, params: &[(&str, &str)]) -> Result<String, ExpandError> {
        let params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        template(url).expand(watermark(), &Zone::utc(), &params)
    }

    fn errors(url: &str) -> Vec<String> {
        match UrlTemplate::parse(url) {
            Ok(parsed) => panic!("{url:?} parsed: {parsed:?}"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn salesloft_date_macro_in_gmt_and_berlin() {
        assert_eq!(
            expand_in(SALESLOFT_CURL_URL, "GMT"),
            "/hubs/crm/contacts?where=updated_at>='2026-11-25T12%3A59%3A58Z'"
        );
        assert_eq!(
            expand_in(SALESLOFT_CURL_URL, "Europe/Berlin"),
            "/hubs/crm/contacts?where=updated_at>='2026-11-25T13%3A59%3A58%2B01%3A00'"
        );
        let parsed = template(SALESLOFT_CURL_URL);
        assert!(parsed.has_date_macro());
        assert!(parsed.warnings().is_empty());
        assert_eq!(parsed.raw(), SALESLOFT_CURL_URL);
    }

    #[test]
    fn gmt_date_ignores_the_resource_zone() {
        let expected = "/hubs/crm/contacts?where=lastUpdated>'2026-11-25T12%3A59%3A58Z'";
        assert_eq!(expand_in(GENERIC_GUIDE_URL, "GMT"), expected);
        assert_eq!(expand_in(GENERIC_GUIDE_URL, "America/New_York"), expected);
    }

    #[test]
    fn google_calendar_path_param() {
        assert_eq!(
            template(GOOGLE_CALENDAR_URL).path_params(),
            vec!["calendarId"]
        );
        assert!(!template(GOOGLE_CALENDAR_URL).has_date_macro());
        assert_eq!(
            expand_with(GOOGLE_CALENDAR_URL, &[("calendarId", "primary")]),
            Ok("/hubs/general/calendars/primary/changed-events".to_string())
        );
        assert_eq!(
            expand_with(GOOGLE_CALENDAR_URL, &[("calendarId", "a b/c")]),
            Ok("/hubs/general/calendars/a%20b%2Fc/changed-events".to_string())
        );
        assert_eq!(
            expand_with(GOOGLE_CALENDAR_URL, &[("calendarId", "ada@example.com")]),
            Ok("/hubs/general/calendars/ada%40example.com/changed-events".to_string())
        );
    }

    #[test]
    fn missing_path_param_is_an_expand_error() {
        assert_eq!(
            expand_with(GOOGLE_CALENDAR_URL, &[("other", "x")]).map_err(|e| e.to_string()),
            Err("no value for path parameter {calendarId} in pathParams".to_string())
        );
    }

    #[test]
    fn path_params_are_listed_once_in_order() {
        let parsed = template("/a/{b}/c/{d}/{b}?q={}&j={\"x\":1}");
        assert_eq!(parsed.path_params(), vec!["b", "d"]);
        assert_eq!(
            expand_with("/a/{b}/c/{d}/{b}?q={}", &[("b", "1"), ("d", "2")]),
            Ok("/a/1/c/2/1?q={}".to_string())
        );
    }

    #[test]
    fn salesloft_body_url_with_stray_quotes_parses_with_a_warning() {
        let parsed = template(SALESLOFT_BODY_URL);
        assert_eq!(
            expand_in(SALESLOFT_BODY_URL, "GMT"),
            "/hubs/crm/contacts?where=updated_at>='2026-11-25T12%3A59%3A58Z''"
        );
        let warnings = parsed.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].offset, 71);
        assert_eq!(SALESLOFT_BODY_URL.as_bytes()[71], b'\'');
        assert!(warnings[0].message.contains("unbalanced single quote"));
        assert!(warnings[0].message.contains("provider will likely reject"));
    }

    #[test]
    fn dotless_fraction_in_a_macro_is_a_warning() {
        let url = "/x?since=${date:yyyy-MM-dd'T'HH:mm:ssSSSSSSXXX}";
        let warnings = template(url).warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].offset, 9);
        assert!(
            warnings[0]
                .to_string()
                .starts_with("at byte 9 of the URL: date format")
        );
    }

    #[test]
    fn unknown_and_secret_macros_are_errors() {
        assert_eq!(
            errors("/x?a=${foo:bar}"),
            vec![
                "at byte 5 of the URL: unknown macro `${foo:...}`: URLs may only contain \
                 ${date:FORMAT} and ${gmtDate:FORMAT}"
            ]
        );
        assert_eq!(
            errors("/x?key=${env:API_KEY}"),
            vec![
                "at byte 7 of the URL: secret reference `${env:...}` inside a URL: secret \
                 references must be the whole value of a key"
            ]
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let found = errors("/x?a=${foo:1}&b=${date:}&c=${date:yyyy-QQ}&d=${gmtDate:'T");
        assert_eq!(
            found,
            vec![
                "at byte 5 of the URL: unknown macro `${foo:...}`: URLs may only contain \
                 ${date:FORMAT} and ${gmtDate:FORMAT}",
                "at byte 16 of the URL: `${date:...}` has an empty date format",
                "at byte 27 of the URL: bad date format in `${date:...}`: unknown pattern \
                 letter 'Q' at position 6 in \"yyyy-QQ\"",
                "at byte 45 of the URL: unterminated macro: `${` has no closing `}`",
            ]
        );
    }

    #[test]
    fn unterminated_macros_are_errors() {
        assert_eq!(
            errors("/x?since=${date:yyyy"),
            vec!["at byte 9 of the URL: unterminated macro: `${` has no closing `}`"]
        );
        assert_eq!(errors("/x?since=${").len(), 1);
        // The only '}' is quoted, so it belongs to the pattern.
        assert_eq!(errors("/x?since=${date:yyyy'}'").len(), 1);
        assert_eq!(
            errors("/x?since=${gmtDate}"),
            vec!["at byte 9 of the URL: `${gmtDate:...}` has an empty date format"]
        );
    }

    #[test]
    fn a_url_without_macros_is_unchanged() {
        for url in [
            "/hubs/general/changed-groups",
            "https://api.example.com/v1/items?cost=$5&q=%20already+encoded",
            "",
        ] {
            assert_eq!(expand_with(url, &[]), Ok(url.to_string()));
            assert!(template(url).warnings().is_empty());
        }
    }

    #[test]
    fn epoch_macros_print_numbers() {
        assert_eq!(
            expand_in("/x?since=${date:milliseconds}&s=${gmtDate:seconds}", "UTC"),
            "/x?since=1795611598123&s=1795611598"
        );
    }

    proptest! {
        #[test]
        fn parsing_any_url_never_panics(url in "\\PC*|[${}:'a-zA-Z/?=&é]{0,40}") {
            if let Ok(parsed) = UrlTemplate::parse(&url) {
                let _ = parsed.warnings();
                let params = parsed
                    .path_params()
                    .into_iter()
                    .map(|name| (name.to_string(), "v".to_string()))
                    .collect();
                prop_assert!(parsed.expand(watermark(), &Zone::utc(), &params).is_ok());
            }
        }
    }
}
