//! Talking to providers: one GET of one page, with authentication, retries and limits
//! (`client`), the five authentication families of docs/instances.md (`auth`), walking from one
//! page to the next (`paginate`), finding the records inside a page (`records`), where
//! requests may go at all (`egress`: `[http] allow` and `deny`), and reading `Retry-After`
//! (`retry_after`, for callbacks too).
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
//!     let body = parse_body(&page)?;
//!     let count = locate_records(&body, resource.records_path.as_ref())?.len();
//!     url = pages.next_url(&page, &body, count)?;
//!     let records = extract_records(body, resource.records_path.as_ref())?;
//!     // ... change detection ...
//! }
//! ```

pub mod auth;
pub mod client;
pub mod crypto;
pub mod egress;
pub mod paginate;
pub mod records;
pub mod retry_after;

pub use auth::{AuthError, AuthSession, MemoryTokenStore, StoredToken, TokenStore};
pub use client::{FetchError, HttpClient, Page, Redirects, RetryCause, RetryNote, RetryPolicy};
pub use egress::{Blocked, Egress, HostRule};
pub use paginate::{PaginationError, Paginator};
pub use records::{
    RecordLimits, RecordsError, extract_records, locate_records, parse_body, raw_json,
};
