//! `framehub soak`: the soak test of issue 6 (how to run it and what the
//! figures mean: `docs/benchmarks.md`, section "Soak").
//!
//! One hub in this process on `127.0.0.1:0`, one stream published at a
//! fixed rate by a publisher thread (the bench's), and two client
//! processes of this same binary (`framehub soak-client`, hidden):
//!
//! * `--role good`: the well-behaved viewers, measured (see [`client`]);
//! * `--role load`: viewers that come and go at random (churn), viewers
//!   that never ack, and misbehaving clients ([`misbehave`]).
//!
//! Phases: the good viewers connect; **baseline** (they are alone);
//! the load starts; **warm-up**; the measured **window** up to
//! `--duration` after the load started; then every client leaves and the
//! hub is checked once the last connection has gone.
//!
//! The hub process counts its panics (a panic hook), samples its RSS
//! every second, counts its open file descriptors (`/proc/self/fd`) before
//! the first client and after the last one left, and reads its own
//! counters from `GET /_/metrics` (closes by code, refusals, write failures).
//! It prints one JSON line (stdout and `--out`, after the one-per-second
//! samples in `--out`), then a readable summary with each check marked
//! PASS / FAIL / n/a; a failed check makes the command fail.

pub(crate) mod client;
pub(crate) mod misbehave;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use framehub::{ImageFormat, OutputFormat, Server, StreamConfig};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::bench::epoch::Epoch;
use crate::bench::hist::LatencySummary;
use crate::bench::picture::{Frames, Picture};
use crate::bench::{procfs, Publisher, Rate};
pub use client::{run_client, SoakClientArgs};
use client::{ChurnStats, ClientLine, GoodResult, LoadResult, NeverAckStats};
use misbehave::KindStats;

/// Options of `framehub soak`.
#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// Seconds under load (warm-up + measured window) [default: 600, or 12 with --quick].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds the good viewers are alone first, the reference of their frame rate [default: 30, or 3 with --quick].
    #[arg(long)]
    pub baseline: Option<f64>,
    /// Seconds of load before the window starts (memory and frame rate are
    /// judged after it) [default: 180, or 3 with --quick]. 180 s: under the
    /// soak's churn the hub's RSS climbs for about 4 minutes while glibc's
    /// arenas fill with freed blocks, then stays level (its heap in use is
    /// level from the first minute); the RSS check is about what comes after.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Smoke run (~20 s): fewer clients, short phases, a 3 s idle timeout;
    /// only the correctness checks are judged (no panic, no fd leak,
    /// misbehaving clients closed as the spec says, …), not frame rate or memory.
    #[arg(long)]
    pub quick: bool,
    /// Well-behaved viewers, measured [default: 10, or 4 with --quick].
    #[arg(long)]
    pub good: Option<usize>,
    /// Viewers connecting and leaving at random [default: 500, or 40 with --quick].
    #[arg(long)]
    pub churn: Option<usize>,
    /// Viewers that never ack [default: 50, or 6 with --quick].
    #[arg(long)]
    pub never_ack: Option<usize>,
    /// Misbehaving clients [default: 20, or 14 with --quick: one per kind].
    #[arg(long)]
    pub misbehaving: Option<usize>,
    /// Stream width, pixels.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Stream height, pixels.
    #[arg(long, default_value_t = 360)]
    pub height: u32,
    /// Frames published per second.
    #[arg(long, default_value_t = 30.0)]
    pub fps: f64,
    /// JPEG quality.
    #[arg(long, default_value_t = 80)]
    pub quality: u8,
    /// Picture published (the bench's).
    #[arg(long, value_enum, default_value_t = Picture::Natural)]
    pub picture: Picture,
    /// The stream's idle timeout (no ack while frames are pending → close 1008), s
    /// [default: the stream's, 30; 3 with --quick so that never-ack viewers are closed within the run].
    #[arg(long)]
    pub idle_timeout: Option<f64>,
    /// Seed of the clients' random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the JSON lines (overwritten).
    #[arg(long, default_value = "soak-results.jsonl")]
    pub out: PathBuf,
}

// ───────────────────────────── panics ─────────────────────────────

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Counts every panic of this process (any thread, tokio tasks included:
/// the runtime catches a task's panic, but the hook runs first), then runs
/// the hook that was there before. Installed once.
pub(crate) fn install_panic_counter() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::Relaxed);
            previous(info);
        }));
    });
}

/// Panics counted so far.
pub(crate) fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

// ───────────────────────────── the hub's own readings ─────────────────────────────

/// Open file descriptors of this process (entries of `/proc/self/fd`,
/// less the one the listing itself holds).
fn fd_count() -> anyhow::Result<usize> {
    let n = std::fs::read_dir("/proc/self/fd")
        .context("reading /proc/self/fd")?
        .count();
    Ok(n.saturating_sub(1))
}

/// The hub's counters (`GET /_/metrics`, `docs/protocol.md` §8).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
struct HubMetrics {
    connections: u64,
    #[serde(default)]
    closes: BTreeMap<String, u64>,
    #[serde(default)]
    refused: BTreeMap<String, u64>,
    #[serde(default)]
    write_failures: u64,
}

impl HubMetrics {
    /// `self − before`, counter by counter.
    fn since(&self, before: &HubMetrics) -> HubMetrics {
        let diff = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
            a.iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(b.get(k).copied().unwrap_or(0))))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        HubMetrics {
            connections: self.connections,
            closes: diff(&self.closes, &before.closes),
            refused: diff(&self.refused, &before.refused),
            write_failures: self.write_failures.saturating_sub(before.write_failures),
        }
    }
}

/// `GET /_/metrics` over a plain HTTP/1.1 connection (the route a monitor would read).
async fn hub_metrics(addr: std::net::SocketAddr) -> anyhow::Result<HubMetrics> {
    let fetch = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.write_all(
            format!("GET /_/metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        tcp.take(1 << 20).read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .context("GET /_/metrics took over 10 s")??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("GET /_/metrics: no header end"))?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "GET /_/metrics: {}",
            head.lines().next().unwrap_or_default()
        );
    }
    serde_json::from_str(body).context("GET /_/metrics: bad JSON")
}

// ───────────────────────────── child processes ─────────────────────────────

/// A soak client process: killed and reaped if still running when dropped.
struct ClientProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    role: &'static str,
}

impl ClientProcess {
    fn spawn(role: &'static str, args: &[String]) -> anyhow::Result<ClientProcess> {
        let exe = std::env::current_exe().context("finding the framehub executable")?;
        let mut child = std::process::Command::new(exe)
            .arg("soak-client")
            .args(["--role", role])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the {role} client"))?;
        let stdout = child.stdout.take().context("the client's stdout")?;
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel(256);
        std::thread::Builder::new()
            .name(format!("soak-{role}-out"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
            })
            .context("starting a client reader thread")?;
        Ok(ClientProcess {
            child,
            stdin,
            lines,
            role,
        })
    }

    /// Writes one line to the client's stdin (a client gone is found out by its lines).
    fn tell(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// The next protocol line (non-JSON lines are passed to stderr); `None` when it ended.
    async fn next(&mut self) -> Option<ClientLine> {
        loop {
            let line = self.lines.recv().await?;
            match serde_json::from_str::<ClientLine>(&line) {
                Ok(l) => return Some(l),
                Err(_) => eprintln!("{} client: {line}", self.role),
            }
        }
    }

    /// Waits (bounded) for the process to exit after its stdin is closed.
    async fn finish(mut self) {
        drop(self.stdin.take());
        let by = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        eprintln!("  warning: the {} client exited with {status}", self.role);
                    }
                    return;
                }
                Ok(None) if Instant::now() < by => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                _ => {
                    eprintln!(
                        "  warning: the {} client did not exit in 10 s; killing it",
                        self.role
                    );
                    return;
                }
            }
        }
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ───────────────────────────── the report ─────────────────────────────

/// The heap-in-use figures of the window's samples (None without `mallinfo2`).
fn heap_figures(
    samples: &[Sample],
    window_start_s: f64,
    level_span_s: f64,
    start: Option<u64>,
    after: Option<u64>,
) -> Option<HeapFigures> {
    let in_window: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.phase == "window")
        .filter_map(|s| Some((s.t_s, s.heap_mib?)))
        .collect();
    let end_mib = in_window.last()?.1;
    let level: Vec<f64> = in_window
        .iter()
        .filter(|(t, _)| *t <= window_start_s + level_span_s)
        .map(|p| p.1)
        .collect();
    Some(HeapFigures {
        level_mib: if level.is_empty() {
            end_mib
        } else {
            median(&level)
        },
        peak_mib: in_window.iter().map(|p| p.1).fold(end_mib, f64::max),
        end_mib,
        slope_mib_per_min: slope(&in_window) * 60.0,
        start_mib: start.map_or(0.0, mib),
        after_clients_mib: after.map_or(0.0, mib),
    })
}

/// One check and how the run did.
#[derive(Debug, Clone, Serialize)]
struct Check {
    target: String,
    measured: String,
    /// `None`: not judged (a timing or memory check of a `--quick` run).
    pass: Option<bool>,
}

/// One sample of the hub, once a second (a JSON line of `--out` each).
#[derive(Debug, Clone, Serialize)]
struct Sample {
    sample: &'static str,
    /// Seconds since the hub started.
    t_s: f64,
    phase: &'static str,
    rss_mib: f64,
    /// Heap in use (glibc `mallinfo2`), MiB; None where not available.
    heap_mib: Option<f64>,
    /// WebSocket connections open on the hub.
    connections: usize,
    /// Good viewers: the lowest new pictures/s over the last second.
    good_fps_min: Option<f64>,
}

/// The good viewers' figures.
#[derive(Debug, Clone, Serialize)]
struct GoodFigures {
    viewers: usize,
    baseline_s: f64,
    window_s: f64,
    baseline_fps_min: f64,
    baseline_fps_median: f64,
    window_fps_min: f64,
    window_fps_median: f64,
    /// Lowest viewer fps in the window ÷ median viewer fps in the baseline.
    ratio_to_baseline: f64,
    /// The lowest fps of any viewer over any 10 s of the window (from the 1 s ticks).
    worst_10s_fps: Option<f64>,
    publish_fps_baseline: f64,
    publish_fps_window: f64,
    latency_baseline: LatencySummary,
    latency_window: LatencySummary,
    /// Mean size of a frame message in the window (envelope + JPEG), bytes.
    bytes_per_frame: f64,
    /// The good viewers' process: CPU, % of one core, and its threads'
    /// summed run-queue wait, % of the phase.
    client_cpu_baseline_pct: f64,
    client_cpu_window_pct: f64,
    client_cpu_wait_baseline_pct: f64,
    client_cpu_wait_window_pct: f64,
    ended_early: Vec<String>,
}

/// The hub's memory.
#[derive(Debug, Clone, Serialize)]
struct Memory {
    /// Before the first client, MiB.
    start_mib: f64,
    /// The post-warm-up level: median RSS over the window's first `level_span_s`, MiB.
    level_mib: f64,
    level_span_s: f64,
    /// Highest 1 s sample in the window, MiB.
    peak_mib: f64,
    /// The kernel's high-water mark over the window (`VmHWM`, reset at its start), MiB.
    peak_hwm_mib: Option<f64>,
    /// At the window's end, MiB.
    end_mib: f64,
    /// Least-squares slope of the window's samples, MiB per minute.
    slope_mib_per_min: f64,
    /// Allowed: end ≤ level + this, MiB (max(8 MiB, 10 % of the level)).
    margin_mib: f64,
    /// After every client left, MiB.
    after_clients_mib: f64,
    /// The same after `malloc_trim(0)` (the allocator's free pages given
    /// back), MiB: what the hub really holds then.
    after_trim_mib: f64,
    samples: usize,
    /// The heap in use (glibc `mallinfo2`, not RSS): the same level, end
    /// and slope, telling a leak (the heap grows) from memory the
    /// allocator keeps after frees (only RSS grows). None where not available.
    heap: Option<HeapFigures>,
}

/// The heap in use over the window ([`Memory::heap`]).
#[derive(Debug, Clone, Serialize)]
struct HeapFigures {
    /// Before the first client, MiB.
    start_mib: f64,
    /// Median over the window's first `level_span_s`, MiB.
    level_mib: f64,
    /// Highest 1 s sample in the window, MiB.
    peak_mib: f64,
    /// At the window's end, MiB.
    end_mib: f64,
    /// Least-squares slope of the window's samples, MiB per minute.
    slope_mib_per_min: f64,
    /// After every client left, MiB.
    after_clients_mib: f64,
}

/// The hub's file descriptors.
#[derive(Debug, Clone, Serialize)]
struct Fds {
    /// Before the first client.
    start: usize,
    /// After every client left and the hub counted no connection.
    end: usize,
    /// Allowed: end ≤ start + this.
    margin: usize,
    /// Most seen (sampled with the RSS).
    max: usize,
    /// Time from the last client's exit to the count settling, s.
    settle_s: f64,
}

/// The JSON line of a soak run.
#[derive(Debug, Clone, Serialize)]
struct SoakReport {
    soak: &'static str,
    version: &'static str,
    date: String,
    machine: String,
    cpus: usize,
    quick: bool,
    seed: u64,
    width: u32,
    height: u32,
    fps: f64,
    quality: u8,
    picture: Picture,
    idle_timeout_s: f64,
    good_viewers: usize,
    churn_viewers: usize,
    never_ack_viewers: usize,
    misbehaving_clients: usize,
    duration_s: f64,
    warmup_s: f64,
    loadavg_start: String,
    loadavg_end: String,
    /// The hub process's CPU (publisher included), % of one core.
    hub_cpu_baseline_pct: f64,
    hub_cpu_window_pct: f64,
    /// Time the hub's threads were ready to run but had no CPU (summed over
    /// threads), % of the phase: how much the rest of the machine held the hub back.
    hub_cpu_wait_baseline_pct: f64,
    hub_cpu_wait_window_pct: f64,
    /// CPU time the hypervisor gave to others over the window, % of one core.
    steal_window_pct: f64,
    good: GoodFigures,
    memory: Memory,
    fds: Fds,
    hub_panics: u64,
    client_panics: u64,
    /// `/_/metrics` over the run: closes by code, refusals, write failures.
    hub: HubMetrics,
    /// Connections the hub counted after the clients left.
    connections_end: usize,
    /// Closes the clients saw, by code (misbehaving + never-ack + churn + good).
    closes_seen: BTreeMap<String, u64>,
    churn: ChurnStats,
    never_ack: NeverAckStats,
    misbehaving: BTreeMap<String, KindStats>,
    load_client_cpu_pct: f64,
    load_client_cpu_wait_pct: f64,
    /// Frames the churn viewers received per second, all together, over the load.
    churn_fps: f64,
    checks: Vec<Check>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

/// The lowest rate of any viewer over any `span` seconds of `ticks`
/// (`(t_s, running counts)`, one a second). None when the ticks cover less.
fn worst_window_fps(ticks: &[(f64, Vec<u64>)], span: f64) -> Option<f64> {
    let mut worst: Option<f64> = None;
    let mut j = 0;
    for (i, (t1, c1)) in ticks.iter().enumerate() {
        while j < i && t1 - ticks[j].0 > span + 0.5 {
            j += 1;
        }
        let (t0, c0) = &ticks[j];
        let dt = t1 - t0;
        if dt + 0.5 < span {
            continue;
        }
        for (a, b) in c0.iter().zip(c1) {
            let fps = b.saturating_sub(*a) as f64 / dt;
            worst = Some(worst.map_or(fps, |w: f64| w.min(fps)));
        }
    }
    worst
}

/// The 1, 5 and 15-minute load averages as in `/proc/loadavg`.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ───────────────────────────── the run ─────────────────────────────

/// The phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Connecting,
    Baseline,
    Warmup,
    Window,
    Teardown,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Connecting => "connecting",
            Stage::Baseline => "baseline",
            Stage::Warmup => "warmup",
            Stage::Window => "window",
            Stage::Teardown => "teardown",
        }
    }
}

/// The hub process at one edge of a phase.
#[derive(Debug, Clone, Copy)]
struct Edge {
    at: Instant,
    cpu_s: f64,
    /// The hub's threads' summed run-queue wait, s.
    wait_s: f64,
    published: u64,
    steal_s: f64,
}

const STREAM_NAME: &str = "soak";
/// File descriptors the hub may hold at the end over its count at the start.
const FD_MARGIN: usize = 4;

/// Runs the soak test and prints the report; fails when a judged check fails.
pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    install_panic_counter();
    let q = args.quick;
    let duration = args.duration.unwrap_or(if q { 12.0 } else { 600.0 });
    let baseline = args.baseline.unwrap_or(if q { 3.0 } else { 30.0 });
    let warmup = args.warmup.unwrap_or(if q { 3.0 } else { 180.0 });
    let idle_timeout = args.idle_timeout.unwrap_or(if q {
        3.0
    } else {
        StreamConfig::default().idle_timeout.as_secs_f64()
    });
    let finite = |x: f64| x.is_finite() && x >= 0.0;
    if !(finite(duration) && finite(baseline) && finite(warmup) && warmup < duration) {
        bail!("need --baseline ≥ 0 and 0 ≤ --warmup < --duration");
    }
    if !(finite(idle_timeout) && idle_timeout > 0.0 && args.fps > 0.0 && args.fps.is_finite()) {
        bail!("--idle-timeout and --fps must be > 0");
    }
    let good_n = args.good.unwrap_or(if q { 4 } else { 10 }).max(1);
    let churn_n = args.churn.unwrap_or(if q { 40 } else { 500 });
    let never_n = args.never_ack.unwrap_or(if q { 6 } else { 50 });
    let bad_n = args
        .misbehaving
        .unwrap_or(if q { misbehave::Kind::ALL.len() } else { 20 });
    let (w, h) = (args.width & !1, args.height & !1);
    if w == 0 || h == 0 {
        bail!("--width and --height must be at least 2");
    }
    let (model, cpus) = procfs::machine();
    let loadavg_start = loadavg();
    eprintln!(
        "framehub soak: {w}×{h} JPEG q{} {} at {} fps; {good_n} good + {churn_n} churn + {never_n} never-ack + {bad_n} misbehaving clients; baseline {baseline} s, then {duration} s of load ({warmup} s warm-up){}; {cpus} CPU(s), {model}; load {loadavg_start}",
        args.quality,
        args.picture,
        args.fps,
        if q { " (quick)" } else { "" },
    );
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut file = std::io::BufWriter::new(file);

    // The hub, its stream and the publisher.
    let pictures = Frames::new(args.picture, w, h, 4);
    // The hub's defaults, but for a short header-read timeout in the quick
    // run, so that its slow-loris attempts (4 s) see the hub hang up.
    let server_cfg = framehub::ServerConfig {
        header_read_timeout: if q {
            Duration::from_secs(2)
        } else {
            framehub::ServerConfig::default().header_read_timeout
        },
        ..framehub::ServerConfig::default()
    };
    let server = Server::builder()
        .config(server_cfg)
        .bind("127.0.0.1:0")
        .await
        .context("starting the hub")?;
    let addr = server.local_addr().context("the hub has no address")?;
    let cfg = StreamConfig {
        idle_timeout: Duration::from_secs_f64(idle_timeout),
        ..StreamConfig::default().quality(args.quality)
    };
    let before = client::now_unix_us();
    let stream = server.add_stream(STREAM_NAME, w, h, cfg)?;
    let around = Epoch::around_add_stream(before, client::now_unix_us());
    let url = format!("ws://{addr}/{STREAM_NAME}");
    let epoch = around.refine(&url, &stream).await.unwrap_or(around);
    let publisher = Publisher::spawn(
        stream.clone(),
        pictures,
        (w, h),
        (Rate::Fps(args.fps), 1),
        OutputFormat::Image(ImageFormat::Jpeg),
    )?;
    let metrics_start = hub_metrics(addr).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fd_start = fd_count()?;
    let rss_start = procfs::rss_bytes()?;
    let heap_start = procfs::heap_in_use_bytes();
    let t_hub = Instant::now();

    let common = vec![
        "--addr".to_string(),
        addr.to_string(),
        "--stream".into(),
        STREAM_NAME.into(),
        "--created-unix-us".into(),
        epoch.base_unix_us.to_string(),
        "--seed".into(),
        args.seed.to_string(),
        "--idle-timeout".into(),
        idle_timeout.to_string(),
    ];
    let mut good_args = common.clone();
    good_args.extend(["--good".into(), good_n.to_string()]);
    let mut load_args = common;
    load_args.extend([
        "--churn".into(),
        churn_n.to_string(),
        "--never-ack".into(),
        never_n.to_string(),
        "--misbehaving".into(),
        bad_n.to_string(),
        "--churn-stay-max".into(),
        (if q { 3.0 } else { 10.0f64 }).to_string(),
        "--slowloris-hold".into(),
        (if q { 4.0 } else { 40.0f64 }).to_string(),
        "--hello-timeout".into(),
        framehub::ServerConfig::default()
            .hello_timeout
            .as_secs_f64()
            .to_string(),
    ]);

    let mut good = ClientProcess::spawn("good", &good_args)?;
    let mut load: Option<ClientProcess> = None;
    let mut stage = Stage::Connecting;
    let mut stage_end = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut edges: BTreeMap<Stage, Edge> = BTreeMap::new();
    let edge = |published: &AtomicU64| -> anyhow::Result<Edge> {
        let (cpu_s, wait_s) = client::cpu_and_wait();
        Ok(Edge {
            at: Instant::now(),
            cpu_s,
            wait_s,
            published: published.load(Ordering::Relaxed),
            steal_s: procfs::steal_s(),
        })
    };
    let mut samples: Vec<Sample> = Vec::new();
    let mut ticks: Vec<(Stage, f64, Vec<u64>)> = Vec::new();
    let mut rss_tick = tokio::time::interval(Duration::from_secs(1));
    let mut fd_max = fd_start;
    let mut hwm_reset = false;
    let mut last_load_progress = String::new();
    let (rss_window_end, hwm_window) = loop {
        tokio::select! {
            line = good.next() => match line {
                Some(ClientLine::Ready { viewers, connect_s }) => {
                    eprintln!("  {viewers} good viewer(s) connected in {connect_s:.2} s; baseline {baseline} s");
                    good.tell("phase baseline");
                    edges.insert(Stage::Baseline, edge(&publisher.published)?);
                    stage = Stage::Baseline;
                    stage_end = tokio::time::Instant::now() + Duration::from_secs_f64(baseline);
                }
                Some(ClientLine::Tick { t_s, frames }) => ticks.push((stage, t_s, frames)),
                Some(ClientLine::Error { message }) => bail!("good client: {message}"),
                Some(other) => bail!("good client: unexpected line {other:?}"),
                None => bail!("the good client ended early"),
            },
            line = async { match load.as_mut() { Some(l) => l.next().await, None => std::future::pending().await } } => match line {
                Some(ClientLine::Progress { t_s, churn_open, churn_sessions, never_ack_open, misbehaving_attempts }) => {
                    last_load_progress = format!("load {t_s:.0} s: churn {churn_open} open / {churn_sessions} sessions, never-ack {never_ack_open} open, {misbehaving_attempts} misbehaving attempts; hub {} connections, RSS {:.1} MiB", stream.server().connections(), mib(procfs::rss_bytes()?));
                    if !q {
                        eprintln!("  {last_load_progress}");
                    }
                }
                Some(ClientLine::Error { message }) => bail!("load client: {message}"),
                Some(other) => bail!("load client: unexpected line {other:?}"),
                None => bail!("the load client ended early"),
            },
            _ = rss_tick.tick() => {
                let rss = procfs::rss_bytes()?;
                let fds = fd_count()?;
                fd_max = fd_max.max(fds);
                let good_fps_min = match ticks.as_slice() {
                    [.., (_, t0, a), (_, t1, b)] if t1 > t0 => a.iter().zip(b).map(|(x, y)| y.saturating_sub(*x) as f64 / (t1 - t0)).reduce(f64::min),
                    _ => None,
                };
                samples.push(Sample {
                    sample: "hub",
                    t_s: t_hub.elapsed().as_secs_f64(),
                    phase: stage.name(),
                    rss_mib: mib(rss),
                    heap_mib: procfs::heap_in_use_bytes().map(mib),
                    connections: server.connections(),
                    good_fps_min,
                });
            }
            _ = tokio::time::sleep_until(stage_end) => match stage {
                Stage::Connecting => bail!("the good viewers did not connect within 60 s"),
                Stage::Baseline => {
                    edges.insert(Stage::Warmup, edge(&publisher.published)?);
                    good.tell("phase warmup");
                    load = Some(ClientProcess::spawn("load", &load_args)?);
                    eprintln!("  load started; warm-up {warmup} s, then the window to {duration} s");
                    stage = Stage::Warmup;
                    stage_end = tokio::time::Instant::now() + Duration::from_secs_f64(warmup);
                }
                Stage::Warmup => {
                    good.tell("phase window");
                    hwm_reset = procfs::reset_peak_rss();
                    edges.insert(Stage::Window, edge(&publisher.published)?);
                    stage = Stage::Window;
                    stage_end = tokio::time::Instant::now() + Duration::from_secs_f64(duration - warmup);
                }
                Stage::Window | Stage::Teardown => {
                    good.tell("phase after");
                    edges.insert(Stage::Teardown, edge(&publisher.published)?);
                    let rss = procfs::rss_bytes()?;
                    let hwm = hwm_reset.then(procfs::peak_rss_bytes).transpose()?;
                    break (rss, hwm);
                }
            },
        }
    };
    if q && !last_load_progress.is_empty() {
        eprintln!("  {last_load_progress}");
    }

    // Every client leaves: the load first (its result), then the good viewers.
    eprintln!("  window over; stopping the clients");
    let mut load = load.context("the load never started")?;
    load.tell("stop");
    let load_result: LoadResult = loop {
        match tokio::time::timeout(Duration::from_secs(60), load.next()).await {
            Ok(Some(ClientLine::Load(r))) => break *r,
            Ok(Some(ClientLine::Error { message })) => bail!("load client: {message}"),
            Ok(Some(_)) => {}
            Ok(None) => bail!("the load client ended without a result"),
            Err(_) => bail!("no result from the load client within 60 s"),
        }
    };
    load.finish().await;
    good.tell("stop");
    let good_result: GoodResult = loop {
        match tokio::time::timeout(Duration::from_secs(30), good.next()).await {
            Ok(Some(ClientLine::Good(r))) => break r,
            Ok(Some(ClientLine::Error { message })) => bail!("good client: {message}"),
            Ok(Some(_)) => {}
            Ok(None) => bail!("the good client ended without a result"),
            Err(_) => bail!("no result from the good client within 30 s"),
        }
    };
    good.finish().await;

    // The hub once the last client has gone: connections, fds.
    let gone = Instant::now();
    let settle_by = gone + Duration::from_secs(30);
    let mut fd_end = fd_count()?;
    while (server.connections() > 0 || fd_end > fd_start + FD_MARGIN) && Instant::now() < settle_by
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fd_end = fd_count()?;
    }
    let settle_s = gone.elapsed().as_secs_f64();
    let connections_end = server.connections();
    let rss_after = procfs::rss_bytes()?;
    let heap_after = procfs::heap_in_use_bytes();
    procfs::trim_heap();
    let rss_after_trim = procfs::rss_bytes()?;
    let metrics_end = hub_metrics(addr).await?;
    let hub_panics = panics();
    publisher.finish().await?;
    server.close().await;

    // Figures.
    let at = |s: Stage| edges.get(&s).copied().context("a phase never started");
    let (e_base, e_warm, e_win, e_end) = (
        at(Stage::Baseline)?,
        at(Stage::Warmup)?,
        at(Stage::Window)?,
        at(Stage::Teardown)?,
    );
    let rate = |a: Edge, b: Edge, x: f64| x / b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let phase = |name: &str| good_result.phases.iter().find(|p| p.phase == name).cloned();
    let base = phase("baseline").context("no baseline phase in the good result")?;
    let win = phase("window").context("no window phase in the good result")?;
    let min = |v: &[f64]| v.iter().copied().reduce(f64::min).unwrap_or(0.0);
    let window_ticks: Vec<(f64, Vec<u64>)> = ticks
        .iter()
        .filter(|(s, _, _)| *s == Stage::Window)
        .map(|(_, t, f)| (*t, f.clone()))
        .collect();
    let good_fig = GoodFigures {
        viewers: good_n,
        baseline_s: base.seconds,
        window_s: win.seconds,
        baseline_fps_min: min(&base.fps),
        baseline_fps_median: median(&base.fps),
        window_fps_min: min(&win.fps),
        window_fps_median: median(&win.fps),
        ratio_to_baseline: if median(&base.fps) > 0.0 {
            min(&win.fps) / median(&base.fps)
        } else {
            0.0
        },
        worst_10s_fps: worst_window_fps(&window_ticks, 10.0),
        publish_fps_baseline: rate(e_base, e_warm, (e_warm.published - e_base.published) as f64),
        publish_fps_window: rate(e_win, e_end, (e_end.published - e_win.published) as f64),
        latency_baseline: base.latency.clone(),
        latency_window: win.latency.clone(),
        bytes_per_frame: win.bytes_per_frame,
        client_cpu_baseline_pct: base.cpu_pct,
        client_cpu_window_pct: win.cpu_pct,
        client_cpu_wait_baseline_pct: base.cpu_wait_pct,
        client_cpu_wait_window_pct: win.cpu_wait_pct,
        ended_early: good_result.ended_early.clone(),
    };

    let window_start_s = e_win.at.duration_since(t_hub).as_secs_f64();
    let window_len = e_end.at.duration_since(e_win.at).as_secs_f64();
    let level_span_s = (window_len / 4.0).min(60.0);
    let in_window: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.phase == "window")
        .map(|s| (s.t_s, s.rss_mib))
        .collect();
    let level_samples: Vec<f64> = in_window
        .iter()
        .filter(|(t, _)| *t <= window_start_s + level_span_s)
        .map(|p| p.1)
        .collect();
    let end_mib = mib(rss_window_end);
    let level_mib = if level_samples.is_empty() {
        end_mib
    } else {
        median(&level_samples)
    };
    let memory = Memory {
        start_mib: mib(rss_start),
        level_mib,
        level_span_s,
        peak_mib: in_window.iter().map(|p| p.1).fold(end_mib, f64::max),
        peak_hwm_mib: hwm_window.map(mib),
        end_mib,
        slope_mib_per_min: slope(&in_window) * 60.0,
        margin_mib: (level_mib * 0.10).max(8.0),
        after_clients_mib: mib(rss_after),
        after_trim_mib: mib(rss_after_trim),
        samples: in_window.len(),
        heap: heap_figures(
            &samples,
            window_start_s,
            level_span_s,
            heap_start,
            heap_after,
        ),
    };
    let fds = Fds {
        start: fd_start,
        end: fd_end,
        margin: FD_MARGIN,
        max: fd_max,
        settle_s,
    };
    let hub = metrics_end.since(&metrics_start);

    // The closes the clients saw, by code.
    let mut closes_seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = |label: &str, n: u64| {
        if let Some(code) = label.strip_prefix("close ") {
            *closes_seen.entry(code.to_string()).or_insert(0) += n;
        }
    };
    for k in load_result.misbehaving.values() {
        for (label, n) in &k.outcomes {
            seen(label, *n);
        }
    }
    for (label, n) in &load_result.never_ack.outcomes {
        seen(label, *n);
    }
    for (label, n) in &load_result.churn.ended_by_hub {
        seen(label, *n);
    }
    for e in &good_result.ended_early {
        if let Some(rest) = e.split_once(": ").map(|x| x.1) {
            let code = rest
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            seen(&code, 1);
        }
    }

    let churn_fps = load_result.churn.frames as f64 / load_result.seconds.max(1e-9);
    let mut report = SoakReport {
        soak: "framehub",
        version: env!("CARGO_PKG_VERSION"),
        date: crate::bench::today_utc(),
        machine: model,
        cpus,
        quick: q,
        seed: args.seed,
        width: w,
        height: h,
        fps: args.fps,
        quality: args.quality,
        picture: args.picture,
        idle_timeout_s: idle_timeout,
        good_viewers: good_n,
        churn_viewers: churn_n,
        never_ack_viewers: never_n,
        misbehaving_clients: bad_n,
        duration_s: duration,
        warmup_s: warmup,
        loadavg_start,
        loadavg_end: loadavg(),
        hub_cpu_baseline_pct: rate(e_base, e_warm, e_warm.cpu_s - e_base.cpu_s) * 100.0,
        hub_cpu_window_pct: rate(e_win, e_end, e_end.cpu_s - e_win.cpu_s) * 100.0,
        hub_cpu_wait_baseline_pct: rate(e_base, e_warm, e_warm.wait_s - e_base.wait_s) * 100.0,
        hub_cpu_wait_window_pct: rate(e_win, e_end, e_end.wait_s - e_win.wait_s) * 100.0,
        steal_window_pct: rate(e_win, e_end, e_end.steal_s - e_win.steal_s) * 100.0,
        good: good_fig,
        memory,
        fds,
        hub_panics,
        client_panics: good_result.panics + load_result.panics,
        hub,
        connections_end,
        closes_seen,
        churn: load_result.churn,
        never_ack: load_result.never_ack,
        misbehaving: load_result.misbehaving,
        load_client_cpu_pct: load_result.cpu_pct,
        load_client_cpu_wait_pct: load_result.cpu_wait_pct,
        churn_fps,
        checks: Vec::new(),
    };
    report.checks = checks(&report);
    for s in &samples {
        writeln!(file, "{}", serde_json::to_string(s)?)?;
    }
    let line = serde_json::to_string(&report)?;
    writeln!(file, "{line}")?;
    file.flush()?;
    println!("{line}");
    println!("\n{}", summary(&report));
    eprintln!("results: {}", args.out.display());
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.pass == Some(false))
        .map(|c| format!("{} — measured {}", c.target, c.measured))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} soak check(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

/// Heap growth allowed over the window, as a share of its level (own bound).
const HEAP_MARGIN: f64 = 0.05;
/// … and at least this much, MiB.
const HEAP_MARGIN_MIN_MIB: f64 = 4.0;

/// The checks of issue 6's soak test, judged.
fn checks(r: &SoakReport) -> Vec<Check> {
    let timed = |ok: bool| (!r.quick).then_some(ok);
    let mut out = Vec::new();
    let g = &r.good;
    out.push(Check {
        target: "good viewers keep ≥ 95 % of their frame rate (slowest viewer in the window vs the median of the baseline, the same viewers alone)".into(),
        measured: format!(
            "{:.1} vs {:.1} frames/s ({:.1} %); window median {:.1}; worst 10 s {}; published {:.1} / {:.1} frames/s",
            g.window_fps_min,
            g.baseline_fps_median,
            g.ratio_to_baseline * 100.0,
            g.window_fps_median,
            g.worst_10s_fps.map_or("–".into(), |f| format!("{f:.1}")),
            g.publish_fps_baseline,
            g.publish_fps_window,
        ),
        pass: timed(g.ratio_to_baseline >= 0.95),
    });
    out.push(Check {
        target: "good viewers are never closed or lost".into(),
        measured: if g.ended_early.is_empty() {
            "none".into()
        } else {
            g.ended_early.join("; ")
        },
        pass: Some(g.ended_early.is_empty()),
    });
    let m = &r.memory;
    out.push(Check {
        target: format!(
            "hub memory flat after warm-up (RSS at the window's end ≤ its level over the window's first {:.0} s + max(8 MiB, 10 %))",
            m.level_span_s
        ),
        measured: format!(
            "level {:.1} MiB, peak {:.1}{}, end {:.1} (allowed {:.1}); slope {:+.2} MiB/min",
            m.level_mib,
            m.peak_mib,
            m.peak_hwm_mib
                .map_or(String::new(), |p| format!(" (high-water mark {p:.1})")),
            m.end_mib,
            m.level_mib + m.margin_mib,
            m.slope_mib_per_min,
        ),
        pass: timed(m.end_mib <= m.level_mib + m.margin_mib),
    });
    if let Some(h) = &m.heap {
        // RSS also counts freed memory the allocator keeps; the heap in use
        // does not, so it is the sharper test for memory kept per session.
        let margin = (h.level_mib * HEAP_MARGIN).max(HEAP_MARGIN_MIN_MIB);
        out.push(Check {
            target: format!(
                "no leak: the hub's heap in use (glibc mallinfo2) at the window's end ≤ its level + max({HEAP_MARGIN_MIN_MIB} MiB, {:.0} %), and back near the start once the clients left",
                HEAP_MARGIN * 100.0
            ),
            measured: format!(
                "level {:.1} MiB, peak {:.1}, end {:.1} (allowed {:.1}); slope {:+.2} MiB/min; {:.1} MiB before the clients, {:.1} after they left (allowed {:.1})",
                h.level_mib,
                h.peak_mib,
                h.end_mib,
                h.level_mib + margin,
                h.slope_mib_per_min,
                h.start_mib,
                h.after_clients_mib,
                h.start_mib + HEAP_MARGIN_MIN_MIB
            ),
            pass: timed(
                h.end_mib <= h.level_mib + margin
                    && h.after_clients_mib <= h.start_mib + HEAP_MARGIN_MIN_MIB,
            ),
        });
    }
    out.push(Check {
        target: "no panic in the hub (panic hook) and no internal-error close (1011)".into(),
        measured: format!(
            "{} panic(s), {} close(s) 1011",
            r.hub_panics,
            r.hub.closes.get("1011").copied().unwrap_or(0)
        ),
        pass: Some(r.hub_panics == 0 && !r.hub.closes.contains_key("1011")),
    });
    out.push(Check {
        target: format!(
            "no file-descriptor leak (hub fds after every client left ≤ at the start + {}), no connection left",
            r.fds.margin
        ),
        measured: format!(
            "{} → {} fds (most {}), {} connection(s), settled in {:.1} s",
            r.fds.start, r.fds.end, r.fds.max, r.connections_end, r.fds.settle_s
        ),
        pass: Some(r.fds.end <= r.fds.start + r.fds.margin && r.connections_end == 0),
    });
    let wrong: Vec<String> = r
        .misbehaving
        .iter()
        .filter(|(_, k)| k.judged && k.as_expected < k.attempts)
        .map(|(name, k)| format!("{name}: {:?}", k.outcomes))
        .collect();
    let missing: Vec<String> = misbehave::Kind::ALL
        .iter()
        .map(ToString::to_string)
        .filter(|k| !r.misbehaving.contains_key(k))
        .collect();
    let attempts: u64 = r.misbehaving.values().map(|k| k.attempts).sum();
    let judged_kinds = misbehave::Kind::ALL.len();
    out.push(Check {
        target: "every misbehaving client is dealt with as docs/protocol.md §4.1/§9 say (each kind's close code and reason, or kept open)".into(),
        measured: match (wrong.is_empty(), missing.is_empty()) {
            (true, true) => format!(
                "{attempts} attempts, all as expected; each of the {} judged kinds tried",
                judged_kinds
            ),
            (true, false) => format!("never tried: {}", missing.join(", ")),
            _ => wrong.join("; "),
        },
        pass: Some(wrong.is_empty() && missing.is_empty() && attempts > 0),
    });
    let na = &r.never_ack;
    out.push(Check {
        target: "never-ack viewers are closed by the hub (1008 idle; a viewer that does not read may be dropped)".into(),
        measured: format!(
            "{} sessions ({} not reading), {} as expected, {} otherwise: {:?}",
            na.sessions, na.stalled_sessions, na.as_expected, na.unexpected, na.outcomes
        ),
        pass: Some(na.unexpected == 0 && (r.never_ack_viewers == 0 || na.as_expected > 0)),
    });
    let c = &r.churn;
    out.push(Check {
        target:
            "churn viewers: every handshake completes and the hub never closes one that behaves"
                .into(),
        measured: format!(
            "{} sessions, {} handshakes, {} failures{}, {} ended by the hub{}",
            c.sessions,
            c.handshakes,
            c.failures,
            if c.failure_samples.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.failure_samples.join("; "))
            },
            c.ended_by_hub.values().sum::<u64>(),
            if c.ended_by_hub.is_empty() {
                String::new()
            } else {
                format!(" {:?}", c.ended_by_hub)
            },
        ),
        pass: Some(c.failures == 0 && c.ended_by_hub.is_empty()),
    });
    let short: Vec<String> = r
        .closes_seen
        .iter()
        .filter(|(code, n)| r.hub.closes.get(*code).copied().unwrap_or(0) < **n)
        .map(|(code, n)| {
            format!(
                "{code}: clients saw {n}, hub counted {}",
                r.hub.closes.get(code).copied().unwrap_or(0)
            )
        })
        .collect();
    out.push(Check {
        target: "the hub's /_/metrics counts every close the clients saw (per code)".into(),
        measured: if short.is_empty() {
            format!("hub {:?} ≥ seen {:?}", r.hub.closes, r.closes_seen)
        } else {
            short.join("; ")
        },
        pass: Some(short.is_empty()),
    });
    out.push(Check {
        target: "no panic in the client processes".into(),
        measured: format!("{}", r.client_panics),
        pass: Some(r.client_panics == 0),
    });
    out
}

/// The readable summary.
fn summary(r: &SoakReport) -> String {
    let mut t = String::new();
    let g = &r.good;
    let _ = writeln!(
        t,
        "Soak {} ({}): {}×{} JPEG q{} {} at {} fps; {} good + {} churn + {} never-ack + {} misbehaving; {} s of load ({} s warm-up); idle timeout {} s",
        r.date,
        if r.quick { "quick" } else { "full" },
        r.width,
        r.height,
        r.quality,
        r.picture,
        r.fps,
        r.good_viewers,
        r.churn_viewers,
        r.never_ack_viewers,
        r.misbehaving_clients,
        r.duration_s,
        r.warmup_s,
        r.idle_timeout_s,
    );
    let _ = writeln!(
        t,
        "Machine: {} CPU(s), {}; load average {} at the start, {} at the end\n",
        r.cpus, r.machine, r.loadavg_start, r.loadavg_end
    );
    let lat = |l: &LatencySummary| format!("{:.1} / {:.1} / {:.1}", l.p50_ms, l.p95_ms, l.p99_ms);
    let _ = writeln!(
        t,
        "| good viewers | baseline (alone) | window (under load) |"
    );
    let _ = writeln!(t, "|---|---|---|");
    let _ = writeln!(t, "| seconds | {:.0} | {:.0} |", g.baseline_s, g.window_s);
    let _ = writeln!(
        t,
        "| frames/s min / median | {:.1} / {:.1} | {:.1} / {:.1} |",
        g.baseline_fps_min, g.baseline_fps_median, g.window_fps_min, g.window_fps_median
    );
    let _ = writeln!(
        t,
        "| latency p50 / p95 / p99 ms | {} | {} |",
        lat(&g.latency_baseline),
        lat(&g.latency_window)
    );
    let _ = writeln!(
        t,
        "| published frames/s | {:.1} | {:.1} |",
        g.publish_fps_baseline, g.publish_fps_window
    );
    let _ = writeln!(
        t,
        "| hub CPU % (with publisher) | {:.0} | {:.0} |",
        r.hub_cpu_baseline_pct, r.hub_cpu_window_pct
    );
    let _ = writeln!(
        t,
        "| hub threads waiting for a CPU, % | {:.0} | {:.0} |",
        r.hub_cpu_wait_baseline_pct, r.hub_cpu_wait_window_pct
    );
    let _ = writeln!(
        t,
        "| good viewers' process CPU % (waiting %) | {:.0} ({:.0}) | {:.0} ({:.0}) |",
        g.client_cpu_baseline_pct,
        g.client_cpu_wait_baseline_pct,
        g.client_cpu_window_pct,
        g.client_cpu_wait_window_pct
    );
    let m = &r.memory;
    let _ = writeln!(
        t,
        "\nHub RSS (MiB): {:.1} before the clients; after warm-up level {:.1}, peak {:.1}{}, end {:.1}, slope {:+.2} MiB/min over {} samples; {:.1} after the clients left",
        m.start_mib,
        m.level_mib,
        m.peak_mib,
        m.peak_hwm_mib.map_or(String::new(), |p| format!(" (VmHWM {p:.1})")),
        m.end_mib,
        m.slope_mib_per_min,
        m.samples,
        m.after_clients_mib
    );
    let _ = writeln!(
        t,
        "Hub RSS after the allocator gave back its free pages (malloc_trim): {:.1} MiB",
        m.after_trim_mib
    );
    if let Some(h) = &m.heap {
        let _ = writeln!(
            t,
            "Hub heap in use (MiB, glibc mallinfo2): {:.1} before the clients; level {:.1}, peak {:.1}, end {:.1}, slope {:+.2} MiB/min; {:.1} after the clients left",
            h.start_mib, h.level_mib, h.peak_mib, h.end_mib, h.slope_mib_per_min, h.after_clients_mib
        );
    }
    let _ = writeln!(
        t,
        "Hub fds: {} at the start, {} at the end (most {}); connections at the end {}",
        r.fds.start, r.fds.end, r.fds.max, r.connections_end
    );
    let _ = writeln!(
        t,
        "Hub /_/metrics over the run: closes {:?}, refused {:?}, write failures {}; clients saw closes {:?}",
        r.hub.closes, r.hub.refused, r.hub.write_failures, r.closes_seen
    );
    let c = &r.churn;
    let _ = writeln!(
        t,
        "Frames: {:.1} KB each; the churn viewers took {:.0} frames/s in all over the load ({:.1} MB/s)",
        g.bytes_per_frame / 1e3,
        r.churn_fps,
        r.churn_fps * g.bytes_per_frame / 1e6
    );
    let _ = writeln!(
        t,
        "Churn: {} sessions ({} handshakes, handshake p50 / p99 {:.1} / {:.1} ms); left {} politely, {} abruptly, {} before hello, {} before config; {} frames; {} failures",
        c.sessions,
        c.handshakes,
        c.handshake_ms.p50_ms,
        c.handshake_ms.p99_ms,
        c.left_polite,
        c.left_abrupt,
        c.left_before_hello,
        c.left_before_config,
        c.frames,
        c.failures
    );
    let na = &r.never_ack;
    let _ = writeln!(
        t,
        "Never-ack: {} sessions ({} not reading), ended {:?}, reasons {:?}, {:.1} s on average ({:.1} max), {} frames received",
        na.sessions, na.stalled_sessions, na.outcomes, na.reasons, na.mean_session_s, na.max_session_s, na.frames
    );
    let _ = writeln!(
        t,
        "Load client: CPU {:.0} % of a core, its threads waiting for a CPU {:.0} %; steal over the window {:.1} %\n",
        r.load_client_cpu_pct, r.load_client_cpu_wait_pct, r.steal_window_pct
    );
    let _ = writeln!(
        t,
        "| misbehaving kind | expected | attempts | outcomes | reasons | time to outcome mean / max s | ok |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|");
    for (name, k) in &r.misbehaving {
        let outcomes = k
            .outcomes
            .iter()
            .map(|(o, n)| format!("{o} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let reasons = k.reasons.iter().cloned().collect::<Vec<_>>().join("; ");
        let ok = if !k.judged {
            "n/a".to_string()
        } else {
            format!("{}/{}", k.as_expected, k.attempts)
        };
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {outcomes} | {reasons} | {:.2} / {:.2} | {ok} |",
            k.expected,
            k.attempts,
            k.sum_s / k.attempts.max(1) as f64,
            k.max_s
        );
    }
    let _ = writeln!(t, "\nChecks:");
    for c in &r.checks {
        let verdict = match c.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a ",
        };
        let _ = writeln!(t, "  {verdict}  {} — measured {}", c.target, c.measured);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes() {
        assert_eq!(slope(&[]), 0.0);
        assert_eq!(slope(&[(0.0, 5.0)]), 0.0);
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 2.0 * i as f64 + 1.0)).collect();
        assert!((slope(&line) - 2.0).abs() < 1e-12);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 7.0)).collect();
        assert_eq!(slope(&flat), 0.0);
    }

    #[test]
    fn worst_window() {
        // Two viewers, one a second: 30 frames/s, except viewer 1 gets 10 in second 12.
        let mut ticks = Vec::new();
        let (mut a, mut b) = (0u64, 0u64);
        for t in 0..30 {
            a += 30;
            b += if t == 12 { 10 } else { 30 };
            ticks.push((t as f64, vec![a, b]));
        }
        let w = worst_window_fps(&ticks, 10.0).unwrap_or(0.0);
        assert!((w - 28.0).abs() < 1e-9, "{w}");
        assert_eq!(worst_window_fps(&ticks[..5], 10.0), None);
    }

    #[test]
    fn metrics_differences() {
        let a = HubMetrics {
            connections: 3,
            closes: [("1008".to_string(), 2)].into(),
            refused: BTreeMap::new(),
            write_failures: 1,
        };
        let b = HubMetrics {
            connections: 0,
            closes: [("1008".to_string(), 5), ("1009".to_string(), 1)].into(),
            refused: BTreeMap::new(),
            write_failures: 1,
        };
        let d = b.since(&a);
        assert_eq!(d.closes.get("1008"), Some(&3));
        assert_eq!(d.closes.get("1009"), Some(&1));
        assert_eq!(d.write_failures, 0);
    }
}
