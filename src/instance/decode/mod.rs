//! Decoding: a parsed instance file (`serde_json::Value`) into an [`Instance`], checking every
//! rule of docs/instances.md on the way and collecting every problem as a [`Finding`].
//!
//! Open Connectors accepts loose typing (`"true"`, `"15"`), so this is hand-written over the JSON
//! value rather than derived: a derive stops at the first error, and users need all of them.
//! No I/O happens here except through [`SecretSource`], which resolves `${env:..}` and
//! `${file:..}` references; tests pass a fake one.
//!
//! This file holds the instance-level keys, secrets and loose typing; `auth` picks the
//! authentication method, `resource` decodes each entry of `event.poller.configuration`.

use crate::dates::{DateFormat, Zone};
use crate::instance::finding::{Finding, JsonPath, Severity};
use crate::instance::model::{
    Auth, ClientAuth, DateField, DatesConfig, FieldPath, HttpOptions, Instance,
    NotificationOptions, OAuth2, OtherKeys, Pagination, Resource, VendorType,
};
use crate::instance::scope::{FileRefusal, SecretScope};
use crate::instance::secret::Secret;
use crate::json;
use crate::url_macros::UrlTemplate;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

mod auth;
mod resource;
mod webhook;

/// Where `${env:NAME}` and `${file:PATH}` references get their values. `Sync`: instance files
/// are loaded on several threads.
pub trait SecretSource: Sync {
    fn env(&self, name: &str) -> Option<String>;
    fn file(&self, path: &Path) -> std::io::Result<String>;

    /// What references may read (config.toml's `[secrets]`); a reference outside it is an
    /// error of its instance, whatever [`UnresolvedSecrets`] says.
    fn scope(&self) -> &SecretScope {
        &SecretScope::UNRESTRICTED
    }
}

/// What a secret reference that cannot be resolved means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnresolvedSecrets {
    /// `validate` and `status`: they only read the file, which is often checked on another
    /// machine than the one that runs it.
    Warn,
    /// `try`, `tick` and `run`: the instance cannot work without them.
    Fail,
}

impl UnresolvedSecrets {
    /// The one severity rule for a reference that does not resolve (issue 14): a warning where
    /// the file is only read, an error of the instance where it is used. A reference the
    /// `[secrets]` scope refuses is an error everywhere (see `resolve`).
    pub fn severity(self) -> Severity {
        match self {
            UnresolvedSecrets::Warn => Severity::Warning,
            UnresolvedSecrets::Fail => Severity::Error,
        }
    }
}

/// The one wording of a secret reference that did not resolve, whichever command reports it
/// (issue 14): `unresolved secret: set ACME_API_KEY`, `unresolved secret: file
/// /run/credentials/key not readable (no such file)`. `file` is the reference's file as
/// resolved against the instance's folder, with why it could not be read.
fn unresolved_secret(reference: &SecretRef<'_>, file: Option<(&Path, &str)>) -> String {
    match (reference, file) {
        (SecretRef::Env(""), _) => "unresolved secret: ${env:} names no variable".to_owned(),
        (SecretRef::File(""), _) => "unresolved secret: ${file:} names no file".to_owned(),
        (SecretRef::Env(name), _) => format!("unresolved secret: set {name}"),
        (SecretRef::File(_), Some((path, reason))) => format!(
            "unresolved secret: file {} not readable ({reason})",
            path.display()
        ),
        (SecretRef::File(path), None) => format!("unresolved secret: file {path} not readable"),
    }
}

/// Everything decoding needs besides the JSON itself.
pub struct DecodeContext<'a> {
    /// The file stem, the instance's name when `name` is missing or a placeholder.
    pub file_stem: &'a str,
    /// The instance file's folder: relative `${file:..}` and `http.ca.file` paths start here.
    pub base_dir: &'a Path,
    pub unresolved: UnresolvedSecrets,
    pub secrets: &'a dyn SecretSource,
}

/// The result of decoding one file: the instance when it has no errors, and all findings.
#[derive(Debug)]
pub struct Decoded {
    pub instance: Option<Instance>,
    /// The instance's name whenever it can be told (`name`, or the file stem), even when the
    /// file has other errors: two files with one name are both invalid whatever else is wrong.
    pub name: Option<String>,
    pub findings: Vec<Finding>,
}

/// Decodes one instance file's JSON value.
pub fn decode(root: &Value, ctx: &DecodeContext) -> Decoded {
    let mut decoder = Decoder {
        ctx,
        findings: Vec::new(),
        base_url_configured: false,
        name: None,
        provider_code: None,
    };
    let instance = decoder.instance(root);
    let has_errors = decoder.findings.iter().any(Finding::is_error);
    Decoded {
        instance: if has_errors { None } else { instance },
        name: decoder.name,
        findings: decoder.findings,
    }
}

/// A string read from the file, after secret references were resolved.
enum Text {
    Absent,
    /// A `${env:..}`/`${file:..}` reference that could not be resolved (already reported).
    Unresolved,
    Value(String),
}

/// Configuration keys whose values are credentials: never printed, checked for placeholders.
const SECRET_KEYS: &[&str] = &[
    "password",
    "api.key",
    "oauth.access.token",
    "oauth.api.key",
    "oauth.api.secret",
    "oauth.user.refresh_token",
    "oauth.token.params",
    "elements.user.secret",
    "elements.organization.secret",
    "elements.instance.token",
    "event.notification.signature.key",
    "webhook.signature.key",
];

/// The longest polling interval accepted: a year.
const MAX_INTERVAL_SECONDS: u64 = 365 * 24 * 3600;

/// Top-level instance keys; finding one inside `event.poller.configuration` means a brace is
/// misplaced (the Salesloft seed does exactly this).
const INSTANCE_LEVEL_KEYS: &[&str] = &[
    "name",
    "tags",
    "element",
    "configuration",
    "providerData",
    "eventsEnabled",
];

/// The keys a resource object understands.
const RESOURCE_KEYS: &[&str] = &[
    "url",
    "idField",
    "datesConfiguration",
    "recordsPath",
    "pagination",
    "pathParams",
    "lookbackSeconds",
    "maxPages",
    "maxPollSeconds",
];

/// The keys of `datesConfiguration`.
const DATES_KEYS: &[&str] = &[
    "updatedDateField",
    "updatedDateFormat",
    "updatedDateTimezone",
    "createdDateField",
    "createdDateFormat",
    "createdDateTimezone",
];

struct Decoder<'a> {
    ctx: &'a DecodeContext<'a>,
    findings: Vec<Finding>,
    /// `base.url` is set (possibly invalid): relative URLs then get no second error for it.
    base_url_configured: bool,
    /// The instance's name as soon as it is known (see [`Decoded::name`]).
    name: Option<String>,
    /// `providerData.code`, read before the configuration that uses it (OAuth 2).
    provider_code: Option<Secret>,
}

impl Decoder<'_> {
    fn error(&mut self, path: JsonPath, message: impl Into<String>) {
        self.findings.push(Finding::error(path, message));
    }

    fn warning(&mut self, path: JsonPath, message: impl Into<String>) {
        self.findings.push(Finding::warning(path, message));
    }

    /// A warning for each key of `map` that is not in `known` but close to a key that is: a
    /// misspelled key is ignored like any unknown one, and the setting it meant is missing.
    /// Unknown keys near nothing known stay silent (providers have many).
    fn misspelled_keys(&mut self, map: &Map<String, Value>, path: &JsonPath, known: &[&str]) {
        for key in map.keys() {
            if let Some(meant) = near_miss(key, known) {
                self.warning(path.key(key), misspelled(key, meant));
            }
        }
    }

    fn instance(&mut self, root: &Value) -> Option<Instance> {
        let root_path = JsonPath::root();
        let Some(root) = root.as_object() else {
            self.error(
                root_path,
                format!(
                    "an instance file holds one JSON object (the POST /instances body), found {}",
                    json::a_type(root)
                ),
            );
            return None;
        };
        self.misspelled_keys(root, &root_path, INSTANCE_LEVEL_KEYS);
        let name = self.instance_name(root);
        self.name.clone_from(&name);
        let element_key = self.element_key(root);
        self.provider_data(root);
        let tags = self.tags(root);
        let config_path = root_path.key("configuration");
        let empty = Map::new();
        let config = match root.get("configuration") {
            Some(Value::Object(config)) => config,
            Some(other) => {
                self.error(
                    config_path.clone(),
                    format!("expected an object, found {}", json::a_type(other)),
                );
                &empty
            }
            None => {
                self.error(
                    config_path.clone(),
                    "missing \"configuration\" object (the instance's settings)",
                );
                &empty
            }
        };
        let config = ConfigView {
            map: config,
            path: config_path,
        };
        let known: Vec<&str> = [
            OWN_CONFIGURATION_KEYS,
            SECRET_KEYS,
            OPEN_CONNECTORS_KEYS,
            webhook::WEBHOOK_KEYS,
        ]
        .concat();
        self.misspelled_keys(config.map, &config.path, &known);
        self.configuration(name?, element_key, tags, &config)
    }

    fn instance_name(&mut self, root: &Map<String, Value>) -> Option<String> {
        let path = JsonPath::root().key("name");
        let name = match root.get("name") {
            None => return Some(self.ctx.file_stem.to_owned()),
            Some(Value::String(name)) if is_placeholder(name) || name.trim().is_empty() => {
                self.warning(
                    path,
                    format!(
                        "{name:?} is a placeholder; the instance is named after its file: \"{}\"",
                        self.ctx.file_stem
                    ),
                );
                return Some(self.ctx.file_stem.to_owned());
            }
            Some(Value::String(name)) => name.clone(),
            Some(other) => {
                self.error(
                    path,
                    format!("expected a string, found {}", json::a_type(other)),
                );
                return None;
            }
        };
        if name.contains('/') {
            self.error(path, format!("instance name {name:?} may not contain '/'"));
            return None;
        }
        Some(name)
    }

    fn element_key(&mut self, root: &Map<String, Value>) -> Option<String> {
        let path = JsonPath::root().key("element");
        match root.get("element") {
            None => {
                self.warning(
                    path,
                    "missing \"element\": {\"key\": ...}; events will carry no elementKey",
                );
                None
            }
            Some(Value::Object(element)) => match element.get("key") {
                Some(Value::String(key)) => Some(key.clone()),
                Some(other) => {
                    let message = format!("expected a string, found {}", json::a_type(other));
                    self.error(path.key("key"), message);
                    None
                }
                None => {
                    // Open Connectors identifies an element by its key or its id.
                    self.misspelled_keys(element, &path, &["key", "id"]);
                    self.warning(path, "missing \"key\"; events will carry no elementKey");
                    None
                }
            },
            Some(other) => {
                self.error(
                    path,
                    format!("expected an object, found {}", json::a_type(other)),
                );
                None
            }
        }
    }

    /// `providerData` is Open Connectors' OAuth code exchange: its `code` is exchanged once
    /// on the first poll when the configuration has an OAuth token endpoint
    /// (docs/instances.md#oauth-2); the rest is kept and ignored. A placeholder left in it
    /// shows the body was pasted unfinished.
    fn provider_data(&mut self, root: &Map<String, Value>) {
        let path = JsonPath::root().key("providerData");
        let Some(Value::Object(data)) = root.get("providerData") else {
            return;
        };
        for (key, value) in data {
            if value.as_str().is_some_and(is_placeholder) {
                self.warning(
                    path.key(key),
                    "looks like a placeholder (value hidden); put the provider's authorization \
                     code here, or leave it out and run `ocpoll auth INSTANCE`",
                );
            }
        }
        let view = ConfigView {
            map: data,
            path: path.clone(),
        };
        if let Text::Value(code) = self.text(&view, "code")
            && !is_placeholder(&code)
            && !code.trim().is_empty()
        {
            self.provider_code = Some(Secret::new(code));
        }
    }

    fn tags(&mut self, root: &Map<String, Value>) -> Vec<String> {
        let path = JsonPath::root().key("tags");
        let Some(value) = root.get("tags") else {
            return Vec::new();
        };
        let Some(items) = value.as_array() else {
            let message = format!(
                "expected an array of strings, found {}",
                json::a_type(value)
            );
            self.error(path, message);
            return Vec::new();
        };
        let mut tags = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match item {
                Value::String(tag) if is_placeholder(tag) => self.warning(
                    path.index(index),
                    format!("{tag:?} looks like a placeholder tag"),
                ),
                Value::String(tag) => tags.push(tag.clone()),
                other => {
                    let message = format!("expected a string, found {}", json::a_type(other));
                    self.error(path.index(index), message);
                }
            }
        }
        tags
    }

    fn configuration(
        &mut self,
        name: String,
        element_key: Option<String>,
        tags: Vec<String>,
        config: &ConfigView,
    ) -> Option<Instance> {
        let enabled_key = "event.notification.enabled";
        let enabled = self.loose_bool(config, enabled_key);
        let events_enabled = enabled.unwrap_or(false);
        if enabled == Some(false) || !config.map.contains_key(enabled_key) {
            self.disabled_with_resources(config);
        }
        let vendor = self.vendor_type(config);
        let polling_enabled = events_enabled && vendor == VendorType::Polling;
        let callback_url = self.callback_url(config, events_enabled);
        let signature_keys = self.signature_keys(config);
        let refresh_interval = self.refresh_interval(config, polling_enabled);
        let base_url = self.absolute_url(config, "base.url");
        self.base_url_configured = config.map.contains_key("base.url");
        let auth = self.auth(config);
        let http = self.http_options(config);
        let notification = self.notification_options(config);
        let resources = match vendor {
            VendorType::Polling => self.resources(config, base_url.as_ref(), polling_enabled),
            // Reported as ignored by `webhook`; not decoded, so its problems do not count.
            VendorType::Webhooks => Some(Vec::new()),
        };
        let webhook = self.webhook(config, vendor);
        let other_configuration = OtherKeys::new(
            config
                .map
                .iter()
                .filter(|(key, _)| !is_known_configuration_key(key))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        );
        Some(Instance {
            name,
            element_key,
            tags,
            events_enabled,
            vendor,
            callback_url: callback_url?,
            signature_keys,
            refresh_interval,
            base_url,
            auth: Box::new(auth?),
            http: http?,
            notification: notification?,
            resources: resources?,
            webhook: webhook?.map(Box::new),
            other_configuration,
        })
    }

    /// SPEC: a disabled instance is valid and not polled; with resources configured, that is
    /// rarely what the file's author meant.
    fn disabled_with_resources(&mut self, config: &ConfigView) {
        let key = "event.notification.enabled";
        let has_resources = match config.map.get("event.poller.configuration") {
            Some(Value::Object(resources)) => !resources.is_empty(),
            Some(Value::String(text)) => !text.trim().is_empty(),
            _ => false,
        };
        if !has_resources {
            return;
        }
        let message = if config.map.contains_key(key) {
            "events are disabled, so nothing will be polled although \"event.poller.configuration\" \
             lists resources; set it to true to poll them"
        } else {
            "missing, so events are disabled (the default) and nothing will be polled although \
             \"event.poller.configuration\" lists resources; add \"event.notification.enabled\": true \
             to poll them"
        };
        self.warning(config.path(key), message);
    }

    fn vendor_type(&mut self, config: &ConfigView) -> VendorType {
        let key = "event.vendor.type";
        match self.text(config, key) {
            Text::Value(kind) => match kind.to_ascii_lowercase().as_str() {
                "polling" => VendorType::Polling,
                "webhooks" | "webhook" => VendorType::Webhooks,
                _ => {
                    self.error(
                        config.path(key),
                        format!(
                            "{} is not an event type; use \"polling\" or \"webhooks\"",
                            config.written(key)
                        ),
                    );
                    VendorType::Polling
                }
            },
            Text::Absent | Text::Unresolved => VendorType::Polling,
        }
    }

    /// `Some(url)` or `Some(None)` when valid, `None` after reporting an error.
    fn callback_url(&mut self, config: &ConfigView, events_enabled: bool) -> Option<Option<Url>> {
        let key = "event.notification.callback.url";
        if events_enabled && !config.map.contains_key(key) {
            self.error(
                config.path(key),
                "events are enabled but no callback URL is set; add \"event.notification.callback.url\"",
            );
            return None;
        }
        let before = self.error_count();
        let url = self.absolute_url(config, key);
        (self.error_count() == before).then_some(url)
    }

    fn error_count(&self) -> usize {
        self.findings.iter().filter(|f| f.is_error()).count()
    }

    /// An absolute http(s) URL at `key`, if present and valid (problems are reported).
    fn absolute_url(&mut self, config: &ConfigView, key: &str) -> Option<Url> {
        let Text::Value(text) = self.text(config, key) else {
            return None;
        };
        match parse_http_url(&text) {
            Ok(url) => Some(url),
            Err(reason) => {
                self.error(
                    config.path(key),
                    format!("{} {reason}", config.written(key)),
                );
                None
            }
        }
    }

    fn signature_keys(&mut self, config: &ConfigView) -> Vec<Secret> {
        let key = "event.notification.signature.key";
        let path = config.path(key);
        match config.map.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut keys = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    if let Some(secret) = self.signature_key(item, path.index(index), index + 1) {
                        keys.push(secret);
                    }
                }
                if items.is_empty() {
                    self.warning(path, "an empty list: notifications will not be signed");
                }
                keys
            }
            Some(value) => self.signature_key(value, path, 1).into_iter().collect(),
        }
    }

    /// One signature key; a `whsec_` key must decode, or no notification could be signed
    /// (found now rather than at the first delivery).
    fn signature_key(&mut self, value: &Value, path: JsonPath, position: usize) -> Option<Secret> {
        let secret = self.secret_value(value, path.clone())?;
        if let Err(error) = crate::outbox::sign::check_key(&secret, position) {
            self.error(path, error.to_string());
            return None;
        }
        Some(secret)
    }

    fn refresh_interval(&mut self, config: &ConfigView, required: bool) -> Option<Duration> {
        let minutes_key = "event.poller.refresh_interval";
        let seconds_key = "event.poller.refresh_seconds";
        let minutes = self.loose_count(config, minutes_key, "a number of minutes");
        let seconds = self.loose_count(config, seconds_key, "a number of seconds");
        let present = |key: &str| config.map.contains_key(key);
        if minutes == Some(0) {
            self.error(
                config.path(minutes_key),
                "the interval must be at least 1 minute",
            );
        }
        if seconds == Some(0) {
            self.error(
                config.path(seconds_key),
                "the interval must be at least 1 second",
            );
        }
        if required && !present(minutes_key) && !present(seconds_key) {
            self.error(
                config.path(minutes_key),
                "missing: how often to poll, in whole minutes (e.g. \"15\")",
            );
        }
        if minutes.is_some_and(|minutes| minutes > MAX_INTERVAL_SECONDS / 60) {
            self.error(
                config.path(minutes_key),
                format!(
                    "must be at most a year ({} minutes)",
                    MAX_INTERVAL_SECONDS / 60
                ),
            );
            return None;
        }
        if seconds.is_some_and(|seconds| seconds > MAX_INTERVAL_SECONDS) {
            self.error(
                config.path(seconds_key),
                format!("must be at most a year ({MAX_INTERVAL_SECONDS} seconds)"),
            );
            return None;
        }
        match (seconds, minutes) {
            (Some(seconds), _) if seconds > 0 => Some(Duration::from_secs(seconds)),
            (_, Some(minutes)) if minutes > 0 => Some(Duration::from_secs(minutes * 60)),
            _ => None,
        }
    }

    /// The secret at `key` (checked for placeholders), `None` when absent or invalid.
    fn secret_key(&mut self, config: &ConfigView, key: &str) -> Option<Secret> {
        let value = config.map.get(key)?;
        self.secret_value(value, config.path(key))
    }

    fn secret_value(&mut self, value: &Value, path: JsonPath) -> Option<Secret> {
        let Value::String(raw) = value else {
            self.error(
                path,
                format!("expected a string, found {}", json::a_type(value)),
            );
            return None;
        };
        match self.resolve(raw, || path.clone()) {
            Text::Value(secret) => {
                if is_placeholder(&secret) {
                    self.warning(
                        path,
                        "looks like a placeholder, not a real secret (value hidden); \
                         set the real one or use ${env:NAME}",
                    );
                }
                Some(Secret::new(secret))
            }
            // Reported already; an empty secret keeps the instance usable in validate.
            Text::Unresolved => Some(Secret::default()),
            Text::Absent => None,
        }
    }

    fn http_options(&mut self, config: &ConfigView) -> Option<HttpOptions> {
        let mut http = HttpOptions::default();
        let before = self.error_count();
        if let Some(value) = config.map.get("http.headers") {
            http.headers = self.headers(value, config.path("http.headers"));
        }
        if let Some(seconds) =
            self.loose_count(config, "http.timeout.seconds", "a number of seconds")
        {
            http.timeout = self.positive_seconds(config, "http.timeout.seconds", seconds);
        }
        if let Text::Value(file) = self.text(config, "http.ca.file") {
            http.ca_file = Some(self.ctx.base_dir.join(file));
        }
        if let Some(value) = config.map.get("http.allowed.origins") {
            http.allowed_origins = self.origins(value, config.path("http.allowed.origins"));
        }
        (self.error_count() == before).then_some(http)
    }

    /// `http.allowed.origins`: an array of origins (`https://host[:port]`, nothing after it),
    /// or one string of them separated by commas or spaces.
    fn origins(&mut self, value: &Value, path: JsonPath) -> Vec<url::Origin> {
        let texts: Vec<(String, JsonPath)> = match value {
            Value::Array(items) => {
                let mut texts = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(text) => texts.push((text.to_owned(), path.index(index))),
                        None => self.error(
                            path.index(index),
                            format!("expected an origin string, found {}", json::a_type(item)),
                        ),
                    }
                }
                texts
            }
            Value::String(text) => text
                .split([',', ' '])
                .filter(|part| !part.is_empty())
                .map(|part| (part.to_owned(), path.clone()))
                .collect(),
            other => {
                let message = format!(
                    "expected an array of origins (\"https://host[:port]\"), found {}",
                    json::a_type(other)
                );
                self.error(path, message);
                return Vec::new();
            }
        };
        let mut origins = Vec::new();
        for (text, path) in texts {
            match parse_http_url(text.trim()) {
                Ok(url)
                    if url.path() == "/"
                        && url.query().is_none()
                        && url.fragment().is_none()
                        && url.username().is_empty()
                        && url.password().is_none() =>
                {
                    origins.push(url.origin());
                }
                _ => self.error(
                    path,
                    format!(
                        "{} is not an origin: write scheme://host[:port], with no path, query \
                         or user",
                        describe_value(&Value::String(text))
                    ),
                ),
            }
        }
        origins
    }

    fn headers(&mut self, value: &Value, path: JsonPath) -> Vec<(String, Secret)> {
        let Some(map) = value.as_object() else {
            let message = format!(
                "expected an object of header names to values, found {}",
                json::a_type(value)
            );
            self.error(path, message);
            return Vec::new();
        };
        let mut headers = Vec::new();
        for (name, value) in map {
            if !is_header_name(name) {
                self.error(
                    path.key(name),
                    format!("{name:?} is not a valid HTTP header name"),
                );
                continue;
            }
            if let Some(secret) = self.secret_value(value, path.key(name)) {
                headers.push((name.clone(), secret));
            }
        }
        headers
    }

    fn positive_seconds(&mut self, config: &ConfigView, key: &str, seconds: u64) -> Duration {
        if seconds == 0 {
            self.error(config.path(key), "must be at least 1 second");
        }
        Duration::from_secs(seconds.max(1))
    }

    fn notification_options(&mut self, config: &ConfigView) -> Option<NotificationOptions> {
        let mut options = NotificationOptions::default();
        let before = self.error_count();
        let size_key = "event.notification.batch.size";
        if let Some(size) = self.loose_count(config, size_key, "a number of events") {
            if size == 0 {
                self.error(config.path(size_key), "must be at least 1 event");
            }
            options.batch_size = usize::try_from(size).unwrap_or(usize::MAX);
        }
        let bytes_key = "event.notification.batch.bytes";
        if let Some(bytes) = self.loose_count(config, bytes_key, "a number of bytes") {
            if bytes < 1024 {
                self.error(config.path(bytes_key), "must be at least 1024 bytes");
            }
            options.batch_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        let timeout_key = "event.notification.timeout.seconds";
        if let Some(seconds) = self.loose_count(config, timeout_key, "a number of seconds") {
            options.timeout = self.positive_seconds(config, timeout_key, seconds);
        }
        let retry_key = "event.notification.retry.hours";
        if let Some(hours) = self.loose_count(config, retry_key, "a number of hours") {
            options.retry_for = Some(Duration::from_secs(hours.saturating_mul(3600)));
        }
        (self.error_count() == before).then_some(options)
    }

    // ---- Loose typing -------------------------------------------------------------------

    /// The string at `key`, with secret references resolved. Reports wrong types.
    fn text(&mut self, view: &ConfigView, key: &str) -> Text {
        match view.map.get(key) {
            None | Some(Value::Null) => Text::Absent,
            Some(Value::String(raw)) => self.resolve(raw, || view.path(key)),
            Some(other) => {
                self.error(
                    view.path(key),
                    format!("expected a string, found {}", json::a_type(other)),
                );
                Text::Unresolved
            }
        }
    }

    /// Resolves a whole-value `${env:NAME}` or `${file:PATH}` reference. `path` is only
    /// built when there is something to report (this runs for every string of every file).
    fn resolve(&mut self, raw: &str, path: impl FnOnce() -> JsonPath) -> Text {
        let Some(reference) = SecretRef::parse(raw) else {
            return Text::Value(raw.to_owned());
        };
        let secrets = self.ctx.secrets;
        // The scope's refusal is a decision of whoever runs ocpoll: an error even for
        // `validate`, in its own words. Anything else is unresolved, in the one wording.
        let resolved = match &reference {
            SecretRef::Env("") | SecretRef::File("") => {
                Err((unresolved_secret(&reference, None), false))
            }
            SecretRef::Env(name) => match secrets.scope().check_env(name) {
                Err(refused) => Err((format!("{raw}: {refused}"), true)),
                Ok(()) => secrets
                    .env(name)
                    .ok_or_else(|| (unresolved_secret(&reference, None), false)),
            },
            SecretRef::File(file) => match credentials_path(file, |name| secrets.env(name)) {
                Err(reason) => Err((reason, false)),
                Ok(file) => {
                    let full = self.ctx.base_dir.join(&*file);
                    let cannot_read = |error: &std::io::Error| {
                        let reason = io_reason(error);
                        (
                            unresolved_secret(&reference, Some((&full, reason.as_str()))),
                            false,
                        )
                    };
                    match secrets.scope().check_file(&full) {
                        Err(FileRefusal::Outside(refused)) => {
                            Err((format!("{raw}: {refused}"), true))
                        }
                        Err(FileRefusal::Unresolved(error)) => Err(cannot_read(&error)),
                        Ok(readable) => secrets
                            .file(&readable)
                            .map(trim_one_newline)
                            .map_err(|error| cannot_read(&error)),
                    }
                }
            },
        };
        match resolved {
            Ok(value) => Text::Value(value),
            Err((message, refused)) => {
                let mut finding = Finding::error(path(), message);
                if !refused {
                    finding.severity = self.ctx.unresolved.severity();
                }
                self.findings.push(finding);
                Text::Unresolved
            }
        }
    }

    /// The value at `key`, a whole-string secret reference resolved; `None` when absent or
    /// unresolved (reported already).
    fn resolved_value(&mut self, view: &ConfigView, key: &str) -> Option<Value> {
        match view.map.get(key)? {
            Value::String(raw) => match self.resolve(raw, || view.path(key)) {
                Text::Value(text) => Some(Value::String(text)),
                Text::Absent | Text::Unresolved => None,
            },
            other => Some(other.clone()),
        }
    }

    fn loose_bool(&mut self, view: &ConfigView, key: &str) -> Option<bool> {
        let value = self.resolved_value(view, key)?;
        let parsed = match &value {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        };
        if parsed.is_none() {
            self.error(
                view.path(key),
                format!("{} is not true or false", view.written(key)),
            );
        }
        parsed
    }

    /// A whole, non-negative number given as a JSON number or a numeric string.
    fn loose_count(&mut self, view: &ConfigView, key: &str, what: &str) -> Option<u64> {
        let value = self.resolved_value(view, key)?;
        let parsed = match &value {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)
                    .map(|f| f as u64)
            }),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.error(
                view.path(key),
                format!("{} is not {what}", view.written(key)),
            );
        }
        parsed
    }
}

/// A view of one JSON object and where it sits in the file.
struct ConfigView<'v> {
    map: &'v Map<String, Value>,
    path: JsonPath,
}

impl<'v> ConfigView<'v> {
    fn path(&self, key: &str) -> JsonPath {
        self.path.key(key)
    }

    /// The object at `key` as a view of its own: `Ok(None)` when absent, `Err` with the
    /// error message when it is not an object (its path is `self.path(key)`).
    fn object(&self, key: &str) -> Result<Option<ConfigView<'v>>, String> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(ConfigView {
                map,
                path: self.path(key),
            })),
            Some(other) => Err(format!("expected an object, found {}", json::a_type(other))),
        }
    }

    /// The value at `key` as the file writes it, for messages. A `${env:..}`/`${file:..}`
    /// reference shows as the reference, never as the value it stands for.
    fn written(&self, key: &str) -> String {
        match self.map.get(key) {
            Some(Value::String(text)) => format!("{text:?}"),
            Some(other) => describe_value(other),
            None => "(missing)".to_owned(),
        }
    }

    /// True when the value at `key` is a secret reference: its resolved value stays unprinted.
    fn is_reference(&self, key: &str) -> bool {
        matches!(self.map.get(key), Some(Value::String(text)) if SecretRef::parse(text).is_some())
    }
}

/// A string value that is wholly a secret reference.
#[derive(Debug, PartialEq, Eq)]
enum SecretRef<'a> {
    Env(&'a str),
    File(&'a str),
}

impl<'a> SecretRef<'a> {
    fn parse(raw: &'a str) -> Option<SecretRef<'a>> {
        let inner = raw.strip_prefix("${")?.strip_suffix('}')?;
        if let Some(name) = inner.strip_prefix("env:") {
            Some(SecretRef::Env(name))
        } else {
            inner.strip_prefix("file:").map(SecretRef::File)
        }
    }
}

/// A `${file:..}` path with a leading `$CREDENTIALS_DIRECTORY` replaced by that variable.
///
/// systemd's `LoadCredential=` puts a service's secrets in a folder it names in this variable
/// (its path depends on the unit and the systemd version), so instance files need a way to say
/// "there". Only this one variable, only at the start: a general `$VAR` syntax would make every
/// file path's meaning depend on the environment. The variable names a folder, not a secret, so
/// `[secrets] env_prefixes` does not apply; `file_roots` judges the path it leads to.
fn credentials_path(
    file: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<std::borrow::Cow<'_, str>, String> {
    const VARIABLE: &str = "CREDENTIALS_DIRECTORY";
    let rest = match file
        .strip_prefix('$')
        .and_then(|f| f.strip_prefix(VARIABLE))
    {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return Ok(std::borrow::Cow::Borrowed(file)),
    };
    match env(VARIABLE) {
        Some(folder) if !folder.is_empty() => Ok(format!("{folder}{rest}").into()),
        _ => Err(format!(
            "unresolved secret: set {VARIABLE} (systemd sets it for a service with LoadCredential=)"
        )),
    }
}

fn trim_one_newline(mut content: String) -> String {
    if content.ends_with('\n') {
        content.pop();
        if content.ends_with('\r') {
            content.pop();
        }
    }
    content
}

/// The OS error without Rust's "(os error 2)" suffix.
pub(crate) fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// `xxxx...`, `<...>`, `<INSERT>` and the literal `null`: values users forgot to fill in.
pub fn is_placeholder(value: &str) -> bool {
    let value = value.trim();
    let all_x = value.len() >= 4 && value.chars().all(|c| c == 'x' || c == 'X');
    let bracketed = value.starts_with('<') && value.ends_with('>');
    all_x
        || bracketed
        || value.eq_ignore_ascii_case("null")
        || value.to_ascii_uppercase().contains("<INSERT")
}

/// Keys whose values must never be quoted in a message, even when they sit in the wrong place.
fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str())
        || ["secret", "password", "token", "key", "code"]
            .iter()
            .any(|word| key.contains(word))
}

fn looks_instance_level(key: &str) -> bool {
    INSTANCE_LEVEL_KEYS.contains(&key)
        || key.starts_with("event.")
        || key.starts_with("oauth.")
        || key.starts_with("elements.")
        || SECRET_KEYS.contains(&key)
}

/// ocpoll's own configuration keys (the credentials are in [`SECRET_KEYS`]).
const OWN_CONFIGURATION_KEYS: &[&str] = &[
    "event.notification.enabled",
    "event.vendor.type",
    "event.notification.callback.url",
    "event.notification.signature.key",
    "event.notification.batch.size",
    "event.notification.batch.bytes",
    "event.notification.timeout.seconds",
    "event.notification.retry.hours",
    "event.poller.refresh_interval",
    "event.poller.refresh_seconds",
    "event.poller.configuration",
    "base.url",
    "username",
    "api.key.header",
    "oauth.token.url",
    "oauth.client.auth",
    "oauth.callback.url",
    "oauth.scope",
    "oauth.authorization.url",
    "http.headers",
    "http.timeout.seconds",
    "http.ca.file",
    "http.allowed.origins",
];

/// Keys of Open Connectors instance bodies (the seeds, docs/instances.md) that ocpoll keeps and
/// ignores: known, so that none of them is taken for a misspelling of one of ocpoll's.
const OPEN_CONNECTORS_KEYS: &[&str] = &[
    "filter.response.nulls",
    "oauth.user.refresh_time",
    "oauth.user.token",
];

/// The keys the decoder reads, for [`super::reference`] (the man page's source) to be checked
/// against.
#[cfg(test)]
pub(crate) struct KnownKeys {
    pub configuration: Vec<&'static str>,
    pub resource: &'static [&'static str],
    pub dates: &'static [&'static str],
}

#[cfg(test)]
pub(crate) fn known_keys() -> KnownKeys {
    KnownKeys {
        configuration: OWN_CONFIGURATION_KEYS
            .iter()
            .chain(SECRET_KEYS)
            .chain(webhook::WEBHOOK_KEYS)
            .copied()
            .collect(),
        resource: RESOURCE_KEYS,
        dates: DATES_KEYS,
    }
}

fn misspelled(key: &str, meant: &str) -> String {
    format!("{key:?} is not a key ocpoll knows and is ignored; did you mean `{meant}`?")
}

fn is_known_configuration_key(key: &str) -> bool {
    OWN_CONFIGURATION_KEYS.contains(&key)
        || SECRET_KEYS.contains(&key)
        || webhook::WEBHOOK_KEYS.contains(&key)
}

/// The key of `known` that `key` is probably a misspelling of: equal but for case, or within a
/// small edit distance (one edit for keys of 4 to 7 characters, two from 8 on; a swap of two
/// neighbours is one edit). `None` for a known key and for one near nothing known.
fn near_miss<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    if known.contains(&key) {
        return None;
    }
    let most = match key.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    };
    let key = key.to_lowercase();
    known
        .iter()
        .map(|candidate| {
            (
                strsim::osa_distance(&key, &candidate.to_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, _)| *distance <= most)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_http_url(text: &str) -> Result<Url, &'static str> {
    let url = Url::parse(text).map_err(|_| "is not an absolute http(s) URL")?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("is not an absolute http(s) URL"),
    }
}

/// A short description for messages: short strings and numbers are quoted as written.
fn describe_value(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 40 => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => json::a_type(other).to_owned(),
    }
}

/// Resolves references against the real environment and file system.
pub struct SystemSecrets;

impl SecretSource for SystemSecrets {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Like [`SystemSecrets`], within a [`SecretScope`] (config.toml's `[secrets]`).
#[derive(Clone, Debug, Default)]
pub struct ScopedSecrets {
    pub scope: SecretScope,
}

impl ScopedSecrets {
    pub fn new(scope: SecretScope) -> ScopedSecrets {
        ScopedSecrets { scope }
    }
}

impl SecretSource for ScopedSecrets {
    fn env(&self, name: &str) -> Option<String> {
        SystemSecrets.env(name)
    }

    fn file(&self, path: &Path) -> std::io::Result<String> {
        SystemSecrets.file(path)
    }

    fn scope(&self) -> &SecretScope {
        &self.scope
    }
}

/// A helper for callers that only need the base directory of a file.
pub fn base_dir_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests;
