//! Hubs joined over NATS (feature `nats`, [`ServerConfig::nats`],
//! `docs/protocol.md` §12): the feed of §11 between hubs.
//!
//! * **Origin** (`origin.rs`): for each stream this hub originates, one task
//!   holds the sum of the edges' demand (the same `remote.rs` forwarding a
//!   remote publisher uses: one subscription and one unit of demand per
//!   variant), publishes each encoded unit once on the variant's subject
//!   (so the stream is encoded once per demanded variant, whatever the
//!   number of edges), and takes the edges' keyframe requests (coalesced by
//!   the stream's own keyframe flag), events and authentication questions.
//! * **Registry** (`registry.rs`): a JetStream key-value bucket with a TTL;
//!   each hub puts the streams it originates and re-puts them every third
//!   of the TTL.
//! * **Edge** (`edge.rs`): for each stream of another hub, this hub holds a
//!   remote-kind stream fed by a [`FeedLink`](crate::publish::FeedLink) over
//!   NATS, served by the same `publish.rs` code as a publisher's WebSocket
//!   (checks, id shifts, keyframe retries, `stalled`, offline and grace).
//!
//! [`ServerConfig::nats`]: crate::ServerConfig::nats

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{watch, Notify};

use crate::config::NatsConfig;
use crate::error::Error;
use crate::events::lock;
use crate::server::Inner;

mod edge;
mod origin;
mod registry;

/// How often a hub says it is alive (`<prefix>.hub.<id>.beat`).
pub(crate) const BEAT_EVERY: Duration = Duration::from_millis(500);
/// Messages a subscription holds before the client drops newer ones.
const SUBSCRIPTION_CAPACITY: usize = 256;
/// Room left in a NATS message for headers when a unit is chunked.
const CHUNK_HEADROOM: usize = 1024;
/// Header naming a chunk: `i/n` (0-based index, count).
const CHUNK_HEADER: &str = "Fh-Chunk";
/// Header with the publish time, µs since the UNIX epoch (for the lag).
const SENT_HEADER: &str = "Fh-Sent-Us";

/// Counters of a hub's NATS traffic (`GET /_/prometheus`).
#[derive(Debug, Default)]
pub(crate) struct NatsCounters {
    /// Units published for edges (origin side).
    pub units_out: AtomicU64,
    /// Their bytes.
    pub bytes_out: AtomicU64,
    /// Units received from origins (edge side).
    pub units_in: AtomicU64,
    /// Their bytes.
    pub bytes_in: AtomicU64,
    /// Units an edge dropped because its queue was full (slow edge), or
    /// whose chunks did not all arrive.
    pub edge_dropped: AtomicU64,
    /// Units sent in more than one NATS message (over `max_payload`).
    pub chunked: AtomicU64,
    /// Publishes that failed (connection lost and its buffer full).
    pub publish_errors: AtomicU64,
    /// The last unit's publish-to-receipt delay at this edge, µs.
    pub lag_us: AtomicU64,
    /// Viewers' authentications asked of an origin that it refused or did not answer.
    pub auth_refused: AtomicU64,
}

/// A hub's membership in a NATS system.
pub(crate) struct NatsHub {
    /// This hub's id.
    pub id: String,
    pub cfg: NatsConfig,
    pub client: async_nats::Client,
    /// The largest message the servers take (their `max_payload`).
    pub max_payload: usize,
    pub counters: NatsCounters,
    /// Registry values of the streams this hub originates, by name.
    pub exported: Mutex<BTreeMap<String, Bytes>>,
    /// Streams of other hubs served here: name → origin hub id and the
    /// switch that ends the mirror.
    pub mirrors: Mutex<HashMap<String, Mirror>>,
    /// Wakes the registry task (an entry was added or removed).
    pub registry_changed: Notify,
    /// Names whose registry entries must be deleted (removed streams).
    pub deleted: Mutex<Vec<String>>,
}

/// A stream of another hub served here.
pub(crate) struct Mirror {
    /// The origin hub's id.
    pub origin: String,
    /// Set to true to end the mirror (the origin removed the stream).
    pub stop: watch::Sender<bool>,
}

impl NatsHub {
    /// `<prefix>.<rest>`.
    pub fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.cfg.subject_prefix)
    }

    /// The subjects of stream `name` originated by hub `origin`:
    /// `<prefix>.feed.<origin>.<name>` (a `.` in the name is written `%2E`).
    pub fn feed_subject(&self, origin: &str, name: &str) -> String {
        self.subject(&format!("feed.{origin}.{}", name.replace('.', "%2E")))
    }

    /// The registry key of stream `name` of hub `origin`: `<origin>.<name>`.
    pub fn registry_key(origin: &str, name: &str) -> String {
        format!("{origin}.{name}")
    }

    /// The largest piece of a unit sent in one message.
    pub fn chunk_size(&self) -> usize {
        self.max_payload.saturating_sub(CHUNK_HEADROOM).max(1024)
    }

    /// Publishes `unit` on `subject`, in chunks when it is larger than the
    /// servers' `max_payload` allows; counted. Errors are counted, not
    /// returned: a unit lost on the way is a gap the edges' viewers recover
    /// from (latest wins, keyframe requests).
    pub async fn publish_unit(&self, subject: String, unit: Bytes) {
        let chunk = self.chunk_size();
        let n = unit.len().div_ceil(chunk).max(1);
        if n > 1 {
            self.counters.chunked.fetch_add(1, Ordering::Relaxed);
        }
        let sent = now_us().to_string();
        for i in 0..n {
            let part = unit.slice(i * chunk..((i + 1) * chunk).min(unit.len()));
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(SENT_HEADER, sent.as_str());
            if n > 1 {
                headers.insert(CHUNK_HEADER, format!("{i}/{n}").as_str());
            }
            if self
                .client
                .publish_with_headers(subject.clone(), headers, part)
                .await
                .is_err()
            {
                self.counters.publish_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.counters.units_out.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_out
            .fetch_add(unit.len() as u64, Ordering::Relaxed);
    }
}

/// Microseconds since the UNIX epoch (0 if the clock is before it).
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Puts a chunked unit back together: the chunks of one unit come in order
/// on one subject (NATS keeps one publisher's order per subject); a chunk
/// out of turn drops the partial unit.
#[derive(Default)]
pub(crate) struct Reassembly {
    buf: BytesMut,
    next: usize,
}

impl Reassembly {
    /// Takes one message; returns a whole unit when it is complete (and the
    /// publish time from its header, µs since the epoch, if any), or
    /// `Err(())` when a partial unit had to be dropped (counted by the
    /// caller). Units over `max` bytes are dropped too.
    pub fn push(&mut self, msg: &async_nats::Message, max: usize) -> Result<Option<Bytes>, ()> {
        let chunk = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(CHUNK_HEADER))
            .and_then(|v| {
                let (i, n) = v.as_str().split_once('/')?;
                Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?))
            });
        let Some((i, n)) = chunk else {
            let dropped = self.next != 0;
            self.reset();
            return if dropped {
                Err(())
            } else {
                Ok(Some(msg.payload.clone()))
            };
        };
        if i != self.next || n == 0 || i >= n {
            let dropped = self.next != 0 || i != 0;
            self.reset();
            if i != 0 || n == 0 {
                return if dropped { Err(()) } else { Ok(None) };
            }
        }
        if self.buf.len() + msg.payload.len() > max {
            self.reset();
            return Err(());
        }
        self.buf.extend_from_slice(&msg.payload);
        self.next = i + 1;
        if self.next == n {
            let unit = std::mem::take(&mut self.buf).freeze();
            self.next = 0;
            return Ok(Some(unit));
        }
        Ok(None)
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.next = 0;
    }
}

/// The publish time a unit's message carries, µs since the epoch.
pub(crate) fn sent_us(msg: &async_nats::Message) -> Option<u64> {
    msg.headers
        .as_ref()?
        .get(SENT_HEADER)?
        .as_str()
        .parse()
        .ok()
}

/// Checks a hub id: `[A-Za-z0-9_-]{1,64}` (it is a subject token and a key prefix).
fn check_hub_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Nats(format!(
            "hub id '{}' must be 1 to 64 of [A-Za-z0-9_-]",
            id.chars().take(80).collect::<String>()
        )))
    }
}

/// A random hub id, `hub-` and 8 hex digits.
fn random_hub_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us());
    h.write_u32(std::process::id());
    format!("hub-{:08x}", h.finish() as u32)
}

/// Connects to the NATS system of `cfg` and starts the hub's tasks: the
/// heartbeat, an origin task per stream it originates (now and later), the
/// registry (puts, and mirrors of other hubs' streams).
///
/// Errors: [`Error::Nats`] for a bad hub id or subject prefix, unreadable
/// credentials, or servers that cannot be reached.
pub(crate) async fn join(inner: &Arc<Inner>, cfg: NatsConfig) -> Result<Arc<NatsHub>, Error> {
    let id = match &cfg.hub_id {
        Some(id) => id.clone(),
        None => random_hub_id(),
    };
    check_hub_id(&id)?;
    check_hub_id(&cfg.subject_prefix)
        .map_err(|_| Error::Nats("subject_prefix must be 1 to 64 of [A-Za-z0-9_-]".into()))?;
    if cfg.urls.is_empty() {
        return Err(Error::Nats("no server URL".into()));
    }
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("framehub {id}"))
        // Reconnect at once, then every 100 ms, at most 1 s apart: a dead
        // node's clients move to another node of the cluster quickly.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(1000))
        })
        .connection_timeout(Duration::from_secs(5))
        .ping_interval(Duration::from_secs(5))
        .client_capacity(4096)
        // Messages held per subscription before the client drops them
        // (a slow consumer): bounds an edge's memory to this many units.
        .subscription_capacity(SUBSCRIPTION_CAPACITY);
    if let Some(path) = &cfg.credentials_file {
        opts = opts.credentials_file(path).await.map_err(|e| {
            Error::Nats(format!(
                "cannot read credentials file {}: {e}",
                path.display()
            ))
        })?;
    }
    if let Some(token) = &cfg.token {
        opts = opts.token(token.clone());
    }
    if let Some((user, pass)) = &cfg.user_password {
        opts = opts.user_and_password(user.clone(), pass.clone());
    }
    if cfg.tls_required {
        opts = opts.require_tls(true);
    }
    if let Some(roots) = &cfg.root_certificates {
        opts = opts.add_root_certificates(roots.clone());
    }
    if let Some((cert, key)) = &cfg.client_certificate {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    let client = opts
        .connect(cfg.urls.clone())
        .await
        .map_err(|e| Error::Nats(format!("cannot connect to {}: {e}", cfg.urls.join(","))))?;
    let max_payload = client.server_info().max_payload;
    tracing::info!(hub = %id, max_payload, "joined NATS");
    let hub = Arc::new(NatsHub {
        id,
        cfg,
        client,
        max_payload,
        counters: NatsCounters::default(),
        exported: Mutex::new(BTreeMap::new()),
        mirrors: Mutex::new(HashMap::new()),
        registry_changed: Notify::new(),
        deleted: Mutex::new(Vec::new()),
    });
    tokio::spawn(beat(Arc::clone(inner), Arc::clone(&hub)));
    tokio::spawn(origin::watch_streams(Arc::clone(inner), Arc::clone(&hub)));
    tokio::spawn(registry::run(Arc::clone(inner), Arc::clone(&hub)));
    Ok(hub)
}

/// Says this hub is alive every [`BEAT_EVERY`] until it shuts down.
async fn beat(inner: Arc<Inner>, hub: Arc<NatsHub>) {
    let subject = hub.subject(&format!("hub.{}.beat", hub.id));
    let mut shutdown = inner.shutdown.subscribe();
    let mut tick = tokio::time::interval(BEAT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = hub.client.publish(subject.clone(), Bytes::new()).await;
            }
            _ = until_true(&mut shutdown) => return,
        }
    }
}

/// Whether `name` is a stream of another hub served here.
pub(crate) fn is_mirror(hub: &NatsHub, name: &str) -> bool {
    lock(&hub.mirrors).contains_key(name)
}

/// Waits until `rx` holds true (or its sender is gone).
pub(crate) async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn msg(payload: &[u8], chunk: Option<&str>) -> async_nats::Message {
        let headers = chunk.map(|c| {
            let mut h = async_nats::HeaderMap::new();
            h.insert(CHUNK_HEADER, c);
            h
        });
        async_nats::Message {
            subject: "s".into(),
            reply: None,
            payload: Bytes::copy_from_slice(payload),
            headers,
            status: None,
            description: None,
            length: payload.len(),
        }
    }

    #[test]
    fn a_whole_unit_passes_and_chunks_are_put_back_in_order() {
        let mut r = Reassembly::default();
        assert_eq!(
            r.push(&msg(b"abc", None), 100),
            Ok(Some(Bytes::from("abc")))
        );
        assert_eq!(r.push(&msg(b"ab", Some("0/3")), 100), Ok(None));
        assert_eq!(r.push(&msg(b"cd", Some("1/3")), 100), Ok(None));
        assert_eq!(
            r.push(&msg(b"e", Some("2/3")), 100),
            Ok(Some(Bytes::from("abcde")))
        );
    }

    #[test]
    fn a_lost_chunk_drops_the_unit_and_the_next_one_still_arrives() {
        let mut r = Reassembly::default();
        assert_eq!(r.push(&msg(b"ab", Some("0/3")), 100), Ok(None));
        // Chunk 1 was lost: 2 is out of turn.
        assert_eq!(r.push(&msg(b"e", Some("2/3")), 100), Err(()));
        assert_eq!(r.push(&msg(b"xy", Some("0/2")), 100), Ok(None));
        assert_eq!(
            r.push(&msg(b"z", Some("1/2")), 100),
            Ok(Some(Bytes::from("xyz")))
        );
        // A partial unit followed by a whole one: the partial one is dropped.
        assert_eq!(r.push(&msg(b"ab", Some("0/2")), 100), Ok(None));
        assert_eq!(r.push(&msg(b"w", None), 100), Err(()));
    }

    #[test]
    fn malformed_or_oversized_chunks_are_dropped_never_panic() {
        let mut r = Reassembly::default();
        for bad in [
            "",
            "x",
            "1",
            "0/0",
            "5/3",
            "-1/2",
            "0/x",
            "18446744073709551616/2",
        ] {
            let _ = r.push(&msg(b"ab", Some(bad)), 100);
        }
        // Over the bound.
        let mut r = Reassembly::default();
        assert_eq!(r.push(&msg(&[0; 60], Some("0/2")), 100), Ok(None));
        assert_eq!(r.push(&msg(&[0; 60], Some("1/2")), 100), Err(()));
    }

    #[test]
    fn hub_ids_are_subject_tokens() {
        assert!(check_hub_id("edge-1_a").is_ok());
        for bad in ["", "a.b", "a b", "a*", ">", &"x".repeat(65)] {
            assert!(check_hub_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_hub_id(&random_hub_id()).is_ok());
    }
}
