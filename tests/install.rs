//! The operator's path (issue 14): the README's "Install" section, followed word by word in a
//! temporary root, leaves a layout in which the unit's `ExecStart` line reaches READY and the
//! cron line's command runs a tick; the unit passes `systemd-analyze verify`; the .deb holds
//! the same files in their system folders and its unit starts too.
//!
//! "In a temporary root" means every absolute path of a README command, of `ExecStart` and of
//! the cron line is taken below that root, and the commands run as the test's user: `sudo` is
//! dropped, and so are `-o`/`-g` owners and `useradd` (they need root; the service's user is
//! systemd's business). `cargo install` is the binary these tests were built with, and the
//! `systemctl` lines are what [`start_exec`] does by hand. Any other README command fails the
//! test, so a new install step has to be considered here.
//!
//! The .deb tests need a package built by `cargo deb` (`OCPOLL_DEB=path`, as `.ci/run` sets);
//! `OCPOLL_DEB_INSTALLED=1` says `.ci/run` installed it with `dpkg -i` on this machine, and the
//! installed files are checked in place. Without them, or without `systemd-analyze`, those
//! tests print why and pass.

use std::io::{ErrorKind, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const CHECKOUT: &str = env!("CARGO_MANIFEST_DIR");
const OCPOLL: &str = env!("CARGO_BIN_EXE_ocpoll");

/// Where systemd looks up an `ExecStart` program given without a folder (systemd.service(5)).
const SYSTEMD_SEARCH_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// How long the daemon may take to say READY before the test gives up on it. A safety net
/// against a hang, not a timing claim: READY comes in well under a second.
const PATIENCE: Duration = Duration::from_secs(60);

fn checkout_file(relative: &str) -> String {
    let path = Path::new(CHECKOUT).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `path` (absolute) below `root`; `/` itself is the machine.
fn under(root: &Path, path: &str) -> PathBuf {
    assert!(path.starts_with('/'), "{path} is not absolute");
    root.join(path.trim_start_matches('/'))
}

/// Each word of `line` that is an absolute path, moved below `root`.
fn rooted_words(root: &Path, line: &str) -> Vec<String> {
    line.split_whitespace()
        .map(|word| match word.starts_with('/') {
            true => under(root, word).display().to_string(),
            false => word.to_owned(),
        })
        .collect()
}

// -------------------------------------------------------------------------------------------
// The README's install section
// -------------------------------------------------------------------------------------------

/// The commands of the first `sh` block under "## Install".
fn readme_install_commands() -> Vec<String> {
    let readme = checkout_file("README.md");
    let section = readme
        .split("\n## ")
        .find(|section| section.starts_with("Install\n"))
        .expect("the README has an \"Install\" section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the Install section has an sh block");
    block
        .lines()
        .map(|line| line.split(" #").next().unwrap().trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect()
}

/// A root with what a Debian machine has before the install: the folders the README writes
/// into, systemd's own units (for `systemd-analyze verify --root`) and `kill` (the unit's
/// `ExecReload`).
fn debian_like_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for folder in [
        "usr/local/bin",
        "usr/bin",
        "bin",
        "etc/systemd/system",
        "var/lib",
    ] {
        std::fs::create_dir_all(root.path().join(folder)).unwrap();
    }
    root
}

/// Follows the README's install section in `root`, as the module doc says.
fn follow_readme_install(root: &Path) {
    let home = root.join("home/operator");
    for command in readme_install_commands() {
        let command = command.strip_prefix("sudo ").unwrap_or(&command);
        let program = command.split_whitespace().next().unwrap();
        match program {
            "cargo" => {
                assert_eq!(
                    command, "cargo install --locked --path .",
                    "an unknown step"
                );
                let bin = home.join(".cargo/bin");
                std::fs::create_dir_all(&bin).unwrap();
                std::fs::copy(OCPOLL, bin.join("ocpoll")).unwrap();
            }
            "useradd" => assert!(command.ends_with(" ocpoll"), "{command}"),
            "systemctl" => assert!(
                ["systemctl daemon-reload", "systemctl enable --now ocpoll"].contains(&command),
                "{command}"
            ),
            "install" => run_install(root, &home, command),
            _ => {
                panic!("the README's install section has a step this test does not know: {command}")
            }
        }
    }
}

/// Runs an `install` line through `sh` (for `~` and globs) in the checkout, its absolute paths
/// below `root` and its `-o`/`-g` owners dropped.
fn run_install(root: &Path, home: &Path, command: &str) {
    let mut words = Vec::new();
    let mut rooted = rooted_words(root, command).into_iter();
    while let Some(word) = rooted.next() {
        if word == "-o" || word == "-g" {
            rooted.next();
            continue;
        }
        words.push(word);
    }
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(words.join(" "))
        .current_dir(CHECKOUT)
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// -------------------------------------------------------------------------------------------
// The unit
// -------------------------------------------------------------------------------------------

/// The unit's `KEY=value` lines for `key`, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .collect()
}

/// Checks `unit` with `systemd-analyze verify` against the files in `root` (`/` for the
/// machine). `None` when the tool or systemd's units are missing, after saying so.
fn systemd_verify(root: &Path, unit: &Path) -> Option<Output> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze is not installed (Debian: apt-get install systemd)");
        return None;
    }
    let mut command = Command::new("systemd-analyze");
    command.args(["verify", "--man=no", "--generators=no"]);
    if root != Path::new("/") {
        // systemd's own units (sysinit.target...) are needed to load ours; `kill` for ExecReload.
        let units = Path::new("/usr/lib/systemd/system");
        let kill = Path::new("/bin/kill");
        if !units.is_dir() || !kill.exists() {
            eprintln!("SKIPPED: verifying needs /usr/lib/systemd/system and /bin/kill");
            return None;
        }
        let target = root.join("usr/lib/systemd/system");
        if !target.join("sysinit.target").exists() {
            std::fs::create_dir_all(&target).unwrap();
            // Merged with what is there: a package's own unit is not replaced.
            let copied = Command::new("cp")
                .args(["-a", "--no-clobber"])
                .arg(units.join("."))
                .arg(&target)
                .status()
                .unwrap();
            assert!(copied.success(), "copying systemd's units");
        }
        if !root.join("bin/kill").exists() {
            std::fs::create_dir_all(root.join("bin")).unwrap();
            std::fs::copy(kill, root.join("bin/kill")).unwrap();
        }
        command.arg(format!("--root={}", root.display()));
    }
    Some(command.arg(unit).output().unwrap())
}

fn assert_verified(output: &Output) {
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The unit's `ExecStart` program and arguments in `root`: the program looked up on systemd's
/// search path when it has no folder, every absolute path below `root`.
fn exec_start(root: &Path, unit: &str) -> (PathBuf, Vec<String>) {
    let lines = unit_values(unit, "ExecStart");
    assert_eq!(lines.len(), 1, "one ExecStart line");
    assert!(
        !lines[0].contains(['"', '\'', '$', '%']),
        "ExecStart has no quoting or substitution: this test splits it on spaces"
    );
    let mut words = rooted_words(root, &lines[0]);
    let program = words.remove(0);
    let program = match program.contains('/') {
        true => PathBuf::from(program),
        false => SYSTEMD_SEARCH_PATH
            .iter()
            .map(|folder| under(root, folder).join(&program))
            .find(|path| path.is_file())
            .unwrap_or_else(|| panic!("{program} is not on systemd's search path in {root:?}")),
    };
    (program, words)
}

/// The notification socket a test owns, as systemd's `NOTIFY_SOCKET`.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _folder: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        NotifySocket {
            socket,
            path,
            _folder: folder,
        }
    }

    /// The next datagram containing `line` (a line of its own), or a panic after [`PATIENCE`].
    fn wait_for(&self, line: &str, child: &mut Child) -> String {
        let mut buffer = [0u8; 4096];
        loop {
            match self.socket.recv(&mut buffer) {
                Ok(size) => {
                    let message = String::from_utf8_lossy(&buffer[..size]).into_owned();
                    if message.lines().any(|l| l == line) {
                        return message;
                    }
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    let _ = child.kill();
                    let mut log = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        let _ = stderr.read_to_string(&mut log);
                    }
                    panic!("no {line} ({error}); the daemon said: {log}");
                }
            }
        }
    }
}

/// Starts the unit's `ExecStart` as systemd would (a bare environment, `/` below `root` as
/// the working folder, `NOTIFY_SOCKET`, the `StateDirectory` created), waits for READY=1,
/// stops it with SIGTERM and expects a graceful exit 0 with JSON log lines.
fn start_exec(root: &Path, unit: &str, user: Option<(u32, u32)>, env: &[(&str, &Path)]) -> String {
    for folder in unit_values(unit, "StateDirectory") {
        std::fs::create_dir_all(under(root, &format!("/var/lib/{folder}"))).unwrap();
    }
    let (program, args) = exec_start(root, unit);
    let notify = NotifySocket::bind();
    let mut command = Command::new(&program);
    if let Some((uid, gid)) = user {
        // The socket is the test's; the service's user must be able to send to it.
        std::fs::set_permissions(&notify.path, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(
            notify.path.parent().unwrap(),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        command.uid(uid).gid(gid);
    }
    let mut child = command
        .args(&args)
        .env_clear()
        .envs(env.iter().copied())
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("NOTIFY_SOCKET", &notify.path)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let ready = notify.wait_for("READY=1", &mut child);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    notify.wait_for("STOPPING=1", &mut child);
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert_json_lines(&log);
    ready
}

/// `--log-format json`: every line of the log is a JSON object, errors included.
fn assert_json_lines(log: &str) {
    assert!(!log.trim().is_empty(), "the daemon logged nothing");
    for line in log.lines().filter(|line| !line.is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
}

#[test]
fn the_readme_install_gives_a_unit_that_verifies_and_reaches_ready() {
    let root = debian_like_root();
    follow_readme_install(root.path());
    let unit_path = root.path().join("etc/systemd/system/ocpoll.service");
    let unit = std::fs::read_to_string(&unit_path).expect("the README installs the unit");
    // The README puts the binary where the unit looks for it, and the unit's config exists.
    let (program, _) = exec_start(root.path(), &unit);
    assert_eq!(program, root.path().join("usr/local/bin/ocpoll"));
    assert!(root.path().join("etc/ocpoll/config.toml").is_file());
    for page in ["man1/ocpoll-run.1", "man5/ocpoll-instance.5"] {
        let path = root.path().join("usr/local/share/man").join(page);
        assert!(path.is_file(), "{page} is not installed");
    }

    if let Some(output) = systemd_verify(root.path(), &unit_path) {
        assert_verified(&output);
        // The check can fail: the same unit naming a program that is not installed does.
        let broken = root.path().join("etc/systemd/system/ocpoll-broken.service");
        std::fs::write(
            &broken,
            unit.replace("ExecStart=ocpoll ", "ExecStart=ocpoll-gone "),
        )
        .unwrap();
        let output = systemd_verify(root.path(), &broken).unwrap();
        assert!(
            !output.status.success(),
            "a unit without its program verified"
        );
    }
    let ready = start_exec(root.path(), &unit, None, &[]);
    assert!(
        ready.contains("STATUS=0 polled instances (0 loaded)"),
        "{ready}"
    );
}

/// An instance file in the installed folder reads its secrets as the unit's comment shows,
/// from systemd's credentials folder (`LoadCredential=` sets `CREDENTIALS_DIRECTORY`): the
/// daemon polls it. Without the variable the instance cannot run and nothing is polled.
#[test]
fn an_instance_reads_its_secrets_from_systemd_credentials() {
    let root = debian_like_root();
    follow_readme_install(root.path());
    let unit = checkout_file("contrib/ocpoll.service");
    assert!(
        unit.contains("#LoadCredential=crm-api-key:"),
        "the unit shows LoadCredential"
    );
    std::fs::write(
        root.path().join("etc/ocpoll/instances.d/my-crm.json"),
        CREDENTIAL_INSTANCE,
    )
    .unwrap();
    let credentials = tempfile::tempdir().unwrap();
    std::fs::write(credentials.path().join("crm-api-key"), "api-key-value\n").unwrap();
    std::fs::write(
        credentials.path().join("crm-signature-key"),
        "signature-key-value",
    )
    .unwrap();

    let ready = start_exec(
        root.path(),
        &unit,
        None,
        &[("CREDENTIALS_DIRECTORY", credentials.path())],
    );
    assert!(
        ready.contains("STATUS=1 polled instances (1 loaded)"),
        "{ready}"
    );
    let ready = start_exec(root.path(), &unit, None, &[]);
    assert!(ready.contains("STATUS=0 polled instances"), "{ready}");
}

/// An instance whose secrets are systemd credentials; its provider and receiver are closed
/// loopback ports (a poll fails, which this test does not look at).
const CREDENTIAL_INSTANCE: &str = r#"{
  "element": { "key": "my-crm" },
  "name": "my-crm",
  "configuration": {
    "base.url": "http://127.0.0.1:1/v2",
    "api.key": "${file:$CREDENTIALS_DIRECTORY/crm-api-key}",
    "event.notification.enabled": true,
    "event.notification.callback.url": "http://127.0.0.1:1/hook",
    "event.notification.signature.key": "${file:$CREDENTIALS_DIRECTORY/crm-signature-key}",
    "event.poller.refresh_interval": 5,
    "event.poller.configuration": {
      "contacts": {
        "url": "/contacts?updated_since=${date:yyyy-MM-dd'T'HH:mm:ssXXX}",
        "idField": "id",
        "datesConfiguration": {
          "updatedDateField": "updated_at",
          "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ssXXX"
        }
      }
    }
  }
}"#;

/// What the issue found: without the config file the unit names, the service exits 78 (which
/// the unit does not restart), and says why in JSON like the rest of its log.
#[test]
fn without_the_config_file_the_unit_exits_78_with_a_json_error() {
    let root = debian_like_root();
    follow_readme_install(root.path());
    std::fs::remove_file(root.path().join("etc/ocpoll/config.toml")).unwrap();
    let unit = checkout_file("contrib/ocpoll.service");
    assert!(unit_values(&unit, "RestartPreventExitStatus")[0].contains("78"));
    let (program, args) = exec_start(root.path(), &unit);
    let output = Command::new(program)
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{log}");
    assert_json_lines(&log);
    assert!(log.contains("cannot read config file"), "{log}");
}

// -------------------------------------------------------------------------------------------
// The cron line
// -------------------------------------------------------------------------------------------

/// The cron file's variables and its one job: (`SHELL`, `PATH`, user, command).
fn cron_job() -> (String, String, String, String) {
    let cron = checkout_file("contrib/ocpoll.cron");
    let value = |name: &str| {
        cron.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("the cron file sets {name}"))
            .to_owned()
    };
    let jobs: Vec<&str> = cron
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty() && !line.contains('='))
        .collect();
    assert_eq!(jobs.len(), 1, "one job: {jobs:?}");
    let mut fields = jobs[0].splitn(7, ' ');
    let schedule: Vec<&str> = fields.by_ref().take(5).collect();
    assert_eq!(schedule, ["*/5", "*", "*", "*", "*"]);
    let user = fields.next().unwrap().to_owned();
    let command = fields.next().unwrap().to_owned();
    (value("SHELL"), value("PATH"), user, command)
}

/// The cron line's command, as written, in the README's layout: a tick that creates the state
/// and hands its output to `logger` (a stand-in that keeps what it is given).
#[test]
fn the_cron_line_runs_a_tick_in_the_readme_layout() {
    let root = debian_like_root();
    follow_readme_install(root.path());
    let (shell, path, user, command) = cron_job();
    assert_eq!(user, "ocpoll", "the user the README creates");
    let logged = root.path().join("logger.out");
    let logger = root.path().join("usr/bin/logger");
    std::fs::write(
        &logger,
        format!(
            "#!/bin/sh\necho \"logger $*\" >> {0}\nexec /bin/cat >> {0}\n",
            logged.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path: Vec<String> = path
        .split(':')
        .map(|p| under(root.path(), p).display().to_string())
        .collect();

    let output = Command::new(&shell)
        .arg("-c")
        .arg(rooted_words(root.path(), &command).join(" "))
        .env_clear()
        .env("PATH", path.join(":"))
        .current_dir(root.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let logged = std::fs::read_to_string(&logged).expect("logger ran");
    assert!(logged.starts_with("logger -t ocpoll-tick\n"), "{logged}");
    assert!(!logged.contains("error"), "{logged}");
    assert!(
        root.path().join("var/lib/ocpoll/state.db").is_file(),
        "{logged}"
    );
}

// -------------------------------------------------------------------------------------------
// The .deb
// -------------------------------------------------------------------------------------------

/// Files the package must hold, in their system folders.
const DEB_FILES: &[&str] = &[
    "./usr/bin/ocpoll",
    "./usr/lib/systemd/system/ocpoll.service",
    "./usr/share/man/man1/ocpoll.1.gz",
    "./usr/share/man/man1/ocpoll-run.1.gz",
    "./usr/share/man/man5/ocpoll-instance.5.gz",
    "./usr/share/bash-completion/completions/ocpoll",
    "./usr/share/zsh/vendor-completions/_ocpoll",
    "./usr/share/fish/vendor_completions.d/ocpoll.fish",
    "./etc/ocpoll/config.toml",
    "./usr/share/doc/ocpoll/examples/ocpoll.cron",
];

fn built_deb() -> Option<PathBuf> {
    match std::env::var_os("OCPOLL_DEB") {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            eprintln!("SKIPPED: OCPOLL_DEB is not set (.ci/run builds the .deb and sets it)");
            None
        }
    }
}

/// `ocpoll validate` with the package's own configuration (found below `root`).
fn validate_with(root: &Path, program: &Path) -> Output {
    let run = || {
        Command::new(program)
            .arg("validate")
            .arg("--config")
            .arg(under(root, "/etc/ocpoll/config.toml"))
            .arg("--instances")
            .arg(under(root, "/etc/ocpoll/instances.d"))
            .env_clear()
            .output()
    };
    match run() {
        Ok(output) => output,
        // Seen once in CI: "Exec format error" for the binary dpkg-deb had just extracted,
        // and never again in the runs after (the file was a complete ELF when looked at).
        // Say what the file was, then try once more; a binary that is really broken fails.
        Err(error) if error.raw_os_error() == Some(libc::ENOEXEC) => {
            let size = std::fs::metadata(program).map(|m| m.len());
            eprintln!(
                "exec of {} failed ({error}); its size: {size:?}; once more",
                program.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
            run().unwrap()
        }
        Err(error) => panic!("cannot run {}: {error}", program.display()),
    }
}

#[test]
fn the_deb_holds_the_files_and_its_unit_starts_from_them() {
    let Some(deb) = built_deb() else { return };
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(listing.status.success(), "{listing:?}");
    let listing = String::from_utf8_lossy(&listing.stdout);
    for file in DEB_FILES {
        assert!(
            listing.lines().any(|line| line.ends_with(file)),
            "{file} is not in the package:\n{listing}"
        );
    }
    let control = Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .output()
        .unwrap();
    let control = String::from_utf8_lossy(&control.stdout);
    for script in ["postinst", "postrm", "conffiles"] {
        assert!(control.contains(script), "no {script}:\n{control}");
    }

    let root = debian_like_root();
    let extracted = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path())
        .status()
        .unwrap();
    assert!(extracted.success());
    // What the package's postinst makes (a user and folders it cannot ship empty).
    std::fs::create_dir_all(root.path().join("etc/ocpoll/instances.d")).unwrap();
    let program = root.path().join("usr/bin/ocpoll");
    let output = validate_with(root.path(), &program);
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    let unit_path = root.path().join("usr/lib/systemd/system/ocpoll.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert_eq!(
        unit,
        checkout_file("contrib/ocpoll.service"),
        "the package ships contrib's unit"
    );
    if let Some(output) = systemd_verify(root.path(), &unit_path) {
        assert_verified(&output);
    }
    start_exec(root.path(), &unit, None, &[]);
}

/// After `dpkg -i` (`.ci/run`, `OCPOLL_DEB_INSTALLED=1`): the user and folders the maintainer
/// scripts make, `ocpoll validate` on the installed configuration, and the installed unit.
#[test]
fn the_installed_deb_validates_and_its_unit_starts() {
    if std::env::var_os("OCPOLL_DEB_INSTALLED").is_none() {
        eprintln!(
            "SKIPPED: OCPOLL_DEB_INSTALLED is not set (.ci/run installs the .deb and sets it)"
        );
        return;
    }
    let root = Path::new("/");
    let user = Command::new("getent")
        .args(["passwd", "ocpoll"])
        .output()
        .unwrap();
    assert!(user.status.success(), "the package made no user ocpoll");
    let passwd = String::from_utf8_lossy(&user.stdout);
    assert!(passwd.contains(":/var/lib/ocpoll:"), "{passwd}");
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    let ids = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    // As the unit's user, when this test may become it: it must read the configuration and
    // write the state folder the package made.
    let as_user = (unsafe { libc::geteuid() } == 0).then_some(ids);
    assert!(Path::new("/etc/ocpoll/instances.d").is_dir());
    let state = std::fs::metadata("/var/lib/ocpoll").expect("the state folder");
    assert_eq!(state.permissions().mode() & 0o777, 0o700);

    let output = validate_with(root, Path::new("/usr/bin/ocpoll"));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let unit_path = Path::new("/usr/lib/systemd/system/ocpoll.service");
    if let Some(output) = systemd_verify(root, unit_path) {
        assert_verified(&output);
    }
    start_exec(
        root,
        &std::fs::read_to_string(unit_path).unwrap(),
        as_user,
        &[],
    );
}
