//! The server certificate: the configured PEM pair, or a self-signed one made in the data
//! directory on first start so that the first run is HTTPS without any setup.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// Why the certificate cannot be made or loaded: the file concerned and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {}: {reason}", .path.display())]
pub struct TlsError {
    pub path: PathBuf,
    pub reason: String,
}

/// The certificate the server presents.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    pub server_config: Arc<rustls::ServerConfig>,
    pub cert_path: PathBuf,
    /// Whether ccfs made the certificate itself.
    pub self_signed: bool,
    /// SHA-256 of the leaf certificate, upper-case hex pairs joined by `:`.
    pub fingerprint: String,
}

fn tls_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// SHA-256 fingerprint of a DER certificate, as `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Makes a self-signed certificate for `localhost` and the loopback addresses (plus the listen
/// address when it is a specific one) and writes it, with its key (mode 0600), into `dir`.
fn create_self_signed(dir: &Path, config: &Config) -> Result<(), TlsError> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ip = config.listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| tls_err(dir, e))?;
    std::fs::create_dir_all(dir).map_err(|e| tls_err(dir, e))?;
    let key_path = dir.join("key.pem");
    // A key left without its certificate is replaced; the new one is created afresh, 0600.
    match std::fs::remove_file(&key_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(tls_err(&key_path, e)),
        _ => {}
    }
    crate::files::write_private(&key_path, certified.key_pair.serialize_pem().as_bytes())
        .map_err(|e| tls_err(&key_path, e))?;
    let cert_path = dir.join("cert.pem");
    std::fs::write(&cert_path, certified.cert.pem()).map_err(|e| tls_err(&cert_path, e))?;
    Ok(())
}

/// Loads the configured certificate, or the self-signed default (made when missing).
pub fn setup(config: &Config) -> Result<TlsSetup, TlsError> {
    let (cert_path, key_path, self_signed) = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        _ => {
            let dir = config.data_dir.join("tls");
            if !dir.join("cert.pem").exists() || !dir.join("key.pem").exists() {
                create_self_signed(&dir, config)?;
            }
            (dir.join("cert.pem"), dir.join("key.pem"), true)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| tls_err(&cert_path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(&cert_path, e))?;
    let leaf = certs
        .first()
        .ok_or_else(|| tls_err(&cert_path, "no certificate in the file"))?;
    let fingerprint = fingerprint(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| tls_err(&key_path, e))?;
    let mut server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_err(&cert_path, e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| tls_err(&cert_path, e))?;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsSetup {
        server_config: Arc::new(server_config),
        cert_path,
        self_signed,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let a = setup(&config).unwrap();
        assert!(a.self_signed);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        let b = setup(&config).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        let own = Config {
            tls_cert: Some(a.cert_path.clone()),
            tls_key: Some(dir.path().join("tls/key.pem")),
            ..config
        };
        let c = setup(&own).unwrap();
        assert!(!c.self_signed);
        assert_eq!(c.fingerprint, a.fingerprint);
        let missing = Config {
            tls_cert: Some(dir.path().join("nope.pem")),
            tls_key: Some(dir.path().join("nope.key")),
            ..Config::default()
        };
        assert!(setup(&missing)
            .unwrap_err()
            .to_string()
            .contains("nope.pem"));
    }
}
