//! WebRTC media over real UDP, received by framehub's own str0m client
//! (`framehub_webrtc::client`, an offerer as a browser is): a stream at rest
//! reaches a peer that joins later, many peers and WebCodecs viewers share
//! one encode, and a peer that stops reading slows nobody else.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use framehub::{Frame, OutputFormat, ServerConfig, Stream, StreamConfig};
use framehub_webrtc::client::{Client as Peer, ClientEvent, ReceivedFrame};
use serde_json::{json, Value};

use crate::common::*;
use crate::video::{luma_psnr, moving};

/// A peer of `stream` on `addr`, signalled through the JSON endpoint.
async fn peer(addr: SocketAddr, stream: &str) -> Peer {
    let mut p = Peer::bind("127.0.0.1".parse().unwrap()).await.unwrap();
    let body = json!({"sdp": p.offer_sdp(), "type": "offer"}).to_string();
    let (status, _, body) = http(
        addr,
        "POST",
        &format!("/{stream}/webrtc"),
        "application/json",
        &body,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    p.accept_answer(answer["sdp"].as_str().unwrap()).unwrap();
    p
}

/// Drives `p` until ICE and DTLS are done (panics after 5 s).
async fn connected(p: &mut Peer) {
    tokio::time::timeout(T, async {
        loop {
            if let ClientEvent::Connected = p.next_event().await.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("connected within 5 s");
}

/// The next access unit within `d`, other events skipped.
async fn next_frame(p: &mut Peer, d: Duration) -> Option<ReceivedFrame> {
    tokio::time::timeout(d, async {
        loop {
            if let ClientEvent::Frame(f) = p.next_event().await.unwrap() {
                return f;
            }
        }
    })
    .await
    .ok()
}

/// Counts the access units `p` receives until `until`: (all, received
/// after `from`).
async fn count_frames(mut p: Peer, from: Instant, until: Instant) -> (u32, u32) {
    let (mut all, mut late) = (0, 0);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match next_frame(&mut p, left).await {
            Some(f) => {
                all += 1;
                if f.received >= from {
                    late += 1;
                }
            }
            None => break,
        }
    }
    (all, late)
}

/// Publishes a moving picture at `fps` until `until`; counts the frames in `n`.
fn publish_until(stream: Stream, w: u32, h: u32, fps: u32, until: Instant, n: Arc<AtomicU32>) {
    std::thread::spawn(move || {
        let mut i = 0;
        while Instant::now() < until {
            stream.publish(Frame::rgba(w, h, moving(w, h, i))).unwrap();
            n.fetch_add(1, Ordering::Relaxed);
            i += 1;
            std::thread::sleep(Duration::from_secs_f64(1.0 / f64::from(fps)));
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_at_rest_reaches_a_peer_that_joins_later() {
    let (server, addr) = hub_with(ServerConfig::default()).await;
    // The Mandelbrot's case: no H.264 for WebSocket viewers, one picture, then rest.
    let images = server
        .add_stream("images", 160, 120, StreamConfig::default())
        .unwrap();
    let video = server
        .add_stream("video", 160, 120, StreamConfig::default().h264(true))
        .unwrap();
    let pic = moving(160, 120, 5);
    for s in [&images, &video] {
        s.publish(Frame::rgba(160, 120, pic.clone())).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    for name in ["images", "video"] {
        for round in 0..2 {
            // A second peer joins the chain the first one started.
            let mut p = peer(addr, name).await;
            let f = next_frame(&mut p, Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("{name} (peer {round}): no picture in 5 s"));
            assert!(f.keyframe, "{name}: the first unit is a keyframe");
            let mut dec = openh264::decoder::Decoder::new().unwrap();
            let psnr = luma_psnr(&mut dec, &f.data, &pic, 160, 120);
            assert!(psnr >= 30.0, "{name}: luma PSNR {psnr:.1} dB");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_and_two_webcodecs_viewers_share_one_encode() {
    let (server, addr) = hub_with(ServerConfig::default()).await;
    let cfg = StreamConfig::default().h264(true).still_after(None);
    let stream = server.add_stream("v", 320, 240, cfg).unwrap();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let mut p = peer(addr, "v").await;
        connected(&mut p).await;
        peers.push(p);
    }
    let mut viewers = Vec::new();
    for _ in 0..2 {
        viewers.push(Client::open(addr, "/v", &["webcodecs/h264-annexb"]).await);
    }
    assert_eq!(stream.encode_count(OutputFormat::H264), 0);

    let published = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let stop_publishing = start + Duration::from_secs(3);
    publish_until(
        stream.clone(),
        320,
        240,
        30,
        stop_publishing,
        published.clone(),
    );
    let until = stop_publishing + Duration::from_millis(700);
    let peer_counts: Vec<_> = peers
        .into_iter()
        .map(|p| tokio::spawn(count_frames(p, start, until)))
        .collect();
    let viewer_counts: Vec<_> = viewers
        .into_iter()
        .map(|mut v| {
            tokio::spawn(async move {
                let mut n = 0u32;
                while let Some(left) = until.checked_duration_since(Instant::now()) {
                    match v.recv_within(left).await {
                        Some(Received::Frame(h, _)) => {
                            n += 1;
                            v.ack(h.seq()).await;
                        }
                        Some(Received::Text(_)) => {}
                        _ => break,
                    }
                }
                n
            })
        })
        .collect();
    let mut received = Vec::new();
    for c in peer_counts {
        received.push(c.await.unwrap().0);
    }
    for c in viewer_counts {
        received.push(c.await.unwrap());
    }
    let frames = published.load(Ordering::Relaxed);
    let encodes = stream.encode_count(OutputFormat::H264);
    // One shared chain: each published frame encoded once, whoever watches.
    assert_eq!(
        encodes,
        u64::from(frames),
        "{frames} frames published, {encodes} H.264 encodes; received {received:?}"
    );
    for (i, n) in received.iter().enumerate() {
        assert!(
            *n >= frames * 9 / 10,
            "receiver {i} got {n} of {frames} units: {received:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_does_not_lower_the_others_frame_rate() {
    let (server, addr) = hub_with(ServerConfig::default()).await;
    let cfg = StreamConfig::default()
        .h264(true)
        .bitrate(4_000_000)
        .still_after(None);
    let stream = server.add_stream("v", 640, 480, cfg).unwrap();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let mut p = peer(addr, "v").await;
        connected(&mut p).await;
        peers.push(p);
    }
    // The third peer is never read again: its socket's buffer fills and
    // the hub hears nothing more from it.
    let stalled = peers.pop().unwrap();
    let published = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let stop_publishing = start + Duration::from_secs(5);
    publish_until(
        stream.clone(),
        640,
        480,
        30,
        stop_publishing,
        published.clone(),
    );
    // Counted from the second second on (the first keyframe and warm-up before).
    let from = start + Duration::from_secs(1);
    let counts: Vec<_> = peers
        .into_iter()
        .map(|p| tokio::spawn(count_frames(p, from, stop_publishing)))
        .collect();
    let mut fps = Vec::new();
    for c in counts {
        fps.push(f64::from(c.await.unwrap().1) / 4.0);
    }
    let published_fps = f64::from(published.load(Ordering::Relaxed)) / 5.0;
    for f in &fps {
        assert!(
            *f >= published_fps * 0.85,
            "a reading peer got {f:.1} frames/s of {published_fps:.1} published: {fps:?}"
        );
    }
    drop(stalled);
}

/// Blocks of 20×20 pixels, each a random colour, new every frame: a picture
/// the encoder cannot predict from the last one, so it spends its whole bit
/// rate, yet flat enough for rate control to meet any tier's rate.
fn blocks(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let mut next = || {
        // xorshift32
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let (bw, bh) = (w.div_ceil(20), h.div_ceil(20));
    let colours: Vec<u32> = (0..bw * bh).map(|_| next()).collect();
    let mut v = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let c = colours[((y / 20) * bw + x / 20) as usize].to_le_bytes();
            v.extend_from_slice(&[c[0], c[1], c[2], 255]);
        }
    }
    v
}

/// The `set_quality` tiers a peer is told, and the units it receives, until `until`.
async fn watch_tiers(mut p: Peer, until: Instant) -> (Vec<u64>, u32, u64) {
    let (mut tiers, mut units) = (Vec::new(), 0);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, p.next_event()).await {
            Ok(Ok(ClientEvent::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "set_quality" {
                    tiers.push(v["tier"].as_u64().unwrap());
                }
            }
            Ok(Ok(ClientEvent::Frame(_))) => units += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => break,
        }
    }
    (tiers, units, p.link_drops())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_bandwidth_estimate_moves_it_down_the_tiers_alone() {
    let (server, addr) = hub_with(ServerConfig::default()).await;
    // No H.264 for WebSocket viewers: the peers' chains run for them alone.
    let cfg = StreamConfig::default()
        .bitrate(2_000_000)
        .adaptive(true)
        .still_after(None);
    let stream = server.add_stream("v", 320, 240, cfg).unwrap();
    let mut fast = peer(addr, "v").await;
    connected(&mut fast).await;
    let mut slow = peer(addr, "v").await;
    connected(&mut slow).await;
    // 600 kbit/s: below tiers 0 and 1 (2 and 1 Mbit/s), above tiers 2 and 3 (500 and 250 kbit/s).
    slow.limit_receive(600_000);
    let published = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs(9);
    let n = published.clone();
    let s = stream.clone();
    std::thread::spawn(move || {
        let mut i = 0;
        while Instant::now() < until {
            s.publish(Frame::rgba(320, 240, blocks(320, 240, i)))
                .unwrap();
            n.fetch_add(1, Ordering::Relaxed);
            i += 1;
            std::thread::sleep(Duration::from_millis(33));
        }
    });
    let fast = tokio::spawn(watch_tiers(fast, until));
    let slow = tokio::spawn(watch_tiers(slow, until));
    tokio::time::sleep_until((until - Duration::from_millis(200)).into()).await;
    // The hub's view of the two sessions (the slow one joined second).
    let mut sessions = stream.metrics();
    sessions.sort_by_key(|m| m.client_id);
    let (slow_tiers, slow_units, drops) = slow.await.unwrap();
    let (fast_tiers, fast_units, _) = fast.await.unwrap();
    let frames = published.load(Ordering::Relaxed);
    let [fast_m, slow_m] = sessions.as_slice() else {
        panic!("two sessions: {sessions:?}");
    };
    let seen = format!(
        "slow peer: told {slow_tiers:?}, {slow_units} units, the link dropped {drops}; sessions {sessions:?}"
    );
    assert!(drops > 0, "the bottleneck was never full: {seen}");
    assert!(slow_m.tier >= 2, "{seen}");
    // It keeps a live picture at its tier.
    assert!(slow_units >= 30, "{seen}");
    assert!(
        stream.encode_count_at(OutputFormat::H264, slow_m.tier) > 0,
        "the slow peer's tier's chain ran: {seen}"
    );
    // The fast peer stays at the best tier with every frame.
    assert_eq!((fast_m.tier, fast_m.tier_changes), (0, 0), "{seen}");
    assert!(
        fast_tiers.is_empty(),
        "the fast peer was told {fast_tiers:?}"
    );
    assert!(
        fast_units >= frames * 85 / 100,
        "the fast peer got {fast_units} of {frames}"
    );
}
