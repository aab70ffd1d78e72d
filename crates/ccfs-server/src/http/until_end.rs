//! A response body that keeps a value until the body's last frame has gone out, or until the
//! body is dropped (the client went away, or the connection closed), whichever comes first:
//! what must live exactly as long as an answer is being sent (a request counted in flight, an
//! access log line written when the answer ends) rides along with it this way.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};

/// `body`, holding `held` until it ends (see the module doc).
pub(crate) fn hold_until_end<T: Send + Unpin + 'static>(body: Body, held: T) -> Body {
    Body::new(UntilEnd {
        inner: body,
        held: Some(held),
    })
}

struct UntilEnd<T> {
    inner: Body,
    held: Option<T>,
}

impl<T: Send + Unpin + 'static> http_body::Body for UntilEnd<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.held = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_value_goes_when_the_body_has_been_read_or_dropped() {
        let read = Arc::new(AtomicBool::new(false));
        let body = hold_until_end(Body::from("answer"), Flag(read.clone()));
        assert!(!read.load(Ordering::SeqCst));
        let bytes = axum::body::to_bytes(body, 1024).await.unwrap();
        assert_eq!(&bytes[..], b"answer");
        assert!(read.load(Ordering::SeqCst));

        let dropped = Arc::new(AtomicBool::new(false));
        let body = hold_until_end(Body::from("answer"), Flag(dropped.clone()));
        assert!(!dropped.load(Ordering::SeqCst));
        drop(body);
        assert!(dropped.load(Ordering::SeqCst));
    }
}
