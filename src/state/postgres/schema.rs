//! The PostgreSQL state's schema and its versioned migrations.
//!
//! What it owns: the tables (the SQLite ones' meaning, plus the fleet's leases), the version
//! row, ocpoll's mark, and applying migrations safely while several nodes start at once.
//!
//! - `ocpoll_schema` holds one row: `application = 'ocpoll'` (the mark: a database with
//!   tables but without that row is another program's, refused untouched like a foreign
//!   SQLite file) and `version` = how many entries of [`MIGRATIONS`] were applied. A migration
//!   is never edited once released; changes go into a new entry.
//! - [`migrate`] runs in one transaction under a transaction-level advisory lock
//!   ([`MIGRATION_LOCK`]), re-reading the version after taking it: two nodes migrating at once
//!   apply each migration once. PostgreSQL's DDL is transactional, so a failure leaves the
//!   old version whole.
//!
//! Types. Times are `text` in the same fixed-width RFC 3339 UTC form with nanoseconds as the
//! SQLite file (`2026-11-25T12:59:58.123456789Z`), under the "C" collation so they sort and
//! compare as bytes: `timestamptz` keeps microseconds only, and a watermark must round-trip to
//! the nanosecond (the poll's commit compares the one it started from; the detector compares
//! records against it), and some providers' dates fall outside what nanosecond `bigint`s hold.
//! Names (instance, resource, pathParams) are `text COLLATE "C"` too, so every ORDER BY agrees
//! with SQLite's byte order. Bodies and raw records are `bytea`, counters `bigint`, flags
//! `boolean`; the seen pairs keep SQLite's integer nanoseconds (`bigint`).

use postgres::Transaction;

/// Every migration, in order.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE resource_state (
        id            bigserial PRIMARY KEY,
        instance      text COLLATE "C" NOT NULL,
        resource      text COLLATE "C" NOT NULL,
        path_params   text COLLATE "C" NOT NULL,
        watermark     text COLLATE "C",
        last_poll_at  text COLLATE "C",
        last_result   text,
        last_error    text,
        next_due_at   text COLLATE "C",
        records_read  bigint NOT NULL DEFAULT 0,
        events        bigint NOT NULL DEFAULT 0,
        UNIQUE (instance, resource, path_params)
    );

    CREATE TABLE seen_pair (
        resource_id  bigint NOT NULL REFERENCES resource_state(id) ON DELETE CASCADE,
        updated      bigint NOT NULL,
        record_id    text COLLATE "C" NOT NULL,
        PRIMARY KEY (resource_id, updated, record_id)
    );

    CREATE TABLE window_pair (
        resource_id  bigint NOT NULL REFERENCES resource_state(id) ON DELETE CASCADE,
        record_id    text COLLATE "C" NOT NULL,
        hash         text COLLATE "C" NOT NULL,
        seen_at      bigint NOT NULL,
        PRIMARY KEY (resource_id, record_id, hash)
    );

    CREATE TABLE snapshot_item (
        resource_id  bigint NOT NULL REFERENCES resource_state(id) ON DELETE CASCADE,
        record_id    text COLLATE "C" NOT NULL,
        hash         text NOT NULL,
        raw          bytea NOT NULL,
        PRIMARY KEY (resource_id, record_id)
    );

    -- A poll begun and not committed, with the node that runs it: a node's start-up discards
    -- its own leftovers and those of nodes whose lease expired, never a live node's.
    CREATE TABLE poll (
        id           bigserial PRIMARY KEY,
        resource_id  bigint NOT NULL REFERENCES resource_state(id) ON DELETE CASCADE,
        snapshot     boolean NOT NULL DEFAULT false,
        node         text NOT NULL,
        started_at   text COLLATE "C" NOT NULL
    );
    CREATE INDEX poll_by_resource ON poll(resource_id);

    CREATE TABLE staged_event (
        seq          bigserial PRIMARY KEY,
        poll_id      bigint NOT NULL REFERENCES poll(id) ON DELETE CASCADE,
        record_id    text COLLATE "C" NOT NULL,
        updated      bigint,
        event_type   text NOT NULL,
        date         text NOT NULL,
        path_params  text,
        raw          bytea NOT NULL,
        hash         text
    );
    CREATE UNIQUE INDEX staged_event_unique
        ON staged_event(poll_id, record_id, coalesce(updated, -9223372036854775808));

    CREATE TABLE staged_snapshot (
        poll_id      bigint NOT NULL REFERENCES poll(id) ON DELETE CASCADE,
        record_id    text COLLATE "C" NOT NULL,
        hash         text NOT NULL,
        raw          bytea NOT NULL,
        PRIMARY KEY (poll_id, record_id)
    );

    -- seq: delivery order. Within an instance it is commit order: inserts into one instance's
    -- queue hold a transaction-level advisory lock on the instance until they commit.
    CREATE TABLE outbox (
        seq              bigserial PRIMARY KEY,
        id               text NOT NULL UNIQUE,
        instance         text COLLATE "C" NOT NULL,
        events           bigint NOT NULL,
        created_at       text COLLATE "C" NOT NULL,
        attempts         bigint NOT NULL DEFAULT 0,
        next_attempt_at  text COLLATE "C" NOT NULL,
        last_error       text,
        dead             boolean NOT NULL DEFAULT false,
        retried_at       text COLLATE "C",
        body             bytea NOT NULL
    );
    -- The queue heads: one seek per instance (see outbox.rs).
    CREATE INDEX outbox_pending ON outbox(instance, seq) WHERE NOT dead;
    CREATE INDEX outbox_by_instance ON outbox(instance, dead, seq);

    CREATE TABLE oauth_token (
        instance          text COLLATE "C" PRIMARY KEY,
        credentials_hash  text NOT NULL,
        access_token      text NOT NULL,
        refresh_token     text,
        expires_at        text COLLATE "C"
    );

    CREATE TABLE oauth_grant (
        instance           text COLLATE "C" PRIMARY KEY,
        credentials_hash   text NOT NULL,
        code_hash          text,
        code_rejected      boolean NOT NULL DEFAULT false,
        last_token_at      text COLLATE "C",
        last_token_result  text,
        revoked_at         text COLLATE "C"
    );

    CREATE TABLE webhook_token (
        instance        text COLLATE "C" PRIMARY KEY,
        token           text NOT NULL,
        created_at      text COLLATE "C" NOT NULL,
        previous_token  text,
        previous_until  text COLLATE "C"
    );

    CREATE TABLE webhook_receipt (
        instance    text COLLATE "C" NOT NULL,
        key         text COLLATE "C" NOT NULL,
        keep_until  text COLLATE "C" NOT NULL,
        PRIMARY KEY (instance, key)
    );
    CREATE INDEX webhook_receipt_by_age ON webhook_receipt(keep_until);

    CREATE TABLE webhook_status (
        instance         text COLLATE "C" PRIMARY KEY,
        last_receipt_at  text COLLATE "C" NOT NULL,
        accepted         bigint NOT NULL DEFAULT 0,
        duplicates       bigint NOT NULL DEFAULT 0
    );

    -- Leases (docs/design.md): which node polls a resource, until when, with which copy of
    -- the instance file. node NULL: free.
    CREATE TABLE poll_lease (
        resource_id  bigint PRIMARY KEY REFERENCES resource_state(id) ON DELETE CASCADE,
        node         text,
        expires_at   text COLLATE "C",
        config_hash  text
    );
    CREATE INDEX poll_lease_by_node ON poll_lease(node);

    -- Which node delivers an instance's outbox head, until when.
    CREATE TABLE delivery_lease (
        instance     text COLLATE "C" PRIMARY KEY,
        node         text,
        expires_at   text COLLATE "C"
    );
    CREATE INDEX delivery_lease_by_node ON delivery_lease(node);

    -- The newest copy of each instance file any node has read: a node with another (older)
    -- copy polls nothing of that instance.
    CREATE TABLE instance_config (
        instance  text COLLATE "C" PRIMARY KEY,
        hash      text COLLATE "C" NOT NULL,
        modified  text COLLATE "C" NOT NULL,
        seen_by   text NOT NULL,
        seen_at   text COLLATE "C" NOT NULL
    );
    "#,
];

/// The schema version this build writes and understands.
pub const CURRENT_VERSION: u32 = MIGRATIONS.len() as u32;

/// The advisory lock key migrations run under ("ocpl" + "migr" as one bigint).
pub(super) const MIGRATION_LOCK: i64 = 0x6F63_706C_6D69_6772;

/// What the database holds, as far as ocpoll is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// No tables in the schema at all: ocpoll's to set up.
    Empty,
    /// ocpoll's, at this version.
    Ocpoll(u32),
    /// Tables, but not ocpoll's mark.
    Foreign,
}

/// Reads what the current schema (search_path's first) holds; only reads.
pub(super) fn inspect(client: &mut impl postgres::GenericClient) -> Result<Found, postgres::Error> {
    let has_marker: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                            WHERE table_schema = current_schema() AND table_name = 'ocpoll_schema')",
            &[],
        )?
        .get(0);
    if has_marker {
        let row = client.query_opt(
            "SELECT version FROM ocpoll_schema WHERE application = 'ocpoll'",
            &[],
        )?;
        return Ok(match row {
            Some(row) => Found::Ocpoll(u32::try_from(row.get::<_, i32>(0)).unwrap_or(0)),
            None => Found::Foreign,
        });
    }
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            &[],
        )?
        .get(0);
    Ok(if tables == 0 {
        Found::Empty
    } else {
        Found::Foreign
    })
}

/// What [`migrate`] met.
#[derive(Debug)]
pub(super) enum Migrated {
    /// From, to.
    Done(u32, u32),
    Newer(u32),
    Foreign,
}

/// Brings the schema to [`CURRENT_VERSION`] in one transaction under [`MIGRATION_LOCK`].
pub(super) fn migrate(tx: &mut Transaction<'_>) -> Result<Migrated, postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let from = match inspect(tx)? {
        Found::Foreign => return Ok(Migrated::Foreign),
        Found::Ocpoll(found) if found > CURRENT_VERSION => return Ok(Migrated::Newer(found)),
        Found::Ocpoll(found) => found,
        Found::Empty => {
            tx.batch_execute(
                "CREATE TABLE ocpoll_schema (
                     application  text PRIMARY KEY CHECK (application = 'ocpoll'),
                     version      integer NOT NULL,
                     migrated_at  timestamptz NOT NULL DEFAULT now()
                 );
                 INSERT INTO ocpoll_schema (application, version) VALUES ('ocpoll', 0);",
            )?;
            0
        }
    };
    for migration in MIGRATIONS.iter().skip(from as usize) {
        tx.batch_execute(migration)?;
    }
    if from != CURRENT_VERSION {
        tx.execute(
            "UPDATE ocpoll_schema SET version = $1, migrated_at = now() WHERE application = 'ocpoll'",
            &[&(CURRENT_VERSION as i32)],
        )?;
    }
    Ok(Migrated::Done(from, CURRENT_VERSION))
}
