//! WebRTC signalling over real sockets (docs/protocol.md §12): what a bad
//! or refused offer is answered, the WHEP resource, the limits counting
//! peers, a peer that never connects freeing its place, and datagrams no
//! peer owns. (The media path is tested with Chromium and aiortc.)

use std::net::SocketAddr;
use std::time::Duration;

use framehub::{authenticator, AuthError, Principal, ServerConfig, StreamConfig};
use serde_json::{json, Value};

use crate::common::*;

/// A browser's offer: recvonly video with VP8 and H.264 (Constrained
/// Baseline, packetization-mode 1), and a data channel.
const OFFER: &str = include_str!("../../../framehub-webrtc/testdata/browser-offer.sdp");

async fn offer_json(addr: SocketAddr, stream: &str, body: Value) -> (u16, String) {
    let (status, _, body) = http(
        addr,
        "POST",
        &format!("/{stream}/webrtc"),
        "application/json",
        &body.to_string(),
    )
    .await;
    (status, body)
}

fn offer() -> Value {
    json!({"sdp": OFFER, "type": "offer"})
}

async fn webrtc_stats(addr: SocketAddr) -> Value {
    let (status, body) = http_get(addr, "/_/webrtc").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).expect("json")["stats"].clone()
}

#[tokio::test]
async fn offers_are_answered_or_refused_with_a_status_that_says_why() {
    let (server, addr) = hub_with(ServerConfig::default()).await;
    let _video = server
        .add_stream("vid", 64, 48, StreamConfig::default().h264(true))
        .expect("stream");
    let _images = server
        .add_stream("img", 64, 48, StreamConfig::default())
        .expect("stream");
    let secret = StreamConfig::default()
        .h264(true)
        .authenticate(authenticator(|ctx| async move {
            match ctx.token.as_deref() {
                Some("good") => Ok(Some(Principal::new("ann"))),
                _ => Err(AuthError("bad or missing token".into())),
            }
        }));
    let _secret = server.add_stream("secret", 64, 48, secret).expect("stream");

    // An answer: ICE-lite, H.264 only, the hub's host candidate on this port.
    let (status, body) = offer_json(addr, "vid", offer()).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json answer");
    assert_eq!(answer["type"], "answer");
    let sdp = answer["sdp"].as_str().expect("sdp");
    assert!(sdp.contains("a=ice-lite"), "{sdp}");
    assert!(sdp.contains("H264/90000") && !sdp.contains("VP8"), "{sdp}");
    assert!(
        sdp.contains(&format!("127.0.0.1 {} typ host", addr.port())),
        "{sdp}"
    );

    // Bad bodies: 400 with the reason.
    let (status, body) =
        offer_json(addr, "vid", json!({"sdp": "v=0 nonsense", "type": "offer"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("malformed SDP") && !body.contains("0x"),
        "{body}"
    );
    let (status, _, body) = http(addr, "POST", "/vid/webrtc", "application/json", "{").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = offer_json(addr, "vid", json!({"sdp": OFFER, "type": "answer"})).await;
    assert_eq!(status, 400, "{body}");
    let no_dc = &OFFER[..OFFER.find("m=application").expect("m=application")];
    let (status, body) = offer_json(addr, "vid", json!({"sdp": no_dc, "type": "offer"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("data channel"), "{body}");
    let vp8_only = OFFER
        .replace("SAVPF 96 102", "SAVPF 96")
        .replace("a=rtcp-fb:102 nack pli\r\n", "")
        .replace("a=rtpmap:102 H264/90000\r\n", "")
        .replace(
            "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n",
            "",
        );
    let (status, body) = offer_json(addr, "vid", json!({"sdp": vp8_only, "type": "offer"})).await;
    assert_eq!(status, 406, "{body}");
    assert!(body.contains("H.264"), "{body}");
    let huge = "v".repeat(70_000);
    let (status, _, _) = http(addr, "POST", "/vid/whep", "application/sdp", &huge).await;
    assert_eq!(status, 413);

    // The stream decides: unknown 404, authentication 401. A stream that
    // offers WebSocket viewers no H.264 still answers peers (its chain runs for them).
    let (status, body) = offer_json(addr, "nosuch", offer()).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = offer_json(addr, "img", offer()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = offer_json(addr, "secret", offer()).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = offer_json(
        addr,
        "secret",
        json!({"sdp": OFFER, "type": "offer", "token": "bad"}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = offer_json(
        addr,
        "secret",
        json!({"sdp": OFFER, "type": "offer", "token": "good"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = http(
        addr,
        "POST",
        "/secret/whep?token=good",
        "application/sdp",
        OFFER,
    )
    .await;
    assert_eq!(status, 201, "the token in the query: {body}");

    // WHEP: 201, the answer as SDP, a Location to DELETE; PATCH (trickle) 405.
    let (status, _, _) = http(addr, "POST", "/vid/whep", "application/json", OFFER).await;
    assert_eq!(status, 415);
    let (status, head, body) = http(addr, "POST", "/vid/whep", "application/sdp", OFFER).await;
    assert_eq!(status, 201, "{body}");
    assert!(head.contains("content-type: application/sdp"), "{head}");
    assert!(body.starts_with("v=0"), "{body}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .expect("Location")
        .trim()
        .to_string();
    assert!(location.starts_with("/_/webrtc/"), "{location}");
    let (status, _, _) = http(
        addr,
        "PATCH",
        &location,
        "application/trickle-ice-sdpfrag",
        "a=x",
    )
    .await;
    assert_eq!(status, 405);
    let (status, _, _) = http(addr, "DELETE", &location, "text/plain", "").await;
    assert_eq!(status, 200);
    let (status, _, _) = http(addr, "DELETE", "/_/webrtc/999999", "text/plain", "").await;
    assert_eq!(status, 404);

    let stats = webrtc_stats(addr).await;
    assert!(
        stats["accepted"].as_u64().expect("accepted") >= 4,
        "{stats}"
    );
    assert_eq!(stats["panics"], 0, "{stats}");
}

#[tokio::test]
async fn peers_count_in_the_limits_and_one_that_never_connects_frees_its_place() {
    let mut cfg = ServerConfig::default();
    cfg.webrtc.connect_timeout = Duration::from_millis(800);
    cfg.exempt_loopback = false;
    cfg.max_per_address = Some(2);
    let (server, addr) = hub_with(cfg).await;
    let mut one = StreamConfig::default().h264(true);
    one.max_viewers = 1;
    let _stream = server.add_stream("one", 64, 48, one).expect("stream");
    let _other = server
        .add_stream("other", 64, 48, StreamConfig::default().h264(true))
        .expect("stream");

    let (status, body) = offer_json(addr, "one", offer()).await;
    assert_eq!(status, 200, "{body}");
    // The stream's viewer limit counts the peer.
    let (status, body) = offer_json(addr, "one", offer()).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too many viewers"), "{body}");
    // So does the per-address limit (the second place from 127.0.0.1).
    let (status, body) = offer_json(addr, "other", offer()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = offer_json(addr, "other", offer()).await;
    assert_eq!(status, 429, "{body}");

    // Nobody completes ICE: after the connect timeout both are dropped and
    // their places freed.
    let mut freed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = webrtc_stats(addr).await;
        if stats["peers"] == 0 && stats["connect_timeouts"].as_u64() >= Some(2) {
            freed = true;
            break;
        }
    }
    assert!(freed, "peers dropped: {}", webrtc_stats(addr).await);
    let (status, body) = offer_json(addr, "one", offer()).await;
    assert_eq!(status, 200, "the place is free again: {body}");
}

#[tokio::test]
async fn datagrams_that_belong_to_no_peer_are_dropped_and_counted() {
    let (_server, addr) = hub_with(ServerConfig::default()).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    // Garbage, a fake RTP packet, and a STUN binding request for an unknown ufrag.
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[9; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"nobody:x");
    for d in [&b"hello"[..], &[0x80; 100][..], &stun[..]] {
        udp.send_to(d, addr).await.expect("send");
    }
    let mut counted = 0;
    for _ in 0..50 {
        counted = webrtc_stats(addr).await["unknown_datagrams"]
            .as_u64()
            .expect("count");
        if counted >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counted, 3);
    // The hub carries on.
    let (status, _) = http_get(addr, "/health").await;
    assert_eq!(status, 200);
}
