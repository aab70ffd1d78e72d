//! Reading a request body with a size limit and a deadline, handing each chunk to the
//! signature verifier as it arrives.
//!
//! The limit is checked against `Content-Length` before the first byte is read, and against the
//! bytes received so far for bodies without one (chunked, HTTP/2), so that no more than the
//! limit is ever held. The deadline covers the whole body, not each read: a client that trickles
//! one byte at a time is cut off as surely as one that stops.

use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use bytes::BytesMut;
use futures::StreamExt;
use tokio::time::Instant;

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is longer than {0} bytes")]
    TooLong(usize),
    #[error("the request body did not arrive within {0:?}")]
    TimedOut(Duration),
    #[error("the request body was cut off")]
    Broken,
}

/// Whether the body announces (by `Content-Length`) more than `limit` bytes: known before
/// reading, so the request can be refused without taking the body in.
pub fn announced_too_long(body: &Body, limit: usize) -> bool {
    usize::try_from(body.size_hint().lower()).map_or(true, |n| n > limit)
}

/// Reads `body` to its end within `timeout` from now, at most `limit` bytes, passing each chunk
/// to `each_chunk` before keeping it.
pub async fn read(
    body: Body,
    limit: usize,
    timeout: Duration,
    mut each_chunk: impl FnMut(&[u8]),
) -> Result<Bytes, BodyError> {
    let deadline = Instant::now() + timeout;
    if announced_too_long(&body, limit) {
        return Err(BodyError::TooLong(limit));
    }
    // The announced length (already within the limit) sizes the buffer once; a body without one
    // grows it as it comes.
    let announced = usize::try_from(body.size_hint().lower()).unwrap_or(0);
    let mut out = BytesMut::with_capacity(announced);
    let mut stream = body.into_data_stream();
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| BodyError::TimedOut(timeout))?;
        let Some(chunk) = next else {
            return Ok(out.freeze());
        };
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLong(limit));
        }
        each_chunk(&chunk);
        out.extend_from_slice(&chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(parts: Vec<&'static [u8]>) -> Body {
        let stream = futures::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
        );
        Body::from_stream(stream)
    }

    fn soon() -> Duration {
        Duration::from_secs(30)
    }

    #[tokio::test]
    async fn reads_and_feeds_every_chunk() {
        let mut seen = Vec::new();
        let body = read(chunked(vec![b"ab", b"", b"cd"]), 4, soon(), |c| {
            seen.extend_from_slice(c)
        })
        .await
        .unwrap();
        assert_eq!(&body[..], b"abcd");
        assert_eq!(seen, b"abcd");
    }

    #[tokio::test]
    async fn limits_announced_and_streamed_lengths() {
        assert!(announced_too_long(&Body::from(vec![0u8; 5]), 4));
        assert!(!announced_too_long(&Body::from(vec![0u8; 4]), 4));
        assert!(!announced_too_long(&chunked(vec![b"abcde"]), 4));
        let r = read(Body::from(vec![0u8; 5]), 4, soon(), |_| {}).await;
        assert_eq!(r, Err(BodyError::TooLong(4)));
        let mut fed = 0;
        let r = read(chunked(vec![b"abc", b"de", b"f"]), 4, soon(), |c| {
            fed += c.len()
        })
        .await;
        assert_eq!(r, Err(BodyError::TooLong(4)));
        assert_eq!(fed, 3, "nothing past the limit reaches the verifier");
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let stalled = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("a")) })
            .chain(futures::stream::pending());
        let timeout = Duration::from_millis(50);
        let r = read(Body::from_stream(stalled), 10, timeout, |_| {}).await;
        assert_eq!(r, Err(BodyError::TimedOut(timeout)));
    }

    #[tokio::test]
    async fn a_broken_body_is_an_error() {
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from("a")),
            Err(std::io::Error::other("reset")),
        ]);
        let r = read(Body::from_stream(broken), 10, soon(), |_| {}).await;
        assert_eq!(r, Err(BodyError::Broken));
    }
}
