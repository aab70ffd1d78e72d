//! End-to-end tests of the operator's commands (`ccfs jobs …`, `ccfs app delete`) against the
//! data directory of a real `ccfs serve` that runs meanwhile: what each command prints, and
//! what the server then does and answers over signed HTTPS (status, download, callbacks).

use serde_json::{json, Value};

use crate::harness::*;

/// The generate window every test uses; all records lie inside it.
fn window(receiver: &Receiver) -> Value {
    json!({
        "beginTime": "2024-05-01 00:00:00",
        "endTime": "2024-05-02 00:00:00",
        "callBackURL": receiver.url("/ccfs/cb"),
    })
}

/// Runs `ccfs ARGS…` on the server's data directory; it must succeed and print one JSON value.
fn ccfs_json(server: &TestServer, args: &[&str]) -> Value {
    let out = server.ccfs(args);
    assert!(
        out.status.success(),
        "ccfs {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ccfs {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs `ccfs ARGS…`, which must fail with status 1; returns (stdout, stderr).
fn ccfs_fails(server: &TestServer, args: &[&str]) -> (String, String) {
    let out = server.ccfs(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "ccfs {args:?} should fail: {stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// The response ids of a `jobs list --json` answer, in its order.
fn listed(server: &TestServer, args: &[&str]) -> Vec<String> {
    let mut all = vec!["jobs", "list", "--json"];
    all.extend_from_slice(args);
    ccfs_json(server, &all)
        .as_array()
        .unwrap_or_else(|| panic!("jobs list {args:?}: not an array"))
        .iter()
        .map(|j| j["responseId"].as_str().expect("responseId").to_owned())
        .collect()
}

/// The status interface's `resultData` of a job (which must exist).
async fn status(c: &Client, id: &str) -> Value {
    let (code, v) = c.status(id).await;
    assert_eq!(code, StatusCode::OK, "status {id}: {v}");
    success_data(&v).clone()
}

/// The last lines of the server's output, for panic messages.
fn log_tail(server: &TestServer) -> String {
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Every file in the file store (and its unfinished uploads) whose name holds `id`.
fn stored_of(server: &TestServer, id: &str) -> Vec<std::path::PathBuf> {
    files_under(&server.files_dir())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(id))
        .collect()
}

/// Listing, with every filter, on jobs no worker takes (so their states are the test's): three
/// queued, one of them cancelled by the command; and `jobs show` answers what the status
/// interface answers, plus what only an operator sees.
#[tokio::test]
async fn admin_jobs_list_filters_and_show() {
    let server = TestServer::start(&[("CCFS_EXPORT_WORKERS", "0")]);
    let receiver = Receiver::start().await;
    let a = server.create_app(&AppSpec {
        timezone: Some("Asia/Shanghai"),
        accounts: &["acme01"],
        ..AppSpec::default()
    });
    let b = server.create_app(&AppSpec::default());
    let (ca, cb) = (server.client(&a), server.client(&b));
    let mut body = window(&receiver);
    body["accountId"] = json!("acme01");
    let a1 = ca.generate(body).await;
    let a2 = ca.generate(window(&receiver)).await;
    let b1 = cb.generate(window(&receiver)).await;

    let cancelled = ccfs_json(&server, &["jobs", "cancel", &a1]);
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");

    assert_eq!(
        listed(&server, &[]),
        [b1.as_str(), &a2, &a1],
        "newest first"
    );
    assert_eq!(listed(&server, &["--limit", "2"]), [b1.as_str(), &a2]);
    assert_eq!(listed(&server, &["--app", &a.app_id]), [a2.as_str(), &a1]);
    assert_eq!(listed(&server, &["--state", "queued"]), [b1.as_str(), &a2]);
    assert_eq!(listed(&server, &["--state", "cancelled"]), [a1.as_str()]);
    assert!(listed(&server, &["--state", "running"]).is_empty());
    assert_eq!(
        listed(&server, &["--app", &a.app_id, "--state", "queued"]),
        [a2.as_str()]
    );
    assert_eq!(listed(&server, &["--since", "1h"]).len(), 3);
    assert!(listed(&server, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    // Values that cannot be are usage errors, named.
    for (args, says) in [
        (["--app", "no such app!"], "not a valid app id"),
        (["--since", "yesterday"], "RFC 3339"),
        (["--state", "done"], "possible values"),
    ] {
        let out = server.ccfs(&[&["jobs", "list"][..], &args].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }

    // The table: a header, then a line per job.
    let out = server.ccfs(&["jobs", "list"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    for column in [
        "RESPONSE ID",
        "APP ID",
        "STATE",
        "CREATED",
        "RECORDS",
        "CALLBACK",
    ] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(
        lines[1].starts_with(&b1) && lines[1].contains("queued"),
        "{table}"
    );
    assert!(
        lines[3].starts_with(&a1) && lines[3].contains("cancelled"),
        "{table}"
    );

    // `show`: the status interface's answer, and the operator's part besides.
    let shown = ccfs_json(&server, &["jobs", "show", &a1]);
    let answered = status(&ca, &a1).await;
    for (k, v) in answered.as_object().expect("status object") {
        assert_eq!(&shown[k], v, "{k}: jobs show {shown}\nstatus {answered}");
    }
    assert_eq!(answered["state"], "cancelled");
    assert_eq!(
        answered["error"],
        "The export was cancelled by an operator."
    );
    assert_eq!(shown["developerId"], a.app_id.as_str());
    assert_eq!(
        shown["query"],
        json!({
            "beginTime": "2024-05-01 00:00:00",
            "endTime": "2024-05-02 00:00:00",
            "timezone": "Asia/Shanghai",
            "begin": "2024-04-30T16:00:00Z",
            "end": "2024-05-01T16:00:00Z",
            "accountId": "acme01",
        })
    );
    assert_eq!(shown["callbackUrl"], receiver.url("/ccfs/cb"));
    let (_, err) = ccfs_fails(
        &server,
        &["jobs", "show", "0123456789abcdef0123456789abcdef"],
    );
    assert!(
        err.contains("no job with response id 0123456789abcdef0123456789abcdef"),
        "{err}"
    );
}

/// A running export cancelled from the command line, while its server is frozen in the middle
/// of it (so the job is certainly running when the cancel lands): once the server goes on, its
/// worker finds its lease taken, stops and deletes its upload. The job answers `cancelled`,
/// nothing of it is in the file store, its download answers 0300011, and no callback of it ever
/// reaches the receiver (the next job's does).
#[tokio::test]
async fn admin_cancel_a_running_export() {
    const RECORDS: u64 = 300_000;
    let server = TestServer::start(&[
        ("CCFS_EXPORT_WORKERS", "1"),
        // Renewed every second.
        ("CCFS_JOB_LEASE_SECS", "3"),
    ]);
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let scratch = tempfile::tempdir().expect("temp dir");
    server.import_records(scratch.path(), &app.app_id, RECORDS);

    let id = c.generate(window(&receiver)).await;
    let running = wait_some(LONG, "the export to start", || async {
        let s = status(&c, &id).await;
        (s["state"] != "queued").then_some(s)
    })
    .await;
    server.pause();
    assert_eq!(
        running["state"], "running",
        "the export ended before the test could cancel it (use more records): {running}"
    );
    let name = running["agentOprInfoFileName"]
        .as_str()
        .expect("file name")
        .to_owned();

    let cancelled = server.ccfs(&["jobs", "cancel", &id]);
    server.resume();
    assert!(
        cancelled.status.success(),
        "jobs cancel: {}",
        String::from_utf8_lossy(&cancelled.stderr)
    );
    let shown: Value = serde_json::from_slice(&cancelled.stdout).expect("JSON");
    assert_eq!(shown["state"], "cancelled", "{shown}");

    wait_until(LONG, || async {
        server
            .log()
            .contains("export job cancelled by an operator; stopped, its upload deleted")
    })
    .await;
    // The worker counts how its attempt ended.
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.lines().any(|l| l.starts_with("ccfs_exports_total{")
            && l.contains("outcome=\"cancelled\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );
    let done = status(&c, &id).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!(done["error"], "The export was cancelled by an operator.");
    assert_eq!(done.get("callback"), None, "{done}");
    assert_eq!(done.get("sha256"), None, "{done}");
    assert_eq!(
        stored_of(&server, &id),
        Vec::<std::path::PathBuf>::new(),
        "nothing of the cancelled job in the file store\n{}",
        log_tail(&server)
    );
    let r = c.download(&name, None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::OK,
            error_envelope("0300011", "The file does not exist.")
        )
    );

    // The worker is free again: the next job runs, and its callback is the only one.
    let other = server.create_app(&AppSpec::default());
    let next = server.client(&other).generate(window(&receiver)).await;
    let got = receiver.wait_for_delivered(1, LONG).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["msgBody"]["responseId"], next.as_str());
    assert!(
        receiver
            .received()
            .iter()
            .all(|cb| cb.json()["msgBody"]["responseId"] != id.as_str()),
        "a callback of the cancelled job"
    );

    // Once ended, a job cannot be cancelled again; the command says what it is. Run on a
    // cancelled job, it deletes again what of it is still stored (here: an upload of its
    // attempt as a failed deletion would have left it).
    let leftover = server.files_dir().join(format!("exports/a1/{name}"));
    std::fs::create_dir_all(leftover.parent().expect("a directory")).expect("mkdir");
    std::fs::write(&leftover, b"PK\x03\x04").expect("write");
    let (_, err) = ccfs_fails(&server, &["jobs", "cancel", &id]);
    assert!(
        err.contains(&format!(
            "job {id} is cancelled already: only a queued or running job can be cancelled"
        )),
        "{err}"
    );
    assert!(!leftover.exists(), "the leftover upload is deleted");
    let (_, err) = ccfs_fails(&server, &["jobs", "cancel", &next]);
    assert!(err.contains("is succeeded already"), "{err}");
}

/// A callback whose receiver fails until it gives up, queued again from the command line while
/// the server runs: the server attempts it again (within its outbox look) and it arrives. Only
/// a callback that gave up is queued again.
#[tokio::test]
async fn admin_retry_callback_after_it_gave_up() {
    let server = TestServer::start(&[
        ("CCFS_CALLBACK_INITIAL_BACKOFF_SECS", "1"),
        ("CCFS_CALLBACK_MAX_BACKOFF_SECS", "1"),
        ("CCFS_CALLBACK_GIVE_UP_SECS", "2"),
        ("CCFS_CALLBACK_TIMEOUT_SECS", "2"),
    ]);
    let receiver = Receiver::start().await;
    receiver.set_failing(true);
    let app = server.app_with_one_record().await;
    let c = server.client(&app);
    let id = c.generate(window(&receiver)).await;
    c.wait_state(&id, "succeeded", LONG).await;

    // Still being retried: refused.
    let pending = status(&c, &id).await;
    if pending["callback"]["state"] == "pending" {
        let (_, err) = ccfs_fails(&server, &["jobs", "retry-callback", &id]);
        assert!(err.contains("is pending"), "{err}");
    }
    let gave_up = wait_some(LONG, "the callback to give up", || async {
        let s = status(&c, &id).await;
        (s["callback"]["state"] == "failed").then_some(s)
    })
    .await;
    let attempts = gave_up["callback"]["attempts"].as_u64().expect("attempts");
    assert!(attempts >= 2, "{gave_up}");
    assert_eq!(receiver.received().len() as u64, attempts);
    assert!(receiver.delivered().is_empty());

    receiver.set_failing(false);
    let queued = ccfs_json(&server, &["jobs", "retry-callback", &id]);
    // Unless the server attempted it already (it may, at once), it shows as queued anew.
    if queued["callback"]["state"] == "pending" {
        assert!(queued["callback"]["nextAttemptAt"].is_string(), "{queued}");
    }
    let delivered = receiver.wait_for_delivered(1, LONG).await;
    assert_eq!(delivered[0].json()["msgBody"]["responseId"], id.as_str());
    let done = wait_some(LONG, "the callback delivered", || async {
        let s = status(&c, &id).await;
        (s["callback"]["state"] == "delivered").then_some(s)
    })
    .await;
    assert_eq!(done["callback"]["attempts"], 1, "counted anew: {done}");

    let (_, err) = ccfs_fails(&server, &["jobs", "retry-callback", &id]);
    assert!(
        err.contains(&format!("the callback of job {id} is delivered")),
        "{err}"
    );
}

/// `app delete`: refused while the developer has a job in progress (naming it, suggesting
/// `jobs cancel`); without `--yes` it says what would go and changes nothing; with `--yes` the
/// developer, its jobs, records and files are gone. What belongs to others stays: records are
/// their owners' (`developer_id`), not the ingest app's that imported them.
#[tokio::test]
async fn admin_app_delete() {
    let config = ConfigFile::new(1);
    let mut server = TestServer::start(&[("CCFS_CONFIG", config.path())]);
    let receiver = Receiver::start().await;
    let name = |name| AppSpec {
        name,
        ..AppSpec::default()
    };
    let a = server.create_app(&name("A"));
    let b = server.create_app(&name("B"));
    let cti = server.create_app(&AppSpec {
        name: "CTI",
        roles: &["ingest"],
        ..AppSpec::default()
    });
    let at = |t: &str| format!("2024-05-01 {t}");
    let records = [
        record("x1", &a.app_id, &at("10:00:00"), &at("10:01:00")),
        record("y1", &b.app_id, &at("11:00:00"), &at("11:01:00")),
        record("y2", &b.app_id, &at("12:00:00"), &at("12:01:00")),
    ];
    assert_eq!(server.client(&cti).import_ok(&records).await, (3, 0));
    let (ca, cb) = (server.client(&a), server.client(&b));
    let done = ca.generate(window(&receiver)).await;
    ca.wait_state(&done, "succeeded", LONG).await;
    assert!(!stored_of(&server, &done).is_empty(), "A's file is stored");

    // A job of A that no worker takes: the deletion is refused, with or without --yes.
    config.set_workers(0);
    server.restart();
    let queued = ca.generate(window(&receiver)).await;
    for yes in [false, true] {
        let mut args = vec!["app", "delete", a.app_id.as_str()];
        if yes {
            args.push("--yes");
        }
        let (_, err) = ccfs_fails(&server, &args);
        assert!(
            err.contains(&format!("has 1 job queued or running ({queued} queued)"))
                && err.contains("ccfs jobs cancel")
                && err.contains("nothing was deleted"),
            "{err}"
        );
    }
    ccfs_json(&server, &["jobs", "cancel", &queued]);

    // Without --yes: what would go, and nothing goes.
    let (plan, err) = ccfs_fails(&server, &["app", "delete", &a.app_id]);
    assert!(err.contains("run again with --yes"), "{err}");
    for line in [
        format!("the developer {} (A)", a.app_id),
        format!("1 record it owns (developer_id {})", a.app_id),
        "2 jobs, with 1 callback and 2 idempotency keys".to_owned(),
        "the files of 1 finished export".to_owned(),
        "It keeps the records it imported for other developers".to_owned(),
    ] {
        assert!(plan.contains(&line), "no {line:?} in:\n{plan}");
    }
    assert_eq!(status(&ca, &done).await["state"], "succeeded");
    assert!(!stored_of(&server, &done).is_empty());

    let deleted = ccfs_json(&server, &["app", "delete", &a.app_id, "--yes"]);
    assert_eq!(
        deleted,
        json!({
            "appId": a.app_id,
            "jobs": 2,
            "callbacks": 1,
            "idempotencyKeys": 2,
            "records": 1,
            "files": 1,
        })
    );
    assert_eq!(stored_of(&server, &done), Vec::<std::path::PathBuf>::new());
    let (_, err) = ccfs_fails(&server, &["app", "show", &a.app_id]);
    assert!(err.contains("no developer with app id"), "{err}");
    assert!(listed(&server, &["--app", &a.app_id]).is_empty());
    let (code, v) = ca.status(&done).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "A's key is gone: {v}");

    // The ingest app owns none of the records it imported: deleting it deletes none.
    let deleted = ccfs_json(&server, &["app", "delete", &cti.app_id, "--yes"]);
    assert_eq!(deleted["records"], 0, "{deleted}");

    // B keeps its records: its export holds both.
    config.set_workers(1);
    server.restart();
    let export = cb.generate(window(&receiver)).await;
    let file = cb.wait_state(&export, "succeeded", LONG).await["agentOprInfoFileName"]
        .as_str()
        .expect("file name")
        .to_owned();
    let r = cb.download(&file, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let ids: Vec<String> = unzip(&r.body)
        .iter()
        .flat_map(|(_, data)| csv_rows(data))
        .map(|row| row[0].clone())
        .collect();
    assert_eq!(ids, ["y1", "y2"]);
}
