//! `framehub::Error` → Python exceptions, in one place.
//!
//! The exception classes live in `framehub._errors` (pure Python, so that
//! `InvalidFrameError` can also be a `ValueError` and `UnknownStreamError` a
//! `LookupError`); this module looks them up by name.

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;

/// The Python exception class `framehub._errors.<name>` carrying `msg`.
///
/// Falls back to `RuntimeError` if the class cannot be imported (it always
/// can when the package is installed).
pub(crate) fn framehub_error(py: Python<'_>, name: &str, msg: String) -> PyErr {
    match py
        .import("framehub._errors")
        .and_then(|m| m.getattr(name))
        .and_then(|cls| cls.call1((msg.clone(),)))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => PyRuntimeError::new_err(msg),
    }
}

/// Maps a hub error to its Python exception: `StreamExistsError`,
/// `InvalidNameError`, `UnknownStreamError`, `InvalidFrameError`,
/// `ClosedError`, `OSError` (with `errno` when the OS gave one) or
/// `FramehubError`.
pub(crate) fn to_py(py: Python<'_>, e: framehub::Error) -> PyErr {
    let msg = e.to_string();
    // Other engineers add variants to `framehub::Error`: the wildcard keeps
    // this crate building, and unknown variants become `FramehubError`.
    #[allow(unreachable_patterns)]
    match e {
        framehub::Error::StreamExists(_) => framehub_error(py, "StreamExistsError", msg),
        framehub::Error::InvalidName { .. } => framehub_error(py, "InvalidNameError", msg),
        framehub::Error::UnknownStream(_) => framehub_error(py, "UnknownStreamError", msg),
        framehub::Error::InvalidFrame(_) => framehub_error(py, "InvalidFrameError", msg),
        framehub::Error::Closed => framehub_error(py, "ClosedError", msg),
        // A remote hub refused a publisher: a taken name is a taken name.
        framehub::Error::Refused { code: 4409, .. } => framehub_error(py, "StreamExistsError", msg),
        framehub::Error::Io(io) => match io.raw_os_error() {
            Some(errno) => {
                // `OSError(errno, strerror)`, so `e.errno` and `e.strerror` are set.
                let strerror = py
                    .import("os")
                    .and_then(|os| os.call_method1("strerror", (errno,)))
                    .and_then(|s| s.extract::<String>())
                    .unwrap_or_else(|_| io.to_string());
                PyOSError::new_err((errno, strerror))
            }
            None => PyOSError::new_err(io.to_string()),
        },
        _ => framehub_error(py, "FramehubError", msg),
    }
}

/// A `ClosedError` saying `what` could not finish because the hub shut down.
pub(crate) fn closed(py: Python<'_>, what: &str) -> PyErr {
    framehub_error(
        py,
        "ClosedError",
        format!("the hub was closed before {what} finished"),
    )
}
