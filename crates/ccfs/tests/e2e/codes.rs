//! End-to-end result codes (SPEC section 7) of generate, download, status and import against
//! the real `ccfs serve`: each code triggered, the exact envelope asserted (HTTP status,
//! resultCode, resultDesc, resultData "", the legacy `response` copy), and the order in which
//! the checks run.

use crate::harness::*;
use serde_json::{json, Value};

const VALID_BEGIN: &str = "2024-05-01 00:00:00";
const VALID_END: &str = "2024-05-02 00:00:00";
const CB: &str = "https://example.com/ccfs/cb";

const NO_BODY: &str = "The params of requestBody is null.";
const BAD_VERSION: &str = "The value of version is error, current version is 2.0 .";
const NOT_FOUND: &str = "The file does not exist.";

fn null(p: &str) -> String {
    format!("The value of {p} cannot be null.")
}
fn empty(p: &str) -> String {
    format!("The value of {p} cannot be an empty string.")
}
fn too_long(p: &str) -> String {
    format!("The length of {p} is too long.")
}
fn bad_format(p: &str) -> String {
    format!("The format of {p} is incorrect.")
}

/// A valid generate `msgBody` with `changes` applied (`null` values are set, not removed; use
/// [`without`] to remove a member).
fn gen(changes: Value) -> Value {
    let mut v = json!({"beginTime": VALID_BEGIN, "endTime": VALID_END, "callBackURL": CB});
    for (k, x) in changes.as_object().expect("object") {
        v[k] = x.clone();
    }
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().expect("object").remove(key);
    v
}

/// Sends a raw body and returns (status, JSON answer).
async fn raw(client: &Client, path: &str, body: &[u8]) -> (StatusCode, Value) {
    let r = client.post_raw(path, body, &Opts::new()).await;
    (r.status, r.json())
}

/// Asserts `0300401` with `http` status: the envelope exact except the reason text.
#[track_caller]
fn assert_auth_error(got: &(StatusCode, Value), http: StatusCode) {
    let (status, v) = got;
    assert_eq!(*status, http, "{v}");
    let desc = v["resultDesc"]
        .as_str()
        .unwrap_or_else(|| panic!("no resultDesc: {v}"));
    assert!(
        desc.starts_with("Authentication failed: ") && desc.ends_with('.'),
        "{desc}"
    );
    assert_eq!(*v, error_envelope("0300401", desc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_checks_run_in_the_spec_order() {
    let server = TestServer::start(&[]);
    let a = server.create_app(&AppSpec {
        name: "A",
        accounts: &["acc-1"],
        ..Default::default()
    });
    let b = server.create_app(&AppSpec {
        name: "B",
        accounts: &["acc-b"],
        ..Default::default()
    });
    let c = server.client(&a);
    let ok = StatusCode::OK;

    // 0300007: not JSON, no msgBody, msgBody not an object — even with a bad version.
    for body in [
        &b"not json"[..],
        b"",
        b"[]",
        b"null",
        br#"{"request":{"version":"1.0"}}"#,
        br#"{"request":{"version":"1.0"},"msgBody":"x"}"#,
        br#"{"request":{"version":"2.0"},"msgBody":null}"#,
        br#"{"request":{"version":"2.0"},"msgBody":[1]}"#,
        br#"{"request":{"version":"1.0"},"msgBody":{"beginTime":"#,
    ] {
        let got = raw(&c, GENERATE, body).await;
        assert_eq!(
            got.1,
            error_envelope("0300007", NO_BODY),
            "body {:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(got.0, ok);
    }
    // 0300006: the version, before any field (the msgBody here misses every field).
    for body in [
        r#"{"request":{"version":"1.0"},"msgBody":{}}"#,
        r#"{"msgBody":{}}"#,
        r#"{"request":{},"msgBody":{}}"#,
        r#"{"request":{"version":2.0},"msgBody":{}}"#,
        r#"{"request":{"version":"2.0 "},"msgBody":{}}"#,
    ] {
        let got = raw(&c, GENERATE, body.as_bytes()).await;
        assert_eq!(got.1, error_envelope("0300006", BAD_VERSION), "body {body}");
        assert_eq!(got.0, ok);
    }
    let body = serde_json::to_vec(&json!({"request":{"version":"1.0"},"msgBody": gen(json!({}))}))
        .unwrap();
    assert_error(&raw(&c, GENERATE, &body).await, ok, "0300006", BAD_VERSION);

    let cases: Vec<(Value, &str, String)> = vec![
        // 0300001: missing or null; a missing field beats an empty one elsewhere.
        (json!({}), "0300001", null("beginTime")),
        (
            gen(json!({"beginTime": null})),
            "0300001",
            null("beginTime"),
        ),
        (
            without(gen(json!({"beginTime": ""})), "endTime"),
            "0300001",
            null("endTime"),
        ),
        (
            without(gen(json!({"accountId": "", "agentId": ""})), "callBackURL"),
            "0300001",
            null("callBackURL"),
        ),
        // 0300002: empty; beats too long elsewhere.
        (
            gen(json!({"beginTime": "x".repeat(40), "endTime": ""})),
            "0300002",
            empty("endTime"),
        ),
        (
            gen(json!({"accountId": "", "agentId": "9".repeat(21)})),
            "0300002",
            empty("accountId"),
        ),
        (gen(json!({"agentId": ""})), "0300002", empty("agentId")),
        (
            gen(json!({"callBackURL": "", "beginTime": "bad"})),
            "0300002",
            empty("callBackURL"),
        ),
        // 0300003: too long; beats a bad format elsewhere.
        (
            gen(json!({"beginTime": "bad", "agentId": "9".repeat(21)})),
            "0300003",
            too_long("agentId"),
        ),
        (
            gen(json!({"accountId": "a".repeat(21)})),
            "0300003",
            too_long("accountId"),
        ),
        (
            gen(json!({"beginTime": "2024-05-01 00:00:000"})),
            "0300003",
            too_long("beginTime"),
        ),
        (
            gen(
                json!({"endTime": "bad", "callBackURL": format!("https://example.com/{}", "c".repeat(1010))}),
            ),
            "0300003",
            too_long("callBackURL"),
        ),
        // 0300004: bad format; beats begin > end.
        (
            gen(json!({"beginTime": "2024-05-03 00:00:00", "endTime": "2024/05/01 00:00"})),
            "0300004",
            bad_format("endTime"),
        ),
        (
            gen(json!({"beginTime": "2024-05-03 00:00:00", "callBackURL": "ftp://example.com/cb"})),
            "0300004",
            bad_format("callBackURL"),
        ),
        (
            gen(json!({"beginTime": "2024-02-30 00:00:00"})),
            "0300004",
            bad_format("beginTime"),
        ),
        (
            gen(json!({"beginTime": "2024-05-01T00:00:00"})),
            "0300004",
            bad_format("beginTime"),
        ),
        (
            gen(json!({"beginTime": 20240501})),
            "0300004",
            bad_format("beginTime"),
        ),
        (
            gen(json!({"callBackURL": "example.com/cb"})),
            "0300004",
            bad_format("callBackURL"),
        ),
        (
            gen(json!({"callBackURL": "/ccfs/cb"})),
            "0300004",
            bad_format("callBackURL"),
        ),
        // 0300013: begin after end; beats the span and the account.
        (
            gen(json!({"beginTime": "2024-05-02 00:00:01", "accountId": "not-mine"})),
            "0300013",
            "The beginTime cannot be later than the endTime.".into(),
        ),
        // 0300014: over 3 days; beats the account.
        (
            gen(json!({"endTime": "2024-05-04 00:00:01"})),
            "0300014",
            "The time span between beginTime and endTime exceeds 3 days.".into(),
        ),
        (
            gen(json!({"beginTime": "2024-04-01 00:00:00", "accountId": "not-mine"})),
            "0300014",
            "The time span between beginTime and endTime exceeds 3 days.".into(),
        ),
        // 0300015: an account the developer does not own (unknown, or another developer's).
        (
            gen(json!({"accountId": "not-mine"})),
            "0300015",
            "The accountId does not belong to the developer.".into(),
        ),
        (
            gen(json!({"accountId": "acc-b"})),
            "0300015",
            "The accountId does not belong to the developer.".into(),
        ),
    ];
    for (msg, code, desc) in &cases {
        let got = c.call(GENERATE, msg.clone()).await;
        assert_eq!(got.1, error_envelope(code, desc), "msgBody {msg}");
        assert_eq!(got.0, ok, "msgBody {msg}");
    }

    // Unknown members of the envelope are ignored.
    let body = serde_json::to_vec(
        &json!({"request":{"version":"2.0","client":"x"},"msgBody": gen(json!({})),"extra":[1]}),
    )
    .unwrap();
    let got = raw(&c, GENERATE, &body).await;
    assert_eq!(
        success_data(&got.1)["responseId"].as_str().map(str::len),
        Some(32),
        "{}",
        got.1
    );

    // Exactly 3 days, owned account, unknown members ignored: accepted.
    let data = c
        .call(GENERATE, gen(json!({"endTime": "2024-05-04 00:00:00", "accountId": "acc-1", "agentId": "1001", "extra": {"x": 1}})))
        .await;
    assert_eq!(data.0, ok);
    assert_eq!(
        success_data(&data.1)["responseId"].as_str().map(str::len),
        Some(32),
        "{}",
        data.1
    );
    // Lengths are in characters, not bytes; a callBackURL of exactly 1024 is fine.
    let url_1024 = format!("https://example.com/{}", "c".repeat(1004));
    assert_eq!(url_1024.len(), 1024);
    for msg in [
        gen(json!({"agentId": "电".repeat(20)})),
        gen(json!({"callBackURL": url_1024})),
    ] {
        let got = c.call(GENERATE, msg.clone()).await;
        assert_eq!(got.1["resultCode"], "0", "msgBody {msg}: {}", got.1);
    }
    let got = c
        .call(GENERATE, gen(json!({"agentId": "电".repeat(21)})))
        .await;
    assert_error(&got, ok, "0300003", &too_long("agentId"));
    // B owns acc-b.
    let got = server
        .client(&b)
        .call(GENERATE, gen(json!({"accountId": "acc-b"})))
        .await;
    assert_eq!(
        success_data(&got.1)["responseId"].as_str().map(str::len),
        Some(32)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_flow_control_and_unfinished_files() {
    let server = TestServer::start(&[
        ("CCFS_EXPORT_WORKERS", "0"),
        ("CCFS_MAX_ACTIVE_JOBS", "2"),
        ("CCFS_MAX_SPAN_SECS", "129600"),
    ]);
    let a = server.create_app(&AppSpec {
        name: "A",
        ..Default::default()
    });
    let b = server.create_app(&AppSpec {
        name: "B",
        ..Default::default()
    });
    let c = server.client(&a);
    // The span limit is configurable, and its message says which.
    let got = c
        .call(GENERATE, gen(json!({"endTime": "2024-05-02 12:00:01"})))
        .await;
    assert_error(
        &got,
        StatusCode::OK,
        "0300014",
        "The time span between beginTime and endTime exceeds 36 hours.",
    );
    let day_before = today_in("UTC");
    let first = c.generate(gen(json!({}))).await;
    let day_after = today_in("UTC");
    let second = c.generate(gen(json!({"agentId": "1"}))).await;
    assert_ne!(first, second);
    let third = c.call(GENERATE, gen(json!({"agentId": "2"}))).await;
    assert_error(
        &third,
        StatusCode::OK,
        "0300009",
        "Reached the query flow control threshold.",
    );
    // The limit is per developer.
    server.client(&b).generate(gen(json!({}))).await;

    // Nothing runs the jobs: they stay queued, and their files do not exist yet.
    let (status, v) = c.status(&first).await;
    assert_eq!(status, StatusCode::OK);
    let st = success_data(&v);
    assert_eq!(st["state"], "queued", "{st}");
    assert_eq!(st["responseId"], first);
    let name = st["agentOprInfoFileName"]
        .as_str()
        .expect("file name")
        .to_owned();
    assert!(
        name == format!("{day_before}_{first}.zip") || name == format!("{day_after}_{first}.zip"),
        "zip name {name} (default time zone UTC)"
    );
    let r = c.download(&name, None).await;
    assert_error(&(r.status, r.json()), StatusCode::OK, "0300011", NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_and_status_codes_and_ownership() {
    let server = TestServer::start(&[]);
    let a = server.create_app(&AppSpec {
        name: "A",
        ..Default::default()
    });
    let b = server.create_app(&AppSpec {
        name: "B",
        ..Default::default()
    });
    let ca = server.client(&a);
    let cb = server.client(&b);
    let ok = StatusCode::OK;
    let name_field = "agentOprInfoFileName";

    // Download: envelope, then the name rules.
    assert_error(&raw(&ca, DOWNLOAD, b"{").await, ok, "0300007", NO_BODY);
    assert_error(
        &raw(
            &ca,
            DOWNLOAD,
            br#"{"request":{"version":"1"},"msgBody":{}}"#,
        )
        .await,
        ok,
        "0300006",
        BAD_VERSION,
    );
    let hex32 = "0123456789abcdef0123456789abcdef";
    let cases: Vec<(Value, &str, String)> = vec![
        (json!({}), "0300001", null(name_field)),
        (json!({name_field: null}), "0300001", null(name_field)),
        (json!({name_field: ""}), "0300002", empty(name_field)),
        (
            json!({name_field: "a".repeat(50)}),
            "0300003",
            too_long(name_field),
        ),
        (
            json!({name_field: format!("../../files/exports/20240501_{hex32}.zip")}),
            "0300003",
            too_long(name_field),
        ),
        (
            json!({name_field: "../../../../../../etc/passwd"}),
            "0300004",
            bad_format(name_field),
        ),
        (
            json!({name_field: format!("/20240501_{hex32}.zip")}),
            "0300004",
            bad_format(name_field),
        ),
        (
            json!({name_field: format!("20240501_{}.zip", hex32.to_uppercase())}),
            "0300004",
            bad_format(name_field),
        ),
        (
            json!({name_field: format!("20240501_{hex32}.csv")}),
            "0300004",
            bad_format(name_field),
        ),
        (
            json!({name_field: format!("2024051_{hex32}.zip")}),
            "0300004",
            bad_format(name_field),
        ),
        (json!({name_field: 42}), "0300004", bad_format(name_field)),
        (
            json!({name_field: format!("20240501_{hex32}.zip")}),
            "0300011",
            NOT_FOUND.into(),
        ),
    ];
    for (msg, code, desc) in &cases {
        let r = ca
            .post_raw(DOWNLOAD, &envelope_bytes(msg.clone()), &Opts::new())
            .await;
        assert_eq!(r.json(), error_envelope(code, desc), "msgBody {msg}");
        assert_eq!(r.status, ok, "msgBody {msg}");
        // Clients tell an error from a file by the Content-Type.
        let ct = r
            .header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            ct.starts_with("application/json"),
            "Content-Type of a download error: {ct}"
        );
    }

    // Status: the same rules for responseId.
    let cases: Vec<(Value, &str, String)> = vec![
        (json!({}), "0300001", null("responseId")),
        (json!({"responseId": ""}), "0300002", empty("responseId")),
        (
            json!({"responseId": format!("{hex32}0")}),
            "0300003",
            too_long("responseId"),
        ),
        (
            json!({"responseId": hex32.to_uppercase()}),
            "0300004",
            bad_format("responseId"),
        ),
        (
            json!({"responseId": "../../../etc/passwd"}),
            "0300004",
            bad_format("responseId"),
        ),
        (json!({"responseId": hex32}), "0300011", NOT_FOUND.into()),
    ];
    for (msg, code, desc) in &cases {
        let got = ca.call(STATUS, msg.clone()).await;
        assert_eq!(got.1, error_envelope(code, desc), "msgBody {msg}");
        assert_eq!(got.0, ok, "msgBody {msg}");
    }
    assert_error(
        &raw(&ca, STATUS, br#"{"request":{"version":"2.0"}}"#).await,
        ok,
        "0300007",
        NO_BODY,
    );

    // Content-Type spellings the SPEC accepts.
    for ct in [
        "application/json",
        "application/json; charset=UTF-8",
        "APPLICATION/JSON;CHARSET=utf-8",
        "Application/Json",
    ] {
        let r = ca
            .post_raw(
                STATUS,
                &envelope_bytes(json!({"responseId": hex32})),
                &Opts::new().content_type(ct),
            )
            .await;
        assert_error(&(r.status, r.json()), ok, "0300011", NOT_FOUND);
    }

    // Ownership: B sees A's finished export exactly as a missing one.
    let ing = server.create_app(&AppSpec {
        name: "CTI",
        roles: &["ingest"],
        ..Default::default()
    });
    server
        .client(&ing)
        .import_ok(&[record(
            "o1",
            &a.app_id,
            "2024-05-01 10:00:00",
            "2024-05-01 10:01:00",
        )])
        .await;
    let id = ca.generate(gen(json!({}))).await;
    let st = ca.wait_state(&id, "succeeded", LONG).await;
    let name = st["agentOprInfoFileName"].as_str().unwrap().to_owned();
    assert_eq!(ca.download(&name, None).await.status, StatusCode::OK);

    let missing_id = "00000000000000000000000000000000";
    let missing_name = format!("{}_{missing_id}.zip", &name[..8]);
    let theirs = cb.download(&name, None).await;
    let nothing = cb.download(&missing_name, None).await;
    assert_error(&(nothing.status, nothing.json()), ok, "0300011", NOT_FOUND);
    assert_eq!(
        (theirs.status, theirs.text()),
        (nothing.status, nothing.text()),
        "download of another developer's file"
    );
    assert_eq!(
        theirs.header("content-type"),
        nothing.header("content-type")
    );
    // With a Range too.
    let theirs = cb.download(&name, Some("bytes=1-")).await;
    assert_eq!(
        (theirs.status, theirs.text()),
        (nothing.status, nothing.text()),
        "ranged download of another developer's file"
    );
    // A's own file under another date is not A's file either.
    let wrong_day = format!("19990101_{id}.zip");
    let r = ca.download(&wrong_day, None).await;
    assert_eq!(
        (r.status, r.text()),
        (nothing.status, nothing.text()),
        "right id, wrong date"
    );

    // A finished export whose file has vanished from the file store is a missing file too.
    let zip = files_under(&server.files_dir())
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(&name))
        .expect("the zip on disk");
    std::fs::remove_file(&zip).unwrap();
    let r = ca.download(&name, None).await;
    assert_error(&(r.status, r.json()), ok, "0300011", NOT_FOUND);

    let theirs = cb
        .post_raw(
            STATUS,
            &envelope_bytes(json!({"responseId": id})),
            &Opts::new(),
        )
        .await;
    let nothing = cb
        .post_raw(
            STATUS,
            &envelope_bytes(json!({"responseId": missing_id})),
            &Opts::new(),
        )
        .await;
    assert_error(&(nothing.status, nothing.json()), ok, "0300011", NOT_FOUND);
    assert_eq!(
        (theirs.status, theirs.text()),
        (nothing.status, nothing.text()),
        "status of another developer's job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_flow_control() {
    // One download at a time; no compression, so the zip is big enough (~17 MB) that it
    // cannot all sit in socket buffers: a download whose body is not read stays in progress.
    let server = TestServer::start(&[("CCFS_MAX_DOWNLOADS", "1"), ("CCFS_COMPRESSION_LEVEL", "0")]);
    let a = server.create_app(&AppSpec {
        name: "A",
        ..Default::default()
    });
    let b = server.create_app(&AppSpec {
        name: "B",
        ..Default::default()
    });
    let ing = server.create_app(&AppSpec {
        name: "CTI",
        roles: &["ingest"],
        ..Default::default()
    });
    let cti = server.client(&ing);
    for chunk in 0..3 {
        let recs: Vec<Value> = (chunk * 10_000..(chunk + 1) * 10_000)
            .map(|i| fat_record(i, &a.app_id))
            .collect();
        assert_eq!(cti.import_ok(&recs).await, (10_000, 0));
    }
    cti.import_ok(&[record(
        "b1",
        &b.app_id,
        "2024-05-01 10:00:00",
        "2024-05-01 10:01:00",
    )])
    .await;
    let ca = server.client(&a);
    let cb = server.client(&b);
    let id = ca.generate(gen(json!({}))).await;
    let st = ca.wait_state(&id, "succeeded", LONG).await;
    let name = st["agentOprInfoFileName"].as_str().unwrap().to_owned();
    let size = st["fileSize"].as_u64().expect("fileSize");
    assert!(size > 12_000_000, "the zip is only {size} bytes");
    let id_b = cb.generate(gen(json!({}))).await;
    let name_b = cb.wait_state(&id_b, "succeeded", LONG).await["agentOprInfoFileName"]
        .as_str()
        .unwrap()
        .to_owned();

    // Hold one download open: headers read, body not.
    let body = envelope_bytes(json!({"agentOprInfoFileName": name}));
    let held = ca.send_streaming(DOWNLOAD, &body, &Opts::new()).await;
    assert_eq!(held.status(), StatusCode::OK);
    assert_eq!(
        held.headers()["content-type"],
        "Application/Octet-stream;charset=UTF-8"
    );

    let second = ca.download(&name, None).await;
    assert_error(
        &(second.status, second.json()),
        StatusCode::OK,
        "0300008",
        "Reached the download flow control threshold.",
    );
    let ranged = ca.download(&name, Some("bytes=0-99")).await;
    assert_error(
        &(ranged.status, ranged.json()),
        StatusCode::OK,
        "0300008",
        "Reached the download flow control threshold.",
    );
    // Per developer: B downloads meanwhile.
    assert_eq!(cb.download(&name_b, None).await.status, StatusCode::OK);

    // Going away frees the slot.
    drop(held);
    wait_until(LONG, || async {
        ca.download(&name, Some("bytes=0-99")).await.status == StatusCode::PARTIAL_CONTENT
    })
    .await;
    let whole = ca.download(&name, None).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.body.len() as u64, size);
    assert_eq!(sha256_hex(&whole.body), st["sha256"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_codes_roles_and_atomic_batches() {
    let server = TestServer::start(&[]);
    let a = server.create_app(&AppSpec {
        name: "A",
        timezone: Some("Asia/Shanghai"),
        ..Default::default()
    });
    let ing = server.create_app(&AppSpec {
        name: "CTI",
        roles: &["ingest"],
        ..Default::default()
    });
    let cti = server.client(&ing);
    let ok = StatusCode::OK;
    let good = |id: &str| record(id, &a.app_id, "2024-05-01 10:00:00", "2024-05-01 10:05:00");
    let with = |id: &str, field: &str, v: Value| {
        let mut r = good(id);
        if v.is_null() {
            r.as_object_mut().unwrap().remove(field);
        } else {
            r[field] = v;
        }
        r
    };

    assert_error(&raw(&cti, IMPORT, b"records").await, ok, "0300007", NO_BODY);
    assert_error(
        &raw(
            &cti,
            IMPORT,
            br#"{"request":{"version":"3.0"},"msgBody":{"records":[]}}"#,
        )
        .await,
        ok,
        "0300006",
        BAD_VERSION,
    );
    let too_many: Vec<Value> = (0..10_001).map(|i| good(&format!("m{i}"))).collect();
    let unknown_dev = record(
        "u1",
        "0000000000000000000000000000dead",
        "2024-05-01 10:00:00",
        "2024-05-01 10:05:00",
    );
    let cases: Vec<(Value, &str, String)> = vec![
        (json!({}), "0300001", null("records")),
        (json!({"records": null}), "0300001", null("records")),
        (json!({"records": {}}), "0300004", bad_format("records")),
        (json!({"records": "x"}), "0300004", bad_format("records")),
        (json!({"records": []}), "0300002", empty("records")),
        (json!({"records": too_many}), "0300003", too_long("records")),
        (
            json!({"records": [good("g0"), with("g1", "agent_id", Value::Null)]}),
            "0300001",
            null("records[1].agent_id"),
        ),
        (
            json!({"records": [with("g0", "op_type", json!(""))]}),
            "0300002",
            empty("records[0].op_type"),
        ),
        (
            json!({"records": [good("g0"), good("g1"), with("g2", "agent_id", json!("9".repeat(33)))]}),
            "0300003",
            too_long("records[2].agent_id"),
        ),
        (
            json!({"records": [with("g0", "begin_time", json!("2024-05-01 25:00:00"))]}),
            "0300004",
            bad_format("records[0].begin_time"),
        ),
        (
            json!({"records": [with("g0", "begin_time", json!("2024/05/01 10:00:00"))]}),
            "0300004",
            bad_format("records[0].begin_time"),
        ),
        (
            json!({"records": [with("g0", "end_time", json!("2024-05-01 09:00:00"))]}),
            "0300004",
            bad_format("records[0].end_time"),
        ),
        (
            json!({"records": [good("g0"), 5]}),
            "0300004",
            bad_format("records[1]"),
        ),
        (
            json!({"records": [with("g0", "begin_time", json!("2024-05-01T10:00:00"))]}),
            "0300004",
            bad_format("records[0].begin_time"),
        ),
    ];
    for (msg, code, desc) in &cases {
        let got = cti.call(IMPORT, msg.clone()).await;
        let shown = msg.to_string().chars().take(300).collect::<String>();
        assert_eq!(got.1, error_envelope(code, desc), "msgBody {shown}");
        assert_eq!(got.0, ok, "msgBody {shown}");
    }
    // An unknown developer: 0300004 naming the record's developer_id.
    let (status, v) = cti
        .call(
            IMPORT,
            json!({"records": [good("g0"), good("g1"), unknown_dev]}),
        )
        .await;
    assert_eq!(status, ok, "{v}");
    assert_eq!(v["resultCode"], "0300004", "{v}");
    let desc = v["resultDesc"].as_str().unwrap_or_default();
    assert!(
        desc.starts_with(&bad_format("records[2].developer_id")),
        "{desc}"
    );
    assert_eq!(v, error_envelope("0300004", desc));

    // None of the batches above stored anything: g0 and g1 are new now (unknown members of a
    // record are ignored).
    assert_eq!(
        cti.import_ok(&[good("g0"), with("g1", "comment", json!("x"))])
            .await,
        (2, 0)
    );
    assert_eq!(cti.import_ok(&[good("g1"), good("g0")]).await, (0, 2));
    assert_eq!(
        cti.import_ok(&[good("g2"), good("g2"), good("g1")]).await,
        (1, 2)
    );
    // A bad record after new ones stores nothing.
    let got = cti
        .call(
            IMPORT,
            json!({"records": [good("g3"), with("g4", "begin_time", json!("yesterday"))]}),
        )
        .await;
    assert_error(&got, ok, "0300004", &bad_format("records[1].begin_time"));
    assert_eq!(cti.import_ok(&[good("g3")]).await, (1, 0));
    // Lengths are in characters: 32 two-byte characters fit agent_id.
    assert_eq!(
        cti.import_ok(&[with("g5", "agent_id", json!("ë".repeat(32)))])
            .await,
        (1, 0)
    );

    // An app without the ingest role: HTTP 403, 0300401.
    let got = server.client(&a).import(&[good("x0")]).await;
    assert_auth_error(&got, StatusCode::FORBIDDEN);
    // … and nothing was stored.
    assert_eq!(cti.import_ok(&[good("x0")]).await, (1, 0));
}

/// SPEC section 9: a record whose id is stored with different content is a conflict. By
/// default the batch stores nothing and the answer names it; `onConflict` `skip` keeps the
/// stored record, `replace` overwrites it, and the answer counts and names the conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_conflicts_fail_skip_or_replace() {
    let server = TestServer::start(&[]);
    let a = server.create_app(&AppSpec {
        name: "A",
        timezone: Some("Asia/Shanghai"),
        ..Default::default()
    });
    let ing = server.create_app(&AppSpec {
        name: "CTI",
        roles: &["ingest"],
        ..Default::default()
    });
    let cti = server.client(&ing);
    let ok = StatusCode::OK;
    let good = |id: &str| record(id, &a.app_id, "2024-05-01 10:00:00", "2024-05-01 10:05:00");
    let mut k2_fixed = good("k2");
    k2_fixed["op_type"] = json!("3");
    let mut k1_fixed = good("k1");
    k1_fixed["end_time"] = json!("2024-05-01 10:06:00");
    let import = |records: Vec<Value>, on_conflict: Option<&str>| {
        let mut body = json!({ "records": records });
        if let Some(c) = on_conflict {
            body["onConflict"] = json!(c);
        }
        let cti = &cti;
        async move { cti.call(IMPORT, body).await }
    };
    let data = |got: (StatusCode, Value)| {
        assert_eq!(got.0, ok, "{}", got.1);
        success_data(&got.1).clone()
    };
    assert_eq!(cti.import_ok(&[good("k1"), good("k2")]).await, (2, 0));

    // An unchanged resend is no conflict, whatever onConflict says.
    assert_eq!(
        data(import(vec![good("k1"), good("k2")], Some("fail")).await),
        json!({"inserted": 0, "alreadyPresent": 2, "conflicts": 0, "replaced": 0, "conflictIds": []})
    );

    // fail, by default or by name: 0300004 naming the first conflicting record, and nothing
    // of the batch is stored (k3 stays new).
    let batch = vec![good("k3"), good("k1"), k2_fixed.clone()];
    let one = format!(
        "{} It conflicts with a stored record with different content; 1 record of the batch \
         conflicts (id k2); nothing was stored. Send onConflict skip or replace.",
        bad_format("records[2].id")
    );
    assert_error(&import(batch.clone(), None).await, ok, "0300004", &one);
    assert_error(
        &import(batch.clone(), Some("fail")).await,
        ok,
        "0300004",
        &one,
    );
    let two = format!(
        "{} It conflicts with a stored record with different content; 2 records of the batch \
         conflict (ids k1, k2); nothing was stored. Send onConflict skip or replace.",
        bad_format("records[0].id")
    );
    assert_error(
        &import(vec![k1_fixed.clone(), good("k4"), k2_fixed.clone()], None).await,
        ok,
        "0300004",
        &two,
    );

    // A bad onConflict is refused before anything is looked at.
    assert_error(
        &import(batch.clone(), Some("overwrite")).await,
        ok,
        "0300004",
        &bad_format("onConflict"),
    );
    assert_error(
        &import(batch.clone(), Some("")).await,
        ok,
        "0300002",
        &empty("onConflict"),
    );

    // skip: the rest is stored, the stored record stays.
    assert_eq!(
        data(import(batch.clone(), Some("skip")).await),
        json!({"inserted": 1, "alreadyPresent": 1, "conflicts": 1, "replaced": 0, "conflictIds": ["k2"]})
    );
    assert_eq!(
        cti.import_ok(&[good("k3"), good("k2")]).await,
        (0, 2),
        "k3 stored once, k2 unchanged"
    );

    // replace: the new content overwrites the stored record.
    assert_eq!(
        data(
            import(
                vec![k2_fixed.clone(), good("k3"), k1_fixed.clone()],
                Some("replace")
            )
            .await
        ),
        json!({"inserted": 0, "alreadyPresent": 1, "conflicts": 2, "replaced": 2, "conflictIds": ["k2", "k1"]})
    );
    // The corrected records are what is stored now: sent again they are present, and the
    // old versions conflict.
    assert_eq!(
        cti.import_ok(&[k2_fixed.clone(), k1_fixed.clone()]).await,
        (0, 2)
    );
    let got = import(vec![good("k2")], None).await;
    assert_eq!(got.1["resultCode"], "0300004", "{}", got.1);
    assert!(
        got.1["resultDesc"]
            .as_str()
            .is_some_and(|d| d.starts_with(&bad_format("records[0].id"))),
        "{}",
        got.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let server = TestServer::start(&[]);
    let a = server.create_app(&AppSpec {
        name: "A",
        ..Default::default()
    });
    let r = server
        .client(&a)
        .call(
            STATUS,
            json!({"responseId": "0123456789abcdef0123456789abcdef"}),
        )
        .await;
    assert_error(&r, StatusCode::OK, "0300011", NOT_FOUND);
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(server.get("/readyz").await.status, StatusCode::OK);
    let m = server.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    let text = m.text();
    assert!(text.contains("ccfs_requests_total"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("ccfs_requests_total") && l.contains("0300011")),
        "no ccfs_requests_total line for the 0300011 answer: {text}"
    );
}
