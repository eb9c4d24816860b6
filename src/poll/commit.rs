//! The poll's one transaction (docs/design.md#state): its staged (or held) events become
//! notifications in the outbox (docs/events.md bodies, batched) and its watermark moves, together.
//! This is where an event is born; before it nothing of the poll is visible.

use super::{FinishedPoll, PollContext, PollError, PollReport, PollTarget};
use crate::detect::{self, EventCounts, EventType};
use crate::outbox::payload::{Batcher, EventEntry, EventIds, InstanceMeta, RawRecord, build_body};
use crate::state::{CommitTxn, NewNotification, PollOutcome, StagedEvent, StagedKind, Store};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The poll's one transaction: staged events into notifications, the watermark moved.
pub(super) fn commit(
    ctx: &PollContext,
    target: &PollTarget,
    poll: FinishedPoll,
    now: DateTime<Utc>,
    next_due: DateTime<Utc>,
    report: &mut PollReport,
) -> Result<(), PollError> {
    let mut store = Store::locked(&ctx.store);
    // Group commit: not synced here; delivery syncs once (`Store::sync`) before it sends.
    store.relaxed(|store| write_commit(store, target, poll, (now, next_due), report))
}

/// The body of [`commit`], inside its relaxed-durability window.
fn write_commit(
    store: &mut Store,
    target: &PollTarget,
    poll: FinishedPoll,
    (now, next_due): (DateTime<Utc>, DateTime<Utc>),
    report: &mut PollReport,
) -> Result<(), PollError> {
    let instance = &target.instance;
    let resource = target.resource();
    let (meta, limits) = crate::outbox::notification_shape(instance);
    let txn = match poll.id {
        Some(id) => store.begin_commit(id)?,
        None => store.begin_direct_commit(&target.key)?,
    };
    // Dropping the transaction rolls it back: the reset stands, the poll counts as failed.
    if txn.watermark()? != poll.started_from {
        return Err(PollError::WatermarkMoved);
    }
    let mut writer = NotificationWriter {
        txn: &txn,
        batcher: Some(Batcher::new(limits, meta, &resource.key)),
        meta,
        object_type: &resource.key,
        ids: EventIds::default(),
        now,
        events: 0,
        by_type: EventCounts::default(),
        notifications: 0,
    };
    txn.for_each_staged(|staged| writer.add_staged(staged))?;
    for event in poll.held {
        txn.remember(&event)?;
        writer.add_staged(event)?;
    }
    if poll.deletions {
        let date = detect::event_date(now, 3);
        let path_params = super::non_empty(&target.path_params);
        txn.snapshot_deletions(|id, last_raw| {
            writer.add(deleted_event(id, last_raw, &date, path_params.clone())?)
        })?;
    }
    let by_type = std::mem::take(&mut writer.by_type);
    let (events, notifications) = writer.finish()?;
    let problems = (report.problem_count > 0).then(|| super::problem_summary(report));
    txn.finish(PollOutcome {
        watermark: poll.watermark,
        seen_floor: poll.seen_floor,
        window_floor: poll.window_floor,
        next_due_at: Some(next_due),
        records_read: report.records_read,
        events,
        polled_at: now,
        problems,
    })?;
    report.events = events;
    report.events_by_type = by_type;
    report.notifications = notifications;
    report.watermark = poll.watermark;
    Ok(())
}

/// Batches events and writes each full batch to the outbox as one notification.
struct NotificationWriter<'a, 't> {
    txn: &'a CommitTxn<'t>,
    /// `None` once finished.
    batcher: Option<Batcher<'a>>,
    meta: InstanceMeta<'a>,
    object_type: &'a str,
    ids: EventIds,
    now: DateTime<Utc>,
    events: u64,
    by_type: EventCounts,
    notifications: u64,
}

impl NotificationWriter<'_, '_> {
    fn add_staged(&mut self, staged: StagedEvent) -> Result<(), PollError> {
        let StagedKind::Event(event_type) = staged.kind else {
            return Ok(());
        };
        let raw = String::from_utf8(staged.raw)
            .map_err(|error| PollError::Staged(error.to_string()))
            .and_then(|text| {
                RawRecord::from_json_string(text)
                    .map_err(|error| PollError::Staged(error.to_string()))
            })?;
        let path_params = match staged.path_params_json {
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|error| PollError::Staged(error.to_string()))?,
            ),
            None => None,
        };
        self.add(EventEntry {
            event_type,
            object_id: staged.record_id,
            date: staged.date,
            path_params,
            raw,
        })
    }

    fn add(&mut self, event: EventEntry) -> Result<(), PollError> {
        self.events += 1;
        self.by_type.add(event.event_type, 1);
        match self
            .batcher
            .as_mut()
            .and_then(|batcher| batcher.push(event))
        {
            Some(batch) => self.write(&batch),
            None => Ok(()),
        }
    }

    fn write(&mut self, batch: &[EventEntry]) -> Result<(), PollError> {
        let id = self.ids.next(self.now, rand::random());
        let body = build_body(&id, self.now, &self.meta, self.object_type, batch);
        self.txn.insert_notification(NewNotification {
            id,
            instance: self.meta.instance_id.to_owned(),
            body,
            events: u32::try_from(batch.len()).unwrap_or(u32::MAX),
            created_at: self.now,
        })?;
        self.notifications += 1;
        Ok(())
    }

    /// Writes the last batch; returns (events, notifications).
    fn finish(mut self) -> Result<(u64, u64), PollError> {
        if let Some(batch) = self.batcher.take().and_then(Batcher::finish) {
            self.write(&batch)?;
        }
        Ok((self.events, self.notifications))
    }
}

/// A record gone from a snapshot: its last version when stored, else `{"id": ...}` (docs/events.md).
fn deleted_event(
    id: String,
    last_raw: Option<Vec<u8>>,
    date: &str,
    path_params: Option<BTreeMap<String, String>>,
) -> Result<EventEntry, PollError> {
    let raw = match last_raw.and_then(|bytes| String::from_utf8(bytes).ok()) {
        Some(text) => RawRecord::from_json_text(&text).ok(),
        None => None,
    };
    let raw = raw.unwrap_or_else(|| RawRecord::from_value(&serde_json::json!({ "id": id })));
    Ok(EventEntry {
        event_type: EventType::Deleted,
        object_id: id,
        date: date.to_owned(),
        path_params,
        raw,
    })
}
