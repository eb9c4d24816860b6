//! The connection's own thread: every statement of a [`super::PgStore`] runs there.
//!
//! What it owns: the `postgres::Client` (sync), reconnecting it, its prepared statements, and
//! whether a multi-job transaction (a poll's commit) is open on it. Why a thread: the store is
//! called synchronously from tokio worker threads, and the `postgres` crate's blocking client
//! runs its own runtime, which panics inside another; on a thread of its own it works from
//! anywhere (tokio workers, current-thread runtimes, plain threads). Callers send boxed jobs
//! over a channel and block on the reply.
//!
//! A lost connection is reconnected by the next job. One lost inside an open transaction
//! fails every later job of that transaction ([`Session::in_txn`]): its work is gone, and
//! running the rest outside a transaction would commit half a poll.

use std::collections::HashMap;
use std::sync::mpsc;

use postgres::{Client, Statement};

use super::super::StateError;
use super::connect::PgSettings;
use super::tls::RustlsConnect;

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The connection as the jobs see it.
pub struct Session {
    settings: PgSettings,
    tls: Option<RustlsConnect>,
    client: Option<Client>,
    statements: HashMap<&'static str, Statement>,
    /// A transaction opened by [`Session::begin`] is open.
    txn_open: bool,
    /// The connection was lost while that transaction was open.
    txn_lost: bool,
}

impl Session {
    pub fn location(&self) -> &str {
        &self.settings.location
    }

    /// Turns a driver error into a StateError, forgetting the connection when it is gone.
    pub fn fail(&mut self, error: postgres::Error) -> StateError {
        if error.is_closed() || self.client.as_ref().is_some_and(Client::is_closed) {
            self.drop_connection();
        }
        postgres_error(self.location(), &error)
    }

    fn drop_connection(&mut self) {
        self.client = None;
        self.statements.clear();
        if self.txn_open {
            self.txn_lost = true;
        }
    }

    /// The client, connecting first when there is none (or it was closed).
    pub fn client(&mut self) -> Result<&mut Client, StateError> {
        if self.txn_lost {
            return Err(StateError::Postgres {
                location: self.location().to_owned(),
                detail: "the connection was lost inside a transaction; it was rolled back".into(),
            });
        }
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.drop_connection();
            if self.txn_lost {
                return self.client();
            }
        }
        if self.client.is_none() {
            let client = self.connect()?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    fn connect(&mut self) -> Result<Client, StateError> {
        let location = self.settings.location.clone();
        let config = postgres::Config::from(self.settings.config.clone());
        let result = if self.settings.ssl_mode == super::connect::SslMode::Disable {
            config.connect(postgres::NoTls)
        } else {
            if self.tls.is_none() {
                let tls = RustlsConnect::new(&self.settings).map_err(|detail| {
                    StateError::PostgresSettings {
                        location: location.clone(),
                        detail,
                    }
                })?;
                self.tls = Some(tls);
            }
            config.connect(self.tls.clone().expect("set above"))
        };
        result.map_err(|e| postgres_error(&location, &e))
    }

    /// A statement prepared once per connection.
    pub fn prepare(&mut self, sql: &'static str) -> Result<Statement, StateError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let prepared = self.client()?.prepare(sql);
        let statement = prepared.map_err(|e| self.fail(e))?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs `f` with the client; its driver error is classified (and a lost connection
    /// forgotten).
    pub fn run<T>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StateError> {
        let result = f(self.client()?);
        result.map_err(|e| self.fail(e))
    }

    /// Runs `sql` with `params`, the statement prepared once per connection (see
    /// [`Session::prepare`]): the rows it changed.
    pub fn exec(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, StateError> {
        let statement = self.prepare(sql)?;
        self.run(|client| client.execute(&statement, params))
    }

    /// Opens a transaction that later jobs continue (a poll's commit).
    pub fn begin(&mut self) -> Result<(), StateError> {
        self.txn_lost = false;
        self.run(|client| client.batch_execute("BEGIN"))?;
        self.txn_open = true;
        Ok(())
    }

    /// Commits the transaction [`Session::begin`] opened.
    pub fn commit(&mut self) -> Result<(), StateError> {
        let result = self.run(|client| client.batch_execute("COMMIT"));
        self.txn_open = false;
        self.txn_lost = false;
        result
    }

    /// Rolls back the transaction [`Session::begin`] opened (nothing to do when the connection
    /// went with it).
    pub fn rollback(&mut self) {
        if self.txn_open && !self.txn_lost && self.client.is_some() {
            let _ = self.run(|client| client.batch_execute("ROLLBACK"));
        }
        self.txn_open = false;
        self.txn_lost = false;
    }
}

/// A driver error as the store reports it: the server's message (with its SQLSTATE) or the
/// driver's. Neither contains the password: tokio-postgres never quotes it.
pub fn postgres_error(location: &str, error: &postgres::Error) -> StateError {
    let detail = match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            // The driver's message, then its causes (a TLS handshake's reason, an I/O error).
            let mut detail = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !detail.contains(&cause_text) {
                    detail = format!("{detail}: {cause_text}");
                }
                source = cause.source();
            }
            detail
        }
    };
    StateError::Postgres {
        location: location.to_owned(),
        detail,
    }
}

/// The sending end: one per store. Dropping it ends the thread (and closes the connection).
pub struct Actor {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Actor {
    /// Starts the thread; the connection opens with the first job.
    pub fn start(settings: PgSettings) -> Actor {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("ocpoll-postgres".to_owned())
            .spawn(move || {
                let mut session = Session {
                    settings,
                    tls: None,
                    client: None,
                    statements: HashMap::new(),
                    txn_open: false,
                    txn_lost: false,
                };
                while let Ok(job) = receiver.recv() {
                    job(&mut session);
                }
            })
            .expect("a thread for the PostgreSQL connection");
        Actor {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Runs `job` on the connection's thread and waits for its result.
    pub fn call<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Session) -> Result<R, StateError> + Send + 'static,
    ) -> Result<R, StateError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let sent = self.jobs.as_ref().is_some_and(|jobs| {
            jobs.send(Box::new(move |session: &mut Session| {
                // A panicking job (a bug) answers an error and leaves the thread serving.
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(session)))
                        .unwrap_or_else(|_| {
                            Err(StateError::Postgres {
                                location: session.location().to_owned(),
                                detail: "a statement panicked".into(),
                            })
                        });
                let _ = reply.send(result);
            }))
            .is_ok()
        });
        let gone = || StateError::Postgres {
            location: String::new(),
            detail: "the PostgreSQL connection's thread ended".into(),
        };
        if !sent {
            return Err(gone());
        }
        answer.recv().unwrap_or_else(|_| Err(gone()))
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
