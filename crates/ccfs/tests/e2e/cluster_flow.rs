//! Flow control and developers across a cluster: two `ccfs serve` nodes on one fresh
//! PostgreSQL database, one file store and one master key ([`Cluster`]). The limits are the
//! cluster's, not a process's: a download in progress on one node counts on the other
//! (0300008), so does a queued job (0300009), and a developer created through one node signs in
//! on the other at once.
//!
//! They need PostgreSQL (`CCFS_TEST_POSTGRES_URL`): `#[ignore]`d, with "postgres" in their
//! names.

use serde_json::{json, Value};

use crate::harness::*;

const FLOW_DESC: &str = "Reached the download flow control threshold.";
const QUERY_DESC: &str = "Reached the query flow control threshold.";

/// A generate of the whole of 2024-05-01 (UTC) with a callback nobody receives.
fn day() -> Value {
    json!({
        "beginTime": "2024-05-01 00:00:00",
        "endTime": "2024-05-02 00:00:00",
        "callBackURL": "https://example.com/ccfs/cb",
    })
}

/// The lease of download slots (and jobs) in the download test: short, so that a node killed
/// holding a slot frees it within the test, and long enough that a busy machine still renews
/// it in time (every third of it).
const LEASE_SECS: &str = "3";

/// A download held open on node A (headers read, body not) makes node B refuse the same
/// developer's downloads with 0300008, past the slot's first lease (A renews it), while another
/// developer downloads on B; B serves once A's client goes away, and once A is SIGKILLed holding
/// a download, B serves again when that slot's lease ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
async fn postgres_download_flow_control_spans_nodes() {
    // No compression and 30,000 fat records: a ~17 MB zip that does not fit in socket buffers.
    let mut cluster = Cluster::start(
        2,
        &[
            ("CCFS_MAX_DOWNLOADS", "1"),
            ("CCFS_COMPRESSION_LEVEL", "0"),
            ("CCFS_JOB_LEASE_SECS", LEASE_SECS),
        ],
        |_| Vec::new(),
    );
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let dev = a.create_app(&AppSpec {
        name: "A",
        ..Default::default()
    });
    let other = a.create_app(&AppSpec {
        name: "B",
        ..Default::default()
    });
    let ing = a.create_app(&AppSpec {
        name: "CTI",
        roles: &["ingest"],
        ..Default::default()
    });
    let cti = a.client(&ing);
    for chunk in 0..3 {
        let recs: Vec<Value> = (chunk * 10_000..(chunk + 1) * 10_000)
            .map(|i| fat_record(i, &dev.app_id))
            .collect();
        assert_eq!(cti.import_ok(&recs).await, (10_000, 0));
    }
    cti.import_ok(&[record(
        "o1",
        &other.app_id,
        "2024-05-01 10:00:00",
        "2024-05-01 10:01:00",
    )])
    .await;
    let (on_a, on_b) = (a.client(&dev), b.client(&dev));
    let id = on_a.generate(day()).await;
    let st = on_b.wait_state(&id, "succeeded", LONG).await;
    let name = st["agentOprInfoFileName"]
        .as_str()
        .expect("name")
        .to_owned();
    let size = st["fileSize"].as_u64().expect("fileSize");
    assert!(size > 12_000_000, "the zip is only {size} bytes");
    // Both nodes serve it from the one shared file store (a directory unless the cluster runs
    // on S3).
    if let Some(dir) = cluster.blob_dir() {
        assert!(
            files_under(dir).iter().any(|f| f.ends_with(&name)),
            "{name} is not under {}",
            dir.display()
        );
    }
    let other_b = b.client(&other);
    let other_id = other_b.generate(day()).await;
    let other_name = other_b.wait_state(&other_id, "succeeded", LONG).await["agentOprInfoFileName"]
        .as_str()
        .expect("name")
        .to_owned();

    // Hold a download open on A: its slot is taken before the headers are sent.
    let held = hold_download(&on_a, &name).await;
    assert_refused(&on_b, &name).await;
    // Per developer: another developer downloads on B meanwhile.
    assert_eq!(
        other_b.download(&other_name, None).await.status,
        StatusCode::OK
    );

    // Past the end of the slot's first lease the slot still counts: node A renews it.
    // (The other developer's slot may still be on its way out: its release runs after its
    // body ended.)
    let slots = |sql: &str| cluster.db().query_text(sql);
    let held_lease = format!(
        "SELECT lease_until::text FROM download_slots WHERE developer_id = '{}'",
        dev.app_id
    );
    let first_end = lease_ends(&slots(&held_lease));
    wait_until(LONG, || async {
        jiff::Timestamp::now().as_millisecond() > first_end
    })
    .await;
    assert_refused(&on_b, &name).await;
    let renewed = lease_ends(&slots(&held_lease));
    assert!(renewed > first_end, "the lease was renewed");

    // A's client goes away: the slot is released, and B serves the whole file.
    drop(held);
    wait_until(LONG, || async {
        on_b.download(&name, Some("bytes=0-99")).await.status == StatusCode::PARTIAL_CONTENT
    })
    .await;
    let whole = on_b.download(&name, None).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.body.len() as u64, size);
    assert_eq!(
        sha256_hex(&whole.body),
        st["sha256"].as_str().expect("sha256")
    );

    // One download after another at the limit of one is never refused, on either node: a
    // download's slot is free before its last byte arrives, not a moment after (a slow CI run
    // once found the whole file refused right after a ranged download).
    let other_a = cluster.nodes[0].client(&other);
    let whole_other = other_b.download(&other_name, None).await.body;
    for client in [&other_a, &other_b, &other_a, &other_b].repeat(5) {
        let part = client.download(&other_name, Some("bytes=0-9")).await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{}", part.text());
        let again = client.download(&other_name, None).await;
        assert_eq!(again.body, whole_other, "{}", again.text());
    }
    wait_until(LONG, || async {
        slots("SELECT id::text FROM download_slots").is_empty()
    })
    .await;

    // A dies (SIGKILL) holding a download: its slot frees itself when its lease ends.
    let held = hold_download(&on_a, &name).await;
    assert_refused(&on_b, &name).await;
    cluster.nodes[0].kill();
    drop(held);
    wait_until(LONG, || async {
        on_b.download(&name, Some("bytes=0-99")).await.status == StatusCode::PARTIAL_CONTENT
    })
    .await;
}

/// Starts a download of `name` and returns it with its headers read and its body not: the
/// download stays in progress until the response is dropped.
async fn hold_download(client: &Client, name: &str) -> reqwest::Response {
    let body = envelope_bytes(json!({ "agentOprInfoFileName": name }));
    let held = client.send_streaming(DOWNLOAD, &body, &Opts::new()).await;
    assert_eq!(held.status(), StatusCode::OK);
    assert_eq!(
        held.headers()["content-type"],
        "Application/Octet-stream;charset=UTF-8"
    );
    held
}

/// A whole and a ranged download of `name` are both refused with 0300008.
async fn assert_refused(client: &Client, name: &str) {
    for range in [None, Some("bytes=0-99")] {
        let got = client.download(name, range).await;
        assert_error(
            &(got.status, got.json()),
            StatusCode::OK,
            "0300008",
            FLOW_DESC,
        );
    }
}

/// The lease end (unix milliseconds) of the one slot in `rows`.
fn lease_ends(rows: &[Vec<Option<String>>]) -> i64 {
    assert_eq!(rows.len(), 1, "one download slot: {rows:?}");
    rows[0][0]
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a lease end: {rows:?}"))
}

/// With one active job per developer, a job queued through node A makes node B refuse the same
/// developer's next generate with 0300009; another developer generates on B. No node runs
/// exports, so the job stays queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
async fn postgres_query_flow_control_spans_nodes() {
    let cluster = Cluster::start(
        2,
        &[("CCFS_MAX_ACTIVE_JOBS", "1"), ("CCFS_EXPORT_WORKERS", "0")],
        |_| Vec::new(),
    );
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let dev = a.create_app(&AppSpec {
        name: "A",
        ..Default::default()
    });
    let other = a.create_app(&AppSpec {
        name: "B",
        ..Default::default()
    });
    let first = a.client(&dev).generate(day()).await;
    let mut second = day();
    second["agentId"] = json!("2");
    let got = b.client(&dev).call(GENERATE, second).await;
    assert_error(&got, StatusCode::OK, "0300009", QUERY_DESC);
    // The job is still queued (nothing runs exports), as seen from either node.
    let (_, v) = b.client(&dev).status(&first).await;
    assert_eq!(
        success_data(&v)["state"],
        "queued",
        "{v}\n{}",
        cluster.log_tails(20)
    );
    // The limit is per developer.
    b.client(&other).generate(day()).await;
    // And node A refuses too.
    let got = a.client(&dev).call(GENERATE, day()).await;
    assert_error(&got, StatusCode::OK, "0300009", QUERY_DESC);
}

/// A developer created with `ccfs app create` against node A's configuration signs requests
/// that node B accepts at once: developers, their sealed secrets and the master key are the
/// cluster's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
async fn postgres_developer_created_on_one_node_signs_in_on_another() {
    let cluster = Cluster::start(2, &[("CCFS_EXPORT_WORKERS", "0")], |_| Vec::new());
    let dev = cluster.nodes[0].create_app(&AppSpec {
        name: "A",
        ..Default::default()
    });
    let on_b = cluster.nodes[1].client(&dev);
    let id = on_b.generate(day()).await;
    let (status, v) = cluster.nodes[0].client(&dev).status(&id).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(success_data(&v)["responseId"], id);
    // A wrong secret is still refused on B: it is the stored secret that is checked.
    let got = on_b
        .call_with(
            STATUS,
            json!({"responseId": id}),
            &Opts::new().wrong_secret(),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNAUTHORIZED, "{}", got.1);
}
