//! The ccfs server: a CC-FS-compatible export server for agent operation records.
//!
//! A tour, in the order a request meets them:
//!
//! - [`config`] — one typed configuration: defaults ← TOML file ← `CCFS_*` environment.
//! - `urls` — `database_url` and `blob_url`, read into what this server can open.
//! - `server` — starts everything: store, file store, TLS listener, background loops; stops it
//!   all cleanly when told to ([`RunningServer::shutdown`]).
//! - `serve` — the listener: TLS, HTTP/1.1 through hyper, and the connections' limits (header
//!   and idle deadlines, the cap, which idle connection gives way to a new one).
//! - `tls` — the certificate: the configured one, or a self-signed one made on first start.
//! - `http` — the axum routes, one file per interface; the auth extractor that yields the
//!   verified developer; the one error type that renders the SPEC envelope; the access log
//!   around every route, which gives each request the id its log lines and answer carry.
//! - `tenants` — developers, their secret keys (sealed with the master key) and roles.
//! - [`model`] — the domain: developers, jobs, callbacks and idempotency keys, as types that
//!   hold only valid values, and the rules that belong to them.
//! - `store` — the durable state, as one async trait per concern (developers, records, job
//!   queue, outbox, replay cache, download slots) and [`Store`] their sum, with its SQLite
//!   implementation (the embedded default) and its PostgreSQL one (a database shared by
//!   several nodes).
//! - `blobs` — the file store for finished zips, behind `object_store`.
//! - `export` — the job runner: claim a job, stream records into CSV parts inside a zip,
//!   upload, publish, enqueue the callback.
//! - `download_slots` — flow control of downloads across the cluster: slots in the store, under
//!   leases this node renews.
//! - `callback` — the outbox delivery loop: signed POSTs, retried with backoff.
//! - `isolate` — runs one export job or callback attempt so that a panic fails it, not its loop.
//! - `pause` — how the background loops pause after a store error and go on.
//! - `retention` — deletes expired files and housekeeping rows.
//! - `admin` — what an operator does from the command line while servers run: list, show and
//!   cancel jobs, queue a given-up callback again, delete a developer with all it holds.
//! - `migrate` — moves an embedded installation's store and files to a cluster's
//!   (`ccfs migrate-store`), table by table through `store::transfer`.
//! - `ingest` — records entering from a file or the import interface, read in the owner's zone.
//! - `state` — what every handler and loop shares.
//! - `node` — the node's name, which leases, metrics and log lines carry.
//! - `telemetry` — the metrics of `/metrics`: every family named, described and typed once.
//! - `files` — the private key file and the quiet removal of work files.
//!
//! # The public surface
//!
//! The modules are private; what the `ccfs` command, the benchmarks and the client SDK's tests
//! use is re-exported below, and nothing else, so the inside can be reshaped freely. Two modules
//! stay public because their contents are the vocabulary of everything else: [`config`] (a
//! program builds a [`Config`] field by field, and its URL types come with it) and [`model`]
//! (the values the store holds and a program reads back: developers, roles, jobs, queries).
//!
//! The library never prints and never waits for a signal: a program starts a
//! [`RunningServer`], says what it wants about it, and calls [`RunningServer::shutdown`] when
//! it decides to (the `ccfs serve` command does both on SIGTERM or Ctrl-C).

mod admin;
mod blobs;
mod callback;
pub mod config;
mod download_slots;
mod export;
mod files;
mod http;
mod ingest;
mod isolate;
mod migrate;
pub mod model;
mod node;
mod pause;
mod retention;
mod serve;
mod server;
mod state;
mod store;
mod telemetry;
mod tenants;
mod tls;
mod urls;

pub use admin::{Admin, AdminError, DeletePlan, Deleted, JobView, CALLBACK_LOOK};
pub use blobs::{BlobError, Blobs, Stored};
pub use config::{Config, ConfigError};
pub use export::{build_zip, Built, ZipSettings};
pub use ingest::{Ingest, IngestError};
pub use migrate::{
    migrate_store, FilesCount, MigrateError, MigratePlan, MigrateReport, Progress, TableCount,
};
pub use server::{Core, RunningServer, ServerError};
pub use store::{
    open as open_store, Holdings, InsertOutcome, JobFilter, OnConflict, Store, StoreError,
    MAX_CONFLICTS_LISTED,
};
pub use tenants::{NewApp, OldSecret, TenantError, Tenants};
pub use tls::{TlsError, TlsSetup};
