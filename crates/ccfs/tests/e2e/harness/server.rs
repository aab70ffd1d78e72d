//! The `ccfs` binary under test, as a process: [`TestServer`] runs `ccfs serve` on port 0 with a
//! fresh data directory (start, restart on the same data, SIGKILL, SIGTERM) and runs the other
//! `ccfs` commands with the same environment; [`Env`] runs `ccfs` commands that need no server.
//! Both remove the caller's own `CCFS_*` variables and `RUST_LOG` so they cannot change what a
//! test sees.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{Client, Conn, Resp};
use super::lock;

/// The `ccfs` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ccfs");
/// How long `ccfs serve` may take to print its listening line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Removes the caller's `CCFS_*` variables and `RUST_LOG` from `cmd`'s environment, so they
/// cannot change what a test sees.
pub fn scrub_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CCFS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG")
}

/// The `ccfs` binary under test, with [`scrub_env`].
pub fn ccfs_command() -> Command {
    let mut cmd = Command::new(BIN);
    scrub_env(&mut cmd);
    cmd
}

// ---------------------------------------------------------------------------------------------
// The server process

/// A developer's credentials, as `ccfs app create` printed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub app_id: String,
    pub secret: String,
}

/// What `ccfs app create` is asked for. Empty `roles` means the CLI default (`export`); an
/// empty `name` becomes `"test app"`.
#[derive(Debug, Clone, Default)]
pub struct AppSpec<'a> {
    pub name: &'a str,
    pub accounts: &'a [&'a str],
    /// IANA zone; `None` = the server's default.
    pub timezone: Option<&'a str>,
    /// `"export"`, `"ingest"`.
    pub roles: &'a [&'a str],
    /// A fixed app id instead of a random one.
    pub app_id: Option<&'a str>,
    /// Exports start with a header row.
    pub csv_header: bool,
}

/// A `ccfs serve` child process on a temporary data directory.
///
/// Dropping it SIGKILLs the process and deletes the data directory.
pub struct TestServer {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// stdout and stderr of every process this server ran, in arrival order.
    log: Arc<Mutex<String>>,
    conn: Arc<Mutex<Conn>>,
}

/// Reads `ccfs … listening on SCHEME://HOST:PORT` → `(scheme, port)`.
fn parse_listening(line: &str) -> Option<(String, u16)> {
    let rest = line.strip_prefix("ccfs ")?;
    let (_, url) = rest.split_once(" listening on ")?;
    let (scheme, addr) = url.trim().split_once("://")?;
    let port = addr
        .rsplit_once(':')?
        .1
        .trim_end_matches('/')
        .parse()
        .ok()?;
    Some((scheme.to_owned(), port))
}

impl TestServer {
    /// Starts `ccfs serve` with `CCFS_DATA_DIR=<tempdir>`, `CCFS_LISTEN=127.0.0.1:0` and `env`
    /// (which may override both). Panics, with the process's output, if it does not print its
    /// listening line within [`STARTUP_TIMEOUT`].
    pub fn start(env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let log = Arc::new(Mutex::new(String::new()));
        let placeholder = Conn {
            scheme: String::new(),
            port: 0,
            http: reqwest::Client::new(),
        };
        let mut server = TestServer {
            dir,
            env,
            child: None,
            log,
            conn: Arc::new(Mutex::new(placeholder)),
        };
        let (child, conn) = server
            .launch("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("{e}"));
        server.child = Some(child);
        *lock(&server.conn) = conn;
        server
    }

    /// A developer "A" with one record, x1 at 2024-05-01 10:00:00 (UTC), imported by a "CTI" app.
    pub async fn app_with_one_record(&self) -> App {
        let a = self.create_app(&AppSpec {
            name: "A",
            ..Default::default()
        });
        let ing = self.create_app(&AppSpec {
            name: "CTI",
            roles: &["ingest"],
            ..Default::default()
        });
        self.client(&ing)
            .import_ok(&[super::wire::record(
                "x1",
                &a.app_id,
                "2024-05-01 10:00:00",
                "2024-05-01 10:01:00",
            )])
            .await;
        a
    }

    /// Writes `n` records of `app_id` spread over the window as a CSV file of the export layout and
    /// imports them with `ccfs import` on this server's database (much faster than the HTTP interface).
    pub fn import_records(&self, dir: &Path, app_id: &str, n: u64) {
        let path = dir.join(format!("{app_id}.csv"));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create the CSV"));
        for i in 0..n {
            let s = i * 86_399 / n;
            let t = format!(
                "2024-05-01 {:02}:{:02}:{:02}",
                s / 3600,
                s / 60 % 60,
                s % 60
            );
            let id = format!("r{i:08}");
            let agent = (1001 + i % 50).to_string();
            let row = [
                id.as_str(),
                app_id,
                "",
                &agent,
                "1",
                "2",
                "",
                &t,
                &t,
                "2",
                "-1",
                "0",
                "5",
                "1",
                "1",
                "4",
                "88880001",
                "0",
                "0",
                "1",
                "",
            ];
            writeln!(w, "{}", row.join(",")).expect("write the CSV");
        }
        w.flush().expect("write the CSV");
        drop(w);
        let out = self.ccfs(&["import", path.to_str().expect("UTF-8 path")]);
        assert!(
            out.status.success(),
            "ccfs import failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The data directory (`CCFS_DATA_DIR`).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where finished exports are stored: `<data_dir>/files`.
    pub fn files_dir(&self) -> PathBuf {
        self.data_dir().join("files")
    }

    /// The port of the current process.
    pub fn port(&self) -> u16 {
        lock(&self.conn).port
    }

    /// The `Host` header value clients send: `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// `https://127.0.0.1:PORT{path}` (or `http://` when the server runs plain HTTP).
    pub fn url(&self, path: &str) -> String {
        let c = lock(&self.conn);
        format!("{}://127.0.0.1:{}{path}", c.scheme, c.port)
    }

    /// An HTTP client that trusts the server's certificate (a new one after each restart).
    pub fn http(&self) -> reqwest::Client {
        lock(&self.conn).http.clone()
    }

    /// Everything the server processes printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// A `ccfs` command with the server's environment (data directory, extra env).
    pub fn command(&self) -> Command {
        let mut cmd = ccfs_command();
        cmd.env("CCFS_DATA_DIR", self.data_dir());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `ccfs ARGS…` with the server's environment and waits for it.
    pub fn ccfs(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run ccfs")
    }

    /// `ccfs app create …`; panics unless it succeeds and prints `{"appId","secretKey"}`.
    pub fn create_app(&self, spec: &AppSpec<'_>) -> App {
        let name = if spec.name.is_empty() {
            "test app"
        } else {
            spec.name
        };
        let mut args: Vec<&str> = vec!["app", "create", "--name", name];
        for a in spec.accounts {
            args.extend(["--account", a]);
        }
        if let Some(tz) = spec.timezone {
            args.extend(["--timezone", tz]);
        }
        for r in spec.roles {
            args.extend(["--role", r]);
        }
        if let Some(id) = spec.app_id {
            args.extend(["--app-id", id]);
        }
        if spec.csv_header {
            args.push("--csv-header");
        }
        let out = self.ccfs(&args);
        assert!(
            out.status.success(),
            "ccfs {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "app create printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("app create: no {k} in {v}"))
                .to_owned()
        };
        App {
            app_id: field("appId"),
            secret: field("secretKey"),
        }
    }

    /// A client signing as `app`. It follows the server across restarts.
    pub fn client(&self, app: &App) -> Client {
        Client::new(app, self.conn.clone())
    }

    /// An unsigned GET (for `/healthz`, `/readyz`, `/metrics`).
    pub async fn get(&self, path: &str) -> Resp {
        let r = self
            .http()
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Resp::read(r).await
    }

    /// SIGKILLs the process (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the process where it is (SIGSTOP), as a node that stops answering without
    /// dying (a VM suspended, a long stall): what it holds in the store stays held, and its
    /// leases run on. [`TestServer::resume`] lets it go on.
    pub fn pause(&self) {
        signal(
            self.child
                .as_ref()
                .expect("pause: the server is not running"),
            "STOP",
        );
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        signal(
            self.child
                .as_ref()
                .expect("resume: the server is not running"),
            "CONT",
        );
    }

    /// Sends SIGTERM and waits (up to 60 s) for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self
            .child
            .take()
            .expect("terminate: the server is not running");
        signal(&c, "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.try_wait().expect("wait for ccfs") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("ccfs did not exit within 60 s of SIGTERM\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a new process on the same data directory and environment (SIGKILLing the old one
    /// first if it still runs). It listens on the same port when it can, else on a new one;
    /// existing [`Client`]s follow either way.
    pub fn restart(&mut self) {
        self.kill();
        let old = format!("127.0.0.1:{}", self.port());
        let (child, conn) = match self.launch(&old) {
            Ok(x) => x,
            Err(_) => self.launch("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}")),
        };
        self.child = Some(child);
        *lock(&self.conn) = conn;
    }

    fn launch(&self, listen: &str) -> Result<(Child, Conn), String> {
        let mut cmd = self.command();
        if !self.env.iter().any(|(k, _)| k == "CCFS_LISTEN") {
            cmd.env("CCFS_LISTEN", listen);
        }
        cmd.arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {BIN}: {e}"))?;
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        let err_thread = std::thread::spawn(move || pump(stderr, &log, None));
        let (tx, rx) = mpsc::channel::<String>();
        let log = self.log.clone();
        std::thread::spawn(move || pump(stdout, &log, Some(tx)));

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let failure = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((scheme, port)) = parse_listening(&line) {
                        let http = self.http_client(&scheme)?;
                        return Ok((child, Conn { scheme, port, http }));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    break format!("no listening line within {STARTUP_TIMEOUT:?}");
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break "stdout closed".to_owned(),
            }
        };
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        let _ = err_thread.join();
        Err(format!(
            "ccfs serve did not start: {failure} ({status})\n--- output ---\n{}",
            self.log()
        ))
    }

    fn http_client(&self, scheme: &str) -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .redirect(reqwest::redirect::Policy::none());
        if scheme == "https" {
            let cert = self
                .env
                .iter()
                .find(|(k, _)| k == "CCFS_TLS_CERT")
                .map(|(_, v)| PathBuf::from(v))
                .unwrap_or_else(|| self.data_dir().join("tls/cert.pem"));
            let pem = std::fs::read(&cert).map_err(|e| format!("{}: {e}", cert.display()))?;
            let cert =
                reqwest::Certificate::from_pem(&pem).map_err(|e| format!("certificate: {e}"))?;
            b = b.add_root_certificate(cert);
        }
        b.build().map_err(|e| format!("HTTP client: {e}"))
    }
}

/// Sends the signal named `name` (`TERM`, `STOP`, …) to a child.
fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{name} failed");
}

/// Copies a child's output into the log, line by line; forwards lines to `tx` while anyone
/// listens, and keeps draining after that so the child never blocks on a full pipe.
fn pump(out: impl Read, log: &Mutex<String>, tx: Option<mpsc::Sender<String>>) {
    let mut tx = tx;
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        {
            let mut l = lock(log);
            l.push_str(&line);
            l.push('\n');
        }
        if let Some(t) = &tx {
            if t.send(line).is_err() {
                tx = None;
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A configuration file (`CCFS_CONFIG`) that outlives server restarts, so a restart can change
/// what the environment cannot (the harness restarts with the same environment): how many
/// export workers run.
pub struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    pub fn new(export_workers: u32) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ccfs.toml");
        let file = ConfigFile { _dir: dir, path };
        file.set_workers(export_workers);
        file
    }

    /// Takes effect at the next (re)start.
    pub fn set_workers(&self, n: u32) {
        std::fs::write(&self.path, format!("export_workers = {n}\n"))
            .expect("write the configuration file");
    }

    pub fn path(&self) -> &str {
        self.path.to_str().expect("UTF-8 path")
    }
}

// ---------------------------------------------------------------------------------------------
// Commands without a server: a fresh working and data directory (`CCFS_DATA_DIR`) per test

/// A working directory holding the data directory of one test.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A path inside the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `ccfs ARGS` in the working directory.
    pub fn run(&self, args: &[&str]) -> Output {
        ccfs_command()
            .args(args)
            .current_dir(self.dir.path())
            .env("CCFS_DATA_DIR", self.data_dir())
            .output()
            .expect("run ccfs")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ccfs {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 stdout")
    }

    /// Runs a command that must fail with status 1; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "ccfs {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("UTF-8 stderr")
    }

    /// Runs a command that must succeed and print one JSON value.
    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Writes a file into the working directory; returns its name (relative to it).
    pub fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.path(name), text).expect("write file");
        name.to_owned()
    }
}
