//! The origin's side: the streams this hub originates, fed to edges over
//! NATS (`docs/protocol.md` §12).
//!
//! One task per stream ([`export`]) holds, in place of viewers, one
//! subscription and one unit of demand per variant that some edge's viewers
//! demand (`remote::apply_demand`, the code a remote publisher runs), so
//! the encode threads encode once per demanded variant however many edges
//! there are, and publishes every unit once on the variant's subject.
//! Edges' demand is summed; an edge silent for [`EDGE_SILENT`] is dropped
//! from the sum. Keyframe requests go to the stream's coalescing flag
//! (`request_keyframe`); events go to the stream's queue with the viewer's
//! principal and hub; authentication questions are answered by the stream's
//! authenticator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framehub_proto::feed::{self, HubMessage, OutputDemand, SourceMessage, UnitHeader};
use framehub_proto::{Hello, OutputFormat, Principal};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::NatsHub;
use crate::events::{lock, ViewerEvent};
use crate::lifecycle::LifecycleEvent;
use crate::remote::{apply_demand, Forward};
use crate::server::Inner;
use crate::stream::{Encoded, StreamShared, Variant};

/// An edge whose demand was not refreshed for this long is dropped from
/// the sum (edges repeat their demand every second while they have viewers).
pub(crate) const EDGE_SILENT: Duration = Duration::from_secs(3);
/// Units queued between the stream's outputs and NATS (image outputs are
/// latest-wins upstream of it).
const UNIT_QUEUE: usize = 4;
/// Authentication questions answered at once per stream; more are refused.
const AUTH_IN_FLIGHT: usize = 256;
/// Header of an up message naming the edge hub that sent it.
pub(crate) const EDGE_HEADER: &str = "Fh-Edge";

/// What the registry holds for a stream: `{"name","origin","shape"}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Entry {
    pub name: String,
    pub origin: String,
    pub shape: feed::StreamShape,
}

/// A viewer's authentication context as an edge asks its origin (§12).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct AuthAsk {
    pub token: Option<String>,
    pub headers: std::collections::BTreeMap<String, String>,
    pub cookies: std::collections::BTreeMap<String, String>,
    pub query: std::collections::BTreeMap<String, String>,
    pub path: String,
    pub remote: Option<std::net::SocketAddr>,
    pub hello: Hello,
    pub stream: String,
    /// The asking hub's id.
    pub hub: String,
}

/// The origin's answer: `{"ok":true,"principal":…}` or `{"ok":false}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct AuthAnswer {
    pub ok: bool,
    #[serde(default)]
    pub principal: Option<Principal>,
}

/// The subject token of a variant: `jpeg.0`, `h264.1`.
pub(crate) fn variant_subject(v: Variant) -> String {
    let f = match v.format {
        OutputFormat::Image(framehub_proto::ImageFormat::Jpeg) => "jpeg",
        OutputFormat::Image(framehub_proto::ImageFormat::Png) => "png",
        OutputFormat::Image(framehub_proto::ImageFormat::Webp) => "webp",
        OutputFormat::H264 => "h264",
    };
    format!("{f}.{}", v.tier)
}

/// Starts an origin task for every stream this hub originates, now and
/// whenever one is created, until the hub shuts down.
pub(crate) async fn watch_streams(inner: Arc<Inner>, hub: Arc<NatsHub>) {
    let mut rx = inner.lifecycle.subscribe();
    let mut shutdown = inner.shutdown.subscribe();
    for s in inner.streams_snapshot() {
        if !super::is_mirror(&hub, &s.name) {
            tokio::spawn(export(Arc::clone(&inner), Arc::clone(&hub), s));
        }
    }
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(LifecycleEvent::StreamCreated { stream, .. }) => {
                    if super::is_mirror(&hub, &stream) {
                        continue;
                    }
                    if let Some(s) = inner.stream(&stream) {
                        tokio::spawn(export(Arc::clone(&inner), Arc::clone(&hub), s));
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "NATS: lifecycle events lagged; rescanning streams");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = super::until_true(&mut shutdown) => return,
        }
    }
}

/// What one edge demands.
struct EdgeDemand {
    outputs: Vec<OutputDemand>,
    patch_viewers: u32,
    seen: Instant,
}

/// Serves stream `stream` to the edges until it is removed or the hub shuts down.
pub(crate) async fn export(inner: Arc<Inner>, hub: Arc<NatsHub>, stream: Arc<StreamShared>) {
    let name = stream.name.clone();
    let base = hub.feed_subject(&hub.id, &name);
    let (up, auth) = match (
        hub.client.subscribe(format!("{base}.up")).await,
        hub.client.subscribe(format!("{base}.auth")).await,
    ) {
        (Ok(u), Ok(a)) => (u, a),
        _ => {
            tracing::error!(stream = %name, "NATS: cannot subscribe; the stream is not shared");
            return;
        }
    };
    let (mut up, mut auth) = (up, auth);
    register(&hub, &stream);
    let (tx, mut units) = mpsc::channel::<(Variant, Arc<Encoded>)>(UNIT_QUEUE);
    let mut outputs: HashMap<Variant, Forward> = HashMap::new();
    let mut edges: HashMap<String, EdgeDemand> = HashMap::new();
    let mut edge_patch_viewers = 0usize;
    let mut closed = stream.closed.subscribe();
    let mut shutdown = inner.shutdown.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut sent_size = stream.size();
    let auth_in_flight = Arc::new(AtomicUsize::new(0));
    loop {
        let mut changed = false;
        tokio::select! {
            msg = up.next() => {
                let Some(msg) = msg else { break };
                let edge = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(EDGE_HEADER))
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&msg.payload);
                match HubMessage::parse(&text) {
                    Ok(HubMessage::Demand { outputs: o, patch_viewers }) => {
                        edges.insert(edge, EdgeDemand { outputs: o, patch_viewers, seen: Instant::now() });
                        changed = true;
                    }
                    Ok(HubMessage::Keyframe { tier }) => stream.request_keyframe(tier),
                    Ok(HubMessage::Event { client_id, principal, event, hub: from, .. }) => {
                        let now = Instant::now();
                        if let framehub_proto::InputEvent::Resize(r) = &event {
                            stream.propose_size(r.pwidth, r.pheight, now);
                        }
                        stream.push_event(ViewerEvent {
                            client_id,
                            principal,
                            received_us: stream.micros_since_created(now),
                            event,
                            hub: from.or(Some(edge)),
                        });
                    }
                    Ok(HubMessage::Claimed { .. }) => {}
                    Err(e) => tracing::debug!(stream = %name, error = %e, "NATS: bad message from an edge"),
                }
            }
            msg = auth.next() => {
                let Some(msg) = msg else { break };
                answer_auth(&hub, &stream, msg, &auth_in_flight);
            }
            Some((variant, enc)) = units.recv() => {
                let size = (enc.info.width, enc.info.height);
                if size != sent_size {
                    sent_size = size;
                    let info = SourceMessage::Info {
                        width: size.0,
                        height: size.1,
                        h264_codec: stream.has_video().then(|| lock(&stream.codec).clone()),
                    };
                    let _ = hub.client.publish(format!("{base}.info"), info.to_json().into()).await;
                    register(&hub, &stream);
                }
                let header = UnitHeader::from_info(variant.id(), &enc.info);
                let unit = feed::encode_unit(&header, &enc.data, enc.patch.as_deref());
                hub.publish_unit(format!("{base}.unit.{}", variant_subject(variant)), Bytes::from(unit)).await;
            }
            _ = tick.tick() => {
                let before = edges.len();
                edges.retain(|_, e| e.seen.elapsed() < EDGE_SILENT);
                changed = edges.len() != before;
            }
            _ = closed.changed() => break,
            _ = super::until_true(&mut shutdown) => break,
        }
        if changed {
            let (wanted, patch) = total(&edges);
            apply_demand(&stream, &mut outputs, &wanted, &tx);
            // Edges' patch viewers on top of this hub's own.
            let patch = patch as usize;
            if patch >= edge_patch_viewers {
                stream
                    .patch_viewers
                    .fetch_add(patch - edge_patch_viewers, Ordering::Relaxed);
            } else {
                stream
                    .patch_viewers
                    .fetch_sub(edge_patch_viewers - patch, Ordering::Relaxed);
            }
            edge_patch_viewers = patch;
        }
    }
    apply_demand(&stream, &mut outputs, &[], &tx);
    stream
        .patch_viewers
        .fetch_sub(edge_patch_viewers, Ordering::Relaxed);
    let removed = !*inner.shutdown.borrow();
    lock(&hub.exported).remove(&name);
    if removed {
        // Removed here: the edges end it now (a hub that shuts down lets
        // its entries expire, and the edges' grace period runs).
        lock(&hub.deleted).push(name.clone());
        hub.registry_changed.notify_one();
    }
}

/// Puts (or refreshes) `stream`'s registry value and wakes the registry task.
fn register(hub: &NatsHub, stream: &StreamShared) {
    let entry = Entry {
        name: stream.name.clone(),
        origin: hub.id.clone(),
        shape: crate::remote::shape(stream),
    };
    let value = serde_json::to_vec(&entry).unwrap_or_default();
    lock(&hub.exported).insert(stream.name.clone(), Bytes::from(value));
    hub.registry_changed.notify_one();
}

/// The edges' demand summed per variant, and their patch viewers.
fn total(edges: &HashMap<String, EdgeDemand>) -> (Vec<OutputDemand>, u32) {
    let mut sum: HashMap<feed::VariantId, (u32, u32)> = HashMap::new();
    let mut patch = 0u32;
    for e in edges.values() {
        patch = patch.saturating_add(e.patch_viewers);
        for o in &e.outputs {
            let s = sum.entry(o.variant).or_insert((0, 0));
            s.0 = s.0.saturating_add(o.viewers);
            s.1 = s.1.saturating_add(o.ready);
        }
    }
    let wanted = sum
        .into_iter()
        .map(|(variant, (viewers, ready))| OutputDemand {
            variant,
            viewers,
            ready,
        })
        .collect();
    (wanted, patch)
}

/// Answers an edge's authentication question with the stream's
/// authenticator (open stream: anyone, no principal), in a task.
fn answer_auth(
    hub: &Arc<NatsHub>,
    stream: &Arc<StreamShared>,
    msg: async_nats::Message,
    in_flight: &Arc<AtomicUsize>,
) {
    let Some(reply) = msg.reply.clone() else {
        return;
    };
    let hub = Arc::clone(hub);
    let auth = stream.cfg.authenticate.clone();
    let name = stream.name.clone();
    let busy = in_flight.fetch_add(1, Ordering::AcqRel) >= AUTH_IN_FLIGHT;
    let in_flight = Arc::clone(in_flight);
    tokio::spawn(async move {
        let answer = match serde_json::from_slice::<AuthAsk>(&msg.payload) {
            _ if busy => AuthAnswer {
                ok: false,
                principal: None,
            },
            Ok(ask) if ask.stream == name => match auth {
                None => AuthAnswer {
                    ok: true,
                    principal: None,
                },
                Some(auth) => {
                    let ctx = crate::config::AuthContext {
                        token: ask.token,
                        headers: ask.headers,
                        cookies: ask.cookies,
                        query: ask.query,
                        path: ask.path,
                        remote: ask.remote,
                        hello: ask.hello,
                        stream: ask.stream,
                    };
                    match auth(ctx).await {
                        Ok(principal) => AuthAnswer {
                            ok: true,
                            principal,
                        },
                        Err(why) => {
                            tracing::info!(stream = %name, hub = %ask.hub, reason = %why, "refused a viewer of another hub");
                            AuthAnswer {
                                ok: false,
                                principal: None,
                            }
                        }
                    }
                }
            },
            _ => AuthAnswer {
                ok: false,
                principal: None,
            },
        };
        let body = serde_json::to_vec(&answer).unwrap_or_default();
        let _ = hub.client.publish(reply, body.into()).await;
        in_flight.fetch_sub(1, Ordering::AcqRel);
    });
}
