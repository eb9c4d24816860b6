//! The daemon (`ocpoll run --foreground`, docs/design.md#daemon): the long-running shape of what
//! `tick` does once.
//!
//! ```text
//! signals --SIGHUP--> catalog (instances as loaded; reload keeps a broken file's old version)
//!    |                   |  watch channel
//!    |                   v
//!    |             scheduler --due target--> runner (bounded) --> poll::run --commit--> Notify
//!    |                                                                      |
//!    |                                                                      v
//!    +--SIGTERM--> shutdown --------------------------------------> delivery worker
//!                                                                      ^
//!   provider --POST--> webhooks listener --receipts' writer commit--> Notify
//! ```
//!
//! Shutdown order (see [`shutdown`]): the first SIGTERM/SIGINT tells systemd STOPPING=1 and
//! triggers the shared signal; the scheduler stops starting polls and the delivery worker stops
//! starting passes; both wait up to `[daemon] grace_seconds` for what is in flight, then abandon
//! it. An abandoned poll has committed nothing (its staging is discarded at the next start) and
//! an abandoned send stays pending, so nothing is lost either way. A second signal exits at once,
//! which is just as safe: every state change is a transaction.

pub mod catalog;
pub mod logging;
pub mod metrics_server;
pub mod scheduler;
pub mod shutdown;
pub mod systemd;
pub mod watcher;
pub mod worker;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::outbox::deliver::{DeliverError, Delivery, DeliveryObserver};
use crate::runner::{PollRunner, RunnerError};
use crate::state::Store;
use catalog::{Catalog, LoadReport};
use metrics_server::{EndpointError, MetricsServer};
use scheduler::Scheduler;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use systemd::Notifier;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use worker::Worker;

use crate::webhooks::listener::{ListenError, Listener, ListenerParts};

/// What the daemon is told from outside (signals, or the demo's timer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Re-read the instances folder.
    Reload,
    /// Shut down gracefully.
    Stop,
}

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("{0}")]
    Runner(#[from] RunnerError),
    #[error("{0}")]
    Delivery(#[from] DeliverError),
    #[error("{0}")]
    Metrics(#[from] EndpointError),
    #[error("{0}")]
    Listen(#[from] ListenError),
}

/// Runs the scheduler and the delivery worker on `store` until [`Control::Stop`] (or the
/// control channel closes), then drains them within `[daemon] grace_seconds`.
pub async fn serve(
    config: &Config,
    catalog: Catalog,
    store: Store,
    mut control: mpsc::Receiver<Control>,
    notifier: Arc<Notifier>,
) -> Result<(), DaemonError> {
    let mut store = store;
    // A shared (PostgreSQL) state: polls and deliveries are claimed, leases renewed.
    let fleet = config.fleet();
    if let Some(fleet) = &fleet {
        store.set_node(&fleet.node);
    }
    let store = Arc::new(Mutex::new(store));
    let runner = PollRunner::new(config, Arc::clone(&store))?.with_fleet(fleet.clone());
    let wake = runner.committed();
    // Kept only when they are served: without `metrics_addr` nothing counts.
    let metrics = config.daemon.metrics_addr.map(|_| Arc::new(Metrics::new()));
    let delivery = Delivery::with_egress(
        Arc::clone(&store),
        config.delivery_policy(),
        config.http.egress(),
    )?;
    let observer = metrics
        .clone()
        .map(|metrics| metrics as Arc<dyn DeliveryObserver>);
    let delivery = Arc::new(delivery.with_observer(observer).with_fleet(fleet.clone()));
    let grace = Duration::from_secs(config.daemon.grace_seconds);
    let status = status_line(&catalog);
    let (catalog_sender, catalog_receiver) = watch::channel(Arc::new(catalog));
    let (trigger, stopped) = shutdown::channel();
    let renewal = fleet.clone().map(|fleet| {
        tracing::info!(node = %fleet.node, lease_seconds = fleet.lease.as_secs(),
            "sharing the state with a fleet: polls and deliveries are leased");
        let mut stop = stopped.clone();
        tokio::spawn(fleet.renew_until(Arc::clone(&store), async move { stop.wait().await }))
    });

    let endpoints = match (config.daemon.metrics_addr, &metrics) {
        (Some(addr), Some(metrics)) => Some(
            MetricsServer::start(
                addr,
                config,
                Arc::clone(metrics),
                catalog_receiver.clone(),
                fleet.clone(),
                stopped.clone(),
            )
            .await?,
        ),
        _ => None,
    };
    let listener = match config.listen.settings() {
        Some(settings) => {
            let parts = ListenerParts {
                settings,
                store: Arc::clone(&store),
                token_store: config
                    .open_store(crate::config::Access::Existing)
                    .map_err(ListenError::State)?,
                catalog: catalog_receiver.clone(),
                wake: Arc::clone(&wake),
                metrics: metrics.clone(),
            };
            Some(Listener::start(parts, stopped.clone()).await?)
        }
        None => None,
    };
    let scheduler = Scheduler::new(runner, &config.poll).with_metrics(metrics.clone());
    let scheduler = tokio::spawn(scheduler.run(
        catalog_receiver.clone(),
        stopped.clone(),
        grace,
        Arc::clone(&notifier),
    ));
    let worker = Worker {
        delivery,
        catalog: catalog_receiver,
        wake,
    };
    let worker = tokio::spawn(worker.run(stopped, grace));
    notifier.ready(&status);
    if let Some(endpoints) = &endpoints {
        endpoints.set_ready();
    }
    tracing::info!(pid = std::process::id(), "ocpoll is running: {status}");

    while let Some(Control::Reload) = control.recv().await {
        reload(config, &catalog_sender, &notifier);
    }

    tracing::info!(
        grace_seconds = grace.as_secs(),
        "stopping: no new polls; finishing those in flight"
    );
    notifier.stopping();
    trigger.trigger();
    // Requests in flight get their commit and their answer; new ones are not accepted.
    if let Some(listener) = listener {
        listener.stopped(grace).await;
    }
    // Both finish within the grace period (each abandons what is left after it).
    let _ = scheduler.await;
    let _ = worker.await;
    if let Some(renewal) = renewal {
        let _ = renewal.await;
    }
    if let Some(endpoints) = endpoints {
        endpoints.stopped(grace).await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn reload(config: &Config, catalog: &watch::Sender<Arc<Catalog>>, notifier: &Notifier) {
    let current = Arc::clone(&catalog.borrow());
    let Some((next, report)) = Catalog::load(&config.instances, &current, &config.secret_source())
    else {
        tracing::error!(
            folder = %config.instances.display(),
            "reload: the instances folder cannot be read; keeping the instances as they are"
        );
        return;
    };
    log_load(&report);
    let status = status_line(&next);
    catalog.send_replace(Arc::new(next));
    notifier.reloaded(&status);
    tracing::info!("reloaded: {status}");
}

/// Reports files with errors: each error, then what happens to the file.
pub fn log_load(report: &LoadReport) {
    for error in &report.errors {
        tracing::error!("{error}");
    }
    for path in &report.kept {
        tracing::warn!(file = %path.display(), "invalid: its previous version keeps running");
    }
    for path in &report.skipped {
        tracing::warn!(file = %path.display(), "skipped: the instance is invalid");
    }
}

fn status_line(catalog: &Catalog) -> String {
    let polled = catalog.instances().filter(|i| i.is_polled()).count();
    let webhooks = catalog
        .instances()
        .filter(|i| i.receives_webhooks())
        .count();
    if webhooks == 0 {
        return format!("{polled} polled instances ({} loaded)", catalog.len());
    }
    format!(
        "{polled} polled and {webhooks} webhooks instances ({} loaded)",
        catalog.len()
    )
}
