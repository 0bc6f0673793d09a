//! Sans-IO core of the framehub wire protocol (`docs/protocol.md`).
//!
//! * [`envelope`]: the binary media envelope (u32 LE header length, JSON header, payload);
//! * [`message`]: text control messages, parsed with bounds, and close codes;
//! * [`event`]: validated input events in the renderview vocabulary;
//! * [`negotiate`]: choosing `image` or `webcodecs` from `hello.supported`;
//! * [`session`]: the per-viewer state machine (handshake, credit, latest-wins,
//!   keyframe gate, timers), fed with messages, frames and the current time;
//! * [`link`]: one message between a viewer and its session, as any transport carries it;
//! * [`feed`]: the feed between a stream's source half and its fan-out half (remote publishers);
//! * [`adapt`]: the per-viewer adaptive-quality controller the session runs.
//!
//! Nothing here does I/O or reads a clock.

#![deny(missing_docs)]

pub mod adapt;
pub mod envelope;
pub mod event;
pub mod feed;
pub mod link;
pub mod message;
pub mod negotiate;
pub mod principal;
pub mod session;

pub use adapt::{AdaptConfig, QualityTier};
pub use envelope::FrameHeader;
pub use event::InputEvent;
pub use message::{close_code, ClientMessage, Hello, ServerMessage, Transport};
pub use negotiate::{ImageFormat, Negotiated, Offer, OutputFormat};
pub use principal::Principal;
pub use session::{
    FrameInfo, FrameKind, Output, PatchInfo, Session, SessionConfig, SessionMetrics,
};
