//! The YUV4MPEG2 reader of the CLI (`framehub pipe` reads it from stdin).
//! It is a module of the binary crate, not a library, so it is compiled into
//! this target from its source file (it uses only std).
//!
//! Reads the header with `Y4mReader::new`, then up to 8 frames with
//! `next_frame_rgba`. Checks: never panics; a frame read is exactly
//! width*height*4 bytes; after a clean end the reader keeps saying so.
//!
//! Memory: the reader fills a frame with `take(expected).read_to_end`, so
//! its buffer grows with the bytes that arrive, not with what the header
//! claims, and the RGBA output is only sized once a whole frame arrived.
//! A header claiming 16384x16384 therefore costs nothing until 402 MB of
//! planes follow, which a fuzz input (a few KB) never has. The cap below
//! is a second guard so that a large `-max_len` can never make one run
//! allocate gigabytes: over it, only one frame read is tried, and the input
//! is too short to complete it.
#![no_main]
#![allow(dead_code)]

#[path = "../../crates/framehub-cli/src/y4m.rs"]
mod y4m;

use libfuzzer_sys::fuzz_target;
use y4m::{Y4mError, Y4mReader};

/// Largest frame (in pixels) this target decodes: 4 Mpx, 16 MB of RGBA.
const MAX_PIXELS: u64 = 4 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = Y4mReader::new(data) else {
        return;
    };
    let (w, h) = (r.width(), r.height());
    assert!(w > 0 && h > 0 && w <= y4m::MAX_DIMENSION && h <= y4m::MAX_DIMENSION);
    let _ = (r.fps(), r.colourspace(), r.full_range());
    let big = u64::from(w) * u64::from(h) > MAX_PIXELS;
    if big && data.len() as u64 >= MAX_PIXELS {
        return;
    }
    let mut out = Vec::new();
    for _ in 0..if big { 1 } else { 8 } {
        match r.next_frame_rgba(&mut out) {
            Ok(true) => {
                assert!(!big, "a frame over the cap cannot be complete");
                assert_eq!(out.len(), w as usize * h as usize * 4);
                assert!(out.chunks_exact(4).all(|px| px[3] == 255));
            }
            Ok(false) => {
                assert!(!r.next_frame_rgba(&mut out).expect("stays at end"));
                break;
            }
            Err(e) => {
                let _ = e.to_string();
                if let Y4mError::Truncated { got, expected, .. } = e {
                    assert!(got < expected);
                }
                break;
            }
        }
    }
});
