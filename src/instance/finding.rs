//! Findings: the problems `validate` reports, each tied to a file, a JSON path and, when known,
//! a line and column.
//!
//! Decoding an instance collects every finding instead of stopping at the first, so a user fixes
//! a file in one round. Text output follows docs/instances.md#ocpoll-validate:
//! `path:line:col: json.path: message` (warnings say `warning:` before the message).

use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// One step into a JSON document: an object member or an array element.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where in an instance file a finding points, e.g. `configuration.event.poller.refresh_interval`.
///
/// Open Connectors keys contain dots themselves, so the dotted rendering is for people; the
/// segments are what the position lookup follows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct JsonPath(Vec<Segment>);

impl JsonPath {
    pub fn root() -> Self {
        JsonPath(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        JsonPath(segments)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        JsonPath(segments)
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

/// One problem of one instance file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub path: JsonPath,
    pub position: Option<Position>,
    pub message: String,
}

impl Finding {
    /// Every finding is made here or in [`Finding::warning`], so every message goes through
    /// [`shorten_quoted`]: a value of megabytes is never echoed whole.
    pub fn error(path: JsonPath, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            path,
            position: None,
            message: shorten_quoted(message.into()),
        }
    }

    pub fn warning(path: JsonPath, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            path,
            position: None,
            message: shorten_quoted(message.into()),
        }
    }

    pub fn at(mut self, position: Position) -> Self {
        self.position = Some(position);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The finding as one line of `validate` output for `file`.
    pub fn display_for<'a>(&'a self, file: &'a Path) -> impl fmt::Display + 'a {
        FindingLine {
            file,
            finding: self,
        }
    }

    /// The finding as a row of `validate --format json`.
    pub fn to_report(&self, file: &Path) -> FindingReport {
        FindingReport {
            file: file.to_path_buf(),
            path: self.path.to_string(),
            line: self.position.map(|p| p.line),
            column: self.position.map(|p| p.column),
            severity: self.severity,
            message: self.message.clone(),
        }
    }
}

/// A quoted value longer than this many characters is cut to an excerpt in messages.
const MAX_QUOTED_CHARS: usize = 120;
/// How many characters of a cut value a message keeps.
const EXCERPT_CHARS: usize = 48;
/// A message still longer than this (a huge value written without quotes) is cut as a whole.
const MAX_MESSAGE_CHARS: usize = 2000;

/// Cuts every `"quoted"` value of `message` longer than [`MAX_QUOTED_CHARS`] characters to
/// `"its start…" (N bytes)`, N being the value's length. Values are quoted with Rust's `{:?}`
/// (escapes such as `\"` do not end them) or between plain quotes.
pub(crate) fn shorten_quoted(message: String) -> String {
    // No quoted value can be too long in a short message: the common case costs one compare.
    if message.len() <= MAX_QUOTED_CHARS + 2 {
        return message;
    }
    let mut out = String::with_capacity(MAX_MESSAGE_CHARS.min(message.len()));
    let mut rest = message.as_str();
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        let Some(close) = closing_quote(after) else {
            rest = after;
            break;
        };
        let inner = &after[..close];
        match inner.char_indices().nth(MAX_QUOTED_CHARS) {
            Some(_) => {
                let cut = inner
                    .char_indices()
                    .nth(EXCERPT_CHARS)
                    .map_or(inner.len(), |(index, _)| index);
                let excerpt = without_broken_escape(&inner[..cut]);
                out.push_str(excerpt);
                out.push_str("…\"");
                out.push_str(&format!(" ({} bytes)", unescaped_len(inner)));
            }
            None => {
                out.push_str(inner);
                out.push('"');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    match out.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}… (message cut, {} bytes)", &out[..cut], out.len()),
        None => out,
    }
}

/// The byte index of the quote that ends a quoted value starting at `text`'s first byte.
fn closing_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return Some(index),
            _ => index += 1,
        }
    }
    None
}

/// `excerpt` without a trailing escape that the cut left unfinished (`\` or `\u{1F60`).
fn without_broken_escape(excerpt: &str) -> &str {
    let mut chars = excerpt.char_indices();
    while let Some((start, c)) = chars.next() {
        if c != '\\' {
            continue;
        }
        let finished = match chars.next() {
            Some((_, 'u')) => chars.any(|(_, c)| c == '}'),
            Some(_) => true,
            None => false,
        };
        if !finished {
            return &excerpt[..start];
        }
    }
    excerpt
}

/// The length in bytes of the value a `{:?}`-quoted text stands for.
fn unescaped_len(quoted: &str) -> usize {
    let mut len = 0;
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            len += c.len_utf8();
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars
                    .by_ref()
                    .take_while(|c| *c != '}')
                    .filter(char::is_ascii_hexdigit)
                    .collect();
                len += u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .map_or(1, char::len_utf8);
            }
            Some(_) => len += 1,
            None => {}
        }
    }
    len
}

struct FindingLine<'a> {
    file: &'a Path,
    finding: &'a Finding,
}

impl fmt::Display for FindingLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(position) = self.finding.position {
            write!(f, ":{}:{}", position.line, position.column)?;
        }
        f.write_str(": ")?;
        if !self.finding.path.is_root() {
            write!(f, "{}: ", self.finding.path)?;
        }
        if self.finding.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.finding.message)
    }
}

/// The JSON shape of a finding, for editors and CI.
#[derive(Clone, Debug, Serialize)]
pub struct FindingReport {
    pub file: PathBuf,
    pub path: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub severity: Severity,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_path_keeps_dotted_keys_readable() {
        let path = JsonPath::root()
            .key("configuration")
            .key("event.poller.refresh_interval");
        assert_eq!(
            path.to_string(),
            "configuration.event.poller.refresh_interval"
        );
        assert_eq!(JsonPath::root().key("tags").index(2).to_string(), "tags[2]");
    }

    #[test]
    fn line_format_matches_the_spec() {
        let finding = Finding::error(
            JsonPath::root()
                .key("configuration")
                .key("event.poller.refresh_interval"),
            "\"<minutes>\" is not a number of minutes",
        )
        .at(Position {
            line: 14,
            column: 7,
        });
        assert_eq!(
            finding
                .display_for(Path::new("instances.d/salesloft.json"))
                .to_string(),
            "instances.d/salesloft.json:14:7: configuration.event.poller.refresh_interval: \"<minutes>\" is not a number of minutes"
        );
        let warning = Finding::warning(JsonPath::root().key("name"), "placeholder");
        assert_eq!(
            warning.display_for(Path::new("a.json")).to_string(),
            "a.json: name: warning: placeholder"
        );
    }

    #[test]
    fn long_quoted_values_are_cut_to_an_excerpt_with_their_length() {
        let huge = "a".repeat(5 * 1024 * 1024);
        let finding = Finding::error(
            JsonPath::root().key("x"),
            format!("{huge:?} is not a number of minutes"),
        );
        assert_eq!(
            finding.message,
            format!(
                "\"{}…\" (5242880 bytes) is not a number of minutes",
                "a".repeat(EXCERPT_CHARS)
            )
        );
        // Every quoted value is cut, escapes do not end a value and are counted unescaped.
        let tricky = format!("say \"{}\" twice", "b".repeat(200));
        let message = shorten_quoted(format!(
            "{tricky:?} and {:?}, but \"short\" stays",
            "é".repeat(130)
        ));
        assert_eq!(
            message,
            format!(
                "\"say \\\"{}…\" (212 bytes) and \"{}…\" (260 bytes), but \"short\" stays",
                "b".repeat(EXCERPT_CHARS - 6),
                "é".repeat(EXCERPT_CHARS)
            )
        );
        // A cut never leaves half an escape.
        let message = shorten_quoted(format!(
            "{:?}",
            format!("{}\u{1}{}", "c".repeat(45), "d".repeat(100))
        ));
        assert_eq!(message, format!("\"{}…\" (146 bytes)", "c".repeat(45)));
        let short = "\"fine\" is short".to_owned();
        assert_eq!(shorten_quoted(short.clone()), short);
        // A huge value without quotes is cut with the whole message.
        let bare = shorten_quoted(format!("${{env:{}}}: not set", "N".repeat(5000)));
        assert!(bare.chars().count() < MAX_MESSAGE_CHARS + 40, "{bare}");
        assert!(bare.ends_with("(message cut, 5016 bytes)"), "{bare}");
    }

    #[test]
    fn positions_count_characters() {
        let text = "{\n  \"é\": 1,\n  \"b\": 2\n}";
        let offset = text.find("\"b\"").unwrap();
        assert_eq!(
            Position::of_offset(text, offset),
            Position { line: 3, column: 3 }
        );
        let offset = text.find('1').unwrap();
        assert_eq!(
            Position::of_offset(text, offset),
            Position { line: 2, column: 8 }
        );
    }
}
