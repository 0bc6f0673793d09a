//! `framehub pipe --record FILE.mp4`: the file is finalized at exit, and a
//! process killed mid-recording leaves a file readable up to its last
//! fragment. Read back with `ffprobe` (Debian's `ffmpeg`; `scripts/setup`
//! installs it).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A 4:2:0 y4m of `frames` frames, 64×48 at 30 fps, each a different grey ramp.
fn y4m(frames: usize) -> Vec<u8> {
    let (w, h) = (64usize, 48usize);
    let mut out = format!("YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n").into_bytes();
    for i in 0..frames {
        out.extend_from_slice(b"FRAME\n");
        for y in 0..h {
            for x in 0..w {
                out.push(((x * 3 + y + i * 5) % 220 + 16) as u8);
            }
        }
        out.extend(std::iter::repeat_n(128u8, w * h / 2));
    }
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("record");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// (codec, width, height, duration in s, packets) of `path`'s video as
/// ffprobe reads it; fails the test with a clear message when ffprobe is missing.
fn ffprobe(path: &Path) -> (String, u64, u64, f64, usize) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"])
        .args(["-count_packets"])
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
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    let num = |v: &serde_json::Value| v.as_str().unwrap().parse::<f64>().unwrap();
    (
        s["codec_name"].as_str().unwrap().to_string(),
        s["width"].as_u64().unwrap(),
        s["height"].as_u64().unwrap(),
        num(&v["format"]["duration"]),
        num(&s["nb_read_packets"]) as usize,
    )
}

fn pipe(args: &[&str], input: Vec<u8>) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_framehub"))
        .args(["pipe", "--name", "rec", "--port", "0"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run framehub");
    let mut stdin = child.stdin.take().expect("piped stdin");
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    child
}

#[test]
fn pipe_record_is_finalized_at_exit() {
    let path = scratch("pipe.mp4");
    let child = pipe(
        &["--exit-at-end", "--record", path.to_str().unwrap()],
        y4m(60),
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("recorded "), "{err}");
    let (codec, w, h, duration, packets) = ffprobe(&path);
    assert_eq!((codec.as_str(), w, h), ("h264", 64, 48));
    // 60 pictures published at 30 fps: 2 s.
    assert!((1.9..2.2).contains(&duration), "duration {duration}");
    assert!((55..=62).contains(&packets), "{packets} packets");
}

#[test]
fn a_killed_recording_is_readable_up_to_its_last_fragment() {
    let path = scratch("killed.mp4");
    let mut child = pipe(&["--record", path.to_str().unwrap()], y4m(600));
    std::thread::sleep(Duration::from_millis(3300));
    // SIGKILL: no chance to finalize.
    child.kill().unwrap();
    child.wait().unwrap();
    let started = Instant::now();
    let (codec, w, h, duration, packets) = ffprobe(&path);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!((codec.as_str(), w, h), ("h264", 64, 48));
    // About 3.3 s were recorded; whole fragments (1 s at most, ending at
    // keyframes) up to the last one are in the file.
    assert!((1.5..3.4).contains(&duration), "duration {duration}");
    assert!(packets >= 45, "{packets} packets");
    // And it decodes to the end without errors.
    let dec = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(dec.status.success());
    let errors = String::from_utf8_lossy(&dec.stderr);
    assert!(!errors.to_lowercase().contains("invalid data"), "{errors}");
}
