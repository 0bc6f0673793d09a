//! Issue 15: a browser tab publishes into the hub (`web/publish.js`, the
//! page `/_/publish`); viewers see its canvas and drive it.

use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use framehub::Server;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{close, Browser};

const WAIT: Duration = Duration::from_secs(20);

/// A protocol viewer of `url`: its config and the first JPEG frame, decoded.
async fn view_one_frame(
    url: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Value,
    turbojpeg::Image<Vec<u8>>,
) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(
        json!({"type":"hello","supported":["image/jpeg"]})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut config = Value::Null;
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message")
            .unwrap()
            .unwrap();
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "config" {
                    config = v;
                }
            }
            Message::Binary(b) => {
                let (h, payload) = framehub::proto::envelope::parse(&b).unwrap();
                ws.send(Message::Text(
                    json!({"type":"ack","seq":h.seq()}).to_string().into(),
                ))
                .await
                .unwrap();
                let img = turbojpeg::decompress(payload, turbojpeg::PixelFormat::RGBA).unwrap();
                return (ws, config, img);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn pixel(img: &turbojpeg::Image<Vec<u8>>, x: usize, y: usize) -> [u8; 4] {
    let i = y * img.pitch + x * 4;
    [
        img.pixels[i],
        img.pixels[i + 1],
        img.pixels[i + 2],
        img.pixels[i + 3],
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_publishes_a_canvas_that_viewers_see_and_drive() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let b = Browser::start(1000, 800).await;
    b.client
        .goto(&format!("http://{addr}/_/publish?name=tab&start=1"))
        .await
        .unwrap();
    b.wait_for(
        "window.framehubPublish.pub && window.framehubPublish.pub.stats().state === 'online'",
        WAIT,
        "the tab claimed its stream",
    )
    .await;
    assert_eq!(server.stream_names(), vec!["tab".to_string()]);

    // A viewer sees the canvas: 640×360, its background #102030 in the top band.
    let (mut ws, config, img) = view_one_frame(&format!("ws://{addr}/tab")).await;
    assert_eq!((img.width, img.height), (640, 360), "{config}");
    let bg = pixel(&img, 5, 10);
    assert!(close(bg, [0x10, 0x20, 0x30], 12), "background {bg:?}");

    // Its click arrives in the publishing page as a DOM pointerdown there.
    ws.send(Message::Text(
        json!({"type":"event","event":{"event_type":"pointer_down","x":320,"y":180,"button":1,"buttons":[1]}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    b.wait_for(
        "window.framehubPublish.clicks.length >= 1",
        WAIT,
        "the click as a DOM event",
    )
    .await;
    let click = b.js("return window.framehubPublish.clicks[0]").await;
    let (x, y) = (click["x"].as_f64().unwrap(), click["y"].as_f64().unwrap());
    assert!(
        (x - 320.0).abs() < 1.5 && (y - 180.0).abs() < 1.5,
        "{click}"
    );
    assert_eq!(click["button"], 0, "left button");

    // A viewer page in a second window of the browser draws it, and a real
    // click there reaches the publishing page too.
    let publisher = b.client.window().await.unwrap();
    let viewer = b.client.new_window(true).await.unwrap();
    b.client.switch_to_window(viewer.handle).await.unwrap();
    b.client.goto(&format!("http://{addr}/tab")).await.unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.framesDrawn >= 3",
        WAIT,
        "the viewer page drew the tab's frames",
    )
    .await;
    let px = b.frame_pixel(5.0, 10.0).await;
    assert!(
        close(px, [0x10, 0x20, 0x30], 16),
        "viewer page pixel {px:?}"
    );
    b.screenshot("publish-viewer").await;
    let (cx, cy) = b.page_pos(100.0, 300.0).await;
    let actions = MouseActions::new("mouse".into())
        .then(PointerAction::MoveTo {
            duration: None,
            x: cx.round(),
            y: cy.round(),
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    b.client.perform_actions(actions).await.unwrap();
    b.client.switch_to_window(publisher).await.unwrap();
    b.wait_for(
        "window.framehubPublish.clicks.length >= 2",
        WAIT,
        "the viewer page's click in the publishing page",
    )
    .await;
    let click = b.js("return window.framehubPublish.clicks[1]").await;
    let (x, y) = (click["x"].as_f64().unwrap(), click["y"].as_f64().unwrap());
    assert!(
        (x - 100.0).abs() < 3.0 && (y - 300.0).abs() < 3.0,
        "{click}"
    );
    b.screenshot("publish-page").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_camera_page_reaches_a_viewer() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let b = Browser::start_with(
        800,
        700,
        &[
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
        ],
    )
    .await;
    b.client
        .goto(&format!(
            "http://{addr}/_/publish?name=cam&source=camera&start=1"
        ))
        .await
        .unwrap();
    b.wait_for(
        "window.framehubPublish.pub && window.framehubPublish.pub.stats().state === 'online'",
        WAIT,
        "the camera stream claimed",
    )
    .await;
    let (_ws, _config, img) = view_one_frame(&format!("ws://{addr}/cam")).await;
    // The page asks for 640×480; each browser's fake camera decides.
    assert!(
        img.width >= 160 && img.height >= 120,
        "{}x{}",
        img.width,
        img.height
    );
    // The fake cameras paint a pattern, not a flat picture.
    let (a, z) = (
        pixel(&img, 0, 0),
        pixel(&img, img.width / 2, img.height / 2),
    );
    assert_ne!(a, z, "a camera picture, not a blank one");
}
