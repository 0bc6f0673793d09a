//! The driver of one viewer: a thin async loop around the sans-IO
//! [`Session`]. It reads the socket, watches its format's encoded-frame
//! channel, sleeps until the session's timer, and carries out what the
//! session asks: write a text or a frame, deliver an event to the stream's
//! queue, authenticate, close.
//!
//! The socket is any `Sink<Message> + Stream<Item = Result<Message, _>>`, so
//! tests can drive it with channels as well as with a real WebSocket.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message};
use framehub_proto::{
    close_code, envelope, FrameHeader, Hello, ImageFormat, Output, OutputFormat, Principal,
    Session, SessionConfig,
};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{broadcast, watch};

use crate::config::{AuthContext, ServerConfig};
use crate::events::{lock, ViewerEvent};
use crate::server::HubCounters;
use crate::stream::{Encoded, StreamShared, Variant, ViewerEntry};

/// What the upgrade request told about the viewer.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnInfo {
    pub headers: BTreeMap<String, String>,
    pub cookies: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    pub path: String,
    pub remote: Option<SocketAddr>,
    /// A WebRTC peer (`webrtc.rs`): offered H.264 whatever the stream offers
    /// WebSocket viewers ([`StreamShared::peer_offer`]).
    pub webrtc: bool,
}

impl ConnInfo {
    /// The token, from the first of: hello, query `token`, `Authorization: Bearer`, the cookie.
    pub(crate) fn token(&self, hello: &Hello, cookie: Option<&str>) -> Option<String> {
        hello
            .token
            .clone()
            .or_else(|| self.query.get("token").cloned())
            .or_else(|| {
                self.headers
                    .get("authorization")
                    .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
            })
            .or_else(|| cookie.and_then(|c| self.cookies.get(c).cloned()))
    }
}

/// Registers a viewer's demand for its output while it can take frames.
struct Demand {
    stream: Arc<StreamShared>,
    output: Option<Variant>,
    on: bool,
}

impl Demand {
    fn set(&mut self, on: bool) {
        if let Some(v) = self.output {
            if on != self.on {
                self.on = on;
                self.stream.set_demand(v, on);
            }
        }
    }

    /// Moves the demand to another output (a new quality tier).
    fn switch(&mut self, output: Variant) {
        let on = self.on;
        self.set(false);
        self.output = Some(output);
        self.set(on);
    }
}

impl Drop for Demand {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Removes the viewer from the stream's registry when the task ends.
struct Registration {
    stream: Arc<StreamShared>,
    id: u64,
    /// Counted in the stream's `patch_viewers`.
    patches: bool,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let (principal, viewers) = {
            let mut v = lock(&self.stream.viewers);
            let gone = v.remove(&self.id);
            if let Some(e) = &gone {
                // Its totals stay in the stream's counters (`/_/prometheus`).
                let d = &self.stream.departed;
                d.bytes_sent
                    .fetch_add(e.metrics.bytes_sent, Ordering::Relaxed);
                d.frames_sent
                    .fetch_add(e.metrics.frames_sent, Ordering::Relaxed);
                d.frames_dropped
                    .fetch_add(e.metrics.frames_dropped, Ordering::Relaxed);
            }
            (gone.and_then(|e| e.principal), v.len())
        };
        self.stream
            .announce(crate::lifecycle::LifecycleEvent::ViewerLeft {
                stream: self.stream.name.clone(),
                client_id: self.id,
                principal: principal.map(|p| p.as_str().to_string()),
                viewers,
            });
        self.stream.update_downscale();
        if self.patches {
            self.stream.patch_viewers.fetch_sub(1, Ordering::Relaxed);
        }
        self.stream.update_controllers();
    }
}

/// Keeps a stream's full-rate H.264 chain running for a WebRTC peer while
/// the stream offers no H.264 to anyone else
/// ([`StreamShared::peers_only_video`]).
struct PeerChain(Arc<StreamShared>);

impl PeerChain {
    fn new(stream: &Arc<StreamShared>) -> Self {
        stream.peers_only_video.fetch_add(1, Ordering::Relaxed);
        PeerChain(Arc::clone(stream))
    }
}

impl Drop for PeerChain {
    fn drop(&mut self) {
        self.0.peers_only_video.fetch_sub(1, Ordering::Relaxed);
    }
}

fn close_message(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Serves one viewer of `stream` until it leaves, is closed, or the server shuts down.
pub(crate) async fn run<S, E>(
    mut socket: S,
    stream: Arc<StreamShared>,
    session_id: u64,
    conn: ConnInfo,
    server_cfg: ServerConfig,
    counters: Arc<HubCounters>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: Sink<Message, Error = E> + Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let (width, height) = stream.size();
    let offer = if conn.webrtc {
        stream.peer_offer()
    } else {
        stream.offer()
    };
    let mut cfg = SessionConfig::new(session_id, stream.name.clone(), offer, width, height);
    cfg.max_inflight = stream.cfg.max_inflight;
    cfg.stats_interval = stream.cfg.stats_interval;
    cfg.hello_timeout = server_cfg.hello_timeout;
    cfg.events_per_second = stream.cfg.events_per_second;
    cfg.event_burst = stream.cfg.event_burst;
    cfg.idle_timeout = stream.cfg.idle_timeout;
    cfg.adapt = stream.cfg.adaptive.clone();
    cfg.tiers = stream.tiers.clone();
    let mut session = Session::new(Instant::now(), cfg);
    let mut demand = Demand {
        stream: Arc::clone(&stream),
        output: None,
        on: false,
    };
    // The image output this viewer watches (its format at its quality tier).
    let mut watching: Option<Variant> = None;
    // The video tier whose H.264 chain this viewer receives.
    let mut video_tier: u8 = 0;
    // Image viewers watch their format's latest frame; video viewers receive
    // every access unit of the stream's H.264 chain, in order.
    let mut frames: Option<watch::Receiver<Option<Arc<Encoded>>>> = None;
    let mut video: Option<broadcast::Receiver<Arc<Encoded>>> = None;
    let mut current: Option<Arc<Encoded>> = None;
    // Video units the session may still ask for (it queues at most its credit).
    let mut recent: VecDeque<Arc<Encoded>> = VecDeque::new();
    let mut registration: Option<Registration> = None;
    // Held for its Drop: the chain runs while this peer watches.
    let mut _peer_chain: Option<PeerChain> = None;
    let (controller_tx, mut controller_rx) = watch::channel(true);
    let mut closed = stream.closed.subscribe();
    let mut principal: Option<Principal> = None;
    // The publisher's state as this viewer was last told (`status`).
    let mut publisher = stream.publisher.subscribe();
    let mut told = crate::stream::PublisherState::Online;

    loop {
        // 1. Carry out everything the session has to say.
        while let Some(out) = session.poll_output(Instant::now()) {
            match out {
                Output::Authenticate(hello) => {
                    let verdict = authenticate(&stream, &conn, hello).await;
                    // `config` tells the viewer whether it controls: decide before it is built.
                    let who = verdict.as_ref().ok().and_then(|p| p.as_ref());
                    session.set_controller(stream.initial_controller(session_id, who));
                    session.handle_auth(Instant::now(), verdict);
                    if let Some(neg) = session.negotiated().cloned() {
                        // Region updates are for image sessions that list them.
                        let patches = neg.patch && neg.format != OutputFormat::H264;
                        principal = session.principal().cloned();
                        demand.output = Some(Variant::top(neg.format));
                        if neg.format == OutputFormat::H264 {
                            video = stream.subscribe_video(0);
                            if !stream.has_video() {
                                // A peer of a stream without H.264: its chain runs for peers alone.
                                _peer_chain = Some(PeerChain::new(&stream));
                            }
                            if neg.still_png {
                                // Lossless stills come through the lossy image channel.
                                watching =
                                    Some(Variant::top(OutputFormat::Image(ImageFormat::Jpeg)));
                            }
                        } else {
                            watching = Some(Variant::top(neg.format));
                        }
                        frames = watching.and_then(|v| stream.subscribe(v));
                        lock(&stream.viewers).insert(
                            session_id,
                            ViewerEntry {
                                metrics: session.metrics(Instant::now()),
                                controller: controller_tx.clone(),
                                principal: principal.clone(),
                            },
                        );
                        if patches {
                            stream.patch_viewers.fetch_add(1, Ordering::Relaxed);
                        }
                        let viewers = lock(&stream.viewers).len();
                        stream.announce(crate::lifecycle::LifecycleEvent::ViewerJoined {
                            stream: stream.name.clone(),
                            client_id: session_id,
                            principal: principal.as_ref().map(|p| p.as_str().to_string()),
                            viewers,
                        });
                        registration = Some(Registration {
                            stream: Arc::clone(&stream),
                            id: session_id,
                            patches,
                        });
                        stream.update_controllers();
                        session.set_controller(*controller_rx.borrow_and_update());
                        // A frame encoded before the viewer came is offered at once.
                        if let Some(rx) = frames.as_mut() {
                            if let Some(enc) = rx.borrow_and_update().clone() {
                                session.handle_frame(Instant::now(), enc.info.clone());
                                current = Some(enc);
                            }
                        }
                    }
                }
                Output::Text(msg) => {
                    if send(
                        &mut socket,
                        Message::Text(msg.to_json().into()),
                        &server_cfg,
                    )
                    .await
                    .is_err()
                    {
                        return;
                    }
                }
                Output::Frame { frame_id, header } => {
                    let held = match header {
                        FrameHeader::VideoChunk { .. } => {
                            recent.iter().find(|e| e.info.frame_id == frame_id)
                        }
                        FrameHeader::ImageFrame { .. } | FrameHeader::ImagePatch { .. } => {
                            current.as_ref().filter(|e| e.info.frame_id == frame_id)
                        }
                    };
                    let payload = match (held, &header) {
                        (Some(enc), FrameHeader::ImagePatch { .. }) => enc.patch.as_ref(),
                        (Some(enc), _) => Some(&enc.data),
                        (None, _) => None,
                    };
                    let Some(payload) = payload else {
                        tracing::error!(
                            frame_id,
                            "session asked for a frame the driver does not hold"
                        );
                        continue;
                    };
                    let bytes = envelope::encode(&header, payload);
                    if send(&mut socket, Message::Binary(bytes.into()), &server_cfg)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Output::Event { event, received } => {
                    // Only delivered events (a controller's) can propose a size.
                    if let framehub_proto::InputEvent::Resize(r) = &event {
                        stream.propose_size(r.pwidth, r.pheight, received);
                    }
                    stream.push_event(ViewerEvent {
                        client_id: session_id,
                        principal: principal.clone(),
                        received_us: stream.micros_since_created(received),
                        event,
                        hub: None,
                    });
                }
                // The chain of the session's tier (the driver follows it below).
                Output::RequestKeyframe => stream.request_keyframe(session.tier()),
                Output::Close { code, reason } => {
                    counters.count_close(code);
                    if code == close_code::INTERNAL {
                        tracing::error!(session_id, %reason, "closing viewer on internal error");
                    } else {
                        tracing::debug!(session_id, code, %reason, "closing viewer");
                    }
                    let _ = send(&mut socket, close_message(code, reason), &server_cfg).await;
                    linger(&mut socket).await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close()).await;
                    return;
                }
            }
        }
        // Adaptive quality moved the viewer to another tier: watch that output.
        let mut tier_changed = false;
        if let Some(v) = watching.filter(|v| v.tier != session.tier()) {
            tier_changed = true;
            let next = Variant {
                format: v.format,
                tier: session.tier(),
            };
            if let Some(mut rx) = stream.subscribe(next) {
                session.forget_offer();
                demand.switch(next);
                watching = Some(next);
                // The tier's latest frame, if any, is offered at once.
                if let Some(enc) = rx.borrow_and_update().clone() {
                    session.handle_frame(Instant::now(), enc.info.clone());
                    current = Some(enc);
                }
                frames = Some(rx);
            }
        }
        if video.is_some() && video_tier != session.tier() {
            tier_changed = true;
            if let Some(rx) = stream.subscribe_video(session.tier()) {
                video_tier = session.tier();
                demand.switch(Variant {
                    format: OutputFormat::H264,
                    tier: video_tier,
                });
                // The session asked that chain for a keyframe already.
                video = Some(rx);
            }
        }
        demand.set(session.wants_frames());
        if registration.is_some() {
            let state = *publisher.borrow_and_update();
            if state != told {
                told = state;
                let status = framehub_proto::ServerMessage::Status {
                    publisher: state.as_str().into(),
                };
                if send(
                    &mut socket,
                    Message::Text(status.to_json().into()),
                    &server_cfg,
                )
                .await
                .is_err()
                {
                    return;
                }
            }
            let m = session.metrics(Instant::now());
            if let Some(v) = lock(&stream.viewers).get_mut(&session_id) {
                v.metrics = m;
            }
            if tier_changed {
                stream.update_downscale();
            }
        }

        // 2. Wait for the next input.
        let timeout = session.poll_timeout();
        tokio::select! {
            msg = socket.next() => match msg {
                Some(Ok(Message::Text(text))) => session.handle_text(Instant::now(), text.as_str()),
                Some(Ok(Message::Binary(_))) | Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(e)) => {
                    let msg = e.to_string();
                    if msg.contains("too long") || msg.contains("Space limit") {
                        session.handle_oversized(server_cfg.max_message_size + 1);
                    } else {
                        tracing::debug!(session_id, error = %msg, "socket error");
                        return;
                    }
                }
            },
            changed = frame_changed(&mut frames) => {
                if changed {
                    if let Some(enc) = frames.as_mut().and_then(|rx| rx.borrow_and_update().clone()) {
                        session.handle_frame(Instant::now(), enc.info.clone());
                        current = Some(enc);
                    }
                } else {
                    frames = None;
                }
            },
            unit = next_unit(&mut video) => match unit {
                Ok(enc) => {
                    if recent.len() >= RECENT_UNITS {
                        recent.pop_front();
                    }
                    recent.push_back(Arc::clone(&enc));
                    session.handle_frame(Instant::now(), enc.info.clone());
                }
                // Units were lost: the session sees the gap in ids and waits for a keyframe.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => video = None,
            },
            _ = sleep_until(timeout), if timeout.is_some() => session.handle_timeout(Instant::now()),
            _ = controller_rx.changed() => {
                let c = *controller_rx.borrow_and_update();
                session.set_controller(c);
            }
            _ = shutdown.changed() => session.handle_close(close_code::GOING_AWAY, "server shutting down"),
            _ = closed.changed() => {
                let (code, reason) = stream.end_reason();
                session.handle_close(code, &reason);
            }
            _ = publisher.changed() => {}
        }
    }
}

/// How long the hub keeps reading a viewer it closed, waiting for its close reply.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// After the hub's close frame: reads and drops what the viewer still sends
/// until its close reply or the end of the stream (at most
/// [`CLOSE_LINGER`]). Closing a TCP socket with unread data makes the
/// kernel reset the connection and throw away what it has not sent yet —
/// the close frame too, behind a queued frame — so the viewer would never
/// learn the code (found by `framehub soak`: a viewer flooding events got a
/// reset instead of 1008 now and then).
async fn linger<S, E>(socket: &mut S)
where
    S: Stream<Item = Result<Message, E>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(msg)) = socket.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Video units kept for the session to ask for (more than any credit).
const RECENT_UNITS: usize = 32;

/// The next video unit, or never when this is not a video viewer.
async fn next_unit(
    rx: &mut Option<broadcast::Receiver<Arc<Encoded>>>,
) -> Result<Arc<Encoded>, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Waits for a new encoded frame: `true` on one, `false` when the channel closed.
async fn frame_changed(rx: &mut Option<watch::Receiver<Option<Arc<Encoded>>>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

async fn send<S, E>(socket: &mut S, msg: Message, cfg: &ServerConfig) -> Result<(), ()>
where
    S: Sink<Message, Error = E> + Unpin,
    E: std::fmt::Display,
{
    match tokio::time::timeout(cfg.write_timeout, socket.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "write failed");
            Err(())
        }
        Err(_) => {
            tracing::info!(
                "viewer accepted no data for {:?}: dropping it",
                cfg.write_timeout
            );
            Err(())
        }
    }
}

async fn authenticate(
    stream: &StreamShared,
    conn: &ConnInfo,
    hello: Hello,
) -> Result<Option<Principal>, String> {
    match stream.cfg.authenticate.as_ref() {
        Some(auth) => {
            check(
                auth,
                conn,
                hello,
                &stream.name,
                stream.cfg.token_cookie.as_deref(),
            )
            .await
        }
        None => Ok(None),
    }
}

/// Runs `auth` for a request to `stream` described by `conn` (and `hello`,
/// empty for REST requests). A refusing, failing or panicking authenticator
/// refuses; the reason is logged, the token never.
pub(crate) async fn check(
    auth: &crate::config::Authenticator,
    conn: &ConnInfo,
    hello: Hello,
    stream: &str,
    token_cookie: Option<&str>,
) -> Result<Option<Principal>, String> {
    let ctx = AuthContext {
        token: conn.token(&hello, token_cookie),
        headers: conn.headers.clone(),
        cookies: conn.cookies.clone(),
        query: conn.query.clone(),
        path: conn.path.clone(),
        remote: conn.remote,
        hello,
        stream: stream.to_string(),
    };
    match tokio::spawn(auth(ctx)).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => {
            tracing::info!(%stream, remote = ?conn.remote, reason = %e, "refused");
            Err(e.0)
        }
        Err(e) => {
            tracing::warn!(%stream, error = %e, "authenticator failed");
            Err("authenticator failed".into())
        }
    }
}
