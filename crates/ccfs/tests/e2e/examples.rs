//! The client examples under `examples/` (shell, Python, Java) run against the real server: each
//! signs, generates, polls, downloads and verifies an export of a known set of records, and
//! must leave exactly that export in its output directory. Each also passes its own check of
//! the SPEC's signature test vectors, and reports a wrong secret key with its result code.
//!
//! An example whose interpreter is not installed is skipped with a message, not failed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use serde_json::{json, Value};

const BEGIN: &str = "2024-05-01 00:00:00";
const END: &str = "2024-05-02 00:00:00";
/// Records of the exporting developer inside `[BEGIN, END)`.
const IN_WINDOW: usize = 137;
/// How long one run of an example may take (a debug server on a busy machine, a JVM start).
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(240);

/// The workspace root (where `examples/` is).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether `program ARGS…` runs and succeeds; its stdout and stderr.
fn probe(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Skips a test whose interpreter is missing, with a message; with `CCFS_REQUIRE_EXAMPLES` set
/// (CI sets it, the machines have every interpreter) a missing one fails the test instead, so
/// CI cannot pass while running no example.
fn skip(why: &str) {
    if std::env::var_os("CCFS_REQUIRE_EXAMPLES").is_some() {
        panic!("{why}, and CCFS_REQUIRE_EXAMPLES is set");
    }
    eprintln!("skipping: {why}");
}

/// Returns false, with a message, when one of `programs` (name, version argument) is missing.
fn available(programs: &[(&str, &str)]) -> bool {
    for (program, arg) in programs {
        if probe(program, &[arg]).is_none() {
            skip(&format!("{program} not found"));
            return false;
        }
    }
    true
}

/// The major version of `java`, from `java -version`.
fn java_major() -> Option<u32> {
    let text = probe("java", &["-version"])?;
    let quoted = text.split('"').nth(1)?;
    let first = quoted.split(['.', '-', '+']).next()?;
    match first.parse::<u32>().ok()? {
        1 => quoted.split('.').nth(1)?.parse().ok(),
        n => Some(n),
    }
}

/// A server with an export developer holding [`IN_WINDOW`] records in the window plus some
/// just outside it, and another developer's records inside it.
struct Setup {
    server: TestServer,
    app: App,
    ids: Vec<String>,
}

async fn setup() -> Setup {
    let server = TestServer::start(&[]);
    let app = server.create_app(&AppSpec::default());
    let other = server.create_app(&AppSpec {
        name: "another developer",
        ..AppSpec::default()
    });
    let ingest = server.create_app(&AppSpec {
        name: "cti",
        roles: &["ingest"],
        ..AppSpec::default()
    });
    let mut records: Vec<Value> = Vec::new();
    let mut ids = Vec::new();
    for i in 0..IN_WINDOW {
        let id = format!("ex{i:04}");
        let (h, m) = (i / 60, i % 60);
        let mut r = record(
            &id,
            &app.app_id,
            &format!("2024-05-01 {h:02}:{m:02}:00"),
            &format!("2024-05-01 {h:02}:{m:02}:40"),
        );
        r["call_id"] = json!(format!("call-{i}"));
        // A value that needs CSV quoting.
        r["phone_no"] = json!(format!("8888,{i:04}"));
        records.push(r);
        ids.push(id);
    }
    // Just outside the half-open window.
    for (id, begin, end) in [
        ("before", "2024-04-30 23:59:59", "2024-05-01 00:00:10"),
        ("after", "2024-05-02 00:00:00", "2024-05-02 00:00:10"),
    ] {
        records.push(record(id, &app.app_id, begin, end));
    }
    // Another developer's, inside the window.
    for i in 0..3 {
        records.push(record(
            &format!("other{i}"),
            &other.app_id,
            "2024-05-01 12:00:00",
            "2024-05-01 12:00:05",
        ));
    }
    let (inserted, _) = server.client(&ingest).import_ok(&records).await;
    assert_eq!(inserted, records.len() as u64);
    ids.sort();
    Setup { server, app, ids }
}

/// What one run of an example left behind.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The value of the stdout line `KEY  VALUE`.
    fn field(&self, key: &str) -> String {
        self.stdout
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {key} line in the output:\n{}", self.describe()))
    }

    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Setup {
    /// Runs `program ARGS…` with the server's address, `sk` and certificate in the
    /// environment; kills it after [`EXAMPLE_TIMEOUT`].
    async fn run(&self, program: &str, args: &[&str], sk: &str) -> Run {
        let logs = tempfile::tempdir().expect("log dir");
        let mut cmd = Command::new(program);
        scrub_env(&mut cmd)
            .args(args)
            .current_dir(root())
            .env("CCFS_SERVER", format!("https://{}", self.server.host()))
            .env("CCFS_AK", &self.app.app_id)
            .env("CCFS_SK", sk)
            .env("CCFS_CA_CERT", self.server.data_dir().join("tls/cert.pem"))
            .env("CCFS_TIMEOUT", LONG.as_secs().to_string())
            .stdin(Stdio::null())
            .stdout(File::create(logs.path().join("out")).expect("stdout file"))
            .stderr(File::create(logs.path().join("err")).expect("stderr file"));
        let what = format!("{program} {args:?}");
        let code = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
            let deadline = Instant::now() + EXAMPLE_TIMEOUT;
            loop {
                if let Some(status) = child.try_wait().expect("wait for the example") {
                    return status.code();
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .expect("example thread");
        let read = |name: &str| {
            String::from_utf8_lossy(&std::fs::read(logs.path().join(name)).unwrap_or_default())
                .into_owned()
        };
        Run {
            code,
            stdout: read("out"),
            stderr: read("err"),
        }
    }

    /// Checks the example end to end: its self-test, a full fetch, and a wrong secret key.
    async fn check(&self, program: &str, script: &str) {
        let script = root().join(script).display().to_string();

        let selftest = self
            .run(program, &[&script, "--self-test"], &self.app.secret)
            .await;
        assert_eq!(selftest.code, Some(0), "self-test\n{}", selftest.describe());
        assert!(
            selftest.stdout.contains("match SPEC section 3"),
            "{}",
            selftest.describe()
        );

        let out_dir = tempfile::tempdir().expect("out dir");
        let out = out_dir.path().join("exports");
        let out_s = out.display().to_string();
        let run = self
            .run(program, &[&script, BEGIN, END, &out_s], &self.app.secret)
            .await;
        assert_eq!(
            run.code,
            Some(0),
            "{}\n{}",
            run.describe(),
            self.server.log()
        );

        // What it printed agrees with the server's own account of the job.
        let id = run.field("responseId");
        let (status, v) = self.server.client(&self.app).status(&id).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let job = success_data(&v).clone();
        assert_eq!(job["state"], "succeeded", "{job}");
        let name = run.field("file");
        assert_eq!(job["agentOprInfoFileName"], name.as_str(), "{job}");
        assert_eq!(run.field("recordCount"), IN_WINDOW.to_string());
        assert_eq!(job["recordCount"], IN_WINDOW as u64, "{job}");

        // The zip is there, alone, complete and intact.
        let path = out.join(&name);
        assert_eq!(run.field("saved"), path.display().to_string());
        let entries: Vec<PathBuf> = files_under(&out);
        assert_eq!(entries, vec![path.clone()], "{}", run.describe());
        let bytes = std::fs::read(&path).expect("the downloaded zip");
        assert_eq!(run.field("size"), bytes.len().to_string());
        let sha = sha256_hex(&bytes);
        assert_eq!(job["sha256"], sha.as_str(), "{job}");
        assert_eq!(run.field("sha256"), format!("{sha} (verified)"));

        // Its CSV rows are exactly the developer's records of the window.
        let mut got: Vec<String> = Vec::new();
        for (entry, data) in unzip(&bytes) {
            assert!(entry.ends_with(".csv"), "{entry}");
            for row in csv_rows(&data) {
                assert_eq!(row.len(), 21, "{row:?}");
                assert_eq!(row[1], self.app.app_id, "{row:?}");
                got.push(row[0].clone());
            }
        }
        assert_eq!(got.len(), IN_WINDOW);
        got.sort();
        assert_eq!(got, self.ids);

        // A wrong secret key: exit status 1 and the result code, nothing downloaded.
        let bad_dir = out_dir.path().join("refused");
        let bad = self
            .run(
                program,
                &[&script, BEGIN, END, &bad_dir.display().to_string()],
                "not-the-secret-key-0123456789",
            )
            .await;
        assert_eq!(bad.code, Some(1), "{}", bad.describe());
        assert!(
            bad.stderr.contains("resultCode 0300401"),
            "{}",
            bad.describe()
        );
        assert!(files_under(&bad_dir).is_empty(), "{}", bad.describe());
    }
}

#[tokio::test]
async fn shell_example_fetches_an_export() {
    if !available(&[
        ("bash", "--version"),
        ("curl", "--version"),
        ("openssl", "version"),
    ]) {
        return;
    }
    setup().await.check("bash", "examples/shell/fetch.sh").await;
}

#[tokio::test]
async fn python_example_fetches_an_export() {
    if !available(&[("python3", "--version")]) {
        return;
    }
    setup()
        .await
        .check("python3", "examples/python/fetch.py")
        .await;
}

#[tokio::test]
async fn java_example_fetches_an_export() {
    match java_major() {
        None => {
            skip("java not found");
            return;
        }
        Some(v) if v < 17 => {
            skip(&format!("java {v} found, Fetch.java needs 17 or later"));
            return;
        }
        Some(_) => {}
    }
    setup()
        .await
        .check("java", "examples/java/Fetch.java")
        .await;
}
