//! What tells a connection's [`Connection`] record that it is busy or idle: the socket reads
//! (the first byte of a request starts its header clock), and the service around the router
//! (a request is in flight from its complete header until its response body is done).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connections::Connection;

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

/// The router as a hyper service that marks each request in flight on its connection, and
/// gives each request its peer's address (axum's [`ConnectInfo`], which the access log reads).
#[derive(Clone)]
pub(super) struct Tracked {
    router: Router,
    connection: Arc<Connection>,
    peer: SocketAddr,
}

impl Tracked {
    pub fn new(router: Router, connection: Arc<Connection>, peer: SocketAddr) -> Self {
        Self {
            router,
            connection,
            peer,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<Body>;
    type Error = Shed;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Shed>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let Some(guard) = self.connection.begin() else {
            return Box::pin(std::future::ready(Err(Shed)));
        };
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        Box::pin(async move {
            // The guard lives in this future until the response exists, then in its body.
            let response = match tower_service::Service::call(&mut router, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            // The request stays in flight until its answer's last frame is out (or the client
            // went away).
            Ok(response.map(|body| crate::http::hold_until_end(body, guard)))
        })
    }
}
