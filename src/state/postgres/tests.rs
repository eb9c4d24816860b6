//! Tests of the PostgreSQL store against a real server (the test harness's, see
//! `crate::testing::postgres`; skipped with a line on stderr when PostgreSQL is not installed).
//!
//! Most are the SQLite store's own tests (`state/tests.rs`, `outbox.rs`, `webhooks.rs`) with
//! `Store::open_in_memory()` replaced by a fresh database: the same behaviour checked on both
//! backends. Then what only PostgreSQL has: migrations, settings, and two nodes on one
//! database.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::super::*;
use super::*;
use crate::detect::EventType;
use crate::http::StoredToken;
use crate::instance::Secret;

/// A new empty database on the test server (`crate::testing::postgres`), or None: PostgreSQL
/// is not installed, and the test is skipped (the harness says so on stderr).
fn fresh_url() -> Option<String> {
    Some(crate::testing::postgres::server()?.fresh_database())
}

fn settings(url: &str) -> PgSettings {
    PgSettings::parse(url, &crate::instance::ScopedSecrets::default()).unwrap()
}

/// A migrated store on a fresh database.
fn fresh() -> Option<PgStore> {
    let url = fresh_url()?;
    Some(PgStore::connect(&settings(&url), true).unwrap())
}

impl PgStore {
    /// Runs `sql` (tests only).
    fn execute_sql(&self, sql: &'static str) {
        self.call(move |session| session.run(|client| client.batch_execute(sql)))
            .unwrap();
    }

    /// The bigint `sql` selects (tests only).
    fn count_sql(&self, sql: &'static str) -> i64 {
        self.call(move |session| session.run(|client| client.query_one(sql, &[])))
            .unwrap()
            .get(0)
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn nanos(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt().unwrap()
}

fn key(instance: &str, resource: &str) -> ResourceKey {
    ResourceKey::new(instance, resource, &BTreeMap::new())
}

fn event(id: &str, updated: Option<i64>) -> StagedEvent {
    StagedEvent {
        record_id: id.to_owned(),
        updated,
        kind: StagedKind::Event(EventType::Updated),
        date: "2027-01-15T08:00:00Z".to_owned(),
        path_params_json: None,
        raw: format!(r#"{{"id":"{id}"}}"#).into_bytes(),
        hash: None,
    }
}

fn outcome(watermark: Option<DateTime<Utc>>, seen_floor: Option<i64>) -> PollOutcome {
    PollOutcome {
        watermark,
        seen_floor,
        window_floor: None,
        next_due_at: Some(at(600)),
        records_read: 3,
        events: 2,
        polled_at: at(1),
        problems: None,
    }
}

fn notification(id: &str, instance: &str, body: &[u8], events: u32) -> NewNotification {
    NewNotification {
        id: id.to_owned(),
        instance: instance.to_owned(),
        body: body.to_vec(),
        events,
        created_at: at(2),
    }
}

/// Commits `poll` with one notification per staged event, its body the event's raw bytes.
fn commit_one_per_event(
    store: &mut PgStore,
    poll: PollId,
    instance: &str,
    outcome: PollOutcome,
) -> Vec<String> {
    let commit = store.begin_commit(poll).unwrap();
    let mut ids = Vec::new();
    commit
        .for_each_staged(|staged| -> Result<(), StateError> {
            let id = match instance {
                "crm" => format!("n-{}-{}", staged.record_id, staged.updated.unwrap_or(0)),
                other => format!(
                    "{other}-{}-{}",
                    staged.record_id,
                    staged.updated.unwrap_or(0)
                ),
            };
            commit.insert_notification(notification(&id, instance, &staged.raw, 1))?;
            ids.push(id);
            Ok(())
        })
        .unwrap();
    commit.finish(outcome).unwrap();
    ids
}

fn staging_rows(store: &PgStore) -> i64 {
    store.count_sql(
        "SELECT (SELECT count(*) FROM staged_event) + (SELECT count(*) FROM staged_snapshot)
              + (SELECT count(*) FROM poll)",
    )
}

/// Inserts notification `id` of `instance`, created (and first due) at `at(created)`, through
/// a poll's commit (the only way in).
fn add(store: &mut PgStore, id: &str, instance: &str, created: i64) {
    let commit = store
        .begin_direct_commit(&key(instance, "_outbox"))
        .unwrap();
    commit
        .insert_notification(NewNotification {
            id: id.to_owned(),
            instance: instance.to_owned(),
            body: format!(r#"{{"message":{{"eventId":"{id}"}}}}"#).into_bytes(),
            events: 1,
            created_at: at(created),
        })
        .unwrap();
    commit.finish(outcome(None, None)).unwrap();
}

/// The due head of each due instance, in the order delivery visits them.
fn due_ids(store: &PgStore, now: i64) -> Vec<String> {
    let instances = store.outbox_due_instances(at(now)).unwrap();
    instances
        .iter()
        .map(|instance| {
            store
                .outbox_due_head(instance, at(now))
                .unwrap()
                .unwrap()
                .id
        })
        .collect()
}

fn rows(store: &PgStore) -> Vec<(String, bool, u32)> {
    let rows = store.outbox_list(&OutboxFilter::default()).unwrap();
    rows.into_iter()
        .map(|r| (r.id, r.dead, r.attempts))
        .collect()
}

// ---- the SQLite store's tests, on PostgreSQL ----

/// Runs each of the shared suite's tests on a fresh database.
macro_rules! on_a_fresh_database {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some(mut store) = fresh() else { return };
                suite::$name(&mut store);
            }
        )*
    };
}

on_a_fresh_database!(
    a_poll_commits_events_watermark_and_seen_pairs_in_order,
    seen_pairs_are_old_union_new_above_the_floor,
    dropping_the_commit_rolls_everything_back,
    a_new_poll_of_the_same_resource_discards_the_unfinished_one,
    discard_unfinished_polls_drops_all_staging,
    a_failed_poll_records_its_error_and_leaves_the_watermark,
    snapshot_polls_find_changes_and_deletions,
    a_watermark_poll_leaves_the_snapshot_set_alone,
    a_caller_error_inside_for_each_staged_stops_and_rolls_back,
    outbox_depth_and_list_per_instance,
    a_duplicate_event_id_fails_the_commit,
    statuses_and_instances_with_state,
    reset_forgets_or_sets_watermarks,
    forget_instance_removes_everything_of_it_only,
    a_grant_remembers_its_used_code_across_credentials_and_a_revocation_deletes_the_token,
    oauth_tokens_are_dropped_when_the_credentials_change,
    a_direct_commit_writes_its_events_seen_pairs_and_watermark_in_one_transaction,
    window_pairs_keep_their_latest_time_and_go_when_the_window_moves_past_them,
    a_rolled_back_direct_commit_changes_nothing_and_a_finished_one_drops_old_staging,
    due_heads_are_one_per_instance_in_seq_order,
    a_head_in_backoff_blocks_its_instance_only,
    delivered_deletes_and_the_next_one_becomes_the_head,
    delivered_in_a_batch_and_the_head_after_an_acknowledged_one,
    dead_letters_stay_and_do_not_block,
    retry_revives_dead_letters_and_makes_pending_ones_due_now,
    drop_by_id_dead_or_instance,
    a_retried_receipt_is_not_enqueued_twice,
    tokens_are_created_once_and_rotated_with_a_grace_period,
);

/// The SQLite store's own tests (`state/tests.rs`, `outbox.rs`, `webhooks.rs`), each a function
/// of a store: one suite the dispatching `Store` can run over both backends.
mod suite {
    use super::*;

    pub(super) fn a_poll_commits_events_watermark_and_seen_pairs_in_order(store: &mut PgStore) {
        let contacts = key("crm", "contacts");
        let poll = store.begin_poll(&contacts).unwrap();
        let t = |s| nanos(at(s));
        let first_page = [event("b", Some(t(10))), event("a", Some(t(20)))];
        assert_eq!(store.stage_events(poll, &first_page).unwrap(), 2);
        // "a" again with the same updated (page boundary overlap): ignored, the first is kept.
        let mut again = event("a", Some(t(20)));
        again.raw = b"second copy".to_vec();
        let second_page = [again, event("c", Some(t(20))), event("a", Some(t(30)))];
        assert_eq!(store.stage_events(poll, &second_page).unwrap(), 2);

        let ids = commit_one_per_event(
            store,
            poll,
            "crm",
            PollOutcome {
                problems: Some("record 9: bad date".to_owned()),
                ..outcome(Some(at(30)), Some(t(20)))
            },
        );
        assert_eq!(
            ids,
            [
                format!("n-b-{}", t(10)),
                format!("n-a-{}", t(20)),
                format!("n-c-{}", t(20)),
                format!("n-a-{}", t(30))
            ]
        );
        let listed: Vec<_> = store
            .outbox_list(&OutboxFilter::default())
            .unwrap()
            .into_iter()
            .map(|row| row.id)
            .collect();
        assert_eq!(listed, ids, "outbox order is staging order");
        assert_eq!(
            store.outbox_body(&ids[1]).unwrap().unwrap(),
            br#"{"id":"a"}"#.to_vec(),
            "first copy kept"
        );

        let state = store.resource_state(&contacts).unwrap().unwrap();
        assert_eq!(
            state,
            ResourceState {
                watermark: Some(at(30)),
                last_poll_at: Some(at(1)),
                last_result: Some(PollResult::Problems),
                last_error: Some("record 9: bad date".to_owned()),
                next_due_at: Some(at(600)),
                records_read: 3,
                events: 2,
            }
        );
        let seen = store.seen_pairs(&contacts).unwrap();
        let expected: HashSet<_> = [("a", t(20)), ("c", t(20)), ("a", t(30))]
            .into_iter()
            .map(|(id, updated)| (id.to_owned(), updated))
            .collect();
        assert_eq!(seen, expected, "b at t10 is below the floor");
        assert_eq!(staging_rows(store), 0);
    }

    pub(super) fn seen_pairs_are_old_union_new_above_the_floor(store: &mut PgStore) {
        let k = key("crm", "contacts");
        let poll = store.begin_poll(&k).unwrap();
        store
            .stage_events(poll, &[event("a", Some(10)), event("b", Some(20))])
            .unwrap();
        commit_one_per_event(store, poll, "crm", outcome(None, Some(10)));
        let poll = store.begin_poll(&k).unwrap();
        store
            .stage_events(poll, &[event("c", Some(25)), event("d", Some(5))])
            .unwrap();
        commit_one_per_event(store, poll, "crm", outcome(None, Some(20)));
        let seen = store.seen_pairs(&k).unwrap();
        let expected: HashSet<_> = [("b".to_owned(), 20), ("c".to_owned(), 25)].into();
        assert_eq!(seen, expected);

        // No floor keeps none.
        let poll = store.begin_poll(&k).unwrap();
        commit_one_per_event(store, poll, "crm", outcome(None, None));
        assert!(store.seen_pairs(&k).unwrap().is_empty());
    }

    pub(super) fn dropping_the_commit_rolls_everything_back(store: &mut PgStore) {
        let k = key("crm", "contacts");
        let poll = store.begin_poll(&k).unwrap();
        store.stage_events(poll, &[event("a", Some(10))]).unwrap();
        {
            let commit = store.begin_commit(poll).unwrap();
            commit
                .insert_notification(notification("n1", "crm", b"{}", 1))
                .unwrap();
            // No finish: an error in the caller, or a crash.
        }
        assert!(
            store
                .outbox_list(&OutboxFilter::default())
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.resource_state(&k).unwrap().unwrap().watermark, None);
        assert!(store.seen_pairs(&k).unwrap().is_empty());
        // The staging survives the rollback, so the same poll can still commit...
        let ids = commit_one_per_event(store, poll, "crm", outcome(Some(at(0)), Some(0)));
        assert_eq!(ids.len(), 1);
    }

    pub(super) fn a_new_poll_of_the_same_resource_discards_the_unfinished_one(store: &mut PgStore) {
        let k = key("crm", "contacts");
        let other = key("crm", "accounts");
        let old = store.begin_poll(&k).unwrap();
        store.stage_events(old, &[event("a", Some(10))]).unwrap();
        let other_poll = store.begin_poll(&other).unwrap();
        store
            .stage_events(other_poll, &[event("x", Some(1))])
            .unwrap();

        let new = store.begin_poll(&k).unwrap();
        assert_ne!(old, new);
        assert!(matches!(
            store.stage_events(old, &[event("b", Some(11))]),
            Err(StateError::PollGone(_))
        ));
        assert!(matches!(
            store.begin_commit(old),
            Err(StateError::PollGone(_))
        ));
        store.stage_events(new, &[event("c", Some(12))]).unwrap();
        let ids = commit_one_per_event(store, new, "crm", outcome(Some(at(0)), Some(0)));
        assert_eq!(
            ids,
            [String::from("n-c-12")],
            "nothing of the discarded poll"
        );

        // The other resource's poll was not touched.
        let ids = commit_one_per_event(store, other_poll, "crm", outcome(None, None));
        assert_eq!(ids, [String::from("n-x-1")]);
    }

    pub(super) fn discard_unfinished_polls_drops_all_staging(store: &mut PgStore) {
        for resource in ["a", "b", "c"] {
            let poll = store.begin_poll(&key("crm", resource)).unwrap();
            store.stage_events(poll, &[event("1", Some(1))]).unwrap();
            store.stage_snapshot(poll, &[("1", "h", b"{}")]).unwrap();
        }
        assert!(staging_rows(store) > 0);
        assert_eq!(store.discard_unfinished_polls().unwrap(), 3);
        assert_eq!(staging_rows(store), 0);
    }

    pub(super) fn a_failed_poll_records_its_error_and_leaves_the_watermark(store: &mut PgStore) {
        let k = key("crm", "contacts");
        let poll = store.begin_poll(&k).unwrap();
        store.stage_events(poll, &[event("a", Some(10))]).unwrap();
        commit_one_per_event(store, poll, "crm", outcome(Some(at(10)), Some(10)));

        let poll = store.begin_poll(&k).unwrap();
        store.stage_events(poll, &[event("b", Some(20))]).unwrap();
        store
            .record_poll_failure(&k, "HTTP 503 after 3 retries", at(50), Some(at(110)))
            .unwrap();
        let state = store.resource_state(&k).unwrap().unwrap();
        assert_eq!(state.watermark, Some(at(10)));
        assert_eq!(state.last_result, Some(PollResult::Failed));
        assert_eq!(
            state.last_error.as_deref(),
            Some("HTTP 503 after 3 retries")
        );
        assert_eq!(state.last_poll_at, Some(at(50)));
        assert_eq!(state.next_due_at, Some(at(110)));
        assert_eq!(staging_rows(store), 0);
        assert_eq!(store.seen_pairs(&k).unwrap(), [("a".to_owned(), 10)].into());

        // A failure of a never-polled resource shows in status too.
        store
            .record_poll_failure(&key("crm", "new"), "timeout", at(50), None)
            .unwrap();
        let state = store.resource_state(&key("crm", "new")).unwrap().unwrap();
        assert_eq!(
            (state.watermark, state.last_result),
            (None, Some(PollResult::Failed))
        );
    }

    pub(super) fn snapshot_polls_find_changes_and_deletions(store: &mut PgStore) {
        let k = key("ats", "jobs");

        // First poll: records only the snapshot, in two pages, a duplicate id keeping the first.
        let poll = store.begin_snapshot_poll(&k).unwrap();
        store
            .stage_snapshot(
                poll,
                &[("1", "h1", b"one".to_vec()), ("2", "h2", b"two".to_vec())],
            )
            .unwrap();
        store
            .stage_snapshot(
                poll,
                &[("3", "h3", b"three".to_vec()), ("1", "hX", b"x".to_vec())],
            )
            .unwrap();
        let commit = store.begin_commit(poll).unwrap();
        let mut deleted = Vec::new();
        commit
            .snapshot_deletions(|id, raw| -> Result<(), StateError> {
                deleted.push((id, raw));
                Ok(())
            })
            .unwrap();
        assert!(deleted.is_empty());
        commit.finish(outcome(None, None)).unwrap();
        assert_eq!(store.snapshot_hash(&k, "1").unwrap().as_deref(), Some("h1"));
        let hashes = store.snapshot_hashes(&k, &["2", "3", "4"]).unwrap();
        assert_eq!(hashes.len(), 2);
        assert_eq!(hashes["3"], "h3");

        // Second poll: 1 unchanged, 2 changed, 3 gone, 4 new.
        let poll = store.begin_snapshot_poll(&k).unwrap();
        store
            .stage_snapshot(
                poll,
                &[
                    ("1", "h1", b"one".as_slice()),
                    ("2", "h2b", b"two b"),
                    ("4", "h4", b"four"),
                ],
            )
            .unwrap();
        let commit = store.begin_commit(poll).unwrap();
        commit
            .snapshot_deletions(|id, raw| -> Result<(), StateError> {
                deleted.push((id, raw));
                Ok(())
            })
            .unwrap();
        assert_eq!(deleted, [("3".to_owned(), Some(b"three".to_vec()))]);
        commit.finish(outcome(None, None)).unwrap();
        assert_eq!(
            store.snapshot_hash(&k, "2").unwrap().as_deref(),
            Some("h2b")
        );
        assert_eq!(store.snapshot_hash(&k, "3").unwrap(), None);
        assert_eq!(store.snapshot_hash(&k, "4").unwrap().as_deref(), Some("h4"));

        // Third poll: the resource is empty; every record is deleted.
        let poll = store.begin_snapshot_poll(&k).unwrap();
        let commit = store.begin_commit(poll).unwrap();
        let mut gone = Vec::new();
        commit
            .snapshot_deletions(|id, _| -> Result<(), StateError> {
                gone.push(id);
                Ok(())
            })
            .unwrap();
        commit.finish(outcome(None, None)).unwrap();
        assert_eq!(gone, ["1", "2", "4"]);
        assert!(
            store
                .snapshot_hashes(&k, &["1", "2", "4"])
                .unwrap()
                .is_empty()
        );
    }

    pub(super) fn a_watermark_poll_leaves_the_snapshot_set_alone(store: &mut PgStore) {
        let k = key("ats", "jobs");
        let poll = store.begin_snapshot_poll(&k).unwrap();
        store.stage_snapshot(poll, &[("1", "h1", b"one")]).unwrap();
        store
            .begin_commit(poll)
            .unwrap()
            .finish(outcome(None, None))
            .unwrap();
        let poll = store.begin_poll(&k).unwrap();
        let commit = store.begin_commit(poll).unwrap();
        commit
            .snapshot_deletions(|_, _| -> Result<(), StateError> { panic!("not snapshot mode") })
            .unwrap();
        commit.finish(outcome(None, None)).unwrap();
        assert_eq!(store.snapshot_hash(&k, "1").unwrap().as_deref(), Some("h1"));
    }

    pub(super) fn a_caller_error_inside_for_each_staged_stops_and_rolls_back(store: &mut PgStore) {
        #[derive(Debug)]
        enum CallerError {
            State(#[allow(dead_code)] StateError),
            TooBig,
        }
        impl From<StateError> for CallerError {
            fn from(error: StateError) -> Self {
                CallerError::State(error)
            }
        }
        let k = key("crm", "contacts");
        let poll = store.begin_poll(&k).unwrap();
        store
            .stage_events(poll, &[event("a", Some(1)), event("b", Some(2))])
            .unwrap();
        let commit = store.begin_commit(poll).unwrap();
        let mut calls = 0;
        let result = commit.for_each_staged(|staged| {
            calls += 1;
            commit.insert_notification(notification(&staged.record_id, "crm", b"{}", 1))?;
            Err(CallerError::TooBig)
        });
        assert!(matches!(result, Err(CallerError::TooBig)));
        assert_eq!(calls, 1);
        drop(commit);
        assert!(
            store
                .outbox_list(&OutboxFilter::default())
                .unwrap()
                .is_empty()
        );
    }

    pub(super) fn outbox_depth_and_list_per_instance(store: &mut PgStore) {
        let poll = store.begin_poll(&key("crm", "contacts")).unwrap();
        let commit = store.begin_commit(poll).unwrap();
        for (id, instance) in [("n1", "crm"), ("n2", "ats"), ("n3", "crm")] {
            commit
                .insert_notification(NewNotification {
                    created_at: at(id.len() as i64 + i64::from(id.as_bytes()[1])),
                    ..notification(id, instance, b"{\"message\":{}}", 2)
                })
                .unwrap();
        }
        commit.finish(outcome(None, None)).unwrap();
        store.execute_sql("UPDATE outbox SET dead = true, last_error = 'HTTP 404' WHERE id = 'n1'");

        let depth = store.outbox_depth().unwrap();
        assert_eq!(depth.len(), 2);
        assert_eq!(
            depth["crm"],
            OutboxDepth {
                pending: 1,
                dead: 1,
                oldest_pending_at: Some(at(2 + i64::from(b'3')))
            }
        );
        assert_eq!(depth["ats"].pending, 1);

        let dead = store
            .outbox_list(&OutboxFilter {
                selection: OutboxSelection::Dead,
                ..OutboxFilter::default()
            })
            .unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id, "n1");
        assert!(dead[0].dead);
        assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 404"));
        assert_eq!(dead[0].body_bytes, 14);
        assert_eq!(dead[0].events, 2);
        assert_eq!(dead[0].attempts, 0);
        assert_eq!(dead[0].next_attempt_at, dead[0].created_at, "due at once");

        let crm_pending = store
            .outbox_list(&OutboxFilter {
                instance: Some("crm".to_owned()),
                selection: OutboxSelection::Pending,
                limit: None,
            })
            .unwrap();
        assert_eq!(
            crm_pending
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            ["n3"]
        );
        let limited = store
            .outbox_list(&OutboxFilter {
                limit: Some(2),
                ..OutboxFilter::default()
            })
            .unwrap();
        assert_eq!(
            limited.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["n1", "n2"]
        );
        assert_eq!(
            store.outbox_body("n2").unwrap().unwrap(),
            b"{\"message\":{}}"
        );
        assert_eq!(store.outbox_body("nope").unwrap(), None);
    }

    pub(super) fn a_duplicate_event_id_fails_the_commit(store: &mut PgStore) {
        let poll = store.begin_poll(&key("crm", "contacts")).unwrap();
        let commit = store.begin_commit(poll).unwrap();
        commit
            .insert_notification(notification("same", "crm", b"{}", 1))
            .unwrap();
        // Notifications are written in batches: the duplicate fails the commit at `finish` (SQLite
        // fails the insert itself), and nothing of the poll is kept.
        commit
            .insert_notification(notification("same", "crm", b"{}", 1))
            .unwrap();
        let error = commit.finish(outcome(Some(at(5)), None)).unwrap_err();
        assert!(matches!(error, StateError::Postgres { .. }), "{error:?}");
        assert!(error.to_string().contains("23505"), "{error}");
        assert!(rows(store).is_empty());
        let state = store
            .resource_state(&key("crm", "contacts"))
            .unwrap()
            .unwrap();
        assert_eq!(state.watermark, None);
    }

    /// Two resources of `crm` (one fanned out), one of `ats`, an outbox row and a token of `gone`.
    fn store_with_three_instances(store: &mut PgStore) {
        let primary = BTreeMap::from([("calendarId".to_owned(), "primary".to_owned())]);
        let keys = [
            key("crm", "contacts"),
            ResourceKey::new("crm", "events", &primary),
            key("crm", "events"),
            key("ats", "jobs"),
        ];
        for (i, k) in keys.iter().enumerate() {
            let poll = store.begin_poll(k).unwrap();
            store.stage_events(poll, &[event("1", Some(100))]).unwrap();
            commit_one_per_event(
                store,
                poll,
                &k.instance,
                PollOutcome {
                    polled_at: at(i as i64),
                    ..outcome(Some(at(100)), Some(100))
                },
            );
            store.execute_sql("DELETE FROM outbox");
        }
        let poll = store.begin_poll(&key("gone", "x")).unwrap();
        let commit = store.begin_commit(poll).unwrap();
        commit
            .insert_notification(notification("g1", "gone", b"{}", 1))
            .unwrap();
        commit.finish(outcome(None, None)).unwrap();
        store
            .save_oauth_token(
                "gone",
                "hash",
                &StoredToken {
                    access_token: Secret::new("t"),
                    refresh_token: None,
                    expires_at: None,
                },
            )
            .unwrap();
    }

    pub(super) fn statuses_and_instances_with_state(store: &mut PgStore) {
        store_with_three_instances(store);
        let rows = store.statuses().unwrap();
        let keys: Vec<_> = rows
            .iter()
            .map(|row| {
                format!(
                    "{}/{}[{}]",
                    row.key.instance, row.key.resource, row.key.path_params
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                "ats/jobs[]",
                "crm/contacts[]",
                "crm/events[]",
                "crm/events[calendarId=primary]",
                "gone/x[]"
            ]
        );
        assert_eq!(rows[0].state.watermark, Some(at(100)));
        assert_eq!(rows[0].state.last_poll_at, Some(at(3)));
        assert_eq!(rows[0].state.last_result, Some(PollResult::Ok));
        assert_eq!(
            store.instances_with_state().unwrap(),
            ["ats", "crm", "gone"]
        );
    }

    pub(super) fn reset_forgets_or_sets_watermarks(store: &mut PgStore) {
        store_with_three_instances(store);
        let events = key("crm", "events");
        // One resource, every pathParams value of it, set to a time.
        assert_eq!(
            store
                .reset_watermark("crm", Some("events"), Some(at(7)))
                .unwrap(),
            2
        );
        assert_eq!(
            store.resource_state(&events).unwrap().unwrap().watermark,
            Some(at(7))
        );
        assert!(store.seen_pairs(&events).unwrap().is_empty());
        let contacts = key("crm", "contacts");
        assert_eq!(
            store.resource_state(&contacts).unwrap().unwrap().watermark,
            Some(at(100))
        );
        assert_eq!(store.seen_pairs(&contacts).unwrap().len(), 1);

        // The whole instance, forgotten.
        assert_eq!(store.reset_watermark("crm", None, None).unwrap(), 3);
        assert_eq!(
            store.resource_state(&contacts).unwrap().unwrap().watermark,
            None
        );
        assert!(store.seen_pairs(&contacts).unwrap().is_empty());
        let jobs = store.resource_state(&key("ats", "jobs")).unwrap().unwrap();
        assert_eq!(jobs.watermark, Some(at(100)), "other instances untouched");
        assert_eq!(store.reset_watermark("nobody", None, None).unwrap(), 0);
    }

    pub(super) fn forget_instance_removes_everything_of_it_only(store: &mut PgStore) {
        store_with_three_instances(store);
        let poll = store.begin_poll(&key("crm", "contacts")).unwrap();
        store.stage_events(poll, &[event("9", Some(9))]).unwrap();
        store.forget_instance("crm").unwrap();
        store.forget_instance("gone").unwrap();
        assert_eq!(store.instances_with_state().unwrap(), ["ats"]);
        assert_eq!(staging_rows(store), 0);
        let orphans = store.count_sql("SELECT count(*) FROM seen_pair");
        assert_eq!(orphans, 1, "only ats's pair is left");
    }

    pub(super) fn a_grant_remembers_its_used_code_across_credentials_and_a_revocation_deletes_the_token(
        store: &mut PgStore,
    ) {
        use crate::http::GrantEvent;
        assert_eq!(store.oauth_grant("crm", "h1").unwrap(), Default::default());
        let token = StoredToken {
            access_token: Secret::new("access-1"),
            refresh_token: Some(Secret::new("refresh-1")),
            expires_at: Some(at(3600)),
        };
        let exchanged = GrantEvent::CodeExchanged {
            code_hash: "c1".into(),
        };
        store
            .record_grant("crm", "h1", &exchanged, Some(&token))
            .unwrap();
        assert_eq!(store.oauth_token("crm", "h1").unwrap(), Some(token.clone()));
        let grant = store.oauth_grant("crm", "h1").unwrap();
        assert_eq!(grant.code_hash.as_deref(), Some("c1"));
        assert!(!grant.code_rejected && grant.revoked_at.is_none());
        assert_eq!(
            grant.last_token_result.as_deref(),
            Some("providerData.code exchanged")
        );

        let revoked = GrantEvent::Revoked {
            reason: "invalid_grant".into(),
        };
        store.record_grant("crm", "h1", &revoked, None).unwrap();
        assert!(store.oauth_grant("crm", "h1").unwrap().revoked_at.is_some());
        assert_eq!(
            store.oauth_token("crm", "h1").unwrap(),
            None,
            "token deleted"
        );
        let overview = store.oauth_overview().unwrap();
        assert_eq!(overview.len(), 1);
        assert!(!overview[0].has_token && overview[0].grant.revoked_at.is_some());

        // Other credentials: the revocation is theirs no longer, the used code still is.
        let other = store.oauth_grant("crm", "h2").unwrap();
        assert_eq!(other.revoked_at, None);
        assert_eq!(other.code_hash.as_deref(), Some("c1"));

        store
            .record_grant("crm", "h1", &GrantEvent::Authorized, Some(&token))
            .unwrap();
        let grant = store.oauth_grant("crm", "h1").unwrap();
        assert_eq!(grant.revoked_at, None, "ocpoll auth ends the revocation");
        assert_eq!(grant.code_hash.as_deref(), Some("c1"));
        let overview = store.oauth_overview().unwrap();
        assert!(overview[0].has_token && overview[0].has_refresh_token);
        assert_eq!(overview[0].expires_at, token.expires_at);
    }

    pub(super) fn oauth_tokens_are_dropped_when_the_credentials_change(store: &mut PgStore) {
        assert_eq!(store.oauth_token("crm", "h1").unwrap(), None);
        let token = StoredToken {
            access_token: Secret::new("access-1"),
            refresh_token: Some(Secret::new("rotated-refresh")),
            expires_at: Some(at(3600)),
        };
        store.save_oauth_token("crm", "h1", &token).unwrap();
        assert_eq!(store.oauth_token("crm", "h1").unwrap(), Some(token.clone()));
        let newer = StoredToken {
            access_token: Secret::new("access-2"),
            refresh_token: None,
            expires_at: None,
        };
        store.save_oauth_token("crm", "h1", &newer).unwrap();
        assert_eq!(store.oauth_token("crm", "h1").unwrap(), Some(newer));

        // The instance file's credentials changed: the token is gone, even for the old hash.
        assert_eq!(store.oauth_token("crm", "h2").unwrap(), None);
        assert_eq!(store.oauth_token("crm", "h1").unwrap(), None);
        assert!(
            !format!("{token:?}").contains("access-1") && !format!("{token:?}").contains("rotated"),
            "Debug hides the token"
        );
    }

    pub(super) fn a_direct_commit_writes_its_events_seen_pairs_and_watermark_in_one_transaction(
        store: &mut PgStore,
    ) {
        let k = key("crm", "contacts");
        let floor = nanos(at(100));
        let commit = store.begin_direct_commit(&k).unwrap();
        for (id, updated) in [("a", at(100)), ("b", at(90))] {
            commit.remember(&event(id, Some(nanos(updated)))).unwrap();
        }
        commit
            .insert_notification(notification("n-1", "crm", b"{}", 2))
            .unwrap();
        commit.finish(outcome(Some(at(100)), Some(floor))).unwrap();

        let state = store.resource_state(&k).unwrap().unwrap();
        assert_eq!(state.watermark, Some(at(100)));
        assert_eq!(
            store.seen_pairs(&k).unwrap(),
            HashSet::from([("a".to_owned(), floor)]),
            "the pair below the seen floor is dropped, as for staged pairs"
        );
        let outbox = store.outbox_list(&OutboxFilter::default()).unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(staging_rows(store), 0);
    }

    /// A window-mode row: (id, hash) seen at `seen_at`.
    fn window_row(id: &str, hash: &str, seen_at: i64) -> StagedEvent {
        StagedEvent {
            hash: Some(hash.to_owned()),
            ..event(id, Some(seen_at))
        }
    }

    fn window_outcome(watermark: DateTime<Utc>, floor: i64) -> PollOutcome {
        PollOutcome {
            window_floor: Some(floor),
            ..outcome(Some(watermark), None)
        }
    }

    pub(super) fn window_pairs_keep_their_latest_time_and_go_when_the_window_moves_past_them(
        store: &mut PgStore,
    ) {
        let k = key("crm", "contacts");
        // A staged (several pages) poll and a direct one, each remembering pairs.
        let poll = store.begin_poll(&k).unwrap();
        store
            .stage_events(
                poll,
                &[
                    window_row("a", "h1", nanos(at(10))),
                    window_row("b", "h1", nanos(at(10))),
                ],
            )
            .unwrap();
        let commit = store.begin_commit(poll).unwrap();
        commit.finish(window_outcome(at(10), nanos(at(0)))).unwrap();
        let both = HashSet::from([
            ("a".to_owned(), "h1".to_owned()),
            ("b".to_owned(), "h1".to_owned()),
        ]);
        assert_eq!(store.window_pairs(&k).unwrap(), both);

        // The next poll sees `a` again (its time moves on) and a new version of `b`; its window
        // starts at 15: `b`'s old version, last seen at 10, goes; `a`, seen again at 20, stays.
        let commit = store.begin_direct_commit(&k).unwrap();
        commit
            .remember(&window_row("a", "h1", nanos(at(20))))
            .unwrap();
        commit
            .remember(&window_row("b", "h2", nanos(at(20))))
            .unwrap();
        commit
            .finish(window_outcome(at(20), nanos(at(15))))
            .unwrap();
        let kept = HashSet::from([
            ("a".to_owned(), "h1".to_owned()),
            ("b".to_owned(), "h2".to_owned()),
        ]);
        assert_eq!(store.window_pairs(&k).unwrap(), kept);
        assert!(
            store.seen_pairs(&k).unwrap().is_empty(),
            "no watermark pairs"
        );

        // A backfill (`state reset --to`) sends again what the window had seen.
        store.reset_watermark("crm", None, Some(at(0))).unwrap();
        assert!(store.window_pairs(&k).unwrap().is_empty());
    }

    pub(super) fn a_rolled_back_direct_commit_changes_nothing_and_a_finished_one_drops_old_staging(
        store: &mut PgStore,
    ) {
        let k = key("crm", "contacts");
        // A multi-page poll of the resource that never finished (its process died).
        let old = store.begin_poll(&k).unwrap();
        store.stage_events(old, &[event("stale", Some(5))]).unwrap();
        {
            let commit = store.begin_direct_commit(&k).unwrap();
            commit.remember(&event("a", Some(nanos(at(1))))).unwrap();
            commit
                .insert_notification(notification("n-1", "crm", b"{}", 1))
                .unwrap();
            // Dropped without finish: an error in the caller, or a crash.
        }
        assert!(
            store
                .outbox_list(&OutboxFilter::default())
                .unwrap()
                .is_empty()
        );
        assert!(store.seen_pairs(&k).unwrap().is_empty());
        assert_eq!(staging_rows(store), 2, "the rollback kept the old staging");

        let commit = store.begin_direct_commit(&k).unwrap();
        commit.finish(outcome(Some(at(1)), Some(0))).unwrap();
        assert_eq!(staging_rows(store), 0, "the committed poll replaced it");
        assert!(matches!(
            store.begin_commit(old),
            Err(StateError::PollGone(_))
        ));
    }

    pub(super) fn due_heads_are_one_per_instance_in_seq_order(store: &mut PgStore) {
        add(store, "b1", "b", 0);
        add(store, "a1", "a", 0);
        add(store, "b2", "b", 0);
        add(store, "a2", "a", 0);
        add(store, "c1", "c", 50);
        assert_eq!(due_ids(store, 10), ["b1", "a1"]);
        assert_eq!(due_ids(store, 50), ["b1", "a1", "c1"]);
        let head = store.outbox_due_head("b", at(10)).unwrap().unwrap();
        assert_eq!((head.id.as_str(), head.attempts), ("b1", 0));
        assert_eq!(head.body, br#"{"message":{"eventId":"b1"}}"#);
        assert_eq!(head.window_start, at(0));
        assert!(store.outbox_due_head("c", at(10)).unwrap().is_none());
        assert!(store.outbox_due_head("nobody", at(10)).unwrap().is_none());
    }

    pub(super) fn a_head_in_backoff_blocks_its_instance_only(store: &mut PgStore) {
        add(store, "a1", "a", 0);
        add(store, "a2", "a", 0);
        add(store, "b1", "b", 0);
        store
            .outbox_attempt_failed("a1", at(100), "HTTP 503")
            .unwrap();
        assert_eq!(due_ids(store, 10), ["b1"], "a2 waits behind a1");
        assert_eq!(due_ids(store, 100), ["a1", "b1"]);
        let list = store.outbox_list(&OutboxFilter::default()).unwrap();
        let a1 = list.iter().find(|r| r.id == "a1").unwrap();
        assert_eq!(a1.attempts, 1);
        assert_eq!(a1.next_attempt_at, at(100));
        assert_eq!(a1.last_error.as_deref(), Some("HTTP 503"));
    }

    pub(super) fn delivered_deletes_and_the_next_one_becomes_the_head(store: &mut PgStore) {
        add(store, "a1", "a", 0);
        add(store, "a2", "a", 0);
        let a1 = ["a1".to_owned()];
        assert_eq!(store.outbox_delivered_all(&a1).unwrap(), 1);
        assert_eq!(store.outbox_delivered_all(&a1).unwrap(), 0, "already gone");
        assert_eq!(due_ids(store, 0), ["a2"]);
        assert_eq!(store.outbox_body("a1").unwrap(), None);
    }

    pub(super) fn delivered_in_a_batch_and_the_head_after_an_acknowledged_one(store: &mut PgStore) {
        for id in ["a1", "a2", "a3", "b1"] {
            add(store, id, &id[..1], 0);
        }
        let a1 = store.outbox_due_head("a", at(0)).unwrap().unwrap();
        assert_eq!(a1.id, "a1");
        // a1 acknowledged, its deletion still in the batch: a2 is the head after it.
        let a2 = store
            .outbox_due_head_after("a", Some(a1.seq), at(0))
            .unwrap()
            .unwrap();
        assert_eq!(a2.id, "a2");
        assert_eq!(store.outbox_pending().unwrap(), 4);
        let batch = ["a1", "a2", "gone", "b1"].map(str::to_owned);
        assert_eq!(store.outbox_delivered_all(&batch).unwrap(), 3);
        assert_eq!(store.outbox_delivered_all(&[]).unwrap(), 0);
        assert_eq!(rows(store), [("a3".to_owned(), false, 0)]);
        assert_eq!(store.outbox_pending().unwrap(), 1);
        assert!(
            store
                .outbox_due_head_after("a", Some(a2.seq + 1), at(0))
                .unwrap()
                .is_none()
        );
    }

    pub(super) fn dead_letters_stay_and_do_not_block(store: &mut PgStore) {
        add(store, "a1", "a", 0);
        add(store, "a2", "a", 0);
        store.outbox_dead_letter("a1", "HTTP 404: nope").unwrap();
        assert_eq!(due_ids(store, 0), ["a2"]);
        assert_eq!(
            rows(store),
            [("a1".to_owned(), true, 1), ("a2".to_owned(), false, 0)]
        );
        let dead = store
            .outbox_list(&OutboxFilter {
                selection: OutboxSelection::Dead,
                ..OutboxFilter::default()
            })
            .unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 404: nope"));
    }

    pub(super) fn retry_revives_dead_letters_and_makes_pending_ones_due_now(store: &mut PgStore) {
        add(store, "a1", "a", 0);
        add(store, "b1", "b", 0);
        add(store, "c1", "c", 0);
        store.outbox_dead_letter("a1", "HTTP 404").unwrap();
        store.outbox_dead_letter("b1", "HTTP 410").unwrap();
        store
            .outbox_attempt_failed("c1", at(5000), "HTTP 503")
            .unwrap();
        assert_eq!(
            store.outbox_retry(&RetryTarget::AllDead, at(20)).unwrap(),
            2
        );
        assert_eq!(due_ids(store, 20), ["a1", "b1"], "c1 still backs off");
        let a1 = store.outbox_due_head("a", at(20)).unwrap().unwrap();
        assert_eq!(a1.window_start, at(20), "a fresh retry window");
        assert_eq!(a1.attempts, 1, "attempts are kept");
        assert_eq!(
            store
                .outbox_retry(&RetryTarget::Id("c1".into()), at(30))
                .unwrap(),
            1
        );
        assert_eq!(due_ids(store, 30), ["a1", "b1", "c1"]);
        assert_eq!(
            store
                .outbox_retry(&RetryTarget::Id("zz".into()), at(30))
                .unwrap(),
            0
        );
    }

    pub(super) fn drop_by_id_dead_or_instance(store: &mut PgStore) {
        for (id, instance) in [
            ("a1", "a"),
            ("a2", "a"),
            ("b1", "b"),
            ("b2", "b"),
            ("c1", "c"),
        ] {
            add(store, id, instance, 0);
        }
        store.outbox_dead_letter("b1", "x").unwrap();
        store.outbox_dead_letter("c1", "x").unwrap();
        assert_eq!(store.outbox_drop(&DropTarget::Id("a2".into())).unwrap(), 1);
        assert_eq!(store.outbox_drop(&DropTarget::AllDead).unwrap(), 2);
        let left: Vec<String> = rows(store).into_iter().map(|r| r.0).collect();
        assert_eq!(left, ["a1", "b2"]);
        assert_eq!(
            store
                .outbox_drop(&DropTarget::Instance("a".into()))
                .unwrap(),
            1
        );
        let left: Vec<String> = rows(store).into_iter().map(|r| r.0).collect();
        assert_eq!(left, ["b2"]);
        assert_eq!(store.outbox_drop(&DropTarget::Id("a1".into())).unwrap(), 0);
    }

    fn receipt(key: &str, id: &str, now: DateTime<Utc>) -> ReceiptWrite {
        ReceiptWrite {
            instance: "gh".to_owned(),
            key: key.to_owned(),
            keep_until: now + TimeDelta::hours(1),
            received_at: now,
            notifications: vec![NewNotification {
                id: id.to_owned(),
                instance: "gh".to_owned(),
                body: b"{}".to_vec(),
                events: 1,
                created_at: now,
            }],
        }
    }

    pub(super) fn a_retried_receipt_is_not_enqueued_twice(store: &mut PgStore) {
        let now = Utc::now();
        let outcomes = store
            .commit_receipts(&[
                receipt("delivery:1", "A", now),
                receipt("delivery:2", "B", now),
                receipt("delivery:1", "C", now),
            ])
            .unwrap();
        assert_eq!(
            outcomes,
            [
                ReceiptOutcome::Enqueued,
                ReceiptOutcome::Enqueued,
                ReceiptOutcome::Duplicate
            ]
        );
        let again = store
            .commit_receipts(&[receipt("delivery:2", "D", now)])
            .unwrap();
        assert_eq!(again, [ReceiptOutcome::Duplicate]);
        let ids: Vec<_> = store
            .outbox_list(&Default::default())
            .unwrap()
            .into_iter()
            .map(|row| row.id)
            .collect();
        assert_eq!(ids, ["A", "B"]);
        let status = store.webhook_statuses().unwrap();
        assert_eq!((status[0].accepted, status[0].duplicates), (2, 2));

        // Forgotten after keep_until: a late copy is enqueued again.
        assert_eq!(
            store
                .trim_webhook_receipts(now + TimeDelta::hours(2))
                .unwrap(),
            2
        );
        assert!(!store.webhook_receipt_kept("gh", "delivery:1").unwrap());
    }

    pub(super) fn tokens_are_created_once_and_rotated_with_a_grace_period(store: &mut PgStore) {
        let now = Utc::now();
        let first = store
            .webhook_token_or_create("gh", &Secret::new("one"), now)
            .unwrap();
        let again = store
            .webhook_token_or_create("gh", &Secret::new("two"), now)
            .unwrap();
        assert_eq!((first.expose(), again.expose()), ("one", "one"));
        let until = now + TimeDelta::hours(24);
        store
            .rotate_webhook_token("gh", &Secret::new("three"), now, until)
            .unwrap();
        let tokens = store.webhook_tokens().unwrap();
        assert_eq!(tokens[0].1.current.expose(), "three");
        let (previous, previous_until) = tokens[0].1.previous.clone().unwrap();
        assert_eq!(previous.expose(), "one");
        assert_eq!(previous_until, until);
        let status = store.webhook_statuses().unwrap();
        assert_eq!(status[0].previous_token_until, Some(until));
        assert!(status[0].has_token && status[0].last_receipt_at.is_none());
    }
}

// ---- what only PostgreSQL has: migrations, settings, connections ----

/// A client of its own on `url`, for looking behind the store's back.
fn psql(url: &str, sql: &str) -> Vec<::postgres::Row> {
    let config: tokio_postgres::Config = settings(url).config;
    let mut client = ::postgres::Config::from(config)
        .connect(::postgres::NoTls)
        .unwrap();
    client.simple_query("SELECT 1").unwrap();
    let mut rows = Vec::new();
    for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
        rows = client.query(statement, &[]).unwrap();
    }
    rows
}

#[test]
fn migrations_are_versioned_idempotent_and_required() {
    let Some(url) = fresh_url() else { return };
    let settings = settings(&url);
    let error = PgStore::connect(&settings, false).unwrap_err();
    assert!(
        matches!(error, StateError::Unmigrated { found: 0, .. }),
        "{error:?}"
    );
    assert!(error.is_unusable_file());
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "ocpoll state migrate --state {}",
            settings.location()
        )),
        "{message}"
    );
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )[0]
        .get::<_, i64>(0),
        0,
        "nothing was created without --migrate"
    );
    assert_eq!(PgStore::migrate(&settings).unwrap(), (0, PG_SCHEMA_VERSION));
    assert_eq!(
        PgStore::migrate(&settings).unwrap(),
        (PG_SCHEMA_VERSION, PG_SCHEMA_VERSION)
    );
    let store = PgStore::connect(&settings, false).unwrap();
    assert_eq!(store.outbox_pending().unwrap(), 0);
    assert_eq!(store.corruption(), None);
    store.sync().unwrap();
    store.sync_relaxed().unwrap();

    // An older schema (as a previous ocpoll left it) needs --migrate too.
    psql(&url, "UPDATE ocpoll_schema SET version = 0");
    let error = PgStore::connect(&settings, false).unwrap_err();
    assert!(matches!(error, StateError::Unmigrated { .. }), "{error:?}");
    psql(
        &url,
        &format!("UPDATE ocpoll_schema SET version = {}", PG_SCHEMA_VERSION),
    );

    // A newer one is refused, by connect and migrate alike, and left as it was.
    psql(
        &url,
        &format!(
            "UPDATE ocpoll_schema SET version = {}",
            PG_SCHEMA_VERSION + 1
        ),
    );
    for error in [
        PgStore::connect(&settings, true).unwrap_err(),
        PgStore::migrate(&settings).unwrap_err(),
    ] {
        assert!(
            matches!(error, StateError::NewerSchema { found, .. } if found == PG_SCHEMA_VERSION + 1),
            "{error:?}"
        );
        assert!(error.is_unusable_file());
    }
}

#[test]
fn two_nodes_migrating_at_once_apply_each_migration_once() {
    let Some(url) = fresh_url() else { return };
    let results: Vec<_> = (0..3)
        .map(|_| {
            let settings = settings(&url);
            std::thread::spawn(move || PgStore::migrate(&settings))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap().unwrap())
        .collect();
    let from_zero = results.iter().filter(|(from, _)| *from == 0).count();
    assert_eq!(from_zero, 1, "{results:?}");
    assert!(results.iter().all(|(_, to)| *to == PG_SCHEMA_VERSION));
}

#[test]
fn another_programs_database_is_refused_untouched() {
    let Some(url) = fresh_url() else { return };
    psql(
        &url,
        "CREATE TABLE notes (id integer PRIMARY KEY, text text)",
    );
    let settings = settings(&url);
    for error in [
        PgStore::connect(&settings, true).unwrap_err(),
        PgStore::migrate(&settings).unwrap_err(),
    ] {
        assert!(
            matches!(error, StateError::ForeignDatabase { .. }),
            "{error:?}"
        );
        assert!(error.is_unusable_file());
    }
    let tables: Vec<String> = psql(
        &url,
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .iter()
    .map(|row| row.get(0))
    .collect();
    assert_eq!(tables, ["notes"]);
}

#[test]
fn the_password_never_appears_in_errors_or_debug_output() {
    let Some(url) = fresh_url() else { return };
    let mut wrong = url::Url::parse(&url).unwrap();
    wrong.set_password(Some("Wrong-Pa55word-xyz")).unwrap();
    let settings = settings(wrong.as_str());
    assert!(!format!("{settings:?}").contains("Pa55word"));
    assert!(!settings.location().contains("Pa55word"));
    let error = PgStore::connect(&settings, true).unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("password authentication failed"), "{shown}");
    assert!(!shown.contains("Pa55word"), "{shown}");

    let store = PgStore::connect(&self::settings(&url), true).unwrap();
    let password = url::Url::parse(&url).unwrap().password().map(str::to_owned);
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        assert!(!format!("{store:?}").contains(&password));
        assert!(!store.location().contains(&password));
    }
}

#[test]
fn a_lost_connection_is_reopened_by_the_next_call() {
    let Some(url) = fresh_url() else { return };
    let store = PgStore::connect(&settings(&url), true).unwrap();
    let pid = store.count_sql("SELECT pg_backend_pid()::bigint");
    psql(&url, &format!("SELECT pg_terminate_backend({pid})"));
    // The first call may meet the closed connection (an error, never a panic); the next works.
    let first = store.outbox_pending();
    let second = store.outbox_pending();
    assert!(first.is_ok() || second.is_ok(), "{first:?} {second:?}");
    assert_eq!(second.unwrap(), 0);
    assert_ne!(store.count_sql("SELECT pg_backend_pid()::bigint"), pid);
}

#[test]
fn the_store_works_from_inside_a_tokio_runtime() {
    let Some(store) = fresh() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pending = runtime.block_on(async { store.outbox_pending() });
    assert_eq!(pending.unwrap(), 0);
}

// ---- two nodes on one database ----

/// Two stores (nodes) on one fresh database.
fn two_nodes() -> Option<(PgStore, PgStore)> {
    let url = fresh_url()?;
    let mut a = PgStore::connect(&settings(&url), true).unwrap();
    let mut b = PgStore::connect(&settings(&url), false).unwrap();
    a.set_node(NodeId("node-a".into()));
    b.set_node(NodeId("node-b".into()));
    Some((a, b))
}

const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

fn config(hash: &str, modified: i64) -> ConfigVersion {
    ConfigVersion {
        hash: hash.to_owned(),
        modified: at(modified),
    }
}

#[test]
fn a_poll_lease_is_exclusive_until_it_expires_then_taken_over() {
    let Some((mut a, mut b)) = two_nodes() else {
        return;
    };
    let (node_a, node_b) = (a.node().clone(), b.node().clone());
    let k = key("crm", "contacts");
    let file = config("h1", 0);
    assert_eq!(
        a.claim_poll(&k, &node_a, &file, LEASE, at(0)).unwrap(),
        PollClaim::Granted { takeover: false }
    );
    assert_eq!(
        b.claim_poll(&k, &node_b, &file, LEASE, at(10)).unwrap(),
        PollClaim::Held {
            node: "node-a".into(),
            until: at(30)
        }
    );
    // A renews: still its own until 20 + 30.
    assert_eq!(
        a.renew_leases(&node_a, LEASE, at(20)).unwrap(),
        LeaseCounts {
            polls: 1,
            deliveries: 0
        }
    );
    assert!(matches!(
        b.claim_poll(&k, &node_b, &file, LEASE, at(45)).unwrap(),
        PollClaim::Held { until, .. } if until == at(50)
    ));
    // A dies; its lease expires; B takes over.
    assert_eq!(
        b.claim_poll(&k, &node_b, &file, LEASE, at(51)).unwrap(),
        PollClaim::Granted { takeover: true }
    );
    assert_eq!(
        a.renew_leases(&node_a, LEASE, at(52)).unwrap(),
        LeaseCounts::default(),
        "a lease taken over is not renewed"
    );
    // B polls and commits: the commit releases the lease; the next claim is not due yet.
    let poll = b.begin_poll(&k).unwrap();
    b.stage_events(poll, &[event("1", Some(1))]).unwrap();
    commit_one_per_event(&mut b, poll, "crm", outcome(Some(at(50)), Some(1)));
    assert_eq!(
        a.claim_poll(&k, &node_a, &file, LEASE, at(100)).unwrap(),
        PollClaim::NotDue {
            next_due_at: at(600)
        }
    );
    assert_eq!(
        a.claim_poll(&k, &node_a, &file, LEASE, at(600)).unwrap(),
        PollClaim::Granted { takeover: false },
        "released by the commit, so no takeover"
    );
    a.release_poll(&k, &node_a).unwrap();
    assert_eq!(
        b.claim_poll(&k, &node_b, &file, LEASE, at(601)).unwrap(),
        PollClaim::Granted { takeover: false }
    );
}

#[test]
fn a_node_with_an_older_copy_of_the_instance_file_polls_nothing_of_it() {
    let Some((mut a, mut b)) = two_nodes() else {
        return;
    };
    let (node_a, node_b) = (a.node().clone(), b.node().clone());
    let old = config("old-hash", 100);
    let new = config("new-hash", 200);
    assert_eq!(
        a.claim_poll(&key("crm", "contacts"), &node_a, &old, LEASE, at(0))
            .unwrap(),
        PollClaim::Granted { takeover: false }
    );
    assert_eq!(
        b.claim_poll(&key("crm", "accounts"), &node_b, &new, LEASE, at(1))
            .unwrap(),
        PollClaim::Granted { takeover: false }
    );
    for resource in ["contacts", "accounts", "leads"] {
        assert_eq!(
            a.claim_poll(&key("crm", resource), &node_a, &old, LEASE, at(40))
                .unwrap(),
            PollClaim::StaleConfig {
                newest_hash: "new-hash".into()
            }
        );
    }
    // Other instances are not concerned.
    assert_eq!(
        a.claim_poll(&key("ats", "jobs"), &node_a, &old, LEASE, at(40))
            .unwrap(),
        PollClaim::Granted { takeover: false }
    );
    // A reloads the new file: it may poll again.
    assert_eq!(
        a.claim_poll(&key("crm", "leads"), &node_a, &new, LEASE, at(41))
            .unwrap(),
        PollClaim::Granted { takeover: false }
    );
    // Equal modification times: the greater hash wins, whoever asks first.
    let x = config("xxx", 300);
    let y = config("yyy", 300);
    assert_eq!(
        b.claim_poll(&key("crm", "leads"), &node_b, &y, LEASE, at(100))
            .unwrap(),
        PollClaim::Granted { takeover: true }
    );
    assert_eq!(
        a.claim_poll(&key("crm", "contacts"), &node_a, &x, LEASE, at(101))
            .unwrap(),
        PollClaim::StaleConfig {
            newest_hash: "yyy".into()
        }
    );
}

#[test]
fn the_delivery_lease_is_exclusive_and_checked_before_sending() {
    let Some((mut a, mut b)) = two_nodes() else {
        return;
    };
    let (node_a, node_b) = (a.node().clone(), b.node().clone());
    assert_eq!(
        a.claim_delivery("crm", &node_a, LEASE, at(0)).unwrap(),
        DeliveryClaim::Granted { takeover: false }
    );
    assert_eq!(
        b.claim_delivery("crm", &node_b, LEASE, at(1)).unwrap(),
        DeliveryClaim::Held {
            node: "node-a".into(),
            until: at(30)
        }
    );
    assert_eq!(
        b.claim_delivery("ats", &node_b, LEASE, at(1)).unwrap(),
        DeliveryClaim::Granted { takeover: false }
    );
    assert!(a.holds_delivery("crm", &node_a, at(29)).unwrap());
    assert!(
        !a.holds_delivery("crm", &node_a, at(31)).unwrap(),
        "expired"
    );
    assert!(!b.holds_delivery("crm", &node_b, at(2)).unwrap());
    assert_eq!(
        b.renew_leases(&node_b, LEASE, at(10)).unwrap(),
        LeaseCounts {
            polls: 0,
            deliveries: 1
        }
    );
    a.release_delivery("crm", &node_a).unwrap();
    assert_eq!(
        b.claim_delivery("crm", &node_b, LEASE, at(12)).unwrap(),
        DeliveryClaim::Granted { takeover: false }
    );
    assert_eq!(
        a.claim_delivery("crm", &node_a, LEASE, at(43)).unwrap(),
        DeliveryClaim::Granted { takeover: true }
    );
    assert!(!b.holds_delivery("crm", &node_b, at(43)).unwrap());
}

#[test]
fn discarding_unfinished_polls_spares_another_live_nodes_poll() {
    let Some((mut a, mut b)) = two_nodes() else {
        return;
    };
    let (node_a, node_b) = (a.node().clone(), b.node().clone());
    let now = Utc::now();
    let file = config("h", 0);
    let (mine, theirs, dead) = (key("crm", "a"), key("crm", "b"), key("crm", "c"));
    a.claim_poll(&mine, &node_a, &file, LEASE, now).unwrap();
    b.claim_poll(&theirs, &node_b, &file, LEASE, now).unwrap();
    let my_poll = a.begin_poll(&mine).unwrap();
    a.stage_events(my_poll, &[event("1", Some(1))]).unwrap();
    let their_poll = b.begin_poll(&theirs).unwrap();
    b.stage_events(their_poll, &[event("2", Some(2))]).unwrap();
    // A poll of a third node whose lease expired long ago.
    b.claim_poll(&dead, &node_b, &file, LEASE, now - TimeDelta::minutes(5))
        .unwrap();
    let dead_poll = b.begin_poll(&dead).unwrap();
    b.stage_events(dead_poll, &[event("3", Some(3))]).unwrap();
    b.execute_sql("UPDATE poll SET node = 'node-c' WHERE id = (SELECT max(id) FROM poll)");

    assert_eq!(
        a.discard_unfinished_polls().unwrap(),
        2,
        "its own and node-c's"
    );
    assert!(matches!(
        a.begin_commit(my_poll),
        Err(StateError::PollGone(_))
    ));
    assert!(matches!(
        b.begin_commit(dead_poll),
        Err(StateError::PollGone(_))
    ));
    let ids = commit_one_per_event(&mut b, their_poll, "crm", outcome(None, None));
    assert_eq!(ids, ["n-2-2"], "node b's poll was left alone");
}

#[test]
fn a_second_commit_of_one_resource_waits_and_sees_the_moved_watermark() {
    let Some((mut a, mut b)) = two_nodes() else {
        return;
    };
    let k = key("crm", "contacts");
    let first = a.begin_direct_commit(&k).unwrap();
    assert_eq!(first.watermark().unwrap(), None);
    let k2 = k.clone();
    let waiting = std::thread::spawn(move || {
        let second = b.begin_direct_commit(&k2).unwrap();
        let seen = second.watermark().unwrap();
        drop(second);
        seen
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !waiting.is_finished(),
        "the second commit waits for the first"
    );
    first.finish(outcome(Some(at(77)), None)).unwrap();
    assert_eq!(
        waiting.join().unwrap(),
        Some(at(77)),
        "WatermarkMoved for it"
    );
}

#[test]
fn one_instances_queue_is_in_commit_order_across_nodes() {
    let Some((mut a, mut b)) = two_nodes() else {
        return;
    };
    // A's commit writes (and numbers) a first batch early, then takes its time.
    let first = a.begin_direct_commit(&key("crm", "contacts")).unwrap();
    for i in 0..super::staging::FLUSH_ROWS {
        first
            .insert_notification(notification(&format!("a{i:05}"), "crm", b"{}", 1))
            .unwrap();
    }
    let other = std::thread::spawn(move || {
        let commit = b.begin_direct_commit(&key("crm", "accounts")).unwrap();
        commit
            .insert_notification(notification("b0", "crm", b"{}", 1))
            .unwrap();
        commit.finish(outcome(None, None)).unwrap();
        let unrelated = b.begin_direct_commit(&key("ats", "jobs")).unwrap();
        unrelated
            .insert_notification(notification("c0", "ats", b"{}", 1))
            .unwrap();
        unrelated.finish(outcome(None, None)).unwrap();
        b
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!other.is_finished(), "B's commit into crm waits for A's");
    first
        .insert_notification(notification("a-last", "crm", b"{}", 1))
        .unwrap();
    first.finish(outcome(None, None)).unwrap();
    let b = other.join().unwrap();
    let crm: Vec<String> = b
        .outbox_list(&OutboxFilter {
            instance: Some("crm".into()),
            ..OutboxFilter::default()
        })
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(crm.len(), super::staging::FLUSH_ROWS + 2);
    assert_eq!(crm[crm.len() - 2], "a-last");
    assert_eq!(
        crm[crm.len() - 1],
        "b0",
        "B committed after A: its seq is after A's"
    );
}

/// The poll path's cost: 10,000 events staged in pages of 500 and committed as one
/// notification each (`cargo test --release ... -- --nocapture` prints the figure).
#[test]
fn ten_thousand_events_commit_in_batches() {
    let Some(mut store) = fresh() else { return };
    // OCPOLL_PG_BENCH_EVENTS=100000 for a steadier figure.
    let total: usize = std::env::var("OCPOLL_PG_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
        / 500
        * 500;
    let k = key("crm", "contacts");
    let started = std::time::Instant::now();
    let poll = store.begin_poll(&k).unwrap();
    for page in 0..total / 500 {
        let events: Vec<_> = (0..500)
            .map(|i| event(&(page * 500 + i).to_string(), Some((page * 500 + i) as i64)))
            .collect();
        assert_eq!(store.stage_events(poll, &events).unwrap(), 500);
    }
    let staged = started.elapsed();
    let ids = commit_one_per_event(&mut store, poll, "crm", outcome(Some(at(9)), Some(0)));
    let elapsed = started.elapsed();
    assert_eq!(ids.len(), total);
    assert_eq!(store.outbox_pending().unwrap(), total as u64);
    assert_eq!(store.seen_pairs(&k).unwrap().len(), total);
    assert_eq!(staging_rows(&store), 0);
    eprintln!(
        "postgres: {total} events staged in {staged:?}, committed in {:?}: {:.0} events/s end to end",
        elapsed - staged,
        total as f64 / elapsed.as_secs_f64()
    );
}

/// The heads are found by index seeks, never a scan of the outbox: a receiver that is down
/// lets one instance's queue grow by thousands of rows, and every delivery pass reads heads.
#[test]
fn heads_are_read_without_scanning_the_outbox() {
    let Some(mut store) = fresh() else { return };
    let commit = store.begin_direct_commit(&key("bulk", "r")).unwrap();
    for n in 0..20_000 {
        let instance = if n % 100 == 0 {
            format!("i{:02}", n % 7)
        } else {
            "bulk".to_owned()
        };
        commit
            .insert_notification(notification(&format!("n{n}"), &instance, b"{}", 1))
            .unwrap();
    }
    commit.finish(outcome(None, None)).unwrap();
    store.execute_sql("ANALYZE outbox");
    let plan = |sql: &str| -> String {
        let sql = format!("EXPLAIN {sql}");
        let rows = store
            .call(move |session| session.run(|client| client.simple_query(&sql)))
            .unwrap();
        rows.iter()
            .filter_map(|message| match message {
                ::postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for query in [
        format!(
            "{} SELECT o.instance FROM heads JOIN outbox o ON o.seq = heads.seq WHERE o.next_attempt_at <= '9'",
            super::outbox::HEADS
        ),
        format!(
            "{} SELECT o.instance, o.next_attempt_at FROM heads JOIN outbox o ON o.seq = heads.seq",
            super::outbox::HEADS
        ),
    ] {
        let plan = plan(&query);
        assert!(!plan.contains("Seq Scan on outbox"), "{plan}");
    }
    assert_eq!(store.outbox_head_attempts().unwrap().len(), 8);
    assert_eq!(due_ids(&store, 10).len(), 8);
}

/// `prefer` (libpq's default) connects to a server with or without TLS; `require` is
/// encrypted or fails saying why. (Checked by hand against a server with `ssl=on` and a
/// private CA: require, verify-ca and verify-full connect by name; verify-full to the IP
/// address, which the certificate does not name, is refused.)
#[test]
fn sslmode_prefer_falls_back_and_require_insists() {
    let Some(url) = fresh_url() else { return };
    let with = |mode: &str| {
        let mut parsed = url::Url::parse(&url).unwrap();
        let query: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(key, _)| key != "sslmode")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        parsed
            .query_pairs_mut()
            .clear()
            .extend_pairs(query)
            .append_pair("sslmode", mode);
        parsed.to_string()
    };
    let ssl_in_use = |store: &PgStore| {
        store.count_sql("SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl")
            == 1
    };
    let prefer = PgStore::connect(&settings(&with("prefer")), true).unwrap();
    let server_has_tls = ssl_in_use(&prefer);
    match PgStore::connect(&settings(&with("require")), true) {
        Ok(store) => assert!(ssl_in_use(&store)),
        Err(error) => {
            assert!(!server_has_tls);
            assert!(error.to_string().contains("TLS"), "{error}");
        }
    }
}

/// The password as libpq users give it, against the real server: a `${env:..}` reference in
/// the URL, `PGPASSWORD`, a password file.
#[test]
fn the_password_comes_from_a_reference_pgpassword_or_the_password_file() {
    let Some(server) = crate::testing::postgres::server() else {
        return;
    };
    let url = server.fresh_database();
    let db = crate::testing::postgres::database_name(&url).to_owned();
    PgStore::migrate(&settings(&url)).unwrap();
    let bare = server.url_without_password(&db);
    let password = server.password().to_owned();
    let connects = |settings: PgSettings| PgStore::connect(&settings, false).map(drop);

    struct Env(String);
    impl crate::instance::SecretSource for Env {
        fn env(&self, name: &str) -> Option<String> {
            (name == "OCPOLL_DB_PASSWORD").then(|| self.0.clone())
        }
        fn file(&self, path: &std::path::Path) -> std::io::Result<String> {
            std::fs::read_to_string(path)
        }
    }
    let referenced = bare.replacen("ocpoll@", "ocpoll:${env:OCPOLL_DB_PASSWORD}@", 1);
    let none = |_: &str| None;
    connects(PgSettings::parse_with(&referenced, &Env(password.clone()), &none).unwrap()).unwrap();

    let no_secrets = crate::instance::ScopedSecrets::default();
    let pgpassword = password.clone();
    let with_pgpassword =
        move |name: &str| (name == "PGPASSWORD").then(|| pgpassword.clone().into());
    connects(PgSettings::parse_with(&bare, &no_secrets, &with_pgpassword).unwrap()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!(
            "otherhost:*:*:*:nope\n{}:{}:*:ocpoll:{password}\n",
            server.host(),
            server.port()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = passfile.clone().into_os_string();
    let with_passfile = move |name: &str| (name == "PGPASSFILE").then(|| file.clone());
    connects(PgSettings::parse_with(&bare, &no_secrets, &with_passfile).unwrap()).unwrap();

    // None of them: the server refuses, and says so.
    let error = connects(PgSettings::parse_with(&bare, &no_secrets, &none).unwrap()).unwrap_err();
    assert!(matches!(error, StateError::Postgres { .. }), "{error:?}");
}

/// Two nodes going through the same resources at once, from opposite ends: every resource is
/// polled exactly once, by one of them (the other meets `Held` or `NotDue`).
#[test]
fn two_nodes_polling_the_same_resources_at_once_poll_each_once() {
    let Some((a, b)) = two_nodes() else { return };
    let resources: Vec<ResourceKey> = (0..40).map(|i| key("crm", &format!("r{i:02}"))).collect();
    let run = |mut store: PgStore, resources: Vec<ResourceKey>| {
        std::thread::spawn(move || {
            let node = store.node().clone();
            let mut polled = Vec::new();
            for k in &resources {
                match store
                    .claim_poll(k, &node, &config("h", 0), LEASE, at(1000))
                    .unwrap()
                {
                    PollClaim::Granted { takeover: false } => {
                        let poll = store.begin_poll(k).unwrap();
                        let id = format!("{}-{}", k.resource, node);
                        store.stage_events(poll, &[event(&id, Some(1))]).unwrap();
                        let outcome = PollOutcome {
                            next_due_at: Some(at(5000)),
                            ..outcome(Some(at(1)), Some(1))
                        };
                        commit_one_per_event(&mut store, poll, "crm", outcome);
                        polled.push(k.resource.clone());
                    }
                    PollClaim::Held { .. } | PollClaim::NotDue { .. } => {}
                    other => panic!("{other:?}"),
                }
            }
            (store, polled)
        })
    };
    let mut reversed = resources.clone();
    reversed.reverse();
    let first = run(a, resources.clone());
    let second = run(b, reversed);
    let (a, mut polled) = first.join().unwrap();
    let (_b, by_b) = second.join().unwrap();
    polled.extend(by_b);
    polled.sort();
    let expected: Vec<String> = resources.iter().map(|k| k.resource.clone()).collect();
    assert_eq!(polled, expected, "each resource polled once, by one node");
    assert_eq!(a.outbox_pending().unwrap(), 40);
}
