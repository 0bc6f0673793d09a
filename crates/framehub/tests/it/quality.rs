//! Lossless stills after the stream settles.

use std::time::{Duration, Instant};

use framehub::proto::FrameHeader;
use framehub::{Frame, Server, StreamConfig};

use crate::common::*;

fn decode_png(payload: &[u8]) -> Vec<u8> {
    let mut r = png::Decoder::new(std::io::Cursor::new(payload))
        .read_info()
        .unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    r.next_frame(&mut buf).unwrap();
    buf
}

#[tokio::test]
async fn a_resting_stream_sends_one_shared_lossless_still_to_lossy_viewers() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = StreamConfig::default().still_after(Some(Duration::from_millis(300)));
    let stream = server.add_stream("s", 48, 32, cfg).unwrap();
    let mut a = Client::open(addr, "/s", &["image/jpeg", "image/png"]).await;
    let mut b = Client::open(addr, "/s", &["image/jpeg", "image/png"]).await;
    let pic = pattern(48, 32, 1);
    let t0 = Instant::now();
    stream.publish(Frame::rgba(48, 32, pic.clone())).unwrap();
    for c in [&mut a, &mut b] {
        let (h, _) = c.recv_frame().await;
        assert!(
            matches!(h, FrameHeader::ImageFrame { ref mime, still: None, .. } if mime == "image/jpeg")
        );
        c.ack(h.seq()).await;
        let (h, payload) = c.recv_frame().await;
        match h {
            FrameHeader::ImageFrame { mime, still, .. } => {
                assert_eq!((mime.as_str(), still), ("image/png", Some(true)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decode_png(&payload), pic, "the still is pixel-exact");
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "not before still_after"
    );
    assert_eq!(stream.still_count(), 1, "one still shared by both viewers");
    // Nothing more while the stream rests.
    assert!(a.recv_within(Duration::from_millis(500)).await.is_none());
}

#[tokio::test]
async fn a_new_publish_cancels_the_pending_still_and_no_still_overtakes_a_newer_frame() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = StreamConfig::default().still_after(Some(Duration::from_millis(300)));
    let stream = server.add_stream("s", 16, 16, cfg).unwrap();
    let mut c = Client::open(addr, "/s", &["image/jpeg"]).await;
    // Publish every 100 ms for a second: always fresher than still_after.
    for i in 0..10 {
        stream
            .publish(Frame::rgba(16, 16, pattern(16, 16, i % 4)))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Some(Received::Frame(h, _)) = c.recv_within(Duration::from_millis(5)).await {
            assert!(
                matches!(h, FrameHeader::ImageFrame { still: None, .. }),
                "no still while frames keep coming"
            );
            c.ack(h.seq()).await;
        }
    }
    assert_eq!(stream.still_count(), 0);
    // Then it rests: exactly one still, of the last frame.
    let (h, payload) = loop {
        let (h, p) = c.recv_frame().await;
        c.ack(h.seq()).await;
        if matches!(
            h,
            FrameHeader::ImageFrame {
                still: Some(true),
                ..
            }
        ) {
            break (h, p);
        }
    };
    assert!(h.seq() > 0);
    assert_eq!(decode_png(&payload), pattern(16, 16, 9 % 4));
}

#[tokio::test]
async fn a_viewer_without_credit_gets_the_still_when_credit_returns() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = StreamConfig::default()
        .max_inflight(1)
        .still_after(Some(Duration::from_millis(200)));
    let stream = server.add_stream("s", 16, 16, cfg).unwrap();
    let mut c = Client::open(addr, "/s", &["image/jpeg"]).await;
    stream
        .publish(Frame::rgba(16, 16, pattern(16, 16, 2)))
        .unwrap();
    let (h, _) = c.recv_frame().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(stream.still_count(), 1);
    assert!(
        c.recv_within(Duration::from_millis(100)).await.is_none(),
        "no credit, nothing sent"
    );
    c.ack(h.seq()).await;
    let (h, payload) = c.recv_frame().await;
    assert!(matches!(
        h,
        FrameHeader::ImageFrame {
            still: Some(true),
            ..
        }
    ));
    assert_eq!(decode_png(&payload), pattern(16, 16, 2));
}

#[tokio::test]
async fn stills_can_be_turned_off_and_png_viewers_need_none() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let off = server
        .add_stream("off", 16, 16, StreamConfig::default().still_after(None))
        .unwrap();
    let mut c = Client::open(addr, "/off", &["image/jpeg"]).await;
    off.publish(Frame::rgba(16, 16, pattern(16, 16, 0)))
        .unwrap();
    let (h, _) = c.recv_frame().await;
    c.ack(h.seq()).await;
    assert!(c.recv_within(Duration::from_millis(600)).await.is_none());
    assert_eq!(off.still_count(), 0);

    let lossless = server
        .add_stream("png", 16, 16, StreamConfig::default())
        .unwrap();
    let mut p = Client::open(addr, "/png", &["image/png"]).await;
    lossless
        .publish(Frame::rgba(16, 16, pattern(16, 16, 0)))
        .unwrap();
    let (h, _) = p.recv_frame().await;
    p.ack(h.seq()).await;
    assert!(p.recv_within(Duration::from_millis(600)).await.is_none());
    assert_eq!(lossless.still_count(), 0, "no lossy viewer, no still");
}

#[tokio::test]
async fn hidden_viewers_get_nothing_stop_the_encoder_and_get_the_latest_frame_on_return() {
    use framehub::{ImageFormat, OutputFormat};
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("s", 64, 64, StreamConfig::default().still_after(None))
        .unwrap();
    let mut c = Client::open(addr, "/s", &["image/jpeg"]).await;
    stream
        .publish(Frame::rgba(64, 64, pattern(64, 64, 0)))
        .unwrap();
    let (h, _) = c.recv_frame().await;
    c.ack(h.seq()).await;
    c.send_json(serde_json::json!({"type":"visibility","visible":false}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let jpeg = OutputFormat::Image(ImageFormat::Jpeg);
    let before = stream.encode_count(jpeg);
    for i in 1..=10 {
        stream
            .publish(Frame::rgba(64, 64, pattern(64, 64, i % 4)))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        c.recv_within(Duration::from_millis(200)).await.is_none(),
        "a hidden viewer is sent nothing"
    );
    assert_eq!(
        stream.encode_count(jpeg),
        before,
        "no visible viewer: nothing is encoded"
    );
    c.send_json(serde_json::json!({"type":"visibility","visible":true}))
        .await;
    let (h, payload) = c.recv_frame().await;
    assert_eq!(h.seq(), 1);
    let img = turbojpeg::decompress(&payload, turbojpeg::PixelFormat::RGBA).unwrap();
    assert!(
        mean_abs_diff(&img.pixels, &pattern(64, 64, 10 % 4)) < 6.0,
        "the latest frame at once"
    );
    assert_eq!(
        stream.encode_count(jpeg),
        before + 1,
        "one encode, of the latest frame only"
    );
}
