//! Test providers that push webhooks: one signs like GitHub (`X-Hub-Signature-256:
//! sha256=<hex>` with an `X-GitHub-Delivery` id), one like Standard Webhooks (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64>`). They compute the signatures with the
//! HMAC crate themselves, never with ocpoll's code, as a real provider would.

#![allow(dead_code)] // Each test file uses a different part of it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// An HTTP client for the tests (reqwest gets its TLS provider from ocpoll's choice, `ring`,
/// installed before a client is built).
pub fn client() -> reqwest::Client {
    ocpoll::http::crypto::install_provider();
    reqwest::Client::new()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// A provider that signs like GitHub.
#[derive(Clone)]
pub struct GitHubSender {
    pub client: reqwest::Client,
    pub url: String,
    pub secret: String,
}

impl GitHubSender {
    pub fn new(url: &str, secret: &str) -> GitHubSender {
        GitHubSender {
            client: client(),
            url: url.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// `X-Hub-Signature-256` for `body`.
    pub fn signature(&self, body: &[u8]) -> String {
        format!(
            "sha256={}",
            hex::encode(hmac(self.secret.as_bytes(), &[body]))
        )
    }

    /// POSTs `body` as GitHub would: JSON, signed, with its delivery id.
    pub async fn send(&self, delivery: &str, body: &str) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", "issues")
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", self.signature(body.as_bytes()))
            .body(body.to_owned())
            .send()
            .await
    }
}

/// A provider that signs like Standard Webhooks, with a `whsec_` secret.
#[derive(Clone)]
pub struct StandardSender {
    pub client: reqwest::Client,
    pub url: String,
    pub secret: String,
}

impl StandardSender {
    pub fn new(url: &str, secret: &str) -> StandardSender {
        StandardSender {
            client: client(),
            url: url.to_owned(),
            secret: secret.to_owned(),
        }
    }

    fn key(&self) -> Vec<u8> {
        match self.secret.strip_prefix("whsec_") {
            Some(encoded) => BASE64.decode(encoded).unwrap(),
            None => self.secret.as_bytes().to_vec(),
        }
    }

    /// POSTs `body` with id `id`, signed at unix time `timestamp`.
    pub async fn send_at(
        &self,
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> reqwest::Result<reqwest::Response> {
        let timestamp = timestamp.to_string();
        let signed = [
            id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            body.as_bytes(),
        ];
        let signature = format!("v1,{}", BASE64.encode(hmac(&self.key(), &signed)));
        self.client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await
    }

    pub async fn send(&self, id: &str, body: &str) -> reqwest::Result<reqwest::Response> {
        self.send_at(id, chrono::Utc::now().timestamp(), body).await
    }
}
