//! A receiving WebRTC peer that makes the offer, as a browser viewer does:
//! framehub's own client for tests and load (`framehub bench`), built on the
//! same str0m as the hub's side.
//!
//! It offers one receive-only H.264 video section and one data channel
//! (labelled `default`, as rtcbot-style clients do), runs full ICE as the
//! controlling agent against the hub's ICE-lite, and hands back what
//! arrives: depacketized access units with their RTP time, and the data
//! channel's messages. Signalling is the caller's: post
//! [`Client::offer_sdp`] to `/<stream>/webrtc` or `/<stream>/whep` and give
//! the answer to [`Client::accept_answer`].
//!
//! Reading is driven by [`Client::next_event`]: a client that stops calling
//! it stops answering the hub at all (its socket buffer fills and drops),
//! which is how the tests make a stalled peer. [`Client::limit_receive`]
//! puts a bottleneck link in front of it (a FIFO drained at a bit rate,
//! with tail drop), so the hub's bandwidth estimator meets a slow network
//! on loopback.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

/// Largest datagram the client reads, bytes (a UDP payload's limit).
const MAX_DATAGRAM: usize = 65_535;

/// The emulated bottleneck's queue, as its longest wait: a datagram that
/// would wait longer is dropped (tail drop), as a router's full buffer does.
pub const LINK_QUEUE_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// A bottleneck link in front of the client: datagrams leave it at
/// `bitrate`, in order.
#[derive(Debug)]
struct Link {
    bitrate: u64,
    /// (when it is delivered, from, the datagram).
    queue: std::collections::VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    /// When the last queued datagram finishes crossing the link.
    busy_until: Instant,
    dropped: u64,
}

/// What the client failed at.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The UDP socket failed.
    #[error("udp: {0}")]
    Io(#[from] std::io::Error),
    /// The answer did not parse or did not fit the offer.
    #[error("answer: {0}")]
    Answer(String),
    /// str0m failed (DTLS, SRTP, SCTP …).
    #[error("webrtc: {0}")]
    Rtc(String),
    /// The connection closed (the hub ended it or ICE timed out).
    #[error("the connection closed")]
    Closed,
}

/// What arrived, in the order it arrived.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// ICE and DTLS are done: media can flow.
    Connected,
    /// The data channel opened (messages may be sent from now).
    ChannelOpen,
    /// One access unit of the video track, depacketized (Annex B).
    Frame(ReceivedFrame),
    /// A text message on the data channel (the protocol's JSON).
    Text(String),
    /// A binary message on the data channel (a chunk of an envelope:
    /// `docs/protocol.md` §13).
    Binary(Vec<u8>),
}

/// An access unit as received.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// Whether it is a keyframe (an IDR access unit).
    pub keyframe: bool,
    /// Its RTP timestamp, 90 kHz units (RFC 6184 §8.2.1), as sent: the hub
    /// puts the frame's publish time (µs since the stream began) × 9 / 100.
    pub rtp_time: u64,
    /// Whether it follows the previous unit with no RTP packet missing.
    pub contiguous: bool,
    /// When its first packet arrived.
    pub received: Instant,
    /// The access unit, Annex B.
    pub data: Arc<[u8]>,
}

/// One receiving peer on its own UDP socket.
pub struct Client {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    video: Mid,
    channel: ChannelId,
    offer: String,
    pending: Option<SdpPendingOffer>,
    channel_open: bool,
    /// Events str0m produced while the client sent (kept for `next_event`).
    events: std::collections::VecDeque<ClientEvent>,
    link: Option<Link>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("local", &self.local)
            .field("channel_open", &self.channel_open)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client on a new UDP socket at `ip` (any port), with its offer made.
    ///
    /// # Errors
    /// [`ClientError::Io`] when the socket cannot be bound;
    /// [`ClientError::Rtc`] when str0m refuses the candidate.
    pub async fn bind(ip: IpAddr) -> Result<Client, ClientError> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .build(Instant::now());
        let candidate =
            Candidate::host(local, "udp").map_err(|e| ClientError::Rtc(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let channel = api.add_channel("default".into());
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| ClientError::Rtc("no offer to make".into()))?;
        Ok(Client {
            rtc,
            socket,
            local,
            video,
            channel,
            offer: offer.to_sdp_string(),
            pending: Some(pending),
            channel_open: false,
            events: std::collections::VecDeque::new(),
            link: None,
            buf: vec![0; MAX_DATAGRAM],
        })
    }

    /// The offer to post (SDP, non-trickle: the candidate is in it).
    pub fn offer_sdp(&self) -> &str {
        &self.offer
    }

    /// The client's UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Applies the hub's answer (SDP); ICE starts on the next
    /// [`next_event`](Self::next_event).
    ///
    /// # Errors
    /// [`ClientError::Answer`] when it does not parse, does not fit the
    /// offer, or was already given.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), ClientError> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| ClientError::Answer("the answer was already given".into()))?;
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| ClientError::Answer(e.to_string()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| ClientError::Answer(e.to_string()))
    }

    /// Receives through a bottleneck of `bitrate` bit/s from now on: each
    /// datagram takes its size × 8 / `bitrate` to cross, behind the ones
    /// before it, and is dropped when it would wait over
    /// [`LINK_QUEUE_DELAY`].
    pub fn limit_receive(&mut self, bitrate: u64) {
        self.link = Some(Link {
            bitrate: bitrate.max(1),
            queue: std::collections::VecDeque::new(),
            busy_until: Instant::now(),
            dropped: 0,
        });
    }

    /// Datagrams the bottleneck dropped.
    pub fn link_drops(&self) -> u64 {
        self.link.as_ref().map_or(0, |l| l.dropped)
    }

    /// Sends a text message on the data channel (the protocol's JSON).
    /// Returns false when the channel is not open yet or its buffer is full.
    ///
    /// # Errors
    /// [`ClientError::Rtc`] when SCTP fails.
    pub fn send_text(&mut self, text: &str) -> Result<bool, ClientError> {
        if !self.channel_open {
            return Ok(false);
        }
        let Some(mut ch) = self.rtc.channel(self.channel) else {
            return Ok(false);
        };
        let sent = ch
            .write(false, text.as_bytes())
            .map_err(|e| ClientError::Rtc(e.to_string()))?;
        self.transmit()?;
        Ok(sent)
    }

    /// Asks the hub for a keyframe with an RTCP PLI (RFC 4585 §6.3.1), as a
    /// browser's decoder does after a loss.
    ///
    /// # Errors
    /// [`ClientError::Rtc`] when str0m fails to send it.
    pub fn request_keyframe(&mut self) -> Result<(), ClientError> {
        if let Some(rx) = self.rtc.direct_api().stream_rx_by_mid(self.video, None) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        self.transmit().map(|_| ())
    }

    /// Drives the connection until something arrives.
    ///
    /// # Errors
    /// [`ClientError::Closed`] once the connection is over; the others when
    /// the socket or str0m fails.
    pub async fn next_event(&mut self) -> Result<ClientEvent, ClientError> {
        loop {
            let timeout = self.transmit()?;
            if let Some(ev) = self.events.pop_front() {
                return Ok(ev);
            }
            if !self.rtc.is_alive() {
                return Err(ClientError::Closed);
            }
            let delivery = self
                .link
                .as_ref()
                .and_then(|l| l.queue.front().map(|d| d.0));
            tokio::select! {
                r = self.socket.recv_from(&mut self.buf) => {
                    let (n, source) = r?;
                    let now = Instant::now();
                    let Some(data) = self.buf.get(..n) else { continue };
                    match self.link.as_mut() {
                        None => self.receive(now, source, data.to_vec())?,
                        Some(link) => {
                            let start = link.busy_until.max(now);
                            if start.duration_since(now) > LINK_QUEUE_DELAY {
                                link.dropped += 1;
                                continue;
                            }
                            let crossing = std::time::Duration::from_secs_f64(
                                (n as f64 * 8.0) / link.bitrate as f64,
                            );
                            link.busy_until = start + crossing;
                            link.queue.push_back((link.busy_until, source, data.to_vec()));
                        }
                    }
                }
                _ = tokio::time::sleep_until(delivery.unwrap_or(timeout).into()), if delivery.is_some() => {
                    // Delivered now (str0m's clock never goes back).
                    let now = Instant::now();
                    while let Some((_, source, data)) = self.link.as_mut().and_then(|l| {
                        l.queue.front().is_some_and(|d| d.0 <= now).then(|| l.queue.pop_front())?
                    }) {
                        self.receive(now, source, data)?;
                    }
                }
                _ = tokio::time::sleep_until(timeout.into()) => {
                    self.rtc
                        .handle_input(Input::Timeout(Instant::now()))
                        .map_err(|e| ClientError::Rtc(e.to_string()))?;
                }
            }
        }
    }

    /// Hands one datagram that arrived at `at` to str0m.
    fn receive(
        &mut self,
        at: Instant,
        source: SocketAddr,
        data: Vec<u8>,
    ) -> Result<(), ClientError> {
        let Ok(contents) = data.as_slice().try_into() else {
            return Ok(()); // not STUN, DTLS, RTP or RTCP
        };
        let input = Input::Receive(
            at,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        self.rtc
            .handle_input(input)
            .map_err(|e| ClientError::Rtc(e.to_string()))
    }

    /// Polls str0m until it names its next timeout: sends what it
    /// transmits and keeps its events for [`next_event`](Self::next_event).
    fn transmit(&mut self) -> Result<Instant, ClientError> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok(t),
                Ok(Output::Transmit(t)) => {
                    // UDP: a full buffer loses the datagram, as the network may.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => {
                    if let Some(ev) = self.on_event(e) {
                        self.events.push_back(ev);
                    }
                }
                Err(e) => return Err(ClientError::Rtc(e.to_string())),
            }
        }
    }

    fn on_event(&mut self, e: Event) -> Option<ClientEvent> {
        match e {
            Event::Connected => Some(ClientEvent::Connected),
            Event::ChannelOpen(id, _) if id == self.channel => {
                self.channel_open = true;
                Some(ClientEvent::ChannelOpen)
            }
            Event::ChannelData(d) if d.id == self.channel => Some(if d.binary {
                ClientEvent::Binary(d.data)
            } else {
                ClientEvent::Text(String::from_utf8_lossy(&d.data).into_owned())
            }),
            Event::MediaData(d) if d.mid == self.video => Some(ClientEvent::Frame(ReceivedFrame {
                keyframe: d.is_keyframe(),
                rtp_time: d.time.rebase(str0m::media::Frequency::NINETY_KHZ).numer(),
                contiguous: d.contiguous,
                received: d.network_time,
                data: d.data,
            })),
            _ => None,
        }
    }
}
