//! A recording (`Stream::record`) plays in the browser's `<video>`: its
//! duration is the time recorded, its size the stream's, and a frame
//! decodes to the picture published.

use std::time::{Duration, Instant};

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use framehub::{Frame, RecordOptions, Server, StreamConfig};
use serde_json::Value;

use crate::harness::Browser;

/// Left half red, right half blue, with a grey bar that moves with `i`.
fn red_blue(w: u32, h: u32, i: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let c = if y < 16 && (x + 8 * i) % w < 16 {
                [128, 128, 128]
            } else if x < w / 2 {
                [255, 0, 0]
            } else {
                [0, 0, 255]
            };
            v.extend_from_slice(&[c[0], c[1], c[2], 255]);
        }
    }
    v
}

const PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>recording</title>
<video id="v" src="/rec.mp4" muted playsinline preload="auto"></video>
<script>
window.result = null;
const v = document.getElementById('v');
v.addEventListener('error', () => {
  window.result = { error: (v.error && (v.error.code + ' ' + v.error.message)) || 'error' };
});
v.addEventListener('loadeddata', () => { v.currentTime = 1.0; }, { once: true });
v.addEventListener('seeked', () => {
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const px = (x, y) => Array.from(g.getImageData(x, y, 1, 1).data);
  window.result = {
    duration: v.duration, width: v.videoWidth, height: v.videoHeight,
    left: px(40, 120), right: px(280, 120),
  };
}, { once: true });
</script>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_plays_in_the_video_element() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let (w, h) = (320, 240);
    let stream = server
        .add_stream("rec", w, h, StreamConfig::default())
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-record.mp4");
    // 1 s at 30 fps, a 1 s pause, 0.5 s more.
    let stats = {
        let stream = stream.clone();
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let rec = stream.record(&path, RecordOptions::default()).unwrap();
            let start = Instant::now();
            let mut i = 0;
            for (from, to) in [(0.0, 1.0), (2.0, 2.5)] {
                while start.elapsed().as_secs_f64() < from {
                    std::thread::sleep(Duration::from_millis(5));
                }
                while start.elapsed().as_secs_f64() < to {
                    stream
                        .publish(Frame::rgba(w, h, red_blue(w, h, i)))
                        .unwrap();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(33));
                }
            }
            rec.stop().unwrap()
        })
        .await
        .unwrap()
    };
    let recorded = stats.duration.as_secs_f64();
    assert!((2.3..2.8).contains(&recorded), "{stats:?}");

    // The file, served as a web server would.
    let bytes = std::fs::read(&path).unwrap();
    let app = axum::Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/rec.mp4",
            get(move || async move { ([("content-type", "video/mp4")], bytes).into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let b = Browser::start(640, 480).await;
    b.client.goto(&format!("http://{addr}/")).await.unwrap();
    let r: Value = b
        .wait_for(
            "window.result",
            Duration::from_secs(20),
            "the video's first frame",
        )
        .await;
    assert!(r.get("error").is_none(), "the video failed: {r}");
    let duration = r["duration"].as_f64().unwrap();
    assert!(
        (duration - recorded).abs() <= 0.05 * recorded,
        "video.duration {duration} vs {recorded} recorded"
    );
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(320), Some(240))
    );
    let px = |k: &str| -> [u8; 4] {
        let a: Vec<u8> = serde_json::from_value(r[k].clone()).unwrap();
        [a[0], a[1], a[2], a[3]]
    };
    assert!(
        crate::harness::close(px("left"), [255, 0, 0], 40),
        "left {:?}",
        px("left")
    );
    assert!(
        crate::harness::close(px("right"), [0, 0, 255], 40),
        "right {:?}",
        px("right")
    );
    drop(server);
}
