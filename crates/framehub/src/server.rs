//! The hub: a set of named streams behind one router, optionally bound to a port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::attach::{AttachError, ViewerChannel, ViewerRequest};
use crate::config::{Origins, ServerConfig, StreamConfig};
use crate::error::{check_stream_name, Error};
use crate::events::lock;
use crate::lifecycle::LifecycleEvent;
use crate::stream::{SourceKind, Stream, StreamShared};

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
    per_address: Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    pub counters: Arc<HubCounters>,
    /// Claims of streams fed by remote publishers (`publish.rs`).
    pub(crate) claims: Mutex<crate::publish::Claims>,
    /// Lifecycle events (`GET /_/events`, [`Server::lifecycle`]).
    pub(crate) lifecycle: tokio::sync::broadcast::Sender<LifecycleEvent>,
    /// The hub's Prometheus registry, made at the first scrape (`prometheus.rs`).
    pub(crate) prometheus: std::sync::OnceLock<prometheus_client::registry::Registry>,
    /// The hub's membership in a NATS system, once joined (`nats/`).
    #[cfg(feature = "nats")]
    pub(crate) nats: tokio::sync::OnceCell<Arc<crate::nats::NatsHub>>,
    /// The WebRTC endpoint (feature `webrtc`), bound when the hub listens.
    #[cfg(feature = "webrtc")]
    pub(crate) webrtc: std::sync::OnceLock<framehub_webrtc::Endpoint>,
}

/// Hub-wide counts of refused and closed viewers (`GET /_/metrics`).
#[derive(Debug, Default)]
pub struct HubCounters {
    closes: Mutex<BTreeMap<u16, u64>>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    write_failures: AtomicU64,
    header_timeouts: AtomicU64,
}

impl HubCounters {
    /// Counts a viewer closed by the hub with `code`.
    pub fn count_close(&self, code: u16) {
        *lock(&self.closes).entry(code).or_insert(0) += 1;
    }

    /// Counts a viewer refused at admission for `why`.
    pub fn count_refusal(&self, why: &'static str) {
        *lock(&self.refused).entry(why).or_insert(0) += 1;
    }

    /// Counts a viewer dropped because its socket did not take a frame (write
    /// buffer full, write timeout, connection reset).
    pub fn count_write_failure(&self) {
        self.write_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an HTTP connection closed because its request headers were
    /// not all read within `header_read_timeout`.
    pub fn count_header_timeout(&self) {
        self.header_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// HTTP connections closed on the header-read timeout.
    pub fn header_timeouts(&self) -> u64 {
        self.header_timeouts.load(Ordering::Relaxed)
    }

    /// Viewers dropped on a failed write.
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    /// Closes by code, refusals by reason.
    pub fn snapshot(&self) -> (BTreeMap<u16, u64>, BTreeMap<&'static str, u64>) {
        (lock(&self.closes).clone(), lock(&self.refused).clone())
    }
}

/// Why a viewer was not admitted (it is closed with 1008 and this reason).
pub(crate) const TOO_MANY_CONNECTIONS: &str = "too many connections to this hub";
/// See [`TOO_MANY_CONNECTIONS`].
pub(crate) const TOO_MANY_VIEWERS: &str = "too many viewers of this stream";
/// See [`TOO_MANY_CONNECTIONS`].
pub(crate) const TOO_MANY_FROM_ADDRESS: &str = "too many connections from this address";

/// A viewer's places in the hub's limits, released when it is dropped.
pub(crate) struct Admission {
    _live: LiveViewer,
    address: Option<(Arc<Inner>, std::net::IpAddr)>,
    stream: Arc<StreamShared>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some((inner, ip)) = &self.address {
            let mut map = lock(&inner.per_address);
            if let Some(n) = map.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(ip);
                }
            }
        }
        self.stream.viewer_tasks.fetch_sub(1, Ordering::AcqRel);
    }
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

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.live_viewers.load(Ordering::Acquire)
    }

    /// Takes a place for a viewer of `stream` from `remote` within the hub's
    /// limits, or says which limit refuses it (counted).
    pub fn admit(
        self: &Arc<Self>,
        stream: &Arc<StreamShared>,
        remote: Option<SocketAddr>,
    ) -> Result<Admission, &'static str> {
        let refuse = |why| {
            self.counters.count_refusal(why);
            Err(why)
        };
        if self.connections() >= self.cfg.max_connections {
            return refuse(TOO_MANY_CONNECTIONS);
        }
        if stream.viewer_tasks.load(Ordering::Acquire) >= stream.cfg.max_viewers {
            return refuse(TOO_MANY_VIEWERS);
        }
        let mut address = None;
        if let (Some(limit), Some(remote)) = (self.cfg.max_per_address, remote) {
            let ip = remote.ip();
            if !(self.cfg.exempt_loopback && ip.is_loopback()) {
                let mut map = lock(&self.per_address);
                let n = map.entry(ip).or_insert(0);
                if *n >= limit {
                    drop(map);
                    return refuse(TOO_MANY_FROM_ADDRESS);
                }
                *n += 1;
                address = Some((Arc::clone(self), ip));
            }
        }
        stream.viewer_tasks.fetch_add(1, Ordering::AcqRel);
        Ok(Admission {
            _live: self.live_viewer(),
            address,
            stream: Arc::clone(stream),
        })
    }

    /// Adds `stream` under `name`; `Err` when the name is taken.
    pub fn insert_stream(&self, name: &str, stream: Arc<StreamShared>) -> Result<(), Error> {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if streams.contains_key(name) {
            return Err(Error::StreamExists(name.to_string()));
        }
        let (width, height) = stream.size();
        let _ = stream.lifecycle.set(self.lifecycle.clone());
        let remote = stream.source == SourceKind::Remote;
        streams.insert(name.to_string(), stream);
        drop(streams);
        self.announce(LifecycleEvent::StreamCreated {
            stream: name.to_string(),
            width,
            height,
            remote,
        });
        Ok(())
    }

    /// Tells the lifecycle listeners (none listening is not an error).
    pub fn announce(&self, ev: LifecycleEvent) {
        let _ = self.lifecycle.send(ev);
    }

    /// Removes the stream `name` and shuts it down; whether it existed.
    pub fn remove_stream(&self, name: &str) -> bool {
        let removed = self
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        match removed {
            Some(s) => {
                s.shut_down();
                self.announce(LifecycleEvent::StreamDestroyed {
                    stream: name.to_string(),
                });
                true
            }
            None => false,
        }
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

    /// Replaces every hub setting at once (see [`ServerConfig`] for the defaults).
    pub fn config(mut self, cfg: ServerConfig) -> Self {
        self.cfg = cfg;
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
            per_address: Mutex::new(Default::default()),
            counters: Arc::new(HubCounters::default()),
            claims: Mutex::new(Default::default()),
            lifecycle: tokio::sync::broadcast::channel(crate::lifecycle::LIFECYCLE_BUFFER).0,
            prometheus: std::sync::OnceLock::new(),
            #[cfg(feature = "nats")]
            nats: tokio::sync::OnceCell::new(),
            #[cfg(feature = "webrtc")]
            webrtc: std::sync::OnceLock::new(),
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

    /// Attaches a viewer whose WebSocket messages come from elsewhere — a
    /// socket accepted by another server (the Python package's ASGI bridge),
    /// later other transports — to the same session as on the hub's port:
    /// the `Origin` check, admission within the limits (connections, viewers
    /// of the stream, per address), the handshake and authentication,
    /// credit and latest wins, the input policy, timeouts and counters.
    ///
    /// `req.path` is the path under the hub's root (`/` or `/<name>`). The
    /// session runs as a task on the current tokio runtime until the viewer
    /// closes (drop or close the [`ViewerChannel`]'s sender), the session
    /// closes it (its receiver yields [`ViewerMessage::Close`](crate::ViewerMessage::Close), then ends),
    /// or the hub shuts down (1001). A viewer of an unknown stream or over
    /// a limit is attached and closed at once with 4404 / 1008, as on the
    /// port, so the client can read the code. Messages from the viewer
    /// longer than `max_message_size` close it with 1009.
    ///
    /// Errors: [`AttachError::NotAViewerPath`] (the port answers 404),
    /// [`AttachError::Forbidden`] (origin refused; the port answers 403),
    /// [`AttachError::Closed`], [`AttachError::NoRuntime`] outside a tokio runtime.
    pub fn attach_viewer(&self, req: ViewerRequest) -> Result<ViewerChannel, AttachError> {
        if self.is_closed() {
            return Err(AttachError::Closed);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AttachError::NoRuntime)?;
        let not_viewer = || AttachError::NotAViewerPath(req.path.chars().take(200).collect());
        let name = crate::attach::stream_of_path(&req.path).ok_or_else(not_viewer)?;
        let uri = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        let mut request = axum::http::Request::new(());
        *request.uri_mut() = uri.parse().map_err(|_| not_viewer())?;
        for (k, v) in &req.headers {
            // A header that is not valid HTTP is left out, as hyper refuses it on the port.
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                axum::http::HeaderValue::from_str(v),
            ) {
                request.headers_mut().append(k, v);
            }
        }
        if let Some(remote) = req.remote {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(remote));
        }
        let (parts, ()) = request.into_parts();
        if let Err(origin) = crate::http::check_origin(&self.inner, &parts.headers) {
            tracing::info!(%origin, stream = %name, "refused a bridged viewer from a foreign origin");
            return Err(AttachError::Forbidden(origin));
        }
        let conn = crate::http::conn_info(&parts, self.inner.cfg.trust_proxy);
        let viewer = crate::attach::prepare(&self.inner, &name, conn);
        let (socket, channel) = crate::attach::channel_pair(self.inner.cfg.max_message_size);
        runtime.spawn(viewer.serve(socket));
        Ok(channel)
    }

    /// Joins the NATS system of [`ServerConfig::nats`] (nothing to do when
    /// it is None, or already joined): from then on the hub announces the
    /// streams it originates, serves them to other hubs, and serves every
    /// other hub's stream to its own viewers (`docs/protocol.md` §12).
    /// [`Server::listen`] (and so [`ServerBuilder::bind`]) calls it; call
    /// it yourself for a hub served through [`Server::router`].
    ///
    /// Errors: [`Error::Nats`] when the servers cannot be reached, the
    /// credentials cannot be read, the hub id is malformed, or this build
    /// has no `nats` feature; [`Error::Closed`] after `close`.
    pub async fn join_nats(&self) -> Result<(), Error> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::Closed);
        }
        let Some(cfg) = self.inner.cfg.nats.clone() else {
            return Ok(());
        };
        #[cfg(feature = "nats")]
        {
            let inner = Arc::clone(&self.inner);
            self.inner
                .nats
                .get_or_try_init(|| crate::nats::join(&inner, cfg))
                .await?;
            Ok(())
        }
        #[cfg(not(feature = "nats"))]
        {
            let _ = cfg;
            Err(Error::Nats(
                "this framehub was built without the `nats` feature".into(),
            ))
        }
    }

    /// This hub's id in its NATS system (None before [`Server::join_nats`]
    /// or without one).
    pub fn hub_id(&self) -> Option<String> {
        #[cfg(feature = "nats")]
        {
            self.inner.nats.get().map(|h| h.id.clone())
        }
        #[cfg(not(feature = "nats"))]
        {
            None
        }
    }

    /// Starts listening on `addr` and returns the bound address (joining
    /// the NATS system first when [`ServerConfig::nats`] is set).
    ///
    /// Errors: [`Error::Io`] when the address cannot be bound; [`Error::Closed`] after `close`;
    /// [`Error::Nats`] as [`Server::join_nats`].
    pub async fn listen(&self, addr: impl tokio::net::ToSocketAddrs) -> Result<SocketAddr, Error> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::Closed);
        }
        self.join_nats().await?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        #[cfg(feature = "webrtc")]
        crate::webrtc::start(&self.inner, local).await?;
        let shutdown = self.inner.shutdown.subscribe();
        let task = tokio::spawn(crate::listen::serve(
            Arc::clone(&self.inner),
            listener,
            self.router(),
            shutdown,
        ));
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
        if self.inner.stream(name).is_some() {
            return Err(Error::StreamExists(name.to_string()));
        }
        let shared = StreamShared::new(name.to_string(), width, height, cfg);
        self.inner.insert_stream(name, Arc::clone(&shared))?;
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
        self.inner.remove_stream(name)
    }

    /// Closes the hub: every viewer gets close code 1001, the listener stops
    /// and its port is released, every stream stops. Waits up to 2 s for
    /// viewers to be told.
    pub async fn close(&self) {
        self.inner.begin_shutdown();
        // Its UDP port is released once its peers have ended.
        #[cfg(feature = "webrtc")]
        if let Some(e) = self.inner.webrtc.get() {
            e.close();
        }
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

    /// The hub's lifecycle events from now on (streams created and
    /// destroyed, publishers online and offline, viewers joined and left),
    /// as an async stream that ends when the hub closes. A listener that
    /// falls more than 1024 events behind skips the oldest.
    pub fn lifecycle(&self) -> impl futures_util::Stream<Item = LifecycleEvent> + Send + 'static {
        let rx = self.inner.lifecycle.subscribe();
        let shutdown = self.inner.shutdown.subscribe();
        futures_util::stream::unfold((rx, shutdown), |(mut rx, mut shutdown)| async move {
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Ok(ev) => return Some((ev, (rx, shutdown))),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    },
                    r = shutdown.changed() => if r.is_err() { return None },
                }
            }
        })
    }

    /// Hub-wide counts of closed and refused viewers.
    pub fn counters(&self) -> &HubCounters {
        &self.inner.counters
    }

    /// Connections open now, all streams together.
    pub fn connections(&self) -> usize {
        self.inner.connections()
    }

    /// Whether `close` was called (or every handle dropped).
    pub fn is_closed(&self) -> bool {
        *self.inner.shutdown.borrow()
    }
}
