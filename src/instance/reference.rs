//! The instance-file format as a reference: every key the decoder understands, with its default
//! and meaning, grouped as the file is. The man page `ocpoll-instance(5)` is rendered from this
//! table (`crate::assets`), and a test checks it against the decoder's own key lists, so the
//! page cannot name a key the decoder ignores or miss one it reads. docs/instances.md is the
//! guide with examples; this is the list.

/// One key of an instance file.
pub struct KeyDoc {
    pub key: &'static str,
    /// The default, or how the key is required; `None` when there is nothing to say.
    pub default: Option<&'static str>,
    pub meaning: &'static str,
}

/// A group of keys, as a man page section.
pub struct KeyGroup {
    pub title: &'static str,
    /// Where the keys live in the file.
    pub intro: &'static str,
    pub keys: &'static [KeyDoc],
}

const fn key(key: &'static str, default: Option<&'static str>, meaning: &'static str) -> KeyDoc {
    KeyDoc {
        key,
        default,
        meaning,
    }
}

pub const GROUPS: &[KeyGroup] = &[
    KeyGroup {
        title: "TOP LEVEL",
        intro: "One JSON object per file: the body of Open Connectors' POST /instances. Unknown keys are kept and ignored.",
        keys: &[
            key(
                "name",
                Some("the file name without .json"),
                "The instance's name; its state is keyed by it. A placeholder (<INSTANCE_NAME>) counts as missing. May not contain /. Two files with one name are both invalid.",
            ),
            key(
                "element.key",
                None,
                "The connector key, sent as elementKey in events.",
            ),
            key("tags", None, "Strings, sent as instanceTags."),
            key(
                "providerData",
                None,
                "Open Connectors' OAuth code exchange; ignored.",
            ),
            key("configuration", None, "Every key below."),
        ],
    },
    KeyGroup {
        title: "EVENTS",
        intro: "Keys of configuration. Booleans and numbers may be strings (\"true\", \"15\").",
        keys: &[
            key(
                "event.notification.enabled",
                Some("false"),
                "Poll and send events. A disabled instance is valid and not polled.",
            ),
            key(
                "event.vendor.type",
                Some("polling"),
                "polling, or webhooks (not polled).",
            ),
            key(
                "event.notification.callback.url",
                Some("required when enabled"),
                "Absolute http(s) URL that receives the events.",
            ),
            key(
                "event.notification.signature.key",
                None,
                "Signs every notification (a secret). A list of keys signs with each, for rotation.",
            ),
            key(
                "event.poller.refresh_interval",
                Some("required when enabled"),
                "Whole minutes between polls of each resource, at least 1.",
            ),
            key(
                "event.poller.refresh_seconds",
                None,
                "An interval in seconds that overrides the minutes.",
            ),
            key(
                "event.notification.batch.size",
                Some("1000"),
                "Most events per notification.",
            ),
            key(
                "event.notification.batch.bytes",
                Some("1048576"),
                "Most bytes per notification (at least 1024).",
            ),
            key(
                "event.notification.timeout.seconds",
                Some("15"),
                "Time a callback has to answer.",
            ),
            key(
                "event.notification.retry.hours",
                Some("[delivery] retry_max_age_seconds"),
                "How long a failing notification is retried before it is dead-lettered.",
            ),
            key(
                "event.poller.configuration",
                None,
                "The resources to poll: an object of resource name to resource (RESOURCES below).",
            ),
        ],
    },
    KeyGroup {
        title: "PROVIDER",
        intro: "Keys of configuration: where requests go and how.",
        keys: &[
            key(
                "base.url",
                None,
                "What relative resource URLs resolve against. Without it, resource URLs must be absolute.",
            ),
            key(
                "http.headers",
                None,
                "Object of extra request headers; their values are treated as secrets.",
            ),
            key("http.timeout.seconds", Some("30"), "Per-request timeout."),
            key(
                "http.ca.file",
                None,
                "Extra PEM root certificates, relative to the instance file's folder.",
            ),
            key(
                "http.allowed.origins",
                Some("none"),
                "Origins (scheme, host, optional port) that may receive the credentials besides the resource's own.",
            ),
        ],
    },
    KeyGroup {
        title: "AUTHENTICATION",
        intro: "Keys of configuration; the method is chosen by which keys are present. Configure one.",
        keys: &[
            key("username", None, "HTTP Basic user, with password."),
            key("password", None, "HTTP Basic password (a secret)."),
            key(
                "api.key",
                None,
                "Sent as is in the api.key.header header (a secret).",
            ),
            key(
                "api.key.header",
                Some("Authorization"),
                "The header api.key goes in.",
            ),
            key(
                "oauth.access.token",
                None,
                "Sent as Authorization: Bearer (a secret).",
            ),
            key(
                "oauth.token.url",
                None,
                "OAuth 2 token endpoint; with oauth.api.key and oauth.api.secret, ocpoll gets and refreshes the access token and keeps it in the state.",
            ),
            key("oauth.api.key", None, "OAuth 2 client id (a secret)."),
            key(
                "oauth.api.secret",
                None,
                "OAuth 2 client secret (a secret).",
            ),
            key(
                "oauth.user.refresh_token",
                None,
                "OAuth 2 refresh token (a secret). Without it, the authorization-code flow: tokens come from ocpoll auth or providerData.code and live in the state.",
            ),
            key(
                "oauth.authorization.url",
                None,
                "The provider's authorization endpoint, for ocpoll auth; its own query is kept (Google: access_type=offline&prompt=consent).",
            ),
            key(
                "oauth.callback.url",
                None,
                "The redirect URI registered with the provider; ocpoll auth listens on its port when it is a loopback URL, and providerData.code is exchanged with it.",
            ),
            key(
                "oauth.scope",
                None,
                "Space-separated scopes for the authorization request.",
            ),
            key(
                "oauth.client.auth",
                Some("body"),
                "How the client id and secret reach the token endpoint: body (form fields) or basic (HTTP Basic).",
            ),
            key(
                "oauth.token.params",
                None,
                "An object of extra form fields for every token request (audience, resource).",
            ),
            key(
                "elements.user.secret",
                None,
                "Open Connectors hub: with the two keys below, sends Authorization: User ..., Organization ..., Element ... (a secret).",
            ),
            key(
                "elements.organization.secret",
                None,
                "Open Connectors hub organization secret (a secret).",
            ),
            key(
                "elements.instance.token",
                None,
                "Open Connectors hub instance token (a secret).",
            ),
        ],
    },
    KeyGroup {
        title: "RESOURCES",
        intro: "Keys of each resource of event.poller.configuration; the resource's name is the objectType of its events.",
        keys: &[
            key(
                "url",
                Some("required"),
                "What to request: absolute, or relative to base.url. May hold ${date:FORMAT}, ${gmtDate:FORMAT} and {name} placeholders.",
            ),
            key(
                "idField",
                Some("required"),
                "Dotted path of the record id; \"\" identifies records by a hash of their content.",
            ),
            key(
                "datesConfiguration",
                None,
                "Where the dates are (DATES below). Without it: window mode when the URL has a date macro, else snapshot mode.",
            ),
            key(
                "recordsPath",
                Some("the body if it is an array, else its one array member"),
                "Dotted path to the array of records.",
            ),
            key(
                "pagination",
                Some("{\"type\": \"auto\"}"),
                "auto (page-token or Link headers, pageSize), cursor (cursorPath, cursorParam), page (pageParam) or none.",
            ),
            key(
                "pathParams",
                None,
                "Values for {name} placeholders: the resource is polled once per value, each with its own watermark.",
            ),
            key(
                "lookbackSeconds",
                Some("0; 60 in window mode"),
                "Re-read this many seconds before the watermark; records already sent are skipped.",
            ),
            key(
                "maxPages",
                Some("[poll] max_pages"),
                "Most pages one poll reads before it fails.",
            ),
            key(
                "maxPollSeconds",
                Some("[poll] max_poll_seconds"),
                "Longest one poll may run before it fails.",
            ),
        ],
    },
    KeyGroup {
        title: "DATES",
        intro: "Keys of a resource's datesConfiguration. Formats are Java SimpleDateFormat patterns, or milliseconds or seconds for epoch numbers.",
        keys: &[
            key(
                "updatedDateField",
                Some("required"),
                "Dotted path of the updated date; it moves the watermark.",
            ),
            key(
                "updatedDateFormat",
                Some("required"),
                "The updated date's format.",
            ),
            key(
                "updatedDateTimezone",
                Some("UTC"),
                "Zone of dates without an offset.",
            ),
            key(
                "createdDateField",
                None,
                "Dotted path of the created date: tells CREATED from UPDATED.",
            ),
            key(
                "createdDateFormat",
                Some("the updated date's"),
                "The created date's format.",
            ),
            key(
                "createdDateTimezone",
                Some("the updated date's"),
                "Zone of created dates without an offset.",
            ),
        ],
    },
];

/// What the page says about secret references, beside the keys.
pub const SECRETS: &str = "Any string value may be a reference instead of the secret itself: ${env:NAME} reads the environment variable NAME, ${file:PATH} the contents of a file (one trailing newline removed; a relative path starts at the instance file's folder). The whole value must be the reference. A reference that cannot be resolved is reported as \"unresolved secret: set NAME\" or \"unresolved secret: file PATH not readable\": a warning in validate (files are often checked on another machine) and an error of the instance in try, tick and run. config.toml's [secrets] limits which variables and files references may read. Secrets are never printed.";

/// A small, complete instance file for the EXAMPLE section.
pub const EXAMPLE: &str = r#"{
  "name": "my-crm",
  "element": {"key": "mycrm"},
  "configuration": {
    "base.url": "https://api.mycrm.example",
    "api.key": "${env:MY_CRM_API_KEY}",
    "event.notification.enabled": true,
    "event.notification.callback.url": "https://hooks.example.com/ocpoll",
    "event.notification.signature.key": "${env:MY_CRM_SIGNATURE_KEY}",
    "event.poller.refresh_interval": 5,
    "event.poller.configuration": {
      "contacts": {
        "url": "/v1/contacts?updated_since=${date:yyyy-MM-dd'T'HH:mm:ss'Z'}",
        "idField": "id",
        "datesConfiguration": {
          "updatedDateField": "updated_at",
          "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss'Z'",
          "createdDateField": "created_at"
        }
      }
    }
  }
}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::decode::known_keys;
    use std::collections::BTreeSet;

    fn documented(titles: &[&str]) -> BTreeSet<&'static str> {
        GROUPS
            .iter()
            .filter(|group| titles.contains(&group.title))
            .flat_map(|group| group.keys.iter().map(|doc| doc.key))
            .collect()
    }

    /// The page documents exactly the keys the decoder reads, no more and no fewer.
    #[test]
    fn the_reference_names_every_key_the_decoder_reads() {
        let known = known_keys();
        let configuration: BTreeSet<&str> = known.configuration.iter().copied().collect();
        assert_eq!(
            documented(&["EVENTS", "PROVIDER", "AUTHENTICATION"]),
            configuration
        );
        let resource: BTreeSet<&str> = known.resource.iter().copied().collect();
        assert_eq!(documented(&["RESOURCES"]), resource);
        let dates: BTreeSet<&str> = known.dates.iter().copied().collect();
        assert_eq!(documented(&["DATES"]), dates);
    }

    #[test]
    fn the_example_is_a_valid_instance() {
        let value: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        let ctx = crate::instance::decode::DecodeContext {
            file_stem: "my-crm",
            base_dir: std::path::Path::new("/"),
            unresolved: crate::instance::UnresolvedSecrets::Warn,
            secrets: &crate::instance::SystemSecrets,
        };
        let decoded = crate::instance::decode::decode(&value, &ctx);
        let errors: Vec<String> = decoded
            .findings
            .iter()
            .filter(|finding| finding.is_error())
            .map(|finding| finding.message.clone())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}
