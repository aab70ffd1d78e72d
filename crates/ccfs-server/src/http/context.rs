//! What the server knows about a request besides its bytes: its id, the peer it came from,
//! and the developer it was verified as. The access log ([`super::access_log`]) makes it for
//! each request; every log line about the request carries its id, and so does a `0300500`
//! answer, so an operator goes from an answer to its lines and from one line to the others.
//!
//! It travels two ways, each where the other cannot reach:
//! - As a request extension ([`RequestContext`], behind an `Arc`): the auth extractor takes it
//!   from there, records the verified developer in it, and names the request in its refusal
//!   warnings; the access log reads the developer back once the answer is done.
//! - As a task-local ([`current_id`]) holding just the id, for the one place that has no
//!   request at hand: rendering an [`HttpError::Internal`](super::error::HttpError), which
//!   any handler may return from deep inside. The access log sets it around the handling of
//!   the request, so it holds for everything that runs in that task (not in tasks spawned
//!   from it, which do not render answers).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;

use ccfs_protocol::AppId;

/// A request's id: 8 random bytes, shown as 16 lower-case hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; 8]);

impl RequestId {
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

tokio::task_local! {
    /// The id of the request the current task is handling (see the module doc).
    static CURRENT: RequestId;
}

/// The id of the request being handled; a fresh one outside of any (a unit test rendering an
/// error by itself), so that an answer always has an id to give.
pub fn current_id() -> RequestId {
    CURRENT
        .try_with(|id| *id)
        .unwrap_or_else(|_| RequestId::random())
}

/// Runs `handling` with `id` as the [`current_id`].
pub async fn with_id<F: Future>(id: RequestId, handling: F) -> F::Output {
    CURRENT.scope(id, handling).await
}

/// One request's context.
#[derive(Debug)]
pub struct RequestContext {
    pub id: RequestId,
    /// The peer's address (a balancer's, behind one); unknown to a router run without the
    /// server's listener (unit tests).
    pub remote: Option<SocketAddr>,
    /// The developer the request's signature was verified for; set once, by the auth
    /// extractor. A `OnceLock` because the context is shared (`Arc`) between the access log,
    /// which reads it after the answer, and the extractor, which writes it meanwhile.
    verified: OnceLock<AppId>,
}

impl RequestContext {
    /// A new request's context, with a fresh id.
    pub fn new(remote: Option<SocketAddr>) -> Self {
        Self {
            id: RequestId::random(),
            remote,
            verified: OnceLock::new(),
        }
    }

    /// Records that the request was signed by `app_id` (the first call wins: a request has one
    /// signature).
    pub fn verified_as(&self, app_id: &AppId) {
        let _ = self.verified.set(app_id.clone());
    }

    /// The developer the request was verified for, if it was.
    pub fn app_id(&self) -> Option<&AppId> {
        self.verified.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_current_id_is_the_scopes_and_a_fresh_one_outside() {
        let id = RequestId::random();
        assert_eq!(id.to_string().len(), 16);
        assert!(id.to_string().bytes().all(|b| b.is_ascii_hexdigit()));
        let seen = with_id(id, async { current_id() }).await;
        assert_eq!(seen, id);
        assert_ne!(current_id(), id);
    }
}
