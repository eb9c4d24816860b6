//! Decoding a webhooks instance's receiving side (docs/instances.md#webhooks): the `webhook.*`
//! configuration keys (signature, delivery id header, rate, invalid bodies) and
//! `webhook.configuration`, the standardizing of a received body into events.

use super::*;
use crate::detect::EventType;
use crate::instance::model::{
    InvalidBody, SignatureEncoding, WEBHOOK_RATE_DEFAULT, Webhook, WebhookObjectType,
    WebhookSignature, WebhookStandardize,
};

/// The instance-level keys of a webhooks instance.
pub(super) const WEBHOOK_KEYS: &[&str] = &[
    "webhook.signature.type",
    "webhook.signature.header",
    "webhook.signature.key",
    "webhook.signature.encoding",
    "webhook.signature.prefix",
    "webhook.delivery.header",
    "webhook.rate.per_minute",
    "webhook.invalid.body",
    "webhook.configuration",
];

/// The keys `webhook.configuration` understands.
const STANDARDIZE_KEYS: &[&str] = &[
    "recordsPath",
    "idField",
    "objectType",
    "objectTypeField",
    "eventTypeField",
    "eventTypeMap",
    "datesConfiguration",
];

impl Decoder<'_> {
    /// `Some(Some(..))` for a webhooks instance, `Some(None)` for a polling one (whose
    /// `webhook.*` keys are reported as ignored), `None` after an error.
    pub(super) fn webhook(
        &mut self,
        config: &ConfigView,
        vendor: VendorType,
    ) -> Option<Option<Webhook>> {
        if vendor != VendorType::Webhooks {
            for key in WEBHOOK_KEYS
                .iter()
                .filter(|key| config.map.contains_key(**key))
            {
                self.warning(
                    config.path(key),
                    "ignored: this is not a webhooks instance (\"event.vendor.type\": \"webhooks\")",
                );
            }
            return Some(None);
        }
        if config.map.contains_key("event.poller.configuration") {
            self.warning(
                config.path("event.poller.configuration"),
                "ignored: a webhooks instance is not polled; its events come from \
                 \"webhook.configuration\"",
            );
        }
        let before = self.error_count();
        let signature = self.webhook_signature(config);
        let delivery_header = match self.text(config, "webhook.delivery.header") {
            Text::Value(name) if is_header_name(&name) => Some(name),
            Text::Value(name) => {
                self.error(
                    config.path("webhook.delivery.header"),
                    format!("{name:?} is not a valid HTTP header name"),
                );
                None
            }
            Text::Absent | Text::Unresolved => None,
        };
        let rate_key = "webhook.rate.per_minute";
        let rate_per_minute = match self.loose_count(config, rate_key, "a number per minute") {
            Some(0) => {
                self.error(config.path(rate_key), "must be at least 1 a minute");
                1
            }
            Some(rate) => u32::try_from(rate).unwrap_or(u32::MAX),
            None => WEBHOOK_RATE_DEFAULT,
        };
        let invalid_body = self.invalid_body(config);
        let standardize = self.webhook_configuration(config);
        let webhook = Webhook {
            signature: signature?,
            delivery_header,
            rate_per_minute,
            invalid_body,
            standardize: standardize?,
        };
        (self.error_count() == before).then_some(Some(webhook))
    }

    /// `Some(None)` when no signature is configured, `None` after an error.
    fn webhook_signature(&mut self, config: &ConfigView) -> Option<Option<WebhookSignature>> {
        let type_key = "webhook.signature.type";
        let header_key = "webhook.signature.header";
        let key_key = "webhook.signature.key";
        let kind = match self.text(config, type_key) {
            Text::Value(kind) => match kind.to_ascii_lowercase().as_str() {
                "hmac-sha256" => Some(false),
                "standard-webhooks" => Some(true),
                _ => {
                    self.error(
                        config.path(type_key),
                        format!(
                            "{} is not a signature type; use \"hmac-sha256\" or \"standard-webhooks\"",
                            config.written(type_key)
                        ),
                    );
                    return None;
                }
            },
            Text::Absent => None,
            Text::Unresolved => return None,
        };
        let key = self.secret_key(config, key_key);
        let standard = kind == Some(true);
        if standard {
            for ignored in [
                header_key,
                "webhook.signature.encoding",
                "webhook.signature.prefix",
            ] {
                if config.map.contains_key(ignored) {
                    self.warning(
                        config.path(ignored),
                        "ignored: Standard Webhooks fixes its headers and encoding",
                    );
                }
            }
            let Some(key) = key else {
                self.error(
                    config.path(key_key),
                    "missing: the provider's Standard Webhooks secret (e.g. \"${env:NAME}\")",
                );
                return None;
            };
            if let Err(error) = crate::outbox::sign::check_key(&key, 1) {
                self.error(config.path(key_key), error.to_string());
                return None;
            }
            return Some(Some(WebhookSignature::Standard { key }));
        }
        let header = match self.text(config, header_key) {
            Text::Value(name) if is_header_name(&name) => Some(name),
            Text::Value(name) => {
                self.error(
                    config.path(header_key),
                    format!("{name:?} is not a valid HTTP header name"),
                );
                return None;
            }
            Text::Absent => None,
            Text::Unresolved => return None,
        };
        let encoding = self.signature_encoding(config);
        let prefix = match self.text(config, "webhook.signature.prefix") {
            Text::Value(prefix) => prefix,
            _ => String::new(),
        };
        match (header, key) {
            (None, None) if kind.is_none() => {
                for key in ["webhook.signature.encoding", "webhook.signature.prefix"] {
                    if config.map.contains_key(key) {
                        self.warning(config.path(key), "ignored: no \"webhook.signature.key\"");
                    }
                }
                Some(None)
            }
            (Some(header), Some(key)) => Some(Some(WebhookSignature::Hmac {
                header,
                key,
                encoding: encoding?,
                prefix,
            })),
            (None, _) => {
                self.error(
                    config.path(header_key),
                    "missing: the request header that carries the provider's signature \
                     (e.g. \"X-Hub-Signature-256\")",
                );
                None
            }
            (Some(_), None) => {
                self.error(
                    config.path(key_key),
                    "missing: the key the provider signs with (e.g. \"${env:NAME}\")",
                );
                None
            }
        }
    }

    fn signature_encoding(&mut self, config: &ConfigView) -> Option<SignatureEncoding> {
        let key = "webhook.signature.encoding";
        match self.text(config, key) {
            Text::Value(encoding) => match encoding.to_ascii_lowercase().as_str() {
                "hex" => Some(SignatureEncoding::Hex),
                "base64" => Some(SignatureEncoding::Base64),
                _ => {
                    self.error(
                        config.path(key),
                        format!("{} is not \"hex\" or \"base64\"", config.written(key)),
                    );
                    None
                }
            },
            Text::Absent => Some(SignatureEncoding::Hex),
            Text::Unresolved => None,
        }
    }

    fn invalid_body(&mut self, config: &ConfigView) -> InvalidBody {
        let key = "webhook.invalid.body";
        match self.text(config, key) {
            Text::Value(choice) => match choice.to_ascii_lowercase().as_str() {
                "reject" => InvalidBody::Reject,
                "raw" => InvalidBody::Raw,
                _ => {
                    self.error(
                        config.path(key),
                        format!("{} is not \"reject\" or \"raw\"", config.written(key)),
                    );
                    InvalidBody::Reject
                }
            },
            Text::Absent | Text::Unresolved => InvalidBody::Reject,
        }
    }

    /// `Some(None)` without `webhook.configuration` (the whole body is one event).
    fn webhook_configuration(&mut self, config: &ConfigView) -> Option<Option<WebhookStandardize>> {
        let key = "webhook.configuration";
        let view = match config.object(key) {
            Ok(None) => return Some(None),
            Ok(Some(view)) => view,
            Err(message) => {
                self.error(config.path(key), message);
                return None;
            }
        };
        self.misspelled_keys(view.map, &view.path, STANDARDIZE_KEYS);
        let before = self.error_count();
        let field = |decoder: &mut Self, key: &str| match decoder.text(&view, key) {
            Text::Value(field) if field.is_empty() => {
                decoder.error(view.path(key), "an empty field path");
                None
            }
            Text::Value(field) => Some(FieldPath::parse(&field)),
            Text::Absent | Text::Unresolved => None,
        };
        let records_path = field(self, "recordsPath");
        let id_field = match self.text(&view, "idField") {
            Text::Value(field) => FieldPath::parse(&field),
            _ => FieldPath::default(),
        };
        let object_type = match (
            self.text(&view, "objectType"),
            field(self, "objectTypeField"),
        ) {
            (Text::Value(_), Some(_)) => {
                self.error(
                    view.path("objectTypeField"),
                    "give \"objectType\" (fixed) or \"objectTypeField\" (read from the body), \
                     not both",
                );
                None
            }
            (Text::Value(fixed), None) if fixed.is_empty() => {
                self.error(view.path("objectType"), "an empty objectType");
                None
            }
            (Text::Value(fixed), None) => Some(WebhookObjectType::Fixed(fixed)),
            (_, Some(path)) => Some(WebhookObjectType::Field(path)),
            (_, None) => Some(WebhookObjectType::Fixed("webhook".to_owned())),
        };
        let event_type_field = field(self, "eventTypeField");
        let event_type_map = self.event_type_map(&view, event_type_field.is_some());
        let dates = self.dates_configuration(&view);
        let standardize = WebhookStandardize {
            records_path,
            id_field,
            object_type: object_type?,
            event_type_field,
            event_type_map,
            dates: dates?,
        };
        (self.error_count() == before).then_some(Some(standardize))
    }

    fn event_type_map(
        &mut self,
        view: &ConfigView,
        has_field: bool,
    ) -> BTreeMap<String, EventType> {
        let key = "eventTypeMap";
        let mut map = BTreeMap::new();
        let Some(value) = view.map.get(key) else {
            return map;
        };
        let Some(entries) = value.as_object() else {
            self.error(
                view.path(key),
                format!(
                    "expected an object of field values to CREATED, UPDATED or DELETED, found {}",
                    json::a_type(value)
                ),
            );
            return map;
        };
        if !has_field {
            self.warning(
                view.path(key),
                "ignored: no \"eventTypeField\" to read the values from",
            );
        }
        for (from, to) in entries {
            let parsed = to
                .as_str()
                .and_then(|text| EventType::parse(&text.to_ascii_uppercase()));
            match parsed {
                Some(event_type) => {
                    map.insert(from.clone(), event_type);
                }
                None => self.error(
                    view.path(key).key(from),
                    format!("{} is not CREATED, UPDATED or DELETED", describe_value(to)),
                ),
            }
        }
        map
    }
}
