//! Regression tests from the fuzz targets in `fuzz/` (see `fuzz/README.md`).
//!
//! Each test replays the minimised input of one crash. A test of a bug that
//! is not fixed yet is `#[ignore]`d with the reason; drop the `#[ignore]` with
//! the fix. `cargo test -p framehub-proto --test fuzz_regressions --
//! --include-ignored` runs them all.

use std::time::Instant;

use framehub_proto::{
    FrameInfo, FrameKind, Offer, Output, Principal, Session, SessionConfig, Transport,
};

fn drain(s: &mut Session, now: Instant) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output(now)).collect()
}

fn video_chunk(frame_id: u64, keyframe: bool) -> FrameInfo {
    FrameInfo {
        frame_id,
        source_id: frame_id,
        timestamp_us: 0,
        width: 64,
        height: 48,
        kind: FrameKind::Video {
            codec: "avc1.42E01F".into(),
            keyframe,
            duration_us: None,
        },
        bytes: 100,
        encode_ms: 1.0,
    }
}

/// Fuzz target `session`, found 2026-11-22 after ~58 s (125,736 runs).
/// Minimised input (36 bytes; `cargo fuzz run session <file>`):
///
/// ```text
/// b"\x01\x00\x03\x00\x01\x00\x00\x02\x08\x01\x06\x72\x65\x61\x73\x00\
///   \x40\x00\x30\x00\x40\x00\x30\x00\x03\x7e\x7e\x7e\x7e\xe8\x01\x09\
///   \x06\x00\x01\x01"
/// ```
///
/// Decoded: an H.264 stream, credit 3; the viewer says hello with
/// `webcodecs/h264-annexb` and is admitted; a keyframe with frame_id
/// `u64::MAX` is accepted into the video chain; the next chunk (frame_id 0)
/// panicked with "attempt to add with overflow" at
/// `crates/framehub-proto/src/session.rs:760:75`, `l + 1` in
/// `handle_video_chunk`'s `continues` check (fixed: `checked_add`). Debug
/// builds panicked; release builds wrapped, taking frame 0 as continuing u64::MAX.
#[test]
fn video_chunk_after_frame_id_u64_max_does_not_panic() {
    let t0 = Instant::now();
    let offer = Offer {
        h264_codec: Some("avc1.42E01F".into()),
        ..Offer::default()
    };
    let mut cfg = SessionConfig::new(1, "default", offer, 64, 48);
    cfg.max_inflight = 3;
    let mut s = Session::new(t0, cfg);
    s.handle_text(
        t0,
        r#"{"type":"hello","supported":["webcodecs/h264-annexb","framehub/still-png","image/png"],"token":"t"}"#,
    );
    assert!(matches!(
        drain(&mut s, t0).as_slice(),
        [Output::Authenticate(_)]
    ));
    s.handle_auth(t0, Ok(Some(Principal::new("alice"))));
    assert!(matches!(
        drain(&mut s, t0).first(),
        Some(Output::Text(framehub_proto::ServerMessage::Config {
            transport: Transport::Webcodecs,
            ..
        }))
    ));
    s.handle_frame(t0, video_chunk(u64::MAX, true));
    drain(&mut s, t0);
    // Panicked here: `u64::MAX + 1`.
    s.handle_frame(t0, video_chunk(0, false));
    drain(&mut s, t0);
    assert!(s.is_open());
}
