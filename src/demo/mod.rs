//! `ocpoll demo` (docs/design.md#demo): the whole job on one machine, with nothing installed.
//! A sample contacts API whose records change every few seconds ([`sample_api`]) and a callback
//! receiver that verifies both signatures ([`receiver`]) start on loopback; an instance file for
//! them is written in a temporary folder; the daemon runs in-process against them
//! ([`crate::daemon::serve`], the same code as `ocpoll run`) until Ctrl-C or `--duration`.

pub mod receiver;
pub mod sample_api;

use crate::config::{
    Config, DaemonConfig, DeliveryConfig, HttpConfig, LogConfig, PollConfig, SecretsConfig,
    Synchronous,
};
use crate::daemon::catalog::Catalog;
use crate::daemon::systemd::Notifier;
use crate::daemon::{self, Control};
use crate::state::Store;
use receiver::{Receiver, Totals};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;

const INSTANCE: &str = "demo-contacts";
const SIGNING_KEY: &str = "demo-signing-key";

#[derive(Debug, Error)]
pub enum DemoError {
    #[error("cannot prepare the demo folder {}: {source}", path.display())]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start a loopback server: {0}")]
    Server(std::io::Error),
    #[error("{0}")]
    State(#[from] crate::state::StateError),
    #[error("the instance file the demo wrote is invalid: {0}")]
    Instance(String),
    #[error("{0}")]
    Daemon(#[from] daemon::DaemonError),
}

/// Runs the demo until Ctrl-C or `duration`; returns what the receiver saw.
pub async fn run(duration: Option<Duration>) -> Result<Totals, DemoError> {
    let folder = std::env::temp_dir().join(format!("ocpoll-demo-{}", std::process::id()));
    let result = run_in(&folder, duration).await;
    let _ = std::fs::remove_dir_all(&folder);
    result
}

async fn run_in(folder: &Path, duration: Option<Duration>) -> Result<Totals, DemoError> {
    let folder_error = |source| DemoError::Folder {
        path: folder.to_path_buf(),
        source,
    };
    let instances = folder.join("instances.d");
    std::fs::create_dir_all(&instances).map_err(folder_error)?;

    let records = sample_api::SharedRecords::default();
    let api = sample_api::start(Arc::clone(&records))
        .await
        .map_err(DemoError::Server)?;
    let receiver = Receiver::new(SIGNING_KEY, Arc::clone(&records));
    let screen = Arc::new(Screen::new(Arc::clone(&receiver)));
    let print = {
        let screen = Arc::clone(&screen);
        Arc::new(move |line: &str| screen.line(line))
    };
    let hook = receiver::start(Arc::clone(&receiver), print)
        .await
        .map_err(DemoError::Server)?;
    let instance_file = instances.join(format!("{INSTANCE}.json"));
    std::fs::write(&instance_file, instance_body(api, hook)).map_err(folder_error)?;

    let config = demo_config(folder);
    let (catalog, report) = Catalog::load(
        &config.instances,
        &Catalog::default(),
        &config.secret_source(),
    )
    .ok_or_else(|| DemoError::Instance("the folder is gone".to_owned()))?;
    if let Some(error) = report.errors.first() {
        return Err(DemoError::Instance(error.clone()));
    }
    let mut store = Store::open(&config.state, config.synchronous)?;
    store.discard_unfinished_polls()?;

    screen.intro(api, hook, &instance_file, duration);
    let (control, controls) = mpsc::channel(1);
    tokio::spawn(async move {
        match duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        let _ = control.send(Control::Stop).await;
    });
    let ticker = {
        let screen = Arc::clone(&screen);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                screen.refresh();
            }
        })
    };
    // No NOTIFY_SOCKET here: the demo is not a service.
    daemon::serve(
        &config,
        catalog,
        store,
        controls,
        Arc::new(Notifier::disabled()),
    )
    .await?;
    ticker.abort();
    let totals = receiver.totals();
    screen.finish();
    Ok(totals)
}

/// The instance file: the seeds' shape, pointed at the loopback API and receiver.
fn instance_body(api: std::net::SocketAddr, hook: std::net::SocketAddr) -> String {
    let body = json!({
        "element": {"key": "democrm"},
        "name": INSTANCE,
        "tags": ["demo"],
        "configuration": {
            "event.notification.enabled": true,
            "event.notification.callback.url": format!("http://{hook}/hook"),
            "event.notification.signature.key": SIGNING_KEY,
            "event.vendor.type": "polling",
            // Seconds, for the demo; real instances use event.poller.refresh_interval (minutes).
            "event.poller.refresh_seconds": 1,
            "event.poller.configuration": {"contacts": {
                // A small page size, so the first poll follows page tokens.
                "url": format!("{}&pageSize=2", sample_api::resource_url(api)),
                "idField": "id",
                "datesConfiguration": {
                    "updatedDateField": "updated_at",
                    "updatedDateFormat": sample_api::DATE_FORMAT,
                    "updatedDateTimezone": "GMT",
                    "createdDateField": "created_at",
                    "createdDateFormat": sample_api::DATE_FORMAT,
                    "createdDateTimezone": "GMT"
                }
            }}
        }
    });
    serde_json::to_string_pretty(&body).unwrap_or_default()
}

fn demo_config(folder: &Path) -> Config {
    Config {
        instances: folder.join("instances.d"),
        state: folder.join("state.db"),
        log: LogConfig::default(),
        poll: PollConfig {
            jitter_seconds: 0,
            ..PollConfig::default()
        },
        delivery: DeliveryConfig {
            backoff_initial_seconds: 1,
            ..DeliveryConfig::default()
        },
        // A throwaway state: speed over power-loss safety.
        synchronous: Synchronous::Normal,
        lease_seconds: crate::fleet::DEFAULT_LEASE.as_secs(),
        daemon: DaemonConfig {
            grace_seconds: 2,
            ..DaemonConfig::default()
        },
        http: HttpConfig::default(),
        secrets: SecretsConfig::default(),
        listen: crate::config::ListenConfig::default(),
    }
}

/// The demo's output: one line per event and, on a terminal, a live totals line under them.
struct Screen {
    receiver: Arc<Receiver>,
    live: bool,
    out: Mutex<()>,
}

impl Screen {
    fn new(receiver: Arc<Receiver>) -> Screen {
        Screen {
            receiver,
            live: std::io::stdout().is_terminal(),
            out: Mutex::new(()),
        }
    }

    fn intro(
        &self,
        api: std::net::SocketAddr,
        hook: std::net::SocketAddr,
        file: &Path,
        duration: Option<Duration>,
    ) {
        let until = match duration {
            Some(duration) => format!("for {}", humantime::format_duration(duration)),
            None => "until Ctrl-C".to_owned(),
        };
        self.line(&format!(
            "ocpoll demo: sample contacts API at http://{api}/contacts (a contact changes every \
             {:.1}s)\n             callback receiver at http://{hook}/hook (verifies both \
             signatures)\n             instance file {}\n             polling every second, \
             {until}; the first poll is a baseline (no events)\n",
            sample_api::CHANGE_EVERY.as_secs_f64(),
            file.display()
        ));
    }

    fn line(&self, text: &str) {
        let _guard = self.out.lock();
        let mut out = std::io::stdout().lock();
        if self.live {
            let _ = write!(out, "\r\x1b[2K{text}\n{}", self.totals_text());
        } else {
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
    }

    fn refresh(&self) {
        if self.live {
            let _guard = self.out.lock();
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K{}", self.totals_text());
            let _ = out.flush();
        }
    }

    fn finish(&self) {
        let _guard = self.out.lock();
        let mut out = std::io::stdout().lock();
        if self.live {
            let _ = write!(out, "\r\x1b[2K");
        }
        let _ = writeln!(out, "{}", self.totals_text());
    }

    fn totals_text(&self) -> String {
        let totals = self.receiver.totals();
        format!(
            "totals: {} events in {} notifications, {} verified, {} rejected, {} repeated",
            totals.events,
            totals.notifications,
            totals.verified,
            totals.rejected,
            totals.duplicates
        )
    }
}
