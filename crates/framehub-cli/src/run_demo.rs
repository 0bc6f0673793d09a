//! `framehub demo`: one hub, one stream per demo scene, each scene driven by
//! its own thread at its tick rate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use framehub::{Frame, Server, StreamConfig};

use framehub_demo::{self as demo, Scene};

/// Options of `framehub demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = framehub::DEFAULT_PORT)]
    pub port: u16,
    #[command(flatten)]
    pub nats: crate::nats_args::NatsArgs,
}

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
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
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for scene in demo::all_scenes() {
        let (w, h) = scene.size();
        // Adaptive quality: a JPEG viewer on a congested link steps down
        // (and back up) without slowing the others.
        let cfg = StreamConfig::default()
            .stats_interval(Duration::from_secs(1))
            .adaptive(true)
            .h264(scene.continuous());
        let stream = server.add_stream(scene.name(), w, h, cfg)?;
        let stop = Arc::clone(&stop);
        threads.push(
            std::thread::Builder::new()
                .name(format!("scene-{}", scene.name()))
                .spawn(move || {
                    drive(scene, stream, &stop);
                })?,
        );
    }
    say!("framehub listening on http://{addr}/");
    for name in server.stream_names() {
        say!("  stream '{name}': http://{addr}/{name}");
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    esay!("shutting down");
    stop.store(true, Ordering::Relaxed);
    server.close().await;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Ticks one scene: applies its viewers' events, renders when it changed, publishes.
fn drive(mut scene: Box<dyn Scene>, stream: framehub::Stream, stop: &AtomicBool) {
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / scene.tick_hz().max(1.0));
    let mut buf = Vec::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        for ev in stream.poll_events() {
            scene.handle_event(&ev.event);
        }
        if scene.render(start.elapsed().as_secs_f64(), &mut buf) {
            let (w, h) = scene.size();
            if let Err(e) = stream.publish(Frame::rgba(w, h, &buf[..])) {
                tracing::debug!(error = %e, "publish refused; scene stops");
                return;
            }
        }
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}
