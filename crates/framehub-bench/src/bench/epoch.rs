//! Where the stream's clock starts on the wall clock: the base of the
//! latencies (see `client.rs`).
//!
//! The hub stamps each frame with `timestamp_us`, µs since the stream's
//! creation `Instant`, which it does not expose. Two things bound that
//! instant on the wall clock (`SystemTime`, which the client also reads):
//!
//! * **`add_stream` itself**: the `Instant` is taken inside it, so it lies
//!   between a read just before and one just after. For an image stream the
//!   two are ≈ 0.1 ms apart. An H.264 stream first probes its codec (one
//!   encode of a black frame, 5–30 ms) and takes the `Instant` after that,
//!   so the read before is that much early; the read after can be late by
//!   however long the orchestrator was kept off the CPU on a busy machine.
//! * **An echo**: before the publisher starts, a short-lived viewer sends
//!   `set_viewport` a few times. The hub turns each into a `resize` event
//!   stamped `received_us` on the stream's clock the moment it reads it.
//!   Sent at wall time `s` and taken from the queue at `r`, the stream was
//!   created between `s − received_us` and `r − received_us`.
//!
//! The base is the largest of these lower bounds, so latencies are
//! overstated, never understated, by at most the bracket's width
//! ([`Epoch::error_us`]: the base to the smallest upper bound).

use std::time::Duration;

use anyhow::{bail, Context};
use framehub::{InputEvent, Stream};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::client::now_unix_us;

/// Echoes sent; the tightest lower bound among them wins.
const ECHOES: usize = 5;

/// The stream's creation on the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Epoch {
    /// µs since the Unix epoch: the largest lower bound found.
    pub base_unix_us: u64,
    /// Width of the bracket, µs: how much a latency may be overstated.
    pub error_us: u64,
    /// Whether the echo gave the base (else the read before `add_stream` did).
    pub from_echo: bool,
}

impl Epoch {
    /// The bracket `add_stream` gives alone: `before` and `after` are wall-clock reads around it.
    pub fn around_add_stream(before: u64, after: u64) -> Epoch {
        Epoch {
            base_unix_us: before,
            error_us: after.saturating_sub(before),
            from_echo: false,
        }
    }

    /// Narrows `self` with the echoes of a viewer of `stream` at `url`
    /// (`ws://…/<stream>`). Call it before anything is published: the
    /// viewer lists `image/jpeg` and would otherwise get frames. It leaves
    /// the stream's event queue empty and closes its socket before returning.
    pub async fn refine(self, url: &str, stream: &Stream) -> anyhow::Result<Epoch> {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let hello = r#"{"type":"hello","supported":["image/jpeg"],"device_pixel_ratio":1.0}"#;
        ws.send(Message::Text(hello.into())).await?;
        tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(msg) = ws.next().await {
                if let Message::Text(t) = msg? {
                    if t.as_str().contains(r#""type":"config""#) {
                        return Ok(());
                    }
                }
            }
            bail!("closed before config")
        })
        .await
        .context("no config within 5 s")??;
        stream.poll_events();

        let (mut lower, mut upper) = (self.base_unix_us, self.base_unix_us + self.error_us);
        let mut from_echo = false;
        let viewport = r#"{"type":"set_viewport","width":640,"height":360,"pwidth":640,"pheight":360,"ratio":1}"#;
        for _ in 0..ECHOES {
            let sent = now_unix_us();
            ws.send(Message::Text(viewport.into())).await?;
            let (stamp, seen) = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    let resize = stream
                        .poll_events()
                        .into_iter()
                        .find(|e| matches!(e.event, InputEvent::Resize(_)));
                    if let Some(e) = resize {
                        return (e.received_us, now_unix_us());
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            })
            .await
            .context("the hub did not deliver the resize event within 2 s")?;
            let (low, high) = (sent.saturating_sub(stamp), seen.saturating_sub(stamp));
            if low > lower {
                lower = low;
                from_echo = true;
            }
            upper = upper.min(high);
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = ws.close(None).await;
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        stream.poll_events();
        Ok(Epoch {
            base_unix_us: lower,
            error_us: upper.saturating_sub(lower),
            from_echo,
        })
    }
}
