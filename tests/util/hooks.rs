//! Helpers for webhooks instances in end-to-end tests: a receiving URL's token from the real
//! `ocpoll webhooks url`, and the address a daemon started with `--listen 127.0.0.1:0` took.

use super::Dir;
use super::daemon::{Daemon, PATIENCE, layout_command};
use std::time::Instant;

/// `ocpoll webhooks url NAME ARGS...` in `dir`'s layout: its stdout line, the whole URL.
pub fn webhook_url(dir: &Dir, name: &str, args: &[&str]) -> String {
    let mut command_args = vec!["webhooks", "url", name, "--base", "http://127.0.0.1:1"];
    command_args.extend_from_slice(args);
    let output = layout_command(dir, &command_args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("ocpoll webhooks url runs");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(url.lines().count(), 1, "one URL: {url}");
    url
}

/// The token at the end of a URL from [`webhook_url`].
pub fn token_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// Where the daemon receives webhooks (`http://ADDR`), from its log.
pub fn listen_base(daemon: &Daemon) -> String {
    let start = Instant::now();
    loop {
        let found = daemon.log_lines().into_iter().find_map(|line| {
            (line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("receiving webhooks")))
            .then(|| line["address"].as_str().map(str::to_owned))
            .flatten()
        });
        if let Some(address) = found {
            return format!("http://{address}");
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the daemon did not start listening; its log:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
