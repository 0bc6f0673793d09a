//! Headless browsers driven over WebDriver with fantoccini: Chromium through
//! `chromedriver` (the default) or Firefox through `geckodriver`.
//!
//! `FRAMEHUB_BROWSER=firefox` runs the same tests in Firefox (Debian's
//! `firefox-esr`; `FIREFOX` overrides the binary, `GECKODRIVER` the driver);
//! `CHROMIUM` and `CHROMEDRIVER` do the same for Chromium. Each test gets its own
//! driver and a fresh profile directory; both are killed on drop, so no browser
//! outlives a failed test. At most two browsers run at once: the machines have 2 cores.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The browser the tests drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Chromium through chromedriver.
    Chromium,
    /// Firefox through geckodriver.
    Firefox,
}

impl Kind {
    /// The browser `FRAMEHUB_BROWSER` names (`chromium`, the default, or `firefox`).
    pub fn from_env() -> Kind {
        match std::env::var("FRAMEHUB_BROWSER").as_deref() {
            Ok("firefox") => Kind::Firefox,
            Ok("chromium") | Ok("") | Err(_) => Kind::Chromium,
            Ok(other) => panic!("FRAMEHUB_BROWSER={other}: expected chromium or firefox"),
        }
    }
}

static SLOTS: Semaphore = Semaphore::const_new(2);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Driver {
    child: Child,
    profile: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Kill the driver, then the browser processes it started: they are the
        // only processes whose command line names this session's profile directory.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.profile.display().to_string()])
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A browser session; closed (and its processes killed) on drop.
pub struct Browser {
    pub client: Client,
    /// Which browser this is.
    pub kind: Kind,
    _driver: Driver,
    _slot: SemaphorePermit<'static>,
}

impl Browser {
    /// Starts the driver and a headless browser ([`Kind::from_env`]) with a `width` × `height` window.
    pub async fn start(width: u32, height: u32) -> Browser {
        Self::start_with(width, height, &[]).await
    }

    /// [`Browser::start`] with more Chromium flags (a fake camera, say;
    /// Firefox has its fake camera on in its preferences and ignores them).
    pub async fn start_with(width: u32, height: u32, extra: &[&str]) -> Browser {
        let slot = SLOTS.acquire().await.expect("semaphore open");
        let kind = Kind::from_env();
        let port = free_port();
        let (driver_var, driver_bin, install) = match kind {
            Kind::Chromium => (
                "CHROMEDRIVER",
                "chromedriver",
                "scripts/setup installs chromium-driver",
            ),
            Kind::Firefox => (
                "GECKODRIVER",
                "geckodriver",
                "scripts/test builds it into target/tools",
            ),
        };
        let mut cmd = Command::new(std::env::var(driver_var).unwrap_or_else(|_| driver_bin.into()));
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{driver_bin} is installed ({install}): {e}"));
        let profile = std::env::temp_dir().join(format!(
            "framehub-{}-{port}-{}",
            if kind == Kind::Firefox {
                "firefox"
            } else {
                "chrome"
            },
            std::process::id()
        ));
        let driver = Driver {
            child,
            profile: profile.clone(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let caps = match kind {
            Kind::Chromium => json!({
                "goog:chromeOptions": {
                    "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                        format!("--window-size={width},{height}"),
                        format!("--user-data-dir={}", profile.display()),
                    ]
                }
            }),
            Kind::Firefox => {
                std::fs::create_dir_all(&profile).expect("a profile directory in the temp dir");
                json!({
                    "moz:firefoxOptions": {
                        "binary": std::env::var("FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".into()),
                        "args": [
                            "-headless", "-no-remote",
                            format!("--width={width}"), format!("--height={height}"),
                            "-profile", profile.display().to_string(),
                        ],
                        "prefs": {
                            // No network beyond the test's hub: no updates, telemetry or
                            // captive-portal and safe-browsing checks.
                            "app.update.enabled": false,
                            "browser.shell.checkDefaultBrowser": false,
                            "datareporting.policy.dataSubmissionEnabled": false,
                            "network.captive-portal-service.enabled": false,
                            "browser.safebrowsing.update.enabled": false,
                            "media.gmp-manager.updateEnabled": false,
                            "media.autoplay.default": 0,
                            // getUserMedia answers with a fake camera, without asking.
                            "media.navigator.streams.fake": true,
                            "media.navigator.permission.disabled": true,
                        }
                    }
                })
            }
        };
        let mut caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!("a JSON object literal"),
        };
        if let Some(args) = caps
            .get_mut("goog:chromeOptions")
            .and_then(|o| o.get_mut("args"))
            .and_then(Value::as_array_mut)
        {
            args.extend(extra.iter().map(|a| json!(a)));
        }
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let mut builder = ClientBuilder::new(connector);
            builder.capabilities(caps.clone());
            let attempt = builder.connect(&url);
            match tokio::time::timeout(Duration::from_secs(20), attempt).await {
                Ok(Ok(c)) => break c,
                Ok(Err(e)) if Instant::now() < deadline => {
                    eprintln!("webdriver not ready yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(Err(e)) => panic!("could not start a {kind:?} session: {e}"),
                Err(_) => panic!("starting a {kind:?} session took over 20 s"),
            }
        };
        let _ = client.set_window_size(width, height).await;
        Browser {
            client,
            kind,
            _driver: driver,
            _slot: slot,
        }
    }

    /// Runs `body` as a function body in the page and returns its value.
    pub async fn js(&self, body: &str) -> Value {
        self.client
            .execute(body, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{body}"))
    }

    /// Waits until the expression is truthy (panics with `what` after `within`).
    pub async fn wait_for(&self, expr: &str, within: Duration, what: &str) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self
                .client
                .execute(&format!("return ({expr});"), vec![])
                .await
                .unwrap_or(Value::Null);
            let truthy =
                !matches!(v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let stats = self
                    .js("return JSON.stringify(window.framehubStats || null)")
                    .await;
                panic!("timed out waiting for {what} ({expr}); stats: {stats}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The RGBA of the canvas pixel showing framebuffer pixel (`x`, `y`) in the viewer page.
    pub async fn frame_pixel(&self, x: f64, y: f64) -> [u8; 4] {
        let v = self
            .js(&format!(
                "const v = window.framehubView, m = v.mapping();
                 const px = Math.floor(m.offsetX + ({x} + 0.5) * m.scale), py = Math.floor(m.offsetY + ({y} + 0.5) * m.scale);
                 return Array.from(v.canvas.getContext('2d').getImageData(px, py, 1, 1).data);"
            ))
            .await;
        let a: Vec<u8> = serde_json::from_value(v).expect("four bytes");
        [a[0], a[1], a[2], a[3]]
    }

    /// Page (CSS) coordinates of framebuffer pixel (`x`, `y`) in the viewer page.
    pub async fn page_pos(&self, x: f64, y: f64) -> (f64, f64) {
        let v = self
            .js(&format!(
                "const v = window.framehubView, m = v.mapping(), r = v.canvas.getBoundingClientRect();
                 const k = r.width / m.canvasWidth;
                 return [r.left + (m.offsetX + {x} * m.scale) * k, r.top + (m.offsetY + {y} * m.scale) * k];"
            ))
            .await;
        let a: Vec<f64> = serde_json::from_value(v).expect("two numbers");
        (a[0], a[1])
    }

    /// Saves a screenshot (for a person to look at when a test fails) as
    /// `<target tmp dir>/<name>.png`, `firefox-<name>.png` from Firefox.
    pub async fn screenshot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
            let file = match self.kind {
                Kind::Chromium => format!("{name}.png"),
                Kind::Firefox => format!("firefox-{name}.png"),
            };
            let _ = std::fs::write(dir.join(file), png);
        }
    }
}

/// Whether two colours are within `tol` on each of R, G, B.
pub fn close(a: [u8; 4], b: [u8; 3], tol: u8) -> bool {
    (0..3).all(|i| a[i].abs_diff(b[i]) <= tol)
}

/// Polls `stream`'s events until `pred` holds for all received so far (15 s at most).
pub async fn events_until(
    stream: &framehub::Stream,
    pred: impl Fn(&[framehub::ViewerEvent]) -> bool,
) -> Vec<framehub::ViewerEvent> {
    let mut all = Vec::new();
    for _ in 0..300 {
        all.extend(stream.poll_events());
        if pred(&all) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "events never matched; got {:?}",
        all.iter().map(|e| e.event.event_type()).collect::<Vec<_>>()
    );
}
