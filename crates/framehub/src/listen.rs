//! The hub's own accept loop: TCP → HTTP/1.1 (hyper) → the router.
//!
//! `axum::serve` would do, but it sets no timer, so a client that opens a
//! connection and sends its request headers a byte a minute ("slow loris")
//! holds a socket and a task forever, outside every viewer limit (viewers
//! are counted only once their WebSocket is upgraded). Here each connection
//! gets hyper's `header_read_timeout` ([`ServerConfig::header_read_timeout`],
//! which also closes idle keep-alive connections), and connections still in
//! HTTP (not yet upgraded) are capped by [`ServerConfig::max_http_connections`].
//! An upgraded WebSocket leaves this loop's count: from then on the viewer
//! limits apply.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::server::Inner;

/// Why a connection was closed before HTTP (counted in `/_/metrics` `refused`).
pub(crate) const TOO_MANY_HTTP: &str = "too many HTTP connections";

/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` and serves `app` on each until
/// `shutdown` turns true; then stops accepting and lets open HTTP exchanges
/// finish (upgraded viewers are closed by the hub's own shutdown).
pub(crate) async fn serve(
    inner: Arc<Inner>,
    listener: TcpListener,
    app: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(inner.cfg.header_read_timeout);
    loop {
        let (tcp, peer) = tokio::select! {
            () = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::Acquire) >= inner.cfg.max_http_connections {
            inner.counters.count_refusal(TOO_MANY_HTTP);
            drop(tcp);
            continue;
        }
        // Frames go out as soon as they are written (no Nagle delay waiting
        // for the previous segment's ack, which would add an RTT to a frame).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let slot = HttpSlot::take(&open);
        let app = app.clone();
        let builder = builder.clone();
        let counters = Arc::clone(&inner.counters);
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req)
            });
            let conn = builder
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                if e.is_timeout() {
                    counters.count_header_timeout();
                }
                tracing::trace!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

/// One place among the connections still in HTTP; freed when dropped.
struct HttpSlot(Arc<AtomicUsize>);

impl HttpSlot {
    fn take(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::AcqRel);
        HttpSlot(Arc::clone(open))
    }
}

impl Drop for HttpSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
