//! End-to-end outage tests: a node on PostgreSQL loses its database while it runs, and gets it
//! back, without a restart. Meanwhile `/readyz` answers 503 naming the database and every
//! signed request fails fast and cleanly (HTTP 500, `0300500` with a request id that the
//! node's log holds, on a line that names the node); afterwards requests succeed, and a job
//! accepted before the outage ends `succeeded` with its callback delivered: nothing is lost.
//!
//! Two ways to lose the database: a TCP proxy between the node and PostgreSQL that stops
//! listening and closes every connection, then listens again on the same port ([`Proxy`]); and
//! `pg_terminate_backend` on every connection of the node's database. Each PostgreSQL test runs
//! on a database of its own ([`FreshDb`]), created from `CCFS_TEST_POSTGRES_URL` and dropped at
//! the end; they are ignored unless asked for:
//!
//! `CCFS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1/test cargo test -p ccfs --test e2e
//! outage:: -- --include-ignored`
//!
//! A file store that does not answer is tested here with an S3 endpoint that accepts
//! connections and never answers (no PostgreSQL needed); S3 itself is the S3 tests' subject.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Connection;

use crate::harness::*;

/// The limit for an answer during the outage: the node answers within its 3 s database
/// acquire limit (2 s for `/readyz`); this only bounds a failure, with room for a busy machine.
const FAST: Duration = Duration::from_secs(10);
/// The limit for the node to recover, a job to finish or a callback to arrive.
const LONG: Duration = Duration::from_secs(120);
/// The generate window; every record lies inside it.
const BEGIN: &str = "2024-05-01 00:00:00";
const END: &str = "2024-05-02 00:00:00";
/// Records each test imports.
const RECORDS: u32 = 50;

// ---------------------------------------------------------------------------------------------
// A database of one's own

/// `CCFS_TEST_POSTGRES_URL`, which a PostgreSQL test cannot do without.
fn test_url() -> url::Url {
    let raw = std::env::var("CCFS_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "set CCFS_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1/test) to run the \
             PostgreSQL outage tests"
        )
    });
    url::Url::parse(&raw).unwrap_or_else(|e| panic!("CCFS_TEST_POSTGRES_URL: {e}"))
}

/// A database `ccfs_e2e_<random>` created for one test and dropped (connections and all) when
/// this is dropped, even after a failure.
struct FreshDb {
    admin: url::Url,
    name: String,
}

impl FreshDb {
    async fn create() -> FreshDb {
        let admin = test_url();
        let name = format!("ccfs_e2e_{}", hex::encode(rand::random::<[u8; 6]>()));
        let mut conn = sqlx::PgConnection::connect(admin.as_str())
            .await
            .unwrap_or_else(|e| panic!("connect to CCFS_TEST_POSTGRES_URL: {e}"));
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        FreshDb { admin, name }
    }

    /// Where PostgreSQL listens.
    fn server_addr(&self) -> SocketAddr {
        let host = self.admin.host_str().unwrap_or("127.0.0.1");
        let port = self.admin.port().unwrap_or(5432);
        (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("cannot resolve {host}:{port}"))
    }

    /// The URL of this database, at PostgreSQL itself or, with `port`, through a proxy on
    /// `127.0.0.1:port`.
    fn url(&self, port: Option<u16>) -> String {
        let mut url = self.admin.clone();
        url.set_path(&self.name);
        if let Some(port) = port {
            url.set_host(Some("127.0.0.1")).expect("a host");
            url.set_port(Some(port)).expect("a port");
        }
        url.to_string()
    }

    /// Ends every connection to this database (the node's pool, idle or busy); returns how
    /// many there were.
    async fn terminate_backends(&self) -> i64 {
        let mut conn = sqlx::PgConnection::connect(self.admin.as_str())
            .await
            .expect("connect to CCFS_TEST_POSTGRES_URL");
        sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_one(&mut conn)
        .await
        .expect("pg_terminate_backend")
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        // A runtime of its own on a thread of its own: a drop cannot await, and may run inside
        // the test's runtime, which cannot be blocked on.
        let admin = self.admin.to_string();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::raw_sql(&sql).execute(&mut conn).await?;
                Ok::<_, sqlx::Error>(())
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy that can be cut

/// A TCP proxy on `127.0.0.1` to `upstream`, on plain threads (the node and the `ccfs` commands
/// the test runs connect through it while the test's own runtime may be blocked waiting for
/// them). [`Proxy::cut`] stops listening and closes every connection both ways, as a database
/// that went away; [`Proxy::restore`] listens again on the same port.
struct Proxy {
    upstream: SocketAddr,
    port: u16,
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
    /// Both ends of every connection made, to shut them down on a cut.
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let mut proxy = Proxy {
            upstream,
            port,
            running: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let upstream = self.upstream;
        let accept = {
            let (stop, streams) = (stop.clone(), streams.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break; // the listener closes with this thread
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(upstream) else {
                        continue;
                    };
                    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                        continue;
                    };
                    if let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) {
                        lock(&streams).extend([c3, s3]);
                    }
                    std::thread::spawn(move || pipe(client, s2));
                    std::thread::spawn(move || pipe(server, c2));
                }
            })
        };
        self.running = Some(Running {
            stop,
            accept,
            streams,
        });
    }

    /// Stops listening (a connect is refused from now on) and closes every connection.
    fn cut(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees the stop and ends, closing the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = running.accept.join();
        for s in lock(&running.streams).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    fn restore(&mut self) {
        assert!(self.running.is_none(), "the proxy is not cut");
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind the proxy again");
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies `from` to `to` until either end closes, then closes `to` for writing.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The node and its answers

/// `ccfs serve` on `database_url`, named `node`, with short leases and fast callback retries.
fn start_node(database_url: &str, node: &str) -> TestServer {
    TestServer::start(&[
        ("CCFS_DATABASE_URL", database_url),
        ("CCFS_NODE_NAME", node),
        ("CCFS_JOB_LEASE_SECS", "3"),
        ("CCFS_CALLBACK_INITIAL_BACKOFF_SECS", "1"),
        ("CCFS_CALLBACK_MAX_BACKOFF_SECS", "1"),
        ("CCFS_CALLBACK_TIMEOUT_SECS", "2"),
    ])
}

/// An export app with [`RECORDS`] records imported for it.
async fn app_with_records(server: &TestServer) -> App {
    let app = server.create_app(&AppSpec::default());
    let ingest = server.create_app(&AppSpec {
        name: "cti",
        roles: &["ingest"],
        ..AppSpec::default()
    });
    let records: Vec<Value> = (0..RECORDS)
        .map(|i| {
            let t = format!("2024-05-01 10:{:02}:{:02}", i / 60, i % 60);
            record(&format!("rec{i:03}"), &app.app_id, &t, &t)
        })
        .collect();
    let got = server.client(&ingest).import_ok(&records).await;
    assert_eq!(got, (u64::from(RECORDS), 0), "import");
    app
}

fn generate_body(receiver: &Receiver) -> Value {
    json!({ "beginTime": BEGIN, "endTime": END, "callBackURL": receiver.url("/ccfs/cb") })
}

/// Options that give up on an answer after [`FAST`].
fn fast() -> Opts {
    let mut opts = Opts::new();
    opts.timeout = Some(FAST);
    opts
}

/// `GET /readyz` within [`FAST`]: status and body.
async fn readyz(server: &TestServer) -> (StatusCode, String) {
    let r = server
        .http()
        .get(server.url("/readyz"))
        .timeout(FAST)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /readyz: {e}"));
    let status = r.status();
    (status, r.text().await.unwrap_or_default())
}

/// Asserts an HTTP 500 `0300500` answer; returns its request id, after checking that the
/// node's log holds it on a line that names the node.
async fn assert_internal(server: &TestServer, node: &str, got: &(StatusCode, Value)) -> String {
    let id = internal_error_id(got);
    let needle = format!("request_id={id}");
    let line = wait_some(FAST, &format!("{needle} in the log"), || async {
        server
            .log()
            .lines()
            .find(|l| l.contains(&needle))
            .map(str::to_owned)
    })
    .await;
    assert!(
        line.starts_with(&format!("node={node} ")),
        "the log line does not name the node {node}: {line}"
    );
    id
}

/// The first delivered callback of `id`.
async fn delivered_for(receiver: &Receiver, id: &str) -> ReceivedCallback {
    wait_some(LONG, &format!("the callback of {id}"), || async {
        receiver
            .delivered()
            .into_iter()
            .find(|c| c.json()["msgBody"]["responseId"] == id)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The tests

/// The database goes away (the proxy stops listening and closes every connection) and comes
/// back on the same address; the node is never restarted.
#[tokio::test]
#[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL"]
async fn postgres_goes_away_and_comes_back() {
    const NODE: &str = "outage-a";
    let db = FreshDb::create().await;
    let mut proxy = Proxy::start(db.server_addr());
    let server = start_node(&db.url(Some(proxy.port)), NODE);
    let receiver = Receiver::start().await;
    let app = app_with_records(&server).await;
    let client = server.client(&app);
    assert_eq!(readyz(&server).await, (StatusCode::OK, "ready\n".into()));

    // The receiver refuses until the database is back, so a delivered callback can only be
    // one delivered after the restore, whenever the export itself ran.
    receiver.set_failing(true);
    let before = client.generate(generate_body(&receiver)).await;
    proxy.cut();

    let (status, body) = readyz(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.starts_with("not ready\n"), "{body}");
    assert!(!body.contains("database: ok"), "{body}");
    assert!(body.contains("file store: ok"), "{body}");
    assert!(!body.contains("postgres://"), "{body}");

    let status = client
        .call_with(STATUS, json!({ "responseId": before }), &fast())
        .await;
    let first = assert_internal(&server, NODE, &status).await;
    let generate = client
        .call_with(
            GENERATE,
            json!({ "beginTime": BEGIN, "endTime": END }),
            &fast(),
        )
        .await;
    let second = assert_internal(&server, NODE, &generate).await;
    assert_ne!(first, second, "each failed request has its own id");
    assert!(receiver.delivered().is_empty());

    proxy.restore();
    wait_some(LONG, "/readyz 200 after the restore", || async {
        (readyz(&server).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    let (status, v) = client
        .call_with(STATUS, json!({ "responseId": before }), &fast())
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    receiver.set_failing(false);

    // Nothing lost: the job accepted before the outage finishes with every record, and its
    // callback arrives; a job accepted after it runs as usual.
    let st = client.wait_state(&before, "succeeded", LONG).await;
    assert_eq!(st["recordCount"], RECORDS, "{st}");
    let cb = delivered_for(&receiver, &before).await;
    assert_eq!(cb.verify(&app.secret).map(|_| ()), Ok(()));
    let after = client.generate(generate_body(&receiver)).await;
    let st = client.wait_state(&after, "succeeded", LONG).await;
    assert_eq!(st["recordCount"], RECORDS, "{st}");
    delivered_for(&receiver, &after).await;

    // The node's name is on its metrics too.
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains(&format!("node=\"{NODE}\"")),
        "no node label in the metrics:\n{metrics}"
    );
    assert!(server.log().contains(": the store answers again"));
}

/// Every connection of the node's database is ended by PostgreSQL while the node serves: a
/// request in flight may fail (cleanly), every later one succeeds, and no job is lost.
#[tokio::test]
#[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL"]
async fn postgres_connections_terminated_while_serving() {
    const NODE: &str = "outage-b";
    let db = FreshDb::create().await;
    let server = start_node(&db.url(None), NODE);
    let receiver = Receiver::start().await;
    let app = app_with_records(&server).await;
    let client = server.client(&app);
    let before = client.generate(generate_body(&receiver)).await;

    // Status requests one after another while every backend is terminated: at most the one in
    // flight at that moment fails, and only as 0300500 with a request id.
    let mut answers = Vec::new();
    let requests = async {
        for _ in 0..20 {
            let got = client
                .call_with(STATUS, json!({ "responseId": before }), &fast())
                .await;
            answers.push(got);
        }
    };
    let (terminated, ()) = tokio::join!(db.terminate_backends(), requests);
    assert!(terminated > 0, "the node had no connection to terminate");
    let mut failed = 0;
    for got in &answers {
        if got.0 == StatusCode::OK {
            assert_eq!(got.1["resultCode"], "0", "{}", got.1);
        } else {
            assert_internal(&server, NODE, got).await;
            failed += 1;
        }
    }
    assert!(failed <= 1, "{failed} requests failed");

    // After it, everything works, at once.
    let terminated = db.terminate_backends().await;
    assert!(terminated > 0, "the node had no connection to terminate");
    let (status, v) = client
        .call_with(STATUS, json!({ "responseId": before }), &fast())
        .await;
    assert_eq!(
        (status, &v["resultCode"]),
        (StatusCode::OK, &json!("0")),
        "{v}"
    );
    assert_eq!(readyz(&server).await, (StatusCode::OK, "ready\n".into()));
    let st = client.wait_state(&before, "succeeded", LONG).await;
    assert_eq!(st["recordCount"], RECORDS, "{st}");
    delivered_for(&receiver, &before).await;
    let after = client.generate(generate_body(&receiver)).await;
    client.wait_state(&after, "succeeded", LONG).await;
    delivered_for(&receiver, &after).await;
}

/// A file store that stops answering after the start (an S3 endpoint that hangs) makes
/// `/readyz` answer 503 naming it, within its time limit, while the database answers.
#[tokio::test]
async fn readyz_names_a_file_store_that_does_not_answer() {
    // Answers the start's check ("no such file": the bucket is there), then accepts every
    // later connection and never reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("address"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (n, conn) in silent.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            if n == 0 {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => seen.extend_from_slice(&buf[..k]),
                    }
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            } else {
                held.push(conn);
            }
        }
    });
    let server = TestServer::start(&[
        ("CCFS_BLOB_URL", "s3://ccfs/exports"),
        ("CCFS_AWS_ENDPOINT_URL", &endpoint),
        ("CCFS_AWS_ALLOW_HTTP", "true"),
        ("CCFS_AWS_REGION", "garage"),
        ("CCFS_AWS_ACCESS_KEY_ID", "GKtest"),
        ("CCFS_AWS_SECRET_ACCESS_KEY", "secret-not-to-show"),
    ]);
    let (status, body) = readyz(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body,
        "not ready\ndatabase: ok\nfile store: no answer within 2 s\n"
    );
    assert!(!server.log().contains("secret-not-to-show"));
}
