//! Regression tests from the fuzz targets in `fuzz/` (see `fuzz/README.md`).
//!
//! Each test replays the minimised input of one crash. A test of a bug that
//! is not fixed yet is `#[ignore]`d with the reason; drop the `#[ignore]` with
//! the fix. `cargo test -p framehub-proto --test fuzz_regressions --
//! --include-ignored` runs them all.

use std::time::{Duration, Instant};

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

/// Fuzz target `session`, found 2026-11-22 after ~62 s (166,181 runs) once
/// the target fuzzed the session's timeouts. Minimised input (44 bytes;
/// `cargo fuzz run session <file>`):
///
/// ```text
/// b"\x00\x04\x00\x00\x00\xff\xff\xff\x02\x2d\x4e\xc1\x2a\x06\x00\x00\
///   \x00\x00\x00\x73\x50\x6f\x72\x74\x7f\x00\x00\x00\x68\x45\xff\xff\
///   \xff\xc5\x02\x01\x03\x6e\x33\x01\xb2\xb2\x0a\x0a"
/// ```
///
/// Decoded: an image stream, credit 1, `inflight_timeout = Duration::MAX`
/// ("never"), an idle timeout of ~840 years; the viewer is admitted and one
/// frame is sent; the driver sleeps until `poll_timeout()` and calls
/// `handle_timeout` then. `poll_timeout` puts the in-flight deadline at
/// `later(sent_at, inflight_timeout)` (session.rs:846), which for a timeout
/// that does not fit in an `Instant` is `sent_at` + 1 year; but
/// `handle_timeout` forgets a frame only when
/// `now - sent_at < inflight_timeout` is false (session.rs:824), which it
/// never is. So at that instant nothing happens and `poll_timeout()` returns
/// the same, already passed, instant again: the viewer loop would spin.
/// The fuzz target's invariant: a timer that fired does not keep firing at
/// the same instant.
#[test]
fn in_flight_deadline_of_a_never_timeout_does_not_fire_forever() {
    let t0 = Instant::now();
    let mut cfg = SessionConfig::new(1, "default", Offer::default(), 64, 48);
    cfg.max_inflight = 1;
    cfg.controller = false;
    cfg.hello_timeout = Duration::MAX;
    cfg.inflight_timeout = Duration::MAX;
    cfg.idle_timeout = Duration::from_secs(26_490_244_653); // ~840 years
    let mut s = Session::new(t0, cfg);
    s.handle_text(
        t0,
        r#"{"type":"hello","supported":["webcodecs/h264-annexb","image/jpeg"],"device_pixel_ratio":2}"#,
    );
    drain(&mut s, t0);
    s.handle_auth(t0, Ok(None));
    drain(&mut s, t0);
    s.handle_frame(
        t0,
        FrameInfo {
            frame_id: 1,
            source_id: 1,
            timestamp_us: 0,
            width: 64,
            height: 48,
            kind: FrameKind::Image {
                mime: "image/jpeg",
                still: false,
                patch: None,
            },
            bytes: 100,
            encode_ms: 1.0,
        },
    );
    assert!(matches!(
        drain(&mut s, t0).as_slice(),
        [Output::Frame { .. }]
    ));
    // The driver sleeps until the timer and handles it, a few times over.
    let mut now = t0;
    for _ in 0..4 {
        let Some(t) = s.poll_timeout() else { break };
        if t > now {
            now = t;
        }
        s.handle_timeout(now);
        drain(&mut s, now);
    }
    let next = s.poll_timeout();
    assert!(
        next.is_none_or(|t| t > now),
        "the timer keeps firing at {now:?}: poll_timeout() = {next:?}"
    );
}
