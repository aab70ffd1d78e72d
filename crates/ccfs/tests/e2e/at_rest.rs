//! Data at rest (issue 9): everything `ccfs serve` writes (the data directory, the SQLite
//! database with its WAL, the master key, the certificate, the exports) is private to its owner,
//! whatever umask the server was started with.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::*;
use serde_json::json;

/// Every directory under `root` (itself included) and every file, with its permission bits.
fn modes(root: &Path) -> Vec<(String, bool, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).expect("metadata");
        out.push((
            p.display().to_string(),
            meta.is_dir(),
            meta.permissions().mode() & 0o7777,
        ));
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p).expect("read_dir") {
                todo.push(entry.expect("entry").path());
            }
        }
    }
    out
}

/// What under `roots` is not 0700 (directories) or 0600 (files), after checking that each name
/// in `must` was seen, so that a walk that found nothing cannot pass.
fn loose(roots: &[&Path], must: &[&str]) -> Vec<String> {
    let found: Vec<_> = roots.iter().flat_map(|r| modes(r)).collect();
    for m in must {
        assert!(
            found.iter().any(|(p, _, _)| p.ends_with(m)),
            "{m} not found in {found:#?}"
        );
    }
    found
        .iter()
        .filter(|(_, dir, mode)| *mode != if *dir { 0o700 } else { 0o600 })
        .map(|(p, dir, mode)| format!("{p} ({} {mode:o})", if *dir { "dir" } else { "file" }))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_rest_the_data_dir_is_0700_and_every_file_0600() {
    let outer = tempfile::tempdir().expect("temp dir");
    // A file store outside the data directory, made by the server two levels deep.
    let files = outer.path().join("srv/files");
    let umask = std::process::Command::new("sh")
        .args(["-c", "umask"])
        .output()
        .expect("sh");
    let umask = String::from_utf8_lossy(&umask.stdout).trim().to_owned();
    let mut server = TestServer::start(&[("CCFS_BLOB_URL", files.to_str().expect("UTF-8"))]);
    let a = server.app_with_one_record().await;
    let rx = Receiver::start().await;
    let client = server.client(&a);
    let id = client
        .generate(json!({"beginTime": "2024-05-01 00:00:00", "endTime": "2024-05-02 00:00:00", "callBackURL": rx.url("/cb")}))
        .await;
    let st = client.wait_state(&id, "succeeded", LONG).await;
    let name = st["agentOprInfoFileName"].as_str().expect("file name");
    assert_eq!(client.download(name, None).await.status, StatusCode::OK);

    let data = server.data_dir().to_owned();
    let must = [
        "ccfs.db",
        "ccfs.db-wal",
        "master.key",
        "cert.pem",
        "key.pem",
        ".zip",
    ];
    let found = loose(&[&data, &files], &must);
    assert!(found.is_empty(), "not private (umask {umask}): {found:#?}");

    // A data directory and database left readable (an earlier version, a hand-made one) are
    // made private at the next start.
    server.terminate();
    let set = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    set(&data, 0o755);
    set(&data.join("ccfs.db"), 0o644);
    set(&files, 0o755);
    server.restart();
    let found = loose(&[&data, &files], &must[..1]);
    assert!(found.is_empty(), "not made private at start: {found:#?}");
}
