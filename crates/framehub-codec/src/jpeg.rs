use crate::{CodecError, Encoder, PixelLayout, RawImage};

/// Default JPEG quality (the and pdum.rfb's default).
pub const DEFAULT_JPEG_QUALITY: u8 = 80;

fn backend(e: turbojpeg::Error) -> CodecError {
    CodecError::Backend {
        codec: "jpeg",
        message: e.to_string(),
    }
}

/// JPEG through libjpeg-turbo: baseline, 4:2:0 chroma subsampling.
pub struct JpegEncoder {
    compressor: turbojpeg::Compressor,
    quality: u8,
}

impl JpegEncoder {
    /// An encoder at `quality` (clamped to 1..=100).
    ///
    /// Errors: [`CodecError::Backend`] when libjpeg-turbo cannot start.
    pub fn new(quality: u8) -> Result<Self, CodecError> {
        let mut compressor = turbojpeg::Compressor::new().map_err(backend)?;
        let quality = quality.clamp(1, 100);
        compressor
            .set_quality(i32::from(quality))
            .map_err(backend)?;
        compressor
            .set_subsamp(turbojpeg::Subsamp::Sub2x2)
            .map_err(backend)?;
        Ok(JpegEncoder {
            compressor,
            quality,
        })
    }

    /// The quality in use.
    pub fn quality(&self) -> u8 {
        self.quality
    }
}

impl Encoder for JpegEncoder {
    fn mime(&self) -> &'static str {
        "image/jpeg"
    }

    fn encode(&mut self, image: &RawImage<'_>) -> Result<Vec<u8>, CodecError> {
        let format = match image.layout() {
            PixelLayout::Rgba8 => turbojpeg::PixelFormat::RGBA,
            PixelLayout::Rgb8 => turbojpeg::PixelFormat::RGB,
        };
        let img = turbojpeg::Image {
            pixels: image.data(),
            width: image.width() as usize,
            pitch: image.stride(),
            height: image.height() as usize,
            format,
        };
        self.compressor.compress_to_vec(img).map_err(backend)
    }
}

/// Decodes a JPEG into tightly packed RGBA (for tests and tools).
///
/// Errors: [`CodecError::Backend`] when the data is not a JPEG.
pub fn decode_jpeg_rgba(jpeg: &[u8]) -> Result<(u32, u32, Vec<u8>), CodecError> {
    let img = turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::RGBA).map_err(backend)?;
    Ok((img.width as u32, img.height as u32, img.pixels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32, bpp: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h) as usize * bpp);
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, 128]);
                if bpp == 4 {
                    v.push(255);
                }
            }
        }
        v
    }

    #[test]
    fn encodes_rgba_and_rgb_close_to_the_source() {
        for (layout, bpp) in [(PixelLayout::Rgba8, 4), (PixelLayout::Rgb8, 3)] {
            let px = gradient(64, 48, bpp);
            let img = RawImage::new(&px, 64, 48, 64 * bpp, layout).unwrap();
            let jpeg = JpegEncoder::new(90).unwrap().encode(&img).unwrap();
            assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "SOI marker");
            let (w, h, out) = decode_jpeg_rgba(&jpeg).unwrap();
            assert_eq!((w, h), (64, 48));
            for (i, o) in out.chunks(4).enumerate() {
                let s = &px[i * bpp..i * bpp + 3];
                for c in 0..3 {
                    assert!(
                        (i32::from(o[c]) - i32::from(s[c])).abs() <= 12,
                        "pixel {i}: {o:?} vs {s:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn honours_stride() {
        let (w, h) = (16u32, 8u32);
        let stride = 16 * 4 + 12;
        let mut px = vec![0u8; stride * h as usize];
        for y in 0..h as usize {
            for x in 0..w as usize {
                px[y * stride + x * 4..y * stride + x * 4 + 4].copy_from_slice(&[200, 10, 10, 255]);
            }
        }
        let img = RawImage::new(&px, w, h, stride, PixelLayout::Rgba8).unwrap();
        let (_, _, out) =
            decode_jpeg_rgba(&JpegEncoder::new(90).unwrap().encode(&img).unwrap()).unwrap();
        assert!(out.chunks(4).all(|p| p[0] > 180 && p[1] < 40));
    }
}
