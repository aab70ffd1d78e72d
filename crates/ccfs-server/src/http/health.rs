//! `GET /healthz` (the process is up), `GET /readyz` (the database and the file store both
//! answer), `GET /metrics` (Prometheus text). Not signed: they are for balancers and
//! monitoring, and reveal no data: `/readyz` names what does not answer, never why (an error
//! may hold a host or a bucket; it goes to the log).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// How long each check of `/readyz` may take. Short, since a balancer's probe has a time limit
/// of its own (often 1 to 5 s) and an answer that comes too late counts as "not ready" anyway;
/// a store this slow to answer one query is not fit to serve requests either.
const CHECK_LIMIT: Duration = Duration::from_secs(2);

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The outcome of one check.
enum Check {
    Ok,
    Failed,
    TimedOut,
}

impl Check {
    /// Runs `probe` under [`CHECK_LIMIT`], logging why it failed.
    async fn run<E: std::fmt::Display>(
        what: &str,
        probe: impl Future<Output = Result<(), E>>,
    ) -> Check {
        match tokio::time::timeout(CHECK_LIMIT, probe).await {
            Ok(Ok(())) => Check::Ok,
            Ok(Err(e)) => {
                tracing::warn!("readiness: the {what} does not answer: {e}");
                Check::Failed
            }
            Err(_) => {
                tracing::warn!("readiness: the {what} gave no answer within {CHECK_LIMIT:?}");
                Check::TimedOut
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Check::Ok => "ok".into(),
            Check::Failed => "unavailable".into(),
            Check::TimedOut => format!("no answer within {} s", CHECK_LIMIT.as_secs()),
        }
    }
}

/// 200 `ready` when the database and the file store both answer; 503 with one line per part
/// (`database: …`, `file store: …`) saying which does not.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    // Both checks run at once, in this task (no spawn: each is one round trip, and both end
    // with the request), so the answer comes within one time limit, not the sum of two.
    let (store, blobs) = tokio::join!(
        Check::run("database", state.store.ping()),
        Check::run("file store", state.blobs.ping()),
    );
    if matches!((&store, &blobs), (Check::Ok, Check::Ok)) {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let body = format!(
        "not ready\ndatabase: {}\nfile store: {}\n",
        store.describe(),
        blobs.describe()
    );
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

/// The Prometheus text, with the cluster-wide gauges read from the store first (see
/// `crate::telemetry`).
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    crate::telemetry::refresh_queue_depths(state.store.as_ref()).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
