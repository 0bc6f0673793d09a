//! `framehub pipe`: frames from standard input into a stream.
//!
//! Reads YUV4MPEG2 (what `ffmpeg -f yuv4mpegpipe` writes) or raw RGBA/RGB
//! frames of a given size from standard input on a reader thread, publishes
//! each into the stream `--name` of a hub it serves (or, with `--hub`, of a
//! running hub elsewhere, as a remote publisher), paced at the input's
//! frame rate, and keeps the last frame on screen at the end of input.
//! With `--record FILE.mp4` it also records the stream to an MP4 file
//! ([`framehub::Stream::record`]), finalized at exit.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use framehub::{
    Frame, RecordOptions, Recording, RemoteOptions, RemoteStream, Server, Stream, StreamConfig,
};

use crate::y4m::Y4mReader;

/// Input formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// YUV4MPEG2: size and frame rate come from its header.
    Y4m,
    /// Raw 8-bit RGBA, `--size` required.
    Rgba,
    /// Raw 8-bit RGB, `--size` required.
    Rgb,
}

/// Options of `framehub pipe`.
#[derive(clap::Args, Debug)]
pub struct PipeArgs {
    /// The stream's name (its URL path).
    #[arg(long)]
    pub name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = framehub::DEFAULT_PORT)]
    pub port: u16,
    /// What standard input holds.
    #[arg(long, value_enum, default_value_t = InputFormat::Y4m)]
    pub format: InputFormat,
    /// Frame size `WxH` for raw input.
    #[arg(long)]
    pub size: Option<String>,
    /// Frames per second (default: the y4m header's rate, else 30).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Exit at the end of input instead of keeping the last frame on screen.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Publish into the running hub at this URL (`ws://HOST:PORT`) instead
    /// of serving one: the encoding runs here, the viewers are the hub's.
    #[arg(long, value_name = "URL")]
    pub hub: Option<String>,
    /// The publisher's credential for `--hub` (the hub's `--publish-token`).
    #[arg(long, requires = "hub")]
    pub token: Option<String>,
    #[command(flatten)]
    pub nats: crate::nats_args::NatsArgs,
    /// Also record what is published to this MP4 file (H.264 from the
    /// stream's own encoder, fragmented, timed by publish time), finalized
    /// at exit; if the process dies, the file plays up to its last fragment.
    #[arg(long, value_name = "FILE.mp4")]
    pub record: Option<std::path::PathBuf>,
}

/// Largest frame side accepted, in pixels (the hub's limit).
const MAX_SIDE: u32 = 16384;

/// Parses `WxH`.
fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--size '{s}' is not WxH"))?;
    let w: u32 = w
        .trim()
        .parse()
        .with_context(|| format!("--size '{s}': bad width"))?;
    let h: u32 = h
        .trim()
        .parse()
        .with_context(|| format!("--size '{s}': bad height"))?;
    let max = MAX_SIDE;
    if w == 0 || h == 0 || w > max || h > max {
        bail!("--size {w}x{h} is outside 1..={max}");
    }
    Ok((w, h))
}

/// A source of RGBA/RGB frames.
enum Source<R: Read> {
    Y4m(Box<Y4mReader<R>>),
    Raw {
        reader: R,
        width: u32,
        height: u32,
        bpp: usize,
    },
}

impl<R: Read> Source<R> {
    fn size(&self) -> (u32, u32) {
        match self {
            Source::Y4m(y) => (y.width(), y.height()),
            Source::Raw { width, height, .. } => (*width, *height),
        }
    }

    /// Reads the next frame into `buf`; `Ok(false)` at a clean end of input.
    fn next(&mut self, buf: &mut Vec<u8>, index: u64) -> anyhow::Result<bool> {
        match self {
            Source::Y4m(y) => Ok(y.next_frame_rgba(buf)?),
            Source::Raw {
                reader,
                width,
                height,
                bpp,
            } => {
                let len = *width as usize * *height as usize * *bpp;
                buf.resize(len, 0);
                let mut got = 0;
                while got < len {
                    match reader.read(&mut buf[got..]) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e).context("reading standard input"),
                    }
                }
                if got == 0 {
                    return Ok(false);
                }
                if got < len {
                    bail!("input ended inside frame {index}: got {got} of {len} bytes");
                }
                Ok(true)
            }
        }
    }

    fn frame<'a>(&self, buf: &'a [u8]) -> Frame<'a> {
        let (w, h) = self.size();
        match self {
            Source::Raw { bpp: 3, .. } => Frame::rgb(w, h, buf),
            _ => Frame::rgba(w, h, buf),
        }
    }
}

/// Runs the pipe until Ctrl-C (or the end of input with `--exit-at-end`).
pub async fn run(args: PipeArgs) -> anyhow::Result<()> {
    framehub::check_stream_name(&args.name)?;
    if let Some(f) = args.fps {
        if !(f.is_finite() && f > 0.0 && f <= 1000.0) {
            bail!("--fps {f} is outside (0, 1000]");
        }
    }
    let format = args.format;
    let size = args.size.as_deref().map(parse_size).transpose()?;
    // The y4m header says the size: read it before the stream is created.
    let source = tokio::task::spawn_blocking(move || -> anyhow::Result<Source<std::io::Stdin>> {
        let stdin = std::io::stdin();
        Ok(match format {
            InputFormat::Y4m => Source::Y4m(Box::new(
                Y4mReader::new(stdin).context("reading the YUV4MPEG2 header")?,
            )),
            InputFormat::Rgba | InputFormat::Rgb => {
                let (width, height) = size.context("raw input needs --size WxH")?;
                let bpp = if format == InputFormat::Rgba { 4 } else { 3 };
                Source::Raw {
                    reader: stdin,
                    width,
                    height,
                    bpp,
                }
            }
        })
    })
    .await??;
    let fps = args
        .fps
        .or(match &source {
            Source::Y4m(y) => y.fps(),
            Source::Raw { .. } => None,
        })
        .unwrap_or(30.0);
    let (w, h) = source.size();
    // Either a hub of our own, or a remote hub's stream (its source half here).
    let (server, stream, _remote) = match &args.hub {
        None => {
            let cfg = framehub::ServerConfig {
                nats: args.nats.config(),
                ..Default::default()
            };
            let server = Server::builder()
                .config(cfg)
                .bind((args.host.as_str(), args.port))
                .await
                .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
            let addr = server.local_addr().context("listener has an address")?;
            let stream = server.add_stream(&args.name, w, h, StreamConfig::default())?;
            say!("framehub listening on http://{addr}/");
            say!(
                "  stream '{}' ({w}x{h} at {fps:.2} fps): http://{addr}/{}",
                args.name,
                args.name
            );
            (server, stream, None)
        }
        Some(hub) => {
            let url = format!("{}/{}", hub.trim_end_matches('/'), args.name);
            let opts = RemoteOptions {
                token: args.token.clone(),
                takeover: false,
            };
            let remote = RemoteStream::connect_with(&url, w, h, StreamConfig::default(), opts)
                .await
                .with_context(|| format!("cannot publish into {url}"))?;
            let stream = (*remote).clone();
            say!(
                "publishing '{}' ({w}x{h} at {fps:.2} fps) into {hub}",
                args.name
            );
            (stream.server().clone(), stream, Some(remote))
        }
    };
    if let Source::Y4m(y) = &source {
        let range = if y.full_range() { "full" } else { "limited" };
        esay!(
            "input: YUV4MPEG2 {:?}, BT.601 {range} range",
            y.colourspace()
        );
    }

    let recording = match &args.record {
        Some(path) => {
            let rec = stream
                .record(path, RecordOptions::default())
                .with_context(|| format!("cannot record to {}", path.display()))?;
            esay!("recording to {}", path.display());
            Some(rec)
        }
        None => None,
    };

    let reader = tokio::task::spawn_blocking(move || pump(source, &stream, fps));
    let result = tokio::select! {
        done = reader => {
            match done.context("reader thread")? {
                Ok(n) => {
                    esay!("end of input after {n} frames");
                    if !args.exit_at_end {
                        esay!("the last frame stays on screen; Ctrl-C to quit");
                        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    let recorded = stop_recording(recording).await;
    server.close().await;
    result.and(recorded)
}

/// Stops and finalizes `--record`'s file (off the runtime) and says what it holds.
async fn stop_recording(recording: Option<Recording>) -> anyhow::Result<()> {
    let Some(rec) = recording else {
        return Ok(());
    };
    let path = rec.path().display().to_string();
    let stats = tokio::task::spawn_blocking(move || rec.stop())
        .await
        .context("recording thread")?
        .with_context(|| format!("recording to {path} failed"))?;
    esay!(
        "recorded {} frames ({:.2} s, {} bytes{}) to {path}",
        stats.frames,
        stats.duration.as_secs_f64(),
        stats.bytes,
        if stats.dropped > 0 {
            format!(", {} units dropped", stats.dropped)
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Reads and publishes frames at `fps` until the end of input; returns the frame count.
fn pump<R: Read>(mut source: Source<R>, stream: &Stream, fps: f64) -> anyhow::Result<u64> {
    let period = Duration::from_secs_f64(1.0 / fps);
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut n = 0u64;
    while source.next(&mut buf, n).context("reading standard input")? {
        stream.publish(source.frame(&buf))?;
        n += 1;
        let due = start + period.mul_f64(n as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("1280x720").unwrap(), (1280, 720));
        assert!(parse_size("1280").is_err());
        assert!(parse_size("0x10").is_err());
        assert!(parse_size("99999x10").is_err());
    }

    #[test]
    fn raw_source_reports_truncation() {
        let data = [7u8; 2 * 2 * 3 + 5];
        let mut src = Source::Raw {
            reader: &data[..],
            width: 2,
            height: 2,
            bpp: 3,
        };
        let mut buf = Vec::new();
        assert!(src.next(&mut buf, 0).unwrap());
        let err = src.next(&mut buf, 1).unwrap_err().to_string();
        assert!(err.contains("inside frame 1: got 5 of 12 bytes"), "{err}");
    }
}
