//! The outbox: notifications on their way to callback URLs (SPEC.md section 7, EVENTS.md).
//!
//! `payload` builds the notification body (a public API, byte for byte) and splits a poll's
//! events into batches; `sign` computes the signature headers. Both are pure. The delivery
//! worker that sends pending notifications, retries and dead-letters them will live here too.

pub mod payload;
pub mod sign;
