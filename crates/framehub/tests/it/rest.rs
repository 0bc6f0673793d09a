//! The REST side channel on the same port.

use std::time::Duration;

use framehub::{Frame, Server, StreamConfig};
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn health_streams_and_metrics() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    assert_eq!(http_get(addr, "/health").await, (200, "ok".to_string()));
    assert_eq!(
        http_get(addr, "/metrics").await.0,
        404,
        "no default stream yet"
    );

    let cam = server
        .add_stream("cam", 64, 32, StreamConfig::default())
        .unwrap();
    server
        .add_stream("default", 8, 8, StreamConfig::default().fps(30.0))
        .unwrap();
    let mut c = Client::open(addr, "/cam", &["image/jpeg"]).await;
    cam.publish(Frame::rgba(64, 32, pattern(64, 32, 0)))
        .unwrap();
    let (h, _) = c.recv_frame().await;
    c.ack(h.seq()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (status, body) = http_get(addr, "/streams").await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&body).unwrap();
    let cam_entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cam")
        .unwrap();
    assert_eq!(
        (cam_entry["width"].as_u64(), cam_entry["height"].as_u64()),
        (Some(64), Some(32))
    );
    assert_eq!(cam_entry["clients"], 1);
    let def = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "default")
        .unwrap();
    assert_eq!(def["fps"], 30.0);

    let (status, body) = http_get(addr, "/streams/cam/metrics").await;
    assert_eq!(status, 200);
    let m: Value = serde_json::from_str(&body).unwrap();
    let m = &m[0];
    for field in [
        "client_id",
        "elapsed_s",
        "frames_sent",
        "frames_dropped",
        "frames_acked",
        "keyframes_sent",
        "bytes_sent",
        "fps_sent",
        "fps_acked",
        "bitrate_bps",
        "encode_ms",
        "rtt_ms",
        "decode_queue_size",
        "inflight",
        "target_bitrate",
        "target_fps",
    ] {
        assert!(m.get(field).is_some(), "metrics lack {field}: {m}");
    }
    assert_eq!(m["client_id"].as_u64(), Some(c.session_id()));
    assert_eq!(
        (m["frames_sent"].as_u64(), m["frames_acked"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(m["bytes_sent"].as_u64().unwrap() > 100);

    let (status, body) = http_get(addr, "/streams/nope/metrics").await;
    assert_eq!((status, body.as_str()), (404, "[]"));
    assert_eq!(http_get(addr, "/metrics").await.0, 200);
}

#[tokio::test]
async fn recorded_events_and_reset() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    server
        .add_stream("default", 8, 8, StreamConfig::default().record_events(true))
        .unwrap();
    let mut c = Client::open(addr, "/", &["image/jpeg"]).await;
    c.send_json(json!({"type":"event","event":{"event_type":"key_down","key":"q"}}))
        .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, body) = http_get(addr, "/recorded-events").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["event"]["event_type"], "key_down");
    assert_eq!(v[0]["event"]["key"], "q");
    assert_eq!(v[0]["client_id"].as_u64(), Some(c.session_id()));
    let (_, body) = http_get(addr, "/streams/default/recorded-events").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    http_get(addr, "/recorded-events/reset").await;
    assert_eq!(http_get(addr, "/recorded-events").await.1, "[]");
}

#[tokio::test]
async fn pages_and_assets_are_served() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    server
        .add_stream("cam", 8, 8, StreamConfig::default())
        .unwrap();
    let (status, body) = http_get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<html") || body.contains("<!doctype") || body.contains("<!DOCTYPE"),
        "{body}"
    );
    let (status, body) = http_get(addr, "/cam").await;
    assert_eq!(status, 200);
    assert!(body.contains("framehub"));
    assert_eq!(http_get(addr, "/nope").await.0, 404);
    let (status, body) = http_get(addr, "/_/framehub.js").await;
    assert_eq!(status, 200);
    assert!(body.contains("RemoteFramebufferView"));
    assert_eq!(http_get(addr, "/_/missing.js").await.0, 404);
}

#[tokio::test]
async fn events_are_appended_to_a_json_lines_file() {
    let path = std::env::temp_dir().join(format!("framehub-record-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = StreamConfig {
        record_file: Some(path.clone()),
        ..StreamConfig::default()
    };
    server.add_stream("rec", 8, 8, cfg).unwrap();
    let mut c = Client::open(addr, "/rec", &["image/jpeg"]).await;
    for k in ["a", "b", "c"] {
        c.send_json(json!({"type":"event","event":{"event_type":"key_down","key":k}}))
            .await;
    }
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        if lines.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let keys: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"]["key"].clone())
        .collect();
    assert_eq!(keys, [json!("a"), json!("b"), json!("c")]);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["client_id"].as_u64(), Some(c.session_id()));
    let _ = std::fs::remove_file(&path);
}

/// The value of the Prometheus sample `name{labels}` in `text` (labels as
/// written, e.g. `stream="cam"`), or None.
pub fn prometheus_sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let want = if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines().find_map(|l| {
        l.strip_prefix(&want)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn prometheus_exposes_the_hubs_counters() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("cam", 64, 48, StreamConfig::default())
        .unwrap();
    let mut c = Client::open(addr, "/cam", &["image/jpeg"]).await;
    stream
        .publish(Frame::rgba(64, 48, pattern(64, 48, 1)))
        .unwrap();
    let (h, p) = c.recv_frame().await;
    c.ack(h.seq()).await;
    // A viewer of an unknown stream is closed with 4404 and counted.
    let mut gone = Client::connect(addr, "/nope").await;
    assert_eq!(gone.recv_close().await.0, 4404);
    let (code, text) = http_get(addr, "/_/prometheus").await;
    assert_eq!(code, 200);
    let s = |name: &str, labels: &str| {
        prometheus_sample(&text, name, labels)
            .unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
    };
    assert_eq!(s("framehub_viewers", r#"stream="cam""#), 1.0);
    assert_eq!(s("framehub_connections", ""), 1.0);
    assert_eq!(s("framehub_closes_total", r#"code="4404""#), 1.0);
    assert!(s("framehub_bytes_out_total", r#"stream="cam""#) >= p.len() as f64);
    assert_eq!(s("framehub_frames_sent_total", r#"stream="cam""#), 1.0);
    assert_eq!(
        s(
            "framehub_encodes_total",
            r#"stream="cam",format="jpeg",tier="0""#
        ),
        1.0
    );
    assert_eq!(
        s(
            "framehub_publisher_state",
            r#"stream="cam",source="local",state="online""#
        ),
        1.0
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    // A viewer that left still counts in the totals.
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, text) = http_get(addr, "/_/prometheus").await;
    assert_eq!(
        prometheus_sample(&text, "framehub_viewers", r#"stream="cam""#),
        Some(0.0)
    );
    assert_eq!(
        prometheus_sample(&text, "framehub_frames_sent_total", r#"stream="cam""#),
        Some(1.0)
    );
}
