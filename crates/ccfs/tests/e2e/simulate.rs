//! Black-box tests of `ccfs simulate`: the real binary with a fresh data directory
//! (`CCFS_DATA_DIR`) per test. The files it writes must be what `ccfs import` accepts, the
//! output must depend on the seed only, and a direct import must be idempotent.

use std::path::Path;

use serde_json::Value;

use crate::harness::Env;

/// What these tests add to the shared test environment.
trait SimEnv {
    fn create_app(&self) -> String;
}

impl SimEnv for Env {
    fn create_app(&self) -> String {
        let v = self.json(&[
            "app",
            "create",
            "--name",
            "Sim",
            "--account",
            "acme01",
            "--timezone",
            "Europe/Berlin",
        ]);
        v["appId"].as_str().expect("appId").to_owned()
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .expect("read output")
        .lines()
        .count()
}

fn simulate<'a>(app: &'a str, out: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec![
        "simulate",
        "--app",
        app,
        "--agents",
        "4",
        "--days",
        "2",
        "--start",
        "2024-10-26",
        "--seed",
        seed,
        "--out",
        out,
        "--json",
    ]
}

#[test]
fn files_in_both_formats_import_and_hold_the_same_records() {
    let env = Env::new();
    let app = env.create_app();

    let csv = env.json(&simulate(&app, "sim.csv", "3"));
    let records = csv["records"].as_u64().expect("records");
    assert!(records > 300, "{csv}");
    assert_eq!(lines(&env.path("sim.csv")) as u64, records);
    assert_eq!(csv["timezone"], "Europe/Berlin");
    let by_op: u64 = csv["byOpType"]
        .as_object()
        .expect("byOpType")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(by_op, records);
    assert_eq!(csv["byOpType"]["1"], 8, "one sign-in per agent-day");
    assert_eq!(csv["byOpType"]["0"], 8, "one sign-out per agent-day");
    let text = std::fs::read_to_string(env.path("sim.csv")).expect("csv");
    let first: Vec<&str> = text.lines().next().expect("a row").split(',').collect();
    assert_eq!(first.len(), 21);
    assert_eq!(
        (first[1], first[2], first[9]),
        (app.as_str(), "acme01", "1")
    );

    let imported = env.json(&["import", "sim.csv", "--json"]);
    assert_eq!(imported["records"].as_u64(), Some(records));
    assert_eq!(imported["inserted"].as_u64(), Some(records));

    // The same simulation as JSONL: the same records, so all of them are already present.
    let jsonl = env.json(&simulate(&app, "sim.jsonl", "3"));
    assert_eq!(jsonl["records"].as_u64(), Some(records));
    assert_eq!(lines(&env.path("sim.jsonl")) as u64, records);
    let again = env.json(&["import", "sim.jsonl", "--json"]);
    assert_eq!(again["records"].as_u64(), Some(records));
    assert_eq!(again["alreadyPresent"].as_u64(), Some(records));
}

#[test]
fn the_seed_alone_decides_the_output() {
    let env = Env::new();
    let app = env.create_app();
    env.ok(&simulate(&app, "a.csv", "7"));
    env.ok(&simulate(&app, "b.csv", "7"));
    env.ok(&simulate(&app, "c.csv", "8"));
    let read = |n: &str| std::fs::read(env.path(n)).expect("read");
    assert!(read("a.csv") == read("b.csv"), "same seed, other output");
    assert!(read("a.csv") != read("c.csv"), "other seed, same output");
}

#[test]
fn a_file_for_a_given_time_zone_needs_no_store() {
    let env = Env::new();
    let out = env.ok(&[
        "simulate",
        "--app",
        "someapp",
        "--timezone",
        "Asia/Shanghai",
        "--agents",
        "2",
        "--days",
        "1",
        "--start",
        "2024-05-01",
        "--out",
        "day.txt",
        "--format",
        "jsonl",
    ]);
    assert!(out.starts_with("day.txt: "), "{out}");
    assert!(!env.data_dir().exists(), "the store was opened");
    let text = std::fs::read_to_string(env.path("day.txt")).expect("jsonl");
    let first: Value = serde_json::from_str(text.lines().next().expect("a line")).expect("JSON");
    assert_eq!(first["developer_id"], "someapp");
    assert_eq!(first["op_type"], "1");
    let begin = first["begin_time"].as_str().expect("begin_time");
    assert!(
        begin.starts_with("2024-05-01 0") || begin.starts_with("2024-05-01 10"),
        "{begin}"
    );
}

#[test]
fn a_direct_import_uses_the_developer_and_is_idempotent() {
    let env = Env::new();
    let app = env.create_app();
    let args = [
        "simulate", "--app", &app, "--agents", "3", "--days", "2", "--json",
    ];
    let first = env.json(&args);
    let records = first["records"].as_u64().expect("records");
    assert!(records > 200, "{first}");
    assert_eq!(first["inserted"].as_u64(), Some(records));
    assert_eq!(first["timezone"], "Europe/Berlin");
    // The default start: the simulation ends yesterday.
    let start = first["start"].as_str().expect("start");
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Europe/Berlin").expect("tz"))
        .date();
    let expected = today.checked_sub(jiff::Span::new().days(2)).expect("date");
    assert_eq!(start, expected.to_string());
    let second = env.json(&args);
    assert_eq!(second["inserted"].as_u64(), Some(0));
    assert_eq!(second["alreadyPresent"].as_u64(), Some(records));
}

#[test]
fn bad_input_is_refused() {
    let env = Env::new();
    let out = env.run(&[
        "simulate",
        "--app",
        "nosuchapp",
        "--agents",
        "1",
        "--days",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = env.run(&[
        "simulate",
        "--app",
        "x",
        "--agents",
        "1",
        "--days",
        "1",
        "--timezone",
        "UTC",
        "--out",
        "f.txt",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--format"), "{stderr}");
    let out = env.run(&["simulate", "--app", "x", "--agents", "0", "--days", "1"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses 0 agents");
}
