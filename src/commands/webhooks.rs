//! `ocpoll webhooks url INSTANCE [--base URL] [--rotate [--grace D]]`: the URL a provider posts
//! a webhooks instance's events to (docs/operations.md#webhooks). The token is made on first
//! use and kept in the state; `--rotate` replaces it and keeps the old one working for the
//! grace period. Runs beside the daemon (short transactions, no poller lock), which sees a new
//! token within a second.
//!
//! The URL is printed on stdout because that is what the command is for; it is a secret like a
//! password, and goes nowhere else (no log, no error).

use crate::cli::WebhooksUrlArgs;
use crate::commands::{CommandError, exit};
use crate::config::Config;
use crate::instance::{self, Instance, UnresolvedSecrets, VendorType};
use crate::webhooks::token::new_token;
use chrono::{SecondsFormat, TimeDelta, Utc};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use std::process::ExitCode;
use std::sync::Arc;

/// Characters escaped in the instance name's path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

pub fn url(args: &WebhooksUrlArgs, config: &Config) -> ExitCode {
    match print_url(args, config) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(error) => error.print(),
    }
}

fn print_url(args: &WebhooksUrlArgs, config: &Config) -> Result<(), CommandError> {
    let instance = find_instance(config, &args.instance)?;
    let base = base_url(args, config)?;
    let mut store = config
        .open_store(super::Access::Create)
        .map_err(super::state_error)?;
    let now = Utc::now();
    let failed =
        |error: crate::state::StateError| CommandError::new(exit::FAILURE, error.to_string());
    let token = if args.rotate {
        let grace = TimeDelta::from_std(args.grace).unwrap_or(TimeDelta::MAX);
        let fresh = new_token(rand::random());
        let until = now.checked_add_signed(grace).unwrap_or(now);
        store
            .rotate_webhook_token(&instance.name, &fresh, now, until)
            .map_err(failed)?;
        eprintln!(
            "ocpoll: a new token for {}; the previous URL works until {}",
            instance.name,
            until.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        fresh
    } else {
        store
            .webhook_token_or_create(&instance.name, &new_token(rand::random()), now)
            .map_err(failed)?
    };
    let name = utf8_percent_encode(&instance.name, SEGMENT);
    // The one place the token leaves the state, on purpose: this command prints the URL.
    println!("{base}/webhooks/{name}/{}", token.expose());
    Ok(())
}

fn find_instance(config: &Config, name: &str) -> Result<Arc<Instance>, CommandError> {
    let loaded = instance::load_all(
        std::slice::from_ref(&config.instances),
        UnresolvedSecrets::Warn,
        &config.secret_source(),
    );
    let file = loaded
        .into_iter()
        .find(|file| file.name.as_deref() == Some(name))
        .ok_or_else(|| {
            CommandError::new(
                exit::FAILURE,
                format!(
                    "no instance named {name:?} in {}",
                    config.instances.display()
                ),
            )
        })?;
    let path = file.path.display().to_string();
    let instance = file.instance.ok_or_else(|| {
        CommandError::new(
            exit::FAILURE,
            format!("{path} is invalid; `ocpoll validate {path}` says why"),
        )
    })?;
    if instance.vendor != VendorType::Webhooks {
        return Err(CommandError::new(
            exit::FAILURE,
            format!(
                "{name:?} ({path}) is not a webhooks instance (\"event.vendor.type\": \"webhooks\")"
            ),
        ));
    }
    Ok(instance)
}

/// `--base`, else `[listen] public_url`, else the listen address over plain http.
fn base_url(args: &WebhooksUrlArgs, config: &Config) -> Result<String, CommandError> {
    let base = match (&args.base, &config.listen.public_url, config.listen.addr) {
        (Some(base), _, _) | (None, Some(base), _) => base.clone(),
        (None, None, Some(addr)) => format!("http://{addr}"),
        (None, None, None) => {
            return Err(CommandError::new(
                exit::USAGE,
                "no base URL: give --base https://your.public.host (or set [listen] public_url \
                 or [listen] addr in config.toml)",
            ));
        }
    };
    match url::Url::parse(&base) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
            Ok(base.trim_end_matches('/').to_owned())
        }
        _ => Err(CommandError::new(
            exit::USAGE,
            format!("{base:?} is not an absolute http(s) URL"),
        )),
    }
}
