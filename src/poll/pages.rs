//! The page reader: one target's pages, from its expanded URL to the last page, each fetched
//! (authentication, retries), parsed, its records found and held to the record-size limit,
//! and its next page found. A poll and `ocpoll try` read pages with this one loop, so a dry
//! run cannot disagree with a poll about what a page holds.
//!
//! What happens to a page is the [`PageSink`]'s business: a poll judges and stages its
//! records, `try` reports them. A sink's error stops the reading and becomes the read's error.

use super::{PollError, PollTarget};
use crate::detect::{self, RecordProblem};
use crate::http::{AuthSession, HttpClient, Page, Paginator, RecordLimits, RetryPolicy, records};
use crate::instance::Resource;
use serde_json::value::RawValue;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// What a page reader needs besides the target: the client, the credentials and the limits.
pub struct PageReader<'a> {
    pub client: &'a HttpClient,
    pub session: &'a AuthSession,
    pub retry: &'a RetryPolicy,
    /// Records whose JSON is larger are left out of a page, each reported as a problem.
    pub limits: &'a RecordLimits,
    pub caps: PollCaps,
}

/// The most one read may take (`[poll] max_pages` and `max_poll_seconds`, or the resource's
/// `maxPages` and `maxPollSeconds`): a provider that always hands out a next page must not
/// keep a poll, and a tick holding the state's lock, running forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollCaps {
    pub max_pages: u64,
    pub max_duration: Duration,
}

impl PollCaps {
    /// These caps, or the resource's own where it sets them.
    pub fn for_resource(self, resource: &Resource) -> PollCaps {
        PollCaps {
            max_pages: resource.max_pages.unwrap_or(self.max_pages),
            max_duration: resource.max_poll_time.unwrap_or(self.max_duration),
        }
    }
}

/// One page as read.
pub struct PageRead<'p> {
    /// The response: status, headers, the provider's `Date`, the retries it took.
    pub page: &'p Page,
    /// Where in the body the records were.
    pub location: records::RecordsLocation,
    /// How many records the page holds, those over the size limit included.
    pub found: usize,
    /// The records within the size limit, in page order, each as the provider sent it (the
    /// sink decodes one at a time: [`detect::decode`]).
    pub records: &'p [&'p RawValue],
    /// One problem per record over the size limit (left out of `records`).
    pub too_large: Vec<RecordProblem>,
    /// The next page; `None` on the last one.
    pub next: Option<&'p Url>,
}

/// Where a reader's pages go.
pub trait PageSink: Send {
    /// Called before each request; `false` stops the reading there (`try --pages`).
    fn before_request(&mut self, _url: &Url) -> bool {
        true
    }

    /// The status of every response, those retried included (for the metrics).
    fn status(&mut self, _status: u16) {}

    /// A response arrived (before its body is read as JSON).
    fn response(&mut self, _page: &Page) {}

    /// One page; an error stops the reading and is returned by [`PageReader::read`].
    fn page(&mut self, page: PageRead<'_>) -> Result<(), PollError>;
}

impl PageReader<'_> {
    /// Reads `target`'s pages from `first_url` to the last (or until the sink stops it),
    /// handing each to `sink`. Every page request repeats `first_url` with only the page
    /// parameter added (docs/design.md#polling).
    pub async fn read(
        &self,
        target: &PollTarget,
        first_url: Url,
        sink: &mut impl PageSink,
    ) -> Result<(), PollError> {
        let instance = &target.instance;
        let resource = target.resource();
        let caps = self.caps.for_resource(resource);
        let deadline = Instant::now() + caps.max_duration;
        let mut paginator = Paginator::new(&resource.pagination, first_url)
            .allowing_origins(&instance.http.allowed_origins);
        let mut next = Some(paginator.first_url());
        let mut pages = 0;
        while let Some(url) = next.take() {
            if pages == caps.max_pages {
                return Err(PollError::TooManyPages {
                    limit: caps.max_pages,
                });
            }
            if !sink.before_request(&url) {
                break;
            }
            let mut on_status = |status| sink.status(status);
            let fetch = self.client.get_observed(
                &url,
                self.session,
                &instance.http,
                self.retry,
                &mut on_status,
            );
            let too_long = PollError::TooLong {
                limit: caps.max_duration,
                pages,
            };
            let page = tokio::time::timeout_at(deadline, fetch)
                .await
                .map_err(|_| too_long)??;
            pages += 1;
            sink.response(&page);
            let found = records::read_records(&page, resource.records_path.as_ref())?;
            let count = found.records.len();
            let (records, too_large) = detect::within_size_limit(
                found.records,
                page.body.len(),
                self.limits.max_record_bytes,
                &resource.id_field,
            );
            // The page goes to the sink before a pagination error fails the read: `try` shows
            // the records of the page whose next link is broken.
            let following = paginator.next_url(&page, &found.rest, count);
            sink.page(PageRead {
                page: &page,
                location: found.location,
                found: count,
                records: &records,
                too_large,
                next: following.as_ref().ok().and_then(Option::as_ref),
            })?;
            next = following?;
        }
        Ok(())
    }
}
