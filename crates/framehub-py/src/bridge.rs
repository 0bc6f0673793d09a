//! Rust futures (running on a hub's tokio runtime) as asyncio futures.
//!
//! [`spawn`] creates an asyncio future on the caller's event loop, runs the
//! Rust future on the hub's runtime, and resolves the asyncio future from
//! the runtime's thread with `loop.call_soon_threadsafe`. If the task is
//! dropped before it finishes (the runtime shut down), the asyncio future is
//! resolved anyway, with the value chosen at creation, so no `await` hangs.

use std::future::Future;

use pyo3::prelude::*;
use pyo3::types::PyCFunction;

/// Resolves an asyncio future once, from any thread.
pub(crate) struct Completer {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    /// What the future gets if the completer is dropped unresolved.
    on_drop: Option<PyResult<Py<PyAny>>>,
}

impl Completer {
    /// A new asyncio future on `event_loop` and its completer; `on_drop` is
    /// the outcome if the completer is dropped without [`Completer::complete`].
    pub(crate) fn new<'py>(
        event_loop: &Bound<'py, PyAny>,
        on_drop: PyResult<Py<PyAny>>,
    ) -> PyResult<(Self, Bound<'py, PyAny>)> {
        let future = event_loop.call_method0("create_future")?;
        Ok((
            Completer {
                event_loop: event_loop.clone().unbind(),
                future: future.clone().unbind(),
                on_drop: Some(on_drop),
            },
            future,
        ))
    }

    /// Resolves the future with `outcome` (a value or an exception).
    pub(crate) fn complete(mut self, py: Python<'_>, outcome: PyResult<Py<PyAny>>) {
        self.on_drop = None;
        deliver(py, &self.event_loop, &self.future, outcome);
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(outcome) = self.on_drop.take() {
            // `try_attach`: never touch an interpreter that is shutting down.
            let _ = Python::try_attach(|py| deliver(py, &self.event_loop, &self.future, outcome));
        }
    }
}

/// Schedules `future.set_result(value)` / `future.set_exception(exc)` on the
/// future's loop, unless the future is done (cancelled) by then.
fn deliver(
    py: Python<'_>,
    event_loop: &Py<PyAny>,
    future: &Py<PyAny>,
    outcome: PyResult<Py<PyAny>>,
) {
    let (ok, value): (bool, Py<PyAny>) = match outcome {
        Ok(v) => (true, v),
        Err(e) => (false, e.into_value(py).into_any()),
    };
    let result =
        PyCFunction::new_closure(py, Some(c"_framehub_resolve"), None, resolve).and_then(|f| {
            event_loop
                .bind(py)
                .call_method1("call_soon_threadsafe", (f, future.bind(py), ok, value))
        });
    // A closed loop cannot be told; nobody is waiting on it any more.
    if let Err(e) = result {
        if !event_loop
            .bind(py)
            .call_method0("is_closed")
            .and_then(|c| c.is_truthy())
            .unwrap_or(true)
        {
            e.write_unraisable(py, None);
        }
    }
}

/// Runs on the event loop: `(future, ok, value)`.
fn resolve(
    args: &Bound<'_, pyo3::types::PyTuple>,
    _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
) -> PyResult<()> {
    let (future, ok, value): (Bound<'_, PyAny>, bool, Bound<'_, PyAny>) = args.extract()?;
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        future.call_method1("set_result", (value,))?;
    } else {
        future.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

/// Runs `fut` on `runtime` and returns an asyncio future of its outcome,
/// converted by `convert` (with the GIL held) on the runtime's thread.
/// `on_drop` is the outcome if the runtime drops the task unfinished.
pub(crate) fn spawn<'py, F, T, C>(
    runtime: &tokio::runtime::Handle,
    event_loop: &Bound<'py, PyAny>,
    on_drop: PyResult<Py<PyAny>>,
    fut: F,
    convert: C,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let (completer, future) = Completer::new(event_loop, on_drop)?;
    runtime.spawn(async move {
        let out = fut.await;
        let _ = Python::try_attach(move |py| {
            let outcome = convert(py, out);
            completer.complete(py, outcome);
        });
    });
    Ok(future)
}
