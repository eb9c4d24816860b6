//! The documents keep their promises: every command in the README's `sh` blocks works as
//! pasted, every relative link in the README, CONTRIBUTING.md and docs/ leads to a file (and a
//! heading) that exists, and the signatures in docs/events.md's test vector are right.
//!
//! README commands that start with `ocpoll ` or `cargo run --release -- ` run with the test
//! binary in a temporary folder laid out as the README assumes, each as [`RUN`] says; commands
//! that cannot run in a test are in [`ALLOWLIST`] with the reason. A README command in neither
//! fails the test, so a new one has to be considered here; an entry whose command left the
//! README fails it too. Everything stays on loopback: the commands that would reach a provider
//! run with every outbound host denied (`OCPOLL_HTTP_DENY`), so they stop at their first request.

mod util;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use util::Dir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// How long the demo runs when the README shows it without `--duration` (it runs until Ctrl-C).
const DEMO_DURATION: &str = "5s";

/// The most a daemon may take to make its first poll before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// Every outbound host the README's first instance names is refused before any connection.
const NO_EGRESS: (&str, &str) = ("OCPOLL_HTTP_DENY", "*.example,*.example.com");

/// The secrets the README's first instance reads from the environment.
const FIRST_INSTANCE_SECRETS: [(&str, &str); 2] = [
    ("MY_CRM_API_KEY", "readme-test-api-key"),
    ("MY_CRM_SIGNATURE_KEY", "readme-test-signature-key"),
];

/// Where a README command runs.
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// A copy of the project's `instances.d/`, as in a checkout (the "Two commands" section).
    Checkout,
    /// "A folder of your own": `instances.d/` holding only the files the README tells the
    /// reader to create, with the README's JSON.
    OwnFolder,
}

/// How a README command is checked.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// Runs to completion with `env` set, exits with `code`, and its output contains `shows`.
    Exit {
        setup: Setup,
        env: &'static [(&'static str, &'static str)],
        code: i32,
        shows: &'static str,
    },
    /// `ocpoll demo`, bounded by `--duration` when the README shows none: exits 0 after
    /// printing verified events.
    Demo,
    /// The daemon: it must start and make its first poll (refused by [`NO_EGRESS`]), then stop
    /// on Ctrl-C (SIGINT) with exit 0, as the README says.
    UntilCtrlC { setup: Setup },
    /// A command that requests the reader's provider: with [`NO_EGRESS`] it must get as far as
    /// its first request and fail there (exit 1, "blocked by http.deny"), which proves the
    /// command line and the file are right without leaving the machine.
    FirstRequestRefused { setup: Setup },
}

/// The README commands this test runs, exactly as the README writes them (comment removed).
const RUN: &[(&str, Check)] = &[
    ("cargo run --release -- demo", Check::Demo),
    (
        "cargo run --release -- validate instances.d/",
        Check::Exit {
            setup: Setup::Checkout,
            env: &[],
            code: 0,
            shows: "6 files: 6 valid, 0 invalid; 0 errors,",
        },
    ),
    (
        "ocpoll validate instances.d/my-crm.json",
        Check::Exit {
            setup: Setup::OwnFolder,
            env: &[],
            code: 0,
            shows: "unresolved secret: set MY_CRM_API_KEY",
        },
    ),
    (
        "ocpoll try instances.d/my-crm.json",
        Check::FirstRequestRefused {
            setup: Setup::OwnFolder,
        },
    ),
    (
        "ocpoll run --foreground",
        Check::UntilCtrlC {
            setup: Setup::OwnFolder,
        },
    ),
];

/// The README's install section writes system folders and needs root: tests/install.rs follows
/// it in a temporary root instead, and starts the unit's command from what it installed.
const INSTALL_TEST: &str = "tests/install.rs follows the install section in a temporary root";

/// The .deb: a release build and a system install; .ci/run builds it, installs it and runs
/// tests/install.rs against the package and the installed files.
const DEB_TEST: &str = ".ci/run builds and installs the .deb; tests/install.rs checks it";

/// README commands that cannot run in a test, and why.
const ALLOWLIST: &[(&str, &str)] = &[
    (
        "cargo test",
        "runs every test, this one included; CI runs it (.ci/run)",
    ),
    ("cargo install --locked --path .", INSTALL_TEST),
    (
        "sudo install -m 755 ~/.cargo/bin/ocpoll /usr/local/bin/",
        INSTALL_TEST,
    ),
    (
        "sudo install -D -m 644 -t /usr/local/share/man/man1 man/*.1",
        INSTALL_TEST,
    ),
    (
        "sudo install -D -m 644 -t /usr/local/share/man/man5 man/*.5",
        INSTALL_TEST,
    ),
    (
        "sudo useradd --system --user-group --home-dir /var/lib/ocpoll --shell /usr/sbin/nologin ocpoll",
        INSTALL_TEST,
    ),
    (
        "sudo install -d -o ocpoll -g ocpoll -m 700 /var/lib/ocpoll",
        INSTALL_TEST,
    ),
    (
        "sudo install -D -m 644 contrib/config.toml /etc/ocpoll/config.toml",
        INSTALL_TEST,
    ),
    ("sudo install -d /etc/ocpoll/instances.d", INSTALL_TEST),
    (
        "sudo install -m 644 contrib/ocpoll.service /etc/systemd/system/",
        INSTALL_TEST,
    ),
    ("sudo systemctl daemon-reload", INSTALL_TEST),
    ("sudo systemctl enable --now ocpoll", INSTALL_TEST),
    ("cargo install --locked cargo-deb", DEB_TEST),
    ("cargo deb --locked", DEB_TEST),
    ("sudo apt install ./target/debian/ocpoll_*.deb", DEB_TEST),
];

// -------------------------------------------------------------------------------------------
// The README's commands
// -------------------------------------------------------------------------------------------

fn read(relative: &str) -> String {
    let path = Path::new(ROOT).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Each line of a fenced block, with the block's info string.
struct Fenced {
    info: String,
    lines: Vec<String>,
}

/// The fenced code blocks of a Markdown text, and the text outside them (fences blanked).
fn fenced_blocks(text: &str) -> (Vec<Fenced>, String) {
    let mut blocks = Vec::new();
    let mut prose = String::new();
    let mut current: Option<Fenced> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => {
                    current = Some(Fenced {
                        info: info.trim().to_owned(),
                        lines: Vec::new(),
                    })
                }
            }
            prose.push('\n');
            continue;
        }
        match &mut current {
            Some(block) => {
                block.lines.push(line.to_owned());
                prose.push('\n');
            }
            None => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    assert!(current.is_none(), "a fenced block is not closed");
    (blocks, prose)
}

/// A shell line without its trailing `# comment` (a `#` after whitespace, outside quotes).
fn without_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for (index, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return &line[..index],
            _ => {}
        }
        previous = c;
    }
    line
}

/// Every command line of the README's `sh` blocks, continuation lines joined.
fn readme_commands() -> Vec<String> {
    let (blocks, _) = fenced_blocks(&read("README.md"));
    let mut commands = Vec::new();
    for block in blocks.iter().filter(|block| block.info == "sh") {
        let mut pending = String::new();
        for line in &block.lines {
            let line = without_comment(line).trim();
            if let Some(start) = line.strip_suffix('\\') {
                pending.push_str(start.trim_end());
                pending.push(' ');
                continue;
            }
            pending.push_str(line);
            let command = std::mem::take(&mut pending);
            if !command.is_empty() {
                commands.push(command);
            }
        }
        assert!(pending.is_empty(), "a README command ends with `\\`");
    }
    commands
}

/// The files the README tells the reader to create: a ```json block after a line that says to
/// create `instances.d/NAME.json`.
fn readme_instance_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut pending: Option<String> = None;
    let mut in_json: Option<String> = None;
    let mut in_other_block = false;
    for line in read("README.md").lines() {
        let trimmed = line.trim_start();
        if let Some(body) = &mut in_json {
            if trimmed.starts_with("```") {
                files.push((pending.take().expect("a file name"), std::mem::take(body)));
                in_json = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        if let Some(info) = trimmed.strip_prefix("```") {
            if in_other_block {
                in_other_block = false;
            } else if info.trim() == "json" && pending.is_some() {
                in_json = Some(String::new());
            } else {
                in_other_block = true;
            }
            continue;
        }
        if in_other_block {
            continue;
        }
        if line.contains("create `instances.d/") {
            let start = line.find("`instances.d/").unwrap() + 1;
            let end = start + line[start..].find('`').expect("a closing backtick");
            pending = Some(line[start..end].to_owned());
        }
    }
    assert!(
        pending.is_none(),
        "the README names a file to create but shows no JSON for it"
    );
    files
}

/// A temporary folder laid out for `setup`.
fn layout(setup: Setup) -> Dir {
    let dir = Dir::new();
    match setup {
        Setup::Checkout => {
            let examples = Path::new(ROOT).join("instances.d");
            for entry in std::fs::read_dir(&examples).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                dir.create_bytes(
                    format!("instances.d/{name}"),
                    &std::fs::read(&path).unwrap(),
                );
            }
        }
        Setup::OwnFolder => {
            let files = readme_instance_files();
            assert!(
                !files.is_empty(),
                "the README's first instance file is gone"
            );
            for (name, json) in files {
                dir.create(name, &json);
            }
        }
    }
    dir
}

/// The binary's arguments for a README command.
fn arguments(command: &str) -> Vec<String> {
    let rest = command
        .strip_prefix("ocpoll ")
        .or_else(|| command.strip_prefix("cargo run --release -- "))
        .unwrap_or_else(|| panic!("not an ocpoll command: {command}"));
    rest.split_whitespace().map(str::to_owned).collect()
}

fn run_check(command: &str, check: Check) {
    let mut args = arguments(command);
    match check {
        Check::Exit {
            setup,
            env,
            code,
            shows,
        } => {
            let dir = layout(setup);
            let mut test = dir.command().args(&args);
            for (name, value) in env {
                test = test.env(name, value);
            }
            let run = test.run();
            run.assert_code(code);
            assert!(
                run.stdout().contains(shows) || run.stderr().contains(shows),
                "`{command}` does not show {shows:?}\n{}",
                run.show()
            );
        }
        Check::Demo => {
            if !args.iter().any(|arg| arg == "--duration") {
                args.extend(["--duration".to_owned(), DEMO_DURATION.to_owned()]);
            }
            let run = layout(Setup::Checkout).command().args(&args).run();
            run.assert_code(0);
            run.assert_stdout_contains("signatures verified");
            run.assert_stdout_contains("totals: ");
        }
        Check::FirstRequestRefused { setup } => {
            let dir = layout(setup);
            let mut test = dir.command().args(&args).env(NO_EGRESS.0, NO_EGRESS.1);
            for (name, value) in FIRST_INSTANCE_SECRETS {
                test = test.env(name, value);
            }
            let run = test.run();
            run.assert_code(1);
            assert!(
                run.stdout().contains("is blocked by http.deny"),
                "`{command}` did not get as far as its first request\n{}",
                run.show()
            );
        }
        Check::UntilCtrlC { setup } => until_ctrl_c(command, &args, setup),
    }
}

/// Starts the daemon as the README shows it, waits for its first poll, and presses Ctrl-C.
fn until_ctrl_c(command: &str, args: &[String], setup: Setup) {
    let dir = layout(setup);
    let log = dir.join("daemon.log");
    let mut daemon = dir.std_command();
    daemon
        .args(args)
        .env(NO_EGRESS.0, NO_EGRESS.1)
        .env("OCPOLL_LOG_FORMAT", "json")
        .envs(FIRST_INSTANCE_SECRETS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = daemon.spawn().expect("the daemon starts");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    while !log_text().contains("is blocked by http.deny") {
        if started.elapsed() > PATIENCE || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{command}` made no poll; its log:\n{}", log_text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with our own child's pid and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if stopping.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{command}` did not stop on Ctrl-C; its log:\n{}",
                log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "{command}; its log:\n{}",
        log_text()
    );
}

#[test]
fn every_readme_command_is_run_or_allowlisted() {
    let commands = readme_commands();
    assert!(!commands.is_empty(), "no ```sh block in the README");
    let run: BTreeMap<&str, Check> = RUN.iter().copied().collect();
    let allowed: BTreeMap<&str, &str> = ALLOWLIST.iter().copied().collect();
    let mut unconsidered = Vec::new();
    for command in &commands {
        if run.contains_key(command.as_str()) {
            assert!(
                command.starts_with("ocpoll ") || command.starts_with("cargo run --release -- "),
                "only ocpoll commands can be run here: {command}"
            );
        } else if !allowed.contains_key(command.as_str()) {
            unconsidered.push(command.as_str());
        }
    }
    assert!(
        unconsidered.is_empty(),
        "README commands neither run by tests/readme.rs (RUN) nor allowlisted with a reason \
         (ALLOWLIST): {unconsidered:#?}"
    );
    let in_readme: BTreeSet<&str> = commands.iter().map(String::as_str).collect();
    let stale: Vec<&str> = run
        .keys()
        .chain(allowed.keys())
        .copied()
        .filter(|command| !in_readme.contains(command))
        .collect();
    assert!(
        stale.is_empty(),
        "tests/readme.rs lists commands the README no longer has: {stale:#?}"
    );
}

// One test per command, so they run in parallel and a failure names its command.

#[test]
fn readme_demo() {
    run_readme_command("cargo run --release -- demo");
}

#[test]
fn readme_validate_examples() {
    run_readme_command("cargo run --release -- validate instances.d/");
}

#[test]
fn readme_first_instance_validate() {
    run_readme_command("ocpoll validate instances.d/my-crm.json");
}

#[test]
fn readme_first_instance_try() {
    run_readme_command("ocpoll try instances.d/my-crm.json");
}

#[test]
fn readme_first_instance_run() {
    run_readme_command("ocpoll run --foreground");
}

#[test]
fn every_run_entry_has_its_own_test() {
    // The tests above name their commands; a RUN entry without one would never run.
    let source = read("tests/readme.rs");
    for (command, _) in RUN {
        let call = format!("run_readme_command({command:?})");
        assert!(source.contains(&call), "no test calls {call}");
    }
}

fn run_readme_command(command: &str) {
    let check = RUN
        .iter()
        .find(|(listed, _)| *listed == command)
        .unwrap_or_else(|| panic!("{command} is not in RUN"))
        .1;
    assert!(
        readme_commands().iter().any(|line| line == command),
        "the README no longer shows `{command}`"
    );
    run_check(command, check);
}

// -------------------------------------------------------------------------------------------
// Links
// -------------------------------------------------------------------------------------------

/// The documents whose relative links must resolve.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut documents = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("a docs/ folder")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    documents.extend(docs);
    documents
}

/// `text` without its inline code spans (a link written in backticks is not a link).
fn without_code_spans(text: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in text.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// Every link target of `[text](target)` in the prose of a Markdown file.
fn link_targets(markdown: &str) -> Vec<String> {
    let (_, prose) = fenced_blocks(markdown);
    let mut targets = Vec::new();
    for line in prose.lines() {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a Markdown file offers: its headings' slugs (`-1`, `-2` for repeats) and its
/// explicit `<a id="...">` anchors.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let (_, prose) = fenced_blocks(markdown);
    let mut anchors = BTreeSet::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in prose.lines() {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(&line[hashes..]);
            let seen = counts.entry(base.clone()).or_default();
            let anchor = match *seen {
                0 => base,
                n => format!("{base}-{n}"),
            };
            *seen += 1;
            anchors.insert(anchor);
        }
        for marker in ["<a id=\"", "<a name=\""] {
            let mut rest = line;
            while let Some(start) = rest.find(marker) {
                let after = &rest[start + marker.len()..];
                let end = after.find('"').expect("a closing quote");
                anchors.insert(after[..end].to_owned());
                rest = &after[end..];
            }
        }
    }
    anchors
}

#[test]
fn every_relative_link_leads_to_an_existing_file_and_heading() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        let name = document.strip_prefix(ROOT).unwrap().display().to_string();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                document.clone()
            } else {
                document.parent().unwrap().join(path)
            };
            if !file.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if file.extension().is_some_and(|ext| ext == "md") {
                let offered = anchors(&std::fs::read_to_string(&file).unwrap());
                if !offered.contains(anchor) {
                    broken.push(format!("{name}: {target}: no heading or anchor `{anchor}`"));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} relative links found: is the parser right?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Every `.rs` file under `folder`.
fn rust_files(folder: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).expect("a source folder") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The code points its comments at the documents in docs/ by heading (`design.md#state`):
/// each cited heading must exist.
#[test]
fn every_docs_citation_in_the_code_leads_to_a_heading() {
    let root = Path::new(ROOT);
    let mut files = Vec::new();
    for folder in ["src", "tests", "benches"] {
        rust_files(&root.join(folder), &mut files);
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("docs/") {
            let cited: String = rest[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || matches!(c, '/' | '.' | '#' | '-' | '_'))
                .collect();
            rest = &rest[start + 5..];
            let Some((document, anchor)) = cited.split_once('#') else {
                continue;
            };
            checked += 1;
            let name = file.strip_prefix(root).unwrap().display();
            let Ok(markdown) = std::fs::read_to_string(root.join(document)) else {
                broken.push(format!("{name}: {cited}: no such document"));
                continue;
            };
            if !anchors(&markdown).contains(anchor) {
                broken.push(format!("{name}: {cited}: no heading or anchor `{anchor}`"));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} citations found: is the scan right?"
    );
    assert!(
        broken.is_empty(),
        "broken citations:\n{}",
        broken.join("\n")
    );
}

#[test]
fn anchors_follow_githubs_rules() {
    assert_eq!(slug(" `ocpoll run`: the daemon"), "ocpoll-run-the-daemon");
    assert_eq!(slug(" 5.1 Watermark mode"), "51-watermark-mode");
    let text = "# A\n## Retries\n## Retries\n```\n## Not a heading\n```\n<a id=\"x-y\"></a>\n";
    let found = anchors(text);
    let expected: BTreeSet<String> = ["a", "retries", "retries-1", "x-y"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(found, expected);
    assert_eq!(
        link_targets("[a](b.md#c) `[not](a-link)` [d](https://x.example)\n```\n[e](f)\n```\n"),
        ["b.md#c", "https://x.example"]
    );
    assert_eq!(without_comment("ocpoll tick   # poll"), "ocpoll tick   ");
    assert_eq!(without_comment("echo 'a # b' x"), "echo 'a # b' x");
}

// -------------------------------------------------------------------------------------------
// docs/events.md's test vector
// -------------------------------------------------------------------------------------------

fn hmac_base64(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    BASE64.encode(mac.finalize().into_bytes())
}

/// The vector as docs/events.md prints it, recomputed here from the contract's own words (not
/// with ocpoll's signing code): a receiver that copies these strings must be able to trust them.
#[test]
fn the_events_md_test_vector_is_right() {
    let text = read("docs/events.md");
    let section = &text[text.find("## Test vector").expect("a test vector section")..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 3)];
    let (blocks, prose) = fenced_blocks(section);
    let body = blocks
        .first()
        .and_then(|block| block.lines.first())
        .expect("the body in a fenced block");
    let stated: usize = prose
        .split("one line, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|number| number.parse().ok())
        .expect("\"Body, one line, N bytes\"");
    assert_eq!(body.len(), stated, "the body's stated length");
    // The inline code spans of the list, in order: key, header, id, timestamp, header, key,
    // header.
    let spans: Vec<&str> = prose.split('`').skip(1).step_by(2).collect();
    let [
        plain,
        elements,
        id,
        timestamp,
        standard,
        whsec,
        standard_whsec,
    ] = spans[..]
    else {
        panic!("the vector's list changed shape: {spans:?}");
    };
    let id = id.strip_prefix("webhook-id: ").expect("webhook-id");
    let timestamp = timestamp
        .strip_prefix("webhook-timestamp: ")
        .expect("webhook-timestamp");
    assert_eq!(
        elements,
        format!(
            "Elements-Webhook-Signature: sha256={}",
            hmac_base64(plain.as_bytes(), &[body.as_bytes()])
        )
    );
    let signed = |key: &[u8]| {
        let parts = [
            id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            body.as_bytes(),
        ];
        format!("webhook-signature: v1,{}", hmac_base64(key, &parts))
    };
    assert_eq!(standard, signed(plain.as_bytes()));
    let whsec_key = BASE64
        .decode(whsec.strip_prefix("whsec_").expect("a whsec_ key"))
        .expect("base64");
    assert_eq!(standard_whsec, signed(&whsec_key));
}
