//! The metrics that `GET /metrics` serves, kept to Prometheus' conventions in one place:
//!
//! - Every family is named once, in [`FAMILIES`], with its `# HELP` text and its type, and is
//!   recorded only through the functions below, so no call site can misspell a name or a
//!   label key.
//! - Durations are histograms in seconds, with buckets chosen per metric: buckets add up across
//!   nodes, the quantiles of a summary do not.
//! - Every counter is registered at 0 when the recorder is installed, with each value its
//!   labels can take (a [`Label`] type lists them), so that a rate or an alert has a series from
//!   the first scrape on rather than from the first event.
//! - Label values are `snake_case` words, or numbers (result codes), except where they are a
//!   thing's own name: `route` is the route's path as declared (its template, never the raw
//!   path, so a scanner's made-up paths all fall under `other`), `node` the node's name,
//!   `version` the version.
//!
//! The job and callback gauges are facts about the whole cluster, which every node shares
//! through the store: they are read from it when `/metrics` is scraped
//! ([`refresh_queue_depths`]), one query of three counts over the partial indexes of live
//! jobs and pending callbacks, rather than kept by a loop of this node's. So they cost nothing
//! between scrapes and are never staler than the scrape; every node reports the same values,
//! which a dashboard takes the `max` of, not the sum. Downloads in progress are this node's own,
//! counted as its download slots are taken and given back (`crate::download_slots`).

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::Method;
use ccfs_protocol::auth::AuthError;
use ccfs_protocol::messages::OnConflict;
use ccfs_protocol::ResultCode;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::store::{QueueDepths, Store};

const REQUESTS: &str = "ccfs_requests_total";
const AUTH_FAILURES: &str = "ccfs_auth_failures_total";
const HTTP_REQUEST_DURATION: &str = "ccfs_http_request_duration_seconds";
const CONNECTIONS_OPEN: &str = "ccfs_connections_open";
const CONNECTIONS_SHED: &str = "ccfs_connections_shed_total";
const IMPORTED_RECORDS: &str = "ccfs_imported_records_total";
const IMPORT_CONFLICTS: &str = "ccfs_import_conflicts_total";
const EXPORTS: &str = "ccfs_exports_total";
const EXPORT_RECORDS: &str = "ccfs_export_records_total";
const EXPORT_DURATION: &str = "ccfs_export_duration_seconds";
const CALLBACK_ATTEMPTS: &str = "ccfs_callback_attempts_total";
const CALLBACK_ATTEMPT_DURATION: &str = "ccfs_callback_attempt_duration_seconds";
const EXPIRED_FILES: &str = "ccfs_expired_files_total";
const JOBS_QUEUED: &str = "ccfs_jobs_queued";
const JOBS_RUNNING: &str = "ccfs_jobs_running";
const CALLBACKS_PENDING: &str = "ccfs_callbacks_pending";
const DOWNLOADS_IN_PROGRESS: &str = "ccfs_downloads_in_progress";
const BUILD_INFO: &str = "ccfs_build_info";

/// The route label of a request no route matched.
const OTHER_ROUTE: &str = "other";

/// A metric family's type; a histogram's with its bucket bounds (seconds).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// One metric family: its name, type and `# HELP` text.
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

/// HTTP answers: from a millisecond (health checks, refusals) to the minutes a large download
/// streams (a request is timed until its whole body has gone out).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Exports: a few records take well under a second, millions take minutes.
const EXPORT_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Callback attempts: a receiver's answer, up to `callback_timeout_secs` (10 s by default).
const CALLBACK_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every family `/metrics` serves.
const FAMILIES: [Family; 18] = [
    Family {
        name: REQUESTS,
        kind: Kind::Counter,
        help: "Answers of the CC-FS interfaces, by interface and result code (0300401 here is \
               a missing role; refused signatures are ccfs_auth_failures_total).",
    },
    Family {
        name: AUTH_FAILURES,
        kind: Kind::Counter,
        help: "Requests refused with HTTP 401, by reason class.",
    },
    Family {
        name: HTTP_REQUEST_DURATION,
        kind: Kind::Histogram(HTTP_BUCKETS),
        help: "Time from a request's arrival until its answer's last byte went out (or the \
               client went away), by route template and method.",
    },
    Family {
        name: CONNECTIONS_OPEN,
        kind: Kind::Gauge,
        help: "Client connections open on this node.",
    },
    Family {
        name: CONNECTIONS_SHED,
        kind: Kind::Counter,
        help: "Connections closed by this node: idle or header deadline, or to make room at \
               max_connections.",
    },
    Family {
        name: IMPORTED_RECORDS,
        kind: Kind::Counter,
        help: "Records stored through the import interface.",
    },
    Family {
        name: IMPORT_CONFLICTS,
        kind: Kind::Counter,
        help: "Imported records whose id was stored with other content, by onConflict.",
    },
    Family {
        name: EXPORTS,
        kind: Kind::Counter,
        help: "Export attempts of this node by how they ended: succeeded, failed for good, \
               released to the queue (a retry, or a shutdown), cancelled by an operator, or \
               taken over by another node.",
    },
    Family {
        name: EXPORT_RECORDS,
        kind: Kind::Counter,
        help: "Records written into successful exports.",
    },
    Family {
        name: EXPORT_DURATION,
        kind: Kind::Histogram(EXPORT_BUCKETS),
        help: "Time a successful export took, from claim to upload.",
    },
    Family {
        name: CALLBACK_ATTEMPTS,
        kind: Kind::Counter,
        help: "Callback attempts of this node by outcome.",
    },
    Family {
        name: CALLBACK_ATTEMPT_DURATION,
        kind: Kind::Histogram(CALLBACK_BUCKETS),
        help: "Time one callback attempt took, whatever its outcome.",
    },
    Family {
        name: EXPIRED_FILES,
        kind: Kind::Counter,
        help: "Export files deleted at the end of their retention.",
    },
    Family {
        name: JOBS_QUEUED,
        kind: Kind::Gauge,
        help: "Export jobs waiting for a worker, cluster-wide (read from the shared store at \
               scrape time: every node reports the same value).",
    },
    Family {
        name: JOBS_RUNNING,
        kind: Kind::Gauge,
        help: "Export jobs claimed by a worker, cluster-wide (read from the shared store at \
               scrape time: every node reports the same value).",
    },
    Family {
        name: CALLBACKS_PENDING,
        kind: Kind::Gauge,
        help: "Callbacks not yet delivered nor given up, cluster-wide (read from the shared \
               store at scrape time: every node reports the same value).",
    },
    Family {
        name: DOWNLOADS_IN_PROGRESS,
        kind: Kind::Gauge,
        help: "Downloads this node is streaming.",
    },
    Family {
        name: BUILD_INFO,
        kind: Kind::Gauge,
        help: "Always 1; the labels say which build this node runs.",
    },
];

/// A closed set of label values: every value, and each one's label.
pub(crate) trait Label: Copy + 'static {
    const ALL: &'static [Self];
    fn label(self) -> &'static str;
}

impl Label for ResultCode {
    const ALL: &'static [Self] = &ResultCode::ALL;
    fn label(self) -> &'static str {
        self.as_str()
    }
}

impl Label for AuthError {
    const ALL: &'static [Self] = &AuthError::ALL;
    fn label(self) -> &'static str {
        self.class()
    }
}

impl Label for OnConflict {
    const ALL: &'static [Self] = &OnConflict::ALL;
    fn label(self) -> &'static str {
        self.as_str()
    }
}

/// The CC-FS interfaces, as `ccfs_requests_total` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interface {
    Generate,
    Download,
    Status,
    Import,
}

impl Label for Interface {
    const ALL: &'static [Self] = &[
        Interface::Generate,
        Interface::Download,
        Interface::Status,
        Interface::Import,
    ];
    fn label(self) -> &'static str {
        match self {
            Interface::Generate => "generate",
            Interface::Download => "download",
            Interface::Status => "status",
            Interface::Import => "import",
        }
    }
}

/// How an export attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportOutcome {
    Succeeded,
    /// Failed for good: the job is marked failed.
    Failed,
    /// Given back to the queue: a retry after a failed attempt, or a shutdown.
    Released,
    /// Stopped because an operator cancelled the job (`ccfs jobs cancel`).
    Cancelled,
    /// Stopped because another node took the job over (this attempt's lease ran out).
    TakenOver,
}

impl Label for ExportOutcome {
    const ALL: &'static [Self] = &[
        ExportOutcome::Succeeded,
        ExportOutcome::Failed,
        ExportOutcome::Released,
        ExportOutcome::Cancelled,
        ExportOutcome::TakenOver,
    ];
    fn label(self) -> &'static str {
        match self {
            ExportOutcome::Succeeded => "succeeded",
            ExportOutcome::Failed => "failed",
            ExportOutcome::Released => "released",
            ExportOutcome::Cancelled => "cancelled",
            ExportOutcome::TakenOver => "taken_over",
        }
    }
}

/// Why a connection was closed by the server rather than by its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShedReason {
    /// A keep-alive connection sent nothing for `idle_timeout_secs`.
    IdleTimeout,
    /// A request's header (with the TLS handshake, on a new connection) took longer than
    /// `header_timeout_secs`.
    HeaderTimeout,
    /// The connection gave way to a new one at `max_connections`, or was the new one and
    /// found every other connection busy.
    Cap,
}

impl Label for ShedReason {
    const ALL: &'static [Self] = &[
        ShedReason::IdleTimeout,
        ShedReason::HeaderTimeout,
        ShedReason::Cap,
    ];
    fn label(self) -> &'static str {
        match self {
            ShedReason::IdleTimeout => "idle_timeout",
            ShedReason::HeaderTimeout => "header_timeout",
            ShedReason::Cap => "cap",
        }
    }
}

/// How a callback attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallbackOutcome {
    Delivered,
    /// Failed; another attempt is scheduled.
    Retry,
    /// Failed, and the callback's time is up.
    GaveUp,
}

impl Label for CallbackOutcome {
    const ALL: &'static [Self] = &[
        CallbackOutcome::Delivered,
        CallbackOutcome::Retry,
        CallbackOutcome::GaveUp,
    ];
    fn label(self) -> &'static str {
        match self {
            CallbackOutcome::Delivered => "delivered",
            CallbackOutcome::Retry => "retry",
            CallbackOutcome::GaveUp => "gave_up",
        }
    }
}

/// The `method` label: the method in lower case, or `other` for a method HTTP does not define
/// (a client may send any token, which must not make a series of its own).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "get"),
        (Method::POST, "post"),
        (Method::HEAD, "head"),
        (Method::PUT, "put"),
        (Method::DELETE, "delete"),
        (Method::OPTIONS, "options"),
        (Method::PATCH, "patch"),
        (Method::TRACE, "trace"),
        (Method::CONNECT, "connect"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, label)| label)
}

/// The process-wide recorder (the `metrics` facade has one global recorder), installed by the
/// first server a process starts, with the families described and the counters at 0.
///
/// Every series carries the node's name as the global label `node`, rather than one
/// `ccfs_node_info{node=…}` series: a dashboard or alert over several nodes then sums or splits
/// any metric by node without a join, and the name is the one the node's leases and log lines
/// carry, so a metric leads straight to the log lines. The recorder is built once, by the first
/// server a process starts, so it carries that server's name; `ccfs serve` starts one.
///
/// `routes` are the server's routes (`crate::http::routes`), each of whose request durations is
/// registered empty; given by the caller so that this module, which every part of the server
/// records into, depends on none of them.
pub(crate) fn install(
    node: &str,
    routes: impl IntoIterator<Item = (Method, &'static str)>,
) -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = recorder(node);
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            announce(routes);
            handle
        })
        .clone()
}

/// A recorder with the node's label and each histogram's buckets.
fn recorder(node: &str) -> PrometheusRecorder {
    FAMILIES
        .iter()
        .fold(
            PrometheusBuilder::new().add_global_label("node", node),
            |builder, family| match family.kind {
                Kind::Histogram(buckets) => builder
                    .set_buckets_for_metric(Matcher::Full(family.name.to_owned()), buckets)
                    .expect("bucket lists are non-empty constants"),
                Kind::Counter | Kind::Gauge => builder,
            },
        )
        .build_recorder()
}

/// Describes every family and registers every series that exists from the start: each
/// counter at 0 with every value of its labels, each gauge, each histogram (the HTTP one per
/// route), and the build's info.
fn announce(routes: impl IntoIterator<Item = (Method, &'static str)>) {
    for family in &FAMILIES {
        match family.kind {
            Kind::Counter => metrics::describe_counter!(family.name, family.help),
            Kind::Gauge => metrics::describe_gauge!(family.name, family.help),
            Kind::Histogram(_) => metrics::describe_histogram!(family.name, family.help),
        }
    }
    // `increment(0)` registers a series without touching a count it may already have (a
    // process that starts a second server).
    for interface in Interface::ALL {
        for code in ResultCode::ALL {
            metrics::counter!(REQUESTS, "interface" => interface.label(), "result_code" => code.label())
                .increment(0);
        }
    }
    at_zero::<AuthError>(AUTH_FAILURES, "reason");
    at_zero::<ShedReason>(CONNECTIONS_SHED, "reason");
    at_zero::<OnConflict>(IMPORT_CONFLICTS, "on_conflict");
    at_zero::<ExportOutcome>(EXPORTS, "outcome");
    at_zero::<CallbackOutcome>(CALLBACK_ATTEMPTS, "outcome");
    for name in [IMPORTED_RECORDS, EXPORT_RECORDS, EXPIRED_FILES] {
        metrics::counter!(name).increment(0);
    }
    for name in [
        CONNECTIONS_OPEN,
        JOBS_QUEUED,
        JOBS_RUNNING,
        CALLBACKS_PENDING,
        DOWNLOADS_IN_PROGRESS,
    ] {
        metrics::gauge!(name).increment(0.0);
    }
    // A histogram is registered by asking for its handle; recording nothing leaves it empty.
    for name in [EXPORT_DURATION, CALLBACK_ATTEMPT_DURATION] {
        let _ = metrics::histogram!(name);
    }
    for (method, path) in routes {
        let _ = metrics::histogram!(HTTP_REQUEST_DURATION, "route" => path, "method" => method_label(&method));
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Registers `name` at 0 for every value of its one label `key`.
fn at_zero<L: Label>(name: &'static str, key: &'static str) {
    for value in L::ALL {
        metrics::counter!(name, key => value.label()).increment(0);
    }
}

// ---- recording ----

/// An answer of a CC-FS interface.
pub(crate) fn request_answered(interface: Interface, code: ResultCode) {
    metrics::counter!(REQUESTS, "interface" => interface.label(), "result_code" => code.label())
        .increment(1);
}

/// A request refused with HTTP 401.
pub(crate) fn auth_refused(reason: AuthError) {
    metrics::counter!(AUTH_FAILURES, "reason" => reason.label()).increment(1);
}

/// An HTTP request that ended after `took`; `route` is the matched route's template, `None`
/// when no route matched.
pub(crate) fn http_request(route: Option<&str>, method: &Method, took: Duration) {
    let route = route.unwrap_or(OTHER_ROUTE).to_owned();
    metrics::histogram!(HTTP_REQUEST_DURATION, "route" => route, "method" => method_label(method))
        .record(took.as_secs_f64());
}

pub(crate) fn connections_open(open: usize) {
    metrics::gauge!(CONNECTIONS_OPEN).set(open as f64);
}

pub(crate) fn connection_shed(reason: ShedReason) {
    metrics::counter!(CONNECTIONS_SHED, "reason" => reason.label()).increment(1);
}

pub(crate) fn records_imported(inserted: u64) {
    metrics::counter!(IMPORTED_RECORDS).increment(inserted);
}

pub(crate) fn import_conflicts(on_conflict: OnConflict, conflicts: u64) {
    metrics::counter!(IMPORT_CONFLICTS, "on_conflict" => on_conflict.label()).increment(conflicts);
}

/// An export attempt that ended; a successful one with [`export_succeeded`] instead.
pub(crate) fn export_ended(outcome: ExportOutcome) {
    metrics::counter!(EXPORTS, "outcome" => outcome.label()).increment(1);
}

/// A successful export of `records` records that took `took`.
pub(crate) fn export_succeeded(records: u64, took: Duration) {
    export_ended(ExportOutcome::Succeeded);
    metrics::counter!(EXPORT_RECORDS).increment(records);
    metrics::histogram!(EXPORT_DURATION).record(took.as_secs_f64());
}

pub(crate) fn callback_attempted(outcome: CallbackOutcome, took: Duration) {
    metrics::counter!(CALLBACK_ATTEMPTS, "outcome" => outcome.label()).increment(1);
    metrics::histogram!(CALLBACK_ATTEMPT_DURATION).record(took.as_secs_f64());
}

pub(crate) fn files_expired(deleted: u64) {
    metrics::counter!(EXPIRED_FILES).increment(deleted);
}

/// A download slot of this node was taken.
pub(crate) fn download_started() {
    metrics::gauge!(DOWNLOADS_IN_PROGRESS).increment(1.0);
}

/// A download slot of this node was given back.
pub(crate) fn download_ended() {
    metrics::gauge!(DOWNLOADS_IN_PROGRESS).decrement(1.0);
}

/// How long a scrape waits for the store's counts: less than a scraper's usual time limit, so
/// that a store that does not answer costs the gauges one refresh, not the whole scrape.
const DEPTHS_LIMIT: Duration = Duration::from_secs(2);

/// Sets the cluster-wide gauges from the store. A store that does not answer in time leaves
/// them at the last values read (`/readyz` tells that the store is down) and is logged.
pub(crate) async fn refresh_queue_depths(store: &dyn Store) {
    match tokio::time::timeout(DEPTHS_LIMIT, store.queue_depths()).await {
        Ok(Ok(depths)) => set_queue_depths(&depths),
        Ok(Err(e)) => tracing::warn!("/metrics: cannot count the queued jobs and callbacks: {e}"),
        Err(_) => tracing::warn!(
            "/metrics: the store gave no count of the queued jobs and callbacks within {DEPTHS_LIMIT:?}"
        ),
    }
}

fn set_queue_depths(depths: &QueueDepths) {
    metrics::gauge!(JOBS_QUEUED).set(depths.jobs_queued as f64);
    metrics::gauge!(JOBS_RUNNING).set(depths.jobs_running as f64);
    metrics::gauge!(CALLBACKS_PENDING).set(depths.callbacks_pending as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`announce`] makes a fresh recorder render.
    fn announced() -> String {
        let recorder = recorder("n1");
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || announce(crate::http::routes()));
        handle.render()
    }

    #[test]
    fn every_family_is_described_typed_and_present_from_the_start() {
        let text = announced();
        for family in &FAMILIES {
            let kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram(_) => "histogram",
            };
            assert!(
                text.contains(&format!("# HELP {} ", family.name)),
                "no HELP for {}:\n{text}",
                family.name
            );
            assert!(
                text.contains(&format!("# TYPE {} {kind}\n", family.name)),
                "{} is not a {kind}:\n{text}",
                family.name
            );
        }
        assert!(text.contains("ccfs_auth_failures_total{node=\"n1\",reason=\"unknown_key\"} 0\n"));
        assert!(text.contains("ccfs_build_info{node=\"n1\",version=\""));
    }

    #[test]
    fn methods_are_lower_case_and_unknown_ones_one_label() {
        assert_eq!(method_label(&Method::POST), "post");
        let odd = Method::from_bytes(b"BREW").expect("a token");
        assert_eq!(method_label(&odd), "other");
    }
}
