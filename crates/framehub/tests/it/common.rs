//! A protocol-speaking test client and picture helpers.

pub use crate::picture::*;

use std::net::SocketAddr;
use std::time::Duration;

use framehub::proto::envelope::{self, FrameHeader};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const T: Duration = Duration::from_secs(5);

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub config: Option<Value>,
}

#[derive(Debug)]
pub enum Received {
    Text(Value),
    Frame(FrameHeader, Vec<u8>),
    Close(u16, String),
}

impl Client {
    pub async fn connect(addr: SocketAddr, path: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
            .await
            .expect("connect");
        Client { ws, config: None }
    }

    /// Connects and completes the handshake listing `supported`; returns the client with its config.
    pub async fn open(addr: SocketAddr, path: &str, supported: &[&str]) -> Client {
        let mut c = Client::connect(addr, path).await;
        c.hello(supported).await;
        match c.recv().await {
            Received::Text(v) if v["type"] == "config" => c.config = Some(v),
            other => panic!("expected config, got {other:?}"),
        }
        c
    }

    pub async fn hello(&mut self, supported: &[&str]) {
        let msg =
            serde_json::json!({"type": "hello", "supported": supported, "device_pixel_ratio": 1.0});
        self.send_json(msg).await;
    }

    pub async fn send_text(&mut self, s: impl Into<String>) {
        self.ws
            .send(Message::Text(s.into().into()))
            .await
            .expect("send");
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    pub async fn ack(&mut self, seq: u64) {
        self.send_json(
            serde_json::json!({"type":"ack","seq":seq,"decode_queue_size":0,"displayed":true}),
        )
        .await;
    }

    pub fn session_id(&self) -> u64 {
        self.config
            .as_ref()
            .and_then(|c| c["session"].as_u64())
            .expect("config.session")
    }

    /// The next message (panics after 5 s).
    pub async fn recv(&mut self) -> Received {
        self.recv_within(T).await.expect("a message within 5 s")
    }

    /// The next message, or None when nothing came within `d`.
    pub async fn recv_within(&mut self, d: Duration) -> Option<Received> {
        loop {
            let msg = match tokio::time::timeout(d, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) => return Some(Received::Close(1006, "ended".into())),
                Ok(Some(Err(e))) => return Some(Received::Close(1006, e.to_string())),
                Ok(Some(Ok(m))) => m,
            };
            return Some(match msg {
                Message::Text(t) => {
                    Received::Text(serde_json::from_str(t.as_str()).expect("server JSON"))
                }
                Message::Binary(b) => {
                    let (h, p) = envelope::parse(&b).expect("valid envelope");
                    Received::Frame(h, p.to_vec())
                }
                Message::Close(Some(f)) => Received::Close(u16::from(f.code), f.reason.to_string()),
                Message::Close(None) => Received::Close(1005, String::new()),
                _ => continue,
            });
        }
    }

    /// The next frame, skipping text messages.
    pub async fn recv_frame(&mut self) -> (FrameHeader, Vec<u8>) {
        loop {
            match self.recv().await {
                Received::Frame(h, p) => return (h, p),
                Received::Text(_) => continue,
                Received::Close(c, r) => panic!("closed {c} {r} while waiting for a frame"),
            }
        }
    }

    /// Waits for the close frame, skipping anything else.
    pub async fn recv_close(&mut self) -> (u16, String) {
        loop {
            if let Received::Close(c, r) = self.recv().await {
                return (c, r);
            }
        }
    }
}

/// A hub with `cfg` listening on a free loopback port, and its address.
pub async fn hub_with(cfg: framehub::ServerConfig) -> (framehub::Server, SocketAddr) {
    let server = framehub::Server::builder()
        .config(cfg)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    (server, addr)
}

pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", path, "text/plain", "").await;
    (status, body)
}

/// One HTTP request; returns (status, headers lower-cased, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}
