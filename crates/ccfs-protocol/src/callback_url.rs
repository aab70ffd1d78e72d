//! The `callBackURL` of a generate request (SPEC section 4), as a type that only holds a URL the
//! server can POST to: absolute, `http` or `https`, with a host.

use std::fmt;
use std::net::IpAddr;

use url::Url;

/// An absolute `http` or `https` URL with a host.
///
/// The SPEC's other rule, at most [`crate::messages::MAX_CALLBACK_URL`] characters, is checked on
/// the text the client sent, with its own result code (`0300003`), before this type is made.
/// It is not part of the type because parsing normalises (non-ASCII text is percent-encoded,
/// which makes it longer), and a URL read back from the store must never be refused for a
/// length that it only has after normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallbackUrl(Url);

impl CallbackUrl {
    /// Reads a URL as the store keeps it. Accepts user info (`user:password@`), which URLs
    /// stored before it was refused may carry: such a callback must still be read (to fail its
    /// attempt with a reason), not make its row unreadable.
    pub fn parse(s: &str) -> Option<Self> {
        let url = Url::parse(s).ok()?;
        (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then_some(Self(url))
    }

    /// Reads the `callBackURL` of a new generate: as [`CallbackUrl::parse`], and without user
    /// info, which would make the callback carry a Basic `Authorization` header.
    pub fn parse_request(s: &str) -> Option<Self> {
        Self::parse(s).filter(|url| !url.has_user_info())
    }

    /// Whether the URL names a user or password (`user@`, `user:password@`, `:password@`).
    pub fn has_user_info(&self) -> bool {
        !self.0.username().is_empty() || self.0.password().is_some()
    }

    /// The host as an address when it is written as one (`http://10.0.0.1/`, `http://[::1]/`).
    pub fn ip_literal(&self) -> Option<IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(ip) => Some(ip.into()),
            url::Host::Ipv6(ip) => Some(ip.into()),
            url::Host::Domain(_) => None,
        }
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The URL as text, normalised (what the store keeps; [`CallbackUrl::parse`] reads it back
    /// unchanged).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The `Host` header a client sends to this URL: the host, and the port when it is not the
    /// scheme's default. Never fails, since the URL has a host.
    pub fn host_header(&self) -> String {
        crate::auth::host_header(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for CallbackUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_with_a_host() {
        for ok in [
            "https://example.com/cb",
            "http://127.0.0.1:8080/cb?x=1",
            "http://[::1]:9/cb",
        ] {
            assert!(CallbackUrl::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "/relative",
            "ftp://example.com/cb",
            "file:///etc/passwd",
            "mailto:a@example.com",
            "https://",
            "not a url",
        ] {
            assert!(CallbackUrl::parse(bad).is_none(), "{bad}");
        }
    }

    /// What the store keeps reads back as the same URL, also after normalisation made it longer.
    #[test]
    fn the_stored_text_reads_back_unchanged() {
        let url = CallbackUrl::parse("https://Example.com/回调 x?a=b c").unwrap();
        assert_eq!(
            url.as_str(),
            "https://example.com/%E5%9B%9E%E8%B0%83%20x?a=b%20c"
        );
        assert_eq!(CallbackUrl::parse(url.as_str()), Some(url.clone()));
        assert_eq!(url.to_string(), url.as_str());
    }

    #[test]
    fn user_info_is_refused_in_a_request_but_read_back_from_the_store() {
        for with in [
            "https://user:pass@example.com/cb",
            "https://user@example.com/cb",
            "https://:pass@example.com/cb",
        ] {
            assert!(CallbackUrl::parse_request(with).is_none(), "{with}");
            let stored = CallbackUrl::parse(with).expect(with);
            assert!(stored.has_user_info(), "{with}");
        }
        let plain = CallbackUrl::parse_request("https://example.com/cb?u=a@b").expect("plain");
        assert!(!plain.has_user_info());
    }

    #[test]
    fn ip_literal_hosts() {
        let ip = |u: &str| CallbackUrl::parse(u).unwrap().ip_literal();
        assert_eq!(
            ip("http://169.254.169.254/x"),
            Some("169.254.169.254".parse().unwrap())
        );
        assert_eq!(
            ip("http://2852039166/x"),
            Some("169.254.169.254".parse().unwrap())
        );
        assert_eq!(
            ip("http://[::ffff:169.254.169.254]/"),
            Some("::ffff:169.254.169.254".parse().unwrap())
        );
        assert_eq!(ip("https://example.com/"), None);
    }

    #[test]
    fn host_headers() {
        let h = |u: &str| CallbackUrl::parse(u).unwrap().host_header();
        assert_eq!(h("https://example.com/cb"), "example.com");
        assert_eq!(h("https://example.com:443/cb"), "example.com");
        assert_eq!(h("http://127.0.0.1:8080/cb"), "127.0.0.1:8080");
        assert_eq!(h("http://[::1]:9/cb"), "[::1]:9");
    }
}
