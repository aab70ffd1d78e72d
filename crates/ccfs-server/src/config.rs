//! One typed configuration, layered: defaults ← TOML file ← `CCFS_*` environment.
//!
//! Every key of the file has an environment variable of the same name in upper case with the
//! `CCFS_` prefix (`listen` ← `CCFS_LISTEN`, `retention_secs` ← `CCFS_RETENTION_SECS`).

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

pub use crate::callback::policy::{AddressPolicy, Network};
use crate::model::TimeZoneName;
pub use crate::urls::{BlobUrl, DatabaseUrl, S3Location};

/// The server's configuration. Durations are whole seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Holds the SQLite database, the files, the master key and the self-signed certificate.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`; default
    /// `sqlite://{data_dir}/ccfs.db`. Other schemes are refused.
    pub database_url: Option<DatabaseUrl>,
    /// Connections to PostgreSQL this process opens at most (an SQLite store ignores it).
    pub database_pool_size: u32,
    /// `file:///ABSOLUTE/DIR`, a plain directory path, or `s3://BUCKET/PREFIX`; default
    /// `{data_dir}/files`. Other schemes are refused.
    pub blob_url: Option<BlobUrl>,
    /// S3 access key id (`AWS_ACCESS_KEY_ID`); an `s3://` file store only.
    pub aws_access_key_id: Option<String>,
    /// S3 secret access key (`AWS_SECRET_ACCESS_KEY`); never shown.
    pub aws_secret_access_key: Option<Secret>,
    /// S3 region (`AWS_REGION`); Garage's default is `garage`.
    pub aws_region: Option<String>,
    /// S3 endpoint of an S3-compatible store (`AWS_ENDPOINT_URL`), e.g. `http://127.0.0.1:3900`;
    /// default AWS itself.
    pub aws_endpoint_url: Option<url::Url>,
    /// Allow a plain `http://` endpoint (`AWS_ALLOW_HTTP`).
    pub aws_allow_http: bool,
    /// Serve plain HTTP: only behind a TLS-terminating balancer.
    pub plain_http: bool,
    /// The time a client gets to send a request's whole header: from the connection's start
    /// (TLS handshake included) for its first request, from the first byte for a later one.
    #[serde(deserialize_with = "header_timeout_setting")]
    pub header_timeout_secs: NonZeroU64,
    /// A keep-alive connection with no request in flight is closed after this long.
    #[serde(deserialize_with = "idle_timeout_setting")]
    pub idle_timeout_secs: NonZeroU64,
    /// Connections open at once. At the cap, a new connection takes the place of the one idle
    /// the longest (no request in flight); with none idle it is closed. Lowered at start to half
    /// the open-file limit, which the server first raises as far as it may.
    #[serde(deserialize_with = "max_connections_setting")]
    pub max_connections: NonZeroU32,
    /// PEM certificate chain and key; default a self-signed pair in the data directory.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The master key file (32 bytes, hex); default `{data_dir}/master.key`, created on first start.
    pub master_key_file: Option<PathBuf>,
    /// The master key itself (64 hex characters), instead of a file.
    pub master_key: Option<String>,
    /// Allowed distance between a request's timestamp and the server clock.
    pub auth_window_secs: u64,
    /// How long a request's body may take to arrive, from the end of its headers; a slower
    /// one is refused and its connection closed.
    pub body_timeout_secs: NonZeroU64,
    /// What an identical signature seen again within the window means (SPEC section 3).
    pub replay: ReplayPolicy,
    /// Also accept signatures whose canonical request carries an empty query line when the
    /// request has no query (written so by two public client ports).
    pub accept_empty_query_line: bool,
    /// Take the signed `host` value from `X-Forwarded-Host` (behind a proxy that rewrites Host).
    pub trust_forwarded_host: bool,
    /// Longest generate window.
    pub max_span_secs: u64,
    /// Jobs queued or running per developer before generate answers 0300009.
    pub max_active_jobs: u32,
    /// Downloads in progress per developer before download answers 0300008, counted across
    /// every node on the database (each node should be given the same value).
    pub max_downloads: u32,
    /// Rows per CSV part.
    pub rows_per_file: u64,
    /// Deflate level 0–9 of the zip entries (0 stores them uncompressed). The default is 5:
    /// on export CSV, level 5 of the deflate library (its shorter match search) costs about 30%
    /// less CPU than level 6 for zips about 0.5% larger (issue 10's measurements).
    pub compression_level: u32,
    /// Export jobs run at once by this process; 0 makes an API-only node.
    pub export_workers: u32,
    /// This node's name in job leases, metrics (`node` label) and log lines; default
    /// `HOSTNAME-PID` (see [`Config::node_name`]). Unique among the nodes sharing a database:
    /// two nodes of one name would take each other's job leases for their own.
    pub node_name: Option<String>,
    /// How long a claimed job stays claimed without renewal (crash takeover time). Also the
    /// lease of a download slot: a node that dies mid-download stops counting against its
    /// developer's `max_downloads` this long after its last renewal (live nodes renew every
    /// third of it).
    pub job_lease_secs: u64,
    /// Claims of a job (crashes included) before it is marked failed.
    pub job_max_attempts: u32,
    /// Generated files are kept this long.
    pub retention_secs: u64,
    /// How often expired files are looked for.
    pub retention_interval_secs: u64,
    /// One callback attempt's time limit, from connecting to the receiver's whole answer.
    pub callback_timeout_secs: u64,
    /// How long connecting to a callback receiver may take (part of `callback_timeout_secs`).
    pub callback_connect_timeout_secs: u64,
    /// Callback attempts this node makes at once.
    pub callback_parallel: u32,
    /// Callback attempts of one developer this node makes at once, so that one developer's
    /// slow receivers never hold every slot.
    pub callback_per_developer: u32,
    /// Networks callbacks never go to, besides the always-refused link-local, unspecified,
    /// multicast and broadcast ones (checked at load, see [`Network`]).
    #[serde(deserialize_with = "deny_networks")]
    pub callback_deny: Vec<Network>,
    /// Networks callbacks may go to even inside a refused one (the exception wins).
    #[serde(deserialize_with = "allow_networks")]
    pub callback_allow: Vec<Network>,
    /// First retry delay; doubles with each failure, with jitter.
    pub callback_initial_backoff_secs: u64,
    pub callback_max_backoff_secs: u64,
    /// Give up on a callback this long after the export finished.
    pub callback_give_up_secs: u64,
    /// Extra PEM root certificate trusted for callback receivers.
    pub callback_ca_cert: Option<PathBuf>,
    /// Accept any certificate from callback receivers (testing only).
    pub callback_insecure: bool,
    /// Time zone of new developers without one (an IANA name, checked when the configuration
    /// is read).
    #[serde(deserialize_with = "time_zone_setting")]
    pub default_timezone: TimeZoneName,
    /// How long the old secret stays valid after `rotate-secret`.
    pub secret_grace_secs: u64,
    /// The log lines on stderr: `text` (for people) or `json` (one object per line, for a log
    /// collector).
    #[serde(deserialize_with = "log_format_setting")]
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 28443)),
            data_dir: PathBuf::from("./ccfs-data"),
            database_url: None,
            database_pool_size: crate::store::postgres::DEFAULT_POOL_SIZE,
            blob_url: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_region: None,
            aws_endpoint_url: None,
            aws_allow_http: false,
            plain_http: false,
            header_timeout_secs: NonZeroU64::new(10).expect("positive"),
            idle_timeout_secs: NonZeroU64::new(60).expect("positive"),
            max_connections: NonZeroU32::new(4096).expect("positive"),
            tls_cert: None,
            tls_key: None,
            master_key_file: None,
            master_key: None,
            auth_window_secs: 15 * 60,
            body_timeout_secs: NonZeroU64::new(30).unwrap_or(NonZeroU64::MIN),
            replay: ReplayPolicy::Retry,
            accept_empty_query_line: true,
            trust_forwarded_host: false,
            max_span_secs: 3 * 86_400,
            max_active_jobs: 10,
            max_downloads: 4,
            rows_per_file: 100_000,
            compression_level: 5,
            export_workers: 1,
            node_name: None,
            job_lease_secs: 60,
            job_max_attempts: 3,
            retention_secs: 7 * 86_400,
            retention_interval_secs: 300,
            callback_timeout_secs: 10,
            callback_connect_timeout_secs: 5,
            callback_parallel: 16,
            callback_per_developer: 2,
            callback_deny: Vec::new(),
            callback_allow: Vec::new(),
            callback_initial_backoff_secs: 10,
            callback_max_backoff_secs: 600,
            callback_give_up_secs: 86_400,
            callback_ca_cert: None,
            callback_insecure: false,
            default_timezone: TimeZoneName::utc(),
            secret_grace_secs: 86_400,
            log_format: LogFormat::Text,
        }
    }
}

/// A secret setting: shown as `Secret(…)`, handed out only by [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: for the client that needs it, never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// What the server does with a signature it has already accepted within the timestamp window.
///
/// Public clients sign with second precision, so a client that resends a request within the
/// same second (a retry after a time-out, a second download of one file) sends a byte-identical
/// `Authorization`. An identical signature can only come with the same method, path, host and
/// body, so by default it is taken for what it almost always is: a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayPolicy {
    /// Serve it again: generate answers the same `responseId` and starts no job; download and
    /// status answer as the first time.
    Retry,
    /// Answer 401 "replayed signature" (one store write per request to remember signatures).
    Refuse,
    /// No check at all: an identical generate starts a second job.
    Off,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event, `key=value` fields after the message.
    #[default]
    Text,
    /// One JSON object per line, the fields as members.
    Json,
}

impl LogFormat {
    pub const ALL: [LogFormat; 2] = [LogFormat::Text, LogFormat::Json];

    /// The name the configuration uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// `log_format`, one of [`LogFormat::ALL`]; another value is refused with the key and the
/// choices.
fn log_format_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<LogFormat, D::Error> {
    let name = String::deserialize(d)?;
    LogFormat::ALL
        .into_iter()
        .find(|f| f.as_str() == name)
        .ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "log_format = {name:?} is not a log format; write \"text\" or \"json\""
            ))
        })
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Every key, with whether its value is a string (strings are taken from the environment as
/// they are; other values are read as TOML, e.g. `true`, `42`).
const KEYS: &[(&str, bool)] = &[
    ("listen", true),
    ("data_dir", true),
    ("database_url", true),
    ("database_pool_size", false),
    ("blob_url", true),
    ("aws_access_key_id", true),
    ("aws_secret_access_key", true),
    ("aws_region", true),
    ("aws_endpoint_url", true),
    ("aws_allow_http", false),
    ("plain_http", false),
    ("header_timeout_secs", false),
    ("idle_timeout_secs", false),
    ("max_connections", false),
    ("tls_cert", true),
    ("tls_key", true),
    ("master_key_file", true),
    ("master_key", true),
    ("auth_window_secs", false),
    ("body_timeout_secs", false),
    ("replay", true),
    ("accept_empty_query_line", false),
    ("trust_forwarded_host", false),
    ("max_span_secs", false),
    ("max_active_jobs", false),
    ("max_downloads", false),
    ("rows_per_file", false),
    ("compression_level", false),
    ("export_workers", false),
    ("node_name", true),
    ("job_lease_secs", false),
    ("job_max_attempts", false),
    ("retention_secs", false),
    ("retention_interval_secs", false),
    ("callback_timeout_secs", false),
    ("callback_connect_timeout_secs", false),
    ("callback_parallel", false),
    ("callback_per_developer", false),
    ("callback_deny", false),
    ("callback_allow", false),
    ("callback_initial_backoff_secs", false),
    ("callback_max_backoff_secs", false),
    ("callback_give_up_secs", false),
    ("callback_ca_cert", true),
    ("callback_insecure", false),
    ("default_timezone", true),
    ("secret_grace_secs", false),
    ("log_format", true),
];

/// `default_timezone`, read as the time zone it names; an unknown one is refused with the key.
fn time_zone_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TimeZoneName, D::Error> {
    let name = String::deserialize(d)?;
    TimeZoneName::parse(&name)
        .map_err(|e| serde::de::Error::custom(format_args!("default_timezone: {e}")))
}

/// A list of networks, each read as one; a bad entry is refused with the key and the entry.
fn networks<'de, D: serde::Deserializer<'de>>(d: D, key: &str) -> Result<Vec<Network>, D::Error> {
    let list = Vec::<String>::deserialize(d).map_err(|e| {
        serde::de::Error::custom(format_args!(
            "{key}: {e}; write a list of networks, e.g. [\"10.0.0.0/8\", \"fd00::/8\"]"
        ))
    })?;
    list.iter()
        .map(|entry| {
            entry
                .parse()
                .map_err(|e| serde::de::Error::custom(format_args!("{key}: {e}")))
        })
        .collect()
}

fn deny_networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Network>, D::Error> {
    networks(d, "callback_deny")
}

fn allow_networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Network>, D::Error> {
    networks(d, "callback_allow")
}

/// A setting that must be at least 1, read as such; 0 (or a value too large for its type) is
/// refused with the key and what to give instead.
fn at_least_one<'de, D, T>(d: D, key: &str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<NonZeroU64>,
{
    let n = u64::deserialize(d)?;
    let refused = |what: &str| {
        serde::de::Error::custom(format_args!("{key} = {n} {what}; give a whole number >= 1"))
    };
    let n = NonZeroU64::new(n).ok_or_else(|| refused("would allow nothing"))?;
    T::try_from(n).map_err(|_| refused("is too large"))
}

fn header_timeout_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU64, D::Error> {
    at_least_one(d, "header_timeout_secs")
}

fn idle_timeout_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU64, D::Error> {
    at_least_one(d, "idle_timeout_secs")
}

fn max_connections_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    at_least_one(d, "max_connections")
}

impl Config {
    /// Defaults, then `file` when given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, |k| std::env::var(k).ok())
    }

    /// As [`Config::load`], with the environment given as a lookup function.
    pub fn load_with(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (key, is_string) in KEYS {
            let var = format!("CCFS_{}", key.to_ascii_uppercase());
            // The S3 keys also come from the variables every S3 tool reads (`AWS_REGION`, …);
            // the `CCFS_` one wins when both are set.
            let standard = key
                .starts_with("aws_")
                .then(|| key.to_ascii_uppercase())
                .filter(|v| env(v).is_some());
            let (var, raw) = match env(&var) {
                Some(raw) => (var, raw),
                None => match standard {
                    Some(v) => {
                        let raw = env(&v).unwrap_or_default();
                        (v, raw)
                    }
                    None => continue,
                },
            };
            let value = if *is_string {
                toml::Value::String(raw)
            } else {
                // Read as the value of a key: alone, `["10.0.0.0/8"]` would be a table header.
                format!("v = {}", raw.trim())
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .ok_or_else(|| {
                        ConfigError::Invalid(format!("{var}: '{raw}' is not a valid value"))
                    })?
            };
            table.insert((*key).to_owned(), value);
        }
        // A key that was replaced: say by what, rather than "unknown field".
        if table.contains_key("replay_protection") || env("CCFS_REPLAY_PROTECTION").is_some() {
            return Err(ConfigError::Invalid(
                "replay_protection was replaced by replay = \"retry\" | \"refuse\" | \"off\" \
                 (CCFS_REPLAY): true was \"refuse\", false was \"off\"; the default is now \
                 \"retry\", which serves an identical signature again as a retry"
                    .into(),
            ));
        }
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert and tls_key must be given together".into());
        }
        if self.rows_per_file == 0 {
            return bad("rows_per_file must be at least 1".into());
        }
        if self.compression_level > 9 {
            return bad("compression_level must be 0-9".into());
        }
        if self.max_span_secs == 0 || self.job_lease_secs == 0 || self.callback_timeout_secs == 0 {
            return bad(
                "max_span_secs, job_lease_secs and callback_timeout_secs must be positive".into(),
            );
        }
        if self.callback_connect_timeout_secs == 0
            || self.callback_parallel == 0
            || self.callback_per_developer == 0
        {
            return bad("callback_connect_timeout_secs, callback_parallel and \
                 callback_per_developer must be positive"
                .into());
        }
        if self.database_pool_size == 0 {
            return bad("database_pool_size must be at least 1".into());
        }
        if let Some(name) = &self.node_name {
            crate::node::check(name).map_err(ConfigError::Invalid)?;
        }
        if let Some(k) = &self.master_key {
            if k.len() != 64 || hex::decode(k).is_err() {
                return bad("master_key must be 64 hex characters".into());
            }
        }
        Ok(())
    }

    /// The store: `database_url`, else the SQLite file in the data directory.
    pub fn database_url(&self) -> DatabaseUrl {
        self.database_url
            .clone()
            .unwrap_or_else(|| DatabaseUrl::in_data_dir(&self.data_dir))
    }

    /// Where finished exports are kept: `blob_url`, else `{data_dir}/files`.
    pub fn blob_url(&self) -> BlobUrl {
        self.blob_url
            .clone()
            .unwrap_or_else(|| BlobUrl::in_data_dir(&self.data_dir))
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// This node's name: `node_name`, else `HOSTNAME-PID` (the same all through a process).
    pub fn node_name(&self) -> String {
        self.node_name
            .clone()
            .unwrap_or_else(crate::node::default_name)
    }

    /// Scratch space for exports being written.
    pub fn work_dir(&self) -> PathBuf {
        self.data_dir.join("work")
    }

    pub fn secs(s: u64) -> SignedDuration {
        SignedDuration::from_secs(s.min(i64::MAX as u64) as i64)
    }

    pub fn auth_window(&self) -> SignedDuration {
        Self::secs(self.auth_window_secs)
    }
    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.body_timeout_secs.get())
    }
    pub fn max_span(&self) -> SignedDuration {
        Self::secs(self.max_span_secs)
    }
    pub fn retention(&self) -> SignedDuration {
        Self::secs(self.retention_secs)
    }
    pub fn job_lease(&self) -> SignedDuration {
        Self::secs(self.job_lease_secs)
    }
    pub fn secret_grace(&self) -> SignedDuration {
        Self::secs(self.secret_grace_secs)
    }

    /// Where callbacks may go: `callback_deny` and `callback_allow` over the built-in refusals.
    pub fn callback_policy(&self) -> AddressPolicy {
        AddressPolicy::new(&self.callback_deny, &self.callback_allow)
    }
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.get())
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/ccfs.example.toml`, the example configuration of the README.
    const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ccfs.example.toml");

    /// Every key of [`Config`], read off the struct itself: its serialized defaults, with the
    /// keys without a default as `null`.
    fn struct_keys() -> (Vec<String>, Vec<String>) {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let object = defaults.as_object().unwrap();
        let all: Vec<String> = object.keys().cloned().collect();
        let without_default = object
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k.clone())
            .collect();
        (all, without_default)
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn the_example_file_has_every_key_with_its_default() {
        let text = std::fs::read_to_string(EXAMPLE).unwrap();
        let (all, without_default) = struct_keys();
        // Set keys are the file's TOML keys; commented ones are `# key = example` lines.
        let set: Vec<String> = text
            .parse::<toml::Table>()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let commented: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# ")?.split_once(" = "))
            .map(|(k, _)| k.to_owned())
            .filter(|k| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .collect();
        let mut listed = set.clone();
        listed.extend(commented.iter().cloned());
        assert_eq!(
            sorted(listed),
            sorted(all.clone()),
            "docs/ccfs.example.toml must list every key of Config once"
        );
        assert_eq!(
            sorted(commented.clone()),
            sorted(without_default),
            "exactly the keys without a default are commented out"
        );
        // Read as a configuration, it is the defaults.
        let example = Config::load_with(Some(Path::new(EXAMPLE)), |_| None).unwrap();
        assert_eq!(example, Config::default());
        // Its commented examples are valid values too.
        let dir = tempfile::tempdir().unwrap();
        let uncommented = dir.path().join("all.toml");
        let all_set: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if commented
                        .iter()
                        .any(|k| rest.starts_with(&format!("{k} = "))) =>
                {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&uncommented, all_set).unwrap();
        let c = Config::load_with(Some(&uncommented), |_| None).unwrap();
        let shown = serde_json::to_value(&c).unwrap();
        for k in &commented {
            assert!(!shown[k].is_null(), "{k}");
        }
    }

    #[test]
    fn every_key_can_come_from_the_environment() {
        let env_keys: Vec<String> = KEYS.iter().map(|(k, _)| (*k).to_owned()).collect();
        assert_eq!(sorted(env_keys), sorted(struct_keys().0));
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ccfs.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\nmax_active_jobs = 3\nplain_http = true\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "CCFS_MAX_ACTIVE_JOBS" => Some("5".to_owned()),
            "CCFS_DATA_DIR" => Some("/tmp/x y".to_owned()),
            _ => None,
        };
        let c = Config::load_with(Some(&file), env).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_active_jobs, 5);
        assert!(c.plain_http);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x y"));
        assert_eq!(c.rows_per_file, 100_000);
    }

    #[test]
    fn body_timeout_is_positive_seconds() {
        let c = Config::load_with(None, |_| None).unwrap();
        assert_eq!(c.body_timeout(), std::time::Duration::from_secs(30));
        let set = |v: &str| {
            let v = v.to_owned();
            Config::load_with(None, move |k| {
                (k == "CCFS_BODY_TIMEOUT_SECS").then(|| v.clone())
            })
        };
        assert_eq!(
            set("2").unwrap().body_timeout(),
            std::time::Duration::from_secs(2)
        );
        let e = set("0").unwrap_err().to_string();
        assert!(e.contains("nonzero"), "{e}");
        assert!(set("-1").is_err());
    }

    #[test]
    fn replay_policy_and_query_line_switch() {
        let c = Config::load_with(None, |_| None).unwrap();
        assert_eq!(c.replay, ReplayPolicy::Retry);
        assert!(c.accept_empty_query_line);
        for (raw, want) in [
            ("retry", ReplayPolicy::Retry),
            ("refuse", ReplayPolicy::Refuse),
            ("off", ReplayPolicy::Off),
        ] {
            let c = Config::load_with(None, |k| (k == "CCFS_REPLAY").then(|| raw.into())).unwrap();
            assert_eq!(c.replay, want);
        }
        let e = Config::load_with(None, |k| (k == "CCFS_REPLAY").then(|| "maybe".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("maybe") && e.contains("retry"), "{e}");
        let c = Config::load_with(None, |k| {
            (k == "CCFS_ACCEPT_EMPTY_QUERY_LINE").then(|| "false".into())
        })
        .unwrap();
        assert!(!c.accept_empty_query_line);
        let e = Config::load_with(None, |k| {
            (k == "CCFS_REPLAY_PROTECTION").then(|| "true".into())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("replaced by replay"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let e = Config::load_with(None, |k| (k == "CCFS_MAX_DOWNLOADS").then(|| "many".into()))
            .unwrap_err();
        assert!(e.to_string().contains("CCFS_MAX_DOWNLOADS"), "{e}");
        let e = Config::load_with(None, |k| {
            (k == "CCFS_DEFAULT_TIMEZONE").then(|| "Mars/Base".into())
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("unknown time zone 'Mars/Base'")
                && e.to_string().contains("default_timezone"),
            "{e}"
        );
        for key in [
            "HEADER_TIMEOUT_SECS",
            "IDLE_TIMEOUT_SECS",
            "MAX_CONNECTIONS",
        ] {
            let var = format!("CCFS_{key}");
            let e = Config::load_with(None, |k| (k == var).then(|| "0".into())).unwrap_err();
            assert!(
                e.to_string().contains(&key.to_ascii_lowercase()),
                "{var}=0: {e}"
            );
        }
        let c =
            Config::load_with(None, |k| (k == "CCFS_MAX_CONNECTIONS").then(|| "8".into())).unwrap();
        assert_eq!(c.max_connections.get(), 8);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(Config::load_with(Some(&file), |_| None)
            .unwrap_err()
            .to_string()
            .contains("lisen"));
    }

    #[test]
    fn callback_networks_are_lists_read_once_and_a_bad_entry_names_key_and_entry() {
        let d = Config::default();
        assert_eq!(
            (d.callback_parallel, d.callback_per_developer),
            (16, 2),
            "defaults"
        );
        assert_eq!(d.callback_connect_timeout_secs, 5);
        let c = Config::load_with(None, |k| match k {
            "CCFS_CALLBACK_DENY" => Some(r#"["10.0.0.0/8", "::1"]"#.into()),
            "CCFS_CALLBACK_ALLOW" => Some(r#"["10.1.0.0/16"]"#.into()),
            "CCFS_CALLBACK_PER_DEVELOPER" => Some("3".into()),
            _ => None,
        })
        .unwrap();
        let shown: Vec<String> = c.callback_deny.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "::1/128"]);
        assert_eq!(c.callback_per_developer, 3);
        let p = c.callback_policy();
        assert!(!p.allows("10.2.0.1".parse().unwrap()));
        assert!(p.allows("10.1.0.1".parse().unwrap()));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "callback_allow = [\"10.0.0.0/8\", \"10.0.0.0/99\"]\n",
        )
        .unwrap();
        let e = Config::load_with(Some(&file), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("callback_allow") && e.contains("10.0.0.0/99"),
            "{e}"
        );
        let e = Config::load_with(None, |k| {
            (k == "CCFS_CALLBACK_DENY").then(|| "\"10.0.0.0/8\"".into())
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("callback_deny") && e.contains("list of networks"),
            "{e}"
        );
        let e = Config::load_with(None, |k| {
            (k == "CCFS_CALLBACK_PER_DEVELOPER").then(|| "0".into())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("callback_per_developer"), "{e}");
    }

    #[test]
    fn the_log_format_is_text_or_json_and_nothing_else() {
        let format = |v: &str| {
            let v = v.to_owned();
            Config::load_with(None, move |k| (k == "CCFS_LOG_FORMAT").then(|| v.clone()))
        };
        assert_eq!(Config::default().log_format, LogFormat::Text);
        assert_eq!(format("json").unwrap().log_format, LogFormat::Json);
        assert_eq!(format("text").unwrap().log_format, LogFormat::Text);
        for bad in ["xml", "JSON", ""] {
            let e = format(bad).unwrap_err().to_string();
            assert!(
                e.contains("log_format") && e.contains("\"text\" or \"json\""),
                "{bad}: {e}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "log_format = \"json\"\n").unwrap();
        let c = Config::load_with(Some(&file), |_| None).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn the_node_name_is_configured_or_host_and_pid() {
        let c =
            Config::load_with(None, |k| (k == "CCFS_NODE_NAME").then(|| "ccfs-a".into())).unwrap();
        assert_eq!(c.node_name(), "ccfs-a");
        let d = Config::load_with(None, |_| None).unwrap();
        assert_eq!(d.node_name(), crate::node::default_name());
        let e = Config::load_with(None, |k| (k == "CCFS_NODE_NAME").then(|| "a b".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("node_name"), "{e}");
    }

    #[test]
    fn store_urls_are_typed_and_unsupported_schemes_refused() {
        let c = Config::load_with(None, |k| match k {
            "CCFS_DATABASE_URL" => Some("sqlite:///srv/ccfs.db".into()),
            "CCFS_BLOB_URL" => Some("file:///srv/files".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.database_url(), DatabaseUrl::Sqlite("/srv/ccfs.db".into()));
        assert_eq!(c.blob_url(), BlobUrl::Local("/srv/files".into()));
        let d = Config::default();
        assert_eq!(
            d.database_url(),
            DatabaseUrl::Sqlite(PathBuf::from("./ccfs-data/ccfs.db"))
        );
        assert_eq!(d.blob_url(), BlobUrl::Local("./ccfs-data/files".into()));

        assert_eq!(d.database_pool_size, 10);

        // PostgreSQL, with its pool size; the password stays out of the debug form.
        let pg = Config::load_with(None, |k| match k {
            "CCFS_DATABASE_URL" => Some("postgres://ccfs:pw@db/ccfs".into()),
            "CCFS_DATABASE_POOL_SIZE" => Some("3".into()),
            _ => None,
        })
        .unwrap();
        assert!(matches!(pg.database_url(), DatabaseUrl::Postgres(_)));
        assert_eq!(pg.database_pool_size, 3);
        assert!(!format!("{pg:?}").contains("pw"));
        let e = Config::load_with(None, |k| {
            (k == "CCFS_DATABASE_POOL_SIZE").then(|| "0".into())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("database_pool_size must be at least 1"), "{e}");

        let e = Config::load_with(None, |k| {
            (k == "CCFS_DATABASE_URL").then(|| "mysql://ccfs:pw@db/ccfs".into())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("unsupported scheme \"mysql\""), "{e}");
        assert!(e.contains("supported: sqlite://PATH, postgres://"), "{e}");
        assert!(!e.contains("pw"), "{e}");
        let e = Config::load_with(None, |k| {
            (k == "CCFS_BLOB_URL").then(|| "gs://bucket/exports".into())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("unsupported scheme \"gs\""), "{e}");
    }

    #[test]
    fn s3_settings_come_from_the_file_the_standard_variables_and_ccfs_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "blob_url = \"s3://ccfs/exports\"\naws_region = \"file-region\"\n\
             aws_access_key_id = \"GKfile\"\naws_secret_access_key = \"file-secret\"\n",
        )
        .unwrap();
        let c = Config::load_with(Some(&file), |k| match k {
            "AWS_REGION" => Some("garage".into()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:3900".into()),
            "AWS_ALLOW_HTTP" => Some("true".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-secret".into()),
            "CCFS_AWS_SECRET_ACCESS_KEY" => Some("ccfs-secret".into()),
            _ => None,
        })
        .unwrap();
        assert!(
            matches!(c.blob_url(), BlobUrl::S3(at) if at.bucket() == "ccfs" && at.prefix() == "exports")
        );
        assert_eq!(c.aws_region.as_deref(), Some("garage"));
        assert_eq!(c.aws_access_key_id.as_deref(), Some("GKfile"));
        assert_eq!(
            c.aws_secret_access_key.as_ref().map(Secret::expose),
            Some("ccfs-secret")
        );
        assert_eq!(
            c.aws_endpoint_url.as_ref().map(url::Url::as_str),
            Some("http://127.0.0.1:3900/")
        );
        assert!(c.aws_allow_http);
        assert!(!format!("{c:?}").contains("ccfs-secret"), "{c:?}");
        let e = Config::load_with(None, |k| (k == "AWS_ALLOW_HTTP").then(|| "sure".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("AWS_ALLOW_HTTP"), "{e}");
    }
}
