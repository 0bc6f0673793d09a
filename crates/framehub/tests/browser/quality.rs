//! Video through WebCodecs, its fallback, and pixel-exact stills (in Chromium, and
//! in Firefox with `FRAMEHUB_BROWSER=firefox`).

use std::time::{Duration, Instant};

use framehub::{Frame, Server, StreamConfig};

use crate::harness::{close, Browser};
use crate::picture::{pattern, QUADRANTS};

const WAIT: Duration = Duration::from_secs(20);

/// Publishes the quadrant picture at 30 fps, alternating two nearly equal
/// versions so every frame is new, until `stop`.
fn publish_loop(
    stream: framehub::Stream,
    w: u32,
    h: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    std::thread::spawn(move || {
        let mut a = pattern(w, h, 0);
        let b = a.clone();
        a[0] ^= 1;
        let mut i = 0u32;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let pic = if i.is_multiple_of(2) { &a } else { &b };
            if stream.publish(Frame::rgba(w, h, &pic[..])).is_err() {
                return;
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(33));
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webcodecs_decodes_the_h264_stream_and_shows_the_picture() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream(
            "vid",
            320,
            240,
            StreamConfig::default().h264(true).still_after(None),
        )
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    publish_loop(stream.clone(), 320, 240, stop.clone());
    let b = Browser::start(800, 600).await;
    b.client.goto(&format!("http://{addr}/vid")).await.unwrap();
    b.wait_for("window.framehubView && window.framehubView.getStats().transport === 'webcodecs' && window.framehubStats.framesDrawn >= 10", WAIT, "video frames drawn").await;
    b.screenshot("video").await;
    let centres = [(80.0, 60.0), (240.0, 60.0), (80.0, 180.0), (240.0, 180.0)];
    for (i, (x, y)) in centres.iter().enumerate() {
        let px = b.frame_pixel(*x, *y).await;
        assert!(
            close(px, QUADRANTS[i], 24),
            "video quadrant {i} shows {px:?}, published {:?}",
            QUADRANTS[i]
        );
    }
    let m = stream.metrics();
    assert!(
        m.iter()
            .any(|v| v.keyframes_sent >= 1 && v.frames_acked >= 10),
        "{m:?}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Frame `i` of a moving picture: black with a white vertical bar `BAR` pixels
/// wide whose left edge is at `bar_left(i, w)`.
fn moving_bar(w: u32, h: u32, i: u32) -> Vec<u8> {
    let left = bar_left(i, w);
    let mut pic = vec![0u8; (w * h * 4) as usize];
    for (n, px) in pic.chunks_exact_mut(4).enumerate() {
        let x = n as u32 % w;
        let v = if (left..left + BAR).contains(&x) {
            255
        } else {
            0
        };
        px.copy_from_slice(&[v, v, v, 255]);
    }
    pic
}

/// Width of the bar in [`moving_bar`], framebuffer pixels.
const BAR: u32 = 16;

/// Left edge of the bar in frame `i`: 8 pixels further each frame, wrapping
/// (always a multiple of 8 for the test's 320-pixel width).
fn bar_left(i: u32, w: u32) -> u32 {
    (i * 8) % (w - BAR)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_h264_video_moves() {
    let (w, h) = (320u32, 240u32);
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream(
            "moving",
            w,
            h,
            StreamConfig::default().h264(true).still_after(None),
        )
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (stream, stop) = (stream.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if stream
                    .publish(Frame::rgba(w, h, moving_bar(w, h, i)))
                    .is_err()
                {
                    return;
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(33));
            }
        });
    }
    let b = Browser::start(800, 600).await;
    b.client
        .goto(&format!("http://{addr}/moving"))
        .await
        .unwrap();
    b.wait_for("window.framehubView && window.framehubView.getStats().transport === 'webcodecs' && window.framehubStats.framesDrawn >= 5", WAIT, "video frames drawn").await;
    // The bar's left edge on the middle row, in framebuffer pixels, read back
    // from the canvas: its run of bright pixels must be about BAR wide and
    // start where some published frame put it.
    let read = format!(
        "const v = window.framehubView, m = v.mapping(), ctx = v.canvas.getContext('2d');
         const py = Math.floor(m.offsetY + {y} * m.scale);
         const px = (x) => Math.floor(m.offsetX + (x + 0.5) * m.scale);
         const row = ctx.getImageData(0, py, v.canvas.width, 1).data;
         const bright = [];
         for (let x = 0; x < {w}; x++) {{ const i = px(x) * 4; bright.push(row[i] > 128 && row[i+1] > 128 && row[i+2] > 128); }}
         const left = bright.indexOf(true), right = bright.lastIndexOf(true);
         return [left, right - left + 1, window.framehubStats.framesDrawn];",
        y = h / 2
    );
    let mut lefts = std::collections::BTreeSet::new();
    let f0 = b
        .js("return window.framehubStats.framesDrawn")
        .await
        .as_i64()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let f1 = b
        .js("return window.framehubStats.framesDrawn")
        .await
        .as_i64()
        .unwrap();
    // Published at 30 fps: both browsers draw ~28 a second here; 10 in 3 s
    // leaves room for a loaded machine. (Reading the canvas back, below, slows
    // drawing down, so the rate is measured first.)
    assert!(f1 - f0 >= 10, "only {} frames drawn in 3 s", f1 - f0);
    let deadline = Instant::now() + WAIT;
    while lefts.len() < 4 && Instant::now() < deadline {
        let v: Vec<i64> = serde_json::from_value(b.js(&read).await).unwrap();
        let (left, width) = (v[0], v[1]);
        assert!(left >= 0, "no bar on the canvas: {v:?}");
        assert!(
            (width - BAR as i64).abs() <= 3,
            "the bar is {width} px wide, published {BAR}: {v:?}"
        );
        assert!(
            (0..w).any(|i| (bar_left(i, w) as i64 - left).abs() <= 2),
            "the bar's left edge {left} is where no frame put it"
        );
        lefts.insert(left);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    b.screenshot("video-moving").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        lefts.len() >= 4,
        "the bar did not move on the canvas: positions {lefts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_webcodecs_gets_jpeg_from_the_same_stream() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("vid", 320, 240, StreamConfig::default().h264(true))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    publish_loop(stream.clone(), 320, 240, stop.clone());
    let b = Browser::start(800, 600).await;
    // `?image=1` makes the client leave WebCodecs out of its hello, as a browser without it does.
    b.client
        .goto(&format!("http://{addr}/vid?image=1"))
        .await
        .unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.framesDrawn >= 3",
        WAIT,
        "image frames",
    )
    .await;
    let t = b
        .js("return window.framehubView.getStats().transport")
        .await;
    assert_eq!(t, "image");
    let px = b.frame_pixel(80.0, 60.0).await;
    assert!(close(px, QUADRANTS[0], 16), "{px:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_still_makes_the_canvas_pixel_exact() {
    let (_server, stream, b, (w, h)) = open_viewer("exact", StreamConfig::default()).await;
    let pic = busy_picture(w, h);
    let t0 = Instant::now();
    stream.publish(Frame::rgba(w, h, pic)).unwrap();
    b.wait_for("window.framehubStats.framesDrawn >= 1", WAIT, "the JPEG")
        .await;
    let lossy = mismatches(&b, w, h).await;
    assert!(
        lossy > 0,
        "the first (JPEG) frame is lossy on this busy picture"
    );
    b.wait_for(
        "window.framehubView.getStats().stillsDrawn >= 1",
        WAIT,
        "the still",
    )
    .await;
    let exact = mismatches(&b, w, h).await;
    assert_eq!(
        exact, 0,
        "after the still every canvas pixel equals the published one"
    );
    let took = t0.elapsed();
    assert_eq!(stream.still_count(), 1);
    eprintln!("pixel-exact {took:?} after publishing ({w}x{h})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_still_makes_a_video_session_pixel_exact_too() {
    let (_server, stream, b, (w, h)) =
        open_viewer("vexact", StreamConfig::default().h264(true)).await;
    // (Video crops odd sides to even; the still is the whole picture, drawn 1:1.)
    let pic = busy_picture(w, h);
    stream.publish(Frame::rgba(w, h, pic)).unwrap();
    b.wait_for("window.framehubView.getStats().transport === 'webcodecs' && window.framehubStats.framesDrawn >= 1", WAIT, "the video frame").await;
    // The hub sends the PNG still and a sharper video keyframe of the same
    // resting picture, in either order; the keyframe may finish decoding
    // first. Wait for all three messages to be decoded and settled: the
    // keyframe is drawn before the still or not painted over it.
    b.wait_for(
        "(s => s.stillsDrawn >= 1 && s.framesReceived >= 3 && s.decodeQueueSize === 0)(window.framehubView.getStats())",
        WAIT,
        "the still and the sharper keyframe",
    )
    .await;
    assert_eq!(
        mismatches(&b, w, h).await,
        0,
        "after the still every canvas pixel equals the published one"
    );
    assert_eq!(stream.still_count(), 1);
    assert_eq!(stream.video_still_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_patches_keep_the_canvas_pixel_exact() {
    let cfg = StreamConfig::default()
        .still_after(None)
        .preferred_image(framehub::ImageFormat::Png);
    let (_server, stream, b, (w, h)) = open_viewer("ppatch", cfg).await;
    // First the busy picture with a 10×10 hole, then the whole busy picture:
    // the second frame differs in one tile and comes as a patch.
    let full = busy_picture(w, h);
    let mut holed = full.clone();
    for y in 50..60 {
        for x in 70..80 {
            let i = ((y * w + x) * 4) as usize;
            holed[i..i + 3].copy_from_slice(&[1, 2, 3]);
        }
    }
    stream.publish(Frame::rgba(w, h, holed)).unwrap();
    b.wait_for(
        "window.framehubStats.framesDrawn >= 1",
        WAIT,
        "the first frame",
    )
    .await;
    assert_eq!(
        mismatches(&b, w, h).await,
        100,
        "the hole, and only the hole"
    );
    stream.publish(Frame::rgba(w, h, full)).unwrap();
    b.wait_for("window.framehubStats.framesDrawn >= 2", WAIT, "the patch")
        .await;
    assert_eq!(mismatches(&b, w, h).await, 0, "patched: every pixel exact");
    let sent: u64 = stream.metrics().iter().map(|m| m.patches_sent).sum();
    assert_eq!(sent, 1, "the second frame went as a patch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jpeg_patches_draw_the_change_within_jpeg_tolerance() {
    let (_server, stream, b, (w, h)) =
        open_viewer("jpatch", StreamConfig::default().still_after(None)).await;
    let solid = |rgb: [u8; 3]| -> Vec<u8> {
        (0..w * h)
            .flat_map(|_| [rgb[0], rgb[1], rgb[2], 255])
            .collect()
    };
    let red = solid([200, 30, 30]);
    let mut marked = red.clone();
    for y in 100..140 {
        for x in 200..240 {
            let i = ((y * w + x) * 4) as usize;
            marked[i..i + 3].copy_from_slice(&[20, 200, 40]);
        }
    }
    stream.publish(Frame::rgba(w, h, red)).unwrap();
    b.wait_for(
        "window.framehubStats.framesDrawn >= 1",
        WAIT,
        "the first frame",
    )
    .await;
    stream.publish(Frame::rgba(w, h, marked)).unwrap();
    b.wait_for("window.framehubStats.framesDrawn >= 2", WAIT, "the patch")
        .await;
    let sent: u64 = stream.metrics().iter().map(|m| m.patches_sent).sum();
    assert_eq!(sent, 1, "the second frame went as a patch");
    let inside = b.frame_pixel(220.0, 120.0).await;
    assert!(close(inside, [20, 200, 40], 16), "{inside:?}");
    let outside = b.frame_pixel(20.0, 20.0).await;
    assert!(close(outside, [200, 30, 30], 16), "{outside:?}");
    let near = b.frame_pixel(190.0, 120.0).await;
    assert!(
        close(near, [200, 30, 30], 16),
        "beside the change: {near:?}"
    );
}

/// A hub with one stream `name`, a browser on its viewer page, and the size
/// of the page's canvas (a picture of that size is drawn 1:1).
async fn open_viewer(
    name: &str,
    cfg: StreamConfig,
) -> (Server, framehub::Stream, Browser, (u32, u32)) {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server.add_stream(name, 64, 64, cfg).unwrap();
    let b = Browser::start(640, 480).await;
    b.client
        .goto(&format!("http://{addr}/{name}"))
        .await
        .unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.state === 'open'",
        WAIT,
        "open",
    )
    .await;
    let size: Vec<u32> = serde_json::from_value(
        b.js("const c = window.framehubView.canvas; return [c.width, c.height]")
            .await,
    )
    .unwrap();
    (server, stream, b, (size[0], size[1]))
}

/// A busy RGBA picture JPEG cannot reproduce exactly (the formula [`mismatches`] checks).
fn busy_picture(w: u32, h: u32) -> Vec<u8> {
    let mut pic = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            pic.extend_from_slice(&[
                ((x * 7 + y * 13) & 255) as u8,
                ((x * 3 + y * 5 + 77) & 255) as u8,
                ((x ^ y) & 255) as u8,
                255,
            ]);
        }
    }
    pic
}

/// Canvas pixels that differ from the busy test picture (-1 when not drawn 1:1).
async fn mismatches(b: &Browser, w: u32, h: u32) -> i64 {
    let js = format!(
        "const v = window.framehubView, c = v.canvas, m = v.mapping();
         if (m.scale !== 1 || m.offsetX !== 0 || m.offsetY !== 0) return -1;
         const d = c.getContext('2d').getImageData(0, 0, {w}, {h}).data; let bad = 0;
         for (let y = 0; y < {h}; y++) for (let x = 0; x < {w}; x++) {{
           const i = (y * {w} + x) * 4;
           if (d[i] !== ((x*7 + y*13) & 255) || d[i+1] !== ((x*3 + y*5 + 77) & 255) || d[i+2] !== ((x ^ y) & 255)) bad++;
         }}
         return bad;"
    );
    b.js(&js).await.as_i64().unwrap()
}
