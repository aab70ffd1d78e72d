//! The callback receiver: [`Receiver`] is an HTTP server in the test process that records
//! every request the server's callback delivery sends it, answers 200 (or 500 on demand), and
//! lets a test check each [`ReceivedCallback`]'s signature as a real receiver would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccfs_protocol::auth::{AuthError, AuthHeader, RequestParts};
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::lock;
use super::wire::wait_some;

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
