//! OAuth tokens and grants in PostgreSQL: the `oauth_token` and `oauth_grant` tables with the
//! SQLite store's meaning (see its `tokens` module: a token is filed under the hash of the
//! credentials it came from; a grant remembers the code already sent, the last token
//! request's result, and a revocation).

use std::sync::{Arc, Mutex};

use postgres::GenericClient;

use super::super::{StateError, TokenOverview, encode_time};
use super::{PgStore, encode_opt, parse_time};
use crate::http::{GrantEvent, GrantRecord, StoredToken, TokenStore};
use crate::instance::Secret;

fn save_token(
    client: &mut impl GenericClient,
    instance: &str,
    credentials_hash: &str,
    access_token: &str,
    refresh_token: Option<&str>,
    expires_at: Option<String>,
) -> Result<(), postgres::Error> {
    client.execute(
        "INSERT INTO oauth_token
             (instance, credentials_hash, access_token, refresh_token, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (instance) DO UPDATE SET credentials_hash = excluded.credentials_hash,
             access_token = excluded.access_token, refresh_token = excluded.refresh_token,
             expires_at = excluded.expires_at",
        &[
            &instance,
            &credentials_hash,
            &access_token,
            &refresh_token,
            &expires_at,
        ],
    )?;
    Ok(())
}

/// A token's columns, owned, for a job.
struct TokenColumns {
    access: String,
    refresh: Option<String>,
    expires_at: Option<String>,
}

impl TokenColumns {
    fn of(token: &StoredToken) -> TokenColumns {
        TokenColumns {
            // Leaves for its destination: the database.
            access: token.access_token.expose().to_owned(),
            refresh: token.refresh_token.as_ref().map(|t| t.expose().to_owned()),
            expires_at: encode_opt(token.expires_at),
        }
    }
}

fn read_grant(row: &postgres::Row, credentials_hash: &str) -> Result<GrantRecord, StateError> {
    let same = row.get::<_, String>(0) == credentials_hash;
    Ok(GrantRecord {
        code_hash: row.get(1),
        code_rejected: row.get(2),
        last_token_at: if same { parse_time(row.get(3))? } else { None },
        last_token_result: if same { row.get(4) } else { None },
        revoked_at: if same { parse_time(row.get(5))? } else { None },
    })
}

const GRANT_COLUMNS: &str = "SELECT credentials_hash, code_hash, code_rejected, last_token_at,
        last_token_result, revoked_at FROM oauth_grant WHERE instance = $1";

impl PgStore {
    /// The token stored for `instance` if it came from the credentials hashed as
    /// `credentials_hash`; a token from other credentials is deleted and None returned.
    pub fn oauth_token(
        &self,
        instance: &str,
        credentials_hash: &str,
    ) -> Result<Option<StoredToken>, StateError> {
        let instance = instance.to_owned();
        let credentials_hash = credentials_hash.to_owned();
        let row = self.call(move |session| {
            session.run(|client| {
                client.execute(
                    "DELETE FROM oauth_token WHERE instance = $1 AND credentials_hash <> $2",
                    &[&instance, &credentials_hash],
                )?;
                client.query_opt(
                    "SELECT access_token, refresh_token, expires_at FROM oauth_token
                     WHERE instance = $1",
                    &[&instance],
                )
            })
        })?;
        row.map(|row| {
            Ok(StoredToken {
                access_token: Secret::new(row.get::<_, String>(0)),
                refresh_token: row.get::<_, Option<String>>(1).map(Secret::new),
                expires_at: parse_time(row.get(2))?,
            })
        })
        .transpose()
    }

    /// Stores (or replaces) the token of `instance`.
    pub fn save_oauth_token(
        &self,
        instance: &str,
        credentials_hash: &str,
        token: &StoredToken,
    ) -> Result<(), StateError> {
        let instance = instance.to_owned();
        let credentials_hash = credentials_hash.to_owned();
        let token = TokenColumns::of(token);
        self.call(move |session| {
            session.run(|client| {
                save_token(
                    client,
                    &instance,
                    &credentials_hash,
                    &token.access,
                    token.refresh.as_deref(),
                    token.expires_at,
                )
            })
        })
    }

    /// What the state remembers of `instance`'s grant (see the SQLite store).
    pub fn oauth_grant(
        &self,
        instance: &str,
        credentials_hash: &str,
    ) -> Result<GrantRecord, StateError> {
        let instance = instance.to_owned();
        let row = self.call(move |session| {
            session.run(|client| client.query_opt(GRANT_COLUMNS, &[&instance]))
        })?;
        match row {
            Some(row) => read_grant(&row, credentials_hash),
            None => Ok(GrantRecord::default()),
        }
    }

    /// Records a token request's outcome, saving `token` in the same transaction.
    pub fn record_grant(
        &mut self,
        instance: &str,
        credentials_hash: &str,
        event: &GrantEvent,
        token: Option<&StoredToken>,
    ) -> Result<(), StateError> {
        let now = encode_time(&chrono::Utc::now());
        let instance = instance.to_owned();
        let credentials_hash = credentials_hash.to_owned();
        let summary = event.summary();
        let revoked = matches!(event, GrantEvent::Revoked { .. }).then(|| now.clone());
        let code = event
            .code()
            .map(|(hash, rejected)| (hash.to_owned(), rejected));
        let token = token.map(TokenColumns::of);
        self.call(move |session| {
            session.run(|client| {
                let mut tx = client.transaction()?;
                tx.execute(
                    "INSERT INTO oauth_grant AS g (instance, credentials_hash) VALUES ($1, $2)
                     ON CONFLICT (instance) DO UPDATE SET credentials_hash = excluded.credentials_hash,
                         last_token_result = CASE WHEN g.credentials_hash = excluded.credentials_hash
                             THEN g.last_token_result END,
                         last_token_at = CASE WHEN g.credentials_hash = excluded.credentials_hash
                             THEN g.last_token_at END,
                         revoked_at = CASE WHEN g.credentials_hash = excluded.credentials_hash
                             THEN g.revoked_at END",
                    &[&instance, &credentials_hash],
                )?;
                tx.execute(
                    "UPDATE oauth_grant SET last_token_at = $2, last_token_result = $3,
                         revoked_at = $4
                     WHERE instance = $1",
                    &[&instance, &now, &summary, &revoked],
                )?;
                if let Some((code_hash, rejected)) = &code {
                    tx.execute(
                        "UPDATE oauth_grant SET code_hash = $2, code_rejected = $3
                         WHERE instance = $1",
                        &[&instance, code_hash, rejected],
                    )?;
                }
                if revoked.is_some() {
                    tx.execute("DELETE FROM oauth_token WHERE instance = $1", &[&instance])?;
                }
                if let Some(token) = token {
                    save_token(
                        &mut tx,
                        &instance,
                        &credentials_hash,
                        &token.access,
                        token.refresh.as_deref(),
                        token.expires_at,
                    )?;
                }
                tx.commit()
            })
        })
    }

    /// Per instance, for `status`: whether a token is stored and when it expires, and the
    /// grant's record. Never the tokens themselves.
    pub fn oauth_overview(&self) -> Result<Vec<TokenOverview>, StateError> {
        let rows = self.call(|session| {
            session.run(|client| {
                client.query(
                    "SELECT t.instance, t.expires_at, t.refresh_token IS NOT NULL,
                            g.credentials_hash, g.code_hash, g.code_rejected, g.last_token_at,
                            g.last_token_result, g.revoked_at, true
                     FROM oauth_token t LEFT JOIN oauth_grant g ON g.instance = t.instance
                     UNION ALL
                     SELECT g.instance, NULL, false, g.credentials_hash, g.code_hash,
                            g.code_rejected, g.last_token_at, g.last_token_result, g.revoked_at,
                            false
                     FROM oauth_grant g
                     WHERE g.instance NOT IN (SELECT instance FROM oauth_token)
                     ORDER BY 1",
                    &[],
                )
            })
        })?;
        rows.iter()
            .map(|row| {
                let grant = match row.get::<_, Option<String>>(3) {
                    None => GrantRecord::default(),
                    Some(_) => GrantRecord {
                        code_hash: row.get(4),
                        code_rejected: row.get(5),
                        last_token_at: parse_time(row.get(6))?,
                        last_token_result: row.get(7),
                        revoked_at: parse_time(row.get(8))?,
                    },
                };
                Ok(TokenOverview {
                    instance: row.get(0),
                    has_token: row.get(9),
                    expires_at: parse_time(row.get(1))?,
                    has_refresh_token: row.get(2),
                    grant,
                })
            })
            .collect()
    }
}

/// OAuth tokens in a PostgreSQL state, for [`AuthSession`](crate::http::AuthSession) (as
/// [`StateTokens`](super::super::StateTokens) for SQLite).
pub struct PgStateTokens(pub Arc<Mutex<PgStore>>);

impl TokenStore for PgStateTokens {
    fn load(&self, instance: &str, credentials_hash: &str) -> Option<StoredToken> {
        PgStore::locked(&self.0)
            .oauth_token(instance, credentials_hash)
            .ok()?
    }

    fn save(&self, instance: &str, credentials_hash: &str, token: &StoredToken) {
        // A token that cannot be saved costs one refresh on the next run, nothing more.
        let _ = PgStore::locked(&self.0).save_oauth_token(instance, credentials_hash, token);
    }

    fn grant(&self, instance: &str, credentials_hash: &str) -> GrantRecord {
        PgStore::locked(&self.0)
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
        let _ = PgStore::locked(&self.0).record_grant(instance, credentials_hash, event, token);
    }
}
