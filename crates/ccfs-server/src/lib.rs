//! The ccfs server: a CC-FS-compatible export server for agent operation records.
//!
//! A tour, in the order a request meets them:
//!
//! - [`config`] — one typed configuration: defaults ← TOML file ← `CCFS_*` environment.
//! - [`urls`] — `database_url` and `blob_url`, read into what this server can open.
//! - [`server`] — starts everything: store, file store, TLS listener, background loops; stops it
//!   all cleanly on a shutdown signal.
//! - [`tls`] — the certificate: the configured one, or a self-signed one made on first start.
//! - [`http`] — the axum routes, one file per interface; the auth extractor that yields the
//!   verified developer; the one error type that renders the SPEC envelope.
//! - [`tenants`] — developers, their secret keys (sealed with the master key) and roles.
//! - [`model`] — the domain: developers, jobs, callbacks and idempotency keys, as types that
//!   hold only valid values, and the rules that belong to them.
//! - [`store`] — the durable state, as one async trait per concern (developers, records, job
//!   queue, outbox, replay cache) and [`store::Store`] their sum, with its SQLite
//!   implementation.
//! - [`blobs`] — the file store for finished zips, behind `object_store`.
//! - [`export`] — the job runner: claim a job, stream records into CSV parts inside a zip,
//!   upload, publish, enqueue the callback.
//! - [`callback`] — the outbox delivery loop: signed POSTs, retried with backoff.
//! - `isolate` — runs one export job or callback attempt so that a panic fails it, not its loop.
//! - [`retention`] — deletes expired files and housekeeping rows.
//! - [`state`] — what every handler and loop shares.

pub mod blobs;
pub mod callback;
pub mod config;
pub mod export;
pub mod http;
pub mod ingest;
mod isolate;
pub mod model;
pub mod retention;
pub mod server;
pub mod state;
pub mod store;
pub mod tenants;
pub mod tls;
pub mod urls;

pub use config::Config;
pub use server::{run, Core, RunningServer};
