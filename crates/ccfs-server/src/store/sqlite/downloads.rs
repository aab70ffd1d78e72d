//! The downloads part of the SQLite store: a row of `download_slots` per download in progress
//! in any process on the database file.
//!
//! Concurrency: an acquire is one `BEGIN IMMEDIATE` transaction (purge, count, insert), so it
//! holds SQLite's write lock from its first statement and no other acquire, in this process or
//! another one on the same file, can count in between. Renewals, releases and purges are single
//! statements in autocommit mode.

use async_trait::async_trait;
use jiff::Timestamp;

use super::{ms, SqliteStore};
use crate::store::{DownloadSlotId, Downloads, StoreResult};

#[async_trait]
impl Downloads for SqliteStore {
    async fn acquire_download(
        &self,
        developer: &str,
        holder: &str,
        max: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<DownloadSlotId>> {
        let mut tx = self.begin_immediate().await?;
        sqlx::query("DELETE FROM download_slots WHERE developer_id = ? AND lease_until <= ?")
            .bind(developer)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        let held: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM download_slots WHERE developer_id = ?")
                .bind(developer)
                .fetch_one(&mut *tx)
                .await?;
        let slot = if held >= i64::from(max) {
            None
        } else {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO download_slots (developer_id, holder, lease_until) \
                 VALUES (?, ?, ?) RETURNING id",
            )
            .bind(developer)
            .bind(holder)
            .bind(ms(lease_until))
            .fetch_one(&mut *tx)
            .await?;
            Some(DownloadSlotId(id))
        };
        // Committed when full too: the purge of ended leases is kept.
        tx.commit().await?;
        Ok(slot)
    }

    async fn renew_downloads(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE download_slots SET lease_until = ? WHERE holder = ? AND lease_until > ?",
        )
        .bind(ms(until))
        .bind(holder)
        .bind(ms(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn release_download(&self, id: DownloadSlotId) -> StoreResult<()> {
        sqlx::query("DELETE FROM download_slots WHERE id = ?")
            .bind(id.0)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn release_downloads_of(&self, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM download_slots WHERE holder = ?")
            .bind(holder)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn purge_downloads(&self, now: Timestamp) -> StoreResult<()> {
        sqlx::query("DELETE FROM download_slots WHERE lease_until <= ?")
            .bind(ms(now))
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
