//! The log format: tracing-subscriber's text lines on stderr, filtered by `RUST_LOG`, each line
//! starting with `node=NAME ` once the node's name is known (`ccfs serve` sets it), so that the
//! lines of many nodes gathered in one place still say which node wrote them.
//!
//! The name is written by the event formatter rather than carried by a root span: the server's
//! tasks (a connection, an export worker, the callback loop) are spawned onto the runtime and do
//! not inherit the span of the code that spawned them, while every event, wherever it comes
//! from, passes through the one formatter. The subscriber is built before the configuration is
//! read (so that reading it can log), hence a name set once, later.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The node's name, once `ccfs serve` has read it from the configuration.
static NODE: OnceLock<String> = OnceLock::new();

/// Logs to stderr, filtered by `RUST_LOG`; `info` for the server, `warn` for the tools.
pub fn init(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .event_format(WithNode {
            node: &NODE,
            inner: tracing_subscriber::fmt::format().with_ansi(ansi),
        })
        .init();
}

/// Makes every log line from now on start with `node=NAME ` (the first call wins: a process is
/// one node).
pub fn set_node(name: &str) {
    let _ = NODE.set(name.to_owned());
}

/// An event format that writes `node=NAME ` before what `inner` writes.
struct WithNode<F> {
    node: &'static OnceLock<String>,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for WithNode<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if let Some(node) = self.node.get() {
            write!(writer, "node={node} ")?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_starts_with_the_node_once_it_is_known() {
        static NAME: OnceLock<String> = OnceLock::new();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .event_format(WithNode {
                node: &NAME,
                inner: tracing_subscriber::fmt::format().with_ansi(false),
            })
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before");
            NAME.set("ccfs-a".into()).unwrap();
            tracing::info!(request_id = "0123", "after");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(!lines[0].contains("node="), "{text}");
        assert!(lines[0].ends_with("before"), "{text}");
        assert!(lines[1].starts_with("node=ccfs-a "), "{text}");
        assert!(lines[1].contains("after request_id=\"0123\""), "{text}");
    }
}
