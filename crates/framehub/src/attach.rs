//! The viewer seam: every kind of viewer — the hub's own WebSocket, a
//! WebSocket bridged from another server (ASGI), later a WebRTC peer — is
//! admitted and served by the same two steps:
//!
//! 1. [`prepare`]: the stream is looked up and a place is taken within the
//!    hub's limits ([`Inner::admit`](crate::server::Inner::admit));
//! 2. [`Attach::serve`]: over any message socket (`Sink<Message>` +
//!    `Stream<Item = Result<Message, _>>`), an unknown stream is closed with
//!    4404, a refused viewer with 1008 and the limit's name, an admitted one
//!    runs [`viewer::run`] (the sans-IO session: handshake, authentication,
//!    credit, latest wins, input policy, timeouts).
//!
//! The hub's router calls them around its WebSocket upgrade (http.rs);
//! [`Server::attach_viewer`](crate::Server::attach_viewer) calls them for a
//! viewer whose messages come from elsewhere, through a [`ViewerChannel`]:
//! two bounded channels standing in for the socket.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ws::{CloseFrame, Message};
use futures_channel::mpsc;
use futures_util::{Sink, SinkExt, Stream, StreamExt};

use crate::server::{Admission, Inner};
use crate::stream::StreamShared;
use crate::viewer::{self, ConnInfo};

/// Messages a [`ViewerChannel`] holds from the session before the other side
/// takes them. Frames are bounded by the session's credit (`max_inflight`)
/// already; this bounds the text messages between them. When it is full the
/// session waits, and a viewer that takes nothing for `write_timeout` is
/// dropped, as on a socket.
pub const VIEWER_CHANNEL_OUT: usize = 8;

/// Messages a [`ViewerChannel`] holds for the session before it reads them
/// (acks and events; the session reads them as fast as it can, and a sender
/// waits while the channel is full).
pub const VIEWER_CHANNEL_IN: usize = 16;

pub use framehub_proto::link::ViewerMessage;

/// What a viewer's WebSocket upgrade request said, for
/// [`Server::attach_viewer`](crate::Server::attach_viewer): the same facts the
/// hub's own port reads from its HTTP request.
#[derive(Debug, Clone, Default)]
pub struct ViewerRequest {
    /// The path under the hub's root, as on the wire (percent-encoded): `/`
    /// for the stream `default`, `/<name>` for a stream.
    pub path: String,
    /// The query string without `?` (may carry `token=`), or empty.
    pub query: String,
    /// The request's headers as (name, value); `Origin` and `Host` are
    /// checked against the hub's [`Origins`](crate::Origins) policy,
    /// `Authorization` and cookies go to the authenticator.
    pub headers: Vec<(String, String)>,
    /// The client's address, if known: the per-address limit and the
    /// authenticator's `remote`.
    pub remote: Option<SocketAddr>,
}

/// Why [`Server::attach_viewer`](crate::Server::attach_viewer) did not attach
/// a viewer. (A viewer of an unknown stream, or one over a limit, *is*
/// attached and then closed with 4404 / 1008, as on the hub's port.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The path names no viewer route (`/` or `/<name>`): HTTP 404 on the port.
    #[error("'{0}' is not a viewer path")]
    NotAViewerPath(String),
    /// The page's `Origin` is not allowed: HTTP 403 on the port.
    #[error("origin '{0}' is not allowed")]
    Forbidden(String),
    /// The hub is closed.
    #[error("the hub is closed")]
    Closed,
    /// Not called inside a tokio runtime (the session runs as a task on it).
    #[error("attach_viewer must be called inside a tokio runtime")]
    NoRuntime,
}

/// A viewer attached with [`Server::attach_viewer`](crate::Server::attach_viewer):
/// its session runs on the hub's runtime and talks through two bounded
/// channels. Send what the viewer sent with [`ViewerChannel::sender`]'s
/// half, deliver what [`ViewerReceiver::recv`] yields to the viewer. Dropping
/// (or closing) the sender is the viewer's disconnect; the receiver ends
/// after the session's [`ViewerMessage::Close`], or when it ended.
#[derive(Debug)]
pub struct ViewerChannel {
    /// To the session: what the viewer sent.
    pub sender: ViewerSender,
    /// From the session: what to send to the viewer.
    pub receiver: ViewerReceiver,
}

/// The viewer's side of a [`ViewerChannel`]: messages to its session
/// (bounded: [`VIEWER_CHANNEL_IN`]).
#[derive(Debug, Clone)]
pub struct ViewerSender(mpsc::Sender<ViewerMessage>);

/// The session has ended; the message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the viewer's session has ended")]
pub struct SessionEnded;

/// What [`ViewerSender::try_send`] did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrySend {
    /// Queued for the session.
    Sent,
    /// The channel is full: the message comes back; send it with
    /// [`ViewerSender::send`], which waits.
    Full(ViewerMessage),
    /// The session has ended; the message is dropped.
    Ended,
}

impl ViewerSender {
    /// Queues `msg` for the session, waiting while the channel is full.
    ///
    /// Errors: [`SessionEnded`] once the session has ended.
    pub async fn send(&mut self, msg: ViewerMessage) -> Result<(), SessionEnded> {
        self.0.send(msg).await.map_err(|_| SessionEnded)
    }

    /// Queues `msg` if there is room, without waiting.
    pub fn try_send(&mut self, msg: ViewerMessage) -> TrySend {
        match self.0.try_send(msg) {
            Ok(()) => TrySend::Sent,
            Err(e) if e.is_full() => TrySend::Full(e.into_inner()),
            Err(_) => TrySend::Ended,
        }
    }

    /// The viewer is gone: the session ends as on a closed socket.
    pub fn close(&mut self) {
        self.0.close_channel();
    }
}

impl ViewerChannel {
    /// The two channel ends (for the WebRTC driver, which takes them as they are).
    #[cfg(feature = "webrtc")]
    pub(crate) fn into_parts(self) -> (mpsc::Sender<ViewerMessage>, mpsc::Receiver<ViewerMessage>) {
        (self.sender.0, self.receiver.0)
    }
}

/// The viewer's side of a [`ViewerChannel`]: what the session sends it
/// (bounded: [`VIEWER_CHANNEL_OUT`]).
#[derive(Debug)]
pub struct ViewerReceiver(mpsc::Receiver<ViewerMessage>);

impl ViewerReceiver {
    /// The next message for the viewer; None once the session has ended
    /// and every message was taken.
    pub async fn recv(&mut self) -> Option<ViewerMessage> {
        self.0.next().await
    }

    /// A message waiting now: `Ok(Some)`; `Ok(None)` when none waits yet;
    /// `Err(SessionEnded)` once the session has ended and all were taken.
    pub fn try_recv(&mut self) -> Result<Option<ViewerMessage>, SessionEnded> {
        match self.0.try_recv() {
            Ok(m) => Ok(Some(m)),
            Err(mpsc::TryRecvError::Closed) => Err(SessionEnded),
            Err(mpsc::TryRecvError::Empty) => Ok(None),
        }
    }
}

/// A viewer whose request reached the upgrade, before its socket exists.
pub(crate) enum Attach {
    /// No such stream: closed with 4404 (counted here).
    Unknown(String),
    /// Refused by a limit (counted by `admit`): closed with 1008 and the reason.
    Refused(&'static str),
    /// Admitted: its place in the limits is held until the session ends.
    Admitted(Box<Admitted>),
}

pub(crate) struct Admitted {
    admission: Admission,
    stream: Arc<StreamShared>,
    session_id: u64,
    conn: ConnInfo,
    inner: Arc<Inner>,
    /// Subscribed at admission, so a shutdown from then on is seen.
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Admitted {
    /// The stream the viewer was admitted to.
    pub(crate) fn stream(&self) -> &Arc<StreamShared> {
        &self.stream
    }
}

/// Step 1 of the seam: looks the stream up and takes a place for the viewer.
pub(crate) fn prepare(inner: &Arc<Inner>, name: &str, conn: ConnInfo) -> Attach {
    let Some(stream) = inner.stream(name) else {
        inner
            .counters
            .count_close(framehub_proto::close_code::UNKNOWN_STREAM);
        return Attach::Unknown(name.to_string());
    };
    match inner.admit(&stream, conn.remote) {
        Ok(admission) => Attach::Admitted(Box::new(Admitted {
            admission,
            stream,
            session_id: inner.next_session_id(),
            conn,
            inner: Arc::clone(inner),
            shutdown: inner.shutdown.subscribe(),
        })),
        Err(why) => Attach::Refused(why),
    }
}

impl Attach {
    /// Step 2 of the seam: serves the viewer over `socket` until it ends.
    pub(crate) async fn serve<S, E>(self, mut socket: S)
    where
        S: Sink<Message, Error = E> + Stream<Item = Result<Message, E>> + Unpin,
        E: std::fmt::Display,
    {
        let close = |code, reason: String| {
            Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))
        };
        match self {
            Attach::Unknown(name) => {
                let code = framehub_proto::close_code::UNKNOWN_STREAM;
                let _ = socket
                    .send(close(code, format!("unknown stream '{name}'")))
                    .await;
            }
            Attach::Refused(why) => {
                let code = framehub_proto::close_code::POLICY;
                let _ = socket.send(close(code, why.into())).await;
            }
            Attach::Admitted(a) => {
                let Admitted {
                    admission,
                    stream,
                    session_id,
                    conn,
                    inner,
                    shutdown,
                } = *a;
                let _admission = admission;
                let counters = Arc::clone(&inner.counters);
                let cfg = inner.cfg.clone();
                drop(inner);
                viewer::run(socket, stream, session_id, conn, cfg, counters, shutdown).await;
            }
        }
    }
}

/// The stream a viewer path names: `/` → `default`, `/<name>` → `name`
/// (percent-decoded), as the router's `/` and `/{name}` routes match.
pub(crate) fn stream_of_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some("default".into());
    }
    if rest.contains('/') {
        return None;
    }
    percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// A failure of a [`ChannelSocket`]: the message was too long, or the other
/// side is gone. The driver treats the text "too long" as an oversized message.
#[derive(Debug)]
pub(crate) enum ChannelError {
    TooLong,
    Gone,
}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelError::TooLong => f.write_str("message too long"),
            ChannelError::Gone => f.write_str("the viewer's channel is closed"),
        }
    }
}

/// The session's side of a [`ViewerChannel`], as a message socket for
/// [`viewer::run`]: reads what the viewer sent, writes what it is to get.
pub(crate) struct ChannelSocket {
    out: mpsc::Sender<ViewerMessage>,
    inp: mpsc::Receiver<ViewerMessage>,
    /// Longest message read, as `max_message_size` on a socket.
    max_message: usize,
}

/// A channel pair: the session's socket and the viewer's [`ViewerChannel`].
pub(crate) fn channel_pair(max_message: usize) -> (ChannelSocket, ViewerChannel) {
    // futures' mpsc holds `buffer` + one message per sender.
    let (out_tx, out_rx) = mpsc::channel(VIEWER_CHANNEL_OUT - 1);
    let (in_tx, in_rx) = mpsc::channel(VIEWER_CHANNEL_IN - 1);
    (
        ChannelSocket {
            out: out_tx,
            inp: in_rx,
            max_message,
        },
        ViewerChannel {
            sender: ViewerSender(in_tx),
            receiver: ViewerReceiver(out_rx),
        },
    )
}

impl Stream for ChannelSocket {
    type Item = Result<Message, ChannelError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let max = self.max_message;
        self.inp.poll_next_unpin(cx).map(|m| {
            m.map(|m| match m {
                ViewerMessage::Text(t) if t.len() > max => Err(ChannelError::TooLong),
                ViewerMessage::Binary(b) if b.len() > max => Err(ChannelError::TooLong),
                ViewerMessage::Text(t) => Ok(Message::Text(t.into())),
                ViewerMessage::Binary(b) => Ok(Message::Binary(b)),
                ViewerMessage::Close { code, reason } => Ok(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }))),
            })
        })
    }
}

impl Sink<Message> for ChannelSocket {
    type Error = ChannelError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.out.poll_ready(cx).map_err(|_| ChannelError::Gone)
    }

    fn start_send(mut self: Pin<&mut Self>, msg: Message) -> Result<(), Self::Error> {
        let msg = match msg {
            Message::Text(t) => ViewerMessage::Text(t.as_str().to_owned()),
            Message::Binary(b) => ViewerMessage::Binary(b),
            Message::Close(c) => {
                let (code, reason) = c.map_or((1000, String::new()), |c| {
                    (c.code, c.reason.as_str().to_owned())
                });
                ViewerMessage::Close { code, reason }
            }
            // Pings are the bridging server's business.
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
        };
        self.out.start_send(msg).map_err(|_| ChannelError::Gone)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        self.out.close_channel();
        Poll::Ready(Ok(()))
    }
}
