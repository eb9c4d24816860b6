//! `receive` end to end without a network: a body and headers in, the receipt to commit out.

use super::*;
use crate::instance::load::load_bytes;
use crate::instance::{SystemSecrets, UnresolvedSecrets};
use chrono::TimeZone;
use serde_json::{Value, json};
use std::path::Path;

fn instance(config: Value) -> Instance {
    let mut configuration = json!({
        "event.notification.enabled": true,
        "event.vendor.type": "webhooks",
        "event.notification.callback.url": "https://hooks.example.com/in",
    });
    for (key, value) in config.as_object().unwrap() {
        configuration[key] = value.clone();
    }
    let body = json!({"element": {"key": "github"}, "name": "gh", "tags": ["code"],
                      "configuration": configuration});
    let loaded = load_bytes(
        Path::new("gh.json"),
        body.to_string().as_bytes(),
        UnresolvedSecrets::Fail,
        &SystemSecrets,
    );
    assert!(!loaded.has_errors(), "{:?}", loaded.findings);
    Instance::clone(&loaded.instance.unwrap())
}

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
}

fn request<'r>(header: &'r dyn Fn(&str) -> Option<&'r str>, body: &'r [u8]) -> Request<'r> {
    Request {
        header,
        content_type: "application/json",
        body,
        received_at: received(),
    }
}

fn github_instance() -> Instance {
    instance(json!({
        "webhook.signature.header": "X-Hub-Signature-256",
        "webhook.signature.key": "topsecret",
        "webhook.signature.prefix": "sha256=",
        "webhook.delivery.header": "X-GitHub-Delivery",
        "webhook.configuration": {
            "recordsPath": "issue",
            "idField": "id",
            "objectType": "issues",
            "eventTypeField": "action",
            "eventTypeMap": {"opened": "CREATED", "deleted": "DELETED"}
        }
    }))
}

#[test]
fn a_signed_github_delivery_becomes_one_notification() {
    let instance = github_instance();
    let body = br#"{"action":"opened","issue":{"id":42,"title":"Bug"}}"#;
    let signature = format!("sha256={}", verify::hmac_hex(b"topsecret", body));
    let header = |name: &str| match name.to_ascii_lowercase().as_str() {
        "x-hub-signature-256" => Some(signature.as_str()),
        "x-github-delivery" => Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        _ => None,
    };
    let webhook = instance.webhook.clone().unwrap();
    let receipt = receive(&instance, &webhook, &request(&header, body), || 7).unwrap();
    assert_eq!(receipt.key, "delivery:72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(receipt.keep_until, received() + DELIVERY_ID_KEPT);
    assert_eq!(receipt.notifications.len(), 1);
    let notification = &receipt.notifications[0];
    let sent: Value = serde_json::from_slice(&notification.body).unwrap();
    let message = &sent["message"];
    assert_eq!(message["eventId"], notification.id.as_str());
    assert_eq!(message["instanceId"], "gh");
    assert_eq!(message["elementKey"], "github");
    assert_eq!(message["instanceTags"], json!(["code"]));
    assert_eq!(
        message["events"],
        json!([{"eventType": "CREATED", "objectType": "issues", "objectId": "42",
                "elementKey": "github", "date": "2026-11-29T10:00:00.000Z"}])
    );
    assert_eq!(
        message["raw"],
        json!({"issues": [{"id": 42, "title": "Bug"}]})
    );
}

#[test]
fn a_bad_signature_is_refused_before_the_body_is_read() {
    let instance = github_instance();
    let body = br#"not even json"#;
    let wrong = format!("sha256={}", verify::hmac_hex(b"guess", body));
    let header = |name: &str| {
        name.eq_ignore_ascii_case("X-Hub-Signature-256")
            .then_some(wrong.as_str())
    };
    let webhook = instance.webhook.clone().unwrap();
    let refused = receive(&instance, &webhook, &request(&header, body), || 7).unwrap_err();
    assert!(matches!(
        refused,
        Rejection::BadSignature(VerifyError::Mismatch)
    ));
    let none = |_: &str| None;
    let refused = receive(&instance, &webhook, &request(&none, body), || 7).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "bad signature: no X-Hub-Signature-256 header"
    );
}

#[test]
fn without_a_delivery_id_the_body_hash_is_the_key() {
    let instance = instance(json!({}));
    let none = |_: &str| None;
    let webhook = instance.webhook.clone().unwrap();
    let receipt = receive(&instance, &webhook, &request(&none, b"{\"n\":1}"), || 1).unwrap();
    assert_eq!(
        receipt.key,
        format!("sha256:{}", hex::encode(Sha256::digest(b"{\"n\":1}")))
    );
    assert_eq!(receipt.keep_until, received() + BODY_HASH_KEPT);
    let sent: Value = serde_json::from_slice(&receipt.notifications[0].body).unwrap();
    assert_eq!(sent["message"]["events"][0]["objectType"], "webhook");
    assert_eq!(sent["message"]["raw"], json!({"webhook": [{"n": 1}]}));
}

#[test]
fn a_body_that_is_not_json_is_refused_or_kept_raw() {
    let none = |_: &str| None;
    let strict = instance(json!({}));
    let webhook = strict.webhook.clone().unwrap();
    let refused = receive(&strict, &webhook, &request(&none, b"a=1"), || 1).unwrap_err();
    assert!(
        refused.to_string().starts_with("the body is not JSON"),
        "{refused}"
    );

    let raw = instance(json!({"webhook.invalid.body": "raw"}));
    let webhook = raw.webhook.clone().unwrap();
    let receipt = receive(&raw, &webhook, &request(&none, b"a=1"), || 1).unwrap();
    let sent: Value = serde_json::from_slice(&receipt.notifications[0].body).unwrap();
    assert_eq!(
        sent["message"]["raw"]["webhook"][0],
        json!({"contentType": "application/json", "body": "a=1"})
    );
}

#[test]
fn many_records_are_batched_like_a_poll() {
    let instance = instance(json!({
        "event.notification.batch.size": 2,
        "webhook.configuration": {"idField": "id", "objectTypeField": "kind"}
    }));
    let body =
        br#"[{"id":1,"kind":"a"},{"id":2,"kind":"a"},{"id":3,"kind":"a"},{"id":4,"kind":"b"}]"#;
    let none = |_: &str| None;
    let webhook = instance.webhook.clone().unwrap();
    let receipt = receive(&instance, &webhook, &request(&none, body), || 1).unwrap();
    let shape: Vec<(u32, String)> = receipt
        .notifications
        .iter()
        .map(|n| {
            let sent: Value = serde_json::from_slice(&n.body).unwrap();
            let object_type = sent["message"]["events"][0]["objectType"]
                .as_str()
                .unwrap()
                .to_owned();
            (n.events, object_type)
        })
        .collect();
    assert_eq!(shape, [(2, "a".into()), (1, "a".into()), (1, "b".into())]);
    let mut ids: Vec<_> = receipt.notifications.iter().map(|n| n.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "event ids are unique");
}

#[test]
fn standard_webhooks_use_their_id_as_the_delivery_key() {
    let key = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let instance = instance(json!({
        "webhook.signature.type": "standard-webhooks",
        "webhook.signature.key": key,
    }));
    let body = br#"{"type":"invoice.paid"}"#;
    let timestamp = received().timestamp();
    let signature = crate::outbox::sign::standard_webhooks_signature(
        &[crate::instance::Secret::new(key)],
        "msg_1",
        timestamp,
        body,
    )
    .unwrap();
    let timestamp = timestamp.to_string();
    let header = |name: &str| match name {
        "webhook-id" => Some("msg_1"),
        "webhook-timestamp" => Some(timestamp.as_str()),
        "webhook-signature" => Some(signature.as_str()),
        _ => None,
    };
    let webhook = instance.webhook.clone().unwrap();
    let receipt = receive(&instance, &webhook, &request(&header, body), || 1).unwrap();
    assert_eq!(receipt.key, "delivery:msg_1");
}
