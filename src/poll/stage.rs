//! Where a poll's events wait for its commit: each page's events go to the state's staging
//! table in a short transaction, so memory holds one page, never the result set. A poll whose
//! first page is its last keeps that page's events in memory instead: nothing to stage, and
//! its commit is its only write transaction.

use super::judge::Judge;
use super::pages::{PageRead, PageSink};
use super::{PollError, PollReport, Progress, note_problem};
use crate::state::{PollId, ResourceKey, StagedEvent, Store};
use std::collections::HashSet;
use std::sync::Mutex;

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
        let staged = self.judge.judge(&page, self.report)?;
        self.report.pages += 1;
        self.report.records_read += page.found as u64;
        (self.progress)(self.report.pages, self.report.records_read);
        match (&self.staging, page.next) {
            (Staging::NotYet(_), None) => self.held = first_of_each(staged),
            (Staging::NotYet(key), Some(_)) => {
                let poll = Store::locked(self.store).begin_poll(key)?;
                Store::locked(self.store).stage_events(poll, &staged)?;
                self.staging = Staging::Begun(poll);
            }
            (Staging::Begun(poll), _) => {
                Store::locked(self.store).stage_events(*poll, &staged)?;
            }
        }
        Ok(())
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
