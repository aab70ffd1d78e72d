//! The HTTP client callbacks go out with, and the resolver that holds it to the address policy.
//!
//! reqwest asks [`PolicyResolver`] for the addresses of a host name and connects only to what
//! it answers, so the policy judges the address actually connected to: a name that resolves to
//! a refused address (or is re-pointed at one between generate and delivery, DNS rebinding) is
//! refused at connect time. reqwest does not resolve a host that is an IP literal; those are
//! checked before sending (see [`super::deliver`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::policy::{AddressPolicy, Refused};
use crate::config::Config;

/// An error building the callback HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("callback client: {0}")]
pub struct ClientError(String);

/// The HTTP client callbacks go out with: connect and answer time limits, no redirects, no
/// proxy, the address policy on every connection, extra root or none.
///
/// No proxy, whatever `HTTP_PROXY` says: through a proxy the resolver would judge the proxy's
/// address, and the proxy would connect to the receiver unjudged.
pub fn http_client(config: &Config) -> Result<reqwest::Client, ClientError> {
    let resolver = PolicyResolver {
        policy: Arc::new(config.callback_policy()),
    };
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(config.callback_connect_timeout_secs))
        .timeout(Duration::from_secs(config.callback_timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(resolver))
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

/// Resolves with the system resolver and keeps only the addresses the policy allows.
#[derive(Debug)]
struct PolicyResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let allowed = allowed_addresses(&policy, name.as_str()).await?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Why a host name gave no address to connect to.
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    #[error("cannot resolve the receiver's host name: {0}")]
    Lookup(#[from] std::io::Error),
    #[error("the receiver's host name has no address")]
    NoAddress,
    /// Every address was refused; the first is named.
    #[error(transparent)]
    Refused(#[from] Refused),
}

/// The addresses of `host` the policy allows; an error naming a refused one when none is left.
async fn allowed_addresses(
    policy: &AddressPolicy,
    host: &str,
) -> Result<Vec<SocketAddr>, ResolveError> {
    // Port 0: reqwest puts the URL's port on the addresses it is given.
    let all: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    let (allowed, refused): (Vec<_>, Vec<_>) = all.into_iter().partition(|a| policy.allows(a.ip()));
    match (allowed.is_empty(), refused.first()) {
        (false, _) => Ok(allowed),
        (true, Some(first)) => Err(Refused(first.ip().to_canonical()).into()),
        (true, None) => Err(ResolveError::NoAddress),
    }
}

/// The policy refusal somewhere in `e`'s chain of causes, if that is why it failed.
pub(super) fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(*r);
        }
        if let Some(ResolveError::Refused(r)) = c.downcast_ref::<ResolveError>() {
            return Some(*r);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;

    fn nets(list: &[&str]) -> Vec<Network> {
        list.iter().map(|s| s.parse().expect("network")).collect()
    }

    #[tokio::test]
    async fn resolved_addresses_are_filtered_by_the_policy() {
        let open = AddressPolicy::new(&[], &[]);
        let got = allowed_addresses(&open, "localhost")
            .await
            .expect("resolves");
        assert!(got.iter().all(|a| a.ip().is_loopback()), "{got:?}");
        assert!(!got.is_empty());

        let closed = AddressPolicy::new(&nets(&["127.0.0.0/8", "::1/128"]), &[]);
        let e = allowed_addresses(&closed, "localhost").await.unwrap_err();
        assert!(matches!(e, ResolveError::Refused(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains("refused by the callback address policy"),
            "{e}"
        );
        assert!(refusal(&e).is_some());

        // Only IPv4 loopback denied: what is left (::1, when localhost has it) is used.
        let v4_only = AddressPolicy::new(&nets(&["127.0.0.0/8"]), &[]);
        if let Ok(left) = allowed_addresses(&v4_only, "localhost").await {
            assert!(
                left.iter().all(|a| a.ip() == std::net::Ipv6Addr::LOCALHOST),
                "{left:?}"
            );
        }

        let e = allowed_addresses(&open, "no-such-host.invalid")
            .await
            .unwrap_err();
        assert!(matches!(e, ResolveError::Lookup(_)), "{e:?}");
        assert!(refusal(&e).is_none());
    }
}
