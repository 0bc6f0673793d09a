//! `Lifecycle`: a subscription to a hub's lifecycle events (streams
//! created and destroyed, publishers online and offline, viewers joined and
//! left), for `async for ev in server.lifecycle()`.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use pyo3::prelude::*;

use crate::bridge;
use crate::convert;
use crate::hub::HubInner;

type Events = Pin<Box<dyn futures_util::Stream<Item = framehub::LifecycleEvent> + Send>>;

/// The hub's lifecycle events from the moment of subscribing, each a dict
/// with its kind in `type` (`"stream.created"`, `"viewer.joined"`, …;
/// `docs/protocol.md` §8, `GET /_/events`).
#[pyclass(module = "framehub._native", name = "Lifecycle", frozen)]
pub struct Lifecycle {
    events: Arc<tokio::sync::Mutex<Events>>,
    hub: Arc<HubInner>,
}

impl Lifecycle {
    pub(crate) fn new(hub: Arc<HubInner>) -> Self {
        let events: Events = Box::pin(hub.server.lifecycle().fuse());
        Lifecycle {
            events: Arc::new(tokio::sync::Mutex::new(events)),
            hub,
        }
    }
}

#[pymethods]
impl Lifecycle {
    /// The next event as an asyncio future on `event_loop`: a dict, or None
    /// once the hub has closed.
    fn next_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let events = Arc::clone(&self.events);
        bridge::spawn(
            &self.hub.handle,
            &event_loop,
            Ok(py.None()),
            async move { events.lock().await.next().await },
            |py, ev| match ev {
                Some(ev) => Ok(convert::to_py(py, &ev)?.unbind()),
                None => Ok(py.None()),
            },
        )
    }
}
