//! A stream's encode thread: turns the latest published frame into the bytes
//! each kind of viewer needs, once per output, never for nobody.
//!
//! The thread sleeps on the stream's condition variable and wakes on a
//! publish, on a change of demand, on a keyframe request, or at a deadline
//! (a still becoming due, a rate-limited keyframe). [`next_job`] decides what
//! to do from the stream's state and the time; the rest of the file does it:
//!
//! * **Image**: encode the latest frame for each image format that some
//!   viewer can take now, publish it to that format's `watch` channel. When
//!   viewers take region updates, also compare the frame with the one
//!   encoded before it in that format ([`framehub_codec::diff`]) and, when
//!   little changed, encode just the changed rectangles as an `image_patch`
//!   payload next to the whole image; each viewer's session picks the patch
//!   only when it holds that earlier frame.
//! * **Still**: when nothing was published for `still_after`, encode the
//!   resting frame once as a lossless PNG and offer it to the lossy (JPEG)
//!   viewers (`"still": true`).
//! * **Video** (feature `h264`): one H.264 encoder per stream, shared by every
//!   video viewer. Each new frame becomes one access unit, broadcast in order
//!   to the video viewers. Keyframe requests from viewers are coalesced and
//!   rate-limited to one forced keyframe per [`KEYFRAME_MIN_INTERVAL`].
//! * **Video still**: when the stream rests for `still_after`, the resting
//!   frame goes into the chain once more as a keyframe at several times the
//!   bit rate ([`crate::video::STILL_BITRATE_FACTOR`]), so video viewers
//!   see it sharper too.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framehub_codec::diff::{changed_rects, Change, ChangeOptions};
use framehub_codec::scale::downscale;
use framehub_codec::{Encoder, JpegEncoder, PngEncoder};
use framehub_proto::session::later;
use framehub_proto::{FrameInfo, FrameKind, ImageFormat, OutputFormat, PatchInfo};

use crate::events::lock;
use crate::frame::RawFrame;
use crate::stream::{Encoded, Shared, StreamShared, Variant};

/// Shortest time between two forced keyframes of one stream (coalesces the
/// requests of many joining or recovering viewers; issue 4 suggests 250 ms).
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(250);

/// What the encode thread should do next.
#[derive(Debug)]
pub(crate) enum Job {
    /// Encode `frame` for these image formats; with each, the frame encoded
    /// before it in that format, to patch over (filled in when the job is
    /// claimed, and only while some viewer takes patches).
    Images(Arc<RawFrame>, Vec<(Variant, Option<Arc<RawFrame>>)>),
    /// Make `frame` into a lossless still for the lossy viewers.
    Still(Arc<RawFrame>),
    /// Encode `frame` into the H.264 chain of video tier `.2`, as a keyframe if `keyframe`.
    Video(Arc<RawFrame>, bool, u8),
    /// Encode the resting `frame` again into the H.264 chain as a
    /// high-quality keyframe (the video viewers' still).
    VideoStill(Arc<RawFrame>),
}

/// Encode threads per stream. Image encodes of successive frames run in
/// parallel (each thread claims a different frame), so one stream can use
/// both cores of a small machine; the H.264 chain of video tier `t` stays on
/// thread `t % ENCODE_THREADS` (tier 0 on thread 0).
pub const ENCODE_THREADS: usize = 2;

/// Decides the next job for encode thread `worker`, or when to look again
/// (`Err(None)`: only when woken).
pub(crate) fn next_job(
    stream: &StreamShared,
    s: &Shared,
    now: Instant,
    worker: usize,
) -> Result<Job, Option<Instant>> {
    let Some(frame) = s.latest.clone() else {
        return Err(None);
    };
    let encoded = |f: OutputFormat| s.encoded.get(&Variant::top(f)).copied().unwrap_or(0);
    let mut wake: Option<Instant> = None;
    let mut earliest = |t: Instant| wake = Some(wake.map_or(t, |w: Instant| w.min(t)));

    // Frame-rate cap: no new frame is encoded before the interval has passed
    // since the last one started; outputs (formats, tiers) of the frame
    // already started are not held back.
    let interval = stream
        .cfg
        .fps
        .and_then(|f| Duration::try_from_secs_f64(1.0 / f).ok());
    if let (Some(interval), Some((id, last))) = (interval, s.last_encode) {
        let due = later(last, interval);
        if id != frame.id && now < due {
            return Err(Some(due));
        }
    }

    let images: Vec<Variant> = stream
        .image_outputs()
        .filter(|v| {
            s.demand.get(v).copied().unwrap_or(0) > 0
                && s.encoded.get(v).copied().unwrap_or(0) < frame.id
        })
        .collect();
    if !images.is_empty() {
        return Ok(Job::Images(
            frame,
            images.into_iter().map(|v| (v, None)).collect(),
        ));
    }

    // Video: one chain per tier; tier t is encoded on thread t % ENCODE_THREADS.
    let video_tiers = stream.chain_tiers();
    for tier in (0..video_tiers).filter(|t| usize::from(*t) % ENCODE_THREADS == worker) {
        let out = Variant {
            format: OutputFormat::H264,
            tier,
        };
        let Some(k) = s.keyframes.get(usize::from(tier)) else {
            continue;
        };
        let done = s.encoded.get(&out).copied().unwrap_or(0);
        let viewers = stream.video_viewers_at(tier) > 0;
        let new_frame = s.demand.get(&out).copied().unwrap_or(0) > 0 && done < frame.id;
        let keyframe_allowed = k
            .last_forced
            .is_none_or(|t| now >= t + KEYFRAME_MIN_INTERVAL);
        if k.requested && viewers {
            // A new frame becomes the keyframe; the latest one is encoded
            // again only when the stream rests (no new frame is coming soon),
            // so viewers that have it are not sent it twice.
            let fresh = done < frame.id;
            let resting_at = later(frame.published_at, KEYFRAME_MIN_INTERVAL);
            if keyframe_allowed && (fresh || now >= resting_at) {
                return Ok(Job::Video(frame, true, tier));
            }
            if let Some(t) = k.last_forced.filter(|_| !keyframe_allowed) {
                earliest(later(t, KEYFRAME_MIN_INTERVAL));
            }
            if !fresh {
                earliest(resting_at);
            }
        }
        if new_frame {
            return Ok(Job::Video(frame, false, tier));
        }
    }

    if let Some(after) = stream.cfg.still_after {
        let due = later(frame.published_at, after);
        if s.still < frame.id && stream.lossy_viewers() > 0 {
            if now >= due {
                return Ok(Job::Still(frame));
            }
            earliest(due);
        }
        // Video viewers' still: the resting frame, already in the chain, once
        // more as a sharper keyframe (viewers that list framehub/still-png
        // get the PNG too, and their client keeps the PNG on screen).
        let in_chain = encoded(OutputFormat::H264) >= frame.id;
        if stream.chain_tiers() > 0
            && worker == 0
            && stream.video_viewers_at(0) > 0
            && in_chain
            && s.video_still < frame.id
        {
            if now >= due {
                return Ok(Job::VideoStill(frame));
            }
            earliest(due);
        }
    }
    Err(wake)
}

/// Notes for the `fps` cap that frame `id` started encoding at `now` (the
/// first output of a frame counts; later outputs of the same frame do not).
fn started(s: &mut Shared, id: u64, now: Instant) {
    if s.last_encode.is_none_or(|(last, _)| last != id) {
        s.last_encode = Some((id, now));
    }
}

/// The encode thread's state: its encoders, kept across frames.
struct Worker {
    stream: Arc<StreamShared>,
    /// JPEG encoders by quality (one per tier in use).
    jpeg: std::collections::HashMap<u8, JpegEncoder>,
    png: PngEncoder,
    /// H.264 chains by video tier (this thread's tiers; made on first use).
    #[cfg(feature = "h264")]
    video: std::collections::HashMap<u8, crate::video::VideoChain>,
}

/// Runs encode thread `worker` of `stream` until the stream shuts down.
pub(crate) fn run(stream: Arc<StreamShared>, worker: usize) {
    let mut w = Worker {
        jpeg: std::collections::HashMap::new(),
        png: PngEncoder::new(),
        #[cfg(feature = "h264")]
        video: std::collections::HashMap::new(),
        stream,
    };
    loop {
        let job = {
            let mut s = lock(&w.stream.shared);
            loop {
                if s.shutdown {
                    return;
                }
                match next_job(&w.stream, &s, Instant::now(), worker) {
                    Ok(mut job) => {
                        // Claim the work under the lock so it is done once.
                        let now = Instant::now();
                        let patches = w.stream.patch_viewers() > 0;
                        match &mut job {
                            Job::Images(f, formats) => {
                                for (out, base) in formats.iter_mut() {
                                    let out = *out;
                                    s.encoded.insert(out, f.id);
                                    // Scaled tiers go whole (their rects would not be on the grid).
                                    let scaled = w.stream.tier(out.tier).scale_divisor > 1;
                                    *base = if patches && !scaled {
                                        s.base.insert(out, Arc::clone(f))
                                    } else {
                                        s.base.remove(&out);
                                        None
                                    };
                                }
                                started(&mut s, f.id, now);
                            }
                            Job::Still(f) => s.still = f.id,
                            Job::VideoStill(f) => s.video_still = f.id,
                            Job::Video(f, key, tier) => {
                                let out = Variant {
                                    format: OutputFormat::H264,
                                    tier: *tier,
                                };
                                s.encoded.insert(out, f.id);
                                started(&mut s, f.id, now);
                                if *key {
                                    if let Some(k) = s.keyframes.get_mut(usize::from(*tier)) {
                                        k.requested = false;
                                        k.last_forced = Some(now);
                                    }
                                }
                            }
                        }
                        break job;
                    }
                    Err(None) => s = w.stream.wake.wait(s).unwrap_or_else(|e| e.into_inner()),
                    Err(Some(deadline)) => {
                        let timeout = deadline.saturating_duration_since(Instant::now());
                        s = w
                            .stream
                            .wake
                            .wait_timeout(s, timeout)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
        };
        match job {
            Job::Images(frame, formats) => {
                for (out, base) in formats {
                    w.encode_image(&frame, out, base.as_deref());
                }
            }
            Job::Still(frame) => w.encode_still(&frame),
            Job::Video(frame, keyframe, tier) => w.encode_video(&frame, keyframe, tier, false),
            Job::VideoStill(frame) => w.encode_video(&frame, true, 0, true),
        }
    }
}

impl Worker {
    fn encode_image(&mut self, frame: &RawFrame, out: Variant, base: Option<&RawFrame>) {
        let started = Instant::now();
        let OutputFormat::Image(fmt) = out.format else {
            return;
        };
        let tier = self.stream.tier(out.tier);
        let quality = tier.jpeg_quality;
        // What changed since the frame patched over (bases exist only at full size).
        let change = base.and_then(|base| {
            let (prev, cur) = (base.image().ok()?, frame.image().ok()?);
            Some((base, changed_rects(&prev, &cur, ChangeOptions::default())))
        });
        // Nothing changed: the whole image is the base's, already encoded
        // (when the slot still holds it), so it is shared instead of made again.
        let unchanged = match &change {
            Some((base, Change::Rects(r))) if r.is_empty() => self.encoded_bytes(out, base.id),
            _ => None,
        };
        let result = match unchanged {
            Some(bytes) => Ok(bytes),
            None => frame
                .image()
                .and_then(|img| {
                    if tier.scale_divisor > 1 {
                        let small = downscale(&img, tier.scale_divisor)?;
                        self.encoder(fmt, quality)?.encode(&small.image()?)
                    } else {
                        self.encoder(fmt, quality)?.encode(&img)
                    }
                })
                .map(Bytes::from),
        };
        let result = result.map(|full| {
            let patch = change.and_then(|(base, change)| {
                self.encode_patch(frame, base, change, (fmt, quality), full.len())
            });
            (full, patch)
        });
        self.publish(frame, out, fmt.mime(), false, started, result);
    }

    /// The whole-image bytes of frame `id` in `out`'s slot, if it still holds
    /// them (not a still: those are PNG).
    fn encoded_bytes(&self, out: Variant, id: u64) -> Option<Bytes> {
        let slot = self.stream.slots.get(&out)?;
        let cur = slot.borrow();
        cur.as_ref()
            .filter(|e| {
                e.info.frame_id == id
                    && matches!(e.info.kind, FrameKind::Image { still: false, .. })
            })
            .map(|e| e.data.clone())
    }

    /// The encoder of an image format (a JPEG encoder per quality, made on first use).
    fn encoder(
        &mut self,
        fmt: ImageFormat,
        quality: u8,
    ) -> Result<&mut dyn Encoder, framehub_codec::CodecError> {
        Ok(match fmt {
            ImageFormat::Jpeg => match self.jpeg.entry(quality) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(JpegEncoder::new(quality)?)
                }
            },
            ImageFormat::Png | ImageFormat::Webp => &mut self.png,
        })
    }

    /// `frame` as a region update over `base` in `fmt` from their `change`:
    /// the changed rectangles, one image each, each prefixed by its u32 LE
    /// length (protocol §4.3). None when the pictures are not comparable, too
    /// much changed, or the patch would not be smaller than the whole image
    /// (`full_len` bytes).
    fn encode_patch(
        &mut self,
        frame: &RawFrame,
        base: &RawFrame,
        change: Change,
        (fmt, quality): (ImageFormat, u8),
        full_len: usize,
    ) -> Option<(PatchInfo, Bytes)> {
        let Change::Rects(rects) = change else {
            return None;
        };
        let cur = frame.image().ok()?;
        let mut payload = Vec::new();
        for r in &rects {
            let img = cur.region(r[0], r[1], r[2], r[3]).ok()?;
            let bytes = self.encoder(fmt, quality).ok()?.encode(&img).ok()?;
            payload.extend_from_slice(&u32::try_from(bytes.len()).ok()?.to_le_bytes());
            payload.extend_from_slice(&bytes);
            if payload.len() >= full_len {
                return None;
            }
        }
        let info = PatchInfo {
            base_id: base.id,
            rects,
            bytes: payload.len(),
        };
        self.stream.patches.fetch_add(1, Ordering::Relaxed);
        Some((info, Bytes::from(payload)))
    }

    fn encode_still(&mut self, frame: &RawFrame) {
        let started = Instant::now();
        let result = frame
            .image()
            .and_then(|img| self.png.encode(&img))
            .map(Bytes::from);
        self.stream.stills.fetch_add(1, Ordering::Relaxed);
        let lossy: Vec<Variant> = self.stream.lossy_outputs().collect();
        for out in lossy {
            // The same bytes (reference-counted) for every lossy output.
            self.publish(
                frame,
                out,
                ImageFormat::Png.mime(),
                true,
                started,
                clone_ok(&result).map(|b| (b, None)),
            );
        }
    }

    fn publish(
        &self,
        frame: &RawFrame,
        out: Variant,
        mime: &'static str,
        still: bool,
        started: Instant,
        result: Result<(Bytes, Option<(PatchInfo, Bytes)>), framehub_codec::CodecError>,
    ) {
        let (data, patch) = match result {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(stream = %self.stream.name, error = %e, "encode failed");
                return;
            }
        };
        if !still {
            if let Some(c) = self.stream.encodes.get(&out) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        let info = FrameInfo {
            frame_id: frame.id,
            source_id: frame.id,
            timestamp_us: frame.timestamp_us,
            width: frame.width,
            height: frame.height,
            kind: FrameKind::Image {
                mime,
                still,
                patch: patch.as_ref().map(|(p, _)| p.clone()),
            },
            bytes: data.len(),
            encode_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        // Another encode thread may have finished a newer frame first:
        // viewers never go back to an older one.
        self.stream.offer_image(
            out,
            Arc::new(Encoded {
                info,
                data,
                patch: patch.map(|(_, b)| b),
            }),
        );
    }

    /// Encodes `frame` into the chain of video tier `tier` (made on first
    /// use); `still`: as a sharper keyframe of a resting frame. Chains of
    /// tiers nobody watches any more are dropped.
    #[cfg(feature = "h264")]
    fn encode_video(&mut self, frame: &RawFrame, keyframe: bool, tier: u8, still: bool) {
        let stream = Arc::clone(&self.stream);
        self.video
            .retain(|t, _| *t == 0 || stream.video_viewers_at(*t) > 0);
        let chain = self.video.entry(tier).or_insert_with(|| {
            let bitrate = stream.tier(tier).bitrate;
            crate::video::VideoChain::new(&stream.cfg, tier, bitrate)
        });
        let chunk = if still {
            stream.video_stills.fetch_add(1, Ordering::Relaxed);
            chain.encode_still(&stream, frame)
        } else {
            chain.encode(&stream, frame, keyframe)
        };
        if let Some(chunk) = chunk {
            let out = Variant {
                format: OutputFormat::H264,
                tier,
            };
            if let Some(c) = stream.encodes.get(&out) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            stream.offer_video(tier, Arc::new(chunk));
        }
    }

    #[cfg(not(feature = "h264"))]
    fn encode_video(&mut self, _frame: &RawFrame, _keyframe: bool, _tier: u8, _still: bool) {}
}

fn clone_ok(
    r: &Result<Bytes, framehub_codec::CodecError>,
) -> Result<Bytes, framehub_codec::CodecError> {
    match r {
        Ok(b) => Ok(b.clone()),
        Err(e) => Err(framehub_codec::CodecError::Backend {
            codec: "png",
            message: e.to_string(),
        }),
    }
}
