//! Generate to callback on one node goes by wake-ups, never by the loops' looks in the store:
//! with the export worker's and the callback loop's idle looks an hour away, a generate sent
//! while both wait is still built and its callback delivered (issue 10, small exports).

use std::sync::Arc;
use std::time::Duration;

use ccfs_protocol::auth::{format_timestamp, sign_json_post, JsonPost, Precision, SignedHeaders};
use ccfs_protocol::{paths, JSON_CONTENT_TYPE};
use jiff::Timestamp;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::{http_client, Dispatcher};
use crate::download_slots::DownloadSlots;
use crate::export::{spawn_workers, Exports};
use crate::state::AppState;
use crate::{Config, Core, NewApp};

/// Longer than any test runs: a loop that only looked in the store would never get there.
const NEVER: Duration = Duration::from_secs(3600);
/// How long a callback may take to arrive before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// An HTTP listener on loopback: the API router of `state` and a callback receiver that passes
/// every body it gets to the returned channel.
async fn listen(
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let receive = axum::routing::post(move |body: axum::body::Bytes| async move {
        let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
    });
    let app = crate::http::router(state).route("/cb", receive);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .unwrap();
    });
    (host, rx)
}

/// A signed generate of `ak` for a day of 2024; its responseId.
async fn generate(http: &reqwest::Client, host: &str, ak: &str, sk: &str, n: u32) -> String {
    let body = json!({"request": {"version": "2.0"}, "msgBody": {
        "beginTime": format!("2024-05-{:02} 00:00:00", n),
        "endTime": format!("2024-05-{:02} 00:00:00", n + 1),
        "callBackURL": format!("http://{host}/cb"),
    }})
    .to_string();
    let authorization = sign_json_post(
        ak,
        sk,
        &format_timestamp(Timestamp::now(), Precision::Millis),
        &JsonPost {
            path: paths::GENERATE,
            query: None,
            host,
            body: body.as_bytes(),
        },
        SignedHeaders::ContentAndHost,
    );
    let answer: Value = http
        .post(format!("http://{host}{}", paths::GENERATE))
        .header("content-type", JSON_CONTENT_TYPE)
        .header("authorization", authorization)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["resultCode"], "0", "{answer}");
    answer["resultData"]["responseId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_generate_sent_while_the_loops_wait_reaches_its_callback_by_wake_ups() {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open(Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    })
    .await
    .unwrap();
    let (dev, sk) = core
        .tenants
        .create(NewApp {
            name: "wakes".into(),
            accounts: Vec::new(),
            timezone: Some("UTC".into()),
            roles: Vec::new(),
            app_id: None,
            csv_header: false,
        })
        .await
        .unwrap();
    let node = "wakes-node".to_owned();
    let state = Arc::new(AppState {
        downloads: DownloadSlots::new(core.store.clone(), node.clone(), core.config.job_lease()),
        config: core.config,
        store: core.store,
        blobs: core.blobs,
        tenants: core.tenants,
        wake_exports: Arc::new(Notify::new()),
        wake_callbacks: Arc::new(Notify::new()),
        // A recorder of its own, not installed: nothing global changes for the other tests.
        metrics: metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle(),
        node_name: node,
    });
    let shutdown = CancellationToken::new();
    let (host, mut callbacks) = listen(state.clone(), shutdown.clone()).await;

    let mut exports = Exports::of(&state);
    exports.idle_poll = NEVER;
    let workers = spawn_workers(Arc::new(exports), shutdown.clone());
    let mut dispatcher = Dispatcher::new(state.clone(), http_client(&state.config).unwrap());
    dispatcher.idle = NEVER;
    let stop = shutdown.clone();
    let delivery = tokio::spawn(async move { dispatcher.run(&stop).await });

    let http = reqwest::Client::new();
    for n in 1..=2 {
        // Time for both loops to look, find nothing and wait (the first time since they
        // started, the second since the previous callback), so that a loop that misses its
        // wake-up is caught sleeping rather than finding the job at a look it made anyway.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let id = generate(&http, &host, dev.app_id.as_str(), &sk, n).await;
        let got = tokio::time::timeout(PATIENCE, callbacks.recv())
            .await
            .unwrap_or_else(|_| panic!("no callback for generate {n}: a loop was not woken"))
            .unwrap();
        assert_eq!(got["msgBody"]["responseId"], id.as_str());
    }

    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
    delivery.await.unwrap();
}
