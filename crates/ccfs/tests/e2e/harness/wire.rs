//! The wire, as tests check it: the request envelope and exact checks of the answer envelopes
//! ([`success_data`], [`assert_error`], [`internal_error_id`]); records, CSV, zip and files ([`record`],
//! [`fat_record`], [`csv_rows`], [`unzip`], [`sha256_hex`], [`today_in`]); and polling
//! ([`wait_until`], [`wait_some`]), since tests never assert on a fixed sleep.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A generous limit for things that happen in the background (an export, a callback, a sweep)
/// in a debug build on a busy machine. Only a limit for failing: never a performance assert.
pub const LONG: Duration = Duration::from_secs(90);
/// Poll interval of [`wait_until`], [`wait_some`] and [`Client::wait_state`](super::Client::wait_state).
pub const POLL: Duration = Duration::from_millis(75);

// ---------------------------------------------------------------------------------------------
// Polling

/// Polls `cond` every [`POLL`] until it returns true; panics after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("wait_until: condition not met within {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `f` every [`POLL`] until it returns `Some`; panics after `timeout` with `what`.
pub async fn wait_some<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("wait_some: {what}: not within {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Envelopes

/// `{"request":{"version":"2.0"},"msgBody":MSG}`.
pub fn envelope(msg_body: Value) -> Value {
    json!({ "request": { "version": "2.0" }, "msgBody": msg_body })
}

/// [`envelope`] as bytes.
pub fn envelope_bytes(msg_body: Value) -> Vec<u8> {
    serde_json::to_vec(&envelope(msg_body)).expect("JSON")
}

/// Asserts the success envelope exactly (`resultCode "0"`, `resultDesc "success"`, the legacy
/// copy) and returns `resultData`.
pub fn success_data(v: &Value) -> &Value {
    assert_eq!(v["resultCode"], "0", "not a success: {v}");
    assert_eq!(v["resultDesc"], "success", "{v}");
    assert_eq!(
        v["response"],
        json!({"version":"2.0","resultCode":"0","resultMsg":"success"}),
        "{v}"
    );
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 4, "unexpected members in {v}");
    &v["resultData"]
}

/// The exact error envelope for `code` and `desc`.
pub fn error_envelope(code: &str, desc: &str) -> Value {
    json!({
        "resultCode": code,
        "resultDesc": desc,
        "resultData": "",
        "response": { "version": "2.0", "resultCode": code, "resultMsg": desc }
    })
}

/// Asserts an error answer: its HTTP status and exactly the envelope for `code` and `desc`.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), http: StatusCode, code: &str, desc: &str) {
    assert_eq!(got.1, error_envelope(code, desc), "HTTP {}", got.0);
    assert_eq!(got.0, http, "{}", got.1);
}

/// Asserts an HTTP 500 `0300500` answer, exactly its envelope, and returns the request id its
/// description names (16 lower-case hex characters).
#[track_caller]
pub fn internal_error_id(got: &(StatusCode, Value)) -> String {
    let id = got.1["resultDesc"]
        .as_str()
        .and_then(|d| d.strip_prefix("Internal error; the request id is "))
        .and_then(|d| d.strip_suffix('.'))
        .unwrap_or_else(|| panic!("no request id in {}", got.1))
        .to_owned();
    assert!(
        id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{id}"
    );
    assert_error(
        got,
        StatusCode::INTERNAL_SERVER_ERROR,
        "0300500",
        &format!("Internal error; the request id is {id}."),
    );
    id
}

// ---------------------------------------------------------------------------------------------
// Records and files

/// The 21 column names, in export order.
pub fn column_names() -> [&'static str; 21] {
    ccfs_protocol::record::COLUMNS.map(|c| c.name)
}

/// A complete, valid record as the import interface takes it; change fields as needed.
pub fn record(id: &str, developer_id: &str, begin_time: &str, end_time: &str) -> Value {
    json!({
        "id": id, "developer_id": developer_id, "account_id": "", "agent_id": "1001",
        "service_no": "1", "skill_id": "2", "call_id": "", "begin_time": begin_time,
        "end_time": end_time, "op_type": "2", "op_object": "-1", "op_cause": "0",
        "media_type": "5", "vdn_id": "1", "cc_id": "1", "agent_type": "4",
        "phone_no": "88880001", "callIn_out": "0", "location_id": "0", "logon_sn": "1",
        "skillInfo_sn": ""
    })
}

/// A record whose every column is as long as the SPEC allows: ~575 bytes of CSV. Tens of
/// thousands of them, exported without compression, make a file too big to sit in socket
/// buffers, so a download whose body is not read stays in progress.
pub fn fat_record(i: usize, dev: &str) -> Value {
    let s = |c: char, n: usize| c.to_string().repeat(n);
    json!({
        "id": format!("fat{i:029}"), "developer_id": dev, "account_id": s('a', 64),
        "agent_id": format!("{:032}", i % 100), "service_no": s('s', 25), "skill_id": s('k', 25),
        "call_id": s('c', 25), "begin_time": "2024-05-01 10:00:00", "end_time": "2024-05-01 10:05:00",
        "op_type": s('4', 20), "op_object": s('o', 20), "op_cause": s('u', 20), "media_type": s('m', 20),
        "vdn_id": s('v', 20), "cc_id": s('1', 20), "agent_type": s('t', 20), "phone_no": s('p', 32),
        "callIn_out": s('i', 20), "location_id": s('l', 20), "logon_sn": s('n', 25), "skillInfo_sn": s('q', 25)
    })
}

/// The 21 values of a record object in column order (missing members are empty).
pub fn record_row(v: &Value) -> Vec<String> {
    column_names()
        .iter()
        .map(|c| v[*c].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A CSV row (21 strings) as the record object the import interface takes.
pub fn row_to_record(row: &[String]) -> Value {
    let mut m = serde_json::Map::new();
    for (c, v) in column_names().iter().zip(row) {
        m.insert((*c).to_owned(), Value::String(v.clone()));
    }
    Value::Object(m)
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The entries of a zip, in archive order: `(name, bytes)`.
pub fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).expect("zip entry");
            let name = f.name().expect("entry name").into_owned();
            let mut data = Vec::new();
            f.read_to_end(&mut data).expect("entry data");
            (name, data)
        })
        .collect()
}

/// Parses CSV bytes (the export layout) into rows of strings.
pub fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    ccfs_protocol::record::csv_reader(bytes)
        .records()
        .map(|r| r.expect("CSV row").iter().map(str::to_owned).collect())
        .collect()
}

/// Today's date in `tz` as `yyyyMMdd`.
pub fn today_in(tz: &str) -> String {
    let tz = jiff::tz::TimeZone::get(tz).expect("time zone");
    jiff::Timestamp::now()
        .to_zoned(tz)
        .strftime("%Y%m%d")
        .to_string()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
