//! The commands: each one loads the layered configuration (all but `client`, `demo`,
//! `completions` and `man`), then does its work.

mod app;
pub(crate) mod client;
mod completions;
mod demo;
mod import;
mod jobs;
mod man;
mod migrate_store;
mod serve;
mod simulate;

use anyhow::Context;
use ccfs_server::Config;

use crate::cli::{Cli, Command};

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Client commands talk to a server over the network, the demo runs its own throw-away
    // setup, and completions and manual pages describe the command line: none reads the local
    // configuration, so a broken one cannot stop them.
    let config = match cli.command {
        Command::Client(args) => return client::run(*args).await,
        Command::Demo(args) => return demo::run(args).await,
        Command::Completions(args) => return completions::run(&args),
        Command::Man(args) => return man::run(&args),
        _ => load_config(&cli)?,
    };
    crate::logging::set_format(config.log_format);
    match cli.command {
        Command::Serve(args) => serve::run(config, args).await,
        Command::App(args) => app::run(config, args).await,
        Command::Jobs(args) => jobs::run(config, args).await,
        Command::Import(args) => import::run(config, args).await,
        Command::Simulate(args) => simulate::run(config, args).await,
        Command::MigrateStore(args) => migrate_store::run(config, args).await,
        Command::Client(_) | Command::Demo(_) | Command::Completions(_) | Command::Man(_) => {
            unreachable!("handled above")
        }
    }
}

/// Defaults ← the `--config` file (or `CCFS_CONFIG`) ← `CCFS_*` environment.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let file = cli.config.as_deref();
    Config::load(file).with_context(|| match file {
        Some(f) => format!("configuration {}", f.display()),
        None => "configuration".to_owned(),
    })
}
