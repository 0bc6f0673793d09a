//! Integration tests over real sockets on 127.0.0.1:0.

mod common;
mod events;
mod flow;
mod handshake;
#[path = "../support/picture.rs"]
mod picture;
mod rest;
mod server;
