//! The H.264 path over real sockets: keyframes first, shared encoder, recovery.

use std::time::{Duration, Instant};

use framehub::proto::FrameHeader;
use framehub::{Frame, ImageFormat, OutputFormat, Server, Stream, StreamConfig};

use crate::common::*;

const VIDEO: &[&str] = &["webcodecs/h264-annexb", "image/jpeg"];

fn chunk(h: &FrameHeader) -> (bool, String) {
    match h {
        FrameHeader::VideoChunk {
            keyframe,
            codec,
            bitstream,
            ..
        } => {
            assert_eq!(bitstream, "annexb");
            (*keyframe, codec.clone())
        }
        other => panic!("expected a video chunk, got {other:?}"),
    }
}

/// A moving picture: a gradient with a bar at a position that depends on `i`.
pub(crate) fn moving(w: u32, h: u32, i: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let bar = (x + 4 * i) % w < 8;
            let c = if bar {
                [250, 250, 250]
            } else {
                [(x * 255 / w) as u8, (y * 255 / h) as u8, 90]
            };
            v.extend_from_slice(&[c[0], c[1], c[2], 255]);
        }
    }
    v
}

pub(crate) fn spawn_publisher(
    stream: Stream,
    w: u32,
    h: u32,
    fps: u32,
    dur: Duration,
) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut i = 0;
        while start.elapsed() < dur {
            stream.publish(Frame::rgba(w, h, moving(w, h, i))).unwrap();
            i += 1;
            std::thread::sleep(Duration::from_secs_f64(1.0 / f64::from(fps)));
        }
        i
    })
}

fn h264_stream(server: &Server, name: &str, w: u32, h: u32) -> Stream {
    server
        .add_stream(name, w, h, StreamConfig::default().h264(true))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_viewer_gets_a_keyframe_first_then_deltas() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = h264_stream(&server, "v", 320, 240);
    let mut c = Client::open(addr, "/v", VIDEO).await;
    let cfg = c.config.clone().unwrap();
    assert_eq!(cfg["transport"], "webcodecs");
    let codec = cfg["codec"].as_str().unwrap().to_string();
    assert!(codec.starts_with("avc1.42"), "{codec}");
    let publisher = spawn_publisher(stream.clone(), 320, 240, 30, Duration::from_millis(1200));
    let mut kinds = Vec::new();
    for _ in 0..12 {
        let (h, payload) = c.recv_frame().await;
        let (key, chunk_codec) = chunk(&h);
        assert_eq!(chunk_codec, codec, "config and chunks name the same codec");
        assert_eq!(&payload[..4], &[0, 0, 0, 1], "Annex B start code");
        c.ack(h.seq()).await;
        kinds.push(key);
    }
    publisher.join().unwrap();
    assert!(kinds[0], "the first chunk is a keyframe: {kinds:?}");
    assert!(
        kinds[1..].iter().filter(|k| !**k).count() >= 9,
        "then deltas: {kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_viewer_joins_at_a_keyframe_and_the_encoder_is_shared() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = h264_stream(&server, "v", 160, 120);
    let mut a = Client::open(addr, "/v", VIDEO).await;
    let publisher = spawn_publisher(stream.clone(), 160, 120, 30, Duration::from_millis(2000));
    for _ in 0..10 {
        let (h, _) = a.recv_frame().await;
        a.ack(h.seq()).await;
    }
    let mut b = Client::open(addr, "/v", VIDEO).await;
    let (h, _) = b.recv_frame().await;
    assert!(chunk(&h).0, "a joining viewer starts at a keyframe");
    let encodes_before = stream.encode_count(OutputFormat::H264);
    let mut got_a = 0u32;
    let mut got_b = 0u32;
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        if let Some(Received::Frame(h, _)) = a.recv_within(Duration::from_millis(50)).await {
            a.ack(h.seq()).await;
            got_a += 1;
        }
        if let Some(Received::Frame(h, _)) = b.recv_within(Duration::from_millis(50)).await {
            b.ack(h.seq()).await;
            got_b += 1;
        }
    }
    let encoded = stream.encode_count(OutputFormat::H264) - encodes_before;
    publisher.join().unwrap();
    // One shared encoder: units encoded ~ units one viewer receives, not the sum.
    assert!(
        encoded <= u64::from(got_a.max(got_b)) + 4,
        "encoded {encoded}, a got {got_a}, b got {got_b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_video_viewer_recovers_at_a_keyframe_while_a_fast_one_keeps_its_deltas() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = h264_stream(&server, "v", 160, 120);
    let mut fast = Client::open(addr, "/v", VIDEO).await;
    let mut slow = Client::open(addr, "/v", VIDEO).await;
    let publisher = spawn_publisher(stream.clone(), 160, 120, 30, Duration::from_millis(3000));
    // The fast viewer acks everything, so the shared encoder keeps going.
    let fast_task = tokio::spawn(async move {
        let mut keys = 0u32;
        let mut n = 0u32;
        while let Some(Received::Frame(h, _)) = fast.recv_within(Duration::from_millis(500)).await {
            fast.ack(h.seq()).await;
            n += 1;
            keys += u32::from(chunk(&h).0);
        }
        (n, keys)
    });
    // The slow viewer takes its credit's worth, then stalls: it misses units.
    let (h0, _) = slow.recv_frame().await;
    let (h1, _) = slow.recv_frame().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    slow.ack(h0.seq()).await;
    slow.ack(h1.seq()).await;
    let (h, _) = slow.recv_frame().await;
    assert!(
        chunk(&h).0,
        "after missing units the next one it gets is a keyframe"
    );
    slow.ack(h.seq()).await;
    let (h, _) = slow.recv_frame().await;
    assert!(!chunk(&h).0, "and deltas follow");
    publisher.join().unwrap();
    let (n, keys) = fast_task.await.unwrap();
    assert!(n >= 60, "the fast viewer kept its rate: {n} units");
    assert!(
        keys <= 5,
        "one stalled viewer does not make every unit a keyframe: {keys} of {n}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_and_video_viewers_share_one_stream() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = h264_stream(&server, "v", 160, 120);
    let mut v = Client::open(addr, "/v", VIDEO).await;
    let mut i = Client::open(addr, "/v", &["image/jpeg"]).await;
    assert_eq!(i.config.as_ref().unwrap()["transport"], "image");
    let publisher = spawn_publisher(stream.clone(), 160, 120, 30, Duration::from_millis(800));
    let (hv, _) = v.recv_frame().await;
    let (hi, _) = i.recv_frame().await;
    assert!(chunk(&hv).0);
    assert!(matches!(hi, FrameHeader::ImageFrame { ref mime, .. } if mime == "image/jpeg"));
    publisher.join().unwrap();
    assert!(stream.encode_count(OutputFormat::Image(ImageFormat::Jpeg)) > 0);
    assert!(stream.encode_count(OutputFormat::H264) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_viewer_of_a_still_picture_gets_a_keyframe_and_decodes_it() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = h264_stream(&server, "v", 320, 240);
    let pic = moving(320, 240, 3);
    stream.publish(Frame::rgba(320, 240, pic.clone())).unwrap();
    // Published before the viewer came, never again: the join still gets a keyframe.
    let mut c = Client::open(addr, "/v", VIDEO).await;
    let (h, payload) = c.recv_frame().await;
    assert!(chunk(&h).0);
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    // Luma against the source's BT.709 limited-range Y' (the encoder's matrix).
    let psnr = luma_psnr(&mut dec, &payload, &pic, 320, 240);
    assert!(psnr >= 35.0, "decoded keyframe luma PSNR {psnr:.1} dB");
}

/// Luma PSNR of an access unit's picture (which must be `w`×`h`) against an
/// RGBA source's BT.709 limited-range Y'.
pub(crate) fn luma_psnr(
    dec: &mut openh264::decoder::Decoder,
    au: &[u8],
    pic: &[u8],
    w: usize,
    h: usize,
) -> f64 {
    use openh264::formats::YUVSource;
    let yuv = dec.decode(au).unwrap().expect("a picture");
    assert_eq!(yuv.dimensions(), (w, h));
    let (ys, _, _) = yuv.strides();
    let mut se = 0.0;
    for y in 0..h {
        for x in 0..w {
            let p = &pic[(y * w + x) * 4..];
            let want = 16.0
                + 219.0
                    * (0.2126 * f64::from(p[0])
                        + 0.7152 * f64::from(p[1])
                        + 0.0722 * f64::from(p[2]))
                    / 255.0;
            se += (want - f64::from(yuv.y()[y * ys + x])).powi(2);
        }
    }
    10.0 * (255.0f64 * 255.0 / (se / (w * h) as f64).max(1e-9)).log10()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resting_video_stream_sends_one_sharper_keyframe_of_the_resting_picture() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = StreamConfig::default()
        .h264(true)
        .bitrate(300_000)
        .still_after(Some(Duration::from_millis(300)));
    let stream = server.add_stream("v", 320, 240, cfg).unwrap();
    // A video viewer that does not list framehub/still-png.
    let mut c = Client::open(addr, "/v", VIDEO).await;
    let pic = moving(320, 240, 5);
    stream.publish(Frame::rgba(320, 240, pic.clone())).unwrap();
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let (h1, first) = c.recv_frame().await;
    c.ack(h1.seq()).await;
    let before = luma_psnr(&mut dec, &first, &pic, 320, 240);
    let t0 = Instant::now();
    let (h2, still) = c.recv_frame().await;
    c.ack(h2.seq()).await;
    assert!(t0.elapsed() >= Duration::from_millis(200), "after the rest");
    assert!(chunk(&h2).0, "a keyframe: {h2:?}");
    assert_eq!(h2.timestamp_us(), h1.timestamp_us(), "of the same picture");
    let after = luma_psnr(&mut dec, &still, &pic, 320, 240);
    assert!(
        after > before + 1.0,
        "sharper: {before:.1} dB, then {after:.1} dB"
    );
    assert_eq!(stream.video_still_count(), 1);
    assert!(
        c.recv_within(Duration::from_millis(600)).await.is_none(),
        "once per resting picture"
    );
    // The chain goes on from it: the next picture decodes.
    let next = moving(320, 240, 6);
    stream.publish(Frame::rgba(320, 240, next.clone())).unwrap();
    let (h3, au) = c.recv_frame().await;
    assert!(!chunk(&h3).0, "a delta after the still keyframe");
    assert!(luma_psnr(&mut dec, &au, &next, 320, 240) > 30.0);
}

/// Frames received (and acked at once) within `d`.
async fn count_frames(mut c: Client, d: Duration) -> u32 {
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < d {
        if let Some(Received::Frame(h, _)) = c.recv_within(Duration::from_millis(100)).await {
            n += 1;
            c.ack(h.seq()).await;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fps_cap_counts_frames_not_outputs() {
    // A stream capped at 20 fps with an image viewer and a video viewer:
    // each frame is encoded for both, and both get ~20 frames/s (not half
    // each, as when every output's encode counted against the cap).
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = StreamConfig::default().h264(true).fps(20.0);
    let stream = server.add_stream("v", 160, 120, cfg).unwrap();
    let v = Client::open(addr, "/v", VIDEO).await;
    let i = Client::open(addr, "/v", &["image/jpeg"]).await;
    let publisher = spawn_publisher(stream.clone(), 160, 120, 60, Duration::from_millis(3200));
    let d = Duration::from_secs(3);
    let (nv, ni) = tokio::join!(count_frames(v, d), count_frames(i, d));
    publisher.join().unwrap();
    // 60 frames in 3 s at the cap; half the cap would be 30.
    assert!(nv >= 42 && ni >= 42, "video {nv}, image {ni} frames in 3 s");
    assert!(
        nv <= 66 && ni <= 66,
        "the cap holds: video {nv}, image {ni}"
    );
}

/// Issue 15: a remote publisher's H.264 chain reaches video viewers through
/// the hub unchanged (the hub encodes nothing), and after the publisher
/// restarts the viewer, still connected, resumes at a keyframe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_h264_chain_reaches_video_viewers_and_resumes_at_a_keyframe() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let url = format!("ws://{addr}/v");
    let cfg = || StreamConfig::default().h264(true);
    let remote = framehub::RemoteStream::connect(&url, 320, 240, cfg())
        .await
        .unwrap();
    let mut c = Client::open(addr, "/v", VIDEO).await;
    assert_eq!(c.config.as_ref().unwrap()["transport"], "webcodecs");
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let pic = moving(320, 240, 3);
    remote.publish(Frame::rgba(320, 240, pic.clone())).unwrap();
    let (h, payload) = c.recv_frame().await;
    assert!(chunk(&h).0, "the first unit is a keyframe");
    assert!(luma_psnr(&mut dec, &payload, &pic, 320, 240) >= 35.0);
    c.ack(h.seq()).await;
    assert_eq!(
        server.stream("v").unwrap().encode_count(OutputFormat::H264),
        remote.encode_count(OutputFormat::H264),
        "each unit the hub offered is one the publisher encoded"
    );
    assert!(remote.encode_count(OutputFormat::H264) >= 1);

    // The publisher restarts: a new process, a new encoder, a new chain.
    remote.close().await;
    let again = framehub::RemoteStream::connect(&url, 320, 240, cfg())
        .await
        .unwrap();
    let pic = moving(320, 240, 9);
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        again.publish(Frame::rgba(320, 240, pic.clone())).unwrap();
        match c.recv_within(Duration::from_millis(300)).await {
            Some(Received::Frame(h, payload)) => {
                c.ack(h.seq()).await;
                assert!(chunk(&h).0, "the first unit of the new chain is a keyframe");
                assert!(luma_psnr(&mut dec, &payload, &pic, 320, 240) >= 35.0);
                break;
            }
            Some(Received::Close(code, r)) => panic!("closed {code} {r}"),
            _ => assert!(Instant::now() < deadline, "no frame after the restart"),
        }
    }
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn an_h264_chain_reaches_video_viewers_of_two_edges_over_nats_encoded_once() {
    use crate::nats::{hub, listed, log, Cluster};
    log();
    let nats = Cluster::start(1).await;
    let grace = Duration::from_secs(5);
    let (origin, _) = hub("vo", &nats.url(0), grace).await;
    let (_e1, a1) = hub("ve1", &nats.url(0), grace).await;
    let (_e2, a2) = hub("ve2", &nats.url(0), grace).await;
    let v = h264_stream(&origin, "v", 320, 240);
    listed(a1, &["v"]).await;
    listed(a2, &["v"]).await;
    let mut c1 = Client::open(a1, "/v", VIDEO).await;
    let mut c2 = Client::open(a2, "/v", VIDEO).await;
    assert_eq!(c1.config.as_ref().unwrap()["transport"], "webcodecs");
    for (i, c) in [&mut c1, &mut c2].into_iter().enumerate() {
        let mut dec = openh264::decoder::Decoder::new().unwrap();
        let pic = moving(320, 240, 3 + i as u32);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut first = true;
        loop {
            v.publish(Frame::rgba(320, 240, pic.clone())).unwrap();
            match c.recv_within(Duration::from_millis(100)).await {
                Some(Received::Frame(h, payload)) => {
                    c.ack(h.seq()).await;
                    assert!(
                        !first || chunk(&h).0,
                        "an edge viewer's first unit is a keyframe"
                    );
                    first = false;
                    // The picture may be one published just before: decode
                    // and compare with the one it shows.
                    if luma_psnr(&mut dec, &payload, &pic, 320, 240) >= 35.0 {
                        break;
                    }
                }
                Some(Received::Close(code, r)) => panic!("closed {code} {r}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "edge {i}: no picture");
        }
    }
    // One chain at the origin for both edges: units out ≤ units encoded.
    let (_, text) = http_get(origin.local_addr().unwrap(), "/_/prometheus").await;
    let out = crate::rest::prometheus_sample(&text, "framehub_nats_units_out_total", r#"hub="vo""#)
        .unwrap();
    assert!(
        out >= 1.0 && out <= v.encode_count(OutputFormat::H264) as f64,
        "{text}"
    );
}
