//! A named stream: where a published frame goes before it reaches sockets.
//!
//! `Stream::publish` stores the frame as the stream's **latest** (latest wins)
//! and wakes the stream's encode thread. The encode thread encodes the latest
//! frame **once per output format that some viewer can take now** (its
//! demand counter is non-zero) and puts the bytes in that format's
//! [`watch`] channel. Every viewer task of that format is woken by the
//! channel, hands the frame to its [`framehub_proto::Session`], and writes it
//! to its socket if the session has credit (see `viewer.rs`). Encoding runs
//! on the encode thread, never on the async runtime, so the encode of frame
//! n+1 overlaps the sending of frame n.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use framehub_proto::{FrameInfo, ImageFormat, Offer, OutputFormat, SessionMetrics};
use tokio::sync::watch;

use crate::config::{ResizePolicy, StreamConfig};
use crate::events::{lock, EventQueue, ViewerEvent};
use crate::frame::{Frame, FramePool, RawFrame};
use crate::server::Server;
use crate::Error;
use framehub_proto::Principal;

/// An encoded frame shared by every viewer of its format (the bytes are reference-counted).
#[derive(Debug)]
pub struct Encoded {
    pub info: FrameInfo,
    pub data: Bytes,
    /// The same frame as an `image_patch` payload over an earlier frame
    /// (described by the `patch` of `info.kind`), when one was made.
    pub patch: Option<Bytes>,
}

pub(crate) type EncodedSlot = watch::Sender<Option<Arc<Encoded>>>;

/// One encoded output of a stream: a format at a quality tier (tier 0: the
/// stream's own settings; lower tiers exist for JPEG under adaptive quality,
/// see [`crate::StreamConfig::quality_tiers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Variant {
    pub format: OutputFormat,
    pub tier: u8,
}

impl Variant {
    /// `format` at tier 0.
    pub fn top(format: OutputFormat) -> Self {
        Variant { format, tier: 0 }
    }

    /// As the feed names it.
    pub fn id(self) -> framehub_proto::feed::VariantId {
        framehub_proto::feed::VariantId {
            format: self.format,
            tier: self.tier,
        }
    }

    /// From the feed's name.
    pub fn from_id(v: framehub_proto::feed::VariantId) -> Self {
        Variant {
            format: v.format,
            tier: v.tier,
        }
    }
}

/// The order of frames in an image slot: by frame id, a still after the lossy frame of the same id.
pub(crate) fn order_key(info: &FrameInfo) -> (u64, bool) {
    (
        info.frame_id,
        matches!(
            info.kind,
            framehub_proto::FrameKind::Image { still: true, .. }
        ),
    )
}

/// State behind the stream's mutex.
pub(crate) struct Shared {
    pub latest: Option<Arc<RawFrame>>,
    /// Viewers per output that could take a frame now.
    pub demand: HashMap<Variant, usize>,
    /// Id of the last frame encoded per output.
    pub encoded: HashMap<Variant, u64>,
    /// The frame whose encode started last, per image output, while viewers
    /// take patches: the base the next frame is patched over.
    pub base: HashMap<Variant, Arc<RawFrame>>,
    /// Id of the last frame made into a lossless still.
    pub still: u64,
    /// Id of the last frame made into a video still (a sharper keyframe).
    pub video_still: u64,
    /// The last frame whose encoding started, and when (for the `fps` cap).
    pub last_encode: Option<(u64, Instant)>,
    /// Per video tier (index = tier): keyframe requests and their rate limit.
    pub keyframes: Vec<KeyframeState>,
    pub shutdown: bool,
}

/// The keyframe bookkeeping of one H.264 chain (one per video tier).
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyframeState {
    /// A video viewer asked for a keyframe (coalesced until it is made).
    pub requested: bool,
    /// When the last keyframe was forced (for the rate limit).
    pub last_forced: Option<Instant>,
}

/// What a viewer registry entry holds.
pub(crate) struct ViewerEntry {
    pub metrics: SessionMetrics,
    pub controller: watch::Sender<bool>,
    pub principal: Option<framehub_proto::Principal>,
}

/// The stream's state, shared by its handles, its encode thread and its viewers.
/// Totals of the viewers that left a stream (the Prometheus counters add
/// the viewers still there).
#[derive(Debug, Default)]
pub(crate) struct Departed {
    pub bytes_sent: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_dropped: AtomicU64,
}

pub(crate) struct StreamShared {
    pub name: String,
    pub cfg: StreamConfig,
    pub created: Instant,
    pub(crate) shared: Mutex<Shared>,
    pub(crate) wake: Condvar,
    /// The image outputs: the latest encoded frame of each, watched by its viewers.
    pub(crate) slots: HashMap<Variant, EncodedSlot>,
    /// The JPEG quality tiers, best first (one without adaptive quality).
    pub(crate) tiers: Vec<framehub_proto::QualityTier>,
    pub events: EventQueue,
    pub viewers: Mutex<BTreeMap<u64, ViewerEntry>>,
    next_frame_id: AtomicU64,
    width: AtomicU32,
    height: AtomicU32,
    /// Encodes done per output, for metrics and the encode-once tests.
    pub(crate) encodes: HashMap<Variant, AtomicU64>,
    /// Lossless stills made.
    pub(crate) stills: AtomicU64,
    /// MP4 recordings running (`record.rs`): while any runs, the full-rate
    /// H.264 chain runs even when the stream offers no H.264 to viewers.
    pub(crate) recordings: AtomicUsize,
    /// Video viewers of a stream that offers no H.264 to WebSocket viewers:
    /// WebRTC peers (`webrtc.rs`), whose only codec is H.264. While any
    /// watches, the full-rate chain runs, as for a recording.
    pub(crate) peers_only_video: AtomicUsize,
    /// The H.264 codec string offered to those peers, probed at the first.
    peer_codec: std::sync::OnceLock<String>,
    /// Video stills (sharper keyframes of a resting frame) made.
    pub(crate) video_stills: AtomicU64,
    /// Region updates made (each shared by every viewer that holds its base).
    pub(crate) patches: AtomicU64,
    /// Viewers that take region updates (`framehub/patch`).
    pub(crate) patch_viewers: AtomicUsize,
    /// Per video tier (index = tier; one without adaptive quality): the
    /// H.264 access units of that tier's chain, in order, to its viewers
    /// (bounded: a viewer that lags behind loses units and waits for a
    /// keyframe).
    pub(crate) video: Vec<tokio::sync::broadcast::Sender<Arc<Encoded>>>,
    /// The codec string of the current H.264 stream (`avc1.PPCCLL`).
    pub(crate) codec: Mutex<String>,
    published: AtomicU64,
    /// Publish times of the last second, for `/streams`' fps.
    publish_times: Mutex<std::collections::VecDeque<Instant>>,
    /// Tells viewer tasks the stream is gone (removed or server closed).
    pub closed: watch::Sender<bool>,
    /// Viewer connections of this stream, handshake done or not (for `max_viewers`).
    pub viewer_tasks: std::sync::atomic::AtomicUsize,
    /// Under `ResizePolicy::Controller`: the target size, and a proposed one with when it came.
    target: Mutex<TargetSize>,
    /// Whether the last downscale hint said "every viewer wants less".
    downscaled: std::sync::atomic::AtomicBool,
    /// Buffers of frames the hub dropped, for the next `publish` to copy into.
    pool: FramePool,
    /// Where the frames come from: this process's encode threads, or a
    /// remote publisher's feed (`publish.rs`).
    pub(crate) source: SourceKind,
    /// Woken when demand or keyframe requests change (a remote source's feed
    /// task forwards them; nothing waits on it for a local source).
    pub(crate) feed_wake: tokio::sync::Notify,
    /// The publisher's state (always online, for a local source); viewers
    /// are told when it changes (`status`).
    pub(crate) publisher: watch::Sender<PublisherState>,
    /// Totals of the viewers that left (`/_/prometheus`).
    pub(crate) departed: Departed,
    /// The close code and reason viewers get when the stream is shut down
    /// (default 1001 "stream removed").
    end_reason: Mutex<(u16, String)>,
    /// The hub's lifecycle channel, once the stream is in a hub (viewers joined and left).
    pub(crate) lifecycle:
        std::sync::OnceLock<tokio::sync::broadcast::Sender<crate::lifecycle::LifecycleEvent>>,
}

/// A stream's publisher as its viewers are told (`status`, `docs/protocol.md` §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublisherState {
    /// Frames come.
    Online,
    /// A remote publisher's feed dropped; the stream ends after the grace period.
    Offline,
    /// A remote publisher is connected but has not answered a keyframe
    /// request for [`crate::publish::KEYFRAME_STALLED`]: video viewers that
    /// wait for one see no new picture.
    Stalled,
}

impl PublisherState {
    /// As sent in `status.publisher`.
    pub fn as_str(self) -> &'static str {
        match self {
            PublisherState::Online => "online",
            PublisherState::Offline => "offline",
            PublisherState::Stalled => "stalled",
        }
    }
}

/// Where a stream's encoded units come from: the source half of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceKind {
    /// Encode threads in this process: the feed is a direct call.
    Local,
    /// A remote publisher's feed over a WebSocket (`/_/publish/<name>`).
    Remote,
}

/// The size a controlling viewer asked for (see [`crate::ResizePolicy::Controller`]).
#[derive(Debug, Default)]
struct TargetSize {
    settled: Option<(u32, u32)>,
    proposed: Option<((u32, u32), Instant)>,
}

/// Image formats every stream can encode.
pub(crate) const IMAGE_FORMATS: [ImageFormat; 2] = [ImageFormat::Jpeg, ImageFormat::Png];

/// Access units buffered for video viewers; one that falls further behind
/// loses units and recovers at a keyframe.
const VIDEO_CHANNEL: usize = 16;

/// The codec string (`avc1.PPCCLL`) the stream's encoder will write for this
/// size: learnt by encoding one black frame with the stream's settings, so
/// `config` names the real profile and level before the first keyframe.
/// Empty when no H.264 encoder can be made (the `h264` feature is off).
#[cfg(feature = "h264")]
fn probe_codec(width: u32, height: u32, cfg: &StreamConfig) -> String {
    crate::video::probe_codec(width & !1, height & !1, cfg).unwrap_or_default()
}

#[cfg(not(feature = "h264"))]
fn probe_codec(_width: u32, _height: u32, _cfg: &StreamConfig) -> String {
    String::new()
}

impl StreamShared {
    pub fn new(name: String, width: u32, height: u32, cfg: StreamConfig) -> Arc<Self> {
        let codec = if cfg.h264 {
            probe_codec(width, height, &cfg)
        } else {
            String::new()
        };
        Self::with_source(name, width, height, cfg, SourceKind::Local, codec)
    }

    /// A stream fed by `source`; `codec` is its H.264 codec string (empty:
    /// no video).
    pub(crate) fn with_source(
        name: String,
        width: u32,
        height: u32,
        cfg: StreamConfig,
        source: SourceKind,
        codec: String,
    ) -> Arc<Self> {
        let tiers = cfg.quality_tiers();
        let video_tiers = tiers.len();
        // Every image format at tier 0, and JPEG at each lower tier.
        let outputs: Vec<Variant> = IMAGE_FORMATS
            .iter()
            .map(|f| Variant::top(OutputFormat::Image(*f)))
            .chain((1..tiers.len()).map(|t| Variant {
                format: OutputFormat::Image(ImageFormat::Jpeg),
                tier: u8::try_from(t).unwrap_or(u8::MAX),
            }))
            .collect();
        let counted: Vec<Variant> = outputs
            .iter()
            .copied()
            .chain((0..video_tiers).map(|t| Variant {
                format: OutputFormat::H264,
                tier: u8::try_from(t).unwrap_or(u8::MAX),
            }))
            .collect();
        let events = EventQueue::new(
            cfg.event_queue,
            cfg.record_events,
            cfg.record_file.as_deref(),
        );
        Arc::new(StreamShared {
            name,
            cfg,
            created: Instant::now(),
            shared: Mutex::new(Shared {
                latest: None,
                demand: HashMap::new(),
                encoded: HashMap::new(),
                base: HashMap::new(),
                still: 0,
                video_still: 0,
                last_encode: None,
                keyframes: vec![KeyframeState::default(); video_tiers],
                shutdown: false,
            }),
            wake: Condvar::new(),
            slots: outputs
                .iter()
                .map(|v| (*v, watch::channel(None).0))
                .collect(),
            tiers,
            events,
            viewers: Mutex::new(BTreeMap::new()),
            next_frame_id: AtomicU64::new(1),
            width: AtomicU32::new(width),
            height: AtomicU32::new(height),
            encodes: counted.iter().map(|f| (*f, AtomicU64::new(0))).collect(),
            stills: AtomicU64::new(0),
            recordings: AtomicUsize::new(0),
            peers_only_video: AtomicUsize::new(0),
            peer_codec: std::sync::OnceLock::new(),
            video_stills: AtomicU64::new(0),
            patches: AtomicU64::new(0),
            patch_viewers: AtomicUsize::new(0),
            video: (0..video_tiers)
                .map(|_| tokio::sync::broadcast::channel(VIDEO_CHANNEL).0)
                .collect(),
            codec: Mutex::new(codec),
            published: AtomicU64::new(0),
            publish_times: Mutex::new(Default::default()),
            closed: watch::channel(false).0,
            viewer_tasks: std::sync::atomic::AtomicUsize::new(0),
            target: Mutex::new(TargetSize::default()),
            downscaled: std::sync::atomic::AtomicBool::new(false),
            pool: FramePool::default(),
            source,
            feed_wake: tokio::sync::Notify::new(),
            publisher: watch::channel(PublisherState::Online).0,
            departed: Departed::default(),
            end_reason: Mutex::new((
                framehub_proto::close_code::GOING_AWAY,
                "stream removed".into(),
            )),
            lifecycle: std::sync::OnceLock::new(),
        })
    }

    pub fn size(&self) -> (u32, u32) {
        (
            self.width.load(Ordering::Relaxed),
            self.height.load(Ordering::Relaxed),
        )
    }

    pub fn micros_since_created(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.created).as_micros() as u64
    }

    /// What this stream offers in negotiation.
    pub fn offer(&self) -> Offer {
        Offer {
            h264_codec: self.has_video().then(|| lock(&self.codec).clone()),
            preferred_image: self.cfg.preferred_image,
            image_formats: IMAGE_FORMATS.to_vec(),
            bitrate: if self.has_video() {
                u64::from(self.cfg.bitrate)
            } else {
                0
            },
            fps: self.cfg.fps.unwrap_or(0.0),
        }
    }

    /// What a WebRTC peer is offered: the stream's [`offer`](Self::offer),
    /// with H.264 even when the stream offers it to nobody else (a local
    /// stream encodes the full-rate chain for its peers alone; a remote
    /// stream has only what its publisher sends).
    pub fn peer_offer(&self) -> Offer {
        let mut offer = self.offer();
        if offer.h264_codec.is_none() && cfg!(feature = "h264") && self.source == SourceKind::Local
        {
            let (w, h) = self.size();
            let codec = self
                .peer_codec
                .get_or_init(|| probe_codec(w, h, &self.cfg))
                .clone();
            if !codec.is_empty() {
                offer.h264_codec = Some(codec);
                offer.bitrate = u64::from(self.cfg.bitrate);
            }
        }
        offer
    }

    /// Whether this stream offers H.264.
    pub fn has_video(&self) -> bool {
        cfg!(feature = "h264") && self.cfg.h264 && !lock(&self.codec).is_empty()
    }

    /// Video tiers whose H.264 chains the encode threads may run (a chain
    /// is encoded only while someone takes it): every tier when the stream
    /// offers H.264 or a WebRTC peer watches (a peer's bandwidth estimate
    /// may move it to any tier), else tier 0 alone while a recording runs,
    /// else none.
    pub fn chain_tiers(&self) -> u8 {
        let local = cfg!(feature = "h264") && self.source == SourceKind::Local;
        if self.has_video() || (local && self.peers_only_video.load(Ordering::Relaxed) > 0) {
            self.video_tiers()
        } else if local && self.recordings.load(Ordering::Relaxed) > 0 {
            1
        } else {
            0
        }
    }

    /// The image outputs this stream encodes (formats at their tiers), in a fixed order.
    pub fn image_outputs(&self) -> impl Iterator<Item = Variant> + '_ {
        let mut v: Vec<Variant> = self.slots.keys().copied().collect();
        v.sort_by_key(|v| {
            (
                v.tier,
                matches!(v.format, OutputFormat::Image(ImageFormat::Png)),
            )
        });
        v.into_iter()
    }

    /// Lossy image outputs (their viewers get lossless stills): JPEG at every tier.
    pub fn lossy_outputs(&self) -> impl Iterator<Item = Variant> + '_ {
        self.image_outputs()
            .filter(|v| v.format == OutputFormat::Image(ImageFormat::Jpeg))
    }

    /// Viewers subscribed to a lossy image output.
    pub fn lossy_viewers(&self) -> usize {
        self.lossy_outputs()
            .filter_map(|v| self.slots.get(&v))
            .map(|s| s.receiver_count())
            .sum()
    }

    /// The quality tier `tier` of this stream's JPEG viewers (the last one when out of range).
    pub fn tier(&self, tier: u8) -> framehub_proto::QualityTier {
        let i = usize::from(tier).min(self.tiers.len().saturating_sub(1));
        self.tiers
            .get(i)
            .copied()
            .unwrap_or(framehub_proto::QualityTier {
                jpeg_quality: self.cfg.quality,
                scale_divisor: 1,
                bitrate: 0,
            })
    }

    /// Viewers that take region updates.
    pub fn patch_viewers(&self) -> usize {
        self.patch_viewers.load(Ordering::Relaxed)
    }

    /// Viewers subscribed to the H.264 chain of video tier `tier`.
    pub fn video_viewers_at(&self, tier: u8) -> usize {
        self.video
            .get(usize::from(tier))
            .map_or(0, |v| v.receiver_count())
    }

    /// The video tiers: one H.264 chain each (index = tier).
    pub fn video_tiers(&self) -> u8 {
        u8::try_from(self.video.len()).unwrap_or(u8::MAX)
    }

    /// A video viewer of tier `tier` needs a keyframe; requests are coalesced
    /// and rate-limited by the encode thread (see `encode::KEYFRAME_MIN_INTERVAL`).
    pub fn request_keyframe(&self, tier: u8) {
        let mut s = lock(&self.shared);
        let Some(k) = s.keyframes.get_mut(usize::from(tier)) else {
            return;
        };
        if !k.requested {
            k.requested = true;
            drop(s);
            self.wake.notify_all();
            self.feed_wake.notify_one();
        }
    }

    /// Subscribes a video viewer to the stream's access units.
    pub fn subscribe_video(
        &self,
        tier: u8,
    ) -> Option<tokio::sync::broadcast::Receiver<Arc<Encoded>>> {
        self.video.get(usize::from(tier)).map(|v| v.subscribe())
    }

    pub fn publish(&self, frame: Frame<'_>) -> Result<(), Error> {
        let (data, width, height, layout) = frame.into_owned_tight(&self.pool)?;
        let now = Instant::now();
        let raw = Arc::new(RawFrame {
            id: self.next_frame_id.fetch_add(1, Ordering::Relaxed),
            timestamp_us: self.micros_since_created(now),
            published_at: now,
            width,
            height,
            layout,
            data,
        });
        self.width.store(width, Ordering::Relaxed);
        self.height.store(height, Ordering::Relaxed);
        self.count_publish(now);
        let mut s = lock(&self.shared);
        if s.shutdown {
            return Err(Error::Closed);
        }
        s.latest = Some(raw);
        drop(s);
        // Any idle encode thread may take it.
        self.wake.notify_all();
        Ok(())
    }

    /// Counts a frame published at `now` (by this process, or a new
    /// picture from a remote publisher) for [`StreamShared::publish_rate`].
    pub fn count_publish(&self, now: Instant) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let mut times = lock(&self.publish_times);
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            times.pop_front();
        }
        if times.len() < 10_000 {
            times.push_back(now);
        }
    }

    /// Frames published over the last second.
    pub fn publish_rate(&self) -> f64 {
        let now = Instant::now();
        let times = lock(&self.publish_times);
        times
            .iter()
            .filter(|t| now.duration_since(**t) <= Duration::from_secs(1))
            .count() as f64
    }

    /// The latest published frame is still waiting: no encode thread has
    /// started on it for any format (see [`Stream::frame_pending`]).
    pub fn frame_pending(&self) -> bool {
        let s = lock(&self.shared);
        s.latest
            .as_ref()
            .is_some_and(|f| s.encoded.values().all(|&id| id < f.id))
    }

    /// A viewer of `output` can (`true`) or can no longer (`false`) take a frame.
    pub fn set_demand(&self, output: Variant, on: bool) {
        let mut s = lock(&self.shared);
        let n = s.demand.entry(output).or_insert(0);
        if on {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
        }
        let wake = on && *n == 1;
        let changed = *n <= 1;
        drop(s);
        if wake {
            self.wake.notify_all();
        }
        if changed {
            self.feed_wake.notify_one();
        }
    }

    /// Offers `enc` to the viewers of image output `out` — from this
    /// process's encode threads or a remote publisher's feed. An older frame
    /// than the one the slot holds is dropped: viewers never go back (a
    /// still comes after the lossy frame of the same id).
    pub fn offer_image(&self, out: Variant, enc: Arc<Encoded>) {
        let Some(slot) = self.slots.get(&out) else {
            return;
        };
        let key = order_key(&enc.info);
        slot.send_if_modified(|cur| {
            if cur.as_ref().is_none_or(|c| order_key(&c.info) < key) {
                *cur = Some(enc);
                true
            } else {
                false
            }
        });
    }

    /// Offers the next access unit of video tier `tier`'s chain to its viewers.
    pub fn offer_video(&self, tier: u8, enc: Arc<Encoded>) {
        // No receiver is not an error: every video viewer may have left.
        if let Some(tx) = self.video.get(usize::from(tier)) {
            let _ = tx.send(enc);
        }
    }

    /// The stream's size changed to `width` × `height` (a remote source said so).
    pub fn set_size(&self, width: u32, height: u32) {
        self.width.store(width, Ordering::Relaxed);
        self.height.store(height, Ordering::Relaxed);
    }

    /// What the viewers demand now, per output, for a remote source:
    /// subscribed viewers and, of those, viewers ready for a frame; and the
    /// viewers that take region updates.
    pub fn demand_snapshot(&self) -> (Vec<framehub_proto::feed::OutputDemand>, u32) {
        let demand = lock(&self.shared).demand.clone();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let ready = |v: &Variant| count(demand.get(v).copied().unwrap_or(0));
        let mut out: Vec<framehub_proto::feed::OutputDemand> = self
            .image_outputs()
            .filter_map(|v| {
                let viewers = self.slots.get(&v)?.receiver_count();
                (viewers > 0).then(|| framehub_proto::feed::OutputDemand {
                    variant: v.id(),
                    viewers: count(viewers),
                    ready: ready(&v),
                })
            })
            .collect();
        for tier in 0..self.video_tiers() {
            let viewers = self.video_viewers_at(tier);
            if viewers > 0 {
                let v = Variant {
                    format: OutputFormat::H264,
                    tier,
                };
                out.push(framehub_proto::feed::OutputDemand {
                    variant: v.id(),
                    viewers: count(viewers),
                    ready: ready(&v),
                });
            }
        }
        (out, count(self.patch_viewers()))
    }

    /// Takes the keyframe requests waiting per video tier (a remote
    /// source's feed forwards them).
    pub fn take_keyframe_requests(&self) -> Vec<u8> {
        let mut s = lock(&self.shared);
        let mut tiers = Vec::new();
        for (t, k) in s.keyframes.iter_mut().enumerate() {
            if std::mem::take(&mut k.requested) {
                tiers.push(u8::try_from(t).unwrap_or(u8::MAX));
            }
        }
        tiers
    }

    /// Sets the code and reason viewers are closed with when the stream shuts down.
    pub fn set_end_reason(&self, code: u16, reason: &str) {
        *lock(&self.end_reason) = (code, reason.to_string());
    }

    /// The code and reason viewers are closed with when the stream shuts down.
    pub fn end_reason(&self) -> (u16, String) {
        lock(&self.end_reason).clone()
    }

    pub fn subscribe(&self, output: Variant) -> Option<watch::Receiver<Option<Arc<Encoded>>>> {
        self.slots.get(&output).map(|s| s.subscribe())
    }

    /// Encodes done for `format` (at every tier) since the stream was created.
    pub fn encode_count(&self, format: OutputFormat) -> u64 {
        self.encodes
            .iter()
            .filter(|(v, _)| v.format == format)
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Encodes done for `format` at quality tier `tier`.
    pub fn encode_count_at(&self, format: OutputFormat, tier: u8) -> u64 {
        self.encodes
            .get(&Variant { format, tier })
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub fn shut_down(&self) {
        lock(&self.shared).shutdown = true;
        self.wake.notify_all();
        self.closed.send_replace(true);
    }

    /// Checks whether every viewer now receives pictures at a reduced size
    /// (adaptive quality) and, when that changed, tells the publisher with a
    /// `downscale` event: the reduced size, or the full size once any viewer
    /// is back at full size (or none is left). The event's `client_id` is 0
    /// (the hub).
    pub fn update_downscale(&self) {
        let divisor = {
            let viewers = lock(&self.viewers);
            viewers
                .values()
                .map(|v| self.tier(v.metrics.tier).scale_divisor.max(1))
                .min()
                .unwrap_or(1)
        };
        let small = divisor > 1;
        if small == self.downscaled.swap(small, Ordering::Relaxed) {
            return;
        }
        let (w, h) = self.size();
        let event = framehub_proto::InputEvent::Downscale(framehub_proto::event::DownscaleHint {
            width: w.div_ceil(divisor),
            height: h.div_ceil(divisor),
        });
        self.push_event(ViewerEvent {
            client_id: 0,
            principal: None,
            received_us: self.micros_since_created(Instant::now()),
            event,
            hub: None,
        });
    }

    /// Tells the hub's lifecycle listeners, if the stream is in a hub.
    pub fn announce(&self, ev: crate::lifecycle::LifecycleEvent) {
        if let Some(tx) = self.lifecycle.get() {
            let _ = tx.send(ev);
        }
    }

    pub fn push_event(&self, ev: ViewerEvent) {
        self.events.push(ev);
    }

    /// A controlling viewer's viewport, `pwidth` × `pheight` device pixels:
    /// proposed as the target size under `ResizePolicy::Controller`.
    pub fn propose_size(&self, pwidth: u32, pheight: u32, now: Instant) {
        if let ResizePolicy::Controller { max_size, .. } = self.cfg.resize_policy {
            let clamp = |v: u32, max: u32| (v.clamp(2, max.max(2))) & !1;
            let size = (clamp(pwidth, max_size.0), clamp(pheight, max_size.1));
            let mut t = lock(&self.target);
            if t.proposed.is_none_or(|(s, _)| s != size) {
                t.proposed = Some((size, now));
            }
        }
    }

    /// The target size at `now`: the last proposal that held for the debounce time.
    pub fn target_size(&self, now: Instant) -> Option<(u32, u32)> {
        let ResizePolicy::Controller { debounce, .. } = self.cfg.resize_policy else {
            return None;
        };
        let mut t = lock(&self.target);
        if let Some((size, at)) = t.proposed {
            if now.saturating_duration_since(at) >= debounce {
                t.settled = Some(size);
            }
        }
        t.settled
    }

    /// Whether a viewer joining now with `session_id` and `principal` controls under the input policy.
    pub fn initial_controller(&self, session_id: u64, principal: Option<&Principal>) -> bool {
        let first = lock(&self.viewers)
            .keys()
            .next()
            .copied()
            .filter(|f| *f < session_id);
        self.cfg
            .input
            .controls(session_id, principal, Some(first.unwrap_or(session_id)))
    }

    /// Recomputes who controls under the stream's input policy and tells each viewer.
    pub fn update_controllers(&self) {
        let viewers = lock(&self.viewers);
        let first = viewers.keys().next().copied();
        for (id, v) in viewers.iter() {
            let c = self.cfg.input.controls(*id, v.principal.as_ref(), first);
            v.controller
                .send_if_modified(|old| std::mem::replace(old, c) != c);
        }
    }

    /// Starts the encode threads (none for a remote source: its publisher encodes).
    pub fn start(self: &Arc<Self>) -> Result<(), Error> {
        if self.source == SourceKind::Remote {
            return Ok(());
        }
        for worker in 0..crate::encode::ENCODE_THREADS {
            let me = Arc::clone(self);
            std::thread::Builder::new()
                .name(format!("framehub-enc{worker}-{}", self.name))
                .spawn(move || crate::encode::run(me, worker))?;
        }
        Ok(())
    }
}

/// A handle to one named stream of a hub. Cheap to clone; every clone is
/// the same stream. Publishing and polling events work from any thread.
#[derive(Clone)]
pub struct Stream {
    pub(crate) shared: Arc<StreamShared>,
    pub(crate) server: Server,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.shared.name)
            .finish()
    }
}

impl Stream {
    /// The stream's name (its URL path).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Current size in pixels: the size given at creation until the first
    /// frame, then the size of the last frame published.
    pub fn size(&self) -> (u32, u32) {
        self.shared.size()
    }

    /// Publishes a frame: it becomes the stream's latest (a frame not yet
    /// encoded is replaced, latest wins). Returns at once; encoding happens
    /// on the stream's encode thread. A frame of a new size resizes the stream.
    ///
    /// Errors: [`Error::InvalidFrame`] when the buffer is shorter than its
    /// shape, a side is 0 or over 16384; [`Error::Closed`] after the stream
    /// was removed or the server closed.
    pub fn publish<'a>(&self, frame: impl Into<Frame<'a>>) -> Result<(), Error> {
        self.shared.publish(frame.into())
    }

    /// Takes every event waiting in the queue, oldest first.
    pub fn poll_events(&self) -> Vec<ViewerEvent> {
        self.shared.events.drain()
    }

    /// The events as an async stream; it ends when the stream is removed or the server closes.
    pub fn events(&self) -> impl futures_util::Stream<Item = ViewerEvent> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let closed = shared.closed.subscribe();
        futures_util::stream::unfold((shared, closed), |(shared, mut closed)| async move {
            loop {
                if let Some(ev) = shared.events.pop() {
                    return Some((ev, (shared, closed)));
                }
                if *closed.borrow() {
                    return None;
                }
                // `push` leaves a permit with `notify_one`, so an event pushed
                // between the `pop` above and this wait is not missed.
                let woke = {
                    let notified = shared.events.notify.notified();
                    tokio::select! {
                        _ = notified => true,
                        r = closed.changed() => r.is_ok(),
                    }
                };
                if !woke {
                    return None;
                }
            }
        })
    }

    /// Events dropped because the queue was full.
    pub fn events_dropped(&self) -> u64 {
        self.shared.events.dropped()
    }

    /// Event lines the `record_file` writer could not keep up with (dropped).
    pub fn record_file_dropped(&self) -> u64 {
        self.shared.events.file_dropped()
    }

    /// Viewers connected now (handshake done).
    pub fn client_count(&self) -> usize {
        lock(&self.shared.viewers).len()
    }

    /// One metrics snapshot per connected viewer.
    pub fn metrics(&self) -> Vec<SessionMetrics> {
        lock(&self.shared.viewers)
            .values()
            .map(|v| v.metrics.clone())
            .collect()
    }

    /// Encodes done for `format` since the stream was created (each frame is
    /// encoded at most once per format and quality tier, whatever the number
    /// of viewers), summed over the tiers.
    pub fn encode_count(&self, format: OutputFormat) -> u64 {
        self.shared.encode_count(format)
    }

    /// Encodes done for `format` at adaptive-quality tier `tier` (0 = the
    /// stream's own quality; see [`crate::StreamConfig::quality_tiers`]).
    pub fn encode_count_at(&self, format: OutputFormat, tier: u8) -> u64 {
        self.shared.encode_count_at(format, tier)
    }

    /// Whether the latest published frame is still waiting for an encode
    /// thread (none has started on it, in any format; `false` before the
    /// first publish). While it waits, a new `publish` replaces it before any
    /// viewer saw it, so a program that renders on demand can skip rendering
    /// until this turns `false`. It stays `true` while no viewer can take a
    /// frame (none connected, hidden, or out of credit).
    pub fn frame_pending(&self) -> bool {
        self.shared.frame_pending()
    }

    /// The size the controlling viewer asks for, under
    /// [`crate::ResizePolicy::Controller`] (None otherwise, or before any
    /// viewer reported a size): even, within the policy's `max_size`, and
    /// stable for its `debounce`. Render frames of this size.
    pub fn target_size(&self) -> Option<(u32, u32)> {
        self.shared.target_size(Instant::now())
    }

    /// Video stills made since the stream was created: a resting frame
    /// encoded once more into the H.264 chain as a sharper keyframe (at most
    /// one per resting frame).
    pub fn video_still_count(&self) -> u64 {
        self.shared.video_stills.load(Ordering::Relaxed)
    }

    /// Region updates (`image_patch` payloads) made since the stream was
    /// created: at most one per frame and image format, shared by every
    /// viewer that holds the frame it patches.
    pub fn patch_count(&self) -> u64 {
        self.shared.patches.load(Ordering::Relaxed)
    }

    /// Lossless stills made since the stream was created (at most one per
    /// resting frame, whatever the number of viewers).
    pub fn still_count(&self) -> u64 {
        self.shared.stills.load(Ordering::Relaxed)
    }

    /// Records what this stream publishes to a new MP4 file at `path`
    /// (created, or truncated): H.264 from the stream's own full-rate chain
    /// (no second encode; while recording the chain runs even with no
    /// viewer), each picture timed by when it was published (variable
    /// frame rate, 90 kHz), as fragmented MP4 so a crash leaves a file
    /// playable up to its last fragment. [`crate::Recording::stop`]
    /// finalizes it. Recording never holds back viewers: a writer that
    /// falls behind loses units (counted) and resumes at a keyframe.
    ///
    /// A stream that offers no H.264 to viewers ([`crate::StreamConfig::h264`]
    /// off, the default) runs the same chain while it records, for the
    /// recording alone.
    ///
    /// Errors: [`Error::Recording`] when framehub was built without its
    /// `h264` feature, or the stream is a remote publisher's that sends no
    /// H.264; [`Error::Io`] when the file cannot be created.
    pub fn record(
        &self,
        path: impl AsRef<std::path::Path>,
        options: crate::RecordOptions,
    ) -> Result<crate::Recording, Error> {
        crate::record::start(&self.shared, path.as_ref(), options)
    }

    /// The hub this stream belongs to.
    pub fn server(&self) -> &Server {
        &self.server
    }
}
