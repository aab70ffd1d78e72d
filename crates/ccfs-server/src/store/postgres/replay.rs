//! The replay part of the PostgreSQL store: accepted signatures in `replay_cache`, shared by
//! every node, and the purge of expired ones and of idempotency keys that no longer answer.

use async_trait::async_trait;
use jiff::Timestamp;

use super::PgStore;
use crate::model::idempotency::idempotency_cutoff;
use crate::store::convert::ms;
use crate::store::{Replay, StoreResult};

#[async_trait]
impl Replay for PgStore {
    async fn remember_signature(
        &self,
        signature: &str,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        // The trait passes no clock, so "expired" is judged by this machine's clock. An expired
        // entry is overwritten in the same statement; an unexpired one makes it change nothing.
        // Two nodes inserting the same signature at once: the unique key makes one of them
        // wait for the other and then see its row, so exactly one gets true.
        let done = sqlx::query(
            "INSERT INTO replay_cache (signature, expires_at) VALUES ($1, $2) \
             ON CONFLICT (signature) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE replay_cache.expires_at <= $3",
        )
        .bind(signature)
        .bind(ms(expires_at))
        .bind(ms(Timestamp::now()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge(&self, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM replay_cache WHERE expires_at <= $1")
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= $1")
            .bind(ms(idempotency_cutoff(now)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
