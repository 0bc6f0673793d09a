//! Tile-based change detection for region updates (`image_patch`, protocol
//! §4.3).
//!
//! [`changed_rects`] compares two pictures of the same size and layout in
//! square tiles ([`TILE`] pixels, 64 by default) and returns the changed area
//! as a few rectangles, each a union of whole tiles (clipped at the right and
//! bottom edges), so that every rectangle starts on a multiple of 64 — which
//! also keeps JPEG's 16×16 MCUs of a patch aligned with the frame's.
//!
//! Cost: a row of the picture is first compared whole (`memcmp`, the fastest
//! case: unchanged rows of a mostly still picture); only a row that differs is
//! compared tile by tile, and a tile already known to have changed is not
//! compared again. A picture that is new end to end therefore costs one short
//! comparison per tile, and [`ChangeOptions::max_area`] stops the scan as soon
//! as the change is too large for a patch to pay. Measured per 1920×1080 RGBA
//! frame by the `diff` Criterion benchmark of this crate (docs/benchmarks.md).

use crate::raw::RawImage;

/// Edge of a square tile in pixels (64: a multiple of JPEG's 16-pixel MCU).
pub const TILE: u32 = 64;

/// Most rectangles a change is described with: beyond this, rows of
/// rectangles are merged into bands, then into one bounding box. A patch of
/// many tiny images costs more in per-image headers than it saves.
pub const MAX_RECTS: usize = 16;

/// A rectangle in pixels: `[x, y, width, height]`, as in `image_patch` `rects`.
pub type Rect = [u32; 4];

/// Limits of a change detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangeOptions {
    /// Largest changed share of the picture's tiles (0–1) worth a patch:
    /// beyond it the scan stops and [`Change::Large`] is returned.
    pub max_area: f64,
}

impl Default for ChangeOptions {
    /// `max_area` 0.5: a patch of more than half the picture rarely beats a
    /// full frame once each rectangle is its own image.
    fn default() -> Self {
        ChangeOptions { max_area: 0.5 }
    }
}

/// What changed between two pictures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Not comparable: a different size or pixel layout.
    Incomparable,
    /// More than [`ChangeOptions::max_area`] of the tiles changed.
    Large,
    /// These rectangles changed (empty: the pictures are identical). At most
    /// [`MAX_RECTS`], disjoint, within the picture.
    Rects(Vec<Rect>),
}

/// Compares `prev` and `cur` in [`TILE`]-pixel tiles (see the module docs).
pub fn changed_rects(prev: &RawImage<'_>, cur: &RawImage<'_>, opts: ChangeOptions) -> Change {
    if prev.width() != cur.width() || prev.height() != cur.height() || prev.layout() != cur.layout()
    {
        return Change::Incomparable;
    }
    let (w, h) = (cur.width(), cur.height());
    let cols = w.div_ceil(TILE) as usize;
    let rows = h.div_ceil(TILE) as usize;
    let budget = ((cols * rows) as f64 * opts.max_area.clamp(0.0, 1.0)).floor() as usize;
    let bpp = cur.layout().bytes_per_pixel();
    let tile_bytes = TILE as usize * bpp;
    let mut changed = vec![false; cols * rows];
    let mut count = 0usize;
    for ty in 0..rows {
        let mark = &mut changed[ty * cols..(ty + 1) * cols];
        let y0 = ty as u32 * TILE;
        let y1 = (y0 + TILE).min(h);
        for y in y0..y1 {
            let (a, b) = (prev.row(y), cur.row(y));
            if a == b {
                continue;
            }
            for (tx, m) in mark.iter_mut().enumerate() {
                if *m {
                    continue;
                }
                let start = tx * tile_bytes;
                let end = (start + tile_bytes).min(a.len());
                if a[start..end] != b[start..end] {
                    *m = true;
                    count += 1;
                    if count > budget {
                        return Change::Large;
                    }
                }
            }
            if mark.iter().all(|m| *m) {
                break; // every tile of this row of tiles changed
            }
        }
    }
    Change::Rects(merge(&changed, cols, rows, w, h))
}

/// Merges changed tiles into at most [`MAX_RECTS`] disjoint rectangles.
fn merge(changed: &[bool], cols: usize, rows: usize, w: u32, h: u32) -> Vec<Rect> {
    // Runs of changed tiles per row, in tile units: (x0, x1, y0, y1).
    let mut open: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut done: Vec<(usize, usize, usize, usize)> = Vec::new();
    for ty in 0..rows {
        let mut runs = Vec::new();
        let mut tx = 0;
        while tx < cols {
            if changed[ty * cols + tx] {
                let start = tx;
                while tx < cols && changed[ty * cols + tx] {
                    tx += 1;
                }
                runs.push((start, tx));
            } else {
                tx += 1;
            }
        }
        // A run with the same columns as a rectangle open on the row above extends it.
        let mut next_open = Vec::new();
        for r in open.drain(..) {
            if let Some(i) = runs.iter().position(|&(a, b)| (a, b) == (r.0, r.1)) {
                runs.remove(i);
                next_open.push((r.0, r.1, r.2, ty + 1));
            } else {
                done.push(r);
            }
        }
        next_open.extend(runs.into_iter().map(|(a, b)| (a, b, ty, ty + 1)));
        open = next_open;
    }
    done.extend(open);
    if done.len() > MAX_RECTS {
        // Too many: one band per row of tiles that changed, spanning its changed columns.
        done = bands(changed, cols, rows);
    }
    if done.len() > MAX_RECTS {
        let x0 = done.iter().map(|r| r.0).min().unwrap_or(0);
        let x1 = done.iter().map(|r| r.1).max().unwrap_or(0);
        let y0 = done.iter().map(|r| r.2).min().unwrap_or(0);
        let y1 = done.iter().map(|r| r.3).max().unwrap_or(0);
        done = vec![(x0, x1, y0, y1)];
    }
    done.sort_by_key(|r| (r.2, r.0));
    let t = TILE as usize;
    done.into_iter()
        .map(|(x0, x1, y0, y1)| {
            let (px, py) = ((x0 * t) as u32, (y0 * t) as u32);
            [
                px,
                py,
                ((x1 * t) as u32).min(w) - px,
                ((y1 * t) as u32).min(h) - py,
            ]
        })
        .collect()
}

/// One rectangle per run of consecutive changed tile rows whose changed
/// columns are merged to their span (rows with the same span join).
fn bands(changed: &[bool], cols: usize, rows: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut out: Vec<(usize, usize, usize, usize)> = Vec::new();
    for ty in 0..rows {
        let row = &changed[ty * cols..(ty + 1) * cols];
        let (Some(a), Some(b)) = (row.iter().position(|c| *c), row.iter().rposition(|c| *c)) else {
            continue;
        };
        match out.last_mut() {
            Some(last) if last.3 == ty && (last.0, last.1) == (a, b + 1) => last.3 = ty + 1,
            _ => out.push((a, b + 1, ty, ty + 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PixelLayout;

    fn picture(w: u32, h: u32) -> Vec<u8> {
        (0..w * h * 4).map(|i| (i % 251) as u8).collect()
    }

    fn img(buf: &[u8], w: u32, h: u32) -> RawImage<'_> {
        RawImage::new(buf, w, h, w as usize * 4, PixelLayout::Rgba8).unwrap()
    }

    fn set(buf: &mut [u8], w: u32, x: u32, y: u32) {
        let i = (y * w + x) as usize * 4;
        buf[i] = buf[i].wrapping_add(1);
    }

    #[test]
    fn identical_pictures_have_no_rects() {
        let a = picture(200, 130);
        let c = changed_rects(
            &img(&a, 200, 130),
            &img(&a, 200, 130),
            ChangeOptions::default(),
        );
        assert_eq!(c, Change::Rects(vec![]));
    }

    #[test]
    fn one_pixel_is_one_tile_clipped_at_the_edges() {
        let a = picture(200, 130);
        let mut b = a.clone();
        set(&mut b, 200, 70, 10);
        let c = changed_rects(
            &img(&a, 200, 130),
            &img(&b, 200, 130),
            ChangeOptions::default(),
        );
        assert_eq!(c, Change::Rects(vec![[64, 0, 64, 64]]));
        // In the corner tile, which is smaller than 64×64.
        let mut b = a.clone();
        set(&mut b, 200, 199, 129);
        let c = changed_rects(
            &img(&a, 200, 130),
            &img(&b, 200, 130),
            ChangeOptions::default(),
        );
        assert_eq!(c, Change::Rects(vec![[192, 128, 8, 2]]));
    }

    #[test]
    fn a_block_of_tiles_is_one_rect() {
        let (w, h) = (640, 480);
        let a = picture(w, h);
        let mut b = a.clone();
        for y in 100..300 {
            for x in 130..260 {
                set(&mut b, w, x, y);
            }
        }
        let c = changed_rects(&img(&a, w, h), &img(&b, w, h), ChangeOptions::default());
        // Tiles 2..=4 across (128..320), 1..=4 down (64..320).
        assert_eq!(c, Change::Rects(vec![[128, 64, 192, 256]]));
    }

    #[test]
    fn rects_cover_every_change_and_stay_few() {
        let (w, h) = (1024, 1024);
        let a = picture(w, h);
        let mut b = a.clone();
        // A diagonal of 16 tiles and a scatter: more runs than MAX_RECTS.
        let mut points = vec![];
        for i in 0..16 {
            points.push((i * 64 + 5, i * 64 + 7));
            points.push(((15 - i) * 64 + 1, i * 64 + 2));
        }
        for &(x, y) in &points {
            set(&mut b, w, x, y);
        }
        let opts = ChangeOptions { max_area: 1.0 };
        let Change::Rects(rects) = changed_rects(&img(&a, w, h), &img(&b, w, h), opts) else {
            panic!("expected rects");
        };
        assert!(rects.len() <= MAX_RECTS, "{} rects", rects.len());
        for &(x, y) in &points {
            assert!(
                rects
                    .iter()
                    .any(|r| x >= r[0] && x < r[0] + r[2] && y >= r[1] && y < r[1] + r[3]),
                "({x}, {y}) not covered by {rects:?}"
            );
        }
        for (i, r) in rects.iter().enumerate() {
            assert!(r[0] + r[2] <= w && r[1] + r[3] <= h);
            for s in &rects[i + 1..] {
                let apart = r[0] + r[2] <= s[0]
                    || s[0] + s[2] <= r[0]
                    || r[1] + r[3] <= s[1]
                    || s[1] + s[3] <= r[1];
                assert!(apart, "{r:?} overlaps {s:?}");
            }
        }
    }

    #[test]
    fn a_new_picture_is_large_and_a_new_size_incomparable() {
        let a = picture(256, 256);
        let b: Vec<u8> = a.iter().map(|v| v.wrapping_add(1)).collect();
        let c = changed_rects(
            &img(&a, 256, 256),
            &img(&b, 256, 256),
            ChangeOptions::default(),
        );
        assert_eq!(c, Change::Large);
        let c = changed_rects(
            &img(&a, 256, 256),
            &img(&b[..128 * 256 * 4], 128, 256),
            ChangeOptions::default(),
        );
        assert_eq!(c, Change::Incomparable);
    }

    #[test]
    fn honours_stride() {
        // 100×70 pictures inside 120-pixel rows; the padding differs and must not count.
        let (w, h, stride) = (100u32, 70u32, 120usize * 4);
        let mut a = vec![0u8; stride * h as usize];
        let mut b = vec![9u8; stride * h as usize];
        for y in 0..h as usize {
            a[y * stride..y * stride + w as usize * 4].fill(3);
            b[y * stride..y * stride + w as usize * 4].fill(3);
        }
        b[65 * stride + 4 * 4] = 4;
        let ia = RawImage::new(&a, w, h, stride, PixelLayout::Rgba8).unwrap();
        let ib = RawImage::new(&b, w, h, stride, PixelLayout::Rgba8).unwrap();
        let c = changed_rects(&ia, &ib, ChangeOptions::default());
        assert_eq!(c, Change::Rects(vec![[0, 64, 64, 6]]));
    }
}
