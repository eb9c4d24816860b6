//! `ocpoll validate` and the rest of the command line, through the real binary.

mod util;

use std::path::Path;
use std::time::{Duration, Instant};
use util::{Dir, position_of, running_as_root};

/// A valid instance with no warnings at all, named `name`.
fn instance(name: &str) -> String {
    INSTANCE_TEMPLATE.replace("NAME", name)
}

const INSTANCE_TEMPLATE: &str = r#"{
  "element": { "key": "generic" },
  "name": "NAME",
  "tags": ["crm"],
  "configuration": {
    "base.url": "https://api.example.com/v1",
    "username": "ocpoll",
    "password": "correct-horse-battery",
    "event.notification.enabled": true,
    "event.notification.callback.url": "https://hooks.example.com/ocpoll",
    "event.poller.refresh_interval": "15",
    "event.poller.configuration": {
      "contacts": {
        "url": "/contacts?since=${date:yyyy-MM-dd'T'HH:mm:ssXXX}",
        "idField": "id",
        "datesConfiguration": {
          "updatedDateField": "updated_at",
          "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ssXXX",
          "updatedDateTimezone": "UTC"
        }
      }
    }
  }
}
"#;

/// The valid instance with one configuration value replaced (`key` must exist in it).
fn instance_with(name: &str, key: &str, value: &str) -> String {
    let text = instance(name);
    let prefix = format!("\"{key}\": ");
    let start = text.find(&prefix).expect("key in template") + prefix.len();
    let end = start + text[start..].find(['\n']).unwrap();
    let old = text[start..end].trim_end_matches(',');
    let comma = if text[start..end].ends_with(',') {
        ","
    } else {
        ""
    };
    format!(
        "{}{value}{comma}{}",
        &text[..start],
        &text[start + old.len() + comma.len()..]
    )
}

fn assert_one_line_error(run: &util::Run, file: &str, needle: &str) {
    run.assert_code(1);
    let stdout = run.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one finding and the summary\n{}",
        run.show()
    );
    assert!(lines[0].starts_with(file), "{}", run.show());
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "the finding should mention {needle:?}\n{}",
        run.show()
    );
    assert!(
        !lines[0].contains(": warning: "),
        "must be an error\n{}",
        run.show()
    );
    assert_eq!(
        lines[1],
        "1 file: 0 valid, 1 invalid; 1 error, 0 warnings",
        "{}",
        run.show()
    );
}

// ---- The happy path and the output format ------------------------------------------------

#[test]
fn a_valid_file_prints_ok_and_exits_0() {
    let dir = Dir::new();
    dir.create("good.json", &instance("good"));
    let run = dir.run(["validate", "good.json"]);
    run.assert_code(0);
    assert_eq!(
        run.lines(),
        [
            "good.json: OK",
            "1 file: 1 valid, 0 invalid; 0 errors, 0 warnings"
        ],
        "{}",
        run.show()
    );
}

#[test]
fn warnings_are_marked_and_counted_and_keep_exit_0() {
    let dir = Dir::new();
    dir.create(
        "w.json",
        &instance_with("w", "password", r#""xxxxxxxxxxxx""#),
    );
    let run = dir.run(["validate", "w.json"]);
    run.assert_code(0);
    let (line, column) = position_of(&instance("w"), "\"password\"");
    assert_eq!(
        run.lines()[0],
        format!(
            "w.json:{line}:{column}: configuration.password: warning: looks like a placeholder, \
             not a real secret (value hidden); set the real one or use ${{env:NAME}}"
        ),
        "{}",
        run.show()
    );
    assert_eq!(run.lines()[1], "w.json: OK (1 warning)", "{}", run.show());
    assert_eq!(
        run.summary(),
        "1 file: 1 valid, 0 invalid; 0 errors, 1 warning"
    );
}

#[test]
fn line_and_column_point_at_the_bad_key() {
    // Three-space indentation puts configuration's keys in column 7, as in docs/operations.md's exit-code example.
    let text = r#"{
   "element": { "key": "salesloft" },
   "name": "salesloft",
   "tags": ["crm"],
   "configuration": {
      "base.url": "https://api.example.com",
      "username": "ocpoll",
      "password": "correct-horse-battery",
      "event.notification.enabled": true,
      "event.vendor.type": "polling",
      "event.notification.callback.url": "https://hooks.example.com/x",
      "filter.response.nulls": "true",
      "event.notification.batch.size": "10",
      "event.poller.refresh_interval": "<minutes>",
      "event.poller.configuration": {
         "contacts": {
            "url": "/contacts",
            "idField": "id"
         }
      }
   }
}
"#;
    assert_eq!(
        position_of(text, "\"event.poller.refresh_interval\""),
        (14, 7),
        "the fixture itself"
    );
    let dir = Dir::new();
    dir.create("instances.d/salesloft.json", text);
    let run = dir.run(["validate", "instances.d/salesloft.json"]);
    run.assert_code(1);
    assert_eq!(
        run.lines()[0],
        "instances.d/salesloft.json:14:7: configuration.event.poller.refresh_interval: \
         \"<minutes>\" is not a number of minutes",
        "{}",
        run.show()
    );
}

#[test]
fn nested_findings_point_at_their_own_key() {
    let text = instance_with("n", "updatedDateTimezone", r#""Mars/Olympus""#);
    let dir = Dir::new();
    dir.create("n.json", &text);
    let run = dir.run(["validate", "--format", "json", "n.json"]);
    run.assert_code(1);
    let findings = run.findings();
    assert_eq!(findings.len(), 1, "{}", run.show());
    let (line, column) = position_of(&text, "\"updatedDateTimezone\"");
    assert_eq!(
        (findings[0].line, findings[0].column),
        (Some(line as u64), Some(column as u64)),
        "{}",
        run.show()
    );
}

#[test]
fn parse_errors_carry_line_and_column() {
    let dir = Dir::new();
    dir.create("p.json", "{\n  \"a\": 1\n  \"b\": 2\n}\n");
    let run = dir.run(["validate", "p.json"]);
    assert_one_line_error(&run, "p.json:3:3: ", "invalid JSON");
}

#[test]
fn all_problems_of_a_file_are_reported() {
    let text = instance("three")
        .replace(r#""15""#, r#""<minutes>""#)
        .replace(r#""UTC""#, r#""Mars/Olympus""#)
        .replace(
            r#""https://hooks.example.com/ocpoll""#,
            r#""ftp://hooks.example.com""#,
        );
    let dir = Dir::new();
    dir.create("three.json", &text);
    let run = dir.run(["validate", "--format", "json", "three.json"]);
    run.assert_code(1);
    let mut paths: Vec<String> = run
        .findings()
        .into_iter()
        .filter(|f| f.is_error())
        .map(|f| f.path)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "configuration.event.notification.callback.url",
            "configuration.event.poller.configuration.contacts.datesConfiguration.updatedDateTimezone",
            "configuration.event.poller.refresh_interval",
        ],
        "{}",
        run.show()
    );
    let text_run = dir.run(["validate", "three.json"]);
    text_run.assert_code(1);
    assert_eq!(
        text_run.summary(),
        "1 file: 0 valid, 1 invalid; 3 errors, 0 warnings"
    );
}

#[test]
fn json_format_has_every_field() {
    let dir = Dir::new();
    dir.create(
        "bad.json",
        &instance_with("bad", "event.poller.refresh_interval", r#""<minutes>""#),
    );
    dir.create(
        "warn.json",
        &instance_with("warn", "password", r#""<INSERT>""#),
    );
    dir.create("empty.json", "");
    dir.create("good.json", &instance("good"));
    let run = dir.run([
        "validate",
        "--format",
        "json",
        "bad.json",
        "empty.json",
        "good.json",
        "warn.json",
    ]);
    run.assert_code(1);
    let findings = run.findings();
    assert_eq!(findings.len(), 3, "{}", run.show());

    let bad = &findings[0];
    assert_eq!(bad.file, "bad.json");
    assert_eq!(bad.path, "configuration.event.poller.refresh_interval");
    assert_eq!(bad.severity, "error");
    assert_eq!(bad.message, "\"<minutes>\" is not a number of minutes");
    let (line, column) = position_of(&instance("bad"), "\"event.poller.refresh_interval\"");
    assert_eq!(
        (bad.line, bad.column),
        (Some(line as u64), Some(column as u64))
    );

    let empty = &findings[1];
    assert_eq!(empty.file, "empty.json");
    assert_eq!(empty.path, "", "whole-file problems have an empty path");
    assert_eq!(empty.severity, "error");
    assert!(empty.message.contains("empty"), "{empty:?}");
    assert_eq!((empty.line, empty.column), (None, None));

    let warn = &findings[2];
    assert_eq!(warn.file, "warn.json");
    assert_eq!(warn.path, "configuration.password");
    assert_eq!(warn.severity, "warning");
    assert!(warn.line.is_some() && warn.column.is_some());
}

#[test]
fn json_format_of_a_valid_file_has_no_findings_only_a_mode_note_per_resource() {
    let dir = Dir::new();
    dir.create("good.json", &instance("good"));
    let run = dir.run(["validate", "--format", "json", "good.json"]);
    run.assert_code(0);
    assert!(run.findings().is_empty(), "{}", run.show());
    let notes = run.notes();
    assert_eq!(notes.len(), 1, "{}", run.show());
    assert!(notes[0].message.contains("mode"), "{}", run.show());
}

#[test]
fn unknown_format_is_a_usage_error() {
    let dir = Dir::new();
    dir.create("good.json", &instance("good"));
    let run = dir.run(["validate", "--format", "yaml", "good.json"]);
    run.assert_code(2);
    run.assert_stderr_contains("yaml");
}

// ---- Bad input: each a clear one-line error, never a panic ---------------------------------

#[test]
fn empty_file() {
    let dir = Dir::new();
    dir.create("e.json", "");
    assert_one_line_error(&dir.run(["validate", "e.json"]), "e.json: ", "empty");
    dir.create("w.json", "  \n\t\n");
    assert_one_line_error(&dir.run(["validate", "w.json"]), "w.json: ", "empty");
}

#[test]
fn json_array_instead_of_an_object() {
    let dir = Dir::new();
    dir.create("a.json", &format!("[{}]", instance("a")));
    let run = dir.run(["validate", "a.json"]);
    assert_one_line_error(&run, "a.json:1:1: ", "object");
    assert!(run.stdout().contains("array"), "{}", run.show());
}

#[test]
fn invalid_utf8_with_line_and_column() {
    let dir = Dir::new();
    dir.create_bytes("u.json", b"{\n  \"name\": \"caf\xE9\"\n}\n");
    let run = dir.run(["validate", "u.json"]);
    // Line 2, after `  "name": "caf` (14 characters).
    assert_one_line_error(&run, "u.json:2:15: ", "UTF-8");
}

#[test]
fn a_50_mb_file_is_rejected_quickly() {
    let dir = Dir::new();
    let path = dir.create("huge.json", "{\"name\": \"");
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.set_len(50 * 1024 * 1024).unwrap();
    drop(file);
    let started = Instant::now();
    let run = dir.run(["validate", "huge.json"]);
    let elapsed = started.elapsed();
    assert_one_line_error(&run, "huge.json: ", "MiB");
    assert!(
        run.stdout().contains("limit"),
        "names the size limit\n{}",
        run.show()
    );
    // Generous: rejecting by size must not read (let alone parse) 50 MB.
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}\n{}",
        run.show()
    );
}

#[test]
fn ten_thousand_nested_arrays() {
    let dir = Dir::new();
    dir.create(
        "deep.json",
        &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
    );
    let run = dir.run(["validate", "deep.json"]);
    assert_one_line_error(&run, "deep.json:1:", "nested");
}

#[test]
fn ten_thousand_nested_objects() {
    let dir = Dir::new();
    dir.create(
        "deep.json",
        &format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)),
    );
    let run = dir.run(["validate", "deep.json"]);
    assert_one_line_error(&run, "deep.json:1:", "nested");
}

#[test]
fn a_folder_named_like_an_instance_file() {
    let dir = Dir::new();
    dir.create_dir("instances.d/x.json");
    dir.create("instances.d/good.json", &instance("good"));
    let run = dir.run(["validate", "instances.d"]);
    run.assert_code(1);
    assert_eq!(
        run.lines(),
        [
            "instances.d/good.json: OK",
            "instances.d/x.json: is a folder, not an instance file",
            "2 files: 1 valid, 1 invalid; 1 error, 0 warnings",
        ],
        "{}",
        run.show()
    );
}

#[test]
fn an_unreadable_file() {
    if running_as_root() {
        eprintln!("skipped: root can read any file");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let path = dir.create("secret.json", &instance("secret"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let run = dir.run(["validate", "secret.json"]);
    assert_one_line_error(&run, "secret.json: ", "permission denied");
}

#[test]
fn a_symlink_loop_in_the_folder() {
    let dir = Dir::new();
    dir.create_dir("instances.d");
    std::os::unix::fs::symlink("b.json", dir.join("instances.d/a.json")).unwrap();
    std::os::unix::fs::symlink("a.json", dir.join("instances.d/b.json")).unwrap();
    dir.create("instances.d/c.json", &instance("c"));
    let run = dir.run(["validate", "instances.d"]);
    run.assert_code(1);
    let lines = run.lines();
    assert_eq!(lines.len(), 4, "{}", run.show());
    for (line, file) in lines.iter().zip(["a.json", "b.json"]) {
        assert!(
            line.starts_with(&format!("instances.d/{file}: ")) && line.contains("symbolic links"),
            "{}",
            run.show()
        );
    }
    assert_eq!(lines[2], "instances.d/c.json: OK");
    assert_eq!(
        lines[3],
        "3 files: 1 valid, 2 invalid; 2 errors, 0 warnings"
    );
}

#[test]
fn a_missing_secret_file_is_a_warning() {
    let dir = Dir::new();
    dir.create(
        "f.json",
        &instance_with("f", "password", r#""${file:missing.txt}""#),
    );
    let run = dir.run(["validate", "f.json"]);
    run.assert_code(0);
    let lines = run.lines();
    assert_eq!(lines.len(), 3, "{}", run.show());
    assert!(
        lines[0].contains("configuration.password: warning: ") && lines[0].contains("missing.txt"),
        "{}",
        run.show()
    );
    assert_eq!(lines[1], "f.json: OK (1 warning)");
}

#[test]
fn a_secret_file_next_to_the_instance_is_read() {
    let dir = Dir::new();
    dir.create("instances.d/secrets/pw.txt", "from-a-file\n");
    dir.create(
        "instances.d/f.json",
        &instance_with("f", "password", r#""${file:secrets/pw.txt}""#),
    );
    let run = dir.run(["validate", "instances.d"]);
    run.assert_code(0);
    assert_eq!(run.lines()[0], "instances.d/f.json: OK", "{}", run.show());
}

#[test]
fn an_unknown_timezone_is_named() {
    let dir = Dir::new();
    dir.create(
        "z.json",
        &instance_with("z", "updatedDateTimezone", r#""Mars/Olympus""#),
    );
    let run = dir.run(["validate", "z.json"]);
    assert_one_line_error(&run, "z.json:", "Mars/Olympus");
    assert!(
        run.lines()[0].contains(
            ": configuration.event.poller.configuration.contacts.datesConfiguration.updatedDateTimezone: "
        ),
        "{}",
        run.show()
    );
}

#[test]
fn an_unknown_pattern_letter_is_named_with_its_position() {
    let dir = Dir::new();
    dir.create(
        "q.json",
        &instance_with("q", "updatedDateFormat", r#""yyyy-QQ""#),
    );
    let run = dir.run(["validate", "q.json"]);
    assert_one_line_error(&run, "q.json:", "'Q'");
    let line = &run.lines()[0];
    assert!(
        line.contains(
            ": configuration.event.poller.configuration.contacts.datesConfiguration.updatedDateFormat: "
        ) && line.contains("position 6"),
        "{}",
        run.show()
    );
}

#[test]
fn a_nonexistent_path_is_an_error_and_the_others_still_run() {
    let dir = Dir::new();
    dir.create("good.json", &instance("good"));
    let run = dir.run(["validate", "nope.json", "good.json"]);
    run.assert_code(1);
    assert_eq!(
        run.lines(),
        [
            "nope.json: No such file or directory",
            "good.json: OK",
            "2 files: 1 valid, 1 invalid; 1 error, 0 warnings"
        ],
        "{}",
        run.show()
    );
}

// ---- Folders -------------------------------------------------------------------------------

#[test]
fn one_bad_file_never_stops_the_others() {
    let dir = Dir::new();
    dir.create("instances.d/a.json", &instance("a"));
    dir.create("instances.d/b.json", "{ \"name\": ");
    dir.create("instances.d/c.json", &instance("c"));
    let run = dir.run(["validate", "instances.d"]);
    run.assert_code(1);
    let lines = run.lines();
    assert_eq!(lines.len(), 4, "{}", run.show());
    assert_eq!(lines[0], "instances.d/a.json: OK");
    assert!(
        lines[1].starts_with("instances.d/b.json:1:"),
        "{}",
        run.show()
    );
    assert!(lines[1].contains("invalid JSON"), "{}", run.show());
    assert_eq!(lines[2], "instances.d/c.json: OK");
    assert_eq!(lines[3], "3 files: 2 valid, 1 invalid; 1 error, 0 warnings");
}

#[test]
fn only_json_files_in_a_folder_are_read() {
    let dir = Dir::new();
    dir.create("instances.d/a.json", &instance("a"));
    dir.create("instances.d/README.txt", "not an instance {");
    dir.create("instances.d/b.json.bak", "{");
    dir.create("instances.d/notes", "[");
    let run = dir.run(["validate", "instances.d"]);
    run.assert_code(0);
    assert_eq!(
        run.lines(),
        [
            "instances.d/a.json: OK",
            "1 file: 1 valid, 0 invalid; 0 errors, 0 warnings"
        ],
        "{}",
        run.show()
    );
}

#[test]
fn a_file_named_explicitly_is_read_whatever_its_extension() {
    let dir = Dir::new();
    dir.create("instance.txt", &instance("t"));
    let run = dir.run(["validate", "instance.txt"]);
    run.assert_code(0);
    run.assert_stdout_contains("instance.txt: OK");
}

#[test]
fn duplicate_names_across_files_name_each_other() {
    let dir = Dir::new();
    dir.create("instances.d/one.json", &instance("crm"));
    dir.create("instances.d/two.json", &instance("crm"));
    dir.create("instances.d/three.json", &instance("other"));
    let run = dir.run(["validate", "--format", "json", "instances.d"]);
    run.assert_code(1);
    let findings = run.findings();
    assert_eq!(findings.len(), 2, "{}", run.show());
    for (file, other) in [
        ("instances.d/one.json", "instances.d/two.json"),
        ("instances.d/two.json", "instances.d/one.json"),
    ] {
        let finding = findings
            .iter()
            .find(|f| f.file == file)
            .unwrap_or_else(|| panic!("no finding for {file}\n{}", run.show()));
        assert!(finding.is_error());
        assert_eq!(finding.path, "name");
        assert!(
            finding.message.contains(other) && finding.message.contains("\"crm\""),
            "{finding:?}"
        );
    }
    let text = dir.run(["validate", "instances.d"]);
    text.assert_code(1);
    assert_eq!(
        text.summary(),
        "3 files: 1 valid, 2 invalid; 2 errors, 0 warnings"
    );
}

#[test]
fn names_from_file_stems_collide_too() {
    let dir = Dir::new();
    let nameless = instance("x").replace("\"name\": \"x\",\n", "");
    dir.create("a/crm.json", &nameless);
    dir.create("b/crm.json", &nameless);
    let run = dir.run(["validate", "a", "b"]);
    run.assert_code(1);
    run.assert_stdout_contains(
        "a/crm.json:1:1: name: instance name \"crm\" is also used by b/crm.json",
    );
    run.assert_stdout_contains(
        "b/crm.json:1:1: name: instance name \"crm\" is also used by a/crm.json",
    );
}

#[test]
fn the_same_file_named_twice_is_not_a_duplicate() {
    // `validate instances.d ./instances.d/a.json` names one file twice; it is one instance.
    let dir = Dir::new();
    dir.create("instances.d/a.json", &instance("a"));
    for second in [
        "instances.d/a.json",
        "./instances.d/a.json",
        "instances.d//a.json",
    ] {
        let run = dir.run(["validate", "instances.d", second]);
        run.assert_code(0);
        assert!(
            !run.stdout().contains("also used by"),
            "a file is not a duplicate of itself\n{}",
            run.show()
        );
    }
}

#[test]
fn a_folder_without_instance_files_says_so() {
    let dir = Dir::new();
    dir.create("instances.d/README.txt", "nothing here");
    let run = dir.run(["validate", "instances.d"]);
    run.assert_no_panic();
    run.assert_stdout_contains("instances.d: warning: no *.json instance files");
    // The folder is not counted as a valid file.
    run.assert_stdout_contains("0 files: 0 valid, 0 invalid; 0 errors, 1 warning");
}

// ---- Secrets -------------------------------------------------------------------------------

fn assert_never_printed(dir: &Dir, envs: &[(&str, &str)], file: &str, secrets: &[&str]) {
    for format in ["text", "json"] {
        let mut cmd = dir.command().args(["validate", "--format", format, file]);
        for (name, value) in envs {
            cmd = cmd.env(name, value);
        }
        let run = cmd.run();
        run.assert_code(1);
        for secret in secrets {
            assert!(
                !run.stdout().contains(secret) && !run.stderr().contains(secret),
                "secret {secret:?} printed in {format} mode\n{}",
                run.show()
            );
        }
    }
}

#[test]
fn secrets_are_never_printed() {
    let dir = Dir::new();
    let text = instance_with("s", "password", r#""hunter2-s3cret""#)
        .replace(r#""15""#, r#""<minutes>""#)
        // A second authentication family: an error that is all about the secrets.
        .replace(
            r#""base.url""#,
            r#""api.key": "hunter2-api-k3y", "base.url""#,
        );
    dir.create("s.json", &text);
    assert_never_printed(&dir, &[], "s.json", &["hunter2"]);
}

#[test]
fn placeholder_looking_secrets_are_never_printed() {
    let dir = Dir::new();
    let text = instance_with("p", "password", r#""<hunter2-placeholder>""#).replace(
        r#""base.url""#,
        r#""event.notification.signature.key": ["xxxxxxxxxxxxxxxxxxxxxxxxxxxx", "s3cret-signing-k3y"], "base.url""#,
    );
    let text = text.replace(r#""UTC""#, r#""Mars/Olympus""#);
    dir.create("p.json", &text);
    assert_never_printed(
        &dir,
        &[],
        "p.json",
        &[
            "hunter2",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "s3cret-signing-k3y",
        ],
    );
    let run = dir.run(["validate", "p.json"]);
    run.assert_stdout_contains("configuration.password: warning: looks like a placeholder");
    run.assert_stdout_contains(
        "configuration.event.notification.signature.key[0]: warning: looks like a placeholder",
    );
}

#[test]
fn secrets_from_the_environment_are_never_printed() {
    let dir = Dir::new();
    let text = instance_with("e", "password", r#""${env:CRM_PASSWORD}""#)
        .replace(
            r#""base.url""#,
            r#""event.notification.signature.key": "${env:CRM_SIGNING_KEY}", "http.headers": {"X-Token": "${env:CRM_TOKEN}"}, "base.url""#,
        )
        .replace(r#""15""#, r#""0""#);
    dir.create("e.json", &text);
    let envs = [
        ("CRM_PASSWORD", "hunter2-from-env"),
        ("CRM_SIGNING_KEY", "<hunter3-placeholder-from-env>"),
        ("CRM_TOKEN", "hunter4-token-from-env"),
    ];
    assert_never_printed(&dir, &envs, "e.json", &["hunter2", "hunter3", "hunter4"]);
    // The references resolved: no "unresolved secret" warnings.
    let mut cmd = dir.command().args(["validate", "e.json"]);
    for (name, value) in envs {
        cmd = cmd.env(name, value);
    }
    let run = cmd.run();
    assert!(
        !run.stdout().contains("unresolved secret"),
        "{}",
        run.show()
    );
}

#[test]
fn a_secret_nested_one_brace_too_deep_is_never_printed() {
    // The Salesloft seed's mistake, one level further: credentials ended up inside
    // event.poller.configuration, where they are read as resources.
    let dir = Dir::new();
    let text = instance("m").replace(
        r#""contacts": {"#,
        r#""oauth.user.refresh_token": "hunter2-refresh", "password": "hunter2-password", "contacts": {"#,
    );
    dir.create("m.json", &text);
    assert_never_printed(&dir, &[], "m.json", &["hunter2"]);
}

// ---- Where the instances folder comes from -----------------------------------------------

#[test]
fn default_folder_is_dot_instances_d() {
    let dir = Dir::new();
    dir.create("instances.d/local.json", &instance("local"));
    dir.create("home/.config/ocpoll/instances.d/cfg.json", &instance("cfg"));
    let run = dir.run(["validate"]);
    run.assert_code(0);
    run.assert_stdout_contains("instances.d/local.json: OK");
    assert!(!run.stdout().contains("cfg.json"), "{}", run.show());
}

#[test]
fn default_folder_falls_back_to_the_config_folder() {
    let dir = Dir::new();
    dir.create("home/.config/ocpoll/instances.d/cfg.json", &instance("cfg"));
    let run = dir.run(["validate"]);
    run.assert_code(0);
    run.assert_stdout_contains("home/.config/ocpoll/instances.d/cfg.json: OK");
}

#[test]
fn a_missing_default_folder_exits_78() {
    let dir = Dir::new();
    let run = dir.run(["validate"]);
    run.assert_code(78);
    run.assert_stderr_contains("instances.d");
    run.assert_stderr_contains("does not exist");
    assert_eq!(run.stdout(), "", "{}", run.show());
}

#[test]
fn a_missing_folder_given_explicitly_exits_78_too() {
    let dir = Dir::new();
    let run = dir.run(["validate", "--instances", "nowhere"]);
    run.assert_code(78);
    run.assert_stderr_contains("nowhere");
}

#[test]
fn instances_flag_env_and_config_file() {
    let dir = Dir::new();
    dir.create("instances.d/default.json", &instance("default"));
    dir.create("flag/flag.json", &instance("flag"));
    dir.create("envdir/env.json", &instance("env"));
    dir.create("cfgdir/cfg.json", &instance("cfg"));
    dir.create("cfg.toml", "instances = \"cfgdir\"\n");

    let only = |run: &util::Run, file: &str| {
        run.assert_code(0);
        assert_eq!(
            run.lines(),
            [
                format!("{file}: OK"),
                "1 file: 1 valid, 0 invalid; 0 errors, 0 warnings".to_owned()
            ],
            "{}",
            run.show()
        );
    };
    only(
        &dir.run(["validate", "--instances", "flag"]),
        "flag/flag.json",
    );
    // The location options belong to the commands that use them (issue 14): before the
    // subcommand, `--instances` is a usage error.
    dir.run(["--instances", "flag", "validate"])
        .assert_code(2)
        .assert_stderr_contains("--instances");
    only(
        &dir.command()
            .args(["validate"])
            .env("OCPOLL_INSTANCES", "envdir")
            .run(),
        "envdir/env.json",
    );
    only(
        &dir.run(["validate", "--config", "cfg.toml"]),
        "cfgdir/cfg.json",
    );
    // The flag wins over the environment, which wins over the file.
    only(
        &dir.command()
            .args(["validate", "--instances", "flag", "--config", "cfg.toml"])
            .env("OCPOLL_INSTANCES", "envdir")
            .run(),
        "flag/flag.json",
    );
    only(
        &dir.command()
            .args(["validate", "--config", "cfg.toml"])
            .env("OCPOLL_INSTANCES", "envdir")
            .run(),
        "envdir/env.json",
    );
    // The config file in the platform config folder is read by default.
    dir.create(
        "home/.config/ocpoll/config.toml",
        "instances = \"cfgdir\"\n",
    );
    only(&dir.run(["validate"]), "cfgdir/cfg.json");
}

#[test]
fn paths_given_win_over_the_instances_folder() {
    let dir = Dir::new();
    dir.create("instances.d/default.json", "{");
    dir.create("other.json", &instance("other"));
    let run = dir.run(["validate", "other.json"]);
    run.assert_code(0);
    assert!(!run.stdout().contains("default.json"), "{}", run.show());
}

#[test]
fn an_unusable_config_file_exits_78() {
    let dir = Dir::new();
    dir.create("instances.d/a.json", &instance("a"));
    dir.create("bad.toml", "instances = [\n");
    let run = dir.run(["validate", "--config", "bad.toml"]);
    run.assert_code(78);
    run.assert_stderr_contains("bad.toml");
    let run = dir.run(["validate", "--config", "missing.toml"]);
    run.assert_code(78);
    run.assert_stderr_contains("missing.toml");
}

// ---- The shipped examples ------------------------------------------------------------------

#[test]
fn the_example_instances_are_valid_with_an_empty_environment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Dir::new();
    for args in [&["validate", "instances.d/"][..], &["validate"][..]] {
        let run = dir.command().current_dir(root).args(args).run();
        run.assert_code(0);
        let summary = run.summary();
        assert!(
            summary.starts_with("5 files: 5 valid, 0 invalid; 0 errors, "),
            "{}",
            run.show()
        );
        let findings = dir
            .command()
            .current_dir(root)
            .args(args)
            .args(["--format", "json"])
            .run()
            .findings();
        assert!(findings.iter().all(|f| !f.is_error()), "{findings:#?}");
    }
}

// ---- The rest of the command line ----------------------------------------------------------

#[test]
fn help_of_every_subcommand_and_version() {
    let dir = Dir::new();
    for args in [
        &[][..],
        &["validate"],
        &["tick"],
        &["run"],
        &["status"],
        &["state"],
        &["state", "reset"],
        &["state", "forget"],
        &["outbox"],
        &["outbox", "list"],
        &["outbox", "show"],
        &["outbox", "retry"],
        &["outbox", "drop"],
        &["demo"],
    ] {
        let run = dir.command().args(args).arg("--help").run();
        run.assert_code(0);
        let stdout = run.stdout();
        assert!(stdout.contains("Usage: ocpoll"), "{}", run.show());
        assert!(
            stdout.contains(
                &format!("Usage: ocpoll {}", args.join(" "))
                    .trim_end()
                    .to_owned()
            ),
            "{}",
            run.show()
        );
    }
    let run = dir.run(["--version"]);
    run.assert_code(0);
    assert_eq!(
        run.stdout().trim(),
        format!("ocpoll {}", env!("CARGO_PKG_VERSION"))
    );
    let run = dir.run(["validate", "--version"]);
    run.assert_code(0);
    run.assert_stdout_contains(env!("CARGO_PKG_VERSION"));
}

#[test]
fn help_lists_every_command_as_available() {
    let dir = Dir::new();
    let run = dir.run(["--help"]);
    run.assert_code(0);
    for command in [
        "validate", "tick", "run", "status", "state", "outbox", "demo",
    ] {
        assert!(
            run.stdout()
                .lines()
                .any(|line| line.split_whitespace().next() == Some(command)),
            "{command} missing from help"
        );
    }
    assert!(
        !run.stdout().contains("not available yet"),
        "{}",
        run.show()
    );
    assert!(
        !run.stdout().contains("generate-assets"),
        "hidden from help"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = Dir::new();
    for args in [
        &["frobnicate"][..],
        &[],
        &["validate", "--no-such-flag"],
        &["state"],
        &["-v", "-q", "validate"],
    ] {
        let run = dir.run(args);
        run.assert_code(2);
        assert_eq!(run.stdout(), "", "{}", run.show());
    }
}

#[test]
fn a_huge_refresh_interval_is_an_error_not_a_panic() {
    let dir = Dir::new();
    for value in [
        r#""307445734561825861""#,
        "18446744073709551615",
        r#""99999999999999999999""#,
    ] {
        dir.create(
            "i.json",
            &instance_with("i", "event.poller.refresh_interval", value),
        );
        let run = dir.run(["validate", "i.json"]);
        run.assert_code(1);
        run.assert_stdout_contains(": configuration.event.poller.refresh_interval: ");
    }
}

#[test]
fn values_from_secret_references_are_never_printed() {
    // A value that came through ${env:..} was put there to keep it out of the file: even in a
    // key that is not a credential, an error about it must not print it.
    let dir = Dir::new();
    let text = instance("r")
        .replace(
            r#""https://api.example.com/v1""#,
            r#""${env:CRM_BASE_URL}""#,
        )
        .replace(
            r#""https://hooks.example.com/ocpoll""#,
            r#""${env:CRM_CALLBACK}""#,
        );
    dir.create("r.json", &text);
    assert_never_printed(
        &dir,
        &[
            ("CRM_BASE_URL", "hunter2-base-url"),
            ("CRM_CALLBACK", "hunter2-callback-token"),
        ],
        "r.json",
        &["hunter2"],
    );
}

#[test]
fn secret_references_work_in_number_and_boolean_keys() {
    // docs/instances.md: any string value may be ${env:NAME} or ${file:PATH}.
    let dir = Dir::new();
    dir.create("minutes.txt", "15\n");
    let text = instance_with(
        "n",
        "event.poller.refresh_interval",
        r#""${file:minutes.txt}""#,
    )
    .replace(
        r#""event.notification.enabled": true"#,
        r#""event.notification.enabled": "${env:CRM_EVENTS}""#,
    );
    dir.create("n.json", &text);
    let run = dir
        .command()
        .args(["validate", "n.json"])
        .env("CRM_EVENTS", "true")
        .run();
    run.assert_code(0);
    assert_eq!(run.lines()[0], "n.json: OK", "{}", run.show());
}

// ---- What validate used to let through (issue 12) ------------------------------------------

#[test]
fn a_key_given_twice_is_an_error_naming_both_positions() {
    // serde_json keeps the last of two equal keys: the first callback URL was dropped silently.
    let dir = Dir::new();
    let text = instance("twice").replace(
        r#""event.poller.refresh_interval": "15","#,
        "\"event.poller.refresh_interval\": \"15\",\n    \
         \"event.notification.callback.url\": \"https://other.example.com/in\",",
    );
    dir.create("twice.json", &text);
    let first = position_of(&text, "\"event.notification.callback.url\"");
    let second = position_of(
        &text,
        "\"event.notification.callback.url\": \"https://other",
    );
    let run = dir.run(["validate", "twice.json"]);
    assert_one_line_error(&run, "twice.json", "given twice");
    assert_eq!(
        run.lines()[0],
        format!(
            "twice.json:{}:{}: configuration.event.notification.callback.url: this key is given \
             twice in one object, at {}:{} and {}:{}; only the last one ({}:{}) counts and the \
             other is silently ignored: keep one and delete the rest",
            second.0, second.1, first.0, first.1, second.0, second.1, second.0, second.1
        ),
        "{}",
        run.show()
    );
}

#[test]
fn keys_given_twice_are_found_at_any_depth() {
    let dir = Dir::new();
    let text = instance("deep")
        .replace(
            r#""idField": "id","#,
            r#""idField": "id", "idField": "uuid", "idField": "key","#,
        )
        .replace(r#""tags": ["crm"],"#, r#""tags": [{"a": 1, "a": 2}],"#);
    dir.create("deep.json", &text);
    let run = dir.run(["validate", "--format", "json", "deep.json"]);
    run.assert_code(1);
    let findings = run.findings();
    // Three: the two repeated keys, and the tag that is not a string.
    assert_eq!(findings.len(), 3, "{}", run.show());
    let (line, _) = position_of(&text, "\"idField\"");
    let id = findings
        .iter()
        .find(|f| f.path == "configuration.event.poller.configuration.contacts.idField")
        .unwrap_or_else(|| panic!("{}", run.show()));
    assert!(id.is_error());
    assert!(id.message.contains("given 3 times"), "{id:?}");
    assert!(
        id.message
            .contains(&format!("at {line}:9, {line}:26 and {line}:45;")),
        "{id:?}"
    );
    assert_eq!((id.line, id.column), (Some(line as u64), Some(45)));
    assert!(
        findings
            .iter()
            .any(|f| f.path == "tags[0].a" && f.message.contains("given twice")),
        "{}",
        run.show()
    );
}

#[test]
fn a_value_of_megabytes_is_quoted_as_a_short_excerpt() {
    let dir = Dir::new();
    let huge = "a".repeat(5 * 1024 * 1024);
    dir.create(
        "big.json",
        &instance_with(
            "big",
            "event.poller.refresh_interval",
            &format!("\"{huge}\""),
        ),
    );
    let run = dir.run(["validate", "big.json"]);
    assert_one_line_error(&run, "big.json", "is not a number of minutes");
    let line = &run.lines()[0];
    assert!(line.len() < 300, "{} bytes of output", run.stdout().len());
    assert!(
        line.ends_with(&format!(
            "configuration.event.poller.refresh_interval: \"{}…\" (5242880 bytes) is not a number of minutes",
            "a".repeat(48)
        )),
        "{line}"
    );
}

#[test]
fn two_files_with_one_name_are_both_invalid_even_when_one_has_other_errors() {
    let dir = Dir::new();
    dir.create("instances.d/good.json", &instance("crm"));
    dir.create(
        "instances.d/bad.json",
        &instance_with("crm", "event.poller.refresh_interval", r#""<minutes>""#),
    );
    let run = dir.run(["validate", "instances.d"]);
    run.assert_code(1);
    run.assert_stdout_contains(
        "instances.d/good.json:3:3: name: instance name \"crm\" is also used by instances.d/bad.json",
    );
    run.assert_stdout_contains(
        "instances.d/bad.json:3:3: name: instance name \"crm\" is also used by instances.d/good.json",
    );
    assert_eq!(
        run.summary(),
        "2 files: 0 valid, 2 invalid; 3 errors, 0 warnings",
        "{}",
        run.show()
    );
}

#[test]
fn a_misspelled_key_is_a_warning_and_an_error_under_strict() {
    let dir = Dir::new();
    let text = instance("typo").replace(
        r#""idField": "id","#,
        r#""idField": "id", "lookbakSeconds": 60,"#,
    );
    dir.create("typo.json", &text);
    let (line, column) = position_of(&text, "\"lookbakSeconds\"");
    let expected = format!(
        "typo.json:{line}:{column}: configuration.event.poller.configuration.contacts.lookbakSeconds: \
         warning: \"lookbakSeconds\" is not a key ocpoll knows and is ignored; did you mean `lookbackSeconds`?"
    );
    let run = dir.run(["validate", "typo.json"]);
    run.assert_code(0);
    assert_eq!(run.lines()[0], expected, "{}", run.show());
    let strict = dir.run(["validate", "--strict", "typo.json"]);
    strict.assert_code(1);
    assert_eq!(
        strict.lines()[0],
        expected.replace("warning: ", ""),
        "{}",
        strict.show()
    );
    // An unknown key near nothing known stays silent, even under --strict.
    let text = instance("other").replace(
        r#""idField": "id","#,
        r#""idField": "id", "objectName": "contact","#,
    );
    dir.create("other.json", &text);
    dir.run(["validate", "--strict", "other.json"])
        .assert_code(0);
}

#[test]
fn disabled_events_beside_a_poller_configuration_warn_that_nothing_is_polled() {
    let dir = Dir::new();
    let text = instance_with("off", "event.notification.enabled", "false");
    dir.create("off.json", &text);
    let (line, column) = position_of(&text, "\"event.notification.enabled\"");
    let run = dir.run(["validate", "off.json"]);
    run.assert_code(0);
    assert_eq!(
        run.lines(),
        [
            format!(
                "off.json:{line}:{column}: configuration.event.notification.enabled: warning: events are \
                 disabled, so nothing will be polled although \"event.poller.configuration\" lists \
                 resources; set it to true to poll them"
            ),
            "off.json: OK (1 warning)".to_owned(),
            "1 file: 1 valid, 0 invalid; 0 errors, 1 warning".to_owned(),
        ],
        "{}",
        run.show()
    );
}

#[test]
fn date_patterns_that_cannot_be_meant_are_warnings_with_the_pattern_meant() {
    let dir = Dir::new();
    let text = instance("dates")
        .replace(
            r#""updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ssXXX","#,
            r#""updatedDateFormat": "YYYY-MM-DD hh:mm:SS","#,
        )
        .replace(
            "${date:yyyy-MM-dd'T'HH:mm:ssXXX}",
            "${date:yyyy-MM-dd'T'HH:MM:ss}",
        );
    dir.create("dates.json", &text);
    let run = dir.run(["validate", "dates.json"]);
    run.assert_code(0);
    let (line, column) = position_of(&text, "\"updatedDateFormat\"");
    let format = format!(
        "dates.json:{line}:{column}: configuration.event.poller.configuration.contacts.datesConfiguration.updatedDateFormat: warning: \"YYYY-MM-DD hh:mm:SS\": "
    );
    let meant = "; did you mean \"yyyy-MM-dd HH:mm:ss\"?";
    for reason in [
        "YYYY is Java's week year, which is the next year in the last days of December (ocpoll reads it as the year)",
        "DD is the day of the year (1-366), beside a month: the day of the month is dd",
        "hh is the hour on a 12-hour clock and there is no AM/PM marker (a): 1 PM and 1 AM both read as 01",
        "SS is the fraction of a second, and there are no seconds (ss)",
    ] {
        run.assert_stdout_contains(&format!("{format}{reason}{meant}\n"));
    }
    run.assert_stdout_contains(
        ".url: warning: date format \"yyyy-MM-dd'T'HH:MM:ss\": MM after the hour is the month: \
         minutes are mm; did you mean \"yyyy-MM-dd'T'HH:mm:ss\"? (at character 17 of the url)",
    );
    assert_eq!(
        run.summary(),
        "1 file: 1 valid, 0 invalid; 0 errors, 5 warnings"
    );
}

#[test]
fn a_poller_configuration_given_as_a_json_string_is_decoded_with_a_note() {
    // Some connector guides show event.poller.configuration as a string; Open Connectors
    // accepts it. Findings inside point at the key within the string, where the file has it.
    let dir = Dir::new();
    let inner =
        r#"{\n  \"contacts\": {\n    \"url\": \"/contacts\",\n    \"idFeild\": \"id\"\n  }\n}"#;
    let text = format!(
        r#"{{
  "element": {{ "key": "generic" }},
  "name": "str",
  "configuration": {{
    "base.url": "https://api.example.com/v1",
    "event.notification.enabled": true,
    "event.notification.callback.url": "https://hooks.example.com/ocpoll",
    "event.poller.refresh_interval": "15",
    "event.poller.configuration": "{inner}"
  }}
}}
"#
    );
    dir.create("str.json", &text);
    let run = dir.run(["validate", "str.json"]);
    run.assert_code(1);
    let (line, column) = position_of(&text, "\"event.poller.configuration\"");
    let (_, contacts) = position_of(&text, r#"\"contacts\""#);
    let (_, typo) = position_of(&text, r#"\"idFeild\""#);
    let resource = "configuration.event.poller.configuration.contacts";
    assert_eq!(
        run.lines(),
        [
            format!(
                "str.json:{line}:{column}: configuration.event.poller.configuration: warning: given as \
                 a JSON string holding the resources, which Open Connectors accepts and ocpoll decodes \
                 the same way; write the object itself, without the quotes and backslashes"
            ),
            format!(
                "str.json:{line}:{contacts}: {resource}.idField: missing \"idField\" (the record's id \
                 field; \"\" identifies records by their content)"
            ),
            format!(
                "str.json:{line}:{typo}: {resource}.idFeild: warning: \"idFeild\" is not a key ocpoll \
                 knows and is ignored; did you mean `idField`?"
            ),
            "1 file: 0 valid, 1 invalid; 1 error, 2 warnings".to_owned(),
        ],
        "{}",
        run.show()
    );
    // Fixed inside the string, the file is valid, with the note.
    dir.create("str.json", &text.replace("idFeild", "idField"));
    let run = dir.run(["validate", "str.json"]);
    run.assert_code(0);
    assert_eq!(
        run.summary(),
        "1 file: 1 valid, 0 invalid; 0 errors, 1 warning"
    );
    // A string that holds no object is an error.
    dir.create(
        "str.json",
        &text.replace(&format!("\"{inner}\""), r#""{\"contacts\": ""#),
    );
    let run = dir.run(["validate", "str.json"]);
    assert_one_line_error(
        &run,
        "str.json",
        "found a string that is not JSON: EOF while parsing",
    );
}
