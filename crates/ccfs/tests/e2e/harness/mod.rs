//! The black-box end-to-end harness: the real `ccfs` binary, real HTTPS, real callbacks.
//!
//! Every test module takes it whole (`use crate::harness::*;`). Everything talks to the server
//! the way a client on another machine would: no server library calls. One file per role:
//!
//! - [`server`]: [`TestServer`] runs `ccfs serve` on `127.0.0.1:0` with a fresh data directory
//!   and trusts its self-signed certificate; it can be restarted on the same data directory,
//!   killed (SIGKILL), terminated (SIGTERM) or frozen (SIGSTOP, [`TestServer::pause`]), and
//!   runs the other `ccfs` commands with the same environment ([`TestServer::create_app`],
//!   [`TestServer::ccfs`]); a [`ConfigFile`] changes what a restart runs with. [`Env`] runs
//!   `ccfs` commands that need no server in a fresh data directory; [`ccfs_command`] is the
//!   bare binary, without the caller's `CCFS_*` variables.
//! - [`cluster`]: [`Cluster`] runs several `ccfs serve` nodes on one fresh PostgreSQL database
//!   ([`PgDatabase`], dropped at the end), one master key and one file store.
//! - [`client`]: [`Client`] sends auth-v2 signed requests for one developer ([`App`]); [`Opts`]
//!   changes how a request is signed or sent (signed headers, timestamp precision, tampering, …);
//!   [`Resp`] is an answer read whole.
//! - [`receiver`]: [`Receiver`] is an in-process HTTP server that records every callback.
//! - [`wire`]: envelopes and their exact checks ([`assert_error`], [`success_data`]), records and
//!   files ([`record`], [`unzip`], [`csv_rows`], [`sha256_hex`], [`today_in`]), and polling
//!   ([`wait_until`] / [`wait_some`]): tests never assert on a fixed sleep.
//!
//! Replays: every signed request gets a fresh millisecond timestamp (strictly increasing within
//! the test process), so two identical requests never share a signature. With
//! [`Opts::seconds`] or [`Opts::timestamp`] that guarantee is gone: identical requests signed in
//! the same second are retries of one request (the server's default `replay = retry`), or
//! refused as replays with `CCFS_REPLAY=refuse`.

pub mod client;
pub mod cluster;
pub mod receiver;
pub mod server;
pub mod wire;

use std::sync::{Mutex, MutexGuard};

pub use ccfs_protocol::paths::{DOWNLOAD, GENERATE, IMPORT, STATUS};
pub use client::*;
pub use cluster::*;
pub use receiver::*;
pub use reqwest::StatusCode;
pub use server::*;
pub use wire::*;

/// Locks `m` even if a thread panicked while holding it: what was recorded stays readable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
