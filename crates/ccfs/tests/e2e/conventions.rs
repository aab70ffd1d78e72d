//! What an operator expects around the binary: shell completions, manual pages, the systemd
//! unit of `dist/`, each produced or checked by the tool that will read it where the machine
//! has it (bash, groff, systemd-analyze), and the OpenAPI description served unsigned.

use std::path::Path;
use std::process::Command;

use crate::harness::{Env, StatusCode, TestServer, BIN};

/// The top-level commands every completion script and the main manual page must name.
const COMMANDS: &[&str] = &[
    "serve",
    "app",
    "jobs",
    "import",
    "simulate",
    "migrate-store",
    "demo",
    "client",
    "completions",
    "man",
];

/// Whether `tool` can be run here; a test that needs it says so when it cannot.
fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn conventions_completion_scripts_name_every_command_in_each_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = env.ok(&["completions", shell]);
        assert!(script.len() > 1000, "{shell}: {script}");
        for command in COMMANDS {
            assert!(script.contains(command), "{shell}: no {command}");
        }
        // Nested subcommands and flags are completed too.
        // (fish names a long flag without its dashes: `-l on-conflict`.)
        for word in [
            "rotate-secret",
            "retry-callback",
            "fetch",
            "on-conflict",
            "keep",
        ] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let bash = env.path("ccfs.bash");
    std::fs::write(&bash, env.ok(&["completions", "bash"])).expect("write the script");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .output()
        .expect("run bash -n");
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // An unknown shell is a usage error.
    assert_eq!(env.run(&["completions", "tcsh"]).status.code(), Some(2));
}

/// Renders a page with groff, warnings on, and returns its text; `None` without groff.
fn render(page: &Path) -> Option<String> {
    if !have("groff") {
        eprintln!("groff is not installed: the manual pages are checked by content only");
        return None;
    }
    let out = Command::new("groff")
        // -k: read the page as UTF-8 through preconv, as `man` does.
        .args(["-k", "-man", "-Tutf8", "-ww"])
        .arg(page)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("run groff");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "groff {}: {stderr}",
        page.display()
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn conventions_manual_pages_cover_every_command_and_render() {
    let env = Env::new();
    // roff escapes every hyphen: `migrate\\-store`.
    let main = env.ok(&["man"]).replace("\\-", "-");
    assert!(main.contains(".TH ccfs 1"), "{main}");
    for command in COMMANDS {
        assert!(main.contains(command), "ccfs.1 has no {command}");
    }

    let dir = env.path("man");
    let listed = env.ok(&["man", "--out", dir.to_str().expect("UTF-8 path")]);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the pages")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(listed.lines().count(), names.len(), "{listed}");
    for page in [
        "ccfs.1",
        "ccfs-serve.1",
        "ccfs-app.1",
        "ccfs-app-create.1",
        "ccfs-import.1",
        "ccfs-client-fetch.1",
        "ccfs-completions.1",
        "ccfs-man.1",
    ] {
        assert!(names.iter().any(|n| n == page), "no {page} in {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");

    // A page says what --help says: its flags and its examples.
    let import = dir.join("ccfs-import.1");
    let roff = std::fs::read_to_string(&import).expect("ccfs-import.1");
    assert!(roff.contains("on\\-conflict"), "{roff}");
    for page in &names {
        let Some(text) = render(&dir.join(page)) else {
            break;
        };
        if page == "ccfs-import.1" {
            // groff writes roff's `\-` as a minus sign or a hyphen, by device.
            let text = text.replace(['\u{2212}', '\u{2010}'], "-");
            assert!(text.contains("--on-conflict"), "{text}");
            assert!(text.contains("Examples:"), "{text}");
        }
    }
}

#[test]
fn conventions_the_systemd_unit_is_hardened_and_verifies() {
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/ccfs.service");
    let text = std::fs::read_to_string(unit).expect("dist/ccfs.service");
    for setting in [
        "DynamicUser=yes",
        "StateDirectory=ccfs",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "ExecStart=/usr/local/bin/ccfs serve ",
    ] {
        assert!(
            text.contains(setting),
            "dist/ccfs.service lacks {setting:?}"
        );
    }
    if !have("systemd-analyze") {
        eprintln!("systemd-analyze is not installed: dist/ccfs.service is not verified");
        return;
    }
    // verify insists that ExecStart's binary exists: point it at the one under test, in a
    // copy named like the original (the unit's name is part of what is checked).
    let env = Env::new();
    let copy = env.path("ccfs.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/ccfs", BIN)).expect("write the copy");
    // --man=no: the Documentation= page is installed with the binary, not on this machine.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conventions_the_openapi_description_is_served_without_a_signature() {
    let server = TestServer::start(&[]);
    let r = server.get("/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let served: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    let kept = concat!(env!("CARGO_MANIFEST_DIR"), "/../ccfs-server/openapi.json");
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(kept).expect("openapi.json")).expect("JSON");
    assert_eq!(served, kept);
    assert_eq!(served["openapi"], "3.1.0");
}
