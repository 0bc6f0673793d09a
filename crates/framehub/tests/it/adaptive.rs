//! Adaptive quality per viewer over real sockets: a viewer whose acks slow
//! down steps down through the JPEG tiers and back up; the others keep full
//! quality; a tier is encoded once for all the viewers at it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use framehub::proto::FrameHeader;
use framehub::{AdaptConfig, Frame, ImageFormat, OutputFormat, Server, StreamConfig};
use serde_json::Value;

use crate::common::*;

const JPEG: OutputFormat = OutputFormat::Image(ImageFormat::Jpeg);

/// The controller with short timings, so a test takes seconds.
fn quick() -> AdaptConfig {
    AdaptConfig {
        congested_delay: Duration::from_millis(150),
        healthy_delay: Duration::from_millis(50),
        congested_decode_queue: 3,
        step_down_after: Duration::from_millis(300),
        step_up_after: Duration::from_millis(800),
        max_step_up_after: Duration::from_millis(800),
        min_rtt_window: Duration::from_secs(30),
    }
}

/// A hub with one 160×120 stream `s` made from `cfg`, without stills and
/// with the [`quick`] controller.
async fn adaptive_stream(cfg: StreamConfig) -> (Server, std::net::SocketAddr, framehub::Stream) {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = cfg.still_after(None).adaptive_with(quick());
    let stream = server.add_stream("s", 160, 120, cfg).unwrap();
    (server, addr, stream)
}

/// Publishes new 160×120 frames at ~60 fps until `stop`.
/// Returns how many it published.
fn publisher(stream: framehub::Stream, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut pic = pattern(160, 120, 2);
        let mut i = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let at = (i as usize * 4) % pic.len();
            pic[at] ^= 0x55;
            if stream.publish(Frame::rgba(160, 120, pic.clone())).is_err() {
                break;
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(16));
        }
        u64::from(i)
    })
}

/// What a viewer saw: the `set_quality` messages and the frames' picture widths.
#[derive(Default, Debug)]
struct Seen {
    quality: Vec<Value>,
    frames: u64,
    small_frames: u64,
}

/// Acks every frame, `delay(elapsed)` after it arrived, for `secs`.
async fn view(c: Client, secs: f64, delay: impl Fn(Duration) -> Duration) -> Seen {
    view_until(c, secs, delay, None).await
}

/// Like [`view`], but ends early 2 s after being told tier `until`.
async fn view_until(
    mut c: Client,
    secs: f64,
    delay: impl Fn(Duration) -> Duration,
    until: Option<u64>,
) -> Seen {
    let mut seen = Seen::default();
    let t0 = Instant::now();
    let mut end = Duration::from_secs_f64(secs);
    while t0.elapsed() < end {
        match c.recv_within(Duration::from_millis(200)).await {
            Some(Received::Frame(h, payload)) => {
                seen.frames += 1;
                if let FrameHeader::ImageFrame { width, .. } = &h {
                    let (w, _, _) = framehub_codec::decode_jpeg_rgba(&payload).unwrap();
                    assert_eq!(*width, 160, "the header keeps the stream's size");
                    if w < 160 {
                        seen.small_frames += 1;
                    }
                }
                let d = delay(t0.elapsed());
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                }
                c.ack(h.seq()).await;
            }
            Some(Received::Text(v)) if v["type"] == "set_quality" => {
                if until.is_some() && v["tier"].as_u64() == until {
                    end = end.min(t0.elapsed() + Duration::from_secs(2));
                }
                seen.quality.push(v);
            }
            Some(Received::Close(code, why)) => panic!("closed {code} {why}"),
            _ => {}
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_viewer_steps_down_and_recovers_while_a_fast_one_keeps_full_quality() {
    let (_server, addr, stream) = adaptive_stream(StreamConfig::default()).await;
    let fast = Client::open(addr, "/s", &["image/jpeg"]).await;
    let slow = Client::open(addr, "/s", &["image/jpeg"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pubr = publisher(stream.clone(), Arc::clone(&stop));
    // The slow viewer's link: fine for 1 s, then 400 ms per ack for 3 s, then fine again.
    let slow_link = |t: Duration| {
        if t > Duration::from_secs(1) && t < Duration::from_secs(4) {
            Duration::from_millis(400)
        } else {
            Duration::ZERO
        }
    };
    let (fast, slow) = tokio::join!(
        view(fast, 9.0, |_| Duration::ZERO),
        view(slow, 9.0, slow_link)
    );
    stop.store(true, Ordering::Relaxed);
    pubr.join().unwrap();

    assert!(
        fast.quality.is_empty(),
        "the fast viewer is never moved: {:?}",
        fast.quality
    );
    assert_eq!(fast.small_frames, 0);
    let tiers: Vec<u64> = slow
        .quality
        .iter()
        .map(|q| q["tier"].as_u64().unwrap())
        .collect();
    let deepest = tiers.iter().copied().max().unwrap_or(0);
    assert!(
        deepest >= 2,
        "stepped down at least twice: {:?}",
        slow.quality
    );
    assert_eq!(slow.quality[0]["reason"], "congested");
    assert_eq!(slow.quality[0]["quality"], 60);
    assert_eq!(
        tiers.last(),
        Some(&0),
        "recovered to tier 0: {:?}",
        slow.quality
    );
    // Down one tier at a time, then up one at a time.
    for pair in tiers.windows(2) {
        assert_eq!(pair[0].abs_diff(pair[1]), 1, "{tiers:?}");
    }
    if deepest == 3 {
        assert!(slow.small_frames > 0, "the last tier is half size");
    }
    assert!(stream.encode_count_at(JPEG, 1) > 0);
    let m = stream.metrics();
    assert!(
        m.iter().all(|v| v.tier == 0),
        "both at tier 0 at the end: {m:?}"
    );
    assert!(
        fast.frames > 2 * slow.frames / 3,
        "fast {} slow {}",
        fast.frames,
        slow.frames
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_one_tier_share_its_encode() {
    let (_server, addr, stream) = adaptive_stream(StreamConfig::default()).await;
    let mut viewers = vec![];
    for _ in 0..6 {
        viewers.push(Client::open(addr, "/s", &["image/jpeg"]).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pubr = publisher(stream.clone(), Arc::clone(&stop));
    // All six on the same poor link from 0.5 s on, until each is at the half-size tier.
    let link = |t: Duration| {
        if t > Duration::from_millis(500) {
            Duration::from_millis(400)
        } else {
            Duration::ZERO
        }
    };
    let seen = futures_util::future::join_all(
        viewers
            .into_iter()
            .map(|c| view_until(c, 20.0, link, Some(3))),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let published = pubr.join().unwrap();
    assert!(
        seen.iter().all(|s| !s.quality.is_empty()),
        "every viewer stepped down"
    );
    for tier in 1..=2u8 {
        let n = stream.encode_count_at(JPEG, tier);
        assert!(n > 0, "tier {tier} was used");
        assert!(
            n <= published,
            "tier {tier}: {n} encodes for {published} frames: one per frame"
        );
    }
    // Every viewer reached the half-size tier: the publisher was told it may
    // render at half size; when they left, that it may render at full size.
    assert!(
        seen.iter().all(|s| s.small_frames > 0),
        "all at half size: {seen:?}"
    );
    let hints = || {
        stream
            .poll_events()
            .into_iter()
            .filter_map(|e| match e.event {
                framehub::InputEvent::Downscale(d) => Some((e.client_id, d.width, d.height)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let mut got = hints();
    let t0 = Instant::now();
    while got.len() < 2 && t0.elapsed() < T {
        tokio::time::sleep(Duration::from_millis(50)).await;
        got.extend(hints());
    }
    assert_eq!(got, vec![(0, 80, 60), (0, 160, 120)]);
    let frames_at_tiers: u64 = seen.iter().map(|s| s.frames).sum();
    let encodes: u64 = (0..4).map(|t| stream.encode_count_at(JPEG, t)).sum();
    assert!(
        encodes < frames_at_tiers,
        "{encodes} encodes for {frames_at_tiers} frames sent: shared, not per viewer"
    );
}

/// A video viewer: acks each unit `delay(elapsed)` after it arrived and
/// decodes every unit in order (a unit after a tier change must start a
/// decodable chain). Returns the tiers it was told and, per unit, whether it
/// was a keyframe and the tier in force when it came.
async fn view_video(
    mut c: Client,
    secs: f64,
    delay: impl Fn(Duration) -> Duration,
) -> (Vec<u64>, Vec<(bool, u64)>) {
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let (mut told, mut units) = (vec![], vec![]);
    let mut tier = 0;
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        match c.recv_within(Duration::from_millis(200)).await {
            Some(Received::Frame(h, payload)) => {
                let FrameHeader::VideoChunk { keyframe, .. } = h else {
                    panic!("{h:?}");
                };
                // Deltas are only ever sent after a keyframe of their chain.
                dec.decode(&payload).expect("every unit decodes");
                units.push((keyframe, tier));
                let d = delay(t0.elapsed());
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                }
                c.ack(h.seq()).await;
            }
            Some(Received::Text(v)) if v["type"] == "set_quality" => {
                tier = v["tier"].as_u64().unwrap();
                told.push(tier);
                assert_eq!(v["bitrate"].as_u64(), Some(800_000 >> tier), "{v}");
            }
            Some(Received::Close(code, why)) => panic!("closed {code} {why}"),
            _ => {}
        }
    }
    (told, units)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_video_viewer_moves_to_a_lower_bitrate_chain_and_back() {
    let (_server, addr, stream) =
        adaptive_stream(StreamConfig::default().h264(true).bitrate(800_000)).await;
    const VIDEO: &[&str] = &["webcodecs/h264-annexb", "image/jpeg"];
    let fast = Client::open(addr, "/s", VIDEO).await;
    let slow = Client::open(addr, "/s", VIDEO).await;
    assert_eq!(slow.config.as_ref().unwrap()["transport"], "webcodecs");
    let stop = Arc::new(AtomicBool::new(false));
    let pubr = publisher(stream.clone(), Arc::clone(&stop));
    let slow_link = |t: Duration| {
        if t > Duration::from_secs(1) && t < Duration::from_secs(3) {
            Duration::from_millis(400)
        } else {
            Duration::ZERO
        }
    };
    let ((fast_told, fast_units), (told, units)) = tokio::join!(
        view_video(fast, 8.0, |_| Duration::ZERO),
        view_video(slow, 8.0, slow_link)
    );
    stop.store(true, Ordering::Relaxed);
    pubr.join().unwrap();
    assert!(fast_told.is_empty(), "the fast viewer stays: {fast_told:?}");
    assert!(fast_units.len() > units.len());
    assert!(told.first() == Some(&1), "stepped down: {told:?}");
    assert_eq!(told.last(), Some(&0), "and back up: {told:?}");
    // Each chain the viewer joined came with a keyframe.
    for t in told
        .iter()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
    {
        assert!(
            units.iter().any(|u| u.1 == t && u.0),
            "a keyframe at tier {t}: {units:?}"
        );
    }
    assert!(
        stream.encode_count_at(OutputFormat::H264, 1) > 0,
        "tier 1 chain used"
    );
}
