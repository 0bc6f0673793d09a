use crate::CodecError;

/// Largest accepted width or height, in pixels (the JPEG format's own limit is 65535;
/// 16384 bounds a frame to 1 GiB of RGBA).
pub const MAX_DIMENSION: u32 = 16384;

/// How pixels are laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelLayout {
    /// 4 bytes per pixel: red, green, blue, alpha.
    Rgba8,
    /// 3 bytes per pixel: red, green, blue.
    Rgb8,
}

impl PixelLayout {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelLayout::Rgba8 => 4,
            PixelLayout::Rgb8 => 3,
        }
    }
}

/// A borrowed image: `height` rows of `width` pixels, row `y` starting at
/// byte `y * stride` of `data`. Built only through [`RawImage::new`], which
/// checks the shape, so encoders can index it without further checks.
#[derive(Debug, Clone, Copy)]
pub struct RawImage<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: usize,
    layout: PixelLayout,
}

impl<'a> RawImage<'a> {
    /// Checks and wraps a pixel buffer.
    ///
    /// Errors: [`CodecError::InvalidImage`] when a side is 0 or over
    /// [`MAX_DIMENSION`], `stride` is shorter than a row, or `data` is shorter
    /// than `stride * (height - 1) + width * bytes_per_pixel`.
    pub fn new(
        data: &'a [u8],
        width: u32,
        height: u32,
        stride: usize,
        layout: PixelLayout,
    ) -> Result<Self, CodecError> {
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(CodecError::InvalidImage(format!(
                "size {width}x{height} is outside 1..={MAX_DIMENSION}"
            )));
        }
        let row = width as usize * layout.bytes_per_pixel();
        if stride < row {
            return Err(CodecError::InvalidImage(format!(
                "stride {stride} is shorter than a row of {row} bytes"
            )));
        }
        let need = stride * (height as usize - 1) + row;
        if data.len() < need {
            return Err(CodecError::InvalidImage(format!(
                "{} bytes given, {width}x{height} with stride {stride} needs {need}",
                data.len()
            )));
        }
        Ok(RawImage {
            data,
            width,
            height,
            stride,
            layout,
        })
    }

    /// The pixel bytes (at least `stride * (height - 1) + width * bpp`).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Bytes from one row to the next.
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// The pixel layout.
    pub fn layout(&self) -> PixelLayout {
        self.layout
    }
    /// The top-left `width` × `height` part of this image (same stride, no copy).
    ///
    /// Errors: [`CodecError::InvalidImage`] when the crop is empty or larger than the image.
    pub fn crop(&self, width: u32, height: u32) -> Result<RawImage<'a>, CodecError> {
        if width == 0 || height == 0 || width > self.width || height > self.height {
            return Err(CodecError::InvalidImage(format!(
                "crop {width}x{height} of a {}x{} image",
                self.width, self.height
            )));
        }
        Ok(RawImage {
            width,
            height,
            ..*self
        })
    }

    /// The `width`×`height` part of the image whose top-left pixel is
    /// (`x`, `y`): same stride and layout, no copy. Errors when it is empty
    /// or does not fit.
    pub fn region(
        &self,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    ) -> Result<RawImage<'a>, CodecError> {
        let fits = width > 0
            && height > 0
            && x.checked_add(width).is_some_and(|r| r <= self.width)
            && y.checked_add(height).is_some_and(|b| b <= self.height);
        if !fits {
            return Err(CodecError::InvalidImage(format!(
                "region {width}x{height} at ({x}, {y}) of a {}x{} image",
                self.width, self.height
            )));
        }
        let start = y as usize * self.stride + x as usize * self.layout.bytes_per_pixel();
        RawImage::new(&self.data[start..], width, height, self.stride, self.layout)
    }

    /// Row `y` (exactly `width * bpp` bytes). `y` must be below `height`.
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * self.layout.bytes_per_pixel()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_shape() {
        let buf = vec![0u8; 10 * 4 * 3];
        assert!(RawImage::new(&buf, 10, 3, 40, PixelLayout::Rgba8).is_ok());
        assert!(RawImage::new(&buf, 10, 4, 40, PixelLayout::Rgba8).is_err());
        assert!(RawImage::new(&buf, 10, 3, 39, PixelLayout::Rgba8).is_err());
        assert!(RawImage::new(&buf, 0, 3, 40, PixelLayout::Rgba8).is_err());
        // A padded stride needs no padding after the last row.
        assert!(RawImage::new(&buf[..40 * 2 + 30], 10, 3, 40, PixelLayout::Rgb8).is_ok());
    }

    #[test]
    fn region_is_a_view_of_the_part() {
        let buf: Vec<u8> = (0..10 * 4 * 3).map(|i| i as u8).collect();
        let img = RawImage::new(&buf, 10, 3, 40, PixelLayout::Rgba8).unwrap();
        let r = img.region(8, 1, 2, 2).unwrap();
        assert_eq!((r.width(), r.height()), (2, 2));
        assert_eq!(r.row(0), &buf[40 + 32..40 + 40]);
        assert_eq!(r.row(1), &buf[80 + 32..80 + 40]);
        assert!(img.region(9, 0, 2, 1).is_err());
        assert!(img.region(0, 2, 1, 2).is_err());
        assert!(img.region(0, 0, 0, 1).is_err());
        assert!(img.region(u32::MAX, 0, 2, 1).is_err());
    }
}
