//! Leases in PostgreSQL (issue 18): which node polls a resource (`poll_lease`), which delivers
//! an instance's outbox head (`delivery_lease`), and the newest instance file any node has read
//! (`instance_config`).
//!
//! What it owns: the claim protocol, the River/Oban pattern. A claim is one short transaction:
//! the lease row is created if missing (`INSERT ... ON CONFLICT DO NOTHING`) and then locked
//! with `SELECT ... FOR UPDATE SKIP LOCKED`: a row another node is claiming right now is
//! skipped (answered `Held`) instead of waited for. An unexpired lease of another node is
//! `Held`; otherwise this node takes it until `now + lease`. A node that dies stops renewing,
//! and its leases expire: the next claim by another node is a `takeover`.
//!
//! Expiry is compared against the `now` the caller passes (its clock, like every other time the
//! store is given), never the database's: the nodes' clocks must agree to well within a lease
//! (NTP gives milliseconds against a 30 s lease), and tests are deterministic.
//!
//! The instance file: each claim records the node's [`ConfigVersion`] of the instance, keeping
//! the newest (greatest modification time; equal times with different hashes: the greater hash,
//! so every node agrees). A node whose copy is not the newest gets `StaleConfig`, and polls
//! nothing of that instance until it reads the newer file.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::super::lease::{
    ConfigVersion, DeliveryClaim, LeaseCounts, NodeId, PollClaim, lease_until,
};
use super::super::{ResourceKey, StateError, encode_time};
use super::{ENSURE_RESOURCE, PgStore, ensure_resource_by, parse_time};

/// Whether a claim respects the resource's next due time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Due {
    Wait,
    Now,
}

/// What a lease row said when it was read.
enum LeaseRow {
    /// Another transaction holds the row: someone is claiming it right now.
    Locked,
    Free {
        /// The previous holder and its expiry, if any.
        holder: Option<(String, String)>,
    },
}

fn lease_state(row: Option<postgres::Row>) -> LeaseRow {
    match row {
        None => LeaseRow::Locked,
        Some(row) => {
            let node: Option<String> = row.get(0);
            let until: Option<String> = row.get(1);
            LeaseRow::Free {
                holder: node.zip(until),
            }
        }
    }
}

/// Who holds a row another transaction has locked, as far as a plain read tells.
fn held_by<T: ?Sized + postgres::ToStatement>(
    client: &mut impl postgres::GenericClient,
    sql: &T,
    key: &(dyn postgres::types::ToSql + Sync),
    now: &str,
) -> Result<(String, String), postgres::Error> {
    let row = client.query_opt(sql, &[key])?;
    let (node, until) = row
        .map(|row| {
            (
                row.get::<_, Option<String>>(0),
                row.get::<_, Option<String>>(1),
            )
        })
        .unwrap_or_default();
    Ok((
        node.unwrap_or_else(|| "another node (claiming it now)".to_owned()),
        until.unwrap_or_else(|| now.to_owned()),
    ))
}

/// Whether a lease row another transaction has locked right now (another node claiming it) is
/// still `node`'s own, unexpired: then `node` keeps it (its renewal extends it) rather than
/// taking itself for a stranger and giving its work up.
fn still_ours(held: &(String, String), node: &str, now: &str) -> bool {
    held.0 == node && held.1.as_str() > now
}

/// The answer for a lease whose previous holder is `holder`: held by another live node, or
/// free (with whether taking it is a takeover).
fn judge(
    holder: &Option<(String, String)>,
    node: &str,
    now: &str,
) -> Result<bool, (String, String)> {
    match holder {
        Some((other, until)) if other != node && until.as_str() > now => {
            Err((other.clone(), until.clone()))
        }
        Some((other, _)) => Ok(other != node),
        None => Ok(false),
    }
}

impl PgStore {
    /// Claims the poll of `key` for `node` until `now + lease` (see the module notes).
    pub fn claim_poll(
        &mut self,
        key: &ResourceKey,
        node: &NodeId,
        config: &ConfigVersion,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<PollClaim, StateError> {
        self.claim(key, node, config, (lease, now), Due::Wait)
    }

    /// [`PgStore::claim_poll`] for a poll asked for now (`tick --all`): never `NotDue`, still
    /// `Held` while another node polls it.
    pub fn claim_poll_now(
        &mut self,
        key: &ResourceKey,
        node: &NodeId,
        config: &ConfigVersion,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<PollClaim, StateError> {
        self.claim(key, node, config, (lease, now), Due::Now)
    }

    /// The claims' statements are prepared once per connection ((`Session::prepare`)):
    /// a statement sent as text is parsed again at every call, one more round trip each, and
    /// these run for every poll and every send.
    fn claim(
        &mut self,
        key: &ResourceKey,
        node: &NodeId,
        config: &ConfigVersion,
        (lease, now): (Duration, DateTime<Utc>),
        due: Due,
    ) -> Result<PollClaim, StateError> {
        let key = key.clone();
        let node = node.0.clone();
        let hash = config.hash.clone();
        let modified = encode_time(&config.modified);
        let until = encode_time(&lease_until(now, lease));
        let now = encode_time(&now);
        enum Answer {
            Claim(PollClaim),
            Held(String, String),
            NotDue(String),
        }
        let answer = self.call(move |session| {
            let newest_version = session
                .prepare("SELECT hash, modified FROM instance_config WHERE instance = $1")?;
            let record_version = session.prepare(
                "INSERT INTO instance_config AS c (instance, hash, modified, seen_by, seen_at)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (instance) DO UPDATE SET hash = excluded.hash,
                             modified = excluded.modified, seen_by = excluded.seen_by,
                             seen_at = excluded.seen_at
                         WHERE (excluded.modified, excluded.hash) > (c.modified, c.hash)",
            )?;
            let read_newest_hash =
                session.prepare("SELECT hash FROM instance_config WHERE instance = $1")?;
            let create_lease = session.prepare(
                "INSERT INTO poll_lease (resource_id) VALUES ($1) ON CONFLICT DO NOTHING",
            )?;
            let lock_lease = session.prepare(
                "SELECT node, expires_at FROM poll_lease WHERE resource_id = $1
                     FOR UPDATE SKIP LOCKED",
            )?;
            let read_lease = session
                .prepare("SELECT node, expires_at FROM poll_lease WHERE resource_id = $1")?;
            let next_due =
                session.prepare("SELECT next_due_at FROM resource_state WHERE id = $1")?;
            let take_lease = session.prepare(
                "UPDATE poll_lease SET node = $2, expires_at = $3, config_hash = $4
                     WHERE resource_id = $1",
            )?;
            let find_or_add_resource = session.prepare(ENSURE_RESOURCE)?;
            session.run(|client| {
                let mut tx = client.transaction()?;
                // The newest copy of the instance file wins.
                let newest = tx.query_opt(&newest_version, &[&key.instance])?;
                let ours_newer = match &newest {
                    None => true,
                    Some(row) => {
                        (modified.as_str(), hash.as_str())
                            > (row.get::<_, &str>(1), row.get::<_, &str>(0))
                    }
                };
                if ours_newer {
                    tx.execute(
                        &record_version,
                        &[&key.instance, &hash, &modified, &node, &now],
                    )?;
                }
                let newest_hash: String = tx.query_one(&read_newest_hash, &[&key.instance])?.get(0);
                if newest_hash != hash {
                    tx.commit()?;
                    return Ok(Answer::Claim(PollClaim::StaleConfig { newest_hash }));
                }
                let resource_id = ensure_resource_by(&mut tx, &find_or_add_resource, &key)?;
                tx.execute(&create_lease, &[&resource_id])?;
                let row = tx.query_opt(&lock_lease, &[&resource_id])?;
                let holder = match lease_state(row) {
                    LeaseRow::Locked => {
                        let held = held_by(&mut tx, &read_lease, &resource_id, &now)?;
                        tx.commit()?;
                        if still_ours(&held, &node, &now) {
                            return Ok(Answer::Claim(PollClaim::Granted { takeover: false }));
                        }
                        return Ok(Answer::Held(held.0, held.1));
                    }
                    LeaseRow::Free { holder } => holder,
                };
                let takeover = match judge(&holder, &node, &now) {
                    Ok(takeover) => takeover,
                    Err((other, until)) => {
                        tx.commit()?;
                        return Ok(Answer::Held(other, until));
                    }
                };
                let next_due: Option<String> = tx.query_one(&next_due, &[&resource_id])?.get(0);
                let waits = |next: &String| due == Due::Wait && next.as_str() > now.as_str();
                if let Some(next_due) = next_due.filter(waits) {
                    tx.commit()?;
                    return Ok(Answer::NotDue(next_due));
                }
                tx.execute(&take_lease, &[&resource_id, &node, &until, &hash])?;
                tx.commit()?;
                Ok(Answer::Claim(PollClaim::Granted { takeover }))
            })
        })?;
        Ok(match answer {
            Answer::Claim(claim) => claim,
            Answer::Held(node, until) => PollClaim::Held {
                node,
                until: parse_time(Some(until))?.unwrap_or_default(),
            },
            Answer::NotDue(next) => PollClaim::NotDue {
                next_due_at: parse_time(Some(next))?.unwrap_or_default(),
            },
        })
    }

    /// Gives the poll lease of `key` back (if `node` still holds it).
    pub fn release_poll(&mut self, key: &ResourceKey, node: &NodeId) -> Result<(), StateError> {
        let key = key.clone();
        let node = node.0.clone();
        self.call(move |session| {
            session
                .exec(
                    "UPDATE poll_lease SET node = NULL, expires_at = NULL
                     WHERE node = $4 AND resource_id = (SELECT id FROM resource_state
                         WHERE instance = $1 AND resource = $2 AND path_params = $3)",
                    &[&key.instance, &key.resource, &key.path_params, &node],
                )
                .map(drop)
        })
    }

    /// Claims delivery of `instance`'s outbox for `node` until `now + lease`.
    pub fn claim_delivery(
        &mut self,
        instance: &str,
        node: &NodeId,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<DeliveryClaim, StateError> {
        let instance = instance.to_owned();
        let node = node.0.clone();
        let until = encode_time(&lease_until(now, lease));
        let now = encode_time(&now);
        let answer = self.call(move |session| {
            let create_lease = session.prepare(
                "INSERT INTO delivery_lease (instance) VALUES ($1) ON CONFLICT DO NOTHING",
            )?;
            let lock_lease = session.prepare(
                "SELECT node, expires_at FROM delivery_lease WHERE instance = $1
                     FOR UPDATE SKIP LOCKED",
            )?;
            let read_lease = session
                .prepare("SELECT node, expires_at FROM delivery_lease WHERE instance = $1")?;
            let take_lease = session.prepare(
                "UPDATE delivery_lease SET node = $2, expires_at = $3 WHERE instance = $1",
            )?;
            session.run(|client| {
                let mut tx = client.transaction()?;
                tx.execute(&create_lease, &[&instance])?;
                let row = tx.query_opt(&lock_lease, &[&instance])?;
                let holder = match lease_state(row) {
                    LeaseRow::Locked => {
                        let held = held_by(&mut tx, &read_lease, &instance, &now)?;
                        tx.commit()?;
                        if still_ours(&held, &node, &now) {
                            return Ok(Ok(false));
                        }
                        return Ok(Err(held));
                    }
                    LeaseRow::Free { holder } => holder,
                };
                let takeover = match judge(&holder, &node, &now) {
                    Ok(takeover) => takeover,
                    Err(held) => {
                        tx.commit()?;
                        return Ok(Err(held));
                    }
                };
                tx.execute(&take_lease, &[&instance, &node, &until])?;
                tx.commit()?;
                Ok(Ok(takeover))
            })
        })?;
        Ok(match answer {
            Ok(takeover) => DeliveryClaim::Granted { takeover },
            Err((node, until)) => DeliveryClaim::Held {
                node,
                until: parse_time(Some(until))?.unwrap_or_default(),
            },
        })
    }

    /// Gives the delivery lease of `instance` back (if `node` still holds it).
    pub fn release_delivery(&mut self, instance: &str, node: &NodeId) -> Result<(), StateError> {
        let instance = instance.to_owned();
        let node = node.0.clone();
        self.call(move |session| {
            session
                .exec(
                    "UPDATE delivery_lease SET node = NULL, expires_at = NULL
                     WHERE instance = $1 AND node = $2",
                    &[&instance, &node],
                )
                .map(drop)
        })
    }

    /// Extends every lease `node` holds to `now + lease`; returns what it still holds (a lease
    /// another node took over is not extended).
    pub fn renew_leases(
        &mut self,
        node: &NodeId,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<LeaseCounts, StateError> {
        let node = node.0.clone();
        let until = encode_time(&lease_until(now, lease));
        self.call(move |session| {
            session.run(|client| {
                let mut tx = client.transaction()?;
                let polls = tx.execute(
                    "UPDATE poll_lease SET expires_at = $2 WHERE node = $1",
                    &[&node, &until],
                )?;
                let deliveries = tx.execute(
                    "UPDATE delivery_lease SET expires_at = $2 WHERE node = $1",
                    &[&node, &until],
                )?;
                tx.commit()?;
                Ok(LeaseCounts { polls, deliveries })
            })
        })
    }

    /// Whether `node` still holds the delivery lease of `instance` at `now`.
    pub fn holds_delivery(
        &mut self,
        instance: &str,
        node: &NodeId,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let instance = instance.to_owned();
        let node = node.0.clone();
        let now = encode_time(&now);
        self.call(move |session| {
            let statement = session.prepare(
                "SELECT 1 FROM delivery_lease WHERE instance = $1 AND node = $2 AND expires_at > $3",
            )?;
            session
                .run(|client| client.query_opt(&statement, &[&instance, &node, &now]))
                .map(|row| row.is_some())
        })
    }
}
