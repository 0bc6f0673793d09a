//! WebRTC viewers for framehub: a thin driver around [str0m]'s sans-IO
//! `Rtc`, as framehub's WebSocket driver is around its own sans-IO session.
//!
//! * [`Endpoint`]: one UDP socket for every peer, ICE-lite (RFC 8445 §2.5),
//!   datagrams routed to peers by source address or STUN ufrag;
//! * [`signal`]: the offer bodies of WHEP (`application/sdp`) and of
//!   rtcbot-style JSON signalling, checked before any state is made;
//! * a peer (`peer.rs`): writes the stream's shared H.264 access units to
//!   its video track (str0m packetizes per peer), carries the protocol's
//!   JSON over the data channel both ways, turns PLI/FIR into keyframe
//!   requests, and acks units by what left the socket;
//! * [`client`]: a receiving peer that makes the offer, as a browser does
//!   (framehub's tests and `framehub bench` use it).
//!
//! The viewer's rules (handshake, authentication, credit, the keyframe gate,
//! the input policy and rate limit) stay in `framehub_proto::Session`,
//! reached through a [`SessionLink`]; the `framehub` crate (feature
//! `webrtc`) wires the link to its viewer seam and the signalling to its
//! HTTP routes. Wire details: `docs/protocol.md` §13.

#![deny(missing_docs)]

pub mod client;
mod endpoint;
mod peer;
pub mod signal;
pub mod stun;

pub use endpoint::{
    AcceptError, Accepted, Endpoint, EndpointConfig, EndpointStats, PEER_DATAGRAM_QUEUE,
};
pub use framehub_proto::link::ViewerMessage;
pub use peer::{
    SessionLink, BWE_HEADROOM, DATA_CHUNK_BYTES, DATA_QUEUE_BYTES, ESTIMATE_CHANGE,
    ESTIMATE_INTERVAL, MIN_SEND_QUEUE_BYTES, SEND_QUEUE_BYTES, SEND_QUEUE_TIME, TO_SESSION_QUEUE,
};
pub use signal::{parse_json_offer, parse_sdp_offer, Offer, OfferError, MAX_OFFER_BYTES};
