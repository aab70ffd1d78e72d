//! `ccfs simulate`: realistic agent activity (the model is in [`crate::simulate`]) written to a CSV or
//! JSONL file, or imported straight into the configured store.
//!
//! Records are streamed: at most one agent-day is generated ahead and at most one batch is
//! held for the store, so 50 agents over 30 days need no more memory than one day.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use ccfs_protocol::{AppId, Record};
use ccfs_server::{Config, Core, OnConflict, Store};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Zoned;
use serde::Serialize;

use crate::cli::{Format, SimulateArgs};
use crate::numbers::{count, counted};
use crate::progress;
use crate::simulate::{self as model, Params, Simulation};

/// Records stored per transaction when importing.
const BATCH: usize = 5000;
/// How often (in records) the progress counter is updated.
const TICK: u64 = 1024;

/// What a simulation produced: the number of records, per operation type.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub records: u64,
    /// Records newly stored (imports only).
    pub inserted: u64,
    pub by_op_type: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, r: &Record) {
        self.records += 1;
        *self.by_op_type.entry(r.op_type.clone()).or_default() += 1;
    }
}

pub async fn run(config: Config, args: SimulateArgs) -> anyhow::Result<()> {
    let format = match &args.out {
        Some(path) => Some(Format::of_file(path, args.format)?),
        None => None,
    };
    // The developer: from the store, unless a file is written for a given time zone.
    let (core, tz, account) = match (&args.out, &args.timezone) {
        (Some(_), Some(tz)) => {
            if AppId::parse(&args.app).is_none() {
                bail!("--app: '{}' is not a valid app id", args.app);
            }
            let zone = TimeZone::get(tz).with_context(|| format!("--timezone {tz}"))?;
            (None, zone, args.account.clone().unwrap_or_default())
        }
        _ => {
            let core = Core::open(config).await.context("cannot open the store")?;
            let dev = core.tenants.get(&args.app).await?;
            let zone = dev.timezone.zone().clone();
            let account = args
                .account
                .clone()
                .or_else(|| dev.accounts.first().cloned())
                .unwrap_or_default();
            (Some(core), zone, account)
        }
    };
    let start = match args.start {
        Some(d) => d,
        None => default_start(&tz, args.days)?,
    };
    let params = Params {
        developer_id: args.app.clone(),
        account_id: account,
        tz: tz.clone(),
        start,
        days: args.days,
        agents: args.agents,
        seed: args.seed,
    };
    let sim = Simulation::new(params).map_err(|e| anyhow!("cannot simulate: {e}"))?;
    let tally = match (&args.out, format, core) {
        (Some(path), Some(format), _) => write_file(sim, path, format, &tz)?,
        (_, _, Some(core)) => {
            let bar = progress::rows("simulating and importing".to_owned());
            let t = import(&core.store, sim, |n| bar.set_position(n)).await?;
            bar.finish_and_clear();
            t
        }
        _ => bail!("nothing to do"),
    };
    print_summary(&args, start, &tz, &tally)
}

/// D days before today in `tz`: the simulation ends with yesterday.
pub fn default_start(tz: &TimeZone, days: u32) -> anyhow::Result<Date> {
    let today = Zoned::now().with_time_zone(tz.clone()).date();
    today
        .checked_sub(jiff::Span::new().days(i64::from(days)))
        .context("the start date is out of range")
}

/// Writes the records to `path`; times in `tz`.
fn write_file(
    sim: Simulation,
    path: &Path,
    format: Format,
    tz: &TimeZone,
) -> anyhow::Result<Tally> {
    let cannot = || format!("cannot write {}", path.display());
    let file = File::create(path).with_context(cannot)?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let bar = progress::rows(format!("writing {}", path.display()));
    let mut tally = Tally::default();
    match format {
        Format::Csv => {
            // One row at a time through a reused buffer: the encoder appends to a `Vec`.
            let mut row = Vec::with_capacity(512);
            for r in sim {
                row.clear();
                r.push_csv(&mut row, tz);
                out.write_all(&row).with_context(cannot)?;
                tally.add(&r);
                if tally.records % TICK == 0 {
                    bar.set_position(tally.records);
                }
            }
        }
        Format::Jsonl => {
            for r in sim {
                serde_json::to_writer(&mut out, &r.to_json(tz)).with_context(cannot)?;
                out.write_all(b"\n").with_context(cannot)?;
                tally.add(&r);
                if tally.records % TICK == 0 {
                    bar.set_position(tally.records);
                }
            }
        }
    }
    out.flush().with_context(cannot)?;
    bar.finish_and_clear();
    Ok(tally)
}

/// Stores the simulated records in batches (ids already stored are skipped, and keep what is
/// stored); `progress` is told the number of records generated after each batch.
pub async fn import(
    store: &Arc<dyn Store>,
    sim: Simulation,
    progress: impl Fn(u64),
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut batch = Vec::with_capacity(BATCH);
    let mut sim = sim.peekable();
    while let Some(r) = sim.next() {
        tally.add(&r);
        batch.push(r);
        if batch.len() >= BATCH || sim.peek().is_none() {
            tally.inserted += store
                .insert_records(&batch, OnConflict::Skip)
                .await
                .context("cannot store records")?
                .inserted;
            batch.clear();
            progress(tally.records);
        }
    }
    Ok(tally)
}

/// The `--json` summary.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    app_id: &'a str,
    agents: u32,
    days: u32,
    start: String,
    seed: u64,
    timezone: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    records: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    inserted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    already_present: Option<u64>,
    by_op_type: &'a BTreeMap<String, u64>,
}

fn print_summary(
    args: &SimulateArgs,
    start: Date,
    tz: &TimeZone,
    tally: &Tally,
) -> anyhow::Result<()> {
    let imported = args.out.is_none();
    let zone = tz.iana_name().unwrap_or("UTC");
    let mut out = std::io::stdout().lock();
    if args.json {
        let v = Summary {
            app_id: &args.app,
            agents: args.agents,
            days: args.days,
            start: start.to_string(),
            seed: args.seed,
            timezone: zone,
            file: args.out.as_ref().map(|p| p.display().to_string()),
            records: tally.records,
            inserted: imported.then_some(tally.inserted),
            already_present: imported.then_some(tally.records - tally.inserted),
            by_op_type: &tally.by_op_type,
        };
        let text = serde_json::to_string(&v).context("cannot encode JSON")?;
        writeln!(out, "{text}")
    } else {
        let what = format!(
            "{}: {} x {} from {start} ({zone}), seed {}",
            counted(tally.records, "record", "records"),
            counted(args.agents.into(), "agent", "agents"),
            counted(args.days.into(), "day", "days"),
            args.seed
        );
        let line = match &args.out {
            Some(path) => format!("{}: {what}", path.display()),
            None => format!(
                "{what}; {} inserted, {} already present",
                count(tally.inserted),
                count(tally.records - tally.inserted)
            ),
        };
        writeln!(out, "{line}").and_then(|()| {
            // Numeric order: the map's text order would put 26 before 3.
            let mut ops: Vec<_> = tally.by_op_type.iter().collect();
            ops.sort_by_key(|(op, _)| op.parse::<i64>().unwrap_or(i64::MAX));
            for (op, n) in ops {
                writeln!(out, "  {op:>2} {:<18} {:>9}", model::op_name(op), count(*n))?;
            }
            Ok(())
        })
    }
    .and_then(|()| out.flush())
    .context("cannot write to stdout")
}
