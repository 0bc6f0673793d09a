//! The per-viewer state machine, driven by a sequence of operations decoded
//! from the input: text messages (from a small dictionary, or arbitrary
//! strings), frames with arbitrary ids and kinds, authenticator verdicts,
//! the passing of (virtual) time and controller changes. After every
//! operation the outputs are polled until `None`, as a driver does.
//!
//! Invariants checked after every step:
//! * nothing panics;
//! * once a `Close` came out, only `None` does (whatever is fed after);
//! * `is_closed()` agrees with having seen a `Close`;
//! * while an `Authenticate` is unanswered, only a `Close` may come out;
//! * frames in flight never exceed the credit (`metrics().inflight <= max_inflight`,
//!   `max_inflight` as the session clamps it, 1..=16);
//! * `seq` of `Frame` outputs strictly increases;
//! * a `Frame` names a `frame_id` that was offered with `handle_frame`;
//! * on a video session, a delta chunk continues the chunk sent before it
//!   (no gap since the last keyframe, and none after a `decoder_reset` or
//!   while hidden);
//! * close reasons fit a close frame (<= 123 bytes);
//! * a timer that fired settles: after a few `handle_timeout(t)` at the same
//!   `t`, `poll_timeout()` is `None` or later than `t` (no endless wake-ups);
//! * one drain ends (bounded number of outputs).
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use framehub_proto::envelope::FrameHeader;
use framehub_proto::{
    ClientMessage, FrameInfo, FrameKind, ImageFormat, Offer, Output, PatchInfo, Principal, Session,
    SessionConfig, Transport,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const MIMES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

/// Hellos a real client sends (and a few it does not).
const HELLOS: [&str; 6] = [
    r#"{"type":"hello","supported":["image/jpeg","image/png"]}"#,
    r#"{"type":"hello","supported":["webcodecs/h264-annexb","image/jpeg"],"device_pixel_ratio":2}"#,
    r#"{"type":"hello","supported":["webcodecs/h264-annexb","framehub/still-png","image/png"],"token":"t"}"#,
    r#"{"type":"hello","supported":["image/png","framehub/patch"]}"#,
    r#"{"type":"hello","supported":["image/gif"]}"#,
    r#"{"type":"hello"}"#,
];

/// Other messages a client sends.
const MESSAGES: [&str; 12] = [
    r#"{"type":"request_keyframe","reason":"decode error"}"#,
    r#"{"type":"decoder_reset"}"#,
    r#"{"type":"event","event":{"event_type":"pointer_move","x":10,"y":20}}"#,
    r#"{"type":"event","event":{"event_type":"pointer_down","x":1,"y":2,"button":1,"buttons":[1]}}"#,
    r#"{"type":"event","event":{"event_type":"key_down","key":"a","code":"KeyA","modifiers":["Shift"]}}"#,
    r#"{"type":"event","event":{"event_type":"wheel","x":1,"y":2,"dx":0,"dy":-48}}"#,
    r#"{"type":"event","event":{"event_type":"pointer_move","x":1e300,"y":0}}"#,
    r#"{"type":"set_viewport","width":640,"height":480,"pwidth":1280,"pheight":960,"ratio":2}"#,
    r#"{"type":"visibility","visible":false}"#,
    r#"{"type":"visibility","visible":true}"#,
    r#"{"type":"teleport"}"#,
    r#"not json"#,
];

struct Driver {
    s: Session,
    now: Instant,
    max_inflight: u32,
    closed: bool,
    awaiting_auth: bool,
    last_seq: Option<u64>,
    /// Seqs sent, most recent last (for acks that hit something in flight).
    sent_seqs: Vec<u64>,
    offered: HashSet<u64>,
    /// Video: the frame_id of the last chunk sent since the chain was last broken.
    last_chunk: Option<u64>,
    video: bool,
}

impl Driver {
    fn drain(&mut self) {
        for _ in 0..10_000 {
            let Some(o) = self.s.poll_output(self.now) else {
                self.check();
                return;
            };
            assert!(!self.closed, "output after Close: {o:?}");
            if self.awaiting_auth {
                assert!(
                    matches!(o, Output::Close { .. }),
                    "output before the auth verdict: {o:?}"
                );
            }
            match o {
                Output::Authenticate(_) => {
                    assert!(!self.awaiting_auth, "two Authenticate");
                    self.awaiting_auth = true;
                }
                Output::Close { reason, .. } => {
                    assert!(reason.len() <= 123, "close reason too long");
                    self.closed = true;
                }
                Output::Text(framehub_proto::ServerMessage::Config { transport, .. }) => {
                    self.video = transport == Transport::Webcodecs;
                }
                Output::Frame { frame_id, header } => {
                    let seq = header.seq();
                    assert!(
                        self.last_seq.is_none_or(|l| seq > l),
                        "seq {seq} after {:?}",
                        self.last_seq
                    );
                    self.last_seq = Some(seq);
                    self.sent_seqs.push(seq);
                    assert!(
                        self.offered.contains(&frame_id),
                        "frame {frame_id} never offered"
                    );
                    if let FrameHeader::VideoChunk { keyframe, .. } = header {
                        if self.video && !keyframe {
                            assert!(
                                self.last_chunk
                                    .is_some_and(|l| l.checked_add(1) == Some(frame_id)),
                                "delta chunk {frame_id} does not continue {:?}",
                                self.last_chunk
                            );
                        }
                        self.last_chunk = Some(frame_id);
                    }
                }
                Output::Text(_) | Output::Event { .. } | Output::RequestKeyframe => {}
            }
            self.check();
        }
        panic!("poll_output did not run dry");
    }

    fn check(&mut self) {
        assert_eq!(self.s.is_closed(), self.closed, "is_closed vs Close output");
        let m = self.s.metrics(self.now);
        assert!(
            m.inflight <= self.max_inflight,
            "inflight {} over credit {}",
            m.inflight,
            self.max_inflight
        );
    }

    fn text(&mut self, text: &str) {
        // Track what the session sees that breaks a video chain.
        match ClientMessage::parse(text) {
            Ok(ClientMessage::DecoderReset) | Ok(ClientMessage::Visibility { visible: false }) => {
                self.last_chunk = None
            }
            _ => {}
        }
        self.s.handle_text(self.now, text);
    }

    fn advance(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let d = match u.int_in_range(0u8..=3)? {
            0 => Duration::ZERO,
            1 => Duration::from_millis(u.int_in_range(0..=100)?),
            2 => Duration::from_millis(u.int_in_range(0..=5_000)?),
            _ => Duration::from_secs(u.int_in_range(0..=120)?),
        };
        self.now += d;
        Ok(())
    }

    fn frame(&mut self, u: &mut Unstructured<'_>) -> Result<FrameInfo> {
        let last = self.offered.iter().copied().max().unwrap_or(0);
        let frame_id = match u.int_in_range(0u8..=3)? {
            0 | 1 => last.wrapping_add(1),
            2 => last.wrapping_sub(u.int_in_range(0..=3)?),
            _ => u.arbitrary()?,
        };
        let source_id = if u.arbitrary()? {
            frame_id
        } else {
            u.arbitrary()?
        };
        let kind = match u.int_in_range(0u8..=2)? {
            0 => FrameKind::Image {
                mime: *u.choose(&MIMES)?,
                still: u.arbitrary()?,
                // A patch over an arbitrary earlier id (or none).
                patch: if u.arbitrary()? {
                    Some(PatchInfo {
                        base_id: u.arbitrary()?,
                        rects: vec![[0, 0, 1, 1]],
                        bytes: u.int_in_range(0..=1000)?,
                    })
                } else {
                    None
                },
            },
            _ => FrameKind::Video {
                codec: "avc1.42E01F".into(),
                keyframe: u.ratio(1, 4)?,
                duration_us: u.arbitrary()?,
            },
        };
        self.offered.insert(frame_id);
        Ok(FrameInfo {
            frame_id,
            source_id,
            timestamp_us: u.arbitrary()?,
            width: u.int_in_range(0..=4096)?,
            height: u.int_in_range(0..=4096)?,
            kind,
            bytes: u.int_in_range(0..=1 << 20)?,
            encode_ms: 1.0,
        })
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        match u.int_in_range(0u8..=11)? {
            0 => {
                let h = *u.choose(&HELLOS)?;
                self.text(h);
            }
            1 | 2 => {
                let m = *u.choose(&MESSAGES)?;
                self.text(m);
            }
            3 => {
                let s: &str = u.arbitrary()?;
                self.text(s);
            }
            4 | 5 => {
                // An ack of something sent (often), or of any number.
                let seq = if !self.sent_seqs.is_empty() && u.ratio(3, 4)? {
                    *u.choose(&self.sent_seqs)?
                } else {
                    u.arbitrary()?
                };
                let msg = format!(r#"{{"type":"ack","seq":{seq},"decode_queue_size":1}}"#);
                self.text(&msg);
            }
            6 | 7 => {
                let f = self.frame(u)?;
                self.s.handle_frame(self.now, f);
            }
            8 => {
                let verdict = match u.int_in_range(0u8..=2)? {
                    0 => Ok(None),
                    1 => Ok(Some(Principal::new("alice"))),
                    _ => Err("nope".to_string()),
                };
                self.s.handle_auth(self.now, verdict);
                self.awaiting_auth = false;
            }
            9 => {
                self.advance(u)?;
                self.s.handle_timeout(self.now);
            }
            10 => {
                // Sleep exactly until the session's timer, as a driver does.
                // A timer may come due again at once (a frame sent with a
                // zero in-flight timeout), but handling it must settle: no
                // endless wake-ups at one instant.
                if let Some(t) = self.s.poll_timeout() {
                    self.now = self.now.max(t);
                    for _ in 0..8 {
                        self.s.handle_timeout(self.now);
                        self.drain();
                        if self.s.poll_timeout().is_none_or(|next| next > self.now) {
                            return Ok(());
                        }
                    }
                    panic!(
                        "timer keeps firing at the same instant: {:?}",
                        self.s.poll_timeout()
                    );
                }
            }
            _ => {
                let c = u.arbitrary()?;
                self.s.set_controller(c);
            }
        }
        self.drain();
        Ok(())
    }
}

fn timeout(u: &mut Unstructured<'_>) -> Result<Duration> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => Duration::ZERO,
        1 => Duration::from_millis(u.int_in_range(1..=60_000)?),
        2 => Duration::from_secs(u.arbitrary()?),
        _ => Duration::MAX,
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let h264 = u.arbitrary::<bool>()?;
    let offer = Offer {
        h264_codec: h264.then(|| "avc1.42E01F".to_string()),
        preferred_image: *u.choose(&[ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp])?,
        ..Offer::default()
    };
    let t0 = Instant::now();
    let mut cfg = SessionConfig::new(1, "default", offer, 64, 48);
    cfg.max_inflight = u.int_in_range(0..=20)?;
    cfg.stats_interval = if u.arbitrary()? {
        Some(Duration::from_millis(u.int_in_range(1..=2_000)?))
    } else {
        None
    };
    cfg.controller = u.arbitrary()?;
    if u.arbitrary()? {
        // Timeouts from tiny to "never" (a huge Duration must not overflow an Instant).
        cfg.hello_timeout = timeout(u)?;
        cfg.inflight_timeout = timeout(u)?;
        cfg.idle_timeout = timeout(u)?;
    }
    if u.arbitrary()? {
        // A tight event budget, so the rate limit is reached.
        cfg.events_per_second = f64::from(u.int_in_range(0u8..=20)?);
        cfg.event_burst = f64::from(u.int_in_range(0u8..=5)?);
    }
    let max_inflight = cfg.max_inflight.clamp(1, 16);
    let mut d = Driver {
        s: Session::new(t0, cfg),
        now: t0,
        max_inflight,
        closed: false,
        awaiting_auth: false,
        last_seq: None,
        sent_seqs: Vec::new(),
        offered: HashSet::new(),
        last_chunk: None,
        video: false,
    };
    d.drain();
    for _ in 0..256 {
        if u.is_empty() {
            break;
        }
        d.step(u)?;
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
