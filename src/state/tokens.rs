//! Stored OAuth tokens: the `oauth_token` table, and [`StateTokens`], the
//! [`TokenStore`](crate::http::TokenStore) that keeps an [`AuthSession`](crate::http::AuthSession)'s
//! refreshed tokens in the state file.
//!
//! A token is filed under a hash of the credentials it came from (see
//! [`crate::http::auth::credentials_hash`]); a lost one (a crash before its write, a failed save)
//! costs one refresh, nothing more.

use std::sync::{Arc, Mutex};

use rusqlite::{OptionalExtension, params};

use super::{StateError, Store, encode_time, time_column};
use crate::http::{StoredToken, TokenStore};
use crate::instance::Secret;

impl Store {
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
        self.conn
            .execute(
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
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }
}

/// OAuth tokens in the state file, for [`AuthSession`](crate::http::AuthSession).
pub struct StateTokens(pub Arc<Mutex<Store>>);

impl TokenStore for StateTokens {
    fn load(&self, instance: &str, credentials_hash: &str) -> Option<StoredToken> {
        Store::locked(&self.0)
            .oauth_token(instance, credentials_hash)
            .ok()?
    }

    fn save(&self, instance: &str, credentials_hash: &str, token: &StoredToken) {
        // A token that cannot be saved costs one refresh on the next run, nothing more.
        let _ = Store::locked(&self.0).save_oauth_token(instance, credentials_hash, token);
    }
}
