//! Authentication paths and the origin allow-list.

use std::net::SocketAddr;
use std::time::Duration;

use framehub::{authenticator, AuthError, Origins, Principal, Server, StreamConfig};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

/// Admits token "good" as principal "ann", and only on streams not named "admin"
/// unless the token is "root" (one callback authorizing per stream).
fn auth() -> framehub::Authenticator {
    authenticator(|ctx| async move {
        match (ctx.token.as_deref(), ctx.stream.as_str()) {
            (Some("root"), _) => Ok(Some(Principal::new("root"))),
            (Some("good"), s) if s != "admin" => Ok(Some(Principal::new("ann"))),
            (Some("boom"), _) => panic!("authenticator bug"),
            _ => Err(AuthError("bad or missing token".into())),
        }
    })
}

async fn hub() -> (Server, SocketAddr) {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = StreamConfig {
        token_cookie: Some("fh_token".into()),
        ..StreamConfig::default()
    }
    .authenticate(auth());
    server.add_stream("cam", 8, 8, cfg.clone()).unwrap();
    server.add_stream("admin", 8, 8, cfg).unwrap();
    (server, addr)
}

async fn connect_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Client {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    Client { ws, config: None }
}

async fn principal_of_events(server: &Server, c: &mut Client) -> Option<String> {
    c.send_json(json!({"type":"event","event":{"event_type":"key_down","key":"k"}}))
        .await;
    let stream = server.stream("cam").unwrap();
    for _ in 0..100 {
        if let Some(ev) = stream.poll_events().pop() {
            return ev.principal.map(|p| p.as_str().to_string());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no event arrived");
}

async fn expect_config(c: &mut Client) {
    match c.recv().await {
        Received::Text(v) if v["type"] == "config" => c.config = Some(v),
        other => panic!("expected config, got {other:?}"),
    }
}

/// Connects to `path` with `headers`, says hello (with `token` if given),
/// and returns the principal the hub attached to one of its events.
async fn admitted_as(path: &str, headers: &[(&str, &str)], token: Option<&str>) -> Option<String> {
    let (server, addr) = hub().await;
    let mut c = connect_with(addr, path, headers).await;
    let mut hello = json!({"type":"hello","supported":["image/jpeg"]});
    if let Some(t) = token {
        hello["token"] = t.into();
    }
    c.send_json(hello).await;
    expect_config(&mut c).await;
    principal_of_events(&server, &mut c).await
}

#[tokio::test]
async fn token_in_hello_admits_and_the_principal_travels_with_events() {
    assert_eq!(
        admitted_as("/cam", &[], Some("good")).await.as_deref(),
        Some("ann")
    );
}

#[tokio::test]
async fn token_in_the_query_admits() {
    assert_eq!(
        admitted_as("/cam?token=good", &[], None).await.as_deref(),
        Some("ann")
    );
}

#[tokio::test]
async fn bearer_header_admits() {
    assert_eq!(
        admitted_as("/cam", &[("authorization", "Bearer good")], None)
            .await
            .as_deref(),
        Some("ann")
    );
}

#[tokio::test]
async fn the_configured_cookie_admits() {
    let cookie = [("cookie", "other=1; fh_token=good")];
    assert_eq!(
        admitted_as("/cam", &cookie, None).await.as_deref(),
        Some("ann")
    );
}

#[tokio::test]
async fn hello_token_wins_over_the_query() {
    let (_server, addr) = hub().await;
    let mut c = Client::connect(addr, "/cam?token=good").await;
    c.send_json(json!({"type":"hello","supported":["image/jpeg"],"token":"wrong"}))
        .await;
    assert_eq!(c.recv_close().await, (4401, "unauthorized".to_string()));
}

#[tokio::test]
async fn missing_wrong_or_failing_credentials_close_4401_and_others_carry_on() {
    let (_server, addr) = hub().await;
    let mut ok = Client::connect(addr, "/cam?token=good").await;
    ok.hello(&["image/jpeg"]).await;
    expect_config(&mut ok).await;
    for path in [
        "/cam",
        "/cam?token=nope",
        "/cam?token=boom",
        "/admin?token=good",
    ] {
        let mut c = Client::connect(addr, path).await;
        c.hello(&["image/jpeg"]).await;
        assert_eq!(
            c.recv_close().await,
            (4401, "unauthorized".to_string()),
            "{path}"
        );
    }
    let mut root = Client::connect(addr, "/admin?token=root").await;
    root.hello(&["image/jpeg"]).await;
    expect_config(&mut root).await;
    ok.send_json(json!({"type":"visibility","visible":true}))
        .await;
    assert!(
        ok.recv_within(Duration::from_millis(100)).await.is_none(),
        "the admitted viewer is still connected"
    );
}

async fn upgrade_status(addr: SocketAddr, origin: Option<&str>) -> u16 {
    let mut req = format!("ws://{addr}/s").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn foreign_origins_are_refused_at_the_upgrade() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    server
        .add_stream("s", 8, 8, StreamConfig::default())
        .unwrap();
    assert_eq!(
        upgrade_status(addr, None).await,
        101,
        "no Origin: not a browser page"
    );
    assert_eq!(
        upgrade_status(addr, Some(&format!("http://{addr}"))).await,
        101,
        "same origin"
    );
    assert_eq!(
        upgrade_status(addr, Some("http://localhost:3000")).await,
        101,
        "a loopback page, hub on loopback"
    );
    assert_eq!(
        upgrade_status(addr, Some("https://evil.example")).await,
        403
    );
    assert_eq!(
        upgrade_status(addr, Some("http://127.0.0.1.evil.example")).await,
        403
    );

    let listed = Server::builder()
        .origins(Origins::List(vec!["https://app.example".into()]))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = listed.local_addr().unwrap();
    listed
        .add_stream("s", 8, 8, StreamConfig::default())
        .unwrap();
    assert_eq!(upgrade_status(addr, Some("https://app.example")).await, 101);
    assert_eq!(
        upgrade_status(addr, Some("http://localhost:3000")).await,
        403,
        "only the list"
    );
    assert_eq!(
        upgrade_status(addr, Some("https://evil.example")).await,
        403
    );
}

#[tokio::test]
async fn a_protected_streams_rest_routes_need_its_credentials_and_health_stays_open() {
    let (_server, addr) = hub().await;
    assert_eq!(http_get(addr, "/health").await.0, 200);
    assert_eq!(http_get(addr, "/streams/cam/metrics").await.0, 401);
    assert_eq!(
        http_get(addr, "/streams/cam/metrics?token=nope").await.0,
        401
    );
    assert_eq!(
        http_get(addr, "/streams/cam/metrics?token=good").await.0,
        200
    );
    assert_eq!(http_get(addr, "/streams/cam/recorded-events").await.0, 401);
    assert_eq!(
        http_get(addr, "/streams/admin/metrics?token=good").await.0,
        401,
        "per-stream decision"
    );
    assert_eq!(
        http_get(addr, "/streams/admin/metrics?token=root").await.0,
        200
    );
    // No hub-level authenticator: the listing is open.
    assert_eq!(http_get(addr, "/streams").await.0, 200);
}

#[tokio::test]
async fn a_hub_level_authenticator_guards_the_listing_and_open_streams() {
    let cfg = framehub::ServerConfig {
        authenticate: Some(auth()),
        ..framehub::ServerConfig::default()
    };
    let (server, addr) = hub_with(cfg).await;
    server
        .add_stream("open", 8, 8, StreamConfig::default())
        .unwrap();
    assert_eq!(http_get(addr, "/health").await.0, 200);
    assert_eq!(http_get(addr, "/streams").await.0, 401);
    assert_eq!(http_get(addr, "/streams?token=good").await.0, 200);
    assert_eq!(http_get(addr, "/_/metrics").await.0, 401);
    assert_eq!(http_get(addr, "/_/metrics?token=good").await.0, 200);
    assert_eq!(http_get(addr, "/streams/open/metrics").await.0, 401);
    assert_eq!(
        http_get(addr, "/streams/open/metrics?token=good").await.0,
        200
    );
    // The pages and the client's files stay open (the WebSocket has its own checks).
    assert_eq!(http_get(addr, "/open").await.0, 200);
    assert_eq!(http_get(addr, "/_/framehub.js").await.0, 200);
}

#[tokio::test]
async fn an_input_filter_decides_per_principal() {
    use framehub::{InputFilter, InputPolicy};
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let only_ann =
        InputPolicy::Principals(InputFilter::new(|p| p.is_some_and(|p| p.as_str() == "ann")));
    let cfg = StreamConfig::default().authenticate(auth()).input(only_ann);
    let stream = server.add_stream("cam", 8, 8, cfg).unwrap();
    let mut ann = Client::connect(addr, "/cam?token=good").await;
    ann.hello(&["image/jpeg"]).await;
    expect_config(&mut ann).await;
    let mut root = Client::connect(addr, "/cam?token=root").await;
    root.hello(&["image/jpeg"]).await;
    expect_config(&mut root).await;
    assert_eq!(ann.config.as_ref().unwrap()["controller"], true);
    assert_eq!(root.config.as_ref().unwrap()["controller"], false);
    for c in [&mut ann, &mut root] {
        c.send_json(json!({"type":"event","event":{"event_type":"key_down","key":"x"}}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let from: Vec<_> = stream
        .poll_events()
        .into_iter()
        .map(|e| e.principal.unwrap().as_str().to_string())
        .collect();
    assert_eq!(
        from,
        ["ann"],
        "only the allowed principal's events are delivered"
    );
}

#[tokio::test]
async fn x_forwarded_headers_count_only_behind_a_trusted_proxy() {
    for trust in [false, true] {
        let cfg = framehub::ServerConfig {
            trust_proxy: trust,
            ..framehub::ServerConfig::default()
        };
        let server = Server::builder()
            .config(cfg)
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen2 = seen.clone();
        let who = authenticator(move |ctx| {
            *seen2.lock().unwrap() = ctx.remote.map(|r| r.ip().to_string());
            async { Ok(None) }
        });
        server
            .add_stream("s", 8, 8, StreamConfig::default().authenticate(who))
            .unwrap();
        let headers = [
            ("x-forwarded-for", "203.0.113.9, 10.0.0.1"),
            ("x-forwarded-host", "public.example"),
            ("origin", "https://public.example"),
        ];
        let mut req = format!("ws://{addr}/s").into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(k, v.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => {
                assert!(
                    trust,
                    "without trust the forwarded host does not make the origin same-origin"
                );
                let mut c = Client { ws, config: None };
                c.hello(&["image/jpeg"]).await;
                expect_config(&mut c).await;
                assert_eq!(seen.lock().unwrap().as_deref(), Some("203.0.113.9"));
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert!(!trust, "refused behind a trusted proxy: {}", resp.status());
                assert_eq!(resp.status().as_u16(), 403);
                // Without the foreign Origin, the peer's own address is what counts.
                let mut c = connect_with(addr, "/s", &[("x-forwarded-for", "203.0.113.9")]).await;
                c.hello(&["image/jpeg"]).await;
                expect_config(&mut c).await;
                assert_eq!(seen.lock().unwrap().as_deref(), Some("127.0.0.1"));
            }
            Err(e) => panic!("{e}"),
        }
    }
}
