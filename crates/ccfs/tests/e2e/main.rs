//! The end-to-end tests of `ccfs`: one test binary, so the whole server is linked once.
//!
//! Each module is one subject, and a test's name starts with it (`cargo test -p ccfs auth::`).
//! They all drive the real `ccfs` binary through the shared [`harness`].

mod harness;

// The wire protocol against the real `ccfs serve`.
mod at_rest;
mod auth;
mod callback_addresses;
mod callbacks_fair;
mod codes;
mod durability;
mod export;
mod hostile;
mod hostile_requests;
mod observability;
mod outage;
mod soak;

// Several nodes on one PostgreSQL database.
mod cluster_flow;
mod migrate;
mod nodes;

// The `ccfs` command.
mod admin;
mod cli;
mod cli_client;
mod conventions;
mod demo;
mod errors;
mod simulate;

// The client examples under `examples/`, in their own languages.
mod examples;
