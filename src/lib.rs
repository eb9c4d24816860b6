//! ocpoll: a polling daemon that turns changes in APIs without webhooks into signed events.
//!
//! The flow, one module per step:
//! `instance` (files -> typed instances) -> `http` (requests, auth, pages) -> `detect`
//! (records + watermark -> events, pure) -> `state` (one SQLite transaction: events into the
//! outbox, watermark moved) -> `outbox` (payload, signatures, delivery). `daemon` runs polls on
//! schedule and delivery continuously, with reload, graceful shutdown and systemd notify.
//! `dates` and `url_macros` are the pure pieces the instance model and the poller share, `json`
//! names JSON types alike in every message; `cli`, `config` and `commands` are the edges.

pub mod assets;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod dates;
pub mod demo;
pub mod detect;
pub mod http;
pub mod instance;
mod json;
pub mod metrics;
pub mod outbox;
pub mod poll;
pub mod runner;
pub mod state;
pub mod trial;
pub mod url_macros;
