//! The `Authorization` header and the canonical request: any header value parses or is refused
//! without a panic, a request signed with a parsed header's own parts verifies, whatever its
//! query, host and body, and the streaming verifier (the body fed in pieces) agrees with the
//! whole-buffer one.
#![no_main]

use ccfs_protocol::auth::{
    parse_timestamp, sign, AuthError, AuthHeader, QueryLine, RequestHead, RequestParts, Verifier,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The input is split at NUL bytes into: header value, query, host, body.
    let mut parts = data.splitn(4, |b| *b == 0);
    let header = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let host = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();

    let _ = parse_timestamp(&header);
    let Ok(parsed) = AuthHeader::parse(&header) else {
        return;
    };
    // What parses prints back as what it was made of.
    let again = AuthHeader::parse(&format!(
        "auth-v2/{}/{}/{}/{}",
        parsed.ak, parsed.timestamp, parsed.signed_headers, parsed.signature
    ));
    assert_eq!(again.as_ref(), Ok(&parsed));

    let req = RequestParts {
        method: "POST",
        path: "/CCFS/resource/ccfs/queryAgentOprInfoStatus",
        query: Some(query.as_ref()),
        body,
    };
    let value_of = |name: &str| (name == "host").then(|| host.to_string());
    // A random signature almost never matches; it must only be refused cleanly.
    let outcome = parsed.verify_in(
        &[QueryLine::OmittedWhenEmpty, QueryLine::AlwaysWritten],
        "secret",
        &req,
        value_of,
    );
    assert!(matches!(
        outcome,
        Ok(())
            | Err(AuthError::SignatureMismatch
                | AuthError::HostNotSigned
                | AuthError::SignedHeaderMissing)
    ));

    // The same request signed properly over `host` verifies.
    let signed = sign(
        &parsed.ak,
        "secret",
        &parsed.timestamp,
        &req,
        &[("host", host.as_ref())],
    );
    let mine = AuthHeader::parse(&signed).expect("a value sign() wrote parses");
    assert_eq!(mine.verify("secret", &req, value_of), Ok(()));
    assert_eq!(
        mine.verify("other secret", &req, value_of),
        Err(AuthError::SignatureMismatch)
    );

    // Fed in pieces (cut where the body's own bytes say), the streaming verifier agrees.
    let head = RequestHead {
        method: req.method,
        path: req.path,
        query: req.query,
    };
    for (header, expected) in [(&mine, Ok(())), (&parsed, outcome)] {
        let streamed = Verifier::new(
            header,
            &["other secret", "secret"],
            &[QueryLine::OmittedWhenEmpty, QueryLine::AlwaysWritten],
            &head,
            value_of,
        )
        .and_then(|mut v| {
            let cut = body
                .first()
                .map_or(0, |b| usize::from(*b) % (body.len() + 1));
            v.update(&body[..cut]);
            v.update(&body[cut..]);
            v.finish(body)
        });
        assert_eq!(streamed, expected);
    }
});
