//! A WebRTC viewer of the load client (`--transport webrtc`): one str0m
//! peer ([`framehub_webrtc::client`]), signalled with rtcbot-style JSON at
//! `POST /<stream>/webrtc`, counting the access units that arrive and their
//! publish→receive latency. The hub's units carry the publish time as their
//! RTP time (µs since the stream was made × 9 / 100, 90 kHz), so the latency
//! is measured as for a WebSocket viewer. The peer acks nothing: the hub's
//! WebRTC driver acks for it by what left the socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use framehub_webrtc::client::{Client, ClientEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::{check_access_unit, now_unix_us, Arrival, Report, ViewerTask};

/// Largest signalling answer read, bytes.
const MAX_ANSWER: usize = 256 * 1024;

/// `POST path` with a JSON body over HTTP/1.1 (one request, `Connection:
/// close`); returns the status and the body.
async fn post_json(addr: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    (&mut s)
        .take(MAX_ANSWER as u64)
        .read_to_end(&mut buf)
        .await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP response"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("no status line"))?;
    Ok((status, body.to_string()))
}

/// Makes the peer, signals it, and waits until ICE and DTLS are done.
async fn connect(addr: &str, stream: &str) -> anyhow::Result<Client> {
    let ip = addr
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .unwrap_or_else(|_| [127, 0, 0, 1].into());
    let mut peer = Client::bind(ip).await?;
    let offer = serde_json::json!({"type": "offer", "sdp": peer.offer_sdp()}).to_string();
    let (status, body) = post_json(addr, &format!("/{stream}/webrtc"), &offer).await?;
    if status != 200 {
        bail!("the hub answered {status}: {body}");
    }
    let answer: serde_json::Value = serde_json::from_str(&body).context("the answer's JSON")?;
    let sdp = answer["sdp"]
        .as_str()
        .ok_or_else(|| anyhow!("no sdp in the answer"))?;
    peer.accept_answer(sdp)?;
    loop {
        if let ClientEvent::Connected = peer.next_event().await? {
            return Ok(peer);
        }
    }
}

impl ViewerTask {
    /// The viewer's life over WebRTC (see the module docs).
    pub(super) async fn run_rtc(
        self,
        ready: mpsc::Sender<Result<(), String>>,
        report: mpsc::Sender<Report>,
        mut window_rx: watch::Receiver<Option<(Instant, Instant)>>,
        mut stop_rx: watch::Receiver<bool>,
    ) {
        let stream = self.url.rsplit('/').next().unwrap_or_default().to_string();
        let addr = self
            .url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut peer =
            match tokio::time::timeout(Duration::from_secs(15), connect(&addr, &stream)).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    let _ = ready.send(Err(format!("peer {}: {e:#}", self.id))).await;
                    return;
                }
                Err(_) => {
                    let _ = ready
                        .send(Err(format!("peer {}: not connected in 15 s", self.id)))
                        .await;
                    return;
                }
            };
        let _ = ready.send(Ok(())).await;
        drop(ready);
        let mut rep = Some(Report::new(&self, None, None));
        let mut had_keyframe = false;
        let mut last_ts: Option<u64> = None;
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let mut window: Option<(Instant, Instant)> = *window_rx.borrow_and_update();
        let mut ended: Option<String> = None;
        loop {
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
                ev = peer.next_event() => match ev {
                    Ok(ClientEvent::Frame(f)) => {
                        let at = Instant::now();
                        let at_unix = now_unix_us();
                        // RTP time (90 kHz) back to the publish time in µs since the stream began.
                        let ts = f.rtp_time.saturating_mul(100) / 9;
                        let mut verdict = check_access_unit(&f.data, f.keyframe);
                        if verdict.is_ok() && !f.keyframe && !had_keyframe {
                            verdict = Err("a delta before the first keyframe".into());
                        }
                        had_keyframe |= f.keyframe;
                        let repeat = last_ts == Some(ts);
                        last_ts = Some(ts);
                        if let Some(r) = rep.as_mut() {
                            if verdict.is_err() {
                                r.bitstream_errors += 1;
                            }
                            let frame = Arrival { at, at_unix, ts, bytes: f.data.len() as u64, keyframe: f.keyframe, repeat };
                            // The RTP time is within one tick (11 µs) of the publish time.
                            r.count(&self, window, frame, 11);
                        }
                    }
                    // The session's `config` comes over the data channel: its id matches the hub's metrics.
                    Ok(ClientEvent::Text(t)) => {
                        let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                        if let (Some(r), "config") = (rep.as_mut(), v["type"].as_str().unwrap_or("")) {
                            r.session = v["session"].as_u64();
                            r.codec = v["codec"].as_str().map(str::to_owned);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        ended = Some(format!("peer: {e}"));
                        break;
                    }
                },
            }
        }
        if let Some(mut r) = rep.take() {
            r.ended_early = ended;
            let _ = report.send(r).await;
        }
    }
}
