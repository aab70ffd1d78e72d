//! The downloads part of the PostgreSQL store: a row of `download_slots` per download in
//! progress on any node.
//!
//! Concurrency: an acquire takes a transaction-scoped advisory lock on its developer before it
//! counts, as accepting a job does ([`super::jobs`]), so two nodes never both see room for the
//! last slot: READ COMMITTED alone would let both count, both insert, and the limit be passed.
//! The lock has a key of its own (seed 1 of `hashtextextended`; job acceptance uses seed 0), so
//! a download and a generate of one developer do not wait for each other. Renewals, releases and
//! purges are single statements and take no lock: they only shorten or lengthen rows the lock
//! never needs to see consistently (a purged or released row is one an acquire would not count).

use async_trait::async_trait;
use jiff::Timestamp;

use super::{settle, PgStore};
use crate::store::convert::ms;
use crate::store::{DownloadSlotId, Downloads, StoreResult};

#[async_trait]
impl Downloads for PgStore {
    async fn acquire_download(
        &self,
        developer: &str,
        holder: &str,
        max: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<DownloadSlotId>> {
        let mut tx = self.pool.begin().await?;
        let result = async {
            // One acquire per developer at a time, across every node; the lock ends with the
            // transaction.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))")
                .bind(developer)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM download_slots WHERE developer_id = $1 AND lease_until <= $2")
                .bind(developer)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
            let held: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM download_slots WHERE developer_id = $1")
                    .bind(developer)
                    .fetch_one(&mut *tx)
                    .await?;
            if held >= i64::from(max) {
                return Ok(None);
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO download_slots (developer_id, holder, lease_until) \
                 VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(developer)
            .bind(holder)
            .bind(ms(lease_until))
            .fetch_one(&mut *tx)
            .await?;
            Ok(Some(DownloadSlotId(id)))
        }
        .await;
        // Committed when full too: the purge of ended leases is kept.
        settle(tx, result, |_| true).await
    }

    async fn renew_downloads(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE download_slots SET lease_until = $1 WHERE holder = $2 AND lease_until > $3",
        )
        .bind(ms(until))
        .bind(holder)
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn release_download(&self, id: DownloadSlotId) -> StoreResult<()> {
        sqlx::query("DELETE FROM download_slots WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_downloads_of(&self, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM download_slots WHERE holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_downloads(&self, now: Timestamp) -> StoreResult<()> {
        sqlx::query("DELETE FROM download_slots WHERE lease_until <= $1")
            .bind(ms(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
