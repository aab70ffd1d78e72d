//! `ccfs client …` end to end: the real binary against a real `ccfs serve` over HTTPS —
//! generate, status, download (resumed after a cut), fetch (polling and by callback), typed
//! errors, and `receive`: a genuine callback from the server is verified and its file
//! downloaded; forged, replayed, tampered and foreign callbacks are refused with 401.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::*;
use ccfs_protocol::auth::{format_timestamp, sign, Precision, RequestParts};
use serde_json::{json, Value};

const DAY_BEGIN: &str = "2024-05-01 00:00:00";
const DAY_END: &str = "2024-05-02 00:00:00";

struct Setup {
    server: TestServer,
    app: App,
    ingest: App,
}

/// A server, an export app and an ingest app, with `n` records of the export app on
/// 2024-05-01.
async fn setup(n: usize) -> Setup {
    let server = TestServer::start(&[]);
    let app = server.create_app(&AppSpec::default());
    let ingest = server.create_app(&AppSpec {
        name: "cti",
        roles: &["ingest"],
        ..AppSpec::default()
    });
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let minute = i % 600;
            let mut r = record(
                &format!("r{i}"),
                &app.app_id,
                &format!("2024-05-01 {:02}:{:02}:00", 8 + minute / 60, minute % 60),
                &format!("2024-05-01 {:02}:{:02}:30", 8 + minute / 60, minute % 60),
            );
            r["call_id"] = json!(format!("call-{i}"));
            r["phone_no"] = json!(format!("8888{i:05}"));
            r
        })
        .collect();
    if n > 0 {
        let (inserted, _) = server.client(&ingest).import_ok(&records).await;
        assert_eq!(inserted, n as u64);
    }
    Setup {
        server,
        app,
        ingest,
    }
}

impl Setup {
    fn cert(&self) -> String {
        self.server
            .data_dir()
            .join("tls/cert.pem")
            .display()
            .to_string()
    }

    /// `ccfs client` with the server, credentials (from the environment) and certificate.
    fn command(&self, app: &App) -> std::process::Command {
        let mut cmd = self.server.command();
        cmd.env("CCFS_SERVER", format!("https://{}", self.server.host()))
            .env("CCFS_AK", &app.app_id)
            .env("CCFS_SK", &app.secret)
            .env("CCFS_CA_CERT", self.cert())
            .arg("client");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_as(&self.app, args)
    }

    fn run_as(&self, app: &App, args: &[&str]) -> Output {
        self.command(app).args(args).output().expect("run ccfs")
    }
}

/// Asserts success and parses each stdout line as JSON.
#[track_caller]
fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "ccfs failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[track_caller]
fn one_json(out: &Output) -> Value {
    let mut lines = json_lines(out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.remove(0)
}

#[track_caller]
fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

fn sha256_file(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).expect("read file"))
}

#[tokio::test]
async fn generate_status_download_and_fetch() {
    let s = setup(200).await;
    let out_dir = tempfile::tempdir().expect("out dir");

    // generate --wait polls the status extension until the file is ready.
    let done = one_json(&s.run(&[
        "--json", "generate", "--begin", DAY_BEGIN, "--end", DAY_END, "--wait",
    ]));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["recordCount"], 200);
    let id = done["responseId"].as_str().expect("responseId").to_owned();
    let name = done["agentOprInfoFileName"]
        .as_str()
        .expect("file name")
        .to_owned();
    let sha = done["sha256"].as_str().expect("sha256").to_owned();

    // status
    let status = one_json(&s.run(&["status", &id, "--json"]));
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["agentOprInfoFileName"], name.as_str());
    let human = s.run(&["status", &id]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("state:       succeeded"), "{text}");

    // download --extract
    let dir = out_dir.path().join("dl");
    let dir_s = dir.display().to_string();
    let got = one_json(&s.run(&["download", &name, "-o", &dir_s, "--extract", "--json"]));
    assert_eq!(got["event"], "downloaded");
    assert_eq!(got["sha256"], sha.as_str());
    assert_eq!(got["verified"], true);
    let path = dir.join(&name);
    assert_eq!(sha256_file(&path), sha);
    let extracted = got["extracted"].as_array().expect("extracted");
    assert_eq!(extracted.len(), 1, "{got}");
    let csv = std::fs::read(extracted[0].as_str().expect("path")).expect("csv");
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 200);
    assert!(rows.iter().all(|r| r[1] == s.app.app_id));

    // fetch, polling (no callback listener): generate, wait, download, verify.
    let dir = out_dir.path().join("fetch");
    let dir_s = dir.display().to_string();
    let fetched = one_json(&s.run(&[
        "fetch",
        "--begin",
        "2024-05-01",
        "--end",
        "2024-05-02",
        "-o",
        &dir_s,
        "--json",
        "--poll-interval",
        "0.1",
    ]));
    assert_eq!(fetched["verified"], true, "{fetched}");
    let fetched_path = fetched["path"].as_str().expect("path");
    assert_eq!(
        sha256_file(Path::new(fetched_path)),
        fetched["sha256"].as_str().expect("sha")
    );
    assert_ne!(fetched["responseId"], id.as_str());

    // generate with a callback URL answers the responseId at once (human output).
    let out = s.run(&[
        "generate",
        "--begin",
        DAY_BEGIN,
        "--end",
        DAY_END,
        "--callback-url",
        "http://127.0.0.1:9/cb",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("responseId: "));
    // The same idempotency key answers the same job.
    let args = [
        "--json",
        "generate",
        "--begin",
        DAY_BEGIN,
        "--end",
        DAY_END,
        "--callback-url",
        "http://127.0.0.1:9/cb",
        "--idempotency-key",
        "nightly-1",
    ];
    let a = one_json(&s.run(&args));
    let b = one_json(&s.run(&args));
    assert_eq!(a["responseId"], b["responseId"]);
}

/// `fetch` and `generate --wait` tell how many records the export holds, and say plainly when
/// it holds none; a polling `fetch` leaves no callback retrying behind it.
#[tokio::test]
async fn fetch_and_wait_report_the_record_count_and_warn_when_empty() {
    let s = setup(200).await;
    let out_dir = tempfile::tempdir().expect("temp dir");
    let dir_s = out_dir.path().display().to_string();
    let fetch = |begin: &str, end: &str, json: bool| {
        let mut args = vec!["fetch", "--begin", begin, "--end", end, "-o", &dir_s];
        if json {
            args.push("--json");
        }
        s.run(&args)
    };

    let got = one_json(&fetch(DAY_BEGIN, DAY_END, true));
    assert_eq!(got["recordCount"], 200, "{got}");
    let out = fetch(DAY_BEGIN, DAY_END, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("records: 200"), "{stdout}");
    assert!(!stderr.contains("no records"), "{stderr}");

    // The placeholder callBackURL cannot be reached; the download superseded its callback.
    let id = got["responseId"].as_str().expect("responseId").to_owned();
    let c = s.server.client(&s.app);
    wait_until(LONG, || async {
        success_data(&c.status(&id).await.1)["callback"]["state"] == "superseded"
    })
    .await;

    // A day without records: the count is 0 and the user is told.
    let (empty_begin, empty_end) = ("2024-06-01 00:00:00", "2024-06-02 00:00:00");
    let got = one_json(&fetch(empty_begin, empty_end, true));
    assert_eq!(got["recordCount"], 0, "{got}");
    let out = fetch(empty_begin, empty_end, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("records: 0"), "{stdout}");
    assert!(
        stderr.contains("the export holds no records"),
        "expected a warning: {stderr}"
    );

    // generate --wait, text and JSON.
    let out = s.run(&[
        "generate",
        "--begin",
        empty_begin,
        "--end",
        empty_end,
        "--wait",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("records:     0"), "{stdout}");
    assert!(stderr.contains("the export holds no records"), "{stderr}");
    let got = one_json(&s.run(&[
        "generate", "--begin", DAY_BEGIN, "--end", DAY_END, "--wait", "--json",
    ]));
    assert_eq!(got["recordCount"], 200, "{got}");
}

#[tokio::test]
async fn typed_errors_reach_the_user() {
    let s = setup(0).await;
    fails_with(
        &s.run(&[
            "generate",
            "--begin",
            "2024-05-03 00:00:00",
            "--end",
            DAY_END,
            "--wait",
        ]),
        "0300013: The beginTime cannot be later than the endTime.",
    );
    fails_with(
        &s.run(&[
            "download",
            "20240501_0123456789abcdef0123456789abcdef.zip",
            "-o",
            &s.server.data_dir().join("nothing").display().to_string(),
        ]),
        "0300011: The file does not exist.",
    );
    fails_with(
        &s.run(&["status", "0123456789abcdef0123456789abcdef"]),
        "0300011",
    );
    fails_with(
        &s.run(&["download", "../etc/passwd"]),
        "not an export file name",
    );
    let wrong = App {
        app_id: s.app.app_id.clone(),
        secret: "not-the-secret".into(),
    };
    fails_with(
        &s.run_as(&wrong, &["status", "0123456789abcdef0123456789abcdef"]),
        "HTTP 401: Authentication failed: signature mismatch.",
    );
    // Without the server's certificate, TLS refuses; --insecure accepts it.
    let out = s
        .command(&s.app)
        .env_remove("CCFS_CA_CERT")
        .args(["status", "0123456789abcdef0123456789abcdef"])
        .output()
        .expect("run");
    fails_with(&out, "certificate");
    let out = s
        .command(&s.app)
        .env_remove("CCFS_CA_CERT")
        .args(["--insecure", "status", "0123456789abcdef0123456789abcdef"])
        .output()
        .expect("run");
    fails_with(&out, "0300011");
    // Missing credentials.
    let out = s
        .command(&s.app)
        .env_remove("CCFS_SK")
        .args(["status", "0123456789abcdef0123456789abcdef"])
        .output()
        .expect("run");
    fails_with(&out, "credentials are needed");
}

#[tokio::test]
async fn a_download_cut_half_way_resumes_and_matches_the_checksum() {
    let s = setup(3000).await;
    let client = s.server.client(&s.app);
    let id = client
        .generate(json!({"beginTime": DAY_BEGIN, "endTime": DAY_END,
                         "callBackURL": "http://127.0.0.1:9/unused"}))
        .await;
    let done = client.wait_state(&id, "succeeded", LONG).await;
    let name = done["agentOprInfoFileName"]
        .as_str()
        .expect("name")
        .to_owned();
    let sha = done["sha256"].as_str().expect("sha").to_owned();
    let whole = client.download(&name, None).await;
    assert_eq!(whole.status, StatusCode::OK);
    let half = whole.body.len() / 2;
    assert!(half > 1000, "a file worth cutting");

    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{name}.part")), &whole.body[..half]).expect("part");
    let got = one_json(&s.run(&[
        "download",
        &name,
        "-o",
        &dir.path().display().to_string(),
        "--json",
    ]));
    assert_eq!(got["resumedFrom"], half as u64);
    assert_eq!(got["sha256"], sha.as_str());
    assert_eq!(got["verified"], true);
    assert_eq!(sha256_file(&dir.path().join(&name)), sha);
    assert!(!dir.path().join(format!("{name}.part")).exists());

    // A corrupted part is caught by the checksum and removed; nothing is left as the file.
    let dir = tempfile::tempdir().expect("dir");
    let mut bad = whole.body[..half].to_vec();
    bad[10] ^= 0xff;
    std::fs::write(dir.path().join(format!("{name}.part")), &bad).expect("part");
    fails_with(
        &s.run(&["download", &name, "-o", &dir.path().display().to_string()]),
        "checksum mismatch",
    );
    assert!(!dir.path().join(format!("{name}.part")).exists());
    assert!(!dir.path().join(&name).exists());
}

#[tokio::test]
async fn fetch_waits_for_the_callback_when_listening() {
    let s = setup(50).await;
    let dir = tempfile::tempdir().expect("dir");
    let got = one_json(&s.run(&[
        "fetch",
        "--begin",
        DAY_BEGIN,
        "--end",
        DAY_END,
        "--callback-listen",
        "127.0.0.1:0",
        "-o",
        &dir.path().display().to_string(),
        "--extract",
        "--json",
        "--timeout",
        "90",
    ]));
    assert_eq!(got["verified"], true, "{got}");
    let id = got["responseId"].as_str().expect("id");
    // The server sees its callback delivered.
    let client = s.server.client(&s.app);
    wait_until(LONG, || async {
        let (_, status) = client.status(id).await;
        status["resultData"]["callback"]["state"] == "delivered"
    })
    .await;
    let extracted = got["extracted"].as_array().expect("extracted");
    let csv = std::fs::read(extracted[0].as_str().expect("path")).expect("csv");
    assert_eq!(csv_rows(&csv).len(), 50);
}

/// A `ccfs client receive` child whose stdout lines arrive on a channel; killed when dropped.
struct ReceiveProc {
    child: Child,
    lines: mpsc::Receiver<String>,
    url: String,
}

impl ReceiveProc {
    fn start(s: &Setup, extra: &[&str]) -> ReceiveProc {
        let mut child = s
            .command(&s.app)
            .args(["receive", "--listen", "127.0.0.1:0", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn receive");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the receiver says where it listens");
        let v: Value = serde_json::from_str(&first).expect("JSON");
        assert_eq!(v["event"], "listening", "{v}");
        let url = v["url"]
            .as_str()
            .expect("url")
            .trim_end_matches('/')
            .to_owned();
        ReceiveProc { child, lines, url }
    }

    fn next_event(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(LONG)
            .expect("an event from the receiver");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}

impl Drop for ReceiveProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn receive_downloads_the_file_of_a_genuine_callback() {
    let s = setup(20).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut recv = ReceiveProc::start(&s, &["-o", &dir.path().display().to_string(), "--once"]);
    let client = s.server.client(&s.app);
    let id = client
        .generate(json!({"beginTime": DAY_BEGIN, "endTime": DAY_END,
                         "callBackURL": format!("{}/ccfs/cb", recv.url)}))
        .await;
    let event = recv.next_event();
    assert_eq!(event["event"], "downloaded", "{event}");
    assert_eq!(event["responseId"], id.as_str());
    let done = client.wait_state(&id, "succeeded", LONG).await;
    assert_eq!(event["sha256"], done["sha256"]);
    let name = done["agentOprInfoFileName"].as_str().expect("name");
    assert_eq!(
        sha256_file(&dir.path().join(name)),
        done["sha256"].as_str().expect("sha")
    );
    // --once: the receiver exits by itself, successfully.
    let deadline = std::time::Instant::now() + LONG;
    let status = loop {
        if let Some(st) = recv.child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "receive --once did not exit"
        );
        std::thread::sleep(POLL);
    };
    assert!(status.success(), "{status}");
    wait_until(LONG, || async {
        let (_, status) = client.status(&id).await;
        status["resultData"]["callback"]["state"] == "delivered"
    })
    .await;
}

/// Signs a callback the way the server does (content-length;content-type;host).
fn sign_callback(ak: &str, sk: &str, host: &str, path: &str, body: &[u8]) -> String {
    let length = body.len().to_string();
    sign(
        ak,
        sk,
        &format_timestamp(fresh_millis(), Precision::Millis),
        &RequestParts {
            method: "POST",
            path,
            query: None,
            body,
        },
        &[
            ("content-length", &length),
            ("content-type", ccfs_protocol::JSON_CONTENT_TYPE),
            ("host", host),
        ],
    )
}

#[tokio::test]
async fn receive_over_https_refuses_forged_replayed_tampered_and_foreign_callbacks() {
    let s = setup(20).await;
    // A finished export, so that a genuine callback announces a real file.
    let client = s.server.client(&s.app);
    let id = client
        .generate(json!({"beginTime": DAY_BEGIN, "endTime": DAY_END,
                         "callBackURL": "http://127.0.0.1:9/unused"}))
        .await;
    let done = client.wait_state(&id, "succeeded", LONG).await;
    let name = done["agentOprInfoFileName"]
        .as_str()
        .expect("name")
        .to_owned();

    // The receiver speaks HTTPS with the server's own certificate (it names 127.0.0.1).
    let dir = tempfile::tempdir().expect("dir");
    let tls = s.server.data_dir().join("tls");
    let recv = ReceiveProc::start(
        &s,
        &[
            "-o",
            &dir.path().display().to_string(),
            "--tls-cert",
            &tls.join("cert.pem").display().to_string(),
            "--tls-key",
            &tls.join("key.pem").display().to_string(),
        ],
    );
    assert!(recv.url.starts_with("https://"), "{}", recv.url);
    let http = s.server.http();
    let host = format!("127.0.0.1:{}", recv.port());
    let path = "/ccfs/cb";
    let url = format!("{}{path}", recv.url);
    let body = envelope_bytes(json!({"responseId": id, "agentOprInfoFileName": name}));
    let post = |auth: String, body: Vec<u8>| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.post(url)
                .header("content-type", ccfs_protocol::JSON_CONTENT_TYPE)
                .header("authorization", auth)
                .body(body)
                .send()
                .await
                .expect("POST to the receiver")
                .status()
        }
    };

    // Forged: signed with a guessed secret.
    let forged = sign_callback(&s.app.app_id, "a guess", &host, path, &body);
    assert_eq!(post(forged, body.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(recv.next_event()["event"], "refused");

    // Foreign: genuinely signed, by another app.
    let foreign = sign_callback(&s.ingest.app_id, &s.ingest.secret, &host, path, &body);
    assert_eq!(post(foreign, body.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(recv.next_event()["event"], "refused");

    // Tampered: a genuine signature over another body.
    let genuine = sign_callback(&s.app.app_id, &s.app.secret, &host, path, &body);
    let other_name = format!("20000101_{id}.zip");
    let tampered = envelope_bytes(json!({"responseId": id, "agentOprInfoFileName": other_name}));
    assert_eq!(tampered.len(), body.len());
    assert_eq!(
        post(genuine.clone(), tampered).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(recv.next_event()["event"], "refused");

    // Genuine: accepted and downloaded.
    assert_eq!(post(genuine.clone(), body.clone()).await, StatusCode::OK);
    let event = recv.next_event();
    assert_eq!(event["event"], "downloaded", "{event}");
    assert_eq!(event["sha256"], done["sha256"]);
    assert_eq!(
        sha256_file(&dir.path().join(&name)),
        done["sha256"].as_str().expect("sha")
    );

    // Replayed: the very same request again.
    assert_eq!(post(genuine, body.clone()).await, StatusCode::UNAUTHORIZED);
    let event = recv.next_event();
    assert_eq!(event["event"], "refused");
    assert!(
        event["reason"]
            .as_str()
            .is_some_and(|r| r.contains("replay")),
        "{event}"
    );

    // Anything but POST.
    let get = http.get(&url).send().await.expect("GET").status();
    assert_eq!(get, StatusCode::METHOD_NOT_ALLOWED);
}
