//! The `"plasma"` demo scene: a classic sine plasma that changes every tick
//! (full-motion content at 60 Hz), a glowing spot following the pointer and
//! rings expanding from every click.
//!
//! Cheap by construction: every sine term is separable into per-column and
//! per-row tables computed once per frame, so a pixel costs a few
//! multiply-adds and one palette lookup.

use super::{resize_target, Scene};
use framehub_proto::InputEvent;
use std::f64::consts::TAU;

/// Initial framebuffer size in pixels.
pub const INITIAL_SIZE: (u32, u32) = (640, 360);
/// Height the pattern's spatial frequencies are designed for; other sizes
/// scale the pattern so the picture looks the same.
const REF_HEIGHT: f64 = 360.0;
/// Standard deviation of the pointer glow, in reference pixels.
const GLOW_SIGMA: f64 = 28.0;
/// Ring expansion speed (reference px/s), lifetime (s) and half-width (reference px).
const RING_SPEED: f64 = 260.0;
const RING_LIFE: f64 = 1.6;
const RING_HALF_WIDTH: f64 = 4.0;
/// At most this many rings are alive; older ones are dropped first.
const MAX_RINGS: usize = 32;

/// One expanding ring, centred where a click happened.
struct Ring {
    x: f64,
    y: f64,
    /// Scene time it was spawned, in seconds.
    t0: f64,
}

/// The plasma scene, served as `"plasma"`.
pub struct Plasma {
    width: u32,
    height: u32,
    /// Time of the last render, `None` before the first one.
    last_t: Option<f64>,
    /// Pointer position (framebuffer pixels) while it is over the picture.
    pointer: Option<(f64, f64)>,
    rings: Vec<Ring>,
    dirty: bool,
    lut: [[u8; 4]; 256],
    // Per-frame scratch tables, reused between frames.
    cols: [Vec<f32>; 4],
    rows: [Vec<f32>; 4],
}

impl Default for Plasma {
    fn default() -> Self {
        Self::new()
    }
}

impl Plasma {
    /// A scene at [`INITIAL_SIZE`] with no pointer and no rings.
    pub fn new() -> Self {
        let mut lut = [[0u8; 4]; 256];
        for (i, c) in lut.iter_mut().enumerate() {
            // Cosine palette 0.5 + 0.5·cos(2π(t + d)), d = (0.0, 0.33, 0.67): a smooth rainbow.
            let t = i as f64 / 256.0;
            let ch = |d: f64| (127.5 + 127.5 * (TAU * (t + d)).cos()) as u8;
            *c = [ch(0.0), ch(0.33), ch(0.67), 255];
        }
        Plasma {
            width: INITIAL_SIZE.0,
            height: INITIAL_SIZE.1,
            last_t: None,
            pointer: None,
            rings: Vec::new(),
            dirty: true,
            lut,
            cols: Default::default(),
            rows: Default::default(),
        }
    }

    /// Fills the per-column and per-row tables for time `t`. With u, v the
    /// coordinates in reference pixels the plasma value is
    /// `sin(.031u+1.1t) + sin(.043v-1.3t) + sin(.019(u+v)+.7t) + sin(.017u+.5t)·cos(.023v-.9t)`,
    /// in [-4, 4]; the diagonal term is expanded with sin(a+b) so it separates.
    fn tables(&mut self, t: f64) {
        let k = REF_HEIGHT / f64::from(self.height);
        let (w, h) = (self.width as usize, self.height as usize);
        for v in self.cols.iter_mut() {
            v.resize(w, 0.0);
        }
        for v in self.rows.iter_mut() {
            v.resize(h, 0.0);
        }
        for x in 0..w {
            let u = x as f64 * k;
            self.cols[0][x] = (0.031 * u + 1.1 * t).sin() as f32;
            self.cols[1][x] = (0.019 * u + 0.7 * t).sin() as f32;
            self.cols[2][x] = (0.019 * u + 0.7 * t).cos() as f32;
            self.cols[3][x] = (0.017 * u + 0.5 * t).sin() as f32;
        }
        for y in 0..h {
            let v = y as f64 * k;
            self.rows[0][y] = (0.043 * v - 1.3 * t).sin() as f32;
            self.rows[1][y] = (0.019 * v).cos() as f32;
            self.rows[2][y] = (0.019 * v).sin() as f32;
            self.rows[3][y] = (0.023 * v - 0.9 * t).cos() as f32;
        }
    }

    /// Adds a white Gaussian glow centred on the pointer. The Gaussian is
    /// separable, so it is the product of a column and a row table.
    fn draw_glow(&self, buf: &mut [u8]) {
        let Some((px, py)) = self.pointer else { return };
        let sigma = GLOW_SIGMA * f64::from(self.height) / REF_HEIGHT;
        let reach = 3.0 * sigma;
        let gauss = |d: f64| (-d * d / (2.0 * sigma * sigma)).exp() as f32;
        let (x0, x1) = span(px - reach, px + reach, self.width);
        let (y0, y1) = span(py - reach, py + reach, self.height);
        let gx: Vec<f32> = (x0..x1).map(|x| gauss(x as f64 - px)).collect();
        let w = self.width as usize;
        for y in y0..y1 {
            let gy = 255.0 * gauss(y as f64 - py);
            let row = &mut buf[(y * w + x0) * 4..(y * w + x1) * 4];
            for (px, g) in row.chunks_exact_mut(4).zip(&gx) {
                brighten(px, gy * g);
            }
        }
    }

    /// Draws every live ring: for each row only the two spans crossing the
    /// annulus are visited.
    fn draw_rings(&self, t: f64, buf: &mut [u8]) {
        let k = f64::from(self.height) / REF_HEIGHT;
        let hw = RING_HALF_WIDTH * k;
        let w = self.width as usize;
        for ring in &self.rings {
            let age = t - ring.t0;
            let r = age * RING_SPEED * k;
            let alpha = (1.0 - age / RING_LIFE) as f32 * 255.0;
            let (y0, y1) = span(ring.y - r - hw, ring.y + r + hw, self.height);
            for y in y0..y1 {
                let dy = y as f64 - ring.y;
                let outer = (r + hw) * (r + hw) - dy * dy;
                if outer <= 0.0 {
                    continue;
                }
                let xo = outer.sqrt();
                let inner = (r - hw).max(0.0).powi(2) - dy * dy;
                let xi = if inner > 0.0 { inner.sqrt() } else { 0.0 };
                for (a, b) in [(ring.x - xo, ring.x - xi), (ring.x + xi, ring.x + xo)] {
                    let (x0, x1) = span(a, b + 1.0, self.width);
                    for x in x0..x1 {
                        let d = (x as f64 - ring.x).hypot(dy);
                        let f = 1.0 - ((d - r).abs() / hw) as f32;
                        if f > 0.0 {
                            let i = (y * w + x) * 4;
                            brighten(&mut buf[i..i + 4], alpha * f);
                        }
                    }
                }
            }
        }
    }
}

/// The pixel index range [floor(a), ceil(b)) clipped to 0..len.
fn span(a: f64, b: f64, len: u32) -> (usize, usize) {
    let clip = |v: f64| v.clamp(0.0, f64::from(len)) as usize;
    let (lo, hi) = (clip(a.floor()), clip(b.ceil()));
    (lo, hi.max(lo))
}

/// Adds `amount` (0..=255) to R, G and B, saturating.
fn brighten(px: &mut [u8], amount: f32) {
    let a = amount.clamp(0.0, 255.0) as u8;
    for c in &mut px[..3] {
        *c = c.saturating_add(a);
    }
}

impl Scene for Plasma {
    fn name(&self) -> &'static str {
        "plasma"
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn handle_event(&mut self, ev: &InputEvent) {
        match ev {
            InputEvent::PointerMove(p) | InputEvent::PointerEnter(p) => {
                self.pointer =
                    (p.inside && p.x.is_finite() && p.y.is_finite()).then_some((p.x, p.y));
                self.dirty = true;
            }
            InputEvent::PointerLeave(_) => {
                self.pointer = None;
                self.dirty = true;
            }
            InputEvent::PointerDown(p) if p.x.is_finite() && p.y.is_finite() => {
                if self.rings.len() >= MAX_RINGS {
                    self.rings.remove(0);
                }
                let t0 = self.last_t.unwrap_or(0.0);
                self.rings.push(Ring { x: p.x, y: p.y, t0 });
                self.dirty = true;
            }
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

    fn render(&mut self, t: f64, buf: &mut Vec<u8>) -> bool {
        if self.last_t == Some(t) && !self.dirty {
            return false;
        }
        self.last_t = Some(t);
        self.dirty = false;
        self.rings.retain(|r| t - r.t0 < RING_LIFE && t >= r.t0);
        self.tables(t);
        let w = self.width as usize;
        buf.resize(w * self.height as usize * 4, 0);
        // Palette offset cycles the colours with time (40 entries per second).
        let shift = (t * 40.0).rem_euclid(256.0) as i32;
        let [c0, c1, c2, c3] = &self.cols;
        let [r0, r1, r2, r3] = &self.rows;
        for (y, row) in buf.chunks_exact_mut(w * 4).enumerate() {
            let (a, b, c, d) = (r0[y], r1[y], r2[y], r3[y]);
            for (x, px) in row.chunks_exact_mut(4).enumerate() {
                let v = c0[x] + a + c1[x] * b + c2[x] * c + c3[x] * d;
                let idx = ((v * 32.0) as i32 + shift) & 255;
                px.copy_from_slice(&self.lut[idx as usize]);
            }
        }
        self.draw_glow(buf);
        self.draw_rings(t, buf);
        true
    }

    fn tick_hz(&self) -> f64 {
        60.0
    }

    fn continuous(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    fn px(buf: &[u8], w: usize, x: usize, y: usize) -> [u8; 4] {
        let i = (y * w + x) * 4;
        [buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]
    }

    #[test]
    fn changes_every_tick() {
        let mut p = Plasma::new();
        let mut a = Vec::new();
        let mut b = Vec::new();
        assert!(p.render(0.0, &mut a));
        assert_eq!(a.len(), 640 * 360 * 4);
        assert!(!p.render(0.0, &mut b), "same time, nothing new");
        assert!(p.render(1.0 / 60.0, &mut b));
        assert_ne!(a, b);
        assert!(a.chunks_exact(4).all(|p| p[3] == 255));
    }

    #[test]
    fn glow_follows_pointer() {
        let (mut lit, mut plain) = (Plasma::new(), Plasma::new());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        lit.handle_event(&moved(100.0, 80.0, &[]));
        lit.render(0.5, &mut a);
        plain.render(0.5, &mut b);
        let (l, p) = (px(&a, 640, 100, 80), px(&b, 640, 100, 80));
        assert!(
            l[..3].iter().all(|c| *c >= 240),
            "centre of glow is near white: {l:?}"
        );
        assert!(l.iter().zip(&p).all(|(l, p)| l >= p));
        assert_eq!(
            px(&a, 640, 500, 300),
            px(&b, 640, 500, 300),
            "far away untouched"
        );
        lit.handle_event(&moved(500.0, 300.0, &[]));
        lit.render(0.5, &mut a);
        assert_eq!(px(&a, 640, 100, 80), p, "glow moved away");
        lit.handle_event(&InputEvent::PointerLeave(pointer(500.0, 300.0, 0, &[])));
        lit.render(0.5, &mut a);
        assert_eq!(a, b);
    }

    #[test]
    fn click_spawns_expanding_ring() {
        let (mut p, mut plain) = (Plasma::new(), Plasma::new());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        p.render(1.0, &mut a);
        p.handle_event(&down(320.0, 180.0));
        p.handle_event(&up(320.0, 180.0));
        assert!(p.render(1.5, &mut a));
        plain.render(1.5, &mut b);
        let r = (0.5 * RING_SPEED) as usize; // 130 px after 0.5 s
        let sum = |buf: &[u8], x, y| {
            px(buf, 640, x, y)[..3]
                .iter()
                .map(|c| u32::from(*c))
                .sum::<u32>()
        };
        for (x, y) in [
            (320 + r, 180),
            (320 - r, 180),
            (320, 180 + r),
            (320, 180 - r),
        ] {
            // Brighter by about half of full white (alpha ~0.69 at 0.5 s), unless saturated.
            assert!(
                sum(&a, x, y) >= (sum(&b, x, y) + 300).min(3 * 250),
                "({x},{y})"
            );
        }
        assert_eq!(
            px(&a, 640, 320 + r / 2, 180),
            px(&b, 640, 320 + r / 2, 180),
            "inside untouched"
        );
        assert_eq!(
            px(&a, 640, 320 + 2 * r, 180),
            px(&b, 640, 320 + 2 * r, 180),
            "outside untouched"
        );
        p.render(3.0, &mut a);
        plain.render(3.0, &mut b);
        assert_eq!(a, b, "ring expired");
    }

    #[test]
    fn resize_changes_size_and_buffer() {
        let mut p = Plasma::new();
        let mut buf = Vec::new();
        p.handle_event(&resize(17, 5000));
        assert_eq!(p.size(), (16, 2160));
        p.handle_event(&down(-1e6, 1e6));
        p.handle_event(&moved(8.0, 8.0, &[]));
        assert!(p.render(0.0, &mut buf));
        assert_eq!(buf.len(), 16 * 2160 * 4);
    }
}
