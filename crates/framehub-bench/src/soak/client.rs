//! `framehub soak-client`: the soak test's clients, run as child processes
//! of `framehub soak` so that the hub's memory, file descriptors and panics
//! are its own.
//!
//! Two roles, each its own process:
//!
//! * **`good`**: the well-behaved viewers whose frame rate is the test's
//!   measure. Each says `hello` (`image/jpeg`) and acks every frame the
//!   moment it arrives, like a browser whose drawing takes no time. The
//!   orchestrator names the phase on stdin (`phase baseline`, `phase
//!   warmup`, `phase window`, `phase after`, then `stop`); every new picture
//!   is counted in the phase it arrives in, with its publish→receive
//!   latency. A `tick` line every second carries each viewer's running
//!   count of new pictures, for the frame rate second by second. They run
//!   apart from the load so that the load generator's own queueing never
//!   counts against the hub.
//! * **`load`**: everything else, until `stop` on stdin:
//!   [churn](churn_task) viewers that come and go at random, [never-ack](never_ack_task)
//!   viewers, and the misbehaving clients of [`super::misbehave`]. A
//!   `progress` line every 5 s; the `load` result at the end.
//!
//! Both print JSON lines on stdout ([`ClientLine`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use framehub::proto::envelope;
use futures_util::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::misbehave::{self, KindStats};
use crate::bench::hist::{Histogram, LatencySummary};
use crate::bench::procfs;

/// Which clients this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The well-behaved viewers that are measured.
    Good,
    /// Churn, never-ack and misbehaving clients.
    Load,
}

/// Options of the hidden `framehub soak-client` (set by `framehub soak`).
#[derive(clap::Args, Debug, Clone)]
pub struct SoakClientArgs {
    /// The hub's address, `HOST:PORT`.
    #[arg(long)]
    pub addr: String,
    /// The stream to view.
    #[arg(long, default_value = "soak")]
    pub stream: String,
    /// Which clients to run.
    #[arg(long, value_enum)]
    pub role: Role,
    /// Well-behaved viewers (role `good`).
    #[arg(long, default_value_t = 0)]
    pub good: usize,
    /// Viewers that connect and leave at random (role `load`).
    #[arg(long, default_value_t = 0)]
    pub churn: usize,
    /// Longest stay of a churn viewer, s (each stays uniformly 0.2 s to this).
    #[arg(long, default_value_t = 10.0)]
    pub churn_stay_max: f64,
    /// Viewers that never ack (role `load`); every 5th does not even read its socket.
    #[arg(long, default_value_t = 0)]
    pub never_ack: usize,
    /// Misbehaving clients (role `load`), each cycling through the kinds of `misbehave.rs`.
    #[arg(long, default_value_t = 0)]
    pub misbehaving: usize,
    /// The stream's idle timeout, s (when the hub closes a viewer that does not ack).
    #[arg(long, default_value_t = 30.0)]
    pub idle_timeout: f64,
    /// The hub's hello timeout, s.
    #[arg(long, default_value_t = 5.0)]
    pub hello_timeout: f64,
    /// How long the HTTP slow-loris client trickles its headers, s.
    #[arg(long, default_value_t = 40.0)]
    pub slowloris_hold: f64,
    /// Wall-clock time of the stream's creation, µs since the Unix epoch (for latencies).
    #[arg(long, default_value_t = 0)]
    pub created_unix_us: u64,
    /// Seed of the random choices (stays, leave modes, pauses, junk).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// One line of a soak client's stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "snake_case")]
pub enum ClientLine {
    /// Every good viewer has its `config`.
    Ready {
        /// Viewers connected.
        viewers: usize,
        /// Time to connect them all, s.
        connect_s: f64,
    },
    /// Once a second (good): new pictures received so far, per viewer.
    Tick {
        /// Seconds since the viewers were ready (this process's clock).
        t_s: f64,
        /// Running count of new pictures per viewer.
        frames: Vec<u64>,
    },
    /// Every 5 s (load): what is going on.
    Progress {
        /// Seconds since the load started.
        t_s: f64,
        /// Churn viewers past their handshake now.
        churn_open: u64,
        /// Churn sessions begun so far.
        churn_sessions: u64,
        /// Never-ack viewers connected now.
        never_ack_open: u64,
        /// Misbehaving attempts finished so far.
        misbehaving_attempts: u64,
    },
    /// The good viewers' result.
    Good(GoodResult),
    /// The load's result.
    Load(Box<LoadResult>),
    /// The client gave up.
    Error {
        /// Why.
        message: String,
    },
}

/// The phases a good viewer counts frames in (the orchestrator's `phase` lines).
pub const PHASES: [&str; 5] = ["connecting", "baseline", "warmup", "window", "after"];

/// What the good viewers saw in one phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    /// `baseline`, `warmup` or `window`.
    pub phase: String,
    /// Length of the phase on this process's clock, s.
    pub seconds: f64,
    /// New pictures per second of each viewer.
    pub fps: Vec<f64>,
    /// Publish→receive latency over every viewer's new pictures.
    pub latency: LatencySummary,
    /// Mean size of a frame message (envelope + JPEG), bytes.
    pub bytes_per_frame: f64,
    /// This process's CPU use over the phase, % of one core.
    pub cpu_pct: f64,
    /// Time this process's threads were ready to run but had no CPU, summed
    /// over its threads, % of the phase: how much the machine held it back.
    pub cpu_wait_pct: f64,
}

/// The good viewers' result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoodResult {
    /// Baseline, warm-up and window.
    pub phases: Vec<PhaseResult>,
    /// Viewers the hub closed or lost before `stop`, with why.
    pub ended_early: Vec<String>,
    /// Panics in this process.
    pub panics: u64,
}

/// What the churn viewers did and saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChurnStats {
    /// Sessions begun (connection attempts).
    pub sessions: u64,
    /// Handshakes completed (`config` received).
    pub handshakes: u64,
    /// Connections or handshakes that failed (not deliberate).
    pub failures: u64,
    /// The first few failures.
    pub failure_samples: Vec<String>,
    /// Left with a close frame, waiting for the hub's reply.
    pub left_polite: u64,
    /// Left by dropping the TCP connection, no close frame.
    pub left_abrupt: u64,
    /// Dropped the connection after the upgrade, before `hello`.
    pub left_before_hello: u64,
    /// Dropped the connection right after `hello`, before `config`.
    pub left_before_config: u64,
    /// Sessions the hub ended while the viewer stayed (should be none), by outcome.
    pub ended_by_hub: BTreeMap<String, u64>,
    /// Frames received.
    pub frames: u64,
    /// Time from connecting to `config`, ms.
    pub handshake_ms: LatencySummary,
}

/// What the never-ack viewers saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NeverAckStats {
    /// Sessions (handshakes completed).
    pub sessions: u64,
    /// Of those, by viewers that do not read their socket either.
    pub stalled_sessions: u64,
    /// Connections or handshakes that failed.
    pub failures: u64,
    /// How the sessions ended (`close 1008`, `eof`, …); sessions cut by `stop` are left out.
    pub outcomes: BTreeMap<String, u64>,
    /// Close reasons seen (a few).
    pub reasons: BTreeSet<String>,
    /// Sessions that ended as expected: closed by the hub with 1008 `idle`
    /// (or, for a viewer that does not read, dropped by the hub).
    pub as_expected: u64,
    /// Sessions that ended otherwise (or not at all within the limit).
    pub unexpected: u64,
    /// Frames received (never acked).
    pub frames: u64,
    /// Longest time from `config` to the hub's close, s.
    pub max_session_s: f64,
    /// Mean time from `config` to the hub's close, s.
    pub mean_session_s: f64,
}

/// The load's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    /// How long the load ran, s.
    pub seconds: f64,
    /// Churn viewers, all together.
    pub churn: ChurnStats,
    /// Never-ack viewers, all together.
    pub never_ack: NeverAckStats,
    /// Misbehaving attempts, by kind.
    pub misbehaving: BTreeMap<String, KindStats>,
    /// Panics in this process.
    pub panics: u64,
    /// This process's CPU use over the run, % of one core.
    pub cpu_pct: f64,
    /// Its threads' time ready to run without a CPU, summed, % of the run.
    pub cpu_wait_pct: f64,
}

/// Prints one line to stdout and flushes it.
pub(crate) fn emit(line: &ClientLine) {
    let text = serde_json::to_string(line).unwrap_or_else(|e| {
        format!("{{\"line\":\"error\",\"message\":\"cannot serialise a line: {e}\"}}")
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// This process's CPU time and its threads' summed run-queue wait, s.
pub(crate) fn cpu_and_wait() -> (f64, f64) {
    let cpu = procfs::process_cpu_s().unwrap_or(0.0);
    let wait = procfs::thread_times()
        .map(|t| t.values().map(|x| x.wait_s).sum())
        .unwrap_or(0.0);
    (cpu, wait)
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Runs the soak client; on failure prints an `error` line before returning the error.
pub async fn run_client(args: SoakClientArgs) -> anyhow::Result<()> {
    super::install_panic_counter();
    let result = match args.role {
        Role::Good => good_main(args).await,
        Role::Load => load_main(args).await,
    };
    if let Err(e) = &result {
        emit(&ClientLine::Error {
            message: format!("{e:#}"),
        });
    }
    result
}

/// Lines from stdin, read by a plain thread (a pending tokio stdin read
/// would hold up the runtime's shutdown). The channel closes at EOF.
fn stdin_lines() -> anyhow::Result<mpsc::Receiver<String>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::Builder::new()
        .name("stdin-lines".into())
        .spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match std::io::stdin().read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.blocking_send(line.trim().to_string()).is_err() {
                            break;
                        }
                    }
                }
            }
        })
        .context("starting the stdin thread")?;
    Ok(rx)
}

// ───────────────────────────── WebSocket helpers ─────────────────────────────

/// A client WebSocket.
pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A browser's `hello`, JPEG only.
pub(crate) const HELLO: &str =
    r#"{"type":"hello","supported":["image/jpeg"],"device_pixel_ratio":1.0}"#;

/// The ack of frame `seq`, as a browser sends it once the frame is drawn.
pub(crate) fn ack_message(seq: u64) -> Message {
    Message::Text(
        format!(r#"{{"type":"ack","seq":{seq},"decode_queue_size":0,"displayed":true}}"#).into(),
    )
}

/// Opens a WebSocket to `url`, without Nagle (an ack must leave at once).
pub(crate) async fn open(url: &str) -> anyhow::Result<Ws> {
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

/// Why a handshake did not end with `config`.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The hub closed with this code and reason.
    Closed(u16, String),
    /// Anything else.
    Other(anyhow::Error),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Closed(code, reason) => write!(f, "closed {code} {reason:?}"),
            HandshakeError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

/// Sends `hello` and waits for `config`. Returns the session id it names.
pub(crate) async fn handshake(ws: &mut Ws, hello: &str) -> Result<Option<u64>, HandshakeError> {
    ws.send(Message::Text(hello.into()))
        .await
        .map_err(|e| HandshakeError::Other(anyhow!(e).context("sending hello")))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str())
                    .map_err(|e| HandshakeError::Other(anyhow!(e).context("bad JSON")))?;
                if v["type"] == "config" {
                    return Ok(v["session"].as_u64());
                }
            }
            Some(Ok(Message::Close(f))) => {
                let (code, reason) = f.map_or((1005, String::new()), |f| {
                    (f.code.into(), f.reason.to_string())
                });
                return Err(HandshakeError::Closed(code, reason));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(HandshakeError::Other(anyhow!(e).context("handshake"))),
            None => {
                return Err(HandshakeError::Other(anyhow!(
                    "connection ended during handshake"
                )))
            }
        }
    }
}

/// Opens `url` and completes the handshake within `limit`.
pub(crate) async fn connect_viewer(
    url: &str,
    limit: Duration,
) -> Result<(Ws, Option<u64>), HandshakeError> {
    tokio::time::timeout(limit, async {
        let mut ws = open(url).await.map_err(HandshakeError::Other)?;
        let session = handshake(&mut ws, HELLO).await?;
        Ok((ws, session))
    })
    .await
    .unwrap_or_else(|_| Err(HandshakeError::Other(anyhow!("no config within {limit:?}"))))
}

/// The seq and timestamp of a media message (None when it is not a valid envelope).
pub(crate) fn frame_of(msg: &[u8]) -> Option<(u64, u64)> {
    envelope::parse(msg)
        .ok()
        .map(|(h, _)| (h.seq(), h.timestamp_us()))
}

/// A short label for how a socket ended: `close CODE`, `eof`, `reset` or `error: …`.
pub(crate) fn end_label(
    msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> (String, Option<String>) {
    match msg {
        Some(Ok(Message::Close(Some(f)))) => (
            format!("close {}", u16::from(f.code)),
            Some(f.reason.to_string()),
        ),
        Some(Ok(Message::Close(None))) => ("close 1005".into(), None),
        Some(Ok(_)) => ("message".into(), None),
        None => ("eof".into(), None),
        Some(Err(e)) => (error_label(&e), None),
    }
}

/// `reset` for a connection reset, `eof` for a closed connection, else `error: …`.
pub(crate) fn error_label(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => "eof".into(),
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset => "reset".into(),
        E::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => "reset".into(),
        E::Protocol(p) if p.to_string().contains("closing handshake") => "eof".into(),
        other => {
            let mut s = format!("error: {other}");
            s.truncate(80);
            s
        }
    }
}

/// Closes politely and waits (bounded) for the hub's reply.
pub(crate) async fn close_politely(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Sleeps `d`, or less if `stop` turns true. Returns whether it was stopped.
pub(crate) async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stopped(stop) => return true,
    }
    *stop.borrow()
}

/// Waits until `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

// ───────────────────────────── good viewers ─────────────────────────────

/// What one good viewer hands back at `stop`.
struct GoodReport {
    frames: [u64; PHASES.len()],
    bytes: [u64; PHASES.len()],
    hist: Vec<Histogram>,
    ended_early: Option<String>,
}

async fn good_main(args: SoakClientArgs) -> anyhow::Result<()> {
    let n = args.good;
    if n == 0 {
        bail!("--good must be at least 1");
    }
    let url = format!("ws://{}/{}", args.addr, args.stream);
    let phase = Arc::new(AtomicU8::new(0));
    let totals: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(n);
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for total in &totals {
        tasks.push(tokio::spawn(good_viewer(
            url.clone(),
            args.created_unix_us,
            Arc::clone(&phase),
            Arc::clone(total),
            ready_tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(ready_tx);
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(30), ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => bail!("a good viewer could not connect: {e}"),
            Ok(None) => bail!("good viewers ended before connecting"),
            Err(_) => bail!("good viewers not connected within 30 s"),
        }
    }
    let ready_at = Instant::now();
    emit(&ClientLine::Ready {
        viewers: n,
        connect_s: (ready_at - start).as_secs_f64(),
    });

    let mut lines = stdin_lines()?;
    let mut started = [None::<(Instant, (f64, f64))>; PHASES.len()];
    let mut ended = [None::<(Instant, (f64, f64))>; PHASES.len()];
    started[0] = Some((start, cpu_and_wait()));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => emit(&ClientLine::Tick {
                t_s: ready_at.elapsed().as_secs_f64(),
                frames: totals.iter().map(|t| t.load(Ordering::Relaxed)).collect(),
            }),
            line = lines.recv() => {
                let Some(line) = line else { break };
                if line == "stop" {
                    break;
                }
                let Some(name) = line.strip_prefix("phase ") else { continue };
                let Some(p) = PHASES.iter().position(|&x| x == name) else { continue };
                let now = (Instant::now(), cpu_and_wait());
                let old = usize::from(phase.swap(p as u8, Ordering::Relaxed));
                ended[old] = Some(now);
                started[p] = Some(now);
            }
        }
    }
    let last = usize::from(phase.load(Ordering::Relaxed));
    ended[last] = Some((Instant::now(), cpu_and_wait()));
    stop_tx.send_replace(true);
    let mut reports = Vec::with_capacity(n);
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(5), t).await {
            Ok(Ok(r)) => reports.push(r),
            Ok(Err(e)) => bail!("a good viewer failed: {e}"),
            Err(_) => bail!("a good viewer did not stop within 5 s"),
        }
    }
    let mut phases = Vec::new();
    for (p, name) in PHASES.iter().enumerate().skip(1).take(3) {
        let (seconds, cpu_s, wait_s) = match (started[p], ended[p]) {
            (Some(a), Some(b)) => ((b.0 - a.0).as_secs_f64(), b.1 .0 - a.1 .0, b.1 .1 - a.1 .1),
            _ => (0.0, 0.0, 0.0),
        };
        let pct = |x: f64| {
            if seconds > 0.0 {
                x / seconds * 100.0
            } else {
                0.0
            }
        };
        let mut hist = Histogram::default();
        let fps = reports
            .iter()
            .map(|r| {
                hist.merge(&r.hist[p]);
                if seconds > 0.0 {
                    r.frames[p] as f64 / seconds
                } else {
                    0.0
                }
            })
            .collect();
        phases.push(PhaseResult {
            phase: (*name).to_string(),
            seconds,
            fps,
            latency: hist.summary(),
            bytes_per_frame: {
                let (n, b) = reports
                    .iter()
                    .fold((0, 0), |(n, b), r| (n + r.frames[p], b + r.bytes[p]));
                if n > 0 {
                    b as f64 / n as f64
                } else {
                    0.0
                }
            },
            cpu_pct: pct(cpu_s),
            cpu_wait_pct: pct(wait_s),
        });
    }
    let ended_early = reports
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.ended_early.as_ref().map(|e| format!("viewer {i}: {e}")))
        .collect();
    emit(&ClientLine::Good(GoodResult {
        phases,
        ended_early,
        panics: super::panics(),
    }));
    Ok(())
}

/// One good viewer: connect, ack every frame at once, count new pictures by phase.
async fn good_viewer(
    url: String,
    created_unix_us: u64,
    phase: Arc<AtomicU8>,
    total: Arc<AtomicU64>,
    ready: mpsc::Sender<Result<(), String>>,
    mut stop: watch::Receiver<bool>,
) -> GoodReport {
    let mut rep = GoodReport {
        frames: [0; PHASES.len()],
        bytes: [0; PHASES.len()],
        hist: vec![Histogram::default(); PHASES.len()],
        ended_early: None,
    };
    let mut ws = match connect_viewer(&url, Duration::from_secs(20)).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            let _ = ready.send(Err(e.to_string())).await;
            rep.ended_early = Some(format!("could not connect: {e}"));
            return rep;
        }
    };
    let _ = ready.send(Ok(())).await;
    drop(ready);
    let mut last_ts = None;
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => {
                close_politely(ws).await;
                return rep;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let Some((seq, ts)) = frame_of(&b) else {
                        rep.ended_early = Some("bad envelope".into());
                        break;
                    };
                    if last_ts != Some(ts) {
                        last_ts = Some(ts);
                        let p = usize::from(phase.load(Ordering::Relaxed)).min(PHASES.len() - 1);
                        rep.frames[p] += 1;
                        rep.bytes[p] += b.len() as u64;
                        let published = created_unix_us.saturating_add(ts);
                        rep.hist[p].record(now_unix_us().saturating_sub(published));
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Err(e) = ws.send(ack_message(seq)).await {
                        rep.ended_early = Some(format!("sending an ack: {}", error_label(&e)));
                        break;
                    }
                }
                Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                other => {
                    let (label, reason) = end_label(other);
                    rep.ended_early = Some(match reason {
                        Some(r) => format!("{label} {r:?}"),
                        None => label,
                    });
                    break;
                }
            },
        }
    }
    rep
}

// ───────────────────────────── load ─────────────────────────────

/// Counts the orchestrator's progress lines read.
#[derive(Default)]
struct Live {
    churn_open: AtomicU64,
    churn_sessions: AtomicU64,
    never_ack_open: AtomicU64,
    misbehaving_attempts: AtomicU64,
}

/// Settings every load task shares.
#[derive(Clone)]
pub(crate) struct LoadCtx {
    pub(crate) addr: String,
    pub(crate) url: String,
    pub(crate) args: SoakClientArgs,
}

async fn load_main(args: SoakClientArgs) -> anyhow::Result<()> {
    let url = format!("ws://{}/{}", args.addr, args.stream);
    let ctx = LoadCtx {
        addr: args.addr.clone(),
        url,
        args: args.clone(),
    };
    let live = Arc::new(Live::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let (cpu0, wait0) = cpu_and_wait();
    let mut seeds = SmallRng::seed_from_u64(args.seed);
    // Spread the first connections over a few seconds rather than one burst of SYNs.
    let stagger = Duration::from_secs_f64(args.churn_stay_max.clamp(0.5, 2.0));
    let churn: Vec<_> = (0..args.churn)
        .map(|_| {
            let rng = SmallRng::seed_from_u64(seeds.random());
            tokio::spawn(churn_task(
                ctx.clone(),
                rng,
                stagger,
                Arc::clone(&live),
                stop_rx.clone(),
            ))
        })
        .collect();
    let never: Vec<_> = (0..args.never_ack)
        .map(|i| {
            let rng = SmallRng::seed_from_u64(seeds.random());
            tokio::spawn(never_ack_task(
                ctx.clone(),
                i % 5 == 4,
                rng,
                stagger,
                Arc::clone(&live),
                stop_rx.clone(),
            ))
        })
        .collect();
    let bad: Vec<_> = (0..args.misbehaving)
        .map(|i| {
            let rng = SmallRng::seed_from_u64(seeds.random());
            let live = Arc::clone(&live);
            tokio::spawn(misbehave::client_task(
                ctx.clone(),
                i,
                rng,
                stop_rx.clone(),
                move || {
                    live.misbehaving_attempts.fetch_add(1, Ordering::Relaxed);
                },
            ))
        })
        .collect();

    let mut lines = stdin_lines()?;
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    progress.tick().await;
    loop {
        tokio::select! {
            _ = progress.tick() => emit(&ClientLine::Progress {
                t_s: start.elapsed().as_secs_f64(),
                churn_open: live.churn_open.load(Ordering::Relaxed),
                churn_sessions: live.churn_sessions.load(Ordering::Relaxed),
                never_ack_open: live.never_ack_open.load(Ordering::Relaxed),
                misbehaving_attempts: live.misbehaving_attempts.load(Ordering::Relaxed),
            }),
            line = lines.recv() => match line.as_deref() {
                None | Some("stop") => break,
                Some(_) => {}
            },
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let (cpu1, wait1) = cpu_and_wait();
    stop_tx.send_replace(true);
    // Every wait inside the tasks is cut by `stop`; a polite close takes ≤ 2 s.
    let join_by = Instant::now() + Duration::from_secs(20);
    let mut churn_all = ChurnStats::default();
    let mut hs = Histogram::default();
    for t in churn {
        let (s, h) = tokio::time::timeout_at(join_by.into(), t)
            .await
            .context("churn viewers did not stop within 20 s")???;
        merge_churn(&mut churn_all, s);
        hs.merge(&h);
    }
    churn_all.handshake_ms = hs.summary();
    let mut never_all = NeverAckStats::default();
    let (mut total_s, mut closed) = (0.0, 0u64);
    for t in never {
        let (s, secs, n) = tokio::time::timeout_at(join_by.into(), t)
            .await
            .context("never-ack viewers did not stop within 20 s")???;
        total_s += secs;
        closed += n;
        merge_never(&mut never_all, s);
    }
    if closed > 0 {
        never_all.mean_session_s = total_s / closed as f64;
    }
    let mut kinds: BTreeMap<String, KindStats> = BTreeMap::new();
    for t in bad {
        let per = tokio::time::timeout_at(join_by.into(), t)
            .await
            .context("misbehaving clients did not stop within 20 s")???;
        for (k, s) in per {
            kinds.entry(k.to_string()).or_default().merge(s);
        }
    }
    emit(&ClientLine::Load(Box::new(LoadResult {
        seconds,
        churn: churn_all,
        never_ack: never_all,
        misbehaving: kinds,
        panics: super::panics(),
        cpu_pct: (cpu1 - cpu0) / seconds.max(1e-9) * 100.0,
        cpu_wait_pct: (wait1 - wait0) / seconds.max(1e-9) * 100.0,
    })));
    Ok(())
}

fn merge_churn(a: &mut ChurnStats, b: ChurnStats) {
    a.sessions += b.sessions;
    a.handshakes += b.handshakes;
    a.failures += b.failures;
    for s in b.failure_samples {
        if a.failure_samples.len() < 5 {
            a.failure_samples.push(s);
        }
    }
    a.left_polite += b.left_polite;
    a.left_abrupt += b.left_abrupt;
    a.left_before_hello += b.left_before_hello;
    a.left_before_config += b.left_before_config;
    for (k, v) in b.ended_by_hub {
        *a.ended_by_hub.entry(k).or_insert(0) += v;
    }
    a.frames += b.frames;
}

fn merge_never(a: &mut NeverAckStats, b: NeverAckStats) {
    a.sessions += b.sessions;
    a.stalled_sessions += b.stalled_sessions;
    a.failures += b.failures;
    for (k, v) in b.outcomes {
        *a.outcomes.entry(k).or_insert(0) += v;
    }
    for r in b.reasons {
        if a.reasons.len() < 4 {
            a.reasons.insert(r);
        }
    }
    a.as_expected += b.as_expected;
    a.unexpected += b.unexpected;
    a.frames += b.frames;
    a.max_session_s = a.max_session_s.max(b.max_session_s);
}

/// Adds a failure to `stats` (keeping the first few texts).
fn churn_failure(stats: &mut ChurnStats, what: String) {
    stats.failures += 1;
    if stats.failure_samples.len() < 5 {
        stats.failure_samples.push(what);
    }
}

/// How a churn viewer leaves.
#[derive(Debug, Clone, Copy)]
enum Leave {
    Polite,
    Abrupt,
    BeforeHello,
    BeforeConfig,
}

/// One churn viewer, over and over until `stop`: connect, stay a random
/// 0.2 s to `--churn-stay-max` acking every frame like a browser, leave
/// (60 % close frame, 25 % dropped TCP connection, 10 % drop before
/// `hello`, 5 % drop right after `hello`), pause up to 0.5 s.
async fn churn_task(
    ctx: LoadCtx,
    mut rng: SmallRng,
    stagger: Duration,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(ChurnStats, Histogram)> {
    let mut stats = ChurnStats::default();
    let mut hs = Histogram::default();
    let first = stagger.mul_f64(rng.random::<f64>());
    if sleep_or_stop(first, &mut stop).await {
        return Ok((stats, hs));
    }
    let stay_max = ctx.args.churn_stay_max.max(0.3);
    loop {
        let leave = match rng.random_range(0..100) {
            0..60 => Leave::Polite,
            60..85 => Leave::Abrupt,
            85..95 => Leave::BeforeHello,
            _ => Leave::BeforeConfig,
        };
        stats.sessions += 1;
        live.churn_sessions.fetch_add(1, Ordering::Relaxed);
        match leave {
            Leave::BeforeHello | Leave::BeforeConfig => {
                match tokio::time::timeout(Duration::from_secs(15), open(&ctx.url)).await {
                    Ok(Ok(mut ws)) => {
                        if matches!(leave, Leave::BeforeConfig) {
                            let _ = ws.send(Message::Text(HELLO.into())).await;
                            stats.left_before_config += 1;
                        } else {
                            stats.left_before_hello += 1;
                        }
                        drop(ws);
                    }
                    Ok(Err(e)) => churn_failure(&mut stats, format!("{e:#}")),
                    Err(_) => churn_failure(&mut stats, "no upgrade within 15 s".into()),
                }
            }
            Leave::Polite | Leave::Abrupt => {
                let t0 = Instant::now();
                match connect_viewer(&ctx.url, Duration::from_secs(15)).await {
                    Err(e) => churn_failure(&mut stats, e.to_string()),
                    Ok((mut ws, _)) => {
                        hs.record(t0.elapsed().as_micros() as u64);
                        stats.handshakes += 1;
                        live.churn_open.fetch_add(1, Ordering::Relaxed);
                        let stay = Duration::from_secs_f64(rng.random_range(0.2..stay_max));
                        let until = tokio::time::Instant::now() + stay;
                        let mut ended = None;
                        loop {
                            tokio::select! {
                                _ = tokio::time::sleep_until(until) => break,
                                _ = stopped(&mut stop) => break,
                                msg = ws.next() => match msg {
                                    Some(Ok(Message::Binary(b))) => {
                                        stats.frames += 1;
                                        let Some((seq, _)) = frame_of(&b) else {
                                            ended = Some("bad envelope".to_string());
                                            break;
                                        };
                                        if let Err(e) = ws.send(ack_message(seq)).await {
                                            ended = Some(error_label(&e));
                                            break;
                                        }
                                    }
                                    Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                                    other => {
                                        ended = Some(end_label(other).0);
                                        break;
                                    }
                                },
                            }
                        }
                        live.churn_open.fetch_sub(1, Ordering::Relaxed);
                        if let Some(e) = ended {
                            *stats.ended_by_hub.entry(e).or_insert(0) += 1;
                        } else if matches!(leave, Leave::Abrupt) && !*stop.borrow() {
                            stats.left_abrupt += 1;
                            drop(ws);
                        } else {
                            stats.left_polite += 1;
                            close_politely(ws).await;
                        }
                    }
                }
            }
        }
        let pause = Duration::from_millis(rng.random_range(0..500));
        if sleep_or_stop(pause, &mut stop).await {
            return Ok((stats, hs));
        }
    }
}

/// One never-ack viewer, over and over until `stop`: connect, then read
/// frames and never ack (or, when `stalled`, not even read the socket
/// until the hub must have given up on it, then read what is there),
/// until the hub closes it; pause up to 1 s. Returns its stats, the
/// summed length of the sessions the hub ended, and how many those were.
async fn never_ack_task(
    ctx: LoadCtx,
    stalled: bool,
    mut rng: SmallRng,
    stagger: Duration,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(NeverAckStats, f64, u64)> {
    let mut stats = NeverAckStats::default();
    let (mut total_s, mut closed) = (0.0, 0u64);
    let idle = Duration::from_secs_f64(ctx.args.idle_timeout.max(0.1));
    // The hub closes an idle viewer `idle` after its last frame was sent
    // unacked; allow its write timeout (10 s) on top, and some slack.
    let limit = idle * 2 + Duration::from_secs(15);
    if sleep_or_stop(stagger.mul_f64(rng.random::<f64>()), &mut stop).await {
        return Ok((stats, total_s, closed));
    }
    loop {
        let (mut ws, _) = match connect_viewer(&ctx.url, Duration::from_secs(15)).await {
            Ok(c) => c,
            Err(e) => {
                stats.failures += 1;
                stats.reasons.insert(format!("connect: {e}"));
                if sleep_or_stop(Duration::from_secs(1), &mut stop).await {
                    return Ok((stats, total_s, closed));
                }
                continue;
            }
        };
        stats.sessions += 1;
        stats.stalled_sessions += u64::from(stalled);
        live.never_ack_open.fetch_add(1, Ordering::Relaxed);
        let t0 = Instant::now();
        if stalled {
            // Read nothing until well past the idle timeout.
            let wait = idle.mul_f64(1.5) + Duration::from_secs(2);
            if sleep_or_stop(wait, &mut stop).await {
                live.never_ack_open.fetch_sub(1, Ordering::Relaxed);
                close_politely(ws).await;
                return Ok((stats, total_s, closed));
            }
        }
        let deadline = tokio::time::Instant::from_std(t0 + limit);
        let mut outcome: Option<(String, Option<String>)> = None;
        let mut cut = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = stopped(&mut stop) => { cut = true; break }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(_))) => stats.frames += 1,
                    Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    other => { outcome = Some(end_label(other)); break }
                },
            }
        }
        live.never_ack_open.fetch_sub(1, Ordering::Relaxed);
        if cut {
            close_politely(ws).await;
            return Ok((stats, total_s, closed));
        }
        let secs = t0.elapsed().as_secs_f64();
        match outcome {
            Some((label, reason)) => {
                let idle_close =
                    label == "close 1008" && reason.as_deref().is_some_and(|r| r.contains("idle"));
                let dropped = stalled && (label == "eof" || label == "reset");
                if idle_close || dropped {
                    stats.as_expected += 1;
                } else {
                    stats.unexpected += 1;
                }
                if let Some(r) = reason {
                    if stats.reasons.len() < 4 {
                        stats.reasons.insert(super::misbehave::without_numbers(&r));
                    }
                }
                *stats.outcomes.entry(label).or_insert(0) += 1;
                stats.max_session_s = stats.max_session_s.max(secs);
                total_s += secs;
                closed += 1;
            }
            None => {
                stats.unexpected += 1;
                *stats
                    .outcomes
                    .entry(format!("still open after {:.0} s", limit.as_secs_f64()))
                    .or_insert(0) += 1;
                close_politely(ws).await;
            }
        }
        let pause = Duration::from_millis(rng.random_range(0..1000));
        if sleep_or_stop(pause, &mut stop).await {
            return Ok((stats, total_s, closed));
        }
    }
}
