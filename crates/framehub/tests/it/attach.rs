//! Viewers attached through `Server::attach_viewer` (the seam the ASGI bridge
//! uses): the same session, admission and limits as on the hub's port.

use std::time::Duration;

use framehub::proto::{envelope, FrameHeader};
use framehub::{
    AttachError, Frame, Origins, Server, ServerConfig, StreamConfig, ViewerChannel, ViewerMessage,
    ViewerRequest,
};
use serde_json::{json, Value};

use crate::common::*;

fn request(path: &str) -> ViewerRequest {
    ViewerRequest {
        path: path.into(),
        remote: Some("127.0.0.1:40000".parse().unwrap()),
        ..ViewerRequest::default()
    }
}

async fn next(ch: &mut ViewerChannel) -> ViewerMessage {
    tokio::time::timeout(Duration::from_secs(10), ch.receiver.recv())
        .await
        .expect("a message within 10 s")
        .expect("the session is still on")
}

async fn send_json(ch: &mut ViewerChannel, v: Value) {
    ch.sender
        .send(ViewerMessage::Text(v.to_string()))
        .await
        .unwrap();
}

/// Sends hello and returns the `config` message.
async fn handshake(ch: &mut ViewerChannel) -> Value {
    send_json(ch, json!({"type": "hello", "supported": ["image/png"]})).await;
    loop {
        if let ViewerMessage::Text(t) = next(ch).await {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "config" {
                return v;
            }
        }
    }
}

async fn next_frame(ch: &mut ViewerChannel) -> (FrameHeader, Vec<u8>) {
    loop {
        match next(ch).await {
            ViewerMessage::Binary(b) => {
                let (h, p) = envelope::parse(&b).unwrap();
                return (h, p.to_vec());
            }
            ViewerMessage::Close { code, reason } => panic!("closed {code} {reason}"),
            ViewerMessage::Text(_) => {}
        }
    }
}

async fn close_of(ch: &mut ViewerChannel) -> (u16, String) {
    loop {
        match next(ch).await {
            ViewerMessage::Close { code, reason } => return (code, reason),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn an_attached_viewer_gets_frames_by_credit_and_its_events_reach_the_stream() {
    let server = Server::builder().build();
    let stream = server
        .add_stream("s", 16, 16, StreamConfig::default().max_inflight(1))
        .unwrap();
    let mut ch = server.attach_viewer(request("/s")).unwrap();
    let config = handshake(&mut ch).await;
    assert_eq!(config["stream"], "s");
    stream
        .publish(Frame::rgba(16, 16, pattern(16, 16, 0)))
        .unwrap();
    let (h, payload) = next_frame(&mut ch).await;
    assert_eq!(h.seq(), 0);
    assert!(payload.starts_with(b"\x89PNG"), "a PNG of the frame");
    // No credit until the ack: a newer frame waits, then the latest is sent.
    stream
        .publish(Frame::rgba(16, 16, pattern(16, 16, 1)))
        .unwrap();
    stream
        .publish(Frame::rgba(16, 16, pattern(16, 16, 2)))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        matches!(
            ch.receiver.try_recv(),
            Ok(None) | Ok(Some(ViewerMessage::Text(_)))
        ),
        "no frame without credit"
    );
    send_json(&mut ch, json!({"type": "ack", "seq": 0})).await;
    let (h, _) = next_frame(&mut ch).await;
    assert_eq!(h.seq(), 1);
    send_json(
        &mut ch,
        json!({"type":"event","event":{"event_type":"pointer_down","x":3,"y":4,"button":1}}),
    )
    .await;
    let t = std::time::Instant::now();
    let events = loop {
        let ev = stream.poll_events();
        if !ev.is_empty() || t.elapsed() > Duration::from_secs(5) {
            break ev;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].client_id, config["session"].as_u64().unwrap());
    assert_eq!(stream.client_count(), 1);
    // The viewer leaves: the session ends, its place is given back.
    ch.sender.close();
    let t = std::time::Instant::now();
    while server.connections() > 0 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.connections(), 0);
    assert_eq!(stream.client_count(), 0);
}

#[tokio::test]
async fn attached_viewers_share_the_ports_limits_and_codes() {
    let cfg = ServerConfig {
        origins: Origins::List(vec!["https://app.example".into()]),
        ..ServerConfig::default()
    };
    let (server, addr) = hub_with(cfg).await;
    server
        .add_stream(
            "a",
            8,
            8,
            StreamConfig {
                max_viewers: 1,
                ..StreamConfig::default()
            },
        )
        .unwrap();
    // Unknown stream: attached, then closed with 4404 as on the port.
    let mut ch = server.attach_viewer(request("/nope")).unwrap();
    assert_eq!(close_of(&mut ch).await.0, 4404);
    assert!(
        ch.receiver.recv().await.is_none(),
        "the channel ends after the close"
    );
    // One place for stream a: taken by a viewer on the port, the attached one is refused.
    let _port_viewer = Client::open(addr, "/a", &["image/png"]).await;
    let mut ch = server.attach_viewer(request("/a")).unwrap();
    assert_eq!(
        close_of(&mut ch).await,
        (1008, "too many viewers of this stream".to_string())
    );
    // The origin policy.
    let mut req = request("/a");
    req.headers = vec![
        ("host".into(), "hub.example".into()),
        ("origin".into(), "https://evil.example".into()),
    ];
    assert_eq!(
        server.attach_viewer(req).unwrap_err(),
        AttachError::Forbidden("https://evil.example".into())
    );
    assert!(matches!(
        server.attach_viewer(request("/a/b")),
        Err(AttachError::NotAViewerPath(_))
    ));
    let (_, metrics) = http_get(addr, "/_/metrics").await;
    let metrics: Value = serde_json::from_str(&metrics).unwrap();
    assert_eq!(metrics["closes"]["4404"], 1);
    assert_eq!(metrics["refused"]["too many viewers of this stream"], 1);
}

#[tokio::test]
async fn an_attached_viewer_that_takes_nothing_is_dropped_after_the_write_timeout() {
    let cfg = ServerConfig {
        write_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = Server::builder().config(cfg).build();
    let stream = server
        .add_stream("s", 8, 8, StreamConfig::default().max_inflight(16))
        .unwrap();
    let mut ch = server.attach_viewer(request("/s")).unwrap();
    handshake(&mut ch).await;
    // From now on nothing is read: frames (credit 16) fill the channel (8), the session's write stalls.
    let t = std::time::Instant::now();
    let mut n = 0;
    while stream.client_count() > 0 && t.elapsed() < Duration::from_secs(10) {
        n += 1;
        stream.publish(Frame::rgba(8, 8, pattern(8, 8, n))).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stream.client_count(), 0, "dropped on the stalled write");
    // What it holds is bounded by the channel.
    let mut held = 0;
    while let Ok(Some(_)) = ch.receiver.try_recv() {
        held += 1;
    }
    assert!(held <= framehub::VIEWER_CHANNEL_OUT, "{held} messages held");
}

#[tokio::test]
async fn an_oversized_message_through_the_channel_closes_with_1009() {
    let cfg = ServerConfig {
        max_message_size: 1024,
        ..ServerConfig::default()
    };
    let server = Server::builder().config(cfg).build();
    server
        .add_stream("s", 8, 8, StreamConfig::default())
        .unwrap();
    let mut ch = server.attach_viewer(request("/s")).unwrap();
    handshake(&mut ch).await;
    ch.sender
        .send(ViewerMessage::Text("x".repeat(4096)))
        .await
        .unwrap();
    assert_eq!(close_of(&mut ch).await.0, 1009);
}

#[test]
fn attaching_outside_a_runtime_is_an_error() {
    let server = Server::builder().build();
    assert_eq!(
        server.attach_viewer(request("/s")).unwrap_err(),
        AttachError::NoRuntime
    );
}
