//! The commands: each one loads the layered configuration, then does its work.

mod app;
mod import;
mod serve;

use anyhow::Context;
use ccfs_server::Config;

use crate::cli::{Cli, Command};

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
    match cli.command {
        Command::Serve(args) => serve::run(config, args).await,
        Command::App(args) => app::run(config, args).await,
        Command::Import(args) => import::run(config, args).await,
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
