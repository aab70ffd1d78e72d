//! Starting and stopping the whole server: the store, the file store, the listener (HTTPS by
//! default) and the background loops (export workers, callback delivery, retention), all
//! stopped together by one shutdown signal.
//!
//! On shutdown the listener stops accepting, requests in flight get a grace period, and each
//! loop finishes or gives back what it holds (an export worker releases its job to the queue),
//! so nothing is lost and nothing waits for a lease to run out when a node stops cleanly: once
//! the listener is done, the node's download slots are released too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::blobs::Blobs;
use crate::config::Config;
use crate::download_slots::DownloadSlots;
use crate::state::AppState;
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
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The client callbacks go out with cannot be built (an unreadable `callback_ca_cert`).
    #[error("TLS: {0}")]
    CallbackClient(#[from] crate::callback::ClientError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {}", listen_advice(.error))]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
    /// The file store does not answer at start.
    #[error(
        "cannot reach the file store {url} (blob_url): {error}; check the endpoint \
         (aws_endpoint_url / AWS_ENDPOINT_URL), the credentials and that the bucket exists"
    )]
    FileStore { url: String, error: String },
    /// The data directory cannot be created or written.
    #[error(
        "cannot use the data directory {}: {error}; choose a directory this user can write \
         (ccfs serve --data-dir, CCFS_DATA_DIR, or data_dir in the configuration file)",
        .path.display()
    )]
    DataDir {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The store named by `database_url` cannot be opened.
    #[error("cannot open the database {url}: {error}")]
    Database {
        url: String,
        error: crate::store::StoreError,
    },
}

/// Why an address cannot be bound, and what to do about it.
fn listen_advice(e: &std::io::Error) -> String {
    let what = "stop it or choose another address (ccfs serve --listen, CCFS_LISTEN, or listen \
                in the configuration file; port 0 picks a free one)";
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "the address is already in use: another program (another ccfs serve?) listens \
             there; {what}"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("{e}: the address is not one of this machine's; choose another address")
        }
        _ => format!("{e}"),
    }
}

/// Binds the listen address, before anything is created, so that a busy port stops a start
/// with nothing left behind.
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    let err = |error| ServerError::Listen { addr, error };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}

/// Creates the data directory when missing and checks that files can be written in it, so
/// that an unusable one is named as such before anything else is tried.
///
/// From here on everything this process creates is private to its owner (0700 directories,
/// 0600 files), and a data directory, local file store or SQLite database left readable by an
/// earlier version is made private too.
fn prepare_data_dir(config: &Config) -> Result<(), ServerError> {
    crate::files::private_from_now_on();
    let dir = &config.data_dir;
    let err = |error| ServerError::DataDir {
        path: dir.clone(),
        error,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    crate::files::make_private(dir).map_err(err)?;
    // The file store and the database may live outside the data directory.
    let private = |path: &Path| {
        crate::files::make_private(path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot make {} private: {e}", path.display()),
            )
        })
    };
    if let crate::urls::BlobUrl::Local(files) = config.blob_url() {
        private(&files)?;
    }
    if let crate::urls::DatabaseUrl::Sqlite(db) = config.database_url() {
        for file in sqlite_files(&db) {
            private(&file)?;
        }
    }
    let probe = dir.join(format!(".ccfs-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)
}

/// The paths a start is about to create, noted before it creates anything, so that a start
/// that fails can remove them again: only what did not exist before, never more.
#[derive(Debug, Default)]
struct Fresh {
    paths: Vec<PathBuf>,
}

impl Fresh {
    /// What starting with `config` may create: the data directory, the self-signed certificate
    /// and its key, the master key file, the database file (with SQLite's side files) and its
    /// directory, the file store's directory.
    fn before_start(config: &Config) -> Self {
        let mut fresh = Fresh::default();
        fresh.note(&config.data_dir);
        if !config.plain_http && config.tls_cert.is_none() {
            let tls = config.data_dir.join("tls");
            fresh.note(&tls.join("cert.pem"));
            fresh.note(&tls.join("key.pem"));
        }
        if config.master_key.is_none() {
            fresh.note(&config.master_key_path());
        }
        // A PostgreSQL database is not created by a start, and so not removed either.
        if let crate::urls::DatabaseUrl::Sqlite(db) = config.database_url() {
            fresh.note_database(&db);
        }
        // A bucket, like a PostgreSQL database, is not created by a start.
        if let crate::urls::BlobUrl::Local(dir) = config.blob_url() {
            fresh.note(&dir);
        }
        fresh.note(&config.work_dir());
        fresh
    }

    /// Notes an SQLite database file, with its side files, unless it exists.
    fn note_database(&mut self, db: &Path) {
        if !exists(db) {
            for file in sqlite_files(db) {
                self.note(&file);
            }
        }
    }

    /// Notes the outermost directory that creating `path` would create (`path` itself when its
    /// parent exists), unless a noted path already holds it.
    fn note(&mut self, path: &Path) {
        let mut outermost = None;
        let mut at = Some(path);
        while let Some(p) = at {
            if p.as_os_str().is_empty() || !missing(p) {
                break;
            }
            outermost = Some(p);
            at = p.parent();
        }
        if let Some(p) = outermost {
            if !self.paths.iter().any(|q| p.starts_with(q)) {
                self.paths.push(p.to_owned());
            }
        }
    }

    /// Removes what was noted, newest first.
    fn remove(self) {
        for path in self.paths.iter().rev() {
            let removed = match std::fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
                Ok(_) => std::fs::remove_file(path),
                Err(_) => continue,
            };
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), "cannot remove after a failed start: {e}");
            }
        }
    }
}

/// An SQLite database file and the side files SQLite makes beside it (WAL, shared memory,
/// rollback journal).
fn sqlite_files(db: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    ["", "-wal", "-shm", "-journal"]
        .into_iter()
        .map(move |side| {
            let mut name = db.to_owned().into_os_string();
            name.push(side);
            PathBuf::from(name)
        })
}

/// Whether nothing is at `path` (and not merely hidden by a permission error).
fn missing(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
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
        prepare_data_dir(&config)?;
        let url = config.database_url();
        let store = crate::store::open(&url, config.database_pool_size)
            .await
            .map_err(|error| ServerError::Database {
                url: url.to_string(),
                error,
            })?;
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

/// How long the start waits for the file store to answer.
const FILE_STORE_CHECK: Duration = Duration::from_secs(30);

/// Requests in flight get this long to finish after a shutdown signal.
const GRACE: Duration = Duration::from_secs(10);

/// A server that is listening and running its background loops.
pub struct RunningServer {
    /// The address actually bound (the port is known here when the configuration said 0).
    pub local_addr: SocketAddr,
    /// The certificate, unless the server speaks plain HTTP.
    pub tls: Option<TlsSetup>,
    state: Arc<AppState>,
    /// Stops the listener (which gives requests in flight [`GRACE`]) and the loops.
    shutdown: CancellationToken,
    listener: JoinHandle<()>,
    loops: Vec<JoinHandle<()>>,
    /// The download slots' renewal loop, and what stops it.
    renewal: (CancellationToken, JoinHandle<()>),
}

impl RunningServer {
    /// Opens everything and starts serving.
    ///
    /// A start that fails leaves nothing behind: the listen address is bound before anything
    /// is created, and what was created (data directory, certificate, master key, database,
    /// directories) is removed again. What existed before is never touched.
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        let listener = bind(config.listen)?;
        let callback_client = crate::callback::http_client(&config)?;
        let fresh = Fresh::before_start(&config);
        match Self::start_on(config, listener, callback_client).await {
            Ok(running) => Ok(running),
            Err(e) => {
                fresh.remove();
                Err(e)
            }
        }
    }

    async fn start_on(
        config: Config,
        listener: std::net::TcpListener,
        callback_client: reqwest::Client,
    ) -> Result<Self, ServerError> {
        prepare_data_dir(&config)?;
        let tls = if config.plain_http {
            None
        } else {
            Some(crate::tls::setup(&config)?)
        };
        let core = Core::open(config).await?;
        // A bucket that cannot be reached (a wrong endpoint, key or bucket name) stops the
        // start, as an unreachable database does, rather than failing every export later.
        let reach = tokio::time::timeout(FILE_STORE_CHECK, core.blobs.ping()).await;
        if let Some(error) = match reach {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {}s", FILE_STORE_CHECK.as_secs())),
        } {
            return Err(ServerError::FileStore {
                url: core.config.blob_url().to_string(),
                error,
            });
        }
        let node_name = core.config.node_name();
        let downloads = DownloadSlots::new(
            core.store.clone(),
            node_name.clone(),
            core.config.job_lease(),
        );
        let state = Arc::new(AppState {
            config: core.config.clone(),
            store: core.store,
            blobs: core.blobs,
            tenants: core.tenants,
            wake_exports: Arc::new(Notify::new()),
            wake_callbacks: Arc::new(Notify::new()),
            downloads,
            metrics: crate::telemetry::install(&node_name, crate::http::routes()),
            node_name,
        });

        let local_addr = listener.local_addr()?;
        // One signal stops the listener and the background loops alike.
        let shutdown = CancellationToken::new();
        let listener = crate::serve::spawn(
            listener,
            tls.as_ref().map(|t| t.server_config.clone()),
            crate::http::router(state.clone()),
            &state.config,
            shutdown.clone(),
            GRACE,
        )?;

        let exports = Arc::new(crate::export::Exports::of(&state));
        let mut loops = crate::export::spawn_workers(exports.clone(), shutdown.clone());
        loops.push(crate::export::spawn_work_sweeper(exports, shutdown.clone()));
        loops.push(crate::callback::spawn(
            state.clone(),
            callback_client,
            shutdown.clone(),
        ));
        loops.push(crate::retention::spawn(state.clone(), shutdown.clone()));
        // Download slots are renewed until the last download has ended, which is after the
        // other loops stop: a stop token of their own, fired once the listener is done.
        let stop_renewal = CancellationToken::new();
        let renewal =
            crate::download_slots::spawn_renewal(state.downloads.clone(), stop_renewal.clone());
        tracing::info!(addr = %local_addr, node = %state.node_name, "ccfs serving");
        Ok(Self {
            local_addr,
            tls,
            state,
            shutdown,
            listener,
            loops,
            renewal: (stop_renewal, renewal),
        })
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The developers of this server, to create and manage them in-process.
    pub fn tenants(&self) -> &Tenants {
        &self.state.tenants
    }

    /// The base URL clients use, e.g. `https://127.0.0.1:28443`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Stops accepting, lets requests in flight finish (up to a grace period), and stops the
    /// background loops, which give back what they hold.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for task in self.loops {
            if let Err(e) = task.await {
                tracing::warn!("a background task ended badly: {e}");
            }
        }
        if let Err(e) = self.listener.await {
            tracing::warn!("listener task: {e}");
        }
        // No request is left streaming: this node's download slots go now rather than at the
        // end of their leases.
        let (stop_renewal, renewal) = self.renewal;
        stop_renewal.cancel();
        if let Err(e) = renewal.await {
            tracing::warn!("the download slots' renewal ended badly: {e}");
        }
        self.state.downloads.release_all().await;
        tracing::info!("ccfs stopped");
    }
}
