//! A stream's encode thread: turns the latest published frame into the bytes
//! each kind of viewer needs, once per output, never for nobody.
//!
//! The thread sleeps on the stream's condition variable and wakes on a
//! publish, on a change of demand, on a keyframe request, or at a deadline
//! (a still becoming due, a rate-limited keyframe). [`next_job`] decides what
//! to do from the stream's state and the time; the rest of the file does it:
//!
//! * **Image**: encode the latest frame for each image format that some
//!   viewer can take now, publish it to that format's `watch` channel.
//! * **Still**: when nothing was published for `still_after`, encode the
//!   resting frame once as a lossless PNG and offer it to the lossy (JPEG)
//!   viewers (`"still": true`).
//! * **Video** (feature `h264`): one H.264 encoder per stream, shared by every
//!   video viewer. Each new frame becomes one access unit, broadcast in order
//!   to the video viewers. Keyframe requests from viewers are coalesced and
//!   rate-limited to one forced keyframe per [`KEYFRAME_MIN_INTERVAL`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framehub_codec::{Encoder, JpegEncoder, PngEncoder};
use framehub_proto::session::later;
use framehub_proto::{FrameInfo, FrameKind, ImageFormat, OutputFormat};

use crate::events::lock;
use crate::frame::RawFrame;
use crate::stream::{Encoded, Shared, StreamShared};

/// Shortest time between two forced keyframes of one stream (coalesces the
/// requests of many joining or recovering viewers; issue 4 suggests 250 ms).
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(250);

/// What the encode thread should do next.
#[derive(Debug)]
pub(crate) enum Job {
    /// Encode `frame` for these image formats.
    Images(Arc<RawFrame>, Vec<ImageFormat>),
    /// Make `frame` into a lossless still for the lossy viewers.
    Still(Arc<RawFrame>),
    /// Encode `frame` into the stream's H.264 chain, as a keyframe if `keyframe`.
    Video(Arc<RawFrame>, bool),
}

/// Encode threads per stream. Image encodes of successive frames run in
/// parallel (each thread claims a different frame), so one stream can use
/// both cores of a small machine; the H.264 chain stays on thread 0.
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
    let demand = |f: OutputFormat| s.demand.get(&f).copied().unwrap_or(0) > 0;
    let encoded = |f: OutputFormat| s.encoded.get(&f).copied().unwrap_or(0);
    let mut wake: Option<Instant> = None;
    let mut earliest = |t: Instant| wake = Some(wake.map_or(t, |w: Instant| w.min(t)));

    // Frame-rate cap: nothing new is encoded before the interval has passed.
    let interval = stream
        .cfg
        .fps
        .and_then(|f| Duration::try_from_secs_f64(1.0 / f).ok());
    if let (Some(interval), Some(last)) = (interval, s.last_encode) {
        let due = later(last, interval);
        if now < due {
            return Err(Some(due));
        }
    }

    let images: Vec<ImageFormat> = stream
        .image_formats()
        .filter(|f| demand(OutputFormat::Image(*f)) && encoded(OutputFormat::Image(*f)) < frame.id)
        .collect();
    if !images.is_empty() {
        return Ok(Job::Images(frame, images));
    }

    if stream.has_video() && worker == 0 {
        let viewers = stream.video_viewers() > 0;
        let new_frame = demand(OutputFormat::H264) && encoded(OutputFormat::H264) < frame.id;
        let keyframe_allowed = s
            .last_forced_keyframe
            .is_none_or(|t| now >= t + KEYFRAME_MIN_INTERVAL);
        if s.keyframe_requested && viewers {
            // A new frame becomes the keyframe; the latest one is encoded
            // again only when the stream rests (no new frame is coming soon),
            // so viewers that have it are not sent it twice.
            let fresh = encoded(OutputFormat::H264) < frame.id;
            let resting_at = later(frame.published_at, KEYFRAME_MIN_INTERVAL);
            if keyframe_allowed && (fresh || now >= resting_at) {
                return Ok(Job::Video(frame, true));
            }
            if let Some(t) = s.last_forced_keyframe.filter(|_| !keyframe_allowed) {
                earliest(later(t, KEYFRAME_MIN_INTERVAL));
            }
            if !fresh {
                earliest(resting_at);
            }
        }
        if new_frame {
            return Ok(Job::Video(frame, false));
        }
    }

    if let Some(after) = stream.cfg.still_after {
        if s.still < frame.id && stream.lossy_viewers() > 0 {
            let due = later(frame.published_at, after);
            if now >= due {
                return Ok(Job::Still(frame));
            }
            earliest(due);
        }
    }
    Err(wake)
}

/// The encode thread's state: its encoders, kept across frames.
struct Worker {
    stream: Arc<StreamShared>,
    jpeg: Option<JpegEncoder>,
    png: PngEncoder,
    #[cfg(feature = "h264")]
    video: crate::video::VideoChain,
}

/// Runs encode thread `worker` of `stream` until the stream shuts down.
pub(crate) fn run(stream: Arc<StreamShared>, worker: usize) {
    let mut w = Worker {
        jpeg: None,
        png: PngEncoder::new(),
        #[cfg(feature = "h264")]
        video: crate::video::VideoChain::new(&stream.cfg),
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
                    Ok(job) => {
                        // Claim the work under the lock so it is done once.
                        let now = Instant::now();
                        match &job {
                            Job::Images(f, formats) => {
                                for fmt in formats {
                                    s.encoded.insert(OutputFormat::Image(*fmt), f.id);
                                }
                                s.last_encode = Some(now);
                            }
                            Job::Still(f) => s.still = f.id,
                            Job::Video(f, key) => {
                                s.encoded.insert(OutputFormat::H264, f.id);
                                s.last_encode = Some(now);
                                if *key {
                                    s.keyframe_requested = false;
                                    s.last_forced_keyframe = Some(now);
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
                for fmt in formats {
                    w.encode_image(&frame, fmt);
                }
            }
            Job::Still(frame) => w.encode_still(&frame),
            Job::Video(frame, keyframe) => w.encode_video(&frame, keyframe),
        }
    }
}

impl Worker {
    fn encode_image(&mut self, frame: &RawFrame, fmt: ImageFormat) {
        let started = Instant::now();
        let result = frame
            .image()
            .and_then(|img| match fmt {
                ImageFormat::Jpeg => {
                    let enc = match self.jpeg.as_mut() {
                        Some(enc) => enc,
                        None => self.jpeg.insert(JpegEncoder::new(self.stream.cfg.quality)?),
                    };
                    enc.encode(&img)
                }
                ImageFormat::Png | ImageFormat::Webp => self.png.encode(&img),
            })
            .map(Bytes::from);
        let out = OutputFormat::Image(fmt);
        self.publish(frame, out, fmt.mime(), false, started, result);
    }

    fn encode_still(&mut self, frame: &RawFrame) {
        let started = Instant::now();
        let result = frame
            .image()
            .and_then(|img| self.png.encode(&img))
            .map(Bytes::from);
        self.stream.stills.fetch_add(1, Ordering::Relaxed);
        for fmt in self.stream.lossy_formats() {
            // The same bytes (reference-counted) for every lossy format.
            self.publish(
                frame,
                OutputFormat::Image(fmt),
                ImageFormat::Png.mime(),
                true,
                started,
                clone_ok(&result),
            );
        }
    }

    fn publish(
        &self,
        frame: &RawFrame,
        out: OutputFormat,
        mime: &'static str,
        still: bool,
        started: Instant,
        result: Result<Bytes, framehub_codec::CodecError>,
    ) {
        let data = match result {
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
            kind: FrameKind::Image { mime, still },
            bytes: data.len(),
            encode_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        if let Some(slot) = self.stream.slots.get(&out) {
            // Another encode thread may have finished a newer frame first:
            // viewers never go back to an older one.
            let key = order_key(&info);
            let enc = Arc::new(Encoded { info, data });
            slot.send_if_modified(|cur| {
                if cur.as_ref().is_none_or(|c| order_key(&c.info) < key) {
                    *cur = Some(enc);
                    true
                } else {
                    false
                }
            });
        }
    }

    #[cfg(feature = "h264")]
    fn encode_video(&mut self, frame: &RawFrame, keyframe: bool) {
        if let Some(chunk) = self.video.encode(&self.stream, frame, keyframe) {
            if let Some(c) = self.stream.encodes.get(&OutputFormat::H264) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            // No receiver is not an error: every video viewer may have left.
            let _ = self.stream.video.send(Arc::new(chunk));
        }
    }

    #[cfg(not(feature = "h264"))]
    fn encode_video(&mut self, _frame: &RawFrame, _keyframe: bool) {}
}

/// The order of frames in an image slot: by frame id, a still after the lossy frame of the same id.
fn order_key(info: &FrameInfo) -> (u64, bool) {
    (
        info.frame_id,
        matches!(info.kind, FrameKind::Image { still: true, .. }),
    )
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
