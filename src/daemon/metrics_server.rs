//! The daemon's HTTP endpoints for monitoring, on `--metrics-addr` (`[daemon] metrics_addr`):
//!
//! - `GET /metrics`: [`Metrics`] in the Prometheus text format, the state gauges read afresh;
//! - `GET /healthz`: 200 `ok` when the process answers and the state file takes a write and no
//!   statement of the process has found it corrupt, else 503 with the reason;
//! - `GET /readyz`: 200 `ready` from the moment the daemon runs (instances loaded, state open,
//!   scheduler started: when systemd is told READY=1), 503 before.
//!
//! It reads and checks the state through connections of its own (one for scrapes, one for
//! health checks, so neither waits for the other), so a scrape never waits for the daemon's
//! writer (WAL readers do not block) and never holds up a poll. It stops with the daemon's
//! shutdown signal.

use super::catalog::Catalog;
use super::shutdown::Shutdown;
use crate::config::Config;
use crate::metrics::{self, Metrics};
use crate::state::{StateError, Store};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long `/healthz` waits for the state's write lock before it answers 503: longer than a
/// normal commit, short enough for a probe's timeout.
const HEALTH_PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum EndpointError {
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    State(#[from] StateError),
}

/// What the handlers share.
struct Endpoints {
    metrics: Arc<Metrics>,
    /// The scrapes' connection; its lock also keeps two scrapes from interleaving their gauge
    /// updates.
    store: Mutex<Store>,
    /// The health checks' connection.
    health_store: Mutex<Store>,
    catalog: watch::Receiver<Arc<Catalog>>,
    ready: AtomicBool,
    /// With a PostgreSQL state: this node's leases and polls, shown at each scrape.
    fleet: Option<Arc<crate::fleet::Fleet>>,
}

/// The running server.
pub struct MetricsServer {
    endpoints: Arc<Endpoints>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr`, opens its own connection to the state and serves until `shutdown`.
    pub async fn start(
        addr: SocketAddr,
        config: &Config,
        metrics: Arc<Metrics>,
        catalog: watch::Receiver<Arc<Catalog>>,
        fleet: Option<Arc<crate::fleet::Fleet>>,
        mut shutdown: Shutdown,
    ) -> Result<MetricsServer, EndpointError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EndpointError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| EndpointError::Bind { addr, source })?;
        let open = || config.open_store(crate::config::Access::Existing);
        let endpoints = Arc::new(Endpoints {
            metrics,
            store: Mutex::new(open()?),
            health_store: Mutex::new(open()?),
            catalog,
            ready: AtomicBool::new(false),
            fleet,
        });
        let app = Router::new()
            .route("/metrics", get(scrape))
            .route("/healthz", get(health))
            .route("/readyz", get(readiness))
            .with_state(Arc::clone(&endpoints));
        let task = tokio::spawn(async move {
            let stop = async move { shutdown.wait().await };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(%error, "the metrics server stopped");
            }
        });
        tracing::info!(address = %local_addr, "serving /metrics, /healthz and /readyz");
        Ok(MetricsServer { endpoints, task })
    }

    /// From now on `/readyz` answers 200.
    pub fn set_ready(&self) {
        self.endpoints.ready.store(true, Ordering::Release);
    }

    /// Waits for the server to stop (after the shutdown signal), at most `grace`; a scraper
    /// that keeps its connection busy longer is cut off.
    pub async fn stopped(self, grace: Duration) {
        let abort = self.task.abort_handle();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            abort.abort();
        }
    }
}

async fn scrape(State(endpoints): State<Arc<Endpoints>>) -> Response {
    let result = tokio::task::spawn_blocking(move || scrape_text(&endpoints)).await;
    match result {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Ok(Err(reason)) => {
            tracing::warn!(%reason, "metrics scrape failed");
            (StatusCode::INTERNAL_SERVER_ERROR, reason).into_response()
        }
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// Reads the state gauges, then encodes everything (blocking: SQLite).
fn scrape_text(endpoints: &Endpoints) -> Result<String, String> {
    let store = endpoints
        .store
        .lock()
        .map_err(|_| "the metrics connection failed earlier".to_owned())?;
    let statuses = store.statuses().map_err(|error| error.to_string())?;
    let depths = store.outbox_depth().map_err(|error| error.to_string())?;
    let polled = polled_resources(&endpoints.catalog.borrow());
    let mut view = metrics::state_view(&statuses, &depths, &polled, Utc::now());
    // Which OAuth grants the provider revoked (docs/operations.md#oauth-tokens).
    view.oauth_revoked = store
        .oauth_overview()
        .map_err(|error| error.to_string())?
        .into_iter()
        .map(|row| (row.instance, row.grant.revoked_at.is_some()))
        .collect();
    endpoints.metrics.set_state(&view);
    if let Some(fleet) = &endpoints.fleet {
        endpoints.metrics.set_fleet(fleet);
    }
    endpoints
        .metrics
        .encode()
        .map_err(|_| "cannot encode the metrics".to_owned())
}

/// (instance, resource) of every resource the daemon polls now.
fn polled_resources(catalog: &Catalog) -> BTreeSet<(String, String)> {
    catalog
        .instances()
        .filter(|instance| instance.is_polled())
        .flat_map(|instance| {
            instance
                .resources
                .iter()
                .map(|resource| (instance.name.clone(), resource.key.clone()))
        })
        .collect()
}

async fn health(State(endpoints): State<Arc<Endpoints>>) -> Response {
    let check = tokio::task::spawn_blocking(move || check_state_writable(&endpoints));
    let reason = match tokio::time::timeout(HEALTH_PATIENCE, check).await {
        Ok(Ok(Ok(()))) => return (StatusCode::OK, "ok\n").into_response(),
        Ok(Ok(Err(reason))) => reason,
        Ok(Err(error)) => format!("the state check stopped: {error}"),
        Err(_) => format!(
            "the state file did not take a write within {} s",
            HEALTH_PATIENCE.as_secs()
        ),
    };
    tracing::warn!(%reason, "health check failed");
    (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response()
}

/// One small durable write (the store's sync point): the file is there, can be locked and
/// takes a write. A check still waiting for the lock makes the next one fail at once rather
/// than queue behind it.
fn check_state_writable(endpoints: &Endpoints) -> Result<(), String> {
    let store = match endpoints.health_store.try_lock() {
        Ok(store) => store,
        Err(TryLockError::WouldBlock) => {
            return Err("a previous check is still waiting for the state file".to_owned());
        }
        Err(TryLockError::Poisoned(_)) => {
            return Err("the metrics connection failed earlier".to_owned());
        }
    };
    // Damage any connection of this process met (a statement's SQLITE_CORRUPT) fails every
    // check from then on, even when the sync point's own page is still sound.
    if let Some(detail) = store.corruption() {
        return Err(format!(
            "the state file is corrupted ({detail}); stop ocpoll and recover it (docs/operations.md, \"The state file is damaged\")"
        ));
    }
    store
        .check_writable()
        .map_err(|error| format!("the state does not take a write: {error}"))
}

async fn readiness(State(endpoints): State<Arc<Endpoints>>) -> Response {
    if endpoints.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    fn endpoints() -> Arc<Endpoints> {
        let (_, catalog) = watch::channel(Arc::new(Catalog::default()));
        Arc::new(Endpoints {
            metrics: Arc::new(Metrics::new()),
            store: Mutex::new(Store::open_in_memory().unwrap()),
            health_store: Mutex::new(Store::open_in_memory().unwrap()),
            catalog,
            ready: AtomicBool::new(false),
            fleet: None,
        })
    }

    async fn answer(response: Response) -> (StatusCode, String) {
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_is_503_until_the_daemon_runs() {
        let endpoints = endpoints();
        let before = answer(readiness(State(Arc::clone(&endpoints))).await).await;
        assert_eq!(before.0, StatusCode::SERVICE_UNAVAILABLE);
        endpoints.ready.store(true, Ordering::Release);
        let after = answer(readiness(State(endpoints)).await).await;
        assert_eq!(after, (StatusCode::OK, "ready\n".to_owned()));
    }

    #[tokio::test]
    #[expect(
        clippy::await_holding_lock,
        reason = "the held lock is the stuck check this test simulates"
    )]
    async fn healthz_writes_to_the_state_and_says_why_when_it_cannot() {
        let endpoints = endpoints();
        let ok = answer(health(State(Arc::clone(&endpoints))).await).await;
        assert_eq!(ok, (StatusCode::OK, "ok\n".to_owned()));

        // A check still stuck on the state: the next one fails at once, with the reason.
        let stuck = endpoints.health_store.lock().unwrap();
        let (status, reason) = answer(health(State(Arc::clone(&endpoints))).await).await;
        drop(stuck);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reason.contains("still waiting"), "{reason}");
    }
}
