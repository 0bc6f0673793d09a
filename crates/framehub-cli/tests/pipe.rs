//! `framehub pipe` run as a user would: a y4m made here on its standard input.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

#[allow(dead_code)] // the shared harness has helpers this file does not use
#[path = "../../framehub/tests/browser/harness.rs"]
mod harness;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// BT.601 limited-range Y'CbCr of pure red and pure blue (ITU-R BT.601 §2.5.3, rounded).
const RED_YCC: [u8; 3] = [81, 90, 240];
const BLUE_YCC: [u8; 3] = [41, 240, 110];

/// A 4:4:4 y4m of `frames` frames, 64×48: left half red, right half blue.
fn y4m(frames: usize) -> Vec<u8> {
    let (w, h) = (64usize, 48usize);
    let mut out = format!("YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C444\n").into_bytes();
    for _ in 0..frames {
        out.extend_from_slice(b"FRAME\n");
        for plane in 0..3 {
            for _y in 0..h {
                for x in 0..w {
                    out.push(if x < w / 2 {
                        RED_YCC[plane]
                    } else {
                        BLUE_YCC[plane]
                    });
                }
            }
        }
    }
    out
}

struct Pipe {
    child: Child,
    addr: String,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `framehub pipe --name NAME --port 0` fed with `input`; returns once it listens.
fn start(name: &str, input: Vec<u8>) -> Pipe {
    let (child, first) = spawn(&["pipe", "--name", name, "--port", "0"], input);
    Pipe {
        child,
        addr: listening_addr(&first),
    }
}

/// `HOST:PORT` from `framehub listening on http://HOST:PORT/`.
fn listening_addr(first: &str) -> String {
    first
        .trim()
        .strip_prefix("framehub listening on http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string()
}

/// Runs `framehub ARGS` fed with `input`; returns it and its first line of output.
fn spawn(args: &[&str], input: Vec<u8>) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_framehub"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run framehub");
    let mut stdin = child.stdin.take().expect("piped stdin");
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut first)
        .expect("first line");
    (child, first)
}

#[tokio::test]
async fn piped_y4m_reaches_a_viewer_with_the_right_colours() {
    let pipe = start("test", y4m(10));
    check_red_blue(&format!("ws://{}/test", pipe.addr)).await;
}

/// Issue 15: `framehub serve` is a hub with no streams; `framehub pipe
/// --hub` publishes standard input into it as a remote publisher.
#[tokio::test]
async fn pipe_publishes_into_a_hub_that_framehub_serve_runs() {
    let hub = start_serve();
    let (pipe, first) = spawn(
        &[
            "pipe",
            "--name",
            "test",
            "--hub",
            &format!("ws://{}", hub.addr),
        ],
        y4m(10),
    );
    let _pipe = Pipe {
        child: pipe,
        addr: String::new(),
    };
    assert!(first.starts_with("publishing 'test'"), "{first:?}");
    check_red_blue(&format!("ws://{}/test", hub.addr)).await;
}

/// Starts `framehub serve --port 0`; returns once it listens.
fn start_serve() -> Pipe {
    let (child, first) = spawn(&["serve", "--port", "0"], Vec::new());
    Pipe {
        child,
        addr: listening_addr(&first),
    }
}

/// Views `url` as a PNG viewer: the picture is red on the left, blue on the right.
async fn check_red_blue(url: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(
        r#"{"type":"hello","supported":["image/png"]}"#.into(),
    ))
    .await
    .unwrap();
    let png_bytes = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Binary(b) => {
                let (_, payload) = framehub_proto::envelope::parse(&b).unwrap();
                break payload.to_vec();
            }
            _ => continue,
        }
    };
    let mut r = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .unwrap();
    let mut px = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut px).unwrap();
    assert_eq!((info.width, info.height), (64, 48));
    let at = |x: usize, y: usize| &px[(y * 64 + x) * 4..(y * 64 + x) * 4 + 3];
    let near = |a: &[u8], b: [u8; 3]| a.iter().zip(b).all(|(a, b)| a.abs_diff(b) <= 3);
    assert!(
        near(at(10, 20), [255, 0, 0]),
        "left is red: {:?}",
        at(10, 20)
    );
    assert!(
        near(at(50, 20), [0, 0, 255]),
        "right is blue: {:?}",
        at(50, 20)
    );
}

#[test]
fn truncated_input_ends_with_a_clear_error() {
    let mut input = y4m(2);
    input.truncate(input.len() - 100);
    let out = Command::new(env!("CARGO_BIN_EXE_framehub"))
        .args(["pipe", "--name", "t", "--port", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(&input)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("input ended inside frame 1"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn garbage_input_is_refused_without_a_panic() {
    let out = Command::new(env!("CARGO_BIN_EXE_framehub"))
        .args(["pipe", "--name", "t", "--port", "0"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"GIF89a not a y4m\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("YUV4MPEG2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_y4m_reaches_the_browser_with_the_right_colours() {
    let pipe = start("cam", y4m(60));
    let b = harness::Browser::start(640, 480).await;
    b.client
        .goto(&format!("http://{}/cam", pipe.addr))
        .await
        .unwrap();
    b.wait_for(
        "window.framehubStats && window.framehubStats.framesDrawn >= 1",
        Duration::from_secs(15),
        "a frame",
    )
    .await;
    let left = b.frame_pixel(16.0, 24.0).await;
    let right = b.frame_pixel(48.0, 24.0).await;
    assert!(harness::close(left, [255, 0, 0], 16), "left {left:?}");
    assert!(harness::close(right, [0, 0, 255], 16), "right {right:?}");
}

/// Issue 16: `framehub pipe --nats` originates a stream that a `framehub
/// serve --nats` hub lists and serves (over a nats-server started here;
/// `apt-get install nats-server`, scripts/setup does it).
#[tokio::test]
async fn a_piped_stream_is_served_by_another_hub_over_nats() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = std::env::temp_dir().join(format!("framehub-cli-nats-{port}"));
    let nats = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "nats-server is not installed (apt-get install nats-server; scripts/setup does it)",
        );
    let _nats = Pipe {
        child: nats,
        addr: String::new(),
    };
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (child, first) = spawn(
        &[
            "pipe", "--name", "test", "--port", "0", "--nats", &url, "--hub-id", "piper",
        ],
        y4m(10),
    );
    let _origin = Pipe {
        child,
        addr: listening_addr(&first),
    };
    let (child, first) = spawn(&["serve", "--port", "0", "--nats", &url], Vec::new());
    let edge = Pipe {
        child,
        addr: listening_addr(&first),
    };
    // Listed on the edge, with its origin.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = std::net::TcpStream::connect(&edge.addr).unwrap();
        write!(s, "GET /streams HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut body);
        if body.contains(r#""name":"test""#) {
            assert!(body.contains(r#""origin":"piper""#), "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never listed: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    check_red_blue(&format!("ws://{}/test", edge.addr)).await;
    let _ = std::fs::remove_dir_all(&store);
}
