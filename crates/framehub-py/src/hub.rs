//! `Hub`: a framehub server with its own tokio runtime.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::runtime::{Handle, Runtime};

use crate::bridge;
use crate::config;
use crate::error::{self, to_py};
use crate::stream::Stream;

/// How long closing waits for the runtime's threads to finish.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// What a hub's Python objects share: the runtime (until closed) and the server.
pub(crate) struct HubInner {
    /// Read-locked while a blocking call runs on the runtime, write-locked to shut it down.
    runtime: RwLock<Option<Runtime>>,
    /// The runtime's handle (spawning on it after shutdown drops the task).
    pub(crate) handle: Handle,
    pub(crate) server: framehub::Server,
    /// The asyncio loop async authenticators run on (None: synchronous API).
    pub(crate) event_loop: Option<Py<PyAny>>,
    /// Streams this hub's runtime publishes into remote hubs (`connect`):
    /// kept here so that closing the hub closes their feeds.
    pub(crate) remotes: std::sync::Mutex<Vec<framehub::RemoteStream>>,
}

impl HubInner {
    /// Runs `f` with the runtime, which cannot shut down meanwhile; None
    /// once it has. Blocking calls inside `f` must not need the GIL.
    pub(crate) fn with_runtime<R>(&self, f: impl FnOnce(&Runtime) -> R) -> Option<R> {
        let rt = self.runtime.read().unwrap_or_else(|e| e.into_inner());
        rt.as_ref().map(f)
    }

    /// Whether the runtime still runs.
    pub(crate) fn running(&self) -> bool {
        self.with_runtime(|_| ()).is_some()
    }

    /// Closes the server (viewers get 1001) and shuts the runtime down.
    /// Blocking; call without the GIL and outside the runtime.
    fn close_blocking(&self) {
        let remotes = std::mem::take(&mut *self.remotes.lock().unwrap_or_else(|e| e.into_inner()));
        self.with_runtime(|rt| {
            rt.block_on(async {
                for r in remotes {
                    r.close().await;
                }
                self.server.close().await;
            })
        });
        let rt = self
            .runtime
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rt) = rt {
            rt.shutdown_timeout(SHUTDOWN_TIMEOUT);
        }
    }
}

impl Drop for HubInner {
    fn drop(&mut self) {
        // Every Python object of the hub is gone without a close: stop the
        // hub without blocking (this may run with the GIL held).
        let rt = self
            .runtime
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rt) = rt {
            rt.shutdown_background();
        }
    }
}

/// Refuses blocking calls from the hub's own threads (an authenticator, say),
/// where they would deadlock or panic.
pub(crate) fn not_on_runtime(what: &str) -> PyResult<()> {
    if Handle::try_current().is_ok() {
        return Err(PyRuntimeError::new_err(format!(
            "{what} cannot be called from a framehub callback (it runs on the hub's own threads)"
        )));
    }
    Ok(())
}

/// A framehub hub: named streams on one port. It owns a tokio runtime
/// (multi-threaded, 2 workers) that runs the listener and the viewers.
#[pyclass(module = "framehub._native", name = "Hub", frozen)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

impl Hub {
    /// A stream's size and settings from Python arguments (`caller` names
    /// the function in error messages).
    fn stream_args(
        &self,
        width: i64,
        height: i64,
        config: Option<&Bound<'_, PyDict>>,
        caller: &str,
    ) -> PyResult<(u32, u32, framehub::StreamConfig)> {
        let side = |v: i64, what: &str| {
            u32::try_from(v).map_err(|_| {
                PyValueError::new_err(format!("{what} must be within 1..=16384, got {v}"))
            })
        };
        let (w, h) = (side(width, "width")?, side(height, "height")?);
        let cfg = config::stream_config(caller, config, self.inner.event_loop.as_ref())?;
        Ok((w, h, cfg))
    }
}

#[pymethods]
impl Hub {
    /// A hub that does not listen yet. `event_loop`: the asyncio loop that
    /// async authenticators run on (None for the synchronous API);
    /// `origins`: which web pages may connect (see `config::origins`);
    /// `nats`: the NATS system to join when it listens (see `config::nats`).
    #[new]
    #[pyo3(signature = (event_loop=None, origins=None, nats=None))]
    fn new(
        event_loop: Option<Bound<'_, PyAny>>,
        origins: Option<Bound<'_, PyAny>>,
        nats: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let origins = config::origins(origins.as_ref())?;
        let nats = config::nats(nats.as_ref())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("framehub-rt")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the hub's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let event_loop = event_loop.filter(|l| !l.is_none()).map(Bound::unbind);
        Ok(Hub {
            inner: Arc::new(HubInner {
                runtime: RwLock::new(Some(runtime)),
                handle,
                server: framehub::Server::builder()
                    .config(framehub::ServerConfig {
                        origins,
                        nats,
                        ..Default::default()
                    })
                    .build(),
                event_loop,
                remotes: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }

    /// Binds `host:port` (port 0 picks a free one) and returns the port. Blocking.
    ///
    /// Raises `OSError` when the address cannot be bound, `ClosedError` after close.
    fn listen(&self, py: Python<'_>, host: String, port: u16) -> PyResult<u16> {
        not_on_runtime("listen()")?;
        let inner = Arc::clone(&self.inner);
        let result = py.detach(move || -> Result<u16, framehub::Error> {
            inner
                .with_runtime(|rt| rt.block_on(inner.server.listen((host.as_str(), port))))
                .unwrap_or(Err(framehub::Error::Closed))
                .map(|a| a.port())
        });
        result.map_err(|e| to_py(py, e))
    }

    /// [`Hub::listen`] as an asyncio future on `event_loop`, resolved with the port.
    fn listen_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: Bound<'py, PyAny>,
        host: String,
        port: u16,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !self.inner.running() {
            return Err(to_py(py, framehub::Error::Closed));
        }
        let server = self.inner.server.clone();
        bridge::spawn(
            &self.inner.handle,
            &event_loop,
            Err(error::closed(py, "listen")),
            async move { server.listen((host.as_str(), port)).await },
            |py, r| match r {
                Ok(addr) => Ok(addr.port().into_pyobject(py)?.into_any().unbind()),
                Err(e) => Err(to_py(py, e)),
            },
        )
    }

    /// Publishes a stream of `width` × `height` pixels into the remote hub
    /// at `url` (`ws://HOST:PORT/<name>` or its `/_/publish/<name>` form) as
    /// an asyncio future on `event_loop`, resolved with the `Stream` once the
    /// hub accepted the claim. The encoding runs on this hub's threads;
    /// `config` holds the stream settings of `add_stream`.
    ///
    /// Raises (through the future) `FramehubError` when the hub refuses
    /// (4401, 4409: the message says which), `OSError` when it cannot be
    /// reached, `InvalidNameError` for a URL without a stream name.
    #[pyo3(signature = (event_loop, url, width, height, config=None, token=None, takeover=false))]
    #[allow(clippy::too_many_arguments)]
    fn connect_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: Bound<'py, PyAny>,
        url: String,
        width: i64,
        height: i64,
        config: Option<&Bound<'py, PyDict>>,
        token: Option<String>,
        takeover: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !self.inner.running() {
            return Err(to_py(py, framehub::Error::Closed));
        }
        let (w, h, cfg) = self.stream_args(width, height, config, "connect")?;
        let inner = Arc::clone(&self.inner);
        let opts = framehub::RemoteOptions { token, takeover };
        bridge::spawn(
            &self.inner.handle,
            &event_loop,
            Err(error::closed(py, "connect")),
            async move {
                let remote = framehub::RemoteStream::connect_with(&url, w, h, cfg, opts).await?;
                let stream = (*remote).clone();
                inner
                    .remotes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(remote);
                Ok::<_, framehub::Error>((stream, inner))
            },
            |py, r| match r {
                Ok((stream, inner)) => Ok(Stream::new(stream, inner)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind()),
                Err(e) => Err(to_py(py, e)),
            },
        )
    }

    /// [`Hub::connect_async`], blocking (the synchronous API).
    #[pyo3(signature = (url, width, height, config=None, token=None, takeover=false))]
    #[allow(clippy::too_many_arguments)]
    fn connect(
        &self,
        py: Python<'_>,
        url: String,
        width: i64,
        height: i64,
        config: Option<&Bound<'_, PyDict>>,
        token: Option<String>,
        takeover: bool,
    ) -> PyResult<Stream> {
        not_on_runtime("connect()")?;
        let (w, h, cfg) = self.stream_args(width, height, config, "connect")?;
        let inner = Arc::clone(&self.inner);
        let opts = framehub::RemoteOptions { token, takeover };
        let result = py.detach(move || {
            inner
                .with_runtime(|rt| {
                    rt.block_on(framehub::RemoteStream::connect_with(&url, w, h, cfg, opts))
                })
                .unwrap_or(Err(framehub::Error::Closed))
                .map(|remote| {
                    let stream = (*remote).clone();
                    inner
                        .remotes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(remote);
                    stream
                })
        });
        let stream = result.map_err(|e| to_py(py, e))?;
        Ok(Stream::new(stream, Arc::clone(&self.inner)))
    }

    /// Adds a stream `name` of `width` × `height` pixels; `config` holds the
    /// stream settings (the keyword arguments of `add_stream`).
    ///
    /// Raises `InvalidNameError`, `StreamExistsError`, `InvalidFrameError`
    /// (bad size), `ClosedError`, `TypeError` / `ValueError` /
    /// `NotImplementedError` for settings.
    #[pyo3(signature = (name, width, height, config=None, caller="add_stream"))]
    fn add_stream(
        &self,
        py: Python<'_>,
        name: &str,
        width: i64,
        height: i64,
        config: Option<&Bound<'_, PyDict>>,
        caller: &str,
    ) -> PyResult<Stream> {
        let (w, h, cfg) = self.stream_args(width, height, config, caller)?;
        // In the runtime's context, should the hub spawn a task for the stream.
        let _context = self.inner.handle.enter();
        let stream = self
            .inner
            .server
            .add_stream(name, w, h, cfg)
            .map_err(|e| to_py(py, e))?;
        Ok(Stream::new(stream, Arc::clone(&self.inner)))
    }

    /// A subscription to the hub's lifecycle events from now on.
    fn lifecycle(&self) -> crate::lifecycle::Lifecycle {
        crate::lifecycle::Lifecycle::new(Arc::clone(&self.inner))
    }

    /// Removes the stream `name` (its viewers get 1001). Returns whether it existed.
    fn remove_stream(&self, name: &str) -> bool {
        let _context = self.inner.handle.enter();
        self.inner.server.remove_stream(name)
    }

    /// A new handle to the existing stream `name`, or None.
    fn stream(&self, name: &str) -> Option<Stream> {
        self.inner
            .server
            .stream(name)
            .map(|s| Stream::new(s, Arc::clone(&self.inner)))
    }

    /// The names of the streams, sorted.
    fn stream_names(&self) -> Vec<String> {
        self.inner.server.stream_names()
    }

    /// The bound port (None before `listen`).
    #[getter]
    fn port(&self) -> Option<u16> {
        self.inner.server.local_addr().map(|a| a.port())
    }

    /// The bound address as `(host, port)` (None before `listen`).
    #[getter]
    fn address(&self) -> Option<(String, u16)> {
        self.inner
            .server
            .local_addr()
            .map(|a| (a.ip().to_string(), a.port()))
    }

    /// Whether the hub was closed.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.server.is_closed() || !self.inner.running()
    }

    /// Whether the hub's tokio runtime still runs (False once closed).
    #[getter]
    fn runtime_running(&self) -> bool {
        self.inner.running()
    }

    /// Closes the hub and waits: viewers get 1001, the port is released, the
    /// runtime's threads stop. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        not_on_runtime("close()")?;
        let inner = Arc::clone(&self.inner);
        py.detach(move || inner.close_blocking());
        Ok(())
    }

    fn __repr__(&self) -> String {
        match self.inner.server.local_addr() {
            Some(a) => format!("<framehub Hub on {a}>"),
            None => "<framehub Hub (not listening)>".into(),
        }
    }
}
