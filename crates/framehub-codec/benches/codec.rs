//! Micro-benchmarks of the encoders (`cargo bench -p framehub-codec`):
//! JPEG q80 and PNG (fast) of a 1280×720 and a 1920×1080 RGBA picture,
//! RGBA → I420 (BT.709) at the same sizes, and H.264 at 1280×720 on a
//! camera pan (each frame the last moved 4 px, the encoder's common case;
//! one IDR every 2 s of timestamps, as the hub's default).
//!
//! The picture is made like the bench's `natural` one (`framehub bench`):
//! smooth gradients, soft shapes and ±6 levels of noise, so every 8×8 block
//! has detail. Sizes at q80: about 69 KB (720p) and 145 KB (1080p).
//!
//! `diff`: tile change detection (`diff::changed_rects`, issue 5: "under
//! 1 ms per 1080p frame on one core") between two 1920×1080 RGBA pictures:
//! identical (every row compared whole), a cursor-sized change (32×32 px),
//! a chart-sized change (a 640×360 region), and a picture new end to end
//! (the scan stops once more than `max_area` of the tiles changed).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use framehub_codec::diff::{changed_rects, Change, ChangeOptions};
use framehub_codec::{
    rgb_to_i420_bt709, Encoder, H264Config, H264Encoder, JpegEncoder, PixelLayout, PngEncoder,
    RawImage,
};

const SIZES: [(u32, u32); 2] = [(1280, 720), (1920, 1080)];

/// A camera-like RGBA picture `width` × `height`; `shift` moves it sideways (a pan).
fn natural(width: u32, height: u32, shift: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            let sx = x + shift;
            // xorshift noise, ±6 levels, fixed to the scene (it pans with it)
            let mut n = (u64::from(sx) * 0x2545_F491) ^ (u64::from(y) * 0x9E37_79B9);
            n ^= n >> 13;
            n = n.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let noise = (n >> 60) as i32 - 6;
            let (fx, fy) = (sx as f32 / width as f32, y as f32 / height as f32);
            let dx = fx - 0.6;
            let dy = fy - 0.4;
            let disc = if dx * dx + dy * dy < 0.04 { 60.0 } else { 0.0 };
            let r = 40.0 + 150.0 * fx + disc;
            let g = 60.0 + 120.0 * fy;
            let b = 180.0 - 100.0 * fx * fy + disc * 0.5;
            for v in [r, g, b] {
                out.push((v as i32 + noise).clamp(0, 255) as u8);
            }
            out.push(255);
        }
    }
    out
}

fn image(data: &[u8], width: u32, height: u32) -> RawImage<'_> {
    RawImage::new(data, width, height, width as usize * 4, PixelLayout::Rgba8)
        .expect("a valid picture")
}

fn image_encoders(c: &mut Criterion) {
    for (name, mut encoder) in [
        (
            "jpeg_q80",
            Box::new(JpegEncoder::new(80).expect("libjpeg-turbo")) as Box<dyn Encoder>,
        ),
        ("png_fast", Box::new(PngEncoder::new())),
    ] {
        let mut g = c.benchmark_group(name);
        for (w, h) in SIZES {
            let pixels = natural(w, h, 0);
            g.throughput(Throughput::Bytes(pixels.len() as u64));
            g.bench_with_input(
                BenchmarkId::from_parameter(format!("{w}x{h}")),
                &pixels,
                |b, pixels| b.iter(|| black_box(encoder.encode(&image(pixels, w, h)))),
            );
        }
        g.finish();
    }
}

fn rgba_to_i420(c: &mut Criterion) {
    let mut g = c.benchmark_group("rgba_to_i420_bt709");
    for (w, h) in SIZES {
        let pixels = natural(w, h, 0);
        g.throughput(Throughput::Bytes(pixels.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{w}x{h}")),
            &pixels,
            |b, pixels| b.iter(|| black_box(rgb_to_i420_bt709(&image(pixels, w, h)))),
        );
    }
    g.finish();
}

fn h264(c: &mut Criterion) {
    let (w, h) = (1280, 720);
    // 32 frames of a pan, 4 px apart, played back and forth.
    let frames: Vec<Vec<u8>> = (0..32).map(|i| natural(w, h, i * 4)).collect();
    let mut g = c.benchmark_group("h264_encode");
    g.throughput(Throughput::Bytes(u64::from(w * h * 4)));
    g.bench_function(BenchmarkId::from_parameter("1280x720_pan"), |b| {
        let mut enc = H264Encoder::new(w, h, H264Config::default()).expect("OpenH264");
        let mut i = 0u64;
        b.iter(|| {
            let k = (i % 62) as usize;
            let frame = &frames[if k < 32 { k } else { 62 - k }];
            i += 1;
            black_box(enc.encode(&image(frame, w, h), i * 33_333, false))
        })
    });
    g.finish();
}

/// `base` with the `w` × `h` region at (`x`, `y`) inverted.
fn changed(base: &[u8], width: u32, (x, y, w, h): (u32, u32, u32, u32)) -> Vec<u8> {
    let mut out = base.to_vec();
    for row in y..y + h {
        let start = (row * width + x) as usize * 4;
        for px in out[start..start + w as usize * 4].chunks_exact_mut(4) {
            for c in &mut px[..3] {
                *c = 255 - *c;
            }
        }
    }
    out
}

fn diff(c: &mut Criterion) {
    let (w, h) = (1920, 1080);
    let base = natural(w, h, 0);
    let cases = [
        ("1920x1080_identical", base.clone()),
        (
            "1920x1080_cursor_32px",
            changed(&base, w, (900, 500, 32, 32)),
        ),
        (
            "1920x1080_region_640x360",
            changed(&base, w, (640, 320, 640, 360)),
        ),
        ("1920x1080_all_new", natural(w, h, 7)),
    ];
    let mut g = c.benchmark_group("diff");
    g.throughput(Throughput::Bytes(base.len() as u64));
    for (name, cur) in &cases {
        // Sanity: the case is what its name says.
        let change = changed_rects(
            &image(&base, w, h),
            &image(cur, w, h),
            ChangeOptions::default(),
        );
        match (
            name.ends_with("identical"),
            name.ends_with("all_new"),
            &change,
        ) {
            (true, _, Change::Rects(r)) => assert!(r.is_empty()),
            (_, true, Change::Large) => {}
            (false, false, Change::Rects(r)) => assert!(!r.is_empty()),
            _ => panic!("{name}: {change:?}"),
        }
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                black_box(changed_rects(
                    &image(&base, w, h),
                    &image(cur, w, h),
                    ChangeOptions::default(),
                ))
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = image_encoders, rgba_to_i420, h264, diff
}
criterion_main!(benches);
