//! Black-box tests of the `ccfs` command: the real binary, a fresh data directory per test
//! (`CCFS_DATA_DIR`), and the store read back through the server library where the output
//! alone cannot show what was stored.

use std::process::Command;

use ccfs_protocol::Record;
use ccfs_server::model::RecordQuery;
use ccfs_server::{Config, Core};
use futures::TryStreamExt;
use serde_json::Value;

use crate::harness::ccfs_command;
use crate::harness::Env;

/// What these tests add to the shared test environment.
trait CliEnv {
    fn create(&self, args: &[&str]) -> (String, String);
    fn stored(&self, developer: &str) -> Vec<Record>;
}

impl CliEnv for Env {
    fn create(&self, args: &[&str]) -> (String, String) {
        let mut all = vec!["app", "create"];
        all.extend_from_slice(args);
        let v = json(&self.ok(&all));
        (
            v["appId"].as_str().expect("appId").to_owned(),
            v["secretKey"].as_str().expect("secretKey").to_owned(),
        )
    }

    fn stored(&self, developer: &str) -> Vec<Record> {
        let config = Config {
            data_dir: self.data_dir(),
            ..Config::default()
        };
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let core = Core::open(config).await.expect("open the store");
            let query = RecordQuery {
                developer_id: developer.parse().expect("app id"),
                begin: "2000-01-01T00:00:00Z".parse().expect("time"),
                end: "2100-01-01T00:00:00Z".parse().expect("time"),
                account_id: None,
                agent_id: None,
            };
            core.store
                .stream_records(query)
                .try_collect::<Vec<_>>()
                .await
                .expect("stream records")
        })
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A valid CSV row of the export layout.
fn row(id: &str, dev: &str) -> String {
    format!("{id},{dev},acc1,1001,,,,2024-05-01 10:00:00,2024-05-01 10:05:00,4,,,,,,,,,,,\n")
}

/// The summary line of one imported file: `1 record` but `3 records`.
fn summary(file: &str, records: u64, inserted: u64) -> String {
    let noun = if records == 1 { "record" } else { "records" };
    format!(
        "{file}: {records} {noun}, {inserted} inserted, {} already present\n",
        records - inserted
    )
}

#[test]
fn every_command_has_help_with_examples() {
    let env = Env::new();
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["app"],
        &["app", "create"],
        &["app", "list"],
        &["app", "show"],
        &["app", "rotate-secret"],
        &["app", "disable"],
        &["app", "enable"],
        &["app", "delete"],
        &["jobs"],
        &["jobs", "list"],
        &["jobs", "show"],
        &["jobs", "cancel"],
        &["jobs", "retry-callback"],
        &["import"],
        &["simulate"],
        &["demo"],
        &["completions"],
        &["man"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let out = env.ok(&args);
        assert!(
            out.contains("Examples:"),
            "ccfs {c:?} --help has no examples:\n{out}"
        );
    }
    let out = env.run(&["app", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "usage errors are clap's");
}

#[test]
fn app_create_prints_one_json_line_and_never_stores_the_secret_in_clear() {
    let env = Env::new();
    let out = env.ok(&[
        "app",
        "create",
        "--name",
        "Acme CC",
        "--account",
        "acme01",
        "--timezone",
        "Asia/Shanghai",
    ]);
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    let v = json(&out);
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 2, "only appId and secretKey: {out}");
    let app = obj["appId"].as_str().expect("appId");
    let secret = obj["secretKey"].as_str().expect("secretKey");
    assert_eq!(app.len(), 32);
    assert!(
        secret.len() == 64
            && secret
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{secret}"
    );

    let (_, rotated) = env.create(&["--name", "Other"]);
    let new_secret = json(&env.ok(&["app", "rotate-secret", app]))["secretKey"]
        .as_str()
        .expect("secret")
        .to_owned();
    for s in [secret, rotated.as_str(), new_secret.as_str()] {
        let raw: Vec<u8> = (0..32)
            .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
            .collect();
        assert_eq!(raw.len(), 32);
        for name in ["ccfs.db", "ccfs.db-wal", "ccfs.db-shm"] {
            let Ok(bytes) = std::fs::read(env.data_dir().join(name)) else {
                continue;
            };
            assert!(!contains(&bytes, s.as_bytes()), "the secret is in {name}");
            assert!(!contains(&bytes, &raw), "the secret's bytes are in {name}");
        }
    }
    for args in [
        &["app", "list"][..],
        &["app", "list", "--json"],
        &["app", "show", app],
    ] {
        let out = env.ok(args);
        for s in [secret, rotated.as_str(), new_secret.as_str()] {
            assert!(!out.contains(s), "ccfs {args:?} printed a secret");
        }
        assert!(!out.to_ascii_lowercase().contains("secretkey"), "{out}");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn list_show_rotate_disable_enable() {
    let env = Env::new();
    let (app, _) = env.create(&[
        "--name",
        "Acme",
        "--account",
        "b2",
        "--account",
        "a1",
        "--role",
        "ingest",
        "--role",
        "export",
        "--app-id",
        "acme-1",
        "--csv-header",
    ]);
    assert_eq!(app, "acme-1");
    let show = json(&env.ok(&["app", "show", "acme-1"]));
    assert_eq!(show["name"], "Acme");
    assert_eq!(show["timezone"], "UTC");
    assert_eq!(show["accounts"], serde_json::json!(["a1", "b2"]));
    assert_eq!(show["roles"], serde_json::json!(["export", "ingest"]));
    assert_eq!(show["enabled"], true);
    assert_eq!(show["csvHeader"], true);
    assert!(show["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(show.get("secretRotatedGraceUntil").is_none());

    let table = env.ok(&["app", "list"]);
    assert!(
        table.lines().next().is_some_and(|h| h.contains("APP ID")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("acme-1") && l.contains("Acme")),
        "{table}"
    );
    let list = json(&env.ok(&["app", "list", "--json"]));
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["appId"], "acme-1");

    let rotated = json(&env.ok(&["app", "rotate-secret", "acme-1"]));
    assert_eq!(rotated["appId"], "acme-1");
    assert_eq!(rotated["secretKey"].as_str().map(str::len), Some(64));
    let until = rotated["oldSecretValidUntil"]
        .as_str()
        .expect("oldSecretValidUntil")
        .to_owned();
    let show = json(&env.ok(&["app", "show", "acme-1"]));
    assert_eq!(
        show["secretRotatedGraceUntil"].as_str(),
        Some(until.as_str())
    );

    env.ok(&["app", "disable", "acme-1"]);
    assert_eq!(json(&env.ok(&["app", "show", "acme-1"]))["enabled"], false);
    env.ok(&["app", "enable", "acme-1"]);
    assert_eq!(json(&env.ok(&["app", "show", "acme-1"]))["enabled"], true);

    let err = env.fails(&["app", "create", "--name", "Again", "--app-id", "acme-1"]);
    assert!(
        err.contains("acme-1") && err.contains("already exists"),
        "{err}"
    );
    let err = env.fails(&["app", "create", "--name", "Mars", "--timezone", "Mars/Base"]);
    assert!(
        err.starts_with("error: ") && err.contains("Mars/Base"),
        "{err}"
    );
}

#[test]
fn unknown_app_is_a_clear_error() {
    let env = Env::new();
    for cmd in ["show", "rotate-secret", "disable", "enable"] {
        let err = env.fails(&["app", cmd, "nope"]);
        assert_eq!(
            err.trim_end(),
            "error: no developer with app id nope",
            "app {cmd}"
        );
    }
}

/// Quotes, commas, a newline inside a field, non-ASCII, empty optional fields, a header row.
const AWKWARD_CSV: &str = "\
id,developer_id,account_id,agent_id,service_no,skill_id,call_id,begin_time,end_time,op_type,op_object,op_cause,media_type,vdn_id,cc_id,agent_type,phone_no,callIn_out,location_id,logon_sn,skillInfo_sn
r1,dev-a,\"acc, \"\"quoted\"\"\",1001,,7,\"call
one\",2024-05-01 10:00:00,2024-05-01 10:05:00,4,-1,0,5,1,1,4,Zoë 电话,0,1,77,
r2,dev-a,,1002,,,,2024-05-01 11:00:00,2024-05-01 11:00:00,1,,,,,,,,,,,
r3,dev-a,acc1,1003,svc,8,c3,2024-05-01T12:00:00+02:00,2024-05-01 18:30:00,3,-1,4,1,2,3,4,10.0.0.1,1,2,3,1
";

#[test]
fn import_csv_with_awkward_values_twice() {
    let env = Env::new();
    env.create(&[
        "--name",
        "A",
        "--app-id",
        "dev-a",
        "--timezone",
        "Asia/Shanghai",
    ]);
    let file = env.write("awkward.csv", AWKWARD_CSV);
    assert_eq!(env.ok(&["import", &file]), summary(&file, 3, 3));
    assert_eq!(env.ok(&["import", &file]), summary(&file, 3, 0));

    let stored = env.stored("dev-a");
    assert_eq!(stored.len(), 3);
    let r1 = stored.iter().find(|r| r.id == "r1").expect("r1");
    assert_eq!(r1.account_id, "acc, \"quoted\"");
    assert_eq!(r1.call_id, "call\none");
    assert_eq!(r1.phone_no, "Zoë 电话");
    assert_eq!(r1.service_no, "");
    assert_eq!(r1.skill_info_sn, "");
    // Local times are read in the developer's time zone (UTC+8).
    assert_eq!(r1.begin_time.to_string(), "2024-05-01T02:00:00Z");
    let r3 = stored.iter().find(|r| r.id == "r3").expect("r3");
    assert_eq!(r3.begin_time.to_string(), "2024-05-01T10:00:00Z");
    assert_eq!(r3.skill_info_sn, "1");
}

#[test]
fn import_jsonl_with_blank_lines_and_json_summary() {
    let env = Env::new();
    env.create(&["--name", "A", "--app-id", "dev-a"]);
    let text = "\
{\"id\":\"j1\",\"developer_id\":\"dev-a\",\"agent_id\":1001,\"begin_time\":\"2024-05-01 10:00:00\",\"end_time\":\"2024-05-01 10:01:00\",\"op_type\":\"2\",\"phone_no\":\"a,b \\\"c\\\"\\nd\"}

{\"id\":\"j2\",\"developer_id\":\"dev-a\",\"agent_id\":\"1002\",\"begin_time\":\"2024-05-01 10:00:00\",\"end_time\":\"2024-05-01 10:01:00\",\"op_type\":\"3\",\"account_id\":null,\"unknown\":true}
   
";
    let file = env.write("records.jsonl", text);
    let out = json(&env.ok(&["import", &file, "--json"]));
    assert_eq!(
        out,
        serde_json::json!({"file": file, "records": 2, "inserted": 2, "alreadyPresent": 0,
                           "conflicts": 0, "replaced": 0, "conflictIds": []})
    );
    let ndjson = env.write("again.ndjson", text);
    assert_eq!(env.ok(&["import", &ndjson]), summary(&ndjson, 2, 0));
    let stored = env.stored("dev-a");
    assert_eq!(
        stored.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["j1", "j2"]
    );
    assert_eq!(stored[0].agent_id, "1001");
    assert_eq!(stored[0].phone_no, "a,b \"c\"\nd");
    assert_eq!(stored[1].account_id, "");

    let bad = env.write("bad.jsonl", "\n[1,2]\n");
    let err = env.fails(&["import", &bad]);
    assert!(err.contains("bad.jsonl:2: record:"), "{err}");
}

#[test]
fn a_bad_row_imports_nothing_of_its_file() {
    let env = Env::new();
    env.create(&["--name", "A", "--app-id", "dev-a"]);
    // Line 2-3 is one record (a quoted newline), so the bad record on line 5 is the 4th record.
    let good_rows = format!(
        "{}\"r\n2\",dev-a,acc1,1001,,,,2024-05-01 10:00:00,2024-05-01 10:05:00,4,,,,,,,,,,,\n{}",
        row("r1", "dev-a"),
        row("r3", "dev-a")
    );
    let bad_row = "r4,dev-a,acc1,1001,,,,2024-05-01 10:00:00,2024-05-01 09:00:00,4,,,,,,,,,,,\n";
    let first = env.write("first.csv", &row("r0", "dev-a"));
    let bad = env.write(
        "bad.csv",
        &format!("{good_rows}{bad_row}{}", row("r5", "dev-a")),
    );
    let after = env.write("after.csv", &row("r6", "dev-a"));

    let out = env.run(&["import", &first, &bad, &after]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: bad.csv:5: end_time: "), "{stderr}");
    // The file before the bad one stays imported; nothing of the bad one or after it is.
    assert_eq!(String::from_utf8_lossy(&out.stdout), summary(&first, 1, 1));
    let good = env.write("good.csv", &good_rows);
    assert_eq!(env.ok(&["import", &good]), summary(&good, 3, 3));
    assert_eq!(env.ok(&["import", &after]), summary(&after, 1, 1));
    assert_eq!(env.stored("dev-a").len(), 5);

    let short = env.write(
        "short.csv",
        &format!("{}r9,dev-a,too,few\n", row("r8", "dev-a")),
    );
    let err = env.fails(&["import", &short]);
    assert!(
        err.contains("short.csv:2: record: the record does not have 21 columns"),
        "{err}"
    );
    let empty = env.write("empty.csv", &row("r10", "dev-a").replace("1001", ""));
    let err = env.fails(&["import", &empty]);
    assert!(
        err.contains("empty.csv:1: agent_id: the value is empty"),
        "{err}"
    );
    assert_eq!(env.stored("dev-a").len(), 5);
}

#[test]
fn records_need_an_existing_developer_unless_app_is_given() {
    let env = Env::new();
    env.create(&["--name", "A", "--app-id", "dev-a"]);
    let file = env.write(
        "ghost.csv",
        &format!("{}{}", row("g1", "dev-a"), row("g2", "ghost")),
    );
    let err = env.fails(&["import", &file]);
    assert!(
        err.contains("ghost.csv:2: developer_id: no developer 'ghost'"),
        "{err}"
    );
    assert!(env.stored("dev-a").is_empty());

    assert_eq!(
        env.ok(&["import", &file, "--app", "dev-a"]),
        summary(&file, 2, 2)
    );
    assert_eq!(
        env.stored("dev-a")
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["g1", "g2"]
    );
    assert!(env.stored("ghost").is_empty());

    let err = env.fails(&["import", &file, "--app", "nobody"]);
    assert!(err.contains("no developer with app id nobody"), "{err}");
}

#[test]
fn the_format_comes_from_the_flag_or_the_extension() {
    let env = Env::new();
    env.create(&["--name", "A", "--app-id", "dev-a"]);
    let file = env.write("records.txt", &row("t1", "dev-a"));
    let err = env.fails(&["import", &file]);
    assert!(
        err.contains("records.txt") && err.contains("--format"),
        "{err}"
    );
    assert_eq!(
        env.ok(&["import", "--format", "csv", &file, "--batch", "1"]),
        summary(&file, 1, 1)
    );
    let err = env.fails(&["import", "missing.csv"]);
    assert!(err.contains("missing.csv"), "{err}");
}

#[test]
fn batches_smaller_than_the_file_and_duplicates_inside_it() {
    let env = Env::new();
    env.create(&["--name", "A", "--app-id", "dev-a"]);
    let text: String = (0..25)
        .map(|i| row(&format!("b{}", i % 20), "dev-a"))
        .collect();
    let file = env.write("dups.csv", &text);
    assert_eq!(
        env.ok(&["import", &file, "--batch", "7"]),
        summary(&file, 25, 20)
    );
    assert_eq!(env.stored("dev-a").len(), 20);
}

/// [`row`] with another op_type: a corrected version of the record.
fn corrected(id: &str, dev: &str) -> String {
    row(id, dev).replace(",4,", ",5,")
}

fn op_types(env: &Env) -> Vec<(String, String)> {
    env.stored("dev-a")
        .into_iter()
        .map(|r| (r.id, r.op_type))
        .collect()
}

#[test]
fn a_corrected_record_is_a_conflict_that_fails_skips_or_replaces() {
    let env = Env::new();
    env.create(&["--name", "A", "--app-id", "dev-a"]);
    let day1: String = ["c1", "c2", "c3"].map(|id| row(id, "dev-a")).concat();
    let day1 = env.write("day1.csv", &day1);
    assert_eq!(env.ok(&["import", &day1]), summary(&day1, 3, 3));
    let before = op_types(&env);

    // A new record, an unchanged one, two corrected ones (lines 3 and 5).
    let text = [
        row("n1", "dev-a"),
        row("c1", "dev-a"),
        corrected("c2", "dev-a"),
        row("n2", "dev-a"),
        corrected("c3", "dev-a"),
    ]
    .concat();
    let day2 = env.write("day2.csv", &text);

    // fail (the default): the error names FILE:LINE and the id, and nothing of the file is
    // stored, also when the conflict is in a later batch than new records.
    for extra in [&[][..], &["--on-conflict", "fail"], &["--batch", "1"]] {
        let mut args = vec!["import", day2.as_str()];
        args.extend_from_slice(extra);
        let err = env.fails(&args);
        assert!(
            err.contains(
                "error: day2.csv:3: id c2: conflicts with a stored record with different content \
                 (use --on-conflict skip or replace); 2 records of day2.csv conflict: \
                 c2 (line 3), c3 (line 5)"
            ),
            "{extra:?}: {err}"
        );
        assert_eq!(op_types(&env), before, "{extra:?}");
    }
    // Files before the failing one stay imported; files after it are not read.
    let first = env.write("first.csv", &row("f1", "dev-a"));
    let after = env.write("after.csv", &row("f2", "dev-a"));
    let out = env.run(&["import", &first, &day2, &after]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), summary(&first, 1, 1));
    assert_eq!(env.stored("dev-a").len(), 4);

    // skip: the rest is stored, the stored versions stay; the summary names the conflicts.
    assert_eq!(
        env.ok(&["import", &day2, "--on-conflict", "skip"]),
        "day2.csv: 5 records, 2 inserted, 1 already present, 2 conflicts skipped (ids c2, c3)\n"
    );
    let stored = op_types(&env);
    assert!(stored.contains(&("c2".into(), "4".into())), "{stored:?}");
    assert!(stored.contains(&("n2".into(), "4".into())), "{stored:?}");
    assert_eq!(stored.len(), 6);

    // replace: the file's versions overwrite the stored ones.
    assert_eq!(
        json(&env.ok(&["import", &day2, "--on-conflict", "replace", "--json"])),
        serde_json::json!({"file": day2, "records": 5, "inserted": 0, "alreadyPresent": 3,
                           "conflicts": 2, "replaced": 2, "conflictIds": ["c2", "c3"]})
    );
    let stored = op_types(&env);
    assert!(stored.contains(&("c2".into(), "5".into())), "{stored:?}");
    assert!(stored.contains(&("c3".into(), "5".into())), "{stored:?}");
    assert!(stored.contains(&("c1".into(), "4".into())), "{stored:?}");
    assert_eq!(stored.len(), 6);
    // The corrected file is now simply present; the original one conflicts.
    assert_eq!(env.ok(&["import", &day2]), summary(&day2, 5, 0));
    let err = env.fails(&["import", &day1]);
    assert!(
        err.contains("error: day1.csv:2: id c2: conflicts with a stored record"),
        "{err}"
    );
    assert_eq!(
        env.ok(&["import", &day1, "--on-conflict", "replace"]),
        "day1.csv: 3 records, 0 inserted, 1 already present, 2 conflicts replaced (ids c2, c3)\n"
    );

    let err = env.run(&["import", &day1, "--on-conflict", "overwrite"]);
    assert_eq!(err.status.code(), Some(2));
    let err = String::from_utf8_lossy(&err.stderr);
    assert!(
        err.contains("possible values: fail, skip, replace"),
        "{err}"
    );
}

#[test]
fn two_versions_of_an_id_in_one_file() {
    let env = Env::new();
    env.create(&["--name", "A", "--app-id", "dev-a"]);
    let text = [
        row("d1", "dev-a"),
        row("d2", "dev-a"),
        corrected("d1", "dev-a"),
    ]
    .concat();
    let file = env.write("twice.csv", &text);
    // Within one batch the first pass sees it: nothing is stored.
    let err = env.fails(&["import", &file]);
    assert!(
        err.contains("error: twice.csv:3: id d1: conflicts with line 1 of the same file"),
        "{err}"
    );
    assert!(env.stored("dev-a").is_empty());
    // In different batches too: the first pass remembers the ids of the whole file.
    let err = env.fails(&["import", &file, "--batch", "1"]);
    assert!(
        err.contains(
            "error: twice.csv:3: id d1: conflicts with line 1 of the same file, a different \
             version of the record (use --on-conflict replace to keep the later one, or skip)"
        ),
        "{err}"
    );
    assert!(env.stored("dev-a").is_empty());
    // With replace, the later version wins.
    assert_eq!(
        env.ok(&["import", &file, "--on-conflict", "replace", "--batch", "1"]),
        "twice.csv: 3 records, 2 inserted, 0 already present, 1 conflict replaced (id d1)\n"
    );
    assert!(op_types(&env).contains(&("d1".into(), "5".into())));
}

#[cfg(unix)]
#[test]
fn serve_applies_its_flags_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::time::{Duration, Instant};

    let env = Env::new();
    let data = env.dir.path().join("served");
    let data_arg = data.to_string_lossy().into_owned();
    let mut child = ccfs_command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--plain-http",
            "--data-dir",
            &data_arg,
        ])
        .env("CCFS_DATA_DIR", env.data_dir())
        .current_dir(env.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ccfs serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout
        .read_line(&mut first)
        .expect("read the start-up line");
    let addr = first
        .trim()
        .rsplit("http://")
        .next()
        .filter(|_| first.contains("listening on http://"))
        .unwrap_or_else(|| panic!("unexpected start-up line: {first}"))
        .to_owned();

    let mut conn = std::net::TcpStream::connect(&addr).expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(data.join("ccfs.db").exists(), "--data-dir was not used");

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ccfs serve did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
