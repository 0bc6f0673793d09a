//! One message between a viewer and its session, whatever carries it: the
//! hub's WebSocket, a socket bridged from another server (ASGI), or a WebRTC
//! peer's data channel and video track (`framehub-webrtc`).

use bytes::Bytes;

/// One WebSocket message between a viewer and its session, in either
/// direction, as carried by framehub's `ViewerChannel` (and by the
/// WebRTC driver, which turns it into RTP and data-channel messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerMessage {
    /// A text message: JSON control messages (`docs/protocol.md` §4).
    Text(String),
    /// A binary message: a media envelope from the hub (§3); the hub ignores
    /// binary messages from viewers.
    Binary(Bytes),
    /// The WebSocket close: `code` (1000..=4999) and a short reason. From
    /// the session, the last message; the other side closes the viewer's
    /// socket with it.
    Close {
        /// Close code (RFC 6455 §7.4; framehub's own 44xx in protocol §9).
        code: u16,
        /// Reason, at most 123 bytes of UTF-8.
        reason: String,
    },
}
