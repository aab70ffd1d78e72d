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
//! real installation. Its data directory is kept afterwards so the files can be looked at.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::Router;
use ccfs_client::{CallbackBody, CallbackVerifier, Client, GenerateBody, ZipFileName};
use ccfs_protocol::auth::RequestParts;
use ccfs_protocol::record::{csv_reader, COLUMNS};
use ccfs_protocol::Record;
use ccfs_server::model::Role;
use ccfs_server::{Config, NewApp, RunningServer};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::cli::DemoArgs;
use crate::simulate::{self as model, Params, Simulation};

/// The export developer's time zone: one with daylight-saving time.
const TIMEZONE: &str = "Europe/Berlin";
const ACCOUNT: &str = "demo01";
const AGENTS: u32 = 50;
const SEED: u64 = 1;
const CALLBACK_PATH: &str = "/ccfs/callback";
/// How long the export and its callback may take before the demo gives up. Generous: a debug
/// build on a busy machine is slow, and this limit only decides when to fail.
const CALLBACK_WAIT: Duration = Duration::from_secs(120);
/// Records per import request (the interface takes at most 10,000).
const IMPORT_BATCH: usize = 5000;

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (data_dir, chosen) = match &args.data_dir {
        Some(d) => (d.clone(), true),
        None => (fresh_dir(), false),
    };
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
    let mut report = outcome?;
    report.server = base_url;
    report.data_dir = data_dir.display().to_string();
    report.data_dir_chosen = chosen;
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
    let (callbacks, mut received) = mpsc::channel(4);
    let receiver = Receiver {
        verifier: Arc::new(CallbackVerifier::new(app_id.clone(), export_sk.clone())),
        callbacks,
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("cannot listen for the callback")?;
    let callback_addr = listener.local_addr().context("callback listener")?;
    let (stop, stopped) = oneshot::channel::<()>();
    let router = Router::new()
        .route(CALLBACK_PATH, post(receive))
        .with_state(receiver);
    let receiver_task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    steps.done("start the callback receiver", t);

    let result = export(
        &client(&app_id, &export_sk)?,
        day,
        today,
        format!("http://{callback_addr}{CALLBACK_PATH}"),
        &mut received,
        data_dir,
        steps,
    )
    .await;
    let _ = stop.send(());
    match receiver_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("callback receiver: {e}"),
        Err(e) => tracing::warn!("callback receiver task: {e}"),
    }
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

/// The callback receiver's shared state.
#[derive(Clone)]
struct Receiver {
    verifier: Arc<CallbackVerifier>,
    /// Verified callbacks, or why one was refused (which ends the demo at once rather than
    /// waiting for the server's retry).
    callbacks: mpsc::Sender<Result<CallbackBody, String>>,
}

/// `POST /ccfs/callback`: 200 for a genuine callback, 401 otherwise.
async fn receive(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let parts = RequestParts {
        method: "POST",
        path: uri.path(),
        query: uri.query(),
        body: &body,
    };
    match r.verifier.verify_headers(&parts, &headers) {
        Ok(cb) => {
            let _ = r.callbacks.try_send(Ok(cb));
            StatusCode::OK
        }
        Err(e) => {
            let _ = r.callbacks.try_send(Err(e.to_string()));
            StatusCode::UNAUTHORIZED
        }
    }
}

/// What the export steps found.
struct Export {
    window: (String, String),
    response_id: String,
    record_count: u64,
    file_name: String,
    file_path: PathBuf,
    file_size: u64,
    sha256: String,
    csv_files: Vec<PathBuf>,
    rows: Tally,
}

/// Generate, wait for the callback, check the status, download, open the zip.
async fn export(
    client: &Client,
    day: Date,
    today: Date,
    callback_url: String,
    received: &mut mpsc::Receiver<Result<CallbackBody, String>>,
    data_dir: &Path,
    steps: &mut Steps,
) -> anyhow::Result<Export> {
    let t = Instant::now();
    let window = (format!("{day} 00:00:00"), format!("{today} 00:00:00"));
    let id = client
        .generate(&GenerateBody {
            begin_time: window.0.clone(),
            end_time: window.1.clone(),
            account_id: None,
            agent_id: None,
            callback_url,
        })
        .await
        .context("generate")?;
    steps.done("generate over signed HTTPS", t);

    let t = Instant::now();
    let callback = match tokio::time::timeout(CALLBACK_WAIT, received.recv()).await {
        Ok(Some(Ok(cb))) => cb,
        Ok(Some(Err(why))) => bail!("a callback was refused: {why}"),
        Ok(None) => bail!("the callback receiver stopped"),
        Err(_) => bail!(
            "no callback within {} s (export {id})",
            CALLBACK_WAIT.as_secs()
        ),
    };
    ensure!(
        callback.response_id == id.to_string(),
        "the callback names export {}, not {id}",
        callback.response_id
    );
    steps.done("build the export and receive the verified callback", t);

    let t = Instant::now();
    let status = client.status(&id).await.context("status")?;
    ensure!(
        status.state == "succeeded",
        "export {id} is {}",
        status.state
    );
    let name: ZipFileName = callback
        .agent_opr_info_file_name
        .parse()
        .map_err(|_| anyhow!("the callback names no valid file"))?;
    ensure!(
        status.agent_opr_info_file_name == name.as_str(),
        "status and callback name different files"
    );
    let downloads = data_dir.join("downloads");
    std::fs::create_dir_all(&downloads)
        .with_context(|| format!("cannot create {}", downloads.display()))?;
    let dest = downloads.join(name.as_str());
    let file = client
        .download(&name, &dest, |_| {})
        .await
        .context("download")?;
    ensure!(
        file.verified,
        "the server sent no checksum to verify the download against"
    );
    if let Some(expected) = &status.sha256 {
        ensure!(
            expected.eq_ignore_ascii_case(&file.sha256),
            "the downloaded file's SHA-256 differs from the one the status reports"
        );
    }
    steps.done("download and verify the SHA-256", t);

    let t = Instant::now();
    let zip_path = file.path.clone();
    let out_dir = downloads.join(name.as_str().trim_end_matches(".zip"));
    let (csv_files, rows) = tokio::task::spawn_blocking(move || open_zip(&zip_path, &out_dir))
        .await
        .context("the zip reader stopped")??;
    let record_count = status.record_count.unwrap_or(0);
    ensure!(
        rows.records == record_count,
        "the zip holds {} rows, the status says {record_count} records",
        rows.records
    );
    steps.done("unzip and count the CSV rows", t);

    Ok(Export {
        window,
        response_id: id.to_string(),
        record_count,
        file_name: name.to_string(),
        file_path: file.path,
        file_size: file.size,
        sha256: file.sha256,
        csv_files,
        rows,
    })
}

/// Extracts the zip's CSV files into `out_dir` and tallies their rows.
fn open_zip(path: &Path, out_dir: &Path) -> anyhow::Result<(Vec<PathBuf>, Tally)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut zip = zip::ZipArchive::new(file).context("not a valid zip")?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut tally = Tally::default();
    let mut files = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).context("a zip entry")?;
        // Only a plain file name may be written: never a path out of `out_dir`.
        let entry_name = entry.name().context("a zip entry name")?.into_owned();
        ensure!(
            !entry_name.contains(['/', '\\']) && entry_name.ends_with(".csv"),
            "unexpected zip entry {entry_name}"
        );
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {entry_name}"))?;
        let dest = out_dir.join(&entry_name);
        std::fs::write(&dest, &bytes)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        files.push(dest);
        for row in csv_reader(bytes.as_slice()).records() {
            let row = row.with_context(|| format!("{entry_name}: bad CSV"))?;
            ensure!(
                row.len() == COLUMNS.len(),
                "{entry_name}: a row of {} columns",
                row.len()
            );
            tally.add(&row[3], &row[9], &row[7], &row[8]);
        }
    }
    Ok((files, tally))
}

/// Counts by operation type, agents and the local time range.
#[derive(Default)]
struct Tally {
    records: u64,
    by_op_type: BTreeMap<String, u64>,
    agents: BTreeSet<String>,
    first_begin: Option<String>,
    last_end: Option<String>,
}

impl Tally {
    /// `begin` and `end` are local `YYYY-MM-DD hh:mm:ss` times (which sort as text).
    fn add(&mut self, agent: &str, op_type: &str, begin: &str, end: &str) {
        self.records += 1;
        *self.by_op_type.entry(op_type.to_owned()).or_default() += 1;
        if !self.agents.contains(agent) {
            self.agents.insert(agent.to_owned());
        }
        if self.first_begin.as_deref().is_none_or(|b| begin < b) {
            self.first_begin = Some(begin.to_owned());
        }
        if self.last_end.as_deref().is_none_or(|e| end > e) {
            self.last_end = Some(end.to_owned());
        }
    }

    fn of_records(records: &[Record], tz: &TimeZone) -> Self {
        let mut t = Self::default();
        let local = |ts| ccfs_protocol::time::format_local(tz.to_datetime(ts));
        for r in records {
            t.add(
                &r.agent_id,
                &r.op_type,
                &local(r.begin_time),
                &local(r.end_time),
            );
        }
        t
    }
}

/// The counts in numeric order of the operation type (as the SPEC's table lists them).
fn op_counts(by_op_type: &BTreeMap<String, u64>) -> Vec<OpCount> {
    let mut v: Vec<OpCount> = by_op_type
        .iter()
        .map(|(op, count)| OpCount {
            op_type: op.clone(),
            name: model::op_name(op),
            count: *count,
        })
        .collect();
    v.sort_by_key(|c| {
        (
            c.op_type.parse::<i64>().unwrap_or(i64::MAX),
            c.op_type.clone(),
        )
    });
    v
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OpCount {
    op_type: String,
    name: &'static str,
    count: u64,
}

/// The summary: printed for people, or as one JSON object with `--json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    server: String,
    data_dir: String,
    /// Whether the directory was given with `--data-dir`.
    #[serde(skip)]
    data_dir_chosen: bool,
    app_id: String,
    ingest_app_id: String,
    timezone: &'static str,
    account_id: &'static str,
    day: String,
    agents_simulated: u32,
    seed: u64,
    records_simulated: u64,
    records_imported: u64,
    window_begin: String,
    window_end: String,
    response_id: String,
    callback_verified: bool,
    record_count: u64,
    csv_rows: u64,
    agents: u64,
    first_begin: String,
    last_end: String,
    by_op_type: Vec<OpCount>,
    file_name: String,
    file_path: String,
    file_size: u64,
    sha256: String,
    checksum_verified: bool,
    csv_files: Vec<String>,
    steps: Vec<Step>,
    total_ms: u64,
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let secs = |ms: u64| match ms {
            0..1000 => format!("{ms} ms"),
            _ => format!("{:.2} s", ms as f64 / 1000.0),
        };
        // Writing to a String cannot fail.
        let _ = (|| -> std::fmt::Result {
            writeln!(s, "ccfs demo: the whole flow worked.")?;
            writeln!(s)?;
            writeln!(
                s,
                "  server          {} (HTTPS, self-signed; stopped)",
                self.server
            )?;
            writeln!(
                s,
                "  developer       {} ({}, account {}); ingest app {}",
                self.app_id, self.timezone, self.account_id, self.ingest_app_id
            )?;
            writeln!(
                s,
                "  simulated       {} agents on {} (seed {}): {} records, {} imported",
                self.agents_simulated,
                self.day,
                self.seed,
                thousands(self.records_simulated),
                thousands(self.records_imported)
            )?;
            writeln!(
                s,
                "  export window   {} to {} ({})",
                self.window_begin, self.window_end, self.timezone
            )?;
            writeln!(
                s,
                "  callback        verified signature, export {}",
                self.response_id
            )?;
            writeln!(
                s,
                "  file            {}, {} bytes, {} CSV file(s)",
                self.file_name,
                thousands(self.file_size),
                self.csv_files.len()
            )?;
            writeln!(
                s,
                "  SHA-256         {} (checked against the server's)",
                self.sha256
            )?;
            writeln!(
                s,
                "  records         {} CSV rows = {} reported by the server = {} simulated",
                thousands(self.csv_rows),
                thousands(self.record_count),
                thousands(self.records_simulated)
            )?;
            writeln!(s, "  agents          {}", self.agents)?;
            writeln!(
                s,
                "  time range      {} to {} ({})",
                self.first_begin, self.last_end, self.timezone
            )?;
            writeln!(s)?;
            writeln!(s, "Records by operation type")?;
            for op in &self.by_op_type {
                writeln!(
                    s,
                    "  {:>7}  {:<18} {:>9}",
                    op.op_type,
                    op.name,
                    thousands(op.count)
                )?;
            }
            writeln!(s)?;
            writeln!(s, "Steps")?;
            for step in &self.steps {
                writeln!(s, "  {:<52} {:>9}", step.step, secs(step.ms))?;
            }
            writeln!(s, "  {:<52} {:>9}", "total", secs(self.total_ms))?;
            writeln!(s)?;
            writeln!(s, "Files")?;
            writeln!(
                s,
                "  data directory  {} (database, master key, certificate, stored exports)",
                self.data_dir
            )?;
            writeln!(s, "  downloaded zip  {}", self.file_path)?;
            for f in &self.csv_files {
                writeln!(s, "  extracted CSV   {f}")?;
            }
            if !self.data_dir_chosen {
                writeln!(s, "  remove them with: rm -rf '{}'", self.data_dir)?;
            }
            Ok(())
        })();
        s
    }
}
