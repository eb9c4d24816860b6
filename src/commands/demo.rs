//! `ocpoll demo`: runs [`crate::demo`] and says how it went. Exit 0 when events arrived and
//! every notification was verified; 1 otherwise.

use crate::cli::DemoArgs;
use crate::commands::exit;
use crate::config::Config;
use crate::daemon::logging;
use std::process::ExitCode;

pub fn run(args: &DemoArgs, config: &Config, verbose: u8, quiet: u8) -> ExitCode {
    // The events are the show: the daemon's own log only for warnings, unless -v.
    let mut log = config.log.clone();
    log.level = if verbose > 0 { "info" } else { "warn" }.to_owned();
    logging::init(&log, verbose.saturating_sub(1), quiet);
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(stop) => return stop.print(),
    };
    match runtime.block_on(crate::demo::run(args.duration)) {
        Ok(totals) if totals.events > 0 && totals.rejected == 0 => ExitCode::from(exit::SUCCESS),
        Ok(totals) => {
            eprintln!(
                "ocpoll demo: {} events received, {} notifications rejected",
                totals.events, totals.rejected
            );
            ExitCode::from(exit::FAILURE)
        }
        Err(error) => {
            eprintln!("ocpoll demo: {error}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
