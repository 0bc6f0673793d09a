//! Frame encoders for framehub: frames in, bytes out.
//!
//! * [`JpegEncoder`]: libjpeg-turbo (crate `turbojpeg`), 4:2:0, quality 1–100;
//! * [`PngEncoder`]: the `png` crate with fast compression (lossless);
//! * [`H264Encoder`] (feature `h264`, on by default): OpenH264, Constrained
//!   Baseline, Annex-B access units, BT.709 limited-range colour;
//! * [`diff`]: tile-based change detection for region updates;
//! * [`scale`]: downscaling for quality tiers (`fast_image_resize`);
//! * [`annexb`]: a panic-free Annex-B / SPS reader and the H.264 level table.
//!
//! Every encoder implements [`Encoder`] and takes a [`RawImage`]: 8-bit RGBA
//! or RGB pixels, row-major, `stride` bytes from one row to the next.

#![deny(missing_docs)]

pub mod annexb;
pub mod diff;
#[cfg(feature = "h264")]
mod h264;
mod jpeg;
mod png_enc;
mod raw;
pub mod scale;

#[cfg(feature = "h264")]
pub use h264::{
    rgb_to_i420_bt709, AccessUnit, H264Config, H264Encoder, I420Planes, DEFAULT_H264_BITRATE_BPS,
    DEFAULT_H264_FPS, DEFAULT_H264_KEYFRAME_INTERVAL_S,
};
pub use jpeg::{decode_jpeg_rgba, JpegEncoder, DEFAULT_JPEG_QUALITY};
pub use png_enc::{decode_png_rgba, PngEncoder};
pub use raw::{PixelLayout, RawImage, MAX_DIMENSION};

/// Why an encode failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The pixel buffer does not match the declared shape.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// The underlying library failed.
    #[error("{codec} encoder: {message}")]
    Backend {
        /// Which codec.
        codec: &'static str,
        /// The library's message.
        message: String,
    },
}

/// An encoder of one output format. Encoders keep state between frames
/// (buffers, a video encoder's reference frames), so each is used from one
/// thread at a time.
pub trait Encoder: Send {
    /// The MIME type of the output, as sent in frame headers.
    fn mime(&self) -> &'static str;
    /// Encodes one image into a complete file (or access unit).
    ///
    /// Errors: [`CodecError::Backend`] when the library fails.
    fn encode(&mut self, image: &RawImage<'_>) -> Result<Vec<u8>, CodecError>;
}
