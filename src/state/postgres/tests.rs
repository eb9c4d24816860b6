//! Tests of the PostgreSQL store against a real server (the test harness's, see
//! `crate::testing::postgres`; skipped with a line on stderr when PostgreSQL is not installed).
//!
//! Most are the SQLite store's own tests (`state/tests.rs`, `outbox.rs`, `webhooks.rs`) with
//! `Store::open_in_memory()` replaced by a fresh database: the same behaviour checked on both
//! backends. Then what only PostgreSQL has: migrations, settings, and two nodes on one
//! database.

use std::io::Write;

use chrono::{TimeDelta, Utc};

use super::super::*;
use super::*;
use crate::state::suite::{at, commit_one_per_event, event, key, notification, outcome};

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
    pub(in crate::state) fn execute_sql(&self, sql: &'static str) {
        self.call(move |session| session.run(|client| client.batch_execute(sql)))
            .unwrap();
    }

    /// The bigint `sql` selects (tests only).
    pub(in crate::state) fn count_sql(&self, sql: &'static str) -> i64 {
        self.call(move |session| session.run(|client| client.query_one(sql, &[])))
            .unwrap()
            .get(0)
    }
}

fn staging_rows(store: &PgStore) -> i64 {
    store.count_sql(
        "SELECT (SELECT count(*) FROM staged_event) + (SELECT count(*) FROM staged_snapshot)
              + (SELECT count(*) FROM poll)",
    )
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

// ---- the SQLite store's tests, on PostgreSQL ----

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
    commit_one_per_event(
        CommitTxn::Postgres(b.begin_commit(poll).unwrap()),
        "crm",
        outcome(Some(at(50)), Some(1)),
    );
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

/// A node whose lease row another node is claiming at that very moment (the row locked, so its
/// own claim skips it) still holds its unexpired lease: it must not take itself for a stranger
/// and give the queue up (the fleet bench lost a notification that way: the holder stopped,
/// and the other node saw an unexpired lease and skipped the queue).
#[test]
fn a_lease_locked_by_another_nodes_claim_is_still_its_holders() {
    let Some((mut a, b)) = two_nodes() else {
        return;
    };
    let node_a = a.node().clone();
    let key = key("crm", "contacts");
    assert_eq!(
        a.claim_delivery("crm", &node_a, LEASE, at(0)).unwrap(),
        DeliveryClaim::Granted { takeover: false }
    );
    assert_eq!(
        a.claim_poll(&key, &node_a, &config("h", 1), LEASE, at(0))
            .unwrap(),
        PollClaim::Granted { takeover: false }
    );
    // B holds both rows locked, as its claim does between its SELECT and its commit.
    b.call(|session| {
        session.begin()?;
        session.run(|client| {
            client.batch_execute(
                "SELECT 1 FROM delivery_lease FOR UPDATE; SELECT 1 FROM poll_lease FOR UPDATE",
            )
        })
    })
    .unwrap();
    assert_eq!(
        a.claim_delivery("crm", &node_a, LEASE, at(5)).unwrap(),
        DeliveryClaim::Granted { takeover: false },
        "still A's"
    );
    assert_eq!(
        a.claim_poll(&key, &node_a, &config("h", 1), LEASE, at(5))
            .unwrap(),
        PollClaim::Granted { takeover: false },
        "still A's"
    );
    // Expired meanwhile, it is not A's to keep without the row: Held by the claimer.
    assert!(matches!(
        a.claim_delivery("crm", &node_a, LEASE, at(31)).unwrap(),
        DeliveryClaim::Held { .. }
    ));
    b.call(|session| {
        session.rollback();
        Ok(())
    })
    .unwrap();
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
    let ids = commit_one_per_event(
        CommitTxn::Postgres(b.begin_commit(their_poll).unwrap()),
        "crm",
        outcome(None, None),
    );
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
    let ids = commit_one_per_event(
        CommitTxn::Postgres(store.begin_commit(poll).unwrap()),
        "crm",
        outcome(Some(at(9)), Some(0)),
    );
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

/// TLS against the test server's own CA (it has TLS when `openssl` could make its
/// certificate): `verify-full` with `sslrootcert` connects over TLS to 127.0.0.1, which the
/// certificate names; a root that did not sign the server's certificate is refused; `prefer`,
/// the default, uses TLS too.
#[test]
fn verify_full_connects_with_the_servers_ca_and_refuses_another_root() {
    let Some(server) = crate::testing::postgres::server() else {
        return;
    };
    let Some(root) = server.tls_root() else {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: the test server has no TLS (no openssl)"
        );
        return;
    };
    let url = server.fresh_database();
    let ssl_in_use = |store: &PgStore| {
        store.count_sql("SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl")
            == 1
    };
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={}", root.display());
    let store = PgStore::connect(&settings(&verified), true).unwrap();
    assert!(ssl_in_use(&store), "verify-full uses TLS");
    let preferred = PgStore::connect(&settings(&url), false).unwrap();
    assert!(
        ssl_in_use(&preferred),
        "prefer uses TLS when the server offers it"
    );
    // The server's own certificate as the root: it did not sign itself.
    let wrong = root.with_file_name("server.pem");
    let refused = format!("{url}?sslmode=verify-full&sslrootcert={}", wrong.display());
    let error = PgStore::connect(&settings(&refused), false).unwrap_err();
    assert!(error.to_string().contains("TLS"), "{error}");
    assert!(!error.to_string().contains(server.password()), "{error}");
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
                        commit_one_per_event(
                            CommitTxn::Postgres(store.begin_commit(poll).unwrap()),
                            "crm",
                            outcome,
                        );
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
