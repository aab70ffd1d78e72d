//! End-to-end tests of a cluster: three `ccfs serve` processes on one PostgreSQL database, one
//! master key and one file store ([`Cluster`]), one of them API-only (`export_workers = 0`). A
//! developer created on one node signs on every node at once; a file made by one node downloads
//! from every node; and a node SIGKILLed in the middle of its exports costs nothing: its jobs
//! are taken over once their lease runs out and published once, with one callback each.
//!
//! Leases are short (`CCFS_JOB_LEASE_SECS=3`) so the takeover is quick, and callback retries
//! are fast. The tests need PostgreSQL (`CCFS_TEST_POSTGRES_URL`), so they are `#[ignore]`d and
//! carry "postgres" in their names.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;
use serde_json::json;

const BEGIN: &str = "2024-05-01 00:00:00";
const END: &str = "2024-05-02 00:00:00";
/// Records of each developer: every export reads all of its developer's records, enough that
/// jobs are still running when the kill comes.
const RECORDS: u64 = 100_000;
const NODES: usize = 3;
const DEVELOPERS: usize = 3;
const JOBS: usize = 30;
/// The node SIGKILLed in the middle (a worker node).
const KILLED: usize = 0;
/// The node without export workers.
const API_ONLY: usize = 2;
/// Limit for all exports to finish in a debug build on a busy machine; only a limit for failing.
const EXPORTS_TIMEOUT: Duration = Duration::from_secs(600);

/// The environment every node shares on top of the cluster's own (database, file store, key).
const SHARED: &[(&str, &str)] = &[
    ("CCFS_JOB_LEASE_SECS", "3"),
    ("CCFS_EXPORT_WORKERS", "2"),
    // Ten generates per developer are queued at once.
    ("CCFS_MAX_ACTIVE_JOBS", "30"),
    ("CCFS_CALLBACK_INITIAL_BACKOFF_SECS", "1"),
    ("CCFS_CALLBACK_MAX_BACKOFF_SECS", "1"),
    ("CCFS_CALLBACK_TIMEOUT_SECS", "2"),
    // The retention sweep also removes uploads a killed export left unfinished.
    ("CCFS_RETENTION_INTERVAL_SECS", "1"),
];

fn start_cluster() -> Cluster {
    Cluster::start(NODES, SHARED, |i| {
        if i == API_ONLY {
            vec![("CCFS_EXPORT_WORKERS".to_owned(), "0".to_owned())]
        } else {
            Vec::new()
        }
    })
}

/// The node's id in job leases, from its `ccfs serving … node=ID` line.
fn node_id(node: &TestServer) -> String {
    let log = node.log();
    let line = log
        .lines()
        .find(|l| l.contains("ccfs serving"))
        .unwrap_or_else(|| panic!("no 'ccfs serving' line:\n{log}"));
    let (_, rest) = line
        .split_once("node=")
        .unwrap_or_else(|| panic!("no node= in {line}"));
    rest.split_whitespace()
        .next()
        .expect("node id")
        .trim_matches('"')
        .to_owned()
}

/// `(response_id, attempts, lease_owner)` of the jobs in `state`.
fn jobs_in(db: &PgDatabase, state: &str) -> Vec<(String, u32, Option<String>)> {
    db.query_text(&format!(
        "SELECT response_id, attempts::text, lease_owner FROM jobs WHERE state = '{state}' \
         ORDER BY response_id"
    ))
    .into_iter()
    .map(|r| {
        let id = r[0].clone().expect("response_id");
        let attempts = r[1]
            .as_deref()
            .and_then(|a| a.parse().ok())
            .expect("attempts");
        (id, attempts, r[2].clone())
    })
    .collect()
}

/// The names of the files in the shared file store, sorted.
fn stored_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = files_under(dir)
        .iter()
        .map(|p| {
            p.file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// The export work files (`*.part`) of a node.
fn part_files(node: &TestServer) -> Vec<PathBuf> {
    files_under(&node.data_dir().join("work"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect()
}

/// Downloads every job's file from `server` (node `node`): whole, matching its
/// `X-Checksum-Sha256`, with every record.
async fn check_downloads(
    server: &TestServer,
    node: usize,
    jobs: &[Generated],
    apps: &[App],
    names: &HashMap<String, String>,
) {
    for g in jobs {
        let c = server.client(&apps[g.developer]);
        let name = &names[&g.id];
        let r = c.download(name, None).await;
        assert_eq!(r.status, StatusCode::OK, "node {node}: download {name}");
        assert_eq!(
            r.header("x-checksum-sha256"),
            Some(sha256_hex(&r.body).as_str()),
            "node {node}: {name}: the body does not match X-Checksum-Sha256"
        );
        let rows: usize = unzip(&r.body).iter().map(|(_, d)| csv_rows(d).len()).sum();
        assert_eq!(rows as u64, RECORDS, "node {node}: rows of {name}");
    }
}

/// One generate of the test.
struct Generated {
    id: String,
    developer: usize,
}

/// Three nodes, one API-only; 30 generates spread round-robin over the nodes by three
/// developers (each created on a different node and used on every node at once); the worker
/// node 0 SIGKILLed while it runs jobs. Every job succeeds once, with one file and one signed
/// callback; every file downloads, whole and matching its checksum, from every node, the
/// killed one too once it is back; nothing of the killed attempts is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
async fn postgres_three_nodes_survive_a_sigkill_mid_export() {
    let mut cluster = start_cluster();
    let receiver = Receiver::start().await;
    let scratch = tempfile::tempdir().expect("temp dir");

    // Developer d is created on node d and imports through it.
    let apps: Vec<App> = (0..DEVELOPERS)
        .map(|d| {
            let node = &cluster.nodes[d % NODES];
            let app = node.create_app(&AppSpec {
                name: &format!("developer {d}"),
                ..AppSpec::default()
            });
            node.import_records(scratch.path(), &app.app_id, RECORDS);
            app
        })
        .collect();

    // Generate i goes to node i % 3 as developer (i / 3) % 3: every developer on every node.
    let body = json!({ "beginTime": BEGIN, "endTime": END, "callBackURL": receiver.url("/cb") });
    let mut jobs: Vec<Generated> = Vec::new();
    for i in 0..JOBS {
        let developer = (i / NODES) % DEVELOPERS;
        let c = cluster.nodes[i % NODES].client(&apps[developer]);
        let id = c.generate(body.clone()).await;
        jobs.push(Generated { id, developer });
    }

    // Kill node 0 in the middle: some jobs done, some of its own running.
    let killed_id = node_id(&cluster.nodes[KILLED]);
    let db = cluster.db();
    wait_until(EXPORTS_TIMEOUT, || async {
        jobs_in(db, "succeeded").len() >= 3
            && jobs_in(db, "running")
                .iter()
                .any(|(_, _, owner)| owner.as_deref() == Some(killed_id.as_str()))
    })
    .await;
    cluster.nodes[KILLED].kill();
    let orphaned: Vec<String> = jobs_in(cluster.db(), "running")
        .into_iter()
        .filter(|(_, _, owner)| owner.as_deref() == Some(killed_id.as_str()))
        .map(|(id, _, _)| id)
        .collect();
    assert!(
        !orphaned.is_empty(),
        "node {KILLED}'s jobs finished before the kill (use more records)\n{}",
        cluster.log_tails(40)
    );
    let parts_at_kill = part_files(&cluster.nodes[KILLED]);
    let unfinished_at_kill: Vec<String> = cluster
        .blob_dir()
        .map(stored_names)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.contains('#'))
        .collect();
    eprintln!(
        "killed node {KILLED} ({killed_id}) running {orphaned:?}; work files {parts_at_kill:?}; \
         unfinished uploads {unfinished_at_kill:?}"
    );

    // Every job succeeds, as both surviving nodes tell.
    let survivors: Vec<usize> = (0..NODES).filter(|&n| n != KILLED).collect();
    let mut names: HashMap<String, String> = HashMap::new();
    for (k, g) in jobs.iter().enumerate() {
        let c = cluster.nodes[survivors[k % survivors.len()]].client(&apps[g.developer]);
        let data = c.wait_state(&g.id, "succeeded", EXPORTS_TIMEOUT).await;
        assert_eq!(data["recordCount"], RECORDS, "{}: {data}", g.id);
        let name = data["agentOprInfoFileName"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no file name: {data}", g.id))
            .to_owned();
        names.insert(g.id.clone(), name);
    }
    // The killed node's jobs were taken over: claimed again, finished by another node.
    let succeeded = jobs_in(cluster.db(), "succeeded");
    assert_eq!(succeeded.len(), JOBS, "{succeeded:?}");
    for (id, attempts, owner) in &succeeded {
        if orphaned.contains(id) {
            assert!(*attempts >= 2, "{id} was not claimed again: {attempts}");
            assert_ne!(owner.as_deref(), Some(killed_id.as_str()), "{id}");
        }
    }

    // One callback per job, signed by its developer, naming its file.
    let delivered = receiver.wait_for_delivered(JOBS, EXPORTS_TIMEOUT).await;
    let mut seen: HashSet<String> = HashSet::new();
    for cb in &delivered {
        let id = cb.json()["msgBody"]["responseId"]
            .as_str()
            .unwrap_or_else(|| panic!("callback without responseId: {}", cb.json()))
            .to_owned();
        let g = jobs
            .iter()
            .find(|g| g.id == id)
            .unwrap_or_else(|| panic!("callback of an unknown job {id}"));
        let app = &apps[g.developer];
        let h = cb
            .verify(&app.secret)
            .unwrap_or_else(|e| panic!("callback of {id}: signature: {e}"));
        assert_eq!(h.ak, app.app_id, "callback AK of {id}");
        assert_eq!(
            cb.json(),
            json!({ "request": { "version": "2.0" },
                    "msgBody": { "responseId": id, "agentOprInfoFileName": names[&id] } }),
            "callback body of {id}"
        );
        assert!(seen.insert(id.clone()), "a second callback for {id}");
    }

    // One file per job in the shared store, and soon nothing else: an upload the kill left
    // unfinished is removed once its job has been published by another node.
    if let Some(dir) = cluster.blob_dir() {
        let mut want: Vec<String> = names.values().cloned().collect();
        want.sort();
        let mut last = Vec::new();
        let settled = tokio::time::timeout(LONG, async {
            loop {
                last = stored_names(dir);
                if last == want {
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        assert!(
            settled.is_ok(),
            "the file store holds {last:?}, not exactly one file per job {want:?}"
        );
    }

    // Every file downloads from every surviving node, then from the killed one once restarted.
    for &n in &survivors {
        check_downloads(&cluster.nodes[n], n, &jobs, &apps, &names).await;
    }
    cluster.nodes[KILLED].restart();
    check_downloads(&cluster.nodes[KILLED], KILLED, &jobs, &apps, &names).await;

    // The killed attempts' work files are swept once their lease is over.
    wait_some(
        LONG,
        "the killed node's work files to be removed",
        || async { part_files(&cluster.nodes[KILLED]).is_empty().then_some(()) },
    )
    .await;
    // No callback came twice meanwhile.
    assert_eq!(
        receiver.received().len(),
        JOBS,
        "callbacks received in all (one per job)"
    );
}
