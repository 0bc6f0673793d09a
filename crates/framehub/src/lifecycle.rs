//! Lifecycle events of a hub: streams created and destroyed, publishers
//! online and offline, viewers joined and left (`docs/protocol.md` §8,
//! `GET /_/events`). Sent on a bounded broadcast channel: a listener that
//! falls more than [`LIFECYCLE_BUFFER`] events behind misses the oldest ones
//! (the SSE route says how many in a comment line).

use serde::Serialize;

/// Events kept for a slow listener before the oldest are dropped.
pub const LIFECYCLE_BUFFER: usize = 1024;

/// Something that came or went on a hub. Serialised as JSON with its kind
/// in `type`, e.g. `{"type":"viewer.joined","stream":"cam","client_id":3,"principal":null,"viewers":2}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum LifecycleEvent {
    /// A stream was added (by this process, or claimed by a remote publisher).
    #[serde(rename = "stream.created")]
    StreamCreated {
        /// The stream's name.
        stream: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Whether a remote publisher feeds it.
        remote: bool,
    },
    /// A stream was removed, or ended after its publisher's grace period.
    #[serde(rename = "stream.destroyed")]
    StreamDestroyed {
        /// The stream's name.
        stream: String,
    },
    /// A remote publisher claimed (or resumed, or took over) a stream.
    #[serde(rename = "publisher.online")]
    PublisherOnline {
        /// The stream's name.
        stream: String,
        /// The publisher's principal, if its authenticator named one.
        principal: Option<String>,
        /// It came back within the grace period.
        resumed: bool,
    },
    /// A remote publisher's feed dropped; the stream is offline for the grace period.
    #[serde(rename = "publisher.offline")]
    PublisherOffline {
        /// The stream's name.
        stream: String,
    },
    /// A viewer finished its handshake.
    #[serde(rename = "viewer.joined")]
    ViewerJoined {
        /// The stream's name.
        stream: String,
        /// The viewer's session id.
        client_id: u64,
        /// Its principal, if it authenticated.
        principal: Option<String>,
        /// Viewers of the stream now.
        viewers: usize,
    },
    /// A viewer left (or was closed).
    #[serde(rename = "viewer.left")]
    ViewerLeft {
        /// The stream's name.
        stream: String,
        /// The viewer's session id.
        client_id: u64,
        /// Its principal, if it authenticated.
        principal: Option<String>,
        /// Viewers of the stream now.
        viewers: usize,
    },
}

impl LifecycleEvent {
    /// The event's kind, as in its `type` (the SSE `event:` field).
    pub fn kind(&self) -> &'static str {
        match self {
            LifecycleEvent::StreamCreated { .. } => "stream.created",
            LifecycleEvent::StreamDestroyed { .. } => "stream.destroyed",
            LifecycleEvent::PublisherOnline { .. } => "publisher.online",
            LifecycleEvent::PublisherOffline { .. } => "publisher.offline",
            LifecycleEvent::ViewerJoined { .. } => "viewer.joined",
            LifecycleEvent::ViewerLeft { .. } => "viewer.left",
        }
    }

    /// The stream it is about.
    pub fn stream(&self) -> &str {
        match self {
            LifecycleEvent::StreamCreated { stream, .. }
            | LifecycleEvent::StreamDestroyed { stream }
            | LifecycleEvent::PublisherOnline { stream, .. }
            | LifecycleEvent::PublisherOffline { stream }
            | LifecycleEvent::ViewerJoined { stream, .. }
            | LifecycleEvent::ViewerLeft { stream, .. } => stream,
        }
    }
}
