//! Connection settings of a PostgreSQL state store: the `--state postgres://...` URL, the
//! password as libpq finds it, and `sslmode`.
//!
//! What it owns: turning the URL a user wrote (in config.toml, on the command line) into a
//! [`tokio_postgres::Config`] plus TLS settings, and the URL as it may be shown (the
//! *location*: the password removed). The password is looked up in libpq's order: in the URL
//! (where it may be a `${env:NAME}` or `${file:PATH}` reference, resolved with the
//! [`SecretSource`] the configuration gives), else `PGPASSWORD`, else the password file
//! (`passfile=` in the URL, else `PGPASSFILE`, else `~/.pgpass`; a file its group or others
//! can read is ignored with a warning, as libpq does).
//!
//! The password never leaves this module except into the `tokio_postgres::Config` (whose
//! `Debug` redacts it): [`PgSettings`]'s `Debug` prints the location only, and no error here
//! quotes it.

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

use super::super::StateError;
use crate::instance::SecretSource;

/// `sslmode` as libpq spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without checking its certificate (libpq's default).
    Prefer,
    /// TLS, certificate not checked (checked against `sslrootcert` like verify-ca when that
    /// file is given, as libpq does).
    Require,
    /// TLS, the certificate chain checked against the root certificates; any host name.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" | "allow" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// Where a PostgreSQL state lives and how to reach it. `Debug` shows the location only.
#[derive(Clone)]
pub struct PgSettings {
    pub(super) config: tokio_postgres::Config,
    pub(super) location: String,
    pub(super) ssl_mode: SslMode,
    /// `sslrootcert`: a PEM file, or `system` for the operating system's roots.
    pub(super) root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("location", &self.location)
            .field("ssl_mode", &self.ssl_mode)
            .finish()
    }
}

/// Whether `state` names a PostgreSQL database rather than an SQLite file.
pub fn is_postgres_url(state: &str) -> bool {
    state.starts_with("postgres://") || state.starts_with("postgresql://")
}

fn config_error(location: &str, detail: impl Into<String>) -> StateError {
    StateError::PostgresSettings {
        location: location.to_owned(),
        detail: detail.into(),
    }
}

/// The URL cut into what matters here.
struct Parts<'a> {
    scheme: &'a str,
    user: Option<&'a str>,
    /// As written: percent-encoded, or a `${...}` reference.
    password: Option<&'a str>,
    /// Hosts and ports, as written.
    hosts: &'a str,
    /// `/dbname` or empty.
    path: &'a str,
    query: Vec<(String, String)>,
}

/// Splits a URL whose password may be a `${file:/some/path}` reference, which libpq would
/// want percent-encoded: a `/`, `?` or `@` inside `${...}` does not end the authority.
fn split(url: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let mut depth = 0;
    let mut end = rest.len();
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth > 0 => depth -= 1,
            b'/' | b'?' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let (authority, tail) = rest.split_at(end);
    // The userinfo ends at the last '@' outside a reference.
    let mut at = None;
    let mut depth = 0;
    for (i, c) in authority.char_indices() {
        match c {
            '$' if authority[i..].starts_with("${") => depth += 1,
            '}' if depth > 0 => depth -= 1,
            '@' if depth == 0 => at = Some(i),
            _ => {}
        }
    }
    let (userinfo, hosts) = match at {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (Some(user), Some(password)),
            None => (Some(info), None),
        },
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, query),
        None => (tail, ""),
    };
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect();
    Some(Parts {
        scheme,
        user: user.filter(|user| !user.is_empty()),
        password,
        hosts,
        path,
        query,
    })
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Resolves a whole-value `${env:NAME}` / `${file:PATH}` reference (None: not a reference).
/// `[secrets]` does not limit it: it limits what instance files may read, and this URL is the
/// operator's own configuration.
/// A file's one trailing newline is removed, as for instance files.
fn resolve_reference(
    raw: &str,
    secrets: &dyn SecretSource,
    location: &str,
) -> Option<Result<String, StateError>> {
    let inner = raw.strip_prefix("${")?.strip_suffix('}')?;
    if let Some(name) = inner.strip_prefix("env:") {
        return Some(secrets.env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            config_error(
                location,
                // The one wording of an unresolved reference (as for instance files).
                format!("unresolved secret: set {name}"),
            )
        }));
    }
    let path = inner.strip_prefix("file:")?;
    Some(
        secrets
            .file(Path::new(path))
            .map(|text| {
                let text = text.strip_suffix('\n').unwrap_or(&text);
                text.strip_suffix('\r').unwrap_or(text).to_owned()
            })
            .map_err(|e| {
                config_error(
                    location,
                    format!("unresolved secret: file {path} not readable ({e})"),
                )
            }),
    )
}

/// Query parameters ocpoll handles itself rather than tokio-postgres.
const OWN_PARAMETERS: &[&str] = &["password", "sslmode", "sslrootcert", "passfile"];

impl PgSettings {
    /// Parses a `postgres://` or `postgresql://` URL (libpq's URI form). `secrets` resolves a
    /// `${env:..}`/`${file:..}` password (the configuration's `secret_source()`).
    pub fn parse(url: &str, secrets: &dyn SecretSource) -> Result<PgSettings, StateError> {
        PgSettings::parse_with(url, secrets, &|name| std::env::var_os(name))
    }

    /// [`PgSettings::parse`] with the process environment (`PG*` variables, `HOME`) read
    /// through `env`, for tests.
    pub(crate) fn parse_with(
        url: &str,
        secrets: &dyn SecretSource,
        env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<PgSettings, StateError> {
        if !is_postgres_url(url) {
            return Err(config_error(
                "(not shown)",
                "not a postgres:// or postgresql:// URL",
            ));
        }
        let parts = split(url).ok_or_else(|| config_error("(not shown)", "not a URL"))?;
        // The location: the URL without any password, for messages and `location()`.
        let shown_query: Vec<String> = parts
            .query
            .iter()
            .filter(|(key, _)| key != "password")
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let user_part = parts
            .user
            .map(|user| format!("{user}@"))
            .unwrap_or_default();
        let mut location = format!(
            "{}://{user_part}{}{}",
            parts.scheme, parts.hosts, parts.path
        );
        if !shown_query.is_empty() {
            location.push('?');
            location.push_str(&shown_query.join("&"));
        }
        // What tokio-postgres parses: no password, none of our own parameters.
        let passed_query: Vec<String> = parts
            .query
            .iter()
            .filter(|(key, _)| !OWN_PARAMETERS.contains(&key.as_str()))
            .map(|(key, value)| format!("{}={}", utf8_query(key), utf8_query(value)))
            .collect();
        let mut passed = format!(
            "{}://{user_part}{}{}",
            parts.scheme, parts.hosts, parts.path
        );
        if !passed_query.is_empty() {
            passed.push('?');
            passed.push_str(&passed_query.join("&"));
        }
        let mut config: tokio_postgres::Config = passed
            .parse()
            .map_err(|e: tokio_postgres::Error| config_error(&location, e.to_string()))?;
        let param = |name: &str| {
            parts
                .query
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let env_string = |name: &str| env(name).and_then(|v| v.into_string().ok());

        if config.get_user().is_none() {
            let user = env_string("PGUSER")
                .or_else(|| env_string("USER"))
                .or_else(|| env_string("LOGNAME"))
                .ok_or_else(|| config_error(&location, "no user in the URL and PGUSER is unset"))?;
            config.user(&user);
        }
        if config.get_dbname().is_none()
            && let Some(dbname) = env_string("PGDATABASE")
        {
            config.dbname(&dbname);
        }
        if config.get_hosts().is_empty() {
            let host = env_string("PGHOST").unwrap_or_else(|| "localhost".to_owned());
            config.host(&host);
        }
        if config.get_ports().is_empty()
            && let Some(port) = env_string("PGPORT").and_then(|p| p.parse().ok())
        {
            config.port(port);
        }
        if config.get_application_name().is_none() {
            config.application_name("ocpoll");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }

        // The password, in libpq's order.
        let in_url = match parts.password {
            Some(raw) => Some(match resolve_reference(raw, secrets, &location) {
                Some(resolved) => resolved?,
                None => decode(raw),
            }),
            None => match param("password") {
                Some(raw) => Some(match resolve_reference(&raw, secrets, &location) {
                    Some(resolved) => resolved?,
                    None => raw,
                }),
                None => None,
            },
        };
        let password = in_url
            .or_else(|| env_string("PGPASSWORD").filter(|p| !p.is_empty()))
            .or_else(|| {
                let file = param("passfile")
                    .map(PathBuf::from)
                    .or_else(|| env("PGPASSFILE").map(PathBuf::from))
                    .or_else(|| env("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
                passfile_password(&file, &config)
            });
        if let Some(password) = password {
            config.password(password);
        }

        let ssl_mode = match param("sslmode").or_else(|| env_string("PGSSLMODE")) {
            None => SslMode::Prefer,
            Some(mode) => SslMode::parse(&mode).ok_or_else(|| {
                config_error(
                    &location,
                    format!(
                        "sslmode={mode} is not one of disable, prefer, require, verify-ca, verify-full"
                    ),
                )
            })?,
        };
        let root_cert = param("sslrootcert")
            .or_else(|| env_string("PGSSLROOTCERT"))
            .map(PathBuf::from)
            .or_else(|| {
                let default = Path::new(&env("HOME")?).join(".postgresql/root.crt");
                default.is_file().then_some(default)
            });
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(PgSettings {
            config,
            location,
            ssl_mode,
            root_cert,
        })
    }

    /// The URL without its password: what messages and `status` show.
    pub fn location(&self) -> &str {
        &self.location
    }
}

fn utf8_query(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The password file's answer for the first host and port of `config`, if the file may be
/// used (a regular file that neither its group nor others can access, as libpq demands).
fn passfile_password(file: &Path, config: &tokio_postgres::Config) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(file).ok()?;
    if !metadata.is_file() {
        return None;
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        let message = format!(
            "password file {} has group or world access; permissions should be u=rw (0600) or less: it is ignored",
            file.display()
        );
        if tracing::dispatcher::has_been_set() {
            tracing::warn!("{message}");
        } else {
            eprintln!("ocpoll: warning: {message}");
        }
        return None;
    }
    let contents = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        // libpq matches a socket directory as "localhost".
        _ => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or(user);
    passfile_lookup(&contents, &host, port, dbname, user)
}

/// libpq's `.pgpass` format: `hostname:port:database:username:password` lines, `*` matching
/// anything in the first four fields, `\:` and `\\` escapes, `#` comment lines; the first
/// matching line wins.
pub fn passfile_lookup(
    contents: &str,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), dbname, user];
    for line in contents.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields: Vec<String> = vec![String::new()];
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        fields.last_mut()?.push(next);
                    }
                }
                // The fifth field (the password) takes the rest of the line.
                ':' if fields.len() < 5 => fields.push(String::new()),
                c => fields.last_mut()?.push(c),
            }
        }
        if fields.len() != 5 {
            continue;
        }
        let matches = fields[..4]
            .iter()
            .zip(wanted)
            .all(|(field, wanted)| field == "*" || field == wanted);
        if matches {
            return fields.pop();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Secrets(HashMap<&'static str, &'static str>);

    impl SecretSource for Secrets {
        fn env(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
        fn file(&self, path: &Path) -> std::io::Result<String> {
            std::fs::read_to_string(path)
        }
    }

    fn no_env(_: &str) -> Option<std::ffi::OsString> {
        None
    }

    fn parse(url: &str) -> PgSettings {
        let secrets = Secrets(HashMap::from([("DB_PASSWORD", "from-env s3cret")]));
        PgSettings::parse_with(url, &secrets, &no_env).unwrap()
    }

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let file = "# comment\n\
                    db.example:5432:ocpoll:alice:first\n\
                    *:*:ocpoll:bob:p\\:w\\\\d:tail\n\
                    localhost:*:*:*:fallback\n\
                    *:*:*:*:last\n";
        let lookup = |host, port, db, user| passfile_lookup(file, host, port, db, user);
        assert_eq!(
            lookup("db.example", 5432, "ocpoll", "alice").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup("db.example", 5433, "ocpoll", "bob").as_deref(),
            Some("p:w\\d:tail"),
            "escapes, and the password takes the rest of the line"
        );
        assert_eq!(
            lookup("localhost", 1, "x", "y").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            lookup("db.example", 5433, "ocpoll", "alice").as_deref(),
            Some("last")
        );
        assert_eq!(
            passfile_lookup("a:b:c\n", "a", 1, "c", "d"),
            None,
            "short line"
        );
        assert_eq!(passfile_lookup("", "a", 1, "c", "d"), None);
    }

    #[test]
    fn the_password_is_taken_from_the_url_or_a_reference_and_never_shown() {
        let plain = parse("postgres://ocpoll:hunter%402@db.example:5433/state?sslmode=disable");
        assert_eq!(plain.config.get_password(), Some(&b"hunter@2"[..]));
        assert_eq!(
            plain.location(),
            "postgres://ocpoll@db.example:5433/state?sslmode=disable"
        );
        assert_eq!(plain.ssl_mode, SslMode::Disable);
        assert!(!format!("{plain:?}").contains("hunter"));

        let env = parse("postgresql://ocpoll:${env:DB_PASSWORD}@db/state");
        assert_eq!(env.config.get_password(), Some(&b"from-env s3cret"[..]));
        assert!(!format!("{env:?}").contains("s3cret"));
        assert_eq!(env.ssl_mode, SslMode::Prefer);

        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "from-file\n").unwrap();
        let file = parse(&format!(
            "postgres://ocpoll:${{file:{}}}@db/state?sslmode=verify-full&sslrootcert=/ca.pem",
            secret.display()
        ));
        assert_eq!(file.config.get_password(), Some(&b"from-file"[..]));
        assert_eq!(file.ssl_mode, SslMode::VerifyFull);
        assert_eq!(file.root_cert.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(
            file.location(),
            "postgres://ocpoll@db/state?sslmode=verify-full&sslrootcert=/ca.pem"
        );

        let query = parse("postgres://ocpoll@db/state?password=qs-secret");
        assert_eq!(query.config.get_password(), Some(&b"qs-secret"[..]));
        assert!(!query.location().contains("qs-secret"));

        let secrets = Secrets(HashMap::new());
        let unset =
            PgSettings::parse_with("postgres://ocpoll:${env:NOPE}@db/state", &secrets, &no_env)
                .unwrap_err();
        assert!(unset.to_string().contains("NOPE"), "{unset}");
        let bad = PgSettings::parse_with(
            "postgres://ocpoll:topsecret@db/state?sslmode=sometimes",
            &secrets,
            &no_env,
        )
        .unwrap_err();
        assert!(!bad.to_string().contains("topsecret"), "{bad}");
        assert!(bad.to_string().contains("sslmode=sometimes"), "{bad}");
    }

    #[test]
    fn pgpassword_and_the_passfile_come_after_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let passfile = dir.path().join("pgpass");
        std::fs::write(&passfile, "db:5432:state:ocpoll:from-passfile\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secrets = Secrets(HashMap::new());
        let passfile_env = passfile.clone().into_os_string();
        let env_with = |pgpassword: Option<&'static str>| {
            let passfile_env = passfile_env.clone();
            move |name: &str| match name {
                "PGPASSFILE" => Some(passfile_env.clone()),
                "PGPASSWORD" => pgpassword.map(Into::into),
                _ => None,
            }
        };
        let url = "postgres://ocpoll@db/state";
        let from_file = PgSettings::parse_with(url, &secrets, &env_with(None)).unwrap();
        assert_eq!(from_file.config.get_password(), Some(&b"from-passfile"[..]));
        let from_env = PgSettings::parse_with(url, &secrets, &env_with(Some("from-env"))).unwrap();
        assert_eq!(from_env.config.get_password(), Some(&b"from-env"[..]));
        let in_url =
            PgSettings::parse_with("postgres://ocpoll:url@db/state", &secrets, &env_with(None))
                .unwrap();
        assert_eq!(in_url.config.get_password(), Some(&b"url"[..]));
        // Readable by others: ignored, as libpq does.
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loose = PgSettings::parse_with(url, &secrets, &env_with(None)).unwrap();
        assert_eq!(loose.config.get_password(), None);
    }
}
