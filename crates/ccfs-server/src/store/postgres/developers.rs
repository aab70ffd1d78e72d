//! The developers part of the PostgreSQL store: a row of `developers` each, with the accounts a
//! developer owns in `developer_accounts`.

use async_trait::async_trait;
use ccfs_protocol::AppId;
use sqlx::postgres::PgRow;

use super::jobs::jobs_of;
use super::{get, settle, PgStore, Tx};
use crate::model::{Developer, Role};
use crate::store::convert::{
    corrupt, from_ms, is_unique_violation, ms, opt_from_ms, parse_app_id, parse_zone, to_u64,
};
use crate::store::developers::HELD_TABLES;
use crate::store::{DeleteDeveloper, Developers, Holdings, StoreError, StoreResult};

const DEVELOPER_SELECT: &str =
    "SELECT app_id, name, secret_enc, old_secret_enc, old_secret_until, \
     timezone, roles, enabled, csv_header, created_at, \
     ARRAY(SELECT account_id FROM developer_accounts a WHERE a.app_id = d.app_id \
           ORDER BY account_id) AS accounts FROM developers d";

fn roles_text(roles: &[Role]) -> String {
    let mut names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

fn developer_from_row(row: &PgRow) -> StoreResult<Developer> {
    let app_id = parse_app_id(&get::<String>(row, "app_id")?)?;
    let roles_text: String = get(row, "roles")?;
    let mut roles = roles_text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            Role::parse(s).ok_or_else(|| corrupt(format_args!("developer {app_id}: role {s:?}")))
        })
        .collect::<StoreResult<Vec<Role>>>()?;
    roles.sort_unstable();
    roles.dedup();
    let mut accounts: Vec<String> = get(row, "accounts")?;
    accounts.sort_unstable();
    accounts.dedup();
    Ok(Developer {
        name: get(row, "name")?,
        secret_enc: get(row, "secret_enc")?,
        old_secret_enc: get(row, "old_secret_enc")?,
        old_secret_until: opt_from_ms(get(row, "old_secret_until")?, "old_secret_until")?,
        timezone: parse_zone(
            &get::<String>(row, "timezone")?,
            &format!("developer {app_id}"),
        )?,
        accounts,
        roles,
        enabled: get(row, "enabled")?,
        csv_header: get(row, "csv_header")?,
        created_at: from_ms(get(row, "created_at")?, "created_at")?,
        app_id,
    })
}

async fn insert_accounts(tx: &mut Tx, d: &Developer) -> StoreResult<()> {
    // DO NOTHING: a duplicate in the list means the same ownership, not a conflict.
    sqlx::query(
        "INSERT INTO developer_accounts (app_id, account_id) \
         SELECT $1, a FROM UNNEST($2::text[]) AS a ON CONFLICT DO NOTHING",
    )
    .bind(d.app_id.as_str())
    .bind(&d.accounts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The developer columns written by insert and update, bound as `$2…$10` by
/// [`bind_developer`]; `app_id` is `$1` in both statements.
const DEVELOPER_FIELDS: [&str; 9] = [
    "name",
    "secret_enc",
    "old_secret_enc",
    "old_secret_until",
    "timezone",
    "roles",
    "enabled",
    "csv_header",
    "created_at",
];

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds `app_id`, then [`DEVELOPER_FIELDS`].
fn bind_developer<'q>(query: PgQuery<'q>, d: &'q Developer) -> PgQuery<'q> {
    query
        .bind(d.app_id.as_str())
        .bind(&d.name)
        .bind(&d.secret_enc)
        .bind(&d.old_secret_enc)
        .bind(d.old_secret_until.map(ms))
        .bind(d.timezone.name())
        .bind(roles_text(&d.roles))
        .bind(d.enabled)
        .bind(d.csv_header)
        .bind(ms(d.created_at))
}

#[async_trait]
impl Developers for PgStore {
    async fn insert_developer(&self, d: &Developer) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let result = async {
            let params = (2..=10).map(|i| format!("${i}")).collect::<Vec<_>>();
            let sql = format!(
                "INSERT INTO developers (app_id, {}) VALUES ($1, {})",
                DEVELOPER_FIELDS.join(", "),
                params.join(", ")
            );
            let inserted = bind_developer(sqlx::query(&sql), d).execute(&mut *tx).await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(format!("developer {}", d.app_id)))
                }
                Err(e) => return Err(e.into()),
            }
            insert_accounts(&mut tx, d).await
        }
        .await;
        settle(tx, result, |_| true).await
    }

    async fn developer(&self, app_id: &str) -> StoreResult<Option<Developer>> {
        let sql = format!("{DEVELOPER_SELECT} WHERE app_id = $1");
        let row = sqlx::query(&sql)
            .bind(app_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(developer_from_row).transpose()
    }

    async fn developers(&self) -> StoreResult<Vec<Developer>> {
        // COLLATE "C": by app id byte by byte, as the SQLite store orders them.
        let sql = format!("{DEVELOPER_SELECT} ORDER BY app_id COLLATE \"C\"");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(developer_from_row).collect()
    }

    async fn update_developer(&self, d: &Developer) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let result = async {
            let set = DEVELOPER_FIELDS
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} = ${}", i + 2))
                .collect::<Vec<_>>();
            let sql = format!("UPDATE developers SET {} WHERE app_id = $1", set.join(", "));
            let updated = bind_developer(sqlx::query(&sql), d)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("developer {}", d.app_id)));
            }
            sqlx::query("DELETE FROM developer_accounts WHERE app_id = $1")
                .bind(d.app_id.as_str())
                .execute(&mut *tx)
                .await?;
            insert_accounts(&mut tx, d).await
        }
        .await;
        settle(tx, result, |_| true).await
    }
    async fn holdings(&self, app_id: &AppId) -> StoreResult<Holdings> {
        let mut counts = [0u64; 4];
        for (n, table) in counts.iter_mut().zip(HELD_TABLES) {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE developer_id = $1");
            let count: i64 = sqlx::query_scalar(&sql)
                .bind(app_id.as_str())
                .fetch_one(&self.pool)
                .await?;
            *n = to_u64(count, table)?;
        }
        Ok(Holdings::of_counts(counts))
    }

    async fn delete_developer(&self, app_id: &AppId) -> StoreResult<DeleteDeveloper> {
        let id = app_id.as_str();
        let mut tx = self.pool.begin().await?;
        let result = async {
            // The lock generate takes to accept a job of this developer (see `jobs`): no job of
            // it is accepted, on any node, between the look at its jobs and their deletion.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // A developer's records may take longer to delete than the time limit made for
            // the statements of requests (see `super`); this transaction only is let run.
            sqlx::query("SET LOCAL statement_timeout = 0")
                .execute(&mut *tx)
                .await?;
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM developers WHERE app_id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Ok(DeleteDeveloper::NotFound);
            }
            let jobs = jobs_of(&mut *tx, id).await?;
            let active: Vec<_> = jobs
                .iter()
                .filter(|j| j.state.is_active())
                .cloned()
                .collect();
            if !active.is_empty() {
                return Ok(DeleteDeveloper::Active(active));
            }
            // Children before their parents (see `HELD_TABLES`); each count is of the rows this
            // deleted.
            let mut counts = [0u64; 4];
            for (n, table) in counts.iter_mut().zip(HELD_TABLES) {
                let sql = format!("DELETE FROM {table} WHERE developer_id = $1");
                *n = sqlx::query(&sql)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            sqlx::query("DELETE FROM download_slots WHERE developer_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // Its accounts go with it (ON DELETE CASCADE).
            sqlx::query("DELETE FROM developers WHERE app_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok(DeleteDeveloper::Deleted {
                held: Holdings::of_counts(counts),
                jobs,
            })
        }
        .await;
        settle(tx, result, |r| matches!(r, DeleteDeveloper::Deleted { .. })).await
    }
}
