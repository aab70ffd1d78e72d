//! The client against the real server, in-process, over HTTPS with its self-signed
//! certificate: every call, the typed errors, resumed and corrupted downloads, and the callback
//! verifier on a callback the server really sent.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccfs_client::{CallbackVerifier, Client, Error, OnConflict, ResultCode, VerifyError};
use ccfs_protocol::auth::{format_timestamp, sign, AuthError, Precision, RequestParts};
use ccfs_protocol::messages::GenerateBody;
use ccfs_protocol::{ResponseId, ZipFileName};
use ccfs_server::model::Role;
use ccfs_server::{Config, NewApp, RunningServer};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(50);

struct Env {
    _dir: tempfile::TempDir,
    server: RunningServer,
    cert: Vec<u8>,
    export_ak: String,
    export_sk: String,
    ingest_ak: String,
    ingest_sk: String,
}

impl Env {
    async fn start() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let server = RunningServer::start(config).await.expect("server starts");
        let cert = std::fs::read(dir.path().join("tls/cert.pem")).expect("self-signed cert");
        let tenants = server.tenants();
        let (export, export_sk) = tenants
            .create(NewApp {
                name: "exporter".into(),
                accounts: vec!["acme01".into()],
                ..NewApp::default()
            })
            .await
            .expect("export app");
        let (ingest, ingest_sk) = tenants
            .create(NewApp {
                name: "cti".into(),
                roles: vec![Role::Ingest],
                ..NewApp::default()
            })
            .await
            .expect("ingest app");
        Env {
            _dir: dir,
            server,
            cert,
            export_ak: export.app_id.to_string(),
            export_sk,
            ingest_ak: ingest.app_id.to_string(),
            ingest_sk,
        }
    }

    fn client(&self, ak: &str, sk: &str) -> Client {
        Client::builder(self.server.base_url())
            .credentials(ak, sk)
            .ca_cert_pem(&self.cert)
            .build()
            .expect("client")
    }

    fn exporter(&self) -> Client {
        self.client(&self.export_ak, &self.export_sk)
    }

    fn ingester(&self) -> Client {
        self.client(&self.ingest_ak, &self.ingest_sk)
    }

    /// Imports `n` records of the exporter on 2024-05-01.
    async fn import(&self, n: usize) {
        let records: Vec<Map<String, Value>> = (0..n)
            .map(|i| record(&format!("r{i}"), &self.export_ak, i))
            .collect();
        let counts = self.ingester().import(&records).await.expect("import");
        assert_eq!(counts.inserted, n as u64);
        assert_eq!(counts.already_present, 0);
    }

    /// Generates the 2024-05-01 window and waits for the file.
    async fn export(&self, callback_url: &str) -> (ResponseId, ZipFileName, String) {
        let client = self.exporter();
        let id = client
            .generate(&window(callback_url))
            .await
            .expect("generate");
        let done = client.wait(&id, POLL, WAIT).await.expect("job succeeds");
        assert_eq!(done.state, "succeeded");
        let name = ZipFileName::parse(&done.agent_opr_info_file_name).expect("file name");
        (id, name, done.sha256.expect("sha256 in the status"))
    }
}

fn record(id: &str, developer: &str, i: usize) -> Map<String, Value> {
    let minute = i % 600;
    let v = json!({
        "id": id, "developer_id": developer, "account_id": "acme01",
        "agent_id": format!("{}", 1000 + i % 50), "service_no": "1", "skill_id": "2",
        "call_id": format!("call-{i}"),
        "begin_time": format!("2024-05-01 {:02}:{:02}:00", 8 + minute / 60, minute % 60),
        "end_time": format!("2024-05-01 {:02}:{:02}:30", 8 + minute / 60, minute % 60),
        "op_type": "4", "op_object": "-1", "op_cause": "0", "media_type": "5", "vdn_id": "1",
        "cc_id": "1", "agent_type": "4", "phone_no": format!("8888{i:05}"), "callIn_out": "0",
        "location_id": "0", "logon_sn": format!("{i}"), "skillInfo_sn": ""
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object"),
    }
}

fn window(callback_url: &str) -> GenerateBody {
    GenerateBody {
        begin_time: "2024-05-01 00:00:00".into(),
        end_time: "2024-05-02 00:00:00".into(),
        account_id: None,
        agent_id: None,
        callback_url: callback_url.into(),
    }
}

const NOWHERE: &str = "http://127.0.0.1:9/unused";

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read file")))
}

#[tokio::test]
async fn every_call_over_https() {
    let env = Env::start().await;
    env.import(300).await;
    // Importing again stores nothing new.
    let again = env
        .ingester()
        .import(&[record("r0", &env.export_ak, 0)])
        .await
        .expect("re-import");
    assert_eq!((again.inserted, again.already_present), (0, 1));

    let client = env.exporter();
    let (id, name, sha) = env.export(NOWHERE).await;
    let status = client.status(&id).await.expect("status");
    assert_eq!(status.response_id, id.as_str());
    assert_eq!(status.record_count, Some(300));

    let out = tempfile::tempdir().expect("out dir");
    let dest = out.path().join(name.as_str());
    let mut seen = Vec::new();
    let got = client
        .download(&name, &dest, |p| seen.push(p))
        .await
        .expect("download");
    assert!(got.verified);
    assert_eq!(got.sha256, sha);
    assert_eq!(got.resumed_from, 0);
    assert_eq!(sha256_file(&dest), sha);
    assert_eq!(Some(got.size), status.file_size);
    assert!(!ccfs_client::download::part_path(&dest).exists());
    let last = seen.last().expect("progress reported");
    assert_eq!(last.done, got.size);
    assert_eq!(last.total, Some(got.size));

    // Idempotent generate: the same key and body answer the same job.
    let body = window(NOWHERE);
    let a = client
        .generate_idempotent(&body, "k-1")
        .await
        .expect("first");
    let b = client
        .generate_idempotent(&body, "k-1")
        .await
        .expect("second");
    assert_eq!(a, b);
    let c = client.generate(&body).await.expect("plain");
    assert_ne!(a, c);

    // Signing only `host` (public Java clients) works too.
    let host_only = Client::builder(env.server.base_url())
        .credentials(&env.export_ak, &env.export_sk)
        .ca_cert_pem(&env.cert)
        .signed_headers(ccfs_client::SignedHeaders::HostOnly)
        .build()
        .expect("client");
    assert_eq!(
        host_only.status(&id).await.expect("status").state,
        "succeeded"
    );

    // `insecure` talks to the self-signed server without its certificate; nothing else does.
    let insecure = Client::builder(env.server.base_url())
        .credentials(&env.export_ak, &env.export_sk)
        .insecure(true)
        .build()
        .expect("client");
    assert_eq!(
        insecure.status(&id).await.expect("status").state,
        "succeeded"
    );
    let untrusting = Client::builder(env.server.base_url())
        .credentials(&env.export_ak, &env.export_sk)
        .build()
        .expect("client");
    match untrusting.status(&id).await {
        Err(e @ Error::UntrustedCertificate { .. }) => {
            assert!(
                e.to_string().contains("--ca-cert ccfs-data/tls/cert.pem"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }

    env.server.shutdown().await;
}

#[tokio::test]
async fn typed_errors() {
    let env = Env::start().await;
    let client = env.exporter();

    let mut bad = window(NOWHERE);
    bad.begin_time = "2024-05-03 00:00:00".into();
    match client.generate(&bad).await {
        Err(Error::Api {
            code,
            result_code,
            desc,
        }) => {
            assert_eq!(code, ResultCode::BeginAfterEnd);
            assert_eq!(result_code, "0300013");
            assert_eq!(desc, "The beginTime cannot be later than the endTime.");
        }
        other => panic!("expected 0300013, got {other:?}"),
    }

    let mut foreign = window(NOWHERE);
    foreign.account_id = Some("not-mine".into());
    let e = client.generate(&foreign).await.expect_err("0300015");
    assert_eq!(e.code(), Some(ResultCode::AccountNotOwned));

    let unknown: ZipFileName = "20240501_0123456789abcdef0123456789abcdef.zip"
        .parse()
        .expect("name");
    let out = tempfile::tempdir().expect("out dir");
    match client
        .download(&unknown, out.path().join("x.zip"), |_| {})
        .await
    {
        Err(Error::Api {
            code, result_code, ..
        }) => {
            assert_eq!(code, ResultCode::FileNotFound);
            assert_eq!(result_code, "0300011");
        }
        other => panic!("expected 0300011, got {other:?}"),
    }
    assert!(!out.path().join("x.zip").exists());
    assert!(!out.path().join("x.zip.part").exists());

    let id = ResponseId::parse("0123456789abcdef0123456789abcdef").expect("id");
    let e = client.status(&id).await.expect_err("0300011");
    assert_eq!(e.code(), Some(ResultCode::FileNotFound));

    let wrong = env.client(&env.export_ak, "not-the-secret");
    match wrong.generate(&window(NOWHERE)).await {
        Err(Error::Unauthorized {
            status,
            code,
            result_code,
            desc,
        }) => {
            assert_eq!(status, 401);
            assert_eq!(code, ResultCode::AuthFailed);
            assert_eq!(result_code, "0300401");
            assert!(desc.contains("signature mismatch"), "{desc}");
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let unknown_key = env.client("nosuchapp", "x");
    let e = unknown_key.status(&id).await.expect_err("401");
    assert!(
        matches!(e, Error::Unauthorized { status: 401, .. }),
        "{e:?}"
    );

    // The export credential may not import: HTTP 403, 0300401.
    let e = client
        .import(&[record("r1", &env.export_ak, 1)])
        .await
        .expect_err("403");
    assert!(
        matches!(e, Error::Unauthorized { status: 403, .. }),
        "{e:?}"
    );
    // A bad record names itself.
    let mut broken = record("r1", &env.export_ak, 1);
    broken.insert("begin_time".into(), json!("yesterday"));
    let e = env.ingester().import(&[broken]).await.expect_err("invalid");
    assert_eq!(e.code(), Some(ResultCode::BadFormat));
    assert!(
        e.desc()
            .is_some_and(|d| d.contains("records[0].begin_time")),
        "{e}"
    );

    env.server.shutdown().await;
}

#[tokio::test]
async fn import_with_chooses_what_a_conflict_does() {
    let env = Env::start().await;
    env.import(2).await;
    let mut fixed = record("r1", &env.export_ak, 1);
    fixed.insert("op_type".into(), json!("9"));
    let ingester = env.ingester();

    // By default a conflict fails the call and stores nothing.
    let e = ingester
        .import(&[record("n1", &env.export_ak, 1), fixed.clone()])
        .await
        .expect_err("conflict");
    assert_eq!(e.code(), Some(ResultCode::BadFormat));
    assert!(
        e.desc().is_some_and(
            |d| d.contains("records[1].id") && d.contains("conflicts with a stored record")
        ),
        "{e}"
    );
    let skipped = ingester
        .import_with(
            &[record("n1", &env.export_ak, 1), fixed.clone()],
            OnConflict::Skip,
        )
        .await
        .expect("skip");
    assert_eq!(
        (skipped.inserted, skipped.conflicts, skipped.replaced),
        (1, 1, 0)
    );
    assert_eq!(skipped.conflict_ids, ["r1"]);
    let replaced = ingester
        .import_with(std::slice::from_ref(&fixed), OnConflict::Replace)
        .await
        .expect("replace");
    assert_eq!((replaced.conflicts, replaced.replaced), (1, 1));
    let again = ingester.import(&[fixed]).await.expect("unchanged");
    assert_eq!((again.inserted, again.already_present), (0, 1));
    env.server.shutdown().await;
}

#[tokio::test]
async fn downloads_resume_and_catch_corruption() {
    let env = Env::start().await;
    env.import(3000).await;
    let client = env.exporter();
    let (_, name, sha) = env.export(NOWHERE).await;
    let out = tempfile::tempdir().expect("out dir");

    let whole = out.path().join("whole.zip");
    client
        .download(&name, &whole, |_| {})
        .await
        .expect("download");
    let bytes = std::fs::read(&whole).expect("read");
    assert!(bytes.len() > 1000, "a file worth cutting: {}", bytes.len());
    let half = bytes.len() / 2;

    // A download cut off half-way: the first half is in the part file.
    let dest = out.path().join("resumed.zip");
    let part = ccfs_client::download::part_path(&dest);
    std::fs::write(&part, &bytes[..half]).expect("write part");
    let mut first_progress = None;
    let got = client
        .download(&name, &dest, |p| {
            first_progress.get_or_insert(p);
        })
        .await
        .expect("resumed download");
    assert_eq!(got.resumed_from, half as u64);
    assert!(got.verified);
    assert_eq!(got.sha256, sha);
    assert_eq!(sha256_file(&dest), sha);
    assert_eq!(first_progress.map(|p| p.done), Some(half as u64));
    assert!(!part.exists());

    // A corrupted part: the checksum catches it and the part is gone.
    let dest = out.path().join("corrupt.zip");
    let part = ccfs_client::download::part_path(&dest);
    let mut garbage = bytes[..half].to_vec();
    garbage[half / 2] ^= 0xff;
    std::fs::write(&part, &garbage).expect("write part");
    match client.download(&name, &dest, |_| {}).await {
        Err(Error::Checksum { expected, actual }) => {
            assert_eq!(expected, sha);
            assert_ne!(actual, sha);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert!(!part.exists());
    assert!(!dest.exists());
    // The next call starts over and succeeds.
    let got = client
        .download(&name, &dest, |_| {})
        .await
        .expect("fresh download");
    assert_eq!(got.resumed_from, 0);
    assert_eq!(got.sha256, sha);

    // A part as long as the whole file cannot be resumed (416): the client starts over.
    let dest = out.path().join("full-part.zip");
    std::fs::write(ccfs_client::download::part_path(&dest), &bytes).expect("write");
    let got = client
        .download(&name, &dest, |_| {})
        .await
        .expect("after 416");
    assert_eq!(got.sha256, sha);

    env.server.shutdown().await;
}

/// Interrupts the stream for real: a TCP relay in front of the server that cuts the first
/// connection carrying the file after `cut` bytes. The client resumes by itself.
#[tokio::test]
async fn a_connection_cut_mid_download_is_resumed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::start().await;
    env.import(3000).await;
    let (_, name, sha) = env.export(NOWHERE).await;

    let relay = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind relay");
    let relay_addr = relay.local_addr().expect("relay address");
    let upstream = env.server.local_addr;
    let connections = Arc::new(Mutex::new(0u32));
    let counter = connections.clone();
    let relay_task = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = relay.accept().await else {
                return;
            };
            let n = {
                let mut c = counter.lock().unwrap_or_else(|p| p.into_inner());
                *c += 1;
                *c
            };
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.split();
                let (mut ro, mut wo) = outbound.split();
                let up = tokio::io::copy(&mut ri, &mut wo);
                // The first connection gets only 24 KiB of the answer (TLS records are up to 16 KiB, so at least one arrives whole), then both ends close.
                let down = async {
                    let limit = if n == 1 { 24 * 1024 } else { u64::MAX };
                    let mut buf = vec![0u8; 1024];
                    let mut sent = 0u64;
                    while sent < limit {
                        let k = match ro.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(k) => k,
                        };
                        let k = k.min((limit - sent) as usize);
                        if wi.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                        sent += k as u64;
                    }
                };
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });

    // The certificate names 127.0.0.1, so the relay's address verifies too.
    let client = Client::builder(format!("https://{relay_addr}"))
        .credentials(&env.export_ak, &env.export_sk)
        .ca_cert_pem(&env.cert)
        .build()
        .expect("client");
    let out = tempfile::tempdir().expect("out dir");
    let dest = out.path().join(name.as_str());
    let got = client
        .download(&name, &dest, |_| {})
        .await
        .expect("download across a cut");
    let conns = *connections.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        got.resumed_from > 0,
        "resumed from {} of {} after {conns} connections",
        got.resumed_from,
        got.size
    );
    assert_eq!(got.sha256, sha);
    assert_eq!(sha256_file(&dest), sha);
    assert!(*connections.lock().unwrap_or_else(|p| p.into_inner()) >= 2);
    relay_task.abort();
    env.server.shutdown().await;
}

/// One request the test receiver got.
#[derive(Clone)]
struct Got {
    method: String,
    path: String,
    query: Option<String>,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            body: &self.body,
        }
    }
}

/// An HTTP receiver that records requests and answers 200.
async fn receiver() -> (String, Arc<Mutex<Vec<Got>>>, tokio::task::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let sink = sink.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(Got {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                headers: parts.headers,
                body,
            });
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!(
        "http://{}/ccfs/cb?tenant=a",
        listener.local_addr().expect("addr")
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got, task)
}

#[tokio::test]
async fn verifier_accepts_the_servers_callback_and_refuses_the_rest() {
    let env = Env::start().await;
    env.import(10).await;
    let (url, got, task) = receiver().await;
    let (id, name, _) = env.export(&url).await;
    let deadline = std::time::Instant::now() + WAIT;
    let cb = loop {
        if let Some(cb) = got
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first()
            .cloned()
        {
            break cb;
        }
        assert!(std::time::Instant::now() < deadline, "no callback");
        tokio::time::sleep(POLL).await;
    };

    let verifier = CallbackVerifier::new(&env.export_ak, &env.export_sk);
    let body = verifier
        .verify_headers(&cb.parts(), &cb.headers)
        .expect("the genuine callback verifies");
    assert_eq!(body.response_id, id.as_str());
    assert_eq!(body.agent_opr_info_file_name, name.as_str());

    // Replayed: the very same request again.
    assert_eq!(
        verifier.verify_headers(&cb.parts(), &cb.headers),
        Err(VerifyError::Auth(AuthError::Replay))
    );

    // Tampered: another file name in the body, same signature.
    let fresh = CallbackVerifier::new(&env.export_ak, &env.export_sk);
    let text = String::from_utf8(cb.body.clone()).expect("UTF-8");
    let tampered = text.replacen(&name.as_str()[..8], "20000101", 1);
    assert_ne!(tampered, text);
    let mut t = cb.clone();
    t.body = tampered.into_bytes();
    assert_eq!(
        fresh.verify_headers(&t.parts(), &t.headers),
        Err(VerifyError::Auth(AuthError::SignatureMismatch))
    );

    // Forged: signed with a guessed secret.
    let host = cb.headers["host"].to_str().expect("host").to_owned();
    let forged = sign(
        &env.export_ak,
        "a guess",
        &format_timestamp(jiff::Timestamp::now(), Precision::Millis),
        &cb.parts(),
        &[("host", &host)],
    );
    let mut f = cb.clone();
    f.headers
        .insert("authorization", forged.parse().expect("header value"));
    assert_eq!(
        fresh.verify_headers(&f.parts(), &f.headers),
        Err(VerifyError::Auth(AuthError::SignatureMismatch))
    );

    // Genuinely signed, but by another app.
    let other = CallbackVerifier::new(&env.ingest_ak, &env.export_sk);
    assert_eq!(
        other.verify_headers(&cb.parts(), &cb.headers),
        Err(VerifyError::OtherKey)
    );

    // A fresh verifier (say, after a restart) accepts the genuine one once.
    assert!(fresh.verify_headers(&cb.parts(), &cb.headers).is_ok());
    task.abort();
    env.server.shutdown().await;
}
