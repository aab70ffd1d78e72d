//! `ccfs`: one binary that runs the CC-FS export server, manages its developers, imports and
//! simulates agent operation records, and acts as a client of any CC-FS server.
//!
//! A tour: [`cli`] holds the command line (clap derive); each command lives in a module under
//! [`cmd`]; [`simulate`] is the agent activity model behind `ccfs simulate` and `ccfs demo`;
//! [`progress`] draws progress bars on a terminal only; [`numbers`] is how every
//! command writes a number for people; [`output`] how the commands over the store print JSON,
//! tables and instants; [`signal`] is what stops `ccfs serve`;
//! [`logging`] is the log format. The commands are thin: the work is done
//! by `ccfs-server`, `ccfs-client` and `ccfs-protocol`.
//!
//! Errors are printed as `error: …` with their causes and exit with status 1; usage errors are
//! clap's (status 2).

mod cli;
mod cmd;
mod logging;
mod numbers;
mod output;
mod progress;
mod signal;
mod simulate;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(matches!(cli.command, Command::Serve(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Prints an error with its chain of causes, skipping a cause its parent's message already
/// ends with (error types that both show and expose their source).
fn fail(e: anyhow::Error) -> ExitCode {
    // The reader went away (`ccfs … | head`): nothing is wrong, stop quietly as Unix tools do.
    let broken_pipe = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
