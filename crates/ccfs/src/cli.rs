//! The command line: every command, subcommand and flag, as clap derive types.
//!
//! Only the shape lives here; each command's behaviour is in its module under `cmd/`.

use std::net::SocketAddr;
use std::path::PathBuf;

use ccfs_protocol::{AppId, ResponseId};
use ccfs_server::model::{JobState, Role};
use clap::{Args, Parser, Subcommand, ValueEnum};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// The `ccfs` command.
#[derive(Debug, Parser)]
#[command(
    name = "ccfs",
    version,
    about = "A CC-FS compatible export server for contact-center agent operation records",
    after_help = "\
Configuration is layered: built-in defaults, then the TOML file of --config (or CCFS_CONFIG),
then CCFS_* environment variables (CCFS_LISTEN, CCFS_DATA_DIR, CCFS_DATABASE_URL, ...).
Logs go to stderr; RUST_LOG sets the filter (default: info for serve, warn otherwise).

Examples:
  ccfs demo
  ccfs serve
  ccfs app create --name \"Acme CC\" --account acme01 --timezone Asia/Shanghai
  ccfs jobs list --state running
  ccfs import records.csv --app 0123456789abcdef0123456789abcdef
  ccfs simulate --app 0123456789abcdef0123456789abcdef --agents 20 --days 7
  ccfs client fetch --ca-cert ccfs-data/tls/cert.pem --begin 2024-05-01 --end 2024-05-02 --extract
  ccfs completions bash > /etc/bash_completion.d/ccfs
  ccfs man --out /usr/local/share/man/man1"
)]
pub struct Cli {
    /// TOML configuration file (its keys are the CCFS_* names in lower case, without the prefix).
    #[arg(long, global = true, value_name = "FILE", env = "CCFS_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    Serve(ServeArgs),
    App(AppArgs),
    Jobs(JobsArgs),
    Import(ImportArgs),
    Simulate(SimulateArgs),
    MigrateStore(MigrateStoreArgs),
    Demo(DemoArgs),
    Client(Box<crate::cmd::client::args::ClientArgs>),
    Completions(CompletionsArgs),
    Man(ManArgs),
}

/// `ccfs serve`.
#[derive(Debug, Args)]
#[command(
    about = "Run the CC-FS export server until SIGTERM or Ctrl-C",
    after_help = "\
Flags override the configuration file and the CCFS_* environment.
By default the server listens with HTTPS on 127.0.0.1:28443 and keeps everything (database,
files, master key, self-signed certificate) in ./ccfs-data.

Examples:
  ccfs serve
  ccfs serve --listen 0.0.0.0:28443 --data-dir /var/lib/ccfs
  ccfs serve --tls-cert cert.pem --tls-key key.pem
  ccfs serve --config /etc/ccfs.toml --plain-http   # behind a TLS-terminating balancer"
)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the database, files, master key and self-signed certificate.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (with --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (only behind a TLS-terminating load balancer).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub plain_http: bool,
}

/// `ccfs app`.
#[derive(Debug, Args)]
#[command(
    about = "Manage developers (tenants): create, list, show, rotate secrets, enable, disable, delete",
    after_help = "\
Examples:
  ccfs app create --name \"Acme CC\" --account acme01
  ccfs app list
  ccfs app show 0123456789abcdef0123456789abcdef
  ccfs app rotate-secret 0123456789abcdef0123456789abcdef
  ccfs app delete 0123456789abcdef0123456789abcdef"
)]
pub struct AppArgs {
    #[command(subcommand)]
    pub command: AppCommand,
}

/// The `ccfs app` subcommands.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    Create(CreateArgs),
    List(ListArgs),
    #[command(
        about = "Show a developer as JSON (never its secret)",
        after_help = "\
Prints one JSON object: appId, name, timezone, accounts, roles, enabled, csvHeader, createdAt,
and secretRotatedGraceUntil while a rotated-out secret is still accepted.

Examples:
  ccfs app show 0123456789abcdef0123456789abcdef
  ccfs app show 0123456789abcdef0123456789abcdef | jq .timezone"
    )]
    Show(AppIdArg),
    #[command(
        about = "Give a developer a new secret key; the old one stays valid for a grace period",
        after_help = "\
Prints one line of JSON:
{\"appId\":\"…\",\"secretKey\":\"…\",\"oldSecretValidUntil\":\"…\",\"oldSecretRevoked\":false}.
The grace period is the secret_grace_secs setting (default one day). With --revoke-old the old
secret is refused at once instead (oldSecretValidUntil is null): for a secret that leaked.
Every node reads the developer from the store for each request, so the change holds on every
node from the moment the command returns. A secret rotated out earlier and still in its grace
period is refused from now on either way.

Examples:
  ccfs app rotate-secret 0123456789abcdef0123456789abcdef
  ccfs app rotate-secret 0123456789abcdef0123456789abcdef --revoke-old"
    )]
    RotateSecret(RotateArgs),
    #[command(
        about = "Disable a developer: its requests are refused until it is enabled again",
        after_help = "\
Prints the developer as `ccfs app show` does.

Examples:
  ccfs app disable 0123456789abcdef0123456789abcdef"
    )]
    Disable(AppIdArg),
    #[command(
        about = "Enable a developer that was disabled",
        after_help = "\
Prints the developer as `ccfs app show` does.

Examples:
  ccfs app enable 0123456789abcdef0123456789abcdef"
    )]
    Enable(AppIdArg),
    Delete(DeleteArgs),
}

/// `ccfs app rotate-secret`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The developer's app id.
    #[arg(value_name = "APPID")]
    pub app_id: String,
    /// Refuse the old secret at once instead of after the grace period.
    #[arg(long)]
    pub revoke_old: bool,
}

/// `ccfs app delete`.
#[derive(Debug, Args)]
#[command(
    about = "Delete a developer with its records, jobs, callbacks and files (asks for --yes)",
    after_help = "\
Without --yes, prints what would be deleted and exits with status 1, changing nothing. With
--yes, deletes from the configured store and file store: the developer, its accounts and
secret keys; the records it owns (developer_id = APPID), whoever imported them; its jobs with
their callbacks and idempotency keys; and the files of its finished exports. Records it
imported for other developers (with the ingest role) belong to them and are kept.

Refused, with nothing changed, while the developer has a job queued or running: the error
names them; cancel them with `ccfs jobs cancel` or wait until they end. The developer is
disabled first, so that none of its requests starts a job meanwhile; the files are deleted
before the records, all of which go in one transaction, so a file store that fails stops the
deletion before any record is gone, and running it again is safe. Prints one line of JSON with
how many of each were deleted.

Examples:
  ccfs app delete 0123456789abcdef0123456789abcdef
  ccfs app delete 0123456789abcdef0123456789abcdef --yes"
)]
pub struct DeleteArgs {
    /// The developer's app id.
    #[arg(value_name = "APPID")]
    pub app_id: String,
    /// Delete; without it, only say what would be deleted.
    #[arg(long)]
    pub yes: bool,
}

/// `ccfs jobs`.
#[derive(Debug, Args)]
#[command(
    about = "Look after export jobs: list, show, cancel, queue a failed callback again",
    after_help = "\
Works on the configured store and file store, like `ccfs app`, also while servers run on them.

Examples:
  ccfs jobs list
  ccfs jobs list --app 0123456789abcdef0123456789abcdef --state failed --since 24h
  ccfs jobs show 00112233445566778899aabbccddeeff
  ccfs jobs cancel 00112233445566778899aabbccddeeff
  ccfs jobs retry-callback 00112233445566778899aabbccddeeff"
)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: JobsCommand,
}

/// The `ccfs jobs` subcommands.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    List(JobsListArgs),
    #[command(
        about = "Show a job as JSON: its status, developer, query, attempts and callback",
        after_help = "\
Prints one JSON object: the fields the status interface answers the job's developer
(responseId, state, agentOprInfoFileName, attempts, recordCount, fileCount, fileSize, sha256,
createdAt, finishedAt, expiresAt, error), and besides: developerId; query (beginTime and
endTime in the developer's time zone as generate took them, timezone, begin and end in RFC 3339,
accountId, agentId); callbackUrl; startedAt; callback (state, attempts, lastError, nextAttemptAt
while pending, giveUpAt).

Examples:
  ccfs jobs show 00112233445566778899aabbccddeeff
  ccfs jobs show 00112233445566778899aabbccddeeff | jq .callback"
    )]
    Show(JobIdArg),
    #[command(
        about = "Cancel a queued or running job: no file, no callback",
        after_help = "\
The job ends in the state cancelled: it is never published, sends no callback, and its
download answers 0300011 (no such file); the status interface answers state \"cancelled\"
with the error \"The export was cancelled by an operator.\". What its attempts uploaded is
deleted from the file store. A server building it, on any node, notices at its next lease
renewal (within a third of job_lease_secs, 20 s by default), stops and deletes its own upload;
should it finish first, its finish is refused. A job that has ended already (succeeded, failed,
expired, cancelled) is left as it is, and the command fails naming its state; for a job
cancelled already it first deletes again whatever of it is still in the file store (say, after
the file store failed during the first cancel). Prints the job as `ccfs jobs show` does.

Examples:
  ccfs jobs cancel 00112233445566778899aabbccddeeff"
    )]
    Cancel(JobIdArg),
    #[command(
        about = "Queue a callback that gave up (failed) again",
        after_help = "\
The callback of a succeeded job whose delivery gave up (callback state failed) becomes pending
again, due now, as if the job had just been published: its attempts count from 0 and it gives
up callback_give_up_secs from now, so its retries start over from the shortest backoff. A
running server, on any node, attempts it at its next look at the outbox, within 5 seconds.
Refused, changing nothing: a job without a callback (not succeeded), a file past its expiry,
and a callback pending (being retried), delivered or superseded (its file was downloaded).
Prints the job as `ccfs jobs show` does.

Examples:
  ccfs jobs retry-callback 00112233445566778899aabbccddeeff"
    )]
    RetryCallback(JobIdArg),
}

/// `ccfs jobs list`.
#[derive(Debug, Args)]
#[command(
    about = "List export jobs, newest first",
    after_help = "\
Prints a table (RESPONSE ID, APP ID, STATE, CREATED, RECORDS, BYTES, CALLBACK), or with --json
an array of the jobs as `ccfs jobs show` prints each. States are those a client sees now: a
file past its expiry is expired, before retention deletes it.

--since takes an instant in RFC 3339 (2024-05-01T00:00:00Z, 2024-05-01T08:00:00+08:00) or how
long ago (30m, 24h, 7d, 2w, \"1 day 12 hours\").

Examples:
  ccfs jobs list
  ccfs jobs list --state running
  ccfs jobs list --app 0123456789abcdef0123456789abcdef --since 24h --limit 200
  ccfs jobs list --state failed --json | jq -r '.[] | [.responseId, .error] | @tsv'"
)]
pub struct JobsListArgs {
    /// Only this developer's jobs.
    #[arg(long, value_name = "APPID")]
    pub app: Option<AppId>,
    /// Only jobs in this state.
    #[arg(long, value_enum, value_name = "STATE")]
    pub state: Option<StateArg>,
    /// Only jobs accepted at or after this instant (RFC 3339), or this long ago (24h, 7d).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub since: Option<Timestamp>,
    /// At most this many jobs.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Print a JSON array of the jobs instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The response id argument of `jobs show`, `cancel`, `retry-callback`.
#[derive(Debug, Args)]
pub struct JobIdArg {
    /// The job's responseId (32 lower-case hex characters).
    #[arg(value_name = "RESPONSE_ID")]
    pub id: ResponseId,
}

/// A job's state, as the status interface names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Waiting for a worker.
    Queued,
    /// Being built.
    Running,
    /// Built; its file may be downloaded.
    Succeeded,
    /// Could not be built (see its error).
    Failed,
    /// Built once; its file is past its expiry.
    Expired,
    /// Stopped by an operator.
    Cancelled,
}

impl From<StateArg> for JobState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Queued => JobState::Queued,
            StateArg::Running => JobState::Running,
            StateArg::Succeeded => JobState::Succeeded,
            StateArg::Failed => JobState::Failed,
            StateArg::Expired => JobState::Expired,
            StateArg::Cancelled => JobState::Cancelled,
        }
    }
}

/// `--since`: an instant in RFC 3339, or a duration (jiff's friendly format: `24h`, `7d`,
/// `1 day 12 hours`) taken back from now, as the instant it names.
fn parse_since(s: &str) -> Result<Timestamp, String> {
    since_at(s, Timestamp::now())
}

/// [`parse_since`] at `now`. Calendar units count in UTC (a day is 24 hours).
fn since_at(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    let err = || {
        format!(
            "'{s}' is neither an instant in RFC 3339 (2024-05-01T00:00:00Z) nor a duration \
             ago (30m, 24h, 7d)"
        )
    };
    if s.contains(['T', 't']) && s.contains(':') {
        return s
            .parse::<Timestamp>()
            .map_err(|e| format!("{}: {e}", err()));
    }
    let ago: Span = s.parse().map_err(|_| err())?;
    now.to_zoned(TimeZone::UTC)
        .checked_sub(ago.abs())
        .map(|z| z.timestamp())
        .map_err(|e| format!("{}: {e}", err()))
}

/// A role a developer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Generate, status and download exports.
    Export,
    /// Import records for any developer (the CTI platform's credential).
    Ingest,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Export => Role::Export,
            RoleArg::Ingest => Role::Ingest,
        }
    }
}

/// `ccfs app create`.
#[derive(Debug, Args)]
#[command(
    about = "Create a developer and print its app id and secret key (shown this once)",
    after_help = "\
Prints one line of JSON on stdout and nothing else there: {\"appId\":\"…\",\"secretKey\":\"…\"}.
The secret key is stored only encrypted with the server's master key; keep the printed copy.

Examples:
  ccfs app create --name \"Acme CC\"
  ccfs app create --name \"Acme CC\" --account acme01 --account acme02 --timezone Asia/Shanghai
  ccfs app create --name CTI --role ingest
  ccfs app create --name Legacy --app-id globalaktest --csv-header"
)]
pub struct CreateArgs {
    /// A name for people.
    #[arg(long, value_name = "N")]
    pub name: String,
    /// An enterprise account id the developer owns (repeatable).
    #[arg(long = "account", value_name = "ID")]
    pub accounts: Vec<String>,
    /// IANA time zone of the developer's local times (default: the server's default_timezone).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// A role (repeatable; default export).
    #[arg(long = "role", value_enum, value_name = "ROLE")]
    pub roles: Vec<RoleArg>,
    /// Use this app id instead of a random 32-hex one (1-64 of A-Z a-z 0-9 - . _).
    #[arg(long, value_name = "ID")]
    pub app_id: Option<AppId>,
    /// Exports start with a header row of column names.
    #[arg(long)]
    pub csv_header: bool,
}

/// `ccfs app list`.
#[derive(Debug, Args)]
#[command(
    about = "List developers (never their secrets)",
    after_help = "\
Examples:
  ccfs app list
  ccfs app list --json | jq -r '.[].appId'"
)]
pub struct ListArgs {
    /// Print a JSON array of the developers instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The app id argument of `show`, `disable`, `enable`.
#[derive(Debug, Args)]
pub struct AppIdArg {
    /// The developer's app id.
    #[arg(value_name = "APPID")]
    pub app_id: String,
}

/// The format of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The export layout: 21 positional columns, optional header row.
    Csv,
    /// One JSON object per line, keyed by the column names.
    Jsonl,
}

impl Format {
    /// The format named by `--format`, else by the file's extension (`.csv`, `.jsonl`,
    /// `.ndjson`).
    pub fn of_file(path: &std::path::Path, given: Option<Format>) -> anyhow::Result<Format> {
        if let Some(f) = given {
            return Ok(f);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
            _ => anyhow::bail!(
                "{}: cannot tell the format from the file name; give --format csv or --format jsonl",
                path.display()
            ),
        }
    }
}

/// `ccfs import --on-conflict`: what to do with a record whose id is stored with different
/// content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnConflictArg {
    /// Store nothing of the file and name the record (FILE:LINE and its id).
    Fail,
    /// Keep the stored record; store the rest of the file.
    Skip,
    /// Overwrite the stored record with the file's.
    Replace,
}

impl From<OnConflictArg> for ccfs_protocol::messages::OnConflict {
    fn from(a: OnConflictArg) -> Self {
        match a {
            OnConflictArg::Fail => Self::Fail,
            OnConflictArg::Skip => Self::Skip,
            OnConflictArg::Replace => Self::Replace,
        }
    }
}

/// `ccfs migrate-store`.
#[derive(Debug, Args)]
#[command(
    about = "Move an embedded installation (SQLite, local files) to a cluster's PostgreSQL and file store",
    after_help = "\
Copies every table of the SQLite store (developers with their sealed secret keys, records, jobs,
callbacks, idempotency keys, the replay cache) into the PostgreSQL database, then the file of
every finished export from --blobs-from to --blobs-to. Each row is checked in the target after
it is written and each file against the SHA-256 its export recorded.

Safe to run again: what the target already holds is kept, not overwritten or copied twice, and
everything is checked again; a run that was cut short goes on where it stopped. Stop the
embedded server first (or run again after stopping it) so nothing it writes stays behind.

The cluster's nodes must use this installation's master key, which sealed the secret keys:
  CCFS_MASTER_KEY=$(cat ccfs-data/master.key)
S3 settings for an s3:// file store come from the configuration and the AWS_* variables.

Examples:
  ccfs migrate-store --from sqlite://ccfs-data/ccfs.db --to postgres://ccfs:pw@db/ccfs
  ccfs migrate-store --from sqlite://ccfs-data/ccfs.db --to postgres://ccfs:pw@db/ccfs \\
      --blobs-from ccfs-data/files --blobs-to s3://ccfs-exports/prod"
)]
pub struct MigrateStoreArgs {
    /// The embedded store to move: sqlite://PATH.
    #[arg(long, value_name = "URL")]
    pub from: ccfs_server::config::DatabaseUrl,
    /// The cluster's store: postgres://USER:PASSWORD@HOST:PORT/DATABASE (it must exist).
    #[arg(long, value_name = "URL")]
    pub to: ccfs_server::config::DatabaseUrl,
    /// The embedded file store: its directory (ccfs-data/files by default) or file://DIR.
    #[arg(long, value_name = "DIR|URL", requires = "blobs_to")]
    pub blobs_from: Option<ccfs_server::config::BlobUrl>,
    /// The cluster's file store: s3://BUCKET/PREFIX (or a shared directory).
    #[arg(long, value_name = "URL", requires = "blobs_from")]
    pub blobs_to: Option<ccfs_server::config::BlobUrl>,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `ccfs import`.
#[derive(Debug, Args)]
#[command(
    about = "Import agent operation records from CSV or JSONL files into the configured store",
    after_help = "\
Each file is checked completely before anything of it is stored: a bad row stops the command
with `error: FILE:LINE: FIELD: explanation` and nothing of that file is imported. Files named
before it stay imported; files after it are not read. Records already stored (same developer
and id) with the same content are skipped and counted, so importing a file again is harmless.

A record whose id is stored with different content (a corrected record) is a conflict. By
default (--on-conflict fail) nothing of its file is stored and the command stops with
`error: FILE:LINE: id ID: conflicts with a stored record with different content`; with skip the
stored record stays, with replace the file's record overwrites it, and the summary counts the
conflicts and names the first ones. Conflicts are checked before a file is stored, also
between two versions of one id within the file (the first pass then keeps about 40 bytes per
record in memory; with skip or replace it keeps nothing).

A record's developer_id must name an existing developer (or use --app), and its local times
(YYYY-MM-DD hh:mm:ss) are read in that developer's time zone; RFC 3339 times with an offset
are also accepted.

Formats: csv is the export layout (21 positional columns, RFC 4180 quoting, optional header
row); jsonl is one JSON object per line keyed by the column names. The format comes from
--format, else from the extension (.csv, .jsonl, .ndjson).

Prints one summary line per file on stdout (or one JSON object per line with --json).

Examples:
  ccfs import records.csv
  ccfs import day1.csv day2.csv --app 0123456789abcdef0123456789abcdef
  ccfs import export.txt --format csv --batch 20000
  ccfs import activity.jsonl --json
  ccfs import corrections.csv --on-conflict replace"
)]
pub struct ImportArgs {
    /// Files to import, in order.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// The files' format (default: from the extension).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Assign every record to this developer, whatever its developer_id column says.
    #[arg(long, value_name = "APPID")]
    pub app: Option<String>,
    /// Records stored per transaction.
    #[arg(long, value_name = "N", default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch: u32,
    /// What to do with a record whose id is stored with different content.
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = OnConflictArg::Fail)]
    pub on_conflict: OnConflictArg,
    /// Print one JSON object per file instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

/// `ccfs simulate`.
#[derive(Debug, Args)]
#[command(
    about = "Simulate realistic agent activity: write it to a CSV or JSONL file, or import it",
    long_about = "\
Simulate realistic agent activity for N agents over D days in the developer's time zone, and
write it to a file (--out) or import it straight into the configured store.

The output is deterministic for a given --seed (default 1) and parameters, with one caveat: the
random generator is rand's StdRng, whose stream may change with a new rand release. Every
agent-day has its own stream, so a day is the same whatever else is simulated with it. Record
ids are unique per (seed, agent, day), so importing the same simulation twice stores nothing
new, and other seeds or days never collide.

The model, per agent-day (durations uniform in the range unless noted):
  sign in (op_type 1)   between 07:00 and 10:00 local; one logon_sn for the session
  shift                 8 h plus 0-10 min; then sign out (op_type 0, cause 258 by itself)
                        once the call in hand is wrapped up
  rest (26)             short break (cause 2) 10-15 min at 1.5-2.5 h, lunch (cause 1)
                        30-45 min at 3.5-4.5 h, short break (cause 2) 10-15 min at 6-7 h
  idle (2)              the time between activities
  calls                 offered while idle, 6 per idle hour (Poisson); inbound voice
                        (media_type 5, callIn_out 1); one call_id for all a call's records;
                        skill_id one of the agent's two skills (101-106)
    not answered 4 %    busy (3) cause 2 \"no answer too long\", 1-5 min
    talking (4)         cause 0, 20 s + exponential(mean 220 s), at most 30 min
    hold (38)           20 % of answered calls, 30-180 s, splitting the talk in two
    internal transfer   45: 5 % of answered calls, 10-60 s, op_object = another agent
    transfer out        46: 3 % of answered calls, 10-60 s, phone_no = external number
    wrap-up (27)        after every answered call, cause 0 automatic, 30-120 s
  busy (3)              0.5 per idle hour: cause 1 self 70 % (2-10 min), 5 phone unavailable
                        5 % (1-3 min), business reason 201-205 25 % (10-30 min)
Talking is op_type 4, the only talking state of the CC-FS table: a voice call gives one final
record (cause 0) per talk segment; the 5-minute interim records (cause 1) are text chat's,
which is not simulated.

Mean counts per agent-day (over many agent-days): sign in 1, sign out 1, rest 3 (exact for
every agent-day); calls 23-29 (about 26); talking 26-34; wrap-up 22-28; idle 27-34;
busy 2.3-4; hold 4-6; internal transfer 0.9-1.8; transfer out 0.4-1.2.
Constant columns: vdn_id 1, cc_id 1, agent_type 4, location_id 0; unused columns hold -1.
Agents are work numbers 10001, 10002, ...

Without --out the developer must exist in the configured store; its time zone and first
account are used, and the records are imported (already present ones are skipped). With --out
the developer is read from the store too, unless --timezone is given. The format comes from
--format, else from the extension (.csv, .jsonl, .ndjson); CSV is the export layout that
`ccfs import` reads.",
    after_help = "\
Examples:
  ccfs simulate --app 0123456789abcdef0123456789abcdef --agents 50 --days 30
  ccfs simulate --app 0123456789abcdef0123456789abcdef --agents 10 --days 1 --start 2024-05-01 --out day.csv
  ccfs simulate --app demo --timezone Asia/Shanghai --agents 5 --days 7 --seed 42 --out week.jsonl"
)]
pub struct SimulateArgs {
    /// The developer (appId) the records belong to.
    #[arg(long, value_name = "APPID")]
    pub app: String,
    /// Number of agents (work numbers 10001, 10002, ...).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub agents: u32,
    /// Number of days.
    #[arg(long, value_name = "D",
          value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// First day, YYYY-MM-DD (default: D days before today in the developer's time zone).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub start: Option<jiff::civil::Date>,
    /// Seed of the random generator.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Write the records to this file instead of importing them.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The file's format (default: from the extension of --out).
    #[arg(long, value_enum, requires = "out")]
    pub format: Option<Format>,
    /// With --out: the developer's time zone, so the store is not needed.
    #[arg(long, value_name = "TZ", requires = "out")]
    pub timezone: Option<String>,
    /// The account_id of the records (default: the developer's first account, else empty).
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `ccfs demo`.
#[derive(Debug, Args)]
#[command(
    about = "Run the whole flow end to end on a throw-away embedded setup and print a summary",
    long_about = "\
Run the whole CC-FS flow end to end on a throw-away embedded setup, with nothing installed
beyond this binary, and print a summary.

In its own data directory (a new one under the system's temporary directory, or --data-dir)
the demo starts the server in-process on a free port with HTTPS and a self-signed
certificate; creates an export developer (time zone Europe/Berlin, account demo01) and an
ingest developer; simulates yesterday for 50 agents (seed 1, the model of `ccfs simulate`);
imports the records through the signed import interface; starts a local callback receiver
that verifies the callback's signature; asks for the export of yesterday over signed HTTPS
with the client SDK; waits for the callback; downloads the zip and checks its SHA-256; opens
it and checks that its CSV rows are exactly the simulated records; then stops the server.

The summary shows the records by operation type, the agents, the time range, the file's
name, size and SHA-256, and how long each step took. The demo never touches the configured
store or server. Its temporary data directory is removed at the end, also when a check
fails, unless --keep is given: then the summary says where the files are and how to remove
them. A directory given with --data-dir is always kept. Exit status 0 when every check held.",
    after_help = "\
Examples:
  ccfs demo
  ccfs demo --keep                 # look at the database, the zip and its CSV afterwards
  ccfs demo --data-dir ./demo-data
  ccfs demo --json | jq .byOpType"
)]
pub struct DemoArgs {
    /// Use (and keep) this data directory instead of a new temporary one.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the temporary data directory (the summary says where it is).
    #[arg(long)]
    pub keep: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `ccfs completions`.
#[derive(Debug, Args)]
#[command(
    about = "Print the shell completion script of ccfs for bash, zsh, fish or PowerShell",
    after_help = "\
The script is generated from this very command line, so it always knows every command and
flag of this version. Write it where the shell looks for completions, or source it.

Examples:
  ccfs completions bash > ~/.local/share/bash-completion/completions/ccfs
  ccfs completions zsh > \"${fpath[1]}/_ccfs\"
  ccfs completions fish > ~/.config/fish/completions/ccfs.fish
  ccfs completions powershell >> $PROFILE"
)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `ccfs man`.
#[derive(Debug, Args)]
#[command(
    about = "Write the manual pages of ccfs (roff), generated from the command line",
    after_help = "\
Without --out, prints the page of ccfs itself (ccfs.1) on stdout. With --out, writes ccfs.1 and
one page per command and subcommand (ccfs-serve.1, ccfs-app-create.1, ...) into DIR, creating
it, and prints the files' paths.

Examples:
  ccfs man | man -l -
  ccfs man --out /usr/local/share/man/man1 && mandb
  ccfs man --out ./man && man -l ./man/ccfs-import.1"
)]
pub struct ManArgs {
    /// Write every page into this directory instead of ccfs.1 on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn jobs_help(sub: &str) -> String {
        let mut cli = Cli::command();
        cli.find_subcommand_mut("jobs")
            .and_then(|j| j.find_subcommand_mut(sub))
            .unwrap_or_else(|| panic!("jobs {sub}"))
            .render_long_help()
            .to_string()
    }

    /// The help of `jobs cancel` and `jobs retry-callback` says how soon a running server acts:
    /// the server's own bounds, not numbers of their own.
    #[test]
    fn jobs_help_names_the_server_s_bounds() {
        let help = jobs_help("retry-callback");
        let secs = ccfs_server::CALLBACK_LOOK.as_secs();
        assert!(help.contains(&format!("within {secs} seconds")), "{help}");
        let help = jobs_help("cancel");
        let renewal = ccfs_server::Config::default().job_lease_secs / 3;
        assert!(help.contains(&format!("{renewal} s by default")), "{help}");
    }

    #[test]
    fn since_is_an_instant_or_a_duration_ago() {
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let now = at("2024-05-08T12:00:00Z");
        assert_eq!(
            since_at("2024-05-01T08:00:00+08:00", now),
            Ok(at("2024-05-01T00:00:00Z"))
        );
        for (text, want) in [
            ("24h", "2024-05-07T12:00:00Z"),
            ("7d", "2024-05-01T12:00:00Z"),
            ("1w", "2024-05-01T12:00:00Z"),
            ("30m", "2024-05-08T11:30:00Z"),
            ("1 day 12 hours", "2024-05-07T00:00:00Z"),
        ] {
            assert_eq!(since_at(text, now), Ok(at(want)), "{text}");
        }
        for bad in ["yesterday", "", "2024-05-01T00:00:00", "24"] {
            let e = since_at(bad, now).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }
}
