//! The hubs of the `nats-*` scenarios (issue 16): a `nats-server` on
//! loopback (found on `PATH`; the scenarios are skipped without it), one
//! **origin** hub that the publisher publishes into, and two **edge** hubs
//! that serve its stream to their viewers over NATS (`docs/protocol.md` §12).
//!
//! All three hubs run in the bench's process, so the origin's CPU is told
//! apart by thread: it runs on a tokio runtime of its own, whose threads are
//! named [`ORIGIN_THREADS`] (its sockets, its NATS client and the task that
//! publishes each unit once), and the stream's encode threads
//! (`framehub-enc*`) are the origin's too (the edges' streams are
//! remote-kind: they encode nothing). The edges run on the bench's own
//! runtime. The NATS server is a child process whose CPU is read from
//! `/proc/<pid>/stat`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use framehub::{NatsConfig, Server, ServerConfig, Stream, StreamConfig};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::hist::LatencySummary;
use super::BackgroundRuntime;

/// Name of the origin hub's runtime threads (≤ 15 bytes: the thread's `comm`).
pub(crate) const ORIGIN_THREADS: &str = "bench-origin";

/// Edge hubs in the scenario.
pub(crate) const EDGES: usize = 2;

/// The `nats-server` executable on `PATH`, if any.
pub(crate) fn nats_server_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// A `nats-server` child process with JetStream, on a free loopback port
/// (killed and its store removed when dropped).
pub(crate) struct NatsServer {
    child: Child,
    dir: PathBuf,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
}

impl NatsServer {
    /// Starts `exe` and waits (up to 10 s) until it takes connections.
    pub async fn start(exe: &std::path::Path) -> anyhow::Result<NatsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for nats-server")?
            .port();
        let dir =
            std::env::temp_dir().join(format!("framehub-bench-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let child = Command::new(exe)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let server = NatsServer {
            child,
            dir,
            url: format!("nats://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("nats-server did not take connections on port {port} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    /// The server's process id (its CPU: [`super::procfs::pid_cpu_s`]).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The NATS server, the origin hub on its own runtime, and the edge hubs.
pub(crate) struct Rig {
    /// Dropped last: the hubs close first.
    nats: NatsServer,
    origin_rt: BackgroundRuntime,
    origin: Server,
    edges: Vec<Server>,
}

/// A hub joined to the NATS server at `url` as `id`.
fn config(url: &str, id: &str) -> ServerConfig {
    ServerConfig {
        nats: Some(NatsConfig {
            hub_id: Some(id.into()),
            ..NatsConfig::new(url)
        }),
        ..ServerConfig::default()
    }
}

impl Rig {
    /// Starts the NATS server (`exe`), the origin and [`EDGES`] edges.
    pub async fn start(exe: &std::path::Path) -> anyhow::Result<Rig> {
        let nats = NatsServer::start(exe).await?;
        let origin_rt = BackgroundRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(ORIGIN_THREADS)
                .enable_all()
                .build()
                .context("starting the origin hub's runtime")?,
        ));
        let rt = origin_rt.0.as_ref().context("the origin's runtime")?;
        let cfg = config(&nats.url, "origin");
        // Bound on the origin's runtime: its accept loop, viewers and NATS
        // client run there.
        let origin = rt
            .spawn(async move { Server::builder().config(cfg).bind("127.0.0.1:0").await })
            .await
            .context("the origin hub's task")?
            .context("starting the origin hub")?;
        let mut edges = Vec::with_capacity(EDGES);
        for i in 0..EDGES {
            let edge = Server::builder()
                .config(config(&nats.url, &format!("edge{}", i + 1)))
                .bind("127.0.0.1:0")
                .await
                .with_context(|| format!("starting edge hub {}", i + 1))?;
            edges.push(edge);
        }
        Ok(Rig {
            nats,
            origin_rt,
            origin,
            edges,
        })
    }

    /// The origin hub's address.
    pub fn origin_addr(&self) -> anyhow::Result<SocketAddr> {
        self.origin
            .local_addr()
            .context("the origin hub has no address")
    }

    /// The edge hubs' addresses.
    pub fn edge_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        self.edges
            .iter()
            .map(|e| e.local_addr().context("an edge hub has no address"))
            .collect()
    }

    /// The NATS server's process id.
    pub fn nats_pid(&self) -> u32 {
        self.nats.pid()
    }

    /// Adds `name` on the origin, inside its runtime (whatever the stream
    /// spawns runs there).
    pub fn add_stream(
        &self,
        name: &str,
        (w, h): (u32, u32),
        cfg: StreamConfig,
    ) -> anyhow::Result<Stream> {
        let rt = self.origin_rt.0.as_ref().context("the origin's runtime")?;
        let _in_origin = rt.enter();
        Ok(self.origin.add_stream(name, w, h, cfg)?)
    }

    /// Waits (up to 15 s) until every edge serves `name`; returns their handles.
    pub async fn edge_streams(&self, name: &str) -> anyhow::Result<Vec<Stream>> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found: Vec<Stream> = self.edges.iter().filter_map(|e| e.stream(name)).collect();
            if found.len() == self.edges.len() {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} of {} edge hubs serve '{name}' after 15 s",
                    found.len(),
                    self.edges.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The edges' NATS counters (`GET /_/prometheus`), summed.
    pub async fn edge_counters(&self) -> EdgeCounters {
        let mut sum = EdgeCounters::default();
        for addr in self.edge_addrs().unwrap_or_default() {
            let Ok(text) = http_get(addr, "/_/prometheus").await else {
                continue;
            };
            let sample = |name: &str| -> u64 {
                text.lines()
                    .filter(|l| l.starts_with(name))
                    .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
                    .sum::<f64>() as u64
            };
            sum.units_in += sample("framehub_nats_units_in_total");
            sum.bytes_in += sample("framehub_nats_bytes_in_total");
            sum.dropped += sample("framehub_nats_edge_dropped_units_total");
        }
        sum
    }

    /// Closes the edges, then the origin (on its runtime). The NATS server
    /// stops when the rig is dropped.
    pub async fn close(&self) {
        for e in &self.edges {
            e.close().await;
        }
        if let Some(rt) = self.origin_rt.0.as_ref() {
            let origin = self.origin.clone();
            let _ = rt.spawn(async move { origin.close().await }).await;
        }
    }
}

/// Counters of the edges' NATS traffic.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct EdgeCounters {
    /// Units received from the origin (all edges).
    pub units_in: u64,
    /// Their bytes.
    pub bytes_in: u64,
    /// Units an edge dropped (its queue full, or a chunk missing).
    pub dropped: u64,
}

/// One `GET` over HTTP/1.1 (`Connection: close`); the body.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .context("read timed out")??;
    let text = String::from_utf8_lossy(&buf);
    Ok(text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string()))
}

/// What a `nats-*` scenario measured besides the ordinary columns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct NatsFigures {
    /// Viewers on the origin hub (the latency reference) …
    pub origin_viewers: usize,
    /// … and on each edge hub.
    pub viewers_per_edge: usize,
    /// Frames/s of the edges' viewers: the slowest, the 5th percentile, the median.
    pub edge_fps_min: f64,
    pub edge_fps_p5: f64,
    pub edge_fps_median: f64,
    /// Frames/s of the origin's viewer(s), slowest.
    pub origin_fps_min: f64,
    /// Publish→receive latency of the origin's viewers …
    pub latency_origin: LatencySummary,
    /// … and of the edges' viewers (all edges together).
    pub latency_edge: LatencySummary,
    /// What NATS adds: the edges' p50 (p95) less the origin's, ms.
    pub added_p50_ms: f64,
    pub added_p95_ms: f64,
    /// The latency of each picture to the first viewer of an edge that got
    /// it (the edge whose median is the higher): NATS's hop and the edge's
    /// own delay, without the wait behind the edge's other viewers.
    #[serde(default)]
    pub latency_edge_first: LatencySummary,
    /// Its p50 (p95) less the origin viewer's, ms.
    #[serde(default)]
    pub added_first_p50_ms: f64,
    #[serde(default)]
    pub added_first_p95_ms: f64,
    /// The origin hub's CPU over the window, % of one core: its runtime's
    /// threads and the encode threads (schedstat, ns precision), without
    /// the bench's publisher thread.
    pub origin_cpu_pct: f64,
    /// Of that, the encode threads.
    pub origin_encode_pct: f64,
    /// The bench's other threads less the publisher: the edge hubs (and the
    /// bench's own bookkeeping), % of one core (schedstat, live threads).
    pub edges_cpu_pct: f64,
    /// The `nats-server` process, % of one core.
    pub nats_server_cpu_pct: f64,
    /// `origin_cpu_pct` ÷ that of `nats-1` (same picture, same run).
    pub origin_cpu_ratio_to_nats_1: Option<f64>,
    /// The edges' NATS counters over the window.
    pub edge_units_in: u64,
    pub edge_bytes_in: u64,
    pub edge_dropped: u64,
}

/// The `q`-quantile (0..=1) of sorted values (nearest rank; 0 when empty).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.05), 5.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[3.0], 0.05), 3.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
