//! Test pictures for the publisher: RGBA8, tightly packed, made once per
//! scenario so that publishing costs only the hub's own copy.
//!
//! * [`Picture::Natural`]: what a camera or a 3D view looks like to a JPEG
//!   encoder: smooth gradients, a few soft-edged shapes and per-pixel noise
//!   (±6 levels, like sensor noise), so every 8×8 block has detail.
//! * [`Picture::Ui`]: what a desktop or a web app looks like: flat colours,
//!   panels with 1-px borders, and rows of dark "word" blocks that stand in
//!   for text (hard edges, which JPEG handles worst per byte but encodes fast).
//!
//! * [`Picture::Pan`]: a camera panning over one natural scene: each frame
//!   is the previous one moved [`PAN_STEP`] pixels sideways (and back at the
//!   ends), noise included. What a video encoder meets in practice: most of
//!   a frame is predicted from the one before.
//!
//! For `natural` and `ui`, each `seed` gives a different picture (shapes
//! move, noise changes, text scrolls), so a cycle of them makes every
//! publish a new frame; to a video encoder, every frame is a scene cut.

use std::fmt;

/// Which kind of picture to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Picture {
    /// Gradients, shapes and noise (camera- or render-like).
    Natural,
    /// Flat colours, panels, text-like blocks (desktop-like).
    Ui,
    /// A window moving over one wide natural scene (a camera pan).
    Pan,
    /// The `ui` picture with only a 24×24 pointer moving 10 px per frame
    /// (a remote desktop where little changes).
    Cursor,
    /// The demo's live chart (`framehub demo`'s `chart` stream), 15 frames
    /// per second of its time.
    Chart,
}

impl fmt::Display for Picture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Picture::Natural => "natural",
            Picture::Ui => "ui",
            Picture::Pan => "pan",
            Picture::Cursor => "cursor",
            Picture::Chart => "chart",
        })
    }
}

/// A small, fast, deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// Pixels a [`Picture::Pan`] frame moves from the one before.
pub const PAN_STEP: u32 = 4;
/// How far a [`Picture::Pan`] travels before it turns back, pixels.
const PAN_RANGE: u32 = 256;

/// The frames a publisher cycles through, made once per scenario.
pub enum Frames {
    /// Distinct pictures in a cycle.
    Cycle(Vec<Vec<u8>>),
    /// One picture with a pointer drawn at a new place each frame ([`Picture::Cursor`]).
    Cursor {
        /// RGBA, `width` × `height`, tightly packed.
        base: Vec<u8>,
        width: u32,
        height: u32,
    },
    /// Windows of one wide canvas ([`Picture::Pan`]).
    Pan {
        /// RGBA, `canvas_width` × `height`, tightly packed.
        canvas: Vec<u8>,
        canvas_width: u32,
        width: u32,
        height: u32,
    },
}

impl Frames {
    /// The frames of `kind` at `width` × `height`: `count` distinct
    /// pictures for `natural` and `ui`, one canvas for `pan`.
    pub fn new(kind: Picture, width: u32, height: u32, count: usize) -> Frames {
        match kind {
            Picture::Pan => {
                let canvas_width = width + PAN_RANGE;
                Frames::Pan {
                    canvas: natural(canvas_width, height, 0),
                    canvas_width,
                    width,
                    height,
                }
            }
            Picture::Cursor => Frames::Cursor {
                base: ui(width, height, 0),
                width,
                height,
            },
            // A cycle long enough that its wrap-around is one step among many.
            Picture::Chart => Frames::Cycle(generate(kind, width, height, count.max(CHART_FRAMES))),
            _ => Frames::Cycle(generate(kind, width, height, count)),
        }
    }

    /// Frame `i` as a fresh, tightly packed RGBA buffer (a copy, like an
    /// application rendering into a new buffer). Empty if there are no frames.
    pub fn render(&self, i: u64) -> Vec<u8> {
        match self {
            Frames::Cycle(pictures) if pictures.is_empty() => Vec::new(),
            Frames::Cycle(pictures) => pictures[(i % pictures.len() as u64) as usize].clone(),
            Frames::Cursor {
                base,
                width,
                height,
            } => {
                let mut out = base.clone();
                draw_pointer(&mut out, *width, *height, i);
                out
            }
            Frames::Pan {
                canvas,
                canvas_width,
                width,
                height,
            } => {
                // Back and forth over PAN_RANGE: no jump when it turns.
                let travel = (i * u64::from(PAN_STEP)) % (2 * u64::from(PAN_RANGE));
                let x = travel.min(2 * u64::from(PAN_RANGE) - travel) as usize;
                let (cw, w) = (*canvas_width as usize * 4, *width as usize * 4);
                let mut out = Vec::with_capacity(w * *height as usize);
                for row in canvas.chunks_exact(cw) {
                    out.extend_from_slice(&row[x * 4..x * 4 + w]);
                }
                out
            }
        }
    }

    /// Bytes held by the frames.
    pub fn bytes(&self) -> usize {
        match self {
            Frames::Cycle(p) => p.iter().map(Vec::len).sum(),
            Frames::Cursor { base, .. } => base.len(),
            Frames::Pan { canvas, .. } => canvas.len(),
        }
    }
}

/// Makes `count` distinct `width` × `height` RGBA pictures of `kind`
/// (`pan` gives `natural` ones: a pan is made by [`Frames::new`]).
pub fn generate(kind: Picture, width: u32, height: u32, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|seed| match kind {
            Picture::Natural | Picture::Pan => natural(width, height, seed as u64),
            Picture::Ui | Picture::Cursor => ui(width, height, seed as u64),
            Picture::Chart => chart(width, height, seed),
        })
        .collect()
}

/// Frames of the chart cycle.
const CHART_FRAMES: usize = 45;

/// Frame `i` of the demo's chart at `width` × `height`: its picture at
/// 10 s + `i`/15 s (10 s in, the plot is full of signal).
fn chart(width: u32, height: u32, i: usize) -> Vec<u8> {
    use framehub_demo::{chart::Chart, Scene};
    let mut scene = Chart::new();
    scene.handle_event(&framehub::InputEvent::Resize(
        framehub::event::ResizeEvent {
            width: f64::from(width),
            height: f64::from(height),
            pwidth: width,
            pheight: height,
            ratio: 1.0,
        },
    ));
    let mut buf = Vec::new();
    scene.render(0.0, &mut buf);
    scene.render(10.0 + i as f64 / 15.0, &mut buf);
    buf.resize(width as usize * height as usize * 4, 255);
    buf
}

/// Draws frame `i`'s 24×24 pointer (a dark arrow with a white edge) at its
/// place on a Lissajous path, 10 px from the last one.
fn draw_pointer(px: &mut [u8], w: u32, h: u32, i: u64) {
    const SIZE: u32 = 24;
    let t = i as f64 * 10.0 / 400.0;
    let (rx, ry) = (
        f64::from(w.saturating_sub(SIZE)) / 2.0,
        f64::from(h.saturating_sub(SIZE)) / 2.0,
    );
    let x0 = (rx + rx * (t * 1.3).sin()) as u32;
    let y0 = (ry + ry * (t * 0.7).cos()) as u32;
    for dy in 0..SIZE.min(h) {
        for dx in 0..=dy.min(SIZE / 2) {
            let (x, y) = (x0 + dx, y0 + dy);
            if x >= w || y >= h {
                continue;
            }
            let edge = dx == 0 || dx == dy.min(SIZE / 2) || dy == SIZE - 1;
            let c = if edge { 255 } else { 20 };
            let at = (y as usize * w as usize + x as usize) * 4;
            px[at..at + 4].copy_from_slice(&[c, c, c, 255]);
        }
    }
}

fn clamp_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

fn natural(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let (wf, hf) = (w as f32, h as f32);
    let phase = seed as f32 * 0.7;
    // Base: two crossing gradients and a slow wave (sky/ground-like).
    let mut px = vec![0u8; w as usize * h as usize * 4];
    // Precompute the wave per column: sin per pixel would dominate the run time.
    let wave: Vec<f32> = (0..w)
        .map(|x| (x as f32 / wf * 6.0 + phase).sin())
        .collect();
    for y in 0..h {
        let fy = y as f32 / hf;
        for x in 0..w {
            let fx = x as f32 / wf;
            let i = (y as usize * w as usize + x as usize) * 4;
            let s = wave[x as usize] * (1.0 - fy);
            px[i] = clamp_u8((60.0 + 150.0 * fx + 30.0 * s) as i32);
            px[i + 1] = clamp_u8((90.0 + 100.0 * fy + 40.0 * s) as i32);
            px[i + 2] = clamp_u8((200.0 - 120.0 * fy + 25.0 * s) as i32);
            px[i + 3] = 255;
        }
    }
    // Shapes: soft-edged discs and a few boxes, placed by seed.
    let mut rng = Rng::new(seed + 1);
    let unit = w.min(h) as f32;
    for _ in 0..12 {
        let cx = rng.below(w) as f32;
        let cy = rng.below(h) as f32;
        let r = unit * (0.03 + rng.below(100) as f32 / 100.0 * 0.12);
        let col = [
            rng.below(256) as f32,
            rng.below(256) as f32,
            rng.below(256) as f32,
        ];
        let (x0, x1) = (
            (cx - r - 2.0).max(0.0) as u32,
            ((cx + r + 2.0) as u32).min(w),
        );
        let (y0, y1) = (
            (cy - r - 2.0).max(0.0) as u32,
            ((cy + r + 2.0) as u32).min(h),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                // Coverage falls from 1 to 0 over 2 px at the edge, with shading towards the rim.
                let a = ((r - d) / 2.0).clamp(0.0, 1.0) * (1.0 - 0.4 * (d / r).min(1.0));
                if a > 0.0 {
                    let i = (y as usize * w as usize + x as usize) * 4;
                    for c in 0..3 {
                        px[i + c] = (px[i + c] as f32 * (1.0 - a) + col[c] * a) as u8;
                    }
                }
            }
        }
    }
    for _ in 0..5 {
        let bw = unit as u32 / 10 + rng.below(unit as u32 / 5);
        let bh = unit as u32 / 12 + rng.below(unit as u32 / 6);
        let x0 = rng.below(w.saturating_sub(bw).max(1));
        let y0 = rng.below(h.saturating_sub(bh).max(1));
        let col = [
            rng.below(256) as u8,
            rng.below(256) as u8,
            rng.below(256) as u8,
        ];
        for y in y0..(y0 + bh).min(h) {
            for x in x0..(x0 + bw).min(w) {
                let i = (y as usize * w as usize + x as usize) * 4;
                // A vertical shade across the box.
                let shade = 1.0 - 0.3 * (y - y0) as f32 / bh as f32;
                for c in 0..3 {
                    px[i + c] = (col[c] as f32 * shade) as u8;
                }
            }
        }
    }
    // Noise last, on everything, like a sensor's.
    let mut rng = Rng::new(seed.wrapping_mul(7919) + 17);
    for p in px.chunks_exact_mut(4) {
        let n = rng.next();
        for (c, v) in p.iter_mut().take(3).enumerate() {
            let d = ((n >> (c * 8)) & 0xFF) as i32 % 13 - 6;
            *v = clamp_u8(i32::from(*v) + d);
        }
    }
    px
}

fn fill(px: &mut [u8], w: u32, h: u32, rect: (u32, u32, u32, u32), col: [u8; 3]) {
    let (x0, y0, rw, rh) = rect;
    for y in y0.min(h)..(y0 + rh).min(h) {
        let row = y as usize * w as usize * 4;
        for x in x0.min(w)..(x0 + rw).min(w) {
            let i = row + x as usize * 4;
            px[i..i + 3].copy_from_slice(&col);
        }
    }
}

fn ui(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let mut px = vec![255u8; w as usize * h as usize * 4];
    fill(&mut px, w, h, (0, 0, w, h), [243, 244, 246]);
    // Scale with the picture so the quick sizes look alike.
    let s = (h / 180).max(1);
    let bar = 8 * s;
    fill(&mut px, w, h, (0, 0, w, bar), [32, 36, 44]);
    // A status light in the title bar that moves with the seed: every seed differs, at any size.
    fill(
        &mut px,
        w,
        h,
        (
            w / 2 + (seed as u32 * 5 * s) % (w / 3).max(1),
            2 * s,
            6 * s,
            4 * s,
        ),
        [250, 204, 21],
    );
    let side = w / 5;
    fill(
        &mut px,
        w,
        h,
        (0, bar, side, h.saturating_sub(bar)),
        [226, 229, 234],
    );
    fill(
        &mut px,
        w,
        h,
        (side, bar, 1, h.saturating_sub(bar)),
        [190, 194, 200],
    );
    let mut rng = Rng::new(seed * 31 + 5);
    // Sidebar entries, one highlighted (moves with the seed).
    let line = 3 * s + 2;
    let hl = (seed as u32 * 3) % 12;
    for k in 0..(h.saturating_sub(bar) / (line * 2)).min(40) {
        let y = bar + 2 * s + k * line * 2;
        if k == hl {
            fill(
                &mut px,
                w,
                h,
                (0, y.saturating_sub(s), side, line + 2 * s),
                [59, 130, 246],
            );
        }
        let len = side / 3 + rng.below(side / 2);
        fill(
            &mut px,
            w,
            h,
            (3 * s, y, len.min(side.saturating_sub(6 * s)), line - 1),
            [70, 74, 84],
        );
    }
    // Two content panels with borders, filled with lines of "words".
    let content_x = side + 4 * s;
    let panel_w = w.saturating_sub(content_x + 4 * s);
    let scroll = (seed as u32 * 7 * s) % (line * 4);
    let ph = (h.saturating_sub(bar) / 2).saturating_sub(6 * s);
    for (p, (py, ph)) in [(bar + 4 * s, ph), ((h + bar) / 2 + 2 * s, ph)]
        .into_iter()
        .enumerate()
    {
        fill(
            &mut px,
            w,
            h,
            (content_x - 1, py - 1, panel_w + 2, ph + 2),
            [200, 204, 210],
        );
        fill(&mut px, w, h, (content_x, py, panel_w, ph), [255, 255, 255]);
        if p == 1 {
            // A button.
            fill(
                &mut px,
                w,
                h,
                (
                    content_x + 4 * s,
                    (py + ph).saturating_sub(8 * s),
                    30 * s,
                    6 * s,
                ),
                [16, 163, 127],
            );
        }
        let mut y = py + 3 * s + scroll;
        while y + line < (py + ph).saturating_sub(9 * s) {
            let mut x = content_x + 4 * s;
            let end = (content_x + panel_w).saturating_sub(4 * s + rng.below(panel_w / 4));
            while x < end {
                let word = 2 * s + rng.below(10 * s);
                let col = if rng.below(12) == 0 {
                    [37, 99, 235]
                } else {
                    [40, 42, 48]
                };
                fill(&mut px, w, h, (x, y, word.min(end - x), line - 1), col);
                x += word + s + 1;
            }
            y += line + s + 1;
        }
    }
    px
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_distinct_and_sized() {
        for kind in [Picture::Natural, Picture::Ui] {
            for (w, h) in [(320, 180), (64, 36), (1280, 720)] {
                let p = generate(kind, w, h, 3);
                assert_eq!(p.len(), 3);
                assert!(p.iter().all(|f| f.len() == (w * h * 4) as usize));
                assert!(p[0] != p[1], "{kind} {w}x{h}: pictures 0 and 1 are equal");
                assert!(p[1] != p[2], "{kind} {w}x{h}: pictures 1 and 2 are equal");
            }
        }
    }

    #[test]
    fn a_pan_moves_by_its_step_and_turns_back() {
        let (w, h) = (64u32, 8u32);
        let frames = Frames::new(Picture::Pan, w, h, 4);
        let f0 = frames.render(0);
        let f1 = frames.render(1);
        assert_eq!(f0.len(), (w * h * 4) as usize);
        assert_ne!(f0, f1);
        // Frame 1 is frame 0 moved PAN_STEP px left: the overlap is equal.
        let row = (w * 4) as usize;
        let step = (PAN_STEP * 4) as usize;
        for y in 0..h as usize {
            assert_eq!(
                f1[y * row..y * row + row - step],
                f0[y * row + step..y * row + row]
            );
        }
        // There and back: frame 2 × range / step is frame 0 again, frame 1 mirrors the last.
        let period = u64::from(2 * PAN_RANGE / PAN_STEP);
        assert_eq!(frames.render(period), f0);
        assert_eq!(frames.render(period - 1), f1);
    }
}
