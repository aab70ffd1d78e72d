//! Progress bars on stderr, drawn only when stderr is a terminal: piped or redirected output
//! stays quiet; and the one way the commands write a count (`1,234,567`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress should be drawn at all.
fn visible() -> bool {
    std::io::stderr().is_terminal()
}

/// A counter of rows without a known total: `validating FILE  123,456 rows (45,678/s)`.
pub fn rows(label: String) -> ProgressBar {
    if !visible() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {msg}  {human_pos} rows ({per_sec}) {elapsed}")
    {
        bar.set_style(style);
    }
    bar.set_message(label);
    bar
}

/// A bar over a known number of rows: `importing FILE [=====>   ] 1,000/2,000 rows (…/s, eta 3s)`.
pub fn bar(label: String, total: u64) -> ProgressBar {
    if !visible() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{wide_bar}] {human_pos}/{human_len} rows ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label);
    bar
}

/// `1234567` as `1,234,567`: how every command writes a count for people.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
