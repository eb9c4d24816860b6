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
    pub fn error(path: JsonPath, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            path,
            position: None,
            message: message.into(),
        }
    }

    pub fn warning(path: JsonPath, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            path,
            position: None,
            message: message.into(),
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
