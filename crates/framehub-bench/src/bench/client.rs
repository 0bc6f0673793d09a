//! `framehub bench-client`: the benchmark's load generator, run as its own
//! process by `framehub bench` so the hub's CPU and memory are measured alone.
//!
//! It opens `--viewers` WebSockets to each stream of `--stream` (one tokio
//! task each, all on this process's runtime), says `hello` listing only the format of
//! `--transport` (`image/jpeg`, `image/png` or `webcodecs/h264-annexb`),
//! checks that `config` negotiated it, and acks every frame as soon as it
//! arrives; the last `--slow` viewers instead ack `--ack-delay-ms` later,
//! like a viewer on a slow link. Once every viewer has its `config`, it
//! waits `--warmup` seconds and then measures for `--duration` seconds:
//! frames, bytes, keyframes and publish→receive latency of frames that
//! arrive inside that window.
//!
//! **Video.** A browser acks a `video_chunk` once WebCodecs has decoded it.
//! This client does not decode: it acks the moment the chunk is parsed, as
//! a browser whose decode took no time would (`decode_queue_size` 0,
//! `displayed` true). So the hub's figures are its own, undelayed by a
//! decoder, and the decode's CPU does not land on the hub's 2 cores. It
//! does check each access unit against its header ([`check_access_unit`]):
//! a keyframe must carry SPS, PPS and an IDR slice, a delta a non-IDR slice,
//! and a viewer's first chunk must be a keyframe.
//!
//! Latency of a frame = receive time (`SystemTime`, µs since the Unix epoch)
//! − (`--created-unix-us` + the frame header's `timestamp_us`). The hub
//! stamps `timestamp_us` from the stream's creation `Instant`; the
//! orchestrator passes a wall-clock time no later than the stream's
//! creation, the latest it could establish (`epoch.rs`), so every latency
//! is overstated by at most the uncertainty of that time, which the
//! orchestrator reports, and never understated. Both processes read the same system clock, so there is no
//! skew between them.
//!
//! Talks to the orchestrator in JSON lines on stdout ([`ClientLine`]):
//! `ready` (all connected), `start` and `end` (the window's edges, printed
//! the moment they pass), `result`, or `error`. Then it waits for a line (or
//! EOF) on stdin, closes every socket and exits.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use framehub::proto::envelope::{self, FrameHeader};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::hist::{Histogram, LatencySummary};
use super::procfs;
use super::Transport;

mod rtc;

/// Options of the hidden `framehub bench-client` (set by `framehub bench`).
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// The hub's address, `HOST:PORT`.
    #[arg(long)]
    pub addr: String,
    /// The stream(s) to view, comma-separated; each gets `--viewers` viewers.
    /// A name may be repeated with another `--stream-addr` (the same stream
    /// on another hub).
    #[arg(long, value_delimiter = ',', default_value = "bench")]
    pub stream: Vec<String>,
    /// The hub of each entry of `--stream`, comma-separated `HOST:PORT`
    /// [default: `--addr` for all].
    #[arg(long, value_delimiter = ',')]
    pub stream_addr: Vec<String>,
    /// Viewers of each entry of `--stream`, comma-separated [default:
    /// `--viewers` for all].
    #[arg(long, value_delimiter = ',')]
    pub stream_viewers: Vec<usize>,
    /// What the viewers ask for in their `hello` (only that).
    #[arg(long, value_enum, default_value_t = Transport::Jpeg)]
    pub transport: Transport,
    /// Number of viewers (WebSockets) per stream.
    #[arg(long, default_value_t = 1)]
    pub viewers: usize,
    /// Also list `framehub/patch` in `hello`, as the browser client does:
    /// image viewers may then get region updates (`image_patch`).
    #[arg(long)]
    pub patch: bool,
    /// Every viewer says `visibility: false` right after its handshake, as
    /// a browser tab in the background does: the hub sends it nothing.
    #[arg(long)]
    pub hidden: bool,
    /// How many of each stream's viewers (the last ones) ack late.
    #[arg(long, default_value_t = 0)]
    pub slow: usize,
    /// How late the slow viewers ack, ms.
    #[arg(long, default_value_t = 0)]
    pub ack_delay_ms: u64,
    /// The slow viewers' link, kbit/s (0: no limit): each frame's ack waits
    /// until the frame would have crossed a link of this bandwidth, frames
    /// queueing behind each other, then `--ack-delay-ms` more. Frames are
    /// still read at once (their latency is not the link's).
    #[arg(long, default_value_t = 0)]
    pub slow_kbps: u64,
    /// Length of the measurement window, s.
    #[arg(long)]
    pub duration: f64,
    /// Time between all viewers connected and the window's start, s.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Wall-clock time of each stream's creation, µs since the Unix epoch,
    /// comma-separated in the order of `--stream`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub created_unix_us: Vec<u64>,
    /// Also measure, per entry of `--stream`, the latency of the first
    /// viewer to receive each picture (each viewer keeps every sample of
    /// the window: 16 bytes a frame).
    #[arg(long)]
    pub first_latency: bool,
}

/// One line of the client's stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum ClientLine {
    /// Every viewer completed its handshake.
    Ready {
        /// Viewers connected.
        viewers: usize,
        /// Time to connect all of them, s.
        connect_s: f64,
    },
    /// The measurement window starts now.
    Start,
    /// The measurement window ended now.
    End,
    /// What was measured.
    Result(Box<ClientResult>),
    /// The client gave up.
    Error {
        /// Why.
        message: String,
    },
}

/// What one viewer measured inside the window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewerResult {
    /// Index of the viewer, from 0 (over all streams).
    pub id: usize,
    /// Index of its stream in `--stream`.
    pub stream: usize,
    /// Whether it acked late.
    pub slow: bool,
    /// Frame messages received (`image_frame` or `video_chunk`).
    pub frames: u64,
    /// Of those, repeats: a message with the same `timestamp_us` as the one
    /// before it, so the same picture again (a keyframe the hub forced by
    /// re-encoding a frame this viewer already had, or a lossless still).
    pub repeats: u64,
    /// Bytes of the binary messages received (envelope header + image or access unit).
    pub bytes: u64,
    /// Of the frame messages, region updates (`image_patch`; with `--patch`).
    #[serde(default)]
    pub patches: u64,
    /// Video: how many of those frames were keyframes.
    pub keyframes: u64,
    /// Video: bytes of the keyframe messages among `bytes`.
    pub keyframe_bytes: u64,
    /// Video: access units that contradict their header, or deltas before
    /// the first keyframe, from the handshake to the window's end.
    pub bitstream_errors: u64,
    /// Video: the `codec` of the viewer's `config`.
    pub codec: Option<String>,
    /// New pictures per second: frame messages less repeats.
    pub fps: f64,
    /// Its publish→receive latency (new pictures only: a repeat's publish
    /// time is that of the picture it repeats).
    pub latency: LatencySummary,
    /// Why it stopped before it was told to, if it did.
    pub ended_early: Option<String>,
    /// The hub's id for this viewer (`config.session`), to match its metrics.
    pub session: Option<u64>,
}

/// The client's measurements, printed as the `result` line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientResult {
    /// Length of the window, s.
    pub window_s: f64,
    /// One entry per viewer.
    pub viewers: Vec<ViewerResult>,
    /// Latency over every frame of the viewers that ack at once.
    pub latency_fast: LatencySummary,
    /// Latency over every frame of the slow viewers (empty without any).
    pub latency_slow: LatencySummary,
    /// Frames whose computed latency was negative (clock step; counted as 0).
    pub negative_latency_samples: u64,
    /// The client process's own CPU use over the window, % of one core.
    pub client_cpu_pct: f64,
    /// The CDF of `latency_fast`: `[latency ms, fraction ≤ it]` ([`Histogram::cdf`]).
    pub latency_cdf: Vec<[f64; 2]>,
    /// Latency over every frame of the viewers that ack at once, per entry
    /// of `--stream` (the same stream on several hubs: told apart).
    #[serde(default)]
    pub latency_by_stream: Vec<LatencySummary>,
    /// With `--first-latency`: per entry of `--stream`, the latency of each
    /// picture to the first of the entry's (fast) viewers that received
    /// it: the hub's own delay without the wait behind its other viewers.
    #[serde(default)]
    pub latency_first_by_stream: Vec<LatencySummary>,
}

/// Prints one protocol line to stdout and flushes it.
fn emit(line: &ClientLine) {
    let text = serde_json::to_string(line).unwrap_or_else(|e| {
        format!("{{\"phase\":\"error\",\"message\":\"cannot serialise a line: {e}\"}}")
    });
    let mut out = std::io::stdout().lock();
    // A closed stdout means the orchestrator is gone: nothing left to tell.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Microseconds since the Unix epoch, now.
pub fn now_unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Runs the load client; on failure prints an `error` line before returning the error.
pub async fn run_client(args: ClientArgs) -> anyhow::Result<()> {
    let result = client_main(args).await;
    if let Err(e) = &result {
        emit(&ClientLine::Error {
            message: format!("{e:#}"),
        });
    }
    result
}

/// One frame message as it arrived at a viewer.
struct Arrival {
    /// When (monotonic, and µs since the Unix epoch).
    at: Instant,
    at_unix: u64,
    /// Its publish time, µs since the stream began.
    ts: u64,
    /// Its size, bytes.
    bytes: u64,
    keyframe: bool,
    /// The same picture as the message before it.
    repeat: bool,
}

/// What a viewer task hands back at the end of the window.
struct Report {
    id: usize,
    stream: usize,
    slow: bool,
    frames: u64,
    repeats: u64,
    bytes: u64,
    patches: u64,
    keyframes: u64,
    keyframe_bytes: u64,
    bitstream_errors: u64,
    codec: Option<String>,
    negative: u64,
    hist: Histogram,
    /// With `--first-latency`: (timestamp_us, latency µs) of each new picture in the window.
    samples: Vec<(u64, u64)>,
    ended_early: Option<String>,
    session: Option<u64>,
}

impl Report {
    /// Counts a frame that arrived inside the window `(t0, t1)`, and its
    /// publish→receive latency unless it repeats the picture before it. A
    /// latency under `-tolerance_us` counts as negative (a clock step).
    fn count(
        &mut self,
        task: &ViewerTask,
        window: Option<(Instant, Instant)>,
        f: Arrival,
        tolerance_us: u64,
    ) {
        let Some((t0, t1)) = window else {
            return;
        };
        if f.at < t0 || f.at >= t1 {
            return;
        }
        self.frames += 1;
        self.bytes += f.bytes;
        if f.keyframe {
            self.keyframes += 1;
            self.keyframe_bytes += f.bytes;
        }
        if f.repeat {
            self.repeats += 1;
            return;
        }
        let published = task.created_unix_us.saturating_add(f.ts);
        if f.at_unix + tolerance_us < published {
            self.negative += 1;
        }
        let latency = f.at_unix.saturating_sub(published);
        self.hist.record(latency);
        if task.keep_samples {
            self.samples.push((f.ts, latency));
        }
    }

    /// An empty report of `task`'s viewer.
    fn new(task: &ViewerTask, codec: Option<String>, session: Option<u64>) -> Report {
        Report {
            id: task.id,
            stream: task.stream,
            slow: task.slow,
            frames: 0,
            repeats: 0,
            bytes: 0,
            patches: 0,
            keyframes: 0,
            keyframe_bytes: 0,
            bitstream_errors: 0,
            codec,
            negative: 0,
            hist: Histogram::default(),
            samples: Vec::new(),
            ended_early: None,
            session,
        }
    }
}

async fn client_main(args: ClientArgs) -> anyhow::Result<()> {
    if args.stream.is_empty() || args.stream.len() != args.created_unix_us.len() {
        bail!("need one --created-unix-us per --stream");
    }
    if !args.stream_addr.is_empty() && args.stream_addr.len() != args.stream.len() {
        bail!("need one --stream-addr per --stream");
    }
    if !args.stream_viewers.is_empty() && args.stream_viewers.len() != args.stream.len() {
        bail!("need one --stream-viewers per --stream");
    }
    let counts: Vec<usize> = if args.stream_viewers.is_empty() {
        vec![args.viewers; args.stream.len()]
    } else {
        args.stream_viewers.clone()
    };
    if counts.iter().any(|&c| c == 0 || args.slow > c) {
        bail!("need 1 or more viewers per stream and at most that many slow ones");
    }
    if !(args.duration > 0.0 && args.warmup >= 0.0) {
        bail!("duration must be > 0 and warmup >= 0");
    }
    // (stream entry, index among its viewers) of each viewer, in id order.
    let placed: Vec<(usize, usize)> = counts
        .iter()
        .enumerate()
        .flat_map(|(stream, &c)| (0..c).map(move |k| (stream, k)))
        .collect();
    let n = placed.len();
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(n);
    let (report_tx, mut report_rx) = mpsc::channel::<Report>(n);
    let (window_tx, window_rx) = watch::channel::<Option<(Instant, Instant)>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let connect_start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (id, &(stream, k)) in placed.iter().enumerate() {
        let addr = args.stream_addr.get(stream).unwrap_or(&args.addr);
        let v = ViewerTask {
            id,
            stream,
            url: format!("ws://{addr}/{}", args.stream[stream]),
            slow: k >= counts[stream] - args.slow,
            transport: args.transport,
            patch: args.patch,
            hidden: args.hidden,
            ack_delay: Duration::from_millis(args.ack_delay_ms),
            link_bps: (args.slow_kbps > 0).then_some(args.slow_kbps as f64 * 1000.0),
            created_unix_us: args.created_unix_us[stream],
            keep_samples: args.first_latency,
        };
        tasks.push(tokio::spawn(v.run(
            ready_tx.clone(),
            report_tx.clone(),
            window_rx.clone(),
            stop_rx.clone(),
        )));
    }
    drop((ready_tx, report_tx));

    // Every viewer must be in before the clock starts (≈ 10 ms each is plenty on loopback).
    let connect_deadline = Duration::from_secs(20) + Duration::from_millis(20 * n as u64);
    for _ in 0..n {
        match tokio::time::timeout_at((connect_start + connect_deadline).into(), ready_rx.recv())
            .await
        {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => bail!("a viewer could not connect: {e}"),
            Ok(None) => bail!("viewer tasks ended before connecting"),
            Err(_) => bail!("viewers not connected within {connect_deadline:?}"),
        }
    }
    emit(&ClientLine::Ready {
        viewers: n,
        connect_s: connect_start.elapsed().as_secs_f64(),
    });

    let t0 = Instant::now() + Duration::from_secs_f64(args.warmup);
    let t1 = t0 + Duration::from_secs_f64(args.duration);
    window_tx.send_replace(Some((t0, t1)));
    tokio::time::sleep_until(t0.into()).await;
    let cpu0 = procfs::process_cpu_s()?;
    emit(&ClientLine::Start);
    tokio::time::sleep_until(t1.into()).await;
    let cpu1 = procfs::process_cpu_s()?;
    emit(&ClientLine::End);

    let mut reports = Vec::with_capacity(n);
    let report_deadline = Instant::now() + Duration::from_secs(10);
    while reports.len() < n {
        match tokio::time::timeout_at(report_deadline.into(), report_rx.recv()).await {
            Ok(Some(r)) => reports.push(r),
            Ok(None) => bail!("{} viewer(s) ended without a report", n - reports.len()),
            Err(_) => bail!("{} viewer(s) gave no report in 10 s", n - reports.len()),
        }
    }
    reports.sort_by_key(|r| r.id);
    let window_s = (t1 - t0).as_secs_f64();
    let mut fast = Histogram::default();
    let mut slow = Histogram::default();
    let mut by_stream = vec![Histogram::default(); args.stream.len()];
    let mut negative = 0;
    let viewers = reports
        .iter()
        .map(|r| {
            if r.slow { &mut slow } else { &mut fast }.merge(&r.hist);
            if let (false, Some(h)) = (r.slow, by_stream.get_mut(r.stream)) {
                h.merge(&r.hist);
            }
            negative += r.negative;
            ViewerResult {
                id: r.id,
                stream: r.stream,
                slow: r.slow,
                frames: r.frames,
                repeats: r.repeats,
                bytes: r.bytes,
                patches: r.patches,
                keyframes: r.keyframes,
                keyframe_bytes: r.keyframe_bytes,
                bitstream_errors: r.bitstream_errors,
                codec: r.codec.clone(),
                fps: r.frames.saturating_sub(r.repeats) as f64 / window_s,
                latency: r.hist.summary(),
                ended_early: r.ended_early.clone(),
                session: r.session,
            }
        })
        .collect();
    emit(&ClientLine::Result(Box::new(ClientResult {
        window_s,
        viewers,
        latency_fast: fast.summary(),
        latency_cdf: fast.cdf(),
        latency_by_stream: by_stream.iter().map(Histogram::summary).collect(),
        latency_first_by_stream: if args.first_latency {
            first_latency(&reports, args.stream.len())
        } else {
            Vec::new()
        },
        latency_slow: slow.summary(),
        negative_latency_samples: negative,
        client_cpu_pct: (cpu1 - cpu0) / window_s * 100.0,
    })));

    // Keep the viewers acking until the orchestrator has read the hub's
    // metrics and says stop (a line or EOF on stdin; 30 s at most). A plain
    // thread, not tokio's stdin: a pending tokio stdin read would hold up
    // the runtime's shutdown.
    let (stdin_tx, stdin_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("stdin-wait".into())
        .spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let _ = stdin_tx.send(());
        })
        .context("starting the stdin thread")?;
    let _ = tokio::time::timeout(Duration::from_secs(30), stdin_rx).await;
    stop_tx.send_replace(true);
    let close_deadline = Instant::now() + Duration::from_secs(5);
    for t in tasks {
        let _ = tokio::time::timeout_at(close_deadline.into(), t).await;
    }
    Ok(())
}

/// Per entry of `--stream`: the latency of each picture to the first of the
/// entry's fast viewers that received it.
fn first_latency(reports: &[Report], entries: usize) -> Vec<LatencySummary> {
    let mut firsts: Vec<std::collections::HashMap<u64, u64>> = vec![Default::default(); entries];
    for r in reports.iter().filter(|r| !r.slow) {
        if let Some(map) = firsts.get_mut(r.stream) {
            for &(ts, us) in &r.samples {
                let e = map.entry(ts).or_insert(us);
                *e = (*e).min(us);
            }
        }
    }
    firsts
        .iter()
        .map(|m| {
            let mut h = Histogram::default();
            for &us in m.values() {
                h.record(us);
            }
            h.summary()
        })
        .collect()
}

/// One viewer: connection settings and what it measures.
struct ViewerTask {
    id: usize,
    stream: usize,
    url: String,
    slow: bool,
    transport: Transport,
    patch: bool,
    hidden: bool,
    ack_delay: Duration,
    /// Slow viewers' link bandwidth, bit/s (None: no limit).
    link_bps: Option<f64>,
    created_unix_us: u64,
    /// Keep every latency sample of the window ([`Report::samples`]).
    keep_samples: bool,
}

/// What the hub's `config` told a viewer.
struct Config {
    /// The hub's id for the viewer (`session`).
    session: Option<u64>,
    /// `avc1.PPCCLL` on a video session.
    codec: Option<String>,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ack_message(seq: u64) -> Message {
    Message::Text(
        format!(r#"{{"type":"ack","seq":{seq},"decode_queue_size":0,"displayed":true}}"#).into(),
    )
}

impl ViewerTask {
    /// Connects, says `hello` and waits for `config`; fails unless the hub
    /// negotiated the transport asked for. Returns the socket and what `config` said.
    async fn connect(&self) -> anyhow::Result<(Ws, Config)> {
        // No Nagle: an ack must leave at once, it returns the hub's credit.
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(self.url.as_str(), None, true)
                .await
                .with_context(|| format!("connecting to {}", self.url))?;
        let mut supported = vec![self.transport.hello_format()];
        if self.patch {
            supported.push("framehub/patch");
        }
        let hello = serde_json::json!({
            "type": "hello",
            "supported": supported,
            "device_pixel_ratio": 1.0,
        });
        ws.send(Message::Text(hello.to_string().into()))
            .await
            .context("sending hello")?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value =
                        serde_json::from_str(t.as_str()).context("server sent bad JSON")?;
                    if v["type"] == "config" {
                        let wanted = if self.transport.is_video() {
                            "webcodecs"
                        } else {
                            "image"
                        };
                        if v["transport"] != wanted {
                            bail!("negotiated {} instead of {wanted}", v["transport"]);
                        }
                        // `mime` is a framehub extension: check it when present.
                        if let Some(mime) = v["mime"].as_str() {
                            if !self.transport.is_video() && mime != self.transport.hello_format() {
                                bail!(
                                    "negotiated {mime} instead of {}",
                                    self.transport.hello_format()
                                );
                            }
                        }
                        let config = Config {
                            session: v["session"].as_u64(),
                            codec: v["codec"].as_str().map(str::to_owned),
                        };
                        if self.hidden {
                            let hidden = r#"{"type":"visibility","visible":false}"#;
                            ws.send(Message::Text(hidden.into()))
                                .await
                                .context("sending visibility")?;
                        }
                        return Ok((ws, config));
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    bail!("closed during handshake: {f:?}")
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow!(e).context("handshake")),
                None => bail!("connection ended during handshake"),
            }
        }
    }

    /// The viewer's life: connect, ack frames, report at the window's end, close on stop.
    async fn run(
        self,
        ready: mpsc::Sender<Result<(), String>>,
        report: mpsc::Sender<Report>,
        mut window_rx: watch::Receiver<Option<(Instant, Instant)>>,
        mut stop_rx: watch::Receiver<bool>,
    ) {
        if self.transport == Transport::Webrtc {
            return self.run_rtc(ready, report, window_rx, stop_rx).await;
        }
        let connected = tokio::time::timeout(Duration::from_secs(15), self.connect()).await;
        let (mut ws, config) = match connected {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let _ = ready.send(Err(format!("viewer {}: {e:#}", self.id))).await;
                return;
            }
            Err(_) => {
                let _ = ready
                    .send(Err(format!("viewer {}: handshake timed out", self.id)))
                    .await;
                return;
            }
        };
        let _ = ready.send(Ok(())).await;
        drop(ready);

        let mut rep = Some(Report::new(&self, config.codec, config.session));
        // Video: whether a keyframe came yet (a decoder needs one first).
        let mut had_keyframe = false;
        // The timestamp of the last frame message, to tell repeats.
        let mut last_ts: Option<u64> = None;
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let mut window: Option<(Instant, Instant)> = *window_rx.borrow_and_update();
        // Delayed acks: (when, seq), in arrival order; at most max_inflight long in practice.
        let mut pending: VecDeque<(Instant, u64)> = VecDeque::new();
        // When the emulated link of a slow viewer is next free (`--slow-kbps`).
        let mut link_free = Instant::now();
        let mut ended: Option<String> = None;
        loop {
            let ack_due = pending.front().map_or(far, |p| p.0);
            let window_end = window.map_or(far, |w| w.1);
            tokio::select! {
                r = stop_rx.changed() => {
                    if r.is_err() || *stop_rx.borrow() {
                        break;
                    }
                }
                r = window_rx.changed(), if window.is_none() => {
                    if r.is_err() {
                        ended = Some("client stopped".into());
                        break;
                    }
                    window = *window_rx.borrow_and_update();
                }
                _ = tokio::time::sleep_until(window_end.into()), if window.is_some() && rep.is_some() => {
                    if let Some(r) = rep.take() {
                        let _ = report.send(r).await;
                    }
                }
                _ = tokio::time::sleep_until(ack_due.into()), if !pending.is_empty() => {
                    let now = Instant::now();
                    while let Some(&(due, seq)) = pending.front() {
                        if due > now {
                            break;
                        }
                        pending.pop_front();
                        if let Err(e) = ws.send(ack_message(seq)).await {
                            ended = Some(format!("sending an ack: {e}"));
                            break;
                        }
                    }
                    if ended.is_some() {
                        break;
                    }
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        let at = Instant::now();
                        let at_unix = now_unix_us();
                        let (seq, ts, keyframe) = match envelope::parse(&b) {
                            Ok((FrameHeader::ImageFrame { seq, timestamp_us, .. }, _)) => (seq, timestamp_us, false),
                            Ok((FrameHeader::ImagePatch { seq, timestamp_us, .. }, _)) => {
                                if let (Some(r), Some((t0, t1))) = (rep.as_mut(), window) {
                                    if at >= t0 && at < t1 {
                                        r.patches += 1;
                                    }
                                }
                                (seq, timestamp_us, false)
                            }
                            Ok((FrameHeader::VideoChunk { seq, timestamp_us, keyframe, .. }, au)) => {
                                let mut verdict = check_access_unit(au, keyframe);
                                if verdict.is_ok() && !keyframe && !had_keyframe {
                                    verdict = Err("a delta before the first keyframe".into());
                                }
                                had_keyframe |= keyframe;
                                if let (Err(why), Some(r)) = (verdict, rep.as_mut()) {
                                    if r.bitstream_errors == 0 {
                                        eprintln!("bench-client: viewer {}: chunk seq {seq}: {why}", self.id);
                                    }
                                    r.bitstream_errors += 1;
                                }
                                (seq, timestamp_us, keyframe)
                            }
                            Err(e) => {
                                ended = Some(format!("bad envelope: {e}"));
                                break;
                            }
                        };
                        let repeat = last_ts == Some(ts);
                        last_ts = Some(ts);
                        if let Some(r) = rep.as_mut() {
                            let frame = Arrival { at, at_unix, ts, bytes: b.len() as u64, keyframe, repeat };
                            r.count(&self, window, frame, 0);
                        }
                        if self.slow && (!self.ack_delay.is_zero() || self.link_bps.is_some()) {
                            let mut due = at;
                            if let Some(bps) = self.link_bps {
                                // The frame crosses the link after the ones before it.
                                link_free = link_free.max(at)
                                    + Duration::from_secs_f64(b.len() as f64 * 8.0 / bps);
                                due = link_free;
                            }
                            pending.push_back((due + self.ack_delay, seq));
                        } else if let Err(e) = ws.send(ack_message(seq)).await {
                            ended = Some(format!("sending an ack: {e}"));
                            break;
                        }
                    }
                    Some(Ok(Message::Close(f))) => {
                        ended = Some(format!("closed by the hub: {f:?}"));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        ended = Some(format!("socket error: {e}"));
                        break;
                    }
                    None => {
                        ended = Some("connection ended".into());
                        break;
                    }
                },
            }
        }
        if let Some(mut r) = rep.take() {
            r.ended_early = ended.clone();
            let _ = report.send(r).await;
        }
        drop(report);
        if ended.is_none() {
            // Told to stop: close politely and wait for the hub's close reply (bounded).
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = ws.close(None).await;
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }
    }
}

/// H.264 NAL unit types (ITU-T H.264 Table 7-1) the check looks for.
const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// Checks that an Annex-B access unit agrees with its header's `keyframe`:
/// it starts with a start code; a keyframe carries SPS, PPS and an IDR
/// slice; a delta a non-IDR slice and no IDR. Parameter sets come before
/// the slices, so only the NAL headers up to the first slice are read: the
/// cost does not grow with the frame's size.
fn check_access_unit(au: &[u8], keyframe: bool) -> Result<(), String> {
    if !(au.starts_with(&[0, 0, 1]) || au.starts_with(&[0, 0, 0, 1])) {
        return Err("no Annex-B start code".into());
    }
    let mut types = Vec::new();
    let mut rest = au;
    while let Some(at) = rest.windows(3).position(|w| w == [0, 0, 1]) {
        let Some(&header) = rest.get(at + 3) else {
            break;
        };
        let kind = header & 0x1F;
        types.push(kind);
        if kind == NAL_SLICE || kind == NAL_IDR {
            break;
        }
        rest = rest.get(at + 4..).unwrap_or_default();
    }
    let has = |t: u8| types.contains(&t);
    match keyframe {
        true if !(has(NAL_SPS) && has(NAL_PPS) && has(NAL_IDR)) => Err(format!(
            "keyframe without SPS, PPS and IDR slice (NAL types {types:?})"
        )),
        false if has(NAL_IDR) || !has(NAL_SLICE) => Err(format!(
            "delta that is not one non-IDR slice (NAL types {types:?})"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_units_are_checked_against_the_keyframe_flag() {
        // SPS, PPS, IDR slice (4-byte then 3-byte start codes).
        let key = [
            0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1F, 0, 0, 1, 0x68, 0xCE, 0, 0, 1, 0x65, 0x88, 0x84,
        ];
        let delta = [0, 0, 0, 1, 0x41, 0x9A, 0x02];
        assert_eq!(check_access_unit(&key, true), Ok(()));
        assert_eq!(check_access_unit(&delta, false), Ok(()));
        assert!(
            check_access_unit(&key, false).is_err(),
            "an IDR sent as a delta"
        );
        assert!(
            check_access_unit(&delta, true).is_err(),
            "a delta sent as a keyframe"
        );
        assert!(
            check_access_unit(&[0x41, 0x9A], false).is_err(),
            "no start code"
        );
        assert!(
            check_access_unit(&[0, 0, 1], false).is_err(),
            "a start code and nothing else"
        );
        assert!(check_access_unit(&[], true).is_err());
    }
}
