//! A request that could not be sent, explained: nothing listening, a certificate not trusted,
//! plain HTTP against TLS or the other way round.

use url::Url;

use crate::error::Error;

/// Every error in `e`'s chain of causes, including the ones an `io::Error` wraps (its
/// `source()` skips the error it wraps, which is where rustls puts its own).
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
    out: &mut Vec<&'a (dyn std::error::Error + 'static)>,
) {
    out.push(e);
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        causes(inner, out);
    } else if let Some(source) = e.source() {
        causes(source, out);
    }
}

/// `url` with another scheme (`http` ↔ `https`), for advice.
fn with_scheme(url: &Url, scheme: &str) -> String {
    let mut other = url.clone();
    match other.set_scheme(scheme) {
        Ok(()) => other.to_string(),
        Err(()) => url.to_string(),
    }
}

/// Turns a request to the server at `base` that could not be sent into the variant that says
/// what to do: nothing listening, a certificate not trusted, plain HTTP against TLS or the
/// other way round. Anything else stays [`Error::Http`].
pub(super) fn transport_error(base: &Url, e: reqwest::Error) -> Error {
    let url = base.to_string();
    let mut chain = Vec::new();
    causes(&e, &mut chain);
    let innermost = chain
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| e.to_string());
    let tls = chain.iter().find_map(|c| c.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            return Error::UntrustedCertificate {
                url,
                reason: "unknown issuer".into(),
            };
        }
        Some(err @ rustls::Error::InvalidCertificate(_)) => {
            return Error::Certificate {
                url,
                reason: err.to_string(),
            };
        }
        Some(err @ rustls::Error::InvalidMessage(_)) if base.scheme() == "https" => {
            return Error::NotTls {
                http_url: with_scheme(base, "http"),
                url,
                reason: err.to_string(),
            };
        }
        _ => {}
    }
    if base.scheme() == "http" && !e.is_connect() && !e.is_timeout() {
        let not_http = chain.iter().any(|c| {
            c.downcast_ref::<hyper::Error>()
                .is_some_and(|h| h.is_parse() || h.is_incomplete_message())
                || c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset)
        });
        if not_http {
            return Error::NotHttp {
                https_url: with_scheme(base, "https"),
                url,
                reason: innermost,
            };
        }
    }
    if e.is_connect() && tls.is_none() && !e.is_timeout() {
        return Error::Connect {
            url,
            reason: innermost,
        };
    }
    Error::Http(e)
}
