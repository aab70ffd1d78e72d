//! The callback outbox delivery loop (SPEC section 6).
//!
//! A finished job's callback is a row in the store (written in the same transaction that marks
//! the job succeeded), so it survives restarts. This loop claims due rows, POSTs each body signed
//! with the developer's own AK/SK over `content-length;content-type;host`, and records the
//! attempt: delivered on any 2xx, otherwise retried with exponential backoff and jitter until the
//! give-up time. Giving up never touches the file. A callback whose file its owner has already
//! downloaded is `superseded` by the download handler and no longer claimed here.
//!
//! Delivery is fair: attempts run side by side up to `callback_parallel`, at most
//! `callback_per_developer` of one developer, and a slot that frees is filled at once. So a
//! developer whose receivers never answer holds at most their own slots, never another's
//! delivery. The limits are per node: nodes sharing a PostgreSQL outbox each keep their own.

mod client;
pub(crate) mod policy;
#[cfg(test)]
mod wakes;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccfs_protocol::auth::{format_timestamp, sign_json_post, JsonPost, Precision, SignedHeaders};
use ccfs_protocol::AppId;
use jiff::{SignedDuration, Timestamp};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use client::{http_client, ClientError};

use crate::config::Config;
use crate::isolate::isolated;
use crate::model::{Attempt, Callback};
use crate::pause::ErrorPause;
use crate::state::AppState;
use crate::store::{ClaimLimits, StoreError};
use crate::telemetry::CallbackOutcome;

/// Longest sleep between looks at the outbox, whatever is due (other nodes add rows, and
/// `ccfs jobs retry-callback` queues one again from another process: neither wakes this loop).
pub(crate) const IDLE: Duration = Duration::from_secs(5);
/// Sleep when callbacks are due but all belong to developers at their limit: one of their
/// attempts ending wakes the loop sooner; this only bounds how long a row that fell due just
/// after the claim waits.
const BUSY: Duration = Duration::from_secs(1);
/// How long shutdown lets attempts in flight end. Those still running are dropped: their rows
/// stay claimed until the claim runs out and are attempted again then, so nothing is lost.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The text `lastError` shows for every failure to get an HTTP answer. Connection refused,
/// connect time-out, reset and answer time-out all read the same, so that callbacks cannot be
/// used to tell which internal ports are open; the log line keeps the exact cause.
const NO_ANSWER: &str = "no answer from the receiver";

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
        let mut dispatcher = Dispatcher::new(state, client);
        dispatcher.run(&shutdown).await;
        dispatcher.wind_down().await;
    })
}

/// The attempts in flight and whose they are.
struct Dispatcher {
    state: Arc<AppState>,
    client: reqwest::Client,
    /// One task per attempt, so that a slow receiver holds its own task only. A `JoinSet` so
    /// the loop wakes the moment any attempt ends (a slot is free) and can drop the rest at
    /// shutdown; its length is the attempts in flight, never above `callback_parallel`.
    running: JoinSet<()>,
    /// The developer of each running task, by task id (known even when the task panicked).
    owners: HashMap<tokio::task::Id, AppId>,
    /// Attempts in flight per developer.
    per_developer: HashMap<AppId, u32>,
    /// The longest wait for `wake_callbacks` before looking in the outbox anyway ([`IDLE`]; an
    /// hour in the tests of waking, so that a callback they see sent was woken for).
    idle: Duration,
}

impl Dispatcher {
    fn new(state: Arc<AppState>, client: reqwest::Client) -> Self {
        Self {
            state,
            client,
            running: JoinSet::new(),
            owners: HashMap::new(),
            per_developer: HashMap::new(),
            idle: IDLE,
        }
    }

    async fn run(&mut self, shutdown: &CancellationToken) {
        // A store error (the database is down) pauses claiming, longer after each failure, and
        // the loop goes on: the outbox is in the store, so nothing waits anywhere else meanwhile.
        let mut errors = ErrorPause::default();
        loop {
            let wait = match self.fill().await {
                Ok(wait) => {
                    errors.succeeded("callback delivery");
                    wait
                }
                Err(e) => {
                    let pause = errors.failed();
                    tracing::warn!(retry_in = ?pause, "callback outbox: {e}");
                    // The whole pause, freeing the slots of attempts that end meanwhile.
                    let until = tokio::time::Instant::now() + pause;
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            Some(ended) = self.running.join_next_with_id() => self.ended(ended),
                            _ = tokio::time::sleep_until(until) => break,
                        }
                    }
                    continue;
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(ended) = self.running.join_next_with_id() => self.ended(ended),
                _ = self.state.wake_callbacks.notified() => {}
                _ = tokio::time::sleep(wait.unwrap_or(self.idle)), if wait.is_some() => {}
            }
        }
    }

    /// Claims due callbacks into the free slots and starts them. Returns how long to wait for
    /// more to fall due, `None` when every slot is taken (an attempt ending wakes the loop).
    async fn fill(&mut self) -> Result<Option<Duration>, StoreError> {
        let state = self.state.clone();
        let config = &state.config;
        let parallel = config.callback_parallel as usize;
        let per_developer = config.callback_per_developer;
        loop {
            let free = parallel.saturating_sub(self.running.len());
            if free == 0 {
                return Ok(None);
            }
            let busy: Vec<AppId> = self
                .per_developer
                .iter()
                .filter(|(_, n)| **n >= per_developer)
                .map(|(dev, _)| dev.clone())
                .collect();
            let now = Timestamp::now();
            // Held long enough for one attempt to finish; a node that dies meanwhile only
            // delays it. Claimed only as many as start now, so none waits here claimed.
            let claim_until =
                now + SignedDuration::from_secs(config.callback_timeout_secs as i64 * 3 + 30);
            // One of each developer per claim: a developer below the limit but with several
            // due gets the next one in the next claim of this loop, after the others' first.
            let limits = ClaimLimits {
                total: u32::try_from(free).unwrap_or(u32::MAX),
                per_developer: 1,
                skip: &busy,
            };
            let due = self
                .state
                .store
                .claim_callbacks(now, claim_until, &limits)
                .await?;
            if due.is_empty() {
                break;
            }
            for cb in due {
                self.start(cb);
            }
        }
        let wait = match self.state.store.next_callback_at().await? {
            // Due already, yet not claimed: another node holds it, or its developer is at the
            // limit here.
            Some(at) if at <= Timestamp::now() => BUSY,
            Some(at) => Timestamp::now()
                .duration_until(at)
                .try_into()
                .unwrap_or(Duration::ZERO)
                .min(self.idle),
            None => self.idle,
        };
        Ok(Some(wait))
    }

    fn start(&mut self, cb: Callback) {
        let dev = cb.developer_id.clone();
        *self.per_developer.entry(dev.clone()).or_default() += 1;
        let state = self.state.clone();
        let client = self.client.clone();
        let handle = self
            .running
            .spawn(async move { attempt(&state, &client, cb).await });
        self.owners.insert(handle.id(), dev);
    }

    /// Frees the slot of an attempt that ended, however it ended.
    fn ended(&mut self, ended: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match ended {
            Ok((id, ())) => id,
            Err(e) => {
                // `attempt` catches a panic in the delivery itself; this is one in recording.
                tracing::error!("a callback attempt task ended badly: {e}");
                e.id()
            }
        };
        if let Some(dev) = self.owners.remove(&id) {
            if let Some(n) = self.per_developer.get_mut(&dev) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_developer.remove(&dev);
                }
            }
        }
    }

    /// Lets attempts in flight end for a moment, then drops the rest (see [`SHUTDOWN_GRACE`]).
    async fn wind_down(mut self) {
        let all_ended = async { while self.running.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, all_ended)
            .await
            .is_err()
        {
            tracing::info!(
                left = self.running.len(),
                "callback attempts still running at shutdown stay claimed and are retried later"
            );
            self.running.abort_all();
        }
    }
}

/// Attempts one claimed callback and records how it ended.
async fn attempt(state: &AppState, client: &reqwest::Client, cb: Callback) {
    // A bug in one attempt fails that attempt (retried like any other failure), not the loop:
    // `AssertUnwindSafe` holds since an attempt changes no shared state before its outcome is
    // recorded below.
    let started = Instant::now();
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
    let took = started.elapsed();
    let ended = match &attempt {
        Attempt::Delivered => CallbackOutcome::Delivered,
        Attempt::Retry { .. } => CallbackOutcome::Retry,
        Attempt::GaveUp { .. } => CallbackOutcome::GaveUp,
    };
    crate::telemetry::callback_attempted(ended, took);
    match &attempt {
        Attempt::Delivered => tracing::info!(response_id = %cb.response_id, "callback delivered"),
        Attempt::Retry {
            error,
            next_attempt_at,
        } => {
            tracing::info!(response_id = %cb.response_id, %next_attempt_at, "callback failed, will retry: {error}")
        }
        Attempt::GaveUp { error } => {
            tracing::warn!(response_id = %cb.response_id, "callback given up: {error}")
        }
    }
    if let Err(e) = state.store.record_attempt(&cb.response_id, &attempt).await {
        tracing::warn!(response_id = %cb.response_id, "recording a callback attempt: {e}");
    }
}

/// One signed POST; the error text is what the status interface shows as `lastError`.
async fn deliver(state: &AppState, client: &reqwest::Client, cb: &Callback) -> Result<(), String> {
    if cb.url.has_user_info() {
        // Stored before user info was refused at generate: never sent, since the credentials
        // would go out as a Basic header next to the signature.
        return Err(
            "the callBackURL carries user info (user:password@), which is refused; \
                    send a new generate with a URL without it"
                .to_owned(),
        );
    }
    // reqwest resolves no IP-literal host, so the policy sees those here, not in the resolver.
    if let Some(ip) = cb.url.ip_literal() {
        state
            .config
            .callback_policy()
            .check(ip)
            .map_err(|e| e.to_string())?;
    }
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
        .map_err(|e| describe_send_error(&cb.response_id, &e))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered HTTP {}", status.as_u16()))
    }
}

/// What `lastError` says when no HTTP answer came: the policy's refusal, else [`NO_ANSWER`];
/// the exact cause goes to the log for the operator.
fn describe_send_error(response_id: &ccfs_protocol::ResponseId, e: &reqwest::Error) -> String {
    if let Some(refused) = client::refusal(e) {
        return refused.to_string();
    }
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause.push_str(": ");
        cause.push_str(&s.to_string());
        source = s.source();
    }
    tracing::info!(response_id = %response_id, timeout = e.is_timeout(), connect = e.is_connect(), "callback got no answer: {cause}");
    NO_ANSWER.to_owned()
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
