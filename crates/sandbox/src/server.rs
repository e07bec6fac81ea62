//! The accept loop: one task per connection, graceful shutdown, and the dropped connection that
//! "applied but lost" needs.
//!
//! axum's own `serve` cannot drop one connection from inside a handler, so the sandbox drives
//! hyper itself: each connection gets a [`ConnectionKill`] in its requests' extensions, and the
//! connection task closes the socket the moment it is notified.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tower::ServiceExt;

use super::db::Db;
use super::error::SandboxError;
use super::routes::ConnectionKill;

/// How long shutdown waits for requests in flight before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` changes (or its sender is dropped), lets requests in flight finish,
/// then checkpoints the database.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    db: Db,
) -> Result<(), SandboxError> {
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, router.clone(), shutdown.clone(), alive.clone()));
                }
                // Out of file descriptors or a connection reset before it was accepted: wait a
                // moment and go on accepting.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    drop(alive);
    // Every connection task holds a sender; `recv` returns `None` once they have all ended.
    let _drained = tokio::time::timeout(DRAIN_TIMEOUT, all_closed.recv()).await;
    tokio::task::spawn_blocking(move || db.close())
        .await
        .map_err(|error| SandboxError::Stopped(error.to_string()))?
}

async fn connection(
    stream: TcpStream,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Notify::new());
    let kill_for_requests = Arc::clone(&kill);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectionKill(Arc::clone(&kill_for_requests)));
        router.clone().oneshot(request)
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            // Dropping the connection closes the socket: the client gets no response.
            () = kill.notified() => break,
            _ = shutdown.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
