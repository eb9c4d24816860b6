//! ocpoll: a polling daemon that turns changes in APIs without webhooks into signed events.
//!
//! The flow, one module per step:
//! `instance` (files -> typed instances) -> polling (later) -> change detection (later) ->
//! state and outbox (later) -> delivery (later). `dates` and `url_macros` are the pure pieces
//! the instance model and the poller share; `cli`, `config` and `commands` are the edges.

pub mod assets;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dates;
pub mod http;
pub mod instance;
pub mod url_macros;
