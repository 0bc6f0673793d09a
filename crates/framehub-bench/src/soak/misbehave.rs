//! The soak test's misbehaving clients: each one cycles through the
//! [`Kind`]s below, one attempt at a time (a fresh connection each), and
//! records what the hub did about it against what `docs/protocol.md` §4.1
//! and §9 say it must do ([`Expect`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::client::{
    ack_message, close_politely, connect_viewer, end_label, error_label, frame_of, open,
    sleep_or_stop, stopped, LoadCtx, Ws,
};

/// One way of misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// After the handshake, a text message that is not JSON.
    GarbageText,
    /// After the handshake, JSON with a field of the wrong type (`ack` with a string `seq`).
    MalformedJson,
    /// An `ack` as the first message, instead of `hello`.
    BeforeHello,
    /// A second `hello`.
    HelloTwice,
    /// A 100 KiB text message (over the 64 KiB limit of text messages).
    OversizedText,
    /// A 2 MiB binary message (over the 1 MiB limit of any message).
    OversizedMessage,
    /// Input events as fast as the socket takes them (over 200/s beyond a burst of 400).
    EventFlood,
    /// Slow-loris at the protocol level: the upgrade, then no `hello` at all.
    NoHello,
    /// A `hello` that lists nothing the hub can send.
    NoTransport,
    /// A viewer of a stream that does not exist.
    UnknownStream,
    /// Binary junk and malformed envelopes after the handshake (clients' binary messages are ignored).
    BinaryJunk,
    /// Messages the hub must ignore or drop and count: unknown types,
    /// invalid events, acks of frames never sent, keyframe requests,
    /// visibility toggles (below the event rate limit).
    IgnoredJunk,
    /// Random bytes on a raw TCP connection instead of an HTTP request.
    TcpJunk,
    /// Slow-loris at the HTTP level: a request line, then one header line a second.
    HttpSlowloris,
}

impl Kind {
    /// Every kind, in the order a client cycles through them.
    pub const ALL: [Kind; 14] = [
        Kind::GarbageText,
        Kind::MalformedJson,
        Kind::BeforeHello,
        Kind::HelloTwice,
        Kind::OversizedText,
        Kind::OversizedMessage,
        Kind::EventFlood,
        Kind::NoHello,
        Kind::NoTransport,
        Kind::UnknownStream,
        Kind::BinaryJunk,
        Kind::IgnoredJunk,
        Kind::TcpJunk,
        Kind::HttpSlowloris,
    ];

    /// What the hub must do (`docs/protocol.md` §4.1, §9).
    pub fn expect(self) -> Expect {
        match self {
            Kind::GarbageText | Kind::MalformedJson => Expect::Close(1008, "malformed message"),
            Kind::BeforeHello => Expect::Close(1008, "expected hello"),
            Kind::HelloTwice => Expect::Close(1008, "hello sent twice"),
            Kind::OversizedText => Expect::Close(1009, "limit"),
            // The hub stops reading at its limit, so the rest of the message
            // stays unread and its TCP stack may reset the connection, the
            // close frame lost with it (RFC 6455 §7.1.7: failing the connection).
            Kind::OversizedMessage => Expect::CloseOrHangUp(1009, "limit"),
            Kind::EventFlood => Expect::Close(1008, "rate limit"),
            Kind::NoHello => Expect::Close(1008, "no hello in time"),
            Kind::NoTransport => Expect::Close(1003, "no supported transport"),
            Kind::UnknownStream => Expect::Close(4404, "unknown stream"),
            Kind::BinaryJunk | Kind::IgnoredJunk => Expect::Open,
            Kind::TcpJunk => Expect::HangUp,
            // Hyper's header-read timeout (`ServerConfig::header_read_timeout`).
            Kind::HttpSlowloris => Expect::HangUp,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::GarbageText => "garbage_text",
            Kind::MalformedJson => "malformed_json",
            Kind::BeforeHello => "before_hello",
            Kind::HelloTwice => "hello_twice",
            Kind::OversizedText => "oversized_text",
            Kind::OversizedMessage => "oversized_message",
            Kind::EventFlood => "event_flood",
            Kind::NoHello => "no_hello",
            Kind::NoTransport => "no_transport",
            Kind::UnknownStream => "unknown_stream",
            Kind::BinaryJunk => "binary_junk",
            Kind::IgnoredJunk => "ignored_junk",
            Kind::TcpJunk => "tcp_junk",
            Kind::HttpSlowloris => "http_slowloris",
        })
    }
}

/// What the hub must do about a kind of misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Close the WebSocket with this code, with a reason containing this text.
    Close(u16, &'static str),
    /// [`Expect::Close`], or the connection ends without a close frame.
    CloseOrHangUp(u16, &'static str),
    /// Keep the viewer: it still gets frames afterwards.
    Open,
    /// Hang up the TCP connection (after an HTTP error answer or not).
    HangUp,
}

impl Expect {
    fn label(self) -> String {
        match self {
            Expect::Close(code, why) => format!("close {code} ({why:?})"),
            Expect::CloseOrHangUp(code, why) => format!("close {code} ({why:?}) or a hang-up"),
            Expect::Open => "open (still gets frames)".into(),
            Expect::HangUp => "the hub hangs up".into(),
        }
    }

    fn met_by(self, o: &Outcome) -> bool {
        match self {
            Expect::Close(code, why) => {
                o.label == format!("close {code}")
                    && o.reason.as_deref().is_some_and(|r| r.contains(why))
            }
            Expect::CloseOrHangUp(code, why) => {
                Expect::Close(code, why).met_by(o) || o.label == "eof" || o.label == "reset"
            }
            Expect::Open => o.label == "open",
            Expect::HangUp => {
                o.label == "eof" || o.label == "reset" || o.label.starts_with("http ")
            }
        }
    }
}

/// What the hub did in one attempt.
#[derive(Debug, Clone)]
struct Outcome {
    /// `close CODE`, `open`, `eof`, `reset`, `http NNN`, `left open`, `error: …`.
    label: String,
    /// The close frame's reason, if any.
    reason: Option<String>,
    /// Time from the misbehaviour to the outcome, s.
    seconds: f64,
}

/// The attempts of one kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KindStats {
    /// What the hub must do.
    pub expected: String,
    /// Whether the outcome is judged (every kind is, now).
    pub judged: bool,
    /// Attempts finished (those cut by the end of the run are left out).
    pub attempts: u64,
    /// Of those, how many ended as expected.
    pub as_expected: u64,
    /// Attempts by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Close reasons seen (a few).
    pub reasons: BTreeSet<String>,
    /// Longest time from the misbehaviour to its outcome, s.
    pub max_s: f64,
    /// Summed time from the misbehaviour to its outcome, s (mean = this / attempts).
    pub sum_s: f64,
}

impl KindStats {
    /// Adds `other`'s attempts to these.
    pub fn merge(&mut self, other: KindStats) {
        if self.expected.is_empty() {
            self.expected = other.expected;
            self.judged = other.judged;
        }
        self.attempts += other.attempts;
        self.as_expected += other.as_expected;
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_insert(0) += v;
        }
        for r in other.reasons {
            if self.reasons.len() < 4 {
                self.reasons.insert(r);
            }
        }
        self.max_s = self.max_s.max(other.max_s);
        self.sum_s += other.sum_s;
    }

    fn record(&mut self, kind: Kind, o: Outcome) {
        let expect = kind.expect();
        if self.expected.is_empty() {
            self.expected = expect.label();
            self.judged = true;
        }
        self.attempts += 1;
        if expect.met_by(&o) {
            self.as_expected += 1;
        }
        if let Some(r) = o.reason {
            if self.reasons.len() < 4 {
                self.reasons.insert(without_numbers(&r));
            }
        }
        *self.outcomes.entry(o.label).or_insert(0) += 1;
        self.max_s = self.max_s.max(o.seconds);
        self.sum_s += o.seconds;
    }
}

/// One misbehaving client, until `stop`: kind after kind (starting at
/// `index`), one attempt each, a pause of 0.1–0.6 s between them.
/// `attempted` is called after each finished attempt.
pub async fn client_task(
    ctx: LoadCtx,
    index: usize,
    mut rng: SmallRng,
    mut stop: watch::Receiver<bool>,
    attempted: impl Fn(),
) -> anyhow::Result<BTreeMap<Kind, KindStats>> {
    let mut stats: BTreeMap<Kind, KindStats> = BTreeMap::new();
    let limit = Duration::from_secs_f64(ctx.args.slowloris_hold.max(ctx.args.hello_timeout) + 30.0);
    for n in 0.. {
        let kind = Kind::ALL[(index + n) % Kind::ALL.len()];
        let watch = stop.clone();
        let outcome = tokio::select! {
            o = tokio::time::timeout(limit, attempt(kind, &ctx, &mut rng, &watch)) => o,
            _ = stopped(&mut stop) => break,
        };
        if *stop.borrow() {
            // An attempt cut short by the end of the run says nothing.
            break;
        }
        let outcome = outcome.unwrap_or_else(|_| Outcome {
            label: "attempt timed out".into(),
            reason: None,
            seconds: limit.as_secs_f64(),
        });
        stats.entry(kind).or_default().record(kind, outcome);
        attempted();
        let pause = Duration::from_millis(rng.random_range(100..600));
        if sleep_or_stop(pause, &mut stop).await {
            break;
        }
    }
    Ok(stats)
}

/// An outcome for a connection that failed before the misbehaviour.
fn failed(what: impl std::fmt::Display, since: Instant) -> Outcome {
    let mut label = format!("connect failed: {what}");
    label.truncate(80);
    Outcome {
        label,
        reason: None,
        seconds: since.elapsed().as_secs_f64(),
    }
}

/// Reads (acking frames when `ack`) until the socket ends or `limit`
/// passes: the end's label, or `open` when it is still open and frames
/// came after `since`, or `silent` when it is open but nothing came.
///
/// A write that fails (the hub already closed, and its TCP stack reset the
/// connection on the data that kept coming) does not end the watch: the
/// hub's close frame may still wait in the receive queue, and is read
/// before the reset is reported, as a browser would. `write_failed` names
/// such a failure that came before.
async fn observe(ws: &mut Ws, since: Instant, limit: Duration, ack: bool) -> Outcome {
    observe_after(ws, since, limit, ack, None).await
}

/// [`observe`], after a write that already failed with `write_failed`.
async fn observe_after(
    ws: &mut Ws,
    since: Instant,
    limit: Duration,
    mut ack: bool,
    mut write_failed: Option<String>,
) -> Outcome {
    let deadline = tokio::time::Instant::from_std(since + limit);
    let mut frames = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return Outcome {
                    label: if frames > 0 { "open".into() } else { "silent".into() },
                    reason: None,
                    seconds: since.elapsed().as_secs_f64(),
                };
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    frames += 1;
                    if let (true, Some((seq, _))) = (ack, frame_of(&b)) {
                        if let Err(e) = ws.send(ack_message(seq)).await {
                            // Keep reading: the hub's close frame may be next in the queue.
                            ack = false;
                            write_failed = Some(error_label(&e));
                        }
                    }
                }
                Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                other => {
                    let (mut label, reason) = end_label(other);
                    if let (false, Some(w)) = (label.starts_with("close "), write_failed) {
                        label = format!("{label} after a failed write ({w})");
                    }
                    return Outcome { label, reason, seconds: since.elapsed().as_secs_f64() };
                }
            },
        }
    }
}

/// Sends `msgs` `spacing` apart while acking frames, then keeps acking for
/// `watch`: `open` when frames still come at the end.
async fn junk_then_watch(
    ws: &mut Ws,
    msgs: Vec<Message>,
    spacing: Duration,
    watch: Duration,
) -> Outcome {
    let since = Instant::now();
    for m in msgs {
        if let Err(e) = ws.send(m).await {
            return Outcome {
                label: error_label(&e),
                reason: None,
                seconds: since.elapsed().as_secs_f64(),
            };
        }
        let o = observe(ws, Instant::now(), spacing, true).await;
        if o.label != "open" && o.label != "silent" {
            return Outcome {
                seconds: since.elapsed().as_secs_f64(),
                ..o
            };
        }
    }
    // Frames must keep coming after the junk (a 30 fps stream gives ~45 in 1.5 s).
    let o = observe(ws, Instant::now(), watch, true).await;
    Outcome {
        seconds: since.elapsed().as_secs_f64(),
        ..o
    }
}

/// A pointer event of the renderview vocabulary (`docs/protocol.md` §5).
fn pointer_move(i: u64) -> Message {
    Message::Text(
        format!(
            r#"{{"type":"event","event":{{"event_type":"pointer_move","x":{},"y":{},"button":0,"buttons":[],"modifiers":[],"timestamp":{}}}}}"#,
            i % 640,
            i % 360,
            i as f64 / 1000.0
        )
        .into(),
    )
}

/// Random bytes.
fn junk(rng: &mut SmallRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

/// One attempt of `kind`.
async fn attempt(
    kind: Kind,
    ctx: &LoadCtx,
    rng: &mut SmallRng,
    stop: &watch::Receiver<bool>,
) -> Outcome {
    let t0 = Instant::now();
    let close_within = Duration::from_secs(10);
    let viewer = || connect_viewer(&ctx.url, Duration::from_secs(15));
    let text = |s: &str| Message::Text(s.to_string().into());
    match kind {
        Kind::GarbageText | Kind::MalformedJson | Kind::HelloTwice => {
            let mut ws = match viewer().await {
                Ok((ws, _)) => ws,
                Err(e) => return failed(e, t0),
            };
            let msg = match kind {
                Kind::GarbageText => "this is { not json",
                Kind::MalformedJson => r#"{"type":"ack","seq":"seven"}"#,
                _ => super::client::HELLO,
            };
            let since = Instant::now();
            let _ = ws.send(text(msg)).await;
            observe(&mut ws, since, close_within, true).await
        }
        Kind::BeforeHello => {
            let mut ws = match open(&ctx.url).await {
                Ok(ws) => ws,
                Err(e) => return failed(e, t0),
            };
            let since = Instant::now();
            let _ = ws.send(ack_message(0)).await;
            observe(&mut ws, since, close_within, false).await
        }
        Kind::OversizedText => {
            let mut ws = match viewer().await {
                Ok((ws, _)) => ws,
                Err(e) => return failed(e, t0),
            };
            let pad = "A".repeat(100 * 1024);
            let msg = format!(
                r#"{{"type":"event","event":{{"event_type":"key_down","key":"{pad}","code":"KeyA"}}}}"#
            );
            let since = Instant::now();
            let _ = ws.send(text(&msg)).await;
            observe(&mut ws, since, close_within, true).await
        }
        Kind::OversizedMessage => {
            let mut ws = match viewer().await {
                Ok((ws, _)) => ws,
                Err(e) => return failed(e, t0),
            };
            let big = junk(rng, 2 << 20);
            let since = Instant::now();
            // The hub stops reading at its limit: do not wait for the whole
            // message to leave, the answer is on the way back.
            let _ =
                tokio::time::timeout(Duration::from_secs(5), ws.send(Message::Binary(big.into())))
                    .await;
            observe(&mut ws, since, close_within, false).await
        }
        Kind::EventFlood => {
            let mut ws = match viewer().await {
                Ok((ws, _)) => ws,
                Err(e) => return failed(e, t0),
            };
            let since = Instant::now();
            let mut write_failed = None;
            // Up to 3000 events, 50 at a time, stopping once the hub answers.
            'flood: for batch in 0..60u64 {
                for i in 0..50 {
                    if let Err(e) = ws.feed(pointer_move(batch * 50 + i)).await {
                        write_failed = Some(error_label(&e));
                        break 'flood;
                    }
                }
                if let Err(e) = ws.flush().await {
                    write_failed = Some(error_label(&e));
                    break;
                }
                if let Ok(msg) = tokio::time::timeout(Duration::ZERO, ws.next()).await {
                    if !matches!(msg, Some(Ok(Message::Binary(_) | Message::Text(_)))) {
                        let (label, reason) = end_label(msg);
                        return Outcome {
                            label,
                            reason,
                            seconds: since.elapsed().as_secs_f64(),
                        };
                    }
                }
            }
            observe_after(&mut ws, since, close_within, false, write_failed).await
        }
        Kind::NoHello => {
            let mut ws = match open(&ctx.url).await {
                Ok(ws) => ws,
                Err(e) => return failed(e, t0),
            };
            let within = Duration::from_secs_f64(ctx.args.hello_timeout + 10.0);
            observe(&mut ws, Instant::now(), within, false).await
        }
        Kind::NoTransport => {
            let mut ws = match open(&ctx.url).await {
                Ok(ws) => ws,
                Err(e) => return failed(e, t0),
            };
            let since = Instant::now();
            let _ = ws
                .send(text(
                    r#"{"type":"hello","supported":["video/x-nonsense","image/bmp"],"device_pixel_ratio":1.0}"#,
                ))
                .await;
            observe(&mut ws, since, close_within, false).await
        }
        Kind::UnknownStream => {
            let url = format!("ws://{}/soak-no-such-stream", ctx.addr);
            let since = Instant::now();
            let mut ws = match open(&url).await {
                Ok(ws) => ws,
                Err(e) => return failed(e, t0),
            };
            observe(&mut ws, since, close_within, false).await
        }
        Kind::BinaryJunk => {
            let mut ws = match viewer().await {
                Ok((ws, _)) => ws,
                Err(e) => return failed(e, t0),
            };
            let mut msgs = Vec::new();
            // Random bytes of a few sizes, including none.
            for n in [0, 1, 3, 100, 4096, 60_000] {
                msgs.push(Message::Binary(junk(rng, n).into()));
            }
            // Malformed envelopes: a header length past the end, a header that is not JSON,
            // and a well-formed image_frame envelope (a client has no business sending it).
            let mut v = u32::MAX.to_le_bytes().to_vec();
            v.extend_from_slice(b"{}");
            msgs.push(Message::Binary(v.into()));
            let mut v = 8u32.to_le_bytes().to_vec();
            v.extend_from_slice(b"not json payload");
            msgs.push(Message::Binary(v.into()));
            let header = br#"{"type":"image_frame","seq":0,"timestamp_us":0,"width":1,"height":1,"mime":"image/jpeg"}"#;
            let mut v = (header.len() as u32).to_le_bytes().to_vec();
            v.extend_from_slice(header);
            v.extend_from_slice(&junk(rng, 64));
            msgs.push(Message::Binary(v.into()));
            msgs.push(Message::Ping(junk(rng, 16).into()));
            let o = junk_then_watch(
                &mut ws,
                msgs,
                Duration::from_millis(100),
                Duration::from_millis(1500),
            )
            .await;
            if o.label == "open" {
                close_politely(ws).await;
            }
            o
        }
        Kind::IgnoredJunk => {
            let mut ws = match viewer().await {
                Ok((ws, _)) => ws,
                Err(e) => return failed(e, t0),
            };
            let long_key = "K".repeat(10_000);
            let msgs: Vec<Message> = [
                r#"{"type":"warp_drive","x":1}"#.to_string(),
                r#"{"type":"event","event":{"event_type":"teleport","x":1,"y":2}}"#.into(),
                r#"{"type":"event","event":{"event_type":"pointer_down","x":1e300,"y":2,"button":1,"buttons":[1],"modifiers":[]}}"#.into(),
                r#"{"type":"event","event":{"event_type":"pointer_down"}}"#.into(),
                r#"{"type":"event","event":{"event_type":"wheel","x":"left","y":[],"dx":{},"dy":null}}"#.into(),
                format!(r#"{{"type":"event","event":{{"event_type":"key_down","key":"{long_key}","code":"KeyK","modifiers":[]}}}}"#),
                r#"{"type":"event","event":{"event_type":"pointer_move","x":1,"y":1,"buttons":[1,2,3,4,5,1,2,3,4,5],"modifiers":["Shift","Shift","Shift","Shift","Shift","Shift"]}}"#.into(),
                r#"{"type":"ack","seq":18446744073709551615,"decode_queue_size":0,"displayed":true}"#.into(),
                r#"{"type":"request_keyframe","reason":"soak"}"#.into(),
                r#"{"type":"decoder_reset"}"#.into(),
                r#"{"type":"visibility","visible":false}"#.into(),
                r#"{"type":"visibility","visible":true}"#.into(),
            ]
            .iter()
            .map(|s| text(s))
            .collect();
            let o = junk_then_watch(
                &mut ws,
                msgs,
                Duration::from_millis(50),
                Duration::from_millis(1500),
            )
            .await;
            if o.label == "open" {
                close_politely(ws).await;
            }
            o
        }
        Kind::TcpJunk => {
            let mut tcp = match tokio::net::TcpStream::connect(&ctx.addr).await {
                Ok(t) => t,
                Err(e) => return failed(e, t0),
            };
            let mut bytes = junk(rng, 2048);
            bytes[0] = 0x16; // not a letter: no HTTP method starts like this
            let since = Instant::now();
            let _ = tcp.write_all(&bytes).await;
            let mut got = Vec::new();
            let read = tokio::time::timeout(close_within, async {
                let mut buf = [0u8; 1024];
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) => return "eof",
                        Ok(n) => {
                            if got.len() < 64 {
                                got.extend_from_slice(&buf[..n]);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                            return "reset"
                        }
                        Err(_) => return "error",
                    }
                }
            })
            .await;
            let status = http_status(&got);
            let label = match (read, status) {
                (Ok(_), Some(s)) => format!("http {s}"),
                (Ok(end), None) => end.to_string(),
                (Err(_), _) => "left open".into(),
            };
            Outcome {
                label,
                reason: None,
                seconds: since.elapsed().as_secs_f64(),
            }
        }
        Kind::HttpSlowloris => {
            let mut tcp = match tokio::net::TcpStream::connect(&ctx.addr).await {
                Ok(t) => t,
                Err(e) => return failed(e, t0),
            };
            let since = Instant::now();
            let hold = Duration::from_secs_f64(ctx.args.slowloris_hold);
            let mut stop = stop.clone();
            if tcp
                .write_all(b"GET /soak HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .await
                .is_err()
            {
                return failed("writing the request line", t0);
            }
            let mut buf = [0u8; 256];
            let mut i = 0u64;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if since.elapsed() >= hold {
                            return Outcome { label: "left open".into(), reason: None, seconds: since.elapsed().as_secs_f64() };
                        }
                        i += 1;
                        if tcp.write_all(format!("X-Soak-{i}: x\r\n").as_bytes()).await.is_err() {
                            return Outcome { label: "reset".into(), reason: None, seconds: since.elapsed().as_secs_f64() };
                        }
                    }
                    r = tcp.read(&mut buf) => {
                        let label = match r {
                            Ok(0) => "eof".to_string(),
                            Ok(n) => http_status(&buf[..n]).map_or("data".into(), |s| format!("http {s}")),
                            Err(_) => "reset".into(),
                        };
                        return Outcome { label, reason: None, seconds: since.elapsed().as_secs_f64() };
                    }
                    _ = stopped(&mut stop) => {
                        return Outcome { label: "cut".into(), reason: None, seconds: since.elapsed().as_secs_f64() };
                    }
                }
            }
        }
    }
}

/// `text` with every run of digits replaced by `N` (reasons that differ
/// only in a size or a count are one reason).
pub(crate) fn without_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
    out
}

/// The status code of an HTTP/1.x response's first line.
fn http_status(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.get(..bytes.len().min(32))?).ok()?;
    let rest = text.strip_prefix("HTTP/1.")?;
    rest.get(2..5)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_folded() {
        assert_eq!(
            without_numbers("message of 102400 bytes is over the 64 KiB limit"),
            "message of N bytes is over the N KiB limit"
        );
        assert_eq!(without_numbers(""), "");
    }

    #[test]
    fn status_lines() {
        assert_eq!(http_status(b"HTTP/1.1 400 Bad Request\r\n"), Some(400));
        assert_eq!(http_status(b"HTTP/1.0 408 x"), Some(408));
        assert_eq!(http_status(b"junk"), None);
        assert_eq!(http_status(b""), None);
    }

    #[test]
    fn expectations() {
        let o = |label: &str, reason: Option<&str>| Outcome {
            label: label.into(),
            reason: reason.map(Into::into),
            seconds: 0.0,
        };
        let e = Kind::NoHello.expect();
        assert!(e.met_by(&o("close 1008", Some("no hello in time"))));
        assert!(!e.met_by(&o("close 1008", Some("idle: no ack for 30 s"))));
        assert!(!e.met_by(&o("eof", None)));
        assert!(Kind::BinaryJunk.expect().met_by(&o("open", None)));
        assert!(Kind::OversizedMessage.expect().met_by(&o("eof", None)));
        assert!(!Kind::OversizedText.expect().met_by(&o("eof", None)));
        assert!(!Kind::BinaryJunk.expect().met_by(&o("silent", None)));
        assert!(Kind::TcpJunk.expect().met_by(&o("http 400", None)));
        assert!(!Kind::TcpJunk.expect().met_by(&o("left open", None)));
    }
}
