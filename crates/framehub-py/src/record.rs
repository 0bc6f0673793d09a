//! `Recording`: an MP4 recording of a stream (`Stream.record`), over
//! [`framehub::Recording`].

use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{framehub_error, to_py};

/// Where a recording is: running, or ended with what it wrote (or why it failed).
enum State {
    Running(framehub::Recording),
    Done(Result<framehub::RecordingStats, String>),
    /// Between taking the recording out and putting its outcome back.
    Stopping,
}

/// An MP4 recording in progress (`Stream.record`); `stop()` finalizes it.
#[pyclass(module = "framehub._native", name = "Recording", frozen)]
pub struct Recording {
    path: String,
    state: Mutex<State>,
}

impl Recording {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts recording `stream` to `path` (see `Stream.record`).
pub(crate) fn start(
    py: Python<'_>,
    stream: &framehub::Stream,
    path: std::path::PathBuf,
    fragment_duration: f64,
) -> PyResult<Recording> {
    if !(fragment_duration.is_finite() && (0.01..=3600.0).contains(&fragment_duration)) {
        return Err(PyValueError::new_err(format!(
            "fragment_duration must be within 0.01..=3600 seconds, got {fragment_duration}"
        )));
    }
    let options = framehub::RecordOptions::default()
        .fragment_duration(Duration::from_secs_f64(fragment_duration));
    let rec = py
        .detach(|| stream.record(&path, options))
        .map_err(|e| to_py(py, e))?;
    Ok(Recording {
        path: path.display().to_string(),
        state: Mutex::new(State::Running(rec)),
    })
}

fn stats_dict<'py>(py: Python<'py>, s: &framehub::RecordingStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("frames", s.frames)?;
    d.set_item("keyframes", s.keyframes)?;
    d.set_item("dropped", s.dropped)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("duration", s.duration.as_secs_f64())?;
    Ok(d)
}

#[pymethods]
impl Recording {
    /// Stops recording and finalizes the file (blocks, without the GIL,
    /// until it is written and synced). Returns what the file holds:
    /// `{"frames", "keyframes", "dropped", "bytes", "duration"}` (duration
    /// in seconds). Idempotent: a second call returns the same.
    ///
    /// Raises `OSError` when writing failed (disk full, ...) and
    /// `FramehubError` when the stream's video could not be muxed (its
    /// size changed while recording; the file holds the video up to then).
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let taken = std::mem::replace(&mut *self.state(), State::Stopping);
        let outcome = match taken {
            State::Running(rec) => match py.detach(move || rec.stop()) {
                Ok(stats) => Ok(stats),
                Err(e) => {
                    let msg = e.to_string();
                    *self.state() = State::Done(Err(msg));
                    return Err(to_py(py, e));
                }
            },
            State::Done(r) => r,
            State::Stopping => Err("the recording is being stopped by another call".into()),
        };
        *self.state() = State::Done(outcome.clone());
        match outcome {
            Ok(stats) => stats_dict(py, &stats),
            Err(msg) => Err(framehub_error(py, "FramehubError", msg)),
        }
    }

    /// The file being written.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Pictures written to the file so far.
    #[getter]
    fn frames_written(&self) -> u64 {
        match &*self.state() {
            State::Running(r) => r.frames(),
            State::Done(Ok(s)) => s.frames,
            _ => 0,
        }
    }

    /// Access units lost so far (the writer fell behind; it resumes at a keyframe).
    #[getter]
    fn dropped(&self) -> u64 {
        match &*self.state() {
            State::Running(r) => r.dropped(),
            State::Done(Ok(s)) => s.dropped,
            _ => 0,
        }
    }

    /// Bytes written to the file so far.
    #[getter]
    fn bytes_written(&self) -> u64 {
        match &*self.state() {
            State::Running(r) => r.bytes(),
            State::Done(Ok(s)) => s.bytes,
            _ => 0,
        }
    }

    /// Whether the recording has ended (stopped, the stream closed, or an
    /// error, which `stop()` raises).
    #[getter]
    fn finished(&self) -> bool {
        match &*self.state() {
            State::Running(r) => r.is_finished(),
            _ => true,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<framehub Recording '{}' {} frames{}>",
            self.path,
            self.frames_written(),
            if self.finished() { ", finished" } else { "" }
        )
    }
}
