//! Validating incoming records, shared by the import interface and the `ccfs import` command:
//! a record's developer must exist, and its local times are read in that developer's time zone.

use std::collections::HashMap;
use std::sync::Arc;

use ccfs_protocol::record::{FieldError, RawRecord};
use ccfs_protocol::Record;
use jiff::tz::TimeZone;

use crate::store::{InsertOutcome, OnConflict, Store, StoreError};

/// Why a record cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("developer_id: no developer '{0}'")]
    UnknownDeveloper(String),
    #[error("{}", .0.explain())]
    Field(FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks records against the developers they name; caches each developer's time zone.
pub struct Ingest {
    store: Arc<dyn Store>,
    zones: HashMap<String, Option<TimeZone>>,
}

impl Ingest {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            zones: HashMap::new(),
        }
    }

    async fn zone(&mut self, developer_id: &str) -> Result<Option<TimeZone>, StoreError> {
        // A hit allocates nothing: this runs for every record.
        if let Some(z) = self.zones.get(developer_id) {
            return Ok(z.clone());
        }
        let zone = self
            .store
            .developer(developer_id)
            .await?
            .map(|d| d.timezone.zone().clone());
        self.zones.insert(developer_id.to_owned(), zone.clone());
        Ok(zone)
    }

    /// Validates one record.
    pub async fn check(&mut self, raw: RawRecord) -> Result<Record, IngestError> {
        let tz = self.zone_of(&raw).await?;
        raw.validate(&tz).map_err(IngestError::Field)
    }

    /// As [`Ingest::check`], into `out`, reusing its strings' memory (see
    /// [`RawRecord::validate_into`]).
    pub async fn check_into(
        &mut self,
        raw: &RawRecord,
        out: &mut Record,
    ) -> Result<(), IngestError> {
        let tz = self.zone_of(raw).await?;
        raw.validate_into(&tz, out).map_err(IngestError::Field)
    }

    /// The time zone `raw`'s local times are read in: its developer's.
    async fn zone_of(&mut self, raw: &RawRecord) -> Result<TimeZone, IngestError> {
        let developer = raw.developer_id();
        // Shape errors first, so an empty developer_id is reported as empty, not as unknown:
        // validation in any zone finds them.
        if developer.is_empty() || ccfs_protocol::AppId::parse(developer).is_none() {
            return Ok(TimeZone::UTC);
        }
        match self.zone(developer).await? {
            Some(tz) => Ok(tz),
            None => Err(IngestError::UnknownDeveloper(developer.to_owned())),
        }
    }

    /// Stores checked records in one transaction (see `Store::insert_records`).
    pub async fn insert(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> Result<InsertOutcome, StoreError> {
        self.store.insert_records(records, on_conflict).await
    }

    /// What [`Ingest::insert`] would do now, storing nothing (see `Store::check_records`).
    pub async fn check_stored(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> Result<InsertOutcome, StoreError> {
        self.store.check_records(records, on_conflict).await
    }
}
