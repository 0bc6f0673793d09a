//! The edge's side: streams of other hubs served to this hub's viewers
//! (`docs/protocol.md` §12).
//!
//! Each is a remote-kind stream claimed by [`mirror`] through
//! `publish::serve_claim` — the code that serves a remote publisher's
//! WebSocket — over a [`NatsLink`]: units come from the subjects of the
//! variants this hub's viewers demand (subscribed only while they do),
//! demand, keyframe requests and events go up to the origin. The origin's
//! heartbeat stands for the socket: when it stops for `origin_timeout`, the
//! link ends, the stream goes offline, and it ends after the grace period
//! unless the origin comes back.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framehub_proto::feed::{HubMessage, StreamShape};
use framehub_proto::{close_code, Principal};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::origin::{variant_subject, AuthAnswer, AuthAsk, EDGE_HEADER};
use super::{NatsHub, Reassembly};
use crate::config::{authenticator, AuthError, Authenticator};
use crate::events::lock;
use crate::publish::{serve_claim, Down, FeedLink, Source};
use crate::server::Inner;
use crate::stream::Variant;

/// How often an edge repeats its demand while it has viewers (the origin
/// forgets an edge silent for `origin::EDGE_SILENT`).
const DEMAND_REPEAT: Duration = Duration::from_secs(1);

/// Serves stream `name` of hub `origin` on this hub until the origin removes
/// it (`stop`), stays silent past the registry's TTL, or this hub shuts down.
pub(crate) async fn mirror(
    inner: Arc<Inner>,
    hub: Arc<NatsHub>,
    origin: String,
    name: String,
    shape: StreamShape,
    mut stop: watch::Receiver<bool>,
) {
    let base = hub.feed_subject(&origin, &name);
    let principal = Principal::new(format!("hub:{origin}"));
    let auth = origin_authenticator(Arc::clone(&hub), format!("{base}.auth"), name.clone());
    let beat_subject = hub.subject(&format!("hub.{origin}.beat"));
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let (Ok(mut beat), Ok(info)) = (
            hub.client.subscribe(beat_subject.clone()).await,
            hub.client.subscribe(format!("{base}.info")).await,
        ) else {
            break;
        };
        let alive = tokio::select! {
            b = tokio::time::timeout(hub.cfg.registry_ttl, beat.next()) => matches!(b, Ok(Some(_))),
            _ = super::until_true(&mut stop) => false,
            _ = super::until_true(&mut shutdown) => false,
        };
        if !alive {
            break;
        }
        let (tx, units) = mpsc::channel(hub.cfg.edge_queue.max(1));
        let mut link = NatsLink {
            hub: Arc::clone(&hub),
            base: base.clone(),
            beat,
            info,
            units,
            tx,
            subs: HashMap::new(),
            last_beat: Instant::now(),
            check: tokio::time::interval(Duration::from_millis(250)),
            last_demand: None,
            demand_sent: Instant::now(),
            stop: stop.clone(),
            max_unit: inner.cfg.max_frame_bytes,
        };
        let source = Source {
            principal: Some(principal.clone()),
            takeover: true,
            clock_us: None,
            claimed_at: Instant::now(),
            viewer_auth: Some(Arc::clone(&auth)),
        };
        let ended = serve_claim(&inner, &name, &shape, source, &mut link).await;
        drop(link);
        match ended {
            Err((code, reason)) => {
                tracing::warn!(stream = %name, %origin, code, %reason, "NATS: cannot serve another hub's stream here");
                break;
            }
            Ok((code, reason)) => {
                tracing::info!(stream = %name, %origin, code, %reason, "NATS: feed from the origin ended");
            }
        }
        if *stop.borrow() || *shutdown.borrow() {
            break;
        }
    }
    if *stop.borrow() {
        // Removed at its origin: removed here now.
        let ours = inner
            .stream(&name)
            .is_some_and(|s| s.source == crate::stream::SourceKind::Remote);
        if ours {
            lock(&inner.claims).remove(&name);
            inner.remove_stream(&name);
        }
    }
    let mut mirrors = lock(&hub.mirrors);
    if mirrors.get(&name).is_some_and(|m| m.origin == origin) {
        mirrors.remove(&name);
    }
}

/// A viewer of another hub's stream is authenticated by that hub: the
/// context goes to the origin (NATS request on `<base>.auth`); no answer
/// within `auth_timeout` refuses it (4401).
fn origin_authenticator(hub: Arc<NatsHub>, subject: String, name: String) -> Authenticator {
    authenticator(move |ctx: crate::AuthContext| {
        let hub = Arc::clone(&hub);
        let subject = subject.clone();
        let name = name.clone();
        async move {
            let ask = AuthAsk {
                token: ctx.token,
                headers: ctx.headers,
                cookies: ctx.cookies,
                query: ctx.query,
                path: ctx.path,
                remote: ctx.remote,
                hello: ctx.hello,
                stream: name,
                hub: hub.id.clone(),
            };
            let body = Bytes::from(serde_json::to_vec(&ask).unwrap_or_default());
            let refused = |why: &str| {
                hub.counters.auth_refused.fetch_add(1, Ordering::Relaxed);
                Err(AuthError(why.to_string()))
            };
            match tokio::time::timeout(hub.cfg.auth_timeout, hub.client.request(subject, body))
                .await
            {
                Ok(Ok(reply)) => match serde_json::from_slice::<AuthAnswer>(&reply.payload) {
                    Ok(AuthAnswer {
                        ok: true,
                        principal,
                    }) => Ok(principal),
                    Ok(_) => refused("refused by the origin hub"),
                    Err(_) => refused("bad answer from the origin hub"),
                },
                Ok(Err(e)) => refused(&format!("origin hub unreachable: {e}")),
                Err(_) => refused("the origin hub did not answer in time"),
            }
        }
    })
}

/// The feed of one stream of another hub, over NATS.
struct NatsLink {
    hub: Arc<NatsHub>,
    /// `<prefix>.feed.<origin>.<name>`.
    base: String,
    beat: async_nats::Subscriber,
    info: async_nats::Subscriber,
    /// Units from the variant subscriptions (bounded: a slow edge drops, counted).
    units: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<Bytes>,
    /// One task per subscribed variant subject.
    subs: HashMap<Variant, JoinHandle<()>>,
    last_beat: Instant,
    check: tokio::time::Interval,
    last_demand: Option<HubMessage>,
    demand_sent: Instant,
    stop: watch::Receiver<bool>,
    max_unit: usize,
}

impl Drop for NatsLink {
    fn drop(&mut self) {
        for (_, t) in self.subs.drain() {
            t.abort();
        }
    }
}

impl NatsLink {
    /// Publishes `msg` on the origin's up subject, naming this hub.
    async fn up(&self, msg: &HubMessage) -> Result<(), ()> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(EDGE_HEADER, self.hub.id.as_str());
        self.hub
            .client
            .publish_with_headers(format!("{}.up", self.base), headers, msg.to_json().into())
            .await
            .map_err(|_| ())
    }

    /// Subscribes to the variants some viewer here is subscribed to, and
    /// unsubscribes from the others.
    fn follow(&mut self, outputs: &[framehub_proto::feed::OutputDemand]) {
        let wanted: Vec<Variant> = outputs
            .iter()
            .filter(|o| o.viewers > 0)
            .map(|o| Variant::from_id(o.variant))
            .collect();
        self.subs.retain(|v, t| {
            let keep = wanted.contains(v);
            if !keep {
                t.abort();
            }
            keep
        });
        for v in wanted {
            if self.subs.contains_key(&v) {
                continue;
            }
            let subject = format!("{}.unit.{}", self.base, variant_subject(v));
            let task = tokio::spawn(units(
                Arc::clone(&self.hub),
                subject,
                self.tx.clone(),
                self.max_unit,
            ));
            self.subs.insert(v, task);
        }
    }
}

/// Takes the units of one variant subject into the link's queue until aborted.
async fn units(hub: Arc<NatsHub>, subject: String, tx: mpsc::Sender<Bytes>, max: usize) {
    let Ok(mut sub) = hub.client.subscribe(subject).await else {
        return;
    };
    let mut re = Reassembly::default();
    let c = &hub.counters;
    while let Some(msg) = sub.next().await {
        match re.push(&msg, max) {
            Ok(Some(unit)) => {
                c.units_in.fetch_add(1, Ordering::Relaxed);
                c.bytes_in.fetch_add(unit.len() as u64, Ordering::Relaxed);
                if let Some(sent) = super::sent_us(&msg) {
                    c.lag_us
                        .store(super::now_us().saturating_sub(sent), Ordering::Relaxed);
                }
                if !deliver(&tx, unit, c) {
                    return;
                }
            }
            Ok(None) => {}
            Err(()) => {
                c.edge_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Queues `unit` for the stream's feed without waiting: when the queue is
/// full (this edge is slower than the origin) the unit is dropped and
/// counted; its viewers see a gap, the origin and other edges nothing.
/// Returns false once the feed is gone.
fn deliver(tx: &mpsc::Sender<Bytes>, unit: Bytes, c: &super::NatsCounters) -> bool {
    match tx.try_send(unit) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            c.edge_dropped.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

impl FeedLink for NatsLink {
    async fn recv(&mut self) -> Down {
        let mut stop = self.stop.clone();
        tokio::select! {
            Some(u) = self.units.recv() => Down::Unit(u),
            m = self.info.next() => match m {
                Some(m) => Down::Text(String::from_utf8_lossy(&m.payload).into_owned()),
                None => Down::End(close_code::GOING_AWAY, "NATS subscription ended".into()),
            },
            m = self.beat.next() => match m {
                Some(_) => {
                    self.last_beat = Instant::now();
                    Down::Nothing
                }
                None => Down::End(close_code::GOING_AWAY, "NATS subscription ended".into()),
            },
            _ = self.check.tick() => {
                if self.last_beat.elapsed() >= self.hub.cfg.origin_timeout {
                    return Down::End(close_code::GOING_AWAY, "origin hub silent".into());
                }
                let repeat = self.demand_sent.elapsed() >= DEMAND_REPEAT
                    && matches!(&self.last_demand, Some(HubMessage::Demand { outputs, .. }) if !outputs.is_empty());
                if repeat {
                    self.demand_sent = Instant::now();
                    if let Some(d) = self.last_demand.clone() {
                        let _ = self.up(&d).await;
                    }
                }
                Down::Nothing
            }
            _ = super::until_true(&mut stop) => Down::End(close_code::GOING_AWAY, "stream removed at its origin".into()),
        }
    }

    async fn send(&mut self, msg: &HubMessage) -> Result<(), ()> {
        match msg {
            HubMessage::Claimed { .. } => Ok(()),
            HubMessage::Demand { outputs, .. } => {
                self.follow(outputs);
                self.last_demand = Some(msg.clone());
                self.demand_sent = Instant::now();
                // A publish that fails is repeated within DEMAND_REPEAT;
                // the link stays up through a NATS reconnection.
                let _ = self.up(msg).await;
                Ok(())
            }
            HubMessage::Event {
                client_id,
                principal,
                received_us,
                event,
                hub,
            } => {
                let msg = HubMessage::Event {
                    client_id: *client_id,
                    principal: principal.clone(),
                    received_us: *received_us,
                    event: event.clone(),
                    hub: hub.clone().or_else(|| Some(self.hub.id.clone())),
                };
                let _ = self.up(&msg).await;
                Ok(())
            }
            HubMessage::Keyframe { .. } => {
                let _ = self.up(msg).await;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_edge_drops_beyond_its_queue_and_counts_without_waiting() {
        let c = super::super::NatsCounters::default();
        let (tx, mut rx) = mpsc::channel(2);
        for i in 0..5u8 {
            assert!(deliver(&tx, Bytes::from(vec![i]), &c));
        }
        assert_eq!(c.edge_dropped.load(Ordering::Relaxed), 3);
        assert_eq!(rx.try_recv().ok(), Some(Bytes::from(vec![0])));
        assert_eq!(rx.try_recv().ok(), Some(Bytes::from(vec![1])));
        assert!(rx.try_recv().is_err());
        drop(rx);
        assert!(!deliver(&tx, Bytes::new(), &c), "the feed is gone");
        assert_eq!(c.edge_dropped.load(Ordering::Relaxed), 3);
    }
}
