use crate::{CodecError, Encoder, PixelLayout, RawImage};

fn backend(e: impl std::fmt::Display) -> CodecError {
    CodecError::Backend {
        codec: "png",
        message: e.to_string(),
    }
}

/// Lossless PNG with fast compression and the `Sub` filter (good on
/// natural and UI pictures at a fraction of adaptive filtering's cost).
pub struct PngEncoder {
    buf: Vec<u8>,
}

impl PngEncoder {
    /// A new encoder.
    pub fn new() -> Self {
        PngEncoder { buf: Vec::new() }
    }
}

impl Default for PngEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder for PngEncoder {
    fn mime(&self) -> &'static str {
        "image/png"
    }

    fn encode(&mut self, image: &RawImage<'_>) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(self.buf.capacity());
        let mut enc = png::Encoder::new(&mut out, image.width(), image.height());
        enc.set_color(match image.layout() {
            PixelLayout::Rgba8 => png::ColorType::Rgba,
            PixelLayout::Rgb8 => png::ColorType::Rgb,
        });
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        enc.set_filter(png::Filter::Sub);
        let mut writer = enc.write_header().map_err(backend)?;
        {
            let mut stream = writer.stream_writer().map_err(backend)?;
            for y in 0..image.height() {
                std::io::Write::write_all(&mut stream, image.row(y)).map_err(backend)?;
            }
            stream.finish().map_err(backend)?;
        }
        writer.finish().map_err(backend)?;
        self.buf = Vec::with_capacity(out.len());
        Ok(out)
    }
}

/// Decodes a PNG into tightly packed RGBA (for tests and tools).
///
/// Errors: [`CodecError::Backend`] when the data is not a supported 8-bit PNG.
pub fn decode_png_rgba(data: &[u8]) -> Result<(u32, u32, Vec<u8>), CodecError> {
    let dec = png::Decoder::new(std::io::Cursor::new(data));
    let mut reader = dec.read_info().map_err(backend)?;
    let mut buf = vec![
        0;
        reader
            .output_buffer_size()
            .ok_or_else(|| backend("image too large"))?
    ];
    let info = reader.next_frame(&mut buf).map_err(backend)?;
    let px = &buf[..info.buffer_size()];
    let rgba = match info.color_type {
        png::ColorType::Rgba => px.to_vec(),
        png::ColorType::Rgb => px.chunks(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
        other => return Err(backend(format!("colour type {other:?}"))),
    };
    Ok((info.width, info.height, rgba))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_is_lossless_for_rgba_and_rgb() {
        let (w, h) = (33u32, 17u32);
        let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i * 7 % 251) as u8).collect();
        let img = RawImage::new(&rgba, w, h, (w * 4) as usize, PixelLayout::Rgba8).unwrap();
        let (dw, dh, out) = decode_png_rgba(&PngEncoder::new().encode(&img).unwrap()).unwrap();
        assert_eq!((dw, dh), (w, h));
        assert_eq!(out, rgba);

        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 5 % 253) as u8).collect();
        let img = RawImage::new(&rgb, w, h, (w * 3) as usize, PixelLayout::Rgb8).unwrap();
        let (_, _, out) = decode_png_rgba(&PngEncoder::new().encode(&img).unwrap()).unwrap();
        let expect: Vec<u8> = rgb
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        assert_eq!(out, expect);
    }
}
