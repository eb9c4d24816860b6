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
