//! The replay part of the SQLite store: accepted signatures in `replay_cache`, and the purge of
//! expired ones and of idempotency keys that no longer answer.

use async_trait::async_trait;
use jiff::Timestamp;

use super::{ms, SqliteStore};
use crate::model::idempotency::idempotency_cutoff;
use crate::store::{Replay, StoreResult};

#[async_trait]
impl Replay for SqliteStore {
    async fn remember_signature(
        &self,
        signature: &str,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        // The trait passes no clock, so "expired" is judged by this machine's clock. An expired
        // entry is overwritten in the same statement; an unexpired one makes it change nothing.
        let done = sqlx::query(
            "INSERT INTO replay_cache (signature, expires_at) VALUES (?, ?) \
             ON CONFLICT (signature) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE replay_cache.expires_at <= ?",
        )
        .bind(signature)
        .bind(ms(expires_at))
        .bind(ms(Timestamp::now()))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge(&self, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_immediate().await?;
        sqlx::query("DELETE FROM replay_cache WHERE expires_at <= ?")
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= ?")
            .bind(ms(idempotency_cutoff(now)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
