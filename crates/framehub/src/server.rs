//! The hub: a set of named streams behind one router, optionally bound to a port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::{Origins, ServerConfig, StreamConfig};
use crate::error::{check_stream_name, Error};
use crate::events::lock;
use crate::stream::{Stream, StreamShared};

/// State shared by the server handles, the router and the viewer tasks.
pub(crate) struct Inner {
    streams: RwLock<BTreeMap<String, Arc<StreamShared>>>,
    pub shutdown: watch::Sender<bool>,
    pub cfg: ServerConfig,
    next_session: AtomicU64,
    local_addr: Mutex<Option<SocketAddr>>,
    listener: Mutex<Option<JoinHandle<()>>>,
    live_viewers: AtomicUsize,
    viewers_gone: Notify,
}

/// Counts a running viewer task; dropped when the task ends.
pub(crate) struct LiveViewer(Arc<Inner>);

impl Drop for LiveViewer {
    fn drop(&mut self) {
        if self.0.live_viewers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.viewers_gone.notify_waiters();
        }
    }
}

impl Inner {
    pub fn stream(&self, name: &str) -> Option<Arc<StreamShared>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn streams_snapshot(&self) -> Vec<Arc<StreamShared>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The address the hub listens on, if it listens itself.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *lock(&self.local_addr)
    }

    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    pub fn live_viewer(self: &Arc<Self>) -> LiveViewer {
        self.live_viewers.fetch_add(1, Ordering::AcqRel);
        LiveViewer(Arc::clone(self))
    }

    fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
        for s in self.streams_snapshot() {
            s.shut_down();
        }
    }
}

/// Closes the hub when the last [`Server`] handle (or [`Stream`] handle) is dropped.
struct CloseOnDrop(Arc<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.begin_shutdown();
    }
}

/// A framehub hub: named streams on one port, each viewed by any number of
/// browsers at `ws://HOST:PORT/<name>`, plus the REST side channel and the
/// web client, all from one [`axum::Router`].
///
/// Cheap to clone; every clone is the same hub. The hub closes on
/// [`Server::close`] or when the last handle (server or stream) is dropped.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
    _guard: Arc<CloseOnDrop>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

/// Builds a [`Server`] with non-default settings.
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    cfg: ServerConfig,
}

impl ServerBuilder {
    /// Close a viewer whose socket accepts no data for this long (default 10 s).
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.cfg.write_timeout = d;
        self
    }

    /// Largest WebSocket message read from a client (default 1 MiB; text
    /// messages over 64 KiB are refused by the protocol in any case).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.cfg.max_message_size = bytes;
        self
    }

    /// Which web pages may open viewers (default: same origin, and loopback
    /// pages when listening on loopback).
    pub fn origins(mut self, origins: Origins) -> Self {
        self.cfg.origins = origins;
        self
    }

    /// A hub with no listener, for [`Server::router`] inside your own axum app.
    pub fn build(self) -> Server {
        Server::with_config(self.cfg)
    }

    /// A hub listening on `addr` (port 0 picks a free port; see [`Server::local_addr`]).
    ///
    /// Errors: [`Error::Io`] when the address cannot be bound.
    pub async fn bind(self, addr: impl tokio::net::ToSocketAddrs) -> Result<Server, Error> {
        let server = self.build();
        server.listen(addr).await?;
        Ok(server)
    }
}

impl Server {
    /// A builder for non-default settings.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A hub listening on `addr` with default settings.
    ///
    /// Errors: [`Error::Io`] when the address cannot be bound.
    pub async fn bind(addr: impl tokio::net::ToSocketAddrs) -> Result<Server, Error> {
        Self::builder().bind(addr).await
    }

    fn with_config(cfg: ServerConfig) -> Server {
        let inner = Arc::new(Inner {
            streams: RwLock::new(BTreeMap::new()),
            shutdown: watch::channel(false).0,
            cfg,
            next_session: AtomicU64::new(1),
            local_addr: Mutex::new(None),
            listener: Mutex::new(None),
            live_viewers: AtomicUsize::new(0),
            viewers_gone: Notify::new(),
        });
        Server {
            _guard: Arc::new(CloseOnDrop(Arc::clone(&inner))),
            inner,
        }
    }

    /// The hub as an [`axum::Router`]: nest or merge it into your own app.
    /// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`
    /// so authenticators see the peer's address.
    pub fn router(&self) -> axum::Router {
        crate::http::router(Arc::clone(&self.inner))
    }

    /// Starts listening on `addr` and returns the bound address.
    ///
    /// Errors: [`Error::Io`] when the address cannot be bound; [`Error::Closed`] after `close`.
    pub async fn listen(&self, addr: impl tokio::net::ToSocketAddrs) -> Result<SocketAddr, Error> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::Closed);
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let mut shutdown = self.inner.shutdown.subscribe();
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = shutdown.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "listener failed");
            }
        });
        *lock(&self.inner.local_addr) = Some(local);
        *lock(&self.inner.listener) = Some(task);
        tracing::info!(%local, "framehub listening");
        Ok(local)
    }

    /// The address the hub listens on (None before `listen`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr()
    }

    /// Adds a stream of `width` × `height` pixels, viewable at `/<name>`.
    ///
    /// Errors: [`Error::InvalidName`] for a name outside `[A-Za-z0-9._-]{1,64}`
    /// or reserved; [`Error::StreamExists`] when the name is taken;
    /// [`Error::InvalidFrame`] for a side of 0 or over 16384; [`Error::Closed`]
    /// after `close`; [`Error::Io`] when the encode thread cannot start.
    pub fn add_stream(
        &self,
        name: &str,
        width: u32,
        height: u32,
        cfg: StreamConfig,
    ) -> Result<Stream, Error> {
        check_stream_name(name)?;
        let max = framehub_codec::MAX_DIMENSION;
        if width == 0 || height == 0 || width > max || height > max {
            return Err(Error::InvalidFrame(format!(
                "size {width}x{height} is outside 1..={max}"
            )));
        }
        if *self.inner.shutdown.borrow() {
            return Err(Error::Closed);
        }
        let shared = {
            let mut streams = self
                .inner
                .streams
                .write()
                .unwrap_or_else(|e| e.into_inner());
            if streams.contains_key(name) {
                return Err(Error::StreamExists(name.to_string()));
            }
            let shared = StreamShared::new(name.to_string(), width, height, cfg);
            streams.insert(name.to_string(), Arc::clone(&shared));
            shared
        };
        if let Err(e) = shared.start() {
            self.remove_stream(name);
            return Err(e);
        }
        Ok(Stream {
            shared,
            server: self.clone(),
        })
    }

    /// A handle to the stream `name`, if there is one.
    pub fn stream(&self, name: &str) -> Option<Stream> {
        self.inner.stream(name).map(|shared| Stream {
            shared,
            server: self.clone(),
        })
    }

    /// Names of the streams, sorted.
    pub fn stream_names(&self) -> Vec<String> {
        self.inner
            .streams_snapshot()
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// Removes a stream: its viewers are closed with 1001, its handles stop
    /// publishing (`Error::Closed`). Returns whether it existed.
    pub fn remove_stream(&self, name: &str) -> bool {
        let removed = self
            .inner
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        match removed {
            Some(s) => {
                s.shut_down();
                true
            }
            None => false,
        }
    }

    /// Closes the hub: every viewer gets close code 1001, the listener stops
    /// and its port is released, every stream stops. Waits up to 2 s for
    /// viewers to be told.
    pub async fn close(&self) {
        self.inner.begin_shutdown();
        let task = lock(&self.inner.listener).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        let wait = async {
            loop {
                let gone = self.inner.viewers_gone.notified();
                if self.inner.live_viewers.load(Ordering::Acquire) == 0 {
                    return;
                }
                gone.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
    }

    /// Whether `close` was called (or every handle dropped).
    pub fn is_closed(&self) -> bool {
        *self.inner.shutdown.borrow()
    }
}
