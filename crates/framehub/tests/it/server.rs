//! The hub's lifecycle and Rust API.

use std::time::Duration;

use framehub::{Error, Frame, Server, StreamConfig};
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn add_stream_refuses_taken_and_reserved_names() {
    let server = Server::builder().build();
    server
        .add_stream("a", 8, 8, StreamConfig::default())
        .unwrap();
    assert!(matches!(
        server.add_stream("a", 8, 8, StreamConfig::default()),
        Err(Error::StreamExists(_))
    ));
    for bad in [
        "health",
        "streams",
        "metrics",
        "recorded-events",
        "_x",
        "",
        "a/b",
        "sp ace",
        &"x".repeat(65),
    ] {
        assert!(
            matches!(
                server.add_stream(bad, 8, 8, StreamConfig::default()),
                Err(Error::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        server.add_stream("big", 20_000, 8, StreamConfig::default()),
        Err(Error::InvalidFrame(_))
    ));
    assert!(server.remove_stream("a"));
    assert!(!server.remove_stream("a"));
    server
        .add_stream("a", 8, 8, StreamConfig::default())
        .unwrap();
}

#[tokio::test]
async fn streams_added_after_listening_are_reachable_and_removal_closes_viewers() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let late = server
        .add_stream("late", 8, 8, StreamConfig::default())
        .unwrap();
    let mut c = Client::open(addr, "/late", &["image/jpeg"]).await;
    assert!(server.remove_stream("late"));
    assert_eq!(c.recv_close().await.0, 1001);
    assert!(matches!(
        late.publish(Frame::rgba(8, 8, vec![0u8; 256])),
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn close_sends_1001_to_every_viewer_and_releases_the_port() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    server
        .add_stream("a", 8, 8, StreamConfig::default())
        .unwrap();
    server
        .add_stream("b", 8, 8, StreamConfig::default())
        .unwrap();
    let mut ca = Client::open(addr, "/a", &["image/jpeg"]).await;
    let mut cb = Client::open(addr, "/b", &["image/jpeg"]).await;
    server.close().await;
    assert_eq!(ca.recv_close().await.0, 1001);
    assert_eq!(cb.recv_close().await.0, 1001);
    let again = Server::bind(addr).await.expect("the port is free again");
    again.close().await;
}

#[tokio::test]
async fn dropping_every_handle_closes_the_hub() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let stream = server
        .add_stream("a", 8, 8, StreamConfig::default())
        .unwrap();
    let mut c = Client::open(addr, "/a", &["image/jpeg"]).await;
    drop(server);
    stream.publish(Frame::rgba(8, 8, vec![1u8; 256])).unwrap();
    drop(stream);
    assert_eq!(c.recv_close().await.0, 1001);
}

#[tokio::test]
async fn serve_one_liner_reaches_its_server() {
    let display = framehub::serve_on("127.0.0.1:0", 32, 16).await.unwrap();
    let addr = display.server().local_addr().unwrap();
    assert_eq!(display.name(), "default");
    let extra = display
        .server()
        .add_stream("extra", 8, 8, StreamConfig::default())
        .unwrap();
    assert_eq!(extra.size(), (8, 8));
    let mut c = Client::open(addr, "/", &["image/jpeg"]).await;
    assert_eq!(c.config.as_ref().unwrap()["stream"], "default");
    display.close().await;
    assert_eq!(c.recv_close().await.0, 1001);
}

#[tokio::test]
async fn the_router_nests_inside_a_user_app() {
    let server = Server::builder().build();
    let stream = server
        .add_stream("default", 8, 8, StreamConfig::default())
        .unwrap();
    let app = axum::Router::new()
        .route("/mine", axum::routing::get(|| async { "user route" }))
        .nest("/fh", server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    assert_eq!(http_get(addr, "/mine").await.1, "user route");
    let (status, body) = http_get(addr, "/fh/streams").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()[0]["name"],
        "default"
    );
    let mut c = Client::open(addr, "/fh/default", &["image/jpeg"]).await;
    stream.publish(Frame::rgba(8, 8, pattern(8, 8, 0))).unwrap();
    c.recv_frame().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}
