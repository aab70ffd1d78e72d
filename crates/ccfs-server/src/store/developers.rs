//! The developers part of the store: developers (tenants) and the accounts they own.

use async_trait::async_trait;

use super::StoreResult;
use crate::model::Developer;

#[async_trait]
pub trait Developers: Send + Sync + 'static {
    /// Fails with `Conflict` when the app id exists.
    async fn insert_developer(&self, d: &Developer) -> StoreResult<()>;
    async fn developer(&self, app_id: &str) -> StoreResult<Option<Developer>>;
    /// All developers, by app id.
    async fn developers(&self) -> StoreResult<Vec<Developer>>;
    /// Replaces everything of an existing developer (accounts too); `NotFound` otherwise.
    async fn update_developer(&self, d: &Developer) -> StoreResult<()>;
}
