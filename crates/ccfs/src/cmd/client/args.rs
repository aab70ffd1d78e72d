//! The command line of `ccfs client …`: its shared connection flags and its subcommands, as
//! clap derive types. Kept next to the commands (not in `cli.rs`) so that `cli.rs` only names
//! the `client` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use jiff::tz::TimeZone;

use super::window::{parse_zone, WindowTime};

/// The server a client command talks to when neither `--server` nor `CCFS_SERVER` says.
pub const DEFAULT_SERVER: &str = "https://127.0.0.1:28443";

/// The callBackURL sent when nobody listens for the callback (the status extension is polled
/// instead). Port 9 is "discard": the server's delivery attempts fail fast and harmlessly.
pub const PLACEHOLDER_CALLBACK: &str = "http://127.0.0.1:9/unused";

/// `ccfs client`.
#[derive(Debug, Args)]
#[command(
    about = "Act as a client of a CC-FS server (this one or any other): generate, wait, download",
    after_help = "\
Credentials come from --server/--ak/--sk or CCFS_SERVER, CCFS_AK, CCFS_SK. A server with a
self-signed certificate (the default of `ccfs serve`) needs --ca-cert ccfs-data/tls/cert.pem
(or --insecure, for tests only). Only `status`, `generate --wait` and `fetch` without
--callback-listen use this project's status extension; everything else works against any
CC-FS server.

Output is for people by default; --json prints one JSON object per result on stdout.
Progress bars go to stderr, and only on a terminal.

Examples:
  export CCFS_SERVER=https://127.0.0.1:28443 CCFS_AK=<appId> CCFS_SK=<secretKey>
  ccfs client --ca-cert ccfs-data/tls/cert.pem fetch --begin '2024-05-01 00:00:00' --end '2024-05-02 00:00:00' -o out --extract
  ccfs client generate --begin 2024-05-01 --end 2024-05-02 --callback-url https://me.example.com/cb
  ccfs client receive --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem -o inbox"
)]
pub struct ClientArgs {
    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(subcommand)]
    pub command: ClientCommand,
}

/// How to reach and sign for the server (global to every `ccfs client` subcommand).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnArgs {
    /// The server's base URL.
    #[arg(long, global = true, value_name = "URL", env = "CCFS_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// The access key (the developer's appId).
    #[arg(long, global = true, value_name = "AK", env = "CCFS_AK")]
    pub ak: Option<String>,
    /// The secret key.
    #[arg(
        long,
        global = true,
        value_name = "SK",
        env = "CCFS_SK",
        hide_env_values = true
    )]
    pub sk: Option<String>,
    /// Trust this PEM certificate (e.g. the server's self-signed ccfs-data/tls/cert.pem).
    #[arg(long, global = true, value_name = "FILE", env = "CCFS_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate (tests only: gives up what TLS is for).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Print one JSON object per result instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// Sign only the host header (as some Java clients do) instead of
    /// content-length;content-type;host.
    #[arg(long, global = true)]
    pub sign_host_only: bool,
}

/// The `ccfs client` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    Generate(GenerateArgs),
    Status(StatusArgs),
    Download(DownloadArgs),
    Fetch(FetchArgs),
    Receive(ReceiveArgs),
}

/// The time window and filters of an export.
#[derive(Debug, Clone, Args)]
pub struct WindowArgs {
    /// Start of the window, `yyyy-MM-dd HH:mm:ss` (or `yyyy-MM-dd`) in the developer's time
    /// zone, or RFC 3339 (2024-05-01T00:00:00+08:00; see --timezone).
    #[arg(long, value_name = "T", value_parser = WindowTime::parse)]
    pub begin: WindowTime,
    /// End of the window (exclusive), same format; at most 3 days after --begin by default.
    #[arg(long, value_name = "T", value_parser = WindowTime::parse)]
    pub end: WindowTime,
    /// The developer's time zone (IANA, e.g. Asia/Shanghai): RFC 3339 times are converted to
    /// it. An RFC 3339 time without it is refused (its offset would be the wrong one to drop).
    #[arg(long, value_name = "ZONE", env = "CCFS_TIMEZONE", value_parser = parse_zone)]
    pub timezone: Option<TimeZone>,
    /// Only this enterprise account (one the developer owns).
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Only this agent.
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
}

/// How long to wait for a job, and how often to ask.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Give up waiting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub timeout: u64,
    /// Longest pause, in seconds, between two status questions while polling (the first
    /// comes after 50 ms and the pause doubles up to this).
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub poll_interval: f64,
}

impl WaitArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    pub fn poll(&self) -> Duration {
        Duration::try_from_secs_f64(self.poll_interval.max(0.05)).unwrap_or(Duration::from_secs(2))
    }
}

/// `ccfs client generate`.
#[derive(Debug, Args)]
#[command(
    about = "Ask the server to export a time window; prints the responseId",
    group(ArgGroup::new("then").args(["callback_url", "wait"]).required(true).multiple(true)),
    after_help = "\
Give --callback-url to have the server announce the file there (see `ccfs client receive`), or
--wait to poll the status extension until the file is ready (then a placeholder callBackURL,
http://127.0.0.1:9/unused, is sent unless --callback-url is also given; the server retries it
until the file is downloaded, so download it, or use `ccfs client fetch`, which does both).

Examples:
  ccfs client generate --begin '2024-05-01 00:00:00' --end '2024-05-02 00:00:00' --callback-url https://me.example.com/cb
  ccfs client generate --begin 2024-05-01 --end 2024-05-02 --account acme01 --wait
  ccfs client generate --begin 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z --timezone Asia/Shanghai --wait
  ccfs client generate --begin 2024-05-01 --end 2024-05-02 --wait --idempotency-key nightly-20240501 --json"
)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub window: WindowArgs,
    /// Where the server POSTs the signed callback announcing the file.
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    /// Poll the status extension until the export has finished, then print its status.
    #[arg(long)]
    pub wait: bool,
    /// The same key and window within 24 h answer the same job instead of a new one.
    #[arg(long, value_name = "K")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub wait_args: WaitArgs,
}

/// `ccfs client status`.
#[derive(Debug, Args)]
#[command(
    about = "Show the state of an export job (this project's status extension)",
    after_help = "\
Prints state (queued, running, succeeded, failed, expired, cancelled), the file name, record
and file counts, size, SHA-256, times, and how the callback delivery went.

Examples:
  ccfs client status 0123456789abcdef0123456789abcdef
  ccfs client status 0123456789abcdef0123456789abcdef --json | jq -r .state"
)]
pub struct StatusArgs {
    /// The responseId that generate answered.
    #[arg(value_name = "RESPONSE_ID")]
    pub response_id: String,
}

/// `ccfs client download`.
#[derive(Debug, Args)]
#[command(
    about = "Download an export file, resuming an interrupted download and checking its SHA-256",
    after_help = "\
The file is written to DIR/FILE_NAME.part first and renamed when complete and verified against
the server's X-Checksum-Sha256; running the command again after an interruption resumes it.

Examples:
  ccfs client download 20240501_0123456789abcdef0123456789abcdef.zip
  ccfs client download 20240501_0123456789abcdef0123456789abcdef.zip -o exports --extract"
)]
pub struct DownloadArgs {
    /// The file name the callback (or the status) announced: yyyyMMdd_{responseId}.zip.
    #[arg(value_name = "FILE_NAME")]
    pub file_name: String,
    #[command(flatten)]
    pub out: OutArgs,
}

/// Where downloads go.
#[derive(Debug, Clone, Args)]
pub struct OutArgs {
    /// Directory to write into (created if missing).
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Also unzip each file into DIR/<file name without .zip>/.
    #[arg(long)]
    pub extract: bool,
}

/// TLS for a callback receiver.
#[derive(Debug, Clone, Args)]
pub struct ReceiverTlsArgs {
    /// PEM certificate chain: the receiver speaks HTTPS (with --tls-key).
    #[arg(long, value_name = "F", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (with --tls-cert).
    #[arg(long, value_name = "F", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// `ccfs client fetch`.
#[derive(Debug, Args)]
#[command(
    about = "Generate, wait for the file, download and verify it, in one go",
    after_help = "\
Without --callback-listen the status extension is polled and the placeholder callBackURL
http://127.0.0.1:9/unused is sent; the server's attempts to reach it stop (superseded) as soon
as the file is downloaded.
With --callback-listen ADDR a receiver runs on ADDR for the duration, the server is told to
call it back (at --callback-url, default http(s)://ADDR/ccfs/callback), and the command waits
for that signed callback: this works against any CC-FS server.

Examples:
  ccfs client fetch --begin 2024-05-01 --end 2024-05-02 -o exports
  ccfs client fetch --begin '2024-05-01 00:00:00' --end '2024-05-01 12:00:00' --agent 1001 --extract
  ccfs client fetch --begin 2024-05-01 --end 2024-05-02 --callback-listen 0.0.0.0:8080 --callback-url http://me.example.com:8080/cb"
)]
pub struct FetchArgs {
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub out: OutArgs,
    /// Wait for the server's callback on this address instead of polling.
    #[arg(long, value_name = "ADDR")]
    pub callback_listen: Option<SocketAddr>,
    /// The callBackURL sent (default: the --callback-listen address, else a placeholder).
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    #[command(flatten)]
    pub tls: ReceiverTlsArgs,
    /// The same key and window within 24 h answer the same job instead of a new one.
    #[arg(long, value_name = "K")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub wait_args: WaitArgs,
}

/// `ccfs client receive`.
#[derive(Debug, Args)]
#[command(
    about = "Run a callback receiver: verify each callback's signature, then download the file",
    after_help = "\
Every POST is checked with the --ak/--sk credentials: the auth-v2 signature over the request
as received (host must be signed), the timestamp (15 minutes either way) and replays. A
forged, tampered or replayed callback is answered 401 and ignored; a genuine one 200, and its
file is downloaded into DIR (resumed and checksum-verified like `download`).
Runs until Ctrl-C, or until the first file is downloaded with --once.

Examples:
  ccfs client receive --listen 0.0.0.0:8080 -o inbox
  ccfs client receive --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem -o inbox --extract
  ccfs client receive --listen 127.0.0.1:8080 --once --json"
)]
pub struct ReceiveArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub tls: ReceiverTlsArgs,
    /// Exit after the first file is downloaded.
    #[arg(long)]
    pub once: bool,
}
