//! Remote publishers, hub side: the fan-out half's end of the feed
//! (`framehub_proto::feed`, `docs/protocol.md` §11).
//!
//! A publisher connects to `ws://HOST:PORT/_/publish/<name>` and sends a
//! `claim`. The hub authenticates it ([`ServerConfig::publish_authenticate`];
//! without one only loopback publishers are let in), then gives it the name:
//!
//! * a name no one holds makes a new stream whose source is the feed
//!   ([`SourceKind::Remote`]: no encode threads here, the publisher encodes);
//! * a name held by a live publisher is refused with 4409, unless the claim
//!   asks to take over and comes from the same principal (the old feed is
//!   then closed with 4409);
//! * a name whose publisher left less than [`ServerConfig::publisher_grace`]
//!   ago is **resumed**: the viewers never left, they get frames again;
//! * a name of a stream of this process is refused with 4409.
//!
//! While the feed runs, the hub sends the viewers' demand (whenever it
//! changes), keyframe requests and the viewers' events up, and offers every
//! unit that comes down to the viewers through the same slots the encode
//! threads of a local stream use ([`StreamShared::offer_image`],
//! [`StreamShared::offer_video`]). Frame ids and timestamps are shifted per
//! connection so that a resumed stream's ids keep growing (a video chain
//! from a new connection is never consecutive with the old one, so the
//! viewers' keyframe gate holds).
//!
//! When the feed drops, the stream goes offline (viewers get `status`), and
//! ends after the grace period unless the publisher comes back: its viewers
//! are closed with 4410.
//!
//! [`ServerConfig::publish_authenticate`]: crate::ServerConfig::publish_authenticate
//! [`ServerConfig::publisher_grace`]: crate::ServerConfig::publisher_grace

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use framehub_proto::close_code;
use framehub_proto::feed::{self, HubMessage, SourceMessage, StreamShape};
use framehub_proto::{FrameKind, Hello, OutputFormat, Principal};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::config::{InputPolicy, StreamConfig};
use crate::events::lock;
use crate::lifecycle::LifecycleEvent;
use crate::server::Inner;
use crate::stream::{Encoded, PublisherState, SourceKind, StreamShared, Variant};
use crate::viewer::ConnInfo;

/// How often the feed re-checks demand even when nothing woke it (a
/// viewer's subscription can change without a demand change).
const DEMAND_TICK: Duration = Duration::from_millis(250);
/// How often an unanswered keyframe request is sent again (the viewers'
/// sessions ask at most once a second too, `docs/protocol.md` §10).
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// How long a keyframe request may go unanswered before viewers are told
/// the publisher is stalled (`status` `"stalled"`; back to `"online"` with
/// the next keyframe).
pub(crate) const KEYFRAME_STALLED: Duration = Duration::from_secs(3);

/// A remote stream's claim: who holds it, and its id and time shifts.
pub(crate) struct Claim {
    /// The connection that holds the name (None: offline, in its grace period).
    holder: Option<Holder>,
    /// Bumped on every claim and release; a grace timer ends the stream
    /// only if it is unchanged.
    generation: u64,
    /// The largest frame id offered to viewers so far.
    max_id: u64,
    /// The largest picture (`source_id`) offered so far.
    max_source: u64,
}

struct Holder {
    /// Which feed connection (from `Claim::generation` when it claimed).
    conn: u64,
    principal: Option<Principal>,
    /// Set to true to close that connection (taken over).
    kick: watch::Sender<bool>,
}

/// The claims of remote streams, by name.
pub(crate) type Claims = HashMap<String, Claim>;

/// Why a claim was refused: close code and reason.
pub(crate) type Refusal = (u16, String);

/// A claim that was granted.
struct Taken {
    stream: Arc<StreamShared>,
    /// Turns true when another connection of the same publisher takes over.
    kick: watch::Receiver<bool>,
    /// The stream was offline and is resumed.
    resumed: bool,
    /// Added to this connection's frame ids.
    base_id: u64,
    /// This connection's number (see [`Holder::conn`]).
    conn: u64,
}

/// Serves one publisher's feed on an upgraded WebSocket until it leaves.
pub(crate) async fn run(inner: Arc<Inner>, name: String, conn: ConnInfo, mut socket: WebSocket) {
    let claim = tokio::time::timeout(inner.cfg.hello_timeout, socket.next()).await;
    let claimed_at = Instant::now();
    let claim = match claim {
        Ok(Some(Ok(Message::Text(t)))) => SourceMessage::parse(t.as_str()),
        Ok(Some(Ok(_))) => Err(feed::FeedError::Malformed(
            "the first message must be a claim".into(),
        )),
        Ok(_) => return,
        Err(_) => {
            close(&inner, &mut socket, close_code::POLICY, "no claim in time").await;
            return;
        }
    };
    let (shape, token, takeover, clock_us) = match claim {
        Ok(SourceMessage::Claim {
            protocol,
            shape,
            token,
            takeover,
            clock_us,
        }) if protocol == feed::FEED_VERSION => (shape, token, takeover, clock_us),
        Ok(SourceMessage::Claim { protocol, .. }) => {
            let reason = format!("feed version {protocol} is not {}", feed::FEED_VERSION);
            close(&inner, &mut socket, close_code::POLICY, &reason).await;
            return;
        }
        Ok(_) => {
            close(
                &inner,
                &mut socket,
                close_code::POLICY,
                "the first message must be a claim",
            )
            .await;
            return;
        }
        Err(e) => {
            close(&inner, &mut socket, close_code::POLICY, &e.to_string()).await;
            return;
        }
    };
    let principal = match authenticate(&inner, &conn, &name, token).await {
        Ok(p) => p,
        Err(why) => {
            close(&inner, &mut socket, close_code::UNAUTHORIZED, &why).await;
            return;
        }
    };
    let source = Source {
        principal,
        takeover,
        clock_us,
        claimed_at,
        viewer_auth: None,
    };
    let ended = serve_claim(&inner, &name, &shape, source, &mut WsLink(&mut socket)).await;
    let (code, reason) = match ended {
        Ok(end) | Err(end) => end,
    };
    close(&inner, &mut socket, code, &reason).await;
}

/// One end of a feed as the hub sees it, whatever carries it: a publisher's
/// WebSocket ([`WsLink`]), or NATS subjects from another hub (`nats/edge.rs`).
/// The hub-side rules (claims, shifts, checks, demand, keyframe retries,
/// `stalled`, grace) are [`serve_claim`]'s, the same for every link.
pub(crate) trait FeedLink: Send {
    /// The next message from the source. Must be cancel-safe (it runs in a
    /// `select!` with the hub's own wake-ups).
    fn recv(&mut self) -> impl std::future::Future<Output = Down> + Send;
    /// Sends `msg` up to the source. Errors: the link is lost.
    fn send(
        &mut self,
        msg: &HubMessage,
    ) -> impl std::future::Future<Output = Result<(), ()>> + Send;
}

/// What a [`FeedLink`] brought down.
pub(crate) enum Down {
    /// One unit (`feed::encode_unit`'s bytes).
    Unit(Bytes),
    /// A text message from the source (`SourceMessage` JSON).
    Text(String),
    /// Nothing for the hub (a ping, a keep-alive).
    Nothing,
    /// The link ended: the close code and reason to record.
    End(u16, String),
}

/// A publisher's WebSocket as a [`FeedLink`].
struct WsLink<'a>(&'a mut WebSocket);

impl FeedLink for WsLink<'_> {
    async fn recv(&mut self) -> Down {
        match self.0.next().await {
            Some(Ok(Message::Binary(b))) => Down::Unit(b),
            Some(Ok(Message::Text(t))) => Down::Text(t.as_str().to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Down::Nothing,
            Some(Ok(Message::Close(_))) | None => Down::End(close_code::NORMAL, String::new()),
            Some(Err(e)) => {
                let msg = e.to_string();
                if msg.contains("too long") || msg.contains("Space limit") {
                    return Down::End(close_code::TOO_BIG, "unit over max_frame_bytes".into());
                }
                Down::End(close_code::GOING_AWAY, "feed lost".into())
            }
        }
    }

    async fn send(&mut self, msg: &HubMessage) -> Result<(), ()> {
        self.0
            .send(Message::Text(msg.to_json().into()))
            .await
            .map_err(|_| ())
    }
}

/// Who claims a name, for [`serve_claim`].
pub(crate) struct Source {
    /// The source's principal (its authenticator's answer).
    pub principal: Option<Principal>,
    /// Take the name over from a live source of the same principal.
    pub takeover: bool,
    /// The source's clock when it claimed, µs (None: its time 0 is `claimed_at`).
    pub clock_us: Option<u64>,
    /// When the claim arrived.
    pub claimed_at: Instant,
    /// Who authenticates the stream's viewers, when not the hub-wide
    /// authenticator (a stream of another hub: its origin decides).
    pub viewer_auth: Option<crate::config::Authenticator>,
}

/// Gives `name` to an authenticated source (`principal`) and carries its
/// feed over `link` until it ends: `claimed` is sent, the stream goes
/// online, units are checked and offered, demand, keyframe requests and
/// events go up; when the link ends the stream goes offline and ends after
/// the grace period unless claimed again. Returns the close code and
/// reason for the link; Errors: the claim was refused (code, reason).
pub(crate) async fn serve_claim<L: FeedLink>(
    inner: &Arc<Inner>,
    name: &str,
    shape: &StreamShape,
    source: Source,
    link: &mut L,
) -> Result<(u16, String), Refusal> {
    let Source {
        principal,
        takeover,
        clock_us,
        claimed_at,
        viewer_auth,
    } = source;
    let principal_name = principal.as_ref().map(|p| p.as_str().to_string());
    let Taken {
        stream,
        kick,
        resumed,
        base_id,
        conn: conn_id,
    } = take(inner, name, shape, principal, takeover, viewer_auth)?;
    let claimed = HubMessage::Claimed {
        stream: name.to_string(),
        resumed,
        grace_ms: u64::try_from(inner.cfg.publisher_grace.as_millis()).unwrap_or(u64::MAX),
    };
    let mut end = (close_code::GOING_AWAY, "feed lost".to_string());
    if link.send(&claimed).await.is_ok() {
        stream.publisher.send_replace(PublisherState::Online);
        tracing::info!(stream = %name, resumed, "publisher online");
        inner.announce(LifecycleEvent::PublisherOnline {
            stream: name.to_string(),
            principal: principal_name,
            resumed,
        });
        let shift = Shift {
            ids: base_id,
            // Publisher time t is hub time t + (hub now - publisher now).
            micros: i128::from(stream.micros_since_created(claimed_at))
                - i128::from(clock_us.unwrap_or(0)),
        };
        end = feed_loop(inner, &stream, link, kick, shift).await;
    }
    release(inner, name, &stream, conn_id);
    Ok(end)
}

/// Runs `auth` (or the loopback rule) for a publisher of `name`.
async fn authenticate(
    inner: &Inner,
    conn: &ConnInfo,
    name: &str,
    token: Option<String>,
) -> Result<Option<Principal>, String> {
    match &inner.cfg.publish_authenticate {
        Some(auth) => {
            let hello = Hello {
                token,
                ..Hello::default()
            };
            crate::viewer::check(auth, conn, hello, name, None).await
        }
        None if conn.remote.is_none_or(|r| r.ip().is_loopback()) => Ok(None),
        None => Err("publishers off loopback need credentials (publish_authenticate)".into()),
    }
}

/// Gives `name` to a publisher, or refuses.
fn take(
    inner: &Arc<Inner>,
    name: &str,
    shape: &StreamShape,
    principal: Option<Principal>,
    takeover: bool,
    viewer_auth: Option<crate::config::Authenticator>,
) -> Result<Taken, Refusal> {
    crate::error::check_stream_name(name).map_err(|e| (close_code::POLICY, e.to_string()))?;
    if *inner.shutdown.borrow() {
        return Err((close_code::GOING_AWAY, "hub shutting down".into()));
    }
    let mut claims = lock(&inner.claims);
    let (kick_tx, kick_rx) = watch::channel(false);
    let taken = || {
        (
            close_code::NAME_TAKEN,
            format!("stream name '{name}' is taken"),
        )
    };
    if let Some(stream) = inner.stream(name) {
        if stream.source == SourceKind::Local {
            return Err(taken());
        }
        let claim = claims.get_mut(name).ok_or_else(taken)?;
        let resumed = match &claim.holder {
            Some(h) if takeover && h.principal == principal => {
                h.kick.send_replace(true);
                false
            }
            Some(_) => return Err(taken()),
            None => true,
        };
        claim.generation += 1;
        claim.holder = Some(Holder {
            conn: claim.generation,
            principal,
            kick: kick_tx,
        });
        stream.set_size(shape.width, shape.height);
        if let Some(codec) = &shape.h264_codec {
            *lock(&stream.codec) = codec.clone();
        }
        // New ids start past every id viewers have seen, with a gap.
        return Ok(Taken {
            stream,
            kick: kick_rx,
            resumed,
            base_id: claim.max_id + 1,
            conn: claim.generation,
        });
    }
    let mut cfg = stream_config(shape, &inner.cfg);
    if viewer_auth.is_some() {
        cfg.authenticate = viewer_auth;
    }
    let stream = StreamShared::with_source(
        name.to_string(),
        shape.width,
        shape.height,
        cfg,
        SourceKind::Remote,
        shape.h264_codec.clone().unwrap_or_default(),
    );
    inner
        .insert_stream(name, Arc::clone(&stream))
        .map_err(|_| taken())?;
    claims.insert(
        name.to_string(),
        Claim {
            holder: Some(Holder {
                conn: 0,
                principal,
                kick: kick_tx,
            }),
            generation: 0,
            max_id: 0,
            max_source: 0,
        },
    );
    Ok(Taken {
        stream,
        kick: kick_rx,
        resumed: false,
        base_id: 0,
        conn: 0,
    })
}

/// The fan-out half's configuration for a remote stream of `shape`. Its
/// viewers are authenticated by the hub-wide authenticator
/// (`ServerConfig::authenticate`), when there is one: the program that
/// publishes is elsewhere, and a stream of this hub is never more open than
/// its REST routes.
fn stream_config(shape: &StreamShape, hub: &crate::ServerConfig) -> StreamConfig {
    StreamConfig {
        quality: shape.quality,
        preferred_image: shape.preferred_image,
        fps: shape.fps,
        bitrate: shape.bitrate,
        h264: shape.h264_codec.is_some(),
        adaptive: shape.adaptive.then(framehub_proto::AdaptConfig::default),
        input: match shape.input.as_str() {
            "first" => InputPolicy::First,
            "none" => InputPolicy::None,
            _ => InputPolicy::All,
        },
        authenticate: hub.authenticate.clone(),
        ..StreamConfig::default()
    }
}

/// The connection's feed ended: the stream goes offline and ends after the
/// grace period unless a publisher claims it again.
fn release(inner: &Arc<Inner>, name: &str, stream: &Arc<StreamShared>, conn: u64) {
    let generation = {
        let mut claims = lock(&inner.claims);
        let Some(claim) = claims.get_mut(name) else {
            return;
        };
        // Taken over: the new holder has the stream.
        if claim.holder.as_ref().is_none_or(|h| h.conn != conn) {
            return;
        }
        claim.holder = None;
        claim.generation += 1;
        claim.generation
    };
    stream.publisher.send_replace(PublisherState::Offline);
    tracing::info!(stream = %name, "publisher offline");
    inner.announce(LifecycleEvent::PublisherOffline {
        stream: name.to_string(),
    });
    let inner = Arc::clone(inner);
    let name = name.to_string();
    let grace = inner.cfg.publisher_grace;
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        let end = {
            let mut claims = lock(&inner.claims);
            let gone = claims
                .get(&name)
                .is_some_and(|c| c.generation == generation && c.holder.is_none());
            if gone {
                claims.remove(&name);
            }
            gone
        };
        if end {
            tracing::info!(stream = %name, "stream ended: its publisher did not come back");
            if let Some(s) = inner.stream(&name) {
                s.set_end_reason(close_code::STREAM_ENDED, "stream ended");
            }
            inner.remove_stream(&name);
        }
    });
}

/// How this connection's ids and times map to the stream's.
#[derive(Debug, Clone, Copy)]
struct Shift {
    /// Added to every frame id (and patch base id).
    ids: u64,
    /// Added to every timestamp, µs (the result is clamped at 0).
    micros: i128,
}

/// Carries the feed until the publisher leaves or is closed; returns the
/// close code and reason to send.
async fn feed_loop<L: FeedLink>(
    inner: &Arc<Inner>,
    stream: &Arc<StreamShared>,
    link: &mut L,
    mut kick: watch::Receiver<bool>,
    shift: Shift,
) -> (u16, String) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut closed = stream.closed.subscribe();
    let mut tick = tokio::time::interval(DEMAND_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_demand: Option<HubMessage> = None;
    // Keyframe requests sent and not answered yet, per video tier: asked
    // again at most once per KEYFRAME_RETRY while the publisher does not answer.
    // (None: not sent yet.)
    let mut asked: HashMap<u8, Option<Instant>> = HashMap::new();
    // When each unanswered request was first made (for `stalled`).
    let mut waiting_since: HashMap<u8, Instant> = HashMap::new();
    // Whether to look at what goes up: not after an ordinary unit (the hot
    // path), only after a wake-up, the tick, or a keyframe that answered a request.
    let mut refresh = true;
    loop {
        if std::mem::take(&mut refresh) {
            if let Err(lost) = send_up(
                stream,
                link,
                &mut last_demand,
                &mut asked,
                &mut waiting_since,
            )
            .await
            {
                return lost;
            }
        }
        refresh = tokio::select! {
            down = link.recv() => match down {
                Down::Unit(b) => match offer_unit(inner, stream, b, shift) {
                    Ok(Some(tier)) => {
                        asked.remove(&tier);
                        waiting_since.remove(&tier).is_some()
                    }
                    Ok(None) => false,
                    Err(why) => return (close_code::POLICY, why),
                },
                Down::Text(t) => match SourceMessage::parse(&t) {
                    Ok(SourceMessage::Info { width, height, h264_codec }) => {
                        stream.set_size(width, height);
                        if let Some(c) = h264_codec {
                            *lock(&stream.codec) = c;
                        }
                        false
                    }
                    Ok(SourceMessage::Claim { .. }) => {
                        return (close_code::POLICY, "a second claim".into());
                    }
                    Err(e) => return (close_code::POLICY, e.to_string()),
                },
                Down::Nothing => false,
                Down::End(code, reason) => return (code, reason),
            },
            () = stream.feed_wake.notified() => true,
            () = stream.events.notify.notified() => true,
            _ = tick.tick() => true,
            _ = kick.changed() => {
                return (close_code::NAME_TAKEN, "taken over by the same publisher".into());
            }
            _ = shutdown.changed() => return (close_code::GOING_AWAY, "hub shutting down".into()),
            _ = closed.changed() => return (close_code::GOING_AWAY, "stream removed".into()),
        };
    }
}

/// Sends up what changed since the last call: the demand (when it differs
/// from `last_demand`), keyframe requests (new ones at once, unanswered ones
/// again after [`KEYFRAME_RETRY`]; the publisher's state turns `stalled`
/// after [`KEYFRAME_STALLED`]), and the viewers' events.
/// Errors: the close code and reason when the feed is lost.
async fn send_up<L: FeedLink>(
    stream: &StreamShared,
    link: &mut L,
    last_demand: &mut Option<HubMessage>,
    asked: &mut HashMap<u8, Option<Instant>>,
    waiting_since: &mut HashMap<u8, Instant>,
) -> Result<(), (u16, String)> {
    {
        let (outputs, patch_viewers) = stream.demand_snapshot();
        let demand = HubMessage::Demand {
            outputs,
            patch_viewers,
        };
        let mut up = Vec::new();
        if last_demand.as_ref() != Some(&demand) {
            up.push(demand.clone());
            *last_demand = Some(demand);
        }
        let now = Instant::now();
        for tier in stream.take_keyframe_requests() {
            asked.entry(tier).or_insert(None);
            waiting_since.entry(tier).or_insert(now);
        }
        let stalled = waiting_since
            .values()
            .any(|t| now.duration_since(*t) >= KEYFRAME_STALLED);
        let state = if stalled {
            PublisherState::Stalled
        } else {
            PublisherState::Online
        };
        stream
            .publisher
            .send_if_modified(|s| std::mem::replace(s, state) != state);
        for (tier, at) in asked.iter_mut() {
            if at.is_none_or(|t| now.duration_since(t) >= KEYFRAME_RETRY) {
                *at = Some(now);
                up.push(HubMessage::Keyframe { tier: *tier });
            }
        }
        up.extend(
            stream
                .events
                .drain()
                .into_iter()
                .map(|ev| HubMessage::Event {
                    client_id: ev.client_id,
                    principal: ev.principal,
                    received_us: ev.received_us,
                    event: ev.event,
                    hub: ev.hub,
                }),
        );
        for msg in up {
            if link.send(&msg).await.is_err() {
                return Err((close_code::GOING_AWAY, "feed lost".into()));
            }
        }
    }
    Ok(())
}

/// Checks one unit from the publisher and offers it to the viewers;
/// returns the video tier when it was a keyframe.
/// Errors: the reason to close the feed with 1008.
fn offer_unit(
    inner: &Inner,
    stream: &StreamShared,
    msg: Bytes,
    shift: Shift,
) -> Result<Option<u8>, String> {
    let unit = feed::parse_unit(&msg).map_err(|e| e.to_string())?;
    let h = &unit.header;
    let variant = Variant::from_id(h.variant);
    let is_video = variant.format == OutputFormat::H264;
    if (is_video && usize::from(variant.tier) >= stream.video.len())
        || (!is_video && !stream.slots.contains_key(&variant))
    {
        return Err(format!("no such output: {:?}", h.variant));
    }
    let data = msg.slice(unit.data.clone());
    check_payload(&unit.header, &data)?;
    let patch = unit.patch.clone().map(|r| msg.slice(r));
    if let Some(p) = &patch {
        check_patch(p, unit.header.patch.as_ref().map_or(0, |p| p.rects.len()))?;
    }
    let codec = lock(&stream.codec).clone();
    let mut info = unit.header.to_info(data.len(), &codec);
    info.frame_id += shift.ids;
    info.source_id += shift.ids;
    info.timestamp_us =
        u64::try_from((i128::from(info.timestamp_us) + shift.micros).max(0)).unwrap_or(u64::MAX);
    if let FrameKind::Image { patch: Some(p), .. } = &mut info.kind {
        p.base_id += shift.ids;
    }
    let new_picture = {
        let mut claims = lock(&inner.claims);
        claims.get_mut(&stream.name).is_some_and(|c| {
            let newer = info.source_id > c.max_source;
            c.max_source = c.max_source.max(info.source_id);
            c.max_id = c.max_id.max(info.frame_id).max(info.source_id);
            newer
        })
    };
    // The first unit of each picture counts as its publish (`/streams`' fps).
    if new_picture {
        stream.count_publish(Instant::now());
    }
    let still = matches!(info.kind, FrameKind::Image { still: true, .. });
    if let Some(c) = stream.encodes.get(&variant).filter(|_| !still) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    let enc = Arc::new(Encoded { info, data, patch });
    let keyframe = matches!(enc.info.kind, FrameKind::Video { keyframe: true, .. });
    if is_video {
        stream.offer_video(variant.tier, enc);
    } else {
        stream.offer_image(variant, enc);
    }
    Ok(keyframe.then_some(variant.tier))
}

/// JPEG starts with SOI and a marker (ITU-T T.81 §B.1.1.3), PNG with its
/// 8-byte signature (PNG spec §5.2); H.264 must be Annex-B access units
/// (ITU-T H.264 §B.1) whose keyframes carry an SPS, a PPS and an IDR slice.
fn check_payload(h: &feed::UnitHeader, data: &[u8]) -> Result<(), String> {
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF];
    const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    match h.variant.format {
        OutputFormat::H264 => {
            use framehub_codec::annexb::{nal_units, NAL_PPS, NAL_SPS};
            if !(data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1])) {
                return Err("video unit is not Annex B (no start code)".into());
            }
            let types: Vec<u8> = nal_units(data).map(|(t, _)| t).collect();
            if types.is_empty() {
                return Err("video unit has no NAL unit".into());
            }
            if h.keyframe
                && !(types.contains(&NAL_SPS) && types.contains(&NAL_PPS) && types.contains(&5))
            {
                return Err("keyframe without SPS, PPS and IDR slice".into());
            }
            Ok(())
        }
        OutputFormat::Image(_) => {
            let mime = h.mime.as_deref().unwrap_or("");
            let ok = match mime {
                "image/png" => data.starts_with(PNG),
                "image/jpeg" => data.starts_with(JPEG),
                _ => data.starts_with(PNG) || data.starts_with(JPEG),
            };
            if ok {
                Ok(())
            } else {
                Err(format!("image unit is not a {mime} file (bad signature)"))
            }
        }
    }
}

/// A patch payload is `rects` images, each prefixed by its u32 LE length,
/// filling it exactly (`docs/protocol.md` §4.3).
fn check_patch(p: &[u8], rects: usize) -> Result<(), String> {
    let mut rest = p;
    for _ in 0..rects {
        let len = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or("patch shorter than its rects")? as usize;
        rest = rest
            .get(4 + len..)
            .ok_or("patch image longer than the patch")?;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err("patch has bytes past its rects".into())
    }
}

async fn close(inner: &Inner, socket: &mut WebSocket, code: u16, reason: &str) {
    if code != close_code::NORMAL {
        inner.counters.count_close(code);
        tracing::info!(code, %reason, "closing a publisher");
    }
    let frame = CloseFrame {
        code,
        reason: reason.chars().take(120).collect::<String>().into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(m)) = socket.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
