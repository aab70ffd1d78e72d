//! How a background loop (an export worker, the callback delivery loop) rides out an outage of
//! the store: after each failed round it pauses, twice as long as after the one before, up to
//! [`MAX_PAUSE`], then tries again; it never stops for an error. The first round that works
//! again resets the pause and says so in the log, so an outage reads as "cannot …" lines
//! followed by one "the store answers again".
//!
//! The pause grows so that a long outage costs one log line and one connection attempt per loop
//! every few seconds rather than a flood; it is capped low so that the node resumes within a few
//! seconds of the database coming back (sqlx's pool opens new connections by itself).

use std::time::Duration;

/// The pause after the first failure.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause: how late, at worst, a loop notices that the store is back.
const MAX_PAUSE: Duration = Duration::from_secs(8);

/// Consecutive failed rounds of one loop.
#[derive(Debug, Default)]
pub struct ErrorPause {
    failures: u32,
}

impl ErrorPause {
    /// Counts a failed round; returns how long to pause before the next.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(16);
        FIRST_PAUSE.saturating_mul(1 << doublings).min(MAX_PAUSE)
    }

    /// Counts a round that worked; logs the recovery when rounds had failed before it.
    pub fn succeeded(&mut self, what: &str) {
        if self.failures > 0 {
            tracing::info!(
                failed_rounds = self.failures,
                "{what}: the store answers again"
            );
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_its_cap_and_resets_after_a_success() {
        let mut p = ErrorPause::default();
        let secs: Vec<u64> = (0..6).map(|_| p.failed().as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 8, 8]);
        for _ in 0..100 {
            p.failed();
        }
        assert_eq!(p.failed(), MAX_PAUSE);
        p.succeeded("test");
        assert_eq!(p.failed(), FIRST_PAUSE);
    }
}
