//! `ccfs app …`: developer management over `ccfs_server::Tenants`.
//!
//! Only `create` and `rotate-secret` ever print a secret key, each the one it just made; the
//! other subcommands show a developer without any secret, sealed or not.

use std::io::Write;

use anyhow::{bail, Context};
use ccfs_server::model::Developer;
use ccfs_server::{Config, Core, NewApp, StoreError, TenantError};
use jiff::Timestamp;
use serde::Serialize;

use crate::cli::{AppArgs, AppCommand, CreateArgs};

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
                print_table(&devs)
            }
        }
        AppCommand::Show(a) => print_json(&AppView::of(&tenants.get(&a.app_id).await?)),
        AppCommand::RotateSecret(a) => {
            let (dev, secret) = tenants.rotate_secret(&a.app_id).await?;
            print_json(&Rotated {
                app_id: dev.app_id.as_str(),
                secret_key: &secret,
                old_secret_valid_until: dev.old_secret_until.map(time),
            })
        }
        AppCommand::Disable(a) => {
            print_json(&AppView::of(&tenants.set_enabled(&a.app_id, false).await?))
        }
        AppCommand::Enable(a) => {
            print_json(&AppView::of(&tenants.set_enabled(&a.app_id, true).await?))
        }
    }
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
    old_secret_valid_until: Option<String>,
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

/// An RFC 3339 instant to the millisecond, as the store keeps it.
fn time(t: Timestamp) -> String {
    Timestamp::from_millisecond(t.as_millisecond())
        .unwrap_or(t)
        .to_string()
}

/// One line of JSON on stdout.
fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string(v).context("cannot encode JSON")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")
}

/// An aligned table for people.
fn print_table(devs: &[Developer]) -> anyhow::Result<()> {
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
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let mut line = |cells: &[&str]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = w.saturating_sub(cell.chars().count());
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(&header).context("cannot write to stdout")?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells).context("cannot write to stdout")?;
    }
    Ok(())
}

/// `2024-05-01 10:00:00Z`: a creation time to the second.
fn short_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}
