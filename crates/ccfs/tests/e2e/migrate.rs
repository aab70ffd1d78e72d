//! `ccfs migrate-store`: an embedded installation (SQLite, local files) with a finished export
//! moved to a cluster's PostgreSQL database and file store (the Garage bucket when
//! `CCFS_TEST_S3_URL` is set, else a shared directory), twice; its developer then downloads the
//! old file from the cluster byte for byte and exports again there.

use serde_json::{json, Value};

use crate::harness::*;

/// `ccfs migrate-store … --json` from `old` to the cluster; its JSON outcome.
fn migrate(old: &TestServer, cluster: &Cluster) -> Value {
    let db = old.data_dir().join("ccfs.db");
    let out = ccfs_command()
        .args([
            "migrate-store",
            "--from",
            &format!("sqlite://{}", db.display()),
            "--to",
            cluster.db().url(),
            "--blobs-from",
            old.files_dir().to_str().expect("UTF-8 path"),
            "--blobs-to",
            &cluster.blob_url(),
            "--json",
        ])
        .output()
        .expect("run ccfs migrate-store");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "migrate-store failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Rows of each table in a migrate-store outcome: `(table, source, inserted, verified)`.
fn tables(outcome: &Value) -> Vec<(String, u64, u64, u64)> {
    outcome["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{k}: {t}"));
            (
                t["table"].as_str().expect("table").to_owned(),
                n("sourceRows"),
                n("inserted"),
                n("verified"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
async fn postgres_migrate_store_moves_an_embedded_install_and_its_files() {
    // The embedded installation: a developer, 250 records, a finished export whose callback
    // was delivered.
    let mut old = TestServer::start(&[]);
    let a = old.create_app(&AppSpec {
        name: "A",
        accounts: &["acc-1"],
        timezone: Some("Europe/Berlin"),
        ..Default::default()
    });
    let cti = old.create_app(&AppSpec {
        name: "CTI",
        roles: &["ingest"],
        ..Default::default()
    });
    let batch: Vec<Value> = (0..250)
        .map(|i| {
            let begin = format!("2024-05-01 {:02}:{:02}:00", 8 + i / 60, i % 60);
            let end = format!("2024-05-01 {:02}:{:02}:30", 8 + i / 60, i % 60);
            let mut r = record(&format!("m-{i:03}"), &a.app_id, &begin, &end);
            r["account_id"] = json!("acc-1");
            r
        })
        .collect();
    old.client(&cti).import_ok(&batch).await;
    let rx = Receiver::start().await;
    let window = json!({
        "beginTime": "2024-05-01 00:00:00",
        "endTime": "2024-05-02 00:00:00",
        "callBackURL": rx.url("/cb"),
    });
    let client = old.client(&a);
    let id = client.generate(window.clone()).await;
    let st = client.wait_state(&id, "succeeded", LONG).await;
    let name = st["agentOprInfoFileName"]
        .as_str()
        .expect("file name")
        .to_owned();
    let before = client.download(&name, None).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text());
    assert_eq!(st["recordCount"], 250, "{st}");
    rx.wait_for(1, LONG).await;
    old.terminate();
    let master_key = std::fs::read_to_string(old.data_dir().join("master.key"))
        .expect("the old master key")
        .trim()
        .to_owned();

    // The cluster: one node on a fresh database and file store, with the old master key.
    let cluster = Cluster::start(1, &[("CCFS_MASTER_KEY", master_key.as_str())], |_| {
        Vec::new()
    });

    let first = migrate(&old, &cluster);
    let rows = tables(&first);
    let count = |t: &str| {
        rows.iter()
            .find(|r| r.0 == t)
            .unwrap_or_else(|| panic!("{t} in {first}"))
            .clone()
    };
    assert_eq!(count("developers").1, 2, "{first}");
    assert_eq!(count("records").1, 250, "{first}");
    assert_eq!(count("jobs").1, 1, "{first}");
    assert_eq!(count("callbacks").1, 1, "{first}");
    for (table, source, inserted, verified) in &rows {
        assert_eq!((source, verified), (inserted, source), "{table}: {first}");
    }
    assert_eq!(
        first["files"],
        json!({"listed": 1, "copied": 1, "present": 0, "bytesCopied": before.body.len()})
    );

    // Again: nothing is copied twice, everything is checked again.
    let second = migrate(&old, &cluster);
    for (table, source, inserted, verified) in tables(&second) {
        assert_eq!((inserted, verified), (0, source), "{table}: {second}");
    }
    assert_eq!(
        second["files"],
        json!({"listed": 1, "copied": 0, "present": 1, "bytesCopied": 0})
    );

    // The developer, with its old secret, finds its export on the cluster and downloads the
    // same bytes.
    let node = &cluster.nodes[0];
    let on_cluster = node.client(&a);
    let (status, v) = on_cluster.status(&id).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(success_data(&v)["state"], "succeeded", "{v}");
    assert_eq!(success_data(&v)["sha256"], sha256_hex(&before.body), "{v}");
    assert_eq!(success_data(&v)["callback"]["state"], "delivered", "{v}");
    let after = on_cluster.download(&name, None).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text());
    assert_eq!(after.body, before.body, "the old file, byte for byte");
    assert_eq!(
        after.header("x-checksum-sha256"),
        before.header("x-checksum-sha256")
    );

    // And exports again there: the same records, a callback signed with its old secret.
    let id2 = on_cluster
        .generate(json!({
            "beginTime": "2024-05-01 00:00:00",
            "endTime": "2024-05-02 00:00:00",
            "callBackURL": rx.url("/cb2"),
        }))
        .await;
    let st2 = on_cluster.wait_state(&id2, "succeeded", LONG).await;
    assert_eq!(st2["recordCount"], 250, "{st2}");
    let callbacks = rx.wait_for(2, LONG).await;
    let cb = callbacks
        .iter()
        .find(|c| c.json()["msgBody"]["responseId"] == id2.as_str())
        .expect("the cluster's callback");
    cb.verify(&a.secret)
        .expect("signed with the migrated secret");
}
