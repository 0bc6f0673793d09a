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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_positive_cost() {
        let us = tcp_send_us(64 * 1024, Duration::from_millis(50)).expect("loopback send");
        assert!(us > 0.0 && us.is_finite(), "{us}");
    }
}
