//! The black-box end-to-end harness: the real `ccfs` binary, real HTTPS, real callbacks.
//!
//! Shared by every test module (`use crate::harness::*;`). Everything talks to the server the
//! way a client on another machine would: no server library calls.
//!
//! - [`TestServer`] runs `ccfs serve` on `127.0.0.1:0` with a fresh data directory and trusts
//!   its self-signed certificate; it can be restarted on the same data directory, killed
//!   (SIGKILL) or terminated (SIGTERM). It also runs the other `ccfs` commands with the same
//!   environment ([`TestServer::create_app`], [`TestServer::ccfs`]).
//! - [`Client`] sends auth-v2 signed requests for one developer ([`App`]); [`Opts`] changes
//!   how a request is signed or sent (signed headers, timestamp precision, tampering, …).
//! - [`Receiver`] is an in-process HTTP server that records every callback.
//! - [`wait_until`] / [`wait_some`] poll a condition; tests never assert on a fixed sleep.
//! - [`cli_env::Env`] runs `ccfs` commands that need no server in a fresh data directory.
//! - Helpers for the wire: [`assert_error`], [`success_data`], [`record`], [`unzip`],
//!   [`csv_rows`], [`sha256_hex`], [`today_in`].
//!
//! Replays: every signed request gets a fresh millisecond timestamp (strictly increasing within
//! the test process), so two identical requests never share a signature. With
//! [`Opts::seconds`] or [`Opts::timestamp`] that guarantee is gone: identical requests signed in
//! the same second are retries of one request (the server's default `replay = retry`), or
//! refused as replays with `CCFS_REPLAY=refuse`.

#![allow(dead_code)]

pub mod cli_env;

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ccfs_protocol::auth::{self, AuthError, AuthHeader, RequestParts};
pub use reqwest::header::HeaderMap;
pub use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The `ccfs` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ccfs");
/// How long `ccfs serve` may take to print its listening line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// A generous limit for things that happen in the background (an export, a callback, a sweep)
/// in a debug build on a busy machine. Only a limit for failing: never a performance assert.
pub const LONG: Duration = Duration::from_secs(90);
/// Poll interval of [`wait_until`] and [`wait_some`].
pub const POLL: Duration = Duration::from_millis(75);

pub use ccfs_protocol::paths::{DOWNLOAD, GENERATE, IMPORT, STATUS};

// ---------------------------------------------------------------------------------------------
// Polling

/// Polls `cond` every [`POLL`] until it returns true; panics after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("wait_until: condition not met within {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `f` every [`POLL`] until it returns `Some`; panics after `timeout` with `what`.
pub async fn wait_some<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("wait_some: {what}: not within {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The server process

/// A developer's credentials, as `ccfs app create` printed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub app_id: String,
    pub secret: String,
}

/// What `ccfs app create` is asked for. Empty `roles` means the CLI default (`export`); an
/// empty `name` becomes `"test app"`.
#[derive(Debug, Clone, Default)]
pub struct AppSpec<'a> {
    pub name: &'a str,
    pub accounts: &'a [&'a str],
    /// IANA zone; `None` = the server's default.
    pub timezone: Option<&'a str>,
    /// `"export"`, `"ingest"`.
    pub roles: &'a [&'a str],
    /// A fixed app id instead of a random one.
    pub app_id: Option<&'a str>,
    /// Exports start with a header row.
    pub csv_header: bool,
}

/// How clients reach the current server process (changes on restart).
#[derive(Clone)]
struct Conn {
    scheme: String,
    port: u16,
    http: reqwest::Client,
}

/// A `ccfs serve` child process on a temporary data directory.
///
/// Dropping it SIGKILLs the process and deletes the data directory.
pub struct TestServer {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// stdout and stderr of every process this server ran, in arrival order.
    log: Arc<Mutex<String>>,
    conn: Arc<Mutex<Conn>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads `ccfs … listening on SCHEME://HOST:PORT` → `(scheme, port)`.
fn parse_listening(line: &str) -> Option<(String, u16)> {
    let rest = line.strip_prefix("ccfs ")?;
    let (_, url) = rest.split_once(" listening on ")?;
    let (scheme, addr) = url.trim().split_once("://")?;
    let port = addr
        .rsplit_once(':')?
        .1
        .trim_end_matches('/')
        .parse()
        .ok()?;
    Some((scheme.to_owned(), port))
}

impl TestServer {
    /// Starts `ccfs serve` with `CCFS_DATA_DIR=<tempdir>`, `CCFS_LISTEN=127.0.0.1:0` and `env`
    /// (which may override both). Panics, with the process's output, if it does not print its
    /// listening line within [`STARTUP_TIMEOUT`].
    pub fn start(env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let log = Arc::new(Mutex::new(String::new()));
        let placeholder = Conn {
            scheme: String::new(),
            port: 0,
            http: reqwest::Client::new(),
        };
        let mut server = TestServer {
            dir,
            env,
            child: None,
            log,
            conn: Arc::new(Mutex::new(placeholder)),
        };
        let (child, conn) = server
            .launch("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("{e}"));
        server.child = Some(child);
        *lock(&server.conn) = conn;
        server
    }

    /// The data directory (`CCFS_DATA_DIR`).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where finished exports are stored: `<data_dir>/files`.
    pub fn files_dir(&self) -> PathBuf {
        self.data_dir().join("files")
    }

    /// The port of the current process.
    pub fn port(&self) -> u16 {
        lock(&self.conn).port
    }

    /// The `Host` header value clients send: `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// `https://127.0.0.1:PORT{path}` (or `http://` when the server runs plain HTTP).
    pub fn url(&self, path: &str) -> String {
        let c = lock(&self.conn);
        format!("{}://127.0.0.1:{}{path}", c.scheme, c.port)
    }

    /// An HTTP client that trusts the server's certificate (a new one after each restart).
    pub fn http(&self) -> reqwest::Client {
        lock(&self.conn).http.clone()
    }

    /// Everything the server processes printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// The process id of the running process, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A `ccfs` command with the server's environment (data directory, extra env).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CCFS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("RUST_LOG");
        cmd.env("CCFS_DATA_DIR", self.data_dir());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `ccfs ARGS…` with the server's environment and waits for it.
    pub fn ccfs(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run ccfs")
    }

    /// `ccfs app create …`; panics unless it succeeds and prints `{"appId","secretKey"}`.
    pub fn create_app(&self, spec: &AppSpec<'_>) -> App {
        let name = if spec.name.is_empty() {
            "test app"
        } else {
            spec.name
        };
        let mut args: Vec<&str> = vec!["app", "create", "--name", name];
        for a in spec.accounts {
            args.extend(["--account", a]);
        }
        if let Some(tz) = spec.timezone {
            args.extend(["--timezone", tz]);
        }
        for r in spec.roles {
            args.extend(["--role", r]);
        }
        if let Some(id) = spec.app_id {
            args.extend(["--app-id", id]);
        }
        if spec.csv_header {
            args.push("--csv-header");
        }
        let out = self.ccfs(&args);
        assert!(
            out.status.success(),
            "ccfs {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "app create printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("app create: no {k} in {v}"))
                .to_owned()
        };
        App {
            app_id: field("appId"),
            secret: field("secretKey"),
        }
    }

    /// A client signing as `app`. It follows the server across restarts.
    pub fn client(&self, app: &App) -> Client {
        Client {
            app: app.clone(),
            conn: self.conn.clone(),
        }
    }

    /// An unsigned GET (for `/healthz`, `/readyz`, `/metrics`).
    pub async fn get(&self, path: &str) -> Resp {
        let r = self
            .http()
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Resp::read(r).await
    }

    /// SIGKILLs the process (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (up to 60 s) for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self
            .child
            .take()
            .expect("terminate: the server is not running");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.try_wait().expect("wait for ccfs") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("ccfs did not exit within 60 s of SIGTERM\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a new process on the same data directory and environment (SIGKILLing the old one
    /// first if it still runs). It listens on the same port when it can, else on a new one;
    /// existing [`Client`]s follow either way.
    pub fn restart(&mut self) {
        self.kill();
        let old = format!("127.0.0.1:{}", self.port());
        let (child, conn) = match self.launch(&old) {
            Ok(x) => x,
            Err(_) => self.launch("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}")),
        };
        self.child = Some(child);
        *lock(&self.conn) = conn;
    }

    fn launch(&self, listen: &str) -> Result<(Child, Conn), String> {
        let mut cmd = self.command();
        if !self.env.iter().any(|(k, _)| k == "CCFS_LISTEN") {
            cmd.env("CCFS_LISTEN", listen);
        }
        cmd.arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {BIN}: {e}"))?;
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        let err_thread = std::thread::spawn(move || pump(stderr, &log, None));
        let (tx, rx) = mpsc::channel::<String>();
        let log = self.log.clone();
        std::thread::spawn(move || pump(stdout, &log, Some(tx)));

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let failure = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((scheme, port)) = parse_listening(&line) {
                        let http = self.http_client(&scheme)?;
                        return Ok((child, Conn { scheme, port, http }));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    break format!("no listening line within {STARTUP_TIMEOUT:?}");
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break "stdout closed".to_owned(),
            }
        };
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        let _ = err_thread.join();
        Err(format!(
            "ccfs serve did not start: {failure} ({status})\n--- output ---\n{}",
            self.log()
        ))
    }

    fn http_client(&self, scheme: &str) -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .redirect(reqwest::redirect::Policy::none());
        if scheme == "https" {
            let cert = self
                .env
                .iter()
                .find(|(k, _)| k == "CCFS_TLS_CERT")
                .map(|(_, v)| PathBuf::from(v))
                .unwrap_or_else(|| self.data_dir().join("tls/cert.pem"));
            let pem = std::fs::read(&cert).map_err(|e| format!("{}: {e}", cert.display()))?;
            let cert =
                reqwest::Certificate::from_pem(&pem).map_err(|e| format!("certificate: {e}"))?;
            b = b.add_root_certificate(cert);
        }
        b.build().map_err(|e| format!("HTTP client: {e}"))
    }
}

/// Copies a child's output into the log, line by line; forwards lines to `tx` while anyone
/// listens, and keeps draining after that so the child never blocks on a full pipe.
fn pump(out: impl Read, log: &Mutex<String>, tx: Option<mpsc::Sender<String>>) {
    let mut tx = tx;
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        {
            let mut l = lock(log);
            l.push_str(&line);
            l.push('\n');
        }
        if let Some(t) = &tx {
            if t.send(line).is_err() {
                tx = None;
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Signed requests

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
    pub fn method(mut self, m: &str) -> Self {
        self.method = m.to_owned();
        self
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
    /// Send and sign this `Host`.
    pub fn host(mut self, h: &str) -> Self {
        self.host = Some(h.to_owned());
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
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
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
            Stamp::Millis => auth::format_timestamp(fresh_millis(), true),
            Stamp::Seconds => auth::format_timestamp(jiff::Timestamp::now(), false),
            Stamp::Given(s) => s.clone(),
        };
        let parts = RequestParts {
            method: &opts.method,
            path,
            query: opts.query.as_deref(),
            body,
        };
        let authorization = auth::sign_in(
            opts.query_line,
            opts.ak.as_deref().unwrap_or(&self.app.app_id),
            opts.secret.as_deref().unwrap_or(&self.app.secret),
            &timestamp,
            &parts,
            &signed_refs,
        );

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
        let send_body = opts.tamper_body.clone().unwrap_or_else(|| body.to_vec());
        // hyper leaves `Content-Length` out for an empty body; a client that signs it sends it.
        let empty = send_body.is_empty();
        let mut rb = conn.http.request(method, url).body(send_body);
        if empty {
            rb = rb.header("content-length", "0");
        }
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
            AuthMode::Sign => rb = rb.header("authorization", authorization),
            AuthMode::Raw(v) => rb = rb.header("authorization", v),
            AuthMode::Omit => {}
        }
        if let Some(t) = opts.timeout {
            rb = rb.timeout(t);
        }
        rb.send()
            .await
            .unwrap_or_else(|e| panic!("{} {path}: {e}", opts.method))
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
    /// at once when the job ends in another final state (`failed`, or `expired` while waiting
    /// for something else), and after `timeout`.
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
            if (state == "failed" || state == "expired") && state != want {
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

// ---------------------------------------------------------------------------------------------
// Envelopes

/// `{"request":{"version":"2.0"},"msgBody":MSG}`.
pub fn envelope(msg_body: Value) -> Value {
    json!({ "request": { "version": "2.0" }, "msgBody": msg_body })
}

/// [`envelope`] as bytes.
pub fn envelope_bytes(msg_body: Value) -> Vec<u8> {
    serde_json::to_vec(&envelope(msg_body)).expect("JSON")
}

/// Asserts the success envelope exactly (`resultCode "0"`, `resultDesc "success"`, the legacy
/// copy) and returns `resultData`.
pub fn success_data(v: &Value) -> &Value {
    assert_eq!(v["resultCode"], "0", "not a success: {v}");
    assert_eq!(v["resultDesc"], "success", "{v}");
    assert_eq!(
        v["response"],
        json!({"version":"2.0","resultCode":"0","resultMsg":"success"}),
        "{v}"
    );
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 4, "unexpected members in {v}");
    &v["resultData"]
}

/// The exact error envelope for `code` and `desc`.
pub fn error_envelope(code: &str, desc: &str) -> Value {
    json!({
        "resultCode": code,
        "resultDesc": desc,
        "resultData": "",
        "response": { "version": "2.0", "resultCode": code, "resultMsg": desc }
    })
}

/// Asserts an error answer: its HTTP status and exactly the envelope for `code` and `desc`.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), http: StatusCode, code: &str, desc: &str) {
    assert_eq!(got.1, error_envelope(code, desc), "HTTP {}", got.0);
    assert_eq!(got.0, http, "{}", got.1);
}

// ---------------------------------------------------------------------------------------------
// Records and files

/// The 21 column names, in export order.
pub fn column_names() -> [&'static str; 21] {
    ccfs_protocol::record::COLUMNS.map(|c| c.name)
}

/// A complete, valid record as the import interface takes it; change fields as needed.
pub fn record(id: &str, developer_id: &str, begin_time: &str, end_time: &str) -> Value {
    json!({
        "id": id, "developer_id": developer_id, "account_id": "", "agent_id": "1001",
        "service_no": "1", "skill_id": "2", "call_id": "", "begin_time": begin_time,
        "end_time": end_time, "op_type": "2", "op_object": "-1", "op_cause": "0",
        "media_type": "5", "vdn_id": "1", "cc_id": "1", "agent_type": "4",
        "phone_no": "88880001", "callIn_out": "0", "location_id": "0", "logon_sn": "1",
        "skillInfo_sn": ""
    })
}

/// The 21 values of a record object in column order (missing members are empty).
pub fn record_row(v: &Value) -> Vec<String> {
    column_names()
        .iter()
        .map(|c| v[*c].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A CSV row (21 strings) as the record object the import interface takes.
pub fn row_to_record(row: &[String]) -> Value {
    let mut m = serde_json::Map::new();
    for (c, v) in column_names().iter().zip(row) {
        m.insert((*c).to_owned(), Value::String(v.clone()));
    }
    Value::Object(m)
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The entries of a zip, in archive order: `(name, bytes)`.
pub fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).expect("zip entry");
            let name = f.name().expect("entry name").into_owned();
            let mut data = Vec::new();
            f.read_to_end(&mut data).expect("entry data");
            (name, data)
        })
        .collect()
}

/// Parses CSV bytes (the export layout) into rows of strings.
pub fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    ccfs_protocol::record::csv_reader(bytes)
        .records()
        .map(|r| r.expect("CSV row").iter().map(str::to_owned).collect())
        .collect()
}

/// Today's date in `tz` as `yyyyMMdd`.
pub fn today_in(tz: &str) -> String {
    let tz = jiff::tz::TimeZone::get(tz).expect("time zone");
    jiff::Timestamp::now()
        .to_zoned(tz)
        .strftime("%Y%m%d")
        .to_string()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The callback receiver

/// One request the [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct ReceivedCallback {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The HTTP status the receiver answered (200, or 500 while failing).
    pub answered: u16,
}

impl ReceivedCallback {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "callback body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Parses its `Authorization` and verifies the signature with `secret` over the request
    /// as received. Clock and replay are not checked.
    pub fn verify(&self, secret: &str) -> Result<AuthHeader, AuthError> {
        let value = self.header("authorization").ok_or(AuthError::Missing)?;
        let h = AuthHeader::parse(value)?;
        let parts = RequestParts {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            body: &self.body,
        };
        h.verify(secret, &parts, |name| self.header(name).map(str::to_owned))?;
        Ok(h)
    }
}

struct ReceiverInner {
    calls: Mutex<Vec<ReceivedCallback>>,
    failing: AtomicBool,
}

/// An HTTP server on `127.0.0.1:0` that records every request and answers 200 (or 500 while
/// [`Receiver::set_failing`] is on). Stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<ReceiverInner>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(ReceiverInner {
            calls: Mutex::new(Vec::new()),
            failing: AtomicBool::new(false),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let state = inner.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let state = state.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                let failing = state.failing.load(Ordering::SeqCst);
                let answered = if failing { 500 } else { 200 };
                lock(&state.calls).push(ReceivedCallback {
                    method: parts.method.as_str().to_owned(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().map(str::to_owned),
                    headers: parts.headers,
                    body,
                    answered,
                });
                axum::http::StatusCode::from_u16(answered).expect("status")
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, inner, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// While on, every request is answered 500 (and still recorded).
    pub fn set_failing(&self, failing: bool) {
        self.inner.failing.store(failing, Ordering::SeqCst);
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedCallback> {
        lock(&self.inner.calls).clone()
    }

    /// Those answered with 2xx.
    pub fn delivered(&self) -> Vec<ReceivedCallback> {
        self.received()
            .into_iter()
            .filter(|c| (200..300).contains(&c.answered))
            .collect()
    }

    /// Waits until at least `n` requests arrived (whatever the answer); returns all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedCallback> {
        wait_some(timeout, &format!("{n} callbacks"), || async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }

    /// Waits until at least `n` requests were answered 2xx; returns those.
    pub async fn wait_for_delivered(&self, n: usize, timeout: Duration) -> Vec<ReceivedCallback> {
        wait_some(timeout, &format!("{n} delivered callbacks"), || async {
            let got = self.delivered();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
