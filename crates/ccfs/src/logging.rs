//! The log format: lines on stderr, filtered by `RUST_LOG`, as text (the default) or as one
//! JSON object per line (`log_format = "json"`, `CCFS_LOG_FORMAT=json`), each carrying the
//! node's name once it is known (`ccfs serve` sets it): `node=NAME ` opening a text line, a
//! `"node"` member first in a JSON one, so that the lines of many nodes gathered in one place
//! still say which node wrote them. A JSON line holds `timestamp`, `level`, `target`, the
//! message as `message` and every field of the event as a member of its own.
//!
//! The name is written by the event formatter rather than carried by a root span: the server's
//! tasks (a connection, an export worker, the callback loop) are spawned onto the runtime and do
//! not inherit the span of the code that spawned them, while every event, wherever it comes
//! from, passes through the one formatter.
//!
//! The subscriber is installed first thing, before the configuration is read, so that whatever
//! logs before (reading the configuration, commands that read none) has somewhere to go; the
//! configured format is then put in place through a [`reload`] handle ([`set_format`]), by the
//! commands that read the configuration, before they do anything else. Only what is logged
//! before that comes out as text, and nothing is: a configuration that cannot be read is
//! printed as `error: …`. Building the subscriber only after the configuration instead would
//! have made a second path for the commands that read none, and dropped what logs in between.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use ccfs_server::config::LogFormat;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// The node's name, once `ccfs serve` has read it from the configuration.
static NODE: OnceLock<String> = OnceLock::new();

/// The formatting layer, boxed so that one of either format can stand in for the other.
type Formatting = Box<dyn Layer<Registry> + Send + Sync>;

/// What swaps the format in: the reload handle, and whether stderr is a terminal.
struct Swap {
    handle: reload::Handle<Formatting, Registry>,
    ansi: bool,
}

/// Set once by [`init`]. A `OnceLock` since the handle is made there and used later, from
/// whichever thread runs the command; the handle itself is a lock that a reload takes once.
static SWAP: OnceLock<Swap> = OnceLock::new();

/// Logs to stderr as text, filtered by `RUST_LOG`; `info` for the server, `warn` for the tools.
pub fn init(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal();
    let (formatting, handle) =
        reload::Layer::new(layer(LogFormat::Text, ansi, &NODE, std::io::stderr));
    // The filter is a layer of its own, outside the reloadable one: a format swap keeps it.
    tracing_subscriber::registry()
        .with(formatting)
        .with(filter)
        .init();
    let _ = SWAP.set(Swap { handle, ansi });
}

/// Writes the lines from now on in `format`.
pub fn set_format(format: LogFormat) {
    let Some(swap) = SWAP.get() else { return };
    if format == LogFormat::Text {
        return; // What `init` installed.
    }
    if let Err(e) = swap
        .handle
        .reload(layer(format, swap.ansi, &NODE, std::io::stderr))
    {
        eprintln!(
            "warning: cannot switch the log format to {}: {e}",
            format.as_str()
        );
    }
}

/// Makes every log line from now on carry `node` (the first call wins: a process is one node).
pub fn set_node(name: &str) {
    let _ = NODE.set(name.to_owned());
}

/// The formatting layer of `format`, writing to `writer`, naming the node in `node` once set.
fn layer<S, W>(
    format: LogFormat,
    ansi: bool,
    node: &'static OnceLock<String>,
    writer: W,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .event_format(TextWithNode {
                node,
                inner: tracing_subscriber::fmt::format().with_ansi(ansi),
            })
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .event_format(JsonWithNode {
                node,
                inner: tracing_subscriber::fmt::format().json().flatten_event(true),
            })
            .boxed(),
    }
}

/// An event format that writes `node=NAME ` before what `inner` writes.
struct TextWithNode<F> {
    node: &'static OnceLock<String>,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for TextWithNode<F>
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

/// An event format that makes `"node":"NAME"` the first member of the JSON object `inner`
/// writes. The object is written whole into a string first and the member put after its `{`:
/// tracing-subscriber's JSON format has no place for a field of the formatter's own, and
/// writing JSON by hand here would be a second JSON writer.
struct JsonWithNode<F> {
    node: &'static OnceLock<String>,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for JsonWithNode<F>
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
        // An event with a `node` field of its own has its member already: a second one would
        // make a duplicate key.
        let own = event.fields().any(|f| f.name() == "node");
        let Some(node) = self.node.get().filter(|_| !own) else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            // An object always has `timestamp` and `level`: a member follows the `{`.
            Some(rest) => {
                let name = serde_json::to_string(node).map_err(|_| fmt::Error)?;
                write!(writer, "{{\"node\":{name},{rest}")
            }
            None => writer.write_str(&line),
        }
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

    impl Buffer {
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines().map(str::to_owned).collect()
        }
    }

    #[test]
    fn every_text_line_starts_with_the_node_once_it_is_known() {
        static NAME: OnceLock<String> = OnceLock::new();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber =
            tracing_subscriber::registry()
                .with(layer(LogFormat::Text, false, &NAME, move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before");
            NAME.set("ccfs-a".into()).unwrap();
            tracing::info!(request_id = "0123", "after");
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(!lines[0].contains("node="), "{lines:?}");
        assert!(lines[0].ends_with("before"), "{lines:?}");
        assert!(lines[1].starts_with("node=ccfs-a "), "{lines:?}");
        assert!(lines[1].contains("after request_id=\"0123\""), "{lines:?}");
    }

    #[test]
    fn json_lines_are_objects_with_the_node_and_every_field() {
        static NAME: OnceLock<String> = OnceLock::new();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber =
            tracing_subscriber::registry()
                .with(layer(LogFormat::Json, false, &NAME, move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before");
            NAME.set("ccfs-\"b\"".into()).unwrap();
            tracing::warn!(target: "ccfs::auth", reason = "unknown_key", status = 401, "refused");
            tracing::info!(node = "ccfs-\"b\"", "has its own");
        });
        let lines: Vec<serde_json::Value> = buffer
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0]["message"], "before");
        assert!(lines[0].get("node").is_none(), "{}", lines[0]);
        let line = &lines[1];
        assert_eq!(line["node"], "ccfs-\"b\"", "{line}");
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["target"], "ccfs::auth", "{line}");
        assert_eq!(line["message"], "refused", "{line}");
        assert_eq!(line["reason"], "unknown_key", "{line}");
        assert_eq!(line["status"], 401, "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        // One `node` member, not two.
        let raw = &buffer.lines()[2];
        assert_eq!(raw.matches("\"node\":").count(), 1, "{raw}");
        assert_eq!(lines[2]["node"], "ccfs-\"b\"");
    }

    /// What `set_format` does: the reloadable layer starts as text and is swapped for JSON,
    /// keeping the filter outside it.
    #[test]
    fn a_reload_swaps_text_for_json() {
        static NAME: OnceLock<String> = OnceLock::new();
        let buffer = Buffer::default();
        let make_writer = || {
            let writer = buffer.clone();
            move || writer.clone()
        };
        let (formatting, handle) =
            reload::Layer::new(layer(LogFormat::Text, false, &NAME, make_writer()));
        let subscriber = tracing_subscriber::registry()
            .with(formatting)
            .with(EnvFilter::new("info"));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("as text");
            handle
                .reload(layer(LogFormat::Json, false, &NAME, make_writer()))
                .unwrap();
            tracing::debug!("filtered out");
            tracing::info!("as json");
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("as text"), "{lines:?}");
        let json: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(json["message"], "as json");
    }
}
