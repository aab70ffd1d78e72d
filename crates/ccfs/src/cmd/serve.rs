//! `ccfs serve`: the flags override the loaded configuration, then the server runs until
//! SIGTERM or Ctrl-C.

use ccfs_server::{Config, RunningServer};

use crate::cli::ServeArgs;

/// Applies the command-line overrides to the configuration.
fn apply(mut config: Config, args: ServeArgs) -> Config {
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
        config.plain_http = false;
    }
    if args.plain_http {
        config.plain_http = true;
    }
    config
}

/// Starts the server, prints where it listens (and the certificate it presents), serves until
/// SIGTERM or Ctrl-C, then stops cleanly.
pub async fn run(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let mut config = apply(config, args);
    // The name is fixed here, once, so that the log lines (from now on) and the server (its job
    // leases and metrics) carry the same one.
    let node = config.node_name();
    crate::logging::set_node(&node);
    config.node_name = Some(node);
    // Listening before the start: a stop signal during it is not lost (see the function).
    let stop = crate::signal::shutdown();
    let running = RunningServer::start(config).await?;
    println!(
        "ccfs {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        running.base_url()
    );
    if let Some(tls) = &running.tls {
        let kind = if tls.self_signed { "self-signed " } else { "" };
        println!(
            "TLS {kind}certificate: {} (SHA-256 {})",
            tls.cert_path.display(),
            tls.fingerprint
        );
    } else {
        println!("plain HTTP: put a TLS-terminating balancer in front of this server");
    }
    println!("data directory: {}", running.config().data_dir.display());
    let signal = stop.await;
    tracing::info!(%signal, "shutting down");
    running.shutdown().await;
    Ok(())
}
