//! Text control messages (`docs/protocol.md` §2, §4) and close codes (§9).
//!
//! [`ClientMessage::parse`] turns one text WebSocket message from a viewer
//! into a typed message or a [`ProtocolError`] that carries the close code
//! the spec prescribes. [`ServerMessage`] serialises what the hub sends.

use serde::{Deserialize, Serialize};

use crate::event::ResizeEvent;

/// Largest text message a client may send, in bytes (64 KiB, §4.1).
pub const MAX_TEXT_MESSAGE: usize = 64 * 1024;
/// Most entries accepted in `hello.supported`.
pub const MAX_SUPPORTED: usize = 32;
/// Longest accepted token, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// WebSocket close codes used by framehub (§9; 1000–1011 are RFC 6455 §7.4.1,
/// 4000–4999 are application codes).
pub mod close_code {
    /// Normal close.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// No transport in common.
    pub const UNSUPPORTED: u16 = 1003;
    /// Policy: no hello in time, malformed or forbidden message, rate limit.
    pub const POLICY: u16 = 1008;
    /// A message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Internal error (a bug; it is logged).
    pub const INTERNAL: u16 = 1011;
    /// Authentication refused.
    pub const UNAUTHORIZED: u16 = 4401;
    /// No stream of that name.
    pub const UNKNOWN_STREAM: u16 = 4404;
    /// A publisher asked for a name already taken (extension).
    pub const NAME_TAKEN: u16 = 4409;
    /// The stream ended: its remote publisher left and did not come back
    /// within the grace period (extension). Clients do not reconnect.
    pub const STREAM_ENDED: u16 = 4410;
}

/// The first message of every viewer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// What the client can show: `"image/jpeg"`, `"image/png"`,
    /// `"webcodecs/h264-annexb"`, and the extensions `"image/webp"`,
    /// `"framehub/patch"`, `"framehub/still-png"`. Unknown entries are ignored.
    #[serde(default)]
    pub supported: Vec<String>,
    /// The browser's `devicePixelRatio`.
    #[serde(default)]
    pub device_pixel_ratio: Option<f64>,
    /// A credential for the stream's authenticator (§7).
    #[serde(default)]
    pub token: Option<String>,
}

/// `ack`: the frame `seq` was shown; frees one unit of credit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The `seq` of the acknowledged frame.
    pub seq: u64,
    /// Frames waiting in the client's decoder.
    #[serde(default)]
    pub decode_queue_size: Option<u32>,
    /// Whether (or when) the frame was displayed; informational.
    #[serde(default)]
    pub displayed: Option<serde_json::Value>,
}

/// One parsed client → server message.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// The handshake opener.
    Hello(Hello),
    /// A frame was shown.
    Ack(Ack),
    /// The next video chunk must be a keyframe.
    RequestKeyframe {
        /// Why the client asks (free text, for logs).
        reason: String,
    },
    /// The client rebuilt its decoder.
    DecoderReset,
    /// An input event, not yet validated (see [`crate::InputEvent::from_json`]).
    Event(serde_json::Value),
    /// The view's size; becomes a `resize` event.
    SetViewport(ResizeEvent),
    /// The page was hidden (`false`) or shown (`true`) (extension).
    Visibility {
        /// Whether the page is visible.
        visible: bool,
    },
    /// The bandwidth the link to this viewer carries, as its transport
    /// estimates it (`bandwidth_estimate`; the WebRTC driver sends str0m's
    /// TWCC or the receiver's REMB estimate). Moves the viewer's video tier
    /// (`docs/protocol.md` §13).
    BandwidthEstimate {
        /// Estimated bit rate, bit/s.
        bitrate: u64,
    },
    /// A message of a type this server does not know; ignored and counted.
    Unknown(String),
}

/// A client message the server refuses; the connection is closed with
/// [`ProtocolError::close_code`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    /// Over [`MAX_TEXT_MESSAGE`] bytes (close 1009).
    #[error("message of {0} bytes is over the 64 KiB limit")]
    TooBig(usize),
    /// Not JSON, not an object, no string `type`, or a field of the wrong type (close 1008).
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl ProtocolError {
    /// The close code the spec prescribes for this error.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::TooBig(_) => close_code::TOO_BIG,
            ProtocolError::Malformed(_) => close_code::POLICY,
        }
    }
}

fn field<T: serde::de::DeserializeOwned>(
    obj: &mut serde_json::Map<String, serde_json::Value>,
    ty: &str,
) -> Result<T, ProtocolError> {
    let v = serde_json::Value::Object(std::mem::take(obj));
    serde_json::from_value(v).map_err(|e| ProtocolError::Malformed(format!("{ty}: {e}")))
}

impl ClientMessage {
    /// Parses one text message.
    ///
    /// Errors: [`ProtocolError::TooBig`] over 64 KiB; [`ProtocolError::Malformed`]
    /// for invalid JSON, a non-object, a missing `type`, a field of the wrong
    /// type, or a `hello` whose lists or token are over their bounds. An
    /// unknown `type` is not an error: it yields [`ClientMessage::Unknown`].
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        if text.len() > MAX_TEXT_MESSAGE {
            return Err(ProtocolError::TooBig(text.len()));
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        let serde_json::Value::Object(mut obj) = value else {
            return Err(ProtocolError::Malformed("not a JSON object".into()));
        };
        let ty = match obj.remove("type") {
            Some(serde_json::Value::String(s)) => s,
            _ => return Err(ProtocolError::Malformed("no string 'type'".into())),
        };
        let msg = match ty.as_str() {
            "hello" => {
                let h: Hello = field(&mut obj, &ty)?;
                if h.supported.len() > MAX_SUPPORTED || h.supported.iter().any(|s| s.len() > 64) {
                    return Err(ProtocolError::Malformed(
                        "hello: 'supported' too long".into(),
                    ));
                }
                if h.token.as_ref().is_some_and(|t| t.len() > MAX_TOKEN_LEN) {
                    return Err(ProtocolError::Malformed("hello: 'token' too long".into()));
                }
                if h.device_pixel_ratio
                    .is_some_and(|r| !r.is_finite() || r <= 0.0 || r > 16.0)
                {
                    return Err(ProtocolError::Malformed(
                        "hello: 'device_pixel_ratio' out of range".into(),
                    ));
                }
                ClientMessage::Hello(h)
            }
            "ack" => ClientMessage::Ack(field(&mut obj, &ty)?),
            "request_keyframe" => {
                let reason = match obj.get("reason") {
                    None | Some(serde_json::Value::Null) => String::new(),
                    Some(serde_json::Value::String(s)) => s.chars().take(128).collect(),
                    Some(_) => {
                        return Err(ProtocolError::Malformed(
                            "request_keyframe: 'reason' is not a string".into(),
                        ))
                    }
                };
                ClientMessage::RequestKeyframe { reason }
            }
            "decoder_reset" => ClientMessage::DecoderReset,
            "event" => match obj.remove("event") {
                Some(ev @ serde_json::Value::Object(_)) => ClientMessage::Event(ev),
                _ => {
                    return Err(ProtocolError::Malformed(
                        "event: 'event' is not an object".into(),
                    ))
                }
            },
            "set_viewport" => {
                let r: ResizeEvent = field(&mut obj, &ty)?;
                r.validate()
                    .map_err(|e| ProtocolError::Malformed(format!("set_viewport: {e}")))?;
                ClientMessage::SetViewport(r)
            }
            "bandwidth_estimate" => match obj.get("bitrate").and_then(serde_json::Value::as_u64) {
                Some(bitrate) => ClientMessage::BandwidthEstimate { bitrate },
                None => {
                    return Err(ProtocolError::Malformed(
                        "bandwidth_estimate: 'bitrate' is not a whole number of bit/s".into(),
                    ))
                }
            },
            "visibility" => match obj.get("visible") {
                Some(serde_json::Value::Bool(visible)) => {
                    ClientMessage::Visibility { visible: *visible }
                }
                _ => {
                    return Err(ProtocolError::Malformed(
                        "visibility: 'visible' is not a bool".into(),
                    ))
                }
            },
            _ => ClientMessage::Unknown(ty.chars().take(64).collect()),
        };
        Ok(msg)
    }
}

/// The negotiated transport (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Whole images (`image_frame`).
    Image,
    /// H.264 Annex-B access units for WebCodecs (`video_chunk`).
    Webcodecs,
}

/// A server → client text message (§2.4, §4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The handshake answer.
    Config {
        /// `image` or `webcodecs`.
        transport: Transport,
        /// Stream width in pixels.
        width: u32,
        /// Stream height in pixels.
        height: u32,
        /// Always `"frame-pixels"`: event coordinates are framebuffer pixels.
        coords: String,
        /// `avc1.PPCCLL` for webcodecs.
        #[serde(skip_serializing_if = "Option::is_none")]
        codec: Option<String>,
        /// Device pixel ratio the frames were rendered for.
        #[serde(skip_serializing_if = "Option::is_none")]
        pixel_ratio: Option<f64>,
        /// Extension: the stream's name.
        stream: String,
        /// Extension: the server's id for this viewer.
        session: u64,
        /// Extension: `"framehub/<version>"`.
        server: String,
        /// Extension: whether this viewer's input is delivered.
        controller: bool,
        /// Extension: the image format frames will use, such as `"image/jpeg"`.
        #[serde(skip_serializing_if = "Option::is_none")]
        mime: Option<String>,
    },
    /// The quality this viewer now receives.
    SetQuality {
        /// Target bit rate in bit/s (0: not a video target).
        bitrate: u64,
        /// Target frame rate in frames/s (0: as published).
        fps: f64,
        /// Extension: the adaptive-quality tier, 0 = best.
        #[serde(skip_serializing_if = "Option::is_none")]
        tier: Option<u8>,
        /// Extension: the JPEG quality of image frames at this tier.
        #[serde(skip_serializing_if = "Option::is_none")]
        quality: Option<u8>,
        /// Extension: image frames are encoded at this fraction of the
        /// stream's size (the header keeps the stream's size; the client
        /// scales the picture up).
        #[serde(skip_serializing_if = "Option::is_none")]
        scale: Option<f64>,
        /// Extension: why (`"congested"`, `"recovered"`).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Periodic statistics for the viewer's status line.
    Stats(Box<Stats>),
    /// Extension: the CSS cursor to show.
    Cursor {
        /// A CSS cursor name such as `"crosshair"`.
        value: String,
    },
    /// Extension: whether this viewer's input reaches the publisher.
    Control {
        /// `true` when this viewer controls.
        controller: bool,
    },
    /// Extension: the state of the stream's publisher, sent when it changes
    /// (and on joining a stream whose publisher is offline).
    Status {
        /// `"online"` or `"offline"` (a remote publisher left; the stream
        /// ends after its grace period unless it comes back).
        publisher: String,
    },
}

impl ServerMessage {
    /// Serialises to compact JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// The `stats` message body (§4.2); also the per-viewer metrics snapshot's core.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Smoothed round-trip time from send to ack, in ms.
    pub rtt_ms: f64,
    /// Frames sent per second over the last second.
    pub fps_sent: f64,
    /// Frames acked per second over the last second.
    pub fps_acked: f64,
    /// Bits sent per second over the last second.
    pub bitrate_bps: f64,
    /// Time the last frame took to encode, in ms.
    pub encode_ms: f64,
    /// The client's last reported decoder queue length.
    pub decode_queue_size: u32,
    /// Frames skipped for this viewer (published while it had no credit).
    pub dropped: u64,
    /// Target bit rate (video), bit/s; 0 on image sessions.
    pub target_bitrate: u64,
    /// Target frame rate, frames/s.
    pub target_fps: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hello_and_ack() {
        let m = ClientMessage::parse(
            r#"{"type":"hello","supported":["image/jpeg","image/png"],"device_pixel_ratio":2}"#,
        )
        .unwrap();
        match m {
            ClientMessage::Hello(h) => {
                assert_eq!(h.supported, vec!["image/jpeg", "image/png"]);
                assert_eq!(h.device_pixel_ratio, Some(2.0));
            }
            other => panic!("{other:?}"),
        }
        let a = ClientMessage::parse(
            r#"{"type":"ack","seq":7,"decode_queue_size":1,"displayed":true}"#,
        )
        .unwrap();
        assert_eq!(
            a,
            ClientMessage::Ack(Ack {
                seq: 7,
                decode_queue_size: Some(1),
                displayed: Some(true.into())
            })
        );
    }

    #[test]
    fn unknown_type_is_not_an_error() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"teleport","x":1}"#).unwrap(),
            ClientMessage::Unknown("teleport".into())
        );
    }

    #[test]
    fn malformed_and_too_big_map_to_close_codes() {
        for bad in [
            "not json",
            "[1,2]",
            r#"{"seq":1}"#,
            r#"{"type":"ack","seq":"one"}"#,
            r#"{"type":"ack","seq":-1}"#,
            r#"{"type":"visibility","visible":"yes"}"#,
            r#"{"type":"event","event":3}"#,
            r#"{"type":"set_viewport","width":1e9,"height":1,"pwidth":1,"pheight":1,"ratio":1}"#,
        ] {
            let e = ClientMessage::parse(bad).unwrap_err();
            assert_eq!(e.close_code(), close_code::POLICY, "{bad}");
        }
        let big = format!(
            r#"{{"type":"event","event":{{"pad":"{}"}}}}"#,
            "x".repeat(MAX_TEXT_MESSAGE)
        );
        assert_eq!(
            ClientMessage::parse(&big).unwrap_err().close_code(),
            close_code::TOO_BIG
        );
    }

    #[test]
    fn config_serialises_with_spec_fields() {
        let m = ServerMessage::Config {
            transport: Transport::Image,
            width: 640,
            height: 480,
            coords: "frame-pixels".into(),
            codec: None,
            pixel_ratio: None,
            stream: "default".into(),
            session: 3,
            server: "framehub/0.1.0".into(),
            controller: true,
            mime: Some("image/jpeg".into()),
        };
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["type"], "config");
        assert_eq!(v["transport"], "image");
        assert_eq!(v["width"], 640);
        assert!(v.get("codec").is_none());
    }
}
