//! What the demo counts: the rows of the downloaded zip's CSV files and the simulated records,
//! by operation type, agent and local time range, so the two can be compared.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};
use ccfs_protocol::record::{csv_reader, COLUMNS};
use ccfs_protocol::Record;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::simulate as model;

/// Extracts the zip's CSV files into `out_dir` and tallies their rows.
pub(super) fn open_zip(path: &Path, out_dir: &Path) -> anyhow::Result<(Vec<PathBuf>, Tally)> {
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
pub(super) struct Tally {
    pub(super) records: u64,
    pub(super) by_op_type: BTreeMap<String, u64>,
    pub(super) agents: BTreeSet<String>,
    pub(super) first_begin: Option<String>,
    pub(super) last_end: Option<String>,
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

    pub(super) fn of_records(records: &[Record], tz: &TimeZone) -> Self {
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
pub(super) fn op_counts(by_op_type: &BTreeMap<String, u64>) -> Vec<OpCount> {
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
pub(super) struct OpCount {
    pub(super) op_type: String,
    pub(super) name: &'static str,
    pub(super) count: u64,
}
