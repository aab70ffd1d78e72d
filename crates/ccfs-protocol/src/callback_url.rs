//! The `callBackURL` of a generate request (SPEC section 4), as a type that only holds a URL the
//! server can POST to: absolute, `http` or `https`, with a host.

use std::fmt;

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
    pub fn parse(s: &str) -> Option<Self> {
        let url = Url::parse(s).ok()?;
        (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then_some(Self(url))
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
    fn host_headers() {
        let h = |u: &str| CallbackUrl::parse(u).unwrap().host_header();
        assert_eq!(h("https://example.com/cb"), "example.com");
        assert_eq!(h("https://example.com:443/cb"), "example.com");
        assert_eq!(h("http://127.0.0.1:8080/cb"), "127.0.0.1:8080");
        assert_eq!(h("http://[::1]:9/cb"), "[::1]:9");
    }
}
