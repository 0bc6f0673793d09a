//! The viewer page: picture, input, resize, reconnect, errors.

use std::time::Duration;

use fantoccini::actions::{
    InputSource, KeyAction, KeyActions, MouseActions, PointerAction, WheelAction, WheelActions,
    MOUSE_BUTTON_LEFT,
};
use framehub::{Frame, InputEvent, Server, Stream, StreamConfig};

use crate::harness::{close, events_until, Browser};
use crate::picture::{pattern, QUADRANTS};

const WAIT: Duration = Duration::from_secs(15);

async fn hub(name: &str, w: u32, h: u32) -> (Server, Stream, String) {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream(name, w, h, StreamConfig::default())
        .unwrap();
    (server, stream, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canvas_shows_the_published_picture_and_its_replacement() {
    let (_server, stream, base) = hub("pic", 320, 240).await;
    stream
        .publish(Frame::rgba(320, 240, pattern(320, 240, 0)))
        .unwrap();
    let b = Browser::start(800, 600).await;
    b.client.goto(&format!("{base}/pic")).await.unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.framesDrawn >= 1",
        WAIT,
        "first frame",
    )
    .await;
    b.screenshot("viewer-first-frame").await;
    let centres = [(80.0, 60.0), (240.0, 60.0), (80.0, 180.0), (240.0, 180.0)];
    for (i, (x, y)) in centres.iter().enumerate() {
        let px = b.frame_pixel(*x, *y).await;
        assert!(
            close(px, QUADRANTS[i], 12),
            "quadrant {i} shows {px:?}, published {:?}",
            QUADRANTS[i]
        );
    }
    // A new picture replaces it.
    stream
        .publish(Frame::rgba(320, 240, pattern(320, 240, 1)))
        .unwrap();
    b.wait_for(
        "window.framehubStats.framesDrawn >= 2",
        WAIT,
        "second frame",
    )
    .await;
    for (i, (x, y)) in centres.iter().enumerate() {
        let px = b.frame_pixel(*x, *y).await;
        let want = QUADRANTS[(i + 1) % 4];
        assert!(
            close(px, want, 12),
            "after republish quadrant {i} shows {px:?}, want {want:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_wheel_and_key_arrive_with_framebuffer_coordinates_through_the_letterbox() {
    // A wide stream in a squarish window: letterboxed with bars above and below.
    let (_server, stream, base) = hub("input", 400, 100).await;
    stream
        .publish(Frame::rgba(400, 100, pattern(400, 100, 0)))
        .unwrap();
    let b = Browser::start(800, 700).await;
    b.client.goto(&format!("{base}/input")).await.unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.framesDrawn >= 1",
        WAIT,
        "first frame",
    )
    .await;
    let m = b.js("return window.framehubView.mapping()").await;
    assert!(
        m["offsetY"].as_f64().unwrap() > 10.0,
        "letterboxed vertically: {m}"
    );
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
    b.client.perform_actions(click).await.unwrap();
    let evs = events_until(&stream, |e| {
        e.iter().any(|e| e.event.event_type() == "pointer_up")
    })
    .await;
    let down = evs.iter().find_map(|e| match &e.event {
        InputEvent::PointerDown(p) => Some(p.clone()),
        _ => None,
    });
    let down = down.expect("a pointer_down");
    let scale = m["scale"].as_f64().unwrap();
    let tol = 1.0 / scale + 0.6;
    assert!(
        (down.x - 100.0).abs() <= tol && (down.y - 50.0).abs() <= tol,
        "pointer_down at {},{}",
        down.x,
        down.y
    );
    assert_eq!(down.button, 1);
    assert!(down.inside);

    // A click in the letterbox bar is outside the picture.
    let (bx, by) = b.page_pos(100.0, -20.0 / scale).await;
    let bar = MouseActions::new("mouse".into())
        .then(PointerAction::MoveTo {
            duration: None,
            x: bx.round(),
            y: by.round(),
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    b.client.perform_actions(bar).await.unwrap();
    let evs = events_until(&stream, |e| {
        e.iter()
            .any(|e| matches!(&e.event, InputEvent::PointerDown(_)))
    })
    .await;
    let outside = evs.iter().find_map(|e| match &e.event {
        InputEvent::PointerDown(p) => Some(p.clone()),
        _ => None,
    });
    let outside = outside.unwrap();
    assert!(!outside.inside && outside.y < 0.0, "bar click: {outside:?}");

    // The wheel at framebuffer (300, 25).
    let (wx, wy) = b.page_pos(300.0, 25.0).await;
    let mut wheel = WheelActions::new("wheel".into());
    wheel.push(WheelAction::Scroll {
        duration: None,
        x: wx.round() as i64,
        y: wy.round() as i64,
        delta_x: 0,
        delta_y: 120,
    });
    b.client.perform_actions(wheel).await.unwrap();
    let evs = events_until(&stream, |e| {
        e.iter().any(|e| e.event.event_type() == "wheel")
    })
    .await;
    let w = evs.iter().find_map(|e| match &e.event {
        InputEvent::Wheel(w) => Some(w.clone()),
        _ => None,
    });
    let w = w.unwrap();
    assert!(
        (w.pointer.x - 300.0).abs() <= tol && (w.pointer.y - 25.0).abs() <= tol,
        "wheel at {:?}",
        w.pointer
    );
    assert!(
        (w.dy - 120.0).abs() < 1.0 && w.dx == 0.0,
        "scrolling down 120 px gives dy 120: {w:?}"
    );

    // A wheel in lines (a mouse wheel's DOM_DELTA_LINE) is converted at 16 px a line.
    let (wx, wy) = b.page_pos(40.0, 80.0).await;
    b.js(&format!(
        "window.framehubView.canvas.dispatchEvent(new WheelEvent('wheel', {{
           clientX: {wx}, clientY: {wy}, deltaX: 0, deltaY: -3, deltaMode: WheelEvent.DOM_DELTA_LINE,
           bubbles: true, cancelable: true }})); return true;"
    ))
    .await;
    let evs = events_until(&stream, |e| {
        e.iter().any(|e| e.event.event_type() == "wheel")
    })
    .await;
    let w = evs.iter().find_map(|e| match &e.event {
        InputEvent::Wheel(w) => Some(w.clone()),
        _ => None,
    });
    let w = w.unwrap();
    assert!(
        (w.pointer.x - 40.0).abs() <= tol && (w.pointer.y - 80.0).abs() <= tol,
        "line wheel at {:?}",
        w.pointer
    );
    assert_eq!((w.dx, w.dy), (0.0, -48.0), "3 lines up: {w:?}");

    // A key press goes to the focused view (the click above focused it).
    let keys = KeyActions::new("kb".into())
        .then(KeyAction::Down { value: 'r' })
        .then(KeyAction::Up { value: 'r' });
    b.client.perform_actions(keys).await.unwrap();
    let evs = events_until(&stream, |e| {
        e.iter().any(|e| e.event.event_type() == "key_up")
    })
    .await;
    let key = evs.iter().find_map(|e| match &e.event {
        InputEvent::KeyDown(k) => Some(k.clone()),
        _ => None,
    });
    let key = key.expect("a key_down");
    assert_eq!((key.key.as_str(), key.code.as_str()), ("r", "KeyR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_resize_arrives_as_a_resize_event() {
    let (_server, stream, base) = hub("rs", 200, 100).await;
    stream
        .publish(Frame::rgba(200, 100, pattern(200, 100, 0)))
        .unwrap();
    let b = Browser::start(800, 600).await;
    b.client.goto(&format!("{base}/rs")).await.unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.framesDrawn >= 1",
        WAIT,
        "first frame",
    )
    .await;
    let first = events_until(&stream, |e| {
        e.iter().any(|e| e.event.event_type() == "resize")
    })
    .await;
    let before = first.iter().rev().find_map(|e| match &e.event {
        InputEvent::Resize(r) => Some(r.clone()),
        _ => None,
    });
    let before = before.unwrap();
    b.client.set_window_size(640, 480).await.unwrap();
    let inner: Vec<f64> =
        serde_json::from_value(b.js("return [innerWidth, innerHeight]").await).unwrap();
    let evs = events_until(&stream, |e| {
        e.iter().any(|e| matches!(&e.event, InputEvent::Resize(r) if (r.width - inner[0]).abs() < 2.0 && r.width != before.width))
    })
    .await;
    let after = evs.iter().rev().find_map(|e| match &e.event {
        InputEvent::Resize(r) => Some(r.clone()),
        _ => None,
    });
    let after = after.unwrap();
    assert!(after.width < before.width, "{before:?} -> {after:?}");
    assert_eq!(after.pwidth as f64, (after.width * after.ratio).round());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_after_the_server_drops_it() {
    let (server, stream, base) = hub("rc", 64, 64).await;
    stream
        .publish(Frame::rgba(64, 64, pattern(64, 64, 0)))
        .unwrap();
    let b = Browser::start(600, 400).await;
    b.client.goto(&format!("{base}/rc")).await.unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.framesDrawn >= 1",
        WAIT,
        "first frame",
    )
    .await;
    // Drop every viewer of the stream (close 1001), then bring the stream back.
    assert!(server.remove_stream("rc"));
    let stream = server
        .add_stream("rc", 64, 64, StreamConfig::default())
        .unwrap();
    stream
        .publish(Frame::rgba(64, 64, pattern(64, 64, 2)))
        .unwrap();
    b.wait_for(
        "window.framehubStats.reconnects >= 1 && window.framehubStats.state === 'open'",
        WAIT,
        "reconnect",
    )
    .await;
    let want = QUADRANTS[2];
    b.wait_for(
        &format!(
            "(() => {{ const v = window.framehubView, m = v.mapping();
               const d = v.canvas.getContext('2d').getImageData(Math.floor(m.offsetX + 16*m.scale), Math.floor(m.offsetY + 16*m.scale), 1, 1).data;
               return Math.abs(d[0]-{})<12 && Math.abs(d[1]-{})<12 && Math.abs(d[2]-{})<12; }})()",
            want[0], want[1], want[2]
        ),
        WAIT,
        "the new picture after reconnecting",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_after_the_hub_restarts() {
    let (server, stream, base) = hub("rh", 64, 64).await;
    let addr = server.local_addr().unwrap();
    stream
        .publish(Frame::rgba(64, 64, pattern(64, 64, 0)))
        .unwrap();
    let b = Browser::start(600, 400).await;
    b.client.goto(&format!("{base}/rh")).await.unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.framesDrawn >= 1",
        WAIT,
        "first frame",
    )
    .await;
    // The hub goes away; its port refuses connections for a while (the client
    // retries with backoff), then a new hub comes up on the same port.
    server.close().await;
    drop(stream);
    drop(server);
    b.wait_for(
        "window.framehubStats.state !== 'open'",
        WAIT,
        "the client to see the hub gone",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut again = None;
    for _ in 0..50 {
        match Server::bind(addr).await {
            Ok(s) => {
                again = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let server = again.expect("the port is free again");
    let stream = server
        .add_stream("rh", 64, 64, StreamConfig::default())
        .unwrap();
    stream
        .publish(Frame::rgba(64, 64, pattern(64, 64, 3)))
        .unwrap();
    b.wait_for(
        "window.framehubStats.reconnects >= 1 && window.framehubStats.state === 'open'",
        WAIT,
        "reconnect to the new hub",
    )
    .await;
    let want = QUADRANTS[3];
    b.wait_for(
        &format!(
            "(() => {{ const v = window.framehubView, m = v.mapping();
               const d = v.canvas.getContext('2d').getImageData(Math.floor(m.offsetX + 16*m.scale), Math.floor(m.offsetY + 16*m.scale), 1, 1).data;
               return Math.abs(d[0]-{})<12 && Math.abs(d[1]-{})<12 && Math.abs(d[2]-{})<12; }})()",
            want[0], want[1], want[2]
        ),
        WAIT,
        "the new hub's picture after reconnecting",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_stream_shows_an_error_and_does_not_retry() {
    let (_server, _stream, base) = hub("exists", 8, 8).await;
    let b = Browser::start(600, 400).await;
    b.client.goto(&format!("{base}/missing")).await.unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.closeCode === 4404",
        WAIT,
        "close 4404",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = b.js("return window.framehubStats").await;
    assert_eq!(stats["reconnects"], 0, "{stats}");
    assert_eq!(stats["state"], "error", "{stats}");
    let text = b.js("return document.body.innerText").await;
    assert!(
        text.as_str()
            .unwrap()
            .to_lowercase()
            .contains("unknown stream"),
        "{text}"
    );
    b.screenshot("viewer-4404").await;
}

/// JS: whether view `v`'s canvas shows `rgb` at framebuffer pixel (16, 16).
fn shows(v: &str, rgb: [u8; 3]) -> String {
    format!(
        "(() => {{ const v = {v}, m = v.mapping();
           const d = v.canvas.getContext('2d').getImageData(Math.floor(m.offsetX + 16*m.scale), Math.floor(m.offsetY + 16*m.scale), 1, 1).data;
           return Math.abs(d[0]-{})<12 && Math.abs(d[1]-{})<12 && Math.abs(d[2]-{})<12; }})()",
        rgb[0], rgb[1], rgb[2]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_given_two_hubs_continues_from_the_other_when_its_hub_dies() {
    // Two hubs serving a stream of the same name (as edges over NATS do),
    // with different pictures so the page shows which one it is on.
    let (hub_a, stream_a, base_a) = hub("twin", 64, 64).await;
    let (_hub_b, stream_b, base_b) = hub("twin", 64, 64).await;
    stream_a
        .publish(Frame::rgba(64, 64, pattern(64, 64, 0)))
        .unwrap();
    stream_b
        .publish(Frame::rgba(64, 64, pattern(64, 64, 2)))
        .unwrap();
    let b = Browser::start(600, 400).await;
    b.client.goto(&format!("{base_a}/twin")).await.unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.framesDrawn >= 1",
        WAIT,
        "the page's own view",
    )
    .await;
    // A view of the stream on both hubs, hub A first.
    let (ws_a, ws_b) = (
        base_a.replace("http://", "ws://") + "/twin",
        base_b.replace("http://", "ws://") + "/twin",
    );
    b.js(&format!(
        "window.framehubView.dispose();
         const box = document.createElement('div');
         Object.assign(box.style, {{ position: 'fixed', left: '0', top: '0', width: '400px', height: '300px' }});
         document.body.appendChild(box);
         return import('/_/framehub.js').then((m) => {{
           window.twin = new m.RemoteFramebufferView(box, {{ urls: ['{ws_a}', '{ws_b}'] }});
           window.twinUrls = [];
           window.twin.addEventListener('state', (e) => {{ if (e.detail.state === 'connecting') window.twinUrls.push(e.detail.url); }});
           return true;
         }});"
    ))
    .await;
    b.wait_for(&shows("window.twin", QUADRANTS[0]), WAIT, "hub A's picture")
        .await;
    let stats = b.js("return window.twin.getStats()").await;
    assert_eq!(stats["url"], ws_a.as_str(), "{stats}");
    // Hub A dies: the view reconnects to hub B and shows its picture.
    hub_a.close().await;
    drop(stream_a);
    drop(hub_a);
    b.wait_for(&shows("window.twin", QUADRANTS[2]), WAIT, "hub B's picture")
        .await;
    let stats = b.js("return window.twin.getStats()").await;
    assert_eq!(stats["url"], ws_b.as_str(), "{stats}");
    assert_eq!(stats["state"], "open", "{stats}");
    assert_eq!(stats["reconnects"], 1, "{stats}");
    let urls = b.js("return window.twinUrls").await;
    assert_eq!(
        urls[urls.as_array().unwrap().len() - 1],
        ws_b.as_str(),
        "{urls}"
    );
    b.screenshot("viewer-second-hub").await;
}
