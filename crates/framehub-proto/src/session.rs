//! The per-viewer protocol state machine, free of I/O and of any clock.
//!
//! A [`Session`] is fed what happens — text messages from the viewer
//! ([`Session::handle_text`]), the outcome of authentication
//! ([`Session::handle_auth`]), encoded frames the stream made available
//! ([`Session::handle_frame`]) and the passing of time
//! ([`Session::handle_timeout`]) — and is polled for what to do:
//!
//! 1. after every `handle_*` call, call [`Session::poll_output`] until it
//!    returns `None`, carrying out each [`Output`] (send a text or a frame,
//!    deliver an event, run the authenticator, close);
//! 2. then sleep until [`Session::poll_timeout`] (or until the next input)
//!    and call [`Session::handle_timeout`] when it passes.
//!
//! Time always comes in as an argument (`now`), so tests drive it with a
//! virtual clock.
//!
//! Flow control (`docs/protocol.md` §6): at most `max_inflight` frames are
//! sent and not yet acked. A frame made available while the viewer has no
//! credit is not queued: the session only remembers the **latest** frame and
//! sends it when credit returns, unless it already sent it. Frames in flight
//! longer than `inflight_timeout` are forgotten and their credit restored.
//! On a video session frames form a chain: a viewer that misses one waits
//! for a keyframe and asks for one ([`Output::RequestKeyframe`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::adapt::{AdaptConfig, Adapter, QualityTier, Step};
use crate::envelope::FrameHeader;
use crate::event::InputEvent;
use crate::message::{close_code, Ack, ClientMessage, Hello, ServerMessage, Stats, Transport};
use crate::negotiate::{negotiate, ImageFormat, Negotiated, Offer, OutputFormat};
use crate::principal::Principal;

/// Default credit: frames in flight per viewer (§6).
pub const DEFAULT_MAX_INFLIGHT: u32 = 2;
/// Frames in flight longer than this are forgotten (§6).
pub const DEFAULT_INFLIGHT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the server waits for `hello` (§2.1).
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Most outputs (texts, events) queued in one session; events past it are dropped and counted.
pub const MAX_QUEUED_OUTPUTS: usize = 256;

/// Settings of one session, fixed when the viewer connects.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The server's id for this viewer (sent in `config.session`).
    pub session_id: u64,
    /// The stream's name.
    pub stream: String,
    /// `"framehub/<version>"`.
    pub server: String,
    /// Credit: most frames sent and not acked. Clamped to 1..=16.
    pub max_inflight: u32,
    /// Frames in flight longer than this are forgotten.
    pub inflight_timeout: Duration,
    /// Close with 1008 when no hello arrived within this time.
    pub hello_timeout: Duration,
    /// Send a `stats` message this often (None: never).
    pub stats_interval: Option<Duration>,
    /// What the stream can produce.
    pub offer: Offer,
    /// The stream's size when the viewer connects, in pixels.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Whether this viewer's input is delivered at first.
    pub controller: bool,
    /// Sustained input events per second allowed (token bucket refill rate).
    pub events_per_second: f64,
    /// Events allowed in a burst above the sustained rate (bucket size).
    pub event_burst: f64,
    /// Close a viewer that acked nothing for this long while frames were sent to it.
    pub idle_timeout: Duration,
    /// Adaptive quality (None: off): the controller's settings. It runs for
    /// JPEG and H.264 sessions when `tiers` has more than one tier.
    pub adapt: Option<AdaptConfig>,
    /// The quality tiers the stream offers, best first (empty: one tier).
    pub tiers: Vec<QualityTier>,
}

/// Default sustained event rate per viewer (a browser client coalesces
/// pointer moves and wheel to one per animation frame, ~60/s).
pub const DEFAULT_EVENTS_PER_SECOND: f64 = 200.0;
/// Default event burst per viewer.
pub const DEFAULT_EVENT_BURST: f64 = 400.0;
/// Default idle timeout: no ack for this long while frames are pending closes the viewer.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl SessionConfig {
    /// A configuration with the spec's defaults for the given stream.
    pub fn new(
        session_id: u64,
        stream: impl Into<String>,
        offer: Offer,
        width: u32,
        height: u32,
    ) -> Self {
        SessionConfig {
            session_id,
            stream: stream.into(),
            server: format!("framehub/{}", env!("CARGO_PKG_VERSION")),
            max_inflight: DEFAULT_MAX_INFLIGHT,
            inflight_timeout: DEFAULT_INFLIGHT_TIMEOUT,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            stats_interval: None,
            offer,
            width,
            height,
            controller: true,
            events_per_second: DEFAULT_EVENTS_PER_SECOND,
            event_burst: DEFAULT_EVENT_BURST,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            adapt: None,
            tiers: Vec::new(),
        }
    }
}

/// What kind of encoded frame is on offer.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameKind {
    /// A whole image.
    Image {
        /// Its MIME type.
        mime: &'static str,
        /// A lossless still of a frame already sent lossy (issue 5).
        still: bool,
        /// The same frame as a region update over an earlier one, when the
        /// stream made one (protocol §4.3); sent instead of the whole image
        /// to a viewer that takes patches and holds exactly that earlier
        /// frame.
        patch: Option<PatchInfo>,
    },
    /// One H.264 access unit.
    Video {
        /// `avc1.PPCCLL`.
        codec: String,
        /// An IDR with SPS/PPS in band.
        keyframe: bool,
        /// Frame duration in µs, when known.
        duration_us: Option<u64>,
    },
}

/// A frame encoded as a region update (`image_patch`) over an earlier frame.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchInfo {
    /// The `frame_id` of the picture the patch is drawn over.
    pub base_id: u64,
    /// The changed rectangles, `[x, y, width, height]` in pixels, one image each.
    pub rects: Vec<[u32; 4]>,
    /// Payload size in bytes (the length-prefixed images).
    pub bytes: usize,
}

/// An encoded frame the stream has made available, described without its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameInfo {
    /// Stream-wide id: the publish counter for images, the access-unit counter
    /// of the stream's encoder for video (consecutive within one encoder).
    pub frame_id: u64,
    /// The publish counter of the picture this was made from (equal to
    /// `frame_id` for images); orders stills against video units.
    pub source_id: u64,
    /// Publish time, µs since the stream was created.
    pub timestamp_us: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Image or video, with its details.
    pub kind: FrameKind,
    /// Encoded size in bytes (for bit-rate metrics).
    pub bytes: usize,
    /// Time the encode took, in ms (for metrics).
    pub encode_ms: f64,
}

impl FrameInfo {
    fn order_key(&self) -> (u64, u8) {
        let still = matches!(self.kind, FrameKind::Image { still: true, .. });
        (self.frame_id, u8::from(still))
    }
    fn is_keyframe(&self) -> bool {
        match &self.kind {
            FrameKind::Video { keyframe, .. } => *keyframe,
            FrameKind::Image { .. } => true,
        }
    }
    /// The patch to send instead of the whole image to a viewer holding the
    /// picture `held` (None: it must get the whole image).
    fn patch_over(&self, held: Option<u64>) -> Option<&PatchInfo> {
        match &self.kind {
            FrameKind::Image {
                patch: Some(p),
                still: false,
                ..
            } if Some(p.base_id) == held => Some(p),
            _ => None,
        }
    }

    fn header(&self, seq: u64, pixel_ratio: Option<f64>, patch: Option<&PatchInfo>) -> FrameHeader {
        if let (Some(p), FrameKind::Image { mime, .. }) = (patch, &self.kind) {
            return FrameHeader::ImagePatch {
                seq,
                timestamp_us: self.timestamp_us,
                width: self.width,
                height: self.height,
                mime: (*mime).to_string(),
                rects: p.rects.clone(),
                pixel_ratio,
            };
        }
        match &self.kind {
            FrameKind::Image { mime, still, .. } => FrameHeader::ImageFrame {
                seq,
                timestamp_us: self.timestamp_us,
                width: self.width,
                height: self.height,
                mime: (*mime).to_string(),
                pixel_ratio,
                still: still.then_some(true),
            },
            FrameKind::Video {
                codec,
                keyframe,
                duration_us,
            } => FrameHeader::VideoChunk {
                seq,
                timestamp_us: self.timestamp_us,
                width: self.width,
                height: self.height,
                codec: codec.clone(),
                bitstream: "annexb".into(),
                keyframe: *keyframe,
                duration_us: *duration_us,
            },
        }
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Run the stream's authenticator for this hello, then call
    /// [`Session::handle_auth`]. Nothing else comes out until then.
    Authenticate(Hello),
    /// Send this text message.
    Text(ServerMessage),
    /// Send the encoded frame `frame_id` (the one last given to
    /// [`Session::handle_frame`] with that id) in an envelope with this header.
    Frame {
        /// Which frame.
        frame_id: u64,
        /// The envelope header, `seq` included.
        header: FrameHeader,
    },
    /// Deliver this validated event to the publisher.
    Event {
        /// The event.
        event: InputEvent,
        /// When it arrived.
        received: Instant,
    },
    /// Ask the stream's video encoder for a keyframe (coalesced per stream).
    RequestKeyframe,
    /// Close the connection with this code and reason. The session is over.
    Close {
        /// A close code from [`close_code`].
        code: u16,
        /// A short human-readable reason (≤ 123 bytes, the RFC 6455 limit).
        reason: String,
    },
}

/// Counters of one session, for metrics. Rates are over the last second.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SessionMetrics {
    /// The session id.
    pub client_id: u64,
    /// Seconds since the viewer connected.
    pub elapsed_s: f64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames skipped for this viewer (no credit, hidden, waiting for a keyframe).
    pub frames_dropped: u64,
    /// Frames acked.
    pub frames_acked: u64,
    /// Keyframes sent (video).
    pub keyframes_sent: u64,
    /// Region updates (`image_patch`) sent instead of whole images.
    pub patches_sent: u64,
    /// Adaptive quality: the tier this viewer receives (0 = best).
    pub tier: u8,
    /// Adaptive quality: tier changes so far.
    pub tier_changes: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Frames sent per second.
    pub fps_sent: f64,
    /// Frames acked per second.
    pub fps_acked: f64,
    /// Bits sent per second.
    pub bitrate_bps: f64,
    /// Encode time of the last frame sent, ms.
    pub encode_ms: f64,
    /// Smoothed RTT, ms (RFC 6298 smoothing, α = 1/8).
    pub rtt_ms: f64,
    /// The client's last reported decoder queue length.
    pub decode_queue_size: u32,
    /// Frames in flight now.
    pub inflight: u32,
    /// Target bit rate, bit/s (0 on image sessions).
    pub target_bitrate: u64,
    /// Target frame rate, frames/s (0 when unpaced).
    pub target_fps: f64,
    /// Events refused: invalid, or from a viewer without control.
    pub events_dropped: u64,
    /// Messages of an unknown `type`.
    pub unknown_messages: u64,
    /// Whether the page is visible.
    pub visible: bool,
}

#[derive(Debug, Clone, Copy)]
struct Inflight {
    seq: u64,
    sent_at: Instant,
}

/// Sliding one-second window of (time, amount) samples, bounded.
#[derive(Debug, Default)]
struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    const WINDOW: Duration = Duration::from_secs(1);
    const MAX_SAMPLES: usize = 4096;
    fn add(&mut self, now: Instant, amount: u64) {
        if self.samples.len() >= Self::MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((now, amount));
    }
    /// (count per second, amount per second) over the last second.
    fn rates(&mut self, now: Instant) -> (f64, f64) {
        while let Some((t, _)) = self.samples.front() {
            if now.saturating_duration_since(*t) > Self::WINDOW {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        let total: u64 = self.samples.iter().map(|(_, a)| *a).sum();
        (self.samples.len() as f64, total as f64)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    AwaitingHello { deadline: Instant },
    Authenticating,
    Open,
    Closed,
}

/// The protocol state of one viewer. See the module docs for the calling order.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    started: Instant,
    negotiated: Option<Negotiated>,
    principal: Option<Principal>,
    pixel_ratio: Option<f64>,
    visible: bool,
    controller: bool,
    /// Outputs waiting to be polled, except frames.
    out: VecDeque<Output>,
    /// Authentication request waiting to be polled.
    pending_auth: Option<Hello>,
    /// The viewer's hello, kept for negotiation.
    hello: Option<Hello>,
    /// Events that arrived while authenticating (bounded).
    held_events: VecDeque<(InputEvent, Instant)>,
    inflight: VecDeque<Inflight>,
    next_seq: u64,
    /// Image: the latest frame on offer.
    latest: Option<FrameInfo>,
    /// Image: the order key of the last frame sent.
    last_sent: Option<(u64, u8)>,
    /// The adaptive-quality controller, when it runs for this session.
    adapter: Option<Adapter>,
    /// Image: the frame id of the picture the client holds once it has drawn
    /// everything sent (None: unknown, the next frame must be whole).
    picture: Option<u64>,
    /// Video: chunks accepted and waiting to be sent, in order (≤ credit).
    video_queue: VecDeque<FrameInfo>,
    /// Video: the id of the last chunk accepted into the chain.
    video_last: Option<u64>,
    /// Video: deltas are refused until a keyframe.
    need_keyframe: bool,
    /// Video: the picture (publish counter) of the last unit accepted.
    video_source: u64,
    /// Video with `framehub/still-png`: a lossless still of that picture, to send when credit allows.
    pending_still: Option<FrameInfo>,
    /// Video: a keyframe request is outstanding (not repeated until one arrives or it times out).
    keyframe_requested_at: Option<Instant>,
    /// Video: a keyframe was accepted since the last request (so a request
    /// the viewer itself makes now is a new one, not a repeat).
    keyframe_since_request: bool,
    next_stats: Option<Instant>,
    srtt: Option<Duration>,
    decode_queue_size: u32,
    encode_ms: f64,
    sent_window: RateWindow,
    acked_window: RateWindow,
    frames_sent: u64,
    frames_dropped: u64,
    frames_acked: u64,
    keyframes_sent: u64,
    patches_sent: u64,
    tier_changes: u64,
    bytes_sent: u64,
    events_dropped: u64,
    unknown_messages: u64,
    /// Token bucket of the event rate limit: tokens left, and when it was last refilled.
    event_tokens: f64,
    event_refill: Instant,
    /// The last ack, or the handshake when there was none yet.
    last_ack: Instant,
    /// Frames were sent since the last ack (the idle timer runs only then).
    sent_since_ack: bool,
}

/// Shortest period between two `stats` messages: a shorter (or zero)
/// `stats_interval` is raised to this, 10 ms.
pub const MIN_STATS_INTERVAL: Duration = Duration::from_millis(10);

/// `t + d`, or a time a year after `t` when that does not fit in an
/// `Instant` (a caller may configure a huge timeout to mean "never").
pub fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(t)
}

/// Longest reason allowed in a close frame (RFC 6455 §5.5: 125-byte control payload − 2-byte code).
const MAX_REASON: usize = 123;

fn truncate_reason(mut s: String) -> String {
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

impl Session {
    /// A new session for a viewer that connected at `now`; it waits for `hello`.
    pub fn new(now: Instant, mut cfg: SessionConfig) -> Self {
        cfg.max_inflight = cfg.max_inflight.clamp(1, 16);
        let deadline = later(now, cfg.hello_timeout);
        let controller = cfg.controller;
        let event_tokens = cfg.event_burst;
        Session {
            cfg,
            state: State::AwaitingHello { deadline },
            started: now,
            negotiated: None,
            principal: None,
            pixel_ratio: None,
            visible: true,
            controller,
            out: VecDeque::new(),
            pending_auth: None,
            hello: None,
            held_events: VecDeque::new(),
            inflight: VecDeque::new(),
            next_seq: 0,
            latest: None,
            last_sent: None,
            picture: None,
            adapter: None,
            video_queue: VecDeque::new(),
            video_last: None,
            need_keyframe: true,
            video_source: 0,
            pending_still: None,
            keyframe_requested_at: None,
            keyframe_since_request: false,
            next_stats: None,
            srtt: None,
            decode_queue_size: 0,
            encode_ms: 0.0,
            sent_window: RateWindow::default(),
            acked_window: RateWindow::default(),
            frames_sent: 0,
            frames_dropped: 0,
            frames_acked: 0,
            keyframes_sent: 0,
            patches_sent: 0,
            tier_changes: 0,
            bytes_sent: 0,
            events_dropped: 0,
            unknown_messages: 0,
            event_tokens,
            event_refill: now,
            last_ack: now,
            sent_since_ack: false,
        }
    }

    /// Takes one token from the event bucket; false when the viewer sends
    /// events faster than `events_per_second` beyond its burst.
    fn take_event_token(&mut self, now: Instant) -> bool {
        let dt = now
            .saturating_duration_since(self.event_refill)
            .as_secs_f64();
        self.event_refill = now;
        self.event_tokens =
            (self.event_tokens + dt * self.cfg.events_per_second).min(self.cfg.event_burst);
        if self.event_tokens >= 1.0 {
            self.event_tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.cfg.session_id
    }

    /// What was negotiated, once the handshake is done.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The principal the authenticator returned, once open.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Whether the handshake is done and the session not closed.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the session has closed (an [`Output::Close`] was produced).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The quality tier this viewer receives (0 = best; always 0 without
    /// adaptive quality).
    pub fn tier(&self) -> u8 {
        self.adapter.as_ref().map_or(0, Adapter::tier)
    }

    /// Tells the viewer its new tier with `set_quality`.
    fn announce_tier(&mut self, tier: u8, reason: &str) {
        let Some(t) = self.cfg.tiers.get(usize::from(tier)).copied() else {
            return;
        };
        self.tier_changes += 1;
        if self.is_video() {
            // Another tier is another H.264 chain: start it at a keyframe,
            // asked for now (the tier's chain has not been asked yet).
            self.need_keyframe = true;
            self.keyframe_requested_at = Some(self.last_ack);
            self.keyframe_since_request = false;
            self.push_out(Output::RequestKeyframe);
        }
        self.push_out(Output::Text(ServerMessage::SetQuality {
            bitrate: t.bitrate,
            fps: self.cfg.offer.fps,
            tier: Some(tier),
            quality: Some(t.jpeg_quality),
            scale: Some(1.0 / f64::from(t.scale_divisor.max(1))),
            reason: Some(reason.to_string()),
        }));
    }

    /// Forgets the image frame on offer if it was not sent yet: the driver
    /// moved to another output (a quality tier) and no longer holds it. The
    /// next [`Session::handle_frame`] offers the new output's frame.
    pub fn forget_offer(&mut self) {
        if self
            .latest
            .as_ref()
            .is_some_and(|l| self.last_sent.is_none_or(|s| l.order_key() > s))
        {
            self.latest = None;
        }
    }

    /// The client listed `framehub/patch` (region updates).
    fn takes_patches(&self) -> bool {
        self.negotiated.as_ref().is_some_and(|n| n.patch)
    }

    /// Whether this viewer could take a frame now: open, visible and with
    /// credit left. The driver uses it to tell the stream's encoder there is
    /// demand for this viewer's format.
    pub fn wants_frames(&self) -> bool {
        self.is_open() && self.visible && self.credit() > 0
    }

    fn credit(&self) -> u32 {
        let used = self.inflight.len() + self.video_queue.len();
        self.cfg.max_inflight.saturating_sub(used as u32)
    }

    fn close(&mut self, code: u16, reason: impl Into<String>) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.out.clear();
        self.pending_auth = None;
        self.out.push_back(Output::Close {
            code,
            reason: truncate_reason(reason.into()),
        });
    }

    /// Closes the session from the driver's side (server shutdown, a limit).
    pub fn handle_close(&mut self, code: u16, reason: impl Into<String>) {
        self.close(code, reason);
    }

    fn push_out(&mut self, o: Output) {
        if self.out.len() >= MAX_QUEUED_OUTPUTS && matches!(o, Output::Event { .. }) {
            self.events_dropped += 1;
            return;
        }
        self.out.push_back(o);
    }

    /// Feeds one text message from the viewer.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        if self.state == State::Closed {
            return;
        }
        match ClientMessage::parse(text) {
            Ok(msg) => self.handle_message(now, msg),
            Err(e) => self.close(e.close_code(), e.to_string()),
        }
    }

    /// Feeds a text message that was too big to be read whole (close 1009).
    pub fn handle_oversized(&mut self, len: usize) {
        self.close(
            close_code::TOO_BIG,
            format!("message of {len} bytes is over the 64 KiB limit"),
        );
    }

    /// Feeds one parsed message from the viewer.
    pub fn handle_message(&mut self, now: Instant, msg: ClientMessage) {
        match (self.state.clone(), msg) {
            (State::Closed, _) => {}
            (State::AwaitingHello { .. }, ClientMessage::Hello(h)) => {
                self.pixel_ratio = h.device_pixel_ratio;
                self.state = State::Authenticating;
                self.hello = Some(h.clone());
                self.pending_auth = Some(h);
            }
            (State::AwaitingHello { .. }, other) => {
                let ty = message_type(&other);
                self.close(close_code::POLICY, format!("expected hello, got '{ty}'"));
            }
            (_, ClientMessage::Hello(_)) => self.close(close_code::POLICY, "hello sent twice"),
            (_, ClientMessage::Ack(ack)) => self.handle_ack(now, ack),
            (_, ClientMessage::RequestKeyframe { .. }) => self.viewer_wants_keyframe(now, false),
            (_, ClientMessage::DecoderReset) => self.viewer_wants_keyframe(now, true),
            (_, ClientMessage::Event(_)) | (_, ClientMessage::SetViewport(_))
                if !self.take_event_token(now) =>
            {
                self.close(close_code::POLICY, "rate limit: too many events")
            }
            (_, ClientMessage::Event(v)) => match InputEvent::from_json(v) {
                Ok(ev) => self.deliver(now, ev),
                Err(_) => self.events_dropped += 1,
            },
            (_, ClientMessage::SetViewport(r)) => self.deliver(now, InputEvent::Resize(r)),
            (_, ClientMessage::Visibility { visible }) => self.set_visible(now, visible),
            (_, ClientMessage::BandwidthEstimate { bitrate }) => self.on_estimate(now, bitrate),
            (_, ClientMessage::Unknown(_)) => self.unknown_messages += 1,
        }
    }

    fn deliver(&mut self, now: Instant, ev: InputEvent) {
        match self.state {
            State::Authenticating => {
                if self.held_events.len() < 64 {
                    self.held_events.push_back((ev, now));
                } else {
                    self.events_dropped += 1;
                }
            }
            State::Open if self.controller => self.push_out(Output::Event {
                event: ev,
                received: now,
            }),
            _ => self.events_dropped += 1,
        }
    }

    /// Feeds the authenticator's verdict: a principal (or `None` for an
    /// anonymous viewer of an open stream) when admitted, `Err` with a reason
    /// (not the token) when refused (close 4401).
    pub fn handle_auth(&mut self, now: Instant, result: Result<Option<Principal>, String>) {
        if self.state != State::Authenticating {
            return;
        }
        let principal = match result {
            Ok(p) => p,
            Err(_) => return self.close(close_code::UNAUTHORIZED, "unauthorized"),
        };
        let hello = self.hello.clone().unwrap_or_default();
        let Some(neg) = negotiate(&hello, &self.cfg.offer) else {
            return self.close(close_code::UNSUPPORTED, "no supported transport");
        };
        self.principal = principal;
        self.state = State::Open;
        let (codec, mime) = match &neg.format {
            OutputFormat::Image(f) => (None, Some(f.mime().to_string())),
            OutputFormat::H264 => (self.cfg.offer.h264_codec.clone(), None),
        };
        self.push_out(Output::Text(ServerMessage::Config {
            transport: neg.transport,
            width: self.cfg.width,
            height: self.cfg.height,
            coords: "frame-pixels".into(),
            codec,
            pixel_ratio: None,
            stream: self.cfg.stream.clone(),
            session: self.cfg.session_id,
            server: self.cfg.server.clone(),
            controller: self.controller,
            mime,
        }));
        if neg.transport == Transport::Webcodecs {
            self.push_out(Output::RequestKeyframe);
            self.keyframe_requested_at = Some(now);
            self.keyframe_since_request = false;
        }
        // Tiers for lossy outputs: JPEG (quality, size) and H.264 (bit rate).
        let lossy = matches!(
            neg.format,
            OutputFormat::Image(ImageFormat::Jpeg) | OutputFormat::H264
        );
        if let (Some(cfg), true) = (&self.cfg.adapt, lossy && self.cfg.tiers.len() > 1) {
            let tiers = u8::try_from(self.cfg.tiers.len()).unwrap_or(u8::MAX);
            self.adapter = Some(Adapter::new(now, cfg.clone(), tiers));
        }
        self.negotiated = Some(neg);
        self.next_stats = self.stats_deadline(now);
        while let Some((ev, at)) = self.held_events.pop_front() {
            self.deliver(at, ev);
        }
    }

    /// Tells the session whether this viewer's input reaches the publisher;
    /// the viewer is told with a `control` message when it changes.
    pub fn set_controller(&mut self, controller: bool) {
        if controller == self.controller {
            return;
        }
        self.controller = controller;
        if self.is_open() {
            self.push_out(Output::Text(ServerMessage::Control { controller }));
        }
    }

    /// The transport's bandwidth estimate (`bitrate` bit/s): the best video
    /// tier whose bit rate fits in it goes to the adapter, which steps
    /// toward it with its usual holds. Image sessions ignore it (their
    /// tiers have no bit rate).
    fn on_estimate(&mut self, now: Instant, bitrate: u64) {
        if !self.is_video() {
            return;
        }
        let fit = self
            .cfg
            .tiers
            .iter()
            .position(|t| t.bitrate <= bitrate)
            .unwrap_or(self.cfg.tiers.len().saturating_sub(1));
        let fit = u8::try_from(fit).unwrap_or(u8::MAX);
        let Some(a) = self.adapter.as_mut() else {
            return;
        };
        match a.on_estimate(now, fit) {
            Step::Stay => {}
            Step::Down(t) => self.announce_tier(t, "bandwidth estimate"),
            Step::Up(t) => self.announce_tier(t, "bandwidth estimate"),
        }
    }

    fn set_visible(&mut self, now: Instant, visible: bool) {
        if visible == self.visible {
            return;
        }
        self.visible = visible;
        if !visible {
            // A hidden viewer holds no credit: forget what is in flight.
            self.inflight.clear();
            self.frames_dropped += self.video_queue.len() as u64;
            self.video_queue.clear();
        } else if self.is_video() {
            self.want_keyframe(now, false);
        }
    }

    fn is_video(&self) -> bool {
        matches!(
            self.negotiated,
            Some(Negotiated {
                transport: Transport::Webcodecs,
                ..
            })
        )
    }

    fn want_keyframe(&mut self, now: Instant, reset: bool) {
        if !self.is_video() {
            return;
        }
        if reset {
            self.inflight.clear();
            self.video_queue.clear();
        }
        self.need_keyframe = true;
        self.request_keyframe(now);
    }

    /// The viewer asks for a keyframe itself (`request_keyframe`, a WebRTC
    /// PLI, or `decoder_reset`): as [`Self::want_keyframe`], except that a
    /// keyframe accepted since the last request answered that one, so this
    /// is a new request and goes out at once (a WebRTC peer whose first
    /// keyframe went before ICE connected asks again on connecting).
    fn viewer_wants_keyframe(&mut self, now: Instant, reset: bool) {
        if self.keyframe_since_request {
            self.keyframe_requested_at = None;
        }
        self.want_keyframe(now, reset);
    }

    fn request_keyframe(&mut self, now: Instant) {
        // One outstanding request at a time; repeated after a second without a keyframe.
        let due = self
            .keyframe_requested_at
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if due {
            self.keyframe_since_request = false;
            self.keyframe_requested_at = Some(now);
            self.push_out(Output::RequestKeyframe);
        }
    }

    fn handle_ack(&mut self, now: Instant, ack: Ack) {
        if let Some(q) = ack.decode_queue_size {
            self.decode_queue_size = q;
        }
        self.last_ack = now;
        self.sent_since_ack = false;
        // Acks arrive in order over TCP; an ack of `seq` also settles older frames.
        if ack.displayed == Some(serde_json::Value::Bool(false)) {
            // The client skipped a frame (superseded, or its decode failed):
            // what it holds is no longer known, so no patch until a whole frame.
            self.picture = None;
        }
        let Some(pos) = self.inflight.iter().position(|f| f.seq == ack.seq) else {
            return;
        };
        let sample = now.saturating_duration_since(self.inflight[pos].sent_at);
        let srtt = match self.srtt {
            None => sample,
            // RFC 6298 §2.3: SRTT <- (1 - 1/8) * SRTT + 1/8 * R'
            Some(s) => (s * 7 + sample) / 8,
        };
        self.srtt = Some(srtt);
        if let Some(a) = self.adapter.as_mut() {
            a.on_rtt_sample(now, sample);
            match a.update(now, srtt, self.decode_queue_size) {
                Step::Stay => {}
                Step::Down(t) => self.announce_tier(t, "congested"),
                Step::Up(t) => self.announce_tier(t, "recovered"),
            }
        }
        for _ in 0..=pos {
            self.inflight.pop_front();
            self.frames_acked += 1;
            self.acked_window.add(now, 1);
        }
    }

    /// Offers a newly encoded frame of this viewer's format.
    ///
    /// Image sessions keep only the latest (by `frame_id`, a still after the
    /// lossy frame of the same id). Video sessions accept a chunk when it
    /// continues their chain and they have credit; otherwise they drop it and
    /// wait for a keyframe.
    pub fn handle_frame(&mut self, now: Instant, frame: FrameInfo) {
        if frame.width > 0 && frame.height > 0 {
            self.cfg.width = frame.width;
            self.cfg.height = frame.height;
        }
        if self.is_video() {
            if let FrameKind::Image { still: true, .. } = frame.kind {
                // A still of the picture this viewer's video last showed (or newer).
                let wants = self.negotiated.as_ref().is_some_and(|n| n.still_png);
                if wants && self.video_source > 0 && frame.source_id >= self.video_source {
                    self.pending_still = Some(frame);
                }
                return;
            }
            if matches!(frame.kind, FrameKind::Image { .. }) {
                return; // lossy images are not for video sessions
            }
            return self.handle_video_chunk(now, frame);
        }
        let newer = self
            .latest
            .as_ref()
            .is_none_or(|l| frame.order_key() > l.order_key());
        if newer {
            let unsent = self
                .latest
                .as_ref()
                .is_some_and(|old| self.last_sent.is_none_or(|s| old.order_key() > s));
            if unsent && self.is_open() {
                // Replaced before it could be sent.
                self.frames_dropped += 1;
            }
            self.latest = Some(frame);
        }
    }

    fn handle_video_chunk(&mut self, now: Instant, chunk: FrameInfo) {
        let continues = self
            .video_last
            .is_some_and(|l| l.checked_add(1) == Some(chunk.frame_id));
        let key = chunk.is_keyframe();
        if !self.visible || !self.is_open() {
            self.need_keyframe = true;
            return;
        }
        if (self.need_keyframe || !continues) && !key {
            self.frames_dropped += 1;
            self.need_keyframe = true;
            return self.request_keyframe(now);
        }
        if self.credit() == 0 {
            self.frames_dropped += 1;
            self.need_keyframe = true;
            return self.request_keyframe(now);
        }
        if key {
            // The request clock is not reset: a viewer that keeps missing
            // units asks at most once a second, so one slow viewer cannot
            // hold the whole stream at the stream's forced-keyframe limit.
            // Only the viewer's own next request may go out sooner.
            self.need_keyframe = false;
            self.keyframe_since_request = true;
        }
        self.video_last = Some(chunk.frame_id);
        if self
            .pending_still
            .as_ref()
            .is_some_and(|s| s.source_id < chunk.source_id)
        {
            self.pending_still = None; // a newer picture is on its way
        }
        self.video_source = chunk.source_id;
        self.video_queue.push_back(chunk);
    }

    /// Processes the passing of time: the hello deadline, forgotten
    /// in-flight frames, the stats timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::AwaitingHello { deadline } if now >= deadline => {
                return self.close(close_code::POLICY, "no hello in time");
            }
            State::Closed => return,
            _ => {}
        }
        if self.is_open()
            && self.sent_since_ack
            && now >= later(self.last_ack, self.cfg.idle_timeout)
        {
            let secs = self.cfg.idle_timeout.as_secs();
            return self.close(close_code::POLICY, format!("idle: no ack for {secs} s"));
        }
        let timeout = self.cfg.inflight_timeout;
        let before = self.inflight.len();
        // The same deadline as `poll_timeout` reports (`later`), so a timer
        // that fired never keeps firing at the same instant.
        self.inflight.retain(|f| now < later(f.sent_at, timeout));
        if self.inflight.len() < before {
            // Forgotten frames may never have been drawn.
            self.picture = None;
        }
        if self.inflight.len() < before && self.is_video() {
            self.want_keyframe(now, false);
        }
        if let Some(t) = self.next_stats {
            if now >= t && self.is_open() {
                let stats = self.stats(now);
                self.push_out(Output::Text(ServerMessage::Stats(Box::new(stats))));
                self.next_stats = self.stats_deadline(now);
            }
        }
    }

    /// The next `stats` time after `now`: `stats_interval` from now, at least
    /// [`MIN_STATS_INTERVAL`] (a zero interval would fire without pause).
    fn stats_deadline(&self, now: Instant) -> Option<Instant> {
        self.cfg
            .stats_interval
            .map(|d| later(now, d.max(MIN_STATS_INTERVAL)))
    }

    /// When [`Session::handle_timeout`] should next be called (None: no timer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = match self.state {
            State::AwaitingHello { deadline } => Some(deadline),
            State::Closed => return None,
            _ => None,
        };
        let mut earliest = |x: Instant| t = Some(t.map_or(x, |t: Instant| t.min(x)));
        if let Some(f) = self.inflight.front() {
            earliest(later(f.sent_at, self.cfg.inflight_timeout));
        }
        if let Some(s) = self.next_stats {
            earliest(s);
        }
        if self.sent_since_ack {
            earliest(later(self.last_ack, self.cfg.idle_timeout));
        }
        t
    }

    /// The next thing to do, or None when there is nothing until the next input.
    pub fn poll_output(&mut self, now: Instant) -> Option<Output> {
        if let Some(h) = self.pending_auth.take() {
            return Some(Output::Authenticate(h));
        }
        if self.state == State::Authenticating {
            return None;
        }
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        if !self.is_open() || !self.visible {
            return None;
        }
        let frame = if self.is_video() {
            match self.video_queue.pop_front() {
                Some(unit) => unit,
                None if self.credit() > 0 => self.pending_still.take()?,
                None => return None,
            }
        } else {
            if self.credit() == 0 {
                return None;
            }
            let latest = self.latest.as_ref()?;
            if self.last_sent.is_some_and(|s| s >= latest.order_key()) {
                return None;
            }
            self.last_sent = Some(latest.order_key());
            latest.clone()
        };
        let patch = frame
            .patch_over(self.picture)
            .filter(|_| self.takes_patches());
        if !self.is_video() {
            self.picture = Some(frame.frame_id);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.inflight.push_back(Inflight { seq, sent_at: now });
        if !self.sent_since_ack {
            // The idle clock starts at the first unacked frame.
            self.sent_since_ack = true;
            self.last_ack = now;
        }
        self.frames_sent += 1;
        if matches!(frame.kind, FrameKind::Video { keyframe: true, .. }) {
            self.keyframes_sent += 1;
        }
        let bytes = patch.map_or(frame.bytes, |p| p.bytes) as u64;
        self.patches_sent += u64::from(patch.is_some());
        self.bytes_sent += bytes;
        self.sent_window.add(now, bytes);
        self.encode_ms = frame.encode_ms;
        Some(Output::Frame {
            frame_id: frame.frame_id,
            header: frame.header(seq, self.pixel_ratio, patch),
        })
    }

    fn stats(&mut self, now: Instant) -> Stats {
        let (fps_sent, bytes_per_s) = self.sent_window.rates(now);
        let (fps_acked, _) = self.acked_window.rates(now);
        Stats {
            rtt_ms: self.srtt.map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            fps_sent,
            fps_acked,
            bitrate_bps: bytes_per_s * 8.0,
            encode_ms: self.encode_ms,
            decode_queue_size: self.decode_queue_size,
            dropped: self.frames_dropped,
            target_bitrate: self.cfg.offer.bitrate,
            target_fps: self.cfg.offer.fps,
        }
    }

    /// A snapshot of this session's counters at `now`.
    pub fn metrics(&mut self, now: Instant) -> SessionMetrics {
        let s = self.stats(now);
        SessionMetrics {
            client_id: self.cfg.session_id,
            elapsed_s: now.saturating_duration_since(self.started).as_secs_f64(),
            frames_sent: self.frames_sent,
            frames_dropped: self.frames_dropped,
            frames_acked: self.frames_acked,
            keyframes_sent: self.keyframes_sent,
            patches_sent: self.patches_sent,
            tier: self.tier(),
            tier_changes: self.tier_changes,
            bytes_sent: self.bytes_sent,
            fps_sent: s.fps_sent,
            fps_acked: s.fps_acked,
            bitrate_bps: s.bitrate_bps,
            encode_ms: s.encode_ms,
            rtt_ms: s.rtt_ms,
            decode_queue_size: s.decode_queue_size,
            inflight: self.inflight.len() as u32,
            target_bitrate: s.target_bitrate,
            target_fps: s.target_fps,
            events_dropped: self.events_dropped,
            unknown_messages: self.unknown_messages,
            visible: self.visible,
        }
    }
}

fn message_type(m: &ClientMessage) -> &str {
    match m {
        ClientMessage::Hello(_) => "hello",
        ClientMessage::Ack(_) => "ack",
        ClientMessage::RequestKeyframe { .. } => "request_keyframe",
        ClientMessage::DecoderReset => "decoder_reset",
        ClientMessage::Event(_) => "event",
        ClientMessage::SetViewport(_) => "set_viewport",
        ClientMessage::Visibility { .. } => "visibility",
        ClientMessage::BandwidthEstimate { .. } => "bandwidth_estimate",
        ClientMessage::Unknown(t) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = r#"{"type":"hello","supported":["image/jpeg","image/png"]}"#;

    fn img(id: u64) -> FrameInfo {
        FrameInfo {
            frame_id: id,
            source_id: id,
            timestamp_us: id * 1000,
            width: 64,
            height: 48,
            kind: FrameKind::Image {
                mime: ImageFormat::Jpeg.mime(),
                still: false,
                patch: None,
            },
            bytes: 100,
            encode_ms: 1.0,
        }
    }

    fn chunk(id: u64, keyframe: bool) -> FrameInfo {
        FrameInfo {
            kind: FrameKind::Video {
                codec: "avc1.42E01F".into(),
                keyframe,
                duration_us: None,
            },
            ..img(id)
        }
    }

    fn drain(s: &mut Session, now: Instant) -> Vec<Output> {
        std::iter::from_fn(|| s.poll_output(now)).collect()
    }

    fn frames(out: &[Output]) -> Vec<(u64, u64)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Frame { frame_id, header } => Some((*frame_id, header.seq())),
                _ => None,
            })
            .collect()
    }

    fn open_with(hello: &str, offer: Offer) -> (Session, Instant) {
        let t0 = Instant::now();
        let mut s = Session::new(t0, SessionConfig::new(7, "default", offer, 64, 48));
        s.handle_text(t0, hello);
        let out = drain(&mut s, t0);
        assert!(
            matches!(out.as_slice(), [Output::Authenticate(_)]),
            "{out:?}"
        );
        s.handle_auth(t0, Ok(None));
        (s, t0)
    }

    fn open() -> (Session, Instant) {
        let (mut s, t0) = open_with(HELLO, Offer::default());
        let out = drain(&mut s, t0);
        assert!(
            matches!(out.as_slice(), [Output::Text(ServerMessage::Config { .. })]),
            "{out:?}"
        );
        (s, t0)
    }

    fn ack(s: &mut Session, now: Instant, seq: u64) {
        s.handle_text(now, &format!(r#"{{"type":"ack","seq":{seq}}}"#));
    }

    /// Frame `id` as a whole image, or as a patch over `base` of 10 bytes.
    fn img_with_patch(id: u64, base: u64) -> FrameInfo {
        FrameInfo {
            kind: FrameKind::Image {
                mime: ImageFormat::Jpeg.mime(),
                still: false,
                patch: Some(PatchInfo {
                    base_id: base,
                    rects: vec![[0, 0, 8, 8]],
                    bytes: 10,
                }),
            },
            ..img(id)
        }
    }

    fn is_patch(o: &Output) -> bool {
        matches!(
            o,
            Output::Frame {
                header: FrameHeader::ImagePatch { .. },
                ..
            }
        )
    }

    fn open_patch() -> (Session, Instant) {
        let (mut s, t0) = open_with(
            r#"{"type":"hello","supported":["image/jpeg","framehub/patch"]}"#,
            Offer::default(),
        );
        drain(&mut s, t0);
        (s, t0)
    }

    #[test]
    fn a_patch_goes_only_over_the_picture_the_viewer_holds() {
        let (mut s, t0) = open_patch();
        // The first frame is whole, even when a patch exists: nothing is held yet.
        s.handle_frame(t0, img_with_patch(1, 0));
        let out = drain(&mut s, t0);
        assert!(
            matches!(
                out.as_slice(),
                [Output::Frame {
                    header: FrameHeader::ImageFrame { .. },
                    ..
                }]
            ),
            "{out:?}"
        );
        // Frame 2 patches frame 1, which the viewer has: the patch goes.
        s.handle_frame(t0, img_with_patch(2, 1));
        let out = drain(&mut s, t0);
        assert!(out.len() == 1 && is_patch(&out[0]), "{out:?}");
        if let Output::Frame {
            header: FrameHeader::ImagePatch { rects, seq, .. },
            frame_id,
        } = &out[0]
        {
            assert_eq!(
                (*frame_id, *seq, rects.as_slice()),
                (2, 1, &[[0, 0, 8, 8]][..])
            );
        }
        assert_eq!(s.metrics(t0).patches_sent, 1);
        assert_eq!(
            s.metrics(t0).bytes_sent,
            100 + 10,
            "a patch counts its own bytes"
        );
        // No credit (2 in flight): frames 3 and 4 arrive, only 4 will go; it
        // patches 3, which this viewer never got, so it goes whole.
        s.handle_frame(t0, img_with_patch(3, 2));
        s.handle_frame(t0, img_with_patch(4, 3));
        assert!(drain(&mut s, t0).is_empty());
        ack(&mut s, t0, 0);
        let out = drain(&mut s, t0);
        assert!(
            matches!(
                out.as_slice(),
                [Output::Frame {
                    frame_id: 4,
                    header: FrameHeader::ImageFrame { .. }
                }]
            ),
            "{out:?}"
        );
    }

    #[test]
    fn a_skipped_frame_or_a_forgotten_one_makes_the_next_frame_whole() {
        let (mut s, t0) = open_patch();
        s.handle_frame(t0, img(1));
        drain(&mut s, t0);
        // The client did not draw frame 1 (its decode failed).
        s.handle_text(t0, r#"{"type":"ack","seq":0,"displayed":false}"#);
        s.handle_frame(t0, img_with_patch(2, 1));
        let out = drain(&mut s, t0);
        assert!(out.len() == 1 && !is_patch(&out[0]), "{out:?}");
        ack(&mut s, t0, 1);
        s.handle_frame(t0, img_with_patch(3, 2));
        assert!(
            drain(&mut s, t0).iter().all(is_patch),
            "drawn: patches resume"
        );
        // An in-flight frame forgotten after the timeout: not known to be drawn.
        let later_t = t0 + Duration::from_secs(3);
        s.handle_timeout(later_t);
        s.handle_frame(later_t, img_with_patch(4, 3));
        let out = drain(&mut s, later_t);
        assert!(out.len() == 1 && !is_patch(&out[0]), "{out:?}");
    }

    #[test]
    fn no_patch_for_a_client_that_did_not_list_it() {
        let (mut s, t0) = open();
        s.handle_frame(t0, img(1));
        drain(&mut s, t0);
        s.handle_frame(t0, img_with_patch(2, 1));
        let out = drain(&mut s, t0);
        assert!(out.len() == 1 && !is_patch(&out[0]), "{out:?}");
    }

    fn tiers() -> Vec<QualityTier> {
        [(80, 1), (60, 1), (40, 1), (40, 2)]
            .into_iter()
            .map(|(q, d)| QualityTier {
                jpeg_quality: q,
                scale_divisor: d,
                bitrate: 0,
            })
            .collect()
    }

    /// A session whose viewer acks each frame `rtt` after it was sent, for `secs`.
    fn serve_for(
        s: &mut Session,
        now: &mut Instant,
        id: &mut u64,
        secs: u32,
        rtt: Duration,
    ) -> Vec<Output> {
        let mut texts = vec![];
        for _ in 0..secs * 10 {
            *id += 1;
            s.handle_frame(*now, img(*id));
            let sent = drain(s, *now);
            *now += rtt;
            for o in sent {
                match o {
                    Output::Frame { header, .. } => ack(s, *now, header.seq()),
                    other => texts.push(other),
                }
            }
            texts.extend(drain(s, *now));
            *now += Duration::from_millis(100).saturating_sub(rtt);
        }
        texts
    }

    #[test]
    fn a_congested_viewer_steps_down_and_is_told_then_recovers() {
        let t0 = Instant::now();
        let mut cfg = SessionConfig::new(1, "x", Offer::default(), 64, 48);
        cfg.adapt = Some(AdaptConfig::default());
        cfg.tiers = tiers();
        let mut s = Session::new(t0, cfg.clone());
        s.handle_text(t0, HELLO);
        drain(&mut s, t0);
        s.handle_auth(t0, Ok(None));
        drain(&mut s, t0);
        let (mut now, mut id) = (t0, 0);
        assert!(serve_for(&mut s, &mut now, &mut id, 3, Duration::from_millis(2)).is_empty());
        assert_eq!(s.tier(), 0);
        // Acks slow down to 400 ms of queueing: steps down one tier at a time, told each time.
        let out = serve_for(&mut s, &mut now, &mut id, 6, Duration::from_millis(400));
        let told: Vec<(Option<u8>, Option<u8>)> = out
            .iter()
            .filter_map(|o| match o {
                Output::Text(ServerMessage::SetQuality { tier, quality, .. }) => {
                    Some((*tier, *quality))
                }
                _ => None,
            })
            .collect();
        assert!(told.len() >= 2, "{out:?}");
        assert_eq!(told[0], (Some(1), Some(60)));
        assert_eq!(s.tier(), told.last().unwrap().0.unwrap());
        assert_eq!(s.metrics(now).tier, s.tier());
        // Healthy again: back to tier 0, one step per 5 s.
        serve_for(&mut s, &mut now, &mut id, 30, Duration::from_millis(2));
        assert_eq!(s.tier(), 0);
        assert_eq!(s.metrics(now).tier_changes, 2 * told.len() as u64);
        // A PNG session (lossless) has no tiers.
        let mut s = Session::new(t0, cfg);
        s.handle_text(t0, r#"{"type":"hello","supported":["image/png"]}"#);
        drain(&mut s, t0);
        s.handle_auth(t0, Ok(None));
        drain(&mut s, t0);
        let (mut now, mut id) = (t0, 0);
        let out = serve_for(&mut s, &mut now, &mut id, 6, Duration::from_millis(400));
        assert!(out
            .iter()
            .all(|o| !matches!(o, Output::Text(ServerMessage::SetQuality { .. }))));
        assert_eq!(s.tier(), 0);
    }

    #[test]
    fn handshake_sends_config_with_negotiated_format() {
        let (mut s, t0) = open_with(HELLO, Offer::default());
        match drain(&mut s, t0).as_slice() {
            [Output::Text(ServerMessage::Config {
                transport,
                width,
                height,
                mime,
                session,
                ..
            })] => {
                assert_eq!(*transport, Transport::Image);
                assert_eq!((*width, *height, *session), (64, 48, 7));
                assert_eq!(mime.as_deref(), Some("image/jpeg"));
            }
            other => panic!("{other:?}"),
        }
        assert!(s.is_open());
    }

    #[test]
    fn no_hello_in_time_closes_1008() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, SessionConfig::new(1, "x", Offer::default(), 1, 1));
        assert_eq!(s.poll_timeout(), Some(t0 + DEFAULT_HELLO_TIMEOUT));
        s.handle_timeout(t0 + Duration::from_secs(4));
        assert!(drain(&mut s, t0).is_empty());
        s.handle_timeout(t0 + DEFAULT_HELLO_TIMEOUT);
        assert!(matches!(
            drain(&mut s, t0).as_slice(),
            [Output::Close { code: 1008, .. }]
        ));
        assert!(s.is_closed());
    }

    #[test]
    fn message_before_hello_closes_1008() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, SessionConfig::new(1, "x", Offer::default(), 1, 1));
        s.handle_text(t0, r#"{"type":"ack","seq":0}"#);
        assert!(matches!(
            drain(&mut s, t0).as_slice(),
            [Output::Close { code: 1008, .. }]
        ));
    }

    #[test]
    fn refused_auth_closes_4401_and_no_common_format_1003() {
        let (mut s, t0) = {
            let t0 = Instant::now();
            let mut s = Session::new(t0, SessionConfig::new(1, "x", Offer::default(), 1, 1));
            s.handle_text(t0, HELLO);
            drain(&mut s, t0);
            (s, t0)
        };
        s.handle_auth(t0, Err("bad token".into()));
        assert!(
            matches!(drain(&mut s, t0).as_slice(), [Output::Close { code: 4401, reason }] if reason == "unauthorized")
        );

        let t0 = Instant::now();
        let mut s = Session::new(t0, SessionConfig::new(1, "x", Offer::default(), 1, 1));
        s.handle_text(t0, r#"{"type":"hello","supported":["image/gif"]}"#);
        drain(&mut s, t0);
        s.handle_auth(t0, Ok(None));
        assert!(matches!(
            drain(&mut s, t0).as_slice(),
            [Output::Close { code: 1003, .. }]
        ));
    }

    #[test]
    fn credit_limits_inflight_and_latest_wins() {
        let (mut s, t0) = open();
        s.handle_frame(t0, img(1));
        assert_eq!(frames(&drain(&mut s, t0)), vec![(1, 0)]);
        s.handle_frame(t0, img(2));
        assert_eq!(frames(&drain(&mut s, t0)), vec![(2, 1)]);
        assert!(!s.wants_frames(), "credit of 2 used up");
        // Published while out of credit: not queued, only the latest is remembered.
        s.handle_frame(t0, img(3));
        s.handle_frame(t0, img(4));
        assert!(drain(&mut s, t0).is_empty());
        let t1 = t0 + Duration::from_millis(30);
        ack(&mut s, t1, 0);
        assert_eq!(
            frames(&drain(&mut s, t1)),
            vec![(4, 2)],
            "the latest frame, never the stale 3"
        );
        // The same frame is never sent twice.
        ack(&mut s, t1, 1);
        assert!(frames(&drain(&mut s, t1)).is_empty());
        let m = s.metrics(t1);
        assert_eq!((m.frames_sent, m.frames_acked, m.inflight), (3, 2, 1));
        assert!(m.frames_dropped >= 1);
        assert!((m.rtt_ms - 30.0).abs() < 1e-6, "{}", m.rtt_ms);
    }

    #[test]
    fn viewer_is_never_left_on_a_stale_frame() {
        // The publisher stops right after a frame the viewer had no credit for.
        let (mut s, t0) = open();
        s.handle_frame(t0, img(1));
        s.handle_frame(t0, img(2));
        drain(&mut s, t0);
        s.handle_frame(t0, img(2));
        s.handle_frame(t0, img(3));
        assert!(frames(&drain(&mut s, t0)).len() == 1);
        // frame 3 is the last one published; acks bring it out.
        ack(&mut s, t0, 0);
        ack(&mut s, t0, 1);
        let sent = frames(&drain(&mut s, t0));
        assert!(
            sent.iter().any(|(id, _)| *id == 3) || s.last_sent == Some((3, 0)),
            "{sent:?}"
        );
        assert_eq!(s.last_sent, Some((3, 0)));
    }

    #[test]
    fn ack_of_a_later_seq_settles_older_frames() {
        let (mut s, t0) = open();
        s.handle_frame(t0, img(1));
        drain(&mut s, t0);
        s.handle_frame(t0, img(2));
        drain(&mut s, t0);
        ack(&mut s, t0, 1);
        assert_eq!(s.metrics(t0).inflight, 0);
        // Acks for frames never sent give no credit.
        ack(&mut s, t0, 99);
        assert_eq!(s.metrics(t0).frames_acked, 2);
    }

    #[test]
    fn inflight_frames_are_forgotten_after_timeout() {
        let (mut s, t0) = open();
        for id in 1..=2 {
            s.handle_frame(t0, img(id));
            drain(&mut s, t0);
        }
        s.handle_frame(t0, img(3));
        assert!(drain(&mut s, t0).is_empty());
        assert_eq!(s.poll_timeout(), Some(t0 + DEFAULT_INFLIGHT_TIMEOUT));
        let t1 = t0 + Duration::from_millis(1999);
        s.handle_timeout(t1);
        assert!(drain(&mut s, t1).is_empty());
        let t2 = t0 + DEFAULT_INFLIGHT_TIMEOUT;
        s.handle_timeout(t2);
        assert_eq!(frames(&drain(&mut s, t2)), vec![(3, 2)]);
    }

    #[test]
    fn events_are_validated_and_delivered() {
        let (mut s, t0) = open();
        s.handle_text(
            t0,
            r#"{"type":"event","event":{"event_type":"pointer_down","x":5,"y":6,"button":1}}"#,
        );
        s.handle_text(
            t0,
            r#"{"type":"event","event":{"event_type":"pointer_down","x":"NaN","y":6}}"#,
        );
        s.handle_text(t0, r#"{"type":"set_viewport","width":800,"height":600,"pwidth":1600,"pheight":1200,"ratio":2}"#);
        s.handle_text(t0, r#"{"type":"future_thing"}"#);
        let out = drain(&mut s, t0);
        let events: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::Event { event, .. } => Some(event.event_type()),
                _ => None,
            })
            .collect();
        assert_eq!(events, vec!["pointer_down", "resize"]);
        let m = s.metrics(t0);
        assert_eq!((m.events_dropped, m.unknown_messages), (1, 1));
        assert!(s.is_open(), "bad events never close the session");
    }

    #[test]
    fn events_before_auth_are_held_until_open() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, SessionConfig::new(1, "x", Offer::default(), 1, 1));
        s.handle_text(t0, HELLO);
        s.handle_text(
            t0,
            r#"{"type":"set_viewport","width":10,"height":10,"pwidth":10,"pheight":10,"ratio":1}"#,
        );
        assert!(matches!(
            drain(&mut s, t0).as_slice(),
            [Output::Authenticate(_)]
        ));
        s.handle_auth(t0, Ok(Some(Principal::new("ann"))));
        let out = drain(&mut s, t0);
        assert!(matches!(out[0], Output::Text(ServerMessage::Config { .. })));
        assert!(matches!(
            out[1],
            Output::Event {
                event: InputEvent::Resize(_),
                ..
            }
        ));
        assert_eq!(s.principal().map(|p| p.as_str()), Some("ann"));
    }

    #[test]
    fn viewer_without_control_has_events_dropped_and_is_told() {
        let (mut s, t0) = open();
        s.set_controller(false);
        s.handle_text(
            t0,
            r#"{"type":"event","event":{"event_type":"key_down","key":"a"}}"#,
        );
        let out = drain(&mut s, t0);
        assert_eq!(
            out,
            vec![Output::Text(ServerMessage::Control { controller: false })]
        );
        assert_eq!(s.metrics(t0).events_dropped, 1);
    }

    #[test]
    fn hidden_viewer_gets_nothing_holds_no_credit_then_latest_at_once() {
        let (mut s, t0) = open();
        s.handle_frame(t0, img(1));
        drain(&mut s, t0);
        s.handle_text(t0, r#"{"type":"visibility","visible":false}"#);
        assert!(!s.wants_frames());
        assert_eq!(s.metrics(t0).inflight, 0);
        s.handle_frame(t0, img(2));
        s.handle_frame(t0, img(3));
        assert!(frames(&drain(&mut s, t0)).is_empty());
        s.handle_text(t0, r#"{"type":"visibility","visible":true}"#);
        assert_eq!(frames(&drain(&mut s, t0)), vec![(3, 1)]);
    }

    #[test]
    fn malformed_and_oversized_messages_close() {
        let (mut s, t0) = open();
        s.handle_text(t0, "{nope");
        assert!(matches!(
            drain(&mut s, t0).as_slice(),
            [Output::Close { code: 1008, .. }]
        ));
        let (mut s, t0) = open();
        s.handle_oversized(70_000);
        assert!(matches!(
            drain(&mut s, t0).as_slice(),
            [Output::Close { code: 1009, .. }]
        ));
        s.handle_frame(t0, img(1));
        assert!(
            drain(&mut s, t0).is_empty(),
            "a closed session sends nothing"
        );
    }

    #[test]
    fn events_beyond_the_rate_and_burst_close_1008() {
        let t0 = Instant::now();
        let mut cfg = SessionConfig::new(1, "x", Offer::default(), 1, 1);
        cfg.events_per_second = 10.0;
        cfg.event_burst = 5.0;
        let mut s = Session::new(t0, cfg);
        s.handle_text(t0, HELLO);
        drain(&mut s, t0);
        s.handle_auth(t0, Ok(None));
        drain(&mut s, t0);
        let ev = r#"{"type":"event","event":{"event_type":"key_down","key":"a"}}"#;
        for _ in 0..5 {
            s.handle_text(t0, ev);
        }
        assert_eq!(drain(&mut s, t0).len(), 5, "the burst passes");
        // Sustained at the rate: one every 100 ms passes.
        for i in 1..=20 {
            let t = t0 + Duration::from_millis(100 * i);
            s.handle_text(t, ev);
            assert!(
                matches!(drain(&mut s, t).as_slice(), [Output::Event { .. }]),
                "event {i}"
            );
        }
        let t = t0 + Duration::from_millis(2000);
        for _ in 0..3 {
            s.handle_text(t, ev);
        }
        let out = drain(&mut s, t);
        assert!(
            matches!(out.last(), Some(Output::Close { code: 1008, reason }) if reason.contains("rate")),
            "{out:?}"
        );
    }

    #[test]
    fn a_viewer_that_never_acks_is_closed_after_the_idle_timeout() {
        let (mut s, t0) = open();
        let t1 = t0 + Duration::from_secs(10);
        s.handle_frame(t1, img(1));
        drain(&mut s, t1);
        // Frames keep coming (in-flight ones are forgotten every 2 s), no ack ever.
        let mut t = t1;
        for id in 2..20 {
            t += Duration::from_secs(2);
            s.handle_timeout(t);
            s.handle_frame(t, img(id));
            let out = drain(&mut s, t);
            if t < t1 + DEFAULT_IDLE_TIMEOUT {
                assert!(
                    !out.iter().any(|o| matches!(o, Output::Close { .. })),
                    "closed early at {:?}",
                    t - t1
                );
            }
        }
        assert!(s.is_closed(), "idle for over 30 s with frames pending");
        // An acking viewer is never idle, and one with nothing pending neither.
        let (mut s, t0) = open();
        s.handle_timeout(t0 + Duration::from_secs(100));
        assert!(s.is_open(), "nothing sent, nothing to ack");
    }

    #[test]
    fn stats_are_sent_on_the_interval() {
        let t0 = Instant::now();
        let mut cfg = SessionConfig::new(1, "x", Offer::default(), 1, 1);
        cfg.stats_interval = Some(Duration::from_secs(1));
        let mut s = Session::new(t0, cfg);
        s.handle_text(t0, HELLO);
        drain(&mut s, t0);
        s.handle_auth(t0, Ok(None));
        drain(&mut s, t0);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        s.handle_timeout(t1);
        assert!(matches!(
            drain(&mut s, t1).as_slice(),
            [Output::Text(ServerMessage::Stats(_))]
        ));
    }

    #[test]
    fn a_zero_stats_interval_is_raised_to_the_minimum() {
        let t0 = Instant::now();
        let mut cfg = SessionConfig::new(1, "x", Offer::default(), 1, 1);
        cfg.stats_interval = Some(Duration::ZERO);
        let mut s = Session::new(t0, cfg);
        s.handle_text(t0, HELLO);
        drain(&mut s, t0);
        s.handle_auth(t0, Ok(None));
        drain(&mut s, t0);
        let mut now = t0;
        for _ in 0..3 {
            let t = s.poll_timeout().unwrap();
            assert_eq!(t, now + MIN_STATS_INTERVAL, "the timer moves on");
            now = t;
            s.handle_timeout(now);
            assert_eq!(drain(&mut s, now).len(), 1, "one stats message");
        }
    }

    fn open_video() -> (Session, Instant) {
        let offer = Offer {
            h264_codec: Some("avc1.42E01F".into()),
            ..Offer::default()
        };
        let (mut s, t0) = open_with(
            r#"{"type":"hello","supported":["webcodecs/h264-annexb","image/jpeg"]}"#,
            offer,
        );
        let out = drain(&mut s, t0);
        assert!(matches!(
            out[0],
            Output::Text(ServerMessage::Config {
                transport: Transport::Webcodecs,
                ..
            })
        ));
        assert_eq!(
            out[1],
            Output::RequestKeyframe,
            "a joining video viewer asks for a keyframe"
        );
        (s, t0)
    }

    #[test]
    fn video_viewer_waits_for_keyframe_then_follows_the_chain() {
        let (mut s, t0) = open_video();
        s.handle_frame(t0, chunk(10, false));
        assert!(
            frames(&drain(&mut s, t0)).is_empty(),
            "no delta before a keyframe"
        );
        s.handle_frame(t0, chunk(11, true));
        assert_eq!(frames(&drain(&mut s, t0)), vec![(11, 0)]);
        s.handle_frame(t0, chunk(12, false));
        assert_eq!(frames(&drain(&mut s, t0)), vec![(12, 1)]);
        assert_eq!(s.metrics(t0).keyframes_sent, 1);
    }

    #[test]
    fn video_viewer_that_misses_a_chunk_waits_for_a_keyframe_and_asks_once() {
        let (mut s, t0) = open_video();
        s.handle_frame(t0, chunk(1, true));
        s.handle_frame(t0, chunk(2, false));
        drain(&mut s, t0);
        // A second after joining (requests are at least a second apart), with
        // no credit: chunk 3 is missed.
        let t0 = t0 + Duration::from_secs(1);
        s.handle_frame(t0, chunk(3, false));
        let out = drain(&mut s, t0);
        assert_eq!(out, vec![Output::RequestKeyframe]);
        ack(&mut s, t0, 0);
        ack(&mut s, t0, 1);
        s.handle_frame(t0, chunk(4, false));
        s.handle_frame(t0, chunk(5, false));
        let out = drain(&mut s, t0);
        assert!(
            out.is_empty(),
            "deltas refused and the request not repeated at once: {out:?}"
        );
        s.handle_frame(t0, chunk(6, true));
        assert_eq!(frames(&drain(&mut s, t0)), vec![(6, 2)]);
    }

    #[test]
    fn a_viewers_own_request_after_a_keyframe_goes_out_at_once_a_repeat_waits() {
        let (mut s, t0) = open_video();
        // The joining keyframe arrives (a WebRTC peer drops it: ICE is not up yet).
        s.handle_frame(t0, chunk(1, true));
        assert_eq!(frames(&drain(&mut s, t0)), vec![(1, 0)]);
        // The viewer asks itself, well within the second: a new request.
        let t1 = t0 + Duration::from_millis(100);
        s.handle_text(
            t1,
            r#"{"type":"request_keyframe","reason":"webrtc connected"}"#,
        );
        assert_eq!(drain(&mut s, t1), vec![Output::RequestKeyframe]);
        // Asked again before any keyframe came: a repeat, held to the clock.
        let t2 = t1 + Duration::from_millis(100);
        s.handle_text(t2, r#"{"type":"request_keyframe"}"#);
        assert!(drain(&mut s, t2).is_empty());
        let t3 = t1 + Duration::from_secs(1);
        s.handle_text(t3, r#"{"type":"request_keyframe"}"#);
        assert_eq!(drain(&mut s, t3), vec![Output::RequestKeyframe]);
        // Missed units after a keyframe still wait for the clock.
        ack(&mut s, t3, 0);
        s.handle_frame(t3, chunk(2, true));
        assert_eq!(frames(&drain(&mut s, t3)), vec![(2, 1)]);
        s.handle_frame(t3, chunk(4, false));
        assert!(
            drain(&mut s, t3).is_empty(),
            "a drop's request waits a second"
        );
    }

    fn still_of(id: u64, source: u64) -> FrameInfo {
        FrameInfo {
            kind: FrameKind::Image {
                mime: ImageFormat::Png.mime(),
                still: true,
                patch: None,
            },
            source_id: source,
            ..img(id)
        }
    }

    #[test]
    fn video_session_with_still_png_gets_the_still_of_its_last_picture_only() {
        let offer = Offer {
            h264_codec: Some("avc1.42E01F".into()),
            ..Offer::default()
        };
        let (mut s, t0) = open_with(
            r#"{"type":"hello","supported":["webcodecs/h264-annexb","framehub/still-png"]}"#,
            offer,
        );
        drain(&mut s, t0);
        let mut unit = chunk(1, true);
        unit.source_id = 5;
        s.handle_frame(t0, unit);
        assert_eq!(frames(&drain(&mut s, t0)), vec![(1, 0)]);
        // A still of an older picture is ignored; of the same picture, sent.
        s.handle_frame(t0, still_of(4, 4));
        assert!(drain(&mut s, t0).is_empty());
        s.handle_frame(t0, still_of(5, 5));
        let out = drain(&mut s, t0);
        assert!(
            matches!(
                out.as_slice(),
                [Output::Frame {
                    header: FrameHeader::ImageFrame {
                        still: Some(true),
                        seq: 1,
                        ..
                    },
                    ..
                }]
            ),
            "{out:?}"
        );
        // A newer unit cancels a pending still.
        ack(&mut s, t0, 0);
        ack(&mut s, t0, 1);
        s.handle_frame(t0, still_of(5, 5));
        let mut next = chunk(2, false);
        next.source_id = 6;
        s.handle_frame(t0, next);
        let out = drain(&mut s, t0);
        assert!(
            matches!(
                out.as_slice(),
                [Output::Frame {
                    header: FrameHeader::VideoChunk { .. },
                    ..
                }]
            ),
            "{out:?}"
        );
        assert!(
            drain(&mut s, t0).is_empty(),
            "the superseded still is dropped"
        );
    }

    #[test]
    fn video_session_without_still_png_gets_no_still() {
        let (mut s, t0) = open_video();
        let mut unit = chunk(1, true);
        unit.source_id = 5;
        s.handle_frame(t0, unit);
        drain(&mut s, t0);
        s.handle_frame(t0, still_of(5, 5));
        assert!(drain(&mut s, t0).is_empty());
    }

    #[test]
    fn decoder_reset_forgets_inflight_and_needs_keyframe() {
        let (mut s, t0) = open_video();
        s.handle_frame(t0, chunk(1, true));
        drain(&mut s, t0);
        let t1 = t0 + Duration::from_secs(2);
        s.handle_text(t1, r#"{"type":"decoder_reset"}"#);
        assert_eq!(drain(&mut s, t1), vec![Output::RequestKeyframe]);
        assert_eq!(s.metrics(t1).inflight, 0);
        s.handle_frame(t1, chunk(2, false));
        assert!(frames(&drain(&mut s, t1)).is_empty());
    }
}
