//! Progress bars on stderr, drawn only when stderr is a terminal: piped or redirected output
//! stays quiet. Their rates are written as [`crate::numbers::rate`] writes them.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::numbers;

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
        ProgressStyle::with_template("{spinner} {msg}  {human_pos} rows ({rate}) {elapsed}")
    {
        bar.set_style(with_rate(style));
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
        "{msg} [{wide_bar}] {human_pos}/{human_len} rows ({rate}, eta {eta})",
    ) {
        bar.set_style(with_rate(style).progress_chars("=> "));
    }
    bar.set_message(label);
    bar
}

/// Adds `{rate}`: indicatif's own `{per_sec}` shows four decimals (`45678.1234/s`).
fn with_rate(style: ProgressStyle) -> ProgressStyle {
    style.with_key(
        "rate",
        |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            // A progress line that cannot be drawn is no reason to stop the work.
            let _ = w.write_str(&numbers::rate(state.per_sec()));
        },
    )
}
