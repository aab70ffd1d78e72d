//! End-to-end durability tests: the real `ccfs serve` is SIGKILLed (no clean stop) at the
//! worst moments of a job's life and restarted on the same data directory; the job must still
//! finish, exactly once, with the right file and its callback (SPEC sections 4 and 6). A clean
//! stop (SIGTERM) must give a running job back at once instead of leaving it to its lease.
//!
//! Leases are short (`CCFS_JOB_LEASE_SECS=2`) so that a dead worker's job is taken over
//! quickly, and callback retries are fast (1 s backoff, 2 s time limit).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::*;
use serde_json::{json, Value};

/// The generate window every test uses; all records lie inside it.
const BEGIN: &str = "2024-05-01 00:00:00";
const END: &str = "2024-05-02 00:00:00";
/// Records for the tests that must catch an export while it runs.
const BIG: u64 = 400_000;
/// Limit for a big export to finish (a debug build on a busy machine); only a limit for failing.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(300);

/// The last lines of the server's output, for panic messages.
fn log_tail(server: &TestServer) -> String {
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The common environment: short lease, fast callback retries, the configuration file.
fn start(config: &ConfigFile, lease_secs: &str) -> TestServer {
    TestServer::start(&[
        ("CCFS_CONFIG", config.path()),
        ("CCFS_JOB_LEASE_SECS", lease_secs),
        ("CCFS_CALLBACK_INITIAL_BACKOFF_SECS", "1"),
        ("CCFS_CALLBACK_MAX_BACKOFF_SECS", "1"),
        ("CCFS_CALLBACK_TIMEOUT_SECS", "2"),
    ])
}

/// The status `resultData` of a job (which must exist).
async fn job_status(server: &TestServer, c: &Client, id: &str) -> Value {
    let (status, v) = c.status(id).await;
    assert!(
        status == StatusCode::OK && v["resultCode"] == "0",
        "status of {id}: HTTP {status}: {v}\n--- server output ---\n{}",
        log_tail(server)
    );
    v["resultData"].clone()
}

/// Polls the job's status until `done` holds; panics with the last status and the server's
/// output after `timeout`, or at once when the job failed.
async fn wait_job(
    server: &TestServer,
    c: &Client,
    id: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let data = job_status(server, c, id).await;
        if done(&data) {
            return data;
        }
        assert_ne!(
            data["state"],
            "failed",
            "{what}: the job failed: {data}\n--- server output ---\n{}",
            log_tail(server)
        );
        if Instant::now() >= deadline {
            panic!(
                "{what}: not within {timeout:?}; last status {data}\n--- server output ---\n{}",
                log_tail(server)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn state_is(want: &'static str) -> impl Fn(&Value) -> bool {
    move |d: &Value| d["state"] == want
}

/// A record of `developer` numbered `i`, at `i` seconds into the window.
fn numbered_record(developer: &str, i: u32) -> Value {
    let t = format!(
        "2024-05-01 {:02}:{:02}:{:02}",
        i / 3600,
        i / 60 % 60,
        i % 60
    );
    let mut r = record(&format!("rec{i:05}"), developer, &t, &t);
    r["agent_id"] = json!(format!("{}", 1001 + i % 7));
    r
}

/// Imports `n` records for `app` through the import interface (as an `ingest` app); returns
/// them as CSV rows, in export order.
async fn import_small(server: &TestServer, app: &App, n: u32) -> Vec<Vec<String>> {
    let ingest = server.create_app(&AppSpec {
        name: "cti",
        roles: &["ingest"],
        ..AppSpec::default()
    });
    let records: Vec<Value> = (0..n).map(|i| numbered_record(&app.app_id, i)).collect();
    let got = server.client(&ingest).import_ok(&records).await;
    assert_eq!(got, (u64::from(n), 0), "import");
    records.iter().map(record_row).collect()
}

fn generate_body(receiver: &Receiver) -> Value {
    json!({ "beginTime": BEGIN, "endTime": END, "callBackURL": receiver.url("/ccfs/cb") })
}

/// Downloads `name`; asserts a whole, checksummed zip; returns the CSV rows of all its entries
/// in order.
async fn download_rows(server: &TestServer, c: &Client, name: &str) -> Vec<Vec<String>> {
    let r = c.download(name, None).await;
    assert_eq!(
        r.header("content-type"),
        Some(ccfs_protocol::DOWNLOAD_CONTENT_TYPE),
        "download {name}: HTTP {}: {}\n--- server output ---\n{}",
        r.status,
        if r.body.len() < 2000 {
            r.text()
        } else {
            format!("{} bytes", r.body.len())
        },
        log_tail(server)
    );
    assert_eq!(r.status, StatusCode::OK, "download {name}");
    assert_eq!(
        r.header("x-checksum-sha256"),
        Some(sha256_hex(&r.body).as_str()),
        "download {name}: checksum"
    );
    unzip(&r.body)
        .iter()
        .flat_map(|(_, data)| csv_rows(data))
        .collect()
}

/// The export work files (`*.part`) under `<data_dir>/work`.
fn part_files(server: &TestServer) -> Vec<PathBuf> {
    files_under(&server.data_dir().join("work"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect()
}

/// Everything in the file store.
fn stored_files(server: &TestServer) -> Vec<PathBuf> {
    files_under(&server.files_dir())
}

/// Checks a callback as the receiver got it: signed with the developer's credentials over
/// `content-length;content-type;host`, and exactly the SPEC body.
#[track_caller]
fn check_callback(cb: &ReceivedCallback, app: &App, id: &str, file_name: &str) {
    let h = cb
        .verify(&app.secret)
        .unwrap_or_else(|e| panic!("callback signature: {e}: {:?}", cb.header("authorization")));
    assert_eq!(h.ak, app.app_id, "callback AK");
    assert_eq!(
        h.signed_headers, "content-length;content-type;host",
        "callback signed headers"
    );
    assert_eq!(cb.method, "POST");
    assert_eq!(cb.path, "/ccfs/cb");
    assert_eq!(
        cb.json(),
        json!({ "request": { "version": "2.0" }, "msgBody": { "responseId": id, "agentOprInfoFileName": file_name } }),
        "callback body"
    );
}

/// Polls until the job is `running`; panics if it finishes first (the test could then not
/// interrupt it: more records are needed) or does not start.
async fn wait_running(server: &TestServer, c: &Client, id: &str) -> Value {
    let data = wait_job(server, c, id, LONG, "the export to start", |d| {
        d["state"] != "queued"
    })
    .await;
    assert_eq!(
        data["state"], "running",
        "the export finished before the test could interrupt it (use more records): {data}"
    );
    data
}

// ---------------------------------------------------------------------------------------------

/// A job accepted while no worker runs survives a SIGKILL and is exported after the restart.
#[tokio::test]
async fn killed_while_the_job_is_queued() {
    let config = ConfigFile::new(0);
    let mut server = start(&config, "2");
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let expected = import_small(&server, &app, 40).await;

    let id = c.generate(generate_body(&receiver)).await;
    let queued = job_status(&server, &c, &id).await;
    assert_eq!(queued["state"], "queued", "no worker runs: {queued}");
    let name = queued["agentOprInfoFileName"]
        .as_str()
        .expect("file name")
        .to_owned();
    assert_eq!(name, format!("{}_{id}.zip", today_in("UTC")));

    server.kill();
    config.set_workers(1);
    server.restart();

    let done = wait_job(
        &server,
        &c,
        &id,
        LONG,
        "the queued job to succeed after a SIGKILL",
        state_is("succeeded"),
    )
    .await;
    assert_eq!(done["agentOprInfoFileName"], name.as_str(), "{done}");
    assert_eq!(done["recordCount"], 40, "{done}");
    assert_eq!(done["fileCount"], 1, "{done}");

    let delivered = receiver.wait_for_delivered(1, LONG).await;
    check_callback(&delivered[0], &app, &id, &name);

    let rows = download_rows(&server, &c, &name).await;
    assert_eq!(rows, expected, "the exported rows are the imported records");
}

/// A job interrupted by a SIGKILL while it runs is taken over after its lease runs out: it
/// finishes once, with one zip holding every record, and leaves no work file behind.
#[tokio::test]
async fn killed_while_the_job_is_running() {
    let config = ConfigFile::new(1);
    let mut server = start(&config, "2");
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let scratch = tempfile::tempdir().expect("temp dir");
    server.import_records(scratch.path(), &app.app_id, BIG);

    let id = c.generate(generate_body(&receiver)).await;
    let running = wait_running(&server, &c, &id).await;
    let name = running["agentOprInfoFileName"]
        .as_str()
        .expect("file name")
        .to_owned();
    server.kill();
    let parts_at_kill = part_files(&server);
    eprintln!("killed while running; work files at the kill: {parts_at_kill:?}");

    let restarted = Instant::now();
    server.restart();
    let done = wait_job(
        &server,
        &c,
        &id,
        EXPORT_TIMEOUT,
        "the interrupted job to succeed",
        state_is("succeeded"),
    )
    .await;
    eprintln!("succeeded {:?} after the restart", restarted.elapsed());
    assert_eq!(done["recordCount"], BIG, "{done}");
    assert_eq!(done["fileCount"], 4, "{done}");

    let stored = stored_files(&server);
    let zips: Vec<&PathBuf> = stored
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".zip"))
        .collect();
    assert_eq!(
        zips.len(),
        1,
        "exactly one zip in the file store: {stored:?}"
    );
    assert!(zips[0].ends_with(&name), "{zips:?} is not {name}");
    assert_eq!(
        stored.len(),
        1,
        "nothing else in the file store (an interrupted upload's leftovers?): {stored:?}"
    );

    // The callback first: a download would supersede a callback not yet delivered.
    let delivered = receiver.wait_for_delivered(1, LONG).await;
    check_callback(&delivered[0], &app, &id, &name);

    let rows = download_rows(&server, &c, &name).await;
    assert_eq!(rows.len() as u64, BIG, "rows in the zip");
    let ids: HashSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids.len() as u64, BIG, "every record exactly once");
    assert!(
        (0..BIG).all(|i| ids.contains(format!("r{i:08}").as_str())),
        "every imported record"
    );

    // The work file of the killed attempt is gone (the new attempt wrote over it, or a sweep
    // at worker start removed it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !part_files(&server).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        part_files(&server),
        Vec::<PathBuf>::new(),
        "work files left after the job succeeded (at the kill there were {parts_at_kill:?})"
    );
}

/// The first bytes of a finished file: it is downloadable, without superseding its callback
/// (only a download that reaches the end of the file does).
async fn assert_head_downloadable(c: &Client, name: &str, what: &str) {
    let r = c.download(name, Some("bytes=0-9")).await;
    assert_eq!(
        r.status,
        StatusCode::PARTIAL_CONTENT,
        "{what}: {}",
        r.text()
    );
    assert_eq!(&r.body[..4], b"PK\x03\x04", "{what}: a zip");
}

/// A callback that keeps failing survives a SIGKILL: its attempts are kept, retries go on
/// after the restart, each freshly signed, and it is delivered once the receiver recovers. The
/// file stays downloadable all along; it is downloaded whole only at the end, since a whole
/// download by its owner stops (supersedes) the callback, which the `export` tests check.
#[tokio::test]
async fn killed_while_the_callback_is_failing() {
    let config = ConfigFile::new(1);
    let mut server = start(&config, "2");
    let receiver = Receiver::start().await;
    receiver.set_failing(true);
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let expected = import_small(&server, &app, 12).await;

    let id = c.generate(generate_body(&receiver)).await;
    let done = wait_job(
        &server,
        &c,
        &id,
        LONG,
        "the job to succeed",
        state_is("succeeded"),
    )
    .await;
    let name = done["agentOprInfoFileName"]
        .as_str()
        .expect("file name")
        .to_owned();
    assert_head_downloadable(&c, &name, "while the callback fails").await;
    let failing = wait_job(
        &server,
        &c,
        &id,
        LONG,
        "two failed callback attempts",
        |d| {
            d["callback"]["state"] == "pending"
                && d["callback"]["attempts"].as_u64().unwrap_or(0) >= 2
        },
    )
    .await;
    let attempts_before = failing["callback"]["attempts"].as_u64().expect("attempts");
    assert!(
        failing["callback"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "the last error names the receiver's answer: {failing}"
    );

    server.kill();
    server.restart();

    let after = job_status(&server, &c, &id).await;
    assert_eq!(after["state"], "succeeded", "{after}");
    assert_eq!(after["callback"]["state"], "pending", "{after}");
    assert!(
        after["callback"]["attempts"].as_u64().unwrap_or(0) >= attempts_before,
        "the attempts survive the restart: {attempts_before} before, now {after}"
    );
    assert_head_downloadable(&c, &name, "after the restart").await;
    // Retries go on after the restart.
    wait_job(
        &server,
        &c,
        &id,
        LONG,
        "a callback attempt after the restart",
        |d| d["callback"]["attempts"].as_u64().unwrap_or(0) > attempts_before,
    )
    .await;

    receiver.set_failing(false);
    let delivered = receiver.wait_for_delivered(1, LONG).await;
    check_callback(&delivered[0], &app, &id, &name);
    let status = wait_job(
        &server,
        &c,
        &id,
        LONG,
        "the callback to show delivered",
        |d| d["callback"]["state"] == "delivered",
    )
    .await;
    let attempts = status["callback"]["attempts"].as_u64().unwrap_or(0);
    assert!(attempts > attempts_before, "{status}");

    // Every attempt, failed or not, was signed validly, and signed anew.
    let all = receiver.received();
    assert!(
        all.len() as u64 > attempts_before,
        "{} requests received",
        all.len()
    );
    for cb in &all {
        check_callback(cb, &app, &id, &name);
    }
    let signatures: HashSet<&str> = all
        .iter()
        .filter_map(|cb| cb.header("authorization"))
        .collect();
    assert_eq!(
        signatures.len(),
        all.len(),
        "each attempt has its own signature"
    );

    assert_eq!(
        download_rows(&server, &c, &name).await,
        expected,
        "download after delivery"
    );
}

/// SIGTERM while a job runs gives the job back to the queue (no waiting for the lease, which
/// here is 10 minutes) and deletes its work file; the restarted server finishes it promptly.
#[tokio::test]
async fn a_clean_stop_releases_the_running_job() {
    let config = ConfigFile::new(1);
    let mut server = start(&config, "600");
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let scratch = tempfile::tempdir().expect("temp dir");
    server.import_records(scratch.path(), &app.app_id, BIG);

    let id = c.generate(generate_body(&receiver)).await;
    let running = wait_running(&server, &c, &id).await;
    let name = running["agentOprInfoFileName"]
        .as_str()
        .expect("file name")
        .to_owned();

    let exit = server.terminate();
    assert!(
        exit.success(),
        "ccfs serve exit status after SIGTERM: {exit}\n{}",
        log_tail(&server)
    );
    assert_eq!(
        part_files(&server),
        Vec::<PathBuf>::new(),
        "the interrupted export's work file is deleted"
    );

    let restarted = Instant::now();
    server.restart();
    // Well under the 600 s lease: only a released job can be finished in time.
    let done = wait_job(
        &server,
        &c,
        &id,
        EXPORT_TIMEOUT,
        "the released job to succeed",
        state_is("succeeded"),
    )
    .await;
    eprintln!("succeeded {:?} after the restart", restarted.elapsed());
    assert_eq!(done["recordCount"], BIG, "{done}");
    let stored = stored_files(&server);
    assert_eq!(
        stored.len(),
        1,
        "exactly one file in the file store: {stored:?}"
    );
    assert!(stored[0].ends_with(&name), "{stored:?} is not {name}");
    let delivered = receiver.wait_for_delivered(1, LONG).await;
    check_callback(&delivered[0], &app, &id, &name);
}
