//! Talking to providers: one GET of one page, with authentication, retries and limits
//! (`client`), the five authentication families of docs/instances.md (`auth`, with the OAuth
//! token endpoint on the wire in `token`), walking from one
//! page to the next (`paginate`), finding the records inside a page (`records`), where
//! requests may go at all (`egress`: `[http] allow` and `deny`), reading `Retry-After`
//! (`retry_after`, for callbacks too), and saying in a few words why a request failed below
//! HTTP (`transport`, for callbacks too).
//!
//! Settings come in as plain values ([`RetryPolicy`], [`RecordLimits`], [`Egress`]) that the
//! configuration builds; nothing here reads the configuration itself.
//!
//! Nothing here keeps state beyond the process except OAuth tokens, which go through the
//! [`auth::TokenStore`] trait (the state store implements it); a crash loses at most a token,
//! which the next poll refreshes again.
//!
//! One poll reads like this (the poller, not this module, owns the loop):
//! ```text
//! let mut pages = Paginator::new(&resource.pagination, expanded_url);
//! let mut url = Some(pages.first_url());
//! while let Some(next) = url {
//!     let page = client.get(&next, &session, &instance.http, &retry).await?;
//!     let found = read_records(&page, resource.records_path.as_ref())?;
//!     url = pages.next_url(&page, &found.rest, found.records.len())?;
//!     // ... change detection, decoding one record at a time ...
//! }
//! ```

pub mod auth;
pub mod client;
pub mod crypto;
pub mod egress;
pub mod paginate;
pub mod records;
pub mod retry_after;
pub mod token;
pub mod transport;

pub use auth::{
    AuthError, AuthSession, GrantEvent, GrantRecord, MemoryTokenStore, StoredToken, TokenStore,
};
pub use client::{FetchError, HttpClient, Page, Redirects, RetryCause, RetryNote, RetryPolicy};
pub use egress::{Blocked, Egress, HostRule};
pub use paginate::{PaginationError, Paginator};
pub use records::{
    PageRecords, RecordLimits, RecordsError, RecordsLocation, locate_records, parse_body, raw_json,
    read_records,
};
