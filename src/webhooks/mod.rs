//! Webhooks instances (docs/design.md#webhooks): a provider pushes, ocpoll receives, verifies,
//! standardizes and delivers through the same outbox as polled events.
//!
//! ```text
//! POST /webhooks/NAME/TOKEN --listener (token, method, type, rate, size, timeouts)-->
//!   receive(): verify the signature, standardize the body, build the notifications (pure)
//!   --writer (group commit: one durable transaction for the receipts waiting)--> outbox
//!   --only then--> 2xx to the provider; the delivery worker is woken
//! ```
//!
//! The pure parts: [`verify`] (provider signatures), [`standardize`] (body into events),
//! [`token`] (the URL token), [`rate`] (the per-instance bucket) and [`receive`], which puts
//! them together for one request. The edges: [`writer`] (the state) and [`listener`] (HTTP).
//!
//! Where a received webhook is born: [`crate::state::Store::commit_receipts`]. Before it,
//! nothing of a request is kept; a crash there makes the provider retry (no 2xx was sent). After
//! it, a retry of the same delivery (its delivery id, else its body hash within an hour) is
//! answered 2xx and adds nothing, so a crash between the commit and the answer costs no double.

pub mod listener;
pub mod rate;
pub mod standardize;
pub mod token;
pub mod verify;
pub mod writer;

use crate::instance::{Instance, InvalidBody, Webhook};
use crate::outbox::payload::{Batcher, EventIds, build_body};
use crate::state::{NewNotification, ReceiptWrite};
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use standardize::{EventGroup, StandardizeError};
use verify::VerifyError;

/// How long a provider's delivery id is remembered: its retries come within hours.
pub const DELIVERY_ID_KEPT: TimeDelta = TimeDelta::hours(24);
/// How long a body hash is remembered (SPEC: within an hour): two equal bodies an hour apart
/// are two events.
pub const BODY_HASH_KEPT: TimeDelta = TimeDelta::hours(1);

/// Why a request was refused after its token was accepted.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// 401: never enters the outbox.
    #[error("bad signature: {0}")]
    BadSignature(#[from] VerifyError),
    /// 400 with the reason.
    #[error("{0}")]
    BadBody(#[from] StandardizeError),
}

/// One request, as the listener read it.
pub struct Request<'r> {
    /// A request header by (case-insensitive) name.
    pub header: &'r dyn Fn(&str) -> Option<&'r str>,
    pub content_type: &'r str,
    pub body: &'r [u8],
    pub received_at: DateTime<Utc>,
}

/// Verifies and standardizes one request into what the writer commits. `random` draws the
/// event ids' random parts.
pub fn receive(
    instance: &Instance,
    webhook: &Webhook,
    request: &Request,
    mut random: impl FnMut() -> u128,
) -> Result<ReceiptWrite, Rejection> {
    let verified = match &webhook.signature {
        Some(signature) => verify::verify(
            signature,
            request.header,
            request.body,
            request.received_at.timestamp(),
        )?,
        None => verify::Verified::default(),
    };
    let groups = match standardize::standardize(
        request.body,
        webhook.standardize.as_ref(),
        request.received_at,
    ) {
        Ok(groups) => groups,
        Err(_) if webhook.invalid_body == InvalidBody::Raw => vec![standardize::raw_event(
            request.body,
            request.content_type,
            request.received_at,
        )],
        Err(error) => return Err(error.into()),
    };
    let delivery_id = webhook
        .delivery_header
        .as_deref()
        .and_then(|name| (request.header)(name))
        .map(str::to_owned)
        .or(verified.delivery_id);
    let (key, kept) = match delivery_id {
        Some(id) => (format!("delivery:{id}"), DELIVERY_ID_KEPT),
        None => (
            format!("sha256:{}", hex::encode(Sha256::digest(request.body))),
            BODY_HASH_KEPT,
        ),
    };
    Ok(ReceiptWrite {
        instance: instance.name.clone(),
        key,
        keep_until: request.received_at + kept,
        received_at: request.received_at,
        notifications: notifications(instance, &groups, request.received_at, &mut random),
    })
}

/// The groups' events as notifications: one objectType each, batched by the instance's limits
/// exactly as a poll's are (docs/events.md#body).
fn notifications(
    instance: &Instance,
    groups: &[EventGroup],
    now: DateTime<Utc>,
    random: &mut impl FnMut() -> u128,
) -> Vec<NewNotification> {
    let (meta, limits) = crate::outbox::notification_shape(instance);
    let mut ids = EventIds::default();
    let mut out = Vec::new();
    for group in groups {
        let mut batcher = Batcher::new(limits, meta, &group.object_type);
        let mut batches = Vec::new();
        for event in group.events.iter().cloned() {
            batches.extend(batcher.push(event));
        }
        batches.extend(batcher.finish());
        for batch in batches {
            let id = ids.next(now, random());
            out.push(NewNotification {
                body: build_body(&id, now, &meta, &group.object_type, &batch),
                id,
                instance: instance.name.clone(),
                events: u32::try_from(batch.len()).unwrap_or(u32::MAX),
                created_at: now,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
