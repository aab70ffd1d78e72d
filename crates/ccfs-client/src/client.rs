//! The signed HTTP client: building it ([`ClientBuilder`]), signing every request with auth-v2,
//! and the JSON calls (generate, the status and import extensions, waiting for a job).
//!
//! Every request is signed afresh with a millisecond timestamp that is strictly increasing
//! within the process, because servers refuse a signature they have already accepted (SPEC
//! section 3): a retry is a new request with a new signature.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccfs_protocol::auth::{format_timestamp, sign, RequestParts};
use ccfs_protocol::envelope::RequestEnvelope;
use ccfs_protocol::messages::{
    GenerateBody, GenerateData, ImportBody, ImportData, OnConflict, StatusData,
};
use ccfs_protocol::{paths, ResponseId, ResultCode, JSON_CONTENT_TYPE};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

use crate::error::{Error, Result};

/// Default time limit of one JSON call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of automatic resumptions of an interrupted download.
pub const DEFAULT_DOWNLOAD_RETRIES: u32 = 3;

/// Settings of a [`Client`]; see [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    server: String,
    ak: Option<String>,
    sk: Option<String>,
    ca_certs: Vec<Vec<u8>>,
    insecure: bool,
    timeout: Duration,
    connect_timeout: Duration,
    sign_host_only: bool,
    download_retries: u32,
}

impl ClientBuilder {
    /// The developer's access key (the `appId`) and secret key.
    pub fn credentials(mut self, ak: impl Into<String>, sk: impl Into<String>) -> Self {
        self.ak = Some(ak.into());
        self.sk = Some(sk.into());
        self
    }

    /// Trusts the PEM certificate(s) in `pem` as extra roots, e.g. the self-signed
    /// `ccfs-data/tls/cert.pem` of a ccfs server. May be called more than once.
    pub fn ca_cert_pem(mut self, pem: &[u8]) -> Self {
        self.ca_certs.push(pem.to_vec());
        self
    }

    /// Accepts any server certificate. For tests against a self-signed server only: it gives
    /// up the protection TLS exists for.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Time limit of each JSON call, and of each silence of a download (a download itself may
    /// take as long as it needs while bytes keep coming). Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time limit of opening a connection. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sign only the `host` header, as public Java clients do, instead of the official
    /// examples' `content-length;content-type;host` (the default).
    pub fn sign_host_only(mut self, host_only: bool) -> Self {
        self.sign_host_only = host_only;
        self
    }

    /// How many times an interrupted download is resumed automatically before the error is
    /// returned. Default 3; 0 turns automatic resumption off (a later call still resumes).
    pub fn download_retries(mut self, retries: u32) -> Self {
        self.download_retries = retries;
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<Client> {
        let server = self.server.trim();
        if !server.contains("://") {
            return Err(Error::Config(format!(
                "server URL '{server}' has no scheme: write https://{server} \
                 (or http://{server} for a server that speaks plain HTTP)"
            )));
        }
        let base = Url::parse(server)
            .map_err(|e| Error::Config(format!("server URL '{}': {e}", self.server)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "server URL '{}': the scheme must be https (or http)",
                self.server
            )));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(Error::Config(format!(
                "server URL '{}': no query or fragment allowed",
                self.server
            )));
        }
        let host = host_header(&base)
            .ok_or_else(|| Error::Config(format!("server URL '{}': no host", self.server)))?;
        let (Some(ak), Some(sk)) = (self.ak, self.sk) else {
            return Err(Error::Config("credentials (AK and SK) are required".into()));
        };
        if ak.is_empty() || ak.contains('/') || sk.is_empty() {
            return Err(Error::Config(
                "the AK must be non-empty without '/', and the SK non-empty".into(),
            ));
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ccfs-client/", env!("CARGO_PKG_VERSION")));
        for pem in &self.ca_certs {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config(
                    "CA certificate: no PEM certificate found".into(),
                ));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        if self.insecure {
            http = http.danger_accept_invalid_certs(true);
        }
        let http = http
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let prefix = base.path().trim_end_matches('/').to_owned();
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                prefix,
                host,
                ak,
                sk,
                timeout: self.timeout,
                sign_host_only: self.sign_host_only,
                download_retries: self.download_retries,
            }),
        })
    }
}

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
    sign_host_only: bool,
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

/// The `Host` value for `url`: the port only when it is not the scheme's default.
pub(crate) fn host_header(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// A lenient reading of the response envelope: only `resultCode` is required, so answers of
/// servers that leave out the legacy `response` copy still read.
fn envelope_parts(v: &Value) -> Option<(String, String, Value)> {
    let code = match v.get("resultCode")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let desc = v
        .get("resultDesc")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let data = v.get("resultData").cloned().unwrap_or(Value::Null);
    Some((code, desc, data))
}

/// The first characters of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// Every error in `e`'s chain of causes, including the ones an `io::Error` wraps (its
/// `source()` skips the error it wraps, which is where rustls puts its own).
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
    out: &mut Vec<&'a (dyn std::error::Error + 'static)>,
) {
    out.push(e);
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        causes(inner, out);
    } else if let Some(source) = e.source() {
        causes(source, out);
    }
}

/// `url` with another scheme (`http` ↔ `https`), for advice.
fn with_scheme(url: &Url, scheme: &str) -> String {
    let mut other = url.clone();
    match other.set_scheme(scheme) {
        Ok(()) => other.to_string(),
        Err(()) => url.to_string(),
    }
}

/// Turns a request to the server at `base` that could not be sent into the variant that says
/// what to do: nothing listening, a certificate not trusted, plain HTTP against TLS or the
/// other way round. Anything else stays [`Error::Http`].
pub(crate) fn transport_error(base: &Url, e: reqwest::Error) -> Error {
    let url = base.to_string();
    let mut chain = Vec::new();
    causes(&e, &mut chain);
    let innermost = chain
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| e.to_string());
    let tls = chain.iter().find_map(|c| c.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            return Error::UntrustedCertificate {
                url,
                reason: "unknown issuer".into(),
            };
        }
        Some(err @ rustls::Error::InvalidCertificate(_)) => {
            return Error::Certificate {
                url,
                reason: err.to_string(),
            };
        }
        Some(err @ rustls::Error::InvalidMessage(_)) if base.scheme() == "https" => {
            return Error::NotTls {
                http_url: with_scheme(base, "http"),
                url,
                reason: err.to_string(),
            };
        }
        _ => {}
    }
    if base.scheme() == "http" && !e.is_connect() && !e.is_timeout() {
        let not_http = chain.iter().any(|c| {
            c.downcast_ref::<hyper::Error>()
                .is_some_and(|h| h.is_parse() || h.is_incomplete_message())
                || c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset)
        });
        if not_http {
            return Error::NotHttp {
                https_url: with_scheme(base, "https"),
                url,
                reason: innermost,
            };
        }
    }
    if e.is_connect() && tls.is_none() && !e.is_timeout() {
        return Error::Connect {
            url,
            reason: innermost,
        };
    }
    Error::Http(e)
}

/// Reads an answer to a POST to `path` that should be the JSON envelope into `resultData` or
/// a typed error.
pub(crate) fn read_envelope(status: reqwest::StatusCode, path: &str, body: &[u8]) -> Result<Value> {
    let parsed = serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(envelope_parts);
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        let (result_code, desc) = match parsed {
            Some((code, desc, _)) => (code, desc),
            None => (String::new(), snippet(body)),
        };
        return Err(Error::Unauthorized {
            status: status.as_u16(),
            code: ResultCode::from_code(&result_code).unwrap_or(ResultCode::AuthFailed),
            result_code,
            desc,
        });
    }
    let Some((result_code, desc, data)) = parsed else {
        return Err(Error::NotEnvelope {
            status: status.as_u16(),
            path: path.to_owned(),
            body: snippet(body)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        });
    };
    if result_code == ResultCode::Success.as_str() {
        Ok(data)
    } else {
        Err(Error::Api {
            code: ResultCode::from_code(&result_code).unwrap_or(ResultCode::Internal),
            result_code,
            desc,
        })
    }
}

impl Client {
    /// Starts building a client of the server at `server`, e.g. `https://127.0.0.1:28443`
    /// (a path, if any, is put before every interface path).
    ///
    /// ```
    /// # fn main() -> Result<(), ccfs_client::Error> {
    /// // For a self-signed server add `.ca_cert_pem(&std::fs::read("ccfs-data/tls/cert.pem")?)`.
    /// let client = ccfs_client::Client::builder("https://127.0.0.1:28443")
    ///     .credentials("0123456789abcdef0123456789abcdef", "the secret key")
    ///     .timeout(std::time::Duration::from_secs(10))
    ///     .build()?;
    /// assert_eq!(client.server().as_str(), "https://127.0.0.1:28443/");
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(server: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            server: server.into(),
            ak: None,
            sk: None,
            ca_certs: Vec::new(),
            insecure: false,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
            sign_host_only: false,
            download_retries: DEFAULT_DOWNLOAD_RETRIES,
        }
    }

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
        let timestamp = format_timestamp(fresh_millis(), true);
        let length = body.len().to_string();
        let parts = RequestParts {
            method: "POST",
            path: &full_path,
            query: None,
            body: &body,
        };
        let headers: &[(&str, &str)] = if inner.sign_host_only {
            &[("host", &inner.host)]
        } else {
            &[
                ("content-length", &length),
                ("content-type", JSON_CONTENT_TYPE),
                ("host", &inner.host),
            ]
        };
        let authorization = sign(&inner.ak, &inner.sk, &timestamp, &parts, headers);
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

    /// Polls [`Client::status`] until the job has succeeded (answered), failed or expired
    /// ([`Error::JobEnded`]), or `timeout` has passed ([`Error::Timeout`]).
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
                "failed" | "expired" => {
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
    fn builder_refuses_bad_settings() {
        let b = |url: &str| Client::builder(url).credentials("ak", "sk").build();
        assert!(matches!(b("not a url"), Err(Error::Config(_))));
        for no_scheme in ["127.0.0.1:28443", "localhost:28443"] {
            let e = b(no_scheme).unwrap_err().to_string();
            assert!(e.contains(&format!("write https://{no_scheme}")), "{e}");
        }
        assert!(matches!(b("ftp://x"), Err(Error::Config(_))));
        assert!(matches!(b("https://x/?a=1"), Err(Error::Config(_))));
        assert!(matches!(
            Client::builder("https://x").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::builder("https://x")
                .credentials("a/b", "sk")
                .build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::builder("https://x")
                .credentials("ak", "sk")
                .ca_cert_pem(b"garbage")
                .build(),
            Err(Error::Config(_))
        ));
        let c = b("https://lb.example.com:8443/prefix/").unwrap();
        assert_eq!(c.inner.prefix, "/prefix");
        assert_eq!(c.inner.host, "lb.example.com:8443");
        assert_eq!(b("https://example.com").unwrap().inner.host, "example.com");
    }

    #[test]
    fn envelopes_read_leniently_and_typed() {
        let ok = br#"{"resultCode":"0","resultDesc":"success","resultData":{"a":1}}"#;
        assert_eq!(
            read_envelope(reqwest::StatusCode::OK, "/p", ok).unwrap()["a"],
            1
        );
        let err =
            br#"{"resultCode":"0300011","resultDesc":"The file does not exist.","resultData":""}"#;
        match read_envelope(reqwest::StatusCode::OK, "/p", err) {
            Err(Error::Api {
                code,
                result_code,
                desc,
            }) => {
                assert_eq!(code, ResultCode::FileNotFound);
                assert_eq!(result_code, "0300011");
                assert_eq!(desc, "The file does not exist.");
            }
            other => panic!("{other:?}"),
        }
        match read_envelope(
            reqwest::StatusCode::OK,
            "/p",
            br#"{"resultCode":"9999","resultDesc":"x"}"#,
        ) {
            Err(Error::Api {
                code, result_code, ..
            }) => {
                assert_eq!(code, ResultCode::Internal);
                assert_eq!(result_code, "9999");
            }
            other => panic!("{other:?}"),
        }
        match read_envelope(reqwest::StatusCode::UNAUTHORIZED, "/p", b"nope") {
            Err(Error::Unauthorized {
                status,
                result_code,
                desc,
                ..
            }) => {
                assert_eq!(status, 401);
                assert_eq!(result_code, "");
                assert_eq!(desc, "nope");
            }
            other => panic!("{other:?}"),
        }
        let e = read_envelope(
            reqwest::StatusCode::BAD_GATEWAY,
            "/prefix/CCFS/x",
            b"<html>\n  <p>bad\ngateway</p>",
        )
        .unwrap_err();
        assert!(matches!(e, Error::NotEnvelope { status: 502, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "HTTP 502 Bad Gateway from POST /prefix/CCFS/x: not a CC-FS answer (no resultCode \
             envelope), so the server URL is probably not a CC-FS server or not its base URL; \
             the answer begins: <html> <p>bad gateway</p>"
        );
    }

    #[test]
    fn timestamps_never_repeat() {
        let a = fresh_millis();
        let b = fresh_millis();
        assert!(b > a);
    }
}
