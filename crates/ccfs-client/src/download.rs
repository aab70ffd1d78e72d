//! Downloading an export (`downloadAgentOprInfoFile`, SPEC section 8): streamed to
//! `DEST.part`, resumed with `Range: bytes=N-` when a part is already there, checked against
//! `X-Checksum-Sha256` when the server sends it, then renamed to `DEST` in one step, so `DEST`
//! only ever holds a complete file.
//!
//! Success and error are told apart by `Content-Type` as the SPEC says: an octet stream is
//! the file, anything else is the JSON envelope of an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ccfs_protocol::{paths, ZipFileName};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{read_envelope, Client};
use crate::error::{Error, Result};

/// How far a download has come, given to the progress callback after each piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes in the file so far (a resumed part included).
    pub done: u64,
    /// The file's size, when the server said it.
    pub total: Option<u64>,
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where the file is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Whether the server announced a checksum (`X-Checksum-Sha256`) and the file matched it.
    pub verified: bool,
    /// Bytes that were already in `DEST.part` when the last request started (0: not resumed).
    pub resumed_from: u64,
}

/// The partial file next to `dest`: `DEST.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// What one request came to.
enum Attempt {
    Done(Downloaded),
    /// Worth another request (the connection broke, the range no longer fits).
    Again(Error),
}

/// Whether a `Content-Type` is the download's octet stream (any letter case, any parameters).
fn is_octet_stream(value: Option<&str>) -> bool {
    value
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/octet-stream")
        })
}

/// Reads `bytes FIRST-LAST/TOTAL` → `(FIRST, TOTAL)` (`TOTAL` may be `*`).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, _last) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first.trim().parse().ok()?, total))
}

fn header(response: &reqwest::Response, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn remove_if_there(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Feeds the first `len` bytes of the file at `path` into `hasher`.
async fn hash_prefix(path: &Path, len: u64, hasher: &mut Sha256) -> Result<()> {
    let file = tokio::fs::File::open(path).await?;
    let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, file.take(len));
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

impl Client {
    /// Downloads the export `name` to the file `dest`, calling `progress` as bytes arrive.
    ///
    /// The bytes go to `DEST.part` first; a part left by an earlier, interrupted call is
    /// resumed with a `Range` request (every request signed afresh). A connection that breaks
    /// is resumed automatically (see [`crate::ClientBuilder::download_retries`]). When the
    /// server sends `X-Checksum-Sha256`, the whole file must match it, else the part is deleted
    /// and the answer is [`Error::Checksum`]. Server errors are [`Error::Api`] (`0300011`: no
    /// such file for this developer; `0300008`: too many downloads at once).
    ///
    /// ```no_run
    /// # async fn demo(client: ccfs_client::Client) -> Result<(), ccfs_client::Error> {
    /// let name: ccfs_protocol::ZipFileName =
    ///     "20240501_0123456789abcdef0123456789abcdef.zip".parse().unwrap();
    /// let file = client
    ///     .download(&name, name.as_str(), |p| {
    ///         eprintln!("{} of {:?} bytes", p.done, p.total);
    ///     })
    ///     .await?;
    /// println!("{} ({} bytes, sha256 {})", file.path.display(), file.size, file.sha256);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn download(
        &self,
        name: &ZipFileName,
        dest: impl AsRef<Path>,
        mut progress: impl FnMut(Progress),
    ) -> Result<Downloaded> {
        let dest = dest.as_ref();
        let part = part_path(dest);
        let mut retries = 0;
        loop {
            match self.download_once(name, dest, &part, &mut progress).await? {
                Attempt::Done(d) => return Ok(d),
                Attempt::Again(_) if retries < self.download_retries() => {
                    retries += 1;
                    pause_before_retry(retries).await;
                }
                Attempt::Again(e) => return Err(e),
            }
        }
    }

    async fn download_once(
        &self,
        name: &ZipFileName,
        dest: &Path,
        part: &Path,
        progress: &mut impl FnMut(Progress),
    ) -> Result<Attempt> {
        let offset = match tokio::fs::metadata(part).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        let mut msg = serde_json::Map::new();
        msg.insert(
            "agentOprInfoFileName".into(),
            serde_json::Value::String(name.to_string()),
        );
        let body = serde_json::to_vec(&ccfs_protocol::envelope::RequestEnvelope::new(msg))
            .map_err(|e| Error::Protocol(format!("cannot encode the request: {e}")))?;
        let mut request = self.signed_post(paths::DOWNLOAD, body);
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let again = e.is_connect() || e.is_timeout() || e.is_request();
                // A certificate refused or the wrong scheme will not change by trying again.
                return match self.transport_error(e) {
                    e @ (Error::Http(_) | Error::Connect { .. }) if again => Ok(Attempt::Again(e)),
                    e => Err(e),
                };
            }
        };
        let status = response.status();
        if status == StatusCode::RANGE_NOT_SATISFIABLE && offset > 0 {
            // The part is as long as the file or longer: it cannot be trusted; start over.
            remove_if_there(part).await?;
            return Ok(Attempt::Again(Error::Protocol(
                "the server cannot resume from the partial file's length".into(),
            )));
        }
        let file_answer = (status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT)
            && is_octet_stream(header(&response, CONTENT_TYPE));
        if !file_answer {
            let bytes = response.bytes().await?;
            read_envelope(status, &self.full_path(paths::DOWNLOAD), &bytes)?;
            return Err(Error::Protocol(format!(
                "HTTP {}: a success envelope instead of the file",
                status.as_u16()
            )));
        }
        let expected =
            header(&response, "x-checksum-sha256").map(|s| s.trim().to_ascii_lowercase());
        let (start, total) = if status == StatusCode::PARTIAL_CONTENT {
            let range = header(&response, CONTENT_RANGE).and_then(parse_content_range);
            match range {
                Some((first, total)) if first == offset => (offset, total),
                _ => {
                    remove_if_there(part).await?;
                    return Ok(Attempt::Again(Error::Protocol(format!(
                        "asked for bytes from {offset}, the server sent Content-Range {:?}",
                        header(&response, CONTENT_RANGE)
                    ))));
                }
            }
        } else {
            let length = header(&response, CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
            (0, length)
        };

        let mut hasher = Sha256::new();
        let mut file = if start > 0 {
            hash_prefix(part, start, &mut hasher).await?;
            let f = tokio::fs::OpenOptions::new()
                .append(true)
                .open(part)
                .await?;
            // A part longer than what was hashed (cannot happen unless it grew meanwhile) is cut.
            f.set_len(start).await?;
            f
        } else {
            tokio::fs::File::create(part).await?
        };
        let mut done = start;
        progress(Progress { done, total });
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    file.flush().await?;
                    file.sync_all().await?;
                    return Ok(Attempt::Again(e.into()));
                }
            };
            file.write_all(&chunk).await?;
            hasher.update(&chunk);
            done += chunk.len() as u64;
            progress(Progress { done, total });
        }
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        if let Some(total) = total {
            if done != total {
                return Ok(Attempt::Again(Error::Protocol(format!(
                    "the download ended after {done} of {total} bytes"
                ))));
            }
        }
        let actual = hex::encode(hasher.finalize());
        if let Some(expected) = &expected {
            if *expected != actual {
                remove_if_there(part).await?;
                return Err(Error::Checksum {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        tokio::fs::rename(part, dest).await?;
        Ok(Attempt::Done(Downloaded {
            path: dest.to_owned(),
            size: done,
            sha256: actual,
            verified: expected.is_some(),
            resumed_from: start,
        }))
    }
}

/// A short pause before resuming, longer after each failure: 250 ms, 500 ms, 1 s, … up to 4 s.
async fn pause_before_retry(retry: u32) {
    let ms = 250u64 << retry.saturating_sub(1).min(4);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_octet_stream(Some(
            "Application/Octet-stream;charset=UTF-8"
        )));
        assert!(is_octet_stream(Some("application/octet-stream")));
        assert!(!is_octet_stream(Some("application/json;charset=UTF-8")));
        assert!(!is_octet_stream(None));
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-9/*"), Some((0, None)));
        assert_eq!(parse_content_range("items 0-9/10"), None);
        assert_eq!(parse_content_range("bytes x-9/10"), None);
    }

    #[test]
    fn part_paths() {
        assert_eq!(
            part_path(Path::new("/tmp/a.zip")),
            PathBuf::from("/tmp/a.zip.part")
        );
    }
}
