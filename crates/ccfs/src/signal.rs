//! The signals that stop a long-running command: SIGTERM (a service manager) and Ctrl-C.
//!
//! The library never waits for a signal itself; the commands that run until stopped (`ccfs
//! serve`, `ccfs client receive`) wait for this and then stop what they started.

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown() {
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
        _ = ctrl_c => {}
        _ = term => {}
    }
}
