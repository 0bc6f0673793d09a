//! The endpoint: one UDP socket for every peer, ICE-lite, and the table
//! that routes each datagram to its peer — by source address once known,
//! else by the ICE ufrag in a STUN binding request's `USERNAME` (a map, not
//! a scan of every peer's `Rtc::accepts`). A datagram no peer claims is
//! dropped and counted.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use str0m::bwe::Bitrate;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::{Candidate, IceCreds, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::peer::{self, PeerSetup, SessionLink};
use crate::signal::Offer;
use crate::stun;

/// Datagrams queued for one peer before more are dropped (counted): a
/// peer's task takes them as they come; a burst of a full video frame at
/// 1200 bytes per packet is well under this.
pub const PEER_DATAGRAM_QUEUE: usize = 1024;

/// Source addresses one peer may be reached from (ICE may try a few pairs).
const MAX_PEER_ADDRS: usize = 8;

/// Largest datagram read, in bytes. WebRTC keeps datagrams under the path
/// MTU (str0m: 1150 by default); anything longer is not ours.
const MAX_DATAGRAM: usize = 2048;

/// How an [`Endpoint`] listens and what it announces.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The UDP address to bind (framehub's default: the hub's TCP address,
    /// same port number).
    pub bind: SocketAddr,
    /// Addresses to announce as host candidates, for a hub behind 1:1 NAT or
    /// bound to `0.0.0.0`. Empty: the address the peer's signalling request
    /// reached (see [`Endpoint::accept`]), else the bound address, else 127.0.0.1.
    pub announce: Vec<IpAddr>,
    /// A peer whose ICE and DTLS are not done after this long is dropped and
    /// its place freed (default 10 s).
    pub connect_timeout: Duration,
    /// Most peers at once, whatever the hub's own limits (default 1024).
    pub max_peers: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            announce: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            max_peers: 1024,
        }
    }
}

/// One received datagram, on its way to its peer.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub at: Instant,
    pub source: SocketAddr,
    pub data: Vec<u8>,
}

/// The endpoint's counters (see [`EndpointStats`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub connected: AtomicU64,
    pub connect_timeouts: AtomicU64,
    pub unknown_datagrams: AtomicU64,
    pub dropped_datagrams: AtomicU64,
    pub send_errors: AtomicU64,
    pub panics: AtomicU64,
    pub dropped_stills: AtomicU64,
    pub dropped_messages: AtomicU64,
}

/// A snapshot of an endpoint's counters (all since it was bound).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EndpointStats {
    /// Peers now (connecting or connected).
    pub peers: usize,
    /// Offers accepted.
    pub accepted: u64,
    /// Peers whose ICE and DTLS completed.
    pub connected: u64,
    /// Peers dropped for not connecting within `connect_timeout`.
    pub connect_timeouts: u64,
    /// Datagrams no peer claimed (dropped).
    pub unknown_datagrams: u64,
    /// Datagrams dropped because their peer's queue was full.
    pub dropped_datagrams: u64,
    /// Datagrams the socket would not take (dropped, as a network may).
    pub send_errors: u64,
    /// Peer tasks that panicked (a bug, in str0m or here; the peer ends,
    /// nothing else does).
    pub panics: u64,
    /// Lossless stills not sent because a peer's data channel was backed up.
    pub dropped_stills: u64,
    /// Data-channel messages dropped because the session was not reading.
    pub dropped_messages: u64,
}

/// Why an offer was not accepted, with the HTTP status to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    /// [`EndpointConfig::max_peers`] peers already (503).
    #[error("too many WebRTC peers ({0})")]
    Busy(usize),
    /// str0m refused the offer (400), with its reason.
    #[error("the offer cannot be answered: {0}")]
    Rejected(String),
    /// No H.264 format str0m and the peer agree on (406).
    #[error("no H.264 (Constrained Baseline, packetization-mode=1) in common with the offer")]
    NoH264,
    /// The offer's video m-section does not let the hub send (400).
    #[error("the offer's video is not receivable by the peer (make it recvonly or sendrecv)")]
    NotReceiving,
    /// The endpoint is closed (503).
    #[error("the WebRTC endpoint is closed")]
    Closed,
}

impl AcceptError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            AcceptError::Busy(_) | AcceptError::Closed => 503,
            AcceptError::NoH264 => 406,
            AcceptError::Rejected(_) | AcceptError::NotReceiving => 400,
        }
    }
}

/// An accepted offer.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The peer's id on this endpoint ([`Endpoint::end`] takes it).
    pub id: u64,
    /// The SDP answer (non-trickle: it holds the hub's candidates).
    pub answer: String,
}

struct Route {
    peer: u64,
    tx: mpsc::Sender<Datagram>,
}

struct PeerEntry {
    ufrag: String,
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
}

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<SocketAddr, Route>,
    peers: HashMap<u64, PeerEntry>,
    closed: bool,
}

struct Shared {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    cfg: EndpointConfig,
    routes: Mutex<Routes>,
    counters: Arc<Counters>,
    next_id: AtomicU64,
}

impl Shared {
    fn routes(&self) -> MutexGuard<'_, Routes> {
        // A panic while holding the lock leaves plain maps: still usable.
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, id: u64) {
        let mut r = self.routes();
        if let Some(p) = r.peers.remove(&id) {
            r.by_ufrag.remove(&p.ufrag);
            for a in p.addrs {
                r.by_addr.remove(&a);
            }
        }
    }
}

/// All WebRTC peers of a hub on one UDP socket. Dropping it ends every peer.
pub struct Endpoint {
    shared: Arc<Shared>,
    receiver: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local", &self.shared.local)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Binds the UDP socket and starts routing datagrams (a task on the
    /// current tokio runtime).
    ///
    /// Errors: the socket cannot be bound.
    pub async fn bind(cfg: EndpointConfig) -> std::io::Result<Endpoint> {
        let socket = Arc::new(UdpSocket::bind(cfg.bind).await?);
        let local = socket.local_addr()?;
        let shared = Arc::new(Shared {
            socket,
            local,
            cfg,
            routes: Mutex::new(Routes::default()),
            counters: Arc::new(Counters::default()),
            next_id: AtomicU64::new(1),
        });
        let receiver = tokio::spawn(receive(Arc::clone(&shared)));
        tracing::info!(%local, "WebRTC endpoint listening (UDP)");
        Ok(Endpoint { shared, receiver })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// Answers `offer` and starts its peer, which serves the viewer's
    /// session over `link`. `host` is the address the peer's signalling
    /// request reached (the hub's side of that TCP connection), announced
    /// when [`EndpointConfig::announce`] is empty. `bitrate` (bit/s) is the
    /// stream's best video bit rate: the peer's bandwidth estimator (TWCC:
    /// transport-wide congestion control feedback, as str0m implements it)
    /// starts at and probes for [`crate::BWE_HEADROOM`] times it, and its estimates go to the session, which
    /// picks the peer's tier (0: no estimator). `first` are messages the
    /// session sent before (its `config`), delivered once the data channel
    /// opens. The peer is routable before this returns, so the browser's
    /// first STUN request is never lost.
    ///
    /// Must be called inside a tokio runtime. Errors: [`AcceptError`].
    pub fn accept(
        &self,
        offer: Offer,
        host: Option<IpAddr>,
        bitrate: u64,
        link: SessionLink,
        first: Vec<crate::ViewerMessage>,
    ) -> Result<Accepted, AcceptError> {
        let shared = &self.shared;
        {
            let r = shared.routes();
            if r.closed {
                return Err(AcceptError::Closed);
            }
            if r.peers.len() >= shared.cfg.max_peers {
                return Err(AcceptError::Busy(r.peers.len()));
            }
        }
        let port = shared.local.port();
        let ips: Vec<IpAddr> = if !shared.cfg.announce.is_empty() {
            shared.cfg.announce.clone()
        } else if let Some(ip) = host.filter(|ip| !ip.is_unspecified()) {
            vec![ip]
        } else if !shared.local.ip().is_unspecified() {
            vec![shared.local.ip()]
        } else {
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        };
        let creds = IceCreds::new();
        let now = Instant::now();
        let mut config = RtcConfig::new()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds.clone())
            .clear_codecs()
            .enable_h264(true)
            .set_sctp_max_buffered_amount(peer::SCTP_BUFFER);
        if bitrate > 0 {
            let start = (bitrate as f64 * peer::BWE_HEADROOM) as u64;
            config = config.enable_bwe(Some(Bitrate::bps(start)));
        }
        let mut rtc = config.build(now);
        let mut candidate = None;
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            match Candidate::host(addr, "udp") {
                Ok(c) => {
                    if rtc.add_local_candidate(c).is_some() && candidate.is_none() {
                        candidate = Some(addr);
                    }
                }
                Err(e) => tracing::warn!(%addr, error = %e, "not a usable host candidate"),
            }
        }
        let candidate = candidate.ok_or_else(|| {
            AcceptError::Rejected(
                "no usable address to announce (set the announce addresses)".into(),
            )
        })?;
        let sdp = offer.sdp;
        let answer: SdpAnswer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rtc.sdp_api().accept_offer(sdp)
        }))
        .map_err(|_| {
            shared.counters.panics.fetch_add(1, Ordering::Relaxed);
            AcceptError::Rejected("the offer made the WebRTC stack fail".into())
        })?
        .map_err(|e| AcceptError::Rejected(e.to_string()))?;
        let mid = Mid::from(offer.video_mid.as_str());
        let direction = rtc
            .media(mid)
            .filter(|m| m.kind() == MediaKind::Video)
            .map(|m| m.direction())
            .ok_or_else(|| AcceptError::Rejected("no video in the answer".into()))?;
        if !matches!(direction, Direction::SendOnly | Direction::SendRecv) {
            return Err(AcceptError::NotReceiving);
        }
        let pt = rtc
            .writer(mid)
            .and_then(|w| {
                w.payload_params()
                    .filter(|p| {
                        let spec = p.spec();
                        // Constrained Baseline (42e0) or Baseline (4200), packetization-mode 1:
                        // what OpenH264 sends and every browser and aiortc decode.
                        let profile = spec.format.profile_level_id.map(|v| v >> 8);
                        spec.codec == Codec::H264
                            && spec.format.packetization_mode == Some(1)
                            && matches!(profile, Some(0x42e0) | Some(0x4200) | None)
                    })
                    .map(|p| p.pt())
                    .next()
            })
            .ok_or(AcceptError::NoH264)?;

        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, datagrams) = mpsc::channel(PEER_DATAGRAM_QUEUE);
        let (stop_tx, stop) = watch::channel(false);
        {
            let mut r = shared.routes();
            if r.closed {
                return Err(AcceptError::Closed);
            }
            r.by_ufrag.insert(
                creds.ufrag.clone(),
                Route {
                    peer: id,
                    tx: tx.clone(),
                },
            );
            r.peers.insert(
                id,
                PeerEntry {
                    ufrag: creds.ufrag,
                    addrs: Vec::new(),
                    stop: stop_tx,
                },
            );
        }
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let setup = PeerSetup {
            id,
            rtc,
            video: mid,
            pt,
            candidate,
            datagrams,
            link,
            first,
            socket: Arc::clone(&shared.socket),
            counters: Arc::clone(&shared.counters),
            stop,
            connect_timeout: shared.cfg.connect_timeout,
            bitrate,
        };
        let task_shared = Arc::clone(shared);
        tokio::spawn(async move {
            let run = std::panic::AssertUnwindSafe(peer::run(setup)).catch_unwind();
            if run.await.is_err() {
                task_shared.counters.panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(peer = id, "a WebRTC peer task panicked; it is dropped");
            }
            task_shared.remove(id);
        });
        Ok(Accepted {
            id,
            answer: answer.to_sdp_string(),
        })
    }

    /// Ends peer `id` (WHEP's `DELETE`): it closes, its session ends.
    /// Returns whether such a peer existed.
    pub fn end(&self, id: u64) -> bool {
        let r = self.shared.routes();
        match r.peers.get(&id) {
            Some(p) => {
                let _ = p.stop.send(true);
                true
            }
            None => false,
        }
    }

    /// The endpoint's counters now.
    pub fn stats(&self) -> EndpointStats {
        let c = &self.shared.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EndpointStats {
            peers: self.shared.routes().peers.len(),
            accepted: n(&c.accepted),
            connected: n(&c.connected),
            connect_timeouts: n(&c.connect_timeouts),
            unknown_datagrams: n(&c.unknown_datagrams),
            dropped_datagrams: n(&c.dropped_datagrams),
            send_errors: n(&c.send_errors),
            panics: n(&c.panics),
            dropped_stills: n(&c.dropped_stills),
            dropped_messages: n(&c.dropped_messages),
        }
    }

    /// Ends every peer and stops taking offers and datagrams; the UDP port
    /// is released once the peers have ended.
    pub fn close(&self) {
        {
            let mut r = self.shared.routes();
            r.closed = true;
            for p in r.peers.values() {
                let _ = p.stop.send(true);
            }
        }
        self.receiver.abort();
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.close();
    }
}

/// Reads the socket and hands each datagram to its peer.
async fn receive(shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, source) = match shared.socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors surface here on some systems; the socket is fine.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let data = &buf[..n];
        let at = Instant::now();
        let mut routes = shared.routes();
        let tx = match routes.by_addr.get(&source) {
            Some(r) => Some(r.tx.clone()),
            None => {
                let found = stun::local_ufrag(data)
                    .and_then(|u| routes.by_ufrag.get(u))
                    .map(|r| (r.peer, r.tx.clone()));
                match found {
                    // A peer learns at most MAX_PEER_ADDRS source addresses.
                    Some((peer, tx))
                        if routes
                            .peers
                            .get(&peer)
                            .is_some_and(|p| p.addrs.len() < MAX_PEER_ADDRS) =>
                    {
                        routes.by_addr.insert(
                            source,
                            Route {
                                peer,
                                tx: tx.clone(),
                            },
                        );
                        if let Some(p) = routes.peers.get_mut(&peer) {
                            p.addrs.push(source);
                        }
                        Some(tx)
                    }
                    _ => None,
                }
            }
        };
        drop(routes);
        let Some(tx) = tx else {
            shared
                .counters
                .unknown_datagrams
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let d = Datagram {
            at,
            source,
            data: data.to_vec(),
        };
        if tx.try_send(d).is_err() {
            shared
                .counters
                .dropped_datagrams
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}
