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

/// The log format asked for before the configuration is loaded: the command line, else
/// `OCPOLL_LOG_FORMAT` (config.toml may be the very thing that failed to load).
pub fn requested_format(flag: Option<LogFormat>, env: Option<&str>) -> LogFormat {
    flag.unwrap_or(match env.map(|value| value.trim().to_ascii_lowercase()) {
        Some(value) if value == "json" => LogFormat::Json,
        _ => LogFormat::Text,
    })
}

/// An error that stops ocpoll before its log is set up (the configuration cannot be loaded),
/// in the requested format: under journald with `--log-format json`, a plain line would be the
/// one entry of the service's last words that a JSON pipeline cannot read.
pub fn early_error_line(
    format: LogFormat,
    message: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    match format {
        LogFormat::Text => format!("ocpoll: {message}"),
        // The fields tracing-subscriber's JSON lines have (`flatten_event`, no target).
        LogFormat::Json => serde_json::json!({
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "ERROR",
            "message": message,
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_errors_follow_the_requested_format() {
        assert_eq!(requested_format(None, None), LogFormat::Text);
        assert_eq!(requested_format(None, Some("JSON")), LogFormat::Json);
        assert_eq!(
            requested_format(Some(LogFormat::Text), Some("json")),
            LogFormat::Text
        );
        assert_eq!(
            requested_format(Some(LogFormat::Json), None),
            LogFormat::Json
        );

        let now = chrono::DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let message = "cannot read config file /etc/ocpoll/config.toml: \"quoted\"";
        assert_eq!(
            early_error_line(LogFormat::Text, message, now),
            format!("ocpoll: {message}")
        );
        let line = early_error_line(LogFormat::Json, message, now);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "ERROR");
        assert_eq!(value["message"], message);
        assert_eq!(value["timestamp"], "2026-03-01T10:00:00.000000Z");
        assert!(!line.contains('\n'));
    }

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
