//! Where callbacks may go: the address policy at generate (IP literals) and at delivery
//! (resolved addresses), user info refused, and one `lastError` for every missing answer.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::harness::*;

fn generate_body(url: &str) -> Value {
    json!({
        "beginTime": "2024-05-01 00:00:00",
        "endTime": "2024-05-02 00:00:00",
        "callBackURL": url,
    })
}

/// Generates with `url`; returns the whole answer.
async fn generate_with(c: &Client, url: &str) -> Value {
    let (status, v) = c.call(GENERATE, generate_body(url)).await;
    assert_eq!(status, StatusCode::OK, "{url}: {v}");
    v
}

/// Polls the job's status until its callback has had an attempt; returns the callback part.
async fn first_attempt(c: &Client, id: &str) -> Value {
    wait_some(LONG, &format!("a callback attempt of {id}"), || async {
        let (_, v) = c.status(id).await;
        let cb = v["resultData"]["callback"].clone();
        (cb["attempts"].as_u64().unwrap_or(0) >= 1).then_some(cb)
    })
    .await
}

#[track_caller]
fn assert_bad_callback_url(v: &Value, url: &str) {
    assert_eq!(v["resultCode"], "0300004", "{url}: {v}");
    assert_eq!(
        v["resultDesc"], "The format of callBackURL is incorrect.",
        "{url}: {v}"
    );
}

/// Link-local (cloud metadata), unspecified, multicast and broadcast addresses, also written
/// as IPv4-mapped IPv6 or as a number, and URLs with user info are refused at generate;
/// loopback and private addresses are accepted by default.
#[tokio::test]
async fn callback_addresses_refused_urls_answer_0300004() {
    let server = TestServer::start(&[("CCFS_MAX_ACTIVE_JOBS", "100")]);
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://[fe80::1]/cb",
        "http://0.0.0.0/cb",
        "http://[::]/cb",
        "http://224.0.0.1/cb",
        "http://255.255.255.255/cb",
        "http://[::ffff:169.254.169.254]/cb",
        "https://user:pass@example.com/cb",
        "https://user@example.com/cb",
        "http://user:pass@127.0.0.1:9/cb",
    ] {
        assert_bad_callback_url(&generate_with(&c, url).await, url);
    }
    for url in [
        "http://127.0.0.1:9/cb",
        "http://[::1]:9/cb",
        "http://10.1.2.3/cb",
        "http://192.168.1.1/cb",
        "https://example.com/cb",
    ] {
        let v = generate_with(&c, url).await;
        assert_eq!(v["resultCode"], "0", "{url}: {v}");
    }
}

/// With loopback denied, an IP literal is refused at generate; a host name is accepted and
/// judged at delivery by the address it resolves to: the attempt fails with the policy's
/// reason and the receiver gets nothing.
#[tokio::test]
async fn callback_addresses_a_host_name_is_judged_by_its_resolved_address() {
    let server = TestServer::start(&[("CCFS_CALLBACK_DENY", r#"["127.0.0.0/8", "::1/128"]"#)]);
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    let literal = receiver.url("/cb");
    assert_bad_callback_url(&generate_with(&c, &literal).await, &literal);

    let by_name = format!("http://localhost:{}/cb", receiver.addr().port());
    let v = generate_with(&c, &by_name).await;
    assert_eq!(v["resultCode"], "0", "{v}");
    let id = v["resultData"]["responseId"]
        .as_str()
        .expect("id")
        .to_owned();
    let cb = first_attempt(&c, &id).await;
    let error = cb["lastError"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("the receiver's address ")
            && error.ends_with(
                " is refused by the callback address policy (callback_deny/callback_allow)"
            ),
        "{cb}"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reaches the receiver"
    );
}

/// `callback_allow` is an exception inside a denied network: with everything denied but
/// 127.0.0.1, a callback to it is delivered, by address and by name.
#[tokio::test]
async fn callback_addresses_allow_is_an_exception_to_deny() {
    let server = TestServer::start(&[
        ("CCFS_CALLBACK_DENY", r#"["0.0.0.0/0", "::/0"]"#),
        ("CCFS_CALLBACK_ALLOW", r#"["127.0.0.1/32"]"#),
    ]);
    let receiver = Receiver::start().await;
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);
    for url in [
        receiver.url("/cb"),
        format!("http://localhost:{}/cb", receiver.addr().port()),
    ] {
        let v = generate_with(&c, &url).await;
        assert_eq!(v["resultCode"], "0", "{url}: {v}");
    }
    receiver.wait_for_delivered(2, LONG).await;
    for url in ["http://10.1.2.3/cb", "http://[::1]:9/cb"] {
        assert_bad_callback_url(&generate_with(&c, url).await, url);
    }
}

/// A closed port and a receiver that never answers read the same in `lastError`, so callbacks
/// cannot probe which ports are open; an HTTP answer is still named.
#[tokio::test]
async fn callback_addresses_no_answer_reads_the_same_whatever_the_cause() {
    let server = TestServer::start(&[
        ("CCFS_CALLBACK_TIMEOUT_SECS", "2"),
        ("CCFS_CALLBACK_CONNECT_TIMEOUT_SECS", "1"),
    ]);
    let app = server.create_app(&AppSpec::default());
    let c = server.client(&app);

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address")
    };
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_addr = silent.local_addr().expect("address");
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let failing = Receiver::start().await;
    failing.set_failing(true);

    let mut errors = Vec::new();
    for url in [
        format!("http://{closed}/cb"),
        format!("http://{silent_addr}/cb"),
        failing.url("/cb"),
    ] {
        let v = generate_with(&c, &url).await;
        let id = v["resultData"]["responseId"]
            .as_str()
            .expect("id")
            .to_owned();
        let cb = first_attempt(&c, &id).await;
        errors.push(cb["lastError"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        errors,
        [
            "no answer from the receiver",
            "no answer from the receiver",
            "the receiver answered HTTP 500"
        ]
    );
    // The operator still sees the exact cause.
    wait_until(Duration::from_secs(10), || async {
        server.log().contains("callback got no answer")
    })
    .await;
}
