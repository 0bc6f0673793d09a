//! Each limit closes only the viewer that exceeds it, with the spec's code and a reason, and is counted.

use std::time::{Duration, Instant};

use framehub::{Frame, Server, ServerConfig, StreamConfig};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// A hub with `cfg`, listening on a free port, with one stream `a` (8×8, default settings).
async fn hub_with_stream_a(cfg: ServerConfig) -> (Server, std::net::SocketAddr) {
    let (server, addr) = hub_with(cfg).await;
    server
        .add_stream("a", 8, 8, StreamConfig::default())
        .unwrap();
    (server, addr)
}

/// A stream that allows 50 events/s beyond a burst of 20.
fn rate_limited() -> StreamConfig {
    StreamConfig {
        events_per_second: 50.0,
        event_burst: 20.0,
        ..StreamConfig::default()
    }
}

async fn hub_metrics(addr: std::net::SocketAddr) -> Value {
    serde_json::from_str(&http_get(addr, "/_/metrics").await.1).unwrap()
}

#[tokio::test]
async fn viewers_per_stream_and_connections_per_hub_are_bounded() {
    let cfg = ServerConfig {
        max_connections: 3,
        ..ServerConfig::default()
    };
    let (server, addr) = hub_with(cfg).await;
    server
        .add_stream(
            "a",
            8,
            8,
            StreamConfig {
                max_viewers: 2,
                ..StreamConfig::default()
            },
        )
        .unwrap();
    server
        .add_stream("b", 8, 8, StreamConfig::default())
        .unwrap();
    let _a1 = Client::open(addr, "/a", &["image/jpeg"]).await;
    let _a2 = Client::open(addr, "/a", &["image/jpeg"]).await;
    let mut a3 = Client::connect(addr, "/a").await;
    assert_eq!(
        a3.recv_close().await,
        (1008, "too many viewers of this stream".to_string())
    );
    let _b1 = Client::open(addr, "/b", &["image/jpeg"]).await;
    let mut b2 = Client::connect(addr, "/b").await;
    assert_eq!(
        b2.recv_close().await,
        (1008, "too many connections to this hub".to_string())
    );
    let m = hub_metrics(addr).await;
    assert_eq!(m["refused"]["too many viewers of this stream"], 1, "{m}");
    assert_eq!(m["refused"]["too many connections to this hub"], 1, "{m}");
    assert_eq!(m["connections"], 3);
}

#[tokio::test]
async fn connections_per_address_are_bounded() {
    let cfg = ServerConfig {
        max_per_address: Some(2),
        exempt_loopback: false,
        ..ServerConfig::default()
    };
    let (_server, addr) = hub_with_stream_a(cfg).await;
    let c1 = Client::open(addr, "/a", &["image/jpeg"]).await;
    let _c2 = Client::open(addr, "/a", &["image/jpeg"]).await;
    let mut c3 = Client::connect(addr, "/a").await;
    assert_eq!(
        c3.recv_close().await,
        (1008, "too many connections from this address".to_string())
    );
    // A place frees up when a viewer leaves.
    drop(c1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _c4 = Client::open(addr, "/a", &["image/jpeg"]).await;
}

#[tokio::test]
async fn no_hello_in_time_closes_1008() {
    let cfg = ServerConfig {
        hello_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let (_server, addr) = hub_with_stream_a(cfg).await;
    let mut c = Client::connect(addr, "/a").await;
    let t = Instant::now();
    assert_eq!(c.recv_close().await, (1008, "no hello in time".to_string()));
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert_eq!(hub_metrics(addr).await["closes"]["1008"], 1);
}

#[tokio::test]
async fn too_many_events_close_only_that_viewer() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = rate_limited();
    let stream = server.add_stream("a", 8, 8, cfg).unwrap();
    let mut calm = Client::open(addr, "/a", &["image/jpeg"]).await;
    let mut flood = Client::open(addr, "/a", &["image/jpeg"]).await;
    for _ in 0..100 {
        flood
            .send_json(json!({"type":"event","event":{"event_type":"pointer_move","x":1,"y":1}}))
            .await;
    }
    let (code, reason) = flood.recv_close().await;
    assert_eq!(code, 1008);
    assert!(reason.contains("rate"), "{reason}");
    calm.send_json(json!({"type":"event","event":{"event_type":"key_down","key":"a"}}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let evs = stream.poll_events();
    assert!(
        evs.iter().any(|e| e.client_id == calm.session_id()),
        "the calm viewer's event arrives"
    );
    assert!(
        evs.iter()
            .filter(|e| e.client_id == flood.session_id())
            .count()
            <= 21,
        "at most the burst (+1 refilled)"
    );
}

#[tokio::test]
async fn a_viewer_that_never_acks_is_closed_when_idle() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = StreamConfig {
        idle_timeout: Duration::from_millis(800),
        ..StreamConfig::default()
    };
    let stream = server.add_stream("a", 8, 8, cfg).unwrap();
    let mut lazy = Client::open(addr, "/a", &["image/png"]).await;
    let mut good = Client::open(addr, "/a", &["image/png"]).await;
    stream.publish(Frame::rgba(8, 8, pattern(8, 8, 0))).unwrap();
    let (h, _) = good.recv_frame().await;
    good.ack(h.seq()).await;
    let (code, reason) = lazy.recv_close().await;
    assert_eq!(code, 1008);
    assert!(reason.starts_with("idle"), "{reason}");
    stream.publish(Frame::rgba(8, 8, pattern(8, 8, 1))).unwrap();
    let (h, _) = good.recv_frame().await;
    assert_eq!(h.seq(), 1, "the acking viewer carries on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_stops_reading_is_dropped_when_its_socket_stays_full() {
    let cfg = ServerConfig {
        write_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let (server, addr) = hub_with(cfg).await;
    let big = server
        .add_stream("big", 1024, 1024, StreamConfig::default().max_inflight(8))
        .unwrap();
    let small = server
        .add_stream("small", 8, 8, StreamConfig::default())
        .unwrap();
    // Never reads: its socket buffers fill, then the hub's writes stall.
    let _stuck = Client::open(addr, "/big", &["image/png"]).await;
    let mut s = Client::open(addr, "/small", &["image/png"]).await;
    let mut x = 0x9E37_79B9u32;
    let t = Instant::now();
    while big.client_count() > 0 && t.elapsed() < Duration::from_secs(20) {
        // Noise does not compress: each PNG is ~4 MiB.
        let noise: Vec<u8> = (0..1024 * 1024 * 4)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        big.publish(Frame::rgba(1024, 1024, noise)).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Dropped on a stalled write (counted), or its connection reset: either way gone, memory bounded.
    assert_eq!(
        big.client_count(),
        0,
        "the stuck viewer was dropped: {}",
        hub_metrics(addr).await
    );
    small.publish(Frame::rgba(8, 8, pattern(8, 8, 0))).unwrap();
    s.recv_frame().await;
}

/// A viewer closed while it is still sending (here: flooding events) must
/// still read the close frame and its code: the hub must not reset the
/// connection on the data it has not read, which throws away what it has
/// not sent yet, the close frame included (found by `framehub soak`;
/// before the fix 2–4 of these 100 floods ended in a reset, in every run).
#[tokio::test]
async fn a_viewer_closed_while_it_floods_reads_the_close_code() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = rate_limited();
    let (w, h) = (1024u32, 768u32);
    let stream = server.add_stream("a", w, h, cfg).unwrap();
    // Noise: large JPEGs, so frames to the viewer are still queued when the hub closes it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let stop = std::sync::Arc::clone(&stop);
        let stream = stream.clone();
        std::thread::spawn(move || {
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let mut frame = vec![255u8; (w * h * 4) as usize];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for px in frame.chunks_mut(4) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    px[..3].copy_from_slice(&x.to_le_bytes()[..3]);
                }
                let _ = stream.publish(Frame::rgba(w, h, &frame[..]));
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let event = r#"{"type":"event","event":{"event_type":"pointer_move","x":1,"y":1}}"#;
    let mut lost = Vec::new();
    for attempt in 0..100 {
        let mut flood = Client::open(addr, "/a", &["image/jpeg"]).await;
        'flood: for _ in 0..40 {
            for _ in 0..50 {
                if flood.ws.feed(Message::Text(event.into())).await.is_err() {
                    break 'flood;
                }
            }
            if flood.ws.flush().await.is_err() {
                break;
            }
        }
        let (code, reason) = flood.recv_close().await;
        if code != 1008 || !reason.contains("rate") {
            lost.push(format!("attempt {attempt}: {code} {reason}"));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.join().unwrap();
    assert!(lost.is_empty(), "{lost:?}");
}

/// Reads from `tcp` until the peer closes it (Ok) or `within` passes (Err).
async fn closed_within(tcp: &mut tokio::net::TcpStream, within: Duration) -> Result<(), ()> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .map_err(|_| ())
}

#[tokio::test]
async fn slow_request_headers_are_cut_off_and_counted() {
    use tokio::io::AsyncWriteExt;
    let cfg = ServerConfig {
        header_read_timeout: Duration::from_millis(400),
        ..ServerConfig::default()
    };
    let (_server, addr) = hub_with_stream_a(cfg).await;
    // A slow loris: a request line, then a header byte now and then.
    let mut loris = tokio::net::TcpStream::connect(addr).await.unwrap();
    loris
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let drip = async {
        for b in b"X-Slow: 1234567890" {
            if loris.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    drip.await;
    assert!(
        closed_within(&mut loris, Duration::from_secs(5))
            .await
            .is_ok(),
        "the hub closes a connection whose headers never finish"
    );
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    // An idle connection that never sends a byte goes the same way.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(5))
        .await
        .is_ok());
    // Viewers and REST were never disturbed, and the cut-offs are counted.
    let _v = Client::open(addr, "/a", &["image/jpeg"]).await;
    let m = hub_metrics(addr).await;
    assert!(m["header_timeouts"].as_u64().unwrap() >= 2, "{m}");
}

#[tokio::test]
async fn connections_still_in_http_are_bounded() {
    let cfg = ServerConfig {
        max_http_connections: 3,
        ..ServerConfig::default()
    };
    let (server, addr) = hub_with_stream_a(cfg).await;
    // An upgraded viewer no longer counts as an HTTP connection.
    let mut viewer = Client::open(addr, "/a", &["image/jpeg"]).await;
    // Three connections that send nothing take every HTTP place.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut fourth, Duration::from_secs(2))
            .await
            .is_ok(),
        "a connection beyond max_http_connections is closed on accept"
    );
    // The viewer is not disturbed.
    server
        .stream("a")
        .unwrap()
        .publish(Frame::rgba(8, 8, vec![9u8; 256]))
        .unwrap();
    let (h, _) = viewer.recv_frame().await;
    assert_eq!(h.seq(), 0);
    // Places free up when those connections go.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = hub_metrics(addr).await;
    assert_eq!(m["refused"]["too many HTTP connections"], 1, "{m}");
}

#[tokio::test]
async fn one_address_cannot_take_every_http_place() {
    let cfg = ServerConfig {
        max_per_address: Some(2),
        exempt_loopback: false,
        ..ServerConfig::default()
    };
    let (_server, addr) = hub_with_stream_a(cfg).await;
    // Two connections that send nothing take this address's HTTP places.
    let held: Vec<_> =
        futures_util::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(addr)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(2))
            .await
            .is_ok(),
        "a third connection from the address is closed on accept"
    );
    // Their places free up when they go; the address is served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = hub_metrics(addr).await;
    assert_eq!(
        m["refused"]["too many HTTP connections from this address"], 1,
        "{m}"
    );
}
