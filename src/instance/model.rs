//! The typed instance: what an instance file means once it has been decoded and checked.
//!
//! These types hold no raw JSON except what ocpoll does not understand (kept in [`OtherKeys`],
//! which prints only key names so that an unknown credential cannot leak through `Debug`).
//! Everything here is plain data; decoding lives in `decode`, file reading in `load`.

use crate::dates::{DateFormat, Zone};
use crate::instance::Secret;
use crate::url_macros::UrlTemplate;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// One connector instance: one instance file.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The `name` field, or the file stem when it is missing or a placeholder. State is keyed by it.
    pub name: String,
    /// `element.key` (e.g. `salesloft`); events carry it as `elementKey`.
    pub element_key: Option<String>,
    pub tags: Vec<String>,
    /// `event.notification.enabled`: a disabled instance is valid and never polled.
    pub events_enabled: bool,
    pub vendor: VendorType,
    pub callback_url: Option<Url>,
    /// `event.notification.signature.key`: several keys sign at once during a rotation.
    pub signature_keys: Vec<Secret>,
    /// How often each resource is polled.
    pub refresh_interval: Option<Duration>,
    pub base_url: Option<Url>,
    /// Boxed: most instances have none or a small one, and the largest variant would add
    /// 150 bytes to every decoded instance of a fleet.
    pub auth: Box<Auth>,
    pub http: HttpOptions,
    pub notification: NotificationOptions,
    pub resources: Vec<Resource>,
    /// A webhooks instance's receiving side (`webhook.*` keys); `None` for polling instances.
    /// Boxed: inline it was about 400 of an instance's 888 bytes, in every instance of a
    /// polling fleet too (4 MiB of a 10,000-instance tick).
    pub webhook: Option<Box<Webhook>>,
    /// Configuration keys ocpoll does not use (providers have many); kept, never printed.
    pub other_configuration: OtherKeys,
}

/// The interval assumed for an instance without one (validate reports it missing when events
/// are enabled, so this only covers odd cases).
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(15 * 60);

impl Instance {
    /// How often each of its resources is polled.
    pub fn poll_interval(&self) -> Duration {
        self.refresh_interval.unwrap_or(DEFAULT_POLL_INTERVAL)
    }

    /// True when `tick` and `run` should poll this instance.
    pub fn is_polled(&self) -> bool {
        self.events_enabled && self.vendor == VendorType::Polling && !self.resources.is_empty()
    }

    /// True when `run --listen` should receive webhooks for this instance.
    pub fn receives_webhooks(&self) -> bool {
        self.events_enabled && self.vendor == VendorType::Webhooks && self.webhook.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VendorType {
    Polling,
    /// Provider webhooks received by `run --listen` and relayed (docs/instances.md#webhooks).
    Webhooks,
}

/// A webhooks instance's receiving side (docs/instances.md#webhooks): how a provider's POST is
/// verified, recognised when retried, bounded, and turned into events.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// How the provider signs; `None` accepts any body that comes with the URL's token.
    pub signature: Option<WebhookSignature>,
    /// `webhook.delivery.header` (e.g. `X-GitHub-Delivery`): the provider's id of a delivery,
    /// the same on its retries. Without it, retries are recognised by the body's hash.
    pub delivery_header: Option<String>,
    /// `webhook.rate.per_minute`: receipts accepted per minute before 429.
    pub rate_per_minute: u32,
    /// `webhook.invalid.body`: `reject` (400, the default) or `raw` (one raw event).
    pub invalid_body: InvalidBody,
    /// `webhook.configuration`; `None` makes the whole body one event.
    pub standardize: Option<WebhookStandardize>,
}

impl Webhook {
    /// What `validate` says about how the instance receives, for its note.
    pub fn note(&self, name: &str) -> String {
        let signature = match &self.signature {
            Some(WebhookSignature::Hmac { header, .. }) => format!("HMAC-SHA256 in {header}"),
            Some(WebhookSignature::Standard { .. }) => "Standard Webhooks signatures".to_owned(),
            None => "no provider signature (the URL's token is the only check)".to_owned(),
        };
        let events = match &self.standardize {
            Some(_) => "events by webhook.configuration",
            None => "each body one event of objectType `webhook`",
        };
        format!(
            "webhooks: receives POST /webhooks/{name}/TOKEN (`ocpoll webhooks url {name}`); \
             {signature}; {events}"
        )
    }
}

/// The default of `webhook.rate.per_minute`: 100 a second, bursts of ten seconds' worth.
pub const WEBHOOK_RATE_DEFAULT: u32 = 6_000;

/// How a provider signs its webhooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookSignature {
    /// HMAC-SHA256 over the raw body in `header`, `prefix` then hex or base64 (GitHub:
    /// `X-Hub-Signature-256: sha256=<hex>`).
    Hmac {
        header: String,
        key: Secret,
        encoding: SignatureEncoding,
        prefix: String,
    },
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`);
    /// the key is a `whsec_` secret or plain bytes, as for ocpoll's own signatures.
    Standard { key: Secret },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// What a body that is not JSON, or lacks the configured records, becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidBody {
    /// 400 with the reason; the provider sees it failed.
    Reject,
    /// One event of objectType `webhook` whose record holds the body as text.
    Raw,
}

/// `webhook.configuration`: like a poller resource without a URL.
#[derive(Clone, Debug)]
pub struct WebhookStandardize {
    /// `recordsPath`; `None`: the body if an array, else its single array member, else the body.
    pub records_path: Option<FieldPath>,
    /// `idField`; empty (the default) identifies records by their content hash.
    pub id_field: FieldPath,
    pub object_type: WebhookObjectType,
    /// `eventTypeField`: looked up in each record, then in the body.
    pub event_type_field: Option<FieldPath>,
    /// `eventTypeMap`: the field's value (as text) to the event type; others are UPDATED.
    pub event_type_map: BTreeMap<String, crate::detect::EventType>,
    /// `datesConfiguration`: the event date; without it, the receipt time.
    pub dates: Option<DatesConfig>,
}

/// Where a webhook event's `objectType` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookObjectType {
    /// `objectType`, or `webhook` when neither key is given.
    Fixed(String),
    /// `objectTypeField`: a path in each record, else in the body.
    Field(FieldPath),
}

/// How requests to the provider authenticate (docs/instances.md), chosen by which keys are set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `username` + `password`: HTTP Basic.
    Basic {
        username: String,
        password: Secret,
    },
    /// `api.key` sent in `api.key.header` (default `Authorization`).
    ApiKey {
        header: String,
        key: Secret,
    },
    /// `oauth.access.token`: `Authorization: Bearer ...`.
    Bearer {
        token: Secret,
    },
    /// OAuth 2: the refresh-token grant when the file holds a refresh token, else the
    /// authorization-code flow (`providerData.code` or `ocpoll auth`). Tokens live in the
    /// state, never in the file.
    OAuth2(Box<OAuth2>),
    /// The Open Connectors hub: `Authorization: User ..., Organization ..., Element ...`.
    Hub {
        user: Secret,
        organization: Secret,
        element: Secret,
    },
}

impl Auth {
    /// A name for messages and `status`, never the credentials.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Basic { .. } => "basic",
            Auth::ApiKey { .. } => "api key",
            Auth::Bearer { .. } => "bearer token",
            Auth::OAuth2(oauth) if oauth.refresh_token.is_some() => "oauth2 refresh",
            Auth::OAuth2(_) => "oauth2 authorization code",
            Auth::Hub { .. } => "open connectors hub",
        }
    }
}

/// OAuth 2 settings (docs/instances.md#oauth-2): the client, its token endpoint, and where
/// its first tokens come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuth2 {
    /// `oauth.token.url`.
    pub token_url: Url,
    /// `oauth.api.key` and `oauth.api.secret`.
    pub client_id: Secret,
    pub client_secret: Secret,
    /// `oauth.user.refresh_token`; `None` in the authorization-code flow, where every token
    /// comes from the state.
    pub refresh_token: Option<Secret>,
    /// `oauth.client.auth`: how the client credentials reach the token endpoint.
    pub client_auth: ClientAuth,
    /// `oauth.token.params`: extra form fields of every token request (`audience`, `resource`).
    pub token_params: Vec<(String, String)>,
    /// `oauth.authorization.url`: where `ocpoll auth` sends the browser; its own query
    /// parameters (Google's `access_type=offline`) are kept.
    pub authorization_url: Option<Url>,
    /// `oauth.callback.url`: the redirect URI registered with the provider.
    pub callback_url: Option<Url>,
    /// `oauth.scope`, sent as is (space-separated scopes).
    pub scope: Option<String>,
    /// `providerData.code`: an authorization code exchanged once, on the first poll.
    pub code: Option<Secret>,
}

/// `oauth.client.auth`: RFC 6749 section 2.3.1 allows both; providers accept one or the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` as form fields (the default; Google, Salesforce).
    #[default]
    Body,
    /// HTTP Basic with the form-encoded id and secret.
    Basic,
}

/// Provider-request settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// `http.headers`: extra request headers. Values may carry tokens, so they are secrets.
    pub headers: Vec<(String, Secret)>,
    /// `http.timeout.seconds` (default 30).
    pub timeout: Duration,
    /// `http.ca.file`: extra PEM roots.
    pub ca_file: Option<PathBuf>,
    /// `http.allowed.origins`: origins besides a page's own that may receive the credentials
    /// and `http.headers` (a `Link` next page or a redirect there). Empty by default: the
    /// credentials go only to the origin of the URL they were configured for.
    pub allowed_origins: Vec<url::Origin>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            headers: Vec::new(),
            timeout: Duration::from_secs(30),
            ca_file: None,
            allowed_origins: Vec::new(),
        }
    }
}

/// Notification settings (docs/events.md, docs/design.md#the-outbox-and-delivery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationOptions {
    /// `event.notification.batch.size`: most events in one notification (default 1000).
    pub batch_size: usize,
    /// `event.notification.batch.bytes`: most bytes in one notification (default 1 MiB).
    pub batch_bytes: usize,
    /// `event.notification.timeout.seconds` (default 15).
    pub timeout: Duration,
    /// `event.notification.retry.hours`: how long a notification is retried before it is
    /// dead-lettered; `None` uses the global setting.
    pub retry_for: Option<Duration>,
}

impl Default for NotificationOptions {
    fn default() -> Self {
        NotificationOptions {
            batch_size: 1000,
            batch_bytes: 1024 * 1024,
            timeout: Duration::from_secs(15),
            retry_for: None,
        }
    }
}

/// One entry of `event.poller.configuration`.
#[derive(Clone, Debug)]
pub struct Resource {
    /// The key as configured (`contacts`, `calendars/{calendarId}/changed-events`); events carry
    /// it as `objectType`.
    pub key: String,
    pub url: UrlTemplate,
    /// `idField`; empty means "identify records by a hash of their canonical JSON".
    pub id_field: FieldPath,
    /// `datesConfiguration`; `None` is window or snapshot mode (see [`Resource::mode`]).
    pub dates: Option<DatesConfig>,
    /// `recordsPath`; `None` finds the records array by the default rules.
    pub records_path: Option<FieldPath>,
    pub pagination: Pagination,
    /// `pathParams`: values for `{name}` placeholders; several values fan the resource out.
    pub path_params: BTreeMap<String, Vec<String>>,
    /// `lookbackSeconds`: window re-read before the watermark (default 0, and 60 in window
    /// mode, where the watermark is the provider's clock at the previous poll).
    pub lookback: Duration,
    /// `maxPages` and `maxPollSeconds`: this resource's own caps on one poll (`[poll]
    /// max_pages` and `max_poll_seconds` otherwise).
    pub max_pages: Option<u64>,
    pub max_poll_time: Option<Duration>,
    pub other_keys: OtherKeys,
}

/// How a resource's changes are found (docs/design.md#change-detection).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PollMode<'r> {
    /// `datesConfiguration`: the newest updated date seen is the watermark.
    Watermark(&'r DatesConfig),
    /// No `datesConfiguration`, a `${date:}` macro in the URL: the provider filters by the
    /// previous poll's time, and every record it returns is a change.
    Window,
    /// Neither: every poll reads everything and compares it with the previous poll.
    Snapshot,
}

impl PollMode<'_> {
    /// As `validate`, `try` and the docs name it.
    pub fn name(self) -> &'static str {
        match self {
            PollMode::Watermark(_) => "watermark",
            PollMode::Window => "window",
            PollMode::Snapshot => "snapshot",
        }
    }
}

/// The default `lookbackSeconds` of a window-mode resource: a record committed at the provider
/// shortly before the previous poll's `Date` (but after its query ran) is still found.
pub const WINDOW_LOOKBACK_DEFAULT: Duration = Duration::from_secs(60);

impl Resource {
    /// Which mode the resource is polled in and what that means, for `validate`.
    pub fn mode_note(&self) -> String {
        match self.mode() {
            PollMode::Watermark(dates) => format!(
                "watermark mode: changes after the newest `{}` seen (datesConfiguration)",
                dates.updated.path
            ),
            PollMode::Window => format!(
                "window mode (a date filter in the URL, no datesConfiguration): the filter asks \
                 from the previous poll's time on the provider's clock minus lookbackSeconds \
                 ({}); every record returned is an UPDATED event, once; nothing is ever DELETED",
                self.lookback.as_secs()
            ),
            PollMode::Snapshot => "snapshot mode (no datesConfiguration, no date filter in the \
                 URL): every poll reads the whole resource and compares it with the previous \
                 one (CREATED, UPDATED, DELETED)"
                .to_owned(),
        }
    }

    pub fn mode(&self) -> PollMode<'_> {
        match &self.dates {
            Some(dates) => PollMode::Watermark(dates),
            None if self.url.has_date_macro() => PollMode::Window,
            None => PollMode::Snapshot,
        }
    }
}

/// Where a record keeps its dates and how to read them.
#[derive(Clone, Debug, PartialEq)]
pub struct DatesConfig {
    pub updated: DateField,
    pub created: Option<DateField>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DateField {
    pub path: FieldPath,
    pub format: DateFormat,
    pub zone: Zone,
}

/// How a poll walks pages (docs/instances.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pagination {
    /// Follow `elements-next-page-token` (with `nextPage=`/`pageSize=`) or `Link: rel="next"`.
    Auto {
        page_size: u32,
    },
    /// Read the next cursor at `cursor_path` in the body and send it as `cursor_param`.
    Cursor {
        cursor_path: FieldPath,
        cursor_param: String,
    },
    /// Count pages in `page_param`, starting at 1, until a page comes back empty.
    Page {
        page_param: String,
    },
    None,
}

impl Default for Pagination {
    fn default() -> Self {
        Pagination::Auto { page_size: 200 }
    }
}

/// A dotted path into a record, e.g. `metadata.updateTime`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<String>);

impl FieldPath {
    pub fn parse(dotted: &str) -> FieldPath {
        if dotted.is_empty() {
            return FieldPath(Vec::new());
        }
        FieldPath(dotted.split('.').map(str::to_owned).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The path's member names, outermost first.
    pub fn steps(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The value at this path in `record`, if every step exists.
    pub fn get<'v>(&self, record: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        self.0
            .iter()
            .try_fold(record, |value, step| value.as_object()?.get(step))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// JSON members ocpoll keeps but does not interpret. `Debug` lists the keys only, because
/// providers put credentials in keys ocpoll does not know. Usually there are none: then it
/// holds no map (8 bytes in every instance and resource, not an empty map's 72).
#[derive(Clone, Default, PartialEq)]
pub struct OtherKeys(Option<Box<serde_json::Map<String, serde_json::Value>>>);

impl OtherKeys {
    pub fn new(map: serde_json::Map<String, serde_json::Value>) -> OtherKeys {
        OtherKeys((!map.is_empty()).then(|| Box::new(map)))
    }

    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.as_ref()?.get(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().flat_map(|map| map.keys())
    }
}

impl fmt::Debug for OtherKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_path_follows_dots() {
        let record = json!({"metadata": {"updateTime": "x"}, "_info": {"lastUpdated": 5}});
        assert_eq!(
            FieldPath::parse("metadata.updateTime").get(&record),
            Some(&json!("x"))
        );
        assert_eq!(
            FieldPath::parse("_info.lastUpdated").get(&record),
            Some(&json!(5))
        );
        assert_eq!(FieldPath::parse("_info.missing").get(&record), None);
        assert!(FieldPath::parse("").is_empty());
    }

    #[test]
    fn other_keys_debug_shows_keys_not_values() {
        let mut map = serde_json::Map::new();
        map.insert("providerSecret".into(), json!("s3cr3t-value"));
        let shown = format!("{:?}", OtherKeys::new(map));
        assert!(shown.contains("providerSecret"));
        assert!(!shown.contains("s3cr3t"));
    }
}
