//! End-to-end export tests against the real `ccfs serve` over HTTPS: import records through
//! the import interface, generate, receive the signed callback, query the status, download
//! and unzip, and compare every CSV row with what was imported (SPEC sections 4–6, 8, 9).

use std::time::Duration;

use crate::harness::*;
use jiff::Timestamp;
use serde_json::{json, Value};

const BERLIN: &str = "Europe/Berlin";

/// One imported record and what the export must show for it.
struct Case {
    rec: Value,
    /// The instant of `begin_time`, written by hand.
    begin_utc: &'static str,
    /// `begin_time` / `end_time` as the export must show them (Berlin local time), by hand.
    begin_local: &'static str,
    end_local: &'static str,
}

#[allow(clippy::too_many_arguments)]
fn case(
    id: &str,
    dev: &str,
    account: &str,
    agent: &str,
    begin_in: &str,
    end_in: &str,
    begin_utc: &'static str,
    begin_local: &'static str,
    end_local: &'static str,
) -> Case {
    let mut rec = record(id, dev, begin_in, end_in);
    rec["account_id"] = json!(account);
    rec["agent_id"] = json!(agent);
    Case {
        rec,
        begin_utc,
        begin_local,
        end_local,
    }
}

impl Case {
    fn expected_row(&self) -> Vec<String> {
        let mut row = record_row(&self.rec);
        row[7] = self.begin_local.to_owned();
        row[8] = self.end_local.to_owned();
        row
    }
    fn instant(&self) -> Timestamp {
        self.begin_utc.parse().expect("begin_utc")
    }
}

/// Records of developer `a` (Berlin) around the window 2024-10-26 12:00:00 → 2024-10-27
/// 12:00:00 local, which spans the end of summer time (25 hours; 02:00–03:00 happens twice).
#[rustfmt::skip]
fn berlin_cases(a: &str) -> Vec<Case> {
    let mut v = vec![
        // Just before beginTime: excluded.
        case("r01-before", a, "acc-1", "1001", "2024-10-26 11:59:59", "2024-10-26 12:00:30",
             "2024-10-26T09:59:59Z", "2024-10-26 11:59:59", "2024-10-26 12:00:30"),
        // Exactly at beginTime: included.
        case("r02-at-begin", a, "acc-1", "1001", "2024-10-26 12:00:00", "2024-10-26 12:05:00",
             "2024-10-26T10:00:00Z", "2024-10-26 12:00:00", "2024-10-26 12:05:00"),
        // Awkward values, below.
        case("r03-awkward", a, "acc-2", "1002", "2024-10-26 18:30:15", "2024-10-26 18:31:00",
             "2024-10-26T16:30:15Z", "2024-10-26 18:30:15", "2024-10-26 18:31:00"),
        // Same begin_time: ordered by id, whatever the import order.
        case("tie-b", a, "acc-1", "1002", "2024-10-26 20:00:00", "2024-10-26 20:00:01",
             "2024-10-26T18:00:00Z", "2024-10-26 20:00:00", "2024-10-26 20:00:01"),
        case("tie-a", a, "acc-2", "1001", "2024-10-26 20:00:00", "2024-10-26 20:00:02",
             "2024-10-26T18:00:00Z", "2024-10-26 20:00:00", "2024-10-26 20:00:02"),
        // RFC 3339 input in UTC, shown in Berlin summer time; empty account.
        case("r06-utc", a, "", "1001", "2024-10-26T23:00:00Z", "2024-10-26T23:10:00+00:00",
             "2024-10-26T23:00:00Z", "2024-10-27 01:00:00", "2024-10-27 01:10:00"),
        // 02:30 local happens twice. A bare local time takes the first (summer time) one.
        case("f2-first", a, "acc-2", "1002", "2024-10-27 02:30:00", "2024-10-27T02:50:00+02:00",
             "2024-10-27T00:30:00Z", "2024-10-27 02:30:00", "2024-10-27 02:50:00"),
        case("first-0245", a, "acc-1", "1002", "2024-10-27T02:45:00+02:00", "2024-10-27T02:46:00+02:00",
             "2024-10-27T00:45:00Z", "2024-10-27 02:45:00", "2024-10-27 02:46:00"),
        // The second 02:30 (winter time): after 02:45 summer time, though its local text sorts
        // before it, and its id sorts before f2-first.
        case("f1-second", a, "acc-1", "1001", "2024-10-27T02:30:00+01:00", "2024-10-27T02:40:00+01:00",
             "2024-10-27T01:30:00Z", "2024-10-27 02:30:00", "2024-10-27 02:40:00"),
        case("r09-after-dst", a, "acc, \"quoted\"", "1001", "2024-10-27 03:00:00", "2024-10-27 03:00:00",
             "2024-10-27T02:00:00Z", "2024-10-27 03:00:00", "2024-10-27 03:00:00"),
        // Last second inside.
        case("r10-last", a, "acc-1", "1001", "2024-10-27 11:59:59", "2024-10-27 12:10:00",
             "2024-10-27T10:59:59Z", "2024-10-27 11:59:59", "2024-10-27 12:10:00"),
        // Exactly at endTime: excluded.
        case("r11-at-end", a, "acc-1", "1001", "2024-10-27 12:00:00", "2024-10-27 12:01:00",
             "2024-10-27T11:00:00Z", "2024-10-27 12:00:00", "2024-10-27 12:01:00"),
        case("r12-after", a, "acc-2", "1002", "2024-10-28 09:00:00", "2024-10-28 09:30:00",
             "2024-10-28T08:00:00Z", "2024-10-28 09:00:00", "2024-10-28 09:30:00"),
    ];
    let awk = &mut v[2].rec;
    awk["service_no"] = json!(" 007 ");
    awk["skill_id"] = json!("7,8");
    awk["call_id"] = json!("call\n1");
    awk["op_cause"] = json!("say \"hi\"");
    awk["op_object"] = json!("");
    awk["phone_no"] = json!("Zoë 电话");
    awk["location_id"] = json!("a,\"b\"\nc");
    awk["skillInfo_sn"] = json!("");
    awk["logon_sn"] = json!("'=1+2");
    v
}

const WIN_BEGIN: &str = "2024-10-26 12:00:00";
const WIN_END: &str = "2024-10-27 12:00:00";
const WIN_BEGIN_UTC: &str = "2024-10-26T10:00:00Z";
const WIN_END_UTC: &str = "2024-10-27T11:00:00Z";

/// The rows an export of `[WIN_BEGIN, WIN_END)` must hold, in order, for those cases `keep`
/// selects.
fn expected_rows(cases: &[Case], keep: impl Fn(&Case) -> bool) -> Vec<Vec<String>> {
    let (b, e): (Timestamp, Timestamp) =
        (WIN_BEGIN_UTC.parse().unwrap(), WIN_END_UTC.parse().unwrap());
    let mut sel: Vec<&Case> = cases
        .iter()
        .filter(|c| c.instant() >= b && c.instant() < e && keep(c))
        .collect();
    sel.sort_by(|x, y| {
        (x.instant(), x.rec["id"].as_str()).cmp(&(y.instant(), y.rec["id"].as_str()))
    });
    sel.iter().map(|c| c.expected_row()).collect()
}

/// Compares CSV rows with the expected ones, column by column.
#[track_caller]
fn assert_rows(got: &[Vec<String>], want: &[Vec<String>]) {
    let names = column_names();
    let ids = |rows: &[Vec<String>]| {
        rows.iter()
            .map(|r| r.first().cloned().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        got.len(),
        want.len(),
        "row count: got ids {:?}, want {:?}",
        ids(got),
        ids(want)
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), 21, "row {i} has {} columns: {g:?}", g.len());
        for (c, name) in names.iter().enumerate() {
            assert_eq!(g[c], w[c], "row {i} (id {}), column {name}", w[0]);
        }
    }
}

/// Waits for the delivered callback of job `id`.
async fn callback_for(rx: &Receiver, id: &str) -> ReceivedCallback {
    wait_some(LONG, &format!("callback of {id}"), || async {
        rx.delivered().into_iter().find(|c| {
            serde_json::from_slice::<Value>(&c.body)
                .ok()
                .is_some_and(|v| v["msgBody"]["responseId"] == id)
        })
    })
    .await
}

/// Checks a callback: exact body, signed headers, signature with the app's secret.
fn check_callback(cb: &ReceivedCallback, app: &App, path: &str, query: Option<&str>, body: Value) {
    assert_eq!(cb.method, "POST");
    assert_eq!(cb.path, path);
    assert_eq!(cb.query.as_deref(), query);
    assert_eq!(cb.json(), body, "callback body");
    let ct = cb.header("content-type").expect("callback Content-Type");
    assert!(
        ct.to_ascii_lowercase().starts_with("application/json"),
        "callback Content-Type {ct}"
    );
    let auth = cb.verify(&app.secret).unwrap_or_else(|e| {
        panic!(
            "callback signature: {e:?}: {:?}",
            cb.header("authorization")
        )
    });
    assert_eq!(auth.ak, app.app_id);
    assert_eq!(auth.signed_headers, "content-length;content-type;host");
    assert!(
        cb.verify("some other secret").is_err(),
        "verification must depend on the secret"
    );
    assert_java_signer_rebuilds(cb, app);
}

/// A receiver that verifies as the public Java signers do: they keep the instant, not the
/// text, and can only write it as `yyyy-MM-dd'T'HH:mm:ss'Z'`. Signing the callback again that
/// way must give its `Authorization` exactly.
fn assert_java_signer_rebuilds(cb: &ReceivedCallback, app: &App) {
    let value = cb.header("authorization").expect("callback Authorization");
    let parsed = ccfs_protocol::auth::AuthHeader::parse(value).expect("auth-v2 header");
    let rebuilt = ccfs_protocol::auth::format_timestamp(
        parsed.time(),
        ccfs_protocol::auth::Precision::Seconds,
    );
    let parts = ccfs_protocol::auth::RequestParts {
        method: &cb.method,
        path: &cb.path,
        query: cb.query.as_deref(),
        body: &cb.body,
    };
    let header = |n: &str| cb.header(n).unwrap_or_default().to_owned();
    let resigned = ccfs_protocol::auth::sign(
        &app.app_id,
        &app.secret,
        &rebuilt,
        &parts,
        &[
            ("content-length", &header("content-length")),
            ("content-type", &header("content-type")),
            ("host", &header("host")),
        ],
    );
    assert_eq!(
        value, resigned,
        "a seconds-only signer must rebuild the callback's signature (timestamp {})",
        parsed.timestamp
    );
}

/// Checks the headers of a whole-file download and returns the bytes.
fn check_download(r: &Resp, name: &str) -> Vec<u8> {
    assert_eq!(r.status, StatusCode::OK, "download {name}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("Application/Octet-stream;charset=UTF-8")
    );
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"{name}\"").as_str())
    );
    let etag = r.header("etag").expect("ETag");
    assert!(etag.len() > 2, "ETag {etag}");
    assert_eq!(
        r.header("x-checksum-sha256"),
        Some(sha256_hex(&r.body).as_str())
    );
    r.body.clone()
}

/// Unzips an export of one CSV part and returns the part's bytes.
fn single_part(zip: &[u8]) -> Vec<u8> {
    let entries = unzip(zip);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(entries.len(), 1, "entries {names:?}");
    assert_part_name(&entries[0].0, 1);
    entries[0].1.clone()
}

/// `^\d{20}_agentOprInfo_{seq}\.csv$`.
#[track_caller]
fn assert_part_name(name: &str, seq: u32) {
    let ok = name.len() > 20
        && name[..20].bytes().all(|b| b.is_ascii_digit())
        && name[20..] == format!("_agentOprInfo_{seq}.csv");
    assert!(ok, "part name {name:?} (seq {seq})");
    // The first 17 digits are a time, yyyyMMddHHmmssSSS.
    let n = |r: std::ops::Range<usize>| name[r].parse::<i16>().unwrap();
    let valid = jiff::civil::Date::new(n(0..4), n(4..6) as i8, n(6..8) as i8).is_ok()
        && jiff::civil::Time::new(n(8..10) as i8, n(10..12) as i8, n(12..14) as i8, 0).is_ok();
    assert!(
        valid,
        "part name {name:?} does not start with yyyyMMddHHmmssSSS"
    );
}

/// The CSV layout: UTF-8 without BOM, `\n` line ends, every row ends with `\n`.
#[track_caller]
fn assert_csv_layout(csv: &[u8]) {
    assert!(std::str::from_utf8(csv).is_ok(), "CSV is not UTF-8");
    assert!(!csv.starts_with(b"\xEF\xBB\xBF"), "CSV starts with a BOM");
    assert!(!csv.contains(&b'\r'), "CSV holds a carriage return");
    assert!(
        csv.is_empty() || csv.ends_with(b"\n"),
        "CSV does not end with a newline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_happy_path_filters_range_idempotency_and_reimport() {
    happy_path(&TestServer::start(&[])).await;
}

/// The same on the cluster's engines: a node on a fresh PostgreSQL database, its files in the
/// Garage bucket when `CCFS_TEST_S3_URL` is set (`.ci/run` sets it), else in a directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (and S3): set CCFS_TEST_POSTGRES_URL (and CCFS_TEST_S3_URL) and pass --include-ignored"]
async fn export_happy_path_on_postgres_and_s3() {
    let cluster = Cluster::start(1, &[], |_| Vec::new());
    happy_path(&cluster.nodes[0]).await;
}

/// Import, export across a DST change with its callback, download whole and by range, filters,
/// idempotency, re-import: everything a developer does, on `server`.
async fn happy_path(server: &TestServer) {
    let a = server.create_app(&AppSpec {
        name: "A",
        accounts: &["acc-1", "acc-2"],
        timezone: Some(BERLIN),
        ..Default::default()
    });
    let c = server.create_app(&AppSpec {
        name: "C",
        accounts: &["acc-1"],
        timezone: Some("UTC"),
        ..Default::default()
    });
    let ing = server.create_app(&AppSpec {
        name: "CTI",
        roles: &["ingest"],
        ..Default::default()
    });
    let client = server.client(&a);
    let cti = server.client(&ing);

    // Import A's records (tie-b before tie-a) and records of another developer in the same
    // window, one with an id that A also uses.
    let cases = berlin_cases(&a.app_id);
    let mut batch: Vec<Value> = cases.iter().map(|c| c.rec.clone()).collect();
    let mut other = record(
        "r03-awkward",
        &c.app_id,
        "2024-10-26 15:00:00",
        "2024-10-26 15:01:00",
    );
    other["account_id"] = json!("acc-1");
    batch.push(other);
    batch.push(record(
        "c-2",
        &c.app_id,
        "2024-10-26 16:00:00",
        "2024-10-26 16:01:00",
    ));
    assert_eq!(cti.import_ok(&batch).await, (batch.len() as u64, 0));

    let rx = Receiver::start().await;
    let cb_url = rx.url("/ccfs/cb?tenant=a&x=1");

    // The main export.
    let day_before = today_in(BERLIN);
    let id = client
        .generate(json!({"beginTime": WIN_BEGIN, "endTime": WIN_END, "callBackURL": cb_url}))
        .await;
    let day_after = today_in(BERLIN);
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "responseId {id}"
    );

    let cb = callback_for(&rx, &id).await;
    let name = cb.json()["msgBody"]["agentOprInfoFileName"]
        .as_str()
        .expect("file name")
        .to_owned();
    assert_eq!(name.len(), 45);
    assert!(
        name == format!("{day_before}_{id}.zip") || name == format!("{day_after}_{id}.zip"),
        "zip name {name}"
    );
    check_callback(
        &cb,
        &a,
        "/ccfs/cb",
        Some("tenant=a&x=1"),
        json!({"request":{"version":"2.0"},"msgBody":{"responseId": id, "agentOprInfoFileName": name}}),
    );
    assert_eq!(cb.header("host"), Some(rx.addr().to_string().as_str()));

    let want = expected_rows(&cases, |_| true);
    let st = client.wait_state(&id, "succeeded", LONG).await;
    assert_eq!(st["responseId"], id);
    assert_eq!(st["agentOprInfoFileName"], name);
    assert_eq!(st["recordCount"], want.len() as u64, "{st}");
    assert_eq!(st["fileCount"], 1, "{st}");
    let time = |k: &str| -> Timestamp {
        st[k]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("status {k}: {st}"))
    };
    assert!(time("createdAt") <= time("finishedAt"), "{st}");
    assert_eq!(
        time("expiresAt").duration_since(time("finishedAt")),
        jiff::SignedDuration::from_hours(7 * 24),
        "kept 7 days: {st}"
    );

    let r = client.download(&name, None).await;
    let zip = check_download(&r, &name);
    assert_eq!(st["sha256"], sha256_hex(&zip), "{st}");
    assert_eq!(st["fileSize"], zip.len() as u64, "{st}");
    let csv = single_part(&zip);
    assert_csv_layout(&csv);
    let rows = csv_rows(&csv);
    assert_rows(&rows, &want);
    // The awkward record went through RFC 4180 quoting.
    let text = String::from_utf8(csv.clone()).unwrap();
    // Quoting only where needed.
    let plain = format!(
        "r02-at-begin,{},acc-1,1001,1,2,,2024-10-26 12:00:00,2024-10-26 12:05:00,2,-1,0,5,1,1,4,88880001,0,0,1,\n",
        a.app_id
    );
    assert!(
        text.starts_with(&plain),
        "first line is not {plain:?}: {text}"
    );
    assert!(
        text.contains("\"call\n1\""),
        "embedded newline not quoted: {text}"
    );
    assert!(
        text.contains("\"say \"\"hi\"\"\""),
        "quotes not doubled: {text}"
    );
    assert!(text.contains("Zoë 电话"));

    // The callback state becomes delivered.
    wait_until(LONG, || async {
        let (_, v) = client.status(&id).await;
        v["resultData"]["callback"]["state"] == "delivered"
    })
    .await;

    // Range: the rest of the file from byte 10.
    let part = client.download(&name, Some("bytes=10-")).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{}", part.text());
    assert_eq!(part.body, zip[10..]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-{}/{}", zip.len() - 1, zip.len()).as_str())
    );
    assert_eq!(
        part.header("content-length"),
        Some((zip.len() - 10).to_string().as_str())
    );
    assert_eq!(
        part.header("content-type"),
        Some("Application/Octet-stream;charset=UTF-8")
    );

    // accountId filter: only acc-2, and the callback names the account.
    let id_acc = client
        .generate(json!({"beginTime": WIN_BEGIN, "endTime": WIN_END, "accountId": "acc-2", "callBackURL": rx.url("/cb/acc")}))
        .await;
    let cb = callback_for(&rx, &id_acc).await;
    let name_acc = cb.json()["msgBody"]["agentOprInfoFileName"]
        .as_str()
        .expect("name")
        .to_owned();
    check_callback(
        &cb,
        &a,
        "/cb/acc",
        None,
        json!({"request":{"version":"2.0"},"msgBody":{"responseId": id_acc, "agentOprInfoFileName": name_acc, "accountId": "acc-2"}}),
    );
    client.wait_state(&id_acc, "succeeded", LONG).await;
    let zip = check_download(&client.download(&name_acc, None).await, &name_acc);
    let want_acc = expected_rows(&cases, |c| c.rec["account_id"] == "acc-2");
    assert_eq!(want_acc.len(), 3);
    assert_rows(&csv_rows(&single_part(&zip)), &want_acc);

    // agentId filter: only agent 1002.
    let id_agent = client
        .generate(json!({"beginTime": WIN_BEGIN, "endTime": WIN_END, "agentId": "1002", "callBackURL": rx.url("/cb/agent")}))
        .await;
    let cb = callback_for(&rx, &id_agent).await;
    assert_eq!(
        cb.json()["msgBody"].as_object().map(|m| m.len()),
        Some(2),
        "no accountId without one: {}",
        cb.json()
    );
    let st = client.wait_state(&id_agent, "succeeded", LONG).await;
    let name_agent = st["agentOprInfoFileName"].as_str().unwrap().to_owned();
    let zip = check_download(&client.download(&name_agent, None).await, &name_agent);
    let want_agent = expected_rows(&cases, |c| c.rec["agent_id"] == "1002");
    assert_eq!(want_agent.len(), 4);
    assert_rows(&csv_rows(&single_part(&zip)), &want_agent);

    // An empty window [t, t) holds one empty CSV, though a record starts exactly at t.
    let id_empty = client
        .generate(json!({"beginTime": WIN_BEGIN, "endTime": WIN_BEGIN, "callBackURL": rx.url("/cb/empty")}))
        .await;
    let st = client.wait_state(&id_empty, "succeeded", LONG).await;
    assert_eq!(st["recordCount"], 0, "{st}");
    assert_eq!(st["fileCount"], 1, "{st}");
    let name_empty = st["agentOprInfoFileName"].as_str().unwrap().to_owned();
    let zip = check_download(&client.download(&name_empty, None).await, &name_empty);
    assert!(
        single_part(&zip).is_empty(),
        "the CSV of an empty export is not empty"
    );
    callback_for(&rx, &id_empty).await;

    // Idempotency-Key: same key and body → same job; another body or key → a new one.
    let body = json!({"beginTime": "2024-10-26 00:00:00", "endTime": "2024-10-26 06:00:00", "callBackURL": rx.url("/cb/idem")});
    let idem = |key: &str, body: Value| {
        let client = client.clone();
        let key = key.to_owned();
        async move {
            let got = client
                .call_with(GENERATE, body, &Opts::new().idempotency_key(&key))
                .await;
            assert_eq!(got.0, StatusCode::OK, "{}", got.1);
            success_data(&got.1)["responseId"]
                .as_str()
                .expect("responseId")
                .to_owned()
        }
    };
    let first = idem("key-1", body.clone()).await;
    let again = idem("key-1", body.clone()).await;
    assert_eq!(first, again, "same key, same body");
    let mut body2 = body.clone();
    body2["endTime"] = json!("2024-10-26 07:00:00");
    let other_body = idem("key-1", body2).await;
    assert_ne!(first, other_body, "same key, another body");
    let other_key = idem("key-2", body.clone()).await;
    assert_ne!(first, other_key, "another key, same body");
    assert_ne!(other_body, other_key);
    // Keys belong to a developer: another one with the same key and body gets its own job.
    let theirs = server
        .client(&c)
        .call_with(
            GENERATE,
            body.clone(),
            &Opts::new().idempotency_key("key-1"),
        )
        .await;
    let theirs = success_data(&theirs.1)["responseId"]
        .as_str()
        .expect("responseId")
        .to_owned();
    assert_ne!(
        theirs, first,
        "another developer's Idempotency-Key returned A's job"
    );
    let (_, v) = client.status(&theirs).await;
    assert_eq!(v["resultCode"], "0300011", "A sees C's job: {v}");

    // A developer whose settings ask for a header row gets one, before the records.
    let h = server.create_app(&AppSpec {
        name: "H",
        timezone: Some(BERLIN),
        csv_header: true,
        ..Default::default()
    });
    let hc = case(
        "h1",
        &h.app_id,
        "",
        "1001",
        "2024-10-27T02:30:00+01:00",
        "2024-10-27 03:30:00",
        "2024-10-27T01:30:00Z",
        "2024-10-27 02:30:00",
        "2024-10-27 03:30:00",
    );
    assert_eq!(cti.import_ok(std::slice::from_ref(&hc.rec)).await, (1, 0));
    let hclient = server.client(&h);
    let id_h = hclient
        .generate(
            json!({"beginTime": WIN_BEGIN, "endTime": WIN_END, "callBackURL": rx.url("/cb/h")}),
        )
        .await;
    let st = hclient.wait_state(&id_h, "succeeded", LONG).await;
    assert_eq!(st["recordCount"], 1, "{st}");
    let name_h = st["agentOprInfoFileName"].as_str().unwrap().to_owned();
    let csv = single_part(&check_download(
        &hclient.download(&name_h, None).await,
        &name_h,
    ));
    assert_csv_layout(&csv);
    let header: Vec<String> = column_names().iter().map(|c| (*c).to_owned()).collect();
    assert_rows(&csv_rows(&csv), &[header, hc.expected_row()]);

    // The zip name carries the date in the developer's zone: pick a zone whose date differs
    // from UTC's right now (UTC+14 or UTC-12; at any instant one of them does).
    let far_tz = ["Pacific/Kiritimati", "Etc/GMT+12"]
        .into_iter()
        .find(|tz| today_in(tz) != today_in("UTC"))
        .unwrap();
    let far = server.create_app(&AppSpec {
        name: "far",
        timezone: Some(far_tz),
        ..Default::default()
    });
    let fc = server.client(&far);
    let before = today_in(far_tz);
    let id_far = fc
        .generate(
            json!({"beginTime": WIN_BEGIN, "endTime": WIN_END, "callBackURL": rx.url("/cb/far")}),
        )
        .await;
    let after = today_in(far_tz);
    let st = fc.wait_state(&id_far, "succeeded", LONG).await;
    let name_far = st["agentOprInfoFileName"].as_str().unwrap().to_owned();
    assert!(
        name_far == format!("{before}_{id_far}.zip") || name_far == format!("{after}_{id_far}.zip"),
        "zip name {name_far} for a developer in {far_tz} (UTC date {})",
        today_in("UTC")
    );
    check_download(&fc.download(&name_far, None).await, &name_far);

    // The export re-imports unchanged: every row is already present, except the one in the
    // hour the end of summer time repeats. Its local time (02:30, without an offset) reads back
    // as the first 02:30, an hour before the stored instant, so it is another version of the
    // record: a conflict, which the import names instead of counting it as present.
    let mut records: Vec<Value> = rows.iter().map(|r| row_to_record(r)).collect();
    let repeated = records
        .iter()
        .position(|r| r["id"] == "f1-second")
        .expect("f1-second is exported");
    let (status, v) = cti.import(&records).await;
    assert_eq!(
        (status, &v["resultCode"]),
        (StatusCode::OK, &json!("0300004")),
        "{v}"
    );
    let desc = v["resultDesc"].as_str().unwrap_or_default();
    assert!(
        desc.starts_with(&format!(
            "The format of records[{repeated}].id is incorrect. It conflicts with a stored record"
        )) && desc.contains("1 record of the batch conflicts (id f1-second)"),
        "{desc}"
    );
    records.remove(repeated);
    assert_eq!(cti.import_ok(&records).await, (0, rows.len() as u64 - 1));
    // … and the import interface reads them exactly as written (a changed row would be new).
    records[0]["id"] = json!("r02-at-begin-copy");
    assert_eq!(cti.import_ok(&records[..1]).await, (1, 0));
}

/// The `begin_time` of record `i` of the splitting test: 2024-03-01 00:00:00 UTC plus `i` s.
fn split_time(i: u64) -> String {
    let (d, s) = (i / 86_400, i % 86_400);
    format!(
        "2024-03-{:02} {:02}:{:02}:{:02}",
        1 + d,
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_of_250001_records_is_split_into_three_parts() {
    const N: u64 = 250_001;
    const BATCH: u64 = 10_000;
    let server = TestServer::start(&[]);
    let a = server.create_app(&AppSpec {
        name: "big",
        timezone: Some("UTC"),
        ..Default::default()
    });
    let ing = server.create_app(&AppSpec {
        name: "CTI",
        roles: &["ingest"],
        ..Default::default()
    });
    let cti = server.client(&ing);

    // Bodies are written as text: building 250,001 JSON values is slow in a debug build.
    let mut start = 0;
    while start < N {
        let end = (start + BATCH).min(N);
        let mut body = String::from(r#"{"request":{"version":"2.0"},"msgBody":{"records":["#);
        for i in start..end {
            if i > start {
                body.push(',');
            }
            let t = split_time(i);
            body.push_str(&format!(
                r#"{{"id":"s{i:07}","developer_id":"{}","account_id":"acc","agent_id":"{}","begin_time":"{t}","end_time":"{t}","op_type":"2"}}"#,
                a.app_id,
                1000 + i % 50
            ));
        }
        body.push_str("]}}");
        let r = cti.post_raw(IMPORT, body.as_bytes(), &Opts::new()).await;
        let v = r.json();
        assert_eq!(success_data(&v)["inserted"], end - start, "{v}");
        start = end;
    }

    let rx = Receiver::start().await;
    let client = server.client(&a);
    let id = client
        .generate(json!({"beginTime": "2024-03-01 00:00:00", "endTime": "2024-03-04 00:00:00", "callBackURL": rx.url("/cb")}))
        .await;
    let st = client
        .wait_state(&id, "succeeded", Duration::from_secs(300))
        .await;
    assert_eq!(st["recordCount"], N, "{st}");
    assert_eq!(st["fileCount"], 3, "{st}");
    let name = st["agentOprInfoFileName"].as_str().unwrap().to_owned();
    // The callback first: a download would supersede a callback not yet delivered.
    callback_for(&rx, &id).await;
    let zip = check_download(&client.download(&name, None).await, &name);

    let mut entries = unzip(&zip);
    assert_eq!(
        entries.len(),
        3,
        "{:?}",
        entries.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    entries.sort_by_key(|(n, _)| n.rsplit('_').next().map(str::to_owned));
    let mut next = 0u64;
    for (seq, ((name, csv), want)) in entries
        .iter()
        .zip([100_000u64, 100_000, 50_001])
        .enumerate()
    {
        assert_part_name(name, seq as u32 + 1);
        assert_csv_layout(csv);
        let rows = csv_rows(csv);
        assert_eq!(rows.len() as u64, want, "rows of part {name}");
        for row in &rows {
            let t = split_time(next);
            assert_eq!(
                (row[0].as_str(), row[7].as_str()),
                (format!("s{next:07}").as_str(), t.as_str()),
                "part {name}"
            );
            next += 1;
        }
    }
    assert_eq!(next, N);
}

/// A callback that nobody receives (the placeholder URL of a polling client) stops once the
/// file's owner has downloaded the whole file: status says `superseded` and no attempt follows.
/// A download that stops short of the end supersedes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downloaded_files_pending_callback_is_superseded() {
    let server = TestServer::start(&[
        ("CCFS_CALLBACK_INITIAL_BACKOFF_SECS", "1"),
        ("CCFS_CALLBACK_MAX_BACKOFF_SECS", "1"),
    ]);
    let a = server.app_with_one_record().await;
    let rx = Receiver::start().await;
    rx.set_failing(true);
    let client = server.client(&a);
    let id = client
        .generate(json!({"beginTime": "2024-05-01 00:00:00", "endTime": "2024-05-02 00:00:00", "callBackURL": rx.url("/cb")}))
        .await;
    let st = client.wait_state(&id, "succeeded", LONG).await;
    let name = st["agentOprInfoFileName"].as_str().unwrap().to_owned();
    let callback = |v: &Value| success_data(v)["callback"].clone();
    rx.wait_for(1, LONG).await;

    // The first bytes only: still pending (a moment later too: superseding runs on a task of
    // its own once the last byte has gone out).
    let r = client.download(&name, Some("bytes=0-9")).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, v) = client.status(&id).await;
    assert_eq!(callback(&v)["state"], "pending", "{v}");

    // The whole file: superseded.
    check_download(&client.download(&name, None).await, &name);
    wait_until(LONG, || async {
        callback(&client.status(&id).await.1)["state"] == "superseded"
    })
    .await;
    // An attempt already in flight may still land; after that, nothing more comes, although
    // a pending callback would be retried every second.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, before) = client.status(&id).await;
    let received = rx.received().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, after) = client.status(&id).await;
    assert_eq!(
        rx.received().len(),
        received,
        "no attempt after superseding"
    );
    assert_eq!(callback(&after), callback(&before), "{after}");
    assert_eq!(callback(&after)["state"], "superseded", "{after}");
    assert_eq!(success_data(&after)["state"], "succeeded", "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_exports_are_deleted_and_answer_0300011() {
    let server = TestServer::start(&[
        ("CCFS_RETENTION_SECS", "2"),
        ("CCFS_RETENTION_INTERVAL_SECS", "1"),
    ]);
    let a = server.app_with_one_record().await;
    let rx = Receiver::start().await;
    let client = server.client(&a);
    let id = client
        .generate(json!({"beginTime": "2024-05-01 00:00:00", "endTime": "2024-05-02 00:00:00", "callBackURL": rx.url("/cb")}))
        .await;
    let st = client.wait_state(&id, "succeeded", LONG).await;
    let name = st["agentOprInfoFileName"].as_str().unwrap().to_owned();
    let r = client.download(&name, None).await;
    let zip = check_download(&r, &name);
    assert_eq!(csv_rows(&single_part(&zip)).len(), 1);
    let on_disk = || {
        files_under(&server.files_dir())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(&id))
            .count()
    };
    assert_eq!(
        on_disk(),
        1,
        "the zip is not under {}",
        server.files_dir().display()
    );

    let st = client.wait_state(&id, "expired", LONG).await;
    assert_eq!(st["agentOprInfoFileName"], name);
    let r = client.download(&name, None).await;
    assert_error(
        &(r.status, r.json()),
        StatusCode::OK,
        "0300011",
        "The file does not exist.",
    );
    wait_until(LONG, || async { on_disk() == 0 }).await;
    // Still expired, and still 0300011, once the file is gone.
    let (_, v) = client.status(&id).await;
    assert_eq!(success_data(&v)["state"], "expired");
    let r = client.download(&name, None).await;
    assert_error(
        &(r.status, r.json()),
        StatusCode::OK,
        "0300011",
        "The file does not exist.",
    );
}

/// The parallel deflate path, read by an independent zip reader: an export of several parts,
/// each deflated in many pieces on every core, read back by Python's zipfile (which checks every
/// entry's CRC) and `unzip -t` where installed. The parts, concatenated in order, are exactly the
/// rows imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_parts_deflated_in_pieces_read_back_by_an_independent_zip_reader() {
    const N: u64 = 30_000;
    const PER_PART: u64 = 7_000;
    let rows_per_file = PER_PART.to_string();
    let server = TestServer::start(&[("CCFS_ROWS_PER_FILE", rows_per_file.as_str())]);
    let a = server.create_app(&AppSpec {
        name: "pieces",
        timezone: Some("UTC"),
        ..Default::default()
    });
    let scratch = tempfile::tempdir().expect("temp dir");
    server.import_records(scratch.path(), &a.app_id, N);
    // What was imported, in export order already (times and ids both increase).
    let imported = std::fs::read(scratch.path().join(format!("{}.csv", a.app_id))).expect("CSV");

    let rx = Receiver::start().await;
    let client = server.client(&a);
    let id = client
        .generate(json!({"beginTime": "2024-05-01 00:00:00", "endTime": "2024-05-02 00:00:00", "callBackURL": rx.url("/cb")}))
        .await;
    let st = client
        .wait_state(&id, "succeeded", Duration::from_secs(300))
        .await;
    assert_eq!(st["recordCount"], N, "{st}");
    assert_eq!(st["fileCount"], N.div_ceil(PER_PART), "{st}");
    let name = st["agentOprInfoFileName"].as_str().unwrap().to_owned();
    callback_for(&rx, &id).await;
    let zip = check_download(&client.download(&name, None).await, &name);
    // Each part spans several 128 KiB pieces, so the parallel path is what made it.
    assert!(
        imported.len() as u64 / N * PER_PART > 3 * 128 * 1024,
        "parts too small to span pieces"
    );
    let path = scratch.path().join(&name);
    std::fs::write(&path, &zip).expect("write the zip");

    const READ: &str = r#"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
assert bad is None, "bad CRC in " + str(bad)
names = sorted(z.namelist(), key=lambda n: int(n.rsplit("_", 1)[1].split(".")[0]))
for n in names:
    info = z.getinfo(n)
    assert info.compress_type == zipfile.ZIP_DEFLATED, n
    data = z.read(n)
    sys.stderr.write("%s %d rows\n" % (n, data.count(b"\n")))
    sys.stdout.buffer.write(data)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", READ, path.to_str().expect("UTF-8 path")])
        .output()
        .expect("python3 must be installed: it is the independent zip reader of this test");
    let parts = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python3 zipfile: {parts}");
    let counts: Vec<&str> = parts.lines().collect();
    assert_eq!(counts.len() as u64, N.div_ceil(PER_PART), "{parts}");
    for (seq, line) in counts.iter().enumerate() {
        let want = PER_PART.min(N - seq as u64 * PER_PART);
        assert!(line.ends_with(&format!(" {want} rows")), "{parts}");
        assert_part_name(line.split(' ').next().unwrap_or(""), seq as u32 + 1);
    }
    assert!(
        out.stdout == imported,
        "the parts differ from the imported rows ({} vs {} bytes)",
        out.stdout.len(),
        imported.len()
    );

    match std::process::Command::new("unzip")
        .args(["-t", path.to_str().expect("UTF-8 path")])
        .output()
    {
        Ok(t) => assert!(
            t.status.success(),
            "unzip -t: {}",
            String::from_utf8_lossy(&t.stdout)
        ),
        Err(e) => eprintln!("unzip not installed ({e}); Python's zipfile checked the CRCs"),
    }
}
