//! End-to-end tests in a real headless browser (Chromium; Firefox with
//! `FRAMEHUB_BROWSER=firefox`, see `harness.rs`): the hub serves its pages,
//! the browser client draws and sends input, the tests read pixels back and
//! check what reaches `poll_events()`.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod harness;
mod index;
#[path = "../support/picture.rs"]
mod picture;
mod publish;
mod quality;
mod record;
mod viewer;
mod webrtc;
