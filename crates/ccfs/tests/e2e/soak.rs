//! The kill-9 soak (issue 9): generates keep coming, with retries, while the server is
//! SIGKILLed twenty times at random moments and restarted on the same data. Afterwards every
//! accepted job has succeeded, every callback arrived with a valid signature, and every download
//! matches the checksum the server reported for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;
use serde_json::json;

const KILLS: usize = 20;
const RECORDS: u64 = 3_000;

/// Generates one export after another until `stop`, each retried with the same
/// `Idempotency-Key` until the server answers it (a kill may take the request or its answer
/// away); returns the response ids answered.
async fn generate_loop(client: Client, callback: String, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut retries = 0u32;
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let opts = Opts::new()
            .idempotency_key(&format!("soak-{i:04}"))
            .timeout(Duration::from_secs(10));
        let body = json!({
            "beginTime": "2024-05-01 00:00:00",
            "endTime": "2024-05-02 00:00:00",
            "callBackURL": callback,
        });
        loop {
            match client.try_call_with(GENERATE, body.clone(), &opts).await {
                Ok((StatusCode::OK, v)) if v["resultCode"] == "0" => {
                    let id = success_data(&v)["responseId"].as_str().expect("responseId");
                    // A retry answered with an id already seen would mean two keys, one job.
                    assert!(!ids.iter().any(|x| x == id), "{id} answered twice");
                    ids.push(id.to_owned());
                    break;
                }
                // Too many jobs queued (0300009): the workers catch up after the restart.
                Ok((StatusCode::OK, v)) if v["resultCode"] == "0300009" => {}
                // The store was going away under the request (0300500), or the process was.
                Ok((StatusCode::INTERNAL_SERVER_ERROR, _)) | Err(_) => {}
                Ok((status, v)) => panic!("generate {i}: HTTP {status}: {v}"),
            }
            retries += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    eprintln!("{} generates answered, {retries} retries", ids.len());
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_twenty_sigkills_under_load_lose_nothing() {
    let mut server = TestServer::start(&[
        ("CCFS_JOB_LEASE_SECS", "2"),
        ("CCFS_JOB_MAX_ATTEMPTS", "100"),
        ("CCFS_CALLBACK_INITIAL_BACKOFF_SECS", "1"),
        ("CCFS_CALLBACK_MAX_BACKOFF_SECS", "2"),
        ("CCFS_EXPORT_WORKERS", "2"),
    ]);
    let a = server.create_app(&AppSpec {
        name: "A",
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    server.import_records(dir.path(), &a.app_id, RECORDS);
    let rx = Receiver::start().await;
    let client = server.client(&a);

    let stop = Arc::new(AtomicBool::new(false));
    let generator = tokio::spawn(generate_loop(client.clone(), rx.url("/cb"), stop.clone()));
    // Random moments: the seed is printed so that a failing run can be replayed.
    let seed: u64 = rand::random();
    eprintln!("soak seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    for kill in 0..KILLS {
        let pause = rand::Rng::random_range(&mut rng, 300..2_500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        // Blocking (it waits for the process to exit and the new one to listen), so on a
        // thread of its own while the generator goes on.
        server = tokio::task::spawn_blocking(move || {
            server.kill();
            server.restart();
            server
        })
        .await
        .expect("restart");
        eprintln!("kill {} after {pause} ms", kill + 1);
    }
    stop.store(true, Ordering::Relaxed);
    let ids = generator.await.expect("generator");
    assert!(ids.len() >= KILLS, "only {} generates answered", ids.len());

    let mut finished = Vec::new();
    for id in &ids {
        let st = client.wait_state(id, "succeeded", LONG).await;
        assert_eq!(st["recordCount"], RECORDS, "{id}: {st}");
        finished.push(st);
    }
    // Every job's callback arrived, signed with the developer's secret. A kill may make one
    // arrive twice (delivered, then killed before that was recorded); never zero times. (Before
    // the downloads: a download supersedes a callback still pending.)
    let all_callbacks = ids.len();
    wait_until(LONG, || async {
        let got = rx.delivered();
        ids.iter().all(|id| {
            got.iter()
                .any(|cb| cb.json()["msgBody"]["responseId"].as_str() == Some(id.as_str()))
        })
    })
    .await;
    for cb in rx.delivered() {
        let body = cb.json();
        cb.verify(&a.secret)
            .unwrap_or_else(|e| panic!("callback {body} has a bad signature: {e:?}"));
    }
    for st in &finished {
        let name = st["agentOprInfoFileName"].as_str().expect("file name");
        let r = client.download(name, None).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text());
        assert_eq!(
            Some(sha256_hex(&r.body).as_str()),
            st["sha256"].as_str(),
            "{name}: the download does not match its checksum"
        );
    }
    eprintln!(
        "{all_callbacks} jobs, {} callbacks delivered",
        rx.delivered().len()
    );
}
