//! What tells a connection's [`Connection`] record that it is busy or idle: the socket reads
//! (the first byte of a request starts its header clock), and the service around the router
//! (a request is in flight from its complete header until its response body is done).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connections::{Connection, RequestGuard};

/// A connection's byte stream (after TLS), noting reads on its [`Connection`].
pub(super) struct Watched<T> {
    inner: T,
    connection: Arc<Connection>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, connection: Arc<Connection>) -> Self {
        Self { inner, connection }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.bytes_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The request came on a connection shed an instant before: hyper closes the connection
/// without handling it, as if the close had come first.
#[derive(Debug, thiserror::Error)]
#[error("the connection was closed to make room for another")]
pub(super) struct Shed;

/// The router as a hyper service that marks each request in flight on its connection.
#[derive(Clone)]
pub(super) struct Tracked {
    router: Router,
    connection: Arc<Connection>,
}

impl Tracked {
    pub fn new(router: Router, connection: Arc<Connection>) -> Self {
        Self { router, connection }
    }
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<Body>;
    type Error = Shed;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Shed>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let Some(guard) = self.connection.begin() else {
            return Box::pin(std::future::ready(Err(Shed)));
        };
        let mut router = self.router.clone();
        Box::pin(async move {
            // The guard lives in this future until the response exists, then in its body.
            let response = match tower_service::Service::call(&mut router, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok(response.map(|inner| {
                Body::new(Guarded {
                    inner,
                    guard: Some(guard),
                })
            }))
        })
    }
}

/// A response body that keeps its request in flight until its last frame is out (or it is
/// dropped: the client went away).
struct Guarded {
    inner: Body,
    guard: Option<RequestGuard>,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.guard = None;
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
