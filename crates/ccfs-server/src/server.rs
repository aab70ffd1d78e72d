//! Starting and stopping the whole server: the store, the file store, the listener (HTTPS by
//! default) and the background loops (export workers, callback delivery, retention), all
//! stopped together by one shutdown signal.
//!
//! On shutdown the listener stops accepting, requests in flight get a grace period, and each
//! loop finishes or gives back what it holds (an export worker releases its job to the queue),
//! so nothing is lost and nothing waits for a lease to run out when a node stops cleanly.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::blobs::Blobs;
use crate::config::Config;
use crate::state::{AppState, DownloadSlots};
use crate::store::Store;
use crate::tenants::Tenants;
use crate::tls::TlsSetup;

/// An error starting the server or opening its parts.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobError),
    #[error(transparent)]
    Tenants(#[from] crate::tenants::TenantError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The parts the commands need without a listener: store, file store, developers.
#[derive(Clone)]
pub struct Core {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub blobs: Blobs,
    pub tenants: Tenants,
}

impl Core {
    /// Opens (and creates on first use) the data directory, store, file store and master key.
    pub async fn open(config: Config) -> Result<Self, ServerError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store = crate::store::open(&config.database_url()).await?;
        let blobs = Blobs::open(&config)?;
        let key = Arc::new(crate::tenants::MasterKey::load(&config)?);
        let tenants = Tenants::new(store.clone(), key, &config);
        Ok(Self {
            config: Arc::new(config),
            store,
            blobs,
            tenants,
        })
    }
}

/// Requests in flight get this long to finish after a shutdown signal.
const GRACE: Duration = Duration::from_secs(10);

/// The process-wide metrics recorder (the `metrics` facade has one global recorder).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

fn node_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    )
}

/// A server that is listening and running its background loops.
pub struct RunningServer {
    /// The address actually bound (the port is known here when the configuration said 0).
    pub local_addr: SocketAddr,
    /// The certificate, unless the server speaks plain HTTP.
    pub tls: Option<TlsSetup>,
    pub state: Arc<AppState>,
    handle: axum_server::Handle,
    shutdown: CancellationToken,
    listener: JoinHandle<std::io::Result<()>>,
    loops: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Opens everything and starts serving.
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        let tls = if config.plain_http {
            None
        } else {
            Some(crate::tls::setup(&config)?)
        };
        let callback_client =
            crate::callback::http_client(&config).map_err(|e| ServerError::Tls(e.to_string()))?;
        let core = Core::open(config).await?;
        let state = Arc::new(AppState {
            config: core.config.clone(),
            store: core.store,
            blobs: core.blobs,
            tenants: core.tenants,
            wake_exports: Notify::new(),
            wake_callbacks: Notify::new(),
            downloads: DownloadSlots::default(),
            metrics: metrics_handle(),
            node_id: node_id(),
        });

        let listener = std::net::TcpListener::bind(state.config.listen)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let handle = axum_server::Handle::new();
        let app = crate::http::router(state.clone()).into_make_service();
        let listener = match &tls {
            Some(t) => {
                let rustls =
                    axum_server::tls_rustls::RustlsConfig::from_config(t.server_config.clone());
                let server = axum_server::from_tcp_rustls(listener, rustls).handle(handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
            None => {
                let server = axum_server::from_tcp(listener).handle(handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
        };

        let shutdown = CancellationToken::new();
        let mut loops = crate::export::spawn_workers(state.clone(), shutdown.clone());
        loops.push(crate::callback::spawn(
            state.clone(),
            callback_client,
            shutdown.clone(),
        ));
        loops.push(crate::retention::spawn(state.clone(), shutdown.clone()));
        tracing::info!(addr = %local_addr, node = %state.node_id, "ccfs serving");
        Ok(Self {
            local_addr,
            tls,
            state,
            handle,
            shutdown,
            listener,
            loops,
        })
    }

    /// The base URL clients use, e.g. `https://127.0.0.1:28443`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Stops accepting, lets requests in flight finish (up to a grace period), and stops the
    /// background loops, which give back what they hold.
    pub async fn shutdown(self) {
        self.handle.graceful_shutdown(Some(GRACE));
        self.shutdown.cancel();
        for task in self.loops {
            if let Err(e) = task.await {
                tracing::warn!("a background task ended badly: {e}");
            }
        }
        match self.listener.await {
            Ok(Err(e)) => tracing::warn!("listener: {e}"),
            Err(e) => tracing::warn!("listener task: {e}"),
            Ok(Ok(())) => {}
        }
        tracing::info!("ccfs stopped");
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
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

/// `ccfs serve`: starts the server, prints where it listens (and the certificate it presents),
/// serves until SIGTERM or Ctrl-C, then stops cleanly.
pub async fn run(config: Config) -> Result<(), ServerError> {
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
    println!(
        "data directory: {}",
        running.state.config.data_dir.display()
    );
    shutdown_signal().await;
    println!("shutting down");
    running.shutdown().await;
    Ok(())
}
