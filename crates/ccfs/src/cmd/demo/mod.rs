//! `ccfs demo`: the whole CC-FS flow end to end on a throw-away embedded setup, with nothing
//! installed beyond the binary.
//!
//! In its own data directory it starts the server in-process (HTTPS with a self-signed
//! certificate on a free port), creates an export developer (Europe/Berlin, a zone with DST)
//! and an ingest developer, simulates yesterday for 50 agents, imports the records through the
//! signed import interface, starts a callback receiver that verifies signatures, asks for the
//! export over signed HTTPS with the client SDK, waits for the callback, downloads the zip
//! (checksum checked), opens it and counts its rows, then stops everything and prints a
//! summary. Any mismatch is an error (exit status 1).
//!
//! The demo ignores the configured store and server on purpose: it must never write into a
//! real installation. A temporary data directory is removed at the end, whatever the outcome,
//! unless `--keep` asks to look at its files; a directory given with `--data-dir` is the
//! user's and always stays.

mod export;
mod receiver;
mod report;
mod tally;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use ccfs_client::{CallbackVerifier, Client};
use ccfs_protocol::Record;
use ccfs_server::model::Role;
use ccfs_server::{Config, NewApp, RunningServer};
use jiff::tz::TimeZone;
use serde::Serialize;

use self::export::export;
use self::report::Report;
use self::tally::{op_counts, Tally};
use crate::cli::DemoArgs;
use crate::simulate::{Params, Simulation};

/// The export developer's time zone: one with daylight-saving time.
const TIMEZONE: &str = "Europe/Berlin";
const ACCOUNT: &str = "demo01";
const AGENTS: u32 = 50;
const SEED: u64 = 1;
/// Records per import request (the interface takes at most 10,000).
const IMPORT_BATCH: usize = 5000;

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (data_dir, chosen) = match &args.data_dir {
        Some(d) => (d.clone(), true),
        None => (fresh_dir(), false),
    };
    let keep = chosen || args.keep;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize().unwrap_or(data_dir);
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.clone(),
        ..Config::default()
    };
    let mut steps = Steps::default();
    let t = Instant::now();
    let server = RunningServer::start(config)
        .await
        .context("cannot start the server")?;
    steps.done("start the server (HTTPS, self-signed)", t);

    // Whatever happens in the flow, the server is stopped cleanly before the answer.
    let outcome = flow(&server, &data_dir, &mut steps).await;
    let t = Instant::now();
    let base_url = server.base_url();
    server.shutdown().await;
    steps.done("stop the server", t);
    if !keep {
        // Only after the server stopped: nothing writes into the directory any more.
        std::fs::remove_dir_all(&data_dir).with_context(|| {
            format!("cannot remove the demo's directory {}", data_dir.display())
        })?;
    }
    let mut report = outcome.map_err(|e| match keep {
        true => e.context(format!("the demo's files are in {}", data_dir.display())),
        false => e.context("the demo failed (run it again with --keep to look at its files)"),
    })?;
    report.server = base_url;
    report.data_dir = data_dir.display().to_string();
    report.data_dir_chosen = chosen;
    report.kept = keep;
    report.steps = steps.0;
    report.total_ms = ms(started.elapsed());
    if args.json {
        let text = serde_json::to_string(&report).context("cannot encode JSON")?;
        println!("{text}");
    } else {
        print!("{}", report.text());
    }
    std::io::stdout().flush().context("cannot write to stdout")
}

/// A new directory under the system's temporary directory, named after the time and process.
fn fresh_dir() -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    std::env::temp_dir().join(format!("ccfs-demo-{stamp}-{}", std::process::id()))
}

/// Each step's name and duration, in order.
#[derive(Default)]
struct Steps(Vec<Step>);

#[derive(Serialize)]
struct Step {
    step: &'static str,
    ms: u64,
}

impl Steps {
    fn done(&mut self, step: &'static str, since: Instant) {
        self.0.push(Step {
            step,
            ms: ms(since.elapsed()),
        });
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Everything between starting and stopping the server.
async fn flow(
    server: &RunningServer,
    data_dir: &Path,
    steps: &mut Steps,
) -> anyhow::Result<Report> {
    let t = Instant::now();
    let tenants = server.tenants();
    let (export_app, export_sk) = tenants
        .create(NewApp {
            name: "Demo contact center".into(),
            accounts: vec![ACCOUNT.into()],
            timezone: Some(TIMEZONE.into()),
            roles: vec![Role::Export],
            ..NewApp::default()
        })
        .await
        .context("cannot create the export developer")?;
    let (ingest_app, ingest_sk) = tenants
        .create(NewApp {
            name: "Demo CTI platform".into(),
            roles: vec![Role::Ingest],
            ..NewApp::default()
        })
        .await
        .context("cannot create the ingest developer")?;
    let app_id = export_app.app_id.to_string();
    steps.done("create the export and ingest developers", t);

    // Yesterday in the developer's zone: a whole day that has already happened.
    let t = Instant::now();
    let tz = TimeZone::get(TIMEZONE).context("the time zone database")?;
    let today = jiff::Zoned::now().with_time_zone(tz.clone()).date();
    let day = today.yesterday().context("yesterday")?;
    let params = Params {
        developer_id: app_id.clone(),
        account_id: ACCOUNT.into(),
        tz: tz.clone(),
        start: day,
        days: 1,
        agents: AGENTS,
        seed: SEED,
    };
    // One day of 50 agents is about 5,000 records: small enough to hold at once.
    let records: Vec<Record> = Simulation::new(params)
        .map_err(|e| anyhow!("cannot simulate: {e}"))?
        .collect();
    steps.done("simulate one day of 50 agents", t);

    let pem = match &server.tls {
        Some(tls) => std::fs::read(&tls.cert_path)
            .with_context(|| format!("cannot read {}", tls.cert_path.display()))?,
        None => bail!("the demo server runs without TLS"),
    };
    let client = |ak: &str, sk: &str| {
        Client::builder(server.base_url())
            .credentials(ak, sk)
            .ca_cert_pem(&pem)
            .build()
            .context("cannot build the client")
    };

    let t = Instant::now();
    let ingest = client(ingest_app.app_id.as_str(), &ingest_sk)?;
    let mut inserted = 0;
    for batch in records.chunks(IMPORT_BATCH) {
        let objects: Vec<_> = batch.iter().map(|r| r.to_json(&tz)).collect();
        inserted += ingest
            .import(&objects)
            .await
            .context("the import interface refused the records")?
            .inserted;
    }
    ensure!(
        inserted == records.len() as u64,
        "{inserted} of {} records were stored",
        records.len()
    );
    steps.done("import over signed HTTPS (ingest role)", t);

    let t = Instant::now();
    let mut receiver =
        receiver::start(CallbackVerifier::new(app_id.clone(), export_sk.clone())).await?;
    steps.done("start the callback receiver", t);

    let result = export(
        &client(&app_id, &export_sk)?,
        day,
        today,
        receiver.url.clone(),
        &mut receiver.received,
        data_dir,
        steps,
    )
    .await;
    receiver.stop().await;
    let export = result?;

    let simulated = Tally::of_records(&records, &tz);
    ensure!(
        export.rows.records == simulated.records,
        "the export holds {} rows, {} records were simulated for the day",
        export.rows.records,
        simulated.records
    );
    ensure!(
        export.rows.by_op_type == simulated.by_op_type,
        "the export's operation types differ from the simulated ones"
    );
    Ok(Report {
        server: String::new(),
        data_dir: String::new(),
        data_dir_chosen: false,
        kept: false,
        app_id,
        ingest_app_id: ingest_app.app_id.to_string(),
        timezone: TIMEZONE,
        account_id: ACCOUNT,
        day: day.to_string(),
        agents_simulated: AGENTS,
        seed: SEED,
        records_simulated: simulated.records,
        records_imported: inserted,
        window_begin: export.window.0,
        window_end: export.window.1,
        response_id: export.response_id,
        callback_verified: true,
        record_count: export.record_count,
        csv_rows: export.rows.records,
        agents: export.rows.agents.len() as u64,
        first_begin: export.rows.first_begin.unwrap_or_default(),
        last_end: export.rows.last_end.unwrap_or_default(),
        by_op_type: op_counts(&export.rows.by_op_type),
        file_name: export.file_name,
        file_path: export.file_path.display().to_string(),
        file_size: export.file_size,
        sha256: export.sha256,
        checksum_verified: true,
        csv_files: export
            .csv_files
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        steps: Vec::new(),
        total_ms: 0,
    })
}
