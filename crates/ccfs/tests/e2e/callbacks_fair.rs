//! One developer's receivers that never answer do not hold up another developer's callbacks.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::harness::*;

/// A receiver that accepts every connection and never answers: it keeps the sockets open so
/// that each attempt waits for the whole answer time limit.
async fn silent_receiver() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}/cb"), task)
}

fn generate_body(url: &str) -> Value {
    json!({
        "beginTime": "2024-05-01 00:00:00",
        "endTime": "2024-05-02 00:00:00",
        "callBackURL": url,
    })
}

/// Developer A has 20 finished jobs whose receiver accepts and never answers (each attempt
/// hangs for the 30 s answer limit), more than the node's 4 attempts at once; developer B's
/// callback still arrives within seconds.
#[tokio::test]
async fn callbacks_fair_a_silent_receiver_does_not_delay_another_developer() {
    let server = TestServer::start(&[
        ("CCFS_MAX_ACTIVE_JOBS", "100"),
        ("CCFS_CALLBACK_TIMEOUT_SECS", "30"),
        ("CCFS_EXPORT_WORKERS", "4"),
        ("CCFS_CALLBACK_PARALLEL", "4"),
    ]);
    let (silent_url, _silent) = silent_receiver().await;
    let a = server.create_app(&AppSpec {
        name: "slow receivers",
        ..AppSpec::default()
    });
    let b = server.create_app(&AppSpec {
        name: "prompt receiver",
        ..AppSpec::default()
    });
    let ca = server.client(&a);
    let cb = server.client(&b);

    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(ca.generate(generate_body(&silent_url)).await);
    }
    for id in &ids {
        ca.wait_state(id, "succeeded", LONG).await;
    }
    // A's callbacks are now due, and being attempted or queued behind each other.
    let receiver = Receiver::start().await;
    let id = cb.generate(generate_body(&receiver.url("/cb"))).await;
    cb.wait_state(&id, "succeeded", LONG).await;
    let finished = Instant::now();
    let got = receiver.wait_for(1, Duration::from_secs(60)).await;
    let waited = finished.elapsed();
    assert_eq!(got[0].json()["msgBody"]["responseId"], id.as_str());
    assert!(
        waited < Duration::from_secs(15),
        "developer B's callback took {waited:?} after its job finished, behind A's silent \
         receivers\n--- server output ---\n{}",
        server.log()
    );
}
