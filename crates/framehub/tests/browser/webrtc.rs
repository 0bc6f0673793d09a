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
