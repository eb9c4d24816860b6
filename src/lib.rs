//! ocpoll: a polling daemon that turns changes in APIs without webhooks into signed events.
//!
//! The flow, one module per step (docs/design.md tells it whole):
//! `instance` (files -> typed instances) -> `poll` (one poll: `http` requests, auth and pages;
//! `detect` judges records against the watermark, pure) -> `state` (one SQLite transaction:
//! events into the outbox, watermark moved) -> `outbox` (payload, signatures, delivery).
//! `runner` runs polls within their limits with delivery beside them, for `tick` once and for
//! the `daemon`'s scheduler continuously (with reload, graceful shutdown and systemd notify).
//! `dates` and `url_macros` are the pure pieces the instance model and the poller share, `json`
//! names JSON types alike in every message; `cli`, `config` and `commands` are the edges,
//! `trial` is `ocpoll try`, `authorize` is `ocpoll auth`, `demo` is `ocpoll demo`, `metrics`
//! observes the daemon. `webhooks` is the other way in: providers push to `run --listen`, and
//! their bodies become notifications in the same outbox.
//!
//! Public are the modules the binary, the integration tests and the benches use; the rest is
//! crate-private, so the compiler finds what nothing uses. `testing` (hidden from the docs) is
//! test infrastructure shared by unit and integration tests: a real PostgreSQL server.

pub mod assets;
pub(crate) mod authorize;
pub mod cli;
pub mod commands;
pub mod config;
pub(crate) mod daemon;
pub mod dates;
pub(crate) mod demo;
pub(crate) mod detect;
pub mod fleet;
pub mod http;
pub mod instance;
mod json;
pub(crate) mod metrics;
pub(crate) mod outbox;
pub(crate) mod poll;
pub(crate) mod runner;
pub mod state;
#[doc(hidden)]
pub mod testing;
pub(crate) mod trial;
pub(crate) mod url_macros;
pub(crate) mod webhooks;
