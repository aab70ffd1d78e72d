//! The demo's summary: printed for people, or as one JSON object with `--json`.

use serde::Serialize;

use super::tally::OpCount;
use super::Step;
use crate::numbers::{count, counted};

/// The summary: printed for people, or as one JSON object with `--json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Report {
    pub(super) server: String,
    pub(super) data_dir: String,
    /// Whether the directory was given with `--data-dir`.
    #[serde(skip)]
    pub(super) data_dir_chosen: bool,
    /// Whether the data directory is still there (`--keep` or `--data-dir`); when not, the
    /// paths below name files that were removed.
    pub(super) kept: bool,
    pub(super) app_id: String,
    pub(super) ingest_app_id: String,
    pub(super) timezone: &'static str,
    pub(super) account_id: &'static str,
    pub(super) day: String,
    pub(super) agents_simulated: u32,
    pub(super) seed: u64,
    pub(super) records_simulated: u64,
    pub(super) records_imported: u64,
    pub(super) window_begin: String,
    pub(super) window_end: String,
    pub(super) response_id: String,
    pub(super) callback_verified: bool,
    pub(super) record_count: u64,
    pub(super) csv_rows: u64,
    pub(super) agents: u64,
    pub(super) first_begin: String,
    pub(super) last_end: String,
    pub(super) by_op_type: Vec<OpCount>,
    pub(super) file_name: String,
    pub(super) file_path: String,
    pub(super) file_size: u64,
    pub(super) sha256: String,
    pub(super) checksum_verified: bool,
    pub(super) csv_files: Vec<String>,
    pub(super) steps: Vec<Step>,
    pub(super) total_ms: u64,
}

impl Report {
    pub(super) fn text(&self) -> String {
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
                "  simulated       {} on {} (seed {}): {}, {} imported",
                counted(self.agents_simulated.into(), "agent", "agents"),
                self.day,
                self.seed,
                counted(self.records_simulated, "record", "records"),
                count(self.records_imported)
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
                "  file            {}, {}, {}",
                self.file_name,
                counted(self.file_size, "byte", "bytes"),
                counted(self.csv_files.len() as u64, "CSV file", "CSV files")
            )?;
            writeln!(
                s,
                "  SHA-256         {} (checked against the server's)",
                self.sha256
            )?;
            writeln!(
                s,
                "  records         {} CSV rows = {} reported by the server = {} simulated",
                count(self.csv_rows),
                count(self.record_count),
                count(self.records_simulated)
            )?;
            writeln!(s, "  agents          {}", count(self.agents))?;
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
                    count(op.count)
                )?;
            }
            writeln!(s)?;
            writeln!(s, "Steps")?;
            for step in &self.steps {
                writeln!(s, "  {:<52} {:>9}", step.step, secs(step.ms))?;
            }
            writeln!(s, "  {:<52} {:>9}", "total", secs(self.total_ms))?;
            writeln!(s)?;
            if !self.kept {
                writeln!(
                    s,
                    "Files: removed with the temporary directory {} (keep them with --keep)",
                    self.data_dir
                )?;
                return Ok(());
            }
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
                writeln!(
                    s,
                    "  kept (--keep); remove with: rm -rf '{}'",
                    self.data_dir
                )?;
            }
            Ok(())
        })();
        s
    }
}
