//! The node's name: one name per `ccfs serve` process, used wherever a node must be told apart
//! from the others of a cluster: the owner of a job's lease in the store, the `node` label of
//! every metric, and (through the `ccfs` command's log format) every log line.
//!
//! It is `node_name` in the configuration (`CCFS_NODE_NAME`), else `HOSTNAME-PID`: the host
//! tells nodes on different machines (or containers) apart, the process id two nodes on one
//! host. A name is checked when the configuration is read, since it lands in a metric label and
//! a log line: 1 to 128 characters out of letters, digits and `.-_:`.

/// The longest name accepted.
const MAX_LEN: usize = 128;

/// `HOSTNAME-PID`, with the host name cut down to the characters a name may hold (`host` when
/// the host has no usable name).
pub fn default_name() -> String {
    let host: String = gethostname::gethostname()
        .to_string_lossy()
        .chars()
        .filter(|c| allowed(*c))
        .take(MAX_LEN - 12)
        .collect();
    let host = if host.is_empty() { "host".into() } else { host };
    format!("{host}-{}", std::process::id())
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')
}

/// Why `name` cannot be a node name, if it cannot.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_LEN {
        return Err(format!("node_name must be 1 to {MAX_LEN} characters"));
    }
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "node_name may hold letters, digits and . - _ : only, not {c:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_host_and_process_and_a_valid_name() {
        let name = default_name();
        check(&name).unwrap();
        assert!(
            name.ends_with(&format!("-{}", std::process::id())),
            "{name}"
        );
        assert!(name.len() > format!("-{}", std::process::id()).len());
        // The same within one process: the leases, metrics and logs agree without being told.
        assert_eq!(default_name(), name);
    }

    #[test]
    fn names_that_would_break_a_label_or_a_log_line_are_refused() {
        check("ccfs-a.eu-1:2").unwrap();
        check(&"n".repeat(MAX_LEN)).unwrap();
        for bad in ["", "a b", "a\nb", "a\"b", "ü", "x=y"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check(&"n".repeat(MAX_LEN + 1)).is_err());
    }
}
