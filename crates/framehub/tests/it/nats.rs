//! Hubs joined over NATS (issue 16): an origin hub and two edge hubs on a
//! 3-node NATS cluster started here (`nats-server` must be installed:
//! `apt-get install nats-server`; scripts/setup does it).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use framehub::{
    authenticator, AuthError, Frame, NatsConfig, Principal, Server, ServerConfig, Stream,
    StreamConfig,
};
use futures_util::StreamExt;
use serde_json::json;

use crate::common::*;

/// A NATS cluster of local `nats-server` processes (killed when dropped).
pub struct Cluster {
    nodes: Vec<Option<Child>>,
    ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            let _ = n.kill();
            let _ = n.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Starts `n` nodes with JetStream, routed to each other, on free ports.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, "").await
    }

    /// [`Cluster::start`] with `config` (nats-server configuration text) on every node.
    async fn start_with(n: usize, config: &str) -> Cluster {
        let found = Command::new("nats-server")
            .arg("--version")
            .output()
            .is_ok();
        assert!(
            found,
            "nats-server is not installed: these tests start their own NATS cluster \
             (apt-get install nats-server, or scripts/setup)"
        );
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let dir =
            std::env::temp_dir().join(format!("framehub-nats-{}-{}", std::process::id(), ports[0]));
        let route_urls = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for i in 0..n {
            let sd = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&sd).unwrap();
            let conf = dir.join(format!("n{i}.conf"));
            std::fs::write(&conf, config).unwrap();
            let mut cmd = Command::new("nats-server");
            cmd.arg("-c").arg(&conf);
            cmd.args(["-a", "127.0.0.1", "-p", &ports[i].to_string()])
                .args(["-n", &format!("n{i}"), "-js", "-sd"])
                .arg(&sd);
            if n > 1 {
                cmd.args(["--cluster_name", "fh"])
                    .args(["--cluster", &format!("nats://127.0.0.1:{}", routes[i])])
                    .args(["--routes", &route_urls]);
            }
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nats-server");
            nodes.push(Some(child));
        }
        for p in &ports {
            let deadline = Instant::now() + T;
            while tokio::net::TcpStream::connect(("127.0.0.1", *p))
                .await
                .is_err()
            {
                assert!(
                    Instant::now() < deadline,
                    "nats-server on {p} did not start"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Cluster { nodes, ports, dir }
    }

    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.ports[i])
    }

    /// Kills node `i` (SIGKILL: no goodbye to its clients).
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Logs of the hubs on the test's output (`RUST_LOG`, default `framehub=info`).
pub fn log() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("framehub=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A hub named `id` joined to the cluster at `url`.
pub async fn hub(id: &str, url: &str, grace: Duration) -> (Server, SocketAddr) {
    hub_replicated(id, url, grace, 1).await
}

/// [`hub`] keeping `replicas` copies of the registry.
async fn hub_replicated(
    id: &str,
    url: &str,
    grace: Duration,
    replicas: usize,
) -> (Server, SocketAddr) {
    hub_with(ServerConfig {
        publisher_grace: grace,
        nats: Some(NatsConfig {
            hub_id: Some(id.into()),
            origin_timeout: Duration::from_secs(1),
            registry_replicas: replicas,
            ..NatsConfig::new(url)
        }),
        ..Default::default()
    })
    .await
}

/// Waits until `GET /streams` on `addr` lists every name in `names`.
pub async fn listed(addr: SocketAddr, names: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = http_get(addr, "/streams").await;
        assert_eq!(code, 200);
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        let has = |n: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"].as_str() == Some(n))
        };
        if names.iter().all(|n| has(n)) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} never listed {names:?}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A JPEG frame, or a PNG still (sent once the stream rests), as RGBA.
fn jpeg_rgba(payload: &[u8]) -> Vec<u8> {
    if payload.starts_with(b"\x89PNG") {
        let mut r = png::Decoder::new(std::io::Cursor::new(payload))
            .read_info()
            .unwrap();
        let mut out = vec![0; r.output_buffer_size().unwrap()];
        r.next_frame(&mut out).unwrap();
        return out;
    }
    turbojpeg::decompress(payload, turbojpeg::PixelFormat::RGBA)
        .expect("JPEG")
        .pixels
}

/// Publishes `seed`'s pattern on `stream` until `viewer` receives a frame
/// showing it (decoded and compared); returns how long that took.
async fn picture(stream: &Stream, viewer: &mut Client, seed: u8, within: Duration) -> Duration {
    let want = pattern(64, 48, seed);
    let start = Instant::now();
    while start.elapsed() < within {
        stream.publish(Frame::rgba(64, 48, want.clone())).unwrap();
        if let Some(Received::Frame(h, p)) = viewer.recv_within(Duration::from_millis(50)).await {
            viewer.ack(h.seq()).await;
            if mean_abs_diff(&jpeg_rgba(&p), &want) < 8.0 {
                return start.elapsed();
            }
        }
    }
    panic!("the viewer did not get pattern {seed} within {within:?}");
}

#[tokio::test]
async fn three_hubs_on_one_cluster_serve_every_stream_to_every_viewer() {
    log();
    let mut nats = Cluster::start(3).await;
    let grace = Duration::from_secs(5);
    // The registry in 3 copies: it outlives the node killed below.
    let (origin, origin_addr) = hub_replicated("origin", &nats.url(0), grace, 3).await;
    let (edge1, edge1_addr) = hub_replicated("edge1", &nats.url(1), grace, 3).await;
    let (_edge2, edge2_addr) = hub_replicated("edge2", &nats.url(2), grace, 3).await;
    let cam = origin
        .add_stream("cam", 64, 48, StreamConfig::default())
        .unwrap();
    let _other = edge1
        .add_stream("other.one", 32, 32, StreamConfig::default())
        .unwrap();
    // Every hub lists every stream of the system.
    for addr in [origin_addr, edge1_addr, edge2_addr] {
        let list = listed(addr, &["cam", "other.one"]).await;
        let cam_entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "cam")
            .unwrap();
        assert_eq!(
            (cam_entry["width"].clone(), cam_entry["height"].clone()),
            (json!(64), json!(48))
        );
        assert_eq!(cam_entry["origin"], "origin", "{list}");
    }
    // Viewers on both edges get the origin's pictures.
    let mut v1 = Client::open(edge1_addr, "/cam", &["image/jpeg"]).await;
    let mut v2 = Client::open(edge2_addr, "/cam", &["image/jpeg"]).await;
    picture(&cam, &mut v1, 1, T).await;
    picture(&cam, &mut v2, 2, T).await;
    picture(&cam, &mut v1, 3, T).await;
    // Encoded once per variant, whatever the number of edges: at most one
    // JPEG per published picture at the origin.
    let published_jpegs =
        cam.encode_count(framehub::OutputFormat::Image(framehub::ImageFormat::Jpeg));
    assert!(published_jpegs > 0);
    // An edge viewer's event reaches the origin's program, with its hub.
    v1.send_json(json!({"type":"event","event":{"event_type":"key_down","key":"r","code":"KeyR"}}))
        .await;
    let deadline = Instant::now() + T;
    let ev = loop {
        if let Some(ev) = cam.poll_events().into_iter().next() {
            break ev;
        }
        assert!(Instant::now() < deadline, "no event reached the origin");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ev.event.event_type(), "key_down");
    assert_eq!(ev.hub.as_deref(), Some("edge1"));
    assert_eq!(ev.client_id, v1.session_id());
    // Kill the NATS node edge1 is connected to: its viewers get pictures
    // again within 2 s (the client moves to another node).
    nats.kill(1);
    let took = picture(&cam, &mut v1, 4, Duration::from_secs(4)).await;
    assert!(
        took < Duration::from_secs(2),
        "frames came back after {took:?}"
    );
    picture(&cam, &mut v2, 5, T).await;
    // The registry still works without the dead node: a new stream appears.
    let _late = origin
        .add_stream("late", 16, 16, StreamConfig::default())
        .unwrap();
    listed(edge2_addr, &["late"]).await;
    // An edge dies: the other edge's viewers see no gap.
    edge1.close().await;
    drop(edge1);
    let took = picture(&cam, &mut v2, 6, T).await;
    assert!(took < Duration::from_secs(1), "a gap of {took:?}");
}

#[tokio::test]
async fn units_over_the_servers_max_payload_go_in_chunks_and_arrive_whole() {
    log();
    let nats = Cluster::start_with(1, "max_payload: 8192\n").await;
    let grace = Duration::from_secs(5);
    let (origin, _) = hub("o3", &nats.url(0), grace).await;
    let (_edge, edge_addr) = hub("e3", &nats.url(0), grace).await;
    let cfg = StreamConfig {
        preferred_image: framehub::ImageFormat::Png,
        ..StreamConfig::default()
    };
    let noise = origin.add_stream("noise", 64, 48, cfg).unwrap();
    listed(edge_addr, &["noise"]).await;
    let mut v = Client::open(edge_addr, "/noise", &["image/png"]).await;
    // Noise does not compress: its PNG is over 12 KB, more than 8 KiB.
    let mut x = 12345u32;
    let want: Vec<u8> = (0..64 * 48 * 4)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if i % 4 == 3 {
                255
            } else {
                (x >> 16) as u8
            }
        })
        .collect();
    let deadline = Instant::now() + T;
    loop {
        noise.publish(Frame::rgba(64, 48, want.clone())).unwrap();
        if let Some(Received::Frame(h, p)) = v.recv_within(Duration::from_millis(100)).await {
            v.ack(h.seq()).await;
            assert!(p.len() > 8192, "the PNG is only {} bytes", p.len());
            let mut r = png::Decoder::new(std::io::Cursor::new(p))
                .read_info()
                .unwrap();
            let mut out = vec![0; r.output_buffer_size().unwrap()];
            r.next_frame(&mut out).unwrap();
            assert_eq!(out, want, "the picture arrived exactly");
            break;
        }
        assert!(Instant::now() < deadline, "no frame through 8 KiB messages");
    }
    let (_, text) = http_get(edge_addr, "/_/prometheus").await;
    let _ = text;
    let (_, text) = http_get(origin.local_addr().unwrap(), "/_/prometheus").await;
    let chunked =
        crate::rest::prometheus_sample(&text, "framehub_nats_chunked_units_total", r#"hub="o3""#);
    assert!(chunked.unwrap_or(0.0) >= 1.0, "{text}");
}

#[tokio::test]
async fn the_origin_decides_who_views_and_its_death_ends_the_stream_on_edges() {
    log();
    let nats = Cluster::start(3).await;
    let grace = Duration::from_millis(800);
    let (origin, _) = hub("o2", &nats.url(0), grace).await;
    let (_edge, edge_addr) = hub("e2", &nats.url(2), grace).await;
    let cfg = StreamConfig {
        authenticate: Some(authenticator(|ctx: framehub::AuthContext| async move {
            match ctx.token.as_deref() {
                Some("good") => Ok(Some(Principal::new("ann"))),
                _ => Err(AuthError("no".into())),
            }
        })),
        ..StreamConfig::default()
    };
    let mut lifecycle = Box::pin(_edge.lifecycle());
    let cam = origin.add_stream("cam", 64, 48, cfg).unwrap();
    listed(edge_addr, &["cam"]).await;
    // The edge announced the origin's stream (as /_/events would).
    let created = tokio::time::timeout(T, lifecycle.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        created,
        framehub::LifecycleEvent::StreamCreated {
            stream: "cam".into(),
            width: 64,
            height: 48,
            remote: true
        }
    );
    // The origin's authenticator decides, for a viewer of the edge.
    let mut bad = Client::connect(edge_addr, "/cam?token=bad").await;
    bad.hello(&["image/jpeg"]).await;
    assert_eq!(bad.recv_close().await.0, 4401);
    let mut v = Client::open(edge_addr, "/cam?token=good", &["image/jpeg"]).await;
    picture(&cam, &mut v, 7, T).await;
    v.send_json(json!({"type":"event","event":{"event_type":"key_up","key":"a"}}))
        .await;
    let deadline = Instant::now() + T;
    let ev = loop {
        if let Some(ev) = cam.poll_events().into_iter().next() {
            break ev;
        }
        assert!(Instant::now() < deadline, "no event reached the origin");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ev.principal.as_ref().map(|p| p.as_str()), Some("ann"));
    // The origin dies: the edge's viewer is told the publisher is offline,
    // then the stream ends after the grace period.
    drop(cam);
    origin.close().await;
    drop(origin);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match v.recv_within(Duration::from_secs(5)).await {
            Some(Received::Text(m)) if m["type"] == "status" => {
                assert_eq!(m["publisher"], "offline");
                break;
            }
            Some(Received::Frame(h, _)) => v.ack(h.seq()).await,
            Some(Received::Text(_)) => {}
            other => panic!("expected status offline, got {other:?}"),
        }
        assert!(Instant::now() < deadline, "never told offline");
    }
    assert_eq!(v.recv_close().await.0, 4410);
}

/// An edge hub on a runtime of its own (one thread, in a thread of its
/// own) that can be made slow: while `stalling` is set, a task blocks the
/// runtime for 300 ms of every 350 ms, as an edge starved of CPU or stuck
/// would be. Units from NATS then arrive in bursts beyond its queue.
struct SlowEdge {
    addr: SocketAddr,
    stalling: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowEdge {
    fn start(id: &str, url: &str, edge_queue: usize) -> SlowEdge {
        use std::sync::atomic::Ordering;
        let stalling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let cfg = ServerConfig {
            publisher_grace: Duration::from_secs(10),
            nats: Some(NatsConfig {
                hub_id: Some(id.into()),
                edge_queue,
                // A stalled edge must not take the origin for dead.
                origin_timeout: Duration::from_secs(10),
                ..NatsConfig::new(url)
            }),
            ..Default::default()
        };
        let flag = std::sync::Arc::clone(&stalling);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (server, addr) = hub_with(cfg).await;
                addr_tx.send(addr).unwrap();
                tokio::spawn(async move {
                    loop {
                        if flag.load(Ordering::Relaxed) {
                            // Blocks this runtime's only thread: nothing of
                            // the hub runs meanwhile.
                            std::thread::sleep(Duration::from_millis(300));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
                let _ = stop_rx.await;
                server.close().await;
            });
        });
        let addr = addr_rx.recv_timeout(T).expect("the slow edge started");
        SlowEdge {
            addr,
            stalling,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn stall(&self, on: bool) {
        self.stalling
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for SlowEdge {
    fn drop(&mut self) {
        self.stall(false);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A viewer that acks every frame at once and notes when each arrived, until `until`.
fn frame_times(mut c: Client, until: Instant) -> tokio::task::JoinHandle<Vec<Instant>> {
    tokio::spawn(async move {
        let mut times = Vec::new();
        while Instant::now() < until {
            match c.recv_within(Duration::from_millis(50)).await {
                Some(Received::Frame(h, _)) => {
                    times.push(Instant::now());
                    c.ack(h.seq()).await;
                }
                Some(Received::Close(code, why)) => panic!("viewer closed: {code} {why}"),
                _ => {}
            }
        }
        times
    })
}

/// How many of `times` fall in `[from, to)`, per second.
fn rate(times: &[Instant], (from, to): (Instant, Instant)) -> f64 {
    times.iter().filter(|t| **t >= from && **t < to).count() as f64 / (to - from).as_secs_f64()
}

/// The slow edge's dropped-units counter (`GET /_/prometheus`).
async fn dropped_units(addr: SocketAddr, hub: &str) -> f64 {
    let (_, text) = http_get(addr, "/_/prometheus").await;
    crate::rest::prometheus_sample(
        &text,
        "framehub_nats_edge_dropped_units_total",
        &format!("hub=\"{hub}\""),
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_edge_drops_units_for_its_own_viewers_and_slows_nobody_else() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    log();
    let nats = Cluster::start(1).await;
    let grace = Duration::from_secs(10);
    let (origin, origin_addr) = hub("o5", &nats.url(0), grace).await;
    let (_fast, fast_addr) = hub("fast5", &nats.url(0), grace).await;
    let slow = SlowEdge::start("slow5", &nats.url(0), 4);
    let cam = origin
        .add_stream("cam", 64, 48, StreamConfig::default())
        .unwrap();
    listed(fast_addr, &["cam"]).await;
    listed(slow.addr, &["cam"]).await;
    // A publisher at 30 fps, each frame a new picture, on a thread of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (cam, stop, published) = (cam.clone(), Arc::clone(&stop), Arc::clone(&published));
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_millis(33) * i;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let _ = cam.publish(Frame::rgba(64, 48, pattern(64, 48, (i % 251) as u8)));
                published.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    let on_origin = Client::open(origin_addr, "/cam", &["image/jpeg"]).await;
    let on_fast = Client::open(fast_addr, "/cam", &["image/jpeg"]).await;
    let on_slow = Client::open(slow.addr, "/cam", &["image/jpeg"]).await;
    // 1 s to settle, 3 s as they are, 0.5 s to settle, 3 s with the slow edge stalling.
    let t0 = Instant::now() + Duration::from_secs(1);
    let normal = (t0, t0 + Duration::from_secs(3));
    let stalled = (
        normal.1 + Duration::from_millis(500),
        normal.1 + Duration::from_millis(3500),
    );
    let viewers = [
        frame_times(on_origin, stalled.1),
        frame_times(on_fast, stalled.1),
        frame_times(on_slow, stalled.1),
    ];
    let jpeg = framehub::OutputFormat::Image(framehub::ImageFormat::Jpeg);
    tokio::time::sleep_until(normal.0.into()).await;
    let encodes0 = cam.encode_count(jpeg);
    tokio::time::sleep_until(normal.1.into()).await;
    let encodes1 = cam.encode_count(jpeg);
    let dropped_before = dropped_units(slow.addr, "slow5").await;
    slow.stall(true);
    tokio::time::sleep_until(stalled.0.into()).await;
    let encodes2 = cam.encode_count(jpeg);
    tokio::time::sleep_until(stalled.1.into()).await;
    let encodes3 = cam.encode_count(jpeg);
    slow.stall(false);
    let mut times = Vec::new();
    for v in viewers {
        times.push(v.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    let dropped_after = dropped_units(slow.addr, "slow5").await;
    let [origin_t, fast_t, slow_t] = [&times[0], &times[1], &times[2]];
    let figures = format!(
        "frames/s normal → stalled: origin {:.1} → {:.1}, fast edge {:.1} → {:.1}, slow edge {:.1} → {:.1}; \
         origin encodes/s {:.1} → {:.1}; slow edge dropped {dropped_before} → {dropped_after} units; {} published",
        rate(origin_t, normal),
        rate(origin_t, stalled),
        rate(fast_t, normal),
        rate(fast_t, stalled),
        rate(slow_t, normal),
        rate(slow_t, stalled),
        (encodes1 - encodes0) as f64 / 3.0,
        (encodes3 - encodes2) as f64 / 3.0,
        published.load(Ordering::Relaxed),
    );
    eprintln!("{figures}");
    // The slow edge dropped units beyond its queue, and counted them.
    assert!(dropped_after >= dropped_before + 5.0, "{figures}");
    // Its viewer saw the gaps …
    assert!(
        rate(slow_t, stalled) < 0.5 * rate(fast_t, stalled),
        "{figures}"
    );
    // … nobody else did: the origin's encodes, its own viewer and the other
    // edge's viewer kept their rate (≥ 80 % of the normal window's, and
    // near the 30 fps published).
    let kept = |normal_rate: f64, stalled_rate: f64| {
        stalled_rate >= 0.8 * normal_rate && stalled_rate >= 20.0
    };
    assert!(
        kept(
            (encodes1 - encodes0) as f64 / 3.0,
            (encodes3 - encodes2) as f64 / 3.0
        ),
        "{figures}"
    );
    assert!(
        kept(rate(origin_t, normal), rate(origin_t, stalled)),
        "{figures}"
    );
    assert!(
        kept(rate(fast_t, normal), rate(fast_t, stalled)),
        "{figures}"
    );
}
