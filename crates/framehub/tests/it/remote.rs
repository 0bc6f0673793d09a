//! Remote publishers (issue 15): claims, refusal 4409, take-over, grace and
//! resume, end after grace, events back, bad publishers.

use std::time::Duration;

use framehub::proto::envelope::FrameHeader;
use framehub::{Frame, RemoteOptions, RemoteStream, Server, ServerConfig, StreamConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

fn jpeg_rgba(payload: &[u8]) -> Vec<u8> {
    turbojpeg::decompress(payload, turbojpeg::PixelFormat::RGBA)
        .expect("JPEG")
        .pixels
}

async fn hub(grace: Duration) -> (Server, std::net::SocketAddr) {
    hub_with(ServerConfig {
        publisher_grace: grace,
        ..Default::default()
    })
    .await
}

/// A remote publisher of a 64×48 stream `name` on the hub at `addr`.
async fn publisher(addr: std::net::SocketAddr, name: &str) -> RemoteStream {
    RemoteStream::connect(
        &format!("ws://{addr}/{name}"),
        64,
        48,
        StreamConfig::default(),
    )
    .await
    .unwrap()
}

/// Publishes `seed`'s pattern until `viewer` receives a frame showing it.
async fn frame_of(remote: &RemoteStream, viewer: &mut Client, seed: u8) -> FrameHeader {
    let want = pattern(64, 48, seed);
    for _ in 0..50 {
        remote.publish(Frame::rgba(64, 48, want.clone())).unwrap();
        if let Some(Received::Frame(h, p)) = viewer.recv_within(Duration::from_millis(200)).await {
            viewer.ack(h.seq()).await;
            if mean_abs_diff(&jpeg_rgba(&p), &want) < 8.0 {
                return h;
            }
        }
    }
    panic!("the viewer never got pattern {seed}");
}

/// The next `status` message, skipping frames (acked) and other texts.
async fn status(viewer: &mut Client) -> String {
    loop {
        match viewer.recv().await {
            Received::Text(v) if v["type"] == "status" => {
                return v["publisher"].as_str().unwrap().to_string()
            }
            Received::Frame(h, _) => viewer.ack(h.seq()).await,
            Received::Text(_) => {}
            Received::Close(c, r) => panic!("closed {c} {r} while waiting for a status"),
        }
    }
}

#[tokio::test]
async fn a_remote_publisher_is_viewed_and_driven_like_a_local_stream() {
    let (server, addr) = hub(Duration::from_secs(10)).await;
    let remote = publisher(addr, "cam").await;
    assert_eq!(server.stream_names(), vec!["cam".to_string()]);
    let mut viewer = Client::open(addr, "/cam", &["image/jpeg"]).await;
    frame_of(&remote, &mut viewer, 1).await;
    // `/streams` counts the remote publisher's pictures as its fps.
    let (code, body) = http_get(addr, "/streams").await;
    assert_eq!(code, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(list[0]["fps"].as_f64().unwrap() >= 1.0, "{list}");
    // The hub passes encoded bytes through: it encoded nothing itself.
    assert_eq!(
        server
            .stream("cam")
            .unwrap()
            .encode_count(framehub::OutputFormat::Image(framehub::ImageFormat::Jpeg)),
        remote.encode_count(framehub::OutputFormat::Image(framehub::ImageFormat::Jpeg)),
        "every unit the hub offered came from the publisher's encoder"
    );

    // An event travels back up to the publisher's program.
    viewer
        .send_json(json!({"type":"event","event":{"type":"pointer_down","x":3,"y":4,"button":1}}))
        .await;
    let mut got = None;
    for _ in 0..50 {
        if let Some(ev) = remote.poll_events().into_iter().next() {
            got = Some(ev);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ev = got.expect("the event reached the remote publisher");
    assert_eq!(ev.client_id, viewer.session_id());
    assert_eq!(ev.event.event_type(), "pointer_down");
    assert_eq!(ev.event.pointer().map(|p| (p.x, p.y)), Some((3.0, 4.0)));
}

#[tokio::test]
async fn a_taken_name_is_refused_4409_unless_taken_over() {
    let (server, addr) = hub(Duration::from_secs(10)).await;
    let url = format!("ws://{addr}/cam");
    let first = RemoteStream::connect(&url, 64, 48, StreamConfig::default())
        .await
        .unwrap();
    match RemoteStream::connect(&url, 64, 48, StreamConfig::default()).await {
        Err(framehub::Error::Refused { code, .. }) => assert_eq!(code, 4409),
        other => panic!("expected 4409, got {other:?}"),
    }
    // A stream of the hub's own process is never given away.
    server
        .add_stream("local", 8, 8, StreamConfig::default())
        .unwrap();
    match RemoteStream::connect(
        &format!("ws://{addr}/local"),
        64,
        48,
        StreamConfig::default(),
    )
    .await
    {
        Err(framehub::Error::Refused { code, .. }) => assert_eq!(code, 4409),
        other => panic!("expected 4409, got {other:?}"),
    }
    // The same principal (here: anonymous on loopback) may take over.
    let mut viewer = Client::open(addr, "/cam", &["image/jpeg"]).await;
    frame_of(&first, &mut viewer, 1).await;
    let second = RemoteStream::connect_with(
        &url,
        64,
        48,
        StreamConfig::default(),
        RemoteOptions {
            takeover: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The viewer stays connected and now sees the new publisher's frames.
    frame_of(&second, &mut viewer, 2).await;
    drop(first);
}

#[tokio::test]
async fn a_publisher_back_within_the_grace_resumes_and_viewers_never_reconnect() {
    let (_server, addr) = hub(Duration::from_secs(10)).await;
    let url = format!("ws://{addr}/cam");
    let remote = RemoteStream::connect(&url, 64, 48, StreamConfig::default())
        .await
        .unwrap();
    let mut viewer = Client::open(addr, "/cam", &["image/jpeg"]).await;
    let before = frame_of(&remote, &mut viewer, 1).await;
    remote.close().await;
    assert_eq!(status(&mut viewer).await, "offline");

    // A new process claims the name again: the same viewer gets frames.
    let again = RemoteStream::connect(&url, 64, 48, StreamConfig::default())
        .await
        .unwrap();
    assert_eq!(status(&mut viewer).await, "online");
    let after = frame_of(&again, &mut viewer, 3).await;
    assert!(after.seq() > before.seq());
}

#[tokio::test]
async fn a_stream_ends_4410_when_its_publisher_does_not_come_back() {
    let (server, addr) = hub(Duration::from_millis(300)).await;
    let remote = publisher(addr, "cam").await;
    let mut viewer = Client::open(addr, "/cam", &["image/jpeg"]).await;
    frame_of(&remote, &mut viewer, 1).await;
    remote.close().await;
    assert_eq!(status(&mut viewer).await, "offline");
    assert_eq!(viewer.recv_close().await, (4410, "stream ended".into()));
    assert!(server.stream_names().is_empty());
}

/// A raw feed connection that has claimed `name`.
async fn raw_publisher(
    addr: std::net::SocketAddr,
    name: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/_/publish/{name}"))
        .await
        .unwrap();
    let claim = json!({"type":"claim","protocol":1,"width":64,"height":48});
    ws.send(Message::Text(claim.to_string().into()))
        .await
        .unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(t))) => assert!(t.contains("claimed"), "{t}"),
        other => panic!("{other:?}"),
    }
    ws
}

async fn close_code_of(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> u16 {
    loop {
        match tokio::time::timeout(T, ws.next()).await.expect("a close") {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn bad_publishers_are_closed_and_viewers_keep_the_last_good_picture() {
    let (_server, addr) = hub(Duration::from_secs(10)).await;
    let remote = publisher(addr, "good").await;
    let mut viewer = Client::open(addr, "/good", &["image/jpeg"]).await;
    frame_of(&remote, &mut viewer, 1).await;

    let header = |mime: &str| {
        json!({"variant":{"format":"jpeg","tier":0},"frame_id":1,"source_id":1,
               "timestamp_us":0,"width":64,"height":48,"mime":mime})
        .to_string()
    };
    let unit = |h: String, payload: &[u8]| {
        let mut v = (h.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(payload);
        v
    };
    let cases: Vec<(&str, Message)> = vec![
        ("garbage", Message::Binary(vec![1, 2, 3].into())),
        (
            "a JPEG without its signature",
            Message::Binary(unit(header("image/jpeg"), b"not a jpeg").into()),
        ),
        (
            "a PNG without its signature",
            Message::Binary(unit(header("image/png"), b"\xff\xd8\xff").into()),
        ),
        (
            "H.264 that is not Annex B",
            Message::Binary(
                unit(
                    json!({"variant":{"format":"h264","tier":0},"frame_id":1,"source_id":1,
                           "timestamp_us":0,"width":64,"height":48,"keyframe":true})
                    .to_string(),
                    b"\x65\x88\x84",
                )
                .into(),
            ),
        ),
        (
            "a frame of the wrong size",
            Message::Binary(
                unit(
                    json!({"variant":{"format":"jpeg","tier":0},"frame_id":1,"source_id":1,
                           "timestamp_us":0,"width":0,"height":48})
                    .to_string(),
                    b"\xff\xd8\xff",
                )
                .into(),
            ),
        ),
        ("a malformed text message", Message::Text("{nope".into())),
    ];
    for (what, msg) in cases {
        let mut ws = raw_publisher(addr, "bad").await;
        ws.send(msg).await.unwrap();
        assert_eq!(close_code_of(&mut ws).await, 1008, "{what}");
    }
    // A claim that is not a claim, and one of another feed version.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/_/publish/x"))
        .await
        .unwrap();
    ws.send(Message::Text(
        r#"{"type":"info","width":1,"height":1}"#.into(),
    ))
    .await
    .unwrap();
    assert_eq!(close_code_of(&mut ws).await, 1008);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/_/publish/x"))
        .await
        .unwrap();
    ws.send(Message::Text(
        r#"{"type":"claim","protocol":99,"width":1,"height":1}"#.into(),
    ))
    .await
    .unwrap();
    assert_eq!(close_code_of(&mut ws).await, 1008);

    // The good stream and its viewer carried on.
    frame_of(&remote, &mut viewer, 2).await;
}

#[tokio::test]
async fn publishers_off_loopback_need_credentials_and_an_authenticator_decides() {
    let auth = framehub::authenticator(|ctx: framehub::AuthContext| async move {
        match ctx.token.as_deref() {
            Some("s3cret") => Ok(Some(framehub::Principal::new("robot"))),
            _ => Err(framehub::AuthError("bad publisher token".into())),
        }
    });
    let (_server, addr) = hub_with(ServerConfig {
        publish_authenticate: Some(auth),
        ..Default::default()
    })
    .await;
    match RemoteStream::connect(&format!("ws://{addr}/cam"), 64, 48, StreamConfig::default()).await
    {
        Err(framehub::Error::Refused { code, .. }) => assert_eq!(code, 4401),
        other => panic!("expected 4401, got {other:?}"),
    }
    let remote = RemoteStream::connect(
        &format!("ws://{addr}/cam?token=s3cret"),
        64,
        48,
        StreamConfig::default(),
    )
    .await
    .unwrap();
    let mut viewer = Client::open(addr, "/cam", &["image/jpeg"]).await;
    frame_of(&remote, &mut viewer, 1).await;
}

#[tokio::test]
async fn the_lifecycle_tells_the_story_in_order_and_over_sse() {
    let (server, addr) = hub(Duration::from_millis(300)).await;
    let mut events = Box::pin(server.lifecycle());
    // The SSE route: a raw HTTP client reads its first events.
    let mut sse = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    sse.write_all(format!("GET /_/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // Subscribed once its response has begun.
    let mut text = String::new();
    let mut buf = vec![0u8; 4096];
    while !text.contains("\r\n\r\n") {
        let n = tokio::time::timeout(T, sse.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }

    let remote = publisher(addr, "cam").await;
    let mut viewer = Client::open(addr, "/cam", &["image/jpeg"]).await;
    frame_of(&remote, &mut viewer, 1).await;
    remote.close().await;
    assert_eq!(viewer.recv_close().await.0, 4410);

    let mut kinds = Vec::new();
    while kinds.len() < 6 {
        let ev = tokio::time::timeout(T, events.next())
            .await
            .expect("an event within 5 s")
            .expect("the hub is open");
        assert_eq!(ev.stream(), "cam");
        kinds.push(ev.kind());
    }
    assert_eq!(
        kinds,
        [
            "stream.created",
            "publisher.online",
            "viewer.joined",
            "publisher.offline",
            "stream.destroyed",
            "viewer.left"
        ]
    );

    while !text.contains("event: viewer.left") {
        let n = tokio::time::timeout(T, sse.read(&mut buf))
            .await
            .expect("SSE data within 5 s")
            .unwrap();
        assert!(n > 0, "SSE ended early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.contains("text/event-stream"), "{text}");
    let created = text.find("event: stream.created").expect(&text);
    let online = text.find("event: publisher.online").expect(&text);
    assert!(created < online, "{text}");
    assert!(
        text.contains(r#""type":"viewer.joined","stream":"cam""#),
        "{text}"
    );
}

/// A raw publisher that never answers a keyframe request is asked again,
/// at most once a second; one that floods units faster than any viewer
/// takes them costs the hub nothing but the latest (the viewer gets the
/// newest frame and the feed stays open).
#[tokio::test]
async fn an_unanswered_keyframe_request_is_repeated_and_a_flood_is_latest_wins() {
    let (_server, addr) = hub(Duration::from_secs(10)).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/_/publish/v"))
        .await
        .unwrap();
    let claim = json!({"type":"claim","protocol":1,"width":64,"height":48,
                       "h264_codec":"avc1.42C01F"});
    ws.send(Message::Text(claim.to_string().into()))
        .await
        .unwrap();
    let mut video = Client::open(addr, "/v", &["webcodecs/h264-annexb"]).await;
    let started = std::time::Instant::now();
    let mut asks = Vec::new();
    while asks.len() < 3 {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) if t.contains(r#""type":"keyframe""#) => {
                asks.push(started.elapsed())
            }
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    for pair in asks.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(900) && gap < Duration::from_millis(2500),
            "asked again after {gap:?}"
        );
    }

    // Unanswered for 3 s: the video viewer is told the publisher is stalled
    // (its picture will not come), and told again once a keyframe comes.
    assert_eq!(status(&mut video).await, "stalled");
    let h = json!({"variant":{"format":"h264","tier":0},"frame_id":1,"source_id":1,
                   "timestamp_us":0,"width":64,"height":48,"keyframe":true})
    .to_string();
    let mut m = (h.len() as u32).to_le_bytes().to_vec();
    m.extend_from_slice(h.as_bytes());
    // SPS, PPS and IDR slice NAL headers: what the hub checks (it does not decode).
    m.extend_from_slice(&[
        0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88,
    ]);
    ws.send(Message::Binary(m.into())).await.unwrap();
    assert_eq!(status(&mut video).await, "online");

    // A flood of 300 JPEG units: the viewer's first frame is one of the last.
    let mut jpeg_viewer = Client::open(addr, "/v", &["image/jpeg"]).await;
    let jpeg = turbojpeg::compress(
        turbojpeg::Image {
            pixels: &pattern(64, 48, 1)[..],
            width: 64,
            pitch: 64 * 4,
            height: 48,
            format: turbojpeg::PixelFormat::RGBA,
        },
        80,
        turbojpeg::Subsamp::Sub2x2,
    )
    .unwrap();
    for id in 1..=300u64 {
        // Timestamps far apart, so the hub's per-connection shift (µs) does not matter.
        let h = json!({"variant":{"format":"jpeg","tier":0},"frame_id":id,"source_id":id,
                       "timestamp_us":id * 1_000_000,"width":64,"height":48,"mime":"image/jpeg"})
        .to_string();
        let mut m = (h.len() as u32).to_le_bytes().to_vec();
        m.extend_from_slice(h.as_bytes());
        m.extend_from_slice(&jpeg);
        ws.send(Message::Binary(m.into())).await.unwrap();
    }
    // The viewer acks what it gets: a few frames, the last one the flood's last.
    let mut got = Vec::new();
    while let Some(Received::Frame(h, p)) =
        jpeg_viewer.recv_within(Duration::from_millis(500)).await
    {
        assert!(mean_abs_diff(&jpeg_rgba(&p), &pattern(64, 48, 1)) < 8.0);
        let FrameHeader::ImageFrame { timestamp_us, .. } = h else {
            panic!("{h:?}")
        };
        got.push(timestamp_us / 1_000_000);
        jpeg_viewer.ack(h.seq()).await;
    }
    assert!(
        !got.is_empty() && got.len() <= 10,
        "latest wins: got {got:?}"
    );
    assert_eq!(got.last(), Some(&300), "the newest frame last: {got:?}");
    // The feed is still open: the hub keeps asking for the keyframe.
    let mut open = false;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
        if matches!(m, Message::Text(_)) {
            open = true;
            break;
        }
    }
    assert!(open, "the flooding publisher was not closed");
}

/// A unit over `max_frame_bytes` closes the feed with 1009 (and the
/// publisher reads that code: the hub's lingering close drains the rest).
#[tokio::test]
async fn a_unit_over_max_frame_bytes_closes_the_feed_1009() {
    let (_server, addr) = hub_with(ServerConfig {
        max_frame_bytes: 64 << 10,
        ..Default::default()
    })
    .await;
    let mut ws = raw_publisher(addr, "big").await;
    ws.send(Message::Binary(vec![0u8; 1 << 20].into()))
        .await
        .unwrap();
    assert_eq!(close_code_of(&mut ws).await, 1009);
}

/// A remote stream's viewers are authenticated by the hub-wide
/// authenticator (the publishing program is elsewhere).
#[tokio::test]
async fn a_remote_streams_viewers_pass_the_hubs_authenticator() {
    let auth = framehub::authenticator(|ctx: framehub::AuthContext| async move {
        match ctx.token.as_deref() {
            Some("viewer-ok") => Ok(Some(framehub::Principal::new("ann"))),
            _ => Err(framehub::AuthError("no".into())),
        }
    });
    let (_server, addr) = hub_with(ServerConfig {
        authenticate: Some(auth),
        ..Default::default()
    })
    .await;
    let remote = publisher(addr, "cam").await;
    let mut refused = Client::connect(addr, "/cam").await;
    refused.hello(&["image/jpeg"]).await;
    assert_eq!(refused.recv_close().await.0, 4401);
    let mut viewer = Client::open(addr, "/cam?token=viewer-ok", &["image/jpeg"]).await;
    frame_of(&remote, &mut viewer, 1).await;
}
