//! `ccfs app …`: developer management over `ccfs_server::Tenants`, and the deletion of a
//! developer with all it holds over `ccfs_server::Admin`.
//!
//! Only `create` and `rotate-secret` ever print a secret key, each the one it just made; the
//! other subcommands show a developer without any secret, sealed or not.

use anyhow::{bail, Context};
use ccfs_server::model::Developer;
use ccfs_server::{
    Admin, AdminError, Config, Core, DeletePlan, NewApp, OldSecret, StoreError, TenantError,
};
use serde::Serialize;

use crate::cli::{AppArgs, AppCommand, CreateArgs, DeleteArgs};
use crate::numbers::counted;
use crate::output::{print_json, print_table, short_time, time};

pub async fn run(config: Config, args: AppArgs) -> anyhow::Result<()> {
    let core = Core::open(config).await.context("cannot open the store")?;
    let tenants = &core.tenants;
    match args.command {
        AppCommand::Create(a) => {
            let requested = a.app_id.clone();
            let (dev, secret) = match tenants.create(new_app(a)).await {
                Err(TenantError::Store(StoreError::Conflict(_))) => {
                    let id = requested.map(|id| id.to_string()).unwrap_or_default();
                    bail!("a developer with app id {id} already exists")
                }
                other => other?,
            };
            print_json(&Created {
                app_id: dev.app_id.as_str(),
                secret_key: &secret,
            })
        }
        AppCommand::List(a) => {
            let devs = tenants.list().await?;
            if a.json {
                print_json(&devs.iter().map(AppView::of).collect::<Vec<_>>())
            } else {
                print_developers(&devs)
            }
        }
        AppCommand::Show(a) => print_json(&AppView::of(&tenants.get(&a.app_id).await?)),
        AppCommand::RotateSecret(a) => {
            let old = if a.revoke_old {
                OldSecret::Revoke
            } else {
                OldSecret::Grace
            };
            let (dev, secret) = tenants.rotate_secret(&a.app_id, old).await?;
            print_json(&Rotated {
                app_id: dev.app_id.as_str(),
                secret_key: &secret,
                old_secret_valid_until: dev.old_secret_until.map(time),
                old_secret_revoked: a.revoke_old,
            })
        }
        AppCommand::Disable(a) => {
            print_json(&AppView::of(&tenants.set_enabled(&a.app_id, false).await?))
        }
        AppCommand::Enable(a) => {
            print_json(&AppView::of(&tenants.set_enabled(&a.app_id, true).await?))
        }
        AppCommand::Delete(a) => delete(&Admin::new(&core), &a).await,
    }
}

/// `app delete`: without `--yes` it says what would be deleted and changes nothing.
async fn delete(admin: &Admin, a: &DeleteArgs) -> anyhow::Result<()> {
    let plan = admin.delete_plan(&a.app_id).await?;
    if !plan.active.is_empty() {
        return Err(refused(AdminError::ActiveJobs {
            app_id: plan.developer.app_id,
            jobs: plan.active,
        }));
    }
    if !a.yes {
        println!("{}", describe_plan(&plan));
        bail!("nothing was deleted: run again with --yes to delete it");
    }
    let deleted = admin.delete_developer(&a.app_id).await.map_err(refused)?;
    print_json(&DeletedView {
        app_id: deleted.app_id.as_str(),
        jobs: deleted.held.jobs,
        callbacks: deleted.held.callbacks,
        idempotency_keys: deleted.held.idempotency_keys,
        records: deleted.held.records,
        files: deleted.files,
    })
}

/// An error of `app delete`, with what to do about jobs in progress.
fn refused(e: AdminError) -> anyhow::Error {
    match e {
        AdminError::ActiveJobs { .. } => anyhow::anyhow!(
            "{e}: nothing was deleted; cancel them with `ccfs jobs cancel RESPONSE_ID` (or wait \
             until they end) and run again"
        ),
        e => e.into(),
    }
}

/// What `app delete` without `--yes` prints: exactly what would go and what would stay.
fn describe_plan(plan: &DeletePlan) -> String {
    let d = &plan.developer;
    let held = &plan.held;
    format!(
        "ccfs app delete {id} --yes would delete, from the configured store and file store:\n\
         \x20 the developer {id} ({name}), its accounts and its secret keys\n\
         \x20 {records} it owns (developer_id {id}), whoever imported them\n\
         \x20 {jobs}, with {callbacks} and {keys}\n\
         \x20 the files of {files} (every attempt's upload)\n\
         It keeps the records it imported for other developers (with the ingest role): those \
         belong to them.\n\
         The developer is disabled first, so that none of its requests starts a job meanwhile.",
        id = d.app_id,
        name = d.name,
        records = counted(held.records, "record", "records"),
        jobs = counted(held.jobs, "job", "jobs"),
        callbacks = counted(held.callbacks, "callback", "callbacks"),
        keys = counted(held.idempotency_keys, "idempotency key", "idempotency keys"),
        files = counted(plan.files, "finished export", "finished exports"),
    )
}

/// What `app delete --yes` prints: how many of each it deleted.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeletedView<'a> {
    app_id: &'a str,
    jobs: u64,
    callbacks: u64,
    idempotency_keys: u64,
    records: u64,
    /// Finished exports whose file was deleted.
    files: u64,
}

fn new_app(a: CreateArgs) -> NewApp {
    NewApp {
        name: a.name,
        accounts: a.accounts,
        timezone: a.timezone,
        roles: a.roles.into_iter().map(Into::into).collect(),
        app_id: a.app_id,
        csv_header: a.csv_header,
    }
}

/// What `create` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    app_id: &'a str,
    secret_key: &'a str,
}

/// What `rotate-secret` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rotated<'a> {
    app_id: &'a str,
    secret_key: &'a str,
    /// `null` when the old secret was revoked.
    old_secret_valid_until: Option<String>,
    old_secret_revoked: bool,
}

/// A developer as `show`, `list --json`, `enable` and `disable` print it: never a secret.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppView<'a> {
    app_id: &'a str,
    name: &'a str,
    timezone: &'a str,
    accounts: &'a [String],
    roles: Vec<&'static str>,
    enabled: bool,
    csv_header: bool,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_rotated_grace_until: Option<String>,
}

impl<'a> AppView<'a> {
    fn of(d: &'a Developer) -> Self {
        Self {
            app_id: d.app_id.as_str(),
            name: &d.name,
            timezone: d.timezone.name(),
            accounts: &d.accounts,
            roles: d.roles.iter().map(|r| r.as_str()).collect(),
            enabled: d.enabled,
            csv_header: d.csv_header,
            created_at: time(d.created_at),
            secret_rotated_grace_until: d
                .old_secret_until
                .filter(|_| d.old_secret_enc.is_some())
                .map(time),
        }
    }
}

/// The developers as an aligned table for people.
fn print_developers(devs: &[Developer]) -> anyhow::Result<()> {
    let header = [
        "APP ID", "NAME", "TIMEZONE", "ROLES", "ENABLED", "ACCOUNTS", "CREATED",
    ];
    let rows: Vec<[String; 7]> = devs
        .iter()
        .map(|d| {
            [
                d.app_id.to_string(),
                d.name.clone(),
                d.timezone.name().to_owned(),
                d.roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                if d.enabled { "yes" } else { "no" }.to_owned(),
                d.accounts.join(","),
                short_time(d.created_at),
            ]
        })
        .collect();
    print_table(header, &rows)
}
