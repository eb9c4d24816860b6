//! One suite of store tests, run on both backends: each test is a function of a [`Store`],
//! called once on a private in-memory SQLite store and once on a fresh database of the
//! PostgreSQL test server (`crate::testing::postgres`; skipped, saying so, without PostgreSQL).
//! What only one backend has (the file's checks and locks, migrations, connection settings, two
//! nodes on one database) is tested beside that backend.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::detect::EventType;
use crate::http::StoredToken;
use crate::instance::Secret;

/// Runs each named test of this file on both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $name() {
                    let mut store = super::Store::open_in_memory().unwrap();
                    super::$name(&mut store);
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $name() {
                    let Some(mut store) = super::fresh_postgres() else { return };
                    super::$name(&mut store);
                }
            )*
        }
    };
}

on_both_backends!(
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

/// A migrated store on a fresh database, or None without PostgreSQL.
fn fresh_postgres() -> Option<Store> {
    let url = crate::testing::postgres::server()?.fresh_database();
    let secrets = crate::instance::ScopedSecrets::default();
    Some(Store::connect_postgres(&url, &secrets, true).unwrap())
}

/// Runs `sql` on either backend (tests only).
fn execute_sql(store: &Store, sql: &'static str) {
    match store {
        Store::Sqlite(store) => store.conn.execute_batch(sql).unwrap(),
        Store::Postgres(store) => store.execute_sql(sql),
    }
}

/// The integer `sql` selects, on either backend (tests only).
fn count_sql(store: &Store, sql: &'static str) -> i64 {
    match store {
        Store::Sqlite(store) => store.conn.query_row(sql, [], |row| row.get(0)).unwrap(),
        Store::Postgres(store) => store.count_sql(sql),
    }
}

pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn nanos(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt().unwrap()
}

pub(super) fn key(instance: &str, resource: &str) -> ResourceKey {
    ResourceKey::new(instance, resource, &BTreeMap::new())
}

pub(super) fn event(id: &str, updated: Option<i64>) -> StagedEvent {
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

pub(super) fn outcome(watermark: Option<DateTime<Utc>>, seen_floor: Option<i64>) -> PollOutcome {
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

pub(super) fn notification(id: &str, instance: &str, body: &[u8], events: u32) -> NewNotification {
    NewNotification {
        id: id.to_owned(),
        instance: instance.to_owned(),
        body: body.to_vec(),
        events,
        created_at: at(2),
    }
}

/// Commits a poll's `commit` with one notification per staged event, its body the event's
/// raw bytes (either backend's transaction, so each backend's own tests use it too).
pub(super) fn commit_one_per_event(
    commit: CommitTxn<'_>,
    instance: &str,
    outcome: PollOutcome,
) -> Vec<String> {
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

/// [`commit_one_per_event`] of `poll`.
fn commit_poll(
    store: &mut Store,
    poll: PollId,
    instance: &str,
    outcome: PollOutcome,
) -> Vec<String> {
    commit_one_per_event(store.begin_commit(poll).unwrap(), instance, outcome)
}

fn staging_rows(store: &Store) -> i64 {
    count_sql(
        store,
        "SELECT (SELECT count(*) FROM staged_event) + (SELECT count(*) FROM staged_snapshot)
              + (SELECT count(*) FROM poll)",
    )
}

/// Inserts notification `id` of `instance`, created (and first due) at `at(created)`, through
/// a poll's commit (the only way in).
fn add(store: &mut Store, id: &str, instance: &str, created: i64) {
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
fn due_ids(store: &Store, now: i64) -> Vec<String> {
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

fn rows(store: &Store) -> Vec<(String, bool, u32)> {
    let rows = store.outbox_list(&OutboxFilter::default()).unwrap();
    rows.into_iter()
        .map(|r| (r.id, r.dead, r.attempts))
        .collect()
}

fn a_poll_commits_events_watermark_and_seen_pairs_in_order(store: &mut Store) {
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

    let ids = commit_poll(
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

fn seen_pairs_are_old_union_new_above_the_floor(store: &mut Store) {
    let k = key("crm", "contacts");
    let poll = store.begin_poll(&k).unwrap();
    store
        .stage_events(poll, &[event("a", Some(10)), event("b", Some(20))])
        .unwrap();
    commit_poll(store, poll, "crm", outcome(None, Some(10)));
    let poll = store.begin_poll(&k).unwrap();
    store
        .stage_events(poll, &[event("c", Some(25)), event("d", Some(5))])
        .unwrap();
    commit_poll(store, poll, "crm", outcome(None, Some(20)));
    let seen = store.seen_pairs(&k).unwrap();
    let expected: HashSet<_> = [("b".to_owned(), 20), ("c".to_owned(), 25)].into();
    assert_eq!(seen, expected);

    // No floor keeps none.
    let poll = store.begin_poll(&k).unwrap();
    commit_poll(store, poll, "crm", outcome(None, None));
    assert!(store.seen_pairs(&k).unwrap().is_empty());
}

fn dropping_the_commit_rolls_everything_back(store: &mut Store) {
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
    let ids = commit_poll(store, poll, "crm", outcome(Some(at(0)), Some(0)));
    assert_eq!(ids.len(), 1);
}

fn a_new_poll_of_the_same_resource_discards_the_unfinished_one(store: &mut Store) {
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
    let ids = commit_poll(store, new, "crm", outcome(Some(at(0)), Some(0)));
    assert_eq!(
        ids,
        [String::from("n-c-12")],
        "nothing of the discarded poll"
    );

    // The other resource's poll was not touched.
    let ids = commit_poll(store, other_poll, "crm", outcome(None, None));
    assert_eq!(ids, [String::from("n-x-1")]);
}

fn discard_unfinished_polls_drops_all_staging(store: &mut Store) {
    for resource in ["a", "b", "c"] {
        let poll = store.begin_poll(&key("crm", resource)).unwrap();
        store.stage_events(poll, &[event("1", Some(1))]).unwrap();
        store.stage_snapshot(poll, &[("1", "h", b"{}")]).unwrap();
    }
    assert!(staging_rows(store) > 0);
    assert_eq!(store.discard_unfinished_polls().unwrap(), 3);
    assert_eq!(staging_rows(store), 0);
}

fn a_failed_poll_records_its_error_and_leaves_the_watermark(store: &mut Store) {
    let k = key("crm", "contacts");
    let poll = store.begin_poll(&k).unwrap();
    store.stage_events(poll, &[event("a", Some(10))]).unwrap();
    commit_poll(store, poll, "crm", outcome(Some(at(10)), Some(10)));

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

fn snapshot_polls_find_changes_and_deletions(store: &mut Store) {
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

fn a_watermark_poll_leaves_the_snapshot_set_alone(store: &mut Store) {
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

fn a_caller_error_inside_for_each_staged_stops_and_rolls_back(store: &mut Store) {
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

fn outbox_depth_and_list_per_instance(store: &mut Store) {
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
    execute_sql(
        store,
        "UPDATE outbox SET dead = true, last_error = 'HTTP 404' WHERE id = 'n1'",
    );

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

fn a_duplicate_event_id_fails_the_commit(store: &mut Store) {
    let poll = store.begin_poll(&key("crm", "contacts")).unwrap();
    let commit = store.begin_commit(poll).unwrap();
    commit
        .insert_notification(notification("same", "crm", b"{}", 1))
        .unwrap();
    // SQLite fails the insert itself; PostgreSQL writes notifications in batches and fails at
    // `finish`. Either way the commit fails and nothing of the poll is kept.
    let result = commit
        .insert_notification(notification("same", "crm", b"{}", 1))
        .and_then(|()| commit.finish(outcome(Some(at(5)), None)));
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            StateError::Sqlite { .. } | StateError::Postgres { .. }
        ),
        "{error:?}"
    );
    assert!(rows(store).is_empty());
    let state = store.resource_state(&key("crm", "contacts")).unwrap();
    assert_eq!(state.and_then(|state| state.watermark), None);
}

/// Two resources of `crm` (one fanned out), one of `ats`, an outbox row and a token of `gone`.
fn store_with_three_instances(store: &mut Store) {
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
        commit_poll(
            store,
            poll,
            &k.instance,
            PollOutcome {
                polled_at: at(i as i64),
                ..outcome(Some(at(100)), Some(100))
            },
        );
        execute_sql(store, "DELETE FROM outbox");
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

fn statuses_and_instances_with_state(store: &mut Store) {
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

fn reset_forgets_or_sets_watermarks(store: &mut Store) {
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

fn forget_instance_removes_everything_of_it_only(store: &mut Store) {
    store_with_three_instances(store);
    let poll = store.begin_poll(&key("crm", "contacts")).unwrap();
    store.stage_events(poll, &[event("9", Some(9))]).unwrap();
    store.forget_instance("crm").unwrap();
    store.forget_instance("gone").unwrap();
    assert_eq!(store.instances_with_state().unwrap(), ["ats"]);
    assert_eq!(staging_rows(store), 0);
    let orphans = count_sql(store, "SELECT count(*) FROM seen_pair");
    assert_eq!(orphans, 1, "only ats's pair is left");
}

fn a_grant_remembers_its_used_code_across_credentials_and_a_revocation_deletes_the_token(
    store: &mut Store,
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

fn oauth_tokens_are_dropped_when_the_credentials_change(store: &mut Store) {
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

fn a_direct_commit_writes_its_events_seen_pairs_and_watermark_in_one_transaction(
    store: &mut Store,
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

fn window_pairs_keep_their_latest_time_and_go_when_the_window_moves_past_them(store: &mut Store) {
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

fn a_rolled_back_direct_commit_changes_nothing_and_a_finished_one_drops_old_staging(
    store: &mut Store,
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

fn due_heads_are_one_per_instance_in_seq_order(store: &mut Store) {
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

fn a_head_in_backoff_blocks_its_instance_only(store: &mut Store) {
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

fn delivered_deletes_and_the_next_one_becomes_the_head(store: &mut Store) {
    add(store, "a1", "a", 0);
    add(store, "a2", "a", 0);
    let a1 = ["a1".to_owned()];
    assert_eq!(store.outbox_delivered_all(&a1).unwrap(), 1);
    assert_eq!(store.outbox_delivered_all(&a1).unwrap(), 0, "already gone");
    assert_eq!(due_ids(store, 0), ["a2"]);
    assert_eq!(store.outbox_body("a1").unwrap(), None);
}

fn delivered_in_a_batch_and_the_head_after_an_acknowledged_one(store: &mut Store) {
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

fn dead_letters_stay_and_do_not_block(store: &mut Store) {
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

fn retry_revives_dead_letters_and_makes_pending_ones_due_now(store: &mut Store) {
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

fn drop_by_id_dead_or_instance(store: &mut Store) {
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

fn a_retried_receipt_is_not_enqueued_twice(store: &mut Store) {
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

fn tokens_are_created_once_and_rotated_with_a_grace_period(store: &mut Store) {
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
