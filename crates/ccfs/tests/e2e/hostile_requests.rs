//! End-to-end tests of requests written to hurt: bodies that are huge, never finish or come
//! with a bad signature are refused from their headers, before the server takes them in; the
//! connection is then closed rather than drained. Requests that different parsers would read
//! differently (a repeated header or JSON key, a leap second) are refused, not guessed at.

use std::time::{Duration, Instant};

use crate::harness::*;
use ccfs_protocol::auth::AuthError;
use serde_json::{json, Value};

/// A response id no job has: a status query for it passes authentication and answers 0300011.
const PROBE_ID: &str = "0123456789abcdef0123456789abcdef";

fn probe_body() -> Vec<u8> {
    envelope_bytes(json!({ "responseId": PROBE_ID }))
}

/// Asserts an answer that closes the connection, with `code` and `desc` at `http`.
#[track_caller]
fn assert_refused_and_closed(r: &Resp, http: StatusCode, code: &str, desc: &str) {
    assert_eq!(r.json(), error_envelope(code, desc), "HTTP {}", r.status);
    assert_eq!(r.status, http, "{}", r.text());
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "a refusal that leaves the body unread closes the connection"
    );
}

fn auth_desc(why: AuthError) -> String {
    format!("Authentication failed: {why}.")
}

/// The answer to a request whose body never (fully) arrives.
async fn stalled(c: &Client, path: &str, body: &[u8], sent: usize, opts: &Opts) -> Resp {
    let r = c
        .send_stalled(path, body, sent, opts)
        .await
        .unwrap_or_else(|e| panic!("no answer while the body was held back: {e}"));
    Resp::read(r).await
}

#[tokio::test]
async fn a_huge_unauthenticated_body_is_refused_from_the_headers() {
    let server = TestServer::start(&[]);
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    // 33 MB announced, not one byte sent: the answer can only come from the headers.
    let body = vec![b'%'; 33_000_000];
    let r = stalled(&c, STATUS, &body, 0, &Opts::new().no_auth()).await;
    assert_refused_and_closed(
        &r,
        StatusCode::UNAUTHORIZED,
        "0300401",
        &auth_desc(AuthError::Missing),
    );
    // The same for an unknown key and for a stale timestamp.
    let r = stalled(&c, IMPORT, &body, 0, &Opts::new().ak("nobody-at-all")).await;
    assert_refused_and_closed(
        &r,
        StatusCode::UNAUTHORIZED,
        "0300401",
        &auth_desc(AuthError::UnknownKey),
    );
    let stale = Opts::new().timestamp("2020-01-01T00:00:00Z");
    let r = stalled(&c, IMPORT, &body, 0, &stale).await;
    assert_refused_and_closed(
        &r,
        StatusCode::UNAUTHORIZED,
        "0300401",
        &auth_desc(AuthError::TimestampOutOfRange),
    );
}

#[tokio::test]
async fn a_body_over_the_interface_limit_is_refused_unread() {
    let server = TestServer::start(&[]);
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let too_long = "The length of requestBody is too long.";
    // A known key with a bad signature: the signature cannot be checked without the body, and
    // the body is over the status interface's limit, so it is never read.
    let body = vec![b' '; 100_000];
    let r = stalled(&c, STATUS, &body, 0, &Opts::new().wrong_secret()).await;
    assert_refused_and_closed(&r, StatusCode::OK, "0300003", too_long);
    // Generate and download have the same small limit; import a larger one.
    for path in [GENERATE, DOWNLOAD] {
        let r = stalled(&c, path, &body, 0, &Opts::new()).await;
        assert_refused_and_closed(&r, StatusCode::OK, "0300003", too_long);
    }
    // Without a length announced (chunked), the limit holds as the body arrives.
    let r = c
        .send_chunked(STATUS, &body, &Opts::new().host_only())
        .await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::OK, error_envelope("0300003", too_long))
    );
    // A chunked body within the limit passes, signature and all.
    let r = c
        .send_chunked(STATUS, &probe_body(), &Opts::new().host_only())
        .await;
    assert_eq!(
        r.json(),
        error_envelope("0300011", "The file does not exist.")
    );
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_after_body_timeout_secs() {
    let server = TestServer::start(&[("CCFS_BODY_TIMEOUT_SECS", "2")]);
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let body = probe_body();
    let started = Instant::now();
    let r = stalled(&c, STATUS, &body, body.len() / 2, &Opts::new()).await;
    let waited = started.elapsed();
    assert_refused_and_closed(
        &r,
        StatusCode::REQUEST_TIMEOUT,
        "0300007",
        "The params of requestBody is null. The body did not arrive within 2 s; send it at once after the headers.",
    );
    // Only a lower bound: a busy machine may answer late, never early.
    assert!(
        waited >= Duration::from_millis(1500),
        "cut off after {waited:?}"
    );
    // The server still serves.
    let r = c.post_raw(STATUS, &body, &Opts::new()).await;
    assert_eq!(r.json()["resultCode"], "0300011");
}

#[tokio::test]
async fn repeated_authorization_or_host_headers_are_refused() {
    let server = TestServer::start(&[]);
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let body = probe_body();
    // A second, well-formed Authorization next to the signed one.
    let other = "auth-v2/someone/2021-08-31T09:38:50Z/host/4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724";
    let r = c
        .post_raw(STATUS, &body, &Opts::new().header("Authorization", other))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert_eq!(
        r.json(),
        error_envelope("0300401", &auth_desc(AuthError::DuplicateAuthorization))
    );
    // Two Host headers, even equal ones.
    let host = c.host();
    let opts = Opts::new().header("Host", &host).header("Host", &host);
    let r = c.post_raw(STATUS, &body, &opts).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert_eq!(
        r.json(),
        error_envelope("0300401", &auth_desc(AuthError::DuplicateHost))
    );
}

#[tokio::test]
async fn repeated_json_keys_are_0300007() {
    let server = TestServer::start(&[]);
    let app = server.create_app(&AppSpec {
        roles: &["export", "ingest"],
        ..AppSpec::default()
    });
    let c = server.client(&app);
    let no_body = "The params of requestBody is null.";
    let other = "ffffffffffffffffffffffffffffffff";
    for body in [
        format!(
            r#"{{"request":{{"version":"2.0"}},"msgBody":{{"responseId":"{other}"}},"msgBody":{{"responseId":"{PROBE_ID}"}}}}"#
        ),
        format!(
            r#"{{"request":{{"version":"2.0"}},"msgBody":{{"responseId":"{other}","responseId":"{PROBE_ID}"}}}}"#
        ),
        r#"{"request":{"version":"1.0","version":"2.0"},"msgBody":{}}"#.to_owned(),
    ] {
        let r = c.post_raw(STATUS, body.as_bytes(), &Opts::new()).await;
        assert_eq!(
            (r.status, r.json()),
            (StatusCode::OK, error_envelope("0300007", no_body)),
            "{body}"
        );
    }
    // Deep inside an import record.
    let mut rec = record(
        "r1",
        &app.app_id,
        "2024-05-01 10:00:00",
        "2024-05-01 10:05:00",
    );
    rec["agent_id"] = json!("AGENT");
    let text =
        serde_json::to_string(&json!({"request":{"version":"2.0"},"msgBody":{"records":[rec]}}))
            .expect("json");
    let repeated = text.replacen(
        r#""agent_id":"AGENT""#,
        r#""agent_id":"1","agent_id":"2""#,
        1,
    );
    assert_ne!(text, repeated);
    let r = c.post_raw(IMPORT, repeated.as_bytes(), &Opts::new()).await;
    assert_eq!(r.json(), error_envelope("0300007", no_body));
    let r = c.post_raw(IMPORT, text.as_bytes(), &Opts::new()).await;
    assert_eq!(r.json()["resultCode"], "0", "{}", r.text());
}

#[tokio::test]
async fn a_leap_second_is_malformed_and_year_9999_out_of_range() {
    let server = TestServer::start(&[]);
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let body = probe_body();
    for (ts, why) in [
        ("2016-12-31T23:59:60Z", AuthError::Malformed),
        ("2016-12-31T23:59:60.500Z", AuthError::Malformed),
        ("9999-12-31T23:59:59Z", AuthError::TimestampOutOfRange),
        ("9999-12-31T23:59:59.999Z", AuthError::TimestampOutOfRange),
    ] {
        let r = c.post_raw(STATUS, &body, &Opts::new().timestamp(ts)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{ts}: {}", r.text());
        assert_eq!(r.json(), error_envelope("0300401", &auth_desc(why)), "{ts}");
    }
}

/// A record with every column at its longest, written as long as JSON writers write it: text
/// columns of control characters (`\u0001`, 6 bytes each), times as 35-character RFC 3339.
fn longest_record(i: usize, dev: &str) -> Value {
    let mut m = serde_json::Map::new();
    for c in ccfs_protocol::record::COLUMNS {
        let v = match c.name {
            "id" => format!("{i:05}{}", "\u{1}".repeat(c.max_len - 5)),
            "developer_id" => dev.to_owned(),
            "begin_time" => "2024-05-01T10:00:00.123456789+02:00".to_owned(),
            "end_time" => "2024-05-01T10:05:00.123456789+02:00".to_owned(),
            _ => "\u{1}".repeat(c.max_len),
        };
        assert!(v.chars().count() <= c.max_len, "{}", c.name);
        m.insert(c.name.to_owned(), Value::String(v));
    }
    Value::Object(m)
}

#[tokio::test]
async fn an_import_of_10000_longest_records_succeeds() {
    let server = TestServer::start(&[]);
    let longest_id = "d".repeat(64);
    let app = server.create_app(&AppSpec {
        roles: &["ingest"],
        app_id: Some(&longest_id),
        ..AppSpec::default()
    });
    let c = server.client(&app);
    let records: Vec<Value> = (0..10_000)
        .map(|i| longest_record(i, &app.app_id))
        .collect();
    // Indented, as many JSON writers are asked to: longer than the fixed 32 MiB limit there
    // used to be, and still legal.
    let body = serde_json::to_vec_pretty(&envelope(json!({ "records": records }))).expect("json");
    assert!(body.len() > 32 * 1024 * 1024, "{} bytes", body.len());
    let r = c
        .post_raw(
            IMPORT,
            &body,
            &Opts::new().timeout(Duration::from_secs(600)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(success_data(&r.json())["inserted"], 10_000);
}
