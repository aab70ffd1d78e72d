//! `ccfs serve`: the flags override the loaded configuration, then the server runs until
//! SIGTERM or Ctrl-C.

use ccfs_server::Config;

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

pub async fn run(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let config = apply(config, args);
    ccfs_server::server::run(config).await?;
    Ok(())
}
