//! The domain model: developers, jobs and their callbacks, as values that cannot hold what the
//! SPEC forbids, and the rules that belong to them.
//!
//! Each value is checked once, where it enters the server (a request, a command, a stored row),
//! and keeps its type from there on: a time zone is a [`TimeZoneName`] that the server can
//! convert with, a callback URL a [`CallbackUrl`] it can POST to, an idempotency key an
//! [`IdempotencyKey`]. A stored value that no longer reads as its type (say, a time zone that
//! this node's time zone database does not know) makes its row corrupt: the store answers
//! `StoreError::Corrupt`, which the caller reports (an internal error, a failed command, a claim
//! retried after a pause); nothing is ever guessed in its place.
//!
//! - [`developer`] — developers (tenants), their roles and time zones.
//! - [`job`] — export jobs: what they select, their life, their effective state at an instant.
//! - [`callback`] — a finished job's callback in the outbox, and how an attempt ended.
//! - [`idempotency`] — the key that makes a repeated generate answer its first job.

pub mod callback;
pub mod developer;
pub mod idempotency;
pub mod job;

pub use callback::{Attempt, Callback, CallbackState};
pub use ccfs_protocol::CallbackUrl;
pub use developer::{Developer, Role, TimeZoneName, UnknownTimeZone};
pub use idempotency::{BodyHash, Idempotency, IdempotencyKey};
pub use job::{FileKey, Job, JobOutcome, JobState, NewJob, RecordQuery};
