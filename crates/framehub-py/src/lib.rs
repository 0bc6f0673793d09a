//! The `framehub._native` Python extension module: a thin PyO3 layer over
//! the `framehub` crate. The Python package `framehub` (python/framehub/)
//! wraps it into `serve()`, `serve_server()`, `Server`, `Display` and the
//! synchronous façade `framehub.sync`.
//!
//! Each [`hub::Hub`] owns a tokio runtime (multi-threaded, 2 workers) and a
//! `framehub::Server`; async Python calls are Rust futures spawned on that
//! runtime whose outcome resolves an asyncio future through
//! `loop.call_soon_threadsafe` ([`bridge`]). Frames are copied once, without
//! the GIL ([`stream::Stream`]'s `publish`). Errors map to the
//! `framehub.FramehubError` hierarchy in one function ([`error::to_py`]);
//! stream settings map from keyword arguments in one function
//! ([`config::stream_config`]).

#![deny(missing_docs)]

mod asgi;
mod auth;
mod bridge;
mod config;
mod convert;
mod error;
mod hub;
mod lifecycle;
mod record;
mod stream;

use pyo3::prelude::*;

/// The bytes of file `name` of the browser client embedded in the hub
/// (`web/`: `framehub.js` and its modules), or None.
#[pyfunction]
fn web_asset(py: Python<'_>, name: &str) -> Option<Py<pyo3::types::PyBytes>> {
    framehub::web_asset(name).map(|b| pyo3::types::PyBytes::new(py, b).unbind())
}

/// The names of the embedded browser client's files.
#[pyfunction]
fn web_asset_names() -> Vec<&'static str> {
    framehub::web_asset_names().collect()
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<hub::Hub>()?;
    m.add_class::<lifecycle::Lifecycle>()?;
    m.add_class::<asgi::AsgiBridge>()?;
    m.add_class::<asgi::ViewerChannel>()?;
    m.add_class::<stream::Stream>()?;
    m.add_class::<record::Recording>()?;
    m.add_class::<stream::InputEvent>()?;
    m.add_class::<auth::AuthContext>()?;
    m.add_function(wrap_pyfunction!(web_asset, m)?)?;
    m.add_function(wrap_pyfunction!(web_asset_names, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("STREAM_SETTINGS", config::KEYWORDS.to_vec())?;
    Ok(())
}
