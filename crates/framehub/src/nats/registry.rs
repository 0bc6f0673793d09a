//! The registry of who originates what: a JetStream key-value bucket
//! (`<prefix>-streams`, `max_age` = `registry_ttl`), key `<hub>.<stream>`,
//! value `{"name","origin","shape"}` (`docs/protocol.md` §12).
//!
//! Each hub puts the streams it originates and puts them again every third
//! of the TTL, so a dead hub's entries expire within the TTL; a stream
//! removed at its origin is deleted at once. Each hub watches the bucket and
//! serves every other hub's stream (`edge::mirror`), so `GET /streams`, the
//! index page and `/_/events` list every stream of the system and announce
//! other hubs' `stream.created` / `stream.destroyed`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::origin::Entry;
use super::{Mirror, NatsHub};
use crate::events::lock;
use crate::server::Inner;

/// Wait before trying again when JetStream is not ready (a cluster still
/// electing its leader) or a watch ended.
const RETRY: Duration = Duration::from_millis(500);
/// Longest wait for one attempt to open the bucket.
const ATTEMPT: Duration = Duration::from_secs(1);

/// Keeps this hub's entries in the registry and mirrors the other hubs'
/// streams, until the hub shuts down.
pub(crate) async fn run(inner: Arc<Inner>, hub: Arc<NatsHub>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut js = async_nats::jetstream::new(hub.client.clone());
    // Short requests: a put to a bucket whose leader just died is retried
    // soon rather than waited for.
    js.set_timeout(ATTEMPT);
    let bucket = format!("{}-streams", hub.cfg.subject_prefix);
    let mut warned = false;
    let store = loop {
        // Short attempts: a cluster still electing its JetStream leader
        // leaves requests unanswered until the client's 10 s timeout.
        let made = tokio::time::timeout(ATTEMPT, async {
            match js.get_key_value(bucket.clone()).await {
                Ok(s) => Ok(s),
                Err(_) => create(&js, &hub, &bucket).await,
            }
        })
        .await
        .unwrap_or_else(|_| Err("JetStream did not answer (no leader yet?)".into()));
        match made {
            Ok(s) => break s,
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, %bucket, "NATS: registry bucket not ready (is JetStream on, -js?); retrying");
                    warned = true;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            _ = super::until_true(&mut shutdown) => return,
        }
    };
    tracing::info!(%bucket, "NATS: registry ready");
    let mut refresh = tokio::time::interval(hub.cfg.registry_ttl / 3);
    let mut watch: Option<kv::Watch> = None;
    let mut put: BTreeSet<String> = BTreeSet::new();
    // Some put failed: try those again at this time.
    let mut retry: Option<tokio::time::Instant> = None;
    loop {
        if watch.is_none() {
            match store.watch_with_history(">").await {
                Ok(w) => watch = Some(w),
                Err(e) => tracing::debug!(error = %e, "NATS: registry watch failed; retrying"),
            }
        }
        tokio::select! {
            entry = async {
                match watch.as_mut() {
                    Some(w) => w.next().await,
                    None => {
                        tokio::time::sleep(RETRY).await;
                        None
                    }
                }
            } => match entry {
                Some(Ok(e)) => on_entry(&inner, &hub, e),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "NATS: registry watch error; watching again");
                    watch = None;
                }
                None => watch = None,
            },
            _ = refresh.tick() => {
                retry = sync(&hub, &store, &mut put, true).await;
            }
            () = hub.registry_changed.notified() => {
                retry = sync(&hub, &store, &mut put, false).await;
            }
            () = async {
                match retry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                retry = sync(&hub, &store, &mut put, false).await;
            }
            _ = super::until_true(&mut shutdown) => return,
        }
    }
}

/// Makes the bucket's stream as the KV convention has it (`KV_<bucket>`,
/// subjects `$KV.<bucket>.>`, one value per key, roll-ups, direct get) and
/// opens it. The stream is made directly rather than by
/// `create_key_value`, which first asks for the account's info in a shape
/// that servers before 2.10 (Debian's 2.9) do not send.
async fn create(
    js: &async_nats::jetstream::Context,
    hub: &NatsHub,
    bucket: &str,
) -> Result<kv::Store, String> {
    use async_nats::jetstream::stream;
    let ttl = hub.cfg.registry_ttl;
    let cfg = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: ttl,
        duplicate_window: ttl.min(Duration::from_secs(120)),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: hub.cfg.registry_replicas.max(1),
        ..Default::default()
    };
    js.get_or_create_stream(cfg)
        .await
        .map_err(|e| e.to_string())?;
    js.get_key_value(bucket.to_string())
        .await
        .map_err(|e| e.to_string())
}

/// Puts this hub's entries (all of them when `all`, else those not put
/// yet) and deletes the removed ones; returns when to try again the puts
/// that failed (None: all went in).
async fn sync(
    hub: &NatsHub,
    store: &kv::Store,
    put: &mut BTreeSet<String>,
    all: bool,
) -> Option<tokio::time::Instant> {
    let mut failed = false;
    let exported: Vec<(String, bytes::Bytes)> = lock(&hub.exported)
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let deleted: Vec<String> = std::mem::take(&mut *lock(&hub.deleted));
    for name in deleted {
        put.remove(&name);
        let key = NatsHub::registry_key(&hub.id, &name);
        if let Err(e) = store.delete(&key).await {
            tracing::debug!(error = %e, %key, "NATS: registry delete failed");
        }
    }
    for (name, value) in exported {
        // A changed value (new size) is put again on the next refresh.
        if !all && put.contains(&name) {
            continue;
        }
        let key = NatsHub::registry_key(&hub.id, &name);
        match store.put(&key, value).await {
            Ok(_) => {
                put.insert(name);
            }
            Err(e) => {
                put.remove(&name);
                failed = true;
                tracing::debug!(error = %e, %key, "NATS: registry put failed");
            }
        }
    }
    failed.then(|| tokio::time::Instant::now() + RETRY)
}

/// A change in the registry: another hub's stream appeared (mirror it) or
/// was removed (end the mirror).
fn on_entry(inner: &Arc<Inner>, hub: &Arc<NatsHub>, e: kv::Entry) {
    let Some((origin, name)) = e.key.split_once('.') else {
        return;
    };
    if origin == hub.id {
        return;
    }
    match e.operation {
        kv::Operation::Put => {
            let Ok(entry) = serde_json::from_slice::<Entry>(&e.value) else {
                tracing::debug!(key = %e.key, "NATS: unreadable registry entry");
                return;
            };
            if entry.origin != origin || entry.name != name {
                return;
            }
            if crate::error::check_stream_name(name).is_err() {
                return;
            }
            if inner.stream(name).is_some() && !super::is_mirror(hub, name) {
                tracing::warn!(stream = %name, %origin, "NATS: a stream of this name is already here; not serving the other hub's");
                return;
            }
            let mut mirrors = lock(&hub.mirrors);
            if mirrors.contains_key(name) {
                return;
            }
            let (stop, stop_rx) = watch::channel(false);
            mirrors.insert(
                name.to_string(),
                Mirror {
                    origin: origin.to_string(),
                    stop,
                },
            );
            drop(mirrors);
            tokio::spawn(super::edge::mirror(
                Arc::clone(inner),
                Arc::clone(hub),
                origin.to_string(),
                name.to_string(),
                entry.shape,
                stop_rx,
            ));
        }
        kv::Operation::Delete | kv::Operation::Purge => {
            if let Some(m) = lock(&hub.mirrors).get(name) {
                if m.origin == origin {
                    m.stop.send_replace(true);
                }
            }
        }
    }
}
