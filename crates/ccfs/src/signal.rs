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

/// Listens for SIGTERM and Ctrl-C (SIGINT) from this call on, and resolves on the first, with
/// which it was.
///
/// The handlers are installed here, not when the future is first polled: `ccfs serve` calls
/// this before it starts, so a SIGTERM that comes while it still starts up or prints its
/// start-up lines is kept for it, rather than killing the process by the default action (a
/// service manager, or a test, may stop it as soon as it answers).
pub fn shutdown() -> impl std::future::Future<Output = Signal> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // A handler that cannot be installed leaves that signal to its default action.
        let interrupt = signal(SignalKind::interrupt()).ok();
        let term = signal(SignalKind::terminate()).ok();
        async move {
            tokio::select! {
                _ = received(interrupt) => Signal::Interrupt,
                _ = received(term) => Signal::Term,
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        Signal::Interrupt
    }
}

/// Resolves when `signal` arrives; never without a handler.
#[cfg(unix)]
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
