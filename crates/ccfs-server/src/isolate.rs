//! One unit of background work (an export job, a callback attempt) run so that a panic in it
//! fails that unit, not the loop that runs it, as crates.io's job runner does.
//!
//! The caller turns the panic into the unit's failure (the job's attempt, the callback's
//! attempt) and goes on. `AssertUnwindSafe` is the caller's promise, written where it calls:
//! nothing the unit left half-changed is used after its panic.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// Runs `unit`; a panic becomes `Err` with its message.
pub(crate) async fn isolated<F: Future>(unit: AssertUnwindSafe<F>) -> Result<F::Output, String> {
    unit.catch_unwind().await.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message() {
        assert_eq!(isolated(AssertUnwindSafe(async { 7 })).await, Ok(7));
        let got = isolated(AssertUnwindSafe(async { panic!("boom {}", 1) })).await;
        assert_eq!(got, Err::<(), _>("boom 1".to_owned()));
        let got = isolated(AssertUnwindSafe(async { panic!("static") })).await;
        assert_eq!(got, Err::<(), _>("static".to_owned()));
    }
}
