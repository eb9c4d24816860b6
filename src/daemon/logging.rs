//! The daemon's log: tracing events to stderr, human text or one JSON object per line
//! (`--log-format json`, for journald and log shippers). The level is `[log] level` moved up
//! by each `-v` and down by each `-q`. Nothing logged carries a secret: the values logged are
//! names, counts, times and errors that are built without credentials.

use crate::cli::LogFormat;
use crate::config::LogConfig;
use std::io::IsTerminal;
use tracing_subscriber::filter::LevelFilter;

const LEVELS: [LevelFilter; 6] = [
    LevelFilter::OFF,
    LevelFilter::ERROR,
    LevelFilter::WARN,
    LevelFilter::INFO,
    LevelFilter::DEBUG,
    LevelFilter::TRACE,
];

/// The level for `[log] level` (unknown names mean info) and the `-v`/`-q` counts.
pub fn level(configured: &str, verbose: u8, quiet: u8) -> LevelFilter {
    let base = match configured.trim().to_ascii_lowercase().as_str() {
        "off" => 0,
        "error" => 1,
        "warn" | "warning" => 2,
        "debug" => 4,
        "trace" => 5,
        _ => 3,
    };
    let index = (base + i32::from(verbose) - i32::from(quiet)).clamp(1, 5);
    LEVELS[index as usize]
}

/// Installs the subscriber for this process; a second call (tests, the demo) is ignored.
pub fn init(config: &LogConfig, verbose: u8, quiet: u8) {
    let level = level(&config.level, verbose, quiet);
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_and_quiet_move_the_configured_level() {
        assert_eq!(level("info", 0, 0), LevelFilter::INFO);
        assert_eq!(level("info", 1, 0), LevelFilter::DEBUG);
        assert_eq!(level("info", 2, 0), LevelFilter::TRACE);
        assert_eq!(level("info", 9, 0), LevelFilter::TRACE);
        assert_eq!(level("info", 0, 1), LevelFilter::WARN);
        assert_eq!(level("info", 0, 5), LevelFilter::ERROR);
        assert_eq!(level("WARN", 0, 0), LevelFilter::WARN);
        assert_eq!(level("chatty", 0, 0), LevelFilter::INFO);
    }
}
