//! The `"default"` demo scene: an interactive Mandelbrot-set explorer.
//!
//! Drag with the left button to pan, turn the wheel to zoom about the cursor,
//! `+` / `-` zoom about the centre, arrow keys pan, double-click or `r`
//! resets. The picture is re-rendered only when the view changes, so an idle
//! viewer costs nothing (a sparse frame cadence).

use super::{resize_target, Scene};
use framehub_proto::InputEvent;
use std::sync::{Mutex, PoisonError};

/// Initial framebuffer size in pixels.
pub const INITIAL_SIZE: (u32, u32) = (960, 600);
/// Centre of the initial view in the complex plane (re, im).
const HOME: (f64, f64) = (-0.65, 0.0);
/// Extent of the complex plane (re, im) the initial view fits in the framebuffer.
const HOME_EXTENT: (f64, f64) = (3.2, 2.4);
/// Zoom factor range (1 = initial view). At 1e12 a pixel is ~4e-15, some 30
/// f64 ulps near |c| = 1; deeper would need arbitrary precision.
const ZOOM_RANGE: (f64, f64) = (0.25, 1.0e12);
/// Wheel sensitivity: zoom is multiplied by `exp(-dy * WHEEL_RATE)` (a 100 px
/// Chromium notch zooms by ~22 %).
const WHEEL_RATE: f64 = 0.002;
/// Zoom step for the `+` / `-` keys.
const KEY_ZOOM: f64 = 1.5;
/// Escape radius squared. A large radius (256) makes the smooth count accurate.
const BAILOUT2: f64 = 256.0 * 256.0;
/// Entries in the colour lookup table.
const LUT_LEN: usize = 2048;
/// Rows per work band; bands are dealt to the render threads in turn.
const BAND_ROWS: usize = 8;
/// Render threads including the caller (the hub also needs a core for encoding).
const THREADS: usize = 2;

/// The Mandelbrot explorer scene, served as `"default"`.
pub struct Mandelbrot {
    width: u32,
    height: u32,
    /// View centre in the complex plane (re, im).
    center: (f64, f64),
    /// Magnification relative to the initial view.
    zoom: f64,
    /// Last pointer position while the left button is held.
    drag: Option<(f64, f64)>,
    /// Whether the client fills `buttons` on moves (then an empty list ends a drag).
    drag_strict: bool,
    dirty: bool,
    lut: Vec<[u8; 4]>,
}

impl Default for Mandelbrot {
    fn default() -> Self {
        Self::new()
    }
}

impl Mandelbrot {
    /// A scene at [`INITIAL_SIZE`] showing the whole set.
    pub fn new() -> Self {
        Mandelbrot {
            width: INITIAL_SIZE.0,
            height: INITIAL_SIZE.1,
            center: HOME,
            zoom: 1.0,
            drag: None,
            drag_strict: false,
            dirty: true,
            lut: palette(),
        }
    }

    /// Escape-iteration limit for the current zoom: `100 + 50·log2(zoom)`, at most 4000.
    pub fn max_iter(&self) -> u32 {
        (100.0 + 50.0 * self.zoom.max(1.0).log2()).min(4000.0) as u32
    }

    /// Complex-plane units per framebuffer pixel.
    fn scale(&self) -> f64 {
        let fit =
            (HOME_EXTENT.0 / f64::from(self.width)).max(HOME_EXTENT.1 / f64::from(self.height));
        fit / self.zoom
    }

    /// The complex number at framebuffer pixel (x, y); imaginary axis points up.
    fn to_complex(&self, x: f64, y: f64) -> (f64, f64) {
        let s = self.scale();
        (
            self.center.0 + (x - f64::from(self.width) / 2.0) * s,
            self.center.1 - (y - f64::from(self.height) / 2.0) * s,
        )
    }

    fn reset(&mut self) {
        if (self.center, self.zoom) != (HOME, 1.0) {
            (self.center, self.zoom) = (HOME, 1.0);
            self.dirty = true;
        }
    }

    fn pan(&mut self, dx: f64, dy: f64) {
        let s = self.scale();
        self.set_center(self.center.0 - dx * s, self.center.1 + dy * s);
    }

    fn set_center(&mut self, re: f64, im: f64) {
        let c = (re.clamp(-4.0, 4.0), im.clamp(-4.0, 4.0));
        if re.is_finite() && im.is_finite() && c != self.center {
            self.center = c;
            self.dirty = true;
        }
    }

    /// Multiplies the zoom by `factor`, keeping the point under pixel (x, y) fixed.
    fn zoom_at(&mut self, x: f64, y: f64, factor: f64) {
        if !(x.is_finite() && y.is_finite() && factor.is_finite()) {
            return;
        }
        let fixed = self.to_complex(x, y);
        let zoom = (self.zoom * factor).clamp(ZOOM_RANGE.0, ZOOM_RANGE.1);
        if zoom == self.zoom {
            return;
        }
        self.zoom = zoom;
        self.dirty = true;
        let s = self.scale();
        self.set_center(
            fixed.0 - (x - f64::from(self.width) / 2.0) * s,
            fixed.1 + (y - f64::from(self.height) / 2.0) * s,
        );
    }
}

impl Scene for Mandelbrot {
    fn name(&self) -> &'static str {
        "default"
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn handle_event(&mut self, ev: &InputEvent) {
        let (cw, ch) = (f64::from(self.width) / 2.0, f64::from(self.height) / 2.0);
        match ev {
            InputEvent::PointerDown(p) if p.button == 1 => {
                self.drag = Some((p.x, p.y));
                self.drag_strict = !p.buttons.is_empty();
            }
            InputEvent::PointerUp(p) if p.button == 1 => self.drag = None,
            InputEvent::PointerMove(p) => {
                if let Some((lx, ly)) = self.drag {
                    if self.drag_strict && !p.buttons.contains(&1) {
                        self.drag = None;
                    } else if (p.x, p.y) != (lx, ly) {
                        self.pan(p.x - lx, p.y - ly);
                        self.drag = Some((p.x, p.y));
                    }
                }
            }
            InputEvent::Wheel(w) if w.dy != 0.0 => {
                self.zoom_at(w.pointer.x, w.pointer.y, (-w.dy * WHEEL_RATE).exp());
            }
            InputEvent::DoubleClick(_) => self.reset(),
            InputEvent::KeyDown(k) => match k.key.as_str() {
                "r" | "R" | "Home" => self.reset(),
                "+" | "=" => self.zoom_at(cw, ch, KEY_ZOOM),
                "-" | "_" => self.zoom_at(cw, ch, 1.0 / KEY_ZOOM),
                "ArrowLeft" => self.pan(cw / 5.0, 0.0),
                "ArrowRight" => self.pan(-cw / 5.0, 0.0),
                "ArrowUp" => self.pan(0.0, ch / 5.0),
                "ArrowDown" => self.pan(0.0, -ch / 5.0),
                _ => {}
            },
            InputEvent::Resize(r) => {
                let size = resize_target(r);
                if size != (self.width, self.height) {
                    (self.width, self.height) = size;
                    self.dirty = true;
                }
            }
            _ => {}
        }
    }

    fn render(&mut self, _t: f64, buf: &mut Vec<u8>) -> bool {
        if !self.dirty {
            return false;
        }
        self.dirty = false;
        let (w, h) = (self.width as usize, self.height as usize);
        buf.resize(w * h * 4, 0);
        let frame = Frame {
            x0: self.to_complex(0.0, 0.0),
            scale: self.scale(),
            width: w,
            max_iter: self.max_iter(),
            lut: &self.lut,
        };
        // Bands are handed out from a shared queue, which balances the load
        // (rows near the set cost far more than the rest).
        let queue = Mutex::new(
            buf.chunks_mut(BAND_ROWS * w * 4)
                .enumerate()
                .collect::<Vec<_>>(),
        );
        let work = || loop {
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let Some((i, band)) = next else { break };
            frame.band(i * BAND_ROWS, band);
        };
        std::thread::scope(|s| {
            for _ in 1..THREADS {
                // Should a thread fail to start, the calling thread does all the bands.
                let _ = std::thread::Builder::new().spawn_scoped(s, work);
            }
            work();
        });
        true
    }

    fn tick_hz(&self) -> f64 {
        60.0
    }
}

/// Everything a render thread needs, shared read-only.
struct Frame<'a> {
    /// Complex number at the top-left pixel.
    x0: (f64, f64),
    scale: f64,
    width: usize,
    max_iter: u32,
    lut: &'a [[u8; 4]],
}

impl Frame<'_> {
    /// Renders the rows starting at `row0` into `band` (whole rows of RGBA8),
    /// [`LANES`] pixels at a time.
    fn band(&self, row0: usize, band: &mut [u8]) {
        for (dy, row) in band.chunks_exact_mut(self.width * 4).enumerate() {
            let ci = self.x0.1 - (row0 + dy) as f64 * self.scale;
            for (g, group) in row.chunks_mut(LANES * 4).enumerate() {
                let cr = std::array::from_fn(|l| self.x0.0 + (g * LANES + l) as f64 * self.scale);
                let mus = escape(cr, ci, self.max_iter);
                for (px, mu) in group.chunks_exact_mut(4).zip(mus) {
                    px.copy_from_slice(&self.colour(mu));
                }
            }
        }
    }

    /// RGBA of a smooth count; `None` (inside the set) is black.
    fn colour(&self, mu: Option<f64>) -> [u8; 4] {
        match mu {
            None => [0, 0, 0, 255],
            // sqrt compresses the count so colour bands stay wide when zoomed deep.
            Some(mu) => self.lut[(mu.max(0.0).sqrt() * 0.17 * LUT_LEN as f64) as usize % LUT_LEN],
        }
    }
}

/// Pixels iterated in lockstep: independent dependency chains keep the FPU busy.
const LANES: usize = 8;
/// Iterations run between escape checks; the lanes step branch-free in between.
const BLOCK: u32 = 8;

/// Smooth (continuous) escape counts of the [`LANES`] points `cr[l] + i·ci`;
/// `None` for a point that did not escape within `max_iter` (inside the set).
///
/// Skips the main cardioid and the period-2 bulb analytically; runs blocks of
/// [`BLOCK`] unchecked iterations and, when a lane escapes inside a block,
/// replays that block for the lane alone to find the exact escape step;
/// detects attracting cycles at block ends (Brent-style periodicity check) to
/// cut interior cost.
fn escape(cr: [f64; LANES], ci: f64, max_iter: u32) -> [Option<f64>; LANES] {
    let mut out = [None; LANES];
    let (mut cr, mut ci) = (cr, [ci; LANES]);
    let mut live = [true; LANES];
    for l in 0..LANES {
        let (xq, ci2) = (cr[l] - 0.25, ci[l] * ci[l]);
        let q = xq * xq + ci2;
        if q * (q + xq) <= 0.25 * ci2 || (cr[l] + 1.0) * (cr[l] + 1.0) + ci2 <= 0.0625 {
            (live[l], cr[l], ci[l]) = (false, 0.0, 0.0);
        }
    }
    let (mut x, mut y) = ([0.0f64; LANES], [0.0f64; LANES]);
    let (mut ox, mut oy) = ([f64::NAN; LANES], [f64::NAN; LANES]);
    let (mut blocks, mut span) = (0u32, 1u32);
    let mut i = 0;
    while live.contains(&true) && i < max_iter {
        let n = BLOCK.min(max_iter - i);
        let (sx, sy) = (x, y);
        for _ in 0..n {
            // Written lane-wise so the compiler vectorizes it (SSE2: two lanes per op).
            let (xx, yy, xy) = (sq(x), sq(y), mul(x, y));
            x = std::array::from_fn(|l| xx[l] - yy[l] + cr[l]);
            y = std::array::from_fn(|l| xy[l] + xy[l] + ci[l]);
        }
        for l in 0..LANES {
            if !live[l] {
                continue;
            }
            let r2 = x[l] * x[l] + y[l] * y[l];
            // NaN (inf - inf) can appear when a lane overflows late in the block.
            if r2 > BAILOUT2 || r2.is_nan() {
                let (mut a, mut b) = (sx[l], sy[l]);
                for j in 1..=n {
                    (a, b) = (a * a - b * b + cr[l], 2.0 * a * b + ci[l]);
                    let r2 = a * a + b * b;
                    if r2 > BAILOUT2 {
                        // mu = n + 1 - log2(ln|z|), the normalized iteration count;
                        // log2(ln|z|) = log2(log2(|z|²)) + log2(ln 2 / 2).
                        let nu = fast_log2(fast_log2(r2)) + (std::f64::consts::LN_2 / 2.0).log2();
                        out[l] = Some(f64::from(i + j) + 1.0 - nu);
                        break;
                    }
                }
            } else if !cycled((x[l], y[l]), (ox[l], oy[l])) {
                continue;
            }
            (live[l], cr[l], ci[l], x[l], y[l]) = (false, 0.0, 0.0, 0.0, 0.0);
        }
        i += n;
        blocks += 1;
        if blocks == span {
            (blocks, span, ox, oy) = (0, span.saturating_mul(2), x, y);
        }
    }
    out
}

/// Whether z is back at the saved point (an attracting cycle): inside the set.
/// False while the saved point is still NaN (nothing saved yet).
fn cycled(z: (f64, f64), saved: (f64, f64)) -> bool {
    (z.0 - saved.0).abs() + (z.1 - saved.1).abs() < 1e-15
}

/// log2 of a positive normal `x`, to ~1e-7: the exponent bits plus the series
/// log2(m) = (2 / ln 2)·(t + t³/3 + t⁵/5 + t⁷/7), t = (m − 1)/(m + 1), for the
/// mantissa m in [√½, √2). Several times cheaper than `f64::log2`, which
/// dominated the cost of shallow views where most points escape at once.
fn fast_log2(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut exp = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        (m, exp) = (m * 0.5, exp + 1); // keep |t| <= 0.172 so the series converges fast
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = t * (1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 / 7.0)));
    f64::from(exp) + series * (2.0 / std::f64::consts::LN_2)
}

fn sq(a: [f64; LANES]) -> [f64; LANES] {
    mul(a, a)
}

fn mul(a: [f64; LANES], b: [f64; LANES]) -> [f64; LANES] {
    std::array::from_fn(|l| a[l] * b[l])
}

/// The colour lookup table: a cyclic gradient (deep blue → sky blue → white →
/// orange → near black), linearly interpolated between control points.
fn palette() -> Vec<[u8; 4]> {
    const STOPS: [(f64, [f64; 3]); 6] = [
        (0.0, [0.0, 7.0, 100.0]),
        (0.16, [32.0, 107.0, 203.0]),
        (0.42, [237.0, 255.0, 255.0]),
        (0.6425, [255.0, 170.0, 0.0]),
        (0.8575, [0.0, 2.0, 0.0]),
        (1.0, [0.0, 7.0, 100.0]),
    ];
    (0..LUT_LEN)
        .map(|i| {
            let t = i as f64 / LUT_LEN as f64;
            let j = STOPS
                .iter()
                .rposition(|s| s.0 <= t)
                .unwrap_or(0)
                .min(STOPS.len() - 2);
            let (t0, a) = STOPS[j];
            let (t1, b) = STOPS[j + 1];
            let f = (t - t0) / (t1 - t0);
            let ch = |c: usize| (a[c] + (b[c] - a[c]) * f).round().clamp(0.0, 255.0) as u8;
            [ch(0), ch(1), ch(2), 255]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    /// The view: centre (re, im) and magnification relative to the initial view.
    fn view(m: &Mandelbrot) -> ((f64, f64), f64) {
        (m.center, m.zoom)
    }

    fn fresh() -> (Mandelbrot, Vec<u8>) {
        let mut m = Mandelbrot::new();
        let mut buf = Vec::new();
        assert!(m.render(0.0, &mut buf));
        (m, buf)
    }

    #[test]
    fn idle_tick_does_not_render() {
        let (mut m, mut buf) = fresh();
        assert!(!m.render(0.016, &mut buf));
        m.handle_event(&moved(10.0, 10.0, &[]));
        assert!(
            !m.render(0.032, &mut buf),
            "hover without drag changes nothing"
        );
    }

    #[test]
    fn drag_pans_and_rerenders() {
        let (mut m, mut buf) = fresh();
        let before = buf.clone();
        let c0 = view(&m).0;
        m.handle_event(&down(100.0, 100.0));
        m.handle_event(&moved(150.0, 120.0, &[1]));
        assert!(m.render(0.1, &mut buf));
        assert_ne!(buf, before);
        let c1 = view(&m).0;
        assert!(c1.0 < c0.0 && c1.1 > c0.1, "{c0:?} -> {c1:?}");
        m.handle_event(&up(150.0, 120.0));
        m.handle_event(&moved(300.0, 300.0, &[]));
        assert!(!m.render(0.2, &mut buf), "no pan after release");
    }

    #[test]
    fn wheel_zooms_about_cursor() {
        let (mut m, mut buf) = fresh();
        let p = m.to_complex(700.0, 200.0);
        m.handle_event(&wheel(700.0, 200.0, -300.0));
        assert!(view(&m).1 > 1.5);
        let q = m.to_complex(700.0, 200.0);
        assert!((p.0 - q.0).abs() < 1e-12 && (p.1 - q.1).abs() < 1e-12);
        assert!(m.render(0.1, &mut buf));
        assert!(m.max_iter() > 100);
    }

    #[test]
    fn reset_restores_initial_view() {
        let (mut m, mut buf) = fresh();
        let first = buf.clone();
        let home = view(&m);
        m.handle_event(&wheel(10.0, 10.0, -500.0));
        m.handle_event(&key("+"));
        m.handle_event(&key("ArrowLeft"));
        assert_ne!(view(&m), home);
        m.handle_event(&key("r"));
        assert_eq!(view(&m), home);
        assert!(m.render(0.1, &mut buf));
        assert_eq!(buf, first);
        m.handle_event(&key("-"));
        m.handle_event(&InputEvent::DoubleClick(pointer(5.0, 5.0, 1, &[])));
        assert_eq!(view(&m), home);
    }

    #[test]
    fn no_op_input_does_not_render() {
        let (mut m, mut buf) = fresh();
        m.handle_event(&key("r"));
        m.handle_event(&wheel(5.0, 5.0, 1e5)); // zoom out, clamped to the minimum
        assert!(m.render(0.1, &mut buf));
        m.handle_event(&wheel(5.0, 5.0, 100.0)); // already at the minimum
        m.handle_event(&key("x"));
        assert!(!m.render(0.2, &mut buf));
    }

    #[test]
    fn resize_changes_size_and_buffer() {
        let (mut m, mut buf) = fresh();
        m.handle_event(&resize(401, 301));
        assert_eq!(m.size(), (400, 300));
        assert!(m.render(0.1, &mut buf));
        assert_eq!(buf.len(), 400 * 300 * 4);
        m.handle_event(&resize(400, 300));
        assert!(!m.render(0.2, &mut buf), "same size is not a change");
    }

    #[test]
    fn hostile_values_keep_view_finite() {
        let (mut m, mut buf) = fresh();
        m.handle_event(&wheel(1e6, -1e6, -1e6));
        m.handle_event(&wheel(0.0, 0.0, 1e6));
        m.handle_event(&down(0.0, 0.0));
        m.handle_event(&moved(1e6, 1e6, &[1]));
        let ((re, im), z) = view(&m);
        assert!(re.is_finite() && im.is_finite() && z.is_finite());
        assert!(m.render(0.1, &mut buf));
    }

    #[test]
    fn fast_log2_is_accurate() {
        for x in [1.0, 1.5, 2.0, 3.0, 7.9, 65537.0, 1e10, 1e300] {
            assert!((fast_log2(x) - f64::log2(x)).abs() < 1e-7, "{x}");
        }
    }

    #[test]
    fn set_interior_is_black_and_exterior_coloured() {
        let [a, b, c, d, ..] = escape([0.0, -1.0, 1.0, -2.5, 0.0, 0.0, 0.0, 0.0], 0.0, 100);
        assert_eq!((a, b), (None, None), "cardioid, period-2 bulb");
        assert!(c.is_some_and(|mu| mu > 0.0 && mu < 8.0), "{c:?}");
        assert!(d.is_some_and(|mu| mu > 0.0 && mu < 8.0), "{d:?}");
        let [p3, ..] = escape([-0.1226; LANES], 0.7449, 1000);
        assert_eq!(p3, None, "period-3 bulb via cycle check");
    }
}
