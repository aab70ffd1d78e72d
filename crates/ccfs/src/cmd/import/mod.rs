//! `ccfs import FILE...`: records from CSV or JSONL files into the configured store.
//!
//! Each file is atomic in effect: a first streaming pass validates every row (through
//! `ccfs_server::Ingest`, so a developer must exist and local times are read in its
//! time zone) and stops at the first bad one, before anything of the file is stored; a second
//! pass reads the file again and stores it in batches. Memory stays bounded by one batch,
//! whatever the file size. Records already stored (same developer and id) with the same
//! content are skipped.
//!
//! A record whose id is stored with different content is a conflict, handled as
//! `--on-conflict` says. With `fail` (the default) the first pass also asks the store, batch by
//! batch, whether a record conflicts, and remembers the ids of the whole file ([`seen`]) to find
//! two versions of one id anywhere in it; it stops before anything of the file is stored. The
//! store checks again while storing (in the same transaction as the writes), which catches
//! another writer in between.

mod rows;
mod seen;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use ccfs_protocol::messages::OnConflict;
use ccfs_protocol::Record;
use ccfs_server::{Config, Core, Ingest, IngestError, InsertOutcome};
use serde::Serialize;

use self::rows::Rows;
use self::seen::{Seen, SeenIds};
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
            on_conflict: args.on_conflict.into(),
            batch,
        };
        let total = file.validate(&mut ingest).await?;
        let (records, outcome) = file.insert(&mut ingest, total).await?;
        print_summary(path, records, &outcome, file.on_conflict, args.json)?;
    }
    Ok(())
}

/// Records with the lines they start on, stored or checked together.
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    lines: Vec<u64>,
}

impl Batch {
    fn push(&mut self, line: u64, record: Record) {
        self.records.push(record);
        self.lines.push(line);
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn clear(&mut self) {
        self.records.clear();
        self.lines.clear();
    }

    /// The conflicts of `outcome` (an outcome of this batch) as `(line, id)`.
    fn conflicts(&self, outcome: &InsertOutcome) -> Vec<(u64, String)> {
        outcome
            .first_conflicts
            .iter()
            .map(|(i, id)| (self.lines[*i], id.clone()))
            .collect()
    }
}

/// The conflicts found in one file: how many, and the first few as `(line, id)`; and the
/// first two versions of one id within the file, as `(line, id, earlier line)`.
#[derive(Default)]
struct Conflicts {
    count: u64,
    first: Vec<(u64, String)>,
    in_file: Option<(u64, String, u64)>,
}

impl Conflicts {
    fn add(&mut self, count: u64, first: Vec<(u64, String)>) {
        self.count += count;
        let room = ccfs_server::MAX_CONFLICTS_LISTED.saturating_sub(self.first.len());
        self.first.extend(first.into_iter().take(room));
    }

    /// `FILE:LINE: id ID: conflicts …`, naming the first conflict and listing the others.
    fn message(&self, path: &Path) -> String {
        let file = path.display();
        if let (Some((line, id, first_line)), None) = (&self.in_file, self.first.first()) {
            return format!(
                "{file}:{line}: id {id}: conflicts with line {first_line} of the same file, a \
                 different version of the record (use --on-conflict replace to keep the later \
                 one, or skip)"
            );
        }
        let Some((line, id)) = self.first.first() else {
            return format!("{file}: conflicts with stored records");
        };
        let mut msg = format!(
            "{file}:{line}: id {id}: conflicts with a stored record with different content \
             (use --on-conflict skip or replace)"
        );
        if self.count > 1 {
            let listed = self
                .first
                .iter()
                .map(|(line, id)| format!("{id} (line {line})"))
                .collect::<Vec<_>>()
                .join(", ");
            let more = if self.count > self.first.len() as u64 {
                ", …"
            } else {
                ""
            };
            msg.push_str(&format!(
                "; {} records of {file} conflict: {listed}{more}",
                self.count
            ));
        }
        msg
    }
}

/// One file being imported.
struct FileImport<'a> {
    path: &'a Path,
    format: Format,
    /// `--app`: every record is assigned to this developer.
    app: Option<&'a str>,
    on_conflict: OnConflict,
    /// Records stored per transaction (and checked per query by the first pass).
    batch: usize,
}

impl FileImport<'_> {
    fn open(&self) -> anyhow::Result<Rows> {
        Rows::open(self.path, self.format)
            .with_context(|| format!("cannot open {}", self.path.display()))
    }

    /// The next valid record and its line; an error names the file, the line and the field.
    async fn next(
        &self,
        rows: &mut Rows,
        ingest: &mut Ingest,
    ) -> anyhow::Result<Option<(u64, Record)>> {
        let Some(row) = rows.next_row() else {
            return Ok(None);
        };
        let (line, mut raw) =
            row.map_err(|e| anyhow!("{}:{}: {}", self.path.display(), e.line, e.message))?;
        if let Some(app) = self.app {
            raw.0[1] = app.to_owned();
        }
        match ingest.check(raw).await {
            Ok(record) => Ok(Some((line, record))),
            Err(IngestError::Store(e)) => {
                Err(anyhow::Error::new(e).context("cannot read the developers"))
            }
            Err(e) => Err(anyhow!("{}:{}: {}", self.path.display(), line, e)),
        }
    }

    /// The first pass: checks every row, and with `--on-conflict fail` asks the store whether
    /// a record conflicts; stores nothing. Returns the number of records.
    async fn validate(&self, ingest: &mut Ingest) -> anyhow::Result<u64> {
        let mut rows = self.open()?;
        let bar = progress::rows(format!("validating {}", self.path.display()));
        let check = self.on_conflict == OnConflict::Fail;
        let mut pending = Batch::default();
        let mut conflicts = Conflicts::default();
        let mut seen = SeenIds::default();
        let mut n = 0u64;
        loop {
            let next = self.next(&mut rows, ingest).await?;
            let done = next.is_none();
            if let Some((line, record)) = next {
                n += 1;
                if n % TICK == 0 {
                    bar.set_position(n);
                }
                if check {
                    match seen.note(&record, line) {
                        // A later version is not asked about again: the store would count it
                        // against the first version of the same batch.
                        Seen::Differs { first_line } => {
                            conflicts.count += 1;
                            conflicts
                                .in_file
                                .get_or_insert((line, record.id.clone(), first_line));
                        }
                        Seen::Same | Seen::New => pending.push(line, record),
                    }
                }
            }
            if pending.len() >= self.batch || (done && pending.len() > 0) {
                let outcome = ingest
                    .check_stored(&pending.records, self.on_conflict)
                    .await
                    .context("cannot read the stored records")?;
                conflicts.add(outcome.conflicts, pending.conflicts(&outcome));
                pending.clear();
            }
            if done {
                break;
            }
        }
        bar.finish_and_clear();
        if conflicts.count > 0 {
            return Err(anyhow!(conflicts.message(self.path)));
        }
        Ok(n)
    }

    /// The second pass: stores the records in batches; returns the number of records and
    /// what was done with them.
    async fn insert(
        &self,
        ingest: &mut Ingest,
        total: u64,
    ) -> anyhow::Result<(u64, InsertOutcome)> {
        let mut rows = self.open()?;
        let bar = progress::bar(format!("importing {}", self.path.display()), total);
        let mut pending = Batch::default();
        let mut records = 0u64;
        let mut outcome = InsertOutcome::default();
        let changed = || {
            format!(
                "{} changed while it was imported; some of it may be stored",
                self.path.display()
            )
        };
        loop {
            let next = self.next(&mut rows, ingest).await.with_context(changed)?;
            let done = next.is_none();
            if let Some((line, record)) = next {
                pending.push(line, record);
                records += 1;
            }
            if pending.len() >= self.batch || (done && pending.len() > 0) {
                let stored = ingest
                    .insert(&pending.records, self.on_conflict)
                    .await
                    .with_context(|| format!("{}: cannot store records", self.path.display()))?;
                if stored.failed(self.on_conflict) {
                    let mut conflicts = Conflicts::default();
                    conflicts.add(stored.conflicts, pending.conflicts(&stored));
                    let mut msg = conflicts.message(self.path);
                    // The first pass found no conflict, so this one is with an earlier batch
                    // of the file (or with another writer).
                    if records > pending.len() as u64 {
                        msg.push_str(&format!(
                            "; the records of {} before line {} are stored, the rest is not",
                            self.path.display(),
                            pending.lines[0]
                        ));
                    }
                    return Err(anyhow!(msg));
                }
                let offset = (records - pending.len() as u64) as usize;
                outcome.add(stored, offset);
                pending.clear();
                bar.set_position(records);
            }
            if done {
                break;
            }
        }
        bar.finish_and_clear();
        Ok((records, outcome))
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
    conflicts: u64,
    replaced: u64,
    /// The ids of the first conflicting records.
    conflict_ids: Vec<&'a str>,
}

/// `FILE: N records, I inserted, P already present[, C conflicts skipped|replaced (ids …)]`,
/// or its JSON form.
fn print_summary(
    path: &Path,
    records: u64,
    outcome: &InsertOutcome,
    on_conflict: OnConflict,
    as_json: bool,
) -> anyhow::Result<()> {
    let file = path.display().to_string();
    let ids: Vec<&str> = outcome
        .first_conflicts
        .iter()
        .map(|(_, id)| id.as_str())
        .collect();
    let mut out = std::io::stdout().lock();
    if as_json {
        let v = Summary {
            file: &file,
            records,
            inserted: outcome.inserted,
            already_present: outcome.already_present,
            conflicts: outcome.conflicts,
            replaced: outcome.replaced,
            conflict_ids: ids,
        };
        let text = serde_json::to_string(&v).context("cannot encode JSON")?;
        writeln!(out, "{text}")
    } else {
        let mut line = format!(
            "{file}: {records} records, {} inserted, {} already present",
            outcome.inserted, outcome.already_present
        );
        if outcome.conflicts > 0 {
            let (noun, label) = match outcome.conflicts {
                1 => ("conflict", "id"),
                _ => ("conflicts", "ids"),
            };
            let what = match on_conflict {
                OnConflict::Replace => "replaced",
                _ => "skipped",
            };
            let more = if outcome.conflicts > ids.len() as u64 {
                ", …"
            } else {
                ""
            };
            line.push_str(&format!(
                ", {} {noun} {what} ({label} {}{more})",
                outcome.conflicts,
                ids.join(", ")
            ));
        }
        writeln!(out, "{line}")
    }
    .and_then(|()| out.flush())
    .context("cannot write to stdout")
}
