//! Idempotency (SPEC section 4): a second generate with the same key and the same body from the
//! same developer within 24 hours answers the first job's `responseId` and starts no job.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

/// How long a key answers with its first job.
pub const IDEMPOTENCY_TTL: SignedDuration = SignedDuration::from_hours(24);

/// Keys created at or before this instant no longer answer at `now`.
pub fn idempotency_cutoff(now: Timestamp) -> Timestamp {
    now.checked_sub(IDEMPOTENCY_TTL).unwrap_or(Timestamp::MIN)
}

/// An idempotency key: 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    /// A key as an `Idempotency-Key` header (or a stored row) gives it.
    pub fn parse(s: &str) -> Option<Self> {
        let ok =
            !s.is_empty() && s.len() <= Self::MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(s.to_owned()))
    }

    /// The key of a request sent without one, with `replay = retry`: its signature, since an
    /// identical signature can only carry the same method, path, host and body. `None` for a
    /// text that cannot be a key, which a verified signature (64 hex characters) never is.
    pub fn of_signature(signature: &str) -> Option<Self> {
        Self::parse(&format!("auth-v2:{signature}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The SHA-256 of a request body: the same key with another body is another request.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyHash([u8; 32]);

impl BodyHash {
    pub fn of(body: &[u8]) -> Self {
        Self(Sha256::digest(body).into())
    }

    /// Reads [`BodyHash::to_hex`] back.
    pub fn from_hex(s: &str) -> Option<Self> {
        hex::decode(s).ok()?.try_into().ok().map(Self)
    }

    /// 64 lower-case hex characters (as the store keeps it).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for BodyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BodyHash({})", self.to_hex())
    }
}

/// What makes a generate repeat an earlier one: its key and its body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Idempotency {
    pub key: IdempotencyKey,
    pub body_hash: BodyHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse("nightly-20240501").is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_none());
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse("a b").is_none());
        assert!(IdempotencyKey::parse("é").is_none());
        let sig = "0".repeat(64);
        assert_eq!(
            IdempotencyKey::of_signature(&sig).unwrap().as_str(),
            format!("auth-v2:{sig}")
        );
    }

    #[test]
    fn body_hashes_round_trip_as_hex() {
        let h = BodyHash::of(b"{}");
        assert_eq!(
            h.to_hex(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(BodyHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(BodyHash::from_hex("44"), None);
        assert_eq!(BodyHash::from_hex(&"x".repeat(64)), None);
        assert_ne!(BodyHash::of(b"{ }"), h);
    }

    #[test]
    fn a_key_answers_for_24_hours() {
        let now: Timestamp = "2024-05-02T00:00:00Z".parse().unwrap();
        assert_eq!(idempotency_cutoff(now).to_string(), "2024-05-01T00:00:00Z");
        assert_eq!(idempotency_cutoff(Timestamp::MIN), Timestamp::MIN);
    }
}
