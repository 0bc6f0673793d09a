//! The binary envelope of media messages (`docs/protocol.md` §3):
//!
//! ```text
//! u32 little-endian  N      length of the header in bytes
//! N bytes                   compact UTF-8 JSON header
//! rest                      payload
//! ```

use serde::{Deserialize, Serialize};

/// Largest header accepted by [`parse`], in bytes. Real headers are under 300 bytes.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// The JSON header of a media message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FrameHeader {
    /// A whole image file (JPEG, PNG or WebP).
    ImageFrame {
        /// Per-viewer sequence number, from 0, strictly increasing.
        seq: u64,
        /// Publish time, µs since the stream was created.
        timestamp_us: u64,
        /// Picture width in pixels.
        width: u32,
        /// Picture height in pixels.
        height: u32,
        /// `image/jpeg`, `image/png` or `image/webp`.
        mime: String,
        /// Device pixel ratio the picture was rendered for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pixel_ratio: Option<f64>,
        /// `true` for a lossless still sent after the stream settled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        still: Option<bool>,
    },
    /// A region update (protocol §4.3): one image per rectangle, each
    /// prefixed by its u32 little-endian length, drawn over the previous frame.
    ImagePatch {
        /// Per-viewer sequence number, from 0, strictly increasing.
        seq: u64,
        /// Publish time, µs since the stream was created.
        timestamp_us: u64,
        /// Width of the whole picture in pixels.
        width: u32,
        /// Height of the whole picture in pixels.
        height: u32,
        /// The MIME type of every image of the payload.
        mime: String,
        /// `[x, y, width, height]` in pixels, one per image, in payload order.
        rects: Vec<[u32; 4]>,
        /// Device pixel ratio the picture was rendered for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pixel_ratio: Option<f64>,
    },
    /// One H.264 access unit in Annex-B form.
    VideoChunk {
        /// Per-viewer sequence number, from 0, strictly increasing.
        seq: u64,
        /// Publish time, µs since the stream was created.
        timestamp_us: u64,
        /// Picture width in pixels.
        width: u32,
        /// Picture height in pixels.
        height: u32,
        /// `avc1.PPCCLL`.
        codec: String,
        /// Always `"annexb"`.
        bitstream: String,
        /// Whether this is an IDR with SPS and PPS in band.
        keyframe: bool,
        /// Frame duration in µs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_us: Option<u64>,
    },
}

impl FrameHeader {
    /// The header's `seq`.
    pub fn seq(&self) -> u64 {
        match self {
            FrameHeader::ImageFrame { seq, .. }
            | FrameHeader::ImagePatch { seq, .. }
            | FrameHeader::VideoChunk { seq, .. } => *seq,
        }
    }

    /// The header's `timestamp_us` (publish time, µs since the stream was created).
    pub fn timestamp_us(&self) -> u64 {
        match self {
            FrameHeader::ImageFrame { timestamp_us, .. }
            | FrameHeader::ImagePatch { timestamp_us, .. }
            | FrameHeader::VideoChunk { timestamp_us, .. } => *timestamp_us,
        }
    }
}

/// Why a binary message is not a valid envelope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// Fewer than 4 bytes, or fewer than 4 + N.
    #[error("envelope truncated: {0} bytes")]
    Truncated(usize),
    /// N over [`MAX_HEADER_LEN`].
    #[error("envelope header of {0} bytes is too long")]
    HeaderTooLong(usize),
    /// The header is not a JSON header of a known type.
    #[error("envelope header: {0}")]
    BadHeader(String),
}

/// Builds one media message: length prefix, compact JSON header, payload.
/// The result is one allocation of `4 + header + payload.len()` bytes.
pub fn encode(header: &FrameHeader, payload: &[u8]) -> Vec<u8> {
    // Serialising an enum of numbers and strings cannot fail.
    let json = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + json.len() + payload.len());
    // Headers are far below 4 GiB (serde output of a handful of fields).
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(payload);
    out
}

/// Splits a media message into its header and payload.
///
/// Errors: [`EnvelopeError`] when the message is shorter than its declared
/// header, the header is over [`MAX_HEADER_LEN`], or it is not a known header.
pub fn parse(msg: &[u8]) -> Result<(FrameHeader, &[u8]), EnvelopeError> {
    let (header, payload) = split(msg)?;
    let header: FrameHeader =
        serde_json::from_slice(header).map_err(|e| EnvelopeError::BadHeader(e.to_string()))?;
    Ok((header, payload))
}

/// Splits a media message into its raw JSON header bytes and payload,
/// without interpreting the header (for headers of extension types).
///
/// Errors: as [`parse`], less the header check.
pub fn split(msg: &[u8]) -> Result<(&[u8], &[u8]), EnvelopeError> {
    let len_bytes: [u8; 4] = msg
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(EnvelopeError::Truncated(msg.len()))?;
    let n = u32::from_le_bytes(len_bytes) as usize;
    if n > MAX_HEADER_LEN {
        return Err(EnvelopeError::HeaderTooLong(n));
    }
    let header = msg
        .get(4..4 + n)
        .ok_or(EnvelopeError::Truncated(msg.len()))?;
    Ok((header, &msg[4 + n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = FrameHeader::ImageFrame {
            seq: 4,
            timestamp_us: 1234,
            width: 2,
            height: 3,
            mime: "image/png".into(),
            pixel_ratio: None,
            still: Some(true),
        };
        let msg = encode(&h, b"PAYLOAD");
        let n = u32::from_le_bytes(msg[..4].try_into().unwrap()) as usize;
        let json: serde_json::Value = serde_json::from_slice(&msg[4..4 + n]).unwrap();
        assert_eq!(json["type"], "image_frame");
        assert_eq!(json["still"], true);
        assert!(json.get("pixel_ratio").is_none());
        let (h2, p) = parse(&msg).unwrap();
        assert_eq!(h2, h);
        assert_eq!(p, b"PAYLOAD");
    }

    #[test]
    fn rejects_truncated_and_oversized() {
        assert_eq!(parse(&[1, 0]), Err(EnvelopeError::Truncated(2)));
        assert_eq!(
            parse(&[10, 0, 0, 0, b'{']),
            Err(EnvelopeError::Truncated(5))
        );
        assert_eq!(
            parse(&[0xff, 0xff, 0xff, 0x7f]),
            Err(EnvelopeError::HeaderTooLong(0x7fff_ffff))
        );
        assert!(matches!(
            parse(&[2, 0, 0, 0, b'{', b'}']),
            Err(EnvelopeError::BadHeader(_))
        ));
    }
}
