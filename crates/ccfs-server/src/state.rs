//! What every handler and background loop shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;

use crate::blobs::Blobs;
use crate::config::Config;
use crate::download_slots::DownloadSlots;
use crate::store::Store;
use crate::tenants::Tenants;

/// Shared server state.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub blobs: Blobs,
    pub tenants: Tenants,
    /// Woken when a job is queued, so an idle export worker starts at once (shared with the
    /// workers: see [`crate::export::Exports`]).
    pub wake_exports: Arc<Notify>,
    /// Woken when a callback is enqueued.
    pub wake_callbacks: Arc<Notify>,
    /// Downloads in progress, counted in the store across the cluster (flow control).
    pub downloads: DownloadSlots,
    pub metrics: PrometheusHandle,
    /// This node's name ([`Config::node_name`]): the owner of its job leases and download
    /// slots, the `node` label of its metrics.
    pub node_name: String,
}
