//! The outbox: notifications on their way to callback URLs (docs/design.md#the-outbox-and-delivery, docs/events.md).
//!
//! `payload` builds the notification body (a public API, byte for byte) and splits a poll's
//! events into batches; `sign` computes the signature headers; `retry` decides what a failed
//! attempt means. Those three are pure. `deliver` sends: the signed POST and the worker that
//! drains the due notifications of every instance.

pub mod deliver;
pub mod payload;
pub mod retry;
pub mod sign;

use crate::instance::Instance;
use payload::{BatchLimits, InstanceMeta};

/// What a notification of `instance` says about it, and how its events are batched
/// (`event.notification.batch.size` and `.batch.bytes`): one reading for polls and webhooks.
pub fn notification_shape(instance: &Instance) -> (InstanceMeta<'_>, BatchLimits) {
    let meta = InstanceMeta {
        instance_id: &instance.name,
        element_key: instance.element_key.as_deref().unwrap_or_default(),
        tags: &instance.tags,
    };
    let limits = BatchLimits {
        max_events: instance.notification.batch_size,
        max_bytes: instance.notification.batch_bytes,
    };
    (meta, limits)
}
