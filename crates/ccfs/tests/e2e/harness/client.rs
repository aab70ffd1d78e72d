//! The signed client: [`Client`] sends auth-v2 signed requests as one developer, the way a
//! client on another machine would; [`Opts`] changes how one request is signed or sent (which
//! headers are signed, timestamp precision, a wrong secret, a tampered body, path or query, …);
//! [`Resp`] is an answer read completely.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccfs_protocol::auth::{self, Precision, RequestParts};
use futures::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::server::App;
use super::wire::{envelope_bytes, success_data, POLL};
use super::{lock, DOWNLOAD, GENERATE, IMPORT, STATUS};

/// How clients reach the current server process (the [`TestServer`](super::TestServer) that
/// owns it replaces it on restart, and every [`Client`] follows).
#[derive(Clone)]
pub(super) struct Conn {
    pub(super) scheme: String,
    pub(super) port: u16,
    pub(super) http: reqwest::Client,
}

/// Which headers a request signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedHeaders {
    /// `content-length;content-type;host` (without `content-type` when none is sent), plus any
    /// [`Opts::signed_header`].
    Default,
    /// `host` only (as public Java clients do), plus any [`Opts::signed_header`].
    HostOnly,
    /// Exactly these names (any case); values are those sent, or `""` for a header not sent.
    Names(Vec<String>),
}

/// The timestamp of a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// `yyyy-MM-ddTHH:mm:ss.SSSZ`, now, unique within the test process.
    Millis,
    /// `yyyy-MM-ddTHH:mm:ssZ`, now.
    Seconds,
    /// This value, verbatim.
    Given(String),
}

/// What goes into `Authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    Sign,
    /// No `Authorization` header.
    Omit,
    /// This value instead of a signature.
    Raw(String),
}

/// How a [`Client`] request is signed and sent. `Opts::default()` is a normal, well-signed
/// `POST` with `Content-Type: application/json;charset=UTF-8`.
#[derive(Debug, Clone)]
pub struct Opts {
    pub method: String,
    pub signed: SignedHeaders,
    pub stamp: Stamp,
    /// `None`: no `Content-Type` header.
    pub content_type: Option<String>,
    /// Send (and sign) this `Host` instead of `127.0.0.1:PORT`.
    pub host: Option<String>,
    /// Sent, not signed.
    pub headers: Vec<(String, String)>,
    /// Sent and signed.
    pub signed_extra: Vec<(String, String)>,
    /// Sign with this AK instead of the app's.
    pub ak: Option<String>,
    /// Sign with this secret instead of the app's.
    pub secret: Option<String>,
    /// Raw query string (without `?`), signed and sent.
    pub query: Option<String>,
    /// Send this body instead of the one signed.
    pub tamper_body: Option<Vec<u8>>,
    /// Send to this path instead of the one signed.
    pub tamper_path: Option<String>,
    /// Send this query instead of the one signed (`""`: none).
    pub tamper_query: Option<String>,
    pub auth: AuthMode,
    /// Time limit of the whole request (default: the client's, 300 s).
    pub timeout: Option<Duration>,
    /// How the canonical request writes an absent query (the SPEC's way by default).
    pub query_line: auth::QueryLine,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            method: "POST".to_owned(),
            signed: SignedHeaders::Default,
            stamp: Stamp::Millis,
            content_type: Some(ccfs_protocol::JSON_CONTENT_TYPE.to_owned()),
            host: None,
            headers: Vec::new(),
            signed_extra: Vec::new(),
            ak: None,
            secret: None,
            query: None,
            tamper_body: None,
            tamper_path: None,
            tamper_query: None,
            auth: AuthMode::Sign,
            timeout: None,
            query_line: auth::QueryLine::OmittedWhenEmpty,
        }
    }
}

impl Opts {
    pub fn new() -> Self {
        Self::default()
    }
    /// Sign as the public ports that always write a query line, empty when there is no query.
    pub fn empty_query_line(mut self) -> Self {
        self.query_line = auth::QueryLine::AlwaysWritten;
        self
    }
    /// Sign only `host`.
    pub fn host_only(mut self) -> Self {
        self.signed = SignedHeaders::HostOnly;
        self
    }
    /// Sign exactly these header names.
    pub fn sign_headers(mut self, names: &[&str]) -> Self {
        self.signed = SignedHeaders::Names(names.iter().map(|n| (*n).to_owned()).collect());
        self
    }
    /// A second-precision timestamp (`…T09:38:50Z`).
    pub fn seconds(mut self) -> Self {
        self.stamp = Stamp::Seconds;
        self
    }
    /// This timestamp, verbatim.
    pub fn timestamp(mut self, ts: &str) -> Self {
        self.stamp = Stamp::Given(ts.to_owned());
        self
    }
    /// This `Content-Type` spelling (sent and signed).
    pub fn content_type(mut self, ct: &str) -> Self {
        self.content_type = Some(ct.to_owned());
        self
    }
    pub fn no_content_type(mut self) -> Self {
        self.content_type = None;
        self
    }
    /// An extra header, sent but not signed.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    /// An extra header, sent and signed.
    pub fn signed_header(mut self, name: &str, value: &str) -> Self {
        self.signed_extra.push((name.to_owned(), value.to_owned()));
        self
    }
    /// `Range: VALUE` (not signed).
    pub fn range(self, value: &str) -> Self {
        self.header("Range", value)
    }
    /// `Idempotency-Key: KEY` (not signed).
    /// A time limit for the whole request, answer included.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    pub fn idempotency_key(self, key: &str) -> Self {
        self.header("Idempotency-Key", key)
    }
    pub fn ak(mut self, ak: &str) -> Self {
        self.ak = Some(ak.to_owned());
        self
    }
    pub fn secret(mut self, sk: &str) -> Self {
        self.secret = Some(sk.to_owned());
        self
    }
    /// Sign with a secret that is not the app's.
    pub fn wrong_secret(self) -> Self {
        self.secret("not-the-secret-key-0123456789")
    }
    pub fn query(mut self, q: &str) -> Self {
        self.query = Some(q.to_owned());
        self
    }
    pub fn tamper_body(mut self, b: &[u8]) -> Self {
        self.tamper_body = Some(b.to_vec());
        self
    }
    pub fn tamper_path(mut self, p: &str) -> Self {
        self.tamper_path = Some(p.to_owned());
        self
    }
    pub fn tamper_query(mut self, q: &str) -> Self {
        self.tamper_query = Some(q.to_owned());
        self
    }
    pub fn no_auth(mut self) -> Self {
        self.auth = AuthMode::Omit;
        self
    }
    pub fn raw_auth(mut self, value: &str) -> Self {
        self.auth = AuthMode::Raw(value.to_owned());
        self
    }
}

/// A fresh millisecond timestamp, strictly increasing within this process.
pub fn fresh_millis() -> jiff::Timestamp {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = jiff::Timestamp::now().as_millisecond();
    let mut prev = LAST.load(Ordering::SeqCst);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return jiff::Timestamp::from_millisecond(next).expect("timestamp"),
            Err(p) => prev = p,
        }
    }
}

/// An answer, read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub async fn read(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let body = r
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("reading the body: {e}"))
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// The body as JSON; panics with the body text otherwise.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), HTTP {}: {}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value (panics if it is not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }
}

/// Signs requests as one developer.
#[derive(Clone)]
pub struct Client {
    pub app: App,
    conn: Arc<Mutex<Conn>>,
}

impl Client {
    /// A client signing as `app` over `conn`.
    pub(super) fn new(app: &App, conn: Arc<Mutex<Conn>>) -> Client {
        Client {
            app: app.clone(),
            conn,
        }
    }

    /// The same server, signing as another app.
    pub fn as_app(&self, app: &App) -> Client {
        Client {
            app: app.clone(),
            conn: self.conn.clone(),
        }
    }

    /// The `Host` value sent: `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", lock(&self.conn).port)
    }

    /// Sends a request and returns the response with its body unread (to hold a download
    /// open, or to read it in pieces).
    pub async fn send_streaming(&self, path: &str, body: &[u8], opts: &Opts) -> reqwest::Response {
        self.try_send_streaming(path, body, opts)
            .await
            .unwrap_or_else(|e| panic!("{} {path}: {e}", opts.method))
    }

    /// [`Client::send_streaming`] that hands back a failure to connect or to read the answer
    /// (a server being killed) instead of panicking.
    pub async fn try_send_streaming(
        &self,
        path: &str,
        body: &[u8],
        opts: &Opts,
    ) -> reqwest::Result<reqwest::Response> {
        let send_body = opts.tamper_body.clone().unwrap_or_else(|| body.to_vec());
        // hyper leaves `Content-Length` out for an empty body; a client that signs it sends it.
        let empty = send_body.is_empty();
        let mut rb = self.request(path, body, opts).body(send_body);
        if empty {
            rb = rb.header("content-length", "0");
        }
        rb.send().await
    }

    /// Sends the headers of a request for `body` (signed over all of it, announcing its whole
    /// length), then only its first `sent` bytes, and then nothing, ever: the answer must come
    /// from what the server has seen. The time limit is `opts`' or 60 s.
    pub async fn send_stalled(
        &self,
        path: &str,
        body: &[u8],
        sent: usize,
        opts: &Opts,
    ) -> reqwest::Result<reqwest::Response> {
        let prefix = body[..sent].to_vec();
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(prefix) })
            .chain(futures::stream::pending());
        self.request(path, body, opts)
            .header("content-length", body.len().to_string())
            .timeout(opts.timeout.unwrap_or(Duration::from_secs(60)))
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
    }

    /// Sends `body` (signed over all of it) in 8 KiB chunks without announcing its length:
    /// chunked on HTTP/1.1. Sign `opts.host_only()` or other headers than `content-length`.
    pub async fn send_chunked(&self, path: &str, body: &[u8], opts: &Opts) -> Resp {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(8192).map(|c| Ok(c.to_vec())).collect();
        let r = self
            .request(path, body, opts)
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} {path}: {e}", opts.method));
        Resp::read(r).await
    }

    /// A request for `body` with every header `opts` asks for, signed, without its body.
    fn request(&self, path: &str, body: &[u8], opts: &Opts) -> reqwest::RequestBuilder {
        let conn = lock(&self.conn).clone();
        let host = opts
            .host
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{}", conn.port));
        let length = body.len().to_string();
        // Everything sent, by lower-case name, for signing.
        let mut sent: Vec<(String, String)> = vec![
            ("content-length".into(), length),
            ("host".into(), host.clone()),
        ];
        if let Some(ct) = &opts.content_type {
            sent.push(("content-type".into(), ct.clone()));
        }
        for (k, v) in opts.headers.iter().chain(&opts.signed_extra) {
            sent.push((k.to_ascii_lowercase(), v.clone()));
        }
        let value_of = |n: &str| {
            sent.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut names: Vec<String> = match &opts.signed {
            SignedHeaders::Default => {
                let mut n = vec!["content-length".to_owned(), "host".to_owned()];
                if opts.content_type.is_some() {
                    n.push("content-type".into());
                }
                n
            }
            SignedHeaders::HostOnly => vec!["host".to_owned()],
            SignedHeaders::Names(n) => n.iter().map(|s| s.to_ascii_lowercase()).collect(),
        };
        if !matches!(opts.signed, SignedHeaders::Names(_)) {
            names.extend(
                opts.signed_extra
                    .iter()
                    .map(|(k, _)| k.to_ascii_lowercase()),
            );
        }
        let signed: Vec<(String, String)> =
            names.iter().map(|n| (n.clone(), value_of(n))).collect();
        let signed_refs: Vec<(&str, &str)> = signed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let timestamp = match &opts.stamp {
            Stamp::Millis => auth::format_timestamp(fresh_millis(), Precision::Millis),
            Stamp::Seconds => auth::format_timestamp(jiff::Timestamp::now(), Precision::Seconds),
            Stamp::Given(s) => s.clone(),
        };
        let parts = RequestParts {
            method: &opts.method,
            path,
            query: opts.query.as_deref(),
            body,
        };
        // Only when sent: a large body costs a moment to sign.
        let authorization = || {
            auth::sign_in(
                opts.query_line,
                opts.ak.as_deref().unwrap_or(&self.app.app_id),
                opts.secret.as_deref().unwrap_or(&self.app.secret),
                &timestamp,
                &parts,
                &signed_refs,
            )
        };

        let send_path = opts.tamper_path.as_deref().unwrap_or(path);
        let send_query = opts
            .tamper_query
            .as_deref()
            .or(opts.query.as_deref())
            .filter(|q| !q.is_empty());
        let mut url = format!("{}://127.0.0.1:{}{send_path}", conn.scheme, conn.port);
        if let Some(q) = send_query {
            url.push('?');
            url.push_str(q);
        }
        let method = reqwest::Method::from_bytes(opts.method.as_bytes()).expect("method");
        let mut rb = conn.http.request(method, url);
        if let Some(ct) = &opts.content_type {
            rb = rb.header("content-type", ct);
        }
        if opts.host.is_some() {
            rb = rb.header("host", host);
        }
        for (k, v) in opts.headers.iter().chain(&opts.signed_extra) {
            rb = rb.header(k, v);
        }
        match &opts.auth {
            AuthMode::Sign => rb = rb.header("authorization", authorization()),
            AuthMode::Raw(v) => rb = rb.header("authorization", v),
            AuthMode::Omit => {}
        }
        if let Some(t) = opts.timeout {
            rb = rb.timeout(t);
        }
        rb
    }

    /// Sends `body` as it is (for bodies that are not a valid envelope) and reads the answer.
    pub async fn post_raw(&self, path: &str, body: &[u8], opts: &Opts) -> Resp {
        Resp::read(self.send_streaming(path, body, opts).await).await
    }

    /// Wraps `msg_body` in the request envelope, sends it signed, and returns the HTTP status
    /// and the JSON answer.
    pub async fn call(&self, path: &str, msg_body: Value) -> (StatusCode, Value) {
        self.call_with(path, msg_body, &Opts::default()).await
    }

    /// [`Client::call`] with options.
    pub async fn call_with(&self, path: &str, msg_body: Value, opts: &Opts) -> (StatusCode, Value) {
        let r = self.post_raw(path, &envelope_bytes(msg_body), opts).await;
        (r.status, r.json())
    }

    /// [`Client::call_with`] that hands back a failure to connect or to read the answer
    /// instead of panicking.
    pub async fn try_call_with(
        &self,
        path: &str,
        msg_body: Value,
        opts: &Opts,
    ) -> reqwest::Result<(StatusCode, Value)> {
        let r = self
            .try_send_streaming(path, &envelope_bytes(msg_body), opts)
            .await?;
        let status = r.status();
        let bytes = r.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A generate that must succeed; returns the `responseId`.
    pub async fn generate(&self, msg_body: Value) -> String {
        let (status, v) = self.call(GENERATE, msg_body.clone()).await;
        assert_eq!(status, StatusCode::OK, "generate {msg_body}: {v}");
        let data = success_data(&v);
        data["responseId"]
            .as_str()
            .unwrap_or_else(|| panic!("generate: no responseId in {v}"))
            .to_owned()
    }

    /// The status interface: HTTP status and JSON answer.
    pub async fn status(&self, response_id: &str) -> (StatusCode, Value) {
        self.call(STATUS, json!({ "responseId": response_id }))
            .await
    }

    /// Polls the status until the job's `state` is `want`; returns its `resultData`. Panics
    /// at once when the job ends in another final state (`failed`, `cancelled`, or `expired`
    /// while waiting for something else), and after `timeout`.
    pub async fn wait_state(&self, response_id: &str, want: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, v) = self.status(response_id).await;
            assert_eq!(status, StatusCode::OK, "status {response_id}: {v}");
            let data = success_data(&v).clone();
            let state = data["state"].as_str().unwrap_or_default().to_owned();
            if state == want {
                return data;
            }
            if ["failed", "expired", "cancelled"].contains(&state.as_str()) && state != want {
                panic!("job {response_id} ended {state} while waiting for {want}: {data}");
            }
            if Instant::now() >= deadline {
                panic!("job {response_id} not {want} within {timeout:?}: {data}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Downloads a file (optionally with a `Range` value).
    pub async fn download(&self, name: &str, range: Option<&str>) -> Resp {
        let mut opts = Opts::default();
        if let Some(r) = range {
            opts = opts.range(r);
        }
        self.download_with(name, &opts).await
    }

    /// Downloads a file with options.
    pub async fn download_with(&self, name: &str, opts: &Opts) -> Resp {
        let body = envelope_bytes(json!({ "agentOprInfoFileName": name }));
        self.post_raw(DOWNLOAD, &body, opts).await
    }

    /// The import interface: HTTP status and JSON answer.
    pub async fn import(&self, records: &[Value]) -> (StatusCode, Value) {
        self.call(IMPORT, json!({ "records": records })).await
    }

    /// An import that must succeed; returns `(inserted, alreadyPresent)`.
    pub async fn import_ok(&self, records: &[Value]) -> (u64, u64) {
        let (status, v) = self.import(records).await;
        assert_eq!(status, StatusCode::OK, "import: {v}");
        let d = success_data(&v);
        let n = |k: &str| {
            d[k].as_u64()
                .unwrap_or_else(|| panic!("import: no {k} in {v}"))
        };
        (n("inserted"), n("alreadyPresent"))
    }
}
