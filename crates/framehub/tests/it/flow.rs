//! Fan-out and flow control over real sockets.

use std::time::{Duration, Instant};

use framehub::proto::FrameHeader;
use framehub::{Frame, ImageFormat, OutputFormat, Server, StreamConfig};

use crate::common::*;

fn timestamp(h: &FrameHeader) -> u64 {
    h.timestamp_us()
}

#[tokio::test]
async fn two_viewers_get_the_same_frame_encoded_once_per_format() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("s", 32, 32, StreamConfig::default())
        .unwrap();
    let mut a = Client::open(addr, "/s", &["image/jpeg"]).await;
    let mut b = Client::open(addr, "/s", &["image/jpeg"]).await;
    let mut p = Client::open(addr, "/s", &["image/png"]).await;
    stream
        .publish(Frame::rgba(32, 32, pattern(32, 32, 0)))
        .unwrap();
    let (ha, pa) = a.recv_frame().await;
    let (hb, pb) = b.recv_frame().await;
    let (hp, _) = p.recv_frame().await;
    assert_eq!(pa, pb, "the same encoded bytes fan out");
    assert_eq!(timestamp(&ha), timestamp(&hb));
    assert_eq!(
        timestamp(&ha),
        timestamp(&hp),
        "same frame, same timestamp for every viewer"
    );
    assert_eq!(
        stream.encode_count(OutputFormat::Image(ImageFormat::Jpeg)),
        1
    );
    assert_eq!(
        stream.encode_count(OutputFormat::Image(ImageFormat::Png)),
        1
    );
    assert_eq!(stream.client_count(), 3);
}

#[tokio::test]
async fn nothing_is_encoded_without_a_viewer_that_can_take_it() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let stream = server
        .add_stream("s", 32, 32, StreamConfig::default())
        .unwrap();
    for i in 0..20 {
        stream
            .publish(Frame::rgba(32, 32, pattern(32, 32, i)))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        stream.encode_count(OutputFormat::Image(ImageFormat::Jpeg)),
        0
    );
    assert_eq!(
        stream.encode_count(OutputFormat::Image(ImageFormat::Png)),
        0
    );
}

#[tokio::test]
async fn three_streams_on_one_port_serve_independent_viewers() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let sizes = [("one", 16, 8), ("two", 24, 12), ("three", 32, 16)];
    let mut clients = Vec::new();
    for (name, w, h) in sizes {
        let s = server
            .add_stream(name, w, h, StreamConfig::default())
            .unwrap();
        s.publish(Frame::rgba(w, h, pattern(w, h, 0))).unwrap();
        clients.push((
            Client::open(addr, &format!("/{name}"), &["image/png"]).await,
            w,
            h,
        ));
    }
    for (c, w, h) in clients.iter_mut() {
        match c.recv_frame().await.0 {
            FrameHeader::ImageFrame { width, height, .. } => assert_eq!((width, height), (*w, *h)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.config.as_ref().unwrap()["width"].as_u64(),
            Some(u64::from(*w))
        );
    }
}

#[tokio::test]
async fn a_stalled_viewer_does_not_slow_a_fast_one() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("s", 64, 48, StreamConfig::default())
        .unwrap();
    let mut stalled = Client::open(addr, "/s", &["image/jpeg"]).await;
    let mut fast = Client::open(addr, "/s", &["image/jpeg"]).await;

    let publisher = {
        let stream = stream.clone();
        std::thread::spawn(move || {
            let frames: Vec<Vec<u8>> = (0..4).map(|i| pattern(64, 48, i)).collect();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_millis(1500) {
                stream
                    .publish(Frame::rgba(64, 48, &frames[(n % 4) as usize][..]))
                    .unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(4));
            }
            n
        })
    };
    let start = Instant::now();
    let mut fast_frames = 0u64;
    while start.elapsed() < Duration::from_millis(1500) {
        if let Some(Received::Frame(h, _)) = fast.recv_within(Duration::from_millis(200)).await {
            fast.ack(h.seq()).await;
            fast_frames += 1;
        }
    }
    let published = publisher.join().unwrap();
    // The stalled viewer got exactly its credit (2) and nothing more.
    let mut stalled_frames = 0;
    while let Some(Received::Frame(..)) = stalled.recv_within(Duration::from_millis(100)).await {
        stalled_frames += 1;
    }
    assert_eq!(
        stalled_frames, 2,
        "credit bounds what a viewer that never acks receives"
    );
    assert!(
        fast_frames * 2 >= published,
        "fast viewer got {fast_frames} of {published} published frames while another viewer stalled"
    );
}

#[tokio::test]
async fn latest_frame_is_delivered_when_credit_returns_never_a_stale_one() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("s", 16, 16, StreamConfig::default().max_inflight(1))
        .unwrap();
    let mut c = Client::open(addr, "/s", &["image/png"]).await;
    stream
        .publish(Frame::rgba(16, 16, pattern(16, 16, 0)))
        .unwrap();
    let (h0, _) = c.recv_frame().await;
    // Out of credit: these are not queued.
    for i in 1..=3 {
        stream
            .publish(Frame::rgba(16, 16, pattern(16, 16, i)))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        c.recv_within(Duration::from_millis(150)).await.is_none(),
        "no frame beyond credit"
    );
    c.ack(h0.seq()).await;
    let (h1, payload) = c.recv_frame().await;
    let mut r = png::Decoder::new(std::io::Cursor::new(payload))
        .read_info()
        .unwrap();
    let mut out = vec![0; r.output_buffer_size().unwrap()];
    r.next_frame(&mut out).unwrap();
    assert_eq!(
        out,
        pattern(16, 16, 3),
        "the latest picture, not frame 1 or 2"
    );
    assert_eq!(h1.seq(), 1);
    c.ack(h1.seq()).await;
    assert!(
        c.recv_within(Duration::from_millis(150)).await.is_none(),
        "and it is not sent twice"
    );
}

#[tokio::test]
async fn unacked_frames_are_forgotten_after_two_seconds() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("s", 16, 16, StreamConfig::default().max_inflight(1))
        .unwrap();
    let mut c = Client::open(addr, "/s", &["image/png"]).await;
    stream
        .publish(Frame::rgba(16, 16, pattern(16, 16, 0)))
        .unwrap();
    c.recv_frame().await;
    stream
        .publish(Frame::rgba(16, 16, pattern(16, 16, 1)))
        .unwrap();
    let t = Instant::now();
    let (h, _) = c.recv_frame().await;
    let waited = t.elapsed();
    assert_eq!(h.seq(), 1);
    assert!(
        waited >= Duration::from_millis(1800),
        "credit came back after {waited:?}"
    );
}
