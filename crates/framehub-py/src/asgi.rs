//! What `framehub.asgi` (python/framehub/asgi.py) needs from the hub:
//! [`AsgiBridge`] runs an ASGI `http` request through the hub's router and
//! attaches an ASGI `websocket` as a viewer ([`framehub::Server::attach_viewer`],
//! the seam every viewer kind goes through), whose messages then travel
//! through a [`ViewerChannel`]. All of it runs on the hub's runtime; the
//! Python side only awaits asyncio futures ([`bridge`]) or takes what is
//! already waiting, so the event loop never blocks on the hub.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri};
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use framehub::{AttachError, TrySend, ViewerMessage, ViewerReceiver, ViewerRequest, ViewerSender};
use pyo3::exceptions::{PyFileNotFoundError, PyPermissionError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use tower::ServiceExt;

use crate::bridge;
use crate::error::{self, to_py};
use crate::hub::{Hub, HubInner};

/// Largest response body taken from the router, bytes (the biggest is an
/// asset of the web client, well under this; metrics and recorded events
/// are bounded by the hub's own limits).
const MAX_RESPONSE: usize = 64 << 20;

/// An ASGI request's or WebSocket's headers: `(name, value)` byte pairs.
type Headers = Vec<(Vec<u8>, Vec<u8>)>;

fn remote_of(client: Option<(String, u16)>) -> Option<SocketAddr> {
    client.and_then(|(host, port)| {
        host.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port))
    })
}

/// Python's `None`, owned.
fn none(py: Python<'_>) -> Py<PyAny> {
    py.None()
}

/// A message for Python: `str` (text), `bytes` (binary) or `(code, reason)` (close).
fn message_to_py(py: Python<'_>, msg: ViewerMessage) -> PyResult<Py<PyAny>> {
    Ok(match msg {
        ViewerMessage::Text(t) => PyString::new(py, &t).into_any().unbind(),
        ViewerMessage::Binary(b) => PyBytes::new(py, &b).into_any().unbind(),
        ViewerMessage::Close { code, reason } => {
            (code, reason).into_pyobject(py)?.into_any().unbind()
        }
    })
}

/// A message from Python: `str` → text, `bytes` → binary.
fn message_from_py(msg: &Bound<'_, PyAny>) -> PyResult<ViewerMessage> {
    if let Ok(t) = msg.extract::<String>() {
        return Ok(ViewerMessage::Text(t));
    }
    if let Ok(b) = msg.extract::<Vec<u8>>() {
        return Ok(ViewerMessage::Binary(b.into()));
    }
    Err(PyValueError::new_err("a viewer message is a str or bytes"))
}

/// The hub seen from an ASGI app: HTTP requests and viewers' WebSockets.
#[pyclass(module = "framehub._native", name = "AsgiBridge", frozen)]
pub struct AsgiBridge {
    hub: Arc<HubInner>,
    router: axum::Router,
}

#[pymethods]
impl AsgiBridge {
    /// The bridge of `hub`.
    #[new]
    fn new(hub: &Hub) -> Self {
        AsgiBridge {
            router: hub.inner.server.router(),
            hub: Arc::clone(&hub.inner),
        }
    }

    /// Runs one HTTP request through the hub's router (pages, REST routes,
    /// the client's files) on the hub's runtime; returns an asyncio future
    /// of `(status, [(name, value), ...], body)`.
    ///
    /// `path`: under the mount (`/`, `/<stream>`, `/_/viewer.js`, ...);
    /// `root_path`: the mount (`/fh`), so pages name their base `/fh/`;
    /// `query`: the raw query string; `client`: `(host, port)` or None.
    ///
    /// Raises `ValueError` for a method or path that is not valid HTTP,
    /// `ClosedError` when the hub is closed.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (event_loop, method, path, root_path, query, headers, body, client))]
    fn http<'py>(
        &self,
        py: Python<'py>,
        event_loop: Bound<'py, PyAny>,
        method: &str,
        path: &str,
        root_path: &str,
        query: &[u8],
        headers: Headers,
        body: Vec<u8>,
        client: Option<(String, u16)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !self.hub.running() {
            return Err(to_py(py, framehub::Error::Closed));
        }
        let query = String::from_utf8_lossy(query);
        let with_query = |p: &str| {
            if query.is_empty() {
                p.to_string()
            } else {
                format!("{p}?{query}")
            }
        };
        let bad = |what: &str| PyValueError::new_err(format!("not a valid HTTP {what}"));
        let uri: Uri = with_query(path).parse().map_err(|_| bad("path"))?;
        let original: Uri = with_query(&format!("{root_path}{path}"))
            .parse()
            .map_err(|_| bad("path"))?;
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad("method"))?;
        let mut req = Request::new(Body::from(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        for (k, v) in headers {
            // What is not valid HTTP is left out (a server would have refused it).
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(&k), HeaderValue::from_bytes(&v)) {
                req.headers_mut().append(k, v);
            }
        }
        // As the hub's own listener and `Router::nest` set them.
        req.extensions_mut().insert(OriginalUri(original));
        if let Some(remote) = remote_of(client) {
            req.extensions_mut().insert(ConnectInfo(remote));
        }
        let router = self.router.clone();
        bridge::spawn(
            &self.hub.handle,
            &event_loop,
            Err(error::closed(py, "the request")),
            async move {
                let resp = match router.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                let (parts, body) = resp.into_parts();
                let body = axum::body::to_bytes(body, MAX_RESPONSE).await;
                (parts, body)
            },
            |py, (parts, body)| {
                let body = body.map_err(|e| {
                    PyRuntimeError::new_err(format!("the hub's response could not be read: {e}"))
                })?;
                let headers: Vec<(Py<PyAny>, Py<PyAny>)> = parts
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            PyBytes::new(py, k.as_str().as_bytes()).into_any().unbind(),
                            PyBytes::new(py, v.as_bytes()).into_any().unbind(),
                        )
                    })
                    .collect();
                let out = (
                    parts.status.as_u16(),
                    headers,
                    PyBytes::new(py, &body).into_any().unbind(),
                );
                Ok(out.into_pyobject(py)?.into_any().unbind())
            },
        )
    }

    /// Attaches a viewer whose WebSocket the ASGI server accepted: the same
    /// origin check, admission, session and limits as on the hub's port.
    /// `path`: under the mount (`/` or `/<stream>`); `query`: the raw query
    /// string; `headers`: the upgrade request's; `client`: `(host, port)`.
    ///
    /// An unknown stream or a viewer over a limit is attached and closed at
    /// once (4404 / 1008: the channel's first message).
    ///
    /// Raises `PermissionError` (the page's origin is refused: answer 403),
    /// `FileNotFoundError` (not a viewer path: answer 404), `ClosedError`.
    #[pyo3(signature = (path, query, headers, client))]
    fn attach_viewer(
        &self,
        py: Python<'_>,
        path: String,
        query: &[u8],
        headers: Headers,
        client: Option<(String, u16)>,
    ) -> PyResult<ViewerChannel> {
        if !self.hub.running() {
            return Err(to_py(py, framehub::Error::Closed));
        }
        let req = ViewerRequest {
            path,
            query: String::from_utf8_lossy(query).into_owned(),
            headers: headers
                .into_iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(&k).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect(),
            remote: remote_of(client),
        };
        // In the runtime's context: the session runs as a task on it.
        let _context = self.hub.handle.enter();
        match self.hub.server.attach_viewer(req) {
            Ok(ch) => Ok(ViewerChannel {
                hub: Arc::clone(&self.hub),
                sender: Mutex::new(ch.sender),
                receiver: Arc::new(tokio::sync::Mutex::new(ch.receiver)),
            }),
            Err(e @ AttachError::Forbidden(_)) => Err(PyPermissionError::new_err(e.to_string())),
            Err(e @ AttachError::NotAViewerPath(_)) => {
                Err(PyFileNotFoundError::new_err(e.to_string()))
            }
            Err(AttachError::Closed) => Err(to_py(py, framehub::Error::Closed)),
            Err(e) => Err(PyRuntimeError::new_err(e.to_string())),
        }
    }
}

/// One bridged viewer's session: what the viewer sent goes in with
/// `try_send` / `send_async`, what it is to get comes out of `drain` /
/// `recv_async` as `str` (text), `bytes` (binary) or `(code, reason)`
/// (close, the last message). Both directions are bounded
/// (`framehub::VIEWER_CHANNEL_IN` / `_OUT`).
#[pyclass(module = "framehub._native", name = "ViewerChannel", frozen)]
pub struct ViewerChannel {
    hub: Arc<HubInner>,
    sender: Mutex<ViewerSender>,
    /// Async: `recv_async` holds it while it waits.
    receiver: Arc<tokio::sync::Mutex<ViewerReceiver>>,
}

impl ViewerChannel {
    fn sender(&self) -> std::sync::MutexGuard<'_, ViewerSender> {
        self.sender.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl ViewerChannel {
    /// Every message waiting now, oldest first, without waiting; a final
    /// None means the session has ended. Empty while `recv_async` waits.
    fn drain(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let mut out = Vec::new();
        let Ok(mut rx) = self.receiver.try_lock() else {
            return Ok(out);
        };
        loop {
            match rx.try_recv() {
                Ok(Some(m)) => out.push(message_to_py(py, m)?),
                Ok(None) => break,
                Err(framehub::SessionEnded) => {
                    out.push(none(py));
                    break;
                }
            }
        }
        Ok(out)
    }

    /// An asyncio future on `event_loop` of the next message, None once the
    /// session has ended.
    fn recv_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rx = Arc::clone(&self.receiver);
        bridge::spawn(
            &self.hub.handle,
            &event_loop,
            Ok(none(py)),
            async move { rx.lock().await.recv().await },
            |py, m| match m {
                Some(m) => message_to_py(py, m),
                None => Ok(none(py)),
            },
        )
    }

    /// Queues a message from the viewer (`str` or `bytes`) if there is
    /// room: True when taken (or the session has ended: dropped), False
    /// when the channel is full (send it with `send_async`).
    fn try_send(&self, msg: &Bound<'_, PyAny>) -> PyResult<bool> {
        let msg = message_from_py(msg)?;
        Ok(!matches!(self.sender().try_send(msg), TrySend::Full(_)))
    }

    /// An asyncio future on `event_loop`, resolved (None) once the message
    /// is queued or the session has ended.
    fn send_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: Bound<'py, PyAny>,
        msg: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let msg = message_from_py(msg)?;
        let mut tx = self.sender().clone();
        bridge::spawn(
            &self.hub.handle,
            &event_loop,
            Ok(none(py)),
            async move {
                let _ = tx.send(msg).await;
            },
            |py, ()| Ok(none(py)),
        )
    }

    /// The viewer has gone (ASGI `websocket.disconnect`): its session ends
    /// as on a closed socket. Idempotent.
    fn close(&self) {
        self.sender().close();
    }
}
