//! One module per subcommand, each thin: it loads what it needs, calls the library, prints,
//! and returns the exit code.

pub mod validate;

use std::process::ExitCode;

/// Exit codes (SPEC.md section 2).
pub mod exit {
    pub const SUCCESS: u8 = 0;
    /// Some instance invalid, or some poll or delivery failed (the rest still ran).
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    /// The state is locked by another ocpoll process.
    pub const LOCKED: u8 = 75;
    /// The configuration is unusable.
    pub const CONFIG: u8 = 78;
}

/// Commands defined in the CLI whose implementation has not landed yet. They say so instead
/// of pretending to work.
pub fn not_available(command: &str) -> ExitCode {
    eprintln!(
        "ocpoll {command}: not available yet in ocpoll {}; this version validates instance files \
         (`ocpoll validate`). See the README's \"What works today\".",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(exit::USAGE)
}
