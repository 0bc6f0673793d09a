//! Stream and server settings.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use framehub_proto::{AdaptConfig, Hello, ImageFormat, Principal, QualityTier};

/// Everything an authenticator may look at (`docs/protocol.md` §7).
#[derive(Debug, Clone)]
pub struct AuthContext {
    /// The credential, from the first of: `hello.token`, the `token` query
    /// parameter, an `Authorization: Bearer` header, the stream's cookie.
    pub token: Option<String>,
    /// The upgrade request's headers (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// Cookies of the upgrade request.
    pub cookies: BTreeMap<String, String>,
    /// Query parameters of the upgrade request.
    pub query: BTreeMap<String, String>,
    /// The request path, such as `/camera`.
    pub path: String,
    /// The peer's address, when the listener knows it.
    pub remote: Option<SocketAddr>,
    /// The viewer's hello.
    pub hello: Hello,
    /// The stream's name.
    pub stream: String,
}

/// Why an authenticator refused a viewer (logged; the viewer only sees `unauthorized`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError(pub String);

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The future an [`Authenticator`] returns.
pub type AuthFuture = Pin<Box<dyn Future<Output = Result<Option<Principal>, AuthError>> + Send>>;

/// An async callback deciding who may view a stream: `Ok(Some(principal))`
/// admits a known viewer, `Ok(None)` an anonymous one, `Err` refuses (close 4401).
pub type Authenticator = Arc<dyn Fn(AuthContext) -> AuthFuture + Send + Sync>;

/// Wraps an async closure as an [`Authenticator`].
pub fn authenticator<F, Fut>(f: F) -> Authenticator
where
    F: Fn(AuthContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Principal>, AuthError>> + Send + 'static,
{
    Arc::new(move |ctx| Box::pin(f(ctx)))
}

/// Whose input events reach the publisher (`docs/protocol.md` §6).
#[derive(Debug, Clone, Default)]
pub enum InputPolicy {
    /// Every viewer's events.
    #[default]
    All,
    /// Only the longest-connected viewer's; when it leaves, the next one's.
    First,
    /// Nobody's: view only.
    None,
    /// Those viewers whose principal the filter accepts (decided once, when
    /// the viewer is admitted; `None` is an anonymous viewer).
    Principals(InputFilter),
}

/// The function behind an [`InputFilter`].
type PrincipalPredicate = dyn Fn(Option<&Principal>) -> bool + Send + Sync;

/// A decision per principal for [`InputPolicy::Principals`].
#[derive(Clone)]
pub struct InputFilter(Arc<PrincipalPredicate>);

impl InputFilter {
    /// Wraps `f`: `true` lets that principal's events through.
    pub fn new(f: impl Fn(Option<&Principal>) -> bool + Send + Sync + 'static) -> Self {
        InputFilter(Arc::new(f))
    }

    /// Whether `principal`'s events are delivered.
    pub fn allows(&self, principal: Option<&Principal>) -> bool {
        (self.0)(principal)
    }
}

impl fmt::Debug for InputFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InputFilter(..)")
    }
}

impl InputPolicy {
    /// Whether the viewer `id` with `principal` controls, given the
    /// longest-connected viewer `first`.
    pub(crate) fn controls(
        &self,
        id: u64,
        principal: Option<&Principal>,
        first: Option<u64>,
    ) -> bool {
        match self {
            InputPolicy::All => true,
            InputPolicy::None => false,
            InputPolicy::First => first.is_none_or(|f| f == id),
            InputPolicy::Principals(filter) => filter.allows(principal),
        }
    }
}

/// Who decides a stream's size (`docs/protocol.md` §5, `resize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResizePolicy {
    /// The publisher: viewers' sizes arrive as `resize` events, the stream
    /// keeps the size of what is published.
    #[default]
    Publisher,
    /// The controlling viewer: its viewport (device pixels) becomes the
    /// stream's [`crate::Stream::target_size`], once it has held still for
    /// `debounce`, clamped to `max_size` and rounded down to even sides. The
    /// publisher renders that size; a viewer never makes the hub allocate.
    Controller {
        /// Largest target size, in pixels.
        max_size: (u32, u32),
        /// How long a size must hold before it becomes the target.
        debounce: Duration,
    },
}

/// Settings of one stream.
#[derive(Clone)]
pub struct StreamConfig {
    /// JPEG quality 1–100 (default 80).
    pub quality: u8,
    /// The format offered to clients that list several (default JPEG).
    pub preferred_image: ImageFormat,
    /// Cap on encodes per second (None: as fast as frames are published and taken).
    pub fps: Option<f64>,
    /// When nothing new was published for this long, viewers whose last frame
    /// was lossy get the resting frame as a lossless PNG (`"still": true`),
    /// encoded once for all of them. None: never. Default 0.3 s.
    pub still_after: Option<Duration>,
    /// Credit: frames in flight per viewer (default 2).
    pub max_inflight: u32,
    /// Offer H.264 (WebCodecs) to clients that list it (default off; needs the
    /// `h264` feature, on by default). Other clients get images from the same stream.
    pub h264: bool,
    /// H.264 target bit rate, bit/s (default 4 Mbit/s).
    pub bitrate: u32,
    /// H.264 keyframe interval, in time (default 2 s).
    pub keyframe_interval: Duration,
    /// Send `stats` messages this often (None: never).
    pub stats_interval: Option<Duration>,
    /// Adaptive quality per viewer (None: off, the default). With it, a JPEG
    /// viewer whose link congests steps down through the tiers of
    /// [`StreamConfig::quality_tiers`] and back up when it recovers, told
    /// with `set_quality`; each tier is encoded once, shared by every viewer
    /// at that tier, and only while one is there. The [`AdaptConfig`] holds
    /// the controller's thresholds (`AdaptConfig::default()` is a good start).
    pub adaptive: Option<AdaptConfig>,
    /// Capacity of the event queue; when full the oldest event is dropped and counted.
    pub event_queue: usize,
    /// Keep a bounded log of raw events for `/recorded-events`.
    pub record_events: bool,
    /// Also append every event, one JSON object per line, to this file
    /// (created if missing; written by a thread of its own through a bounded
    /// queue; lines that do not fit are dropped and counted).
    pub record_file: Option<std::path::PathBuf>,
    /// Most viewers of this stream at once (more are closed with 1008).
    pub max_viewers: usize,
    /// Sustained input events per second per viewer; beyond it and its burst: close 1008.
    pub events_per_second: f64,
    /// Events per viewer allowed in a burst above the sustained rate.
    pub event_burst: f64,
    /// Close a viewer that acked nothing for this long while frames were sent (1008).
    pub idle_timeout: Duration,
    /// Who may view (None: everyone).
    pub authenticate: Option<Authenticator>,
    /// Cookie read for a token when neither hello, query nor header has one.
    pub token_cookie: Option<String>,
    /// Whose events are delivered.
    pub input: InputPolicy,
    /// Who decides the stream's size.
    pub resize_policy: ResizePolicy,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            quality: framehub_codec::DEFAULT_JPEG_QUALITY,
            preferred_image: ImageFormat::Jpeg,
            fps: None,
            still_after: Some(Duration::from_millis(300)),
            max_inflight: framehub_proto::session::DEFAULT_MAX_INFLIGHT,
            h264: false,
            bitrate: 4_000_000,
            keyframe_interval: Duration::from_secs(2),
            stats_interval: None,
            adaptive: None,
            event_queue: 1024,
            record_events: false,
            record_file: None,
            max_viewers: 1000,
            events_per_second: framehub_proto::session::DEFAULT_EVENTS_PER_SECOND,
            event_burst: framehub_proto::session::DEFAULT_EVENT_BURST,
            idle_timeout: framehub_proto::session::DEFAULT_IDLE_TIMEOUT,
            authenticate: None,
            token_cookie: None,
            input: InputPolicy::All,
            resize_policy: ResizePolicy::Publisher,
        }
    }
}

impl fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamConfig")
            .field("quality", &self.quality)
            .field("preferred_image", &self.preferred_image)
            .field("fps", &self.fps)
            .field("still_after", &self.still_after)
            .field("max_inflight", &self.max_inflight)
            .field("h264", &self.h264)
            .field("bitrate", &self.bitrate)
            .field("keyframe_interval", &self.keyframe_interval)
            .field("stats_interval", &self.stats_interval)
            .field("adaptive", &self.adaptive)
            .field("event_queue", &self.event_queue)
            .field("record_events", &self.record_events)
            .field("record_file", &self.record_file)
            .field("max_viewers", &self.max_viewers)
            .field("events_per_second", &self.events_per_second)
            .field("event_burst", &self.event_burst)
            .field("idle_timeout", &self.idle_timeout)
            .field("authenticate", &self.authenticate.is_some())
            .field("input", &self.input)
            .field("resize_policy", &self.resize_policy)
            .finish()
    }
}

/// JPEG quality caps and scale divisors of the tiers below tier 0 (which is
/// the stream's own `quality` at full size): quality 60, quality 40, then
/// quality 40 at half size — the steps issue 5 names (80 → 60 → 40, then
/// half resolution).
pub const IMAGE_TIER_STEPS: [(u8, u32); 3] = [(60, 1), (40, 1), (40, 2)];

impl StreamConfig {
    /// Turns adaptive quality on (with `AdaptConfig::default()`) or off.
    pub fn adaptive(mut self, on: bool) -> Self {
        self.adaptive = on.then(AdaptConfig::default);
        self
    }

    /// Turns adaptive quality on with these controller settings.
    pub fn adaptive_with(mut self, cfg: AdaptConfig) -> Self {
        self.adaptive = Some(cfg);
        self
    }

    /// The quality tiers of this stream's JPEG and H.264 viewers, best
    /// first: one tier (the stream's `quality` and `bitrate`) without
    /// adaptive quality; with it, that tier and three below: the JPEG steps
    /// of [`IMAGE_TIER_STEPS`] (each capped at the stream's quality) and, for
    /// video, 1/2, 1/4 and 1/8 of the bit rate (each tier its own H.264
    /// encoder, made when a viewer is at that tier).
    pub fn quality_tiers(&self) -> Vec<QualityTier> {
        let top = QualityTier {
            jpeg_quality: self.quality,
            scale_divisor: 1,
            bitrate: u64::from(self.bitrate),
        };
        // Video: half the bit rate per tier down (the stream's, 1/2, 1/4, 1/8).
        let lower = IMAGE_TIER_STEPS
            .iter()
            .zip(1u32..)
            .map(|(&(q, d), i)| QualityTier {
                jpeg_quality: q.min(self.quality),
                scale_divisor: d,
                bitrate: u64::from(self.bitrate >> i).max(1),
            });
        match self.adaptive {
            Some(_) => std::iter::once(top).chain(lower).collect(),
            None => vec![top],
        }
    }

    /// Sets the JPEG quality (1–100).
    pub fn quality(mut self, q: u8) -> Self {
        self.quality = q;
        self
    }
    /// Caps encodes per second.
    pub fn fps(mut self, fps: f64) -> Self {
        self.fps = (fps.is_finite() && fps > 0.0).then_some(fps);
        self
    }
    /// Sends a lossless still after `d` without a new frame (None: never).
    pub fn still_after(mut self, d: Option<Duration>) -> Self {
        self.still_after = d;
        self
    }
    /// Offers H.264 to clients that can decode it.
    pub fn h264(mut self, on: bool) -> Self {
        self.h264 = on;
        self
    }
    /// Sets the H.264 target bit rate, bit/s.
    pub fn bitrate(mut self, bps: u32) -> Self {
        self.bitrate = bps;
        self
    }
    /// Sets the credit per viewer.
    pub fn max_inflight(mut self, n: u32) -> Self {
        self.max_inflight = n;
        self
    }
    /// Sends `stats` to viewers this often.
    pub fn stats_interval(mut self, d: Duration) -> Self {
        self.stats_interval = Some(d);
        self
    }
    /// Keeps a log of raw events for `/recorded-events`.
    pub fn record_events(mut self, on: bool) -> Self {
        self.record_events = on;
        self
    }
    /// Sets the preferred image format.
    pub fn preferred_image(mut self, f: ImageFormat) -> Self {
        self.preferred_image = f;
        self
    }
    /// Sets the authenticator.
    pub fn authenticate(mut self, a: Authenticator) -> Self {
        self.authenticate = Some(a);
        self
    }
    /// Sets whose input is delivered.
    pub fn input(mut self, p: InputPolicy) -> Self {
        self.input = p;
        self
    }
}

/// Which web pages may open a viewer's WebSocket (checked against the
/// upgrade's `Origin` header; requests without one, from non-browser
/// clients, are always let through). Guards against cross-site WebSocket
/// hijacking: a page on another site cannot open a stream in the user's browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origins {
    /// Same-origin pages (the `Origin` names the `Host` the request came to)
    /// and, when the hub listens on a loopback address, pages from
    /// `localhost`, `127.0.0.1` or `[::1]` on any port.
    #[default]
    SameOriginAndLoopback,
    /// Same-origin pages and exactly these origins (`scheme://host[:port]`).
    List(Vec<String>),
    /// Any page (only behind an authenticator, or on a private network).
    Any,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("authenticate", &self.authenticate.is_some())
            .field("origins", &self.origins)
            .field("trust_proxy", &self.trust_proxy)
            .field("write_timeout", &self.write_timeout)
            .field("max_write_buffer", &self.max_write_buffer)
            .field("hello_timeout", &self.hello_timeout)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_http_connections", &self.max_http_connections)
            .field("max_per_address", &self.max_per_address)
            .field("exempt_loopback", &self.exempt_loopback)
            .field("max_message_size", &self.max_message_size)
            .field("publish_authenticate", &self.publish_authenticate.is_some())
            .field("publisher_grace", &self.publisher_grace)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("nats", &self.nats)
            .field("webrtc", &self.webrtc)
            .finish()
    }
}

/// Settings of the whole hub.
#[derive(Clone)]
pub struct ServerConfig {
    /// Who may read the hub-wide REST routes (`/streams`, `/_/metrics`) and
    /// the routes of streams that have no authenticator of their own (a
    /// protected stream's routes use the stream's). The context's `stream`
    /// is the stream's name, or empty for hub-wide routes; `hello` is empty.
    /// Refused: HTTP 401. `/health`, the pages and the client's files stay open.
    /// None (default): REST is open, except the routes of protected streams.
    pub authenticate: Option<Authenticator>,
    /// Which web pages may connect (HTTP 403 otherwise).
    pub origins: Origins,
    /// The hub runs behind a reverse proxy it trusts: the client's address is
    /// the first `X-Forwarded-For` entry (authenticators, per-address
    /// limits) and the browser's host is `X-Forwarded-Host` (same-origin
    /// checks). Off (default): those headers are ignored, as any client can send them.
    pub trust_proxy: bool,
    /// Close a viewer whose socket accepts no data for this long.
    pub write_timeout: Duration,
    /// Most bytes queued for one viewer's socket; a frame that does not fit
    /// drops that viewer (credit keeps it far below this in normal use).
    pub max_write_buffer: usize,
    /// Close with 1008 when no `hello` arrives within this time.
    pub hello_timeout: Duration,
    /// Most WebSocket connections at once, all streams together (more are closed with 1008).
    pub max_connections: usize,
    /// Most viewers from one remote address, and most connections from one
    /// address still in HTTP (not yet upgraded; counted apart), when the hub
    /// listens itself (None: no limit). Not applied to HTTP connections
    /// behind a trusted proxy (`trust_proxy`), which all come from its address.
    pub max_per_address: Option<usize>,
    /// Whether loopback peers (a reverse proxy, benchmarks) are exempt from `max_per_address`.
    pub exempt_loopback: bool,
    /// Largest WebSocket message read from a client, in bytes (larger ones close with 1009).
    pub max_message_size: usize,
    /// Close an HTTP connection whose request headers have not all arrived
    /// this long after it opened or after its previous response (hyper's
    /// `header_read_timeout`: slow-loris clients and idle keep-alive
    /// connections). Applies when the hub listens itself ([`crate::Server::listen`]).
    pub header_read_timeout: Duration,
    /// Most connections still in HTTP at once (page and REST requests,
    /// WebSocket handshakes not yet upgraded); more are closed on accept and
    /// counted as refused. Upgraded viewers count against `max_connections`
    /// instead. Applies when the hub listens itself.
    pub max_http_connections: usize,
    /// Who may publish into this hub at `/_/publish/<name>` (remote
    /// publishers, `docs/protocol.md` §11): given the publisher's context
    /// (token from its `claim`, the `token` query parameter or
    /// `Authorization: Bearer`; `stream` is the name it claims), it returns
    /// the publisher's principal or refuses (close 4401). None (default):
    /// publishers on loopback are let in, any other is refused.
    pub publish_authenticate: Option<Authenticator>,
    /// How long a remote publisher's stream stays **offline** after its
    /// feed drops (viewers keep the last picture and are told); a publisher
    /// that claims the name again within it resumes the stream. After it the
    /// stream ends (viewers closed with 4410). Default 10 s.
    pub publisher_grace: Duration,
    /// Largest message read from a remote publisher (one encoded unit), in
    /// bytes; larger ones close the feed with 1009. Default 32 MiB.
    pub max_frame_bytes: usize,
    /// Joins the hub to a NATS system (feature `nats`): it announces the
    /// streams it originates and serves every other hub's streams to its
    /// own viewers (`docs/protocol.md` §12). None (default): a lone hub.
    pub nats: Option<NatsConfig>,
    /// WebRTC viewers (`docs/protocol.md` §13); used when framehub is built
    /// with its `webrtc` feature, ignored otherwise.
    pub webrtc: WebRtcConfig,
}

/// How a hub joins a NATS system (`ServerConfig::nats`, `framehub serve
/// --nats URL[,URL…]`; `docs/protocol.md` §12, `docs/scale.md`).
///
/// Hub-to-hub traffic is authenticated by NATS itself: give each hub the
/// credentials of an account that may use the subjects under
/// `subject_prefix` and the registry bucket.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`); the client
    /// learns the rest of the cluster from them and reconnects to another
    /// node when one dies.
    pub urls: Vec<String>,
    /// This hub's id, `[A-Za-z0-9_-]{1,64}`, unique in the system (None: a
    /// random `hub-xxxxxxxx`). Events from this hub's viewers of other hubs'
    /// streams carry it ([`crate::ViewerEvent::hub`]).
    pub hub_id: Option<String>,
    /// A NATS credentials file (JWT + NKey seed, `.creds`).
    pub credentials_file: Option<std::path::PathBuf>,
    /// A NATS token.
    pub token: Option<String>,
    /// User name and password.
    pub user_password: Option<(String, String)>,
    /// Require TLS on every connection.
    pub tls_required: bool,
    /// PEM file of root certificates to trust for the servers' TLS.
    pub root_certificates: Option<std::path::PathBuf>,
    /// Client certificate and key (PEM files) for mutual TLS.
    pub client_certificate: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// First token of every subject and the registry bucket's name
    /// (default `framehub`): two systems can share one NATS with two prefixes.
    pub subject_prefix: String,
    /// How long a registry entry lives without its hub's heartbeat (default
    /// 10 s; the hub re-puts its entries every third of it). A dead hub's
    /// streams leave the listings of the other hubs within it.
    pub registry_ttl: std::time::Duration,
    /// Replicas of the registry bucket (JetStream `num_replicas`, default 1;
    /// 3 on a 3-node cluster keeps the registry through a node's death).
    pub registry_replicas: usize,
    /// An origin hub silent this long (no heartbeat, sent every 500 ms) is
    /// taken for dead: its streams go offline on this hub, then end after
    /// `publisher_grace` (default 2 s).
    pub origin_timeout: std::time::Duration,
    /// How long a viewer's authentication may wait for the origin hub's
    /// answer before it is refused with 4401 (default 2 s).
    pub auth_timeout: std::time::Duration,
    /// Units queued on an edge per stream between NATS and the viewers'
    /// slots (default 64); a slow edge drops beyond it, counted
    /// (`framehub_nats_edge_dropped_units_total`), never slowing the origin.
    pub edge_queue: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            urls: vec!["nats://127.0.0.1:4222".into()],
            hub_id: None,
            credentials_file: None,
            token: None,
            user_password: None,
            tls_required: false,
            root_certificates: None,
            client_certificate: None,
            subject_prefix: "framehub".into(),
            registry_ttl: Duration::from_secs(10),
            registry_replicas: 1,
            origin_timeout: Duration::from_secs(2),
            auth_timeout: Duration::from_secs(2),
            edge_queue: 64,
        }
    }
}

impl NatsConfig {
    /// Settings for the servers at `urls` (comma-separated, as `--nats`
    /// takes them), the rest default.
    pub fn new(urls: &str) -> Self {
        NatsConfig {
            urls: urls
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
            ..NatsConfig::default()
        }
    }
}

/// How a hub serves WebRTC viewers (feature `webrtc`; `docs/protocol.md` §13).
#[derive(Debug, Clone)]
pub struct WebRtcConfig {
    /// Serve WebRTC viewers (default true). Off: the signalling routes answer 503.
    pub enabled: bool,
    /// The UDP address every peer shares. None (default): the hub's TCP
    /// address and port number, taken when the hub listens
    /// ([`crate::Server::listen`]); a hub that does not listen has no
    /// WebRTC unless this is set.
    pub bind: Option<std::net::SocketAddr>,
    /// Addresses announced to peers as ICE host candidates, for a hub behind
    /// 1:1 NAT or on several interfaces. Empty (default): the address each
    /// peer's signalling request reached.
    pub announce: Vec<std::net::IpAddr>,
    /// STUN/TURN server URLs handed to the page's client (`GET /_/webrtc`)
    /// for its `RTCPeerConnection` (the hub itself is ICE-lite and needs none).
    pub ice_servers: Vec<String>,
    /// A peer whose ICE and DTLS are not done after this long is dropped and
    /// its place in the limits freed. Default 10 s.
    pub connect_timeout: Duration,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        WebRtcConfig {
            enabled: true,
            bind: None,
            announce: Vec::new(),
            ice_servers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            authenticate: None,
            origins: Origins::default(),
            trust_proxy: false,
            write_timeout: Duration::from_secs(10),
            max_write_buffer: 64 << 20,
            hello_timeout: framehub_proto::session::DEFAULT_HELLO_TIMEOUT,
            max_connections: 4096,
            max_per_address: Some(64),
            exempt_loopback: true,
            max_message_size: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            max_http_connections: 1024,
            publish_authenticate: None,
            publisher_grace: Duration::from_secs(10),
            max_frame_bytes: 32 << 20,
            nats: None,
            webrtc: WebRtcConfig::default(),
        }
    }
}
