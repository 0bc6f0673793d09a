//! The `"chart"` demo scene: a live line chart of a synthetic signal.
//!
//! A new sample arrives every tick (15 Hz) and the last [`WINDOW_S`] seconds
//! scroll by, with axes, grid, tick labels and a title drawn in a built-in
//! 5×7 bitmap font. Hovering draws a vertical cursor with the value under it.
//! The scene renders only when a sample arrived or the pointer moved.

use super::{resize_target, Scene};
use framehub_proto::InputEvent;
use std::collections::VecDeque;
use std::f64::consts::TAU;

/// Initial framebuffer size in pixels.
pub const INITIAL_SIZE: (u32, u32) = (800, 400);
/// Samples per second (one per tick).
pub const SAMPLE_HZ: f64 = 15.0;
/// Visible time span, in seconds.
pub const WINDOW_S: f64 = 10.0;
/// Vertical axis range, in signal units.
const Y_RANGE: (f64, f64) = (-3.0, 3.0);
/// Samples kept: one window plus one on each side, so the line reaches both edges.
const KEEP: usize = (WINDOW_S * SAMPLE_HZ) as usize + 2;
/// Plot margins in pixels: left, right, top, bottom.
const MARGIN: (i64, i64, i64, i64) = (56, 16, 30, 44);

const WHITE: [u8; 3] = [255, 255, 255];
const GRID: [u8; 3] = [228, 230, 235];
const AXIS: [u8; 3] = [90, 90, 100];
const TEXT: [u8; 3] = [40, 40, 48];
const LINE: [u8; 3] = [20, 40, 110];
const CURSOR: [u8; 3] = [210, 60, 50];

/// The live chart scene, served as `"chart"`.
pub struct Chart {
    width: u32,
    height: u32,
    /// (sample number, value); sample `n` is taken at `n / SAMPLE_HZ` seconds.
    samples: VecDeque<(u64, f64)>,
    /// Number of the next sample to generate.
    next: u64,
    rng: XorShift64,
    /// Hovered x position in framebuffer pixels.
    hover: Option<f64>,
    dirty: bool,
}

impl Default for Chart {
    fn default() -> Self {
        Self::new()
    }
}

impl Chart {
    /// An empty chart at [`INITIAL_SIZE`]; the first render takes sample 0.
    pub fn new() -> Self {
        Chart {
            width: INITIAL_SIZE.0,
            height: INITIAL_SIZE.1,
            samples: VecDeque::with_capacity(KEEP + 1),
            next: 0,
            rng: XorShift64(0x9E37_79B9_7F4A_7C15),
            hover: None,
            dirty: true,
        }
    }

    /// The signal: three sines (0.23, 0.61 and 1.7 Hz) plus uniform noise of ±0.25.
    fn sample(&mut self, n: u64) -> f64 {
        let t = n as f64 / SAMPLE_HZ;
        (TAU * 0.23 * t).sin()
            + 0.6 * (TAU * 0.61 * t + 1.0).sin()
            + 0.3 * (TAU * 1.7 * t + 2.0).sin()
            + 0.25 * self.rng.next_signed()
    }

    /// Generates the samples due by time `t`; returns whether any arrived.
    fn advance(&mut self, t: f64) -> bool {
        let t = if t.is_finite() {
            t.clamp(0.0, 1e12)
        } else {
            0.0
        };
        let due = (t * SAMPLE_HZ).floor() as u64 + 1;
        if due <= self.next {
            return false;
        }
        self.next = self.next.max(due.saturating_sub(KEEP as u64));
        while self.next < due {
            let v = self.sample(self.next);
            self.samples.push_back((self.next, v));
            self.next += 1;
        }
        while self.samples.len() > KEEP {
            self.samples.pop_front();
        }
        true
    }

    /// The plot rectangle [x0, x1) × [y0, y1) in pixels.
    fn plot(&self) -> (i64, i64, i64, i64) {
        let (w, h) = (i64::from(self.width), i64::from(self.height));
        (MARGIN.0, w - MARGIN.1, MARGIN.2, h - MARGIN.3)
    }

    /// Time at the right edge of the plot, in seconds (the latest sample).
    fn t_end(&self) -> f64 {
        self.samples.back().map_or(0.0, |s| s.0 as f64 / SAMPLE_HZ)
    }

    /// Pixel x of time `ts`; the latest sample lands 2 px inside the right edge.
    fn x_of(&self, ts: f64) -> f64 {
        let (x0, x1, _, _) = self.plot();
        let frac = (ts - (self.t_end() - WINDOW_S)) / WINDOW_S;
        x0 as f64 + frac * (x1 - x0 - 2) as f64
    }

    /// Pixel y of value `v`.
    fn y_of(&self, v: f64) -> f64 {
        let (_, _, y0, y1) = self.plot();
        y0 as f64 + (Y_RANGE.1 - v) / (Y_RANGE.1 - Y_RANGE.0) * (y1 - y0 - 2) as f64
    }

    fn draw(&self, c: &mut Canvas<'_>) {
        let (x0, x1, y0, y1) = self.plot();
        c.rect(0, 0, c.w, c.h, WHITE);
        // Horizontal grid and value labels, every 1.0.
        for i in (Y_RANGE.0 as i64)..=(Y_RANGE.1 as i64) {
            let y = self.y_of(i as f64) as i64;
            c.rect(x0, y, x1, y + 1, GRID);
            c.rect(x0 - 5, y, x0, y + 1, AXIS);
            let label = format!("{:.1}", i as f64);
            c.text(x0 - 8 - text_width(&label, 1), y - 3, &label, 1, TEXT);
        }
        // Vertical grid every second, labels every two.
        let first = (self.t_end() - WINDOW_S).ceil().max(0.0) as i64;
        for s in first..=(self.t_end().floor() as i64) {
            let x = self.x_of(s as f64).round() as i64;
            c.rect(x, y0, x + 1, y1, GRID);
            c.rect(x, y1, x + 1, y1 + 5, AXIS);
            if s % 2 == 0 {
                let label = s.to_string();
                c.text(x - text_width(&label, 1) / 2, y1 + 8, &label, 1, TEXT);
            }
        }
        // The signal, 2 px wide, clipped to the plot.
        let pts: Vec<(i64, i64)> = (self.samples.iter())
            .map(|&(n, v)| {
                let x = self.x_of(n as f64 / SAMPLE_HZ).round() as i64;
                (x, self.y_of(v).round() as i64)
            })
            .collect();
        for p in pts.windows(2) {
            c.line(p[0], p[1], LINE, (x0, x1, y0, y1));
        }
        if let [p] = pts[..] {
            c.line(p, p, LINE, (x0, x1, y0, y1));
        }
        // Axes, title, axis label.
        c.rect(x0 - 1, y0, x0, y1 + 1, AXIS);
        c.rect(x0 - 1, y1, x1, y1 + 1, AXIS);
        c.text(x0, 8, "signal", 2, TEXT);
        let xl = "time (s)";
        c.text((x0 + x1 - text_width(xl, 1)) / 2, y1 + 24, xl, 1, TEXT);
        if let Some(hx) = self.hover {
            self.draw_cursor(c, hx);
        }
    }

    /// Vertical line at pixel x `hx`, a dot on the nearest sample and its label.
    fn draw_cursor(&self, c: &mut Canvas<'_>, hx: f64) {
        let (x0, x1, y0, y1) = self.plot();
        let Some(&(n, v)) = self.samples.iter().min_by(|a, b| {
            let da = (self.x_of(a.0 as f64 / SAMPLE_HZ) - hx).abs();
            let db = (self.x_of(b.0 as f64 / SAMPLE_HZ) - hx).abs();
            da.total_cmp(&db)
        }) else {
            return;
        };
        let x = hx.round() as i64;
        c.rect(x, y0, x + 1, y1, CURSOR);
        let (sx, sy) = (
            self.x_of(n as f64 / SAMPLE_HZ).round() as i64,
            self.y_of(v).round() as i64,
        );
        c.rect(sx - 2, sy - 2, sx + 3, sy + 3, CURSOR);
        let label = format!("{:.1}s: {:.2}", n as f64 / SAMPLE_HZ, v);
        let tw = text_width(&label, 1);
        let lx = if x + 6 + tw + 3 < x1 {
            x + 6
        } else {
            (x - 6 - tw).max(x0)
        };
        c.rect(lx - 3, y0 + 3, lx + tw + 3, y0 + 16, WHITE);
        c.text(lx, y0 + 6, &label, 1, CURSOR);
    }
}

impl Scene for Chart {
    fn name(&self) -> &'static str {
        "chart"
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn handle_event(&mut self, ev: &InputEvent) {
        match ev {
            InputEvent::PointerMove(p) | InputEvent::PointerEnter(p) => {
                let (x0, x1, y0, y1) = self.plot();
                let inside = p.inside
                    && (x0 as f64..x1 as f64).contains(&p.x)
                    && (y0 as f64..y1 as f64).contains(&p.y);
                let hover = inside.then_some(p.x.floor());
                if hover != self.hover {
                    self.hover = hover;
                    self.dirty = true;
                }
            }
            InputEvent::PointerLeave(_) => {
                self.dirty |= self.hover.take().is_some();
            }
            InputEvent::Resize(r) => {
                let size = resize_target(r);
                if size != (self.width, self.height) {
                    (self.width, self.height) = size;
                    self.hover = None;
                    self.dirty = true;
                }
            }
            _ => {}
        }
    }

    fn render(&mut self, t: f64, buf: &mut Vec<u8>) -> bool {
        let fresh = self.advance(t);
        if !fresh && !self.dirty {
            return false;
        }
        self.dirty = false;
        let (w, h) = (self.width as usize, self.height as usize);
        buf.resize(w * h * 4, 0);
        let mut canvas = Canvas {
            buf,
            w: w as i64,
            h: h as i64,
        };
        self.draw(&mut canvas);
        true
    }

    fn tick_hz(&self) -> f64 {
        SAMPLE_HZ
    }
}

/// xorshift64 (Marsaglia 2003, shifts 13/7/17): tiny, deterministic noise.
struct XorShift64(u64);

impl XorShift64 {
    /// A uniform value in [-1, 1).
    fn next_signed(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// An RGBA8 framebuffer with clipped drawing primitives (coordinates in pixels).
struct Canvas<'a> {
    buf: &'a mut [u8],
    w: i64,
    h: i64,
}

impl Canvas<'_> {
    /// Fills [x0, x1) × [y0, y1), clipped to the canvas, opaque.
    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        let (x0, x1) = (x0.clamp(0, self.w), x1.clamp(0, self.w));
        let (y0, y1) = (y0.clamp(0, self.h), y1.clamp(0, self.h));
        for y in y0..y1 {
            let row = (y * self.w) as usize * 4;
            for px in
                self.buf[row + x0 as usize * 4..row + x1.max(x0) as usize * 4].chunks_exact_mut(4)
            {
                px.copy_from_slice(&[c[0], c[1], c[2], 255]);
            }
        }
    }

    /// A 2 px wide Bresenham line from `a` to `b`, clipped to `clip` = (x0, x1, y0, y1).
    fn line(&mut self, a: (i64, i64), b: (i64, i64), c: [u8; 3], clip: (i64, i64, i64, i64)) {
        let (dx, dy) = ((b.0 - a.0).abs(), -(b.1 - a.1).abs());
        let (sx, sy) = ((b.0 - a.0).signum(), (b.1 - a.1).signum());
        let (mut x, mut y, mut err) = (a.0, a.1, dx + dy);
        // Bounded: a segment spans at most dx + |dy| + 1 pixels.
        for _ in 0..=(dx - dy) {
            let (x0, x1) = (x.max(clip.0), (x + 2).min(clip.1));
            let (y0, y1) = (y.max(clip.2), (y + 2).min(clip.3));
            self.rect(x0, y0, x1, y1, c);
            if (x, y) == b {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `s` with its top-left at (x, y), each font pixel `scale`² screen pixels.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let gx = x + i as i64 * 6 * scale;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (gx + col * scale, y + row as i64 * scale);
                        self.rect(px, py, px + scale, py + scale, c);
                    }
                }
            }
        }
    }
}

/// Width in pixels of `s` drawn at `scale` (5 px glyphs, 1 px spacing).
fn text_width(s: &str, scale: i64) -> i64 {
    (s.chars().count() as i64 * 6 - 1).max(0) * scale
}

/// The 5×7 bitmap of `ch`: seven rows, bit 4 = leftmost column. Characters
/// outside the font (digits, `. - : ( )` and the letters of the labels) are blank.
fn glyph(ch: char) -> [u8; 7] {
    match ch {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        'a' => [0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F],
        'e' => [0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        'g' => [0, 0, 0x0F, 0x11, 0x0F, 0x01, 0x0E],
        'i' => [0x04, 0, 0x0C, 0x04, 0x04, 0x04, 0x0E],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'm' => [0, 0, 0x1A, 0x15, 0x15, 0x11, 0x11],
        'n' => [0, 0, 0x16, 0x19, 0x11, 0x11, 0x11],
        's' => [0, 0, 0x0E, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        _ => [0; 7],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    fn dark(buf: &[u8], w: usize, x: i64, y: i64) -> bool {
        let i = (y as usize * w + x as usize) * 4;
        buf[i..i + 3].iter().map(|c| u32::from(*c)).sum::<u32>() < 250
    }

    #[test]
    fn renders_only_on_new_sample() {
        let mut c = Chart::new();
        let mut buf = Vec::new();
        assert!(c.render(0.0, &mut buf));
        assert_eq!(buf.len(), 800 * 400 * 4);
        assert!(!c.render(0.03, &mut buf), "same sample period");
        let before = buf.clone();
        assert!(c.render(0.07, &mut buf), "second sample at 1/15 s");
        assert_ne!(buf, before);
        for i in 1..40 {
            let before = buf.clone();
            assert!(c.render(0.07 + f64::from(i) / SAMPLE_HZ, &mut buf));
            assert_ne!(buf, before, "tick {i}");
        }
    }

    #[test]
    fn plot_line_is_dark_on_white() {
        let mut c = Chart::new();
        let mut buf = Vec::new();
        c.render(20.0, &mut buf);
        assert_eq!(c.samples.len(), KEEP);
        assert_eq!(&buf[..4], &[255, 255, 255, 255], "white background");
        let (x0, x1, y0, y1) = c.plot();
        let mut checked = 0;
        for &(n, v) in &c.samples {
            let (x, y) = (
                c.x_of(n as f64 / SAMPLE_HZ).round() as i64,
                c.y_of(v).round() as i64,
            );
            if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
                assert!(dark(&buf, 800, x, y), "sample {n} at ({x},{y})");
                checked += 1;
            }
        }
        assert!(checked >= 140, "{checked}");
        // Mostly white inside the plot.
        let white = (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| buf[(y as usize * 800 + x as usize) * 4] == 255)
            .count();
        assert!(white as i64 > (x1 - x0) * (y1 - y0) * 8 / 10);
    }

    #[test]
    fn hover_draws_cursor_and_leave_removes_it() {
        let mut c = Chart::new();
        let mut plain = Vec::new();
        c.render(12.0, &mut plain);
        let mut buf = Vec::new();
        c.handle_event(&moved(400.0, 200.0, &[]));
        assert!(c.render(12.01, &mut buf), "pointer moved");
        let (_, _, y0, y1) = c.plot();
        let on_cursor = (y0..y1)
            .filter(|&y| buf[(y as usize * 800 + 400) * 4..][..3] == CURSOR)
            .count();
        assert!(on_cursor as i64 > (y1 - y0) * 8 / 10, "{on_cursor}");
        assert!(!c.render(12.02, &mut buf));
        c.handle_event(&InputEvent::PointerLeave(pointer(400.0, 200.0, 0, &[])));
        assert!(c.render(12.03, &mut buf));
        assert_eq!(buf, plain);
    }

    #[test]
    fn resize_and_time_jumps() {
        let mut c = Chart::new();
        let mut buf = Vec::new();
        c.handle_event(&resize(100, 40));
        assert_eq!(c.size(), (100, 40));
        assert!(c.render(1e9, &mut buf));
        assert_eq!(buf.len(), 100 * 40 * 4);
        assert!(c.samples.len() <= KEEP);
        assert!(!c.render(f64::NAN, &mut buf));
        c.handle_event(&resize(16, 16)); // smaller than the margins: nothing to plot, no panic
        c.handle_event(&moved(8.0, 8.0, &[]));
        assert!(c.render(1e9 + 1.0, &mut buf));
        assert_eq!(buf.len(), 16 * 16 * 4);
    }

    #[test]
    fn font_covers_labels() {
        for ch in "0123456789.-:()signaltme".chars() {
            assert_ne!(glyph(ch), [0; 7], "{ch}");
        }
        assert_eq!(text_width("12", 2), 22);
    }
}
