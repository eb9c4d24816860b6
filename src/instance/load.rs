//! Loading instance files: finding them in folders, reading them safely, parsing the JSON,
//! decoding each, pinning every finding to a line and column, and the one rule that needs all
//! files at once (duplicate instance names).
//!
//! One bad file never stops the others: every problem becomes a finding of that file.

use crate::instance::decode::{self, DecodeContext, SecretSource, UnresolvedSecrets, io_reason};
use crate::instance::duplicate_keys;
use crate::instance::finding::{Finding, JsonPath, Position, Segment};
use crate::instance::model::Instance;
use jsonc_parser::common::Ranged;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Instance files are small; a bigger file is a mistake (a log, a dump), not an instance.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// One instance file after loading: its instance when it has no errors, and every finding.
/// A folder that could not be listed or holds no instance files is reported as an entry too.
#[derive(Clone, Debug)]
pub struct LoadedFile {
    pub path: PathBuf,
    /// False for a folder-level entry (no `*.json` files, cannot be listed).
    pub is_file: bool,
    /// The instance's name whenever it could be told (its `name`, or the file stem), even when
    /// the file has errors; `None` when the file could not be read or parsed, or `name` has the
    /// wrong type.
    pub name: Option<String>,
    pub instance: Option<Instance>,
    pub findings: Vec<Finding>,
    /// For `validate`, which keeps no instances: each resource's poll mode, in words, by the
    /// resource's JSON path (docs/design.md#change-detection).
    pub notes: Vec<(JsonPath, String)>,
}

impl LoadedFile {
    fn failed(path: PathBuf, finding: Finding) -> Self {
        LoadedFile {
            path,
            is_file: true,
            name: None,
            instance: None,
            findings: vec![finding],
            notes: Vec::new(),
        }
    }

    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(Finding::is_error)
    }
}

/// Loads every instance file under `paths` (files, or folders whose `*.json` files are read),
/// in a stable order, and checks names across all of them.
pub fn load_all(
    paths: &[PathBuf],
    unresolved: UnresolvedSecrets,
    secrets: &dyn SecretSource,
) -> Vec<LoadedFile> {
    load_each(paths, unresolved, secrets, true, None)
}

/// Like [`load_all`], but keeps only names and findings: `validate` of thousands of files then
/// holds no decoded instances in memory.
pub fn check_all(
    paths: &[PathBuf],
    unresolved: UnresolvedSecrets,
    secrets: &dyn SecretSource,
) -> Vec<LoadedFile> {
    load_each(paths, unresolved, secrets, false, None)
}

/// A check of a decoded instance that needs more than the file (`validate` judges its URLs
/// against config.toml's outbound policy).
pub type Inspect<'a> = &'a (dyn Fn(&Instance) -> Vec<Finding> + Sync);

/// Like [`check_all`], adding `inspect`'s findings for every file that decoded; their
/// positions are looked up in the file.
pub fn check_all_with(
    paths: &[PathBuf],
    unresolved: UnresolvedSecrets,
    secrets: &dyn SecretSource,
    inspect: Inspect<'_>,
) -> Vec<LoadedFile> {
    load_each(paths, unresolved, secrets, false, Some(inspect))
}

/// Which mode each resource of `instance` is polled in, as notes by JSON path.
fn mode_notes(instance: &Instance) -> Vec<(JsonPath, String)> {
    let resources = JsonPath::root()
        .key("configuration")
        .key("event.poller.configuration");
    instance
        .resources
        .iter()
        .map(|resource| (resources.key(&resource.key), resource.mode_note()))
        .collect()
}

fn load_each(
    paths: &[PathBuf],
    unresolved: UnresolvedSecrets,
    secrets: &dyn SecretSource,
    keep_instances: bool,
    inspect: Option<Inspect<'_>>,
) -> Vec<LoadedFile> {
    let load = |file: &Path| {
        let mut entry = load_file(file, unresolved, secrets);
        if let (Some(inspect), Some(instance)) = (inspect, &entry.instance) {
            for mut finding in inspect(instance) {
                // Rare (a denied host): reading the file again for the position is fine.
                finding.position = position_in_file(file, &finding.path);
                entry.findings.push(finding);
            }
        }
        if !keep_instances {
            // Notes for a file that runs; an invalid one has its errors to read first.
            if !entry.has_errors() {
                entry.notes = entry.instance.as_ref().map_or_else(Vec::new, mode_notes);
            }
            entry.instance = None;
        }
        entry
    };
    let mut loaded = in_parallel(&files_to_load(paths), |work| match work {
        Work::File(file) => load(file),
        Work::Failed(entry) => LoadedFile::clone(entry),
    });
    reject_duplicate_names(&mut loaded);
    loaded
}

/// One entry of a load: a file to read, or a path that already failed (a missing folder).
enum Work {
    File(PathBuf),
    Failed(Box<LoadedFile>),
}

/// The instance files under `paths`, in order, each once.
fn files_to_load(paths: &[PathBuf]) -> Vec<Work> {
    let mut work = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        let files = match instance_files(path) {
            Ok(files) => files,
            Err(finding) => {
                let mut entry = LoadedFile::failed(path.clone(), finding);
                entry.is_file = !path.is_dir();
                work.push(Work::Failed(Box::new(entry)));
                continue;
            }
        };
        for file in files {
            // The same file named twice (a folder and one of its files) is one instance. Only
            // several paths can name a file twice, so one folder skips the realpath calls.
            if paths.len() > 1 {
                let identity = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
                if !seen.insert(identity) {
                    continue;
                }
            }
            work.push(Work::File(file));
        }
    }
    work
}

/// `each` of `items` on every core, the results in the items' order. Files are independent
/// and parsing them is all CPU: validating 10,000 files used one of two cores.
fn in_parallel<T: Sync, R: Send>(items: &[T], each: impl Fn(&T) -> R + Sync) -> Vec<R> {
    // Below this many items a thread costs more than it saves.
    const MIN_PER_THREAD: usize = 32;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores.min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(&each).collect();
    }
    let each = &each;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|part| scope.spawn(move || part.iter().map(each).collect::<Vec<R>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The files a path names: itself, or a folder's `*.json` entries sorted by name.
fn instance_files(path: &Path) -> Result<Vec<PathBuf>, Finding> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| Finding::error(JsonPath::root(), io_reason(&error)))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|error| {
        Finding::error(
            JsonPath::root(),
            format!("cannot list folder: {}", io_reason(&error)),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|file| file.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Finding::warning(
            JsonPath::root(),
            "no *.json instance files in this folder",
        ));
    }
    Ok(files)
}

pub fn load_file(
    path: &Path,
    unresolved: UnresolvedSecrets,
    secrets: &dyn SecretSource,
) -> LoadedFile {
    match read_bytes(path) {
        Ok(bytes) => load_bytes(path, &bytes, unresolved, secrets),
        Err(finding) => LoadedFile::failed(path.to_path_buf(), finding),
    }
}

/// Parses and decodes the contents of one file; `path` names it in findings and gives the
/// file stem and the folder for relative `${file:..}` references.
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    unresolved: UnresolvedSecrets,
    secrets: &dyn SecretSource,
) -> LoadedFile {
    let parsed = utf8_text(bytes).and_then(|text| Ok((parse_json(text)?, text)));
    let ((value, repeated_keys), text) = match parsed {
        Ok(parsed) => parsed,
        Err(finding) => return LoadedFile::failed(path.to_path_buf(), finding),
    };
    let file_stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base_dir = decode::base_dir_of(path);
    let ctx = DecodeContext {
        file_stem: &file_stem,
        base_dir: &base_dir,
        unresolved,
        secrets,
    };
    let decoded = decode::decode(&value, &ctx);
    let mut findings = decoded.findings;
    if repeated_keys && let Some(root) = parse_with_positions(text) {
        findings.extend(duplicate_keys::findings(&root, text));
    }
    if !findings.is_empty() {
        locate_findings(text, &mut findings);
        // Top to bottom, as an editor shows the file; findings without a position last.
        findings.sort_by_key(|finding| {
            finding
                .position
                .map_or((usize::MAX, 0), |p| (p.line, p.column))
        });
    }
    LoadedFile {
        path: path.to_path_buf(),
        is_file: true,
        name: decoded.name,
        instance: decoded.instance,
        findings,
        notes: Vec::new(),
    }
}

/// The file's bytes, with a clear finding for every way reading can fail.
fn read_bytes(path: &Path) -> Result<Vec<u8>, Finding> {
    let fail = |message: String| Finding::error(JsonPath::root(), message);
    let file = std::fs::File::open(path).map_err(|error| fail(io_reason(&error)))?;
    let metadata = file.metadata().map_err(|error| fail(io_reason(&error)))?;
    if metadata.is_dir() {
        return Err(fail("is a folder, not an instance file".to_owned()));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "the file is {:.1} MiB; instance files are limited to {} MiB",
            metadata.len() as f64 / (1024.0 * 1024.0),
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    // Sized from the metadata: one read instead of a probe and a doubling buffer.
    let mut bytes = Vec::with_capacity(metadata.len() as usize + 1);
    // `take` guards against files that grow while being read (or are not regular files).
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| fail(io_reason(&error)))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!(
            "the file is larger than {} MiB, the limit for instance files",
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    Ok(bytes)
}

/// The bytes as UTF-8 text (a leading byte-order mark is skipped).
fn utf8_text(bytes: &[u8]) -> Result<&str, Finding> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|error| {
        // The prefix before the first bad byte is valid UTF-8 by definition.
        let prefix = std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default();
        Finding::error(JsonPath::root(), "the file is not valid UTF-8")
            .at(Position::of_offset(prefix, prefix.len()))
    })
}

/// Strict JSON, and whether an object repeats a key; errors carry serde_json's line and column.
fn parse_json(text: &str) -> Result<(serde_json::Value, bool), Finding> {
    if text.trim().is_empty() {
        return Err(Finding::error(
            JsonPath::root(),
            "the file is empty; an instance file holds one JSON object",
        ));
    }
    duplicate_keys::parse(text).map_err(|error| {
        let position = Position {
            line: error.line(),
            column: error.column().max(1),
        };
        Finding::error(JsonPath::root(), json_error_message(&error)).at(position)
    })
}

fn json_error_message(error: &serde_json::Error) -> String {
    let full = error.to_string();
    // serde_json appends " at line L column C"; the position is printed separately.
    let message = full
        .rfind(" at line ")
        .map_or(full.as_str(), |cut| &full[..cut]);
    if message.contains("recursion limit") {
        "invalid JSON: nested more than 128 levels deep".to_owned()
    } else {
        format!("invalid JSON: {message}")
    }
}

/// The document with the positions of its parts (strict JSON, as [`parse_json`] read it).
fn parse_with_positions(text: &str) -> Option<jsonc_parser::ast::Value<'_>> {
    let strict = jsonc_parser::ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    jsonc_parser::parse_to_ast(text, &Default::default(), &strict)
        .ok()?
        .value
}

/// Gives each finding the line and column of the deepest part of its path that exists.
fn locate_findings(text: &str, findings: &mut [Finding]) {
    let Some(root) = parse_with_positions(text) else {
        return;
    };
    for finding in findings.iter_mut().filter(|f| f.position.is_none()) {
        let offset = offset_of(&root, &finding.path, text);
        finding.position = Some(Position::of_offset(text, offset));
    }
}

fn offset_of(root: &jsonc_parser::ast::Value, path: &JsonPath, text: &str) -> usize {
    offset_in(root, path.segments(), text)
}

/// The byte offset in `text` (the document `root` was parsed from) of the deepest part of
/// `segments` that exists. A JSON string holding JSON (a string-encoded
/// `event.poller.configuration`) is followed into: the offset is then that of the inner part
/// within the string as the file writes it.
fn offset_in(root: &jsonc_parser::ast::Value, segments: &[Segment], text: &str) -> usize {
    use jsonc_parser::ast::Value;
    let mut node = root;
    let mut offset = root.start();
    for (depth, segment) in segments.iter().enumerate() {
        let next = match (segment, node) {
            // JSON with a repeated key keeps the last one, as serde_json does.
            (Segment::Key(key), Value::Object(object)) => object
                .properties
                .iter()
                .rev()
                .find(|property| property.name.as_str() == key)
                .map(|property| (property.range.start, &property.value)),
            (Segment::Index(index), Value::Array(array)) => array
                .elements
                .get(*index)
                .map(|element| (element.start(), element)),
            (_, Value::StringLit(string)) => {
                let inner = string.value.as_ref();
                let Some(inner_root) = parse_with_positions(inner) else {
                    break;
                };
                let inner_offset = offset_in(&inner_root, &segments[depth..], inner);
                let raw = text.get(string.range.start..string.range.end).unwrap_or("");
                return string.range.start + raw_offset(raw, inner_offset);
            }
            _ => None,
        };
        let Some((start, value)) = next else {
            break;
        };
        offset = start;
        node = value;
    }
    offset
}

/// The byte offset in the string literal `raw` (quotes and escapes as written) of byte
/// `decoded` of the string's value.
fn raw_offset(raw: &str, decoded: usize) -> usize {
    let bytes = raw.as_bytes();
    let end = bytes.len().saturating_sub(1); // the closing quote
    let mut index = 1; // after the opening quote
    let mut value_len = 0;
    while index < end && value_len < decoded {
        if bytes[index] != b'\\' {
            value_len += 1;
            index += 1;
            continue;
        }
        match bytes.get(index + 1) {
            Some(b'u') => {
                let unit = raw
                    .get(index + 2..index + 6)
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .unwrap_or(0);
                if (0xD800..0xDC00).contains(&unit) {
                    // A surrogate pair: two escapes, one four-byte character.
                    value_len += 4;
                    index += 12;
                } else {
                    value_len += char::from_u32(unit).map_or(3, char::len_utf8);
                    index += 6;
                }
            }
            _ => {
                value_len += 1;
                index += 2;
            }
        }
    }
    index.min(end)
}

/// Where `path` points in the file at `file`, when it can be read and parsed.
fn position_in_file(file: &Path, path: &JsonPath) -> Option<Position> {
    let bytes = read_bytes(file).ok()?;
    let text = utf8_text(&bytes).ok()?;
    let mut probe = [Finding::error(path.clone(), String::new())];
    locate_findings(text, &mut probe);
    probe[0].position
}

/// Two files with one name are both invalid: state is keyed by name, and silently renaming
/// one would reset its watermark.
fn reject_duplicate_names(loaded: &mut [LoadedFile]) {
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, file) in loaded.iter().enumerate() {
        if let Some(name) = &file.name {
            by_name.entry(name.clone()).or_default().push(index);
        }
    }
    for (name, indexes) in by_name.into_iter().filter(|(_, i)| i.len() > 1) {
        let paths: Vec<PathBuf> = indexes.iter().map(|&i| loaded[i].path.clone()).collect();
        for &index in &indexes {
            let others: Vec<String> = paths
                .iter()
                .filter(|path| **path != loaded[index].path)
                .map(|path| path.display().to_string())
                .collect();
            let file = &mut loaded[index];
            file.instance = None;
            let name_path = JsonPath::root().key("name");
            let mut finding = Finding::error(
                name_path.clone(),
                format!(
                    "instance name {name:?} is also used by {}; names must be unique",
                    others.join(", ")
                ),
            );
            // Rare enough to read the file again for the position of its name.
            finding.position = position_in_file(&file.path, &name_path);
            file.findings.push(finding);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_inside_a_string_count_its_escapes() {
        // `{"a": "é😀\"x"}` written with escapes; the value's bytes map back to the literal's.
        let raw = r#""{\"a\": \"\u00e9\ud83d\ude00\\\"x\"}""#;
        let value: String = serde_json::from_str(raw).unwrap();
        let x = value.find('x').unwrap();
        assert_eq!(&raw[raw_offset(raw, x)..raw_offset(raw, x) + 1], "x");
        let a = value.find('a').unwrap();
        assert_eq!(&raw[raw_offset(raw, a)..raw_offset(raw, a) + 1], "a");
        assert_eq!(raw_offset(raw, 0), 1);
        assert_eq!(raw_offset(raw, value.len() + 10), raw.len() - 1);
    }

    #[test]
    fn findings_inside_a_string_encoded_object_point_into_the_string() {
        let text = "{\"c\": {\"r\": \"{\\\"contacts\\\": {\\\"url\\\": 1}}\"}}";
        let mut findings = [Finding::error(
            JsonPath::root()
                .key("c")
                .key("r")
                .key("contacts")
                .key("url"),
            "x",
        )];
        locate_findings(text, &mut findings);
        let offset = text.find("\\\"url").unwrap();
        assert_eq!(
            findings[0].position,
            Some(Position::of_offset(text, offset))
        );
    }
}
