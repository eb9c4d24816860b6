//! Test infrastructure shared by the library's unit tests, the integration tests in `tests/`
//! and the benches; not part of ocpoll's interface (hidden from the docs, no stability promise).
//!
//! It owns what a test needs from outside the process and must start and stop by itself:
//! `postgres`, a real PostgreSQL server per test process for the PostgreSQL state backend
//! (issue 18, docs: CONTRIBUTING.md, "PostgreSQL tests"). Mock HTTP servers stay in
//! `tests/support/`.

pub mod postgres;
