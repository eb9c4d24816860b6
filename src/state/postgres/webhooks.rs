//! The webhooks tables in PostgreSQL (see the SQLite store's `webhooks` module): URL tokens,
//! receipts kept for deduplication, and what `status` shows. [`PgStore::commit_receipts`] is
//! one transaction per group of receipts; it takes the instances' advisory locks (in name
//! order, so two nodes never wait on each other crosswise) before inserting notifications, so
//! the outbox's seq order stays commit order (see `outbox`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::super::{
    ReceiptOutcome, ReceiptWrite, StateError, StoredTokens, WebhookStatusRow, encode_time,
};
use super::{PgStore, outbox, parse_time, unsigned};
use crate::instance::Secret;

impl PgStore {
    /// Every instance's tokens (the listener's cache).
    pub fn webhook_tokens(&self) -> Result<Vec<(String, StoredTokens)>, StateError> {
        let rows = self.call(|session| {
            session.run(|client| {
                client.query(
                    "SELECT instance, token, previous_token, previous_until FROM webhook_token",
                    &[],
                )
            })
        })?;
        rows.iter()
            .map(|row| {
                let previous = match (row.get::<_, Option<String>>(2), parse_time(row.get(3))?) {
                    (Some(token), Some(until)) => Some((Secret::new(token), until)),
                    _ => None,
                };
                Ok((
                    row.get::<_, String>(0),
                    StoredTokens {
                        current: Secret::new(row.get::<_, String>(1)),
                        previous,
                    },
                ))
            })
            .collect()
    }

    /// The instance's token, stored as `fresh` when it has none yet.
    pub fn webhook_token_or_create(
        &mut self,
        instance: &str,
        fresh: &Secret,
        now: DateTime<Utc>,
    ) -> Result<Secret, StateError> {
        let instance = instance.to_owned();
        // Leaves for its destination: the database.
        let fresh = fresh.expose().to_owned();
        let now = encode_time(&now);
        let token: String = self.call(move |session| {
            session.run(|client| {
                let mut tx = client.transaction()?;
                tx.execute(
                    "INSERT INTO webhook_token (instance, token, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (instance) DO NOTHING",
                    &[&instance, &fresh, &now],
                )?;
                let token = tx
                    .query_one(
                        "SELECT token FROM webhook_token WHERE instance = $1",
                        &[&instance],
                    )?
                    .get(0);
                tx.commit()?;
                Ok(token)
            })
        })?;
        Ok(Secret::new(token))
    }

    /// Replaces the instance's token with `fresh`; the current one keeps working until
    /// `previous_until`.
    pub fn rotate_webhook_token(
        &mut self,
        instance: &str,
        fresh: &Secret,
        now: DateTime<Utc>,
        previous_until: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let instance = instance.to_owned();
        let fresh = fresh.expose().to_owned();
        let now = encode_time(&now);
        let until = encode_time(&previous_until);
        self.call(move |session| {
            session
                .run(|client| {
                    client.execute(
                        "INSERT INTO webhook_token AS t (instance, token, created_at)
                         VALUES ($1, $2, $3)
                         ON CONFLICT (instance) DO UPDATE SET
                             previous_token = t.token, previous_until = $4,
                             token = excluded.token, created_at = excluded.created_at",
                        &[&instance, &fresh, &now, &until],
                    )
                })
                .map(drop)
        })
    }

    /// Commits `receipts` in one transaction, in order; a receipt whose key is already kept
    /// adds nothing. On an error nothing of any of them is kept.
    pub fn commit_receipts(
        &mut self,
        receipts: &[ReceiptWrite],
    ) -> Result<Vec<ReceiptOutcome>, StateError> {
        let receipts = receipts.to_vec();
        self.call(move |session| {
            session.run(|client| {
                let mut tx = client.transaction()?;
                let instances: BTreeSet<&str> = receipts
                    .iter()
                    .flat_map(|receipt| receipt.notifications.iter())
                    .map(|notification| notification.instance.as_str())
                    .collect();
                for instance in instances {
                    outbox::lock_instance(&mut tx, instance)?;
                }
                let insert = tx.prepare(
                    "INSERT INTO webhook_receipt (instance, key, keep_until) VALUES ($1, $2, $3)
                     ON CONFLICT (instance, key) DO NOTHING",
                )?;
                let status = tx.prepare(
                    "INSERT INTO webhook_status AS s (instance, last_receipt_at, accepted, duplicates)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (instance) DO UPDATE SET last_receipt_at = excluded.last_receipt_at,
                         accepted = s.accepted + excluded.accepted,
                         duplicates = s.duplicates + excluded.duplicates",
                )?;
                let mut outcomes = Vec::with_capacity(receipts.len());
                for receipt in &receipts {
                    let fresh = tx.execute(
                        &insert,
                        &[
                            &receipt.instance,
                            &receipt.key,
                            &encode_time(&receipt.keep_until),
                        ],
                    )? == 1;
                    if fresh {
                        outbox::insert_notifications(&mut tx, &receipt.notifications)?;
                    }
                    tx.execute(
                        &status,
                        &[
                            &receipt.instance,
                            &encode_time(&receipt.received_at),
                            &i64::from(fresh),
                            &i64::from(!fresh),
                        ],
                    )?;
                    outcomes.push(if fresh {
                        ReceiptOutcome::Enqueued
                    } else {
                        ReceiptOutcome::Duplicate
                    });
                }
                tx.commit()?;
                Ok(outcomes)
            })
        })
    }

    /// Forgets receipts kept until before `now`; returns how many.
    pub fn trim_webhook_receipts(&mut self, now: DateTime<Utc>) -> Result<usize, StateError> {
        let now = encode_time(&now);
        self.call(move |session| {
            session
                .run(|client| {
                    client.execute("DELETE FROM webhook_receipt WHERE keep_until < $1", &[&now])
                })
                .map(|n| n as usize)
        })
    }

    /// Every instance with a token or a receipt, for `status`.
    pub fn webhook_statuses(&self) -> Result<Vec<WebhookStatusRow>, StateError> {
        let rows = self.call(|session| {
            session.run(|client| {
                client.query(
                    "SELECT i.instance, s.last_receipt_at, coalesce(s.accepted, 0),
                            coalesce(s.duplicates, 0), t.previous_until, t.token IS NOT NULL
                     FROM (SELECT instance FROM webhook_token
                           UNION SELECT instance FROM webhook_status) i
                     LEFT JOIN webhook_status s ON s.instance = i.instance
                     LEFT JOIN webhook_token t ON t.instance = i.instance
                     ORDER BY i.instance",
                    &[],
                )
            })
        })?;
        rows.iter()
            .map(|row| {
                Ok(WebhookStatusRow {
                    instance: row.get(0),
                    last_receipt_at: parse_time(row.get(1))?,
                    accepted: unsigned(row.get(2)),
                    duplicates: unsigned(row.get(3)),
                    previous_token_until: parse_time(row.get(4))?,
                    has_token: row.get(5),
                })
            })
            .collect()
    }

    /// Whether `instance` has a receipt kept under `key`.
    pub fn webhook_receipt_kept(&self, instance: &str, key: &str) -> Result<bool, StateError> {
        let instance = instance.to_owned();
        let key = key.to_owned();
        self.call(move |session| {
            session
                .run(|client| {
                    client.query_opt(
                        "SELECT 1 FROM webhook_receipt WHERE instance = $1 AND key = $2",
                        &[&instance, &key],
                    )
                })
                .map(|row| row.is_some())
        })
    }
}
