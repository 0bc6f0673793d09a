//! Routing, handshake and negotiation, close codes for bad input.

use framehub::proto::FrameHeader;
use framehub::{Frame, Server, StreamConfig};

use crate::common::*;

#[tokio::test]
async fn config_then_a_jpeg_that_decodes_to_the_published_picture() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("cam", 96, 64, StreamConfig::default())
        .unwrap();
    let pic = pattern(96, 64, 0);
    stream.publish(Frame::rgba(96, 64, &pic[..])).unwrap();

    let mut c = Client::open(addr, "/cam", &["image/jpeg", "image/png"]).await;
    let cfg = c.config.clone().unwrap();
    assert_eq!(cfg["transport"], "image");
    assert_eq!(
        (cfg["width"].as_u64(), cfg["height"].as_u64()),
        (Some(96), Some(64))
    );
    assert_eq!(cfg["coords"], "frame-pixels");
    assert_eq!(cfg["stream"], "cam");
    assert!(cfg["server"].as_str().unwrap().starts_with("framehub/"));

    let (h, payload) = c.recv_frame().await;
    match h {
        FrameHeader::ImageFrame {
            seq,
            width,
            height,
            mime,
            ..
        } => {
            assert_eq!(
                (seq, width, height, mime.as_str()),
                (0, 96, 64, "image/jpeg")
            );
        }
        other => panic!("{other:?}"),
    }
    let (w, hh, rgba) = framehub_codec_decode(&payload);
    assert_eq!((w, hh), (96, 64));
    let diff = mean_abs_diff(&rgba, &pic);
    assert!(
        diff < 6.0,
        "JPEG differs from the source by {diff} on average"
    );
}

fn framehub_codec_decode(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
    let img = turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::RGBA).expect("JPEG");
    (img.width as u32, img.height as u32, img.pixels)
}

#[tokio::test]
async fn png_only_client_gets_a_lossless_png() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("default", 40, 30, StreamConfig::default())
        .unwrap();
    let pic = pattern(40, 30, 2);
    stream.publish(Frame::rgba(40, 30, pic.clone())).unwrap();
    let mut c = Client::open(addr, "/", &["image/png"]).await;
    let (h, payload) = c.recv_frame().await;
    assert!(matches!(h, FrameHeader::ImageFrame { ref mime, .. } if mime == "image/png"));
    let dec = png::Decoder::new(std::io::Cursor::new(payload));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    r.next_frame(&mut buf).unwrap();
    assert_eq!(buf, pic, "PNG is exact");
}

#[tokio::test]
async fn rgb_frames_with_a_row_stride_are_published() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("rgb", 20, 10, StreamConfig::default())
        .unwrap();
    let stride = 20 * 3 + 7;
    let mut buf = vec![0u8; stride * 10];
    for y in 0..10 {
        for x in 0..20 {
            buf[y * stride + x * 3..y * stride + x * 3 + 3].copy_from_slice(&[10, 200, 30]);
        }
    }
    stream
        .publish(Frame::rgb(20, 10, &buf[..]).with_stride(stride))
        .unwrap();
    let mut c = Client::open(addr, "/rgb", &["image/png"]).await;
    let (_, payload) = c.recv_frame().await;
    let mut r = png::Decoder::new(std::io::Cursor::new(payload))
        .read_info()
        .unwrap();
    let mut out = vec![0; r.output_buffer_size().unwrap()];
    r.next_frame(&mut out).unwrap();
    assert!(out.chunks(3).all(|p| p == [10, 200, 30]));
    // A buffer too short for its shape is an error, not a panic.
    assert!(matches!(
        stream.publish(Frame::rgba(20, 10, vec![0u8; 10])),
        Err(framehub::Error::InvalidFrame(_))
    ));
}

#[tokio::test]
async fn unknown_stream_closes_4404_with_reason() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let mut c = Client::connect(addr, "/nope").await;
    assert_eq!(
        c.recv_close().await,
        (4404, "unknown stream 'nope'".to_string())
    );
    // `/` means `default`, which does not exist here either.
    let mut c = Client::connect(addr, "/").await;
    assert_eq!(c.recv_close().await.0, 4404);
    // Counted with the hub's other closes.
    let m: serde_json::Value = serde_json::from_str(&http_get(addr, "/_/metrics").await.1).unwrap();
    assert_eq!(m["closes"]["4404"], 2, "{m}");
}

#[tokio::test]
async fn nothing_in_common_closes_1003() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    server
        .add_stream("s", 8, 8, StreamConfig::default())
        .unwrap();
    let mut c = Client::connect(addr, "/s").await;
    c.hello(&["image/gif"]).await;
    assert_eq!(
        c.recv_close().await,
        (1003, "no supported transport".to_string())
    );
}

#[tokio::test]
async fn malformed_and_oversized_messages_close_only_that_viewer() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("s", 16, 16, StreamConfig::default())
        .unwrap();
    let mut good = Client::open(addr, "/s", &["image/jpeg"]).await;

    let mut bad = Client::open(addr, "/s", &["image/jpeg"]).await;
    bad.send_text("{this is not json").await;
    assert_eq!(bad.recv_close().await.0, 1008);

    let mut typed = Client::open(addr, "/s", &["image/jpeg"]).await;
    typed.send_text(r#"{"type":"ack","seq":"zero"}"#).await;
    assert_eq!(typed.recv_close().await.0, 1008);

    let mut big = Client::open(addr, "/s", &["image/jpeg"]).await;
    big.send_text(format!(
        r#"{{"type":"event","event":{{"pad":"{}"}}}}"#,
        "x".repeat(70_000)
    ))
    .await;
    assert_eq!(big.recv_close().await.0, 1009);

    let mut huge = Client::open(addr, "/s", &["image/jpeg"]).await;
    huge.send_text("x".repeat(2 << 20)).await;
    assert_eq!(
        huge.recv_close().await.0,
        1009,
        "over the socket's own limit too"
    );

    let mut early = Client::connect(addr, "/s").await;
    early.send_text(r#"{"type":"ack","seq":0}"#).await;
    assert_eq!(early.recv_close().await.0, 1008, "a message before hello");

    // The well-behaved viewer carries on.
    stream
        .publish(Frame::rgba(16, 16, pattern(16, 16, 1)))
        .unwrap();
    let (h, _) = good.recv_frame().await;
    assert_eq!(h.seq(), 0);
}

/// Issue 12: a client that sends a message over the hub's limit must read
/// the 1009 close, not a TCP reset. Before the lingering close
/// (`listen::LingeringClose`) the hub closed its socket with the rest of the
/// message unread, and the kernel's reset destroyed the close frame about
/// 2 times in 5.
#[tokio::test]
async fn an_oversized_message_gets_its_close_code_every_time() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    server
        .add_stream("s", 16, 16, StreamConfig::default())
        .unwrap();
    for size in [2usize << 20, 16 << 20] {
        let text = "x".repeat(size);
        for round in 0..20 {
            let mut c = Client::open(addr, "/s", &["image/jpeg"]).await;
            c.send_text(text.clone()).await;
            let (code, reason) = c.recv_close().await;
            assert_eq!(
                code, 1009,
                "a {size}-byte message, round {round}: {code} {reason}"
            );
        }
    }
}

#[tokio::test]
async fn permessage_deflate_is_declined() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    server
        .add_stream("s", 8, 8, StreamConfig::default())
        .unwrap();
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /s HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(T, sock.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let resp = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(resp.starts_with("http/1.1 101"), "{resp}");
    assert!(!resp.contains("sec-websocket-extensions"), "{resp}");
}
