//! A Python callable as a stream's authenticator.
//!
//! The hub calls the authenticator on its tokio runtime. A plain callable
//! runs on a blocking thread with the GIL. A coroutine function (or any
//! callable returning a coroutine) is scheduled on the asyncio loop the hub
//! was created from with `asyncio.run_coroutine_threadsafe`; its result comes
//! back through a done-callback into a oneshot channel the hub awaits. The
//! whole call has [`AUTH_TIMEOUT`]; a timeout, an exception or a `None` /
//! `False` answer refuses the viewer (close 4401). Exceptions are logged on
//! the `framehub` logger.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use framehub::{AuthError, Authenticator, Principal};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyTuple};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::convert;

/// How long an authenticator may take before the viewer is refused.
pub(crate) const AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the viewer presented, as the authenticator sees it (`docs/protocol.md` §7).
#[pyclass(module = "framehub._native", name = "AuthContext", frozen, get_all)]
pub struct AuthContext {
    /// The credential: `hello.token`, else the `token` query parameter, else
    /// an `Authorization: Bearer` header, else the stream's token cookie.
    pub token: Option<String>,
    /// The upgrade request's headers (lower-case names).
    pub headers: Py<PyDict>,
    /// The upgrade request's cookies.
    pub cookies: Py<PyDict>,
    /// The upgrade request's query parameters.
    pub query: Py<PyDict>,
    /// The request path, such as `/camera`.
    pub path: String,
    /// The peer's `(host, port)`, when known.
    pub remote: Option<(String, u16)>,
    /// The viewer's `hello` message as a dict.
    pub hello: Py<PyDict>,
    /// The stream's name.
    pub stream: String,
}

#[pymethods]
impl AuthContext {
    fn __repr__(&self) -> String {
        format!(
            "AuthContext(stream={:?}, path={:?}, remote={:?}, token={})",
            self.stream,
            self.path,
            self.remote,
            if self.token.is_some() {
                "'…'"
            } else {
                "None"
            }
        )
    }
}

fn string_dict(
    py: Python<'_>,
    map: &std::collections::BTreeMap<String, String>,
) -> PyResult<Py<PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in map {
        d.set_item(k, v)?;
    }
    Ok(d.unbind())
}

impl AuthContext {
    fn new(py: Python<'_>, ctx: &framehub::AuthContext) -> PyResult<Self> {
        let hello = match convert::to_py(py, &ctx.hello)?.cast_into::<PyDict>() {
            Ok(d) => d.unbind(),
            Err(_) => PyDict::new(py).unbind(),
        };
        Ok(AuthContext {
            token: ctx.token.clone(),
            headers: string_dict(py, &ctx.headers)?,
            cookies: string_dict(py, &ctx.cookies)?,
            query: string_dict(py, &ctx.query)?,
            path: ctx.path.clone(),
            remote: ctx.remote.map(|a| (a.ip().to_string(), a.port())),
            hello,
            stream: ctx.stream.clone(),
        })
    }
}

type Verdict = Result<Option<Principal>, AuthError>;

/// What calling the Python callable gave.
enum Step {
    /// A plain answer.
    Done(Verdict),
    /// A coroutine scheduled on the hub's event loop.
    Pending {
        rx: oneshot::Receiver<Verdict>,
        future: Py<PyAny>,
    },
}

/// Wraps `callable` (sync or async, taking an `AuthContext`) as an [`Authenticator`].
///
/// Errors: `TypeError` when `callable` is not callable.
pub(crate) fn authenticator(
    callable: &Bound<'_, PyAny>,
    event_loop: Option<Py<PyAny>>,
) -> PyResult<Authenticator> {
    if !callable.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "authenticate must be a callable taking an AuthContext (sync or async), got {}",
            type_name(callable)
        )));
    }
    let callable = Arc::new(callable.clone().unbind());
    let event_loop = Arc::new(event_loop);
    Ok(framehub::authenticator(move |ctx| {
        let callable = Arc::clone(&callable);
        let event_loop = Arc::clone(&event_loop);
        async move { authenticate(callable, event_loop, ctx).await }
    }))
}

/// The name of `obj`'s type, for messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

async fn authenticate(
    callable: Arc<Py<PyAny>>,
    event_loop: Arc<Option<Py<PyAny>>>,
    ctx: framehub::AuthContext,
) -> Verdict {
    let deadline = Instant::now() + AUTH_TIMEOUT;
    let timed_out = || {
        AuthError(format!(
            "authenticate did not answer within {AUTH_TIMEOUT:?}"
        ))
    };
    let call = tokio::task::spawn_blocking(move || {
        Python::try_attach(|py| call(py, &callable, event_loop.as_ref().as_ref(), &ctx))
            .unwrap_or_else(|| Err(AuthError("the Python interpreter is shutting down".into())))
    });
    let step = match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(step)) => step?,
        Ok(Err(e)) => return Err(AuthError(format!("authenticate failed: {e}"))),
        Err(_) => return Err(timed_out()),
    };
    match step {
        Step::Done(verdict) => verdict,
        Step::Pending { rx, future } => match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(_)) => Err(AuthError("authenticate's result was lost".into())),
            Err(_) => {
                // Cancel the coroutine; `cancel` is thread-safe on a concurrent future.
                let _ = tokio::task::spawn_blocking(move || {
                    Python::try_attach(|py| future.bind(py).call_method0("cancel").map(|_| ()))
                })
                .await;
                Err(timed_out())
            }
        },
    }
}

/// Calls the Python authenticator (on a blocking thread, with the GIL).
fn call(
    py: Python<'_>,
    callable: &Py<PyAny>,
    event_loop: Option<&Py<PyAny>>,
    ctx: &framehub::AuthContext,
) -> Result<Step, AuthError> {
    let stream = ctx.stream.clone();
    let failed = |py: Python<'_>, e: PyErr| {
        log_exception(
            py,
            &format!("authenticate raised for stream '{stream}'"),
            &e,
        );
        AuthError(format!("authenticate raised: {e}"))
    };
    let ctx = AuthContext::new(py, ctx)
        .and_then(|c| Py::new(py, c))
        .map_err(|e| failed(py, e))?;
    let answer = callable.bind(py).call1((ctx,)).map_err(|e| failed(py, e))?;
    let awaitable = py
        .import("inspect")
        .and_then(|m| m.call_method1("isawaitable", (&answer,)))
        .and_then(|b| b.is_truthy())
        .map_err(|e| failed(py, e))?;
    if !awaitable {
        return Ok(Step::Done(verdict_of(&answer).map_err(|e| failed(py, e))?));
    }
    let asyncio = py.import("asyncio").map_err(|e| failed(py, e))?;
    let is_coroutine = asyncio
        .call_method1("iscoroutine", (&answer,))
        .and_then(|b| b.is_truthy())
        .map_err(|e| failed(py, e))?;
    if !is_coroutine {
        return Err(failed(
            py,
            PyTypeError::new_err("authenticate returned an awaitable that is not a coroutine"),
        ));
    }
    match event_loop {
        Some(event_loop) => {
            let future = match asyncio
                .call_method1("run_coroutine_threadsafe", (&answer, event_loop.bind(py)))
            {
                Ok(f) => f,
                Err(e) => {
                    // The loop is gone: close the coroutine so it is not reported as never awaited.
                    let _ = answer.call_method0("close");
                    return Err(failed(py, e));
                }
            };
            let (tx, rx) = oneshot::channel::<Verdict>();
            let tx = Mutex::new(Some(tx));
            let stream = stream.clone();
            let done = PyCFunction::new_closure(
                py,
                Some(c"_framehub_auth_done"),
                None,
                move |args: &Bound<'_, PyTuple>,
                      _kwargs: Option<&Bound<'_, PyDict>>|
                      -> PyResult<()> {
                    let verdict = finished(&args.get_item(0)?, &stream);
                    let sender = tx.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(sender) = sender {
                        let _ = sender.send(verdict);
                    }
                    Ok(())
                },
            )
            .map_err(|e| failed(py, e))?;
            future
                .call_method1("add_done_callback", (done,))
                .map_err(|e| failed(py, e))?;
            Ok(Step::Pending {
                rx,
                future: future.unbind(),
            })
        }
        None => {
            // No event loop (the synchronous API): run the coroutine here, on a private loop.
            let outcome = asyncio
                .call_method1("wait_for", (&answer, AUTH_TIMEOUT.as_secs_f64()))
                .and_then(|coro| asyncio.call_method1("run", (coro,)));
            match outcome {
                Ok(v) => Ok(Step::Done(verdict_of(&v).map_err(|e| failed(py, e))?)),
                Err(e) => Err(failed(py, e)),
            }
        }
    }
}

/// The verdict of a finished `concurrent.futures.Future` (runs on the event loop).
fn finished(future: &Bound<'_, PyAny>, stream: &str) -> Verdict {
    let py = future.py();
    let cancelled = future
        .call_method0("cancelled")
        .and_then(|c| c.is_truthy())
        .unwrap_or(true);
    if cancelled {
        return Err(AuthError("authenticate was cancelled".into()));
    }
    let result = future.call_method0("result");
    match result.and_then(|v| verdict_of(&v)) {
        Ok(v) => v,
        Err(e) => {
            log_exception(
                py,
                &format!("authenticate raised for stream '{stream}'"),
                &e,
            );
            Err(AuthError(format!("authenticate raised: {e}")))
        }
    }
}

/// `None` or `False` refuse; `True` admits without a principal; anything
/// else admits with `str()` of it as the principal.
fn verdict_of(answer: &Bound<'_, PyAny>) -> PyResult<Verdict> {
    if answer.is_none() {
        return Ok(Err(AuthError("authenticate returned None".into())));
    }
    if let Ok(b) = answer.cast::<pyo3::types::PyBool>() {
        return Ok(if b.is_true() {
            Ok(None)
        } else {
            Err(AuthError("authenticate returned False".into()))
        });
    }
    let name = answer.str()?.to_cow()?.into_owned();
    Ok(Ok(Some(Principal::new(name))))
}

/// Logs `e` with its traceback on the `framehub` logger.
pub(crate) fn log_exception(py: Python<'_>, msg: &str, e: &PyErr) {
    let logged = py.import("logging").and_then(|logging| {
        let logger = logging.call_method1("getLogger", ("framehub",))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("exc_info", e.value(py))?;
        logger.call_method("error", (msg,), Some(&kwargs))?;
        Ok(())
    });
    if logged.is_err() {
        eprintln!("framehub: {msg}: {e}");
    }
}
