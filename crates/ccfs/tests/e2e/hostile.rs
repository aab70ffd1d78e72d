//! Hostile and careless clients at the connection level: headers sent a byte at a time,
//! connections that stall or idle, more connections than allowed, and HTTP/2 spoken to an
//! HTTP/1.1 server. Each talks raw bytes over TCP (and TLS, trusting the server's certificate)
//! to the real `ccfs serve`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

/// A raw connection to the server, TLS or plain as the server speaks.
trait Raw: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Raw for T {}

/// Far longer than any deadline a test sets: a connection still open this long was not cut.
const NOT_CUT: Duration = Duration::from_secs(40);

fn tls_config(server: &TestServer) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let pem = server.data_dir().join("tls/cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pem).expect("server certificate") {
        roots.add(cert.expect("certificate")).expect("trust");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Opens a connection (completing the TLS handshake on an HTTPS server, with ALPN
/// `http/1.1`), so that the server has accepted it when this returns.
async fn connect(server: &TestServer) -> Box<dyn Raw> {
    let tcp = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .expect("connect");
    if server.url("/").starts_with("http://") {
        return Box::new(tcp);
    }
    let connector = tokio_rustls::TlsConnector::from(tls_config(server));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "the server negotiates http/1.1"
    );
    Box::new(tls)
}

/// Reads until the server closes the connection (EOF, or a reset) and returns what came; panics
/// if it is still open after `limit`.
async fn read_until_closed(conn: &mut dyn Raw, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(limit, read).await.is_err() {
        panic!("the connection is still open after {limit:?}");
    }
    got
}

/// Sends one GET of `/healthz` on a keep-alive connection and reads its whole answer.
async fn healthz_on(conn: &mut dyn Raw) {
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let done = |got: &[u8]| {
        let text = String::from_utf8_lossy(got);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                if k.eq_ignore_ascii_case("content-length") {
                    v.trim().parse().ok()
                } else {
                    None
                }
            })
            .expect("a Content-Length");
        body.len() >= length
    };
    while !done(&got) {
        let n = tokio::time::timeout(NOT_CUT, conn.read(&mut buf))
            .await
            .expect("an answer")
            .expect("read");
        assert!(n > 0, "closed before the answer was complete");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

/// Sends `bytes` one a second until the server closes the connection; returns how long that
/// took. Panics if every byte was sent (the header was never cut off).
async fn trickle_until_cut(conn: &mut dyn Raw, bytes: &[u8]) -> Duration {
    let start = Instant::now();
    for b in bytes {
        if conn.write_all(&[*b]).await.is_err() || conn.flush().await.is_err() {
            return start.elapsed();
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(n)) => panic!(
                "an answer to half a header: {}",
                String::from_utf8_lossy(&buf[..n])
            ),
        }
    }
    panic!("the whole header went through a byte a second without being cut off");
}

/// A header long enough to take a minute at a byte a second.
fn slow_header() -> Vec<u8> {
    format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(40)
    )
    .into_bytes()
}

async fn shed_count(server: &TestServer, reason: &str) -> u64 {
    let metrics = server.get("/metrics").await.text();
    metrics
        .lines()
        .filter(|l| l.starts_with("ccfs_connections_shed_total{"))
        .filter(|l| l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test]
async fn a_header_sent_a_byte_a_second_is_cut_off_after_header_timeout() {
    let server = TestServer::start(&[("CCFS_HEADER_TIMEOUT_SECS", "2")]);
    let mut conn = connect(&server).await;
    let took = trickle_until_cut(&mut *conn, &slow_header()).await;
    // Never before the deadline; "after" only loosely, the machine may be slow.
    assert!(took >= Duration::from_millis(1500), "cut after {took:?}");
    assert!(took < NOT_CUT, "cut after {took:?}");
    assert!(shed_count(&server, "header_timeout").await >= 1);
}

#[tokio::test]
async fn a_slow_header_on_a_keep_alive_connection_is_cut_off_too() {
    // The idle clock is long: only the header clock, started by the first byte of the second
    // request, can close this connection.
    let server = TestServer::start(&[
        ("CCFS_HEADER_TIMEOUT_SECS", "2"),
        ("CCFS_IDLE_TIMEOUT_SECS", "600"),
    ]);
    let mut conn = connect(&server).await;
    healthz_on(&mut *conn).await;
    let took = trickle_until_cut(&mut *conn, &slow_header()).await;
    assert!(took >= Duration::from_millis(1500), "cut after {took:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    // The header clock is long: only the idle clock can close this connection.
    let server = TestServer::start(&[
        ("CCFS_IDLE_TIMEOUT_SECS", "2"),
        ("CCFS_HEADER_TIMEOUT_SECS", "600"),
    ]);
    let mut conn = connect(&server).await;
    healthz_on(&mut *conn).await;
    let idle = Instant::now();
    let rest = read_until_closed(&mut *conn, NOT_CUT).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        idle.elapsed() >= Duration::from_millis(1500),
        "closed after {:?}",
        idle.elapsed()
    );
    assert!(shed_count(&server, "idle_timeout").await >= 1);
}

#[tokio::test]
async fn at_the_cap_stalled_connections_give_way_to_healthz_and_signed_requests() {
    // Stalled headers would never time out here: only the cap can make room.
    let server = TestServer::start(&[
        ("CCFS_MAX_CONNECTIONS", "8"),
        ("CCFS_HEADER_TIMEOUT_SECS", "600"),
    ]);
    let app = server.create_app(&AppSpec::default());
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut conn = connect(&server).await;
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0")
            .await
            .expect("half a header");
        conn.flush().await.expect("flush");
        stalled.push(conn);
    }
    let health = server.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text());
    let (status, body) = server
        .client(&app)
        .status("0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resultCode"], json!("0300011"), "{body}");
    // The oldest stalled connection gave way first.
    let first = read_until_closed(&mut *stalled[0], NOT_CUT).await;
    assert!(first.is_empty(), "{}", String::from_utf8_lossy(&first));
    assert!(shed_count(&server, "cap").await >= 1);
}

/// The HTTP/2 connection preface, sent with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the server answers to the HTTP/2 preface: nothing (a close) or an HTTP/1.1 refusal,
/// never an HTTP/2 frame.
async fn assert_no_http2(server: &TestServer) {
    let mut conn = connect(server).await;
    conn.write_all(H2_PREFACE).await.expect("send the preface");
    // An empty SETTINGS frame, as an HTTP/2 client sends right after the preface.
    conn.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .expect("send SETTINGS");
    conn.flush().await.expect("flush");
    // The first bytes back (none: the connection was closed) decide.
    let mut buf = [0u8; 256];
    let got = match tokio::time::timeout(NOT_CUT, conn.read(&mut buf)).await {
        Err(_) => panic!("no answer and no close after the HTTP/2 preface within {NOT_CUT:?}"),
        Ok(Ok(n)) => &buf[..n],
        Ok(Err(_)) => &[][..],
    };
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 4") || got.starts_with(b"HTTP/1.1 5"),
        "an HTTP/2 answer to the preface: {got:02x?}"
    );
}

#[tokio::test]
async fn the_http2_preface_over_tls_gets_no_http2() {
    let server = TestServer::start(&[]);
    assert_no_http2(&server).await;
}

#[tokio::test]
async fn the_http2_preface_over_plain_http_gets_no_http2() {
    let server = TestServer::start(&[("CCFS_PLAIN_HTTP", "true")]);
    assert_no_http2(&server).await;
}
