//! The CC-FS wire format, and nothing else: no I/O, no async.
//!
//! Both the server and the client build on this crate, so they can never disagree about the
//! protocol. A tour:
//!
//! - [`auth`] — the auth-v2 AK/SK signature: signing a request, parsing and verifying an
//!   `Authorization` header (SPEC section 3).
//! - [`callback_url`] — the `callBackURL` of a generate request, checked once.
//! - [`codes`] — the result codes of SPEC section 7 and the typed [`codes::ApiError`].
//! - [`envelope`] — the `{"request":{"version":"2.0"},"msgBody":…}` request envelope and the
//!   response envelope used for every JSON answer.
//! - [`fields`] — staged validation of `msgBody` fields, in the order the SPEC fixes.
//! - [`import_body`] — the import request read in one pass from its body bytes.
//! - [`messages`] — the typed bodies of each interface (generate, download, status, import,
//!   callback).
//! - [`names`] — validated names: response ids, zip file names, CSV part names.
//! - [`ids`] — validated identifiers: app ids.
//! - [`time`] — the `yyyy-MM-dd HH:mm:ss` local time format and the generate time window.
//! - [`record`] — the 21-column agent operation record and its CSV form.

pub mod auth;
pub mod callback_url;
pub mod codes;
pub mod envelope;
pub mod fields;
pub mod ids;
pub mod import_body;
pub mod json;
pub mod messages;
pub mod names;
pub mod range;
pub mod record;
pub mod time;

pub use callback_url::CallbackUrl;
pub use codes::{ApiError, ResultCode};
pub use ids::AppId;
pub use names::{CsvPartName, ResponseId, ZipFileName};
pub use record::Record;
pub use time::LocalWindow;

/// The only protocol version the CC-FS interfaces accept.
pub const VERSION: &str = "2.0";

/// Interface paths.
pub mod paths {
    pub const GENERATE: &str = "/CCFS/resource/ccfs/queryAgentOprInfoData";
    pub const DOWNLOAD: &str = "/CCFS/resource/ccfs/downloadAgentOprInfoFile";
    pub const STATUS: &str = "/CCFS/resource/ccfs/queryAgentOprInfoStatus";
    pub const IMPORT: &str = "/CCFS/resource/ccfs/importAgentOprInfoData";
}

/// `Content-Type` of a successful download.
pub const DOWNLOAD_CONTENT_TYPE: &str = "Application/Octet-stream;charset=UTF-8";
/// `Content-Type` of every JSON request and answer.
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";
