//! H.264 through OpenH264 (crate `openh264`, built from source with its nasm
//! assembly): Constrained Baseline, no B-frames, zero reorder delay, one
//! Annex-B access unit per input frame.
//!
//! Colour: RGB(A) is converted to I420 with the `yuv` crate using the
//! ITU-R BT.709-6 matrix (Part 1, §3: E'Y = 0.2126 R' + 0.7152 G' +
//! 0.0722 B', E'CB = (B' - E'Y) / 1.8556, E'CR = (R' - E'Y) / 1.5748) at
//! limited ("studio") 8-bit range: Y = 16 + 219 E'Y, Cb/Cr = 128 + 224 E'C,
//! so luma 16..=235 and chroma 16..=240. The SPS VUI says the same (H.264
//! Annex E: `video_signal_type_present_flag` = 1, `video_full_range_flag` =
//! 0, `colour_primaries` = `transfer_characteristics` =
//! `matrix_coefficients` = 1, Tables E-3..E-5), so decoders such as
//! browsers' WebCodecs convert back with the same matrix.
//!
//! Speed: OpenH264's `Complexity::Low` preset, and by default one slice per
//! CPU core (at most 4), each encoded on its own OpenH264 thread, so one
//! stream's encoder uses every core (see [`H264Config::threads`]).
//!
//! The only `unsafe` code of the crate is the small `live` module below
//! (slices and run-time bit rate / frame rate through OpenH264's
//! `GetOption`/`SetOption`).

use openh264::encoder::{
    BitRate, Complexity, Encoder as OpenH264Encoder, EncoderConfig, FrameRate, IntraFramePeriod,
    Profile, RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};
use yuv::{BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

use crate::annexb::{self, SpsInfo, NAL_IDR, NAL_PPS, NAL_SPS};
use crate::{CodecError, PixelLayout, RawImage};

/// Default target bit rate, bits per second.
pub const DEFAULT_H264_BITRATE_BPS: u32 = 4_000_000;
/// Default frame rate told to the rate control, frames per second.
pub const DEFAULT_H264_FPS: f32 = 30.0;
/// Default time between keyframes, seconds of timestamps.
pub const DEFAULT_H264_KEYFRAME_INTERVAL_S: f32 = 2.0;

/// OpenH264's largest frame: 3840×2160 in either orientation (its README:
/// "Encoder errors when resolution exceeds 3840x2160").
const MAX_LONG_SIDE: u32 = 3840;
const MAX_SHORT_SIDE: u32 = 2160;
/// OpenH264 refuses pictures narrower or lower than 16 pixels
/// (`EncodeFrameInternal` in its `welsEncoderExt.cpp`).
const MIN_SIDE: u32 = 16;
/// Most threads (and slices) OpenH264 encodes a picture with
/// (`MAX_THREADS_NUM` in its `wels_const.h`); also the most
/// `H264Config::threads` = 0 picks.
const MAX_H264_THREADS: u16 = 4;
/// OpenH264 clamps the frame rate to this range (`MIN_FRAME_RATE`,
/// `MAX_FRAME_RATE` in its `wels_const.h`).
const MIN_FPS: f32 = 1.0;
const MAX_FPS: f32 = 60.0;

fn backend(message: impl std::fmt::Display) -> CodecError {
    CodecError::Backend {
        codec: "h264",
        message: message.to_string(),
    }
}

/// Settings of an [`H264Encoder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct H264Config {
    /// Target bit rate in bits per second (default 4 000 000). Must be at
    /// least `fps` and at most `i32::MAX`.
    pub bitrate_bps: u32,
    /// The real frame rate, frames per second, that the rate control spreads
    /// the bit rate over (default 30). Must be finite and positive; OpenH264
    /// clamps it to 1..=60.
    pub fps: f32,
    /// Seconds of *timestamps* between keyframes (default 2.0): a frame whose
    /// timestamp is at least this much after the last keyframe's becomes an
    /// IDR. Must be positive (not NaN); `f32::INFINITY` means keyframes only
    /// on request.
    pub keyframe_interval_s: f32,
    /// Slices per picture, each encoded on its own OpenH264 thread while the
    /// calling thread waits (default 0: one per CPU core as
    /// `std::thread::available_parallelism` reports it, at most 4). 1: one
    /// slice, encoded on the calling thread. Values above 4, the most
    /// OpenH264 runs (`MAX_THREADS_NUM` in its `wels_const.h`), are
    /// clamped to 4. OpenH264 keeps
    /// one slice for small pictures (48 macroblocks or fewer, or too few
    /// macroblock rows for its rate control to split). Slices cost a
    /// little compression (no prediction or deblocking across a slice
    /// edge) and nothing else: the access unit is still one picture,
    /// decodable on arrival. OpenH264 runs the slices of every encoder of
    /// the process on one shared pool of threads (its `CWelsThreadPool`),
    /// sized by the first encoder that starts it, so many streams do not
    /// mean many threads.
    pub threads: u16,
}

impl Default for H264Config {
    fn default() -> Self {
        H264Config {
            bitrate_bps: DEFAULT_H264_BITRATE_BPS,
            fps: DEFAULT_H264_FPS,
            keyframe_interval_s: DEFAULT_H264_KEYFRAME_INTERVAL_S,
            threads: 0,
        }
    }
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The NAL units of one access unit in Annex-B form (each after a 4-byte
    /// start code). A keyframe starts with SPS and PPS, then the IDR slice.
    pub data: Vec<u8>,
    /// Whether this is an IDR access unit (decodable on its own; carries SPS
    /// and PPS in band).
    pub keyframe: bool,
}

/// An I420 picture owned by the encoder: the conversion target and
/// OpenH264's input.
struct I420 {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl I420 {
    fn new(width: usize, height: usize) -> Self {
        let chroma = (width / 2) * (height / 2);
        I420 {
            width,
            height,
            y: vec![0; width * height],
            u: vec![128; chroma],
            v: vec![128; chroma],
        }
    }
}

impl YUVSource for I420 {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }
    fn y(&self) -> &[u8] {
        &self.y
    }
    fn u(&self) -> &[u8] {
        &self.u
    }
    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Converts `image` into `out` (same size, even sides): BT.709 matrix,
/// limited range, chroma averaged over each 2×2 block.
///
/// Errors: [`CodecError::InvalidImage`] when the size differs or the stride
/// does not fit in `u32`; [`CodecError::Backend`] when the `yuv` crate
/// refuses the buffers.
fn rgb_to_i420(image: &RawImage<'_>, out: &mut I420) -> Result<(), CodecError> {
    if image.width() as usize != out.width || image.height() as usize != out.height {
        return Err(CodecError::InvalidImage(format!(
            "frame is {}x{}, the encoder was made for {}x{}",
            image.width(),
            image.height(),
            out.width,
            out.height
        )));
    }
    let stride = u32::try_from(image.stride())
        .map_err(|_| CodecError::InvalidImage(format!("stride {} is too large", image.stride())))?;
    let w = image.width();
    let mut planar = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(&mut out.y),
        y_stride: w,
        u_plane: BufferStoreMut::Borrowed(&mut out.u),
        u_stride: w / 2,
        v_plane: BufferStoreMut::Borrowed(&mut out.v),
        v_stride: w / 2,
        width: w,
        height: image.height(),
    };
    let convert = match image.layout() {
        PixelLayout::Rgba8 => yuv::rgba_to_yuv420,
        PixelLayout::Rgb8 => yuv::rgb_to_yuv420,
    };
    convert(
        &mut planar,
        image.data(),
        stride,
        YuvRange::Limited,
        YuvStandardMatrix::Bt709,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| backend(format!("RGB to I420: {e}")))
}

/// Tightly packed 8-bit I420 (4:2:0) planes of a `width` × `height` picture
/// with even sides: `y` is `width * height` bytes, `u` (Cb) and `v` (Cr) are
/// `(width / 2) * (height / 2)` bytes each, rows back to back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Planes {
    /// Luma, limited range 16..=235.
    pub y: Vec<u8>,
    /// Cb, limited range 16..=240, one sample per 2×2 pixels.
    pub u: Vec<u8>,
    /// Cr, limited range 16..=240, one sample per 2×2 pixels.
    pub v: Vec<u8>,
}

/// Converts an RGB(A) image with even sides into I420, exactly as
/// [`H264Encoder`] does before encoding: BT.709 matrix, limited range.
///
/// Errors: [`CodecError::InvalidImage`] for an odd side;
/// [`CodecError::Backend`] when the conversion fails.
pub fn rgb_to_i420_bt709(image: &RawImage<'_>) -> Result<I420Planes, CodecError> {
    check_even(image.width(), image.height())?;
    let mut out = I420::new(image.width() as usize, image.height() as usize);
    rgb_to_i420(image, &mut out)?;
    Ok(I420Planes {
        y: out.y,
        u: out.u,
        v: out.v,
    })
}

fn check_even(width: u32, height: u32) -> Result<(), CodecError> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(CodecError::InvalidImage(format!(
            "H.264 4:2:0 needs even, non-zero sides; got {width}x{height}"
        )));
    }
    Ok(())
}

/// Checks a configuration; returns the keyframe interval in microseconds
/// (`u64::MAX` for "never").
fn check_config(cfg: &H264Config) -> Result<u64, CodecError> {
    if !cfg.fps.is_finite() || cfg.fps <= 0.0 {
        return Err(CodecError::InvalidImage(format!(
            "fps must be finite and positive, got {}",
            cfg.fps
        )));
    }
    check_bitrate(cfg.bitrate_bps, cfg.fps)?;
    if cfg.keyframe_interval_s.is_nan() || cfg.keyframe_interval_s <= 0.0 {
        return Err(CodecError::InvalidImage(format!(
            "keyframe_interval_s must be positive, got {}",
            cfg.keyframe_interval_s
        )));
    }
    // `as` saturates: infinity becomes u64::MAX ("never").
    Ok((f64::from(cfg.keyframe_interval_s) * 1e6) as u64)
}

fn check_bitrate(bps: u32, fps: f32) -> Result<(), CodecError> {
    // OpenH264 rejects a bit rate below the frame rate (WelsBitRateVerification)
    // and keeps bit rates in an `int`.
    if f64::from(bps) < f64::from(fps.clamp(MIN_FPS, MAX_FPS)) || i32::try_from(bps).is_err() {
        return Err(CodecError::InvalidImage(format!(
            "bitrate_bps {bps} is outside {}..={}",
            fps.clamp(MIN_FPS, MAX_FPS).ceil(),
            i32::MAX
        )));
    }
    Ok(())
}

/// The OpenH264 configuration for `cfg`.
fn openh264_config(cfg: &H264Config) -> EncoderConfig {
    EncoderConfig::new()
        .bitrate(BitRate::from_bps(cfg.bitrate_bps))
        .max_frame_rate(FrameRate::from_hz(cfg.fps))
        .rate_control_mode(RateControlMode::Bitrate)
        // A skipped frame would be an empty access unit; quality drops instead.
        // (OpenH264 logs one warning about this to stderr when it starts.)
        .skip_frames(false)
        .usage_type(UsageType::CameraVideoRealTime)
        // Baseline + OpenH264's constraint_set1_flag = Constrained Baseline.
        .profile(Profile::Baseline)
        // The same SPS/PPS ids on every IDR, so any keyframe restarts a decoder.
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        // No frame-count GOP: keyframes follow timestamps (H264Encoder::encode).
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .scene_change_detect(false)
        // Mode decision by SAD instead of SATD and a cheaper intra search:
        // about half the CPU of `Medium` per frame (1280x720: 5.1 vs 9.7 ms,
        // 1920x1080: 11.8 vs 20.5 ms on the bench pictures), for 0.05 dB
        // less luma PSNR at the same bit rate (docs/benchmarks.md).
        .complexity(Complexity::Low)
        // Starts with one slice on the calling thread; `make_openh264`
        // switches to several slices on as many threads.
        .num_threads(1)
        .vui(VuiConfig::bt709())
}

/// The threads (and slices) `cfg.threads` asks for.
fn threads_for(cfg: &H264Config) -> u16 {
    match cfg.threads {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| u16::try_from(n.get()).unwrap_or(u16::MAX))
            .min(MAX_H264_THREADS),
        n => n.min(MAX_H264_THREADS),
    }
}

/// An OpenH264 encoder for `width` x `height` frames (even sides) with `cfg`.
/// Returns it with whether OpenH264 is initialised already and the slices
/// per picture.
///
/// For more than one thread it is initialised here: OpenH264 starts on the
/// first encode (the `openh264` crate offers no other way), so one flat
/// picture is encoded and dropped, then the slices are set, which
/// restarts OpenH264 (its `WelsEncoderParamAdjust`): the next frame is an
/// IDR again. Should OpenH264 refuse the slices, the encoder stays on one.
fn make_openh264(
    cfg: &H264Config,
    width: u32,
    height: u32,
) -> Result<(OpenH264Encoder, bool, u32), CodecError> {
    let mut enc =
        OpenH264Encoder::with_api_config(OpenH264API::from_source(), openh264_config(cfg))
            .map_err(backend)?;
    let threads = threads_for(cfg);
    if threads <= 1 {
        return Ok((enc, false, 1));
    }
    let flat = I420::new(width as usize, height as usize);
    enc.encode_at(&flat, Timestamp::ZERO).map_err(backend)?;
    // A refusal leaves OpenH264 as it was: one slice, initialised.
    let slices = live::set_slices(&mut enc, threads).unwrap_or(1);
    Ok((enc, true, slices))
}

/// An H.264 encoder for one stream of frames of a fixed size.
///
/// Output: Constrained Baseline (profile_idc 66 with constraint_set1_flag),
/// CAVLC, [`slices`](Self::slices) slices per picture in raster order,
/// P-frames only after each IDR, so every access unit can
/// be decoded as soon as it arrives (no reordering). Keyframes (IDR with SPS
/// and PPS in band) come first, every `keyframe_interval_s` seconds of
/// timestamps, and on request.
pub struct H264Encoder {
    inner: OpenH264Encoder,
    cfg: H264Config,
    interval_us: u64,
    width: u32,
    height: u32,
    picture: I420,
    /// Whether OpenH264 has been initialised (on the first encode, or by
    /// `make_openh264`); run-time options need that.
    started: bool,
    /// Slices per picture.
    slices: u32,
    /// An IDR was due but not yet produced.
    idr_pending: bool,
    last_keyframe_us: Option<u64>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    sps_info: Option<SpsInfo>,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("cfg", &self.cfg)
            .field("last_keyframe_us", &self.last_keyframe_us)
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// An encoder for `width` × `height` frames.
    ///
    /// Errors: [`CodecError::InvalidImage`] when a side is odd, below 16 (the
    /// OpenH264 minimum), or the size is over OpenH264's 3840×2160 (either
    /// orientation); when `fps` is not finite and positive, `bitrate_bps` is
    /// below `fps` or over `i32::MAX`, or `keyframe_interval_s` is not
    /// positive (settings errors use this variant too).
    /// [`CodecError::Backend`] when OpenH264 cannot start.
    pub fn new(width: u32, height: u32, cfg: H264Config) -> Result<Self, CodecError> {
        check_even(width, height)?;
        if width.max(height) > MAX_LONG_SIDE
            || width.min(height) > MAX_SHORT_SIDE
            || width.min(height) < MIN_SIDE
        {
            return Err(CodecError::InvalidImage(format!(
                "{width}x{height} is outside OpenH264's {MIN_SIDE}x{MIN_SIDE} to \
                 {MAX_LONG_SIDE}x{MAX_SHORT_SIDE} (either orientation)"
            )));
        }
        let interval_us = check_config(&cfg)?;
        let (inner, started, slices) = make_openh264(&cfg, width, height)?;
        Ok(H264Encoder {
            inner,
            cfg,
            interval_us,
            width,
            height,
            picture: I420::new(width as usize, height as usize),
            started,
            slices,
            idr_pending: true,
            last_keyframe_us: None,
            sps: None,
            pps: None,
            sps_info: None,
        })
    }

    /// Frame width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Frame height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The configuration in force (after `set_bitrate` / `set_fps`).
    pub fn config(&self) -> H264Config {
        self.cfg
    }

    /// The slices per picture (and OpenH264 threads) in use: what
    /// [`H264Config::threads`] asked for, or 1 where OpenH264 refused more
    /// for the picture size.
    pub fn slices(&self) -> u32 {
        self.slices
    }

    /// The parsed SPS of the latest keyframe (`None` before the first
    /// encode).
    pub fn sps_info(&self) -> Option<SpsInfo> {
        self.sps_info
    }

    /// The WebCodecs codec string `avc1.PPCCLL` of the stream.
    ///
    /// After the first [`encode`](Self::encode) it comes from parsing the SPS
    /// that OpenH264 wrote (profile_idc, constraint byte, level_idc).
    /// Before, it is a prediction: `avc1.42C0` followed by
    /// [`annexb::level_for`] of the size and frame rate (OpenH264 may pick a
    /// higher level for a high bit rate); call it after the first frame for
    /// the exact value.
    pub fn codec_string(&self) -> String {
        match &self.sps_info {
            Some(sps) => sps.codec_string(),
            None => format!(
                "avc1.42C0{:02X}",
                annexb::level_for(
                    self.width,
                    self.height,
                    self.cfg.fps.clamp(MIN_FPS, MAX_FPS)
                )
            ),
        }
    }

    /// Changes the target bit rate (bits per second) from the next frame on,
    /// without a keyframe.
    ///
    /// Errors: [`CodecError::InvalidImage`] when `bps` is below the frame
    /// rate or over `i32::MAX`; [`CodecError::Backend`] when OpenH264 refuses
    /// it (the old rate stays).
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        check_bitrate(bps, self.cfg.fps)?;
        let mut cfg = self.cfg;
        cfg.bitrate_bps = bps;
        if self.started {
            live::set_bitrate(&mut self.inner, self.cfg.bitrate_bps, bps)
                .map_err(|rc| backend(format!("set bitrate {bps}: OpenH264 error {rc}")))?;
        } else {
            (self.inner, self.started, self.slices) = make_openh264(&cfg, self.width, self.height)?;
        }
        self.cfg = cfg;
        Ok(())
    }

    /// Changes the frame rate the rate control assumes (frames per second)
    /// from the next frame on, without a keyframe. OpenH264 clamps it to
    /// 1..=60. The SPS level was chosen for the first frame rate and is not
    /// rewritten.
    ///
    /// Errors: [`CodecError::InvalidImage`] when `fps` is not finite and
    /// positive or is above the bit rate; [`CodecError::Backend`] when
    /// OpenH264 refuses it.
    pub fn set_fps(&mut self, fps: f32) -> Result<(), CodecError> {
        let mut cfg = self.cfg;
        cfg.fps = fps;
        check_config(&cfg)?;
        if self.started {
            live::set_frame_rate(&mut self.inner, fps)
                .map_err(|rc| backend(format!("set fps {fps}: OpenH264 error {rc}")))?;
        } else {
            (self.inner, self.started, self.slices) = make_openh264(&cfg, self.width, self.height)?;
        }
        self.cfg = cfg;
        Ok(())
    }

    /// Encodes one frame taken at `timestamp_us` (microseconds, any origin,
    /// normally increasing).
    ///
    /// The frame is a keyframe when it is the first, when `force_keyframe`
    /// is set, when `timestamp_us` is at least `keyframe_interval_s` after
    /// the last keyframe's, or when the timestamp went backwards (a
    /// discontinuity). A keyframe always carries SPS and PPS before the IDR
    /// slice.
    ///
    /// Errors: [`CodecError::InvalidImage`] when the image size differs from
    /// the encoder's; [`CodecError::Backend`] when conversion or OpenH264
    /// fails, or OpenH264 writes an IDR before any SPS/PPS.
    pub fn encode(
        &mut self,
        image: &RawImage<'_>,
        timestamp_us: u64,
        force_keyframe: bool,
    ) -> Result<AccessUnit, CodecError> {
        rgb_to_i420(image, &mut self.picture)?;
        let due = match self.last_keyframe_us {
            None => true,
            Some(last) => timestamp_us < last || timestamp_us - last >= self.interval_us,
        };
        if force_keyframe || due {
            self.idr_pending = true;
        }
        if self.idr_pending && self.started {
            self.inner.force_intra_frame();
        }
        // The crate's Timestamp panics only above i64::MAX ms; u64 µs / 1000
        // is below that.
        let raw = self
            .inner
            .encode_at(&self.picture, Timestamp::from_millis(timestamp_us / 1000))
            .map_err(backend)?
            .to_vec();
        self.started = true;

        let (mut has_idr, mut sps, mut pps) = (false, None, None);
        for (nal_type, nal) in annexb::nal_units(&raw) {
            match nal_type {
                NAL_IDR => has_idr = true,
                NAL_SPS if sps.is_none() => sps = Some(nal),
                NAL_PPS if pps.is_none() => pps = Some(nal),
                _ => {}
            }
        }
        if !has_idr {
            return Ok(AccessUnit {
                data: raw,
                keyframe: false,
            });
        }
        let data = match (sps, pps) {
            (Some(sps), Some(pps)) => {
                if let Some(info) = annexb::parse_sps(sps) {
                    self.sps_info = Some(info);
                }
                self.sps = Some(sps.to_vec());
                self.pps = Some(pps.to_vec());
                raw
            }
            // OpenH264 writes SPS/PPS before every IDR; should a version not,
            // put the saved ones in front.
            _ => match (&self.sps, &self.pps) {
                (Some(sps), Some(pps)) => {
                    let mut data = Vec::with_capacity(sps.len() + pps.len() + 8 + raw.len());
                    for nal in [sps, pps] {
                        data.extend_from_slice(&[0, 0, 0, 1]);
                        data.extend_from_slice(nal);
                    }
                    data.extend_from_slice(&raw);
                    data
                }
                _ => return Err(backend("OpenH264 wrote an IDR without SPS/PPS")),
            },
        };
        self.idr_pending = false;
        self.last_keyframe_us = Some(timestamp_us);
        Ok(AccessUnit {
            data,
            keyframe: true,
        })
    }
}

/// Run-time rate changes through OpenH264's `SetOption`, which the safe API
/// of the `openh264` crate does not offer. The only unsafe code of the
/// crate.
#[allow(unsafe_code)]
mod live {
    use openh264::encoder::Encoder;
    use openh264_sys2::{
        SBitrateInfo, SEncParamExt, ENCODER_OPTION_BITRATE, ENCODER_OPTION_FRAME_RATE,
        ENCODER_OPTION_MAX_BITRATE, ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, SM_FIXEDSLCNUM_SLICE,
        SPATIAL_LAYER_0, SPATIAL_LAYER_ALL,
    };
    use std::os::raw::{c_int, c_void};

    fn check(rc: c_int) -> Result<(), i32> {
        if rc == 0 {
            Ok(())
        } else {
            Err(rc)
        }
    }

    /// Sets the target and the maximum bit rate of the single layer to `new`,
    /// in the order OpenH264's check (max >= target) accepts.
    pub(super) fn set_bitrate(enc: &mut Encoder, old: u32, new: u32) -> Result<(), i32> {
        let new = c_int::try_from(new).map_err(|_| -1)?;
        let mut target = SBitrateInfo {
            iLayer: SPATIAL_LAYER_ALL,
            iBitrate: new,
        };
        let mut max = SBitrateInfo {
            iLayer: SPATIAL_LAYER_0,
            iBitrate: new,
        };
        // SAFETY: `raw_api` only asks us not to change parameters the Rust
        // wrapper relies on; it relies on the size and the stored config,
        // which it re-applies only on a size change (never, since
        // H264Encoder fixes the size). `set_option` is given a valid
        // encoder (initialised: the caller has encoded a frame, and
        // OpenH264 returns an error otherwise anyway) and a pointer to a
        // live `SBitrateInfo`, the type OpenH264 reads for
        // ENCODER_OPTION_BITRATE and ENCODER_OPTION_MAX_BITRATE
        // (welsEncoderExt.cpp), which it does not keep after returning.
        unsafe {
            let api = enc.raw_api();
            let target_ptr = (&raw mut target).cast::<c_void>();
            let max_ptr = (&raw mut max).cast::<c_void>();
            if i64::from(new) >= i64::from(old) {
                check(api.set_option(ENCODER_OPTION_MAX_BITRATE, max_ptr))?;
                check(api.set_option(ENCODER_OPTION_BITRATE, target_ptr))
            } else {
                check(api.set_option(ENCODER_OPTION_BITRATE, target_ptr))?;
                check(api.set_option(ENCODER_OPTION_MAX_BITRATE, max_ptr))
            }
        }
    }

    /// Switches an initialised encoder to `n` fixed slices encoded on `n`
    /// threads (OpenH264 restarts: the next frame is an IDR); returns the
    /// slices OpenH264 settled on. On an error OpenH264 keeps its old
    /// settings.
    pub(super) fn set_slices(enc: &mut Encoder, n: u16) -> Result<u32, i32> {
        let mut params = SEncParamExt::default();
        // SAFETY: as in `set_bitrate` (the size is unchanged, so the
        // wrapper's stored size stays true). ENCODER_OPTION_SVC_ENCODE_PARAM_EXT
        // copies `sizeof(SEncParamExt)` bytes out of (GetOption) or into
        // (SetOption) the pointed-to struct, which is a live, initialised
        // `SEncParamExt` (welsEncoderExt.cpp), and keeps no pointer to it.
        unsafe {
            let api = enc.raw_api();
            let ptr = (&raw mut params).cast::<c_void>();
            check(api.get_option(ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, ptr))?;
            params.iMultipleThreadIdc = n;
            let slicing = &mut params.sSpatialLayers[0].sSliceArgument;
            slicing.uiSliceMode = SM_FIXEDSLCNUM_SLICE;
            slicing.uiSliceNum = u32::from(n);
            let ptr = (&raw mut params).cast::<c_void>();
            check(api.set_option(ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, ptr))?;
            let ptr = (&raw mut params).cast::<c_void>();
            check(api.get_option(ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, ptr))?;
        }
        Ok(params.sSpatialLayers[0].sSliceArgument.uiSliceNum.max(1))
    }

    /// Sets the input frame rate (OpenH264 clamps it to 1..=60).
    pub(super) fn set_frame_rate(enc: &mut Encoder, fps: f32) -> Result<(), i32> {
        let mut value: f32 = fps;
        // SAFETY: as in `set_bitrate`; ENCODER_OPTION_FRAME_RATE reads one
        // `float` through the pointer, which points to a live f32.
        unsafe {
            check(
                enc.raw_api()
                    .set_option(ENCODER_OPTION_FRAME_RATE, (&raw mut value).cast::<c_void>()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annexb::{level_for, nal_units, parse_sps};
    use openh264::decoder::Decoder;

    /// A smooth test picture: diagonal colour gradients, a soft-edged disc
    /// and a soft-edged bar; `t` moves the shapes (pixels).
    fn picture(w: u32, h: u32, bpp: usize, stride: usize, t: f32) -> Vec<u8> {
        let mut px = vec![0u8; stride * h as usize];
        let (cx, cy, r) = (w as f32 * 0.3 + t, h as f32 * 0.5, h as f32 * 0.25);
        let bar_x = w as f32 * 0.65 - t * 0.5;
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f32, y as f32);
                let mut c = [
                    255.0 * fx / w as f32,
                    255.0 * fy / h as f32,
                    255.0 * (1.0 - (fx + fy) / (w + h) as f32),
                ];
                // Disc: yellow, 3-pixel soft edge.
                let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt();
                let a = ((r - d) / 3.0).clamp(0.0, 1.0);
                let disc = [240.0, 220.0, 40.0];
                // Bar: dark blue, soft vertical edges.
                let b = ((30.0 - (fx - bar_x).abs()) / 3.0).clamp(0.0, 1.0)
                    * if fy > h as f32 * 0.15 && fy < h as f32 * 0.85 {
                        1.0
                    } else {
                        0.0
                    };
                let bar = [30.0, 40.0, 160.0];
                for i in 0..3 {
                    c[i] = c[i] * (1.0 - a) + disc[i] * a;
                    c[i] = c[i] * (1.0 - b) + bar[i] * b;
                }
                let o = y as usize * stride + x as usize * bpp;
                for i in 0..3 {
                    px[o + i] = c[i].round().clamp(0.0, 255.0) as u8;
                }
                if bpp == 4 {
                    px[o + 3] = 255;
                }
            }
        }
        px
    }

    fn rgba(w: u32, h: u32, t: f32) -> Vec<u8> {
        picture(w, h, 4, w as usize * 4, t)
    }

    fn img(px: &[u8], w: u32, h: u32) -> RawImage<'_> {
        RawImage::new(px, w, h, w as usize * 4, PixelLayout::Rgba8).unwrap()
    }

    fn nal_types(au: &AccessUnit) -> Vec<u8> {
        nal_units(&au.data).map(|(t, _)| t).collect()
    }

    fn sps_of(au: &AccessUnit) -> SpsInfo {
        let (_, nal) = nal_units(&au.data).find(|(t, _)| *t == NAL_SPS).unwrap();
        parse_sps(nal).unwrap()
    }

    fn assert_keyframe(au: &AccessUnit) {
        assert!(au.keyframe);
        let types = nal_types(au);
        let (sps, pps, idr) = (
            types.iter().position(|&t| t == NAL_SPS).unwrap(),
            types.iter().position(|&t| t == NAL_PPS).unwrap(),
            types.iter().position(|&t| t == NAL_IDR).unwrap(),
        );
        assert!(sps < pps && pps < idr, "order {types:?}");
    }

    fn assert_delta(au: &AccessUnit) {
        assert!(!au.keyframe);
        let types = nal_types(au);
        assert!(!types.is_empty());
        assert!(
            types.iter().all(|&t| t != NAL_IDR && t != NAL_SPS),
            "{types:?}"
        );
        assert!(types.contains(&annexb::NAL_SLICE));
    }

    #[test]
    fn output_is_annex_b_and_starts_with_a_keyframe() {
        let (w, h) = (640, 360);
        let mut enc = H264Encoder::new(w, h, H264Config::default()).unwrap();
        let px = rgba(w, h, 0.0);
        let au = enc.encode(&img(&px, w, h), 0, false).unwrap();
        assert!(au.data.starts_with(&[0, 0, 0, 1]) || au.data.starts_with(&[0, 0, 1]));
        for (t, nal) in nal_units(&au.data) {
            assert_eq!(nal[0] & 0x80, 0, "forbidden_zero_bit");
            assert!(matches!(t, 1..=9), "type {t}");
        }
        assert_keyframe(&au);
        let px2 = rgba(w, h, 4.0);
        let au2 = enc.encode(&img(&px2, w, h), 33_333, false).unwrap();
        assert_delta(&au2);
        let au3 = enc.encode(&img(&px2, w, h), 66_667, true).unwrap();
        assert_keyframe(&au3);
        // A viewer joining here decodes the forced keyframe on its own.
        let mut late = Decoder::new().unwrap();
        assert!(decode(&mut late, &au3).is_some());
        let au4 = enc.encode(&img(&px, w, h), 100_000, false).unwrap();
        assert_delta(&au4);
    }

    #[test]
    fn keyframes_follow_timestamps_not_frame_counts() {
        let (w, h) = (64, 48);
        let cfg = H264Config {
            keyframe_interval_s: 1.0,
            ..H264Config::default()
        };
        let mut enc = H264Encoder::new(w, h, cfg).unwrap();
        // Irregular frame times (ms): keyframes are due at 0, then the first
        // frame >= 1 s after the last keyframe.
        let times_ms = [
            0u64, 40, 400, 999, 1000, 1010, 1500, 1990, 2100, 2200, 5000, 5001, 5999, 6000,
        ];
        let mut keys = Vec::new();
        for (i, &ms) in times_ms.iter().enumerate() {
            let px = rgba(w, h, i as f32);
            let au = enc.encode(&img(&px, w, h), ms * 1000, false).unwrap();
            if au.keyframe {
                assert_keyframe(&au);
                keys.push(ms);
            } else {
                assert_delta(&au);
            }
        }
        assert_eq!(keys, vec![0, 1000, 2100, 5000, 6000]);
        // A timestamp going backwards is a discontinuity: keyframe.
        let px = rgba(w, h, 0.0);
        assert!(enc.encode(&img(&px, w, h), 10, false).unwrap().keyframe);
        assert!(!enc.encode(&img(&px, w, h), 20, false).unwrap().keyframe);

        // Never, except on request.
        let cfg = H264Config {
            keyframe_interval_s: f32::INFINITY,
            ..H264Config::default()
        };
        let mut enc = H264Encoder::new(w, h, cfg).unwrap();
        assert!(enc.encode(&img(&px, w, h), 0, false).unwrap().keyframe);
        assert!(
            !enc.encode(&img(&px, w, h), u64::MAX / 2, false)
                .unwrap()
                .keyframe
        );
        assert!(
            enc.encode(&img(&px, w, h), u64::MAX, true)
                .unwrap()
                .keyframe
        );
    }

    #[test]
    fn codec_string_and_vui_come_from_the_sps() {
        let (w, h) = (640, 360);
        let mut enc = H264Encoder::new(w, h, H264Config::default()).unwrap();
        let predicted = enc.codec_string();
        let px = rgba(w, h, 0.0);
        let au = enc.encode(&img(&px, w, h), 0, false).unwrap();
        let sps = sps_of(&au);
        assert_eq!(enc.sps_info(), Some(sps));
        assert_eq!(enc.codec_string(), sps.codec_string());
        assert_eq!(predicted, enc.codec_string());
        assert!(sps.is_constrained_baseline(), "{sps:?}");
        assert!(enc.codec_string().starts_with("avc1.42"));
        assert_eq!(&enc.codec_string()[7..8], "C"); // set0 + set1 (+set2: E)
        assert_eq!((sps.width, sps.height), (w, h));
        assert!(sps.level_idc >= level_for(w, h, 30.0), "{sps:?}");
        assert_eq!(sps.level_idc, 30);
        let signal = sps.video_signal.expect("VUI video_signal_type");
        assert!(!signal.full_range);
        assert_eq!(
            signal.colour_description,
            Some(annexb::ColourDescription {
                colour_primaries: 1,
                transfer_characteristics: 1,
                matrix_coefficients: 1
            })
        );

        // 1280x720 at 30 fps: level 3.1, the protocol's example.
        let mut enc = H264Encoder::new(1280, 720, H264Config::default()).unwrap();
        let px = rgba(1280, 720, 0.0);
        enc.encode(&img(&px, 1280, 720), 0, false).unwrap();
        assert_eq!(
            enc.sps_info().unwrap().level_idc,
            level_for(1280, 720, 30.0)
        );
        assert_eq!(enc.codec_string(), "avc1.42C01F");
    }

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let mse = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
    }

    /// Decodes with OpenH264's decoder; returns tightly packed I420 planes.
    fn decode(dec: &mut Decoder, au: &AccessUnit) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let yuv = dec.decode(&au.data).unwrap()?;
        let (w, h) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        let plane = |data: &[u8], stride: usize, pw: usize, ph: usize| -> Vec<u8> {
            (0..ph)
                .flat_map(|r| data[r * stride..r * stride + pw].iter().copied())
                .collect()
        };
        Some((
            plane(yuv.y(), sy, w, h),
            plane(yuv.u(), su, w / 2, h / 2),
            plane(yuv.v(), sv, w / 2, h / 2),
        ))
    }

    fn i420_to_rgb(w: u32, h: u32, y: &[u8], u: &[u8], v: &[u8]) -> Vec<u8> {
        let planar = yuv::YuvPlanarImage {
            y_plane: y,
            y_stride: w,
            u_plane: u,
            u_stride: w / 2,
            v_plane: v,
            v_stride: w / 2,
            width: w,
            height: h,
        };
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        yuv::yuv420_to_rgb(
            &planar,
            &mut rgb,
            w * 3,
            YuvRange::Limited,
            YuvStandardMatrix::Bt709,
        )
        .unwrap();
        rgb
    }

    #[test]
    fn decodes_close_to_the_source_from_rgb_and_rgba() {
        let (w, h) = (640u32, 360u32);
        for layout in [PixelLayout::Rgba8, PixelLayout::Rgb8] {
            let bpp = layout.bytes_per_pixel();
            // Padded stride, to check it is honoured.
            let stride = w as usize * bpp + 20;
            let mut enc = H264Encoder::new(w, h, H264Config::default()).unwrap();
            let mut dec = Decoder::new().unwrap();
            let (mut worst_rgb, mut worst_y) = (f64::INFINITY, f64::INFINITY);
            for i in 0..15u64 {
                let px = picture(w, h, bpp, stride, i as f32 * 2.0);
                let image = RawImage::new(&px, w, h, stride, layout).unwrap();
                let au = enc.encode(&image, i * 33_333, false).unwrap();
                let (y, u, v) = decode(&mut dec, &au).expect("a picture per access unit");
                let src_y = rgb_to_i420_bt709(&image).unwrap().y;
                worst_y = worst_y.min(psnr(&y, &src_y));
                let src_rgb: Vec<u8> = (0..h as usize)
                    .flat_map(|r| {
                        px[r * stride..r * stride + w as usize * bpp]
                            .chunks(bpp)
                            .flat_map(|p| p[..3].to_vec())
                    })
                    .collect();
                worst_rgb = worst_rgb.min(psnr(&i420_to_rgb(w, h, &y, &u, &v), &src_rgb));
            }
            eprintln!("{layout:?}: worst PSNR RGB {worst_rgb:.2} dB, luma {worst_y:.2} dB");
            assert!(worst_rgb >= 35.0, "{layout:?}: RGB PSNR {worst_rgb:.2} dB");
            assert!(worst_y >= 35.0, "{layout:?}: luma PSNR {worst_y:.2} dB");
        }
    }

    #[test]
    fn rgb_and_rgba_give_the_same_bt709_limited_planes() {
        let (w, h) = (64u32, 32u32);
        let rgba_px = picture(w, h, 4, w as usize * 4 + 8, 3.0);
        let rgb_px = picture(w, h, 3, w as usize * 3, 3.0);
        let a = RawImage::new(&rgba_px, w, h, w as usize * 4 + 8, PixelLayout::Rgba8).unwrap();
        let b = RawImage::new(&rgb_px, w, h, w as usize * 3, PixelLayout::Rgb8).unwrap();
        assert_eq!(
            rgb_to_i420_bt709(&a).unwrap(),
            rgb_to_i420_bt709(&b).unwrap()
        );

        // BT.709 limited range: white Y=235, black Y=16, red
        // Y = 16 + 219 * 0.2126 = 62.6, Cb = 128 - 112 * 0.2126 / 0.9278 = 102.3,
        // Cr = 240.
        for (rgb, want) in [
            ([255u8, 255, 255], [235u8, 128, 128]),
            ([0, 0, 0], [16, 128, 128]),
            ([255, 0, 0], [63, 102, 240]),
            ([0, 0, 255], [32, 240, 118]),
        ] {
            let px: Vec<u8> = (0..4).flat_map(|_| rgb).collect();
            let i = RawImage::new(&px, 2, 2, 6, PixelLayout::Rgb8).unwrap();
            let I420Planes { y, u, v } = rgb_to_i420_bt709(&i).unwrap();
            for (got, want) in [(y[0], want[0]), (u[0], want[1]), (v[0], want[2])] {
                assert!(got.abs_diff(want) <= 1, "{rgb:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn sizes_that_are_not_whole_macroblocks() {
        for (w, h) in [(16u32, 16u32), (18, 30), (642, 362), (100, 720)] {
            let mut enc = H264Encoder::new(w, h, H264Config::default()).unwrap();
            let mut dec = Decoder::new().unwrap();
            for i in 0..3u64 {
                let px = rgba(w, h, i as f32);
                let au = enc.encode(&img(&px, w, h), i * 33_333, false).unwrap();
                assert_eq!(au.keyframe, i == 0);
                let (y, _, _) = decode(&mut dec, &au).unwrap();
                assert_eq!(y.len(), (w * h) as usize);
            }
            let sps = enc.sps_info().unwrap();
            assert_eq!((sps.width, sps.height), (w, h), "SPS cropping");
            assert!(sps.level_idc >= level_for(w, h, 30.0));
        }
    }

    #[test]
    fn rejects_bad_sizes_and_settings() {
        let cfg = H264Config::default();
        for (w, h) in [
            (641, 360),
            (640, 361),
            (0, 2),
            (2, 0),
            (3841, 2),
            (4000, 2000),
        ] {
            assert!(
                matches!(
                    H264Encoder::new(w, h, cfg),
                    Err(CodecError::InvalidImage(_))
                ),
                "{w}x{h}"
            );
        }
        assert!(H264Encoder::new(2160, 3840, cfg).is_ok());
        for bad in [
            H264Config { fps: 0.0, ..cfg },
            H264Config {
                fps: f32::NAN,
                ..cfg
            },
            H264Config {
                bitrate_bps: 0,
                ..cfg
            },
            H264Config {
                bitrate_bps: u32::MAX,
                ..cfg
            },
            H264Config {
                keyframe_interval_s: 0.0,
                ..cfg
            },
            H264Config {
                keyframe_interval_s: f32::NAN,
                ..cfg
            },
        ] {
            assert!(H264Encoder::new(64, 64, bad).is_err(), "{bad:?}");
        }
        // A frame of another size is refused, not encoded.
        let mut enc = H264Encoder::new(64, 64, cfg).unwrap();
        let px = rgba(32, 32, 0.0);
        assert!(matches!(
            enc.encode(&img(&px, 32, 32), 0, false),
            Err(CodecError::InvalidImage(_))
        ));
        let mut odd = vec![0u8; 3 * 3 * 4];
        odd[0] = 1;
        let image = RawImage::new(&odd, 3, 3, 12, PixelLayout::Rgba8).unwrap();
        assert!(rgb_to_i420_bt709(&image).is_err());
        assert!(enc.set_bitrate(0).is_err());
        assert!(enc.set_fps(-1.0).is_err());
    }

    #[test]
    fn bitrate_and_fps_change_at_run_time() {
        let (w, h) = (320u32, 180u32);
        let cfg = H264Config {
            bitrate_bps: 3_000_000,
            keyframe_interval_s: f32::INFINITY,
            ..H264Config::default()
        };
        let mut enc = H264Encoder::new(w, h, cfg).unwrap();
        // Before the first frame (recreates the OpenH264 encoder).
        enc.set_fps(25.0).unwrap();
        let mut sizes = Vec::new();
        for i in 0..90u64 {
            if i == 30 {
                enc.set_bitrate(150_000).unwrap();
            }
            if i == 60 {
                enc.set_bitrate(3_000_000).unwrap();
                enc.set_fps(30.0).unwrap();
            }
            // Noise, so that the bit rate and not the content limits the size.
            let mut px = rgba(w, h, i as f32 * 3.0);
            let mut state = 0x2545_F491_4F6C_DD1D_u64 ^ i;
            for p in px.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *p = p.saturating_add((state % 64) as u8);
            }
            let au = enc.encode(&img(&px, w, h), i * 40_000, false).unwrap();
            assert_eq!(au.keyframe, i == 0, "frame {i}");
            sizes.push(au.data.len());
        }
        let avg = |r: std::ops::Range<usize>| sizes[r].iter().sum::<usize>() as f64 / 20.0;
        let (high, low, again) = (avg(10..30), avg(40..60), avg(70..90));
        eprintln!("bytes/frame: {high:.0} at 3 Mbit/s, {low:.0} at 150 kbit/s, {again:.0} back");
        assert!(low * 2.0 < high, "{high} -> {low}");
        assert!(again > low * 2.0, "{low} -> {again}");
        assert_eq!(enc.config().bitrate_bps, 3_000_000);
        assert_eq!(enc.config().fps, 30.0);
    }

    fn slice_count(au: &AccessUnit) -> usize {
        nal_types(au)
            .iter()
            .filter(|&&t| t == NAL_IDR || t == annexb::NAL_SLICE)
            .count()
    }

    #[test]
    fn slices_on_threads_keep_one_decodable_picture_per_access_unit() {
        let (w, h) = (640u32, 360u32);
        let one = H264Config {
            threads: 1,
            ..H264Config::default()
        };
        let two = H264Config { threads: 2, ..one };
        let mut single = H264Encoder::new(w, h, one).unwrap();
        let mut sliced = H264Encoder::new(w, h, two).unwrap();
        assert_eq!(single.slices(), 1);
        assert_eq!(sliced.slices(), 2);
        let mut dec = Decoder::new().unwrap();
        let mut worst = f64::INFINITY;
        for i in 0..10u64 {
            let px = rgba(w, h, i as f32 * 2.0);
            let a = single.encode(&img(&px, w, h), i * 33_333, i == 6).unwrap();
            let b = sliced.encode(&img(&px, w, h), i * 33_333, i == 6).unwrap();
            assert_eq!(a.keyframe, b.keyframe, "frame {i}");
            assert_eq!(b.keyframe, i == 0 || i == 6, "frame {i}");
            if b.keyframe {
                assert_keyframe(&b);
                // Slices do not change the SPS, so the codec string holds.
                assert_eq!(sps_of(&a), sps_of(&b));
            } else {
                assert_delta(&b);
            }
            assert_eq!((slice_count(&a), slice_count(&b)), (1, 2), "frame {i}");
            // Each access unit is one whole picture, out at once.
            let (y, _, _) = decode(&mut dec, &b).expect("a picture per access unit");
            let src = rgb_to_i420_bt709(&img(&px, w, h)).unwrap().y;
            worst = worst.min(psnr(&y, &src));
        }
        assert_eq!(single.codec_string(), sliced.codec_string());
        assert!(worst >= 35.0, "luma PSNR {worst:.2} dB with 2 slices");

        // The browser test's 320x240 (300 macroblocks) is split too.
        assert_eq!(H264Encoder::new(320, 240, two).unwrap().slices(), 2);
        assert_eq!(H264Encoder::new(160, 120, two).unwrap().slices(), 2);

        // Too small to split (48 macroblocks or fewer): one slice.
        let mut small = H264Encoder::new(96, 64, two).unwrap();
        assert_eq!(small.slices(), 1);
        let px = rgba(96, 64, 0.0);
        let au = small.encode(&img(&px, 96, 64), 0, false).unwrap();
        assert_keyframe(&au);
        assert_eq!(slice_count(&au), 1);
        // More than OpenH264 can run is clamped.
        let many = H264Config { threads: 64, ..one };
        assert_eq!(
            H264Encoder::new(1280, 720, many).unwrap().slices(),
            u32::from(MAX_H264_THREADS)
        );
    }

    /// Links OpenH264's nasm-built SSE2 SAD routine: this fails to build if
    /// openh264-sys2 fell back to plain C (it does so silently when nasm is
    /// missing or fails).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn openh264_assembly_is_linked() {
        extern "C" {
            fn WelsSampleSad16x16_sse2();
        }
        let f: unsafe extern "C" fn() = WelsSampleSad16x16_sse2;
        assert!(f as usize != 0);
    }

    /// A busy moving picture (desktop-like): 4×4-pixel blocks of hashed
    /// colours over the smooth picture, scrolling 4 pixels per frame.
    fn busy(w: u32, h: u32, t: u32) -> Vec<u8> {
        let mut px = rgba(w, h, t as f32);
        for y in 0..h {
            for x in 0..w {
                let (bx, by) = (u64::from((x + 4 * t) / 4), u64::from(y / 4));
                let mut k =
                    bx.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ by.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
                k ^= k >> 29;
                if k % 3 == 0 {
                    let o = (y * w + x) as usize * 4;
                    px[o..o + 3].copy_from_slice(&[
                        (k >> 8) as u8,
                        (k >> 16) as u8,
                        (k >> 24) as u8,
                    ]);
                }
            }
        }
        px
    }

    /// CPU time run so far, in ms: of the calling thread, and of the whole
    /// process (every thread: OpenH264's slice threads included). Linux
    /// (`/proc/*/schedstat`, field 1, ns); 0 elsewhere.
    fn cpu_ms() -> (f64, f64) {
        let ns = |path: &std::path::Path| -> f64 {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1e6
        };
        let own = ns(std::path::Path::new("/proc/thread-self/schedstat"));
        let all = std::fs::read_dir("/proc/self/task")
            .map(|d| d.flatten().map(|e| ns(&e.path().join("schedstat"))).sum())
            .unwrap_or(0.0);
        (own, all)
    }

    /// Timings per stage (release build, a quiet machine):
    /// `cargo test --release -p framehub-codec --lib -- --ignored --nocapture h264_speed`
    ///
    /// For each size, picture and thread count: RGBA -> I420 conversion;
    /// then the encode (conversion included) per frame: wall time, CPU of
    /// the calling thread (conversion and OpenH264's serial part), CPU of
    /// the process (all OpenH264 threads), bytes and luma PSNR.
    #[test]
    #[ignore]
    fn h264_speed() {
        use std::time::Instant;
        for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
            let frames = 90u32;
            for (content, pictures) in [
                (
                    "smooth",
                    (0..frames)
                        .map(|i| rgba(w, h, i as f32 * 3.0))
                        .collect::<Vec<_>>(),
                ),
                ("busy", (0..frames).map(|i| busy(w, h, i)).collect()),
            ] {
                // RGBA -> I420 alone.
                let mut planes = I420::new(w as usize, h as usize);
                let t = Instant::now();
                for px in &pictures {
                    rgb_to_i420(&img(px, w, h), &mut planes).unwrap();
                }
                let convert_ms = t.elapsed().as_secs_f64() * 1e3 / f64::from(frames);
                eprintln!("{w}x{h} {content}: RGBA->I420 {convert_ms:.2} ms per frame");
                for threads in [1u16, 2] {
                    let cfg = H264Config {
                        threads,
                        ..H264Config::default()
                    };
                    let mut enc = H264Encoder::new(w, h, cfg).unwrap();
                    let (mut bytes, mut key_bytes, mut keys) = (0usize, 0usize, 0usize);
                    let mut times = Vec::new();
                    let mut units = Vec::new();
                    let (own0, all0) = cpu_ms();
                    for (i, px) in pictures.iter().enumerate() {
                        let t1 = Instant::now();
                        let au = enc
                            .encode(&img(px, w, h), i as u64 * 33_333, false)
                            .unwrap();
                        times.push(t1.elapsed().as_secs_f64() * 1e3);
                        bytes += au.data.len();
                        if au.keyframe {
                            keys += 1;
                            key_bytes += au.data.len();
                        }
                        units.push(au);
                    }
                    let (own1, all1) = cpu_ms();
                    let mut dec = Decoder::new().unwrap();
                    let psnrs: Vec<f64> = units
                        .iter()
                        .zip(&pictures)
                        .map(|(au, px)| {
                            let (y, _, _) = decode(&mut dec, au).unwrap();
                            psnr(&y, &rgb_to_i420_bt709(&img(px, w, h)).unwrap().y)
                        })
                        .collect();
                    let mean = times.iter().sum::<f64>() / times.len() as f64;
                    times.sort_by(f64::total_cmp);
                    let median = times[times.len() / 2];
                    let per_frame = bytes as f64 / f64::from(frames);
                    let psnr_mean = psnrs.iter().sum::<f64>() / psnrs.len() as f64;
                    eprintln!(
                        "  {threads} thread(s), {} slice(s), {}: wall mean {mean:.2} / median {median:.2} ms; \
                         CPU calling thread {:.2}, all threads {:.2} ms per frame; \
                         {per_frame:.0} B/frame = {:.2} Mbit/s at 30 fps (target 4); {keys} keyframes, avg {:.0} B; \
                         luma PSNR mean {psnr_mean:.2} dB",
                        enc.slices(),
                        enc.codec_string(),
                        (own1 - own0) / f64::from(frames),
                        (all1 - all0) / f64::from(frames),
                        per_frame * 8.0 * 30.0 / 1e6,
                        key_bytes as f64 / keys.max(1) as f64
                    );
                }
            }
        }
    }
}
