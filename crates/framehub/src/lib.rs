//! framehub: stream live framebuffers from a program to web browsers.
//!
//! A program publishes RGBA or RGB frames into named **streams** on one hub
//! (one port); any number of browsers view each stream at
//! `http://HOST:PORT/<name>`, and their pointer, wheel, keyboard and resize
//! events flow back to the program.
//!
//! ```no_run
//! # async fn demo() -> Result<(), framehub::Error> {
//! let display = framehub::serve_on("127.0.0.1:0", 640, 480).await?;
//! let pixels = vec![128u8; 640 * 480 * 4];
//! display.publish(framehub::Frame::rgba(640, 480, &pixels[..]))?;
//! for ev in display.poll_events() {
//!     println!("{} from viewer {}", ev.event.event_type(), ev.client_id);
//! }
//! display.close().await;
//! # Ok(()) }
//! ```
//!
//! Where a frame goes: [`Stream::publish`] (stream.rs) keeps it as the latest →
//! the stream's encode thread encodes it once per format some viewer can take
//! → each viewer's driver (viewer.rs) offers it to its sans-IO
//! [`framehub_proto::Session`], which decides by credit whether to send →
//! the socket. Where an event goes: socket → viewer.rs → `Session` validates
//! → the stream's bounded queue → [`Stream::poll_events`] / [`Stream::events`].

#![deny(missing_docs)]

mod attach;
mod config;
mod encode;
mod error;
mod events;
mod frame;
mod http;
pub mod lifecycle;
mod listen;
#[cfg(feature = "nats")]
mod nats;
mod prometheus;
mod publish;
mod record;
mod remote;
mod server;
mod stream;
#[cfg(feature = "h264")]
mod video;
mod viewer;
#[cfg(feature = "webrtc")]
mod webrtc;

pub use attach::{
    AttachError, SessionEnded, TrySend, ViewerChannel, ViewerMessage, ViewerReceiver,
    ViewerRequest, ViewerSender, VIEWER_CHANNEL_IN, VIEWER_CHANNEL_OUT,
};
pub use config::{
    authenticator, AuthContext, AuthError, AuthFuture, Authenticator, InputFilter, InputPolicy,
    NatsConfig, Origins, ResizePolicy, ServerConfig, StreamConfig, WebRtcConfig, IMAGE_TIER_STEPS,
};
pub use error::{check_stream_name, Error, RESERVED_NAMES};
pub use events::ViewerEvent;
pub use frame::Frame;
pub use framehub_proto::{
    self as proto, event, AdaptConfig, ImageFormat, InputEvent, OutputFormat, Principal,
    QualityTier, SessionMetrics,
};
pub use http::{web_asset, web_asset_names};
pub use lifecycle::LifecycleEvent;
pub use record::{RecordOptions, Recording, RecordingStats};
pub use remote::{RemoteOptions, RemoteStream};
pub use server::{HubCounters, Server, ServerBuilder};
pub use stream::Stream;

/// The default port of [`serve`] (pdum.rfb's).
pub const DEFAULT_PORT: u16 = 8765;

/// Capacity of each viewer socket's read buffer, bytes. Tungstenite's
/// default is 128 KiB per connection, and it zero-fills the free part of
/// its read buffer (up to that size) before every read (`FrameCodec::read_in`):
/// with one small ack read per frame and viewer, that cost the hub about a
/// third of its CPU at 500 viewers (`framehub bench --scenarios
/// fanout-500`: 84 % → 53 % of a core). Viewers send small JSON messages
/// (acks, events; text is capped at 64 KiB by the protocol), and a larger
/// message still arrives whole over several reads.
pub const VIEWER_READ_BUFFER: usize = 16 * 1024;

/// A hub with one stream named `default`, as returned by [`serve`]: use it as
/// the [`Stream`] (it derefs to one); [`Stream::server`] (through the deref) reaches the hub to
/// add more streams; [`Display::close`] closes the whole hub.
#[derive(Debug, Clone)]
pub struct Display {
    stream: Stream,
}

impl std::ops::Deref for Display {
    type Target = Stream;
    fn deref(&self) -> &Stream {
        &self.stream
    }
}

impl Display {
    /// The `default` stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Closes the hub this display belongs to (every stream, every viewer).
    pub async fn close(&self) {
        self.stream.server().close().await;
    }
}

/// A hub on `127.0.0.1:8765` with one `width` × `height` stream named `default`.
///
/// Errors: [`Error::Io`] when the port is taken.
pub async fn serve(width: u32, height: u32) -> Result<Display, Error> {
    serve_on(("127.0.0.1", DEFAULT_PORT), width, height).await
}

/// [`serve`] on the given address (port 0 picks a free port).
///
/// Errors: [`Error::Io`] when the address cannot be bound; [`Error::InvalidFrame`] for a bad size.
pub async fn serve_on(
    addr: impl tokio::net::ToSocketAddrs,
    width: u32,
    height: u32,
) -> Result<Display, Error> {
    let server = Server::bind(addr).await?;
    let stream = server.add_stream("default", width, height, StreamConfig::default())?;
    Ok(Display { stream })
}
