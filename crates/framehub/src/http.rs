//! The hub's HTTP side: WebSocket upgrades per stream path, the REST side
//! channel and the embedded web client (`docs/protocol.md` §1, §8).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::attach;
use crate::config::Origins;
use crate::events::lock;
use crate::server::Inner;
use crate::stream::StreamShared;
use crate::viewer::{self, ConnInfo};

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Builds the router over a hub's state.
pub(crate) fn router(inner: Arc<Inner>) -> Router {
    let router = Router::new();
    // WebRTC signalling (feature `webrtc`, webrtc.rs).
    #[cfg(feature = "webrtc")]
    let router = crate::webrtc::routes(router);
    router
        .route("/health", get(|| async { "ok" }))
        .route("/streams", get(list_streams))
        .route("/streams/{name}/metrics", get(stream_metrics))
        .route("/streams/{name}/recorded-events", get(stream_recorded))
        .route("/metrics", get(default_metrics))
        .route("/recorded-events", get(default_recorded))
        .route("/recorded-events/reset", get(default_recorded_reset))
        .route("/_/metrics", get(hub_metrics))
        .route("/_/prometheus", get(prometheus_metrics))
        .route("/_/publish", get(publish_page))
        .route("/_/publish/{name}", get(publish))
        .route("/_/events", get(lifecycle_events))
        .route("/_/{file}", get(asset))
        .route("/", get(root))
        .route("/{name}", get(stream_path))
        .with_state(inner)
}

fn asset_bytes(name: &str) -> Option<&'static [u8]> {
    assets::ASSETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
}

/// The bytes of file `name` of the embedded browser client (`web/`, as the
/// hub serves it at `/_/<name>`), such as `"framehub.js"`; None if absent.
/// The Python package bundles the client from these for its notebook widget.
pub fn web_asset(name: &str) -> Option<&'static [u8]> {
    asset_bytes(name)
}

/// The names of the embedded browser client's files, sorted.
pub fn web_asset_names() -> impl Iterator<Item = &'static str> {
    assets::ASSETS.iter().map(|(n, _)| *n)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    match asset_bytes(&file) {
        Some(b) => (
            [
                (header::CONTENT_TYPE, content_type(&file)),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            b,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no asset '{file}'")).into_response(),
    }
}

/// Serves page `name` with a `<base href>` naming the hub's root, so its
/// relative links and the client's files resolve whether the hub is at `/`
/// or nested in a larger app (`Router::nest("/fh", ...)`).
fn page(name: &str, status: StatusCode, base: &str) -> Response {
    let Some(b) = asset_bytes(name) else {
        return (StatusCode::NOT_FOUND, "web client not built in").into_response();
    };
    let html = String::from_utf8_lossy(b);
    let escaped: String = base
        .chars()
        .filter(|c| !matches!(c, '"' | '<' | '>' | '&'))
        .collect();
    let html = html.replacen("<head>", &format!("<head>\n  <base href=\"{escaped}\">"), 1);
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// The hub's root as the browser sees it: the original request path less
/// the path the hub's router matched (`/fh/cam` matched as `/cam` → `/fh/`).
pub(crate) fn hub_base(parts: &axum::http::request::Parts) -> String {
    let inner = parts.uri.path();
    let original = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(inner, |o| o.0.path());
    let prefix = if inner == "/" {
        original.trim_end_matches('/')
    } else {
        original.strip_suffix(inner).unwrap_or("")
    };
    format!("{prefix}/")
}

#[derive(serde::Serialize)]
struct StreamListing {
    name: String,
    width: u32,
    height: u32,
    fps: f64,
    clients: usize,
    /// The id of the hub that originates it, when the hub is joined to NATS.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
}

/// The id of the hub that originates stream `name`, when this hub is joined
/// to a NATS system (its own id, or the origin of a stream it mirrors).
fn origin_of(inner: &Inner, name: &str) -> Option<String> {
    #[cfg(feature = "nats")]
    {
        let hub = inner.nats.get()?;
        let mirrored = lock(&hub.mirrors).get(name).map(|m| m.origin.clone());
        Some(mirrored.unwrap_or_else(|| hub.id.clone()))
    }
    #[cfg(not(feature = "nats"))]
    {
        let _ = (inner, name);
        None
    }
}

async fn list_streams(State(inner): State<Arc<Inner>>, parts: Parts) -> Response {
    if let Err(refused) = rest_allowed(&inner, None, &parts).await {
        return refused;
    }
    let streams = inner.streams_snapshot();
    Json(
        streams
            .iter()
            .map(|s| {
                let (width, height) = s.size();
                StreamListing {
                    name: s.name.clone(),
                    width,
                    height,
                    fps: s.cfg.fps.unwrap_or_else(|| s.publish_rate()),
                    clients: lock(&s.viewers).len(),
                    origin: origin_of(&inner, &s.name),
                }
            })
            .collect::<Vec<_>>(),
    )
    .into_response()
}

fn metrics_of(inner: &Inner, name: &str) -> Response {
    match inner.stream(name) {
        Some(s) => {
            let m: Vec<_> = lock(&s.viewers)
                .values()
                .map(|v| v.metrics.clone())
                .collect();
            Json(m).into_response()
        }
        None => (StatusCode::NOT_FOUND, Json(Vec::<()>::new())).into_response(),
    }
}

async fn stream_metrics(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    parts: Parts,
) -> Response {
    guarded(&inner, &name, &parts, |i| metrics_of(i, &name)).await
}

async fn default_metrics(State(inner): State<Arc<Inner>>, parts: Parts) -> Response {
    guarded(&inner, "default", &parts, |i| metrics_of(i, "default")).await
}

fn recorded_of(inner: &Inner, name: &str, reset: bool) -> Response {
    let Some(s) = inner.stream(name) else {
        return (StatusCode::NOT_FOUND, Json(Vec::<()>::new())).into_response();
    };
    let events = s.events.recorded().unwrap_or_default();
    if reset {
        s.events.reset_recorded();
    }
    Json(events).into_response()
}

async fn stream_recorded(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    parts: Parts,
) -> Response {
    guarded(&inner, &name, &parts, |i| recorded_of(i, &name, false)).await
}

async fn default_recorded(State(inner): State<Arc<Inner>>, parts: Parts) -> Response {
    guarded(&inner, "default", &parts, |i| {
        recorded_of(i, "default", false)
    })
    .await
}

async fn default_recorded_reset(State(inner): State<Arc<Inner>>, parts: Parts) -> Response {
    guarded(&inner, "default", &parts, |i| {
        recorded_of(i, "default", true)
    })
    .await
}

/// Answers `f` if the request may read stream `name`'s routes, else 401.
async fn guarded(
    inner: &Inner,
    name: &str,
    parts: &Parts,
    f: impl FnOnce(&Inner) -> Response,
) -> Response {
    let stream = inner.stream(name);
    match rest_allowed(inner, stream.as_deref(), parts).await {
        Ok(()) => f(inner),
        Err(refused) => refused,
    }
}

/// Runs the authenticator that guards a REST route: the stream's own when it
/// has one, else the hub's (`ServerConfig::authenticate`); none: allowed.
async fn rest_allowed(
    inner: &Inner,
    stream: Option<&StreamShared>,
    parts: &Parts,
) -> Result<(), Response> {
    let (auth, cookie, name) = match stream {
        Some(s) if s.cfg.authenticate.is_some() => (
            s.cfg.authenticate.as_ref(),
            s.cfg.token_cookie.as_deref(),
            s.name.as_str(),
        ),
        Some(s) => (inner.cfg.authenticate.as_ref(), None, s.name.as_str()),
        None => (inner.cfg.authenticate.as_ref(), None, ""),
    };
    let Some(auth) = auth else {
        return Ok(());
    };
    let conn = conn_info(parts, inner.cfg.trust_proxy);
    match viewer::check(auth, &conn, Default::default(), name, cookie).await {
        Ok(_) => Ok(()),
        Err(_) => Err((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "unauthorized",
        )
            .into_response()),
    }
}

#[derive(serde::Serialize)]
struct HubMetrics {
    connections: usize,
    streams: usize,
    /// Viewers the hub closed, by close code.
    closes: BTreeMap<u16, u64>,
    /// Viewers refused at admission, by limit.
    refused: BTreeMap<&'static str, u64>,
    /// Viewers dropped because their socket did not take a frame.
    write_failures: u64,
    /// HTTP connections closed because their request headers were too slow.
    header_timeouts: u64,
}

async fn hub_metrics(State(inner): State<Arc<Inner>>, parts: Parts) -> Response {
    if let Err(refused) = rest_allowed(&inner, None, &parts).await {
        return refused;
    }
    let (closes, refused) = inner.counters.snapshot();
    Json(HubMetrics {
        connections: inner.connections(),
        streams: inner.streams_snapshot().len(),
        closes,
        refused,
        write_failures: inner.counters.write_failures(),
        header_timeouts: inner.counters.header_timeouts(),
    })
    .into_response()
}

/// `GET /_/prometheus`: the hub's counters in the Prometheus/OpenMetrics
/// text format, guarded like `/streams`.
async fn prometheus_metrics(State(inner): State<Arc<Inner>>, parts: Parts) -> Response {
    if let Err(refused) = rest_allowed(&inner, None, &parts).await {
        return refused;
    }
    let registry = inner
        .prometheus
        .get_or_init(|| crate::prometheus::registry(&inner));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::prometheus::render(registry),
    )
        .into_response()
}

/// `GET /_/events`: the hub's lifecycle events as Server-Sent Events (one
/// `event:` per kind, the JSON in `data:`), guarded like `/streams`. It
/// begins with a `stream.created` for every stream that exists, so a page
/// needs nothing else to build its list.
async fn lifecycle_events(State(inner): State<Arc<Inner>>, parts: Parts) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;
    if let Err(refused) = rest_allowed(&inner, None, &parts).await {
        return refused;
    }
    let rx = inner.lifecycle.subscribe();
    let existing: Vec<crate::LifecycleEvent> = inner
        .streams_snapshot()
        .iter()
        .map(|s| {
            let (width, height) = s.size();
            crate::LifecycleEvent::StreamCreated {
                stream: s.name.clone(),
                width,
                height,
                remote: s.source == crate::stream::SourceKind::Remote,
            }
        })
        .collect();
    let to_sse = |ev: &crate::LifecycleEvent| {
        Event::default()
            .event(ev.kind())
            .json_data(ev)
            .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
    };
    let live = futures_util::stream::unfold(rx, move |mut rx| async move {
        match rx.recv().await {
            Ok(ev) => Some((to_sse(&ev), rx)),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Some((
                Event::default().comment(format!("lagged: {n} events dropped")),
                rx,
            )),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    });
    let mut shutdown = inner.shutdown.subscribe();
    let events = futures_util::stream::iter(existing.iter().map(to_sse).collect::<Vec<_>>())
        .chain(live)
        .map(Ok::<_, std::convert::Infallible>)
        .take_until(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /_/publish`: the page that publishes a canvas or the camera from a browser tab.
async fn publish_page(req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    page("publish.html", StatusCode::OK, &hub_base(&parts))
}

/// A WebSocket upgrade to `what` (a stream or the publishers' route), once
/// its `Origin` passed [`check_origin`] (HTTP 403 otherwise), with what the
/// request tells about the client.
async fn upgrade(
    inner: &Inner,
    parts: &mut Parts,
    what: &str,
) -> Result<(WebSocketUpgrade, ConnInfo), Response> {
    if let Err(origin) = check_origin(inner, &parts.headers) {
        tracing::info!(%origin, %what, "refused a WebSocket from a foreign origin");
        return Err((
            StatusCode::FORBIDDEN,
            format!("origin '{origin}' is not allowed"),
        )
            .into_response());
    }
    let ws = WebSocketUpgrade::from_request_parts(parts, &())
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((ws, conn_info(parts, inner.cfg.trust_proxy)))
}

/// `/_/publish/<name>`: a remote publisher's feed (`publish.rs`).
async fn publish(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (mut parts, _body) = req.into_parts();
    if !is_upgrade(&parts.headers) {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "a publisher's feed is a WebSocket (docs/protocol.md §11)",
        )
            .into_response();
    }
    let (ws, conn) = match upgrade(&inner, &mut parts, "_/publish").await {
        Ok(u) => u,
        Err(refused) => return refused,
    };
    let max = inner.cfg.max_frame_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| crate::publish::run(inner, name, conn, socket))
}

async fn root(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    ws_or_page(inner, "default".into(), req, "index.html").await
}

async fn stream_path(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    ws_or_page(inner, name, req, "viewer.html").await
}

pub(crate) fn conn_info(parts: &axum::http::request::Parts, trust_proxy: bool) -> ConnInfo {
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect();
    let cookies = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let query = Query::<BTreeMap<String, String>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    // Behind a trusted reverse proxy the client is the first X-Forwarded-For
    // entry; otherwise that header is the client's word and is ignored.
    let forwarded = trust_proxy
        .then(|| forwarded_for(&parts.headers, peer.map_or(0, |p| p.port())))
        .flatten();
    let remote = forwarded.or(peer);
    ConnInfo {
        headers,
        cookies,
        query,
        path: parts.uri.path().to_string(),
        remote,
        webrtc: false,
    }
}

/// The client address a trusted proxy names in `X-Forwarded-For` (its first
/// entry), with `port` (the proxy does not say the client's).
fn forwarded_for(headers: &HeaderMap, port: u16) -> Option<SocketAddr> {
    let first = headers
        .get("x-forwarded-for")?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim();
    let ip: std::net::IpAddr = first
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Checks the upgrade's `Origin` against the hub's [`Origins`] policy; `Err`
/// carries the refused origin. Behind a trusted proxy the host the browser
/// used is `X-Forwarded-Host`.
pub(crate) fn check_origin(inner: &Inner, headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(()); // not a browser page
    };
    let origin = origin.trim_end_matches('/');
    let host_part = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let host_header = if inner.cfg.trust_proxy && headers.contains_key("x-forwarded-host") {
        "x-forwarded-host"
    } else {
        "host"
    };
    let same_origin = headers
        .get(host_header)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(host_part));
    let allowed = same_origin
        || match &inner.cfg.origins {
            Origins::Any => true,
            Origins::List(list) => list
                .iter()
                .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin)),
            Origins::SameOriginAndLoopback => {
                let loopback_hub = inner.local_addr().is_some_and(|a| a.ip().is_loopback());
                let name = host_part.rsplit_once(':').map_or(host_part, |(h, port)| {
                    if port.chars().all(|c| c.is_ascii_digit()) {
                        h
                    } else {
                        host_part
                    }
                });
                loopback_hub && matches!(name, "localhost" | "127.0.0.1" | "[::1]")
            }
        };
    if allowed {
        Ok(())
    } else {
        Err(origin.chars().take(200).collect())
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn ws_or_page(inner: Arc<Inner>, name: String, req: Request, page_name: &str) -> Response {
    let (mut parts, _body) = req.into_parts();
    if !is_upgrade(&parts.headers) {
        let status = if page_name == "viewer.html" && inner.stream(&name).is_none() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        return page(page_name, status, &hub_base(&parts));
    }
    let (ws, conn) = match upgrade(&inner, &mut parts, &name).await {
        Ok(u) => u,
        Err(refused) => return refused,
    };
    let ws = ws
        .max_message_size(inner.cfg.max_message_size)
        .max_frame_size(inner.cfg.max_message_size)
        .read_buffer_size(crate::VIEWER_READ_BUFFER);
    // The viewer seam (attach.rs): the same two steps for every kind of viewer.
    let viewer = attach::prepare(&inner, &name, conn);
    ws.on_upgrade(move |socket| viewer.serve(socket))
}
