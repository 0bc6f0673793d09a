//! The stream's H.264 chain: one encoder shared by every video viewer.
//!
//! Access units are numbered consecutively per stream (`FrameInfo::frame_id`),
//! so a viewer's [`framehub_proto::Session`] can tell when it missed one and
//! must wait for a keyframe. A new frame size rebuilds the encoder; its first
//! access unit is a keyframe. The encoder's rate control is told the frame
//! rate actually encoded (smoothed), so bytes per frame do not balloon when
//! fewer frames are sent than the configured rate.

use std::time::Instant;

use bytes::Bytes;
use framehub_codec::{H264Config, H264Encoder};
use framehub_proto::{FrameInfo, FrameKind};

use crate::config::StreamConfig;
use crate::events::lock;
use crate::frame::RawFrame;
use crate::stream::{Encoded, StreamShared};

/// A video still (a resting frame encoded once more as a keyframe) gets this
/// many times the stream's bit rate for that one picture, then the rate is
/// restored. Measured on a busy 640×360 picture at 1 Mbit/s: luma PSNR 38.9 dB
/// for the regular keyframe, 42.7 dB for the still (×8; ×32 gives no more:
/// OpenH264's quantiser floor).
pub(crate) const STILL_BITRATE_FACTOR: u32 = 8;

/// Smoothing of the measured frame rate (exponential moving average weight of a new interval).
const FPS_ALPHA: f64 = 0.1;

/// Encodes one black frame of `width` × `height` with `cfg`'s settings and
/// returns the codec string of its SPS (None when the encoder cannot be made).
pub(crate) fn probe_codec(width: u32, height: u32, cfg: &StreamConfig) -> Option<String> {
    let chain = VideoChain::new(cfg, 0, u64::from(cfg.bitrate));
    // One slice: slices leave the SPS as it is, and spare the probe
    // OpenH264's threads and its first, dropped picture.
    let probe = H264Config {
        threads: 1,
        ..chain.cfg
    };
    let mut enc = H264Encoder::new(width, height, probe).ok()?;
    let black = vec![0u8; width as usize * height as usize * 3];
    let img = framehub_codec::RawImage::new(
        &black,
        width,
        height,
        width as usize * 3,
        framehub_codec::PixelLayout::Rgb8,
    )
    .ok()?;
    enc.encode(&img, 0, true).ok()?;
    Some(enc.codec_string())
}

/// The encoder and its bookkeeping, owned by the encode thread.
pub(crate) struct VideoChain {
    encoder: Option<H264Encoder>,
    cfg: H264Config,
    next_chunk: u64,
    last_encode: Option<Instant>,
    /// Smoothed encoded frame rate, frames/s.
    fps: f64,
    /// Frame rate the encoder was last told.
    told_fps: f64,
}

impl VideoChain {
    /// The chain of video tier `tier` at `bitrate` bit/s. Its access units
    /// are numbered from `tier` × 2^56 + 1, so units of two chains are never
    /// consecutive: a viewer moved to another tier waits for a keyframe.
    pub fn new(cfg: &StreamConfig, tier: u8, bitrate: u64) -> Self {
        let fps = cfg.fps.unwrap_or(30.0);
        VideoChain {
            encoder: None,
            cfg: H264Config {
                bitrate_bps: u32::try_from(bitrate).unwrap_or(u32::MAX).max(64_000),
                fps: fps as f32,
                keyframe_interval_s: cfg.keyframe_interval.as_secs_f32(),
                ..H264Config::default()
            },
            next_chunk: (u64::from(tier) << 56) + 1,
            last_encode: None,
            fps,
            told_fps: fps,
        }
    }

    /// Encodes the resting `frame` as the next access unit: a keyframe at
    /// [`STILL_BITRATE_FACTOR`] times the bit rate (capped), after which the
    /// rate is restored. The measured frame rate is left alone (the still is
    /// not part of the stream's motion).
    pub fn encode_still(&mut self, stream: &StreamShared, frame: &RawFrame) -> Option<Encoded> {
        let (fps, last) = (self.fps, self.last_encode);
        let normal = self.cfg.bitrate_bps;
        let high = normal
            .saturating_mul(STILL_BITRATE_FACTOR)
            .min(i32::MAX as u32);
        let boosted = match self.encoder.as_mut() {
            Some(enc) => enc.set_bitrate(high).is_ok(),
            None => false,
        };
        let out = self.encode(stream, frame, true);
        if boosted {
            if let Some(enc) = self.encoder.as_mut() {
                if let Err(e) = enc.set_bitrate(normal) {
                    tracing::warn!(stream = %stream.name, error = %e, "cannot restore the bit rate after a still; rebuilding the encoder");
                    self.encoder = None;
                }
            }
        }
        (self.fps, self.last_encode) = (fps, last);
        out
    }

    /// Encodes `frame` as the next access unit (a keyframe when `keyframe`,
    /// on a new encoder, or when the keyframe interval has passed).
    pub fn encode(
        &mut self,
        stream: &StreamShared,
        frame: &RawFrame,
        keyframe: bool,
    ) -> Option<Encoded> {
        let started = Instant::now();
        if let Some(last) = self.last_encode {
            let dt = started.duration_since(last).as_secs_f64();
            if dt > 0.0 {
                self.fps = (1.0 - FPS_ALPHA) * self.fps + FPS_ALPHA * (1.0 / dt).min(240.0);
            }
        }
        self.last_encode = Some(started);
        let (w, h) = (frame.width & !1, frame.height & !1);
        if self
            .encoder
            .as_ref()
            .is_none_or(|e| e.width() != w || e.height() != h)
        {
            match H264Encoder::new(
                w,
                h,
                H264Config {
                    fps: self.fps as f32,
                    ..self.cfg
                },
            ) {
                Ok(e) => self.encoder = Some(e),
                Err(e) => {
                    tracing::error!(stream = %stream.name, error = %e, "cannot create the H.264 encoder");
                    self.encoder = None;
                    return None;
                }
            }
            self.told_fps = self.fps;
        }
        let enc = self.encoder.as_mut()?;
        // Tell rate control the real rate when it drifted by over 20 %.
        if (self.fps - self.told_fps).abs() > 0.2 * self.told_fps
            && enc.set_fps(self.fps.clamp(1.0, 60.0) as f32).is_ok()
        {
            self.told_fps = self.fps;
        }
        // Odd sizes are cropped to even (4:2:0 needs even sides).
        let image = frame.image().and_then(|img| img.crop(w, h));
        let au = match image.and_then(|img| enc.encode(&img, frame.timestamp_us, keyframe)) {
            Ok(au) => au,
            Err(e) => {
                tracing::error!(stream = %stream.name, error = %e, "H.264 encode failed");
                return None;
            }
        };
        let codec = enc.codec_string();
        if au.keyframe {
            *lock(&stream.codec) = codec.clone();
        }
        let id = self.next_chunk;
        self.next_chunk += 1;
        let info = FrameInfo {
            frame_id: id,
            source_id: frame.id,
            timestamp_us: frame.timestamp_us,
            width: w,
            height: h,
            kind: FrameKind::Video {
                codec,
                keyframe: au.keyframe,
                duration_us: Some((1_000_000.0 / self.fps.max(1.0)) as u64),
            },
            bytes: au.data.len(),
            encode_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        Some(Encoded {
            info,
            data: Bytes::from(au.data),
            patch: None,
        })
    }
}
