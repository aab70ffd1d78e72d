//! The signed HTTP client: building it ([`ClientBuilder`]), signing every request with auth-v2,
//! and the JSON calls (generate, the status and import extensions, waiting for a job).
//!
//! Every request is signed afresh with a millisecond timestamp that is strictly increasing
//! within the process, because servers refuse a signature they have already accepted (SPEC
//! section 3): a retry is a new request with a new signature.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccfs_protocol::auth::{format_timestamp, sign_json_post, JsonPost, Precision, SignedHeaders};
use ccfs_protocol::envelope::RequestEnvelope;
use ccfs_protocol::messages::{
    GenerateBody, GenerateData, ImportBody, ImportData, OnConflict, StatusData,
};
use ccfs_protocol::{paths, ResponseId, JSON_CONTENT_TYPE};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

use crate::error::{Error, Result};

mod answer;
mod builder;
mod transport;

pub(crate) use answer::read_envelope;
pub use builder::{ClientBuilder, DEFAULT_DOWNLOAD_RETRIES, DEFAULT_TIMEOUT};
use transport::transport_error;

struct Inner {
    http: reqwest::Client,
    base: Url,
    /// The server URL's path without its trailing `/`, put before every interface path.
    prefix: String,
    /// The `Host` value sent and signed.
    host: String,
    ak: String,
    sk: String,
    timeout: Duration,
    /// The headers each request signs besides the method, path, query and body.
    signed_headers: SignedHeaders,
    download_retries: u32,
}

/// A client of one CC-FS server, signing as one developer. Cheap to clone; clones share
/// connections.
///
/// The CC-FS calls are [`Client::generate`] and [`Client::download`]; [`Client::status`],
/// [`Client::wait`] and [`Client::import`] use this project's extensions (SPEC section 9) and
/// are only sent when called.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.base.as_str())
            .field("ak", &self.inner.ak)
            .finish_non_exhaustive()
    }
}

/// A fresh millisecond timestamp, strictly increasing within this process, so two identical
/// requests never carry the same signature.
fn fresh_millis() -> jiff::Timestamp {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = jiff::Timestamp::now().as_millisecond();
    let mut prev = LAST.load(Ordering::SeqCst);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                return jiff::Timestamp::from_millisecond(next)
                    .unwrap_or_else(|_| jiff::Timestamp::now())
            }
            Err(p) => prev = p,
        }
    }
}

impl Client {
    /// The server URL.
    pub fn server(&self) -> &Url {
        &self.inner.base
    }

    /// The access key requests are signed with.
    pub fn ak(&self) -> &str {
        &self.inner.ak
    }

    pub(crate) fn download_retries(&self) -> u32 {
        self.inner.download_retries
    }

    /// The path a request for the interface `path` goes to (the server URL's path first).
    pub(crate) fn full_path(&self, path: &str) -> String {
        format!("{}{path}", self.inner.prefix)
    }

    /// See [`transport_error`].
    pub(crate) fn transport_error(&self, e: reqwest::Error) -> Error {
        transport_error(&self.inner.base, e)
    }

    /// A signed `POST` of `body` to the interface `path`, not yet sent.
    pub(crate) fn signed_post(&self, path: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        let inner = &self.inner;
        let full_path = self.full_path(path);
        let mut url = inner.base.clone();
        url.set_path(&full_path);
        let authorization = sign_json_post(
            &inner.ak,
            &inner.sk,
            &format_timestamp(fresh_millis(), Precision::Millis),
            &JsonPost {
                path: &full_path,
                query: None,
                host: &inner.host,
                body: &body,
            },
            inner.signed_headers,
        );
        inner
            .http
            .post(url)
            .header(HOST, &inner.host)
            .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
            .header(AUTHORIZATION, authorization)
            .body(body)
    }

    /// Sends `msg_body` in the request envelope to the interface at `path` and reads
    /// `resultData` as `T`. The typed calls are built on this; it is public for interfaces this
    /// crate does not wrap.
    ///
    /// ```no_run
    /// # async fn demo(client: ccfs_client::Client) -> Result<(), ccfs_client::Error> {
    /// let data: serde_json::Value = client
    ///     .call(
    ///         ccfs_protocol::paths::STATUS,
    ///         &serde_json::json!({"responseId": "0123456789abcdef0123456789abcdef"}),
    ///     )
    ///     .await?;
    /// println!("{data}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        msg_body: &B,
    ) -> Result<T> {
        self.call_with(path, msg_body, None).await
    }

    async fn call_with<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        msg_body: &B,
        idempotency_key: Option<&str>,
    ) -> Result<T> {
        let body = serde_json::to_vec(&RequestEnvelope::new(msg_body))
            .map_err(|e| Error::Protocol(format!("cannot encode the request: {e}")))?;
        let mut request = self.signed_post(path, body).timeout(self.inner.timeout);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let data = read_envelope(status, &self.full_path(path), &bytes)?;
        serde_json::from_value(data)
            .map_err(|e| Error::Protocol(format!("unexpected resultData of {path}: {e}")))
    }

    /// Asks the server to export the records of a time window (`queryAgentOprInfoData`);
    /// answers the job's response id at once. The file is announced later on `callBackURL`.
    ///
    /// ```no_run
    /// use ccfs_protocol::messages::GenerateBody;
    /// # async fn demo(client: ccfs_client::Client) -> Result<(), ccfs_client::Error> {
    /// let id = client
    ///     .generate(&GenerateBody {
    ///         begin_time: "2024-05-01 00:00:00".into(),
    ///         end_time: "2024-05-02 00:00:00".into(),
    ///         account_id: None,
    ///         agent_id: None,
    ///         callback_url: "https://receiver.example.com/ccfs/cb".into(),
    ///     })
    ///     .await?;
    /// println!("job {id}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn generate(&self, body: &GenerateBody) -> Result<ResponseId> {
        self.generate_with(body, None).await
    }

    /// [`Client::generate`] with an `Idempotency-Key`: the same key and body within 24 h
    /// answer the same response id and start no second job (a retry after a lost answer is
    /// safe). Servers without the extension ignore the header.
    ///
    /// ```no_run
    /// use ccfs_protocol::messages::GenerateBody;
    /// # async fn demo(client: ccfs_client::Client, body: GenerateBody) -> Result<(), ccfs_client::Error> {
    /// let first = client.generate_idempotent(&body, "nightly-2024-05-01").await?;
    /// let again = client.generate_idempotent(&body, "nightly-2024-05-01").await?;
    /// assert_eq!(first, again);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn generate_idempotent(&self, body: &GenerateBody, key: &str) -> Result<ResponseId> {
        self.generate_with(body, Some(key)).await
    }

    async fn generate_with(&self, body: &GenerateBody, key: Option<&str>) -> Result<ResponseId> {
        let data: GenerateData = self.call_with(paths::GENERATE, body, key).await?;
        ResponseId::parse(&data.response_id).ok_or_else(|| {
            Error::Protocol(format!(
                "the server answered a malformed responseId '{}'",
                data.response_id
            ))
        })
    }

    /// The state of a job (this project's status extension, `queryAgentOprInfoStatus`).
    ///
    /// ```no_run
    /// # async fn demo(client: ccfs_client::Client) -> Result<(), ccfs_client::Error> {
    /// let id = ccfs_protocol::ResponseId::parse("0123456789abcdef0123456789abcdef").unwrap();
    /// let status = client.status(&id).await?;
    /// println!("{} {}", status.state, status.agent_opr_info_file_name);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn status(&self, id: &ResponseId) -> Result<StatusData> {
        let mut body = Map::new();
        body.insert("responseId".into(), Value::String(id.to_string()));
        self.call(paths::STATUS, &body).await
    }

    /// Polls [`Client::status`] until the job has succeeded (answered), failed, expired or been
    /// cancelled by an operator ([`Error::JobEnded`]), or `timeout` has passed
    /// ([`Error::Timeout`]).
    ///
    /// The first look comes after 50 ms and the pause doubles from there up to `poll`, so a
    /// quick export is seen as soon as it ends and a long one costs one question per `poll`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn demo(client: ccfs_client::Client, id: ccfs_protocol::ResponseId) -> Result<(), ccfs_client::Error> {
    /// let done = client
    ///     .wait(&id, Duration::from_millis(500), Duration::from_secs(600))
    ///     .await?;
    /// println!("{} records in {}", done.record_count.unwrap_or(0), done.agent_opr_info_file_name);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait(
        &self,
        id: &ResponseId,
        poll: Duration,
        timeout: Duration,
    ) -> Result<StatusData> {
        let start = Instant::now();
        let mut pauses = poll_pauses(poll);
        loop {
            let status = self.status(id).await?;
            match status.state.as_str() {
                "succeeded" => return Ok(status),
                "failed" | "expired" | "cancelled" => {
                    return Err(Error::JobEnded {
                        response_id: id.to_string(),
                        state: status.state,
                        error: status.error,
                    })
                }
                _ => {}
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(Error::Timeout {
                    response_id: id.to_string(),
                    state: status.state,
                    waited,
                });
            }
            let pause = pauses.next().unwrap_or(poll);
            tokio::time::sleep(pause.min(timeout - waited)).await;
        }
    }

    /// Imports agent operation records (this project's import extension,
    /// `importAgentOprInfoData`; needs a credential with the `ingest` role). Each record is an
    /// object keyed by the 21 column names; at most 10,000 per call. All or nothing. A record
    /// whose id is stored with different content fails the call (`0300004` naming it, nothing
    /// stored); [`Client::import_with`] skips or replaces such records instead.
    ///
    /// ```no_run
    /// # async fn demo(client: ccfs_client::Client) -> Result<(), ccfs_client::Error> {
    /// let record = serde_json::json!({
    ///     "id": "r1", "developer_id": "0123456789abcdef0123456789abcdef", "agent_id": "1001",
    ///     "begin_time": "2024-05-01 09:00:00", "end_time": "2024-05-01 09:05:00", "op_type": "2"
    /// });
    /// let serde_json::Value::Object(record) = record else { unreachable!() };
    /// let counts = client.import(&[record]).await?;
    /// println!("{} new, {} already there", counts.inserted, counts.already_present);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn import(&self, records: &[Map<String, Value>]) -> Result<ImportData> {
        self.import_with(records, OnConflict::Fail).await
    }

    /// [`Client::import`], choosing what happens to a record whose id is stored with different
    /// content: [`OnConflict::Fail`] stores nothing of the call, [`OnConflict::Skip`] keeps the
    /// stored record, [`OnConflict::Replace`] overwrites it. The answer counts the conflicts
    /// and names the first ones.
    ///
    /// ```no_run
    /// # async fn demo(client: ccfs_client::Client, corrected: serde_json::Map<String, serde_json::Value>) -> Result<(), ccfs_client::Error> {
    /// use ccfs_client::OnConflict;
    /// let counts = client.import_with(&[corrected], OnConflict::Replace).await?;
    /// println!("{} replaced: {:?}", counts.replaced, counts.conflict_ids);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn import_with(
        &self,
        records: &[Map<String, Value>],
        on_conflict: OnConflict,
    ) -> Result<ImportData> {
        let body = ImportBody {
            records,
            on_conflict,
        };
        self.call(paths::IMPORT, &body).await
    }
}

/// The pauses between status questions: 50 ms, doubling, then `longest` for ever.
fn poll_pauses(longest: Duration) -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(FIRST_POLL.min(longest)), move |p| {
        Some((*p * 2).min(longest))
    })
}

/// The first pause of [`Client::wait`]: an export of a small window often ends within it.
const FIRST_POLL: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_starts_fast_and_slows_to_the_interval() {
        let p: Vec<u64> = poll_pauses(Duration::from_secs(2))
            .take(8)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(p, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        let short: Vec<u64> = poll_pauses(Duration::from_millis(30))
            .take(3)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(short, [30, 30, 30]);
    }

    #[test]
    fn timestamps_never_repeat() {
        let a = fresh_millis();
        let b = fresh_millis();
        assert!(b > a);
    }
}
