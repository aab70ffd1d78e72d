//! End-to-end tests of what an operator watches: the log (`log_format = "json"`: an access
//! line per request, a warning per refused authentication, the id of a `0300500` answer on its
//! lines, `shutting down` as a line) and `/metrics`, scraped from a fresh server and parsed
//! with a Prometheus text-format parser (HELP and TYPE for every family, histograms for
//! durations, counters at 0 from the start, `snake_case` label values; then moved by traffic).

use std::collections::{BTreeSet, HashMap};

use ccfs_protocol::auth::{self, Precision};
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::{json, Value};

use crate::harness::*;

/// A status request for a job nobody has: a signed request answered `0300011`.
fn unknown_job() -> Vec<u8> {
    envelope_bytes(json!({ "responseId": "0123456789abcdef0123456789abcdef" }))
}

/// The JSON lines of a server's output (its stdout lines, which are not JSON, left out).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The line of `target` about the request `id`.
fn line_of<'a>(lines: &'a [Value], target: &str, id: &str) -> Option<&'a Value> {
    lines
        .iter()
        .find(|l| l["target"] == target && l["request_id"] == id)
}

/// Waits until the server's log holds a `target` line for each of `ids` (an access line is
/// written once its answer has been sent, a moment after the client has it); returns the log's
/// JSON lines.
async fn wait_for_lines(server: &TestServer, target: &str, ids: &[&str]) -> Vec<Value> {
    wait_some(LONG, &format!("{target} lines for {ids:?}"), || async {
        let lines = json_lines(&server.log());
        ids.iter()
            .all(|id| line_of(&lines, target, id).is_some())
            .then_some(lines)
    })
    .await
}

/// The answer's `X-Request-Id`, which must be 16 lower-case hex characters.
fn request_id(r: &Resp) -> String {
    let id = r
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id in {:?}", r.headers))
        .to_owned();
    assert!(
        id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{id}"
    );
    id
}

/// Checks the fields every access line has.
fn check_access(line: &Value, path: &str, status: u16) {
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["method"], "POST", "{line}");
    assert_eq!(line["path"], path, "{line}");
    assert_eq!(line["status"], status, "{line}");
    assert!(
        line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{line}"
    );
    assert!(
        line["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with("127.0.0.1:")),
        "{line}"
    );
}

#[tokio::test]
async fn json_logs_have_an_access_line_per_request_and_a_warning_per_refusal() {
    let mut server = TestServer::start(&[("CCFS_LOG_FORMAT", "json"), ("CCFS_NODE_NAME", "obs-a")]);
    let app = server.create_app(&AppSpec::default());
    let client = server.client(&app);

    let signed = client
        .post_raw(STATUS, &unknown_job(), &Opts::default())
        .await;
    assert_eq!(signed.status, StatusCode::OK);
    let signed_id = request_id(&signed);

    // A well-shaped header whose signature does not match: the text must reach no log line.
    let bad_signature = "0f1e2d3c".repeat(8);
    let stamp = auth::format_timestamp(jiff::Timestamp::now(), Precision::Seconds);
    let header = format!("auth-v2/{}/{stamp}/host/{bad_signature}", app.app_id);
    let refused = client
        .post_raw(STATUS, &unknown_job(), &Opts::default().raw_auth(&header))
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let refused_id = request_id(&refused);

    // An access key nobody has.
    let stranger = client
        .post_raw(STATUS, &unknown_job(), &Opts::default().ak("nobody-at-all"))
        .await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    let stranger_id = request_id(&stranger);

    // An unsigned route: no app id.
    let health = server.get("/healthz").await;
    let health_id = request_id(&health);

    let ids = [
        signed_id.as_str(),
        refused_id.as_str(),
        stranger_id.as_str(),
        health_id.as_str(),
    ];
    let lines = wait_for_lines(&server, "ccfs::access", &ids).await;

    let access = |id: &str| line_of(&lines, "ccfs::access", id).expect("access line");
    check_access(access(&signed_id), STATUS, 200);
    assert_eq!(access(&signed_id)["app_id"], app.app_id);
    check_access(access(&refused_id), STATUS, 401);
    assert!(access(&refused_id).get("app_id").is_none(), "{lines:?}");
    check_access(access(&stranger_id), STATUS, 401);
    let health_line = access(&health_id);
    assert_eq!(
        (
            &health_line["method"],
            &health_line["path"],
            &health_line["status"]
        ),
        (&json!("GET"), &json!("/healthz"), &json!(200))
    );
    assert!(health_line.get("app_id").is_none(), "{health_line}");

    // One warning per refusal, with its reason class, the AK presented and the request.
    let warning = |id: &str| line_of(&lines, "ccfs::auth", id).expect("auth warning");
    let w = warning(&refused_id);
    assert_eq!(w["level"], "WARN", "{w}");
    assert_eq!(w["reason"], "bad_signature", "{w}");
    assert_eq!(w["app_id"], app.app_id, "{w}");
    assert!(
        w["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with("127.0.0.1:")),
        "{w}"
    );
    let w = warning(&stranger_id);
    assert_eq!(w["reason"], "unknown_key", "{w}");
    assert_eq!(w["app_id"], "nobody-at-all", "{w}");
    assert!(line_of(&lines, "ccfs::auth", &signed_id).is_none());

    // Every JSON line names the node, once; no secret, signature or Authorization value
    // anywhere.
    assert!(lines.iter().all(|l| l["node"] == "obs-a"), "{lines:?}");
    let log = server.log();
    for raw in log.lines().filter(|l| l.starts_with('{')) {
        assert_eq!(raw.matches("\"node\":").count(), 1, "{raw}");
    }
    for secret in [bad_signature.as_str(), app.secret.as_str(), "auth-v2/"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }

    // The stop is a line too, with the signal that caused it.
    assert!(server.terminate().success());
    let lines = json_lines(&server.log());
    let stop = lines
        .iter()
        .find(|l| l["message"] == "shutting down")
        .unwrap_or_else(|| panic!("no shutting down line: {lines:?}"));
    assert_eq!(stop["level"], "INFO", "{stop}");
    assert_eq!(stop["signal"], "SIGTERM", "{stop}");
    assert!(!server.log().lines().any(|l| l == "shutting down"));
}

/// Makes the store hold a job it cannot read back: a time zone this server does not know.
async fn corrupt_job(server: &TestServer, response_id: &str) {
    use sqlx::Connection;
    let db = server.data_dir().join("ccfs.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let done = sqlx::query("UPDATE jobs SET timezone = 'Mars/Olympus_Mons' WHERE response_id = ?")
        .bind(response_id)
        .execute(&mut conn)
        .await
        .expect("update the job");
    assert_eq!(done.rows_affected(), 1);
}

#[tokio::test]
async fn a_0300500_answers_the_request_id_of_its_error_and_access_lines() {
    // No export worker: the job stays queued, for the status interface to read.
    let server = TestServer::start(&[("CCFS_LOG_FORMAT", "json"), ("CCFS_EXPORT_WORKERS", "0")]);
    let app = server.create_app(&AppSpec::default());
    let client = server.client(&app);
    let job = client
        .generate(json!({
            "beginTime": "2024-05-01 00:00:00",
            "endTime": "2024-05-02 00:00:00",
            "callBackURL": "https://127.0.0.1:9/ccfs/cb",
        }))
        .await;
    corrupt_job(&server, &job).await;

    let r = client
        .post_raw(
            STATUS,
            &envelope_bytes(json!({ "responseId": job })),
            &Opts::default(),
        )
        .await;
    let id = internal_error_id(&(r.status, r.json()));
    assert_eq!(request_id(&r), id);

    let lines = wait_for_lines(&server, "ccfs::access", &[&id]).await;
    let error = lines
        .iter()
        .find(|l| l["level"] == "ERROR" && l["request_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no error line with {id}: {lines:?}"));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("Mars/Olympus_Mons")),
        "the error line says what went wrong: {error}"
    );
    let access = line_of(&lines, "ccfs::access", &id).expect("access line");
    check_access(access, STATUS, 500);
    assert_eq!(access["app_id"], app.app_id);
}

// ---------------------------------------------------------------------------------------------
// Metrics

/// `GET /metrics`, parsed; also checks the raw text's `# HELP` and `# TYPE` lines, which the
/// parser reads but does not hand out per family.
async fn scrape(server: &TestServer) -> (Scrape, String) {
    let r = server.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    let text = r.text();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"));
    (parsed, text)
}

/// The samples of `metric` whose labels include `labels`.
fn samples<'a>(
    scrape: &'a Scrape,
    metric: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a Sample> + 'a {
    scrape.samples.iter().filter(move |s| {
        s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
    })
}

/// The value of the one counter or gauge series `metric{labels}`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples(scrape, metric, labels).collect();
    assert_eq!(found.len(), 1, "{metric}{labels:?}: {found:?}");
    match found[0].value {
        Metric::Counter(v) | Metric::Gauge(v) => v,
        ref other => panic!("{metric}{labels:?} is not a counter or gauge: {other:?}"),
    }
}

/// How many observations the histogram series `metric{labels}` holds (its `+Inf` bucket).
fn observations(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples(scrape, metric, labels).collect();
    assert_eq!(found.len(), 1, "{metric}{labels:?}: {found:?}");
    match &found[0].value {
        Metric::Histogram(buckets) => buckets
            .iter()
            .find(|b| b.less_than == f64::INFINITY)
            .map(|b| b.count)
            .unwrap_or_else(|| panic!("{metric}{labels:?} has no +Inf bucket")),
        other => panic!("{metric}{labels:?} is not a histogram: {other:?}"),
    }
}

/// Labels whose values are names of things rather than words of a closed set.
const NAME_LABELS: [&str; 3] = ["node", "route", "version"];

/// The family a sample belongs to: its own name, or for a histogram's `_sum` and `_count`
/// (which the parser hands out as untyped samples of their own) the histogram's.
fn family<'a>(sample: &'a Sample, histograms: &BTreeSet<&str>) -> &'a str {
    if let Metric::Untyped(_) = sample.value {
        for suffix in ["_sum", "_count"] {
            if let Some(base) = sample.metric.strip_suffix(suffix) {
                if histograms.contains(base) {
                    return base;
                }
            }
        }
        panic!("{} has no TYPE", sample.metric);
    }
    &sample.metric
}

/// What the fresh server's `/metrics` must already show.
fn check_conventions(scrape: &Scrape, text: &str) {
    let histograms: BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter(|s| matches!(s.value, Metric::Histogram(_)))
        .map(|s| s.metric.as_str())
        .collect();
    let families: BTreeSet<&str> = scrape
        .samples
        .iter()
        .map(|s| family(s, &histograms))
        .collect();
    for family in &families {
        let has = |what: &str| {
            text.lines()
                .any(|l| l.starts_with(&format!("# {what} {family} ")))
        };
        assert!(has("HELP"), "no HELP for {family}");
        assert!(has("TYPE"), "no TYPE for {family}");
        assert!(
            scrape.docs.contains_key(*family),
            "the parser found no HELP for {family}"
        );
    }
    for sample in &scrape.samples {
        assert!(
            !matches!(sample.value, Metric::Summary(_)),
            "{} is a summary",
            sample.metric
        );
        assert!(
            sample.labels.get("node").is_some_and(|n| !n.is_empty()),
            "{sample:?}"
        );
        for (key, value) in sample.labels.iter() {
            if NAME_LABELS.contains(&key.as_str()) {
                continue;
            }
            assert!(
                !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}: label {key}={value:?} is not snake_case",
                sample.metric
            );
        }
    }
    for histogram in [
        "ccfs_export_duration_seconds",
        "ccfs_callback_attempt_duration_seconds",
    ] {
        assert_eq!(observations(scrape, histogram, &[]), 0.0, "{histogram}");
    }
    assert_eq!(
        observations(
            scrape,
            "ccfs_http_request_duration_seconds",
            &[("route", GENERATE), ("method", "post")]
        ),
        0.0
    );
    for code in ["0", "0300001", "0300011", "0300500"] {
        for interface in ["generate", "download", "status", "import"] {
            let labels = [("interface", interface), ("result_code", code)];
            assert_eq!(
                value(scrape, "ccfs_requests_total", &labels),
                0.0,
                "{labels:?}"
            );
        }
    }
    for reason in [
        "unknown_key",
        "bad_signature",
        "timestamp_out_of_range",
        "missing",
    ] {
        assert_eq!(
            value(scrape, "ccfs_auth_failures_total", &[("reason", reason)]),
            0.0
        );
    }
    for outcome in ["succeeded", "failed", "released"] {
        assert_eq!(
            value(scrape, "ccfs_exports_total", &[("outcome", outcome)]),
            0.0
        );
    }
    for outcome in ["delivered", "retry", "gave_up"] {
        assert_eq!(
            value(
                scrape,
                "ccfs_callback_attempts_total",
                &[("outcome", outcome)]
            ),
            0.0
        );
    }
    for gauge in [
        "ccfs_jobs_queued",
        "ccfs_jobs_running",
        "ccfs_callbacks_pending",
        "ccfs_downloads_in_progress",
    ] {
        assert_eq!(value(scrape, gauge, &[]), 0.0, "{gauge}");
    }
    let build: Vec<&Sample> = samples(scrape, "ccfs_build_info", &[]).collect();
    assert_eq!(build.len(), 1, "{build:?}");
    assert!(matches!(build[0].value, Metric::Gauge(v) if v == 1.0));
    assert_eq!(
        build[0].labels.get("version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_prometheus_conventions_from_a_fresh_start() {
    let server = TestServer::start(&[]);
    let (fresh, text) = scrape(&server).await;
    check_conventions(&fresh, &text);

    // Traffic: an import, an export with its callback, a download, an auth failure.
    let app = server.app_with_one_record().await;
    let client = server.client(&app);
    let receiver = Receiver::start().await;
    let job = client
        .generate(json!({
            "beginTime": "2024-05-01 00:00:00",
            "endTime": "2024-05-02 00:00:00",
            "callBackURL": receiver.url("/ccfs/cb"),
        }))
        .await;
    let done = client.wait_state(&job, "succeeded", LONG).await;
    receiver.wait_for_delivered(1, LONG).await;
    let name = done["agentOprInfoFileName"].as_str().expect("file name");
    assert_eq!(client.download(name, None).await.status, StatusCode::OK);
    let refused = client
        .post_raw(STATUS, &unknown_job(), &Opts::default().wrong_secret())
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    // A callback's outcome is counted once the receiver has answered, and a request is timed
    // once its answer has gone out: either may lag the client's view by a moment.
    let after = wait_some(LONG, "the callback and the download counted", || async {
        let (after, _) = scrape(&server).await;
        let delivered = value(
            &after,
            "ccfs_callback_attempts_total",
            &[("outcome", "delivered")],
        );
        let downloads = observations(
            &after,
            "ccfs_http_request_duration_seconds",
            &[("route", DOWNLOAD), ("method", "post")],
        );
        (delivered == 1.0 && downloads == 1.0).then_some(after)
    })
    .await;
    let requests = |interface: &str, code: &str| {
        value(
            &after,
            "ccfs_requests_total",
            &[("interface", interface), ("result_code", code)],
        )
    };
    assert_eq!(requests("import", "0"), 1.0);
    assert_eq!(requests("generate", "0"), 1.0);
    assert!(requests("status", "0") >= 1.0);
    assert_eq!(requests("download", "0"), 1.0);
    assert_eq!(
        value(
            &after,
            "ccfs_auth_failures_total",
            &[("reason", "bad_signature")]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "ccfs_exports_total", &[("outcome", "succeeded")]),
        1.0
    );
    assert_eq!(value(&after, "ccfs_export_records_total", &[]), 1.0);
    assert_eq!(value(&after, "ccfs_imported_records_total", &[]), 1.0);
    assert_eq!(
        observations(&after, "ccfs_export_duration_seconds", &[]),
        1.0
    );
    assert_eq!(
        observations(&after, "ccfs_callback_attempt_duration_seconds", &[]),
        1.0
    );
    let timed = |route: &str, method: &str| {
        observations(
            &after,
            "ccfs_http_request_duration_seconds",
            &[("route", route), ("method", method)],
        )
    };
    assert_eq!(timed(GENERATE, "post"), 1.0);
    assert_eq!(timed(DOWNLOAD, "post"), 1.0);
    assert!(timed("/metrics", "get") >= 1.0);
    // Nothing is left in flight; the series are still there.
    let gauges: HashMap<&str, f64> = [
        "ccfs_jobs_queued",
        "ccfs_jobs_running",
        "ccfs_callbacks_pending",
        "ccfs_downloads_in_progress",
    ]
    .into_iter()
    .map(|g| (g, value(&after, g, &[])))
    .collect();
    assert!(gauges.values().all(|v| *v == 0.0), "{gauges:?}");

    // An unknown path is timed under one route label, whatever the path.
    assert_eq!(
        server.get("/no/such/path").await.status,
        StatusCode::NOT_FOUND
    );
    let last = wait_some(LONG, "the unknown path timed", || async {
        let (last, _) = scrape(&server).await;
        let other = [("route", "other"), ("method", "get")];
        let timed = samples(&last, "ccfs_http_request_duration_seconds", &other).count() == 1
            && observations(&last, "ccfs_http_request_duration_seconds", &other) == 1.0;
        timed.then_some(last)
    })
    .await;
    assert!(samples(
        &last,
        "ccfs_http_request_duration_seconds",
        &[("route", "/no/such/path")]
    )
    .next()
    .is_none());
}

/// The gauges of work in flight are the store's: a queued job shows at the next scrape.
#[tokio::test]
async fn the_queue_gauges_count_the_stores_jobs() {
    // No export worker: the job stays queued.
    let server = TestServer::start(&[("CCFS_EXPORT_WORKERS", "0")]);
    let app = server.create_app(&AppSpec::default());
    server
        .client(&app)
        .generate(json!({
            "beginTime": "2024-05-01 00:00:00",
            "endTime": "2024-05-02 00:00:00",
            "callBackURL": "https://127.0.0.1:9/ccfs/cb",
        }))
        .await;
    let (scraped, _) = scrape(&server).await;
    assert_eq!(value(&scraped, "ccfs_jobs_queued", &[]), 1.0);
    assert_eq!(value(&scraped, "ccfs_jobs_running", &[]), 0.0);
}
