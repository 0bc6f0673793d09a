//! Input events from viewers to the publisher.

use std::time::Duration;

use framehub::{InputEvent, InputPolicy, Server, StreamConfig};
use futures_util::StreamExt;
use serde_json::json;

use crate::common::*;

async fn wait_events(stream: &framehub::Stream, n: usize) -> Vec<framehub::ViewerEvent> {
    let mut got = Vec::new();
    for _ in 0..100 {
        got.extend(stream.poll_events());
        if got.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got
}

#[tokio::test]
async fn events_reach_poll_events_with_viewer_id_and_fields() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("s", 100, 80, StreamConfig::default())
        .unwrap();
    let mut c = Client::open(addr, "/s", &["image/jpeg"]).await;
    c.send_json(json!({"type":"event","event":{"event_type":"pointer_down","x":12.5,"y":40,"button":1,"buttons":[1],"modifiers":["Shift"],"timestamp":1.5}})).await;
    c.send_json(json!({"type":"event","event":{"event_type":"wheel","x":1,"y":2,"dx":0,"dy":-32}}))
        .await;
    c.send_json(json!({"type":"event","event":{"event_type":"pointer_move","x":"bad","y":2}}))
        .await;
    c.send_json(json!({"type":"event","event":{"event_type":"key_down","key":"r","code":"KeyR"}}))
        .await;
    c.send_json(json!({"type":"set_viewport","width":640,"height":400,"pwidth":1280,"pheight":800,"ratio":2})).await;
    let evs = wait_events(&stream, 4).await;
    let types: Vec<_> = evs.iter().map(|e| e.event.event_type()).collect();
    assert_eq!(types, ["pointer_down", "wheel", "key_down", "resize"]);
    assert!(evs
        .iter()
        .all(|e| e.client_id == c.session_id() && e.principal.is_none()));
    match &evs[0].event {
        InputEvent::PointerDown(p) => {
            assert_eq!((p.x, p.y, p.button), (12.5, 40.0, 1));
            assert_eq!(p.modifiers, vec![framehub::event::Modifier::Shift]);
        }
        other => panic!("{other:?}"),
    }
    match &evs[3].event {
        InputEvent::Resize(r) => assert_eq!((r.pwidth, r.pheight, r.ratio), (1280, 800, 2.0)),
        other => panic!("{other:?}"),
    }
    assert!(evs[1].received_us >= evs[0].received_us);
    // The invalid event was dropped and counted; the viewer stays connected.
    let m = stream.metrics();
    assert_eq!(m[0].events_dropped, 1);
}

#[tokio::test]
async fn events_stream_yields_and_ends_when_the_server_closes() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("s", 10, 10, StreamConfig::default())
        .unwrap();
    let mut events = Box::pin(stream.events());
    let mut c = Client::open(addr, "/s", &["image/jpeg"]).await;
    c.send_json(json!({"type":"event","event":{"event_type":"key_up","key":"a"}}))
        .await;
    let ev = tokio::time::timeout(T, events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event.event_type(), "key_up");
    server.close().await;
    assert!(tokio::time::timeout(T, events.next())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_event_queue_is_bounded_and_drops_the_oldest() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = StreamConfig {
        event_queue: 3,
        ..StreamConfig::default()
    };
    let stream = server.add_stream("s", 10, 10, cfg).unwrap();
    let mut c = Client::open(addr, "/s", &["image/jpeg"]).await;
    for k in ["a", "b", "c", "d", "e"] {
        c.send_json(json!({"type":"event","event":{"event_type":"key_down","key":k}}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let keys: Vec<String> = stream
        .poll_events()
        .into_iter()
        .map(|e| match e.event {
            InputEvent::KeyDown(k) => k.key,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(keys, ["c", "d", "e"]);
    assert_eq!(stream.events_dropped(), 2);
}

#[tokio::test]
async fn view_only_stream_delivers_no_events_and_says_so() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream(
            "s",
            10,
            10,
            StreamConfig::default().input(InputPolicy::None),
        )
        .unwrap();
    let mut c = Client::open(addr, "/s", &["image/jpeg"]).await;
    assert_eq!(c.config.as_ref().unwrap()["controller"], false);
    c.send_json(json!({"type":"event","event":{"event_type":"key_down","key":"a"}}))
        .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(stream.poll_events().is_empty());
    assert_eq!(stream.metrics()[0].events_dropped, 1);
}

#[tokio::test]
async fn first_policy_hands_control_to_the_next_viewer() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream(
            "s",
            10,
            10,
            StreamConfig::default().input(InputPolicy::First),
        )
        .unwrap();
    let first = Client::open(addr, "/s", &["image/jpeg"]).await;
    let mut second = Client::open(addr, "/s", &["image/jpeg"]).await;
    // The second viewer is told it does not control (in config or a control message).
    let mut controls = second.config.as_ref().unwrap()["controller"]
        .as_bool()
        .unwrap();
    if let Some(Received::Text(v)) = second.recv_within(Duration::from_millis(200)).await {
        if v["type"] == "control" {
            controls = v["controller"].as_bool().unwrap();
        }
    }
    assert!(!controls);
    drop(first);
    loop {
        match second.recv().await {
            Received::Text(v) if v["type"] == "control" => {
                assert_eq!(v["controller"], true);
                break;
            }
            Received::Close(c, r) => panic!("closed {c} {r}"),
            _ => {}
        }
    }
    second
        .send_json(json!({"type":"event","event":{"event_type":"key_down","key":"z"}}))
        .await;
    assert_eq!(wait_events(&stream, 1).await.len(), 1);
}

#[tokio::test]
async fn under_the_controller_resize_policy_only_the_controller_sets_a_clamped_debounced_target() {
    use framehub::ResizePolicy;
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let policy = ResizePolicy::Controller {
        max_size: (1920, 1080),
        debounce: Duration::from_millis(150),
    };
    let cfg = StreamConfig {
        resize_policy: policy,
        ..StreamConfig::default()
    }
    .input(InputPolicy::First);
    let stream = server.add_stream("s", 64, 64, cfg).unwrap();
    let mut controller = Client::open(addr, "/s", &["image/jpeg"]).await;
    let mut other = Client::open(addr, "/s", &["image/jpeg"]).await;
    assert_eq!(stream.target_size(), None);
    let viewport = |w: u32, h: u32| json!({"type":"set_viewport","width":w,"height":h,"pwidth":w,"pheight":h,"ratio":1});
    controller.send_json(viewport(5000, 3001)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stream.target_size(),
        Some((1920, 1080)),
        "clamped to max_size"
    );
    controller.send_json(viewport(801, 601)).await;
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(
        stream.target_size(),
        Some((1920, 1080)),
        "not before the debounce"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(stream.target_size(), Some((800, 600)), "even sides");
    other.send_json(viewport(300, 300)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stream.target_size(),
        Some((800, 600)),
        "a viewer without control changes nothing"
    );
}
