//! Remote publishers, publisher side: the source half of a stream in this
//! process, fanned out by a hub elsewhere (`docs/protocol.md` §11).
//!
//! [`RemoteStream::connect`] makes a private, non-listening hub with one
//! stream — so publishing, latest-wins and the encode threads are exactly a
//! local stream's — and runs the feed to the remote hub in place of
//! viewers: for each variant the hub's viewers demand it holds one
//! subscription and one unit of demand (so the encode threads encode only
//! what some viewer far away can take), and forwards each encoded unit as
//! it is made (image outputs latest-wins: a unit the socket could not take
//! yet is replaced by the newer one; video units in order). Keyframe
//! requests and viewers' events come back up the same socket. When the
//! feed drops, the stream reconnects with back-off and claims its name
//! again (a take-over of its own stale claim), within the hub's grace
//! period its viewers never notice but for a `status` line.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use framehub_proto::close_code;
use framehub_proto::feed::{self, HubMessage, SourceMessage, StreamShape, UnitHeader};
use framehub_proto::{ImageFormat, OutputFormat};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::config::{InputPolicy, StreamConfig};
use crate::events::ViewerEvent;
use crate::stream::{Encoded, Stream, StreamShared, Variant};
use crate::{Error, Server};

/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First wait before reconnecting.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Encoded units queued between the outputs and the socket (small: image
/// outputs are latest-wins, so a slow socket skips frames, never queues them).
const UNIT_QUEUE: usize = 4;

/// Options of a remote publisher beyond the stream's own settings.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// Credential for the hub's publisher authenticator
    /// (`ServerConfig::publish_authenticate`).
    pub token: Option<String>,
    /// Take the name over from a live publisher of the same principal
    /// (refused with 4409 otherwise).
    pub takeover: bool,
}

/// A stream published into a remote hub: the [`Stream`] API (it derefs to
/// one: `publish`, `poll_events`, `events`, metrics), with the encoding in
/// this process and the viewers on the hub.
///
/// Dropping it (or [`RemoteStream::close`]) closes the feed; the hub keeps
/// the stream offline for its grace period, then ends it.
pub struct RemoteStream {
    stream: Stream,
    online: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RemoteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStream")
            .field("name", &self.stream.name())
            .field("online", &*self.online.borrow())
            .finish()
    }
}

impl std::ops::Deref for RemoteStream {
    type Target = Stream;
    fn deref(&self) -> &Stream {
        &self.stream
    }
}

impl Drop for RemoteStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RemoteStream {
    /// Claims a stream of `width` × `height` pixels on the hub at `url` and
    /// starts feeding it. `url` is the feed's address,
    /// `ws://HOST:PORT/_/publish/<name>`, or a viewer's `ws://HOST:PORT/<name>`
    /// (or `http://…`), which is turned into it; a `token` query parameter
    /// is sent as the publisher's credential. Returns once the hub accepted
    /// the claim.
    ///
    /// Errors: [`Error::InvalidName`] for a URL without a valid stream name,
    /// [`Error::InvalidFrame`] for a bad size, [`Error::Io`] when the hub
    /// cannot be reached, [`Error::Refused`] when it refuses the claim
    /// (4401 unauthorized, 4409 name taken, 1008 bad claim).
    pub async fn connect(
        url: &str,
        width: u32,
        height: u32,
        cfg: StreamConfig,
    ) -> Result<RemoteStream, Error> {
        Self::connect_with(url, width, height, cfg, RemoteOptions::default()).await
    }

    /// [`RemoteStream::connect`] with a token or take-over.
    ///
    /// Errors: as [`RemoteStream::connect`].
    pub async fn connect_with(
        url: &str,
        width: u32,
        height: u32,
        cfg: StreamConfig,
        mut opts: RemoteOptions,
    ) -> Result<RemoteStream, Error> {
        let (feed_url, name, token) = feed_url(url)?;
        if opts.token.is_none() {
            opts.token = token;
        }
        // The source half: a private hub that does not listen.
        let local = Server::builder().build();
        let stream = local.add_stream(&name, width, height, cfg)?;
        let shared = Arc::clone(&stream.shared);
        let ws = claim(&feed_url, &shared, &opts).await?;
        let (online_tx, online) = watch::channel(true);
        let task = tokio::spawn(run(feed_url, shared, opts, ws, online_tx));
        Ok(RemoteStream {
            stream,
            online,
            task,
        })
    }

    /// Whether the feed to the hub is up now (it reconnects by itself).
    pub fn is_online(&self) -> bool {
        *self.online.borrow()
    }

    /// Closes the feed (the hub ends the stream after its grace period) and
    /// stops the encode threads.
    pub async fn close(self) {
        self.task.abort();
        self.stream.server().close().await;
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The feed URL, the stream name and a `token` from the query of `url`.
fn feed_url(url: &str) -> Result<(String, String, Option<String>), Error> {
    let bad = |why: &'static str| Error::InvalidName {
        name: url.chars().take(200).collect(),
        why,
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("not a ws:// URL"))?;
    let scheme = match scheme {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(bad("the scheme must be ws, wss, http or https")),
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let name = path.strip_prefix("_/publish/").unwrap_or(path);
    crate::error::check_stream_name(name)?;
    let token = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_string);
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Ok((
        format!("{scheme}://{host}/_/publish/{name}{q}"),
        name.to_string(),
        token,
    ))
}

/// What the hub is told about `stream` in a claim.
pub(crate) fn shape(stream: &StreamShared) -> StreamShape {
    let (width, height) = stream.size();
    let cfg = &stream.cfg;
    StreamShape {
        width,
        height,
        h264_codec: stream
            .has_video()
            .then(|| crate::events::lock(&stream.codec).clone()),
        preferred_image: cfg.preferred_image,
        quality: cfg.quality.clamp(1, 100),
        bitrate: cfg.bitrate,
        fps: cfg.fps,
        adaptive: cfg.adaptive.is_some(),
        input: match cfg.input {
            InputPolicy::First => "first",
            InputPolicy::None => "none",
            _ => "all",
        }
        .into(),
    }
}

/// Connects to the hub and claims the stream; returns the socket once
/// `claimed` came back.
async fn claim(url: &str, stream: &StreamShared, opts: &RemoteOptions) -> Result<Ws, Error> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    let msg = SourceMessage::Claim {
        protocol: feed::FEED_VERSION,
        shape: shape(stream),
        token: opts.token.clone(),
        takeover: opts.takeover,
        clock_us: Some(stream.micros_since_created(std::time::Instant::now())),
    };
    ws.send(Message::Text(msg.to_json().into()))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
    match answer {
        Ok(Some(Ok(Message::Text(t)))) => match HubMessage::parse(t.as_str()) {
            Ok(HubMessage::Claimed { .. }) => Ok(ws),
            _ => Err(Error::Refused {
                code: close_code::POLICY,
                reason: "the hub did not answer the claim".into(),
            }),
        },
        Ok(Some(Ok(Message::Close(Some(f))))) => Err(Error::Refused {
            code: u16::from(f.code),
            reason: f.reason.to_string(),
        }),
        Ok(_) => Err(Error::Io(std::io::Error::other(
            "the hub closed the feed during the claim",
        ))),
        Err(_) => Err(Error::Io(std::io::Error::other(
            "no answer to the claim within 10 s",
        ))),
    }
}

/// Feeds the hub, reconnecting with back-off, until aborted or refused.
async fn run(
    url: String,
    stream: Arc<StreamShared>,
    mut opts: RemoteOptions,
    mut ws: Ws,
    online: watch::Sender<bool>,
) {
    // Every reconnection takes over this publisher's own stale claim.
    opts.takeover = true;
    let mut backoff = FIRST_BACKOFF;
    loop {
        online.send_replace(true);
        let end = feed(&stream, &mut ws).await;
        online.send_replace(false);
        match end {
            Some(code) if code == close_code::NAME_TAKEN || code == close_code::UNAUTHORIZED => {
                tracing::warn!(stream = %stream.name, code, "the hub refused this publisher; stopping");
                return;
            }
            _ => {}
        }
        let _ = ws.close(None).await;
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match claim(&url, &stream, &opts).await {
                Ok(next) => {
                    ws = next;
                    backoff = FIRST_BACKOFF;
                    break;
                }
                Err(Error::Refused { code, reason }) if code != close_code::GOING_AWAY => {
                    tracing::warn!(stream = %stream.name, code, %reason, "the hub refused this publisher; stopping");
                    return;
                }
                Err(e) => tracing::debug!(stream = %stream.name, error = %e, "reconnecting"),
            }
        }
    }
}

/// One variant the hub's viewers demand: a task forwarding its units, and
/// whether a unit of demand is held for it.
pub(crate) struct Forward {
    task: JoinHandle<()>,
    ready: bool,
}

/// Carries one connection's feed until it ends; returns the hub's close code, if any.
async fn feed(stream: &Arc<StreamShared>, ws: &mut Ws) -> Option<u16> {
    let (tx, mut units) = mpsc::channel::<(Variant, Arc<Encoded>)>(UNIT_QUEUE);
    let mut outputs: HashMap<Variant, Forward> = HashMap::new();
    let mut sent_size = stream.size();
    let end = loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => match HubMessage::parse(t.as_str()) {
                    Ok(HubMessage::Demand { outputs: wanted, patch_viewers }) => {
                        apply_demand(stream, &mut outputs, &wanted, &tx);
                        stream
                            .patch_viewers
                            .store(patch_viewers as usize, Ordering::Relaxed);
                    }
                    Ok(HubMessage::Keyframe { tier }) => stream.request_keyframe(tier),
                    Ok(HubMessage::Event { client_id, principal, received_us, event, hub }) => {
                        if let framehub_proto::InputEvent::Resize(r) = &event {
                            stream.propose_size(r.pwidth, r.pheight, std::time::Instant::now());
                        }
                        stream.push_event(ViewerEvent { client_id, principal, received_us, event, hub });
                    }
                    Ok(HubMessage::Claimed { .. }) => {}
                    Err(e) => tracing::warn!(stream = %stream.name, error = %e, "bad message from the hub"),
                },
                Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            },
            Some((variant, enc)) = units.recv() => {
                let size = (enc.info.width, enc.info.height);
                if size != sent_size {
                    sent_size = size;
                    let info = SourceMessage::Info {
                        width: size.0,
                        height: size.1,
                        h264_codec: stream.has_video().then(|| crate::events::lock(&stream.codec).clone()),
                    };
                    if ws.send(Message::Text(info.to_json().into())).await.is_err() {
                        break None;
                    }
                }
                let header = UnitHeader::from_info(variant.id(), &enc.info);
                let msg = feed::encode_unit(&header, &enc.data, enc.patch.as_deref());
                if ws.send(Message::Binary(msg.into())).await.is_err() {
                    break None;
                }
            }
        }
    };
    for (v, f) in outputs.drain() {
        f.task.abort();
        if f.ready {
            stream.set_demand(v, false);
        }
    }
    stream.patch_viewers.store(0, Ordering::Relaxed);
    end
}

/// Mirrors the hub's demand: one forwarding task per variant some viewer
/// is subscribed to, one unit of demand per variant some viewer can take a
/// frame of now.
pub(crate) fn apply_demand(
    stream: &Arc<StreamShared>,
    outputs: &mut HashMap<Variant, Forward>,
    wanted: &[feed::OutputDemand],
    tx: &mpsc::Sender<(Variant, Arc<Encoded>)>,
) {
    let wanted: HashMap<Variant, bool> = wanted
        .iter()
        .filter(|d| d.viewers > 0)
        .map(|d| (Variant::from_id(d.variant), d.ready > 0))
        .collect();
    outputs.retain(|v, f| {
        let keep = wanted.contains_key(v);
        if !keep {
            f.task.abort();
            if f.ready {
                stream.set_demand(*v, false);
            }
        }
        keep
    });
    for (v, ready) in wanted {
        let f = match outputs.entry(v) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let Some(task) = forward(stream, v, tx.clone()) else {
                    continue;
                };
                e.insert(Forward { task, ready: false })
            }
        };
        if f.ready != ready {
            f.ready = ready;
            stream.set_demand(v, ready);
        }
    }
}

/// A task that forwards the units of output `v` to `tx` (None: the stream
/// has no such output).
pub(crate) fn forward(
    stream: &Arc<StreamShared>,
    v: Variant,
    tx: mpsc::Sender<(Variant, Arc<Encoded>)>,
) -> Option<JoinHandle<()>> {
    if v.format == OutputFormat::H264 {
        let mut rx = stream.subscribe_video(v.tier)?;
        let stream = Arc::clone(stream);
        // A new subscriber of a chain starts at a keyframe.
        stream.request_keyframe(v.tier);
        return Some(tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(enc) => {
                        if tx.send((v, enc)).await.is_err() {
                            return;
                        }
                    }
                    // Units were lost: the hub's viewers see the gap and ask for a keyframe.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }));
    }
    if v.format == OutputFormat::Image(ImageFormat::Webp) {
        return None;
    }
    let mut rx = stream.subscribe(v)?;
    Some(tokio::spawn(async move {
        let mut last: Option<(u64, bool)> = None;
        loop {
            let current = rx.borrow_and_update().clone();
            if let Some(enc) = current {
                let key = crate::stream::order_key(&enc.info);
                if last != Some(key) {
                    last = Some(key);
                    if tx.send((v, enc)).await.is_err() {
                        return;
                    }
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }))
}
