//! The cost of sending bytes: CPU time of one `write` of a message to a
//! loopback TCP socket, the yardstick for the hub's per-viewer cost in the
//! fan-out scenarios ("server CPU grows by no more than the cost of sending
//! bytes", issue 8).
//!
//! A writer thread writes the same `bytes`-long buffer again and again to a
//! TCP connection on `127.0.0.1` (`TCP_NODELAY`, like the hub's sockets)
//! whose other end a reader thread drains and discards. The writer's own
//! CPU time comes from `/proc/thread-self/schedstat` (field 1, ns on a CPU:
//! precise, unlike clock ticks). On loopback, a `write` also runs the
//! receiving side of TCP in the writer's context, as it does for the hub.
//! What it leaves out is everything else the hub does per viewer and frame:
//! the session's bookkeeping, building the envelope (a copy of the
//! payload), WebSocket framing, and reading and parsing the viewer's ack.
//! [`ws_send_ack_us`] adds the framing and the ack: the protocol's own
//! cost of delivering a frame, the yardstick the fan-out check uses.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The writer thread's CPU time so far, ns (`/proc/thread-self/schedstat`, field 1).
fn thread_cpu_ns() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")
        .context("reading /proc/thread-self/schedstat")?;
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("parsing /proc/thread-self/schedstat")
}

/// Writes `bytes`-long messages to a loopback TCP socket for `duration`
/// and returns the writer's CPU time per message, µs.
///
/// Errors: the socket or `/proc` could not be used, or no message was written.
pub fn tcp_send_us(bytes: usize, duration: Duration) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::Builder::new()
        .name("bench-sink".into())
        .spawn(move || -> std::io::Result<()> {
            let (mut sock, _) = listener.accept()?;
            let mut buf = vec![0u8; 256 * 1024];
            while sock.read(&mut buf)? > 0 {}
            Ok(())
        })
        .context("starting the reader thread")?;
    let writer = std::thread::Builder::new()
        .name("bench-sendcost".into())
        .spawn(move || -> anyhow::Result<f64> {
            let mut sock = TcpStream::connect(addr).context("connecting to the listener")?;
            sock.set_nodelay(true)?;
            let message = vec![0x5Au8; bytes.max(1)];
            // A short warm-up: the first writes grow the socket's buffers.
            let warm_until = Instant::now() + duration / 10;
            while Instant::now() < warm_until {
                sock.write_all(&message)?;
            }
            let cpu0 = thread_cpu_ns()?;
            let until = Instant::now() + duration;
            let mut writes = 0u64;
            while Instant::now() < until {
                sock.write_all(&message)?;
                writes += 1;
            }
            let cpu = thread_cpu_ns()?.saturating_sub(cpu0);
            anyhow::ensure!(writes > 0, "no message written");
            Ok(cpu as f64 / writes as f64 / 1000.0)
        })
        .context("starting the writer thread")?;
    let cost = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    // The writer's socket is closed: the reader sees EOF and ends.
    let _ = reader.join();
    cost
}

/// The cost of delivering one frame over this protocol at its simplest:
/// one WebSocket binary message of `bytes` sent to a loopback viewer,
/// and its `ack` (a small JSON text message) read back and parsed. A
/// sender thread (tokio, one thread, `tokio-tungstenite` as the hub's
/// axum uses) does this for `duration`, one message in flight at a time;
/// returns its CPU time per message, µs.
///
/// This is the hub's per-viewer floor: WebSocket framing (a copy of the
/// payload into the socket's write buffer), the `write`, the ack's `read`
/// and parse. What the hub adds is the envelope (a second copy), the
/// session's bookkeeping and the wake-ups between its tasks and threads.
///
/// Errors: the sockets, the handshake or `/proc` failed, or no message was sent.
pub fn ws_send_ack_us(bytes: usize, duration: Duration) -> anyhow::Result<f64> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Bytes, Message};

    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a runtime")
    };
    let viewer = std::thread::Builder::new()
        .name("bench-ws-viewer".into())
        .spawn(move || -> anyhow::Result<()> {
            runtime()?.block_on(async move {
                let url = format!("ws://{addr}/");
                let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
                    .await
                    .context("connecting the viewer")?;
                let mut seq = 0u64;
                while let Some(msg) = ws.next().await {
                    match msg {
                        Ok(Message::Binary(_)) => {
                            let ack = format!(
                                r#"{{"type":"ack","seq":{seq},"decode_queue_size":0,"displayed":true}}"#
                            );
                            ws.send(Message::Text(ack.into())).await?;
                            seq += 1;
                        }
                        Ok(Message::Close(_)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                Ok(())
            })
        })
        .context("starting the viewer thread")?;
    let sender = std::thread::Builder::new()
        .name("bench-ws-sender".into())
        .spawn(move || -> anyhow::Result<f64> {
            runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let (tcp, _) = listener.accept().await.context("accepting the viewer")?;
                tcp.set_nodelay(true)?;
                // The hub's socket settings: its read buffer size (with the
                // default, every read of a small ack zero-fills 128 KiB).
                let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(framehub::VIEWER_READ_BUFFER);
                let mut ws = tokio_tungstenite::accept_async_with_config(tcp, Some(config))
                    .await
                    .context("the WebSocket handshake")?;
                let message = Bytes::from(vec![0x5Au8; bytes.max(1)]);
                let mut sent = 0u64;
                let mut cpu0 = None;
                let start = Instant::now();
                // A short warm-up (the first sends grow the buffers), then the window.
                let (warm, end) = (start + duration / 10, start + duration / 10 + duration);
                while Instant::now() < end {
                    if cpu0.is_none() && Instant::now() >= warm {
                        cpu0 = Some((thread_cpu_ns()?, sent));
                    }
                    ws.send(Message::Binary(message.clone())).await?;
                    sent += 1;
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Text(t))) => {
                                let ack: serde_json::Value = serde_json::from_str(t.as_str())?;
                                anyhow::ensure!(ack["type"] == "ack", "not an ack: {t}");
                                break;
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => return Err(e.into()),
                            None => anyhow::bail!("the viewer left"),
                        }
                    }
                }
                let (cpu_start, sent_start) = cpu0.context("the window never started")?;
                let cpu = thread_cpu_ns()?.saturating_sub(cpu_start);
                let n = sent - sent_start;
                anyhow::ensure!(n > 0, "no message sent");
                let _ = ws.close(None).await;
                Ok(cpu as f64 / n as f64 / 1000.0)
            })
        })
        .context("starting the sender thread")?;
    let cost = sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))?;
    let _ = viewer.join();
    cost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_positive_cost() {
        let us = tcp_send_us(64 * 1024, Duration::from_millis(50)).expect("loopback send");
        assert!(us > 0.0 && us.is_finite(), "{us}");
    }

    #[test]
    fn a_websocket_send_and_its_ack_cost_more_than_nothing() {
        let us = ws_send_ack_us(64 * 1024, Duration::from_millis(100)).expect("loopback WebSocket");
        assert!(us > 0.0 && us.is_finite(), "{us}");
    }
}
