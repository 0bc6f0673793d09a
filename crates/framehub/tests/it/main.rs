//! Integration tests over real sockets on 127.0.0.1:0.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod adaptive;
mod attach;
mod common;
mod events;
mod flow;
mod handshake;
mod limits;
#[cfg(feature = "nats")]
mod nats;
mod patch;
#[path = "../support/picture.rs"]
mod picture;
mod quality;
mod record;
mod remote;
pub mod rest;
mod security;
mod server;
pub(crate) mod video;
mod webrtc;
mod webrtc_media;
