//! What every handler and background loop shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;

use crate::blobs::Blobs;
use crate::config::Config;
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
    pub downloads: DownloadSlots,
    pub metrics: PrometheusHandle,
    /// This node's name ([`Config::node_name`]): the owner of its job leases, the `node` label
    /// of its metrics.
    pub node_name: String,
}

/// Counts downloads in progress per developer (flow control, 0300008). Per process: each node
/// of a cluster enforces its own limit.
#[derive(Default)]
pub struct DownloadSlots {
    in_use: Arc<Mutex<HashMap<String, u32>>>,
}

/// One download in progress; frees its slot when dropped (when the body is fully sent or the
/// client goes away).
pub struct DownloadSlot {
    in_use: Arc<Mutex<HashMap<String, u32>>>,
    developer: String,
}

impl DownloadSlots {
    /// A slot for `developer`, or `None` when it already has `max` downloads in progress.
    pub fn acquire(&self, developer: &str, max: u32) -> Option<DownloadSlot> {
        let mut map = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(developer.to_owned()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(DownloadSlot {
            in_use: self.in_use.clone(),
            developer: developer.to_owned(),
        })
    }
}

impl Drop for DownloadSlot {
    fn drop(&mut self) {
        let mut map = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.developer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.developer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_freed() {
        let slots = DownloadSlots::default();
        let a = slots.acquire("d", 2).unwrap();
        let _b = slots.acquire("d", 2).unwrap();
        assert!(slots.acquire("d", 2).is_none());
        assert!(slots.acquire("e", 2).is_some());
        drop(a);
        assert!(slots.acquire("d", 2).is_some());
    }
}
