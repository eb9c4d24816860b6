//! `ocpoll run --foreground`: the daemon (docs/design.md#daemon). Loads the instances, takes the
//! state lock, opens the state, turns signals into [`Control`] messages and hands over to
//! [`daemon::serve`]. SIGHUP and changes in the instances folder reload; SIGTERM or SIGINT stops gracefully; a second one exits
//! at once (safe: every state change is a transaction, and the kernel drops the lock).

use crate::cli::RunArgs;
use crate::commands::{self, exit};
use crate::config::Config;
use crate::daemon::catalog::Catalog;
use crate::daemon::systemd::Notifier;
use crate::daemon::{self, Control, logging, watcher};

use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

pub fn run(args: &RunArgs, config: &Config, verbose: u8, quiet: u8) -> ExitCode {
    let mut config = config.clone();
    config.daemon.metrics_addr = args.metrics_addr.or(config.daemon.metrics_addr);
    config.listen.addr = args.listen.or(config.listen.addr);
    let config = &config;
    logging::init(&config.log, verbose, quiet);
    if !args.foreground {
        // No self-daemonizing: systemd, a container or `&` in a shell does that job better.
        tracing::debug!("running in the foreground (ocpoll never forks into the background)");
    }
    let Some((catalog, report)) = Catalog::load(
        &config.instances,
        &Catalog::default(),
        &config.secret_source(),
    ) else {
        tracing::error!(
            "the instances folder {} does not exist (set --instances, OCPOLL_INSTANCES or \
             `instances` in config.toml)",
            config.instances.display()
        );
        return ExitCode::from(exit::CONFIG);
    };
    daemon::log_load(&report);
    let (_lock, store, runtime) =
        match commands::take_lock(config, args.wait).and_then(|mut lock| {
            let access = if args.migrate {
                commands::Access::Migrate
            } else {
                commands::Access::Create
            };
            let store = commands::open_state(config, &mut lock, access)?;
            // Bound in this order, dropped in the reverse: the lock last (see state::lock).
            Ok((lock, store, commands::runtime()?))
        }) {
            Ok(ready) => ready,
            Err(stop) => return stop.log(),
        };
    runtime.block_on(async {
        let signals = match Signals::install() {
            Ok(signals) => signals,
            Err(error) => {
                tracing::error!("cannot listen for signals: {error}");
                return ExitCode::from(exit::FAILURE);
            }
        };
        let (control, controls) = mpsc::channel(8);
        // Kept alive until the daemon stops; without it, SIGHUP still reloads.
        let _watcher = match watcher::watch_folder(&config.instances, control.clone()) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, "cannot watch the instances folder; reload with SIGHUP");
                None
            }
        };
        tokio::spawn(signals.forward(control));
        let notifier = Arc::new(Notifier::from_env());
        match daemon::serve(config, catalog, store, controls, notifier).await {
            Ok(()) => ExitCode::from(exit::SUCCESS),
            Err(error) => {
                tracing::error!("{error}");
                ExitCode::from(exit::FAILURE)
            }
        }
    })
}

struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    /// Installed before READY=1, so no signal can hit the default action (death) meanwhile.
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn forward(mut self, control: mpsc::Sender<Control>) {
        let mut stopping = false;
        loop {
            let message = tokio::select! {
                _ = self.terminate.recv() => Control::Stop,
                _ = self.interrupt.recv() => Control::Stop,
                _ = self.hangup.recv() => Control::Reload,
            };
            match message {
                Control::Stop if stopping => {
                    tracing::warn!("second stop signal: exiting now");
                    std::process::exit(i32::from(exit::INTERRUPTED));
                }
                Control::Stop => stopping = true,
                Control::Reload => tracing::info!("SIGHUP: reloading the instances"),
            }
            // The daemon gone means the process is about to exit anyway.
            let _ = control.send(message).await;
        }
    }
}
