//! Notification signatures (docs/events.md "Headers"): the Open Connectors header
//! `Elements-Webhook-Signature` and the Standard Webhooks `webhook-signature`. Pure functions of
//! key, body and (for Standard Webhooks) id and timestamp, so a retry re-signs the same bytes.
//!
//! This is the one place that calls [`Secret::expose`] on signature keys; nothing here puts a
//! key into an error message.

use crate::instance::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of a Standard Webhooks secret: the rest is the key, base64-encoded.
const WHSEC_PREFIX: &str = "whsec_";

/// Why a signature key cannot be used. Names the key by its position in the configured list,
/// never by its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error(
        "signature key #{position} starts with `whsec_` but the rest is not base64 (Standard Webhooks secret format)"
    )]
    BadWhsecKey { position: usize },
}

/// An instance's keys made ready to sign: each HMAC is keyed once (a `whsec_` key decoded
/// once), then cloned per message, so a queue of notifications pays the key schedule and the
/// base64 decoding once, not per message. Holds key material: no `Debug`.
#[derive(Clone)]
pub struct Signer {
    /// Keyed with the first key's UTF-8 bytes (`Elements-Webhook-Signature`); `None` without
    /// keys.
    elements: Option<Hmac<Sha256>>,
    /// One per key, in list order (`webhook-signature`).
    standard: Vec<Hmac<Sha256>>,
}

impl Signer {
    /// Keys `keys` for both signatures; fails on a `whsec_` key that is not base64.
    pub fn new(keys: &[Secret]) -> Result<Signer, SignError> {
        let standard = keys
            .iter()
            .enumerate()
            .map(|(index, key)| Ok(keyed(&standard_webhooks_key(key, index + 1)?)))
            .collect::<Result<Vec<_>, SignError>>()?;
        Ok(Signer {
            elements: keys.first().map(|key| keyed(key.expose().as_bytes())),
            standard,
        })
    }

    /// `Elements-Webhook-Signature` of `body` with the first key; `None` without keys.
    pub fn elements(&self, body: &[u8]) -> Option<String> {
        let mac = self.elements.as_ref()?;
        Some(format!("sha256={}", finish_base64(mac, &[body])))
    }

    /// `webhook-signature` of `id`, `timestamp` and `body`: one `v1,...` per key, in list
    /// order, separated by single spaces.
    pub fn standard(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
        let mut signatures = String::new();
        for mac in &self.standard {
            if !signatures.is_empty() {
                signatures.push(' ');
            }
            signatures.push_str("v1,");
            signatures.push_str(&finish_base64(mac, &signed));
        }
        signatures
    }
}

/// `Elements-Webhook-Signature`: `sha256=` and the base64 HMAC-SHA256 of the body, keyed with
/// the UTF-8 bytes of the configured string, exactly as Open Connectors did (a `whsec_` key is
/// not decoded here: Open Connectors receivers know nothing of that format).
pub fn elements_signature(key: &Secret, body: &[u8]) -> String {
    let mac = keyed(key.expose().as_bytes());
    format!("sha256={}", finish_base64(&mac, &[body]))
}

/// `webhook-signature`: one `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per key, in list
/// order, separated by single spaces (several keys during a rotation).
pub fn standard_webhooks_signature(
    keys: &[Secret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignError> {
    Ok(Signer::new(keys)?.standard(id, timestamp, body))
}

/// Checks that a key can sign Standard Webhooks messages, for validation before any poll.
/// `position` is the key's 1-based place in the configured list, used in the error.
pub fn check_key(key: &Secret, position: usize) -> Result<(), SignError> {
    standard_webhooks_key(key, position).map(drop)
}

/// The standard's secret format: `whsec_` + base64 is decoded; any other string is used as
/// its UTF-8 bytes (docs/events.md), like the Open Connectors signature.
pub(crate) fn standard_webhooks_key(key: &Secret, position: usize) -> Result<Vec<u8>, SignError> {
    match key.expose().strip_prefix(WHSEC_PREFIX) {
        Some(encoded) => BASE64
            .decode(encoded)
            .map_err(|_| SignError::BadWhsecKey { position }),
        None => Ok(key.expose().as_bytes().to_vec()),
    }
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed), so this constructor cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}

/// The base64 HMAC of `parts` under a clone of the keyed state `mac` (left as it was).
fn finish_base64(mac: &Hmac<Sha256>, parts: &[&[u8]]) -> String {
    let mut mac = mac.clone();
    for part in parts {
        mac.update(part);
    }
    BASE64.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/events.md's test vector body (456 bytes).
    const VECTOR_BODY: &str = r#"{"message":{"eventId":"01JDQ3Z8W6B0S5V8M4K2N7P9QX","instanceId":"salesloft-prod","elementKey":"salesloft","instanceTags":["crm"],"eventDate":"2026-11-25T13:00:05.123Z","events":[{"eventType":"UPDATED","objectType":"contacts","objectId":"4711","elementKey":"salesloft","date":"2026-11-25T12:59:58.123456Z"}],"raw":{"contacts":[{"id":4711,"first_name":"Ada","updated_at":"2026-11-25T12:59:58.123456+00:00","created_at":"2026-01-02T03:04:05.000000+00:00"}]}}}"#;
    const VECTOR_ID: &str = "01JDQ3Z8W6B0S5V8M4K2N7P9QX";
    const VECTOR_TIMESTAMP: i64 = 1_795_957_205;
    const PLAIN_KEY: &str = "abcd1234efgh5678";
    const WHSEC_KEY: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn the_vector_body_is_456_bytes() {
        assert_eq!(VECTOR_BODY.len(), 456);
    }

    #[test]
    fn elements_signature_matches_the_test_vector() {
        assert_eq!(
            elements_signature(&Secret::new(PLAIN_KEY), VECTOR_BODY.as_bytes()),
            "sha256=3MXata7aNIbTkbrz4VStIZXe+Vugh9HSHE1ohBDGQ/M="
        );
    }

    #[test]
    fn standard_webhooks_signature_with_a_plain_key_matches_the_test_vector() {
        let keys = [Secret::new(PLAIN_KEY)];
        assert_eq!(
            standard_webhooks_signature(&keys, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()),
            Ok("v1,p16VeBP2+nJ5+atMf1RSFUHwbyaOIJ8ARzPGsMIlGQk=".to_string())
        );
    }

    #[test]
    fn standard_webhooks_signature_with_a_whsec_key_matches_the_test_vector() {
        let keys = [Secret::new(WHSEC_KEY)];
        assert_eq!(
            standard_webhooks_signature(&keys, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()),
            Ok("v1,ocD0DNCYxVpf4+4hvawnMcPBjeVYKwXRT0WTIEQ93qY=".to_string())
        );
    }

    #[test]
    fn several_keys_sign_in_list_order_separated_by_single_spaces() {
        let keys = [Secret::new(WHSEC_KEY), Secret::new(PLAIN_KEY)];
        assert_eq!(
            standard_webhooks_signature(&keys, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()),
            Ok("v1,ocD0DNCYxVpf4+4hvawnMcPBjeVYKwXRT0WTIEQ93qY= v1,p16VeBP2+nJ5+atMf1RSFUHwbyaOIJ8ARzPGsMIlGQk="
                .to_string())
        );
    }

    #[test]
    fn every_input_changes_the_signature() {
        let keys = [Secret::new(PLAIN_KEY)];
        let base = standard_webhooks_signature(&keys, "a", 1, b"{}");
        assert_ne!(base, standard_webhooks_signature(&keys, "b", 1, b"{}"));
        assert_ne!(base, standard_webhooks_signature(&keys, "a", 2, b"{}"));
        assert_ne!(base, standard_webhooks_signature(&keys, "a", 1, b"[]"));
        let other_key = [Secret::new("other")];
        assert_ne!(base, standard_webhooks_signature(&other_key, "a", 1, b"{}"));
    }

    #[test]
    fn a_whsec_key_that_is_not_base64_is_an_error_naming_its_position_only() {
        let keys = [Secret::new(PLAIN_KEY), Secret::new("whsec_not*base64!")];
        let error = standard_webhooks_signature(&keys, "a", 1, b"{}").unwrap_err();
        assert_eq!(error, SignError::BadWhsecKey { position: 2 });
        let message = error.to_string();
        assert!(!message.contains("not*base64"), "{message}");
        assert!(message.contains("#2"), "{message}");
        assert_eq!(check_key(&keys[0], 1), Ok(()));
        assert!(check_key(&keys[1], 2).is_err());
    }

    #[test]
    fn a_reused_signer_matches_the_test_vectors_message_after_message() {
        let signer = Signer::new(&[Secret::new(WHSEC_KEY), Secret::new(PLAIN_KEY)]).unwrap();
        for _ in 0..3 {
            assert_eq!(
                signer.standard(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()),
                "v1,ocD0DNCYxVpf4+4hvawnMcPBjeVYKwXRT0WTIEQ93qY= v1,p16VeBP2+nJ5+atMf1RSFUHwbyaOIJ8ARzPGsMIlGQk="
            );
        }
        let plain = Signer::new(&[Secret::new(PLAIN_KEY)]).unwrap();
        for _ in 0..2 {
            assert_eq!(
                plain.elements(VECTOR_BODY.as_bytes()).as_deref(),
                Some("sha256=3MXata7aNIbTkbrz4VStIZXe+Vugh9HSHE1ohBDGQ/M=")
            );
        }
        let none = Signer::new(&[]).unwrap();
        assert_eq!(none.standard("a", 1, b"{}"), "");
        assert_eq!(none.elements(b"{}"), None);
        assert!(Signer::new(&[Secret::new("whsec_not*base64!")]).is_err());
    }

    #[test]
    fn no_keys_give_an_empty_signature_list() {
        assert_eq!(
            standard_webhooks_signature(&[], "a", 1, b"{}"),
            Ok(String::new())
        );
    }
}
