//! Errors say what to do, not only what failed: the real `ccfs` binary against a port where
//! nothing listens, plain HTTP against HTTPS and the other way round, an untrusted certificate,
//! a server URL without a scheme, a bad `--begin`, an answer that is not the CC-FS envelope;
//! `ccfs serve` on a busy port, with an unusable data directory, and with a `database_url` or
//! `blob_url` it cannot open. A `serve` that cannot start leaves nothing behind. Also: the
//! RFC 3339 `--begin`/`--end` the client accepts, converted with `--timezone`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use serde_json::Value;

const AK: &str = "0123456789abcdef0123456789abcdef";
const ID: &str = "fedcba9876543210fedcba9876543210";

/// `ccfs ARGS` in `cwd` with only the `CCFS_*` variables given; killed and failed after a
/// minute, so a `serve` that starts when it should not cannot hang the test.
fn ccfs_in(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = ccfs_command();
    cmd.envs(env.iter().copied())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run ccfs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait for ccfs").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap ccfs");
            panic!(
                "ccfs {args:?} still running after a minute:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("reap ccfs")
}

/// Asserts that the command failed with `code` and that stderr holds each of `needles`;
/// returns stderr.
#[track_caller]
fn fails(out: &Output, code: i32, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    for needle in needles {
        assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    }
    stderr
}

/// `ccfs client --server SERVER status ID` with credentials and nothing else.
fn client_status(server: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    ccfs_in(
        dir.path(),
        &[("CCFS_AK", AK), ("CCFS_SK", "secret")],
        &["client", "--server", server, "status", ID],
    )
}

/// A port on 127.0.0.1 where nothing listens (bound, then let go).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A plain HTTP server that is not a CC-FS server: every request gets `404 Not Found` with a
/// text body. Bytes that are not HTTP (a TLS hello) get the same answer at once.
fn not_a_ccfs_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = conn.read(&mut chunk) {
                request.extend_from_slice(&chunk[..n]);
                if !request[0].is_ascii_alphabetic() || http_request_complete(&request) {
                    break;
                }
            }
            let body = "404 page not found\n";
            let _ = write!(
                conn,
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Whether `buf` holds a request's head and all of its `Content-Length` body.
fn http_request_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= end + 4 + length
}

// ---------------------------------------------------------------------------------------------
// The client

#[test]
fn connection_refused_names_the_url_and_says_no_server_answers() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    fails(
        &client_status(&url),
        1,
        &[
            &format!("no server answers at {url}/"),
            "check the host and port of the server URL, and that the server is running",
        ],
    );
}

#[test]
fn a_url_without_scheme_says_to_write_https() {
    let stderr = fails(
        &client_status("127.0.0.1:28443"),
        1,
        &["server URL '127.0.0.1:28443' has no scheme: write https://127.0.0.1:28443"],
    );
    assert!(!stderr.contains("relative URL"), "{stderr}");
    fails(
        &client_status("localhost:28443"),
        1,
        &["has no scheme: write https://localhost:28443"],
    );
}

#[test]
fn plain_http_to_the_https_port_says_to_use_https() {
    let server = TestServer::start(&[]);
    let port = server.port();
    fails(
        &client_status(&format!("http://127.0.0.1:{port}")),
        1,
        &[
            &format!("http://127.0.0.1:{port}/ did not answer HTTP"),
            "the server probably speaks HTTPS",
            &format!("use https://127.0.0.1:{port}/"),
        ],
    );
}

#[test]
fn an_unknown_issuer_points_to_the_ca_cert_and_the_fingerprint() {
    let server = TestServer::start(&[]);
    let url = format!("https://127.0.0.1:{}", server.port());
    fails(
        &client_status(&url),
        1,
        &[
            &format!("the certificate of {url}/ is not signed by an authority this client trusts"),
            "--ca-cert ccfs-data/tls/cert.pem",
            "SHA-256 fingerprint is the one `ccfs serve` printed at start",
        ],
    );
    // What the advice says works.
    let cert = server.data_dir().join("tls/cert.pem");
    let out = server
        .command()
        .env("CCFS_AK", AK)
        .env("CCFS_SK", "secret")
        .args(["client", "--server", &url, "--ca-cert"])
        .arg(&cert)
        .args(["status", ID])
        .output()
        .expect("run ccfs");
    let stderr = fails(&out, 1, &["HTTP 401"]);
    assert!(!stderr.contains("certificate"), "{stderr}");
}

#[test]
fn an_answer_that_is_not_the_envelope_names_the_status_and_the_path() {
    let port = not_a_ccfs_server();
    fails(
        &client_status(&format!("http://127.0.0.1:{port}")),
        1,
        &[
            "HTTP 404 Not Found from POST /CCFS/resource/ccfs/queryAgentOprInfoStatus",
            "not a CC-FS answer",
            "the answer begins: 404 page not found",
        ],
    );
    // With a path prefix in the server URL, the path said is the one the request went to.
    fails(
        &client_status(&format!("http://127.0.0.1:{port}/gateway/")),
        1,
        &["HTTP 404 Not Found from POST /gateway/CCFS/resource/ccfs/queryAgentOprInfoStatus"],
    );
}

#[test]
fn https_to_a_plain_http_server_says_to_use_http() {
    let port = not_a_ccfs_server();
    fails(
        &client_status(&format!("https://127.0.0.1:{port}")),
        1,
        &[
            &format!("https://127.0.0.1:{port}/ does not speak TLS"),
            &format!("use http://127.0.0.1:{port}/"),
        ],
    );
}

#[test]
fn a_begin_in_the_wrong_format_says_which_formats_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (begin, end) in [
        ("2024/05/01", "2024-05-02"),
        ("2024-05-01", "02.05.2024 00:00"),
    ] {
        let out = ccfs_in(
            dir.path(),
            &[("CCFS_AK", AK), ("CCFS_SK", "secret")],
            &[
                "client",
                "--server",
                "https://127.0.0.1:1",
                "generate",
                "--begin",
                begin,
                "--end",
                end,
                "--wait",
            ],
        );
        fails(
            &out,
            2,
            &[
                "write yyyy-MM-dd HH:mm:ss in the developer's time zone",
                "RFC 3339 such as 2024-05-01T08:00:00+08:00 is also accepted and converted",
            ],
        );
    }
    let help = ccfs_in(dir.path(), &[], &["client", "generate", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("or RFC 3339"), "{help}");
    assert!(help.contains("--timezone <ZONE>"), "{help}");
    assert!(
        help.contains("An RFC 3339 time without it is refused"),
        "{help}"
    );
}

/// An RFC 3339 window is converted to `--timezone`; without it, it is refused with what to do.
#[tokio::test]
async fn an_rfc3339_window_is_converted_to_the_timezone_given() {
    let server = TestServer::start(&[]);
    let app = server.create_app(&AppSpec::default());
    let ingest = server.create_app(&AppSpec {
        name: "cti",
        roles: &["ingest"],
        ..AppSpec::default()
    });
    // The developer's time zone is the server's default, UTC.
    let records: Vec<Value> = [
        ("r0", "2024-05-01 08:00:00"),
        ("r1", "2024-05-01 10:00:00"),
        ("r2", "2024-05-01 10:15:00"),
    ]
    .iter()
    .map(|(id, at)| record(id, &app.app_id, at, at))
    .collect();
    server.client(&ingest).import_ok(&records).await;
    let cert = server.data_dir().join("tls/cert.pem");
    let run = |extra: &[&str]| {
        server
            .command()
            .env("CCFS_SERVER", format!("https://{}", server.host()))
            .env("CCFS_AK", &app.app_id)
            .env("CCFS_SK", &app.secret)
            .env("CCFS_CA_CERT", &cert)
            .args(["client", "--json", "generate", "--wait"])
            .args(["--begin", "2024-05-01T09:00:00+02:00"])
            .args(["--end", "2024-05-01T10:30:00+02:00"])
            .args(extra)
            .output()
            .expect("run ccfs")
    };
    let count = |extra: &[&str]| {
        let out = run(extra);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        status["recordCount"].as_u64().expect("recordCount")
    };
    // 07:00–08:30 UTC holds r0; 09:00–10:30 (the wall-clock time as written) would hold r1
    // and r2, which is why an offset without a zone is refused rather than dropped.
    assert_eq!(count(&["--timezone", "UTC"]), 1);
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--begin: 2024-05-01T09:00:00 has a UTC offset")
            && stderr.contains("add --timezone ZONE"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// The server

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn serve_on_a_busy_port_names_the_address_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let out = ccfs_in(
        dir.path(),
        &[],
        &["serve", "--listen", &addr, "--data-dir", "data"],
    );
    fails(
        &out,
        1,
        &[
            &format!("cannot listen on {addr}: the address is already in use"),
            "choose another address (ccfs serve --listen, CCFS_LISTEN",
        ],
    );
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[test]
fn serve_with_an_unusable_data_dir_names_the_path() {
    // Under a regular file: no user, root included, can create a directory there.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("file.txt"), "keep").expect("write");
    let data = dir.path().join("file.txt/sub");
    let out = ccfs_in(
        dir.path(),
        &[],
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data.display().to_string(),
        ],
    );
    fails(
        &out,
        1,
        &[
            &format!("cannot use the data directory {}", data.display()),
            "choose a directory this user can write (ccfs serve --data-dir, CCFS_DATA_DIR",
        ],
    );
    assert_eq!(entries(dir.path()), ["file.txt"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("file.txt")).expect("read"),
        "keep"
    );
}

#[test]
fn a_serve_that_fails_late_removes_what_it_created_and_nothing_else() {
    // The file store's directory cannot be made: by then the certificate and the database
    // have been created in the data directory.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("file.txt"), "keep").expect("write");
    let blobs = dir.path().join("file.txt/files").display().to_string();
    let env = [("CCFS_BLOB_URL", blobs.as_str())];
    let serve = |data: &str| {
        ccfs_in(
            dir.path(),
            &env,
            &["serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        )
    };

    // A new data directory goes away entirely.
    fails(
        &serve("new/data"),
        1,
        &[&format!(
            "cannot use the file store directory {blobs} (blob_url)"
        )],
    );
    assert_eq!(entries(dir.path()), ["file.txt"]);

    // An existing one stays, with what it held, and without the certificate, key or database.
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    std::fs::write(dir.path().join("data/notes.txt"), "mine").expect("write");
    fails(&serve("data"), 1, &["cannot use the file store directory"]);
    assert_eq!(entries(&dir.path().join("data")), ["notes.txt"]);
    assert_eq!(entries(dir.path()), ["data", "file.txt"]);
}

#[test]
fn an_unreachable_postgres_database_fails_the_start_without_its_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Port 1 on the loopback: nothing listens there, so the connection is refused at once.
    let out = ccfs_in(
        dir.path(),
        &[("CCFS_DATABASE_URL", "postgres://u:secret@127.0.0.1:1/x")],
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"],
    );
    let stderr = fails(
        &out,
        1,
        &["cannot open the database postgres://127.0.0.1:1/x"],
    );
    assert!(!stderr.contains("secret"), "{stderr}");
    // What the start created (data directory, certificate, master key) is removed again.
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[test]
fn an_unreachable_s3_file_store_fails_the_start_with_what_to_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Port 1 on the loopback: nothing listens there, so every attempt is refused at once.
    let out = ccfs_in(
        dir.path(),
        &[
            ("CCFS_BLOB_URL", "s3://ccfs-exports/prod"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "garage"),
            ("AWS_ACCESS_KEY_ID", "GK0000"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t-never-shown"),
        ],
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"],
    );
    let stderr = fails(
        &out,
        1,
        &[
            "cannot reach the file store s3://ccfs-exports/prod (blob_url)",
            "check the endpoint (aws_endpoint_url / AWS_ENDPOINT_URL), the credentials and that \
             the bucket exists",
        ],
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    // What the start created (data directory, certificate, master key) is removed again.
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[test]
fn a_database_url_with_an_unsupported_scheme_is_refused_without_its_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = ccfs_in(
        dir.path(),
        &[(
            "CCFS_DATABASE_URL",
            "mysql://ccfs:hunter2@db.example.com:3306/ccfs",
        )],
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"],
    );
    let stderr = fails(
        &out,
        1,
        &[
            "database_url \"mysql://db.example.com:3306/ccfs\": unsupported scheme \"mysql\"; \
             supported: sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DATABASE",
        ],
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // No `mysql:` folder, no data directory.
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[test]
fn a_blob_url_with_an_unsupported_scheme_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = ccfs_in(
        dir.path(),
        &[("CCFS_BLOB_URL", "gs://exports/ccfs")],
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"],
    );
    fails(
        &out,
        1,
        &[
            "blob_url \"gs://exports/ccfs\": unsupported scheme \"gs\"; \
             supported: file://DIR, a plain directory path, s3://BUCKET/PREFIX",
        ],
    );
    // No `gs:` folder, no data directory.
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}
