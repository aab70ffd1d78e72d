//! The listener: accepts TCP connections, speaks TLS on them (unless `plain_http`) and serves
//! the router over HTTP/1.1 only, each connection held to the limits of [`connections`].
//!
//! HTTP/2 is not spoken: ALPN offers `http/1.1` alone (see `tls`), and a client sending the
//! HTTP/2 preface anyway gets the connection closed by hyper's HTTP/1.1 parser.
//!
//! On shutdown the listening socket is closed, every connection is told to finish its request
//! in flight and close (an idle one closes at once), and whatever is still open after the
//! grace period is dropped.

mod connections;
mod fd_limit;
mod track;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use connections::{Connection, Connections, Limits, Reason};
use track::{Tracked, Watched};

/// How long the accept loop pauses after an error that is not one connection's (out of file
/// descriptors, say), rather than spinning on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a connection shed at the cap may take to send what it has already written.
const SHED_FLUSH: Duration = Duration::from_secs(1);

/// Starts serving `router` on `listener` until `shutdown` fires; requests in flight then get
/// `grace` to finish. The task ends when the last connection has closed.
///
/// Raises the open-file limit first, and logs the connection limits once.
pub(crate) fn spawn(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    config: &Config,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::from_std(listener)?;
    let open_files = fd_limit::raise_open_files();
    let limits = Limits {
        cap: fd_limit::connection_cap(config.max_connections.get(), open_files),
        header_timeout: config.header_timeout(),
        idle_timeout: config.idle_timeout(),
    };
    tracing::info!(
        open_files = %open_files.map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
        max_connections = limits.cap,
        header_timeout_secs = limits.header_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        "connection limits"
    );
    if limits.cap < config.max_connections.get() as usize {
        tracing::warn!(
            "max_connections lowered to {} (half the open-file limit); raise the hard limit \
             (ulimit -Hn, LimitNOFILE= in a systemd unit) to allow more",
            limits.cap
        );
    }
    let tls = tls.map(TlsAcceptor::from);
    let connections = Connections::new(limits);
    // The accept loop is a task of its own so that `start` returns while it runs.
    Ok(tokio::spawn(accept_loop(
        listener,
        tls,
        router,
        connections,
        shutdown,
        grace,
    )))
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    // One task per connection, so that a slow client holds up nobody else; kept in a JoinSet
    // so that shutdown can wait for the last of them, and finished ones are reaped as the
    // loop goes.
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match connections.admit() {
                    Some(connection) => {
                        tasks.spawn(serve_connection(
                            stream,
                            peer,
                            tls.clone(),
                            connection,
                            router.clone(),
                            shutdown.clone(),
                            grace,
                        ));
                    }
                    // Every connection is busy: this one is closed at once (dropped).
                    None => drop(stream),
                },
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    // Closing the listening socket now refuses new connections while the open ones finish.
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// An accept error that concerns the one connection (it was reset before being accepted), not
/// the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    connection: Arc<Connection>,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) {
    // Small answers go out at once rather than waiting for more to send.
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        return serve_http(stream, peer, connection, router, shutdown, grace).await;
    };
    // The handshake counts against the first request's header time.
    let handshake = tokio::select! {
        r = tls.accept(stream) => r,
        _ = connection.must_close() => return,
        () = shutdown.cancelled() => return,
    };
    match handshake {
        Ok(stream) => serve_http(stream, peer, connection, router, shutdown, grace).await,
        Err(e) => tracing::debug!("TLS handshake failed: {e}"),
    }
}

async fn serve_http<T>(
    io: T,
    peer: SocketAddr,
    connection: Arc<Connection>,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = Tracked::new(router, connection.clone(), peer);
    let conn = hyper::server::conn::http1::Builder::new()
        // Header and idle deadlines are kept by `connections` (hyper's header timer also runs
        // between keep-alive requests, which would make it an idle timeout too); `None` also
        // silences hyper's warning about a default timeout without a timer.
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(Watched::new(io, connection.clone())), service);
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!("connection: {e}");
            }
            return;
        }
        reason = connection.must_close() => {
            tracing::debug!(?reason, "connection closed by the server");
            if reason == Reason::Cap {
                // Shed at the cap, possibly an instant after its last answer ended: the end of
                // that answer may still be in hyper's buffer, so it gets a moment to go out.
                // A deadline, by contrast, falls long after any answer.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHED_FLUSH, conn.as_mut()).await;
            }
            return;
        }
        () = shutdown.cancelled() => {}
    }
    // Shutting down: the request in flight (if any) is answered, then the connection closes.
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = connection.must_close() => {}
        () = tokio::time::sleep(grace) => {}
    }
}
