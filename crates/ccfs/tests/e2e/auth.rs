//! End-to-end tests of auth-v2 authentication (SPEC section 3) against the real `ccfs serve`:
//! every refusal is HTTP 401 with `0300401` and a description naming the reason class (the
//! `Display` text of `AuthError`), never a secret or the expected signature; and the forms real
//! clients use (both timestamp forms, `host` alone or `content-length;content-type;host`, the
//! Content-Type spellings) are accepted.

use crate::harness::*;
use ccfs_protocol::auth::{self, AuthError, Precision, RequestParts};
use serde_json::{json, Value};

/// A response id no job has: a status query for it passes authentication and answers 0300011.
const PROBE_ID: &str = "0123456789abcdef0123456789abcdef";

fn probe_body() -> Vec<u8> {
    envelope_bytes(json!({ "responseId": PROBE_ID }))
}

/// A status query (an authenticated interface with no side effects).
async fn probe(c: &Client, opts: &Opts) -> Resp {
    c.post_raw(STATUS, &probe_body(), opts).await
}

/// The `resultDesc` of an authentication failure.
fn auth_desc(why: AuthError) -> String {
    format!("Authentication failed: {why}.")
}

/// Asserts that authentication passed: the status interface answered (HTTP 200) that the
/// probe id does not exist.
#[track_caller]
fn assert_accepted(r: &Resp, what: &str) {
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{what}: expected the request to be accepted: {}",
        r.text()
    );
    let v = r.json();
    assert_eq!(
        v,
        error_envelope("0300011", "The file does not exist."),
        "{what}: expected authentication to pass and the probe id to be unknown"
    );
}

/// Asserts a 401 refusal for `why`, and that nothing of `secrets` (secret keys, expected
/// signatures) appears in the answer.
#[track_caller]
fn assert_refused(r: &Resp, why: AuthError, secrets: &[&str], what: &str) {
    let v = r.json();
    assert_eq!(
        v,
        error_envelope("0300401", &auth_desc(why)),
        "{what}: expected a refusal for '{why}' (HTTP {})",
        r.status
    );
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {v}");
    let ct = r
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        ct.starts_with("application/json"),
        "{what}: Content-Type {ct}"
    );
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !r.text().contains(s),
            "{what}: the answer leaks '{s}': {}",
            r.text()
        );
        for (name, value) in &r.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            assert!(!value.contains(s), "{what}: header {name} leaks '{s}'");
        }
    }
}

fn now_offset(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs)
}

/// A generate body whose callback goes to `receiver` (the export itself is not the point).
fn generate_body(receiver: &Receiver) -> Value {
    json!({
        "beginTime": "2024-05-01 00:00:00",
        "endTime": "2024-05-02 00:00:00",
        "callBackURL": receiver.url("/cb"),
    })
}

/// A generate that must be accepted: HTTP 200, resultCode 0, a 32-hex responseId.
#[track_caller]
fn assert_generated(got: &(StatusCode, Value), what: &str) {
    assert_eq!(got.0, StatusCode::OK, "{what}: {}", got.1);
    assert_eq!(got.1["resultCode"], "0", "{what}: {}", got.1);
    let id = got.1["resultData"]["responseId"]
        .as_str()
        .unwrap_or_default();
    assert!(
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{what}: responseId {id:?}"
    );
}

/// A server that does not limit generates per developer (several tests generate a lot).
fn server() -> TestServer {
    TestServer::start(&[("CCFS_MAX_ACTIVE_JOBS", "1000")])
}

/// The signature of `Authorization` value `v`.
fn sig_of(v: &str) -> String {
    v.rsplit('/').next().unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[tokio::test]
async fn wrong_secret_is_a_signature_mismatch_and_leaks_nothing() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let ts = auth::format_timestamp(fresh_millis(), Precision::Millis);

    let r = probe(&c, &Opts::new().timestamp(&ts).wrong_secret()).await;

    // What the server computed as the expected signature: the same request signed with the
    // real secret (checked below by sending it).
    let body = probe_body();
    let length = body.len().to_string();
    let host = c.host();
    let parts = RequestParts {
        method: "POST",
        path: STATUS,
        query: None,
        body: &body,
    };
    let expected = auth::sign(
        &app.app_id,
        &app.secret,
        &ts,
        &parts,
        &[
            ("content-length", &length),
            ("content-type", ccfs_protocol::JSON_CONTENT_TYPE),
            ("host", &host),
        ],
    );
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret, &sig_of(&expected)],
        "wrong secret",
    );

    // The expected signature really is the one the server wanted.
    let r = probe(&c, &Opts::new().raw_auth(&expected)).await;
    assert_accepted(&r, "the same request signed with the real secret");
}

#[tokio::test]
async fn unknown_access_key() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let r = probe(&c, &Opts::new().ak("ffffffffffffffffffffffffffffffff")).await;
    assert_refused(&r, AuthError::UnknownKey, &[&app.secret], "unknown AK");
    // An AK that differs only in letter case is another key.
    let upper = app.app_id.to_ascii_uppercase();
    if upper != app.app_id {
        let r = probe(&c, &Opts::new().ak(&upper)).await;
        assert_refused(&r, AuthError::UnknownKey, &[&app.secret], "upper-case AK");
    }
}

#[tokio::test]
async fn disabled_app_is_refused_until_enabled_again() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let other = server.create_app(&AppSpec {
        name: "other",
        ..AppSpec::default()
    });
    let c = server.client(&app);
    assert_accepted(&probe(&c, &Opts::new()).await, "before disabling");

    let out = server.ccfs(&["app", "disable", &app.app_id]);
    assert!(
        out.status.success(),
        "app disable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("app disable prints JSON");
    assert_eq!(shown["enabled"], false, "{shown}");

    let r = probe(&c, &Opts::new()).await;
    assert_refused(&r, AuthError::DisabledKey, &[&app.secret], "disabled app");
    // A disabled app signing with a wrong secret learns nothing more than "disabled".
    let r = probe(&c, &Opts::new().wrong_secret()).await;
    assert_refused(
        &r,
        AuthError::DisabledKey,
        &[&app.secret],
        "disabled app, wrong secret",
    );
    // Other apps are not affected.
    assert_accepted(&probe(&c.as_app(&other), &Opts::new()).await, "another app");

    let out = server.ccfs(&["app", "enable", &app.app_id]);
    assert!(
        out.status.success(),
        "app enable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("app enable prints JSON");
    assert_eq!(shown["enabled"], true, "{shown}");
    assert_accepted(&probe(&c, &Opts::new()).await, "enabled again");
}

#[tokio::test]
async fn timestamps_outside_the_window_are_refused_both_ways() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    for (offset, precision) in [
        (-16 * 60, Precision::Millis),
        (-16 * 60, Precision::Seconds),
        (16 * 60, Precision::Millis),
        (16 * 60, Precision::Seconds),
        (-86_400 * 365, Precision::Millis),
    ] {
        let ts = auth::format_timestamp(now_offset(offset), precision);
        let r = probe(&c, &Opts::new().timestamp(&ts)).await;
        assert_refused(
            &r,
            AuthError::TimestampOutOfRange,
            &[&app.secret],
            &format!("timestamp {ts}"),
        );
    }
    // Inside the window, both ways, is accepted.
    for offset in [-14 * 60, 14 * 60] {
        let ts = auth::format_timestamp(now_offset(offset), Precision::Millis);
        assert_accepted(
            &probe(&c, &Opts::new().timestamp(&ts)).await,
            &format!("timestamp {ts}"),
        );
    }
}

/// An identical signature is a retry by default: an identical generate (a client signing with
/// seconds, resending after a time-out) answers the first job's responseId and starts no
/// second job; status and download are served again.
#[tokio::test]
async fn the_same_signed_request_twice_is_a_retry_of_one_request() {
    let server = server();
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    for precision in [Precision::Seconds, Precision::Millis] {
        let ts = auth::format_timestamp(fresh_millis(), precision);
        let opts = Opts::new().host_only().timestamp(&ts);
        let first = c.call_with(GENERATE, generate_body(&receiver), &opts).await;
        assert_generated(&first, &format!("first send, {ts}"));
        let again = c.call_with(GENERATE, generate_body(&receiver), &opts).await;
        assert_generated(&again, &format!("second send, {ts}"));
        assert_eq!(
            first.1["resultData"]["responseId"], again.1["resultData"]["responseId"],
            "an identical signed generate answers the same job ({ts})"
        );
        // Status, the same signed request twice: both answered.
        assert_accepted(&probe(&c, &opts).await, &format!("status, {ts}"));
        assert_accepted(&probe(&c, &opts).await, &format!("status again, {ts}"));
    }
    // One more generate; once its line is in the server's log, so are those before it. Two
    // generates answered twice each and this one: three jobs, not five.
    let id = c.generate(generate_body(&receiver)).await;
    wait_until(LONG, || async { server.log().contains(&id) }).await;
    let log = server.log();
    assert_eq!(log.matches("export job queued").count(), 3, "{log}");

    // Download: the same signed request twice gets the file twice.
    let done = c.wait_state(&id, "succeeded", LONG).await;
    let name = done["agentOprInfoFileName"].as_str().expect("name");
    let opts = Opts::new().timestamp(&auth::format_timestamp(fresh_millis(), Precision::Seconds));
    let one = c.download_with(name, &opts).await;
    let two = c.download_with(name, &opts).await;
    for r in [&one, &two] {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(
            r.header("x-checksum-sha256"),
            done["sha256"].as_str(),
            "the zip"
        );
    }
    assert_eq!(one.body, two.body);
}

/// With `replay = off` nothing is remembered: an identical generate starts a second job.
#[tokio::test]
async fn with_replay_off_an_identical_generate_is_a_new_job() {
    let server = TestServer::start(&[("CCFS_MAX_ACTIVE_JOBS", "1000"), ("CCFS_REPLAY", "off")]);
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let opts = Opts::new().timestamp(&auth::format_timestamp(fresh_millis(), Precision::Seconds));
    let first = c.call_with(GENERATE, generate_body(&receiver), &opts).await;
    let again = c.call_with(GENERATE, generate_body(&receiver), &opts).await;
    assert_generated(&first, "first");
    assert_generated(&again, "second");
    assert_ne!(
        first.1["resultData"]["responseId"],
        again.1["resultData"]["responseId"]
    );
}

/// With `replay = refuse` the same signature a second time is refused as a replay.
#[tokio::test]
async fn with_replay_refuse_the_same_signed_request_twice_is_a_replay() {
    let server = TestServer::start(&[("CCFS_MAX_ACTIVE_JOBS", "1000"), ("CCFS_REPLAY", "refuse")]);
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    for precision in [Precision::Millis, Precision::Seconds] {
        let ts = auth::format_timestamp(fresh_millis(), precision);
        let opts = Opts::new().timestamp(&ts);
        assert_accepted(&probe(&c, &opts).await, &format!("first send, {ts}"));
        let r = probe(&c, &opts).await;
        assert_refused(
            &r,
            AuthError::Replay,
            &[&app.secret],
            &format!("second send, {ts}"),
        );
        // A different request with the same timestamp has another signature: accepted.
        let other = envelope_bytes(json!({ "responseId": "fedcba9876543210fedcba9876543210" }));
        let r = c.post_raw(STATUS, &other, &opts).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "another body, same timestamp {ts}: {}",
            r.text()
        );
    }
    // A request that passed authentication but that its handler refused (a bad body) has used
    // its signature all the same.
    let ts = auth::format_timestamp(fresh_millis(), Precision::Millis);
    let opts = Opts::new().timestamp(&ts);
    let bad = c.post_raw(STATUS, b"not json", &opts).await;
    assert_eq!(bad.status, StatusCode::OK, "{}", bad.text());
    assert_eq!(bad.json()["resultCode"], "0300007", "{}", bad.text());
    let r = c.post_raw(STATUS, b"not json", &opts).await;
    assert_refused(&r, AuthError::Replay, &[&app.secret], "replayed bad body");
}

#[tokio::test]
async fn host_must_be_signed() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let r = probe(
        &c,
        &Opts::new().sign_headers(&["content-length", "content-type"]),
    )
    .await;
    assert_refused(
        &r,
        AuthError::HostNotSigned,
        &[&app.secret],
        "content-length;content-type",
    );
    let r = probe(&c, &Opts::new().sign_headers(&["content-type"])).await;
    assert_refused(
        &r,
        AuthError::HostNotSigned,
        &[&app.secret],
        "content-type only",
    );
}

#[tokio::test]
async fn a_signed_header_missing_from_the_request() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    // Signed (with an empty value) but not sent.
    let r = probe(
        &c,
        &Opts::new().sign_headers(&["content-length", "content-type", "host", "x-ccfs-trace"]),
    )
    .await;
    assert_refused(
        &r,
        AuthError::SignedHeaderMissing,
        &[&app.secret],
        "x-ccfs-trace not sent",
    );
    let r = probe(
        &c,
        &Opts::new()
            .no_content_type()
            .sign_headers(&["content-type", "host"]),
    )
    .await;
    assert_refused(
        &r,
        AuthError::SignedHeaderMissing,
        &[&app.secret],
        "content-type not sent",
    );
    // The same extra header signed and sent is fine.
    let r = probe(&c, &Opts::new().signed_header("X-Ccfs-Trace", "abc 123")).await;
    assert_accepted(&r, "x-ccfs-trace signed and sent");
}

#[tokio::test]
async fn tampered_body_after_signing() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    // One character changed, same length (so content-length still matches).
    let tampered = envelope_bytes(json!({ "responseId": "1123456789abcdef0123456789abcdef" }));
    assert_eq!(tampered.len(), probe_body().len());
    for (opts, what) in [
        (Opts::new(), "default signed headers"),
        (Opts::new().host_only(), "host only"),
    ] {
        let r = probe(&c, &opts.tamper_body(&tampered)).await;
        assert_refused(
            &r,
            AuthError::SignatureMismatch,
            &[&app.secret],
            &format!("tampered body, {what}"),
        );
    }
    // Longer, with only host signed (content-length cannot give it away).
    let longer = envelope_bytes(json!({ "responseId": PROBE_ID, "x": 1 }));
    let r = probe(&c, &Opts::new().host_only().tamper_body(&longer)).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret],
        "extended body, host only",
    );
    // An empty body.
    let r = probe(&c, &Opts::new().host_only().tamper_body(b"")).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret],
        "emptied body, host only",
    );
}

#[tokio::test]
async fn tampered_path_after_signing() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    for to in [GENERATE, DOWNLOAD, IMPORT] {
        let r = probe(&c, &Opts::new().tamper_path(to)).await;
        assert_refused(
            &r,
            AuthError::SignatureMismatch,
            &[&app.secret],
            &format!("signed for status, sent to {to}"),
        );
    }
    // Letter case of the path is part of what is signed (the route exists only in one case, so
    // sign the other spelling and send the real one).
    let lower = STATUS.to_ascii_lowercase();
    let body = probe_body();
    let host = c.host();
    let parts = RequestParts {
        method: "POST",
        path: &lower,
        query: None,
        body: &body,
    };
    let v = auth::sign(
        &app.app_id,
        &app.secret,
        &auth::format_timestamp(fresh_millis(), Precision::Millis),
        &parts,
        &[("host", &host)],
    );
    let r = probe(&c, &Opts::new().raw_auth(&v)).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret],
        "path signed in lower case",
    );
}

#[tokio::test]
async fn tampered_query_after_signing() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let r = probe(&c, &Opts::new().tamper_query("x=1")).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret],
        "?x=1 added",
    );
    let r = probe(&c, &Opts::new().query("a=1").tamper_query("a=2")).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret],
        "a=1 changed to a=2",
    );
    let r = probe(&c, &Opts::new().query("a=1").tamper_query("")).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret],
        "query removed",
    );
    let r = probe(&c, &Opts::new().query("a=1").tamper_query("a=1&x=1")).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret],
        "x=1 appended to a=1",
    );

    // Signed and sent queries are fine, in any pair order and percent-encoding of the same
    // values, including non-ASCII values.
    assert_accepted(
        &probe(&c, &Opts::new().query("b=x%20y&a=1")).await,
        "b=x%20y&a=1",
    );
    assert_accepted(
        &probe(
            &c,
            &Opts::new().query("b=x%20y&a=1").tamper_query("a=1&b=x%20y"),
        )
        .await,
        "pairs reordered",
    );
    assert_accepted(
        &probe(
            &c,
            &Opts::new()
                .query("q=%E4%B8%AD%E6%96%87&e=")
                .tamper_query("e&q=%e4%b8%ad%e6%96%87"),
        )
        .await,
        "same values, other encoding",
    );
}

#[tokio::test]
async fn malformed_authorization_values() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let ts = auth::format_timestamp(fresh_millis(), Precision::Millis);
    let sig = "4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724";
    let ak = &app.app_id;
    let bad = [
        String::new(),
        "auth-v2".to_owned(),
        "Bearer abc".to_owned(),
        format!("auth-v3/{ak}/{ts}/host/{sig}"),
        format!("auth-v2//{ts}/host/{sig}"),
        format!("auth-v2/{ak}/{}/host/{sig}", ts.replace('T', " ")),
        format!("auth-v2/{ak}/{}/host/{sig}", &ts[..19]),
        format!("auth-v2/{ak}/{}Z/host/{sig}", &ts[..22]),
        format!("auth-v2/{ak}/{ts}/host/{}", sig.to_ascii_uppercase()),
        format!("auth-v2/{ak}/{ts}/host/{}", &sig[..63]),
        format!("auth-v2/{ak}/{ts}/host/{sig}0"),
        format!("auth-v2/{ak}/{ts}/Host/{sig}"),
        format!("auth-v2/{ak}/{ts}//{sig}"),
        format!("auth-v2/{ak}/{ts}/host;;content-type/{sig}"),
        format!("auth-v2/{ak}/{ts}/host/{sig}/x"),
        format!("auth-v2/{ak}/{ts}/host"),
        format!("auth-v2 {ak} {ts} host {sig}"),
    ];
    for value in &bad {
        let r = probe(&c, &Opts::new().raw_auth(value)).await;
        assert_refused(
            &r,
            AuthError::Malformed,
            &[&app.secret],
            &format!("Authorization: {value:?}"),
        );
    }
}

/// A header value that is not visible ASCII is present, so it is malformed, not missing.
#[tokio::test]
async fn non_ascii_authorization_value_is_malformed() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let value =
        reqwest::header::HeaderValue::from_bytes(b"auth-v2/\xe9t\xe9/2024-01-01T00:00:00Z/host/x")
            .expect("obs-text is a valid header value");
    let r = server
        .http()
        .post(server.url(STATUS))
        .header("content-type", ccfs_protocol::JSON_CONTENT_TYPE)
        .header("authorization", value)
        .body(probe_body())
        .send()
        .await
        .expect("send");
    let r = Resp::read(r).await;
    assert_refused(
        &r,
        AuthError::Malformed,
        &[&app.secret],
        "non-ASCII Authorization",
    );
}

#[tokio::test]
async fn missing_authorization() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    for path in [STATUS, GENERATE, DOWNLOAD, IMPORT] {
        let r = c
            .post_raw(path, &probe_body(), &Opts::new().no_auth())
            .await;
        assert_refused(
            &r,
            AuthError::Missing,
            &[&app.secret],
            &format!("no Authorization on {path}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What real clients send is accepted

#[tokio::test]
async fn both_timestamp_forms_and_both_signed_header_sets_are_accepted() {
    let server = server();
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let cases = [
        (Opts::new(), "millis, content-length;content-type;host"),
        (
            Opts::new().seconds(),
            "seconds, content-length;content-type;host",
        ),
        (Opts::new().host_only(), "millis, host"),
        (Opts::new().host_only().seconds(), "seconds, host"),
    ];
    for (opts, what) in cases {
        let got = c.call_with(GENERATE, generate_body(&receiver), &opts).await;
        assert_generated(&got, what);
        // The status interface too.
        assert_accepted(&probe(&c, &opts).await, what);
    }
}

/// Two public ports write an empty query line into the canonical request when there is no
/// query. Accepted by default (with the right secret only), refused when switched off.
#[tokio::test]
async fn the_empty_query_line_form_is_accepted_with_the_right_secret_only() {
    let server = server();
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let port = || Opts::new().host_only().seconds().empty_query_line();
    assert_accepted(&probe(&c, &port()).await, "status, empty query line");
    let got = c
        .call_with(GENERATE, generate_body(&receiver), &port())
        .await;
    assert_generated(&got, "generate, empty query line");
    let r = probe(&c, &port().wrong_secret()).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret],
        "empty query line, wrong secret",
    );
    // With a query the port's form is the SPEC's: nothing changes.
    assert_accepted(
        &probe(&c, &port().query("a=1")).await,
        "empty query line form with a query",
    );

    let strict = TestServer::start(&[("CCFS_ACCEPT_EMPTY_QUERY_LINE", "false")]);
    let app = strict.create_app(&AppSpec::default());
    let c = strict.client(&app);
    let r = probe(&c, &port()).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret],
        "empty query line, switched off",
    );
    assert_accepted(
        &probe(&c, &Opts::new()).await,
        "the SPEC's form, switched off",
    );
}

#[tokio::test]
async fn content_type_spellings_are_accepted() {
    let server = server();
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    for ct in [
        "application/json;charset=UTF-8",
        "application/json; charset=UTF-8",
        "Application/JSON;Charset=utf-8",
        "application/json",
    ] {
        // Signed as the official examples do (content-type among the signed headers)…
        let got = c
            .call_with(
                GENERATE,
                generate_body(&receiver),
                &Opts::new().content_type(ct),
            )
            .await;
        assert_generated(&got, &format!("Content-Type {ct}, signed"));
        // …and as the Java clients do (host only).
        let got = c
            .call_with(
                GENERATE,
                generate_body(&receiver),
                &Opts::new().host_only().content_type(ct),
            )
            .await;
        assert_generated(&got, &format!("Content-Type {ct}, host only"));
    }
}

/// Signs a status probe over `host: signed_host` only, sent with the client's real `Host` and
/// `X-Forwarded-Host: signed_host`.
async fn probe_forwarded(c: &Client, signed_host: &str, forwarded: &str) -> Resp {
    let body = probe_body();
    let parts = RequestParts {
        method: "POST",
        path: STATUS,
        query: None,
        body: &body,
    };
    let v = auth::sign(
        &c.app.app_id,
        &c.app.secret,
        &auth::format_timestamp(fresh_millis(), Precision::Millis),
        &parts,
        &[("host", signed_host)],
    );
    probe(
        c,
        &Opts::new()
            .raw_auth(&v)
            .header("X-Forwarded-Host", forwarded),
    )
    .await
}

#[tokio::test]
async fn forwarded_host_is_trusted_only_when_configured() {
    let trusting = TestServer::start(&[("CCFS_TRUST_FORWARDED_HOST", "true")]);
    let plain = TestServer::start(&[]);
    for (server, trusted) in [(&trusting, true), (&plain, false)] {
        let app = server.create_app(&AppSpec::default());
        let c = server.client(&app);
        let what = if trusted {
            "CCFS_TRUST_FORWARDED_HOST=true"
        } else {
            "default server"
        };
        // Signed for the balancer's address, which arrives in X-Forwarded-Host.
        let r = probe_forwarded(&c, "ccfs.example.com", "ccfs.example.com").await;
        if trusted {
            assert_accepted(&r, &format!("{what}: host from X-Forwarded-Host"));
        } else {
            assert_refused(
                &r,
                AuthError::SignatureMismatch,
                &[&app.secret],
                &format!("{what}: X-Forwarded-Host"),
            );
        }
        // A request without X-Forwarded-Host is verified against Host on both.
        assert_accepted(
            &probe(&c, &Opts::new()).await,
            &format!("{what}: no X-Forwarded-Host"),
        );
        assert_accepted(
            &probe(&c, &Opts::new().host_only()).await,
            &format!("{what}: no X-Forwarded-Host, host only"),
        );
    }
    // When trusted, X-Forwarded-Host is what counts: a signature over the real Host with a
    // different X-Forwarded-Host does not verify.
    let app = trusting.create_app(&AppSpec::default());
    let c = trusting.client(&app);
    let real_host = c.host();
    let r = probe_forwarded(&c, &real_host, "ccfs.example.com").await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret],
        "trusted, signed Host, other X-Forwarded-Host",
    );
}

/// Runs `ccfs app rotate-secret`; returns the new secret.
fn rotate(server: &TestServer, app: &App) -> String {
    rotate_with(server, app, &[])["secretKey"]
        .as_str()
        .expect("secretKey")
        .to_owned()
}

/// Runs `ccfs app rotate-secret APPID FLAGS…`; returns what it printed.
fn rotate_with(server: &TestServer, app: &App, flags: &[&str]) -> Value {
    let mut args = vec!["app", "rotate-secret", app.app_id.as_str()];
    args.extend_from_slice(flags);
    let out = server.ccfs(&args);
    assert!(
        out.status.success(),
        "rotate-secret: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "rotate-secret printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(v["appId"], app.app_id.as_str(), "{v}");
    let secret = v["secretKey"]
        .as_str()
        .unwrap_or_else(|| panic!("no secretKey in {v}"))
        .to_owned();
    assert_ne!(secret, app.secret, "rotate-secret must give a new secret");
    v
}

#[tokio::test]
async fn rotated_secret_keeps_the_old_one_during_the_grace_period() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let new_secret = rotate(&server, &app);
    assert_accepted(
        &probe(&c, &Opts::new()).await,
        "old secret during the grace period",
    );
    assert_accepted(
        &probe(&c, &Opts::new().secret(&new_secret)).await,
        "new secret",
    );
    assert_accepted(
        &probe(&c, &Opts::new().host_only().secret(&new_secret)).await,
        "new secret, host only",
    );
    let r = probe(&c, &Opts::new().wrong_secret()).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret, &new_secret],
        "a third secret",
    );

    // Rotating again retires the first secret: only the last two are valid.
    let newest = rotate(
        &server,
        &App {
            app_id: app.app_id.clone(),
            secret: new_secret.clone(),
        },
    );
    assert_accepted(
        &probe(&c, &Opts::new().secret(&newest)).await,
        "newest secret",
    );
    assert_accepted(
        &probe(&c, &Opts::new().secret(&new_secret)).await,
        "previous secret in its grace period",
    );
    let r = probe(&c, &Opts::new()).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret, &new_secret, &newest],
        "first secret after two rotations",
    );
}

#[tokio::test]
async fn without_a_grace_period_the_old_secret_stops_at_once() {
    let server = TestServer::start(&[("CCFS_SECRET_GRACE_SECS", "0")]);
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    assert_accepted(&probe(&c, &Opts::new()).await, "before rotation");
    let new_secret = rotate(&server, &app);
    let r = probe(&c, &Opts::new()).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret, &new_secret],
        "old secret, no grace",
    );
    assert_accepted(
        &probe(&c, &Opts::new().secret(&new_secret)).await,
        "new secret",
    );
}

/// `--revoke-old` ends the old secret at once, with the default grace period configured, on a
/// server that runs meanwhile (nothing of the developer is cached): the next request signed with
/// it is refused, the new one works, and so does the secret after another rotation with grace.
#[tokio::test]
async fn revoke_old_refuses_the_old_secret_at_once() {
    let server = server();
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    assert_accepted(&probe(&c, &Opts::new()).await, "before rotation");
    let rotated = rotate_with(&server, &app, &["--revoke-old"]);
    assert_eq!(rotated["oldSecretRevoked"], true, "{rotated}");
    assert_eq!(rotated["oldSecretValidUntil"], Value::Null, "{rotated}");
    let new_secret = rotated["secretKey"].as_str().expect("secretKey").to_owned();
    let r = probe(&c, &Opts::new()).await;
    assert_refused(
        &r,
        AuthError::SignatureMismatch,
        &[&app.secret, &new_secret],
        "old secret, revoked",
    );
    assert_accepted(
        &probe(&c, &Opts::new().secret(&new_secret)).await,
        "new secret",
    );
    let shown: Value = serde_json::from_slice(&server.ccfs(&["app", "show", &app.app_id]).stdout)
        .expect("app show prints JSON");
    assert_eq!(shown.get("secretRotatedGraceUntil"), None, "{shown}");

    // A plain rotation keeps the (new) old secret for its grace period, and says until when.
    let again = rotate_with(
        &server,
        &App {
            app_id: app.app_id.clone(),
            secret: new_secret.clone(),
        },
        &[],
    );
    assert_eq!(again["oldSecretRevoked"], false, "{again}");
    assert!(again["oldSecretValidUntil"].is_string(), "{again}");
    assert_accepted(
        &probe(&c, &Opts::new().secret(&new_secret)).await,
        "previous secret in its grace period",
    );
}
