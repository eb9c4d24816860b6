//! The state in PostgreSQL: [`PgStore`], the backend that lets several `ocpoll run` processes
//! (nodes) share one database (issue 18). It offers every method of the SQLite
//! [`Store`](super::Store) with the same signature and meaning, plus the leases
//! (`lease.rs`) that keep two nodes from polling one resource or delivering one instance's
//! outbox at once.
//!
//! What it owns: opening the store (connect, check the schema, optionally migrate), the
//! resource reads and the `state` commands' writes. One concept per file beside it:
//! `connect` (the URL, password and sslmode), `tls` (rustls), `actor` (the connection's
//! thread), `schema` (migrations), `staging` (a poll's lifecycle and [`PgCommitTxn`]),
//! `outbox`, `tokens`, `webhooks`, `lease`.
//!
//! Durability: every PostgreSQL commit is durable when it returns (with the server's default
//! `synchronous_commit`), so [`PgStore::sync`] and [`PgStore::sync_relaxed`] do nothing and
//! [`PgStore::relaxed`] just runs its closure. There is no file to damage: `corruption()` is
//! always None.
//!
//! Times are passed in by the caller wherever the SQLite store takes them (`now`), and the
//! leases compare against that `now` too: the nodes' clocks must agree to well within a lease
//! (NTP does), and tests are deterministic.

mod actor;
mod connect;
mod lease;
mod outbox;
mod schema;
mod staging;
mod tls;
mod tokens;
mod webhooks;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::lease::NodeId;
use super::{PollResult, ResourceKey, ResourceState, ResourceStatusRow, StateError, encode_time};
use actor::{Actor, Session};

pub use connect::{PgSettings, SslMode, is_postgres_url, passfile_lookup};
pub use schema::CURRENT_VERSION as PG_SCHEMA_VERSION;
pub use staging::PgCommitTxn;
pub use tokens::PgStateTokens;

/// A PostgreSQL state store: one connection, on its own thread (see `actor`). `Send` and
/// `Sync`; like the SQLite store it is shared behind a mutex.
pub struct PgStore {
    actor: Actor,
    location: String,
    /// The node this store's polls belong to (staging rows carry it).
    node: NodeId,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .field("node", &self.node)
            .finish()
    }
}

/// Parses a stored time (the SQLite store's text form).
fn parse_time(text: Option<String>) -> Result<Option<DateTime<Utc>>, StateError> {
    let Some(text) = text else { return Ok(None) };
    DateTime::parse_from_rfc3339(&text)
        .map(|time| Some(time.with_timezone(&Utc)))
        .map_err(|e| StateError::Postgres {
            location: String::new(),
            detail: format!("bad time {text:?} in the state: {e}"),
        })
}

fn time_or_default(text: String) -> Result<DateTime<Utc>, StateError> {
    Ok(parse_time(Some(text))?.unwrap_or_default())
}

fn encode_opt(time: Option<DateTime<Utc>>) -> Option<String> {
    time.as_ref().map(encode_time)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

const RESOURCE_STATE_COLUMNS: &str =
    "watermark, last_poll_at, last_result, last_error, next_due_at, records_read, events";

/// Reads the [`RESOURCE_STATE_COLUMNS`] starting at column `first`.
fn read_resource_state(row: &postgres::Row, first: usize) -> Result<ResourceState, StateError> {
    let last_result = match row.get::<_, Option<String>>(first + 2) {
        None => None,
        Some(text) => Some(
            PollResult::parse(&text).ok_or_else(|| StateError::Postgres {
                location: String::new(),
                detail: format!("unknown poll result {text:?} in the state"),
            })?,
        ),
    };
    Ok(ResourceState {
        watermark: parse_time(row.get(first))?,
        last_poll_at: parse_time(row.get(first + 1))?,
        last_result,
        last_error: row.get(first + 3),
        next_due_at: parse_time(row.get(first + 4))?,
        records_read: unsigned(row.get(first + 5)),
        events: unsigned(row.get(first + 6)),
    })
}

/// The resource's row id, creating an empty row (never polled) when it has none.
/// The id of `key`'s row, created when missing (see [`ensure_resource_by`]).
pub(super) const ENSURE_RESOURCE: &str = "WITH inserted AS (
         INSERT INTO resource_state (instance, resource, path_params) VALUES ($1, $2, $3)
         ON CONFLICT (instance, resource, path_params) DO NOTHING RETURNING id)
     SELECT id FROM inserted
     UNION ALL
     SELECT id FROM resource_state WHERE instance = $1 AND resource = $2 AND path_params = $3
     LIMIT 1";

fn ensure_resource(
    client: &mut impl postgres::GenericClient,
    key: &ResourceKey,
) -> Result<i64, postgres::Error> {
    ensure_resource_by(client, ENSURE_RESOURCE, key)
}

/// [`ENSURE_RESOURCE`], as text or prepared (the hot paths keep it prepared: a statement given
/// as text costs one more round trip, to be parsed).
pub(super) fn ensure_resource_by<T: ?Sized + postgres::ToStatement>(
    client: &mut impl postgres::GenericClient,
    statement: &T,
    key: &ResourceKey,
) -> Result<i64, postgres::Error> {
    let params: [&(dyn postgres::types::ToSql + Sync); 3] =
        [&key.instance, &key.resource, &key.path_params];
    loop {
        if let Some(row) = client.query_opt(statement, &params)? {
            return Ok(row.get(0));
        }
        // Another node inserted it in a transaction that committed after this statement's
        // snapshot: the next statement sees it.
    }
}

impl PgStore {
    /// Connects to the database of `settings` and checks its schema: an empty database (or one
    /// below this version) is migrated when `migrate`, else refused with
    /// [`StateError::Unmigrated`]; a newer one with [`StateError::NewerSchema`]; another
    /// program's with [`StateError::ForeignDatabase`]. The store's node is
    /// [`NodeId::generate`]d; [`PgStore::set_node`] changes it.
    pub fn connect(settings: &PgSettings, migrate: bool) -> Result<PgStore, StateError> {
        let location = settings.location.clone();
        let actor = Actor::start(settings.clone());
        let found = actor.call(|session| session.run(schema::inspect))?;
        let unmigrated = |found| StateError::Unmigrated {
            location: location.clone(),
            found,
            current: schema::CURRENT_VERSION,
        };
        match found {
            schema::Found::Foreign => {
                return Err(StateError::ForeignDatabase { location });
            }
            schema::Found::Ocpoll(found) if found > schema::CURRENT_VERSION => {
                return Err(newer(&location, found));
            }
            schema::Found::Ocpoll(found) if found == schema::CURRENT_VERSION => {}
            schema::Found::Ocpoll(found) if !migrate => return Err(unmigrated(found)),
            schema::Found::Empty if !migrate => return Err(unmigrated(0)),
            _ => {
                run_migrations(&actor, &location)?;
            }
        }
        Ok(PgStore {
            actor,
            location,
            node: NodeId::generate(),
        })
    }

    /// `ocpoll state migrate`: brings the database's schema to this version. Returns the
    /// version found and the version now.
    pub fn migrate(settings: &PgSettings) -> Result<(u32, u32), StateError> {
        let actor = Actor::start(settings.clone());
        run_migrations(&actor, &settings.location)
    }

    /// The database's URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The node whose polls this store stages (see `discard_unfinished_polls`).
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Makes this store's polls `node`'s: the daemon passes the id it claims leases with.
    pub fn set_node(&mut self, node: NodeId) {
        self.node = node;
    }

    /// Never anything: a PostgreSQL database is not a file this process can find damaged.
    pub fn corruption(&self) -> Option<String> {
        None
    }

    /// The store behind a mutex shared by several tasks (as [`super::Store::locked`]).
    pub fn locked(store: &std::sync::Mutex<PgStore>) -> std::sync::MutexGuard<'_, PgStore> {
        store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `write`: PostgreSQL commits are durable already (no group commit to defer).
    pub fn relaxed<T>(&mut self, write: impl FnOnce(&mut PgStore) -> T) -> T {
        write(self)
    }

    /// Nothing to do: every commit was durable when it returned.
    pub fn sync(&self) -> Result<(), StateError> {
        Ok(())
    }

    /// Nothing to do (see [`PgStore::sync`]).
    pub fn sync_relaxed(&self) -> Result<(), StateError> {
        Ok(())
    }

    /// Runs `job` on the connection's thread.
    fn call<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Session) -> Result<R, StateError> + Send + 'static,
    ) -> Result<R, StateError> {
        self.actor.call(job)
    }

    /// The state of one resource, or None when it was never polled.
    pub fn resource_state(&self, key: &ResourceKey) -> Result<Option<ResourceState>, StateError> {
        let key = key.clone();
        self.call(move |session| {
            let statement = session.prepare(
                "SELECT watermark, last_poll_at, last_result, last_error, next_due_at,
                        records_read, events
                 FROM resource_state WHERE instance = $1 AND resource = $2 AND path_params = $3",
            )?;
            let row = session.run(|client| {
                client.query_opt(
                    &statement,
                    &[&key.instance, &key.resource, &key.path_params],
                )
            })?;
            row.map(|row| read_resource_state(&row, 0)).transpose()
        })
    }

    /// The (record id, updated nanos) pairs kept near the watermark of `key`.
    pub fn seen_pairs(&self, key: &ResourceKey) -> Result<HashSet<(String, i64)>, StateError> {
        let key = key.clone();
        self.call(move |session| {
            let statement = session.prepare(
                "SELECT s.record_id, s.updated FROM seen_pair s
                 JOIN resource_state r ON r.id = s.resource_id
                 WHERE r.instance = $1 AND r.resource = $2 AND r.path_params = $3",
            )?;
            let rows = session.run(|client| {
                client.query(
                    &statement,
                    &[&key.instance, &key.resource, &key.path_params],
                )
            })?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    /// Window mode: the (id, content hash) pairs the window remembers.
    pub fn window_pairs(&self, key: &ResourceKey) -> Result<HashSet<(String, String)>, StateError> {
        let key = key.clone();
        self.call(move |session| {
            let statement = session.prepare(
                "SELECT w.record_id, w.hash FROM window_pair w
                 JOIN resource_state r ON r.id = w.resource_id
                 WHERE r.instance = $1 AND r.resource = $2 AND r.path_params = $3",
            )?;
            let rows = session.run(|client| {
                client.query(
                    &statement,
                    &[&key.instance, &key.resource, &key.path_params],
                )
            })?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    /// Snapshot mode: the content hash stored for `record_id` by the previous committed poll.
    pub fn snapshot_hash(
        &self,
        key: &ResourceKey,
        record_id: &str,
    ) -> Result<Option<String>, StateError> {
        Ok(self.snapshot_hashes(key, &[record_id])?.remove(record_id))
    }

    /// Snapshot mode: the stored hashes of those of `record_ids` the previous poll saw (one
    /// statement for the page).
    pub fn snapshot_hashes(
        &self,
        key: &ResourceKey,
        record_ids: &[&str],
    ) -> Result<HashMap<String, String>, StateError> {
        let key = key.clone();
        let ids: Vec<String> = record_ids.iter().map(|id| (*id).to_owned()).collect();
        self.call(move |session| {
            let statement = session.prepare(
                "SELECT i.record_id, i.hash FROM snapshot_item i
                 JOIN resource_state r ON r.id = i.resource_id
                 WHERE r.instance = $1 AND r.resource = $2 AND r.path_params = $3
                   AND i.record_id = ANY($4::text[])",
            )?;
            let rows = session.run(|client| {
                client.query(
                    &statement,
                    &[&key.instance, &key.resource, &key.path_params, &ids],
                )
            })?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    /// Every resource the state knows, ordered by instance, resource and pathParams.
    pub fn statuses(&self) -> Result<Vec<ResourceStatusRow>, StateError> {
        self.call(|session| {
            let rows = session.run(|client| {
                client.query(
                    &format!(
                        "SELECT instance, resource, path_params, {RESOURCE_STATE_COLUMNS}
                         FROM resource_state ORDER BY instance, resource, path_params"
                    ),
                    &[],
                )
            })?;
            rows.iter()
                .map(|row| {
                    Ok(ResourceStatusRow {
                        key: ResourceKey {
                            instance: row.get(0),
                            resource: row.get(1),
                            path_params: row.get(2),
                        },
                        state: read_resource_state(row, 3)?,
                    })
                })
                .collect()
        })
    }

    /// Every instance name with anything in the state (resources, outbox, tokens), sorted.
    pub fn instances_with_state(&self) -> Result<Vec<String>, StateError> {
        self.call(|session| {
            let rows = session.run(|client| {
                client.query(
                    "SELECT instance FROM resource_state
                     UNION SELECT instance FROM outbox
                     UNION SELECT instance FROM oauth_token
                     ORDER BY instance",
                    &[],
                )
            })?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    /// `ocpoll state reset` (see the SQLite store): forgets or sets the watermark of every
    /// pathParams value of `resource` (or of every resource of the instance). Returns how many
    /// resources changed.
    pub fn reset_watermark(
        &mut self,
        instance: &str,
        resource: Option<&str>,
        to: Option<DateTime<Utc>>,
    ) -> Result<usize, StateError> {
        let instance = instance.to_owned();
        let resource = resource.map(str::to_owned);
        let to = encode_opt(to);
        self.call(move |session| {
            session.run(|client| {
                let mut tx = client.transaction()?;
                const MATCHING: &str = "SELECT id FROM resource_state
                     WHERE instance = $1 AND ($2::text IS NULL OR resource = $2)";
                let mut tables = vec!["seen_pair", "window_pair"];
                if to.is_none() {
                    tables.push("snapshot_item");
                }
                for table in tables {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE resource_id IN ({MATCHING})"),
                        &[&instance, &resource],
                    )?;
                }
                let changed = tx.execute(
                    "UPDATE resource_state SET watermark = $3
                     WHERE instance = $1 AND ($2::text IS NULL OR resource = $2)",
                    &[&instance, &resource, &to],
                )?;
                tx.commit()?;
                Ok(changed as usize)
            })
        })
    }

    /// `ocpoll state forget`: everything of an instance, its outbox and leases included. Its
    /// OAuth grant record stays, as with SQLite (a code already sent is never sent again).
    pub fn forget_instance(&mut self, instance: &str) -> Result<(), StateError> {
        let instance = instance.to_owned();
        self.call(move |session| {
            session.run(|client| {
                let mut tx = client.transaction()?;
                // Seen pairs, snapshots, polls, staging and poll leases go by ON DELETE CASCADE.
                for table in [
                    "resource_state",
                    "outbox",
                    "oauth_token",
                    "webhook_token",
                    "webhook_receipt",
                    "webhook_status",
                    "delivery_lease",
                    "instance_config",
                ] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE instance = $1"),
                        &[&instance],
                    )?;
                }
                tx.commit()
            })
        })
    }
}

fn newer(location: &str, found: u32) -> StateError {
    StateError::NewerSchema {
        path: std::path::PathBuf::from(location),
        found,
        supported: schema::CURRENT_VERSION,
    }
}

fn run_migrations(actor: &Actor, location: &str) -> Result<(u32, u32), StateError> {
    let migrated = actor.call(|session| {
        session.run(|client| {
            let mut tx = client.transaction()?;
            let migrated = schema::migrate(&mut tx)?;
            if matches!(migrated, schema::Migrated::Done(..)) {
                tx.commit()?;
            }
            Ok(migrated)
        })
    })?;
    match migrated {
        schema::Migrated::Done(from, to) => Ok((from, to)),
        schema::Migrated::Newer(found) => Err(newer(location, found)),
        schema::Migrated::Foreign => Err(StateError::ForeignDatabase {
            location: location.to_owned(),
        }),
    }
}

impl PgStore {
    /// One small durable write, for `/healthz`: the connection works and the server takes a
    /// write (a standby, a read-only database or a full disk refuse it). It rewrites the
    /// schema row with its own values: one row, no change in meaning.
    pub fn check_writable(&self) -> Result<(), StateError> {
        self.call(|session| {
            session
                .run(|client| client.batch_execute("UPDATE ocpoll_schema SET version = version"))?;
            Ok(())
        })
    }

    /// Nothing to report: PostgreSQL checks its own pages (`amcheck` is the operator's tool).
    pub fn integrity_check(&self) -> Result<Vec<String>, StateError> {
        Ok(Vec::new())
    }
}
