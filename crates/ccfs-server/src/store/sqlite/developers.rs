//! The developers part of the SQLite store: a row of `developers` each, with the accounts a
//! developer owns in `developer_accounts`.

use async_trait::async_trait;
use ccfs_protocol::AppId;
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, Transaction};

use super::jobs::jobs_of;
use super::{corrupt, from_ms, get, is_unique_violation, ms, opt_from_ms, parse_zone, SqliteStore};
use crate::model::{Developer, Role};
use crate::store::developers::HELD_TABLES;
use crate::store::{DeleteDeveloper, Developers, Holdings, StoreError, StoreResult};

const DEVELOPER_SELECT: &str =
    "SELECT app_id, name, secret_enc, old_secret_enc, old_secret_until, \
     timezone, roles, enabled, csv_header, created_at, \
     (SELECT json_group_array(account_id) FROM developer_accounts a WHERE a.app_id = d.app_id) \
     AS accounts FROM developers d";

fn roles_text(roles: &[Role]) -> String {
    let mut names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

fn developer_from_row(row: &SqliteRow) -> StoreResult<Developer> {
    let app_id: String = get(row, "app_id")?;
    let app_id = AppId::parse(&app_id).ok_or_else(|| corrupt(format_args!("app id {app_id:?}")))?;
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
    let accounts_json: String = get(row, "accounts")?;
    let mut accounts: Vec<String> = serde_json::from_str(&accounts_json)
        .map_err(|e| corrupt(format_args!("developer {app_id}: accounts: {e}")))?;
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

async fn insert_accounts(tx: &mut Transaction<'static, Sqlite>, d: &Developer) -> StoreResult<()> {
    for account in &d.accounts {
        // OR IGNORE: a duplicate in the list means the same ownership, not a conflict.
        sqlx::query("INSERT OR IGNORE INTO developer_accounts (app_id, account_id) VALUES (?, ?)")
            .bind(d.app_id.as_str())
            .bind(account)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The developer columns written by insert and update, in the order [`bind_developer`] binds
/// them; `app_id` follows as the last parameter of both statements.
const DEVELOPER_FIELDS: &str = "name, secret_enc, old_secret_enc, old_secret_until, timezone, \
     roles, enabled, csv_header, created_at";

/// Binds [`DEVELOPER_FIELDS`], then `app_id`.
fn bind_developer<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    d: &'q Developer,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(&d.name)
        .bind(&d.secret_enc)
        .bind(&d.old_secret_enc)
        .bind(d.old_secret_until.map(ms))
        .bind(d.timezone.name())
        .bind(roles_text(&d.roles))
        .bind(d.enabled)
        .bind(d.csv_header)
        .bind(ms(d.created_at))
        .bind(d.app_id.as_str())
}

#[async_trait]
impl Developers for SqliteStore {
    async fn insert_developer(&self, d: &Developer) -> StoreResult<()> {
        let mut tx = self.begin_immediate().await?;
        let sql = format!(
            "INSERT INTO developers ({DEVELOPER_FIELDS}, app_id) VALUES ({})",
            ["?"; 10].join(", ")
        );
        let inserted = bind_developer(sqlx::query(&sql), d).execute(&mut *tx).await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("developer {}", d.app_id)))
            }
            Err(e) => return Err(e.into()),
        }
        insert_accounts(&mut tx, d).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn developer(&self, app_id: &str) -> StoreResult<Option<Developer>> {
        let sql = format!("{DEVELOPER_SELECT} WHERE app_id = ?");
        let row = sqlx::query(&sql)
            .bind(app_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(developer_from_row).transpose()
    }

    async fn developers(&self) -> StoreResult<Vec<Developer>> {
        let sql = format!("{DEVELOPER_SELECT} ORDER BY app_id");
        let rows = sqlx::query(&sql).fetch_all(&self.reader).await?;
        rows.iter().map(developer_from_row).collect()
    }

    async fn update_developer(&self, d: &Developer) -> StoreResult<()> {
        let mut tx = self.begin_immediate().await?;
        let set = DEVELOPER_FIELDS
            .split(", ")
            .map(|c| format!("{c} = ?"))
            .collect::<Vec<_>>();
        let sql = format!("UPDATE developers SET {} WHERE app_id = ?", set.join(", "));
        let updated = bind_developer(sqlx::query(&sql), d)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("developer {}", d.app_id)));
        }
        sqlx::query("DELETE FROM developer_accounts WHERE app_id = ?")
            .bind(d.app_id.as_str())
            .execute(&mut *tx)
            .await?;
        insert_accounts(&mut tx, d).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn holdings(&self, app_id: &AppId) -> StoreResult<Holdings> {
        let mut counts = [0u64; 4];
        for (n, table) in counts.iter_mut().zip(HELD_TABLES) {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE developer_id = ?");
            let count: i64 = sqlx::query_scalar(&sql)
                .bind(app_id.as_str())
                .fetch_one(&self.reader)
                .await?;
            *n = super::to_u64(count, table)?;
        }
        Ok(Holdings::of_counts(counts))
    }

    async fn delete_developer(&self, app_id: &AppId) -> StoreResult<DeleteDeveloper> {
        let id = app_id.as_str();
        // The write lock from the first statement: no job of the developer is accepted between
        // the look at its jobs and their deletion.
        let mut tx = self.begin_immediate().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM developers WHERE app_id = ?")
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
            let sql = format!("DELETE FROM {table} WHERE developer_id = ?");
            *n = sqlx::query(&sql)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        sqlx::query("DELETE FROM download_slots WHERE developer_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Its accounts go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM developers WHERE app_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DeleteDeveloper::Deleted {
            held: Holdings::of_counts(counts),
            jobs,
        })
    }
}
