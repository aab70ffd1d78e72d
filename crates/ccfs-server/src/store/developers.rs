//! The developers part of the store: developers (tenants) and the accounts they own, and the
//! removal of a developer with everything the store holds of it.

use async_trait::async_trait;
use ccfs_protocol::AppId;

use super::StoreResult;
use crate::model::{Developer, Job};

/// How many rows the store holds of one developer, besides its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Its jobs, in every state.
    pub jobs: u64,
    /// The callbacks of its jobs.
    pub callbacks: u64,
    /// The idempotency keys of its generate calls.
    pub idempotency_keys: u64,
    /// The records it owns (`developer_id`), whoever imported them.
    pub records: u64,
}

/// The tables holding a developer's rows that [`Holdings`] counts, each with a `developer_id`
/// column, in the order a deletion takes them: the children of `jobs` first.
pub(crate) const HELD_TABLES: [&str; 4] = ["callbacks", "idempotency_keys", "jobs", "records"];

impl Holdings {
    /// The counts of [`HELD_TABLES`], in its order.
    pub(crate) fn of_counts([callbacks, idempotency_keys, jobs, records]: [u64; 4]) -> Self {
        Self {
            jobs,
            callbacks,
            idempotency_keys,
            records,
        }
    }
}

/// The answer of [`Developers::delete_developer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteDeveloper {
    /// Deleted, with what it held: the rows deleted, and its jobs as they were (whose files the
    /// caller deletes from the file store).
    Deleted {
        held: Holdings,
        jobs: Vec<Job>,
    },
    /// Refused: these jobs of the developer are queued or running.
    Active(Vec<Job>),
    NotFound,
}

#[async_trait]
pub trait Developers: Send + Sync + 'static {
    /// Fails with `Conflict` when the app id exists.
    async fn insert_developer(&self, d: &Developer) -> StoreResult<()>;
    async fn developer(&self, app_id: &str) -> StoreResult<Option<Developer>>;
    /// All developers, by app id.
    async fn developers(&self) -> StoreResult<Vec<Developer>>;
    /// Replaces everything of an existing developer (accounts too); `NotFound` otherwise.
    async fn update_developer(&self, d: &Developer) -> StoreResult<()>;
    /// What the store holds of a developer (zeros for one that does not exist).
    async fn holdings(&self, app_id: &AppId) -> StoreResult<Holdings>;
    /// Deletes a developer and everything of it, in one transaction: its accounts, jobs, their
    /// callbacks, its idempotency keys, the records it owns and its download slots. Refused
    /// while it has a job queued or running; no job of it can be accepted meanwhile. Records
    /// an `ingest` developer imported for others belong to those others and stay.
    async fn delete_developer(&self, app_id: &AppId) -> StoreResult<DeleteDeveloper>;
}
