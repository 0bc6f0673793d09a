//! Micro-benchmarks of the per-viewer hot path (`cargo bench -p framehub-proto`):
//!
//! * `envelope`: building one media message (length prefix, JSON header,
//!   a copy of the payload) for a 69 KB JPEG, the size of a 1280×720 q80
//!   frame of the bench's `natural` picture, and for an empty payload (the
//!   header's cost alone).
//! * `fanout/N`: one encoded frame to N viewers, as the hub's viewer
//!   drivers do it minus the socket: for each of N open sessions,
//!   `handle_frame`, `poll_output` until it yields the frame, the envelope,
//!   then the viewer's `ack` parsed and applied. Throughput is per viewer,
//!   so the time per element is the cost of one viewer-frame.
//!
//! The socket write, WebSocket framing and the tokio wake-ups are not here:
//! `framehub bench` measures the whole path (`docs/benchmarks.md`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use framehub_proto::envelope::{self, FrameHeader};
use framehub_proto::negotiate::{ImageFormat, Offer};
use framehub_proto::session::{FrameInfo, FrameKind, Output, Session, SessionConfig};

/// A 1280×720 JPEG q80 of the bench's `natural` picture is about this big.
const JPEG_BYTES: usize = 69_000;
const HELLO: &str = r#"{"type":"hello","supported":["image/jpeg"],"device_pixel_ratio":1.0}"#;

fn header(seq: u64) -> FrameHeader {
    FrameHeader::ImageFrame {
        seq,
        timestamp_us: 1_234_567,
        width: 1280,
        height: 720,
        mime: "image/jpeg".into(),
        pixel_ratio: None,
        still: None,
    }
}

fn envelope_bench(c: &mut Criterion) {
    let payload = vec![0xA5u8; JPEG_BYTES];
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Bytes(JPEG_BYTES as u64));
    g.bench_function("image_frame_69KB", |b| {
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            black_box(envelope::encode(&header(seq), black_box(&payload)))
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("image_frame_header_only", |b| {
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            black_box(envelope::encode(&header(seq), &[]))
        })
    });
    g.finish();
}

/// An open image session, past its handshake.
fn open_session(id: u64, now: Instant) -> Session {
    let offer = Offer {
        image_formats: vec![ImageFormat::Jpeg, ImageFormat::Png],
        ..Offer::default()
    };
    let mut s = Session::new(now, SessionConfig::new(id, "bench", offer, 1280, 720));
    s.handle_text(now, HELLO);
    while let Some(o) = s.poll_output(now) {
        if matches!(o, Output::Authenticate(_)) {
            s.handle_auth(now, Ok(None));
        }
    }
    while s.poll_output(now).is_some() {}
    assert!(s.is_open(), "the session did not open");
    s
}

fn frame(id: u64) -> FrameInfo {
    FrameInfo {
        frame_id: id,
        source_id: id,
        timestamp_us: id * 33_333,
        width: 1280,
        height: 720,
        kind: FrameKind::Image {
            mime: "image/jpeg",
            still: false,
            patch: None,
        },
        bytes: JPEG_BYTES,
        encode_ms: 2.0,
    }
}

fn fanout_bench(c: &mut Criterion) {
    let payload = vec![0xA5u8; JPEG_BYTES];
    let mut g = c.benchmark_group("fanout");
    for n in [1usize, 10, 100, 500] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let start = Instant::now();
            let mut sessions: Vec<Session> = (0..n as u64).map(|i| open_session(i, start)).collect();
            let mut id = 0u64;
            b.iter(|| {
                id += 1;
                // A virtual clock: 33 ms per frame, so nothing times out.
                let now = start + Duration::from_micros(id * 33_333);
                let info = frame(id);
                for s in &mut sessions {
                    s.handle_frame(now, info.clone());
                    while let Some(out) = s.poll_output(now) {
                        if let Output::Frame { header, .. } = out {
                            let seq = header.seq();
                            black_box(envelope::encode(&header, &payload));
                            s.handle_text(
                                now,
                                &format!(
                                    r#"{{"type":"ack","seq":{seq},"decode_queue_size":0,"displayed":true}}"#
                                ),
                            );
                        }
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = envelope_bench, fanout_bench
}
criterion_main!(benches);
