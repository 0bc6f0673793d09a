//! The index page: every stream listed with a live view.

use std::time::Duration;

use framehub::{Frame, Server, StreamConfig};

use crate::harness::Browser;
use crate::picture::pattern;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_lists_every_stream_and_its_live_views_draw() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let mut streams = Vec::new();
    for (i, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let s = server
            .add_stream(name, 160, 90, StreamConfig::default())
            .unwrap();
        s.publish(Frame::rgba(160, 90, pattern(160, 90, i as u8)))
            .unwrap();
        streams.push(s);
    }
    let b = Browser::start(1000, 700).await;
    b.client.goto(&format!("http://{addr}/")).await.unwrap();
    let w = Duration::from_secs(15);
    b.wait_for(
        "window.framehubIndex && window.framehubIndex.cards.size === 3",
        w,
        "three cards",
    )
    .await;
    b.wait_for(
        "[...window.framehubIndex.cards.values()].every(v => v.getStats().framesDrawn >= 1)",
        w,
        "every live view drew",
    )
    .await;
    let text = b.js("return document.body.innerText").await;
    for name in ["alpha", "beta", "gamma"] {
        assert!(text.as_str().unwrap().contains(name), "{text}");
    }
    b.screenshot("index").await;
    // Streams that come and go appear and disappear.
    let late = server
        .add_stream("delta", 64, 64, StreamConfig::default())
        .unwrap();
    late.publish(Frame::rgba(64, 64, pattern(64, 64, 3)))
        .unwrap();
    b.wait_for(
        "window.framehubIndex.cards.has('delta')",
        w,
        "the new stream's card",
    )
    .await;
    server.remove_stream("alpha");
    b.wait_for(
        "!window.framehubIndex.cards.has('alpha')",
        w,
        "the removed stream's card gone",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_work_when_the_hub_is_nested_in_a_larger_app() {
    let server = Server::builder().build();
    let s = server
        .add_stream("cam", 160, 90, StreamConfig::default())
        .unwrap();
    s.publish(Frame::rgba(160, 90, pattern(160, 90, 0)))
        .unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the user's own app" }))
        .nest("/fh", server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let b = Browser::start(800, 600).await;
    let w = Duration::from_secs(15);
    b.client
        .goto(&format!("http://{addr}/fh/cam"))
        .await
        .unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.framesDrawn >= 1",
        w,
        "a frame under /fh/",
    )
    .await;
    // (axum's `nest` routes the hub's `/` as `/fh`, not `/fh/`.)
    b.client.goto(&format!("http://{addr}/fh")).await.unwrap();
    b.wait_for(
        "window.framehubIndex && window.framehubIndex.cards.has('cam')",
        w,
        "the index at /fh",
    )
    .await;
    b.wait_for(
        "window.framehubIndex.cards.get('cam').getStats().framesDrawn >= 1",
        w,
        "its live view",
    )
    .await;
}
