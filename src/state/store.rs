//! The one store interface the rest of ocpoll uses, whichever backend holds the state: the
//! embedded SQLite file ([`SqliteStore`], the default) or, for a fleet of daemons, a PostgreSQL
//! database (docs/design.md#state). Every method is the backend's method of the same name, with
//! the same meaning; the backends are tested against one suite (`state::suite`).
//!
//! It is an enum rather than a trait object so that a poll's commit transaction
//! ([`CommitTxn`]) can borrow its store, and so that nothing here allocates per call.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::lease::{ConfigVersion, DeliveryClaim, LeaseCounts, NodeId, PollClaim};
use super::postgres::{PgCommitTxn, PgSettings, PgStore};
use super::sqlite::SqliteStore;
use super::staging::SqliteCommitTxn;
use super::{
    DropTarget, DueNotification, NewNotification, OutboxDepth, OutboxFilter, OutboxRow, PollId,
    PollOutcome, ReceiptOutcome, ReceiptWrite, ResourceKey, ResourceState, ResourceStatusRow,
    RetryTarget, StagedEvent, StateError, StoredTokens, Synchronous, TokenOverview,
    WebhookStatusRow,
};
use crate::http::{GrantEvent, GrantRecord, StoredToken};
use crate::instance::Secret;

/// The state, open: one connection to its backend. A reader such as `status` opens its own
/// beside the daemon's.
#[derive(Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Calls the same-named method of whichever backend `$store` is.
macro_rules! dispatch {
    ($store:expr, $backend:ident => $call:expr) => {
        match $store {
            Store::Sqlite($backend) => $call,
            Store::Postgres($backend) => $call,
        }
    };
}

/// A poll's one final transaction (see `staging`), on either backend.
pub enum CommitTxn<'a> {
    Sqlite(SqliteCommitTxn<'a>),
    Postgres(PgCommitTxn<'a>),
}

macro_rules! dispatch_txn {
    ($txn:expr, $backend:ident => $call:expr) => {
        match $txn {
            CommitTxn::Sqlite($backend) => $call,
            CommitTxn::Postgres($backend) => $call,
        }
    };
}

impl Store {
    /// The store behind a mutex shared by several tasks. A poisoned lock (a panic elsewhere)
    /// still holds a consistent store, because every change is a transaction.
    pub fn locked(store: &std::sync::Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
        store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens the SQLite state file at `path`, creating it (and its folders) when it does not
    /// exist.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Store, StateError> {
        SqliteStore::open(path, synchronous).map(Store::Sqlite)
    }

    /// Opens an existing SQLite state file; [`StateError::Missing`] when there is none (for
    /// commands that only read, which should not create a state as a side effect).
    pub fn open_existing(path: &Path, synchronous: Synchronous) -> Result<Store, StateError> {
        SqliteStore::open_existing(path, synchronous).map(Store::Sqlite)
    }

    /// Connects to a PostgreSQL state (`url` may hold `${env:..}`/`${file:..}` references,
    /// resolved through `secrets`); `migrate` creates or upgrades its schema first.
    pub fn connect_postgres(
        url: &str,
        secrets: &dyn crate::instance::SecretSource,
        migrate: bool,
    ) -> Result<Store, StateError> {
        let settings = PgSettings::parse(url, secrets)?;
        PgStore::connect(&settings, migrate).map(Store::Postgres)
    }

    /// Makes this store's polls `node`'s (a database's staging rows carry their node, so a
    /// starting node discards only its own and expired ones); nothing for a file.
    pub fn set_node(&mut self, node: &NodeId) {
        if let Store::Postgres(store) = self {
            store.set_node(node.clone());
        }
    }

    /// A private in-memory SQLite state, for tests.
    pub fn open_in_memory() -> Result<Store, StateError> {
        SqliteStore::open_in_memory().map(Store::Sqlite)
    }

    /// The state file (`:memory:` for an in-memory one); a database's URL without its
    /// password.
    pub fn path(&self) -> &Path {
        match self {
            Store::Sqlite(store) => store.path(),
            Store::Postgres(store) => Path::new(store.location()),
        }
    }

    /// Runs `write` without waiting for the disk (see [`SqliteStore::relaxed`]); a database
    /// backend's commits are durable anyway.
    pub(crate) fn relaxed<T>(&mut self, write: impl FnOnce(&mut Store) -> T) -> T {
        if let Store::Sqlite(store) = self {
            store.set_relaxed_window(true);
        }
        let result = write(self);
        if let Store::Sqlite(store) = self {
            store.set_relaxed_window(false);
        }
        result
    }

    /// One small durable write, for `/healthz`: the state is there and takes a write.
    pub fn check_writable(&self) -> Result<(), StateError> {
        match self {
            Store::Sqlite(store) => store.sync(),
            Store::Postgres(store) => store.check_writable(),
        }
    }

    /// Opens the final transaction of a staged poll.
    pub fn begin_commit(&mut self, poll: PollId) -> Result<CommitTxn<'_>, StateError> {
        match self {
            Store::Sqlite(store) => store.begin_commit(poll).map(CommitTxn::Sqlite),
            Store::Postgres(store) => store.begin_commit(poll).map(CommitTxn::Postgres),
        }
    }

    /// Opens the one transaction of a poll that kept its events in memory (no staging).
    pub fn begin_direct_commit(&mut self, key: &ResourceKey) -> Result<CommitTxn<'_>, StateError> {
        match self {
            Store::Sqlite(store) => store.begin_direct_commit(key).map(CommitTxn::Sqlite),
            Store::Postgres(store) => store.begin_direct_commit(key).map(CommitTxn::Postgres),
        }
    }

    /// The damage a statement of this process met in this state file (SQLite's message), if
    /// any: from then on the file is known to be corrupt, whatever the next statements say.
    /// `/healthz` fails on it.
    pub fn corruption(&self) -> Option<String> {
        dispatch!(self, backend => backend.corruption())
    }

    /// Makes every commit so far durable with one disk sync. Call it before delivering what
    /// relaxed poll commits wrote: a notification must never reach a receiver and then be
    /// lost with its poll in a power cut (the poll would run again and send the change under
    /// a new eventId).
    pub fn sync(&self) -> Result<(), StateError> {
        dispatch!(self, backend => backend.sync())
    }

    /// [`Store::sync`] when a relaxed write happened on this connection since the last one,
    /// else nothing: what delivery runs before each pass. A daemon receiving webhooks wakes
    /// delivery after every receipts' commit, and those commits are durable already; a sync
    /// for each pass was one more disk sync, taken under the state's mutex, for nothing. Sound
    /// because the relaxed writes it covers are made through this same store: `tick` and the
    /// daemon hand one store to their polls and to delivery.
    pub fn sync_relaxed(&self) -> Result<(), StateError> {
        dispatch!(self, backend => backend.sync_relaxed())
    }

    /// SQLite's `PRAGMA integrity_check`: empty when the file is sound, else its complaints.
    /// Reads the whole file, so it is for `ocpoll state check`-like commands and tests.
    pub fn integrity_check(&self) -> Result<Vec<String>, StateError> {
        dispatch!(self, backend => backend.integrity_check())
    }

    /// The state of one resource, or None when it was never polled.
    pub fn resource_state(&self, key: &ResourceKey) -> Result<Option<ResourceState>, StateError> {
        dispatch!(self, backend => backend.resource_state(key))
    }

    /// The (record id, updated nanos) pairs kept near the watermark of `key`: what was already
    /// turned into events at or just before it. Bounded by the lookback window.
    pub fn seen_pairs(&self, key: &ResourceKey) -> Result<HashSet<(String, i64)>, StateError> {
        dispatch!(self, backend => backend.seen_pairs(key))
    }

    /// Window mode: the (id, content hash) pairs the window remembers.
    pub fn window_pairs(&self, key: &ResourceKey) -> Result<HashSet<(String, String)>, StateError> {
        dispatch!(self, backend => backend.window_pairs(key))
    }

    /// Snapshot mode: the content hash stored for `record_id` by the previous committed poll.
    pub fn snapshot_hash(
        &self,
        key: &ResourceKey,
        record_id: &str,
    ) -> Result<Option<String>, StateError> {
        dispatch!(self, backend => backend.snapshot_hash(key, record_id))
    }

    /// Snapshot mode: the stored hashes of those of `record_ids` the previous poll saw (one
    /// page's worth at a time).
    pub fn snapshot_hashes(
        &self,
        key: &ResourceKey,
        record_ids: &[&str],
    ) -> Result<HashMap<String, String>, StateError> {
        dispatch!(self, backend => backend.snapshot_hashes(key, record_ids))
    }

    /// Every resource the state knows, ordered by instance, resource and pathParams.
    pub fn statuses(&self) -> Result<Vec<ResourceStatusRow>, StateError> {
        dispatch!(self, backend => backend.statuses())
    }

    /// Every instance name with anything in the state (resources, outbox, tokens), sorted; the
    /// ones without an instance file are `status`'s orphans.
    pub fn instances_with_state(&self) -> Result<Vec<String>, StateError> {
        dispatch!(self, backend => backend.instances_with_state())
    }

    /// `ocpoll state reset`: for every pathParams value of `resource` (or every resource of the
    /// instance), forgets the watermark (`to` None: the next poll is a new baseline, and the
    /// snapshot set goes too) or sets it to `to`; the seen pairs and the window's pairs go
    /// either way (a backfill sends again what the window had seen). Returns how many
    /// resources changed.
    pub fn reset_watermark(
        &mut self,
        instance: &str,
        resource: Option<&str>,
        to: Option<DateTime<Utc>>,
    ) -> Result<usize, StateError> {
        dispatch!(self, backend => backend.reset_watermark(instance, resource, to))
    }

    /// `ocpoll state forget`: everything of an instance, its outbox included.
    pub fn forget_instance(&mut self, instance: &str) -> Result<(), StateError> {
        dispatch!(self, backend => backend.forget_instance(instance))
    }

    /// The instances with a notification due at `now`, oldest head first.
    pub fn outbox_due_instances(&self, now: DateTime<Utc>) -> Result<Vec<String>, StateError> {
        dispatch!(self, backend => backend.outbox_due_instances(now))
    }

    /// The head of one instance's queue, if it is due at `now`.
    pub fn outbox_due_head(
        &self,
        instance: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DueNotification>, StateError> {
        dispatch!(self, backend => backend.outbox_due_head(instance, now))
    }

    /// The head of one instance's queue once the notifications up to seq `after` are gone, if
    /// it is due at `now`: delivery passes its last acknowledged notification, whose row stays
    /// until its batch of acknowledgements is written ([`Store::outbox_delivered_all`]).
    pub fn outbox_due_head_after(
        &self,
        instance: &str,
        after: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Option<DueNotification>, StateError> {
        dispatch!(self, backend => backend.outbox_due_head_after(instance, after, now))
    }

    /// Each instance's queue head and when it may next be sent, due or not: the delivery
    /// worker sleeps until the earliest one of the instances it can send to.
    pub fn outbox_head_attempts(&self) -> Result<Vec<(String, DateTime<Utc>)>, StateError> {
        dispatch!(self, backend => backend.outbox_head_attempts())
    }

    /// Their callbacks acknowledged them: the rows go, all in one transaction (delivery batches
    /// its acknowledgements: one commit for many 2xx instead of one each). Returns how many
    /// rows went (ids dropped meanwhile by `outbox drop` count none). A second backend
    /// implements it as one statement over the ids.
    ///
    /// Not synced on its own: lost in a crash or power cut, the notifications are sent again
    /// with their eventIds, which at-least-once allows; the next [`Store::sync`] or synced
    /// commit covers it.
    pub fn outbox_delivered_all(&mut self, ids: &[String]) -> Result<usize, StateError> {
        dispatch!(self, backend => backend.outbox_delivered_all(ids))
    }

    /// Pending notifications in the outbox, all instances (what a delivery pass leaves).
    pub fn outbox_pending(&self) -> Result<u64, StateError> {
        dispatch!(self, backend => backend.outbox_pending())
    }

    /// One more failed attempt; the next one is not before `next_attempt_at`.
    pub fn outbox_attempt_failed(
        &self,
        id: &str,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StateError> {
        dispatch!(self, backend => backend.outbox_attempt_failed(id, next_attempt_at, error))
    }

    /// Gives up on a notification (counting the attempt that failed): it stays, marked dead,
    /// until `outbox retry` or `outbox drop`.
    pub fn outbox_dead_letter(&self, id: &str, reason: &str) -> Result<(), StateError> {
        dispatch!(self, backend => backend.outbox_dead_letter(id, reason))
    }

    /// `outbox retry`: the chosen rows become pending and due at `now`, with a fresh retry
    /// window from `now` (a user who fixed the receiver expects the full window again, not a
    /// dead letter at the first 503). Attempts and the last error are kept for the record.
    /// Returns how many rows changed.
    pub fn outbox_retry(
        &self,
        target: &RetryTarget,
        now: DateTime<Utc>,
    ) -> Result<usize, StateError> {
        dispatch!(self, backend => backend.outbox_retry(target, now))
    }

    /// `outbox drop`: deletes the chosen rows for good. Returns how many went.
    pub fn outbox_drop(&self, target: &DropTarget) -> Result<usize, StateError> {
        dispatch!(self, backend => backend.outbox_drop(target))
    }

    /// Pending and dead-lettered counts per instance (instances with an empty outbox are absent).
    pub fn outbox_depth(&self) -> Result<HashMap<String, OutboxDepth>, StateError> {
        dispatch!(self, backend => backend.outbox_depth())
    }

    /// Notifications in delivery order, without bodies.
    pub fn outbox_list(&self, filter: &OutboxFilter) -> Result<Vec<OutboxRow>, StateError> {
        dispatch!(self, backend => backend.outbox_list(filter))
    }

    /// The exact body bytes of one notification.
    pub fn outbox_body(&self, id: &str) -> Result<Option<Vec<u8>>, StateError> {
        dispatch!(self, backend => backend.outbox_body(id))
    }

    /// Starts a poll of `key` (watermark mode), discarding any unfinished poll of it first.
    pub fn begin_poll(&mut self, key: &ResourceKey) -> Result<PollId, StateError> {
        dispatch!(self, backend => backend.begin_poll(key))
    }

    /// Starts a snapshot-mode poll: its commit replaces the snapshot set with what it staged,
    /// even when it staged nothing (the resource became empty, every record DELETED).
    pub fn begin_snapshot_poll(&mut self, key: &ResourceKey) -> Result<PollId, StateError> {
        dispatch!(self, backend => backend.begin_snapshot_poll(key))
    }

    /// Stages one page of events in one short transaction. An event with the same
    /// (id, updated) as one already staged in this poll is ignored (the first is kept: the
    /// record was read twice, e.g. across a page boundary). Returns how many rows were added.
    pub fn stage_events(
        &mut self,
        poll: PollId,
        events: &[StagedEvent],
    ) -> Result<usize, StateError> {
        dispatch!(self, backend => backend.stage_events(poll, events))
    }

    /// Snapshot mode: stages one page of the current poll's (id, content hash, record) set.
    /// A record id already staged in this poll keeps its first version.
    pub fn stage_snapshot<I, H, R>(
        &mut self,
        poll: PollId,
        records: &[(I, H, R)],
    ) -> Result<(), StateError>
    where
        I: AsRef<str>,
        H: AsRef<str>,
        R: AsRef<[u8]>,
    {
        dispatch!(self, backend => backend.stage_snapshot(poll, records))
    }

    /// Drops every unfinished poll and its staging rows (at start-up: they belong to a process
    /// that died). Returns how many polls were dropped.
    pub fn discard_unfinished_polls(&mut self) -> Result<usize, StateError> {
        dispatch!(self, backend => backend.discard_unfinished_polls())
    }

    /// Records a failed poll: its time, error and next due time. The watermark, seen pairs and
    /// snapshot do not move, and its staging rows are dropped (the next poll starts over).
    pub fn record_poll_failure(
        &mut self,
        key: &ResourceKey,
        error: &str,
        polled_at: DateTime<Utc>,
        next_due_at: Option<DateTime<Utc>>,
    ) -> Result<(), StateError> {
        dispatch!(self, backend => backend.record_poll_failure(key, error, polled_at, next_due_at))
    }

    /// The token stored for `instance`, if it came from the credentials hashed as
    /// `credentials_hash`. A token from other credentials is deleted (docs/design.md#state: the instance file's
    /// credentials changed, so the old token must not be used) and None returned.
    pub fn oauth_token(
        &self,
        instance: &str,
        credentials_hash: &str,
    ) -> Result<Option<StoredToken>, StateError> {
        dispatch!(self, backend => backend.oauth_token(instance, credentials_hash))
    }

    /// Stores (or replaces) the token of `instance`.
    pub fn save_oauth_token(
        &self,
        instance: &str,
        credentials_hash: &str,
        token: &StoredToken,
    ) -> Result<(), StateError> {
        dispatch!(self, backend => backend.save_oauth_token(instance, credentials_hash, token))
    }

    /// What the state remembers of `instance`'s grant. Refresh results recorded under other
    /// credentials are not returned (the file's credentials changed since); the used code is,
    /// whatever the credentials, so that a code is never sent twice.
    pub fn oauth_grant(
        &self,
        instance: &str,
        credentials_hash: &str,
    ) -> Result<GrantRecord, StateError> {
        dispatch!(self, backend => backend.oauth_grant(instance, credentials_hash))
    }

    /// Records a token request's outcome; `token`, when given, is saved in the same
    /// transaction (a code marked used always has its tokens, or its rejection, beside it).
    /// A revoked grant's token is deleted: it can neither be used nor refreshed.
    pub fn record_grant(
        &mut self,
        instance: &str,
        credentials_hash: &str,
        event: &GrantEvent,
        token: Option<&StoredToken>,
    ) -> Result<(), StateError> {
        dispatch!(self, backend => backend.record_grant(instance, credentials_hash, event, token))
    }

    /// Per instance, for `status`: whether a token is stored and when it expires, and the
    /// grant's record. Never the tokens themselves.
    pub fn oauth_overview(&self) -> Result<Vec<TokenOverview>, StateError> {
        dispatch!(self, backend => backend.oauth_overview())
    }

    /// Every instance's tokens (the listener's cache).
    pub fn webhook_tokens(&self) -> Result<Vec<(String, StoredTokens)>, StateError> {
        dispatch!(self, backend => backend.webhook_tokens())
    }

    /// The instance's token, stored as `fresh` when it has none yet.
    pub fn webhook_token_or_create(
        &mut self,
        instance: &str,
        fresh: &Secret,
        now: DateTime<Utc>,
    ) -> Result<Secret, StateError> {
        dispatch!(self, backend => backend.webhook_token_or_create(instance, fresh, now))
    }

    /// Replaces the instance's token with `fresh`; the current one keeps working until
    /// `previous_until`. Without a current token, `fresh` is simply stored.
    pub fn rotate_webhook_token(
        &mut self,
        instance: &str,
        fresh: &Secret,
        now: DateTime<Utc>,
        previous_until: DateTime<Utc>,
    ) -> Result<(), StateError> {
        dispatch!(self, backend => backend.rotate_webhook_token(instance, fresh, now, previous_until))
    }

    /// Commits `receipts` in one durable transaction, in order; a receipt whose key is already
    /// kept adds nothing. On an error nothing of any of them is kept.
    pub fn commit_receipts(
        &mut self,
        receipts: &[ReceiptWrite],
    ) -> Result<Vec<ReceiptOutcome>, StateError> {
        dispatch!(self, backend => backend.commit_receipts(receipts))
    }

    /// Forgets receipts kept until before `now`; returns how many.
    pub fn trim_webhook_receipts(&mut self, now: DateTime<Utc>) -> Result<usize, StateError> {
        dispatch!(self, backend => backend.trim_webhook_receipts(now))
    }

    /// Every instance with a token or a receipt, for `status`.
    pub fn webhook_statuses(&self) -> Result<Vec<WebhookStatusRow>, StateError> {
        dispatch!(self, backend => backend.webhook_statuses())
    }

    /// Whether `instance` has a receipt kept under `key` (tests and `status`).
    pub fn webhook_receipt_kept(&self, instance: &str, key: &str) -> Result<bool, StateError> {
        dispatch!(self, backend => backend.webhook_receipt_kept(instance, key))
    }

    /// Claims the poll of `key` for `node` until `now + lease` (see `lease`).
    pub fn claim_poll(
        &mut self,
        key: &ResourceKey,
        node: &NodeId,
        config: &ConfigVersion,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<PollClaim, StateError> {
        dispatch!(self, backend => backend.claim_poll(key, node, config, lease, now))
    }

    /// Gives the poll's lease back (after its commit or failure).
    pub fn release_poll(&mut self, key: &ResourceKey, node: &NodeId) -> Result<(), StateError> {
        dispatch!(self, backend => backend.release_poll(key, node))
    }

    /// Claims the delivery of `instance`'s notifications (its outbox head) for `node`.
    pub fn claim_delivery(
        &mut self,
        instance: &str,
        node: &NodeId,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<DeliveryClaim, StateError> {
        dispatch!(self, backend => backend.claim_delivery(instance, node, lease, now))
    }

    /// Gives the delivery lease of `instance` back.
    pub fn release_delivery(&mut self, instance: &str, node: &NodeId) -> Result<(), StateError> {
        dispatch!(self, backend => backend.release_delivery(instance, node))
    }

    /// Extends every lease `node` still holds to `now + lease`; says what it holds.
    pub fn renew_leases(
        &mut self,
        node: &NodeId,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<LeaseCounts, StateError> {
        dispatch!(self, backend => backend.renew_leases(node, lease, now))
    }

    /// Whether `node` still holds the delivery lease of `instance` (checked before each send).
    pub fn holds_delivery(
        &mut self,
        instance: &str,
        node: &NodeId,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        dispatch!(self, backend => backend.holds_delivery(instance, node, now))
    }
}

impl CommitTxn<'_> {
    /// Calls `f` with each staged event of the poll, in the order they were staged.
    pub fn for_each_staged<E>(&self, f: impl FnMut(StagedEvent) -> Result<(), E>) -> Result<(), E>
    where
        E: From<StateError>,
    {
        dispatch_txn!(self, backend => backend.for_each_staged(f))
    }

    /// Snapshot mode: calls `f` with each record id of the previous snapshot that this poll did
    /// not see (a DELETED event), with the last version of it that was stored. Nothing for a poll
    /// in watermark mode.
    pub fn snapshot_deletions<E>(
        &self,
        f: impl FnMut(String, Option<Vec<u8>>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<StateError>,
    {
        dispatch_txn!(self, backend => backend.snapshot_deletions(f))
    }

    /// The resource's watermark as the state holds it now, inside this transaction (so nothing
    /// can move it between this read and the commit).
    pub fn watermark(&self) -> Result<Option<DateTime<Utc>>, StateError> {
        dispatch_txn!(self, backend => backend.watermark())
    }

    /// Remembers what a row of a direct commit saw (staged rows are remembered by `finish`):
    /// its (id, updated) pair in watermark mode, its (id, hash) pair in window mode. Pairs
    /// below the floors are dropped again by `finish`.
    pub fn remember(&self, event: &StagedEvent) -> Result<(), StateError> {
        dispatch_txn!(self, backend => backend.remember(event))
    }

    /// Adds one notification to the outbox, due for delivery at once.
    pub fn insert_notification(&self, notification: NewNotification) -> Result<(), StateError> {
        dispatch_txn!(self, backend => backend.insert_notification(notification))
    }

    /// Commits the poll: watermark, seen pairs, snapshot set, poll result, and the notifications
    /// inserted so far, in one COMMIT; the staging rows are deleted in it too.
    pub fn finish(self, outcome: PollOutcome) -> Result<(), StateError> {
        dispatch_txn!(self, backend => backend.finish(outcome))
    }
}
