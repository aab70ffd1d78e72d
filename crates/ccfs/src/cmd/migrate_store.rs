//! `ccfs migrate-store`: moves an embedded installation to a cluster's store and file store
//! (the work is `ccfs_server::migrate_store`), with a progress bar per table and per file list,
//! and a summary of the counts each step verified.

use std::sync::Mutex;

use anyhow::Context;
use ccfs_server::{migrate_store, Config, MigratePlan, MigrateReport, Progress};
use indicatif::ProgressBar;

use crate::cli::MigrateStoreArgs;
use crate::{numbers, progress};

pub async fn run(config: Config, args: MigrateStoreArgs) -> anyhow::Result<()> {
    let plan = MigratePlan {
        from: args.from,
        to: args.to,
        blobs: args.blobs_from.zip(args.blobs_to),
    };
    let bars = Bars::default();
    let report = migrate_store(&plan, &config, &bars)
        .await
        .with_context(|| format!("migrate-store from {} to {}", plan.from, plan.to))?;
    bars.finish();
    if args.json {
        println!("{}", json(&report));
    } else {
        print_report(&plan, &report);
    }
    Ok(())
}

/// One progress bar at a time: the current table's (or the files').
#[derive(Default)]
struct Bars {
    // The migration calls back from one task at a time; the lock only satisfies `Sync`.
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn finish(&self) {
        if let Some(bar) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            bar.finish();
        }
    }
}

impl Progress for Bars {
    fn table(&self, name: &str, rows: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bar) = current.take() {
            bar.finish();
        }
        *current = Some(progress::bar(format!("{name:<18}"), rows));
    }

    fn advance(&self, rows: u64) {
        if let Some(bar) = &*self.current.lock().unwrap_or_else(|p| p.into_inner()) {
            bar.inc(rows);
        }
    }
}

fn print_report(plan: &MigratePlan, report: &MigrateReport) {
    println!("moved {} to {}", plan.from, plan.to);
    println!(
        "  {:<20} {:>12} {:>12} {:>12}",
        "table", "source rows", "inserted", "verified"
    );
    for t in &report.tables {
        println!(
            "  {:<20} {:>12} {:>12} {:>12}",
            t.table,
            numbers::count(t.source),
            numbers::count(t.inserted),
            numbers::count(t.verified)
        );
    }
    match (&report.files, &plan.blobs) {
        (Some(f), Some((from, to))) => println!(
            "  files: {} of finished exports, {} copied ({} bytes) from {from} to {to}, {} already \
             there; every one matches its SHA-256",
            numbers::count(f.listed),
            numbers::count(f.copied),
            numbers::count(f.bytes_copied),
            numbers::count(f.present)
        ),
        _ => println!(
            "  files: not copied (give --blobs-from and --blobs-to to bring the finished exports)"
        ),
    }
    println!(
        "Every row is in the target. Start the cluster's nodes with this installation's master \
         key (CCFS_MASTER_KEY or master_key_file), which sealed the developers' secret keys."
    );
}

fn json(report: &MigrateReport) -> serde_json::Value {
    serde_json::json!({
        "tables": report.tables.iter().map(|t| serde_json::json!({
            "table": t.table,
            "sourceRows": t.source,
            "inserted": t.inserted,
            "verified": t.verified,
        })).collect::<Vec<_>>(),
        "files": report.files.as_ref().map(|f| serde_json::json!({
            "listed": f.listed,
            "copied": f.copied,
            "present": f.present,
            "bytesCopied": f.bytes_copied,
        })),
    })
}
