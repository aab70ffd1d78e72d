//! Starting and stopping the whole server. (Being written.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::blobs::Blobs;
use crate::config::Config;
use crate::store::Store;
use crate::tenants::Tenants;

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
        Ok(Self { config: Arc::new(config), store, blobs, tenants })
    }
}

/// A server that is listening. (Being written.)
pub struct Server;

/// A running server. (Being written.)
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub cert_path: Option<PathBuf>,
}
