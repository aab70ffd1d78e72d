//! How the commands over the configured store (`app`, `jobs`) print: one line of JSON for
//! programs, an aligned table for people, and instants the one way each of them takes.

use std::io::Write;

use anyhow::Context;
use jiff::Timestamp;
use serde::Serialize;

/// One line of JSON on stdout.
pub fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string(v).context("cannot encode JSON")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")
}

/// An aligned table on stdout: a header line, then a line per row, columns two spaces apart
/// (the last one not padded).
pub fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> anyhow::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let mut line = |cells: [&str; N]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            text.push_str(cell);
            if i + 1 < N {
                let pad = w.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(header).context("cannot write to stdout")?;
    for row in rows {
        line(row.each_ref().map(String::as_str)).context("cannot write to stdout")?;
    }
    Ok(())
}

/// An RFC 3339 instant to the millisecond, as the store keeps it.
pub fn time(t: Timestamp) -> String {
    Timestamp::from_millisecond(t.as_millisecond())
        .unwrap_or(t)
        .to_string()
}

/// `2024-05-01 10:00:00Z`: an instant to the second, for a table.
pub fn short_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}
