//! Provider signatures on received webhooks (docs/instances.md#webhook-signatures): HMAC-SHA256
//! over the raw body in a configured header (hex or base64, optional prefix such as `sha256=`),
//! or Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with its
//! five-minute timestamp tolerance. Pure: headers come through a lookup function, the clock as
//! a number, and every comparison is constant-time (`Mac::verify_slice`).
//!
//! Errors say what was wrong with the request, never the key, the expected signature or the body.

use crate::instance::Secret;
use crate::instance::{SignatureEncoding, WebhookSignature};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Standard Webhooks' tolerance: a timestamp further than this from the clock is refused.
pub const TIMESTAMP_TOLERANCE_SECONDS: i64 = 5 * 60;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no {0} header")]
    Missing(String),
    #[error("the {0} header is not a signature of the configured form")]
    Malformed(String),
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("webhook-timestamp is more than 5 minutes away from this machine's clock")]
    Stale,
}

/// What a verified request proves besides its body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Standard Webhooks' `webhook-id`: the provider's id of this delivery, for the replay check.
    pub delivery_id: Option<String>,
}

/// Checks `body` against `signature`. `header` returns a request header's value by
/// (case-insensitive) name; `now` is unix seconds.
pub fn verify<'h>(
    signature: &WebhookSignature,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    now: i64,
) -> Result<Verified, VerifyError> {
    match signature {
        WebhookSignature::Hmac {
            header: name,
            key,
            encoding,
            prefix,
        } => {
            let value = header(name).ok_or_else(|| VerifyError::Missing(name.clone()))?;
            let given = decode_signature(value.trim(), prefix, *encoding)
                .ok_or_else(|| VerifyError::Malformed(name.clone()))?;
            let mut mac = mac(key.expose().as_bytes());
            mac.update(body);
            mac.verify_slice(&given)
                .map_err(|_| VerifyError::Mismatch)?;
            Ok(Verified::default())
        }
        WebhookSignature::Standard { key } => verify_standard(key, header, body, now),
    }
}

fn verify_standard<'h>(
    key: &Secret,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    now: i64,
) -> Result<Verified, VerifyError> {
    let required = |name: &str| header(name).ok_or_else(|| VerifyError::Missing(name.to_owned()));
    let id = required("webhook-id")?;
    let timestamp = required("webhook-timestamp")?;
    let signatures = required("webhook-signature")?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::Malformed("webhook-timestamp".to_owned()))?;
    if (now - seconds).abs() > TIMESTAMP_TOLERANCE_SECONDS {
        return Err(VerifyError::Stale);
    }
    // Checked at validate time; a key that stopped decoding cannot verify anything.
    let key =
        crate::outbox::sign::standard_webhooks_key(key, 1).map_err(|_| VerifyError::Mismatch)?;
    let mut any_v1 = false;
    for candidate in signatures.split(' ') {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        any_v1 = true;
        let Ok(given) = BASE64.decode(encoded) else {
            continue;
        };
        let mut mac = mac(&key);
        for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
            mac.update(part);
        }
        if mac.verify_slice(&given).is_ok() {
            return Ok(Verified {
                delivery_id: Some(id.to_owned()),
            });
        }
    }
    if any_v1 {
        Err(VerifyError::Mismatch)
    } else {
        Err(VerifyError::Malformed("webhook-signature".to_owned()))
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}

fn decode_signature(value: &str, prefix: &str, encoding: SignatureEncoding) -> Option<Vec<u8>> {
    let encoded = value.strip_prefix(prefix)?;
    match encoding {
        SignatureEncoding::Hex => hex::decode(encoded).ok(),
        SignatureEncoding::Base64 => BASE64.decode(encoded).ok(),
    }
}

/// HMAC-SHA256 of `body` with `key`, hex: what a GitHub-like sender puts after `sha256=`.
#[cfg(test)]
pub fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = mac(key);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github(key: &str) -> WebhookSignature {
        WebhookSignature::Hmac {
            header: "X-Hub-Signature-256".to_owned(),
            key: Secret::new(key),
            encoding: SignatureEncoding::Hex,
            prefix: "sha256=".to_owned(),
        }
    }

    fn lookup<'h>(pairs: &'h [(&'h str, String)]) -> impl Fn(&str) -> Option<&'h str> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        }
    }

    #[test]
    fn github_hex_signature_with_prefix() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let body = b"Hello, World!";
        let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(hmac_hex(b"It's a Secret to Everybody", body), expected);
        let headers = [("x-hub-signature-256", format!("sha256={expected}"))];
        let signature = github("It's a Secret to Everybody");
        assert_eq!(
            verify(&signature, lookup(&headers), body, 0),
            Ok(Verified::default())
        );
        // Upper-case hex is the same bytes.
        let upper = [(
            "X-Hub-Signature-256",
            format!("sha256={}", expected.to_uppercase()),
        )];
        assert!(verify(&signature, lookup(&upper), body, 0).is_ok());
    }

    #[test]
    fn github_signature_failures_say_why() {
        let signature = github("key");
        let body = b"{}";
        assert_eq!(
            verify(&signature, lookup(&[]), body, 0),
            Err(VerifyError::Missing("X-Hub-Signature-256".to_owned()))
        );
        let no_prefix = [("X-Hub-Signature-256", hmac_hex(b"key", body))];
        assert_eq!(
            verify(&signature, lookup(&no_prefix), body, 0),
            Err(VerifyError::Malformed("X-Hub-Signature-256".to_owned()))
        );
        let other_body = [(
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(b"key", b"[]")),
        )];
        assert_eq!(
            verify(&signature, lookup(&other_body), body, 0),
            Err(VerifyError::Mismatch)
        );
        let other_key = [(
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(b"kex", body)),
        )];
        assert_eq!(
            verify(&signature, lookup(&other_key), body, 0),
            Err(VerifyError::Mismatch)
        );
        let message = VerifyError::Mismatch.to_string();
        assert!(!message.contains("key"));
    }

    #[test]
    fn base64_signature_without_prefix() {
        let signature = WebhookSignature::Hmac {
            header: "X-Signature".to_owned(),
            key: Secret::new("abcd1234efgh5678"),
            encoding: SignatureEncoding::Base64,
            prefix: String::new(),
        };
        let body = b"{\"a\":1}";
        let value = BASE64.encode(hex::decode(hmac_hex(b"abcd1234efgh5678", body)).unwrap());
        assert!(verify(&signature, lookup(&[("x-signature", value)]), body, 0).is_ok());
    }

    /// docs/events.md's test vector body (456 bytes).
    const VECTOR_BODY: &str = r#"{"message":{"eventId":"01JDQ3Z8W6B0S5V8M4K2N7P9QX","instanceId":"salesloft-prod","elementKey":"salesloft","instanceTags":["crm"],"eventDate":"2026-11-25T13:00:05.123Z","events":[{"eventType":"UPDATED","objectType":"contacts","objectId":"4711","elementKey":"salesloft","date":"2026-11-25T12:59:58.123456Z"}],"raw":{"contacts":[{"id":4711,"first_name":"Ada","updated_at":"2026-11-25T12:59:58.123456+00:00","created_at":"2026-01-02T03:04:05.000000+00:00"}]}}}"#;

    /// The EVENTS.md vector, received instead of sent: ocpoll's own senders verify here.
    #[test]
    fn standard_webhooks_vector_and_tolerance() {
        let body = VECTOR_BODY.as_bytes();
        let key = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let signature = WebhookSignature::Standard {
            key: Secret::new(key),
        };
        let headers = [
            ("webhook-id", "01JDQ3Z8W6B0S5V8M4K2N7P9QX".to_owned()),
            ("webhook-timestamp", "1795957205".to_owned()),
            (
                "webhook-signature",
                "v1,bm90IGl0 v1,ocD0DNCYxVpf4+4hvawnMcPBjeVYKwXRT0WTIEQ93qY=".to_owned(),
            ),
        ];
        let verified = verify(&signature, lookup(&headers), body, 1_795_957_205 + 299).unwrap();
        assert_eq!(
            verified.delivery_id.as_deref(),
            Some("01JDQ3Z8W6B0S5V8M4K2N7P9QX")
        );
        assert_eq!(
            verify(&signature, lookup(&headers), body, 1_795_957_205 + 301),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(&signature, lookup(&headers), b"{}", 1_795_957_205),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&signature, lookup(&headers[..2]), body, 1_795_957_205),
            Err(VerifyError::Missing("webhook-signature".to_owned()))
        );
    }
}
