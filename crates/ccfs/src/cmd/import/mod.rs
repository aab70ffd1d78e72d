//! `ccfs import FILE...`: records from CSV or JSONL files into the configured store.
//!
//! Each file is atomic in effect: a first streaming pass validates every row (through
//! `ccfs_server::ingest::Ingest`, so a developer must exist and local times are read in its
//! time zone) and stops at the first bad one, before anything of the file is stored; a second
//! pass reads the file again and stores it in batches. Memory stays bounded by one batch,
//! whatever the file size. Records already stored (same developer and id) are skipped.

mod rows;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use ccfs_protocol::Record;
use ccfs_server::ingest::{Ingest, IngestError};
use ccfs_server::server::Core;
use ccfs_server::Config;
use serde::Serialize;

use self::rows::Rows;
use crate::cli::{Format, ImportArgs};
use crate::progress;

/// How often (in rows) the progress bar is updated.
const TICK: u64 = 1024;

pub async fn run(config: Config, args: ImportArgs) -> anyhow::Result<()> {
    let plan = args
        .files
        .iter()
        .map(|f| Ok((f.clone(), Format::of_file(f, args.format)?)))
        .collect::<anyhow::Result<Vec<(PathBuf, Format)>>>()?;
    let core = Core::open(config).await.context("cannot open the store")?;
    let app = match &args.app {
        Some(id) => Some(core.tenants.get(id).await?.app_id.to_string()),
        None => None,
    };
    let mut ingest = Ingest::new(core.store.clone());
    let batch = usize::try_from(args.batch).unwrap_or(5000).max(1);
    for (path, format) in &plan {
        let file = FileImport {
            path,
            format: *format,
            app: app.as_deref(),
        };
        let total = file.validate(&mut ingest).await?;
        let (records, inserted) = file.insert(&mut ingest, total, batch).await?;
        print_summary(path, records, inserted, args.json)?;
    }
    Ok(())
}

/// One file being imported.
struct FileImport<'a> {
    path: &'a Path,
    format: Format,
    /// `--app`: every record is assigned to this developer.
    app: Option<&'a str>,
}

impl FileImport<'_> {
    fn open(&self) -> anyhow::Result<Rows> {
        Rows::open(self.path, self.format)
            .with_context(|| format!("cannot open {}", self.path.display()))
    }

    /// The next valid record; an error names the file, the line and the field.
    async fn next(&self, rows: &mut Rows, ingest: &mut Ingest) -> anyhow::Result<Option<Record>> {
        let Some(row) = rows.next_row() else {
            return Ok(None);
        };
        let (line, mut raw) =
            row.map_err(|e| anyhow!("{}:{}: {}", self.path.display(), e.line, e.message))?;
        if let Some(app) = self.app {
            raw.0[1] = app.to_owned();
        }
        match ingest.check(raw).await {
            Ok(record) => Ok(Some(record)),
            Err(IngestError::Store(e)) => {
                Err(anyhow::Error::new(e).context("cannot read the developers"))
            }
            Err(e) => Err(anyhow!("{}:{}: {}", self.path.display(), line, e)),
        }
    }

    /// The first pass: checks every row, stores nothing; returns the number of records.
    async fn validate(&self, ingest: &mut Ingest) -> anyhow::Result<u64> {
        let mut rows = self.open()?;
        let bar = progress::rows(format!("validating {}", self.path.display()));
        let mut n = 0u64;
        while self.next(&mut rows, ingest).await?.is_some() {
            n += 1;
            if n % TICK == 0 {
                bar.set_position(n);
            }
        }
        bar.finish_and_clear();
        Ok(n)
    }

    /// The second pass: stores the records in batches; returns (records, inserted).
    async fn insert(
        &self,
        ingest: &mut Ingest,
        total: u64,
        batch: usize,
    ) -> anyhow::Result<(u64, u64)> {
        let mut rows = self.open()?;
        let bar = progress::bar(format!("importing {}", self.path.display()), total);
        let mut pending: Vec<Record> = Vec::with_capacity(batch);
        let (mut records, mut inserted) = (0u64, 0u64);
        let changed = || {
            format!(
                "{} changed while it was imported; some of it may be stored",
                self.path.display()
            )
        };
        loop {
            let next = self.next(&mut rows, ingest).await.with_context(changed)?;
            let done = next.is_none();
            if let Some(record) = next {
                pending.push(record);
                records += 1;
            }
            if pending.len() >= batch || (done && !pending.is_empty()) {
                inserted += ingest
                    .insert(&pending)
                    .await
                    .with_context(|| format!("{}: cannot store records", self.path.display()))?;
                pending.clear();
                bar.set_position(records);
            }
            if done {
                break;
            }
        }
        bar.finish_and_clear();
        Ok((records, inserted))
    }
}

/// The `--json` summary of one file.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    file: &'a str,
    records: u64,
    inserted: u64,
    already_present: u64,
}

/// `FILE: N records, I inserted, P already present`, or its JSON form.
fn print_summary(path: &Path, records: u64, inserted: u64, as_json: bool) -> anyhow::Result<()> {
    let present = records.saturating_sub(inserted);
    let file = path.display().to_string();
    let mut out = std::io::stdout().lock();
    if as_json {
        let v = Summary {
            file: &file,
            records,
            inserted,
            already_present: present,
        };
        let text = serde_json::to_string(&v).context("cannot encode JSON")?;
        writeln!(out, "{text}")
    } else {
        writeln!(
            out,
            "{file}: {records} records, {inserted} inserted, {present} already present"
        )
    }
    .and_then(|()| out.flush())
    .context("cannot write to stdout")
}
