//! The export half of the demo: generate, wait for the verified callback, check the status,
//! download with its checksum checked, open the zip.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use ccfs_client::{CallbackBody, Client, GenerateBody, ZipFileName};
use jiff::civil::Date;
use tokio::sync::mpsc;

use super::tally::{open_zip, Tally};
use super::Steps;

/// How long the export and its callback may take before the demo gives up. Generous: a debug
/// build on a busy machine is slow, and this limit only decides when to fail.
const CALLBACK_WAIT: Duration = Duration::from_secs(120);

/// What the export steps found.
pub(super) struct Export {
    pub(super) window: (String, String),
    pub(super) response_id: String,
    pub(super) record_count: u64,
    pub(super) file_name: String,
    pub(super) file_path: PathBuf,
    pub(super) file_size: u64,
    pub(super) sha256: String,
    pub(super) csv_files: Vec<PathBuf>,
    pub(super) rows: Tally,
}

/// Generate, wait for the callback, check the status, download, open the zip.
pub(super) async fn export(
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
