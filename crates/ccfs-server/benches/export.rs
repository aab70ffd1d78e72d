//! Export benchmark: how fast one export is built from the embedded SQLite store, and how much
//! memory it takes.
//!
//! It creates a temporary data directory, inserts a developer and N synthetic but realistic
//! agent operation records (default 1,000,000; `CCFS_BENCH_RECORDS` overrides), then times
//! the export exactly as a job runs it: `build_zip` over `stream_records`, then the upload to
//! the file store. Two more measurements tell which side limits it: the store's stream alone,
//! and the zip pipeline fed from memory. Wall and CPU time are both shown: on a shared machine
//! the CPU time is the steadier figure.
//!
//! Peak RSS is measured twice: in this process after resetting the peak counter (writing "5" to
//! `/proc/self/clear_refs`), which still counts what the insert left behind, and in a fresh
//! child process that runs only the export (`peak_rss_mib` in the JSON line). It prints a
//! summary for people and one JSON line for scripts.
//!
//! It runs on the embedded default (SQLite and a local directory) and, in the same run, on the
//! cluster's engines when they are given: `CCFS_BENCH_POSTGRES_URL` names a PostgreSQL server
//! where a fresh database is created for the run (and dropped after), `CCFS_BENCH_S3_URL` an
//! `s3://BUCKET/PREFIX` reached with the `AWS_*` variables (`eval "$(scripts/garage start)"` sets
//! them for a local Garage); a last table puts the setups side by side.
//!
//! Run: `cargo bench -p ccfs-server --bench export`, or on all engines:
//! `eval "$(scripts/garage start)"; CCFS_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1/test
//! CCFS_BENCH_S3_URL=$CCFS_TEST_S3_URL cargo bench -p ccfs-server --bench export`

use std::error::Error;
use std::time::Instant;

use ccfs_protocol::{AppId, Record, ResponseId, ZipFileName};
use ccfs_server::config::{BlobUrl, DatabaseUrl};
use ccfs_server::model::{Developer, FileKey, RecordQuery, Role, TimeZoneName};
use ccfs_server::{build_zip, Blobs, Built, Config, OnConflict, Store, Stored, ZipSettings};
use futures::StreamExt;
use jiff::tz::TimeZone;
use jiff::Timestamp;

const DEFAULT_RECORDS: u64 = 1_000_000;
/// Records per insert call (each call is one transaction).
const INSERT_BATCH: u64 = 10_000;
const APP_ID: &str = "6f1c2a9be07d4c55a3e8d0b7c4f91e2a";
const TIMEZONE: &str = "Asia/Shanghai";
/// Agents of the simulated contact center, and accounts they belong to.
const AGENTS: u64 = 2_000;
const ACCOUNTS: [&str; 4] = ["cc_sales_01", "cc_support_02", "cc_vip_03", "cc_night_04"];
/// The records fill a 3-day window (the longest a generate may ask for).
const WINDOW_SECS: i64 = 3 * 86_400;
/// Distinct records of the in-memory pipeline measurement.
const POOL: u64 = 8_192;

/// splitmix64: a tiny deterministic generator, so every run benchmarks the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Record `i` of `n`, spread evenly over the window: an agent of the center doing one of the
/// common operations, with the values real CTI records carry (call ids, IPs, causes).
fn record(i: u64, n: u64, start: i64, rng: &mut Rng) -> Record {
    let begin = start + (i as i64 * WINDOW_SECS) / n.max(1) as i64;
    let agent = rng.below(AGENTS);
    // Most records are short states; talking and wrap-up last longer.
    let (op_type, cause, duration) = match rng.below(100) {
        0..=19 => ("2", "0", rng.below(120)),
        20..=39 => (
            "4",
            if rng.below(10) == 0 { "1" } else { "0" },
            30 + rng.below(600),
        ),
        40..=54 => ("27", "0", 5 + rng.below(90)),
        55..=64 => (
            "3",
            ["1", "2", "4", "7", "201"][rng.below(5) as usize],
            rng.below(900),
        ),
        65..=72 => ("38", "0", rng.below(120)),
        73..=79 => (
            "26",
            ["1", "2", "3"][rng.below(3) as usize],
            60 + rng.below(900),
        ),
        80..=85 => ("45", "0", rng.below(30)),
        86..=89 => ("1", "0", 0),
        90..=93 => ("0", ["1", "256", "258", "264"][rng.below(4) as usize], 0),
        _ => ("41", "0", rng.below(300)),
    };
    let on_call = matches!(op_type, "4" | "38" | "45" | "41");
    let texts = [
        format!("{:016x}{:016x}", rng.next(), i),
        APP_ID.to_owned(),
        ACCOUNTS[(agent % ACCOUNTS.len() as u64) as usize].to_owned(),
        format!("{}", 10_000 + agent),
        if rng.below(3) == 0 {
            String::new()
        } else {
            format!("{}", 1 + rng.below(20))
        },
        format!("{}", 1 + agent % 60),
        if on_call {
            format!("{}-{}", begin, 1 + rng.below(99_999))
        } else {
            String::new()
        },
        op_type.to_owned(),
        if op_type == "45" {
            format!("{}", 10_000 + rng.below(AGENTS))
        } else {
            "-1".to_owned()
        },
        cause.to_owned(),
        ["5", "53", "1"][rng.below(3) as usize].to_owned(),
        "1".to_owned(),
        "1".to_owned(),
        "4".to_owned(),
        if on_call {
            format!("138{:08}", rng.below(100_000_000))
        } else {
            format!("10.12.{}.{}", agent / 250, agent % 250)
        },
        if on_call {
            ["0", "1"][rng.below(2) as usize].to_owned()
        } else {
            String::new()
        },
        "1".to_owned(),
        format!("{}", 100_000 + agent * 7 + (begin - start) as u64 / 86_400),
        if rng.below(8) == 0 {
            String::new()
        } else {
            format!("{}", rng.below(6))
        },
    ];
    let at = |s: i64| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
    Record::from_texts(texts, at(begin), at(begin + duration as i64))
}

/// The settings a job of the bench developer gets with the default configuration.
fn pipeline_settings(config: &Config) -> Result<ZipSettings, Box<dyn Error>> {
    let tz = TimeZone::get(TIMEZONE)?;
    Ok(ZipSettings {
        rows_per_file: config.rows_per_file,
        compression_level: config.compression_level,
        csv_header: false,
        stamp: tz.to_datetime(Timestamp::now()),
        timezone: tz,
    })
}

/// Wall and CPU time of a phase, in seconds.
#[derive(Clone, Copy)]
struct Spent {
    wall: f64,
    cpu: f64,
}

struct Clock {
    wall: Instant,
    cpu: f64,
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: cpu_secs(),
        }
    }

    fn stop(&self) -> Spent {
        Spent {
            wall: self.wall.elapsed().as_secs_f64(),
            cpu: cpu_secs() - self.cpu,
        }
    }
}

/// CPU time used so far by the whole process (all threads), in seconds, from `/proc/self/stat`
/// (user + system, in clock ticks of 1/100 s). Unlike wall time it does not grow when other
/// processes compete for the CPU, so it shows what an export costs on a busy machine.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    (tick(11) + tick(12)) as f64 / 100.0
}

/// A value of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`).
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The export window: 2024-05-01 00:00:00 in Shanghai, for [`WINDOW_SECS`].
const START: i64 = 1_714_492_800;

fn query() -> Result<RecordQuery, Box<dyn Error>> {
    Ok(RecordQuery {
        developer_id: AppId::parse(APP_ID).ok_or("bad app id")?,
        begin: Timestamp::from_second(START)?,
        end: Timestamp::from_second(START + WINDOW_SECS + 1)?,
        account_id: None,
        agent_id: None,
    })
}

/// One export exactly as a job runs it: `build_zip` over the store's stream into a work file,
/// then the upload. Returns the records, the stored size and the time spent.
async fn export_once(
    store: &dyn Store,
    config: &Config,
) -> Result<(Built, Stored, Spent, Spent), Box<dyn Error>> {
    let tz = TimeZone::get(TIMEZONE)?;
    let settings = pipeline_settings(config)?;
    let id = ResponseId::from_bytes(rand::random());
    let name = FileKey::of_attempt(
        &ZipFileName::new(tz.to_datetime(Timestamp::now()).date(), &id),
        1,
    );
    let work = config.work_dir();
    std::fs::create_dir_all(&work)?;
    let work_file = work.join(format!("{id}.zip.part"));
    let clock = Clock::start();
    let built = build_zip(store.export_rows(query()?), &settings, &work_file).await?;
    let build = clock.stop();
    let blobs = Blobs::open(config)?;
    let clock = Clock::start();
    let stored = blobs.put_file(&name, &work_file).await?;
    let upload = clock.stop();
    std::fs::remove_file(&work_file)?;
    blobs.delete(&name).await?;
    Ok((built, stored, build, upload))
}

/// The child process: one export over the data directory the parent filled, in a process that
/// never held the inserted records, so its peak RSS is what an export costs on its own
/// (runtime, SQLite reader cache and the pipeline). Prints one JSON line for the parent.
async fn child(data_dir: &str) -> Result<(), Box<dyn Error>> {
    let config = Config {
        data_dir: data_dir.into(),
        database_url: std::env::var(CHILD_DATABASE_ENV)
            .ok()
            .map(|u| DatabaseUrl::parse(&u))
            .transpose()?,
        blob_url: std::env::var(CHILD_BLOB_ENV)
            .ok()
            .map(|u| BlobUrl::parse(&u))
            .transpose()?,
        ..s3_settings()?
    };
    let store = ccfs_server::open_store(&config.database_url(), config.database_pool_size).await?;
    let (built, _, build, upload) = export_once(store.as_ref(), &config).await?;
    let json = serde_json::json!({
        "records": built.record_count,
        "seconds": build.wall + upload.wall,
        "peak_rss_kib": status_kib("VmHWM:").unwrap_or(0),
    });
    println!("{json}");
    Ok(())
}

/// Runs [`child`] in a fresh copy of this program, on the store and file store of `config`.
fn run_child(config: &Config) -> Result<serde_json::Value, Box<dyn Error>> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.env(CHILD_ENV, &config.data_dir)
        .env(CHILD_DATABASE_ENV, String::from(config.database_url()))
        .env(CHILD_BLOB_ENV, String::from(config.blob_url()));
    let out = cmd.stderr(std::process::Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("the export child process failed: {}", out.status).into());
    }
    let text = String::from_utf8(out.stdout)?;
    let last = text
        .lines()
        .last()
        .ok_or("the export child process printed nothing")?;
    Ok(serde_json::from_str(last)?)
}

/// Set in the child process to the data directory to export from, and to its store and file
/// store.
const CHILD_ENV: &str = "CCFS_BENCH_CHILD_DATA_DIR";
const CHILD_DATABASE_ENV: &str = "CCFS_BENCH_CHILD_DATABASE_URL";
const CHILD_BLOB_ENV: &str = "CCFS_BENCH_CHILD_BLOB_URL";

/// The `aws_*` settings from the `AWS_*` variables (and nothing else from the environment).
fn s3_settings() -> Result<Config, Box<dyn Error>> {
    Ok(Config::load_with(None, |k| {
        std::env::var(k).ok().filter(|_| k.starts_with("AWS_"))
    })?)
}

/// A database created for the run on the server `CCFS_BENCH_POSTGRES_URL` names; dropped when
/// the run ends.
struct FreshDatabase {
    admin: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    async fn create(admin: &str) -> Result<Self, Box<dyn Error>> {
        use sqlx::Connection;
        let name = format!("ccfs_bench_{}", hex::encode(rand::random::<[u8; 6]>()));
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let mut url = url::Url::parse(admin)?;
        url.set_path(&name);
        Ok(Self {
            admin: admin.to_owned(),
            name,
            url: url.into(),
        })
    }

    async fn drop_now(self) -> Result<(), Box<dyn Error>> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return child(&dir).await;
    }
    let n: u64 = match std::env::var("CCFS_BENCH_RECORDS") {
        Ok(v) => v.trim().replace('_', "").parse()?,
        Err(_) => DEFAULT_RECORDS,
    };
    let mut results = vec![run("sqlite + local files", n, None, None).await?];
    let pg = std::env::var("CCFS_BENCH_POSTGRES_URL").ok();
    let s3 = std::env::var("CCFS_BENCH_S3_URL").ok();
    if let Some(admin) = &pg {
        let db = FreshDatabase::create(admin).await?;
        let blob = match &s3 {
            Some(url) => Some(BlobUrl::parse(&format!(
                "{}/bench-{}",
                url.trim_end_matches('/'),
                hex::encode(rand::random::<[u8; 4]>())
            ))?),
            None => None,
        };
        let label = if s3.is_some() {
            "postgresql + s3"
        } else {
            "postgresql + local files"
        };
        let result = run(label, n, Some(DatabaseUrl::parse(&db.url)?), blob).await;
        db.drop_now().await?;
        results.push(result?);
    }
    if results.len() > 1 {
        let base = &results[0];
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
        println!(
            "\nside by side ({n} records; ratios against {}):",
            base["setup"]
        );
        println!(
            "  {:<26} {:>12} {:>8} {:>12} {:>8} {:>14}",
            "setup", "insert rec/s", "ratio", "export rec/s", "ratio", "peak RSS MiB"
        );
        for r in &results {
            println!(
                "  {:<26} {:>12.0} {:>7.2}x {:>12.0} {:>7.2}x {:>14.1}",
                r["setup"].as_str().unwrap_or(""),
                f(r, "insert_records_per_sec"),
                f(r, "insert_records_per_sec") / f(base, "insert_records_per_sec").max(1.0),
                f(r, "fresh_process_records_per_sec"),
                f(r, "fresh_process_records_per_sec")
                    / f(base, "fresh_process_records_per_sec").max(1.0),
                f(r, "peak_rss_mib"),
            );
        }
    } else {
        eprintln!(
            "(set CCFS_BENCH_POSTGRES_URL and CCFS_BENCH_S3_URL to compare the cluster's engines \
             in the same run)"
        );
    }
    Ok(())
}

/// The whole benchmark on one setup: the embedded default when `database` and `blob` are
/// `None`. Prints its summary and JSON line, and returns the JSON.
async fn run(
    setup: &str,
    n: u64,
    database: Option<DatabaseUrl>,
    blob: Option<BlobUrl>,
) -> Result<serde_json::Value, Box<dyn Error>> {
    eprintln!("== {setup}");
    let dir = tempfile::tempdir()?;
    let config = Config {
        data_dir: dir.path().to_owned(),
        database_url: database,
        blob_url: blob,
        ..s3_settings()?
    };
    let store = ccfs_server::open_store(&config.database_url(), config.database_pool_size).await?;
    let app_id = AppId::parse(APP_ID).ok_or("bad app id")?;
    store
        .insert_developer(&Developer {
            app_id: app_id.clone(),
            name: "bench".into(),
            secret_enc: vec![0; 60],
            old_secret_enc: None,
            old_secret_until: None,
            timezone: TimeZoneName::parse(TIMEZONE)?,
            accounts: ACCOUNTS.iter().map(|a| (*a).to_owned()).collect(),
            roles: vec![Role::Export],
            enabled: true,
            csv_header: false,
            created_at: Timestamp::now(),
        })
        .await?;

    eprintln!("inserting {n} records ...");
    let mut rng = Rng(42);
    let clock = Clock::start();
    let mut next = 0u64;
    while next < n {
        let end = (next + INSERT_BATCH).min(n);
        let batch: Vec<Record> = (next..end).map(|i| record(i, n, START, &mut rng)).collect();
        store.insert_records(&batch, OnConflict::Fail).await?;
        next = end;
    }
    let insert = clock.stop();

    // The store alone, to tell which side limits the export.
    eprintln!("streaming ...");
    let clock = Clock::start();
    let mut streamed = 0u64;
    let mut records = store.stream_records(query()?);
    while let Some(r) = records.next().await {
        r?;
        streamed += 1;
    }
    drop(records);
    let stream = clock.stop();

    // The pipeline alone, fed from memory (clones of a pool of realistic records, so the
    // per-record allocations match what the store hands over), to tell how far the writer
    // side could go with a faster source.
    eprintln!("building from memory ...");
    let mut pool_rng = Rng(7);
    let pool: Vec<Record> = (0..POOL)
        .map(|i| record(i, POOL, START, &mut pool_rng))
        .collect();
    let feed =
        futures::stream::iter((0..n).map(move |i| Ok(pool[(i % POOL) as usize].clone()))).boxed();
    let scratch = dir.path().join("pipeline.zip.part");
    let clock = Clock::start();
    build_zip(feed, &pipeline_settings(&config)?, &scratch).await?;
    let pipeline = clock.stop();
    std::fs::remove_file(&scratch)?;

    // Peak RSS from here on: "5" resets VmHWM to the current RSS (Linux 4.0+). The current
    // RSS still holds what the insert left (caches, freed heap), hence also the child below.
    let rss_before_kib = status_kib("VmRSS:").unwrap_or(0);
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    eprintln!("exporting ...");
    let (built, stored, build, upload) = export_once(store.as_ref(), &config).await?;
    let peak_rss_kib = status_kib("VmHWM:").unwrap_or(0);
    let export = Spent {
        wall: build.wall + upload.wall,
        cpu: build.cpu + upload.cpu,
    };

    eprintln!("exporting again in a fresh process ...");
    let fresh = run_child(&config)?;
    let fresh_peak_kib = fresh["peak_rss_kib"].as_u64().unwrap_or(0);
    let fresh_secs = fresh["seconds"].as_f64().unwrap_or(0.0);

    let mib = |kib: u64| kib as f64 / 1024.0;
    let rate = |count: u64, secs: f64| if secs > 0.0 { count as f64 / secs } else { 0.0 };
    let line = |what: &str, count: u64, p: Spent, note: &str| {
        println!(
            "  {what:<12} {:8.2} s {:>9.0} records/s   cpu {:7.2} s {:>9.0} records/cpu-s{note}",
            p.wall,
            rate(count, p.wall),
            p.cpu,
            rate(count, p.cpu)
        );
    };
    let cpus = std::thread::available_parallelism().map_or(0, |p| p.get());
    println!(
        "export benchmark on {setup}: {} records, {} CSV parts, deflate level {}, {cpus} CPUs",
        built.record_count, built.file_count, config.compression_level
    );
    line("insert", n, insert, "");
    line("stream only", streamed, stream, "  (the store alone)");
    line("pipeline", n, pipeline, "  (zip from records in memory)");
    line("build zip", built.record_count, build, "");
    line("upload", built.record_count, upload, "");
    line("export", built.record_count, export, "  (build + upload)");
    println!(
        "  fresh process export {fresh_secs:.2} s, {:.0} records/s",
        rate(built.record_count, fresh_secs)
    );
    println!("  zip {:.1} MiB", stored.size as f64 / 1_048_576.0);
    println!(
        "  peak RSS: {:.1} MiB for an export in a fresh process; {:.1} MiB in this one \
         (RSS before the export {:.1} MiB{})",
        mib(fresh_peak_kib),
        mib(peak_rss_kib),
        mib(rss_before_kib),
        if reset {
            ""
        } else {
            "; the peak counter could not be reset"
        }
    );
    let json = serde_json::json!({
        "bench": "export",
        "setup": setup,
        "records": built.record_count,
        "files": built.file_count,
        "compression_level": config.compression_level,
        "cpus": cpus,
        "seconds": export.wall,
        "cpu_seconds": export.cpu,
        "build_seconds": build.wall,
        "upload_seconds": upload.wall,
        "records_per_sec": rate(built.record_count, export.wall),
        "records_per_cpu_sec": rate(built.record_count, export.cpu),
        "stream_records_per_sec": rate(streamed, stream.wall),
        "stream_records_per_cpu_sec": rate(streamed, stream.cpu),
        "pipeline_records_per_sec": rate(n, pipeline.wall),
        "pipeline_records_per_cpu_sec": rate(n, pipeline.cpu),
        "fresh_process_records_per_sec": rate(built.record_count, fresh_secs),
        "zip_bytes": stored.size,
        "peak_rss_mib": mib(fresh_peak_kib),
        "in_process_peak_rss_mib": mib(peak_rss_kib),
        "rss_before_export_mib": mib(rss_before_kib),
        "peak_rss_reset": reset,
        "insert_records_per_sec": rate(n, insert.wall),
    });
    println!("{json}");
    Ok(json)
}
