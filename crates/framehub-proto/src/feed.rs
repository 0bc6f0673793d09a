//! The **feed**: what runs between a stream's source half and its fan-out
//! half (`docs/protocol.md` §11, `docs/architecture.md`).
//!
//! The source half publishes (latest wins) and encodes once per demanded
//! **variant** (an output format at a quality tier); the fan-out half holds
//! the viewers, their sessions and credit. In one process the feed is a
//! direct call. For a **remote publisher** it is one WebSocket to
//! `ws://HOST:PORT/_/publish/<name>`:
//!
//! * text, source → hub: [`SourceMessage`] — `claim` first, `info` when
//!   the size or codec changes;
//! * text, hub → source: [`HubMessage`] — `claimed`, `demand` (per variant:
//!   viewers subscribed and viewers ready for a frame), `keyframe` (a chain
//!   needs one), `event` (a viewer's input, validated and filtered by the
//!   input policy at the hub);
//! * binary, source → hub: one encoded unit, [`encode_unit`] / [`parse_unit`]:
//!   `u32` LE header length, a JSON [`UnitHeader`], then the unit's bytes
//!   followed by its patch's bytes (the same framing as the viewers'
//!   envelope, `docs/protocol.md` §3).
//!
//! Everything here is parsed with bounds and never panics on input.

use serde::{Deserialize, Serialize};

use crate::negotiate::{ImageFormat, OutputFormat};
use crate::principal::Principal;
use crate::session::{FrameInfo, FrameKind, PatchInfo};

/// The feed's version, sent in `claim` (a hub refuses other versions with 1008).
pub const FEED_VERSION: u32 = 1;
/// Largest text message or unit header accepted on the feed, in bytes.
pub const MAX_FEED_TEXT: usize = 64 * 1024;
/// Largest side of a frame, in pixels (as for published frames).
pub const MAX_SIDE: u32 = 16384;
/// Most rectangles in one patch (the hub makes at most 16; some slack).
pub const MAX_PATCH_RECTS: usize = 64;

/// One output of a stream: a format at an adaptive-quality tier (0 = the
/// stream's own quality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VariantId {
    /// `"jpeg"`, `"png"`, `"webp"` or `"h264"`.
    #[serde(with = "format_name")]
    pub format: OutputFormat,
    /// The tier, 0 = best.
    #[serde(default)]
    pub tier: u8,
}

mod format_name {
    use super::{ImageFormat, OutputFormat};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(f: &OutputFormat, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match f {
            OutputFormat::Image(ImageFormat::Jpeg) => "jpeg",
            OutputFormat::Image(ImageFormat::Png) => "png",
            OutputFormat::Image(ImageFormat::Webp) => "webp",
            OutputFormat::H264 => "h264",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OutputFormat, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "jpeg" => OutputFormat::Image(ImageFormat::Jpeg),
            "png" => OutputFormat::Image(ImageFormat::Png),
            "webp" => OutputFormat::Image(ImageFormat::Webp),
            "h264" => OutputFormat::H264,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown format '{}'",
                    other.chars().take(32).collect::<String>()
                )))
            }
        })
    }
}

/// The settings of a stream that shape what its viewers are offered; a
/// publisher sends them in its `claim` and the hub builds the fan-out
/// half's configuration from them (the same code computes the quality tiers
/// on both sides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamShape {
    /// Width in pixels, 1..=16384.
    pub width: u32,
    /// Height in pixels, 1..=16384.
    pub height: u32,
    /// `avc1.PPCCLL` when the source encodes H.264 (None: images only).
    #[serde(default)]
    pub h264_codec: Option<String>,
    /// The preferred image format.
    #[serde(default = "default_image")]
    pub preferred_image: ImageFormat,
    /// JPEG quality, 1..=100.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// H.264 bit rate in bit/s.
    #[serde(default)]
    pub bitrate: u32,
    /// Frame-rate cap in frames/s (None: as published).
    #[serde(default)]
    pub fps: Option<f64>,
    /// Whether the stream runs adaptive quality (its lower tiers exist).
    #[serde(default)]
    pub adaptive: bool,
    /// Whose events reach the publisher: `"all"`, `"first"` or `"none"`.
    #[serde(default = "default_input")]
    pub input: String,
}

fn default_image() -> ImageFormat {
    ImageFormat::Jpeg
}
fn default_quality() -> u8 {
    80
}
fn default_input() -> String {
    "all".into()
}

/// A text message from the source (the publisher) to the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceMessage {
    /// The first message: claims the stream name of the URL.
    Claim {
        /// [`FEED_VERSION`].
        protocol: u32,
        /// What the stream offers.
        #[serde(flatten)]
        shape: StreamShape,
        /// The publisher's credential (also taken from the `token` query
        /// parameter or `Authorization: Bearer`).
        #[serde(default)]
        token: Option<String>,
        /// Take the name over from a live publisher of the same principal.
        #[serde(default)]
        takeover: bool,
        /// The publisher's clock when it sent the claim: µs on the clock of
        /// its units' `timestamp_us`. The hub maps that clock onto its own
        /// (off by the claim's one-way delay); without it, the publisher's
        /// time 0 is taken to be the moment the claim arrived.
        #[serde(default)]
        clock_us: Option<u64>,
    },
    /// The stream's size or codec changed (the next units have them).
    Info {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The H.264 codec string, when it changed.
        #[serde(default)]
        h264_codec: Option<String>,
    },
}

/// Viewers of one variant, as the hub counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputDemand {
    /// Which output.
    #[serde(flatten)]
    pub variant: VariantId,
    /// Viewers subscribed to it (they will want stills and keyframes).
    pub viewers: u32,
    /// Of those, viewers that can take a frame now (open, visible, with credit).
    pub ready: u32,
}

/// A text message from the hub to the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubMessage {
    /// The claim was accepted.
    Claimed {
        /// The stream's name.
        stream: String,
        /// True when the publisher took back a stream that was offline
        /// (its viewers stayed connected).
        resumed: bool,
        /// How long the stream stays offline after this connection drops
        /// before it ends, in ms.
        grace_ms: u64,
    },
    /// What the viewers demand now (sent whenever it changes, whole).
    Demand {
        /// Every variant some viewer is subscribed to.
        outputs: Vec<OutputDemand>,
        /// Viewers that take region updates (`framehub/patch`).
        patch_viewers: u32,
    },
    /// The chain of video tier `tier` needs a keyframe (coalesced at the hub).
    Keyframe {
        /// The video tier.
        tier: u8,
    },
    /// A viewer's input event for the publisher's program.
    Event {
        /// The viewer's session id (0: the hub itself).
        client_id: u64,
        /// The viewer's principal, if it authenticated.
        #[serde(default)]
        principal: Option<Principal>,
        /// Arrival time at the hub, µs since the stream was claimed.
        received_us: u64,
        /// The event ([`crate::InputEvent`] as JSON).
        event: crate::InputEvent,
        /// The id of the hub the viewer is on, when it is not the hub that
        /// sent this (a stream shared over NATS, `docs/protocol.md` §12).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hub: Option<String>,
    },
}

/// Why a feed message or unit was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeedError {
    /// Not valid JSON of the expected shape.
    #[error("malformed feed message: {0}")]
    Malformed(String),
    /// Over a size limit.
    #[error("feed message too big: {0}")]
    TooBig(&'static str),
    /// A value out of its range.
    #[error("feed field out of range: {0}")]
    OutOfRange(&'static str),
}

impl SourceMessage {
    /// Parses one text message from a source (at most [`MAX_FEED_TEXT`] bytes).
    ///
    /// Errors: [`FeedError`] when it is too big, malformed, or a size is out
    /// of range.
    pub fn parse(text: &str) -> Result<Self, FeedError> {
        if text.len() > MAX_FEED_TEXT {
            return Err(FeedError::TooBig("text message"));
        }
        let msg: SourceMessage =
            serde_json::from_str(text).map_err(|e| FeedError::Malformed(e.to_string()))?;
        let (w, h, codec) = match &msg {
            SourceMessage::Claim { shape, .. } => {
                if shape.quality == 0 || shape.quality > 100 {
                    return Err(FeedError::OutOfRange("quality"));
                }
                if !matches!(shape.input.as_str(), "all" | "first" | "none") {
                    return Err(FeedError::OutOfRange("input"));
                }
                if shape
                    .fps
                    .is_some_and(|f| !(f.is_finite() && f > 0.0 && f <= 1000.0))
                {
                    return Err(FeedError::OutOfRange("fps"));
                }
                (shape.width, shape.height, shape.h264_codec.as_deref())
            }
            SourceMessage::Info {
                width,
                height,
                h264_codec,
            } => (*width, *height, h264_codec.as_deref()),
        };
        check_size(w, h)?;
        if codec.is_some_and(|c| c.len() > 64) {
            return Err(FeedError::TooBig("h264_codec"));
        }
        Ok(msg)
    }

    /// This message as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these plain types cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl HubMessage {
    /// Parses one text message from a hub (at most [`MAX_FEED_TEXT`] bytes;
    /// events are validated as a viewer's are).
    pub fn parse(text: &str) -> Result<Self, FeedError> {
        if text.len() > MAX_FEED_TEXT {
            return Err(FeedError::TooBig("text message"));
        }
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FeedError::Malformed(e.to_string()))?;
        // Events go through the one validating parser.
        if v.get("type").and_then(|t| t.as_str()) == Some("event") {
            let event = crate::InputEvent::from_json(v.get("event").cloned().unwrap_or_default())
                .map_err(|e| FeedError::Malformed(e.to_string()))?;
            let num = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
            let principal = v
                .get("principal")
                .and_then(|p| p.as_str())
                .map(Principal::new);
            let hub = v
                .get("hub")
                .and_then(|p| p.as_str())
                .filter(|h| h.len() <= 64)
                .map(str::to_string);
            return Ok(HubMessage::Event {
                client_id: num("client_id"),
                principal,
                received_us: num("received_us"),
                event,
                hub,
            });
        }
        serde_json::from_value(v).map_err(|e| FeedError::Malformed(e.to_string()))
    }

    /// This message as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn check_size(w: u32, h: u32) -> Result<(), FeedError> {
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        Err(FeedError::OutOfRange("width/height"))
    } else {
        Ok(())
    }
}

/// The region update carried with an image unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitPatch {
    /// The `frame_id` of the picture it is drawn over.
    pub base_id: u64,
    /// `[x, y, width, height]` per rectangle, in pixels.
    pub rects: Vec<[u32; 4]>,
    /// Its bytes: the last `bytes` of the payload.
    pub bytes: usize,
}

/// The header of one encoded unit on the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitHeader {
    /// The output it belongs to.
    pub variant: VariantId,
    /// Stream-wide id (publish counter for images, access-unit counter for video).
    pub frame_id: u64,
    /// The publish counter of the picture it was made from.
    pub source_id: u64,
    /// Publish time, µs since the source's stream was created.
    pub timestamp_us: u64,
    /// Width in pixels (the stream's size; a scaled tier's image is smaller).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Images: the MIME type of the image (a still in a JPEG variant is PNG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Images: a lossless still.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub still: bool,
    /// Video: an IDR with SPS/PPS in band.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyframe: bool,
    /// Video: frame duration in µs, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// Images: the same frame as a region update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<UnitPatch>,
    /// Time the encode took, ms.
    #[serde(default)]
    pub encode_ms: f64,
}

impl UnitHeader {
    /// The header of `info` in `variant`.
    pub fn from_info(variant: VariantId, info: &FrameInfo) -> Self {
        let mut h = UnitHeader {
            variant,
            frame_id: info.frame_id,
            source_id: info.source_id,
            timestamp_us: info.timestamp_us,
            width: info.width,
            height: info.height,
            mime: None,
            still: false,
            keyframe: false,
            duration_us: None,
            patch: None,
            encode_ms: info.encode_ms,
        };
        match &info.kind {
            FrameKind::Image { mime, still, patch } => {
                h.mime = Some((*mime).to_string());
                h.still = *still;
                h.patch = patch.as_ref().map(|p| UnitPatch {
                    base_id: p.base_id,
                    rects: p.rects.clone(),
                    bytes: p.bytes,
                });
            }
            FrameKind::Video {
                keyframe,
                duration_us,
                ..
            } => {
                h.keyframe = *keyframe;
                h.duration_us = *duration_us;
            }
        }
        h
    }

    /// The [`FrameInfo`] a fan-out half offers its sessions for this unit of
    /// `bytes` bytes (the whole unit, without its patch); `codec` is the
    /// stream's H.264 codec string (for video units).
    pub fn to_info(&self, bytes: usize, codec: &str) -> FrameInfo {
        let kind = match self.variant.format {
            OutputFormat::H264 => FrameKind::Video {
                codec: codec.to_string(),
                keyframe: self.keyframe,
                duration_us: self.duration_us,
            },
            OutputFormat::Image(f) => FrameKind::Image {
                mime: self
                    .mime
                    .as_deref()
                    .and_then(ImageFormat::from_mime)
                    .unwrap_or(f)
                    .mime(),
                still: self.still,
                patch: self.patch.as_ref().map(|p| PatchInfo {
                    base_id: p.base_id,
                    rects: p.rects.clone(),
                    bytes: p.bytes,
                }),
            },
        };
        FrameInfo {
            frame_id: self.frame_id,
            source_id: self.source_id,
            timestamp_us: self.timestamp_us,
            width: self.width,
            height: self.height,
            kind,
            bytes,
            encode_ms: self.encode_ms,
        }
    }
}

/// One unit as it travels: `u32` LE header length, the JSON header, the
/// unit's bytes, then the patch's bytes.
pub fn encode_unit(header: &UnitHeader, data: &[u8], patch: Option<&[u8]>) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap_or_default();
    let patch = patch.unwrap_or_default();
    let mut out = Vec::with_capacity(4 + json.len() + data.len() + patch.len());
    out.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    out.extend_from_slice(patch);
    out
}

/// A parsed unit: its header and the byte ranges of its data and patch in
/// the message.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedUnit {
    /// The header.
    pub header: UnitHeader,
    /// Where the unit's bytes are in the message.
    pub data: std::ops::Range<usize>,
    /// Where the patch's bytes are, when the header has a patch.
    pub patch: Option<std::ops::Range<usize>>,
}

/// Parses one binary unit message. Checks the framing, the header's bounds
/// (sizes, patch rectangles inside the frame and its byte count within the
/// payload, a known image MIME type); the payload's own format (JPEG/PNG
/// signature, Annex B) is the hub's to check.
///
/// Errors: [`FeedError`] on any violation.
pub fn parse_unit(msg: &[u8]) -> Result<ParsedUnit, FeedError> {
    let len_bytes: [u8; 4] = msg
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| FeedError::Malformed("shorter than its length prefix".into()))?;
    let n = u32::from_le_bytes(len_bytes) as usize;
    if n > MAX_FEED_TEXT {
        return Err(FeedError::TooBig("unit header"));
    }
    let end = 4usize
        .checked_add(n)
        .filter(|e| *e <= msg.len())
        .ok_or_else(|| FeedError::Malformed("header longer than the message".into()))?;
    let header: UnitHeader =
        serde_json::from_slice(&msg[4..end]).map_err(|e| FeedError::Malformed(e.to_string()))?;
    check_size(header.width, header.height)?;
    if header.frame_id == 0 {
        return Err(FeedError::OutOfRange("frame_id"));
    }
    if let Some(m) = &header.mime {
        if ImageFormat::from_mime(m).is_none() {
            return Err(FeedError::OutOfRange("mime"));
        }
    }
    let payload = msg.len() - end;
    let patch_len = match &header.patch {
        None => 0,
        Some(p) => {
            if header.variant.format == OutputFormat::H264 {
                return Err(FeedError::Malformed("a video unit with a patch".into()));
            }
            if p.rects.len() > MAX_PATCH_RECTS {
                return Err(FeedError::TooBig("patch rects"));
            }
            let inside = p.rects.iter().all(|[x, y, w, h]| {
                *w > 0
                    && *h > 0
                    && x.checked_add(*w).is_some_and(|r| r <= header.width)
                    && y.checked_add(*h).is_some_and(|b| b <= header.height)
            });
            if !inside {
                return Err(FeedError::OutOfRange("patch rects"));
            }
            if p.bytes > payload {
                return Err(FeedError::OutOfRange("patch bytes"));
            }
            p.bytes
        }
    };
    let data = end..msg.len() - patch_len;
    if data.is_empty() {
        return Err(FeedError::Malformed("a unit without bytes".into()));
    }
    let patch = header.patch.as_ref().map(|_| data.end..msg.len());
    Ok(ParsedUnit {
        header,
        data,
        patch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jpeg() -> VariantId {
        VariantId {
            format: OutputFormat::Image(ImageFormat::Jpeg),
            tier: 0,
        }
    }

    #[test]
    fn a_claim_round_trips_and_is_checked() {
        let text = r#"{"type":"claim","protocol":1,"width":640,"height":480,"h264_codec":"avc1.42C01F","token":"t"}"#;
        let msg = SourceMessage::parse(text).unwrap();
        let SourceMessage::Claim {
            shape,
            token,
            takeover,
            ..
        } = &msg
        else {
            panic!("{msg:?}")
        };
        assert_eq!((shape.width, shape.height, shape.quality), (640, 480, 80));
        assert_eq!(shape.input, "all");
        assert_eq!((token.as_deref(), *takeover), (Some("t"), false));
        assert_eq!(SourceMessage::parse(&msg.to_json()).unwrap(), msg);
        for bad in [
            r#"{"type":"claim","protocol":1,"width":0,"height":480}"#,
            r#"{"type":"claim","protocol":1,"width":640,"height":99999}"#,
            r#"{"type":"claim","protocol":1,"width":64,"height":48,"quality":0}"#,
            r#"{"type":"claim","protocol":1,"width":64,"height":48,"input":"some"}"#,
            r#"{"type":"claim","protocol":1,"width":64,"height":48,"fps":-1}"#,
            r#"{"type":"claim","width":64,"height":48}"#,
            r#"{"type":"explode"}"#,
            "not json",
        ] {
            assert!(SourceMessage::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SourceMessage::parse(&" ".repeat(MAX_FEED_TEXT + 1)),
            Err(FeedError::TooBig("text message"))
        );
    }

    #[test]
    fn hub_messages_round_trip_and_events_are_validated() {
        let demand = HubMessage::Demand {
            outputs: vec![OutputDemand {
                variant: VariantId {
                    format: OutputFormat::H264,
                    tier: 1,
                },
                viewers: 3,
                ready: 2,
            }],
            patch_viewers: 0,
        };
        let text = demand.to_json();
        assert!(text.contains(r#""format":"h264","tier":1"#), "{text}");
        assert_eq!(HubMessage::parse(&text).unwrap(), demand);
        let ev = HubMessage::parse(
            &json!({"type":"event","client_id":7,"principal":"ann","received_us":12,
                    "event":{"type":"pointer_down","x":1,"y":2}})
            .to_string(),
        )
        .unwrap();
        let HubMessage::Event {
            client_id,
            principal,
            event,
            ..
        } = &ev
        else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (*client_id, principal.as_ref().map(|p| p.as_str())),
            (7, Some("ann"))
        );
        assert_eq!(event.event_type(), "pointer_down");
        assert_eq!(HubMessage::parse(&ev.to_json()).unwrap(), ev);
        assert!(HubMessage::parse(
            &json!({"type":"event","event":{"event_type":"pointer_down","x":1e300,"y":0}})
                .to_string()
        )
        .is_err());
    }

    #[test]
    fn units_round_trip_with_and_without_patches() {
        let info = FrameInfo {
            frame_id: 5,
            source_id: 5,
            timestamp_us: 1234,
            width: 128,
            height: 64,
            kind: FrameKind::Image {
                mime: "image/jpeg",
                still: false,
                patch: Some(PatchInfo {
                    base_id: 4,
                    rects: vec![[0, 0, 64, 64]],
                    bytes: 3,
                }),
            },
            bytes: 6,
            encode_ms: 1.5,
        };
        let h = UnitHeader::from_info(jpeg(), &info);
        let msg = encode_unit(&h, b"abcdef", Some(b"xyz"));
        let p = parse_unit(&msg).unwrap();
        assert_eq!(&msg[p.data.clone()], b"abcdef");
        assert_eq!(&msg[p.patch.clone().unwrap()], b"xyz");
        assert_eq!(p.header.to_info(p.data.len(), ""), info);

        let video = FrameInfo {
            frame_id: 9,
            source_id: 3,
            timestamp_us: 1,
            width: 16,
            height: 16,
            kind: FrameKind::Video {
                codec: "avc1.42C01F".into(),
                keyframe: true,
                duration_us: None,
            },
            bytes: 4,
            encode_ms: 0.0,
        };
        let v = VariantId {
            format: OutputFormat::H264,
            tier: 0,
        };
        let msg = encode_unit(&UnitHeader::from_info(v, &video), &[0, 0, 0, 1], None);
        let p = parse_unit(&msg).unwrap();
        assert_eq!(p.patch, None);
        assert_eq!(p.header.to_info(4, "avc1.42C01F"), video);
    }

    #[test]
    fn bad_units_are_refused() {
        let good = UnitHeader::from_info(
            jpeg(),
            &FrameInfo {
                frame_id: 1,
                source_id: 1,
                timestamp_us: 0,
                width: 64,
                height: 64,
                kind: FrameKind::Image {
                    mime: "image/jpeg",
                    still: false,
                    patch: None,
                },
                bytes: 1,
                encode_ms: 0.0,
            },
        );
        assert!(parse_unit(&[1, 0]).is_err());
        assert!(parse_unit(&[255, 255, 255, 255, b'{']).is_err());
        assert!(
            parse_unit(&encode_unit(&good, b"", None)).is_err(),
            "no bytes"
        );
        let mut h = good.clone();
        h.width = 0;
        assert!(parse_unit(&encode_unit(&h, b"x", None)).is_err());
        let mut h = good.clone();
        h.mime = Some("image/gif".into());
        assert!(parse_unit(&encode_unit(&h, b"x", None)).is_err());
        let mut h = good.clone();
        h.patch = Some(UnitPatch {
            base_id: 1,
            rects: vec![[32, 32, 64, 64]],
            bytes: 1,
        });
        assert_eq!(
            parse_unit(&encode_unit(&h, b"x", Some(b"y"))),
            Err(FeedError::OutOfRange("patch rects"))
        );
        let mut h = good;
        h.patch = Some(UnitPatch {
            base_id: 1,
            rects: vec![[0, 0, 64, 64]],
            bytes: 99,
        });
        assert_eq!(
            parse_unit(&encode_unit(&h, b"x", Some(b"y"))),
            Err(FeedError::OutOfRange("patch bytes"))
        );
    }
}
