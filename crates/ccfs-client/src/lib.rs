//! An async client for CC-FS compatible servers: export agent operation records, download the
//! files, and verify the callbacks that announce them.
//!
//! It speaks the CC-FS wire protocol (auth-v2 AK/SK signatures, the `request`/`msgBody`
//! envelope) through [`ccfs_protocol`], so it works against this project's server and against
//! any other CC-FS server. This project's extensions (status, import) are only used when you
//! call them.
//!
//! A tour:
//!
//! - [`client`] — [`Client`] and its [`ClientBuilder`]: server URL, credentials, trust for a
//!   self-signed certificate, time limits; the calls [`Client::generate`],
//!   [`Client::generate_idempotent`], [`Client::status`], [`Client::wait`],
//!   [`Client::import`] (and [`Client::import_with`] for records stored with other content)
//!   and the raw [`Client::call`].
//! - [`download`] — [`Client::download`]: streamed to `DEST.part`, resumed with `Range` after an
//!   interruption, checked against the server's `X-Checksum-Sha256`, renamed atomically.
//! - [`callback`] — [`CallbackVerifier`]: checks the auth-v2 signature of an incoming callback
//!   with the app's AK/SK, the clock window and replays, and reads its body.
//! - [`error`] — [`Error`]: typed errors that keep the server's `resultCode` and `resultDesc`.
//!
//! The whole flow, polling instead of waiting for the callback:
//!
//! ```no_run
//! use std::time::Duration;
//! use ccfs_client::Client;
//! use ccfs_protocol::messages::GenerateBody;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::builder("https://127.0.0.1:28443")
//!         .credentials(std::env::var("CCFS_AK")?, std::env::var("CCFS_SK")?)
//!         .ca_cert_pem(&std::fs::read("ccfs-data/tls/cert.pem")?)
//!         .build()?;
//!     let id = client
//!         .generate(&GenerateBody {
//!             begin_time: "2024-05-01 00:00:00".into(),
//!             end_time: "2024-05-02 00:00:00".into(),
//!             account_id: None,
//!             agent_id: None,
//!             callback_url: "http://127.0.0.1:9/unused".into(),
//!         })
//!         .await?;
//!     let done = client.wait(&id, Duration::from_secs(1), Duration::from_secs(600)).await?;
//!     let name: ccfs_protocol::ZipFileName = done.agent_opr_info_file_name.parse()?;
//!     let file = client.download(&name, name.as_str(), |_| {}).await?;
//!     println!("{} ({} bytes)", file.path.display(), file.size);
//!     Ok(())
//! }
//! ```
//!
//! Errors are typed: a refused window is [`Error::Api`] with [`ResultCode::BeginAfterEnd`],
//! a wrong secret [`Error::Unauthorized`] with HTTP 401:
//!
//! ```no_run
//! # async fn demo(client: ccfs_client::Client, body: ccfs_protocol::messages::GenerateBody) {
//! use ccfs_client::{Error, ResultCode};
//! match client.generate(&body).await {
//!     Ok(id) => println!("job {id}"),
//!     Err(Error::Api { code: ResultCode::BeginAfterEnd, desc, .. }) => eprintln!("{desc}"),
//!     Err(Error::Unauthorized { status, desc, .. }) => eprintln!("HTTP {status}: {desc}"),
//!     Err(e) => eprintln!("{e}"),
//! }
//! # }
//! ```

pub mod callback;
pub mod client;
pub mod download;
pub mod error;

pub use callback::{CallbackVerifier, VerifyError};
pub use client::{Client, ClientBuilder};
pub use download::{Downloaded, Progress};
pub use error::{Error, Result};

pub use ccfs_protocol::auth::SignedHeaders;
pub use ccfs_protocol::messages::{CallbackBody, GenerateBody, ImportData, OnConflict, StatusData};
pub use ccfs_protocol::{ResponseId, ResultCode, ZipFileName};
