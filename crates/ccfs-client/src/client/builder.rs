//! [`ClientBuilder`]: the settings of a [`Client`], checked once when it is built.

use std::sync::Arc;
use std::time::Duration;

use ccfs_protocol::auth::{host_header, SignedHeaders};
use url::Url;

use super::{Client, Inner};
use crate::error::{Error, Result};

/// Default time limit of one JSON call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of automatic resumptions of an interrupted download.
pub const DEFAULT_DOWNLOAD_RETRIES: u32 = 3;

/// Settings of a [`Client`]; see [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    server: String,
    ak: Option<String>,
    sk: Option<String>,
    ca_certs: Vec<Vec<u8>>,
    insecure: bool,
    timeout: Duration,
    connect_timeout: Duration,
    signed_headers: SignedHeaders,
    download_retries: u32,
}

impl ClientBuilder {
    /// The developer's access key (the `appId`) and secret key.
    pub fn credentials(mut self, ak: impl Into<String>, sk: impl Into<String>) -> Self {
        self.ak = Some(ak.into());
        self.sk = Some(sk.into());
        self
    }

    /// Trusts the PEM certificate(s) in `pem` as extra roots, e.g. the self-signed
    /// `ccfs-data/tls/cert.pem` of a ccfs server. May be called more than once.
    pub fn ca_cert_pem(mut self, pem: &[u8]) -> Self {
        self.ca_certs.push(pem.to_vec());
        self
    }

    /// Accepts any server certificate. For tests against a self-signed server only: it gives
    /// up the protection TLS exists for.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Time limit of each JSON call, and of each silence of a download (a download itself may
    /// take as long as it needs while bytes keep coming). Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time limit of opening a connection. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Which headers each request signs: the official examples'
    /// `content-length;content-type;host` ([`SignedHeaders::ContentAndHost`], the default), or
    /// only `host` as public Java clients do ([`SignedHeaders::HostOnly`]).
    pub fn signed_headers(mut self, headers: SignedHeaders) -> Self {
        self.signed_headers = headers;
        self
    }

    /// How many times an interrupted download is resumed automatically before the error is
    /// returned. Default 3; 0 turns automatic resumption off (a later call still resumes).
    pub fn download_retries(mut self, retries: u32) -> Self {
        self.download_retries = retries;
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<Client> {
        let server = self.server.trim();
        if !server.contains("://") {
            return Err(Error::Config(format!(
                "server URL '{server}' has no scheme: write https://{server} \
                 (or http://{server} for a server that speaks plain HTTP)"
            )));
        }
        let base = Url::parse(server)
            .map_err(|e| Error::Config(format!("server URL '{}': {e}", self.server)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "server URL '{}': the scheme must be https (or http)",
                self.server
            )));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(Error::Config(format!(
                "server URL '{}': no query or fragment allowed",
                self.server
            )));
        }
        let host = host_header(&base)
            .ok_or_else(|| Error::Config(format!("server URL '{}': no host", self.server)))?;
        let (Some(ak), Some(sk)) = (self.ak, self.sk) else {
            return Err(Error::Config("credentials (AK and SK) are required".into()));
        };
        if ak.is_empty() || ak.contains('/') || sk.is_empty() {
            return Err(Error::Config(
                "the AK must be non-empty without '/', and the SK non-empty".into(),
            ));
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ccfs-client/", env!("CARGO_PKG_VERSION")));
        for pem in &self.ca_certs {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config(
                    "CA certificate: no PEM certificate found".into(),
                ));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        if self.insecure {
            http = http.danger_accept_invalid_certs(true);
        }
        let http = http
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let prefix = base.path().trim_end_matches('/').to_owned();
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                prefix,
                host,
                ak,
                sk,
                timeout: self.timeout,
                signed_headers: self.signed_headers,
                download_retries: self.download_retries,
            }),
        })
    }
}

impl Client {
    /// Starts building a client of the server at `server`, e.g. `https://127.0.0.1:28443`
    /// (a path, if any, is put before every interface path).
    ///
    /// ```
    /// # fn main() -> Result<(), ccfs_client::Error> {
    /// // For a self-signed server add `.ca_cert_pem(&std::fs::read("ccfs-data/tls/cert.pem")?)`.
    /// let client = ccfs_client::Client::builder("https://127.0.0.1:28443")
    ///     .credentials("0123456789abcdef0123456789abcdef", "the secret key")
    ///     .timeout(std::time::Duration::from_secs(10))
    ///     .build()?;
    /// assert_eq!(client.server().as_str(), "https://127.0.0.1:28443/");
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(server: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            server: server.into(),
            ak: None,
            sk: None,
            ca_certs: Vec::new(),
            insecure: false,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
            signed_headers: SignedHeaders::ContentAndHost,
            download_retries: DEFAULT_DOWNLOAD_RETRIES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_refuses_bad_settings() {
        let b = |url: &str| Client::builder(url).credentials("ak", "sk").build();
        assert!(matches!(b("not a url"), Err(Error::Config(_))));
        for no_scheme in ["127.0.0.1:28443", "localhost:28443"] {
            let e = b(no_scheme).unwrap_err().to_string();
            assert!(e.contains(&format!("write https://{no_scheme}")), "{e}");
        }
        assert!(matches!(b("ftp://x"), Err(Error::Config(_))));
        assert!(matches!(b("https://x/?a=1"), Err(Error::Config(_))));
        assert!(matches!(
            Client::builder("https://x").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::builder("https://x")
                .credentials("a/b", "sk")
                .build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::builder("https://x")
                .credentials("ak", "sk")
                .ca_cert_pem(b"garbage")
                .build(),
            Err(Error::Config(_))
        ));
        let c = b("https://lb.example.com:8443/prefix/").unwrap();
        assert_eq!(c.inner.prefix, "/prefix");
        assert_eq!(c.inner.host, "lb.example.com:8443");
        assert_eq!(b("https://example.com").unwrap().inner.host, "example.com");
    }
}
