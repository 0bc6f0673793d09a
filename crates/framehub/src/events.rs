//! Input events on their way from viewers to the publisher.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use framehub_proto::{InputEvent, Principal};
use tokio::sync::Notify;

/// One input event with who sent it and when it arrived.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ViewerEvent {
    /// The viewer's session id (as in `config.session` and metrics' `client_id`).
    pub client_id: u64,
    /// What the stream's authenticator returned for that viewer (None: open stream).
    pub principal: Option<Principal>,
    /// Arrival time, µs since the stream was created (the clock of frames' `timestamp_us`).
    pub received_us: u64,
    /// The validated event.
    pub event: InputEvent,
    /// The id of the hub the viewer is on, when it is another hub than the
    /// stream's (a viewer of a stream shared over NATS, `ServerConfig::nats`);
    /// None for a viewer of this hub.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
}

/// A bounded queue: when full, the oldest event is dropped and counted.
pub(crate) struct EventQueue {
    queue: Mutex<VecDeque<ViewerEvent>>,
    capacity: usize,
    dropped: AtomicU64,
    pub notify: Notify,
    recorded: Option<Mutex<VecDeque<serde_json::Value>>>,
    /// Lines for the JSON-lines file, to its writer thread.
    file: Option<std::sync::mpsc::SyncSender<String>>,
    file_dropped: AtomicU64,
}

/// Lines queued for the record file before new ones are dropped.
const FILE_QUEUE: usize = 4096;

/// Starts the thread that appends lines to `path`; None when it cannot be opened.
fn start_file_writer(path: &std::path::Path) -> Option<std::sync::mpsc::SyncSender<String>> {
    use std::io::Write;
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open the event record file");
            return None;
        }
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(FILE_QUEUE);
    let shown = path.display().to_string();
    let spawned = std::thread::Builder::new()
        .name("framehub-record".into())
        .spawn(move || {
            let mut out = std::io::BufWriter::new(file);
            // Ends when the queue's sender (the stream) is dropped.
            while let Ok(line) = rx.recv() {
                let mut ok = writeln!(out, "{line}").is_ok();
                // Flush when nothing else is waiting, so the file is current.
                while let Ok(more) = rx.try_recv() {
                    ok &= writeln!(out, "{more}").is_ok();
                }
                ok &= out.flush().is_ok();
                if !ok {
                    tracing::error!(path = %shown, "writing the event record file failed");
                }
            }
        });
    spawned.ok().map(|_| tx)
}

/// Most events kept by `record_events`.
pub(crate) const MAX_RECORDED: usize = 10_000;

impl EventQueue {
    pub fn new(capacity: usize, record: bool, file: Option<&std::path::Path>) -> Self {
        EventQueue {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            notify: Notify::new(),
            recorded: record.then(|| Mutex::new(VecDeque::new())),
            file: file.and_then(start_file_writer),
            file_dropped: AtomicU64::new(0),
        }
    }

    /// Lines the record file could not take (its queue was full).
    pub fn file_dropped(&self) -> u64 {
        self.file_dropped.load(Ordering::Relaxed)
    }

    pub fn push(&self, ev: ViewerEvent) {
        if let Some(tx) = &self.file {
            let line = serde_json::to_string(&ev).unwrap_or_default();
            if tx.try_send(line).is_err() {
                self.file_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(rec) = &self.recorded {
            let mut rec = lock(rec);
            if rec.len() >= MAX_RECORDED {
                rec.pop_front();
            }
            rec.push_back(serde_json::to_value(&ev).unwrap_or(serde_json::Value::Null));
        }
        {
            let mut q = lock(&self.queue);
            if q.len() >= self.capacity {
                q.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(ev);
        }
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn drain(&self) -> Vec<ViewerEvent> {
        lock(&self.queue).drain(..).collect()
    }

    pub fn pop(&self) -> Option<ViewerEvent> {
        lock(&self.queue).pop_front()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn recorded(&self) -> Option<Vec<serde_json::Value>> {
        self.recorded
            .as_ref()
            .map(|r| lock(r).iter().cloned().collect())
    }

    pub fn reset_recorded(&self) {
        if let Some(r) = &self.recorded {
            lock(r).clear();
        }
    }
}

/// Locks a mutex, recovering the data if a thread panicked while holding it
/// (every critical section here leaves the data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
