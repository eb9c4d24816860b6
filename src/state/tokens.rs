//! Stored OAuth tokens: the `oauth_token` table, and [`StateTokens`], the
//! [`TokenStore`](crate::http::TokenStore) that keeps an [`AuthSession`](crate::http::AuthSession)'s
//! refreshed tokens in the state file.
//!
//! `oauth_grant` keeps the rest of a grant's story (docs/design.md#oauth-grants): the hash of
//! the `providerData.code` already sent, the last token request's result, and whether the
//! provider revoked the grant (`invalid_grant`), which stops the instance's polls until
//! `ocpoll auth` stores new tokens.
//!
//! A token is filed under a hash of the credentials it came from (see
//! [`crate::http::auth::credentials_hash`]); a lost one (a crash before its write, a failed save)
//! costs one refresh, nothing more.

use std::sync::{Arc, Mutex};

use rusqlite::{OptionalExtension, params};

use super::StateError;
use super::sqlite::{SqliteStore, encode_time, time_column};
use crate::http::{GrantEvent, GrantRecord, StoredToken, TokenStore};
use crate::instance::Secret;

impl SqliteStore {
    /// The token stored for `instance`, if it came from the credentials hashed as
    /// `credentials_hash`. A token from other credentials is deleted (docs/design.md#state: the instance file's
    /// credentials changed, so the old token must not be used) and None returned.
    pub fn oauth_token(
        &self,
        instance: &str,
        credentials_hash: &str,
    ) -> Result<Option<StoredToken>, StateError> {
        self.conn
            .execute(
                "DELETE FROM oauth_token WHERE instance = ?1 AND credentials_hash <> ?2",
                params![instance, credentials_hash],
            )
            .map_err(|e| self.fail(e))?;
        self.conn
            .query_row(
                "SELECT access_token, refresh_token, expires_at FROM oauth_token WHERE instance = ?1",
                [instance],
                |row| {
                    Ok(StoredToken {
                        access_token: Secret::new(row.get::<_, String>(0)?),
                        refresh_token: row.get::<_, Option<String>>(1)?.map(Secret::new),
                        expires_at: time_column(row, 2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// Stores (or replaces) the token of `instance`.
    pub fn save_oauth_token(
        &self,
        instance: &str,
        credentials_hash: &str,
        token: &StoredToken,
    ) -> Result<(), StateError> {
        save_token(&self.conn, instance, credentials_hash, token).map_err(|e| self.fail(e))
    }
}

fn save_token(
    conn: &rusqlite::Connection,
    instance: &str,
    credentials_hash: &str,
    token: &StoredToken,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO oauth_token
             (instance, credentials_hash, access_token, refresh_token, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (instance) DO UPDATE SET credentials_hash = excluded.credentials_hash,
             access_token = excluded.access_token, refresh_token = excluded.refresh_token,
             expires_at = excluded.expires_at",
        params![
            instance,
            credentials_hash,
            // Leaves for its destination: the state file (0600).
            token.access_token.expose(),
            token.refresh_token.as_ref().map(Secret::expose),
            token.expires_at.as_ref().map(encode_time)
        ],
    )?;
    Ok(())
}

/// OAuth tokens in the state file, for [`AuthSession`](crate::http::AuthSession).
pub struct StateTokens(pub Arc<Mutex<super::Store>>);

impl TokenStore for StateTokens {
    fn load(&self, instance: &str, credentials_hash: &str) -> Option<StoredToken> {
        super::Store::locked(&self.0)
            .oauth_token(instance, credentials_hash)
            .ok()?
    }

    fn save(&self, instance: &str, credentials_hash: &str, token: &StoredToken) {
        // A token that cannot be saved costs one refresh on the next run, nothing more.
        let _ = super::Store::locked(&self.0).save_oauth_token(instance, credentials_hash, token);
    }

    fn grant(&self, instance: &str, credentials_hash: &str) -> GrantRecord {
        super::Store::locked(&self.0)
            .oauth_grant(instance, credentials_hash)
            .unwrap_or_default()
    }

    fn record(
        &self,
        instance: &str,
        credentials_hash: &str,
        event: &GrantEvent,
        token: Option<&StoredToken>,
    ) {
        // Like `save`: a lost record costs at most one more token request.
        let _ =
            super::Store::locked(&self.0).record_grant(instance, credentials_hash, event, token);
    }
}

/// The grant bookkeeping of `oauth_grant` (docs/design.md#oauth-grants).
impl SqliteStore {
    /// What the state remembers of `instance`'s grant. Refresh results recorded under other
    /// credentials are not returned (the file's credentials changed since); the used code is,
    /// whatever the credentials, so that a code is never sent twice.
    pub fn oauth_grant(
        &self,
        instance: &str,
        credentials_hash: &str,
    ) -> Result<GrantRecord, StateError> {
        let row = self
            .conn
            .query_row(
                "SELECT credentials_hash, code_hash, code_rejected, last_token_at,
                        last_token_result, revoked_at
                 FROM oauth_grant WHERE instance = ?1",
                [instance],
                |row| {
                    let same = row.get::<_, String>(0)? == credentials_hash;
                    Ok(GrantRecord {
                        code_hash: row.get(1)?,
                        code_rejected: row.get(2)?,
                        last_token_at: if same { time_column(row, 3)? } else { None },
                        last_token_result: if same { row.get(4)? } else { None },
                        revoked_at: if same { time_column(row, 5)? } else { None },
                    })
                },
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        Ok(row.unwrap_or_default())
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
        let now = encode_time(&chrono::Utc::now());
        let txn = self.write_txn()?;
        txn.execute(
            "INSERT INTO oauth_grant (instance, credentials_hash) VALUES (?1, ?2)
             ON CONFLICT (instance) DO UPDATE SET credentials_hash = excluded.credentials_hash,
                 last_token_result = CASE WHEN credentials_hash = excluded.credentials_hash
                     THEN last_token_result END,
                 last_token_at = CASE WHEN credentials_hash = excluded.credentials_hash
                     THEN last_token_at END,
                 revoked_at = CASE WHEN credentials_hash = excluded.credentials_hash
                     THEN revoked_at END",
            params![instance, credentials_hash],
        )
        .map_err(|e| txn.fail(e))?;
        let revoked = matches!(event, GrantEvent::Revoked { .. }).then_some(now.as_str());
        txn.execute(
            "UPDATE oauth_grant SET last_token_at = ?2, last_token_result = ?3, revoked_at = ?4
             WHERE instance = ?1",
            params![instance, now, event.summary(), revoked],
        )
        .map_err(|e| txn.fail(e))?;
        if let Some((code_hash, rejected)) = event.code() {
            txn.execute(
                "UPDATE oauth_grant SET code_hash = ?2, code_rejected = ?3 WHERE instance = ?1",
                params![instance, code_hash, rejected],
            )
            .map_err(|e| txn.fail(e))?;
        }
        if revoked.is_some() {
            txn.execute("DELETE FROM oauth_token WHERE instance = ?1", [instance])
                .map_err(|e| txn.fail(e))?;
        }
        if let Some(token) = token {
            save_token(&txn, instance, credentials_hash, token).map_err(|e| txn.fail(e))?;
        }
        txn.commit()
    }

    /// Per instance, for `status`: whether a token is stored and when it expires, and the
    /// grant's record. Never the tokens themselves.
    pub fn oauth_overview(&self) -> Result<Vec<TokenOverview>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT instance, 1, expires_at, refresh_token IS NOT NULL FROM oauth_token
                 UNION ALL
                 SELECT instance, 0, NULL, 0 FROM oauth_grant
                 WHERE instance NOT IN (SELECT instance FROM oauth_token)
                 ORDER BY 1",
            )
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok(TokenOverview {
                    instance: row.get(0)?,
                    has_token: row.get(1)?,
                    expires_at: time_column(row, 2)?,
                    has_refresh_token: row.get(3)?,
                    grant: GrantRecord::default(),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.fail(e))?;
        rows.into_iter()
            .map(|mut row| {
                row.grant = self.grant_any_credentials(&row.instance)?;
                Ok(row)
            })
            .collect()
    }

    /// The grant row as stored, whatever credentials it was recorded under.
    fn grant_any_credentials(&self, instance: &str) -> Result<GrantRecord, StateError> {
        let hash: Option<String> = self
            .conn
            .query_row(
                "SELECT credentials_hash FROM oauth_grant WHERE instance = ?1",
                [instance],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        match hash {
            Some(hash) => self.oauth_grant(instance, &hash),
            None => Ok(GrantRecord::default()),
        }
    }
}

/// One instance's OAuth standing, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenOverview {
    pub instance: String,
    pub has_token: bool,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub has_refresh_token: bool,
    pub grant: GrantRecord,
}
