//! One WebRTC peer: a thin driver that feeds a str0m [`Rtc`] what the UDP
//! socket received for it and what the viewer's session sends, and carries
//! out what the `Rtc` outputs.
//!
//! From the session (the same `framehub_proto::Session` as a WebSocket
//! viewer's, through a [`SessionLink`]):
//! * a `video_chunk` envelope → its Annex B access unit is written to the
//!   video track (str0m packetizes it: RFC 6184 FU-A/STAP-A), then acked
//!   for the viewer, so the session's credit follows what left the socket
//!   rather than a browser's draw;
//! * any other envelope (a lossless PNG still) → the data channel, in chunks;
//! * a text message → the data channel as text;
//! * a close → a `close` message on the data channel, then the peer closes.
//!
//! From the peer: data-channel text → the session (events, `set_viewport`,
//! `visibility`, … validated there as on a WebSocket); a PLI or FIR → a
//! `request_keyframe` for the session, which coalesces it in the stream's
//! keyframe gate. The session's credit is the peer's send queue: a unit is
//! acked once the bytes written before it have been transmitted up to
//! a bound ([`SEND_QUEUE_TIME`] of the bandwidth estimate, at most
//! [`SEND_QUEUE_BYTES`]); a peer whose pacer falls further behind stops
//! acking, its session stops sending, and it waits for the next keyframe,
//! alone.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framehub_proto::envelope::{self, FrameHeader};
use framehub_proto::link::ViewerMessage;
use futures_channel::mpsc;
use futures_util::StreamExt;
use str0m::bwe::{Bitrate, BweKind};
use str0m::channel::ChannelId;
use str0m::media::{MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::endpoint::{Counters, Datagram};

/// Bytes written to the video track and not yet transmitted, past which a
/// peer's units stop being acked (its session then sends nothing more until
/// the queue drains, and resumes at a keyframe). About 1 s of 8 Mbit/s video.
/// With a bandwidth estimate the bound is [`SEND_QUEUE_TIME`] of it, within
/// [`MIN_SEND_QUEUE_BYTES`]..=this.
pub const SEND_QUEUE_BYTES: u64 = 1 << 20;

/// With a bandwidth estimate, the send queue holds at most this long of it:
/// a peer on a slow link is not sent seconds of stale video to wade through.
pub const SEND_QUEUE_TIME: Duration = Duration::from_millis(250);

/// The send queue's bound never goes below this many bytes (a keyframe of
/// a small picture fits).
pub const MIN_SEND_QUEUE_BYTES: u64 = 32 * 1024;

/// Largest data-channel message the hub sends, in bytes. Binary envelopes
/// (PNG stills) are cut into chunks of at most this size, each prefixed by
/// one byte: 1 for the last chunk of an envelope, 0 for the others.
/// Browsers accept 256 KiB messages (`a=max-message-size:262144`); 64 KiB
/// keeps every chunk well under that.
pub const DATA_CHUNK_BYTES: usize = 64 * 1024;

/// Bytes waiting for the data channel before further stills are dropped
/// (counted): room for a few 1080p PNG stills.
pub const DATA_QUEUE_BYTES: usize = 16 << 20;

/// Messages from the data channel waiting for the session before further
/// ones are dropped (counted); the session reads them as fast as it can.
pub const TO_SESSION_QUEUE: usize = 256;

/// Shortest time between two `bandwidth_estimate`s to the session, unless
/// the estimate moved by more than [`ESTIMATE_CHANGE`]: the session's
/// adapter holds a state for a second before it steps, so a few estimates a
/// second are plenty.
pub const ESTIMATE_INTERVAL: Duration = Duration::from_millis(250);

/// A relative change of the estimate that is passed on at once.
pub const ESTIMATE_CHANGE: f64 = 0.2;

/// The bandwidth estimator starts at, and probes for, this many times the
/// stream's best bit rate: an estimate that settles just under its target
/// would otherwise read as too little for the best tier.
pub const BWE_HEADROOM: f64 = 1.5;

/// SCTP send buffer (str0m's `sctp_max_buffered_amount`), in bytes.
pub(crate) const SCTP_BUFFER: usize = 1 << 20;

/// A viewer's session as a peer sees it: two bounded channels.
#[derive(Debug)]
pub struct SessionLink {
    /// What the viewer sent (data-channel text, acks, keyframe requests).
    pub to_session: mpsc::Sender<ViewerMessage>,
    /// What the session sends the viewer.
    pub from_session: mpsc::Receiver<ViewerMessage>,
}

/// Everything a peer task starts with.
pub(crate) struct PeerSetup {
    pub id: u64,
    pub rtc: Rtc,
    pub video: Mid,
    pub pt: Pt,
    /// The host candidate the peer was given: str0m wants it as every
    /// datagram's destination (`../shared/webrtc-notes.md`).
    pub candidate: SocketAddr,
    pub datagrams: tokio::sync::mpsc::Receiver<Datagram>,
    pub link: SessionLink,
    /// Messages from the session read before the answer left (its `config`).
    pub first: Vec<ViewerMessage>,
    pub socket: Arc<UdpSocket>,
    pub counters: Arc<Counters>,
    pub stop: watch::Receiver<bool>,
    pub connect_timeout: Duration,
    /// The stream's best video bit rate, bit/s (0: no bandwidth estimator).
    pub bitrate: u64,
}

/// Why a peer ended (logged through `Debug`, and counted for timeouts).
#[derive(Debug)]
#[allow(dead_code)]
enum End {
    SessionClosed,
    PeerClosed(&'static str),
    ConnectTimeout,
    Stopped,
    Rtc(String),
}

struct Peer {
    id: u64,
    rtc: Rtc,
    video: Mid,
    pt: Pt,
    candidate: SocketAddr,
    socket: Arc<UdpSocket>,
    counters: Arc<Counters>,
    link: SessionLink,
    /// ICE and DTLS are done: media can flow.
    connected: bool,
    channel: Option<ChannelId>,
    /// Data-channel messages waiting (binary?, bytes), and their total size.
    data_queue: VecDeque<(bool, Vec<u8>)>,
    data_bytes: usize,
    /// Messages for the session not yet taken by its channel.
    to_session: VecDeque<ViewerMessage>,
    /// Units written to the video track and not yet acked: (seq, bytes
    /// written up to and including it).
    unacked: VecDeque<(u64, u64)>,
    written: u64,
    transmitted: u64,
    /// The session closed: (when the close was queued) — the peer ends once
    /// the data channel has sent it, or after a second.
    closing: Option<Instant>,
    /// The stream's best video bit rate, bit/s (0: no estimator).
    bitrate: u64,
    /// str0m's latest bandwidth estimate, bit/s.
    estimate: Option<u64>,
    /// The last bandwidth estimate passed to the session: (when, bit/s).
    estimate_sent: Option<(Instant, u64)>,
}

/// Runs one peer until it ends; the caller removes its routes.
pub(crate) async fn run(setup: PeerSetup) {
    let PeerSetup {
        id,
        rtc,
        video,
        pt,
        candidate,
        mut datagrams,
        link,
        first,
        socket,
        counters,
        mut stop,
        connect_timeout,
        bitrate,
    } = setup;
    let mut peer = Peer {
        id,
        rtc,
        video,
        pt,
        candidate,
        socket,
        counters,
        link,
        connected: false,
        channel: None,
        data_queue: VecDeque::new(),
        data_bytes: 0,
        to_session: VecDeque::new(),
        unacked: VecDeque::new(),
        written: 0,
        transmitted: 0,
        closing: None,
        bitrate,
        estimate: None,
        estimate_sent: None,
    };
    for m in first {
        peer.on_session_message(m);
    }
    let deadline = Instant::now() + connect_timeout;
    let end = peer.drive(&mut datagrams, &mut stop, deadline).await;
    match &end {
        End::ConnectTimeout => {
            peer.counters
                .connect_timeouts
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                peer = id,
                "WebRTC peer did not connect in {connect_timeout:?}: dropped"
            );
        }
        other => tracing::debug!(peer = id, why = ?other, "WebRTC peer ended"),
    }
    if peer.rtc.is_alive() {
        // Best effort: tell the browser (DTLS close_notify, RTCP BYE).
        if peer.rtc.close().is_ok() {
            let _ = peer.drain();
        }
    }
    peer.link.to_session.close_channel();
}

impl Peer {
    async fn drive(
        &mut self,
        datagrams: &mut tokio::sync::mpsc::Receiver<Datagram>,
        stop: &mut watch::Receiver<bool>,
        connect_deadline: Instant,
    ) -> End {
        loop {
            let timeout = match self.drain() {
                Ok(t) => t,
                Err(end) => return end,
            };
            if let Err(end) = self.flush_data() {
                return end;
            }
            self.ack_transmitted();
            self.send_estimate();
            self.flush_to_session();
            if let Some(at) = self.closing {
                if self.data_queue.is_empty() || at.elapsed() > Duration::from_secs(1) {
                    return End::SessionClosed;
                }
            }
            let want_session = self.closing.is_none() && self.to_session.len() < TO_SESSION_QUEUE;
            let waiting_for_session = !self.to_session.is_empty();
            tokio::select! {
                d = datagrams.recv() => match d {
                    Some(d) => {
                        let input = match d.data.as_slice().try_into() {
                            Ok(contents) => Input::Receive(d.at, Receive {
                                proto: Protocol::Udp,
                                source: d.source,
                                destination: self.candidate,
                                contents,
                            }),
                            // Not STUN, DTLS, RTP or RTCP: ignored.
                            Err(_) => continue,
                        };
                        if let Err(e) = self.rtc.handle_input(input) {
                            return End::Rtc(e.to_string());
                        }
                    }
                    None => return End::Stopped,
                },
                m = self.link.from_session.next(), if want_session => match m {
                    Some(m) => self.on_session_message(m),
                    None => return End::SessionClosed,
                },
                _ = futures_util::future::poll_fn(|cx| self.link.to_session.poll_ready(cx)), if waiting_for_session => {}
                _ = tokio::time::sleep_until(timeout.into()) => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        return End::Rtc(e.to_string());
                    }
                }
                _ = tokio::time::sleep_until(connect_deadline.into()), if !self.connected => {
                    return End::ConnectTimeout;
                }
                _ = stop.changed() => return End::Stopped,
            }
        }
    }

    /// Polls the `Rtc` until it names its next timeout, sending what it
    /// transmits and handling its events.
    fn drain(&mut self) -> Result<Instant, End> {
        loop {
            if !self.rtc.is_alive() {
                return Err(End::PeerClosed("the connection closed"));
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok(t),
                Ok(Output::Transmit(t)) => {
                    self.transmitted += t.contents.len() as u64;
                    // UDP: a full socket buffer loses the datagram, as the network may.
                    if self.socket.try_send_to(&t.contents, t.destination).is_err() {
                        self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Output::Event(e)) => self.on_event(e)?,
                Err(e) => return Err(End::Rtc(e.to_string())),
            }
        }
    }

    fn on_event(&mut self, e: Event) -> Result<(), End> {
        match e {
            Event::Connected => {
                self.connected = true;
                self.counters.connected.fetch_add(1, Ordering::Relaxed);
                // Units before now were dropped: start the picture with a keyframe.
                self.queue_to_session(r#"{"type":"request_keyframe","reason":"webrtc connected"}"#);
                if self.bitrate > 0 {
                    // Probe for the best tier's rate (padding only as the estimate allows).
                    let desired = (self.bitrate as f64 * BWE_HEADROOM) as u64;
                    self.rtc
                        .bwe()
                        .set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
                }
            }
            Event::EgressBitrateEstimate(
                BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. },
            ) => self.on_estimate(estimate.as_u64()),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err(End::PeerClosed("ICE disconnected"));
            }
            Event::ChannelOpen(id, label) if self.channel.is_none() => {
                tracing::debug!(peer = self.id, %label, "data channel open");
                self.channel = Some(id);
                if let Some(mut ch) = self.rtc.channel(id) {
                    ch.set_buffered_amount_low_threshold(SCTP_BUFFER / 4);
                }
            }
            Event::ChannelClose(id) if self.channel == Some(id) => {
                return Err(End::PeerClosed("data channel closed"));
            }
            Event::ChannelData(d) if !d.binary => match String::from_utf8(d.data) {
                Ok(text) => self.queue_to_session(&text),
                Err(_) => self.queue_to_session("\u{fffd}"),
            },
            Event::KeyframeRequest(r) if r.mid == self.video => {
                self.queue_to_session(r#"{"type":"request_keyframe","reason":"webrtc pli"}"#);
            }
            _ => {}
        }
        Ok(())
    }

    /// Notes str0m's latest bandwidth estimate (bit/s) and passes it on.
    fn on_estimate(&mut self, bps: u64) {
        self.estimate = Some(bps);
        self.send_estimate();
    }

    /// Passes the latest bandwidth estimate to the session, which picks the
    /// peer's tier from it: every [`ESTIMATE_INTERVAL`] (str0m reports only
    /// changes, and the session's adapter decides again on each), and at
    /// once when it moved by more than [`ESTIMATE_CHANGE`].
    fn send_estimate(&mut self) {
        let Some(bps) = self.estimate else {
            return;
        };
        let now = Instant::now();
        let due = self.estimate_sent.is_none_or(|(at, last)| {
            let moved = (bps as f64 - last as f64).abs() > ESTIMATE_CHANGE * last.max(1) as f64;
            moved || now.duration_since(at) >= ESTIMATE_INTERVAL
        });
        if due {
            self.estimate_sent = Some((now, bps));
            self.queue_to_session(&format!(
                r#"{{"type":"bandwidth_estimate","bitrate":{bps}}}"#
            ));
        }
    }

    /// Carries out one message from the session.
    fn on_session_message(&mut self, m: ViewerMessage) {
        match m {
            ViewerMessage::Text(t) => self.queue_data(false, t.into_bytes()),
            ViewerMessage::Binary(b) => self.envelope(b),
            ViewerMessage::Close { code, reason } => {
                let msg = serde_json::json!({"type": "close", "code": code, "reason": reason});
                self.queue_data(false, msg.to_string().into_bytes());
                self.closing = Some(Instant::now());
            }
        }
    }

    fn envelope(&mut self, b: Bytes) {
        let Ok((header, payload)) = envelope::parse(&b) else {
            tracing::error!(
                peer = self.id,
                "the session sent an envelope that does not parse"
            );
            return;
        };
        match header {
            FrameHeader::VideoChunk {
                seq, timestamp_us, ..
            } => {
                if !self.connected {
                    // str0m drops media before ICE connects; the viewer gets a keyframe then.
                    self.ack(seq, false);
                    return;
                }
                let Some(writer) = self.rtc.writer(self.video) else {
                    self.ack(seq, false);
                    return;
                };
                // The RTP clock of video is 90 kHz (RFC 6184 §8.2.1).
                let rtp_time = MediaTime::from_90khz(timestamp_us.saturating_mul(9) / 100);
                let unit: Arc<[u8]> = Arc::from(payload);
                match writer.write(self.pt, Instant::now(), rtp_time, unit) {
                    Ok(()) => {
                        self.written += payload.len() as u64;
                        self.unacked.push_back((seq, self.written));
                    }
                    Err(e) => {
                        tracing::debug!(peer = self.id, error = %e, "video write failed");
                        self.ack(seq, false);
                    }
                }
            }
            other => {
                let seq = other.seq();
                if self.data_bytes + b.len() > DATA_QUEUE_BYTES {
                    self.counters.dropped_stills.fetch_add(1, Ordering::Relaxed);
                    self.ack(seq, false);
                    return;
                }
                let mut chunks = b.chunks(DATA_CHUNK_BYTES).peekable();
                while let Some(c) = chunks.next() {
                    let mut m = Vec::with_capacity(c.len() + 1);
                    m.push(u8::from(chunks.peek().is_none()));
                    m.extend_from_slice(c);
                    self.queue_data(true, m);
                }
                self.ack(seq, true);
            }
        }
    }

    fn queue_data(&mut self, binary: bool, data: Vec<u8>) {
        self.data_bytes += data.len();
        self.data_queue.push_back((binary, data));
    }

    /// Writes queued data-channel messages while SCTP takes them (one
    /// mutation, then a drain, each).
    fn flush_data(&mut self) -> Result<(), End> {
        let Some(id) = self.channel else {
            return Ok(());
        };
        while let Some((binary, data)) = self.data_queue.front() {
            let Some(mut ch) = self.rtc.channel(id) else {
                return Ok(());
            };
            match ch.write(*binary, data) {
                Ok(true) => {
                    let len = data.len();
                    self.data_queue.pop_front();
                    self.data_bytes -= len;
                    self.drain()?;
                }
                // Full: ChannelBufferedAmountLow wakes the loop.
                Ok(false) => return Ok(()),
                Err(e) => return Err(End::Rtc(e.to_string())),
            }
        }
        Ok(())
    }

    /// Acks units whose bytes are within the send queue's bound of what
    /// was transmitted: [`SEND_QUEUE_TIME`] of the bandwidth estimate, or
    /// [`SEND_QUEUE_BYTES`] without one.
    fn ack_transmitted(&mut self) {
        let bound = match self.estimate {
            Some(bps) => ((bps as f64 / 8.0 * SEND_QUEUE_TIME.as_secs_f64()) as u64)
                .clamp(MIN_SEND_QUEUE_BYTES, SEND_QUEUE_BYTES),
            None => SEND_QUEUE_BYTES,
        };
        while let Some(&(seq, upto)) = self.unacked.front() {
            if upto > self.transmitted + bound {
                break;
            }
            self.unacked.pop_front();
            self.ack(seq, true);
        }
    }

    fn ack(&mut self, seq: u64, displayed: bool) {
        let ack = format!(
            r#"{{"type":"ack","seq":{seq},"decode_queue_size":0,"displayed":{displayed}}}"#
        );
        self.to_session.push_back(ViewerMessage::Text(ack));
    }

    fn queue_to_session(&mut self, text: &str) {
        if self.to_session.len() >= TO_SESSION_QUEUE {
            self.counters
                .dropped_messages
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.to_session
            .push_back(ViewerMessage::Text(text.to_string()));
    }

    fn flush_to_session(&mut self) {
        while let Some(m) = self.to_session.pop_front() {
            match self.link.to_session.try_send(m) {
                Ok(()) => {}
                Err(e) if e.is_full() => {
                    self.to_session.push_front(e.into_inner());
                    return;
                }
                // The session ended: the loop sees its channel close.
                Err(_) => {
                    self.to_session.clear();
                    return;
                }
            }
        }
    }
}
