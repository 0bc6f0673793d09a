//! `GET /_/prometheus`: the hub's counters in the Prometheus text format
//! (`prometheus-client`; one registry per hub, read at scrape time from the
//! counters the hub keeps anyway — those of `/_/metrics` and
//! `/streams/<name>/metrics` — no global state). The metrics and their
//! meanings are listed in `docs/operations.md`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::events::lock;
use crate::server::Inner;
use crate::stream::{PublisherState, SourceKind};

/// Labels of one sample.
type Labels = Vec<(&'static str, String)>;

/// The hub's registry: one collector reading the hub's state.
pub(crate) fn registry(inner: &Arc<Inner>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(HubCollector(Arc::downgrade(inner))));
    r
}

/// The registry's text (`text/plain; version=0.0.4` compatible OpenMetrics text).
pub(crate) fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail but for a collector's own error.
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        tracing::error!("cannot encode the Prometheus metrics");
    }
    out
}

#[derive(Debug)]
struct HubCollector(Weak<Inner>);

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for HubCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(inner) = self.0.upgrade() else {
            return Ok(());
        };
        let none: Labels = Vec::new();
        let streams = inner.streams_snapshot();
        gauge(
            &mut enc,
            "framehub_connections",
            "Viewer connections open now, all streams.",
            &[(none.clone(), inner.connections() as f64)],
        )?;
        gauge(
            &mut enc,
            "framehub_streams",
            "Streams on this hub (its own and, over NATS, other hubs').",
            &[(none.clone(), streams.len() as f64)],
        )?;
        let (closes, refused) = inner.counters.snapshot();
        let rows: Vec<(Labels, u64)> = closes
            .iter()
            .map(|(code, n)| (vec![("code", code.to_string())], *n))
            .collect();
        counter(
            &mut enc,
            "framehub_closes",
            "Connections the hub closed, by WebSocket close code.",
            &rows,
        )?;
        let rows: Vec<(Labels, u64)> = refused
            .iter()
            .map(|(why, n)| (vec![("limit", (*why).to_string())], *n))
            .collect();
        counter(
            &mut enc,
            "framehub_refusals",
            "Connections refused at admission, by the limit that refused them.",
            &rows,
        )?;
        counter(
            &mut enc,
            "framehub_write_failures",
            "Viewers dropped because their socket did not take a frame.",
            &[(none.clone(), inner.counters.write_failures())],
        )?;
        counter(
            &mut enc,
            "framehub_header_timeouts",
            "HTTP connections closed because their headers came too slowly.",
            &[(none.clone(), inner.counters.header_timeouts())],
        )?;
        // Per stream.
        let mut viewers = Vec::new();
        let mut fps = Vec::new();
        let mut bytes = Vec::new();
        let mut sent = Vec::new();
        let mut dropped = Vec::new();
        let mut encodes = Vec::new();
        let mut events_dropped = Vec::new();
        let mut publisher = Vec::new();
        for s in &streams {
            let name = s.name.clone();
            let l = || vec![("stream", name.clone())];
            let (n, b, f, d) = {
                let v = lock(&s.viewers);
                let sum = |g: fn(&framehub_proto::SessionMetrics) -> u64| {
                    v.values().map(|e| g(&e.metrics)).sum::<u64>()
                };
                (
                    v.len(),
                    sum(|m| m.bytes_sent),
                    sum(|m| m.frames_sent),
                    sum(|m| m.frames_dropped),
                )
            };
            viewers.push((l(), n as f64));
            fps.push((l(), s.publish_rate()));
            bytes.push((l(), b + s.departed.bytes_sent.load(Ordering::Relaxed)));
            sent.push((l(), f + s.departed.frames_sent.load(Ordering::Relaxed)));
            dropped.push((l(), d + s.departed.frames_dropped.load(Ordering::Relaxed)));
            let mut variants: Vec<_> = s.encodes.iter().collect();
            variants.sort_by_key(|(v, _)| (format!("{:?}", v.format), v.tier));
            for (v, c) in variants {
                let id = v.id();
                let format = serde_json::to_value(id)
                    .ok()
                    .and_then(|j| j["format"].as_str().map(str::to_string))
                    .unwrap_or_default();
                encodes.push((
                    vec![
                        ("stream", name.clone()),
                        ("format", format),
                        ("tier", v.tier.to_string()),
                    ],
                    c.load(Ordering::Relaxed),
                ));
            }
            events_dropped.push((l(), s.events.dropped()));
            let state = *s.publisher.borrow();
            let source = match s.source {
                SourceKind::Local => "local",
                SourceKind::Remote => "remote",
            };
            for st in [
                PublisherState::Online,
                PublisherState::Offline,
                PublisherState::Stalled,
            ] {
                publisher.push((
                    vec![
                        ("stream", name.clone()),
                        ("source", source.to_string()),
                        ("state", st.as_str().to_string()),
                    ],
                    if st == state { 1.0 } else { 0.0 },
                ));
            }
        }
        gauge(
            &mut enc,
            "framehub_viewers",
            "Viewers of the stream past the handshake.",
            &viewers,
        )?;
        gauge(
            &mut enc,
            "framehub_publish_fps",
            "Pictures published into the stream over the last second.",
            &fps,
        )?;
        counter(
            &mut enc,
            "framehub_bytes_out",
            "Bytes of frames sent to the stream's viewers.",
            &bytes,
        )?;
        counter(
            &mut enc,
            "framehub_frames_sent",
            "Frames sent to the stream's viewers.",
            &sent,
        )?;
        counter(
            &mut enc,
            "framehub_frames_dropped",
            "Frames a viewer of the stream skipped for lack of credit (latest wins).",
            &dropped,
        )?;
        counter(
            &mut enc,
            "framehub_encodes",
            "Frames encoded (or received encoded from a remote source) per variant.",
            &encodes,
        )?;
        counter(
            &mut enc,
            "framehub_events_dropped",
            "Input events dropped because the stream's queue was full.",
            &events_dropped,
        )?;
        gauge(
            &mut enc,
            "framehub_publisher_state",
            "1 for the stream's publisher state now (online, offline, stalled).",
            &publisher,
        )?;
        #[cfg(feature = "nats")]
        if let Some(hub) = inner.nats.get() {
            let c = &hub.counters;
            let l: Labels = vec![("hub", hub.id.clone())];
            let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            counter(
                &mut enc,
                "framehub_nats_units_out",
                "Units this hub published for edges (once per unit whatever the number of edges).",
                &[(l.clone(), get(&c.units_out))],
            )?;
            counter(
                &mut enc,
                "framehub_nats_bytes_out",
                "Bytes of those units.",
                &[(l.clone(), get(&c.bytes_out))],
            )?;
            counter(
                &mut enc,
                "framehub_nats_units_in",
                "Units this hub received from origin hubs.",
                &[(l.clone(), get(&c.units_in))],
            )?;
            counter(
                &mut enc,
                "framehub_nats_bytes_in",
                "Bytes of those units.",
                &[(l.clone(), get(&c.bytes_in))],
            )?;
            counter(
                &mut enc,
                "framehub_nats_edge_dropped_units",
                "Units this edge dropped (its queue full: a slow edge; or chunks lost).",
                &[(l.clone(), get(&c.edge_dropped))],
            )?;
            counter(
                &mut enc,
                "framehub_nats_chunked_units",
                "Units over the servers' max_payload sent in chunks.",
                &[(l.clone(), get(&c.chunked))],
            )?;
            counter(
                &mut enc,
                "framehub_nats_publish_errors",
                "Units that could not be published (connection lost).",
                &[(l.clone(), get(&c.publish_errors))],
            )?;
            counter(
                &mut enc,
                "framehub_nats_auth_refused",
                "Viewers of other hubs' streams their origin refused or did not answer for.",
                &[(l.clone(), get(&c.auth_refused))],
            )?;
            gauge(
                &mut enc,
                "framehub_nats_lag_seconds",
                "Publish-to-receipt delay of the last unit from an origin (hubs' clocks).",
                &[(l, get(&c.lag_us) as f64 / 1e6)],
            )?;
        }
        Ok(())
    }
}
