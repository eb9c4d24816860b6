//! Configuration: `config.toml`, `OCPOLL_*` environment variables and command-line flags,
//! merged into one [`Config`] (flags win over the environment, which wins over the file).
//!
//! Every key of the file can be set by `OCPOLL_<SECTION>_<KEY>` (`OCPOLL_POLL_MAX_IN_FLIGHT`),
//! top-level keys by `OCPOLL_<KEY>` (`OCPOLL_INSTANCES`). Unknown keys in the file are errors,
//! so a typo never silently falls back to a default.
//!
//! The lower layers (`http`, `outbox`, `state`) never read this module: each defines the small
//! value it runs with ([`RetryPolicy`], [`RecordLimits`], [`Egress`], [`DeliveryPolicy`],
//! [`Synchronous`]) and the methods here build those values from the settings.

use crate::cli::{ConfigFlags, LogFormat};
use crate::http::egress::{Egress, HostRule};
use crate::http::{RecordLimits, RetryPolicy};
use crate::instance::SecretScope;
use crate::outbox::deliver::DeliveryPolicy;
use crate::outbox::retry::RetryLogic;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// `[state] synchronous`: defined by the state store, which obeys it.
pub use crate::state::Synchronous;
use crate::state::{StateError, StateLocation, Store};

/// The merged configuration every command runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub instances: PathBuf,
    pub state: PathBuf,
    pub log: LogConfig,
    pub poll: PollConfig,
    pub delivery: DeliveryConfig,
    pub synchronous: Synchronous,
    /// `[state] lease_seconds`: with a PostgreSQL state, how long a daemon's claim on a poll
    /// or an instance's delivery lasts without renewal (how long a dead node's work waits).
    pub lease_seconds: u64,
    pub daemon: DaemonConfig,
    pub http: HttpConfig,
    pub secrets: SecretsConfig,
    pub listen: ListenConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollConfig {
    pub max_in_flight: u32,
    pub per_host: u32,
    pub retries: u32,
    pub jitter_seconds: u64,
    /// The first retry's backoff ceiling within a poll; doubles per retry (tests set 0).
    pub backoff_initial_seconds: u64,
    pub backoff_max_seconds: u64,
    /// How far past the provider's clock (its `Date`) a record's updated date may be and still
    /// move the watermark; a record dated later is sent, reported, and moves nothing.
    pub future_tolerance_seconds: u64,
    /// Caps on one poll: a provider that always hands out a next page must not keep a poll
    /// (and a tick holding the state's lock) running forever.
    pub max_pages: u64,
    pub max_poll_seconds: u64,
}

impl Config {
    /// `[poll] max_pages` and `max_poll_seconds`, for the page reader.
    pub fn poll_caps(&self) -> crate::poll::PollCaps {
        crate::poll::PollCaps {
            max_pages: self.poll.max_pages,
            max_duration: std::time::Duration::from_secs(self.poll.max_poll_seconds),
        }
    }
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            max_in_flight: 32,
            per_host: 4,
            retries: 3,
            jitter_seconds: 5,
            backoff_initial_seconds: 1,
            backoff_max_seconds: 30,
            future_tolerance_seconds: 300,
            max_pages: 10_000,
            max_poll_seconds: 1800,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    pub max_in_flight: u32,
    pub per_host: u32,
    pub timeout_seconds: u64,
    pub retry_max_age_seconds: u64,
    pub backoff_initial_seconds: u64,
    pub backoff_max_seconds: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_in_flight: 64,
            per_host: 8,
            timeout_seconds: 15,
            retry_max_age_seconds: 86_400,
            backoff_initial_seconds: 5,
            backoff_max_seconds: 3_600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    pub grace_seconds: u64,
    /// Where `ocpoll run` serves /metrics, /healthz and /readyz (none: not served).
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            grace_seconds: 10,
            metrics_addr: None,
        }
    }
}

/// `[listen]`: receiving webhooks (`ocpoll run --listen`, docs/operations.md#webhooks).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// Where `ocpoll run` receives webhooks (none: not received).
    pub addr: Option<std::net::SocketAddr>,
    /// The largest body accepted (413 above).
    pub max_body_bytes: usize,
    /// How long a client may take to send its request headers (slowloris).
    pub header_timeout_seconds: u64,
    /// How long a client may take to send its body (408 after).
    pub body_timeout_seconds: u64,
    /// How long a request waits for its commit before it is answered 503.
    pub commit_timeout_seconds: u64,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// What `ocpoll webhooks url` prints before `/webhooks/...` without `--base`, e.g. the
    /// reverse proxy's `https://hooks.example.com`.
    pub public_url: Option<String>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            addr: None,
            max_body_bytes: 1024 * 1024,
            header_timeout_seconds: 10,
            body_timeout_seconds: 30,
            commit_timeout_seconds: 10,
            max_connections: 1024,
            public_url: None,
        }
    }
}

impl ListenConfig {
    /// The listener's settings, when an address is set.
    pub fn settings(&self) -> Option<crate::webhooks::listener::ListenSettings> {
        Some(crate::webhooks::listener::ListenSettings {
            addr: self.addr?,
            max_body_bytes: self.max_body_bytes,
            header_timeout: Duration::from_secs(self.header_timeout_seconds.max(1)),
            body_timeout: Duration::from_secs(self.body_timeout_seconds.max(1)),
            commit_timeout: Duration::from_secs(self.commit_timeout_seconds.max(1)),
            max_connections: self.max_connections.max(1),
        })
    }
}

/// `[http]`: where outbound requests may go and how much of a response ocpoll reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// When not empty, the only hosts, addresses and networks requests may go to.
    #[serde(deserialize_with = "host_rules")]
    pub allow: Vec<HostRule>,
    /// Never sent to (wins over `allow`); link-local and metadata addresses are denied anyway.
    #[serde(deserialize_with = "host_rules")]
    pub deny: Vec<HostRule>,
    /// The most body bytes one provider page may have, after decompression.
    pub max_page_bytes: usize,
    /// The most bytes one record's JSON may have; a larger record is a problem of that record.
    pub max_record_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allow: Vec::new(),
            deny: Vec::new(),
            max_page_bytes: 64 * 1024 * 1024,
            max_record_bytes: 1024 * 1024,
        }
    }
}

impl HttpConfig {
    /// The outbound policy these settings describe.
    pub fn egress(&self) -> std::sync::Arc<Egress> {
        std::sync::Arc::new(Egress::new(self.allow.clone(), self.deny.clone()))
    }
}

/// `[secrets]`: what instance files' `${env:..}` and `${file:..}` references may read. Not set:
/// everything the process can read (docs/operations.md#threat-model).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// Only variables whose names start with one of these (`[]`: none).
    #[serde(
        deserialize_with = "string_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub env_prefixes: Option<Vec<String>>,
    /// Only files inside one of these absolute folders, after symlinks and `..` (`[]`: none).
    #[serde(
        deserialize_with = "folder_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_roots: Option<Vec<PathBuf>>,
}

impl SecretsConfig {
    /// The scope these settings describe, for the instance loader.
    pub fn scope(&self) -> SecretScope {
        SecretScope {
            env_prefixes: self.env_prefixes.clone(),
            file_roots: self.file_roots.clone(),
        }
    }
}

impl Config {
    /// Where the state is: a SQLite file, or a PostgreSQL database a fleet shares.
    pub fn state_location(&self) -> StateLocation {
        StateLocation::of(&self.state)
    }

    /// This daemon's part in a fleet when the state is shared (PostgreSQL), else `None`.
    pub fn fleet(&self) -> Option<std::sync::Arc<crate::fleet::Fleet>> {
        self.state_location().is_shared().then(|| {
            std::sync::Arc::new(crate::fleet::Fleet::new(Duration::from_secs(
                self.lease_seconds,
            )))
        })
    }

    /// Where instance files' secret references come from: the process's environment and files,
    /// within `[secrets]`.
    pub fn secret_source(&self) -> crate::instance::ScopedSecrets {
        crate::instance::ScopedSecrets::new(self.secrets.scope())
    }
}

impl From<&PollConfig> for RetryPolicy {
    /// `[poll] retries` and the backoff from the configuration; the rest keeps its defaults.
    fn from(poll: &PollConfig) -> Self {
        RetryPolicy {
            retries: poll.retries,
            backoff_initial: Duration::from_secs(poll.backoff_initial_seconds),
            backoff_max: Duration::from_secs(poll.backoff_max_seconds),
            ..RetryPolicy::default()
        }
    }
}

impl From<&DeliveryConfig> for RetryLogic {
    fn from(config: &DeliveryConfig) -> Self {
        RetryLogic {
            backoff_initial: Duration::from_secs(config.backoff_initial_seconds),
            backoff_max: Duration::from_secs(config.backoff_max_seconds),
            default_window: Duration::from_secs(config.retry_max_age_seconds),
        }
    }
}

/// A list of strings, or one string of comma-separated items (what an `OCPOLL_*` variable
/// holds: `OCPOLL_HTTP_ALLOW="127.0.0.1, *.example.com"`).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Items {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Items::deserialize(deserializer)? {
        Items::List(texts) => texts,
        Items::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// A list of host rules, or one string of comma-separated rules (what `OCPOLL_HTTP_ALLOW`
/// holds).
fn host_rules<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<HostRule>, D::Error> {
    list_or_commas(deserializer)?
        .iter()
        .map(|text| text.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// `[secrets] env_prefixes`: a list, or comma-separated.
fn string_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    list_or_commas(deserializer).map(Some)
}

/// `[secrets] file_roots`: absolute folders, a list or comma-separated.
fn folder_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<PathBuf>>, D::Error> {
    list_or_commas(deserializer)?
        .into_iter()
        .map(|text| {
            let path = PathBuf::from(&text);
            if path.is_absolute() {
                Ok(path)
            } else {
                Err(serde::de::Error::custom(format!(
                    "{text:?} is not an absolute path: file_roots are absolute folders"
                )))
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The file as written. `state` is either the state file's path or a `[state]` table with
/// `path` and `synchronous` (docs/operations.md#configuration shows both, which TOML cannot hold under one key).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    instances: Option<PathBuf>,
    state: Option<StateSetting>,
    log: LogConfig,
    poll: PollConfig,
    delivery: DeliveryConfig,
    daemon: DaemonConfig,
    http: HttpConfig,
    secrets: SecretsConfig,
    listen: ListenConfig,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StateSetting {
    Path(PathBuf),
    Table(StateTable),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StateTable {
    path: Option<PathBuf>,
    synchronous: Synchronous,
    lease_seconds: Option<u64>,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?}: {message}")]
    Env {
        name: String,
        value: String,
        message: String,
    },
}

/// Every `OCPOLL_<SECTION>_<KEY>` variable the configuration reads, with its `[section]` and
/// key (the man page's ENVIRONMENT lists them).
pub fn section_variables() -> impl Iterator<Item = (String, &'static str, &'static str)> {
    SECTION_KEYS.iter().flat_map(|(section, keys)| {
        keys.iter()
            .map(move |key| (env_name(section, key), *section, *key))
    })
}

fn env_name(section: &str, key: &str) -> String {
    format!("OCPOLL_{section}_{key}").to_ascii_uppercase()
}

/// Keys settable from the environment as `OCPOLL_<SECTION>_<KEY>`.
const SECTION_KEYS: &[(&str, &[&str])] = &[
    ("log", &["format", "level"]),
    (
        "poll",
        &[
            "max_in_flight",
            "per_host",
            "retries",
            "jitter_seconds",
            "backoff_initial_seconds",
            "backoff_max_seconds",
            "future_tolerance_seconds",
            "max_pages",
            "max_poll_seconds",
        ],
    ),
    (
        "delivery",
        &[
            "max_in_flight",
            "per_host",
            "timeout_seconds",
            "retry_max_age_seconds",
            "backoff_initial_seconds",
            "backoff_max_seconds",
        ],
    ),
    ("state", &["synchronous", "lease_seconds"]),
    ("daemon", &["grace_seconds", "metrics_addr"]),
    (
        "http",
        &["allow", "deny", "max_page_bytes", "max_record_bytes"],
    ),
    ("secrets", &["env_prefixes", "file_roots"]),
    (
        "listen",
        &[
            "addr",
            "max_body_bytes",
            "header_timeout_seconds",
            "body_timeout_seconds",
            "commit_timeout_seconds",
            "max_connections",
            "public_url",
        ],
    ),
];

/// Where ocpoll looks for its files on this platform.
pub struct PlatformDirs {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
}

impl PlatformDirs {
    pub fn detect() -> PlatformDirs {
        match directories::ProjectDirs::from("", "", "ocpoll") {
            Some(dirs) => PlatformDirs {
                config_dir: dirs.config_dir().to_path_buf(),
                state_dir: dirs
                    .state_dir()
                    .unwrap_or_else(|| dirs.data_local_dir())
                    .to_path_buf(),
            },
            // No home folder (a bare service account): fall back to the system-wide places.
            None => PlatformDirs {
                config_dir: PathBuf::from("/etc/ocpoll"),
                state_dir: PathBuf::from("/var/lib/ocpoll"),
            },
        }
    }
}

impl Config {
    /// How hard a provider GET tries: `[poll]` retries and backoff, and `[http] max_page_bytes`.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_page_bytes: self.http.max_page_bytes,
            ..RetryPolicy::from(&self.poll)
        }
    }

    /// `[http] max_record_bytes`.
    pub fn record_limits(&self) -> RecordLimits {
        RecordLimits {
            max_record_bytes: self.http.max_record_bytes,
        }
    }

    /// `[delivery]`: concurrency and the retry rules.
    pub fn delivery_policy(&self) -> DeliveryPolicy {
        DeliveryPolicy {
            max_in_flight: self.delivery.max_in_flight,
            per_host: self.delivery.per_host,
            retry: RetryLogic::from(&self.delivery),
        }
    }

    /// Merges the config file, the environment (`env` yields `OCPOLL_*` variables) and flags.
    pub fn load(
        flags: &ConfigFlags,
        env: impl Fn(&str) -> Option<String>,
        dirs: &PlatformDirs,
    ) -> Result<Config, ConfigError> {
        let (file_path, required) = match &flags.config {
            Some(path) => (path.clone(), true),
            None => (dirs.config_dir.join("config.toml"), false),
        };
        let mut table = read_table(&file_path, required)?;
        overlay_env(&mut table, &env)?;
        let file: FileConfig =
            table
                .try_into()
                .map_err(|error: toml::de::Error| ConfigError::Invalid {
                    path: file_path.clone(),
                    message: error.message().to_owned(),
                })?;
        Ok(Self::merge(file, flags, dirs))
    }

    fn merge(file: FileConfig, flags: &ConfigFlags, dirs: &PlatformDirs) -> Config {
        let (state_path, synchronous, lease_seconds) = match file.state {
            Some(StateSetting::Path(path)) => (Some(path), Synchronous::default(), None),
            Some(StateSetting::Table(table)) => {
                (table.path, table.synchronous, table.lease_seconds)
            }
            None => (None, Synchronous::default(), None),
        };
        let lease_seconds = lease_seconds
            .unwrap_or(crate::fleet::DEFAULT_LEASE.as_secs())
            .max(3);
        let instances = flags
            .instances
            .clone()
            .or(file.instances)
            .unwrap_or_else(|| default_instances(dirs));
        let state = flags
            .state
            .clone()
            .or(state_path)
            .unwrap_or_else(|| dirs.state_dir.join("state.db"));
        let mut log = file.log;
        if let Some(format) = flags.log_format {
            log.format = format;
        }
        Config {
            instances,
            state,
            log,
            poll: file.poll,
            delivery: file.delivery,
            synchronous,
            lease_seconds,
            daemon: file.daemon,
            http: file.http,
            secrets: file.secrets,
            listen: file.listen,
        }
    }
}

/// Whether opening the state may create it, and may migrate a database's schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Create the file when missing (polling commands).
    Create,
    /// Only an existing state (commands that read or edit it).
    Existing,
    /// Create it and, for a database, upgrade its schema (`run --migrate`).
    Migrate,
}

impl Config {
    /// Opens the state wherever `--state` says: a SQLite file (which upgrades itself), or a
    /// PostgreSQL database (whose schema only `ocpoll state migrate` or `run --migrate`
    /// changes).
    pub fn open_store(&self, access: Access) -> Result<Store, StateError> {
        match (self.state_location(), access) {
            (StateLocation::File(path), Access::Existing) => {
                Store::open_existing(&path, self.synchronous)
            }
            (StateLocation::File(path), _) => Store::open(&path, self.synchronous),
            (StateLocation::Postgres(url), access) => {
                Store::connect_postgres(&url, &self.secret_source(), access == Access::Migrate)
            }
        }
    }
}

/// `./instances.d` if it exists, else `instances.d` in the config folder.
fn default_instances(dirs: &PlatformDirs) -> PathBuf {
    let local = Path::new("instances.d");
    if local.is_dir() {
        local.to_path_buf()
    } else {
        dirs.config_dir.join("instances.d")
    }
}

fn read_table(path: &Path, required: bool) -> Result<toml::Table, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(toml::Table::new());
        }
        Err(error) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                reason: crate::instance::decode::io_reason(&error),
            });
        }
    };
    text.parse::<toml::Table>()
        .map_err(|error| ConfigError::Invalid {
            path: path.to_path_buf(),
            // toml's message names the line and column and quotes the offending line.
            message: error.to_string().trim_end().to_owned(),
        })
}

/// Writes `OCPOLL_<SECTION>_<KEY>` variables into the table, where they win over the file.
/// Each variable is checked on its own first, so a bad value is blamed on the variable.
fn overlay_env(
    table: &mut toml::Table,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (section, keys) in SECTION_KEYS {
        for key in *keys {
            let name = env_name(section, key);
            let Some(value) = env(&name) else { continue };
            let env_error = |message: String| ConfigError::Env {
                name: name.clone(),
                value: value.clone(),
                message,
            };
            let parsed = env_value(&value);
            let mut alone = toml::Table::new();
            section_table(&mut alone, section)
                .map_err(env_error)?
                .insert((*key).to_owned(), parsed.clone());
            toml::Value::Table(alone)
                .try_into::<FileConfig>()
                .map_err(|error| env_error(error.message().to_owned()))?;
            section_table(table, section)
                .map_err(env_error)?
                .insert((*key).to_owned(), parsed);
        }
    }
    Ok(())
}

/// The `[section]` table, created when missing. `state = "path"` becomes `[state] path`.
fn section_table<'t>(
    table: &'t mut toml::Table,
    section: &str,
) -> Result<&'t mut toml::Table, String> {
    let entry = table
        .entry(section.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::String(path) = entry {
        let mut converted = toml::Table::new();
        converted.insert("path".to_owned(), toml::Value::String(path.clone()));
        *entry = toml::Value::Table(converted);
    }
    entry
        .as_table_mut()
        .ok_or_else(|| format!("the config file's \"{section}\" is not a table"))
}

/// Environment values are text; numbers are read as numbers so that `OCPOLL_POLL_RETRIES=5`
/// means the integer 5.
fn env_value(value: &str) -> toml::Value {
    match value.trim().parse::<i64>() {
        Ok(number) => toml::Value::Integer(number),
        Err(_) => toml::Value::String(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;

    fn flags(args: &[&str]) -> ConfigFlags {
        let mut argv = vec!["ocpoll", "status"];
        argv.extend_from_slice(args);
        crate::cli::Cli::try_parse_from(argv)
            .unwrap()
            .config_flags()
    }

    fn dirs(root: &Path) -> PlatformDirs {
        PlatformDirs {
            config_dir: root.join("config"),
            state_dir: root.join("state"),
        }
    }

    #[test]
    fn defaults_without_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Config::load(&flags(&[]), |_| None, &dirs(tmp.path())).unwrap();
        assert_eq!(config.state, tmp.path().join("state/state.db"));
        assert_eq!(config.poll, PollConfig::default());
        assert_eq!(config.synchronous, Synchronous::Full);
    }

    #[test]
    fn file_then_env_then_flags() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("c.toml");
        std::fs::write(
            &file,
            "instances = \"/etc/i\"\nstate = \"/var/s.db\"\n[poll]\nmax_in_flight = 7\nretries = 1\n",
        )
        .unwrap();
        let env: HashMap<&str, &str> = [
            ("OCPOLL_POLL_RETRIES", "5"),
            ("OCPOLL_STATE_SYNCHRONOUS", "normal"),
        ]
        .into();
        let lookup = |name: &str| env.get(name).map(|v| v.to_string());
        let file_arg = file.to_str().unwrap();
        let config = Config::load(
            &flags(&["--config", file_arg, "--instances", "/flag/i"]),
            lookup,
            &dirs(tmp.path()),
        )
        .unwrap();
        assert_eq!(config.instances, PathBuf::from("/flag/i"));
        assert_eq!(config.state, PathBuf::from("/var/s.db"));
        assert_eq!(config.poll.max_in_flight, 7);
        assert_eq!(config.poll.retries, 5);
        assert_eq!(config.synchronous, Synchronous::Normal);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("c.toml");
        std::fs::write(&file, "[poll]\nmax_in_flite = 7\n").unwrap();
        let error = Config::load(
            &flags(&["--config", file.to_str().unwrap()]),
            |_| None,
            &dirs(tmp.path()),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("c.toml"), "{error}");
        assert!(error.contains("max_in_flite"), "{error}");

        std::fs::write(&file, "[poll\n").unwrap();
        let error = Config::load(
            &flags(&["--config", file.to_str().unwrap()]),
            |_| None,
            &dirs(tmp.path()),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("line 1"), "{error}");
    }

    /// Every key of every section can be set from the environment: the list the overlay uses
    /// must name each field of the section structs.
    #[test]
    fn every_section_key_has_an_environment_variable() {
        fn keys(section: impl serde::Serialize) -> Vec<String> {
            let value = toml::Value::try_from(section).unwrap();
            value.as_table().unwrap().keys().cloned().collect()
        }
        let daemon = DaemonConfig {
            metrics_addr: Some(([127, 0, 0, 1], 9464).into()),
            ..DaemonConfig::default()
        };
        let sections = [
            ("log", keys(LogConfig::default())),
            ("poll", keys(PollConfig::default())),
            ("delivery", keys(DeliveryConfig::default())),
            ("daemon", keys(daemon)),
            ("http", keys(HttpConfig::default())),
            (
                "listen",
                keys(ListenConfig {
                    addr: Some(([127, 0, 0, 1], 8480).into()),
                    public_url: Some("https://hooks.example.com".to_owned()),
                    ..ListenConfig::default()
                }),
            ),
            (
                "secrets",
                keys(SecretsConfig {
                    env_prefixes: Some(Vec::new()),
                    file_roots: Some(Vec::new()),
                }),
            ),
        ];
        for (section, fields) in sections {
            let listed = SECTION_KEYS
                .iter()
                .find(|(name, _)| *name == section)
                .map(|(_, keys)| *keys)
                .unwrap_or_default();
            for field in fields {
                assert!(
                    listed.contains(&field.as_str()),
                    "OCPOLL_{section}_{field} is not read"
                );
            }
        }
    }

    #[test]
    fn http_rules_come_from_the_file_or_a_comma_separated_variable() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("c.toml");
        std::fs::write(
            &file,
            "[http]\nallow = [\"127.0.0.1/32\", \"*.example.com\"]\nmax_record_bytes = 4096\n",
        )
        .unwrap();
        let file_arg = file.to_str().unwrap();
        let config =
            Config::load(&flags(&["--config", file_arg]), |_| None, &dirs(tmp.path())).unwrap();
        let shown: Vec<String> = config.http.allow.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.1", "*.example.com"]);
        assert_eq!(config.http.max_record_bytes, 4096);
        assert_eq!(config.http.max_page_bytes, 64 * 1024 * 1024);

        let env = |name: &str| {
            (name == "OCPOLL_HTTP_DENY").then(|| "10.0.0.0/8, bad.example.com".to_owned())
        };
        let config = Config::load(&flags(&["--config", file_arg]), env, &dirs(tmp.path())).unwrap();
        let shown: Vec<String> = config.http.deny.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "bad.example.com"]);

        let env = |name: &str| (name == "OCPOLL_HTTP_ALLOW").then(|| "10.0.0.0/33".to_owned());
        let error = Config::load(&flags(&[]), env, &dirs(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("OCPOLL_HTTP_ALLOW"), "{error}");
        assert!(error.contains("is not a host rule"), "{error}");
    }

    /// Issue 13, item 11: `[secrets]` from the file or comma-separated variables; not set, it
    /// allows everything.
    #[test]
    fn secrets_scope_comes_from_the_file_or_comma_separated_variables() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Config::load(&flags(&[]), |_| None, &dirs(tmp.path())).unwrap();
        assert_eq!(config.secrets.scope(), SecretScope::UNRESTRICTED);

        let file = tmp.path().join("c.toml");
        std::fs::write(
            &file,
            "[secrets]\nenv_prefixes = [\"CRM_\"]\nfile_roots = [\"/run/credentials/ocpoll\"]\n",
        )
        .unwrap();
        let file_arg = file.to_str().unwrap();
        let config =
            Config::load(&flags(&["--config", file_arg]), |_| None, &dirs(tmp.path())).unwrap();
        assert_eq!(
            config.secrets.scope(),
            SecretScope {
                env_prefixes: Some(vec!["CRM_".into()]),
                file_roots: Some(vec![PathBuf::from("/run/credentials/ocpoll")]),
            }
        );

        let env = |name: &str| match name {
            "OCPOLL_SECRETS_ENV_PREFIXES" => Some("CRM_, HUB_".to_owned()),
            "OCPOLL_SECRETS_FILE_ROOTS" => Some("/etc/ocpoll/secrets,/run/credentials".to_owned()),
            _ => None,
        };
        let config = Config::load(&flags(&["--config", file_arg]), env, &dirs(tmp.path())).unwrap();
        assert_eq!(
            config.secrets.env_prefixes,
            Some(vec!["CRM_".into(), "HUB_".into()])
        );
        assert_eq!(
            config.secrets.file_roots,
            Some(vec![
                PathBuf::from("/etc/ocpoll/secrets"),
                PathBuf::from("/run/credentials")
            ])
        );
        // An empty variable allows none.
        let env = |name: &str| (name == "OCPOLL_SECRETS_ENV_PREFIXES").then(String::new);
        let config = Config::load(&flags(&[]), env, &dirs(tmp.path())).unwrap();
        assert_eq!(config.secrets.env_prefixes, Some(Vec::new()));

        let env = |name: &str| (name == "OCPOLL_SECRETS_FILE_ROOTS").then(|| "secrets".to_owned());
        let error = Config::load(&flags(&[]), env, &dirs(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("OCPOLL_SECRETS_FILE_ROOTS"), "{error}");
        assert!(error.contains("not an absolute path"), "{error}");
    }

    #[test]
    fn retries_come_from_the_poll_configuration() {
        let poll = PollConfig {
            retries: 7,
            ..PollConfig::default()
        };
        let retry = RetryPolicy::from(&poll);
        assert_eq!(retry.retries, 7);
        assert_eq!(retry.max_retry_after, Duration::from_secs(300));
        assert_eq!(RetryPolicy::from(&PollConfig::default()).retries, 3);
    }

    #[test]
    fn a_missing_explicit_config_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope.toml");
        let result = Config::load(
            &flags(&["--config", missing.to_str().unwrap()]),
            |_| None,
            &dirs(tmp.path()),
        );
        assert!(matches!(result, Err(ConfigError::Read { .. })));
    }

    #[test]
    fn bad_env_value_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let result = Config::load(
            &flags(&[]),
            |name| (name == "OCPOLL_POLL_RETRIES").then(|| "many".to_owned()),
            &dirs(tmp.path()),
        );
        let error = result.unwrap_err().to_string();
        assert!(error.contains("OCPOLL_POLL_RETRIES"), "{error}");
        assert!(error.contains("many"), "{error}");
    }
}

#[cfg(test)]
mod metrics_addr_tests {
    use super::*;
    use clap::Parser;

    fn load(file: &str, env: Option<&str>) -> Result<Config, ConfigError> {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.toml");
        std::fs::write(&path, file).unwrap();
        let argv = ["ocpoll", "status", "--config", path.to_str().unwrap()];
        let flags = crate::cli::Cli::try_parse_from(argv)
            .unwrap()
            .config_flags();
        let dirs = PlatformDirs {
            config_dir: tmp.path().join("config"),
            state_dir: tmp.path().join("state"),
        };
        Config::load(
            &flags,
            |name| {
                env.filter(|_| name == "OCPOLL_DAEMON_METRICS_ADDR")
                    .map(str::to_owned)
            },
            &dirs,
        )
    }

    #[test]
    fn metrics_addr_is_a_socket_address_from_the_file_or_the_environment() {
        let config = load("[daemon]\nmetrics_addr = \"127.0.0.1:9464\"\n", None).unwrap();
        assert_eq!(
            config.daemon.metrics_addr,
            Some(([127, 0, 0, 1], 9464).into())
        );
        let config = load("", Some("[::1]:9000")).unwrap();
        assert_eq!(config.daemon.metrics_addr.map(|a| a.port()), Some(9000));

        let error = load("", Some("localhost")).unwrap_err().to_string();
        assert!(error.contains("OCPOLL_DAEMON_METRICS_ADDR"), "{error}");
        let error = load("[daemon]\nmetrics_addr = \"9464\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("socket address"), "{error}");
    }
}

#[cfg(test)]
mod listen_tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.toml");
        std::fs::write(&path, file).unwrap();
        let flags = crate::cli::ConfigFlags {
            config: Some(path),
            ..Default::default()
        };
        let dirs = PlatformDirs {
            config_dir: tmp.path().join("config"),
            state_dir: tmp.path().join("state"),
        };
        Config::load(
            &flags,
            |name| {
                env.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            },
            &dirs,
        )
    }

    #[test]
    fn listen_comes_from_the_file_or_the_environment_with_its_defaults() {
        let config = load("", &[]).unwrap();
        assert_eq!(config.listen, ListenConfig::default());
        assert!(
            config.listen.settings().is_none(),
            "nothing received by default"
        );

        let config = load(
            "[listen]\naddr = \"127.0.0.1:8480\"\nmax_body_bytes = 4096\n",
            &[("OCPOLL_LISTEN_BODY_TIMEOUT_SECONDS", "3")],
        )
        .unwrap();
        let settings = config.listen.settings().unwrap();
        assert_eq!(settings.addr.port(), 8480);
        assert_eq!(settings.max_body_bytes, 4096);
        assert_eq!(settings.body_timeout, Duration::from_secs(3));
        assert_eq!(settings.header_timeout, Duration::from_secs(10));

        let config = load("", &[("OCPOLL_LISTEN_ADDR", "127.0.0.1:9000")]).unwrap();
        assert_eq!(config.listen.addr.map(|a| a.port()), Some(9000));
        let error = load("", &[("OCPOLL_LISTEN_ADDR", "8480")]).unwrap_err();
        assert!(error.to_string().contains("OCPOLL_LISTEN_ADDR"), "{error}");
        let error = load("[listen]\nadress = \"127.0.0.1:1\"\n", &[]).unwrap_err();
        assert!(error.to_string().contains("adress"), "{error}");
    }
}
