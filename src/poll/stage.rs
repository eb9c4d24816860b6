//! Where a poll's events wait for its commit: each page's events go to the state's staging
//! table in short transactions of at most [`STAGE_PART`] records each, so memory holds one
//! page's bytes and one part's events, never the result set. A poll whose first page is its
//! last, and small ([`HELD_RECORDS_MAX`]), keeps that page's events in memory instead: nothing
//! to stage, and its commit is its only write transaction.

use super::judge::Judge;
use super::pages::{PageRead, PageSink};
use super::{PollError, PollReport, Progress, note_problem};
use crate::state::{PollId, ResourceKey, StagedEvent, Store};
use std::collections::HashSet;
use std::sync::Mutex;

/// How many records of a page are judged and staged together.
const STAGE_PART: usize = 4096;

/// The most records a one-page poll keeps in memory for its commit; a larger page is staged.
const HELD_RECORDS_MAX: usize = STAGE_PART;

/// How far staging has got.
pub(super) enum Staging<'k> {
    /// Nothing staged yet (watermark mode): the poll begins in the state only when a second
    /// page comes.
    NotYet(&'k ResourceKey),
    /// Begun (snapshot mode begins at once: it stages its whole set).
    Begun(PollId),
}

/// The poll's page sink: counts each page, lets the mode's judge pick its events, stages them.
pub(super) struct Stager<'a, J> {
    pub store: &'a Mutex<Store>,
    pub judge: J,
    pub staging: Staging<'a>,
    pub report: &'a mut PollReport,
    pub progress: Progress<'a>,
    /// The events of a one-page poll.
    held: Vec<StagedEvent>,
}

/// What the page loop leaves for the commit.
pub(super) struct Staged<J> {
    /// `None` when nothing was staged: the events are all in `held`.
    pub poll: Option<PollId>,
    pub held: Vec<StagedEvent>,
    /// The judge, with what it gathered (the newest date, the provider's clock).
    pub judge: J,
}

impl<'a, J: Judge> Stager<'a, J> {
    pub fn new(
        store: &'a Mutex<Store>,
        judge: J,
        staging: Staging<'a>,
        report: &'a mut PollReport,
        progress: Progress<'a>,
    ) -> Self {
        Stager {
            store,
            judge,
            staging,
            report,
            progress,
            held: Vec::new(),
        }
    }

    pub fn finish(self) -> Staged<J> {
        Staged {
            poll: match self.staging {
                Staging::Begun(poll) => Some(poll),
                Staging::NotYet(_) => None,
            },
            held: self.held,
            judge: self.judge,
        }
    }
}

impl<J: Judge> PageSink for Stager<'_, J> {
    fn status(&mut self, status: u16) {
        self.report.count_status(status);
    }

    fn page(&mut self, page: PageRead<'_>) -> Result<(), PollError> {
        for problem in &page.too_large {
            note_problem(self.report, problem.to_string());
        }
        let only_page = matches!(self.staging, Staging::NotYet(_)) && page.next.is_none();
        if only_page && page.records.len() <= HELD_RECORDS_MAX {
            let staged = self.judge.judge(&page, page.records, self.report)?;
            self.held = first_of_each(staged);
        } else {
            let poll = self.begun()?;
            for part in page.records.chunks(STAGE_PART) {
                let staged = self.judge.judge(&page, part, self.report)?;
                Store::locked(self.store).stage_events(poll, &staged)?;
            }
        }
        self.report.pages += 1;
        self.report.records_read += page.found as u64;
        (self.progress)(self.report.pages, self.report.records_read);
        Ok(())
    }
}

impl<J> Stager<'_, J> {
    /// The poll's staging, begun now if it was not yet.
    fn begun(&mut self) -> Result<PollId, PollError> {
        let poll = match self.staging {
            Staging::Begun(poll) => poll,
            Staging::NotYet(key) => Store::locked(self.store).begin_poll(key)?,
        };
        self.staging = Staging::Begun(poll);
        Ok(poll)
    }
}

/// The same (id, updated) twice in a page keeps the first, as staging's unique index does.
fn first_of_each(events: Vec<StagedEvent>) -> Vec<StagedEvent> {
    let mut seen = HashSet::new();
    events
        .into_iter()
        .filter(|event| seen.insert((event.record_id.clone(), event.updated)))
        .collect()
}
