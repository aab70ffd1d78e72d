//! Verifying the callbacks a server POSTs to `callBackURL` (SPEC section 6).
//!
//! A callback is signed with auth-v2 using the developer's own AK/SK, so a receiver that holds
//! those credentials can tell a genuine callback from a forged one. [`CallbackVerifier`] checks,
//! in this order: the `Authorization` header's shape, that it names the expected AK, that
//! `host` is signed, the timestamp against a clock window, the signature over the request as
//! received, that the signature was not seen before (an in-memory replay cache), and finally
//! that the body is a callback envelope with well-formed names. Only a request that passed
//! every check is answered with its [`CallbackBody`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ccfs_protocol::auth::{check_clock, AuthError, AuthHeader, RequestParts};
use ccfs_protocol::messages::CallbackBody;
use ccfs_protocol::{ResponseId, ZipFileName};
use jiff::{SignedDuration, Timestamp};

/// Default allowed distance between a callback's timestamp and the local clock.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Why a callback was refused. The `Display` text is safe to log and to answer with: it never
/// holds a secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature check failed: missing or malformed header, `host` not signed, timestamp
    /// out of the window, signature mismatch, or a replay.
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    /// The request was signed with another access key than the app's.
    #[error("authentication failed: signed with another access key")]
    OtherKey,
    /// Signed correctly, but the body is not a callback envelope.
    #[error("not a callback body: {0}")]
    Body(String),
}

/// Checks callbacks for one app (AK/SK). Share one verifier (for example in an `Arc`) among
/// all requests of a receiver, so that its replay cache sees them all.
#[derive(Debug)]
pub struct CallbackVerifier {
    ak: String,
    secrets: Vec<String>,
    window: SignedDuration,
    /// Accepted signatures and when they leave the window.
    seen: Mutex<HashMap<String, Timestamp>>,
}

impl CallbackVerifier {
    /// A verifier for the app `ak` with secret `sk`, a 15-minute clock window and a replay
    /// cache.
    ///
    /// ```
    /// let verifier = ccfs_client::CallbackVerifier::new("0123456789abcdef0123456789abcdef", "sk")
    ///     .window(std::time::Duration::from_secs(300));
    /// # let _ = verifier;
    /// ```
    pub fn new(ak: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            ak: ak.into(),
            secrets: vec![sk.into()],
            window: SignedDuration::try_from(DEFAULT_WINDOW)
                .unwrap_or(SignedDuration::from_mins(15)),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The allowed distance between a callback's timestamp and the local clock, either way.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = SignedDuration::try_from(window).unwrap_or(SignedDuration::MAX);
        self
    }

    /// Also accepts signatures made with `sk` (the previous secret while a rotation's grace
    /// period lasts: callbacks already queued may be signed with either).
    pub fn also_secret(mut self, sk: impl Into<String>) -> Self {
        self.secrets.push(sk.into());
        self
    }

    /// Verifies a request as received: its method, path (without the query), raw query,
    /// headers (`header` returns a header's value by lower-case name) and body bytes. Answers
    /// the callback's body when everything holds.
    ///
    /// ```
    /// use ccfs_client::{CallbackVerifier, VerifyError};
    /// use ccfs_protocol::auth::{format_timestamp, sign, Precision, RequestParts};
    ///
    /// let (ak, sk) = ("0123456789abcdef0123456789abcdef", "the secret key");
    /// let body = br#"{"request":{"version":"2.0"},"msgBody":{"responseId":"0123456789abcdef0123456789abcdef","agentOprInfoFileName":"20240501_0123456789abcdef0123456789abcdef.zip"}}"#;
    /// let parts = RequestParts { method: "POST", path: "/cb", query: None, body };
    /// // What the server does:
    /// let auth = sign(ak, sk, &format_timestamp(jiff::Timestamp::now(), Precision::Millis), &parts,
    ///                 &[("host", "receiver.example.com")]);
    /// let headers = |name: &str| match name {
    ///     "authorization" => Some(auth.clone()),
    ///     "host" => Some("receiver.example.com".to_owned()),
    ///     _ => None,
    /// };
    /// // What the receiver does:
    /// let verifier = CallbackVerifier::new(ak, sk);
    /// let callback = verifier.verify(&parts, headers).unwrap();
    /// assert_eq!(callback.agent_opr_info_file_name, "20240501_0123456789abcdef0123456789abcdef.zip");
    /// // The same request again is a replay.
    /// assert!(matches!(verifier.verify(&parts, headers), Err(VerifyError::Auth(_))));
    /// ```
    pub fn verify(
        &self,
        request: &RequestParts<'_>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Result<CallbackBody, VerifyError> {
        self.verify_at(Timestamp::now(), request, header)
    }

    /// [`CallbackVerifier::verify`] for a request whose headers are an HTTP header map (as
    /// axum, hyper and reqwest have them).
    ///
    /// ```no_run
    /// # fn demo(verifier: &ccfs_client::CallbackVerifier, headers: &reqwest::header::HeaderMap, body: &[u8]) {
    /// let parts = ccfs_protocol::auth::RequestParts { method: "POST", path: "/cb", query: None, body };
    /// match verifier.verify_headers(&parts, headers) {
    ///     Ok(cb) => println!("file ready: {}", cb.agent_opr_info_file_name),
    ///     Err(e) => eprintln!("refused: {e}"),
    /// }
    /// # }
    /// ```
    pub fn verify_headers(
        &self,
        request: &RequestParts<'_>,
        headers: &reqwest::header::HeaderMap,
    ) -> Result<CallbackBody, VerifyError> {
        self.verify(request, |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
    }

    /// [`CallbackVerifier::verify`] against the clock value `now`.
    pub fn verify_at(
        &self,
        now: Timestamp,
        request: &RequestParts<'_>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Result<CallbackBody, VerifyError> {
        let value = header("authorization").ok_or(AuthError::Missing)?;
        let auth = AuthHeader::parse(&value)?;
        if auth.ak != self.ak {
            return Err(VerifyError::OtherKey);
        }
        if !auth.signed_header_names().any(|n| n == "host") {
            return Err(AuthError::HostNotSigned.into());
        }
        check_clock(auth.time(), now, self.window)?;
        let mut outcome = Err(AuthError::SignatureMismatch);
        for sk in &self.secrets {
            outcome = auth.verify(sk, request, &header);
            if outcome != Err(AuthError::SignatureMismatch) {
                break;
            }
        }
        outcome?;
        self.remember(&auth.signature, auth.time() + self.window, now)?;
        parse_body(request.body)
    }

    /// Records an accepted signature; refuses one already there. Forgets those out of the
    /// window, so the cache holds at most a window's worth of callbacks.
    fn remember(&self, signature: &str, until: Timestamp, now: Timestamp) -> Result<(), AuthError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, expires| *expires > now);
        if seen.contains_key(signature) {
            return Err(AuthError::Replay);
        }
        seen.insert(signature.to_owned(), until);
        Ok(())
    }
}

/// Reads the callback envelope and checks the names it carries.
fn parse_body(body: &[u8]) -> Result<CallbackBody, VerifyError> {
    let msg = ccfs_protocol::envelope::open_request(body).map_err(|e| VerifyError::Body(e.desc))?;
    let cb: CallbackBody = serde_json::from_value(serde_json::Value::Object(msg))
        .map_err(|e| VerifyError::Body(e.to_string()))?;
    let name = ZipFileName::parse(&cb.agent_opr_info_file_name).ok_or_else(|| {
        VerifyError::Body(format!(
            "agentOprInfoFileName '{}' is not a CC-FS file name",
            cb.agent_opr_info_file_name
        ))
    })?;
    if ResponseId::parse(&cb.response_id).is_none() {
        return Err(VerifyError::Body(format!(
            "responseId '{}' is not a CC-FS response id",
            cb.response_id
        )));
    }
    if name.response_id().as_str() != cb.response_id {
        return Err(VerifyError::Body(
            "the file name does not carry the responseId".into(),
        ));
    }
    Ok(cb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccfs_protocol::auth::{format_timestamp, sign, Precision};

    const AK: &str = "0123456789abcdef0123456789abcdef";
    const SK: &str = "secret";
    const BODY: &[u8] = br#"{"request":{"version":"2.0"},"msgBody":{"responseId":"0123456789abcdef0123456789abcdef","agentOprInfoFileName":"20240501_0123456789abcdef0123456789abcdef.zip","accountId":"acme"}}"#;

    fn parts(body: &[u8]) -> RequestParts<'_> {
        RequestParts {
            method: "POST",
            path: "/cb",
            query: None,
            body,
        }
    }

    fn signed(ak: &str, sk: &str, at: Timestamp, headers: &[(&str, &str)]) -> String {
        sign(
            ak,
            sk,
            &format_timestamp(at, Precision::Millis),
            &parts(BODY),
            headers,
        )
    }

    fn lookup(auth: String) -> impl Fn(&str) -> Option<String> {
        move |n: &str| match n {
            "authorization" => Some(auth.clone()),
            "host" => Some("r.example.com:8443".into()),
            "content-length" => Some(BODY.len().to_string()),
            "content-type" => Some("application/json;charset=UTF-8".into()),
            _ => None,
        }
    }

    const SERVER_HEADERS: &[(&str, &str)] = &[
        ("host", "r.example.com:8443"),
        ("content-type", "application/json;charset=UTF-8"),
        ("content-length", "179"),
    ];

    #[test]
    fn genuine_then_replay() {
        assert_eq!(BODY.len(), 179);
        let v = CallbackVerifier::new(AK, SK);
        let auth = signed(AK, SK, Timestamp::now(), SERVER_HEADERS);
        let cb = v.verify(&parts(BODY), lookup(auth.clone())).unwrap();
        assert_eq!(cb.account_id.as_deref(), Some("acme"));
        assert_eq!(
            v.verify(&parts(BODY), lookup(auth)),
            Err(VerifyError::Auth(AuthError::Replay))
        );
    }

    #[test]
    fn refusals() {
        let v = CallbackVerifier::new(AK, SK);
        let now = Timestamp::now();
        let forged = signed(AK, "guess", now, SERVER_HEADERS);
        assert_eq!(
            v.verify(&parts(BODY), lookup(forged)),
            Err(VerifyError::Auth(AuthError::SignatureMismatch))
        );
        let tampered = BODY
            .to_vec()
            .into_iter()
            .map(|b| if b == b'a' { b'b' } else { b })
            .collect::<Vec<_>>();
        let auth = signed(AK, SK, now, SERVER_HEADERS);
        assert_eq!(
            v.verify(&parts(&tampered), lookup(auth)),
            Err(VerifyError::Auth(AuthError::SignatureMismatch))
        );
        let other = signed("someoneelse", SK, now, SERVER_HEADERS);
        assert_eq!(
            v.verify(&parts(BODY), lookup(other)),
            Err(VerifyError::OtherKey)
        );
        let no_host = signed(AK, SK, now, &[("content-length", "179")]);
        assert_eq!(
            v.verify(&parts(BODY), lookup(no_host)),
            Err(VerifyError::Auth(AuthError::HostNotSigned))
        );
        let old = signed(AK, SK, now - SignedDuration::from_mins(20), SERVER_HEADERS);
        assert_eq!(
            v.verify(&parts(BODY), lookup(old)),
            Err(VerifyError::Auth(AuthError::TimestampOutOfRange))
        );
        assert_eq!(
            v.verify(&parts(BODY), |_| None),
            Err(VerifyError::Auth(AuthError::Missing))
        );
    }

    #[test]
    fn previous_secret_and_bad_bodies() {
        let v = CallbackVerifier::new(AK, "new").also_secret(SK);
        let auth = signed(AK, SK, Timestamp::now(), SERVER_HEADERS);
        assert!(v.verify(&parts(BODY), lookup(auth)).is_ok());
        let bad = br#"{"request":{"version":"2.0"},"msgBody":{"responseId":"x","agentOprInfoFileName":"../../etc/passwd"}}"#;
        let auth = sign(
            AK,
            SK,
            &format_timestamp(Timestamp::now(), Precision::Millis),
            &parts(bad),
            &[("host", "h")],
        );
        let h = move |n: &str| match n {
            "authorization" => Some(auth.clone()),
            "host" => Some("h".to_owned()),
            _ => None,
        };
        assert!(matches!(
            v.verify(&parts(bad), h),
            Err(VerifyError::Body(_))
        ));
    }
}
