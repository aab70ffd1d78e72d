//! `ccfs import FILE...`: records from CSV or JSONL files into the configured store.
//!
//! Each file is atomic in effect: a first streaming pass validates every row (through
//! `ccfs_server::Ingest`, so a developer must exist and local times are read in its
//! time zone) and stops at the first bad one, before anything of the file is stored; a second
//! pass reads the file again and stores it in batches. Memory stays bounded by two batches
//! (and, with `--on-conflict fail`, 16 bytes per record: see [`seen`]), whatever the file
//! size. Records already stored (same developer and id) with the same content are skipped.
//!
//! Both passes overlap reading with the store: while the store checks or stores one batch (on
//! its own thread), the next one is read and validated here, so the two use both cores.
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
use std::sync::Arc;

use anyhow::{anyhow, Context};
use ccfs_protocol::messages::OnConflict;
use ccfs_protocol::record::RawRecord;
use ccfs_protocol::Record;
use ccfs_server::{Config, Core, Ingest, IngestError, InsertOutcome, Store};
use jiff::Timestamp;
use serde::Serialize;

use self::rows::Rows;
use self::seen::{Seen, SeenIds};
use crate::cli::{Format, ImportArgs};
use crate::numbers::{count, counted};
use crate::progress;

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
            store: &core.store,
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

/// Records with the lines they start on, stored or checked together. Its records are
/// overwritten by the next batch read into it, so that reading a file allocates (almost)
/// nothing per row: `slots` keeps every record ever read, of which the first `lines.len()` are
/// the batch.
#[derive(Default)]
struct Batch {
    slots: Vec<Record>,
    lines: Vec<u64>,
}

impl Batch {
    fn records(&self) -> &[Record] {
        &self.slots[..self.lines.len()]
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    fn clear(&mut self) {
        self.lines.clear();
    }

    /// The record to read the next one into; [`Batch::keep`] makes it part of the batch.
    fn next_slot(&mut self) -> &mut Record {
        let n = self.lines.len();
        if n == self.slots.len() {
            let blank = Timestamp::UNIX_EPOCH;
            self.slots
                .push(Record::from_texts(Default::default(), blank, blank));
        }
        &mut self.slots[n]
    }

    fn keep(&mut self, line: u64) {
        self.lines.push(line);
    }

    /// Keeps only the records `keep` says yes to, in order.
    fn retain(&mut self, mut keep: impl FnMut(u64, &Record) -> bool) {
        let mut kept = 0;
        for i in 0..self.lines.len() {
            if keep(self.lines[i], &self.slots[i]) {
                self.slots.swap(kept, i);
                self.lines[kept] = self.lines[i];
                kept += 1;
            }
        }
        self.lines.truncate(kept);
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
                "; {} of {file} conflict: {listed}{more}",
                counted(self.count, "record", "records")
            ));
        }
        msg
    }
}

/// One file being imported.
struct FileImport<'a> {
    store: &'a Arc<dyn Store>,
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
        raw: &mut RawRecord,
        out: &mut Record,
    ) -> anyhow::Result<Option<u64>> {
        let Some(row) = rows.next_row(raw) else {
            return Ok(None);
        };
        let line = row.map_err(|e| anyhow!("{}:{}: {}", self.path.display(), e.line, e.message))?;
        if let Some(app) = self.app {
            raw.0[1].clear();
            raw.0[1].push_str(app);
        }
        match ingest.check_into(raw, out).await {
            Ok(()) => Ok(Some(line)),
            Err(IngestError::Store(e)) => {
                Err(anyhow::Error::new(e).context("cannot read the developers"))
            }
            Err(e) => Err(anyhow!("{}:{}: {}", self.path.display(), line, e)),
        }
    }

    /// Reads the next valid records into `batch`, up to a batch; none at the end of the file.
    async fn read_batch(
        &self,
        rows: &mut Rows,
        ingest: &mut Ingest,
        raw: &mut RawRecord,
        batch: &mut Batch,
    ) -> anyhow::Result<()> {
        batch.clear();
        while batch.len() < self.batch {
            let Some(line) = self.next(rows, ingest, raw, batch.next_slot()).await? else {
                break;
            };
            batch.keep(line);
        }
        Ok(())
    }

    /// The line where `record`'s id first appears in the file, if before `line`: confirms that
    /// [`Seen::Differs`] is a second version and not a collision of key hashes.
    async fn first_line_of(
        &self,
        record: &Record,
        line: u64,
        ingest: &mut Ingest,
    ) -> anyhow::Result<Option<u64>> {
        let mut rows = self.open()?;
        let mut raw = RawRecord::default();
        let mut r = record.clone();
        while let Some(at) = self.next(&mut rows, ingest, &mut raw, &mut r).await? {
            if at >= line {
                break;
            }
            if r.id == record.id && r.developer_id == record.developer_id {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// The first pass: checks every row, and with `--on-conflict fail` asks the store whether
    /// a record conflicts; stores nothing. Returns the number of records.
    async fn validate(&self, ingest: &mut Ingest) -> anyhow::Result<u64> {
        let mut rows = self.open()?;
        let bar = progress::rows(format!("validating {}", self.path.display()));
        let check = self.on_conflict == OnConflict::Fail;
        let mut conflicts = Conflicts::default();
        let mut seen = SeenIds::default();
        let mut n = 0u64;
        let mut raw = RawRecord::default();
        // The batch the store checks while the next one is read.
        let mut checking = Batch::default();
        let mut read = Batch::default();
        loop {
            let (checked, done) = tokio::join!(
                async {
                    match checking.len() {
                        0 => None,
                        _ => Some(
                            self.store
                                .check_records(checking.records(), self.on_conflict)
                                .await,
                        ),
                    }
                },
                self.read_batch(&mut rows, ingest, &mut raw, &mut read)
            );
            if let Some(outcome) = checked {
                let outcome = outcome.context("cannot read the stored records")?;
                conflicts.add(outcome.conflicts, checking.conflicts(&outcome));
            }
            done?;
            if read.len() == 0 {
                break;
            }
            n += read.len() as u64;
            bar.set_position(n);
            std::mem::swap(&mut checking, &mut read);
            if !check {
                checking.clear();
                continue;
            }
            // A later version is not asked about again: the store would count it against the
            // first version of the same batch. Until one is confirmed (it is the one the
            // message names), each is confirmed by reading the file again; after that, a
            // collision of key hashes could only make the count of a failing file's conflicts
            // one too high.
            let mut differs = Vec::new();
            checking.retain(|line, record| match seen.note(record) {
                Seen::Differs => {
                    differs.push((line, record.clone()));
                    false
                }
                Seen::Same | Seen::New => true,
            });
            for (line, record) in differs {
                if conflicts.in_file.is_some() {
                    conflicts.count += 1;
                    continue;
                }
                match self.first_line_of(&record, line, ingest).await? {
                    Some(first_line) => {
                        conflicts.count += 1;
                        conflicts.in_file = Some((line, record.id, first_line));
                    }
                    // A collision of key hashes: the record is new after all, and checked
                    // with its batch.
                    None => {
                        *checking.next_slot() = record;
                        checking.keep(line);
                    }
                }
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
        let mut records = 0u64;
        let mut outcome = InsertOutcome::default();
        let changed = || {
            format!(
                "{} changed while it was imported; some of it may be stored",
                self.path.display()
            )
        };
        let mut raw = RawRecord::default();
        let mut pending = Batch::default();
        let mut next = Batch::default();
        self.read_batch(&mut rows, ingest, &mut raw, &mut pending)
            .await
            .with_context(changed)?;
        while pending.len() > 0 {
            // The next batch is read while this one is stored.
            let (stored, read) = tokio::join!(
                self.store
                    .insert_records(pending.records(), self.on_conflict),
                self.read_batch(&mut rows, ingest, &mut raw, &mut next)
            );
            let stored =
                stored.with_context(|| format!("{}: cannot store records", self.path.display()))?;
            records += pending.len() as u64;
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
            bar.set_position(records);
            read.with_context(changed)?;
            std::mem::swap(&mut pending, &mut next);
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
            "{file}: {}, {} inserted, {} already present",
            counted(records, "record", "records"),
            count(outcome.inserted),
            count(outcome.already_present)
        );
        if outcome.conflicts > 0 {
            let label = if outcome.conflicts == 1 { "id" } else { "ids" };
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
                ", {} {what} ({label} {}{more})",
                counted(outcome.conflicts, "conflict", "conflicts"),
                ids.join(", ")
            ));
        }
        writeln!(out, "{line}")
    }
    .and_then(|()| out.flush())
    .context("cannot write to stdout")
}
