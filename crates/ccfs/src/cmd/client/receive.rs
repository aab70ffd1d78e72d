//! The callback receiver of `ccfs client receive` and `fetch --callback-listen`: an HTTP (or,
//! with a certificate, HTTPS) listener that verifies every POST with
//! [`ccfs_client::CallbackVerifier`] and hands each genuine callback to the command.
//!
//! Answers: 200 with the success envelope for a genuine callback; 401 (`0300401`) for a
//! forged, tampered, replayed or foreign one; 400 for a correctly signed request whose body is
//! not a callback; 405 for anything but POST; 503 when the command has fallen behind (the
//! server retries later). The answer is sent before the file is downloaded, so a slow download
//! never makes the server's delivery time out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use ccfs_client::{CallbackBody, CallbackVerifier, VerifyError};
use ccfs_protocol::auth::RequestParts;
use ccfs_protocol::envelope::ResponseEnvelope;
use ccfs_protocol::{ApiError, ResultCode};
use tokio::sync::mpsc;

use super::args::ReceiverTlsArgs;
use super::output::Out;

/// Largest callback body accepted (a real one is under 300 bytes).
const BODY_LIMIT: usize = 64 * 1024;
/// Genuine callbacks queued for the command before new ones are answered 503.
const QUEUE: usize = 256;

struct Shared {
    verifier: Arc<CallbackVerifier>,
    tx: mpsc::Sender<CallbackBody>,
    out: Out,
}

/// A running receiver.
pub struct Receiver {
    addr: SocketAddr,
    https: bool,
    rx: mpsc::Receiver<CallbackBody>,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate in the file", cert.display());
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .with_context(|| format!("{}: the key does not fit the certificate", cert.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Receiver {
    /// Binds `listen` and starts answering.
    pub async fn start(
        listen: SocketAddr,
        tls: &ReceiverTlsArgs,
        verifier: Arc<CallbackVerifier>,
        out: Out,
    ) -> anyhow::Result<Receiver> {
        let tls = match (&tls.tls_cert, &tls.tls_key) {
            (Some(c), Some(k)) => Some(tls_config(c, k)?),
            _ => None,
        };
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("cannot listen on {listen}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared { verifier, tx, out });
        let app = Router::new()
            .fallback(handle)
            .with_state(shared)
            .into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let https = tls.is_some();
        let task = match tls {
            Some(config) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
                let server = axum_server::from_tcp_rustls(listener, config).handle(handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
            None => {
                let server = axum_server::from_tcp(listener).handle(handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
        };
        Ok(Receiver {
            addr,
            https,
            rx,
            handle,
            task,
        })
    }

    /// The URL of `path` on this receiver; an unspecified listen address shows as loopback.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("{scheme}://{}{path}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The next genuine callback; `None` once the listener has stopped.
    pub async fn next(&mut self) -> Option<CallbackBody> {
        self.rx.recv().await
    }

    /// Stops listening; requests in flight get a moment to finish.
    pub async fn stop(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        match self.task.await {
            Ok(Err(e)) => tracing::warn!("callback receiver: {e}"),
            Err(e) => tracing::warn!("callback receiver task: {e}"),
            Ok(Ok(())) => {}
        }
    }
}

fn answer(status: StatusCode, err: Option<ApiError>) -> Response {
    let body = match err {
        None => ResponseEnvelope::success(serde_json::json!({})),
        Some(e) => ResponseEnvelope::error(&e),
    };
    (status, Json(body)).into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    if req.method() != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(ApiError::new(ResultCode::TooLong, "requestBody")),
        );
    };
    let request = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        body: &body,
    };
    match shared.verifier.verify_headers(&request, &parts.headers) {
        Ok(cb) => match shared.tx.try_send(cb) {
            Ok(()) => answer(StatusCode::OK, None),
            Err(_) => answer(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(ApiError::new(ResultCode::Internal, "busy")),
            ),
        },
        Err(e @ VerifyError::Body(_)) => {
            shared.out.refused(&peer.to_string(), &e.to_string());
            answer(
                StatusCode::BAD_REQUEST,
                Some(ApiError::new(ResultCode::BadFormat, "msgBody")),
            )
        }
        Err(e) => {
            let reason = match e {
                VerifyError::Auth(a) => a.to_string(),
                VerifyError::OtherKey => "signed with another access key".to_owned(),
                VerifyError::Body(b) => b,
            };
            shared.out.refused(&peer.to_string(), &reason);
            answer(
                StatusCode::UNAUTHORIZED,
                Some(ApiError::new(ResultCode::AuthFailed, &reason)),
            )
        }
    }
}
