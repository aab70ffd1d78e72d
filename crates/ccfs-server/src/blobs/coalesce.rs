//! Gathering the small chunks of a remote store's response body into larger ones.
//!
//! An S3 body arrives in whatever pieces the HTTP client read off its socket, often a few KiB.
//! Each chunk passed on costs a frame in hyper, a write call into TLS and a step of the
//! download's body stream; gathering the chunks that are already there into one costs a copy,
//! which is cheaper. Chunks are only gathered while more are ready at once: nothing waits for
//! the next chunk to arrive, so a slow store adds no delay.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;

/// `inner`'s bytes, in chunks of at least `target` bytes whenever that much was ready at once.
pub(super) fn coalesce<S, E>(inner: S, target: usize) -> Coalesce<S, E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    Coalesce {
        inner: Some(inner),
        target,
        buf: BytesMut::new(),
        error: None,
    }
}

/// The stream of [`coalesce`].
pub(super) struct Coalesce<S, E> {
    /// `None` once it has ended or failed.
    inner: Option<S>,
    target: usize,
    /// Bytes gathered and not yet yielded.
    buf: BytesMut,
    /// An error met while bytes gathered before it were still to be yielded.
    error: Option<E>,
}

impl<S, E> Stream for Coalesce<S, E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        while let Some(inner) = this.inner.as_mut() {
            match Pin::new(inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    // A chunk large enough on its own goes on as it is, without a copy.
                    if this.buf.is_empty() && chunk.len() >= this.target {
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    if this.buf.is_empty() {
                        // Room for a whole gathered chunk at once, not grown by doubling.
                        this.buf.reserve(this.target.max(chunk.len()));
                    }
                    this.buf.extend_from_slice(&chunk);
                    if this.buf.len() >= this.target {
                        return Poll::Ready(Some(Ok(this.buf.split().freeze())));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.inner = None;
                    if this.buf.is_empty() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    // The bytes before the error first.
                    this.error = Some(e);
                }
                Poll::Ready(None) => this.inner = None,
                Poll::Pending if this.buf.is_empty() => return Poll::Pending,
                // What is there goes now rather than after the next chunk arrives.
                Poll::Pending => break,
            }
        }
        if this.buf.is_empty() {
            return Poll::Ready(this.error.take().map(Err));
        }
        Poll::Ready(Some(Ok(this.buf.split().freeze())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{stream, StreamExt};

    /// Chunks of the given sizes, each `(size, true)` one arriving only after a wait.
    fn source(chunks: &[(usize, bool)]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        let chunks: Vec<_> = chunks
            .iter()
            .enumerate()
            .map(|(i, &(n, wait))| (Bytes::from(vec![i as u8; n]), wait))
            .collect();
        Box::pin(stream::iter(chunks).then(|(b, wait)| async move {
            if wait {
                tokio::task::yield_now().await;
            }
            Ok(b)
        }))
    }

    async fn sizes(
        s: impl Stream<Item = Result<Bytes, String>> + Unpin,
    ) -> Vec<Result<usize, String>> {
        s.map(|r| r.map(|b| b.len())).collect().await
    }

    #[tokio::test]
    async fn ready_chunks_are_gathered_up_to_the_target() {
        let s = coalesce(
            source(&[(3, false), (3, false), (3, false), (3, false), (1, false)]),
            5,
        );
        assert_eq!(sizes(s).await, [Ok(6), Ok(6), Ok(1)]);
    }

    #[tokio::test]
    async fn nothing_waits_for_a_chunk_not_yet_there() {
        let s = coalesce(source(&[(2, false), (2, true), (2, false), (9, true)]), 100);
        assert_eq!(sizes(s).await, [Ok(2), Ok(4), Ok(9)]);
    }

    #[tokio::test]
    async fn large_chunks_pass_as_they_are_and_bytes_keep_their_order() {
        let chunks = [(1, false), (10, false), (10, false), (2, false)];
        let s = coalesce(source(&chunks), 4);
        let all: Vec<Bytes> = s.map(Result::unwrap).collect().await;
        assert_eq!(all.iter().map(Bytes::len).collect::<Vec<_>>(), [11, 10, 2]);
        let mut want = vec![0u8];
        want.extend([1u8; 10]);
        want.extend([2u8; 10]);
        want.extend([3u8; 2]);
        assert_eq!(all.concat(), want);
    }

    #[tokio::test]
    async fn an_error_comes_after_the_bytes_before_it_and_ends_the_stream() {
        let inner = stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err("broken".to_owned()),
            Ok(Bytes::from_static(b"cd")),
        ]);
        let s = coalesce(inner, 100);
        assert_eq!(sizes(s).await, [Ok(2), Err("broken".to_owned())]);
        let s = coalesce(stream::iter(vec![Err::<Bytes, _>("x".to_owned())]), 100);
        assert_eq!(sizes(s).await, [Err("x".to_owned())]);
    }
}
