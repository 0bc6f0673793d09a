//! `Stream`: one named stream of a hub (publish frames, take events).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use framehub::{Frame, ViewerEvent};
use futures_util::StreamExt;
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::auth::type_name;
use crate::bridge;
use crate::convert;
use crate::error::{framehub_error, to_py};
use crate::hub::{not_on_runtime, HubInner};

type EventStream = Pin<Box<dyn futures_util::Stream<Item = ViewerEvent> + Send>>;

/// A stream's events: the hub's queue plus events a waiter took out of it
/// for Python (kept in order, so cancelling a wait loses nothing).
struct EventSource {
    /// Events taken from the hub's queue by a waiter, not yet handed out.
    stash: Mutex<VecDeque<ViewerEvent>>,
    /// The hub's async event stream (ends when the stream closes; fused, so
    /// waiting again after the end answers at once instead of panicking).
    stream: tokio::sync::Mutex<EventStream>,
}

impl EventSource {
    fn stash(&self) -> std::sync::MutexGuard<'_, VecDeque<ViewerEvent>> {
        self.stash.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until an event is waiting (`true`) or the stream has closed (`false`).
    async fn wait(self: Arc<Self>) -> bool {
        let mut stream = self.stream.lock().await;
        if !self.stash().is_empty() {
            return true;
        }
        match stream.next().await {
            Some(ev) => {
                self.stash().push_back(ev);
                true
            }
            None => false,
        }
    }
}

/// Which vocabulary an event dict handed to Python uses (`docs/protocol.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventShape {
    /// pdum.rfb's: the kind under `type`, the time under `timestamp`
    /// (pdum.rfb 0.3.0 hands programs the dict its `widget.js` sent).
    Pdum,
    /// renderview's JSON form (jupyter_rfb, rendercanvas): the kind under
    /// `event_type`, the time under `time_stamp`.
    Renderview,
}

impl EventShape {
    /// Parses a shape's name, `"pdum"` or `"renderview"`; `ValueError` otherwise.
    pub(crate) fn parse(name: &str) -> PyResult<Self> {
        match name {
            "pdum" => Ok(EventShape::Pdum),
            "renderview" => Ok(EventShape::Renderview),
            other => Err(PyValueError::new_err(format!(
                "event_shape must be 'pdum' or 'renderview', got '{other}'"
            ))),
        }
    }

    /// The keys this shape names the kind and the time with.
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            EventShape::Pdum => ("type", "timestamp"),
            EventShape::Renderview => ("event_type", "time_stamp"),
        }
    }
}

/// The event as a dict in `shape`: the kind first, then the other fields
/// under the names the hub serialises them with, `timestamp` renamed to the
/// shape's time key. Errors only if serde cannot serialise the event (it can:
/// every field is a number, string, bool or list of them).
fn event_dict<'py>(
    py: Python<'py>,
    event: &framehub::InputEvent,
    shape: EventShape,
) -> PyResult<Bound<'py, PyDict>> {
    let value = serde_json::to_value(event)
        .map_err(|e| PyTypeError::new_err(format!("cannot serialise an event: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(PyTypeError::new_err(
            "an event did not serialise to an object",
        ));
    };
    let (kind_key, time_key) = shape.keys();
    let dict = PyDict::new(py);
    if let Some(kind) = map.get("event_type") {
        dict.set_item(kind_key, convert::json_to_py(py, kind)?)?;
    }
    for (k, v) in &map {
        let key = match k.as_str() {
            "event_type" => continue,
            "timestamp" => time_key,
            other => other,
        };
        dict.set_item(key, convert::json_to_py(py, v)?)?;
    }
    Ok(dict)
}

/// One input event from a viewer.
#[pyclass(module = "framehub._native", name = "InputEvent", frozen)]
pub struct InputEvent {
    /// The viewer's session id (`config.session`, metrics' `client_id`).
    #[pyo3(get)]
    pub client_id: u64,
    /// What the stream's authenticator returned for that viewer (None: open stream).
    #[pyo3(get)]
    pub principal: Option<String>,
    /// The event as a dict in the stream's `event_shape`: by default
    /// pdum.rfb's, e.g. `{"type": "pointer_down", "x": 1.0, ..., "timestamp": 3.2}`.
    #[pyo3(get)]
    pub event: Py<PyDict>,
    /// Arrival time, µs since the stream was created (the clock of frames' `timestamp_us`).
    #[pyo3(get)]
    pub received_us: u64,
    /// The id of the hub the viewer is on when another hub serves this
    /// stream over NATS (`serve_server(nats=...)`); None for this hub's viewers.
    #[pyo3(get)]
    pub hub: Option<String>,
    /// The validated event, for the other shape on request.
    raw: framehub::InputEvent,
}

#[pymethods]
impl InputEvent {
    /// The kind of event (`"pointer_down"`, `"wheel"`, ...), whatever the shape.
    #[getter]
    fn event_type(&self) -> String {
        match serde_json::to_value(&self.raw) {
            Ok(serde_json::Value::Object(mut map)) => match map.remove("event_type") {
                Some(serde_json::Value::String(kind)) => kind,
                _ => String::new(),
            },
            _ => String::new(),
        }
    }

    /// A new dict of the event in pdum.rfb's shape (`type`, `timestamp`).
    fn as_pdum<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        event_dict(py, &self.raw, EventShape::Pdum)
    }

    /// A new dict of the event in renderview's shape (`event_type`, `time_stamp`).
    fn as_renderview<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        event_dict(py, &self.raw, EventShape::Renderview)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "InputEvent(client_id={}, principal={}, received_us={}, event={})",
            self.client_id,
            self.principal
                .as_deref()
                .map_or_else(|| "None".to_string(), |p| format!("{p:?}")),
            self.received_us,
            self.event.bind(py).repr()?
        ))
    }
}

impl InputEvent {
    fn new(py: Python<'_>, ev: &ViewerEvent, shape: EventShape) -> PyResult<Self> {
        Ok(InputEvent {
            client_id: ev.client_id,
            principal: ev.principal.as_ref().map(|p| p.as_str().to_string()),
            event: event_dict(py, &ev.event, shape)?.unbind(),
            received_us: ev.received_us,
            hub: ev.hub.clone(),
            raw: ev.event.clone(),
        })
    }
}

/// One stream of a hub: publish frames into it, take its viewers' events.
#[pyclass(module = "framehub._native", name = "Stream", frozen)]
pub struct Stream {
    stream: framehub::Stream,
    hub: Arc<HubInner>,
    events: Arc<EventSource>,
}

impl Stream {
    pub(crate) fn new(stream: framehub::Stream, hub: Arc<HubInner>) -> Self {
        let events = EventSource {
            stash: Mutex::new(VecDeque::new()),
            stream: tokio::sync::Mutex::new(Box::pin(stream.events().fuse())),
        };
        Stream {
            stream,
            hub,
            events: Arc::new(events),
        }
    }
}

/// What `publish` expects, for error messages.
const EXPECTED: &str = "a uint8 array of shape (H, W, 3) (RGB) or (H, W, 4) (RGBA)";

/// The shape and layout of a frame buffer, checked.
struct Layout {
    width: u32,
    height: u32,
    channels: usize,
    /// Bytes from one row to the next.
    stride: usize,
    /// Bytes from the first pixel to the end of the last one.
    span: usize,
}

fn shape_str(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

fn invalid_frame(py: Python<'_>, msg: String) -> PyErr {
    framehub_error(py, "InvalidFrameError", msg)
}

/// Checks a buffer's element type and shape. `size` is the stream's current
/// size, for 1-D buffers (`bytes`, `bytearray`) of exactly W*H*4 or W*H*3 bytes.
fn layout(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    buf: &PyUntypedBuffer,
    size: (u32, u32),
) -> PyResult<Layout> {
    let format = buf.format().to_bytes();
    let is_u8 = buf.item_size() == 1 && matches!(format, b"B" | b"@B" | b"=B" | b"<B" | b">B");
    if !is_u8 {
        let got = match obj.getattr("dtype") {
            Ok(dtype) => format!("dtype {}", dtype.str()?),
            Err(_) => format!(
                "elements of format '{}' ({} bytes)",
                String::from_utf8_lossy(format),
                buf.item_size()
            ),
        };
        return Err(PyTypeError::new_err(format!(
            "publish() expects {EXPECTED}, got {got}; convert with arr.astype(numpy.uint8)"
        )));
    }
    if buf.suboffsets().is_some_and(|s| s.iter().any(|o| *o >= 0)) {
        return Err(invalid_frame(
            py,
            "publish() needs a buffer without sub-offsets (an indirect buffer is not supported)"
                .into(),
        ));
    }
    let shape = buf.shape();
    let strides = buf.strides();
    let (height, width, channels, row_stride) = match (shape, strides) {
        ([h, w, c], [s0, s1, s2]) => {
            if *c != 3 && *c != 4 {
                return Err(invalid_frame(
                    py,
                    format!(
                        "publish() expects {EXPECTED}, got shape {}",
                        shape_str(shape)
                    ),
                ));
            }
            if *s2 != 1 || (*w > 1 && *s1 != *c as isize) {
                return Err(invalid_frame(
                    py,
                    format!(
                        "publish() needs the pixels of each row to be contiguous (strides (row, {c}, 1)), \
                         got strides ({s0}, {s1}, {s2}); use numpy.ascontiguousarray(frame)"
                    ),
                ));
            }
            let row = w * c;
            let s0 = if *h <= 1 { row as isize } else { *s0 };
            if s0 < row as isize {
                return Err(invalid_frame(
                    py,
                    format!(
                        "publish() needs rows in order and at least {row} bytes apart, got a row stride of {s0}; \
                         use numpy.ascontiguousarray(frame)"
                    ),
                ));
            }
            (*h, *w, *c, s0 as usize)
        }
        ([n], [s]) => {
            let (w, h) = (size.0 as usize, size.1 as usize);
            let c = if *n == w * h * 4 {
                4
            } else if *n == w * h * 3 {
                3
            } else {
                return Err(invalid_frame(
                    py,
                    format!(
                        "publish() got a 1-D buffer of {n} bytes: expected {EXPECTED}, or exactly \
                         {w}*{h}*4 = {} (RGBA) or {w}*{h}*3 = {} (RGB) bytes for this {w}x{h} stream",
                        w * h * 4,
                        w * h * 3
                    ),
                ));
            };
            if *s != 1 && *n > 1 {
                return Err(invalid_frame(
                    py,
                    "publish() needs a contiguous 1-D buffer".into(),
                ));
            }
            (h, w, c, w * c)
        }
        _ => {
            return Err(invalid_frame(
                py,
                format!(
                    "publish() expects {EXPECTED}, got {} dimension(s) of shape {}",
                    shape.len(),
                    shape_str(shape)
                ),
            ))
        }
    };
    if width == 0 || height == 0 {
        return Err(invalid_frame(
            py,
            format!("publish() got an empty frame of shape {}", shape_str(shape)),
        ));
    }
    let too_big = |v: usize| {
        u32::try_from(v).map_err(|_| invalid_frame(py, format!("a frame side of {v} is too large")))
    };
    let span = row_stride
        .checked_mul(height - 1)
        .and_then(|n| n.checked_add(width * channels))
        .ok_or_else(|| {
            invalid_frame(
                py,
                format!("a frame of shape {} is too large", shape_str(shape)),
            )
        })?;
    Ok(Layout {
        width: too_big(width)?,
        height: too_big(height)?,
        channels,
        stride: row_stride,
        span,
    })
}

/// Views `buf` as bytes: `span` bytes from its first element.
#[allow(unsafe_code)]
fn buffer_bytes(buf: &PyUntypedBuffer, span: usize) -> &[u8] {
    // SAFETY: `buf` holds a buffer export of the object (PyObject_GetBuffer),
    // which keeps the memory alive and unresized (numpy refuses to resize an
    // exported array) until `buf` is released, which the returned borrow
    // outlives not. `layout()` checked the element size (1 byte), the
    // positive strides and that rows of `row_stride` bytes fit the shape, so
    // the `span` bytes from `buf_ptr()` — first pixel to last pixel of the
    // last row — lie inside the exported memory. We only read. Another
    // Python thread writing into the array meanwhile can tear the frame's
    // pixels, as with any reader of a shared numpy array, but not memory safety
    // of this read of plain bytes.
    unsafe { std::slice::from_raw_parts(buf.buf_ptr() as *const u8, span) }
}

#[pymethods]
impl Stream {
    /// Publishes a frame: a numpy uint8 array of shape (H, W, 3) or (H, W, 4)
    /// (rows may be padded: a slice `a[:, :w]` of a larger array works), or
    /// any object with the buffer protocol of that shape, or a 1-D buffer of
    /// exactly W*H*4 or W*H*3 bytes at the stream's current size. Copied once
    /// (without the GIL); returns at once. A frame of a new size resizes the stream.
    ///
    /// Raises `TypeError` for a non-buffer or non-uint8 input,
    /// `InvalidFrameError` (a `ValueError`) for a wrong shape or layout,
    /// `ClosedError` once the stream was removed or the hub closed.
    fn publish(&self, py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<()> {
        let buf = PyUntypedBuffer::get(frame).map_err(|_| {
            PyTypeError::new_err(format!(
                "publish() expects {EXPECTED} (a numpy array or another object with the buffer protocol), got {}",
                type_name(frame)
            ))
        })?;
        let l = layout(py, frame, &buf, self.stream.size())?;
        let data = buffer_bytes(&buf, l.span);
        let frame = match l.channels {
            4 => Frame::rgba(l.width, l.height, data),
            _ => Frame::rgb(l.width, l.height, data),
        }
        .with_stride(l.stride);
        let stream = &self.stream;
        let result = py.detach(move || stream.publish(frame));
        drop(buf);
        result.map_err(|e| to_py(py, e))
    }

    /// Takes every event waiting, oldest first, each event's dict in
    /// `event_shape` (`"pdum"`: `type`/`timestamp`; `"renderview"`:
    /// `event_type`/`time_stamp`). `ValueError` for another shape.
    #[pyo3(signature = (event_shape="pdum"))]
    fn poll_events<'py>(&self, py: Python<'py>, event_shape: &str) -> PyResult<Bound<'py, PyList>> {
        let shape = EventShape::parse(event_shape)?;
        let mut events: Vec<ViewerEvent> = self.events.stash().drain(..).collect();
        events.extend(self.stream.poll_events());
        let list = PyList::empty(py);
        for ev in &events {
            list.append(InputEvent::new(py, ev, shape)?)?;
        }
        Ok(list)
    }

    /// An asyncio future on `event_loop`: True when an event is waiting
    /// (take it with `poll_events`), False when the stream has closed.
    fn wait_event_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let events = Arc::clone(&self.events);
        bridge::spawn(
            &self.hub.handle,
            &event_loop,
            Ok(false.into_pyobject(py)?.to_owned().into_any().unbind()),
            events.wait(),
            |py, ready| Ok(ready.into_pyobject(py)?.to_owned().into_any().unbind()),
        )
    }

    /// Blocks until an event is waiting (True), the stream has closed
    /// (False) or `timeout` seconds passed (None).
    #[pyo3(signature = (timeout=None))]
    fn wait_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<bool>> {
        not_on_runtime("wait_event()")?;
        let timeout = match timeout {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t.min(1.0e6))),
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "timeout must be a finite number >= 0, got {t}"
                )))
            }
        };
        let events = Arc::clone(&self.events);
        let hub = Arc::clone(&self.hub);
        Ok(py.detach(move || {
            hub.with_runtime(|rt| {
                rt.block_on(async move {
                    match timeout {
                        None => Some(events.wait().await),
                        Some(t) => tokio::time::timeout(t, events.wait()).await.ok(),
                    }
                })
            })
            .unwrap_or(Some(false))
        }))
    }

    /// Records what this stream publishes to a new MP4 file at `path` (see
    /// the Rust `Stream::record`): H.264 from the stream's own encoder,
    /// fragmented (`fragment_duration` seconds at most per fragment), each
    /// picture timed by when it was published. Returns a `Recording`;
    /// its `stop()` finalizes the file.
    ///
    /// Raises `OSError` when the file cannot be created, `ValueError` for a
    /// `fragment_duration` outside 0.01..=3600, `FramehubError` when the
    /// stream has no H.264 to record (a remote publisher's without it).
    #[pyo3(signature = (path, fragment_duration=1.0))]
    fn record(
        &self,
        py: Python<'_>,
        path: std::path::PathBuf,
        fragment_duration: f64,
    ) -> PyResult<crate::record::Recording> {
        crate::record::start(py, &self.stream, path, fragment_duration)
    }

    /// One metrics snapshot (a dict) per connected viewer.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for m in self.stream.metrics() {
            list.append(convert::to_py(py, &m)?)?;
        }
        Ok(list)
    }

    /// The stream's name (its URL path).
    #[getter]
    fn name(&self) -> &str {
        self.stream.name()
    }

    /// Width in pixels (of the last frame published, or as created).
    #[getter]
    fn width(&self) -> u32 {
        self.stream.size().0
    }

    /// Height in pixels (of the last frame published, or as created).
    #[getter]
    fn height(&self) -> u32 {
        self.stream.size().1
    }

    /// Viewers connected now (past the handshake).
    #[getter]
    fn client_count(&self) -> usize {
        self.stream.client_count()
    }

    /// Events dropped because the queue was full.
    #[getter]
    fn events_dropped(&self) -> u64 {
        self.stream.events_dropped()
    }

    /// Whether the latest frame published still waits for an encoder (see
    /// the Rust `Stream::frame_pending`): a frame published now would
    /// replace it unseen. False before the first publish.
    #[getter]
    fn frame_pending(&self) -> bool {
        self.stream.frame_pending()
    }

    fn __repr__(&self) -> String {
        let (w, h) = self.stream.size();
        format!("<framehub Stream '{}' {w}x{h}>", self.stream.name())
    }
}
