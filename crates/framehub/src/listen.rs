//! The hub's own accept loop: TCP → HTTP/1.1 (hyper) → the router.
//!
//! `axum::serve` would do, but it sets no timer, so a client that opens a
//! connection and sends its request headers a byte a minute ("slow loris")
//! holds a socket and a task forever, outside every viewer limit (viewers
//! are counted only once their WebSocket is upgraded). Here each connection
//! gets hyper's `header_read_timeout` ([`ServerConfig::header_read_timeout`],
//! which also closes idle keep-alive connections), and connections still in
//! HTTP (not yet upgraded) are capped by [`ServerConfig::max_http_connections`],
//! and per remote address by [`ServerConfig::max_per_address`] (with its
//! loopback exemption; not behind a trusted proxy, whose connections all
//! come from one address), so one client cannot take every place.
//! An upgraded WebSocket leaves this loop's counts: from then on the viewer
//! limits apply.
//!
//! Every accepted socket is a [`LingeringClose`]: when the hub is done with
//! a connection it half-closes it and reads what the peer still sends
//! (bounded) before the last `close`, so a close frame the hub sent is not
//! lost to a TCP reset.
//!
//! [`ServerConfig::header_read_timeout`]: crate::ServerConfig::header_read_timeout
//! [`ServerConfig::max_http_connections`]: crate::ServerConfig::max_http_connections
//! [`ServerConfig::max_per_address`]: crate::ServerConfig::max_per_address

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::events::lock;
use crate::server::Inner;

/// Why a connection was closed before HTTP (counted in `/_/metrics` `refused`).
/// The hub's side of a request's TCP connection (a request extension set
/// by [`serve`]): the address a WebRTC peer is told to reach.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalAddr(pub std::net::SocketAddr);

pub(crate) const TOO_MANY_HTTP: &str = "too many HTTP connections";
/// See [`TOO_MANY_HTTP`].
pub(crate) const TOO_MANY_HTTP_FROM_ADDRESS: &str = "too many HTTP connections from this address";

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
    let open = Arc::new(Mutex::new(HttpCounts::default()));
    // Whose connections count per address (as for viewers, `Inner::admit`).
    let per_address = |ip: IpAddr| {
        let cfg = &inner.cfg;
        let exempt = cfg.trust_proxy || (cfg.exempt_loopback && ip.is_loopback());
        cfg.max_per_address.filter(|_| !exempt)
    };
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
        let slot = match HttpSlot::take(
            &open,
            peer.ip(),
            inner.cfg.max_http_connections,
            per_address(peer.ip()),
        ) {
            Ok(slot) => slot,
            Err(why) => {
                inner.counters.count_refusal(why);
                drop(tcp);
                continue;
            }
        };
        // Frames go out as soon as they are written (no Nagle delay waiting
        // for the previous segment's ack, which would add an RTT to a frame).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let local = tcp.local_addr().ok();
        let app = app.clone();
        let builder = builder.clone();
        let counters = Arc::clone(&inner.counters);
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                if let Some(local) = local {
                    req.extensions_mut().insert(LocalAddr(local));
                }
                app.clone().oneshot(req)
            });
            let conn = builder
                .serve_connection(TokioIo::new(LingeringClose::new(tcp)), service)
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

/// Connections still in HTTP: all of them, and by remote address.
#[derive(Default)]
struct HttpCounts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One place among the connections still in HTTP; freed when dropped.
struct HttpSlot {
    counts: Arc<Mutex<HttpCounts>>,
    ip: IpAddr,
}

impl HttpSlot {
    /// Takes a place for a connection from `ip` within `max` in all and
    /// `per_address` from one address, or says which limit refuses it.
    fn take(
        counts: &Arc<Mutex<HttpCounts>>,
        ip: IpAddr,
        max: usize,
        per_address: Option<usize>,
    ) -> Result<Self, &'static str> {
        let mut c = lock(counts);
        if c.total >= max {
            return Err(TOO_MANY_HTTP);
        }
        let from = c.by_address.get(&ip).copied().unwrap_or(0);
        if per_address.is_some_and(|limit| from >= limit) {
            return Err(TOO_MANY_HTTP_FROM_ADDRESS);
        }
        c.total += 1;
        *c.by_address.entry(ip).or_insert(0) += 1;
        Ok(HttpSlot {
            counts: Arc::clone(counts),
            ip,
        })
    }
}

impl Drop for HttpSlot {
    fn drop(&mut self) {
        let mut c = lock(&self.counts);
        c.total -= 1;
        if let Some(n) = c.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&self.ip);
            }
        }
    }
}

/// How long a closed connection is read and drained at most (see [`LingeringClose`]).
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(2);
/// How many bytes a closed connection is drained of at most (see
/// [`LingeringClose`]): more than the largest message a client may be in
/// the middle of sending when it is refused (the tests send 16 MiB).
pub(crate) const LINGER_BYTES: usize = 32 << 20;

/// An accepted TCP connection that is closed with a **lingering close**
/// when dropped (RFC 9112 §9.6, "Tear-down"; Apache's `lingering_close`).
///
/// Closing a socket whose receive buffer still holds unread data makes the
/// kernel answer with a TCP reset, and a reset makes the peer throw away what
/// it received but had not read yet — the WebSocket close frame with its
/// code, when the hub closes a client that is in the middle of sending a
/// message too big to read (1009), or one it refused for any other reason.
/// So on drop the socket is handed to a task that half-closes it (our FIN
/// goes out after the close frame), then reads and discards what the peer
/// still sends until it closes its side, at most [`LINGER_BYTES`] bytes
/// and [`LINGER_TIME`], and only then closes it.
pub(crate) struct LingeringClose {
    /// `None` only once dropped.
    tcp: Option<TcpStream>,
}

impl LingeringClose {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        LingeringClose { tcp: Some(tcp) }
    }

    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        // The stream is taken only in `drop`, after which no I/O is possible.
        Pin::new(self.tcp.as_mut().expect("LingeringClose used after drop"))
    }
}

impl Drop for LingeringClose {
    fn drop(&mut self) {
        let Some(tcp) = self.tcp.take() else { return };
        // Outside a runtime (it is shutting down) the socket just closes.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(linger(tcp));
        }
    }
}

/// Half-closes `tcp`, then drains it until the peer's FIN, an error,
/// [`LINGER_BYTES`] or [`LINGER_TIME`], whichever comes first.
async fn linger(mut tcp: TcpStream) {
    let _ = tokio::time::timeout(LINGER_TIME, async {
        if tcp.shutdown().await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 << 10];
        let mut drained = 0usize;
        while drained < LINGER_BYTES {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

impl AsyncRead for LingeringClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringClose {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.tcp().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.tcp().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp().poll_shutdown(cx)
    }
}
