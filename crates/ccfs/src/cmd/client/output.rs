//! What the client commands show: results on stdout (text for people, or one JSON object per
//! result with `--json`), notes and refusals on stderr, progress on stderr only when it is a
//! terminal; and unzipping a downloaded export.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use ccfs_client::Downloaded;
use ccfs_protocol::messages::StatusData;
use ccfs_protocol::{ResponseId, ZipFileName};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use crate::numbers::{count, counted};

/// Where results go and in which form.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    json: bool,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints one result: `value` as one line of JSON, or `human()`.
    pub fn emit<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer(&mut stdout, value)?;
            writeln!(stdout)?;
        } else {
            writeln!(stdout, "{}", human())?;
        }
        stdout.flush()?;
        Ok(())
    }

    /// A remark for people, on stderr (left out with `--json`, which keeps stderr for errors).
    pub fn note(&self, text: &str) {
        if !self.json {
            eprintln!("{text}");
        }
    }

    /// Says plainly, on stderr, that a finished export holds no records: an empty zip is a
    /// valid answer, but almost always a window or time zone other than the one meant.
    pub fn warn_if_empty(&self, record_count: Option<u64>) {
        if record_count == Some(0) {
            self.note(EMPTY_EXPORT);
        }
    }

    /// A job's status.
    pub fn status(&self, s: &StatusData) -> anyhow::Result<()> {
        self.emit(s, || {
            let mut lines = vec![
                format!("responseId:  {}", s.response_id),
                format!("state:       {}", s.state),
                format!("file:        {}", s.agent_opr_info_file_name),
            ];
            let mut opt = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    lines.push(format!("{k:<12} {v}"));
                }
            };
            opt("records:", s.record_count.map(count));
            opt("csv files:", s.file_count.map(|n| count(n.into())));
            opt("size:", s.file_size.map(|n| counted(n, "byte", "bytes")));
            opt("sha256:", s.sha256.clone());
            opt("created:", Some(s.created_at.clone()));
            opt("finished:", s.finished_at.clone());
            opt("expires:", s.expires_at.clone());
            opt(
                "callback:",
                s.callback.as_ref().map(|c| {
                    let mut t = format!(
                        "{} after {}",
                        c.state,
                        counted(c.attempts.into(), "attempt", "attempts")
                    );
                    if let Some(e) = &c.last_error {
                        t.push_str(&format!(" (last error: {e})"));
                    }
                    t
                }),
            );
            opt("error:", s.error.clone());
            lines.join("\n")
        })
    }

    /// A finished download; `records` is the export's record count when the server told it.
    pub fn downloaded(
        &self,
        name: &ZipFileName,
        id: Option<&ResponseId>,
        records: Option<u64>,
        got: &Downloaded,
        extracted: &[String],
    ) -> anyhow::Result<()> {
        let value = json!({
            "event": "downloaded",
            "responseId": id.map(ResponseId::as_str),
            "agentOprInfoFileName": name.as_str(),
            "recordCount": records,
            "path": got.path.display().to_string(),
            "size": got.size,
            "sha256": got.sha256,
            "verified": got.verified,
            "resumedFrom": got.resumed_from,
            "extracted": extracted,
        });
        self.emit(&value, || {
            let check = if got.verified {
                "checksum verified"
            } else {
                "the server sent no checksum"
            };
            let mut t = format!(
                "{}  {}  sha256 {}  ({check})",
                got.path.display(),
                counted(got.size, "byte", "bytes"),
                got.sha256
            );
            if let Some(n) = records {
                t.push_str(&format!("\nrecords: {}", count(n)));
            }
            for f in extracted {
                t.push_str(&format!("\n  {f}"));
            }
            t
        })
    }

    /// A callback refused by the receiver.
    pub fn refused(&self, from: &str, reason: &str) {
        if self.json {
            let _ = self.emit(
                &json!({"event": "refused", "from": from, "reason": reason}),
                String::new,
            );
        } else {
            eprintln!("refused a callback from {from}: {reason}");
        }
    }

    /// A download the receiver could not complete (it keeps running).
    pub fn failed(&self, file: &str, e: &anyhow::Error) {
        let text = format!("{e:#}");
        if self.json {
            let _ = self.emit(
                &json!({"event": "failed", "agentOprInfoFileName": file, "error": text}),
                String::new,
            );
        } else {
            eprintln!("warning: {file}: {text}");
        }
    }
}

/// The warning for an export without records.
pub const EMPTY_EXPORT: &str = "warning: the export holds no records: no record of this \
developer begins in the window. --begin and --end are read in the developer's time zone; check \
that records were imported for those days (`ccfs simulate --start` or `ccfs import`).";

fn visible() -> bool {
    std::io::stderr().is_terminal()
}

/// A byte progress bar for a download: `NAME [=====>   ] 1.2 MiB/3.4 MiB (2 MiB/s, eta 1s)`.
pub fn download_bar(name: &str) -> ProgressBar {
    if !visible() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name.to_owned());
    bar
}

/// A spinner while waiting for a job or a callback.
pub fn spinner(label: String) -> ProgressBar {
    if !visible() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(label);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Unzips `zip` into a directory next to it named after it without `.zip`; answers the paths
/// written. Entry names that would leave that directory are refused.
pub async fn extract(zip: &Path) -> anyhow::Result<Vec<String>> {
    let zip = zip.to_owned();
    tokio::task::spawn_blocking(move || extract_blocking(&zip))
        .await
        .context("the unzip task failed")?
}

fn extract_blocking(zip: &Path) -> anyhow::Result<Vec<String>> {
    let dir = zip.with_extension("");
    let file =
        std::fs::File::open(zip).with_context(|| format!("cannot open {}", zip.display()))?;
    let mut archive =
        zip::ZipArchive::new(file).with_context(|| format!("{} is not a zip", zip.display()))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .with_context(|| format!("{}: entry {i}", zip.display()))?;
        let Some(rel) = entry.enclosed_name() else {
            anyhow::bail!("{}: entry {i} has an unsafe name", zip.display());
        };
        let target: PathBuf = dir.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::fs::File::create(&target)
            .with_context(|| format!("cannot write {}", target.display()))?;
        std::io::copy(&mut entry, &mut out)
            .with_context(|| format!("cannot unzip into {}", target.display()))?;
        written.push(target.display().to_string());
    }
    Ok(written)
}
