//! A fresh working and data directory (`CCFS_DATA_DIR`) per test, for running `ccfs` commands
//! that need no server: the caller's own `CCFS_*` variables and `RUST_LOG` are removed so they
//! cannot change what a test sees.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use super::BIN;

/// A working directory holding the data directory of one test.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A path inside the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `ccfs ARGS` in the working directory.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CCFS_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("CCFS_DATA_DIR", self.data_dir())
            .env_remove("RUST_LOG")
            .output()
            .expect("run ccfs")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ccfs {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 stdout")
    }

    /// Runs a command that must fail with status 1; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "ccfs {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("UTF-8 stderr")
    }

    /// Runs a command that must succeed and print one JSON value.
    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Writes a file into the working directory; returns its name (relative to it).
    pub fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.path(name), text).expect("write file");
        name.to_owned()
    }
}
