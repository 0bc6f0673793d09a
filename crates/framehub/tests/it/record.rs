//! MP4 recording (`Stream::record`), read back with `ffprobe` (Debian's
//! `ffmpeg`; `scripts/setup` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use framehub::{Frame, OutputFormat, RecordOptions, Server, StreamConfig};
use serde_json::Value;

use crate::common::*;

/// A file under the test target's scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("record");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// `ffprobe`'s JSON for `path`: the format, the streams, and each packet's
/// time and flags. Fails the test with a clear message when ffprobe is missing.
fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"])
        .args(["-show_entries", "packet=pts_time,duration_time,flags"])
        .args(["-show_packets"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("ffprobe could not be run ({e}): install Debian's `ffmpeg` package (scripts/setup does)")
        });
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The one video stream's codec, size, duration (s) and packet times.
struct Probe {
    codec: String,
    width: u64,
    height: u64,
    duration: f64,
    pts: Vec<f64>,
    keyframes: usize,
}

fn probe(path: &Path) -> Probe {
    let v = ffprobe(path);
    let streams = v["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "one stream: {v}");
    let s = &streams[0];
    let packets = v["packets"].as_array().unwrap();
    Probe {
        codec: s["codec_name"].as_str().unwrap().to_string(),
        width: s["width"].as_u64().unwrap(),
        height: s["height"].as_u64().unwrap(),
        duration: num(&v["format"]["duration"]),
        pts: packets.iter().map(|p| num(&p["pts_time"])).collect(),
        keyframes: packets
            .iter()
            .filter(|p| p["flags"].as_str().is_some_and(|f| f.starts_with('K')))
            .count(),
    }
}

/// Publishes moving pictures at `fps` for `dur`; returns how many.
fn publish_for(stream: &framehub::Stream, w: u32, h: u32, fps: f64, dur: Duration) -> u32 {
    let start = Instant::now();
    let mut i = 0u32;
    while start.elapsed() < dur {
        stream
            .publish(Frame::rgba(w, h, pattern(w, h, (i % 251) as u8)))
            .unwrap();
        i += 1;
        let next = start + Duration::from_secs_f64(f64::from(i) / fps);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    i
}

/// A stream with no viewer and H.264 off records at the pace it was
/// published: a 2 s pause plays as 2 s, the size is the stream's, the
/// duration the wall time recorded (within 5 %).
#[test]
fn records_at_publish_pace_with_a_pause() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(Server::bind("127.0.0.1:0")).unwrap();
    let (w, h) = (320, 240);
    let stream = server
        .add_stream("rec", w, h, StreamConfig::default())
        .unwrap();
    let path = scratch("pace.mp4");
    stream.publish(Frame::rgba(w, h, pattern(w, h, 7))).unwrap();
    let started = Instant::now();
    let rec = stream.record(&path, RecordOptions::default()).unwrap();
    let a = publish_for(&stream, w, h, 30.0, Duration::from_millis(1000));
    std::thread::sleep(Duration::from_secs(2));
    let b = publish_for(&stream, w, h, 30.0, Duration::from_millis(1000));
    let stats = rec.stop().unwrap();
    let wall = started.elapsed().as_secs_f64();

    let p = probe(&path);
    assert_eq!(p.codec, "h264");
    assert_eq!((p.width, p.height), (u64::from(w), u64::from(h)));
    assert!(
        (p.duration - wall).abs() <= 0.05 * wall,
        "duration {:.3} s vs {wall:.3} s recorded",
        p.duration
    );
    assert!(
        (stats.duration.as_secs_f64() - p.duration).abs() < 0.05,
        "{stats:?} vs {:.3}",
        p.duration
    );
    // Every published picture (the frame-rate cap is off), and few more
    // (the resting frame, a still).
    let published = u64::from(a + b);
    assert!(
        stats.frames + 2 >= published && stats.frames <= published + 4,
        "{stats:?}, {published} published"
    );
    assert_eq!(p.pts.len() as u64, stats.frames);
    assert_eq!(stats.dropped, 0);
    assert!(p.keyframes >= 1);
    // The pause: one gap of about 2 s between two pictures.
    let gaps: Vec<f64> = p.pts.windows(2).map(|w| w[1] - w[0]).collect();
    let longest = gaps.iter().cloned().fold(0.0, f64::max);
    assert!(
        (1.7..2.3).contains(&longest),
        "longest gap {longest:.3} s (a 2 s pause, less the sharper still after 0.3 s)"
    );
    let paused: f64 = gaps.iter().filter(|g| **g > 0.2).sum();
    assert!((1.9..2.2).contains(&paused), "pause {paused:.3} s");
    drop(server);
}

/// The recording takes the units of the stream's own chain: with a video
/// viewer watching, the stream encodes each picture once.
#[test]
fn shares_the_viewers_chain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(Server::bind("127.0.0.1:0")).unwrap();
    let addr = server.local_addr().unwrap();
    let (w, h) = (320, 240);
    let stream = server
        .add_stream("v", w, h, StreamConfig::default().h264(true))
        .unwrap();
    let mut viewer = rt.block_on(Client::open(
        addr,
        "/v",
        &["webcodecs/h264-annexb", "image/jpeg"],
    ));
    // The viewer acks what it gets, so it keeps taking frames.
    let acks = rt.spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        while let Ok(Some(r)) =
            tokio::time::timeout_at(deadline, viewer.recv_within(Duration::from_secs(1))).await
        {
            if let Received::Frame(h, _) = r {
                viewer.ack(h.seq()).await;
            }
        }
    });
    let path = scratch("shared.mp4");
    let rec = stream.record(&path, RecordOptions::default()).unwrap();
    let n = publish_for(&stream, w, h, 20.0, Duration::from_millis(1500));
    std::thread::sleep(Duration::from_millis(100));
    let stats = rec.stop().unwrap();
    let encodes = stream.encode_count(OutputFormat::H264);
    // One chain: each picture once, plus a few re-encoded keyframes (the
    // viewer's and the recording's first) and stills.
    assert!(
        encodes <= u64::from(n) + 4,
        "{encodes} H.264 encodes for {n} pictures"
    );
    assert!(stats.frames + 2 >= u64::from(n), "{stats:?}, {n} published");
    let p = probe(&path);
    assert_eq!((p.codec.as_str(), p.width, p.height), ("h264", 320, 240));
    rt.block_on(acks).unwrap();
}

/// Dropping a recording finalizes it; a stream that never published leaves
/// an empty file; a missing directory is an I/O error.
#[test]
fn drop_finalizes_and_errors_are_clear() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(Server::bind("127.0.0.1:0")).unwrap();
    let (w, h) = (160, 120);
    let stream = server
        .add_stream("d", w, h, StreamConfig::default())
        .unwrap();

    let empty = scratch("empty.mp4");
    let rec = stream.record(&empty, RecordOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let stats = rec.stop().unwrap();
    assert_eq!(stats.frames, 0);
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);

    let path = scratch("dropped.mp4");
    let rec = stream.record(&path, RecordOptions::default()).unwrap();
    publish_for(&stream, w, h, 30.0, Duration::from_millis(500));
    drop(rec);
    let p = probe(&path);
    assert_eq!((p.codec.as_str(), p.width, p.height), ("h264", 160, 120));
    assert!(p.duration > 0.4, "{}", p.duration);

    let bad = scratch("no-such-dir").join("x.mp4");
    match stream.record(&bad, RecordOptions::default()) {
        Err(framehub::Error::Io(_)) => {}
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// A size change ends the recording with an error naming it; the file
/// holds the video up to the change.
#[test]
fn size_change_ends_with_an_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(Server::bind("127.0.0.1:0")).unwrap();
    let stream = server
        .add_stream("s", 160, 120, StreamConfig::default())
        .unwrap();
    let path = scratch("resize.mp4");
    let rec = stream.record(&path, RecordOptions::default()).unwrap();
    publish_for(&stream, 160, 120, 30.0, Duration::from_millis(500));
    publish_for(&stream, 320, 240, 30.0, Duration::from_millis(300));
    let deadline = Instant::now() + T;
    while !rec.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    match rec.stop() {
        Err(framehub::Error::Recording(m)) => assert!(m.contains("160x120 to 320x240"), "{m}"),
        other => panic!("expected a recording error, got {other:?}"),
    }
    let p = probe(&path);
    assert_eq!((p.width, p.height), (160, 120));
    assert!(p.duration > 0.4, "{}", p.duration);
}

/// A disk that fills up ends the recording with the I/O error, which
/// `stop()` returns; the stream and its viewers go on.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_ends_the_recording_with_its_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(Server::bind("127.0.0.1:0")).unwrap();
    let addr = server.local_addr().unwrap();
    let (w, h) = (160, 120);
    let stream = server
        .add_stream("full", w, h, StreamConfig::default().h264(true))
        .unwrap();
    // /dev/full: every write fails with ENOSPC.
    let rec = stream
        .record(
            "/dev/full",
            RecordOptions::default().fragment_duration(Duration::from_millis(100)),
        )
        .unwrap();
    publish_for(&stream, w, h, 30.0, Duration::from_millis(600));
    let deadline = Instant::now() + T;
    while !rec.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(rec.is_finished());
    match rec.stop() {
        Err(framehub::Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(28), "{e}"),
        other => panic!("expected ENOSPC, got {other:?}"),
    }
    // A viewer still gets pictures.
    let mut viewer = rt.block_on(Client::open(addr, "/full", &["webcodecs/h264-annexb"]));
    stream.publish(Frame::rgba(w, h, pattern(w, h, 1))).unwrap();
    let (hdr, _) = rt.block_on(viewer.recv_frame());
    assert!(
        matches!(hdr, framehub::proto::FrameHeader::VideoChunk { .. }),
        "{hdr:?}"
    );
}

/// A hub records a remote publisher's stream from the H.264 the publisher
/// sends (the recording is demand the publisher hears of).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_records_a_remote_publishers_stream() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (w, h) = (160, 120);
    let remote = framehub::RemoteStream::connect(
        &format!("ws://{addr}/cam"),
        w,
        h,
        StreamConfig::default().h264(true),
    )
    .await
    .unwrap();
    let hub_side = server.stream("cam").expect("the hub has the remote stream");
    let path = scratch("remote.mp4");
    let rec = hub_side.record(&path, RecordOptions::default()).unwrap();
    let started = Instant::now();
    let mut i = 0u32;
    while started.elapsed() < Duration::from_millis(1500) {
        remote
            .publish(Frame::rgba(w, h, pattern(w, h, (i % 251) as u8)))
            .unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = tokio::task::spawn_blocking(move || rec.stop())
        .await
        .unwrap()
        .unwrap();
    assert!(stats.frames >= u64::from(i) / 2, "{stats:?}, {i} published");
    let p = probe(&path);
    assert_eq!((p.codec.as_str(), p.width, p.height), ("h264", 160, 120));
    assert!(p.duration > 1.0 && p.duration < 1.8, "{}", p.duration);
}
