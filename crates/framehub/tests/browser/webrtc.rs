//! The viewer page over WebRTC (`?transport=webrtc`, docs/protocol.md §12):
//! the picture arrives on the peer's video track, input and stills on its
//! data channel; `auto` falls back to the WebSocket when UDP does not connect.

use std::time::Duration;

use fantoccini::actions::{
    InputSource, MouseActions, PointerAction, WheelAction, WheelActions, MOUSE_BUTTON_LEFT,
};
use framehub::{Frame, InputEvent, Server, ServerConfig, Stream, StreamConfig};

use crate::harness::{close, events_until, Browser, Kind};
use crate::picture::{pattern, QUADRANTS};

const WAIT: Duration = Duration::from_secs(20);

async fn hub(cfg: ServerConfig, stream_cfg: StreamConfig) -> (Server, Stream, String) {
    let server = Server::builder()
        .config(cfg)
        .bind("127.0.0.1:0")
        .await
        .expect("hub");
    let addr = server.local_addr().expect("bound");
    let stream = server
        .add_stream("rtc", 320, 240, stream_cfg)
        .expect("stream");
    (server, stream, format!("http://{addr}"))
}

/// Publishes `n` at 10 fps until `stop` (H.264 needs frames to flow for a
/// keyframe after the peer connects; a resting stream gets its still).
fn keep_publishing(stream: &Stream, n: u8) -> tokio::task::JoinHandle<()> {
    let stream = stream.clone();
    tokio::spawn(async move {
        for _ in 0..30 {
            if stream
                .publish(Frame::rgba(320, 240, pattern(320, 240, n)))
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

async fn quadrants_show(b: &Browser, n: u8) -> Result<(), String> {
    let centres = [(80.0, 60.0), (240.0, 60.0), (80.0, 180.0), (240.0, 180.0)];
    for (i, (x, y)) in centres.iter().enumerate() {
        let px = b.frame_pixel(*x, *y).await;
        let want = QUADRANTS[(i + n as usize) % 4];
        if !close(px, want, 40) {
            return Err(format!("quadrant {i} shows {px:?}, want {want:?}"));
        }
    }
    Ok(())
}

async fn wait_quadrants(b: &Browser, n: u8) {
    let mut last = String::new();
    for _ in 0..100 {
        match quadrants_show(b, n).await {
            Ok(()) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("picture {n} never shown: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_viewer_shows_the_picture_its_replacement_and_the_still_and_its_input_arrives() {
    if Kind::from_env() == Kind::Firefox {
        // Firefox offers H.264 for WebRTC only with its downloaded OpenH264 plugin.
        eprintln!("skipped in Firefox: no H.264 for WebRTC without the OpenH264 plugin");
        return;
    }
    let (_server, stream, base) = hub(
        ServerConfig::default(),
        StreamConfig::default()
            .h264(true)
            .still_after(Some(Duration::from_millis(300))),
    )
    .await;
    let publisher = keep_publishing(&stream, 0);
    let b = Browser::start(800, 600).await;
    b.client
        .goto(&format!("{base}/rtc?transport=webrtc"))
        .await
        .expect("page");
    b.wait_for(
        "window.framehubView && window.framehubView.getStats().transport === 'webrtc' && window.framehubStats.framesDrawn >= 1",
        WAIT,
        "video frames over WebRTC",
    )
    .await;
    wait_quadrants(&b, 0).await;
    b.screenshot("webrtc-first").await;
    publisher.await.expect("publisher");

    // A new picture replaces it.
    let publisher = keep_publishing(&stream, 1);
    wait_quadrants(&b, 1).await;

    // Click and wheel: framebuffer coordinates, through the data channel.
    stream.poll_events();
    let (px, py) = b.page_pos(100.0, 50.0).await;
    let click = MouseActions::new("mouse".into())
        .then(PointerAction::MoveTo {
            duration: None,
            x: px.round(),
            y: py.round(),
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    b.client.perform_actions(click).await.expect("click");
    let wheel = WheelActions::new("wheel".into()).then(WheelAction::Scroll {
        duration: None,
        x: px.round() as i64,
        y: py.round() as i64,
        delta_x: 0,
        delta_y: 120,
    });
    b.client.perform_actions(wheel).await.expect("wheel");
    let evs = events_until(&stream, |e| {
        e.iter()
            .any(|v| matches!(v.event, InputEvent::PointerDown(_)))
            && e.iter().any(|v| matches!(v.event, InputEvent::Wheel(_)))
    })
    .await;
    let down = evs
        .iter()
        .find_map(|v| match &v.event {
            InputEvent::PointerDown(p) => Some(p.clone()),
            _ => None,
        })
        .expect("pointer_down");
    assert!(
        (down.x - 100.0).abs() <= 2.0 && (down.y - 50.0).abs() <= 2.0,
        "pointer_down at ({}, {}), want (100, 50)",
        down.x,
        down.y
    );
    publisher.await.expect("publisher");

    // At rest, the lossless still comes over the data channel and is drawn.
    b.wait_for(
        "window.framehubView.getStats().stillsDrawn >= 1",
        WAIT,
        "a lossless still over the data channel",
    )
    .await;
    let centre = b.frame_pixel(80.0, 60.0).await;
    assert!(
        close(centre, QUADRANTS[1], 2),
        "after the still the picture is exact: {centre:?} vs {:?}",
        QUADRANTS[1]
    );
    let stats = b.js("return window.framehubView.getStats()").await;
    assert!(stats["rttMs"].is_number(), "RTT from getStats(): {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_the_websocket_when_udp_is_unreachable() {
    // Announce an address nothing answers on (TEST-NET-1, RFC 5737): ICE cannot connect.
    let mut cfg = ServerConfig::default();
    cfg.webrtc.announce = vec!["192.0.2.1".parse().expect("ip")];
    let (_server, stream, base) = hub(cfg, StreamConfig::default().h264(true)).await;
    let publisher = keep_publishing(&stream, 2);
    let b = Browser::start(800, 600).await;
    b.client
        .goto(&format!("{base}/rtc?transport=auto"))
        .await
        .expect("page");
    b.wait_for(
        "window.framehubView && ['webcodecs', 'image'].includes(window.framehubView.getStats().transport) && window.framehubStats.framesDrawn >= 1",
        WAIT,
        "frames over the WebSocket after the fallback",
    )
    .await;
    wait_quadrants(&b, 2).await;
    publisher.abort();
}

/// Publish-to-display latency in Chromium, WebCodecs over the WebSocket and
/// WebRTC side by side on one hub and one 1280×720 H.264 stream at 30 fps
/// (`docs/benchmarks.md`, "WebRTC"). Run by hand (release recommended):
/// `cargo test --workspace --test browser -- --ignored --nocapture latency`.
///
/// Each drawn frame's `timestampUs` (the view's `frame` event: from the
/// envelope over the WebSocket, from the RTP time over WebRTC, which the
/// browser reports with `requestVideoFrameCallback`) plus the stream's
/// creation on the wall clock is its publish time; the page's wall clock at
/// the draw (`performance.timeOrigin + performance.now()`, one machine, one
/// clock) minus that is the latency. The creation is read right after
/// `add_stream` returns, so latencies are understated by at most that read's
/// lateness (well under 1 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand with --ignored"]
async fn latency_webrtc_beside_webcodecs() {
    const W: u32 = 1280;
    const H: u32 = 720;
    let secs: u64 = std::env::var("FRAMEHUB_LATENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let server = Server::builder()
        .config(ServerConfig::default())
        .bind("127.0.0.1:0")
        .await
        .expect("hub");
    let addr = server.local_addr().expect("bound");
    let stream = server
        .add_stream("lat", W, H, StreamConfig::default().h264(true))
        .expect("stream");
    let created_unix_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64;
    // Quadrants with a gradient and fine noise: detail the encoder spends its bit rate on.
    let pictures: Vec<Vec<u8>> = (0..8u8)
        .map(|n| {
            let mut x = u32::from(n).wrapping_mul(2_654_435_761) | 1;
            pattern(W, H, n)
                .chunks(4)
                .enumerate()
                .flat_map(|(i, p)| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let d = (i as u32 % W * 64 / W) as u8 + (x % 24) as u8;
                    [
                        p[0].saturating_sub(d),
                        p[1].saturating_sub(d),
                        p[2].saturating_sub(d),
                        255,
                    ]
                })
                .collect()
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let stream = stream.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            for i in 0u32.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let due = start + Duration::from_secs_f64(f64::from(i) / 30.0);
                std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                let pic = pictures[i as usize % pictures.len()].clone();
                if stream.publish(Frame::rgba(W, H, pic)).is_err() {
                    return;
                }
            }
        })
    };
    let mut results = Vec::new();
    for transport in ["websocket", "webrtc", "websocket", "webrtc"] {
        let b = Browser::start(1300, 800).await;
        b.client
            .goto(&format!("http://{addr}/lat?transport={transport}"))
            .await
            .expect("page");
        b.wait_for(
            "window.framehubView && window.framehubStats && window.framehubStats.framesDrawn >= 30",
            WAIT,
            "frames drawn",
        )
        .await;
        b.js(&format!(
            "window.__lat = []; window.framehubView.addEventListener('frame', (e) => {{
               const t = e.detail.timestampUs;
               if (t !== null && t !== undefined && !e.detail.still)
                 window.__lat.push((performance.timeOrigin + performance.now()) * 1000 - ({created_unix_us} + t));
             }}); return true;"
        ))
        .await;
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let v = b
            .js("return {lat: window.__lat, transport: window.framehubView.getStats().transport};")
            .await;
        let mut lat: Vec<f64> = v["lat"]
            .as_array()
            .expect("latencies")
            .iter()
            .filter_map(|x| x.as_f64())
            .map(|us| us / 1000.0)
            .collect();
        lat.sort_by(f64::total_cmp);
        assert!(
            lat.len() as u64 > secs * 20,
            "{transport}: {} frames",
            lat.len()
        );
        let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
        let line = serde_json::json!({
            "bench": "browser-latency",
            "transport": v["transport"],
            "size": [W, H],
            "frames": lat.len(),
            "fps": lat.len() as f64 / secs as f64,
            "p50_ms": (q(0.5) * 100.0).round() / 100.0,
            "p95_ms": (q(0.95) * 100.0).round() / 100.0,
            "p99_ms": (q(0.99) * 100.0).round() / 100.0,
        });
        println!("{line}");
        results.push(line);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = publisher.join();
    drop(server);
    assert_eq!(results.len(), 4);
}
