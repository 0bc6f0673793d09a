//! Test pictures shared by the socket and browser tests.

/// The colours of [`pattern`]'s quadrants for `seed` 0: top-left, top-right, bottom-left, bottom-right.
pub const QUADRANTS: [[u8; 3]; 4] = [[220, 30, 30], [30, 200, 40], [30, 40, 220], [240, 240, 240]];

/// An RGBA picture of four flat quadrants; `seed` rotates their colours.
pub fn pattern(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let q = (u8::from(x >= w / 2)) + 2 * u8::from(y >= h / 2);
            let [r, g, b] = QUADRANTS[usize::from((q + seed) % 4)];
            v.extend_from_slice(&[r, g, b, 255]);
        }
    }
    v
}

/// Mean absolute difference per channel (RGB) between two RGBA buffers.
#[allow(dead_code)] // used by the socket tests, not the browser ones
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut sum = 0u64;
    let mut n = 0u64;
    for (pa, pb) in a.chunks(4).zip(b.chunks(4)) {
        for c in 0..3 {
            sum += u64::from(pa[c].abs_diff(pb[c]));
            n += 1;
        }
    }
    sum as f64 / n as f64
}
