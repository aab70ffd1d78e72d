//! The callback outbox delivery loop (SPEC section 6).
//!
//! A finished job's callback is a row in the store (written in the same transaction that marks
//! the job succeeded), so it survives restarts. This loop claims due rows, POSTs each body signed
//! with the developer's own AK/SK over `content-length;content-type;host`, and records the
//! attempt: delivered on any 2xx, otherwise retried with exponential backoff and jitter until the
//! give-up time. Giving up never touches the file. A callback whose file its owner has already
//! downloaded is `superseded` by the download handler and no longer claimed here.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use ccfs_protocol::auth::{format_timestamp, sign_json_post, JsonPost, Precision, SignedHeaders};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::isolate::isolated;
use crate::model::{Attempt, Callback};
use crate::pause::ErrorPause;
use crate::state::AppState;

/// Callbacks claimed per round.
const BATCH: u32 = 32;
/// Attempts in flight at once.
const PARALLEL: usize = 8;
/// Longest sleep between looks at the outbox when nothing is due (other nodes may add rows).
const IDLE: Duration = Duration::from_secs(5);

/// An error building the callback HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("callback client: {0}")]
pub struct ClientError(String);

/// The HTTP client callbacks go out with: time limit, no redirects, extra root or none.
pub fn http_client(config: &Config) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.callback_timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ccfs/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.callback_ca_cert {
        let pem =
            std::fs::read(path).map_err(|e| ClientError(format!("{}: {e}", path.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| ClientError(format!("{}: {e}", path.display())))?;
        builder = builder.add_root_certificate(cert);
    }
    if config.callback_insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| ClientError(e.to_string()))
}

/// The delay before the next attempt after `failures` failed ones: `initial * 2^(failures-1)`,
/// capped, then a random point in its upper half so that many callbacks do not retry in step.
pub fn backoff(config: &Config, failures: u32) -> SignedDuration {
    let initial = config.callback_initial_backoff_secs.max(1) as f64;
    let cap = config.callback_max_backoff_secs.max(1) as f64;
    let full = (initial * 2f64.powi(failures.saturating_sub(1).min(30) as i32)).min(cap);
    SignedDuration::from_secs_f64(full * rand::random_range(0.5..=1.0))
}

/// When to try again after a failure at `now`: `now + delay`, but never within the same second.
/// Callbacks are signed with a seconds timestamp, so two attempts in one second would carry one
/// signature, and a receiver that refuses replays would turn the second away.
pub fn retry_at(now: Timestamp, delay: SignedDuration) -> Timestamp {
    let next_second = Timestamp::from_second(now.as_second().saturating_add(1)).unwrap_or(now);
    (now + delay).max(next_second)
}

/// Runs the loop until `shutdown`.
pub fn spawn(
    state: Arc<AppState>,
    client: reqwest::Client,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // A store error (the database is down) pauses the loop, longer after each failure, and
        // the loop goes on: the outbox is in the store, so nothing waits anywhere else meanwhile.
        let mut errors = ErrorPause::default();
        loop {
            let claimed = match round(&state, &client).await {
                Ok(n) => {
                    errors.succeeded("callback delivery");
                    n
                }
                Err(e) => {
                    let pause = errors.failed();
                    tracing::warn!(retry_in = ?pause, "callback outbox: {e}");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    continue;
                }
            };
            // A full batch means more may be due at once; fewer, that the outbox is drained.
            if claimed as u32 == BATCH {
                continue;
            }
            let wait = match state.store.next_callback_at().await {
                Ok(Some(at)) => Timestamp::now()
                    .duration_until(at)
                    .try_into()
                    .unwrap_or(Duration::ZERO)
                    .min(IDLE),
                _ => IDLE,
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = state.wake_callbacks.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// Claims the due callbacks and attempts each; returns how many were claimed.
async fn round(
    state: &AppState,
    client: &reqwest::Client,
) -> Result<usize, crate::store::StoreError> {
    let now = Timestamp::now();
    // Held long enough for one attempt to finish; a node that dies meanwhile only delays it.
    let claim_until =
        now + SignedDuration::from_secs(state.config.callback_timeout_secs as i64 * 3 + 30);
    let due = state.store.claim_callbacks(now, claim_until, &crate::store::ClaimLimits::total(BATCH)).await?;
    let n = due.len();
    futures::stream::iter(due)
        .for_each_concurrent(PARALLEL, |cb| async move {
            // A bug in one attempt fails that attempt (retried like any other failure), not
            // the loop: `AssertUnwindSafe` holds since an attempt changes no shared state
            // before its outcome is recorded below.
            let outcome = match isolated(AssertUnwindSafe(deliver(state, client, &cb))).await {
                Ok(outcome) => outcome,
                Err(what) => {
                    tracing::error!(response_id = %cb.response_id, panic = %what, "callback attempt panicked");
                    Err("internal error while sending the callback".to_owned())
                }
            };
            let attempt = match outcome {
                Ok(()) => Attempt::Delivered,
                Err(error) => {
                    let failures = cb.attempts + 1;
                    let now = Timestamp::now();
                    cb.failed_attempt(retry_at(now, backoff(&state.config, failures)), error)
                }
            };
            let label = match &attempt {
                Attempt::Delivered => "delivered",
                Attempt::Retry { .. } => "retry",
                Attempt::GaveUp { .. } => "gave_up",
            };
            metrics::counter!("ccfs_callback_attempts_total", "outcome" => label).increment(1);
            match &attempt {
                Attempt::Delivered => tracing::info!(response_id = %cb.response_id, "callback delivered"),
                Attempt::Retry { error, next_attempt_at } => {
                    tracing::info!(response_id = %cb.response_id, %next_attempt_at, "callback failed, will retry: {error}")
                }
                Attempt::GaveUp { error } => tracing::warn!(response_id = %cb.response_id, "callback given up: {error}"),
            }
            if let Err(e) = state.store.record_attempt(&cb.response_id, &attempt).await {
                tracing::warn!(response_id = %cb.response_id, "recording a callback attempt: {e}");
            }
        })
        .await;
    Ok(n)
}

/// One signed POST; the error text is what the status interface shows as `lastError`.
async fn deliver(state: &AppState, client: &reqwest::Client, cb: &Callback) -> Result<(), String> {
    let url = cb.url.as_url();
    let host = cb.url.host_header();
    let dev = state
        .store
        .developer(cb.developer_id.as_str())
        .await
        .map_err(|e| format!("store: {e}"))?
        .ok_or("the developer no longer exists")?;
    let secret = state
        .tenants
        .secrets(&dev, Timestamp::now())
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("the developer has no secret")?;
    let authorization = sign_json_post(
        dev.app_id.as_str(),
        &secret,
        // Seconds, not milliseconds: the public Java signers a receiver verifies with can only
        // write `yyyy-MM-ddTHH:mm:ssZ` (SPEC section 6).
        &format_timestamp(Timestamp::now(), Precision::Seconds),
        &JsonPost {
            path: url.path(),
            query: url.query(),
            host: &host,
            body: cb.body.as_bytes(),
        },
        SignedHeaders::ContentAndHost,
    );
    let response = client
        .post(url.clone())
        .header("content-type", ccfs_protocol::JSON_CONTENT_TYPE)
        .header("authorization", authorization)
        .body(cb.body.clone())
        .send()
        .await
        .map_err(|e| describe_send_error(&e))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered HTTP {}", status.as_u16()))
    }
}

fn describe_send_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the time limit".to_owned()
    } else if e.is_connect() {
        "cannot connect to the receiver".to_owned()
    } else {
        format!("request failed: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let c = Config {
            callback_initial_backoff_secs: 10,
            callback_max_backoff_secs: 600,
            ..Config::default()
        };
        for _ in 0..100 {
            let first = backoff(&c, 1).as_secs_f64();
            assert!((5.0..=10.0).contains(&first), "{first}");
            let third = backoff(&c, 3).as_secs_f64();
            assert!((20.0..=40.0).contains(&third), "{third}");
            let late = backoff(&c, 20).as_secs_f64();
            assert!((300.0..=600.0).contains(&late), "{late}");
        }
    }

    #[test]
    fn a_retry_is_never_signed_in_the_same_second() {
        let now: Timestamp = "2026-12-01T21:32:39.529Z".parse().unwrap();
        let ms = SignedDuration::from_millis;
        assert_eq!(retry_at(now, ms(300)).to_string(), "2026-12-01T21:32:40Z");
        assert_eq!(retry_at(now, ms(0)).to_string(), "2026-12-01T21:32:40Z");
        assert_eq!(
            retry_at(now, ms(700)).to_string(),
            "2026-12-01T21:32:40.229Z"
        );
        assert_eq!(
            retry_at(now, SignedDuration::from_secs(10)).to_string(),
            "2026-12-01T21:32:49.529Z"
        );
    }
}
