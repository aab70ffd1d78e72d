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
    /// The request could not be sent, or the answer could not be read (connection refused,
    /// TLS, time limit, a download cut off).
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// A local file could not be read or written.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A downloaded file does not have the SHA-256 the server announced. The partial file was
    /// deleted, so the next attempt starts from the beginning.
    #[error("checksum mismatch: the server announced SHA-256 {expected}, the file has {actual}")]
    Checksum { expected: String, actual: String },
    /// The answer is not what the protocol says (not the envelope, a bad `Content-Range`, …).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The client was built with an unusable setting (bad URL, bad certificate, …).
    #[error("configuration: {0}")]
    Config(String),
    /// [`crate::Client::wait`] saw the job end in `failed` or `expired`.
    #[error("job {response_id} ended {state}{}", error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    JobEnded {
        response_id: String,
        /// `failed` or `expired`.
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
            Error::Http(_) => true,
            _ => false,
        }
    }
}

/// The result of every call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
