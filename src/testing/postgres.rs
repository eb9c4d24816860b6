//! A real PostgreSQL server for tests (issue 18, the PostgreSQL state backend), one per test
//! process: [`server`] starts it on first use and it stops, its folder deleted, when the process
//! exits, however it exits. Never a mock: the store is tested against the server it will run on.
//!
//! A test that needs PostgreSQL reads (in `tests/` as in the library's unit tests):
//!
//! ```text
//! let Some(pg) = ocpoll::testing::postgres::server() else { return };
//! let url = pg.fresh_database(); // postgres://ocpoll:PASSWORD@127.0.0.1:PORT/t3_my_test
//! // ... run the store, or the binary with `--state <url>` ...
//! let db = ocpoll::testing::postgres::database_name(&url);
//! assert_eq!(pg.psql(db, "SELECT count(*) FROM some_table"), "2");
//! ```
//!
//! What this module owns and guarantees:
//!
//! - **Finding PostgreSQL.** `pg_ctl` and `initdb` on `PATH`, else the highest version in
//!   `/usr/lib/postgresql/*/bin` (Debian and Ubuntu install there, off `PATH`). `psql` is taken
//!   from the folder `initdb` really is in (symlinks followed), so Debian's `pg_wrapper` in
//!   `/usr/bin` is not involved.
//! - **Skip or fail.** Without those programs [`server`] returns `None` and the process prints one
//!   line to stderr saying so, once. With `OCPOLL_REQUIRE_POSTGRES=1` (CI sets it) it panics
//!   instead, so a skipped PostgreSQL test cannot pass CI. A server that is installed but does
//!   not start panics in every test that asks for it, with the tail of its log: a failure, not a
//!   skip.
//! - **The server.** `initdb` into a fresh folder under the temporary directory; it listens on
//!   127.0.0.1 only, on a free port, with its unix socket inside that folder. TCP needs the
//!   password (scram-sha-256) of the generated superuser role `ocpoll`, so a store under test goes
//!   through password handling as it does in production. `fsync`, `synchronous_commit` and
//!   `full_page_writes` are off (only a crash of the machine could lose the test data), parallel
//!   query is off (a container's small `/dev/shm`), `max_connections` is 300 (several daemons and
//!   parallel tests). As root (CI), `initdb`, `pg_ctl` and the server run as the `postgres` user,
//!   which owns the folder: PostgreSQL refuses to run as root. It has TLS when the `openssl`
//!   program can make a CA and a certificate for 127.0.0.1 (it is part of Debian's PostgreSQL
//!   install), so the tests' default `sslmode=prefer` connections go through rustls and
//!   [`TestServer::tls_root`] lets a test ask for `verify-full`.
//! - **Lifetime.** Rust tests have no global teardown, so the server is tied to the process by a
//!   watchdog, started before `initdb`: `sh` blocked reading a pipe whose only write end this
//!   process holds (close-on-exec, so no child inherits it). When the process exits, normally,
//!   by a panic or by SIGKILL, the kernel closes that end, the read returns, and the watchdog
//!   stops the server (`pg_ctl stop -m immediate`) and deletes the folder. The watchdog and the
//!   server are in their own process groups, so Ctrl-C on `cargo test` reaches neither before
//!   the cleanup. `tests::the_server_goes_away_with_its_process` checks both kinds of exit.
//! - **Databases.** Tests share the server and run in parallel: each takes its own empty database
//!   from [`TestServer::fresh_database`] (named after the test's thread, for reading the log).
//!   [`TestServer::psql`] runs SQL through the `psql` client, so this module needs no Rust
//!   PostgreSQL client (those are the store's dependencies).

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Set to `1` to make a missing PostgreSQL a panic rather than a skip (CI does).
pub const REQUIRE_ENV: &str = "OCPOLL_REQUIRE_POSTGRES";

/// The superuser role `initdb` creates; its password is generated per server.
const USER: &str = "ocpoll";
/// The only address the server listens on.
const HOST: &str = "127.0.0.1";
/// Where Debian and Ubuntu install each major version's programs (`<root>/<version>/bin`).
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// Starts the server may take on a free port that someone else took meanwhile.
const START_ATTEMPTS: usize = 5;

/// Lines `postgresql.conf` gets after `initdb`'s own (later lines win); the socket folder and the
/// port are added per server.
const SETTINGS: &str = "
# ocpoll::testing::postgres: a throwaway server for tests
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_parallel_workers_per_gather = 0
max_connections = 300
";

/// The watchdog: `$1` pg_ctl, `$2` the data folder, `$3` the server's folder. `read` returns at
/// end of file, when the test process (the only writer) has exited.
const WATCHDOG: &str = r#"trap '' HUP INT
read -r _
if [ -f "$2/postmaster.pid" ]; then "$1" stop -D "$2" -m immediate -s -w -t 60; fi
rm -rf "$3"
"#;

/// The PostgreSQL server of this test process, started on first use; `None` (after one line on
/// stderr) when PostgreSQL is not installed and `OCPOLL_REQUIRE_POSTGRES` is not `1`.
///
/// # Panics
///
/// When the server is installed but fails to start (with the tail of its log), and when
/// PostgreSQL is missing but `OCPOLL_REQUIRE_POSTGRES=1`.
pub fn server() -> Option<&'static TestServer> {
    static SERVER: OnceLock<Result<TestServer, Unavailable>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(server) => Some(server),
        Err(Unavailable::Missing(why)) if required() => {
            panic!("{REQUIRE_ENV}=1 but {why}")
        }
        Err(Unavailable::Missing(_)) => None,
        Err(Unavailable::Failed(why)) => panic!("{why}"),
    }
}

/// A running PostgreSQL server on 127.0.0.1 (see the module's documentation).
pub struct TestServer {
    port: u16,
    password: String,
    folder: PathBuf,
    /// The CA that signed the server's certificate (for 127.0.0.1 and localhost), when it has
    /// TLS.
    tls_root: Option<PathBuf>,
    psql: PathBuf,
    startup: Duration,
    /// Never dropped (it lives in a static); its stdin is the pipe whose closing at exit stops
    /// the server.
    _watchdog: Child,
}

impl TestServer {
    /// Always `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser role, `ocpoll`.
    pub fn user(&self) -> &str {
        USER
    }

    /// The role's password, generated for this server (hex, nothing to escape in a URL).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The certificate of the CA that signed the server's (valid for 127.0.0.1 and localhost),
    /// for `sslrootcert=`; `None` when the server runs without TLS (no `openssl` to make one).
    pub fn tls_root(&self) -> Option<&Path> {
        self.tls_root.as_deref()
    }

    /// How long [`server`] took to start this server (`initdb`, start, first connection).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The server's log, for a test that wants to show it when it fails. Deleted with the server.
    pub fn log_path(&self) -> PathBuf {
        self.folder.join("postgres.log")
    }

    /// `postgres://ocpoll:PASSWORD@127.0.0.1:PORT/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{USER}:{}@{HOST}:{}/{db}",
            self.password, self.port
        )
    }

    /// `postgres://ocpoll@127.0.0.1:PORT/<db>`: for a test of a missing or separately given
    /// password (`PGPASSWORD`, a password file).
    pub fn url_without_password(&self, db: &str) -> String {
        format!("postgres://{USER}@{HOST}:{}/{db}", self.port)
    }

    /// Creates a new empty database and returns its [`url`](Self::url). The name is unique in
    /// this server (`t<n>_<test name>`); [`database_name`] takes it back out of the URL.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let thread = std::thread::current();
        // Unit tests' threads are named after the test's path: keep its last segment.
        let test = thread
            .name()
            .unwrap_or("")
            .rsplit("::")
            .next()
            .unwrap_or("");
        let mut name = format!("t{n}_");
        name.extend(test.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        }));
        name.truncate(63); // PostgreSQL's limit on a name, in bytes; all ASCII here
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(&name)
    }

    /// Runs `sql` (one or more statements; the output is the last one's) in database `db` with
    /// `psql` over TCP with the password, and returns its output without the final newline:
    /// rows one per line, columns separated by `|`, no header (`psql -A -t`).
    ///
    /// # Panics
    ///
    /// When psql fails (the statement, the connection), with psql's message.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql -d {db} -c {sql:?} failed: {e}"))
    }

    /// [`psql`](Self::psql) for a statement that may fail: `Err` holds psql's message.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        run_psql(&self.psql, self.port, &self.password, db, sql)
    }
}

/// The database name at the end of a URL from [`TestServer::fresh_database`].
pub fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// Why there is no server: not installed (a skip unless required), or it failed (a panic).
enum Unavailable {
    Missing(String),
    Failed(String),
}

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The programs a server needs, from one installation.
struct Programs {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
}

fn start() -> Result<TestServer, Unavailable> {
    let began = Instant::now();
    let search_path = std::env::var_os("PATH").unwrap_or_default();
    let Some(programs) = find_programs(&search_path, Path::new(DEBIAN_ROOT)) else {
        let why = format!(
            "PostgreSQL tests need pg_ctl and initdb (on PATH or in {DEBIAN_ROOT}/*/bin; \
             Debian: apt-get install postgresql)"
        );
        if !required() {
            // Straight to stderr: `eprintln!` inside a test is captured and shown only if the
            // test fails, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {why}; set {REQUIRE_ENV}=1 to make this an error"
            );
        }
        return Err(Unavailable::Missing(why));
    };
    let fail = |what: String| Unavailable::Failed(format!("PostgreSQL test server: {what}"));
    let owner = server_owner().map_err(fail)?;
    let folder = make_folder(owner).map_err(fail)?;
    // From here on the folder is the watchdog's to delete, whatever happens to this process.
    let watchdog = spawn_watchdog(&programs.pg_ctl, &folder, owner).map_err(fail)?;
    let data = folder.join("data");
    let log = folder.join("postgres.log");

    let password = random_password().map_err(fail)?;
    let password_file = folder.join("password");
    fs::write(&password_file, &password)
        .and_then(|()| chown(&password_file, owner))
        .map_err(|e| fail(format!("writing {}: {e}", password_file.display())))?;
    let mut initdb = as_owner(&programs.initdb, &folder, owner);
    initdb
        .arg("-D")
        .arg(&data)
        .arg(format!("--pwfile={}", password_file.display()));
    initdb.args([
        "-U",
        USER,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
    ]);
    initdb.args(["--no-sync", "--encoding=UTF8", "--locale=C"]);
    run(&mut initdb).map_err(|e| fail(format!("initdb in {}: {e}", folder.display())))?;
    let _ = fs::remove_file(&password_file);

    let socket_folder = folder.to_string_lossy().replace('\'', "''");
    let mut settings = format!("{SETTINGS}unix_socket_directories = '{socket_folder}'\n");
    // TLS when `openssl` can make a certificate: every `sslmode=prefer` connection of the tests
    // (the default) then goes through rustls, and `tls_root()` lets a test verify the server.
    let tls_root = match make_certificates(&folder, owner) {
        Ok((root, settings_lines)) => {
            settings.push_str(&settings_lines);
            Some(root)
        }
        Err(why) => {
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL test server without TLS: {why}"
            );
            None
        }
    };
    fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut conf| conf.write_all(settings.as_bytes()))
        .map_err(|e| fail(format!("writing postgresql.conf: {e}")))?;

    let port = start_server(&programs.pg_ctl, &folder, &data, &log, owner).map_err(fail)?;
    // The first connection, as the tests make them: TCP with the password.
    run_psql(&programs.psql, port, &password, "postgres", "SELECT 1").map_err(|e| {
        fail(format!(
            "the started server refuses connections: {e}\n{}",
            log_tail(&log, 0)
        ))
    })?;
    Ok(TestServer {
        port,
        password,
        folder,
        tls_root,
        psql: programs.psql,
        startup: began.elapsed(),
        _watchdog: watchdog,
    })
}

/// A CA and a server certificate signed by it (ECDSA P-256, valid two days, for 127.0.0.1 and
/// localhost), made with the `openssl` program into `folder/tls`: the CA's certificate path and
/// the `postgresql.conf` lines that turn TLS on.
fn make_certificates(
    folder: &Path,
    owner: Option<(u32, u32)>,
) -> Result<(PathBuf, String), String> {
    let tls = folder.join("tls");
    fs::create_dir(&tls).map_err(|e| format!("{}: {e}", tls.display()))?;
    let path = |name: &str| tls.join(name).to_string_lossy().into_owned();
    fs::write(
        tls.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n",
    )
    .map_err(|e| e.to_string())?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<String>; 3] = [
        ["req", "-x509"]
            .iter()
            .chain(&ec)
            .map(|s| s.to_string())
            .chain(["-days", "2", "-subj", "/CN=ocpoll test CA", "-keyout"].map(String::from))
            .chain([path("ca.key"), "-out".into(), path("ca.pem")])
            .collect(),
        ["req"]
            .iter()
            .chain(&ec)
            .map(|s| s.to_string())
            .chain(["-subj", "/CN=localhost", "-keyout"].map(String::from))
            .chain([path("server.key"), "-out".into(), path("server.csr")])
            .collect(),
        ["x509", "-req", "-days", "2", "-in"]
            .map(String::from)
            .into_iter()
            .chain([
                path("server.csr"),
                "-CA".into(),
                path("ca.pem"),
                "-CAkey".into(),
            ])
            .chain([path("ca.key"), "-CAcreateserial".into(), "-out".into()])
            .chain([path("server.pem"), "-extfile".into(), path("server.ext")])
            .collect(),
    ];
    for args in steps {
        let mut openssl = Command::new("openssl");
        openssl.args(&args);
        run(&mut openssl).map_err(|e| format!("openssl {}: {e}", args[0]))?;
    }
    // The server reads its key as its own user, and refuses one others can read.
    let key = tls.join("server.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
    for file in [&tls, &key, &tls.join("server.pem")] {
        chown(file, owner).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let quote = |path: String| path.replace('\'', "''");
    let lines = format!(
        "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
        quote(path("server.pem")),
        quote(path("server.key"))
    );
    Ok((tls.join("ca.pem"), lines))
}

/// `pg_ctl start` on a free port, trying another port when the chosen one was taken between
/// choosing and binding. Returns the port.
fn start_server(
    pg_ctl: &Path,
    folder: &Path,
    data: &Path,
    log: &Path,
    owner: Option<(u32, u32)>,
) -> Result<u16, String> {
    for attempt in 1..=START_ATTEMPTS {
        let port = std::net::TcpListener::bind((HOST, 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("finding a free port on {HOST}: {e}"))?
            .port();
        let log_start = fs::metadata(log).map_or(0, |m| m.len());
        let mut pg_ctl = as_owner(pg_ctl, folder, owner);
        pg_ctl
            .args(["start", "-w", "-t", "60", "-s", "-D"])
            .arg(data);
        pg_ctl
            .arg("-l")
            .arg(log)
            .args(["-o", &format!("-p {port}")]);
        let Err(e) = run(&mut pg_ctl) else {
            return Ok(port);
        };
        let tail = log_tail(log, log_start);
        if attempt < START_ATTEMPTS && tail.contains("could not bind") {
            continue;
        }
        return Err(format!(
            "pg_ctl start failed: {e}\nits log ({}, deleted with the folder) ended with:\n{tail}",
            log.display()
        ));
    }
    unreachable!("the last attempt returns")
}

fn run_psql(psql: &Path, port: u16, password: &str, db: &str, sql: &str) -> Result<String, String> {
    let mut command = Command::new(psql);
    // No PG* variable of the developer's (PGSERVICE, PGSSLMODE, PGOPTIONS...) applies.
    let inherited: Vec<OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.as_encoded_bytes().starts_with(b"PG"))
        .collect();
    for name in inherited {
        command.env_remove(name);
    }
    command
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-w",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            HOST,
        ])
        .args(["-p", &port.to_string(), "-U", USER, "-d", db, "-c", sql]);
    let out = run(&mut command)?;
    Ok(out.strip_suffix('\n').unwrap_or(&out).to_owned())
}

/// Runs a command to its end; its stdout, or why it failed with what it printed.
fn run(command: &mut Command) -> Result<String, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{program} {}: {}{}",
        out.status,
        stderr.trim_end(),
        stdout.trim_end()
    ))
}

/// A command that runs as the server's owner (see [`server_owner`]) in its folder.
fn as_owner(program: &Path, folder: &Path, owner: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    command.current_dir(folder);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

/// Who runs PostgreSQL: `None` for this process's user, or the `postgres` user's uid and gid
/// when this process is root (PostgreSQL refuses root).
fn server_owner() -> Result<Option<(u32, u32)>, String> {
    let euid = match fs::metadata("/proc/self") {
        Ok(meta) => meta.uid(),
        Err(_) => id(&["-u"])?,
    };
    if euid != 0 {
        return Ok(None);
    }
    let lookup = || Ok::<_, String>((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?));
    lookup().map(Some).map_err(|e| {
        format!(
            "the tests run as root, which PostgreSQL refuses, and there is no `postgres` user to \
             run it as (Debian's postgresql package creates it): {e}"
        )
    })
}

fn id(args: &[&str]) -> Result<u32, String> {
    let out = run(Command::new("id").args(args))?;
    out.trim()
        .parse()
        .map_err(|e| format!("id {}: {out:?}: {e}", args.join(" ")))
}

/// A new folder for the server, private to its owner; the socket is in it, so its path is short.
fn make_folder(owner: Option<(u32, u32)>) -> Result<PathBuf, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let base = std::env::temp_dir();
    let folder = base.join(format!("ocpoll-pg-{}-{nanos:09}", std::process::id()));
    fs::create_dir(&folder)
        .and_then(|()| fs::set_permissions(&folder, fs::Permissions::from_mode(0o700)))
        .and_then(|()| chown(&folder, owner))
        .map_err(|e| format!("creating {}: {e}", folder.display()))?;
    Ok(folder)
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

/// Starts the watchdog (see the module's documentation) as the server's owner: it runs
/// `pg_ctl stop`, which refuses root, and deletes the owner's folder.
fn spawn_watchdog(
    pg_ctl: &Path,
    folder: &Path,
    owner: Option<(u32, u32)>,
) -> Result<Child, String> {
    let mut sh = as_owner(Path::new("/bin/sh"), Path::new("/"), owner);
    sh.arg("-c").arg(WATCHDOG).arg("ocpoll-postgres-watchdog");
    sh.arg(pg_ctl).arg(folder.join("data")).arg(folder);
    sh.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    sh.spawn()
        .map_err(|e| format!("starting the watchdog (/bin/sh): {e}"))
}

fn random_password() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(hex::encode(bytes))
}

/// The last lines the server logged after byte `from` (where an attempt began).
fn log_tail(log: &Path, from: u64) -> String {
    let Ok(file) = fs::File::open(log) else {
        return format!("({} is missing)", log.display());
    };
    let mut reader = BufReader::new(file);
    let _ = std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(from));
    let lines: Vec<String> = reader.lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `pg_ctl` and `initdb` from one folder: the first on `search_path` that has both, else the
/// highest version under `debian_root` (`<version>/bin`). `psql` beside them, else on the path.
fn find_programs(search_path: &std::ffi::OsStr, debian_root: &Path) -> Option<Programs> {
    let on_path = std::env::split_paths(search_path).find_map(|dir| {
        let initdb = dir.join("initdb");
        let pg_ctl = dir.join("pg_ctl");
        (initdb.is_file() && pg_ctl.is_file()).then_some((initdb, pg_ctl))
    });
    let (initdb, pg_ctl) = match on_path {
        Some(found) => found,
        None => {
            let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(debian_root)
                .ok()?
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let name = entry.file_name().into_string().ok()?;
                    let version = name
                        .split('.')
                        .map(|part| part.parse().ok())
                        .collect::<Option<_>>()?;
                    let bin = entry.path().join("bin");
                    (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
                        .then_some((version, bin))
                })
                .collect();
            versions.sort();
            let (_, bin) = versions.pop()?;
            (bin.join("initdb"), bin.join("pg_ctl"))
        }
    };
    // Symlinks in /usr/local/bin and the like lead to the installation's own folder.
    let real_bin = fs::canonicalize(&initdb).ok()?.parent()?.to_path_buf();
    let psql = Some(real_bin.join("psql"))
        .filter(|psql| psql.is_file())
        .or_else(|| {
            std::env::split_paths(search_path)
                .map(|dir| dir.join("psql"))
                .find(|psql| psql.is_file())
        })?;
    Some(Programs {
        initdb,
        pg_ctl,
        psql,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_fresh_databases_are_distinct() {
        let Some(pg) = server() else { return };
        let (a, b) = (pg.fresh_database(), pg.fresh_database());
        assert_ne!(a, b);
        let (a, b) = (database_name(&a), database_name(&b));
        assert!(a.ends_with("two_fresh_databases_are_distinct"), "{a}");
        pg.psql(
            a,
            "CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (7)",
        );
        assert_eq!(pg.psql(a, "SELECT x FROM only_in_a"), "7");
        let missing = pg.try_psql(b, "SELECT x FROM only_in_a").unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
        assert_eq!(
            pg.psql(
                b,
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ),
            "0"
        );
    }

    #[test]
    fn psql_runs_statements_and_returns_their_rows() {
        let Some(pg) = server() else { return };
        let db = pg.fresh_database();
        let db = database_name(&db);
        assert_eq!(pg.psql(db, "SELECT 1 + 1"), "2");
        assert_eq!(
            pg.psql(db, "SELECT 'a', 2 UNION ALL SELECT 'b', 3"),
            "a|2\nb|3"
        );
        assert_eq!(
            pg.psql(db, "SELECT current_database(), current_user"),
            format!("{db}|ocpoll")
        );
        assert_eq!(pg.psql(db, "SHOW fsync"), "off");
        assert_eq!(pg.psql(db, "SHOW listen_addresses"), "127.0.0.1");
        assert_eq!(
            pg.psql(db, "SELECT rolsuper FROM pg_roles WHERE rolname = 'ocpoll'"),
            "t"
        );
        let error = pg.try_psql(db, "SELECT * FROM nowhere").unwrap_err();
        assert!(
            error.contains("relation \"nowhere\" does not exist"),
            "{error}"
        );
    }

    /// What a test of a dropped connection does: find another session and end its backend.
    #[test]
    fn another_session_can_be_ended() {
        let Some(pg) = server() else { return };
        let url = pg.fresh_database();
        let db = database_name(&url);
        let session = Command::new(&pg.psql)
            .args(["-X", "-w", "-q", "-c", "SELECT pg_sleep(60)", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let waiting = "SELECT pid FROM pg_stat_activity \
                       WHERE datname = current_database() AND pid <> pg_backend_pid() \
                       AND query LIKE '%pg_sleep(60)'";
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            let pid = pg.psql(db, waiting);
            if !pid.is_empty() {
                break pid;
            }
            assert!(Instant::now() < deadline, "the session never showed up");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            pg.psql(db, &format!("SELECT pg_terminate_backend({pid})")),
            "t"
        );
        let ended = session.wait_with_output().unwrap();
        assert!(!ended.status.success());
        let message = String::from_utf8_lossy(&ended.stderr);
        assert!(message.contains("terminating connection"), "{message}");
    }

    #[test]
    fn tcp_needs_the_password() {
        let Some(pg) = server() else { return };
        let url = pg.fresh_database();
        let db = database_name(&url);
        assert_eq!(
            url,
            format!(
                "postgres://ocpoll:{}@127.0.0.1:{}/{db}",
                pg.password(),
                pg.port()
            )
        );
        assert_eq!(
            pg.url_without_password(db),
            format!("postgres://ocpoll@127.0.0.1:{}/{db}", pg.port())
        );
        assert_eq!(pg.password().len(), 32);
        let wrong = run_psql(&pg.psql, pg.port(), "not-the-password", db, "SELECT 1").unwrap_err();
        assert!(
            wrong.contains("password authentication failed for user \"ocpoll\""),
            "{wrong}"
        );
        let none = run_psql(&pg.psql, pg.port(), "", db, "SELECT 1").unwrap_err();
        assert!(none.contains("no password supplied"), "{none}");
        let method = pg.psql(db, "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' AND address = '127.0.0.1' LIMIT 1");
        assert_eq!(method, "scram-sha-256");
    }

    /// The variable that makes [`child_process_server`] run: `exit` or `kill`.
    const CHILD_ENV: &str = "OCPOLL_TEST_POSTGRES_CHILD";

    /// In a child process of `the_server_goes_away_with_its_process`: start the server, say
    /// where it is, then exit when told (`exit`) or wait to be killed (`kill`).
    #[test]
    #[ignore = "run by the_server_goes_away_with_its_process in a child process"]
    fn child_process_server() {
        let Ok(how) = std::env::var(CHILD_ENV) else {
            return;
        };
        let pg = server().expect("the parent process found PostgreSQL");
        let folder = pg.folder.display();
        let millis = pg.startup_time().as_millis();
        println!("READY {} {folder} {millis}", pg.port());
        std::io::stdout().flush().unwrap();
        if how == "kill" {
            std::thread::sleep(Duration::from_secs(600));
        }
        // `exit`: return, and so exit, once the parent has looked (it closes our stdin).
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }

    /// The server of a process that exits, and of one killed with SIGKILL, stops and its folder
    /// is deleted.
    #[test]
    fn the_server_goes_away_with_its_process() {
        if server().is_none() {
            return;
        }
        for how in ["exit", "kill"] {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "testing::postgres::tests::child_process_server"])
                .args(["--ignored", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, how)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
            let ready = (&mut stdout)
                .map(Result::unwrap)
                // After libtest's `test ... ` on the same line.
                .find_map(|line| Some(line.split_once("READY ")?.1.to_owned()))
                .unwrap_or_else(|| panic!("{how}: the child printed no READY line"));
            let mut words = ready.split(' ');
            let port: u16 = words.next().unwrap().parse().unwrap();
            let folder = PathBuf::from(words.next().unwrap());
            let startup = words.next().unwrap();
            eprintln!("{how}: the child's server started in {startup} ms");
            assert!(
                folder.join("data/postmaster.pid").is_file(),
                "{how}: {}",
                folder.display()
            );
            assert!(
                std::net::TcpStream::connect((HOST, port)).is_ok(),
                "{how}: port {port}"
            );
            match how {
                "kill" => child.kill().unwrap(),
                _ => drop(child.stdin.take()), // the child's cue to return from its test
            }
            stdout.for_each(drop); // to its end: the child's last words must not meet a closed pipe
            let status = child.wait().unwrap();
            assert_eq!(status.success(), how == "exit", "{how}: {status}");
            let deadline = Instant::now() + Duration::from_secs(30);
            while folder.exists() || std::net::TcpStream::connect((HOST, port)).is_ok() {
                assert!(
                    Instant::now() < deadline,
                    "{how}: 30 s after the process ended, the server on port {port} or its \
                     folder {} is still there",
                    folder.display()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    #[test]
    fn programs_are_found_on_the_path_or_the_highest_debian_version() {
        let tmp = tempfile::tempdir().unwrap();
        let put = |dir: &str, names: &[&str]| {
            let dir = tmp.path().join(dir);
            fs::create_dir_all(&dir).unwrap();
            for name in names {
                fs::write(dir.join(name), "").unwrap();
            }
            dir
        };
        let root = tmp.path().join("lib/postgresql");
        put("lib/postgresql/9.6/bin", &["initdb", "pg_ctl", "psql"]);
        let v15 = put("lib/postgresql/15/bin", &["initdb", "pg_ctl", "psql"]);
        put("lib/postgresql/16/bin", &["psql"]); // a client without the server
        put("lib/postgresql/notes", &[]);
        let empty = std::ffi::OsString::new();
        let found = find_programs(&empty, &root).unwrap();
        assert_eq!(found.initdb, v15.join("initdb"));
        assert_eq!(found.psql, fs::canonicalize(&v15).unwrap().join("psql"));

        let local = put("local/bin", &["initdb", "pg_ctl"]);
        let client = put("client/bin", &["psql"]);
        let path = std::env::join_paths([&client, &local]).unwrap();
        let found = find_programs(&path, &root).unwrap();
        assert_eq!(
            (found.pg_ctl, found.psql),
            (local.join("pg_ctl"), client.join("psql"))
        );

        assert!(find_programs(&empty, &tmp.path().join("nowhere")).is_none());
        let client_only = std::env::join_paths([&client]).unwrap();
        assert!(find_programs(&client_only, &tmp.path().join("nowhere")).is_none());
    }
}
