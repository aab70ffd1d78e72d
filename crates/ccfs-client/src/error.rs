//! The one error type of the SDK. Every answer of a server that is not a success becomes a
//! typed variant that keeps the server's `resultCode` and `resultDesc`.

use std::time::Duration;

use ccfs_protocol::ResultCode;

/// What can go wrong in a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a result code other than `"0"`.
    ///
    /// `code` is the typed code; a code this crate does not know (a server with codes beyond
    /// the SPEC's table) maps to [`ResultCode::Internal`], and `result_code` keeps the value
    /// as it was sent.
    #[error("{result_code}: {desc}")]
    Api {
        code: ResultCode,
        /// `resultCode` exactly as the server sent it.
        result_code: String,
        /// `resultDesc`.
        desc: String,
    },
    /// HTTP 401 or 403: the signature, key or role was refused (`0300401` on this project's
    /// server). When the answer carried no envelope, `result_code` is empty and `desc` holds
    /// the start of the body.
    #[error("HTTP {status}: {desc}")]
    Unauthorized {
        status: u16,
        code: ResultCode,
        result_code: String,
        desc: String,
    },
    /// The request could not be sent, or the answer could not be read (a time limit, a
    /// connection cut, a download cut off). The causes this crate recognises have variants of
    /// their own: [`Error::Connect`], [`Error::NotHttp`], [`Error::NotTls`],
    /// [`Error::UntrustedCertificate`], [`Error::Certificate`].
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// No connection could be made to the server: nothing listens at `url` (connection
    /// refused), the host name is unknown, or the host cannot be reached.
    #[error(
        "no server answers at {url} ({reason}): check the host and port of the server URL, \
         and that the server is running"
    )]
    Connect {
        /// The server URL.
        url: String,
        /// The operating system's reason, e.g. `Connection refused (os error 111)`.
        reason: String,
    },
    /// An `http://` URL reached a server that does not answer plain HTTP, most likely one
    /// that speaks HTTPS (as `ccfs serve` does unless started with `--plain-http`).
    #[error(
        "{url} did not answer HTTP ({reason}): the server probably speaks HTTPS \
         (ccfs serve does unless started with --plain-http); use {https_url}"
    )]
    NotHttp {
        url: String,
        /// The same URL with `https://`.
        https_url: String,
        reason: String,
    },
    /// An `https://` URL reached a server that does not speak TLS (a plain-HTTP server).
    #[error(
        "{url} does not speak TLS ({reason}): the server probably serves plain HTTP \
         (ccfs serve --plain-http); use {http_url}, or the address of its TLS front end"
    )]
    NotTls {
        url: String,
        /// The same URL with `http://`.
        http_url: String,
        reason: String,
    },
    /// The server's certificate is not signed by an authority the client trusts, e.g. the
    /// self-signed certificate `ccfs serve` makes in its data directory on first start.
    #[error(
        "the certificate of {url} is not signed by an authority this client trusts ({reason}). \
         If the server is a ccfs server with its self-signed certificate, trust that \
         certificate: --ca-cert ccfs-data/tls/cert.pem (SDK: ClientBuilder::ca_cert_pem), \
         after checking that its SHA-256 fingerprint is the one `ccfs serve` printed at start"
    )]
    UntrustedCertificate { url: String, reason: String },
    /// The server's certificate was refused for another reason (expired, or not valid for the
    /// host name in the URL).
    #[error(
        "the certificate of {url} was refused: {reason}; connect with a host name the \
         certificate holds, or give the server a valid certificate"
    )]
    Certificate { url: String, reason: String },
    /// A local file could not be read or written.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A downloaded file does not have the SHA-256 the server announced. The partial file was
    /// deleted, so the next attempt starts from the beginning.
    #[error("checksum mismatch: the server announced SHA-256 {expected}, the file has {actual}")]
    Checksum { expected: String, actual: String },
    /// The answer is not the CC-FS envelope: the URL is most likely not a CC-FS server, or not
    /// its base URL (a proxy's error page, another service, a wrong path prefix).
    #[error(
        "HTTP {} from POST {path}: not a CC-FS answer (no resultCode envelope), so the \
         server URL is probably not a CC-FS server or not its base URL; the answer begins: {body}",
        status_text(*.status)
    )]
    NotEnvelope {
        /// The HTTP status.
        status: u16,
        /// The path the request was sent to.
        path: String,
        /// The start of the answer's body.
        body: String,
    },
    /// The answer is not what the protocol says (a bad `Content-Range`, a malformed field, …).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The client was built with an unusable setting (bad URL, bad certificate, …).
    #[error("configuration: {0}")]
    Config(String),
    /// [`crate::Client::wait`] saw the job end in `failed`, `expired` or `cancelled`.
    #[error("job {response_id} ended {state}{}", error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    JobEnded {
        response_id: String,
        /// `failed`, `expired` or `cancelled`.
        state: String,
        /// Why it failed, as the status extension says.
        error: Option<String>,
    },
    /// [`crate::Client::wait`] gave up.
    #[error("job {response_id} still {state} after {waited:?}")]
    Timeout {
        response_id: String,
        /// The last state seen.
        state: String,
        waited: Duration,
    },
}

impl Error {
    /// The typed result code of an [`Error::Api`] or [`Error::Unauthorized`].
    pub fn code(&self) -> Option<ResultCode> {
        match self {
            Error::Api { code, .. } | Error::Unauthorized { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// `resultDesc` of an [`Error::Api`] or [`Error::Unauthorized`].
    pub fn desc(&self) -> Option<&str> {
        match self {
            Error::Api { desc, .. } | Error::Unauthorized { desc, .. } => Some(desc),
            _ => None,
        }
    }

    /// Whether trying the same thing again later may succeed: flow control, server errors,
    /// transport failures.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { code, .. } => matches!(
                code,
                ResultCode::DownloadFlowControl
                    | ResultCode::QueryFlowControl
                    | ResultCode::Internal
            ),
            Error::Http(_) | Error::Connect { .. } => true,
            _ => false,
        }
    }
}

/// `404 Not Found`: the status with its reason phrase, when it has one.
fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// The result of every call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
