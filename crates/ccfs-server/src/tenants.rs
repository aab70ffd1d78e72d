//! Developers (tenants), their secret keys and roles.
//!
//! Secret keys are sealed with AES-256-GCM under the server's master key before they reach the
//! store, with the app id as associated data so a sealed secret cannot be moved to another
//! developer. The plain secret exists only when it is created (shown once) and in memory while a
//! signature is checked; it is never logged.

use std::path::Path;
use std::sync::Arc;

use ccfs_protocol::AppId;
use jiff::{SignedDuration, Timestamp};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::config::Config;
use crate::model::{Developer, Role, TimeZoneName};
use crate::store::{Store, StoreError};

/// An error managing developers.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("no developer with app id {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("a sealed secret key cannot be opened: wrong master key, or the data was altered")]
    Unseal,
    #[error(transparent)]
    Store(#[from] StoreError),
}

const SEALED_VERSION: u8 = 1;

/// The key that seals secret keys at rest.
pub struct MasterKey(LessSafeKey);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        // A 32-byte key is always the right length for AES-256-GCM.
        Self(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte key"),
        ))
    }

    fn from_hex(text: &str) -> Result<Self, TenantError> {
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| TenantError::MasterKey("must be 64 hex characters".into()))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The configured key, or the key file, created (mode 0600) with a new random key on first use.
    pub fn load(config: &Config) -> Result<Self, TenantError> {
        if let Some(k) = &config.master_key {
            return Self::from_hex(k);
        }
        let path = config.master_key_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_hex(&text)
                .map_err(|e| TenantError::MasterKey(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(&path),
            Err(e) => Err(TenantError::MasterKey(format!("{}: {e}", path.display()))),
        }
    }

    fn create(path: &Path) -> Result<Self, TenantError> {
        let err = |e: std::io::Error| TenantError::MasterKey(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let bytes: [u8; 32] = rand::random();
        crate::files::write_private(path, format!("{}\n", hex::encode(bytes)).as_bytes())
            .map_err(err)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Seals `secret` for `app_id`: version, nonce, ciphertext and tag.
    pub fn seal(&self, app_id: &str, secret: &str) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut data = secret.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(app_id.as_bytes()),
                &mut data,
            )
            .expect("sealing a short secret cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + data.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        out
    }

    /// Opens what [`MasterKey::seal`] made for the same `app_id`.
    pub fn open(&self, app_id: &str, sealed: &[u8]) -> Result<String, TenantError> {
        let (&version, rest) = sealed.split_first().ok_or(TenantError::Unseal)?;
        if version != SEALED_VERSION || rest.len() < NONCE_LEN {
            return Err(TenantError::Unseal);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| TenantError::Unseal)?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(app_id.as_bytes()), &mut data)
            .map_err(|_| TenantError::Unseal)?;
        String::from_utf8(plain.to_vec()).map_err(|_| TenantError::Unseal)
    }
}

/// What `app create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewApp {
    pub name: String,
    pub accounts: Vec<String>,
    /// IANA time zone name, checked here; the server default when `None`.
    pub timezone: Option<String>,
    /// `export` when empty.
    pub roles: Vec<Role>,
    /// A chosen app id instead of a random one.
    pub app_id: Option<AppId>,
    pub csv_header: bool,
}

/// What becomes of the old secret key when a developer's is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldSecret {
    /// Still accepted for the grace period (`secret_grace_secs`), so that the developer's
    /// systems can move to the new one.
    Grace,
    /// Refused from now on (a leaked secret).
    Revoke,
}

/// A new secret key: 64 lower-case hex characters (256 random bits).
fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Developer management over the store.
#[derive(Clone)]
pub struct Tenants {
    store: Arc<dyn Store>,
    key: Arc<MasterKey>,
    default_timezone: TimeZoneName,
    grace: SignedDuration,
}

impl Tenants {
    pub fn new(store: Arc<dyn Store>, key: Arc<MasterKey>, config: &Config) -> Self {
        Self {
            store,
            key,
            default_timezone: config.default_timezone.clone(),
            grace: config.secret_grace(),
        }
    }

    /// Creates a developer; returns it and its secret key, which is shown this once.
    pub async fn create(&self, new: NewApp) -> Result<(Developer, String), TenantError> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(TenantError::Invalid("the name must not be empty".into()));
        }
        let timezone = match new.timezone {
            Some(name) => {
                TimeZoneName::parse(&name).map_err(|e| TenantError::Invalid(e.to_string()))?
            }
            None => self.default_timezone.clone(),
        };
        let mut accounts = new.accounts;
        if let Some(bad) = accounts
            .iter()
            .find(|a| a.is_empty() || a.chars().count() > 20)
        {
            return Err(TenantError::Invalid(format!(
                "account id '{bad}' must be 1-20 characters"
            )));
        }
        accounts.sort();
        accounts.dedup();
        let mut roles = if new.roles.is_empty() {
            vec![Role::Export]
        } else {
            new.roles
        };
        roles.sort();
        roles.dedup();
        let app_id = new
            .app_id
            .unwrap_or_else(|| AppId::from_bytes(rand::random()));
        let secret = new_secret();
        let dev = Developer {
            secret_enc: self.key.seal(app_id.as_str(), &secret),
            app_id,
            name: name.to_owned(),
            old_secret_enc: None,
            old_secret_until: None,
            timezone,
            accounts,
            roles,
            enabled: true,
            csv_header: new.csv_header,
            created_at: Timestamp::now(),
        };
        self.store.insert_developer(&dev).await?;
        Ok((dev, secret))
    }

    pub async fn get(&self, app_id: &str) -> Result<Developer, TenantError> {
        self.store
            .developer(app_id)
            .await?
            .ok_or_else(|| TenantError::NotFound(app_id.to_owned()))
    }

    pub async fn list(&self) -> Result<Vec<Developer>, TenantError> {
        Ok(self.store.developers().await?)
    }

    /// Gives the developer a new secret key; the old one stays valid for the grace period, or
    /// ends now. Either way a secret rotated out before is forgotten.
    ///
    /// Every node reads the developer from the store for each request it verifies and each
    /// callback it signs (nothing caches developers or secrets), so a revoked secret is refused
    /// from the moment this returns, on every node.
    pub async fn rotate_secret(
        &self,
        app_id: &str,
        old: OldSecret,
    ) -> Result<(Developer, String), TenantError> {
        let mut dev = self.get(app_id).await?;
        let secret = new_secret();
        let previous = std::mem::replace(&mut dev.secret_enc, self.key.seal(app_id, &secret));
        (dev.old_secret_enc, dev.old_secret_until) = match old {
            OldSecret::Grace => (Some(previous), Some(Timestamp::now() + self.grace)),
            OldSecret::Revoke => (None, None),
        };
        self.store.update_developer(&dev).await?;
        Ok((dev, secret))
    }

    pub async fn set_enabled(&self, app_id: &str, enabled: bool) -> Result<Developer, TenantError> {
        let mut dev = self.get(app_id).await?;
        dev.enabled = enabled;
        self.store.update_developer(&dev).await?;
        Ok(dev)
    }

    /// The secret keys a signature of `dev` may be made with at `now`: the current one, and the
    /// previous one during its grace period.
    pub fn secrets(&self, dev: &Developer, now: Timestamp) -> Result<Vec<String>, TenantError> {
        let app_id = dev.app_id.as_str();
        let mut out = vec![self.key.open(app_id, &dev.secret_enc)?];
        if let (Some(old), Some(until)) = (&dev.old_secret_enc, dev.old_secret_until) {
            if now < until {
                out.push(self.key.open(app_id, old)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_is_bound_to_the_app() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let sealed = key.seal("app1", "s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(key.open("app1", &sealed).unwrap(), "s3cret");
        assert!(key.open("app2", &sealed).is_err());
        assert!(MasterKey::from_bytes(&[8; 32])
            .open("app1", &sealed)
            .is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open("app1", &tampered).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let a = MasterKey::load(&config).unwrap();
        let sealed = a.seal("x", "y");
        let b = MasterKey::load(&config).unwrap();
        assert_eq!(b.open("x", &sealed).unwrap(), "y");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(config.master_key_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
