//! The signals that stop a long-running command: SIGTERM (a service manager) and Ctrl-C.
//!
//! The library never waits for a signal itself; the commands that run until stopped (`ccfs
//! serve`, `ccfs client receive`) wait for this and then stop what they started.

/// A signal that stops a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: a service manager stops the process.
    Term,
    /// SIGINT: Ctrl-C.
    Interrupt,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Term => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        })
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT), with which it was.
pub async fn shutdown() -> Signal {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => Signal::Interrupt,
        _ = term => Signal::Term,
    }
}
