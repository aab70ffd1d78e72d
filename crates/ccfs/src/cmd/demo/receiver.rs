//! The demo's callback receiver: a local HTTP listener that verifies each callback's signature
//! and hands the verified ones (or why one was refused) to the flow.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::Router;
use ccfs_client::{CallbackBody, CallbackVerifier};
use ccfs_protocol::auth::RequestParts;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const CALLBACK_PATH: &str = "/ccfs/callback";

/// A receiver listening on a free loopback port.
pub(super) struct Listening {
    /// The callback URL to give the server.
    pub(super) url: String,
    /// Verified callbacks, or why one was refused.
    pub(super) received: mpsc::Receiver<Result<CallbackBody, String>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Starts listening for callbacks signed for `verifier`'s developer.
pub(super) async fn start(verifier: CallbackVerifier) -> anyhow::Result<Listening> {
    let (callbacks, received) = mpsc::channel(4);
    let receiver = Receiver {
        verifier: Arc::new(verifier),
        callbacks,
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("cannot listen for the callback")?;
    let callback_addr = listener.local_addr().context("callback listener")?;
    let (stop, stopped) = oneshot::channel::<()>();
    let router = Router::new()
        .route(CALLBACK_PATH, post(receive))
        .with_state(receiver);
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Listening {
        url: format!("http://{callback_addr}{CALLBACK_PATH}"),
        received,
        stop,
        task,
    })
}

impl Listening {
    /// Stops the listener; a receiver that ended badly is only logged, the flow has its answer.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("callback receiver: {e}"),
            Err(e) => tracing::warn!("callback receiver task: {e}"),
        }
    }
}

/// The callback receiver's shared state.
#[derive(Clone)]
struct Receiver {
    verifier: Arc<CallbackVerifier>,
    /// Verified callbacks, or why one was refused (which ends the demo at once rather than
    /// waiting for the server's retry).
    callbacks: mpsc::Sender<Result<CallbackBody, String>>,
}

/// `POST /ccfs/callback`: 200 for a genuine callback, 401 otherwise.
async fn receive(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let parts = RequestParts {
        method: "POST",
        path: uri.path(),
        query: uri.query(),
        body: &body,
    };
    match r.verifier.verify_headers(&parts, &headers) {
        Ok(cb) => {
            let _ = r.callbacks.try_send(Ok(cb));
            StatusCode::OK
        }
        Err(e) => {
            let _ = r.callbacks.try_send(Err(e.to_string()));
            StatusCode::UNAUTHORIZED
        }
    }
}
