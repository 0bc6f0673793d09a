//! WebRTC viewers (feature `webrtc`; `docs/protocol.md` §13): the hub's
//! signalling routes and the wiring of a peer to the viewer seam.
//!
//! A WebRTC viewer is a viewer like any other: its offer is admitted within
//! the hub's limits and runs the same session (attach.rs) through a
//! [`ViewerChannel`](crate::ViewerChannel). The hub sends the session a
//! `hello` on the peer's behalf (H.264 and lossless stills; the token from
//! the JSON body, the query, `Authorization: Bearer` or the cookie, as on a
//! WebSocket) and answers the offer only once the session has said
//! `config`, so a refused viewer gets an HTTP status rather than a peer:
//! 401 (authentication), 404 (unknown stream), 406 (no H.264 in common),
//! 429 (too many from this address), 503 (hub or stream full, WebRTC off).
//! Then `framehub_webrtc` carries the session's access units over RTP and
//! its JSON over the data channel.
//!
//! Routes: `POST /<stream>/webrtc` (JSON, rtcbot style), `POST
//! /<stream>/whep` (WHEP, `application/sdp`, 201 + `Location`), `DELETE
//! /_/webrtc/<id>` (end a session), `PATCH` on it 405 (no trickle: the
//! answer holds every candidate), `GET /_/webrtc` (the client's settings).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use framehub_webrtc::{Endpoint, EndpointConfig, Offer, SessionLink, ViewerMessage};

use crate::attach::{self, Attach};
use crate::server::Inner;

/// Longest wait for the session's `config` (authentication included)
/// before the offer is answered 503.
const CONFIG_WAIT: Duration = Duration::from_secs(10);

/// Binds the hub's WebRTC endpoint after its TCP listener: UDP on
/// `cfg.webrtc.bind`, or on the TCP address and port number. A default
/// address that is taken only turns WebRTC off (logged); a configured one
/// is an error.
pub(crate) async fn start(inner: &Arc<Inner>, tcp: std::net::SocketAddr) -> std::io::Result<()> {
    let cfg = &inner.cfg.webrtc;
    if !cfg.enabled || inner.webrtc.get().is_some() {
        return Ok(());
    }
    let bind = cfg.bind.unwrap_or(tcp);
    let endpoint = Endpoint::bind(EndpointConfig {
        bind,
        announce: cfg.announce.clone(),
        connect_timeout: cfg.connect_timeout,
        ..EndpointConfig::default()
    })
    .await;
    match endpoint {
        Ok(e) => {
            let _ = inner.webrtc.set(e);
            Ok(())
        }
        Err(e) if cfg.bind.is_none() => {
            tracing::warn!(%bind, error = %e, "WebRTC is off: its UDP port cannot be bound (set webrtc.bind)");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The signalling routes, merged into the hub's router.
pub(crate) fn routes(router: Router<Arc<Inner>>) -> Router<Arc<Inner>> {
    router
        .route("/_/webrtc", get(settings))
        .route(
            "/_/webrtc/{id}",
            axum::routing::delete(end).patch(no_trickle),
        )
        .route("/{name}/webrtc", post(json_offer))
        .route("/{name}/whep", post(whep_offer))
}

/// `GET /_/webrtc`: whether WebRTC is on, and the ICE servers for the client.
async fn settings(State(inner): State<Arc<Inner>>) -> Response {
    let endpoint = inner.webrtc.get();
    Json(serde_json::json!({
        "enabled": endpoint.is_some(),
        "udp_port": endpoint.map(|e| e.local_addr().port()),
        "ice_servers": inner.cfg.webrtc.ice_servers,
        "stats": endpoint.map(Endpoint::stats),
    }))
    .into_response()
}

fn refuse(status: u16, reason: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, reason.into()).into_response()
}

/// `POST /<stream>/webrtc`: `{"sdp","type":"offer","token"?}` → `{"sdp","type":"answer","session"}`.
async fn json_offer(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let Some(body) = read_body(body).await else {
        return refuse(413, "the offer is too big");
    };
    let (offer, token) = match framehub_webrtc::parse_json_offer(&body) {
        Ok(o) => o,
        Err(e) => return refuse(e.status(), e.to_string()),
    };
    match answer(&inner, &name, &parts, offer, token).await {
        Ok((id, sdp)) => Json(serde_json::json!({
            "type": "answer",
            "sdp": sdp,
            "session": id,
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// `POST /<stream>/whep`: an SDP offer → 201, the answer, `Location` of the session.
async fn whep_offer(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let sdp_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with("application/sdp"));
    if !sdp_type {
        return refuse(415, "a WHEP offer is application/sdp");
    }
    let Some(body) = read_body(body).await else {
        return refuse(413, "the offer is too big");
    };
    let offer = match framehub_webrtc::parse_sdp_offer(&body) {
        Ok(o) => o,
        Err(e) => return refuse(e.status(), e.to_string()),
    };
    match answer(&inner, &name, &parts, offer, None).await {
        Ok((id, sdp)) => {
            let location = format!("{}_/webrtc/{id}", crate::http::hub_base(&parts));
            (
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, "application/sdp".to_string()),
                    (header::LOCATION, location),
                ],
                sdp,
            )
                .into_response()
        }
        Err(r) => r,
    }
}

/// `DELETE /_/webrtc/<id>`: ends that peer (WHEP's session teardown).
async fn end(State(inner): State<Arc<Inner>>, Path(id): Path<u64>) -> Response {
    match inner.webrtc.get() {
        Some(e) if e.end(id) => StatusCode::OK.into_response(),
        _ => refuse(404, "no such WebRTC session"),
    }
}

/// `PATCH /_/webrtc/<id>`: trickle ICE is not used (the answer holds every
/// candidate of the ICE-lite hub), as WHEP allows (RFC 9725 §4.3.1).
async fn no_trickle() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "DELETE")],
        "no trickle ICE: the answer holds every candidate",
    )
        .into_response()
}

async fn read_body(body: axum::body::Body) -> Option<Bytes> {
    axum::body::to_bytes(body, framehub_webrtc::MAX_OFFER_BYTES + 1)
        .await
        .ok()
}

/// Admits the viewer, runs its session's handshake, and answers the offer.
async fn answer(
    inner: &Arc<Inner>,
    name: &str,
    parts: &axum::http::request::Parts,
    offer: Offer,
    token: Option<String>,
) -> Result<(u64, String), Response> {
    let Some(endpoint) = inner.webrtc.get() else {
        return Err(refuse(503, "WebRTC is not enabled on this hub"));
    };
    if let Err(origin) = crate::http::check_origin(inner, &parts.headers) {
        return Err(refuse(403, format!("origin '{origin}' is not allowed")));
    }
    let mut conn = crate::http::conn_info(parts, inner.cfg.trust_proxy);
    conn.webrtc = true;
    let host = parts
        .extensions
        .get::<crate::listen::LocalAddr>()
        .map(|l| l.0.ip());
    let viewer = attach::prepare(inner, name, conn);
    // With adaptive quality, the peer's bandwidth estimator (which also
    // paces its media: docs/protocol.md §13) aims for the best tier's bit
    // rate and picks its tier; without, no estimator and no pacing.
    let bitrate = match &viewer {
        Attach::Unknown(name) => return Err(refuse(404, format!("unknown stream '{name}'"))),
        Attach::Refused(why) => {
            let status = if *why == crate::server::TOO_MANY_FROM_ADDRESS {
                429
            } else {
                503
            };
            return Err(refuse(status, *why));
        }
        Attach::Admitted(a) if a.stream().cfg.adaptive.is_some() => a.stream().peer_offer().bitrate,
        Attach::Admitted(_) => 0,
    };
    let (socket, channel) = attach::channel_pair(inner.cfg.max_message_size);
    tokio::spawn(viewer.serve(socket));
    let (mut to_session, mut from_session) = channel.into_parts();
    let mut hello = serde_json::json!({
        "type": "hello",
        "supported": ["webcodecs/h264-annexb", "framehub/still-png"],
        "device_pixel_ratio": 1.0,
    });
    if let Some(t) = token {
        hello["token"] = t.into();
    }
    use futures_util::{SinkExt, StreamExt};
    if to_session
        .send(ViewerMessage::Text(hello.to_string()))
        .await
        .is_err()
    {
        return Err(refuse(503, "the viewer's session ended"));
    }
    let first = match tokio::time::timeout(CONFIG_WAIT, from_session.next()).await {
        Ok(Some(ViewerMessage::Text(t))) if t.contains(r#""type":"config""#) => t,
        Ok(Some(ViewerMessage::Close { code, reason })) => {
            let status = match code {
                framehub_proto::close_code::UNAUTHORIZED => 401,
                framehub_proto::close_code::UNKNOWN_STREAM => 404,
                framehub_proto::close_code::UNSUPPORTED => 406,
                _ => 503,
            };
            let reason = if code == framehub_proto::close_code::UNSUPPORTED {
                "the stream has no H.264 (its remote publisher sends none)".to_string()
            } else {
                reason
            };
            return Err(refuse(status, reason));
        }
        Ok(_) => return Err(refuse(503, "the viewer's session did not start")),
        Err(_) => return Err(refuse(503, "the viewer's session did not answer in time")),
    };
    let link = SessionLink {
        to_session,
        from_session,
    };
    match endpoint.accept(offer, host, bitrate, link, vec![ViewerMessage::Text(first)]) {
        Ok(a) => Ok((a.id, a.answer)),
        // The link is dropped with the error: the session ends, its place is freed.
        Err(e) => Err(refuse(e.status(), e.to_string())),
    }
}
