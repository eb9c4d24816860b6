//! Opening the authorization URL in a browser, when there is one: `$BROWSER` (the first of
//! its `:`-separated commands), else the platform's opener (`xdg-open`, `open`). Never an
//! error: without a browser the operator opens the printed URL.
//!
//! The URL goes on the browser's command line: it holds the client id (public, RFC 6749
//! section 2.2), the `state` and the PKCE challenge, none of them a secret.

use std::process::{Command, Stdio};

/// Starts the browser on `url`; `Err` says why not, for a one-line note.
pub fn open(url: &str, browser_env: Option<&str>) -> Result<(), String> {
    let program = match browser_env
        .and_then(|value| value.split(':').next())
        .map(str::trim)
        .filter(|program| !program.is_empty())
    {
        Some(program) => program.to_owned(),
        None if cfg!(target_os = "macos") => "open".to_owned(),
        None => "xdg-open".to_owned(),
    };
    let mut child = Command::new(&program)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot start {program}: {error}"))?;
    // Reaped in the background: xdg-open returns quickly, a browser may run on.
    std::thread::spawn(move || child.wait());
    Ok(())
}
