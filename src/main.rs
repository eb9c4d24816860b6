//! The `ocpoll` binary: parse the command line, load the configuration, dispatch, exit.

use clap::Parser;
use ocpoll::cli::{Cli, Command, OutboxCommand, StateCommand, WebhooksCommand};
use ocpoll::commands::{self, exit};
use ocpoll::config::{Config, PlatformDirs};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::GenerateAssets(args) = &cli.command {
        return match ocpoll::assets::write_all(&args.out) {
            Ok(written) => {
                for path in written {
                    println!("wrote {}", args.out.join(path).display());
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("ocpoll: cannot write assets: {error}");
                ExitCode::from(exit::FAILURE)
            }
        };
    }
    let config = match Config::load(
        &cli.config_flags(),
        |name| std::env::var(name).ok(),
        &PlatformDirs::detect(),
    ) {
        Ok(config) => config,
        Err(error) => return commands::config_unusable(cli.global.log_format, &error),
    };
    match &cli.command {
        Command::Validate(args) => commands::validate::run(args, &config),
        Command::Tick(args) => {
            commands::tick::run(args, &config, cli.global.verbose, cli.global.quiet)
        }
        Command::Run(args) => {
            commands::run::run(args, &config, cli.global.verbose, cli.global.quiet)
        }
        Command::Status(args) => commands::status::run(args, &config),
        Command::Try(args) => commands::try_resource::run(args, &config),
        Command::Auth(args) => commands::auth::run(args, &config),
        Command::State(StateCommand::Reset(args)) => commands::state::reset(args, &config),
        Command::State(StateCommand::Forget(args)) => commands::state::forget(args, &config),
        Command::State(StateCommand::Migrate(_)) => commands::state::migrate(&config),
        Command::Outbox(OutboxCommand::List(args)) => commands::outbox::list(args, &config),
        Command::Outbox(OutboxCommand::Show(args)) => commands::outbox::show(args, &config),
        Command::Outbox(OutboxCommand::Retry(args)) => commands::outbox::retry(args, &config),
        Command::Outbox(OutboxCommand::Drop(args)) => commands::outbox::drop(args, &config),
        Command::Webhooks(WebhooksCommand::Url(args)) => commands::webhooks::url(args, &config),
        Command::Demo(args) => {
            commands::demo::run(args, &config, cli.global.verbose, cli.global.quiet)
        }
        Command::GenerateAssets(_) => unreachable!("handled before the configuration is loaded"),
    }
}
