//! `ccfs demo` runs in the test suite: the real binary, end to end, and its summary must agree
//! with itself and with the files it leaves behind.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::harness::{ccfs_command, sha256_hex};

/// Runs `ccfs demo` with `args`, temporary files under `tmp`, and a `CCFS_DATA_DIR` the demo
/// must ignore.
fn demo(tmp: &Path, args: &[&str]) -> Output {
    ccfs_command()
        .arg("demo")
        .args(args)
        .current_dir(tmp)
        .env("TMPDIR", tmp)
        .env("CCFS_DATA_DIR", tmp.join("configured-store"))
        .output()
        .expect("run ccfs demo")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "ccfs demo failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn the_demo_succeeds_and_its_summary_holds() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("demo-data");
    let data_arg = data.to_str().expect("UTF-8 path");
    let text = ok(demo(tmp.path(), &["--json", "--data-dir", data_arg]));
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));

    // The records: simulated = imported = reported by the server = rows in the CSV.
    let rows = u(&v, "csvRows");
    assert!(rows > 1000, "{v}");
    for key in ["recordsSimulated", "recordsImported", "recordCount"] {
        assert_eq!(u(&v, key), rows, "{key}");
    }
    assert_eq!(u(&v, "agents"), 50);
    assert_eq!(u(&v, "agentsSimulated"), 50);
    assert_eq!(v["callbackVerified"], true);
    assert_eq!(v["checksumVerified"], true);
    assert_eq!(v["kept"], true, "a --data-dir is the user's and stays");
    assert_eq!(s(&v, "timezone"), "Europe/Berlin");

    let ops = v["byOpType"].as_array().expect("byOpType");
    let sum: u64 = ops.iter().map(|o| u(o, "count")).sum();
    assert_eq!(sum, rows);
    let count = |op: &str| {
        ops.iter()
            .find(|o| o["opType"] == op)
            .map_or(0, |o| u(o, "count"))
    };
    assert_eq!(count("1"), 50, "one sign-in per agent");
    assert_eq!(count("0"), 50, "one sign-out per agent");
    assert!(count("4") > 0 && count("27") > 0, "{ops:?}");
    assert!(ops.iter().all(|o| o["name"] != "other"), "{ops:?}");
    let order: Vec<i64> = ops
        .iter()
        .map(|o| s(o, "opType").parse().expect("numeric op_type"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    // The window is yesterday; every record lies in it.
    let day = s(&v, "day");
    assert_eq!(s(&v, "windowBegin"), format!("{day} 00:00:00"));
    assert!(s(&v, "firstBegin").starts_with(day));
    assert!(s(&v, "lastEnd").starts_with(day));

    // The file: its name, and the bytes left on disk match the size and SHA-256 shown.
    let name = s(&v, "fileName");
    assert_eq!(name.len(), 45);
    assert!(
        name.ends_with(&format!("_{}.zip", s(&v, "responseId"))),
        "{name}"
    );
    let zip = std::fs::read(s(&v, "filePath")).expect("the downloaded zip");
    assert_eq!(zip.len() as u64, u(&v, "fileSize"));
    assert_eq!(sha256_hex(&zip), s(&v, "sha256"));
    let csv = v["csvFiles"].as_array().expect("csvFiles");
    assert_eq!(csv.len(), 1);
    let csv_text = std::fs::read_to_string(csv[0].as_str().expect("path")).expect("the CSV");
    assert_eq!(csv_text.lines().count() as u64, rows);
    assert!(Path::new(s(&v, "dataDir")).starts_with(data.canonicalize().expect("data dir")));

    // Every step is timed.
    let steps = v["steps"].as_array().expect("steps");
    assert!(steps.len() >= 8, "{steps:?}");
    assert!(steps
        .iter()
        .all(|st| st["ms"].is_u64() && st["step"].is_string()));

    // The configured store was never touched.
    assert!(!tmp.path().join("configured-store").exists());
}

/// The demo's directories left under `tmp` (the demo's TMPDIR).
fn demo_dirs(tmp: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp)
        .expect("list temp dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("ccfs-demo-"))
        .map(|e| e.path())
        .collect()
}

#[test]
fn the_default_demo_prints_a_summary_for_people_and_removes_its_directory() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let text = ok(demo(tmp.path(), &[]));
    for part in [
        "the whole flow worked",
        "Records by operation type",
        "sign in",
        "wrap-up",
        "Steps",
        "total",
        "SHA-256",
        "50 agents on",
        "removed with the temporary directory",
        "--keep",
    ] {
        assert!(text.contains(part), "missing {part:?} in\n{text}");
    }
    // Counts for people: thousands separators (one day of 50 agents is over 1,000 records).
    let simulated = text
        .lines()
        .find(|l| l.trim_start().starts_with("simulated"))
        .expect("the simulated line");
    assert!(
        simulated.contains(',') && simulated.contains(" records,"),
        "{simulated}"
    );
    assert!(!text.contains("rm -rf"), "{text}");
    assert!(demo_dirs(tmp.path()).is_empty(), "{text}");
    assert!(!tmp.path().join("configured-store").exists());
}

#[test]
fn the_demo_keeps_its_directory_with_keep_and_says_where() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let text = ok(demo(tmp.path(), &["--keep"]));
    let kept = demo_dirs(tmp.path());
    assert_eq!(kept.len(), 1, "{text}");
    assert!(kept[0].join("downloads").is_dir());
    let dir = kept[0].canonicalize().expect("the kept directory");
    assert!(
        text.contains(&format!("rm -rf '{}'", dir.display())),
        "{text}"
    );
    assert!(text.contains("downloaded zip"), "{text}");
}
