//! The auth-v2 AK/SK signature (SPEC section 3): signing, parsing and verifying.
//!
//! Everything here is a pure function of the request parts and the secret, so the server's
//! verifier, the client's signer and the callback verifier share one implementation. Clock and
//! replay checks need state and live with the caller; [`check_clock`] is the pure half of the
//! former.

use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The scheme word that opens every `Authorization` value.
pub const SCHEME: &str = "auth-v2";

/// Bytes that `NORM` keeps as they are: `A-Z a-z 0-9 - . _ ~`.
const NORM_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a request failed authentication. The `Display` text is the reason class sent to the
/// client: it never contains a secret or the expected signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization header")]
    Missing,
    #[error("malformed Authorization header")]
    Malformed,
    #[error("duplicate Authorization header")]
    DuplicateAuthorization,
    #[error("duplicate Host header")]
    DuplicateHost,
    #[error("the host header must be signed")]
    HostNotSigned,
    #[error("a signed header is missing from the request")]
    SignedHeaderMissing,
    #[error("unknown access key")]
    UnknownKey,
    #[error("disabled access key")]
    DisabledKey,
    #[error("timestamp out of range")]
    TimestampOutOfRange,
    #[error("signature mismatch")]
    SignatureMismatch,
    #[error("replayed signature")]
    Replay,
}

impl AuthError {
    /// Every reason, in declaration order: what a counter of refusals starts at 0 with.
    pub const ALL: [AuthError; 11] = [
        Self::Missing,
        Self::Malformed,
        Self::DuplicateAuthorization,
        Self::DuplicateHost,
        Self::HostNotSigned,
        Self::SignedHeaderMissing,
        Self::UnknownKey,
        Self::DisabledKey,
        Self::TimestampOutOfRange,
        Self::SignatureMismatch,
        Self::Replay,
    ];

    /// The reason as a `snake_case` class, for machines: the `reason` of a log line and of a
    /// metric label (the `Display` text is for people).
    pub fn class(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::DuplicateAuthorization => "duplicate_authorization",
            Self::DuplicateHost => "duplicate_host",
            Self::HostNotSigned => "host_not_signed",
            Self::SignedHeaderMissing => "signed_header_missing",
            Self::UnknownKey => "unknown_key",
            Self::DisabledKey => "disabled_key",
            Self::TimestampOutOfRange => "timestamp_out_of_range",
            Self::SignatureMismatch => "bad_signature",
            Self::Replay => "replay",
        }
    }
}

/// `NORM(s)`: percent-encodes every byte outside `A-Z a-z 0-9 - . _ ~` as upper-case `%XX`.
pub fn norm(bytes: &[u8]) -> String {
    percent_encode(bytes, NORM_SET).to_string()
}

/// Whether `NORM` keeps a byte as it is (see [`NORM_SET`]), by byte.
const NORM_KEEPS: [bool; 256] = {
    let mut keeps = [false; 256];
    let mut b = 0;
    while b < 256 {
        keeps[b] =
            matches!(b as u8, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~');
        b += 1;
    }
    keeps
};

/// Appends `NORM(bytes)` to `out`, as [`norm`] writes it: one table look-up per byte, for
/// bodies of megabytes (the general encoder hands out each `%XX` as a piece of its own).
fn norm_into(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if NORM_KEEPS[usize::from(b)] {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Parses an auth-v2 timestamp: `yyyy-MM-ddTHH:mm:ssZ` or `yyyy-MM-ddTHH:mm:ss.SSSZ`.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    read_timestamp(s).ok()
}

/// Reads an auth-v2 timestamp. A value that is not the shape, or not a date and time (month 13,
/// second 60), is `Malformed`; a well-shaped one past what a timestamp can hold (late in year
/// 9999) is `TimestampOutOfRange`, as a far future time would be.
fn read_timestamp(s: &str) -> Result<Timestamp, AuthError> {
    let b = s.as_bytes();
    let shape_ok = match b.len() {
        20 => true,
        24 => b[19] == b'.' && b[20..23].iter().all(u8::is_ascii_digit),
        _ => false,
    };
    let digits = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19];
    if !shape_ok
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
        || !digits
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit))
        // jiff reads a leap second as second 59: two spellings of one signed instant.
        || &b[17..19] == b"60"
    {
        return Err(AuthError::Malformed);
    }
    let civil: jiff::civil::DateTime =
        s[..s.len() - 1].parse().map_err(|_| AuthError::Malformed)?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(civil)
        .map_err(|_| AuthError::TimestampOutOfRange)
}

/// How finely an auth-v2 timestamp is written: the SPEC accepts both shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `yyyy-MM-ddTHH:mm:ssZ`, the only shape public Java signers can write.
    Seconds,
    /// `yyyy-MM-ddTHH:mm:ss.SSSZ`, so that requests within one second sign differently.
    Millis,
}

/// Formats `ts` as an auth-v2 timestamp at `precision`.
pub fn format_timestamp(ts: Timestamp, precision: Precision) -> String {
    match precision {
        Precision::Millis => ts.strftime("%Y-%m-%dT%H:%M:%S.%3fZ").to_string(),
        Precision::Seconds => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

/// The `Host` header a client sends to `url`: the host, and the port when it is not the
/// scheme's default. `None` for a URL without a host.
pub fn host_header(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// Refuses a timestamp further than `window` from `now`, either way.
pub fn check_clock(ts: Timestamp, now: Timestamp, window: SignedDuration) -> Result<(), AuthError> {
    if now.duration_since(ts).abs() > window {
        Err(AuthError::TimestampOutOfRange)
    } else {
        Ok(())
    }
}

/// The parts of an HTTP request that the signature covers, besides the headers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// Upper-case method, e.g. `POST`.
    pub method: &'a str,
    /// The path as sent, without the query.
    pub path: &'a str,
    /// The raw (percent-encoded) query string as sent, without `?`; `None` or empty when absent.
    pub query: Option<&'a str>,
    /// The exact body bytes.
    pub body: &'a [u8],
}

impl<'a> RequestParts<'a> {
    /// The parts before the body.
    pub fn head(&self) -> RequestHead<'a> {
        RequestHead {
            method: self.method,
            path: self.path,
            query: self.query,
        }
    }
}

/// The parts of an HTTP request that the signature covers before the body and the headers:
/// what a server knows of a request before it reads the body.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// Upper-case method, e.g. `POST`.
    pub method: &'a str,
    /// The path as sent, without the query.
    pub path: &'a str,
    /// The raw (percent-encoded) query string as sent, without `?`; `None` or empty when absent.
    pub query: Option<&'a str>,
}

/// A parsed `Authorization: auth-v2/{AK}/{timestamp}/{signedHeaders}/{signature}` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    pub ak: String,
    /// The timestamp exactly as sent (it is signed verbatim).
    pub timestamp: String,
    /// The signed header list exactly as sent.
    pub signed_headers: String,
    pub signature: String,
}

impl AuthHeader {
    /// Parses and shape-checks a header value; a well-shaped timestamp that no instant has is
    /// `TimestampOutOfRange`.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let mut parts = value.trim().split('/');
        let (Some(SCHEME), Some(ak), Some(ts), Some(signed), Some(sig), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(AuthError::Malformed);
        };
        let names_ok = !signed.is_empty()
            && signed.split(';').all(|n| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
            });
        let sig_ok = sig.len() == 64 && sig.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ak.is_empty() || !names_ok || !sig_ok {
            return Err(AuthError::Malformed);
        }
        // Last, so that a header that is wrong in shape anywhere is `Malformed`.
        read_timestamp(ts)?;
        Ok(Self {
            ak: ak.to_owned(),
            timestamp: ts.to_owned(),
            signed_headers: signed.to_owned(),
            signature: sig.to_owned(),
        })
    }

    /// The signed header names.
    pub fn signed_header_names(&self) -> impl Iterator<Item = &str> {
        self.signed_headers.split(';')
    }

    /// The timestamp, already known to parse.
    pub fn time(&self) -> Timestamp {
        parse_timestamp(&self.timestamp).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Checks the signature against `sk`, in the SPEC's canonical form only. `header_value`
    /// returns the value of a header of the request by lower-case name. Clock and replay checks
    /// are the caller's.
    pub fn verify(
        &self,
        sk: &str,
        req: &RequestParts<'_>,
        header_value: impl Fn(&str) -> Option<String>,
    ) -> Result<(), AuthError> {
        self.verify_in(&[QueryLine::OmittedWhenEmpty], sk, req, header_value)
    }

    /// Checks the signature against `sk` in each of `forms` in turn; the first that matches
    /// wins. Only forms that differ for this request cost an HMAC: with a query present every
    /// form is the same, so one is computed.
    pub fn verify_in(
        &self,
        forms: &[QueryLine],
        sk: &str,
        req: &RequestParts<'_>,
        header_value: impl Fn(&str) -> Option<String>,
    ) -> Result<(), AuthError> {
        let mut verifier = Verifier::new(self, &[sk], forms, &req.head(), header_value)?;
        verifier.update(req.body);
        verifier.finish(req.body)
    }
}

/// Verifies a signature while the body arrives: feed it with [`Verifier::update`] chunk by
/// chunk as read, then [`Verifier::finish`] with the whole body.
///
/// The first candidate (the current secret, the SPEC's canonical form), the one nearly every
/// request is signed with, is an HMAC state fed `NORM(chunk)` as the body arrives, which is the
/// canonical request's tail because `NORM` works byte by byte. The others (a previous secret in
/// its grace period, a port's form) are computed over the whole body only when the first does
/// not match: an import body is megabytes, and each candidate is a pass of SHA-256 over it.
/// That a mismatch takes longer tells a client only that its signature failed, which the answer
/// says anyway.
pub struct Verifier {
    first: CanonicalMacs,
    /// `(signing key, canonical head)` of the other candidates, in order.
    others: Vec<(String, String)>,
    signature: String,
}

impl Verifier {
    /// Starts verifying `header` for a request with `head` against every secret in `secrets`
    /// (e.g. the current one and one in its grace period), each in every form of `forms`; any
    /// match is a pass. `header_value` returns a request header's value by lower-case name.
    /// Errors that need no body (`HostNotSigned`, `SignedHeaderMissing`) come here.
    pub fn new(
        header: &AuthHeader,
        secrets: &[&str],
        forms: &[QueryLine],
        head: &RequestHead<'_>,
        header_value: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AuthError> {
        if !header.signed_header_names().any(|n| n == "host") {
            return Err(AuthError::HostNotSigned);
        }
        let mut headers = Vec::new();
        for name in header.signed_header_names() {
            let value = header_value(name).ok_or(AuthError::SignedHeaderMissing)?;
            headers.push((name.to_owned(), value));
        }
        // Forms that are the same for this request (all of them, when a query is present)
        // cost one HMAC, not one each.
        let mut heads: Vec<String> = Vec::with_capacity(forms.len());
        for form in forms {
            let h = canonical_head(*form, &header.signed_headers, head, &headers);
            if !heads.contains(&h) {
                heads.push(h);
            }
        }
        let prefix = prefix(&header.ak, &header.timestamp, &header.signed_headers);
        let mut starts = Vec::with_capacity(secrets.len() * heads.len());
        for sk in secrets {
            let key = signing_key(sk, &prefix);
            for h in &heads {
                starts.push((key.clone(), h.clone()));
            }
        }
        let others = starts.split_off(starts.len().min(1));
        Ok(Self {
            first: CanonicalMacs::new(starts.iter().map(|(k, h)| (k.as_str(), h.as_str()))),
            others,
            signature: header.signature.clone(),
        })
    }

    /// Feeds the next bytes of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.first.update(chunk);
    }

    /// Whether any candidate signed the request: `SignatureMismatch` when none did (also when
    /// there was no secret to try). `body` is the whole body, as fed to [`Verifier::update`].
    pub fn finish(self, body: &[u8]) -> Result<(), AuthError> {
        let wanted = self.signature.as_bytes();
        // Each signature is compared in constant time, and all the others are when the first
        // does not match, so timing tells nothing of which secret or form came close.
        let any = |sigs: Vec<String>| {
            sigs.iter().fold(subtle::Choice::from(0), |any, sig| {
                any | sig.as_bytes().ct_eq(wanted)
            })
        };
        if bool::from(any(self.first.finish())) {
            return Ok(());
        }
        let mut others =
            CanonicalMacs::new(self.others.iter().map(|(k, h)| (k.as_str(), h.as_str())));
        others.update(body);
        if bool::from(any(others.finish())) {
            Ok(())
        } else {
            Err(AuthError::SignatureMismatch)
        }
    }
}

/// HMAC states over canonical requests that share a body: each starts with its own key and
/// canonical head, and all take `NORM` of the same body bytes. The one implementation of both
/// the whole-buffer signer and the streaming verifier.
struct CanonicalMacs {
    macs: Vec<Hmac<Sha256>>,
    /// `NORM` output gathered so that the HMACs take it in blocks rather than in 3-byte pieces.
    pending: Vec<u8>,
}

impl CanonicalMacs {
    /// Block size of [`Self::pending`].
    const BLOCK: usize = 8 * 1024;

    /// One state per `(signing key, canonical head)`.
    fn new<'a>(starts: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let macs = starts
            .map(|(key, head)| {
                // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
                let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
                    .expect("HMAC takes any key length");
                mac.update(head.as_bytes());
                mac
            })
            .collect();
        Self {
            macs,
            pending: Vec::with_capacity(Self::BLOCK),
        }
    }

    fn update(&mut self, body: &[u8]) {
        // `NORM` writes at most 3 bytes per byte: a third of a block always fits in one.
        for piece in body.chunks(Self::BLOCK / 3) {
            if self.pending.len() + 3 * piece.len() > Self::BLOCK {
                self.flush();
            }
            norm_into(piece, &mut self.pending);
        }
    }

    fn flush(&mut self) {
        for mac in &mut self.macs {
            mac.update(&self.pending);
        }
        self.pending.clear();
    }

    /// The hex signature of each state, in the order they were given.
    fn finish(mut self) -> Vec<String> {
        self.flush();
        self.macs
            .into_iter()
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .collect()
    }
}

/// How the canonical request is written for a request without query parameters.
///
/// The SPEC leaves the query line out entirely; two public client ports always write it, as an
/// empty line. Both come from the same secret over the same content, so a server may accept
/// either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueryLine {
    /// The SPEC's form: no query line when there is no query.
    #[default]
    OmittedWhenEmpty,
    /// An empty line where the query would be, when there is no query.
    AlwaysWritten,
}

/// `prefix = "auth-v2/" + AK + "/" + timestamp + "/" + signedHeaders`.
pub fn prefix(ak: &str, timestamp: &str, signed_headers: &str) -> String {
    format!("{SCHEME}/{ak}/{timestamp}/{signed_headers}")
}

/// `signingKey = HEX(HMAC(SK, prefix))`.
pub fn signing_key(sk: &str, prefix: &str) -> String {
    hmac_hex(sk.as_bytes(), prefix.as_bytes())
}

fn norm_query(raw: &str) -> Option<String> {
    let mut pairs: Vec<String> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k: Vec<u8> = percent_decode_str(k).collect();
            let v: Vec<u8> = percent_decode_str(v).collect();
            format!("{}={}", norm(&k), norm(&v))
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    pairs.sort();
    Some(pairs.join("&"))
}

/// The canonical request of step 3. `headers` holds `(name, value)` for each signed header.
pub fn canonical_request(
    signed_headers: &str,
    req: &RequestParts<'_>,
    headers: &[(String, String)],
) -> String {
    canonical_request_in(QueryLine::OmittedWhenEmpty, signed_headers, req, headers)
}

/// The canonical request of step 3 with the query line written as `form` says.
pub fn canonical_request_in(
    form: QueryLine,
    signed_headers: &str,
    req: &RequestParts<'_>,
    headers: &[(String, String)],
) -> String {
    let mut out = canonical_head(form, signed_headers, &req.head(), headers);
    // `NORM` of an empty body is empty: the canonical request then ends after the header lines.
    out.push_str(&norm(req.body));
    out
}

/// The canonical request up to the body: method, path, query line, signed header names and
/// header lines, each ending in `\n`.
fn canonical_head(
    form: QueryLine,
    signed_headers: &str,
    req: &RequestHead<'_>,
    headers: &[(String, String)],
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(&req.method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(req.path);
    out.push('\n');
    match req.query.and_then(norm_query) {
        Some(q) => {
            out.push_str(&q);
            out.push('\n');
        }
        None if form == QueryLine::AlwaysWritten => out.push('\n'),
        None => {}
    }
    out.push_str(signed_headers);
    out.push('\n');
    let mut lines: Vec<String> = headers
        .iter()
        .map(|(n, v)| {
            format!(
                "{}:{}",
                norm(n.to_ascii_lowercase().as_bytes()),
                norm(v.trim().as_bytes())
            )
        })
        .collect();
    lines.sort();
    out.push_str(&lines.join("\n"));
    out.push('\n');
    out
}

/// The 64-hex-character signature of a request.
pub fn signature(
    ak: &str,
    sk: &str,
    timestamp: &str,
    signed_headers: &str,
    req: &RequestParts<'_>,
    headers: &[(String, String)],
) -> String {
    signature_in(
        QueryLine::OmittedWhenEmpty,
        ak,
        sk,
        timestamp,
        signed_headers,
        req,
        headers,
    )
}

/// The signature of a request whose canonical form writes the query line as `form` says.
pub fn signature_in(
    form: QueryLine,
    ak: &str,
    sk: &str,
    timestamp: &str,
    signed_headers: &str,
    req: &RequestParts<'_>,
    headers: &[(String, String)],
) -> String {
    let key = signing_key(sk, &prefix(ak, timestamp, signed_headers));
    let head = canonical_head(form, signed_headers, &req.head(), headers);
    let mut macs = CanonicalMacs::new(std::iter::once((key.as_str(), head.as_str())));
    macs.update(req.body);
    macs.finish().pop().unwrap_or_default()
}

/// Signs a request: returns the whole `Authorization` value. `headers` are the headers to sign,
/// with their values as they will be sent; names may be in any case and order.
pub fn sign(
    ak: &str,
    sk: &str,
    timestamp: &str,
    req: &RequestParts<'_>,
    headers: &[(&str, &str)],
) -> String {
    sign_in(QueryLine::OmittedWhenEmpty, ak, sk, timestamp, req, headers)
}

/// Which headers a JSON `POST` signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedHeaders {
    /// `content-length;content-type;host`, as the official examples and the server's
    /// callbacks sign.
    ContentAndHost,
    /// `host` only, as public Java clients sign.
    HostOnly,
}

/// A JSON `POST` as it goes on the wire: what [`sign_json_post`] covers.
#[derive(Debug, Clone, Copy)]
pub struct JsonPost<'a> {
    /// The path as sent, without the query.
    pub path: &'a str,
    /// The raw query string as sent, without `?`.
    pub query: Option<&'a str>,
    /// The `Host` header value sent (see [`host_header`]).
    pub host: &'a str,
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// The `Authorization` value of a JSON `POST` (`Content-Type` [`crate::JSON_CONTENT_TYPE`],
/// `Content-Length` the body's length), signing `headers`. The one signer of both the client's
/// requests and the server's callbacks.
pub fn sign_json_post(
    ak: &str,
    sk: &str,
    timestamp: &str,
    post: &JsonPost<'_>,
    headers: SignedHeaders,
) -> String {
    let parts = RequestParts {
        method: "POST",
        path: post.path,
        query: post.query,
        body: post.body,
    };
    let length = post.body.len().to_string();
    match headers {
        SignedHeaders::ContentAndHost => sign(
            ak,
            sk,
            timestamp,
            &parts,
            &[
                ("content-length", &length),
                ("content-type", crate::JSON_CONTENT_TYPE),
                ("host", post.host),
            ],
        ),
        SignedHeaders::HostOnly => sign(ak, sk, timestamp, &parts, &[("host", post.host)]),
    }
}

/// As [`sign`], writing the query line as `form` says (for clients that must imitate a port).
pub fn sign_in(
    form: QueryLine,
    ak: &str,
    sk: &str,
    timestamp: &str,
    req: &RequestParts<'_>,
    headers: &[(&str, &str)],
) -> String {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), (*v).to_owned()))
        .collect();
    headers.sort();
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let sig = signature_in(form, ak, sk, timestamp, &signed, req, &headers);
    format!("{}/{sig}", prefix(ak, timestamp, &signed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AK: &str = "globalaktest";
    const SK: &str = "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p";
    const HOST: &str = "10.22.26.181:28080";
    const BODY: &str = r#"{"request":{"version":"2.0"},"msgBody":{"beginTime":"2024-05-01 00:00:00","endTime":"2024-05-02 00:00:00","callBackURL":"https://example.com/ccfs/cb"}}"#;
    const PATH: &str = "/CCFS/resource/ccfs/queryAgentOprInfoData";

    fn post() -> RequestParts<'static> {
        RequestParts {
            method: "POST",
            path: PATH,
            query: None,
            body: BODY.as_bytes(),
        }
    }

    /// The fast `NORM` of bodies writes every byte as the general one does.
    #[test]
    fn norm_into_agrees_with_norm() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = b"x".to_vec();
        norm_into(&all, &mut out);
        assert_eq!(out, format!("x{}", norm(&all)).into_bytes());
        for (b, keeps) in NORM_KEEPS.iter().enumerate() {
            assert_eq!(*keeps, norm(&[b as u8]).len() == 1, "{b}");
        }
    }

    /// Each reason has a class of its own, in `snake_case`, so a label or log field of one
    /// never needs quoting or case folding.
    #[test]
    fn reason_classes_are_distinct_and_snake_case() {
        let classes: std::collections::HashSet<&str> =
            AuthError::ALL.iter().map(|e| e.class()).collect();
        assert_eq!(classes.len(), AuthError::ALL.len());
        for class in classes {
            assert!(
                class.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{class}"
            );
        }
        assert_eq!(AuthError::UnknownKey.class(), "unknown_key");
        assert_eq!(AuthError::SignatureMismatch.class(), "bad_signature");
    }

    #[test]
    fn body_is_151_bytes() {
        assert_eq!(BODY.len(), 151);
    }

    #[test]
    fn vector_v1() {
        let ts = "2021-08-31T09:38:50.872Z";
        assert_eq!(
            signing_key(SK, &prefix(AK, ts, "content-length;content-type;host")),
            "2ed89f017b07e2c29adc75db70cefdd3d3a009991a5d078c2a7bf4b62b35f802"
        );
        let auth = sign(
            AK,
            SK,
            ts,
            &post(),
            &[
                ("Host", HOST),
                ("Content-Type", "application/json;charset=UTF-8"),
                ("Content-Length", "151"),
            ],
        );
        assert_eq!(auth, "auth-v2/globalaktest/2021-08-31T09:38:50.872Z/content-length;content-type;host/0dced0b657b515e45538b8f6815a609265142fde2924e90f94c281b919924771");
    }

    #[test]
    fn vector_v2() {
        let ts = "2021-08-31T09:38:50Z";
        assert_eq!(
            signing_key(SK, &prefix(AK, ts, "host")),
            "be0f19ee433bdf443933810fe362a3a7572aa5f47827cc178daf6e7673851e23"
        );
        let canonical = canonical_request("host", &post(), &[("host".into(), HOST.into())]);
        assert_eq!(
            canonical,
            format!(
                "POST\n{PATH}\nhost\nhost:10.22.26.181%3A28080\n{}",
                norm(BODY.as_bytes())
            )
        );
        let auth = sign(AK, SK, ts, &post(), &[("host", HOST)]);
        assert_eq!(auth, "auth-v2/globalaktest/2021-08-31T09:38:50Z/host/4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724");
    }

    /// The JSON `POST` signer both sides use gives the official vectors.
    #[test]
    fn json_posts_sign_the_official_vectors() {
        let json = JsonPost {
            path: PATH,
            query: None,
            host: HOST,
            body: BODY.as_bytes(),
        };
        let full = sign_json_post(
            AK,
            SK,
            "2021-08-31T09:38:50.872Z",
            &json,
            SignedHeaders::ContentAndHost,
        );
        assert_eq!(full, "auth-v2/globalaktest/2021-08-31T09:38:50.872Z/content-length;content-type;host/0dced0b657b515e45538b8f6815a609265142fde2924e90f94c281b919924771");
        let host_only = sign_json_post(
            AK,
            SK,
            "2021-08-31T09:38:50Z",
            &json,
            SignedHeaders::HostOnly,
        );
        assert_eq!(host_only, "auth-v2/globalaktest/2021-08-31T09:38:50Z/host/4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724");
    }

    #[test]
    fn host_headers_name_the_port_only_when_not_the_default() {
        let h = |u: &str| host_header(&url::Url::parse(u).unwrap());
        assert_eq!(h("https://example.com/x").as_deref(), Some("example.com"));
        assert_eq!(h("http://example.com:80/x").as_deref(), Some("example.com"));
        assert_eq!(
            h("https://lb.example.com:8443/p/").as_deref(),
            Some("lb.example.com:8443")
        );
        assert_eq!(h("http://[::1]:9/").as_deref(), Some("[::1]:9"));
        assert_eq!(h("unix:/run/x.sock"), None);
    }

    #[test]
    fn vector_v3_raw_and_encoded_query_agree() {
        let expected = "auth-v2/globalaktest/2021-08-31T09:38:50Z/host/a385bda497e647f1f5da89dbfea86a1063dc61cbbf94792eb59a9624916477ef";
        for q in ["b=x y&a=1", "b=x%20y&a=1"] {
            let req = RequestParts {
                method: "GET",
                path: "/CCFS/resource/ccfs/x",
                query: Some(q),
                body: b"",
            };
            assert_eq!(
                sign(AK, SK, "2021-08-31T09:38:50Z", &req, &[("host", HOST)]),
                expected
            );
        }
    }

    #[test]
    fn parse_and_verify_v1() {
        let value = "auth-v2/globalaktest/2021-08-31T09:38:50.872Z/content-length;content-type;host/0dced0b657b515e45538b8f6815a609265142fde2924e90f94c281b919924771";
        let h = AuthHeader::parse(value).unwrap();
        let lookup = |n: &str| match n {
            "host" => Some(HOST.to_owned()),
            "content-type" => Some("application/json;charset=UTF-8".to_owned()),
            "content-length" => Some("151".to_owned()),
            _ => None,
        };
        assert_eq!(h.verify(SK, &post(), lookup), Ok(()));
        assert_eq!(
            h.verify("wrong", &post(), lookup),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(
            h.verify(SK, &post(), |_| None),
            Err(AuthError::SignedHeaderMissing)
        );
    }

    #[test]
    fn empty_query_line_variant() {
        let ts = "2021-08-31T09:38:50Z";
        let port = sign_in(
            QueryLine::AlwaysWritten,
            AK,
            SK,
            ts,
            &post(),
            &[("host", HOST)],
        );
        let canonical = canonical_request_in(
            QueryLine::AlwaysWritten,
            "host",
            &post(),
            &[("host".into(), HOST.into())],
        );
        assert!(canonical.starts_with(&format!("POST\n{PATH}\n\nhost\n")));
        let h = AuthHeader::parse(&port).unwrap();
        let lookup = |_: &str| Some(HOST.to_owned());
        let both = [QueryLine::OmittedWhenEmpty, QueryLine::AlwaysWritten];
        assert_eq!(
            h.verify(SK, &post(), lookup),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(h.verify_in(&both, SK, &post(), lookup), Ok(()));
        assert_eq!(
            h.verify_in(&both, "wrong", &post(), lookup),
            Err(AuthError::SignatureMismatch)
        );
        // With a query the two forms are one: the port's signature is the SPEC's.
        let req = RequestParts {
            query: Some("a=1"),
            ..post()
        };
        assert_eq!(
            sign_in(
                QueryLine::AlwaysWritten,
                AK,
                SK,
                ts,
                &req,
                &[("host", HOST)]
            ),
            sign(AK, SK, ts, &req, &[("host", HOST)])
        );
    }

    #[test]
    fn host_must_be_signed() {
        let auth = sign(
            AK,
            SK,
            "2021-08-31T09:38:50Z",
            &post(),
            &[("content-length", "151")],
        );
        let h = AuthHeader::parse(&auth).unwrap();
        assert_eq!(
            h.verify(SK, &post(), |_| Some("151".into())),
            Err(AuthError::HostNotSigned)
        );
    }

    #[test]
    fn malformed_headers() {
        for bad in [
            "",
            "auth-v2",
            "auth-v3/a/2021-08-31T09:38:50Z/host/4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724",
            "auth-v2//2021-08-31T09:38:50Z/host/4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724",
            "auth-v2/a/2021-08-31 09:38:50/host/4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724",
            "auth-v2/a/2021-08-31T09:38:50Z/host/4F8D9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724",
            "auth-v2/a/2021-08-31T09:38:50Z/host/abc",
            "auth-v2/a/2021-08-31T09:38:50Z/Host/4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724",
            "auth-v2/a/2021-08-31T09:38:50Z/host/4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724/x",
        ] {
            assert_eq!(AuthHeader::parse(bad), Err(AuthError::Malformed), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        assert!(parse_timestamp("2021-08-31T09:38:50Z").is_some());
        assert!(parse_timestamp("2021-08-31T09:38:50.872Z").is_some());
        assert!(parse_timestamp("2021-08-31T09:38:50.87Z").is_none());
        assert!(parse_timestamp("2021-08-31T09:38:50+00:00").is_none());
        assert!(parse_timestamp("2021-13-31T09:38:50Z").is_none());
        assert!(parse_timestamp("2021-02-29T09:38:50Z").is_none());
        assert!(parse_timestamp("2021-08-31T09:38:59Z").is_some());
        assert!(parse_timestamp("2016-12-31T23:59:60Z").is_none());
        assert!(parse_timestamp("2016-12-31T23:59:60.000Z").is_none());
        assert!(parse_timestamp("2016-12-31T23:59:61Z").is_none());
        assert!(parse_timestamp("9999-12-31T23:59:59Z").is_none());
        let sig = "4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724";
        let header = |ts: &str| AuthHeader::parse(&format!("auth-v2/a/{ts}/host/{sig}"));
        assert_eq!(
            header("2016-12-31T23:59:60Z"),
            Err(AuthError::Malformed),
            "a leap second is not a signed instant"
        );
        for far in ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999Z"] {
            assert_eq!(header(far), Err(AuthError::TimestampOutOfRange), "{far}");
        }
        assert_eq!(
            AuthHeader::parse(&format!(
                "auth-v2/a/9999-12-31T23:59:59Z/host/{}",
                &sig[1..]
            )),
            Err(AuthError::Malformed),
            "a header wrong in shape elsewhere is malformed, whatever its timestamp"
        );
        assert!(header("9999-12-30T21:59:59Z").is_ok());
        let ts = parse_timestamp("2021-08-31T09:38:50.872Z").unwrap();
        assert_eq!(
            format_timestamp(ts, Precision::Millis),
            "2021-08-31T09:38:50.872Z"
        );
        assert_eq!(
            format_timestamp(ts, Precision::Seconds),
            "2021-08-31T09:38:50Z"
        );
        let w = SignedDuration::from_mins(15);
        assert!(check_clock(ts, ts + SignedDuration::from_mins(14), w).is_ok());
        assert!(check_clock(ts, ts - SignedDuration::from_mins(16), w).is_err());
        assert!(check_clock(ts, ts + SignedDuration::from_mins(16), w).is_err());
    }
}
