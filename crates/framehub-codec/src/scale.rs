//! Downscaling for quality tiers: a picture at 1/n of its size, with the
//! `fast_image_resize` crate (SIMD, box filter: each output pixel is the
//! mean of the n×n pixels it covers).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::raw::{PixelLayout, RawImage};
use crate::CodecError;

/// A picture made by [`downscale`]: tightly packed, same layout as its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaledImage {
    /// The pixels, `width × height × bytes per pixel`, rows without padding.
    pub data: Vec<u8>,
    /// Width in pixels: ⌈source width / divisor⌉.
    pub width: u32,
    /// Height in pixels: ⌈source height / divisor⌉.
    pub height: u32,
    /// RGBA8 or RGB8, as the source.
    pub layout: PixelLayout,
}

impl ScaledImage {
    /// A view of it for the encoders.
    pub fn image(&self) -> Result<RawImage<'_>, CodecError> {
        let stride = self.width as usize * self.layout.bytes_per_pixel();
        RawImage::new(&self.data, self.width, self.height, stride, self.layout)
    }
}

fn resize_error(e: impl std::fmt::Display) -> CodecError {
    CodecError::Backend {
        codec: "resize",
        message: e.to_string(),
    }
}

/// `img` at 1/`divisor` of its size (rounded up, at least 1×1), box-filtered.
/// A divisor of 0 or 1 copies it. Errors only on a backend failure.
pub fn downscale(img: &RawImage<'_>, divisor: u32) -> Result<ScaledImage, CodecError> {
    let bpp = img.layout().bytes_per_pixel();
    let row = img.width() as usize * bpp;
    // The resizer takes tightly packed rows: repack when the source has padding.
    let tight: std::borrow::Cow<'_, [u8]> = if img.stride() == row {
        std::borrow::Cow::Borrowed(&img.data()[..row * img.height() as usize])
    } else {
        std::borrow::Cow::Owned(
            (0..img.height())
                .flat_map(|y| img.row(y))
                .copied()
                .collect(),
        )
    };
    let divisor = divisor.max(1);
    let (width, height) = (
        img.width().div_ceil(divisor),
        img.height().div_ceil(divisor),
    );
    if divisor == 1 {
        return Ok(ScaledImage {
            data: tight.into_owned(),
            width,
            height,
            layout: img.layout(),
        });
    }
    let pixel_type = match img.layout() {
        PixelLayout::Rgba8 => PixelType::U8x4,
        PixelLayout::Rgb8 => PixelType::U8x3,
    };
    let src = ImageRef::new(img.width(), img.height(), &tight, pixel_type).map_err(resize_error)?;
    let mut dst = Image::new(width, height, pixel_type);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(resize_error)?;
    Ok(ScaledImage {
        data: dst.into_vec(),
        width,
        height,
        layout: img.layout(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_with_the_mean_of_each_block() {
        // 4×2 RGBA: left 2×2 block black and white checker, right block solid 100.
        let mut px = vec![0u8; 4 * 2 * 4];
        for (i, v) in [255u8, 0, 0, 255].iter().enumerate() {
            let (x, y) = (i % 2, i / 2);
            px[(y * 4 + x) * 4..(y * 4 + x) * 4 + 4].copy_from_slice(&[*v, *v, *v, 255]);
        }
        for y in 0..2 {
            for x in 2..4 {
                px[(y * 4 + x) * 4..(y * 4 + x) * 4 + 4].copy_from_slice(&[100, 100, 100, 255]);
            }
        }
        let img = RawImage::new(&px, 4, 2, 16, PixelLayout::Rgba8).unwrap();
        let s = downscale(&img, 2).unwrap();
        assert_eq!((s.width, s.height), (2, 1));
        assert!(
            (126..=129).contains(&s.data[0]),
            "mean of the checker: {}",
            s.data[0]
        );
        assert_eq!(&s.data[4..8], &[100, 100, 100, 255]);
    }

    #[test]
    fn odd_sizes_round_up_and_stride_and_rgb_work() {
        let (w, h, stride) = (5u32, 3u32, 20usize);
        let px = vec![50u8; stride * h as usize];
        let img = RawImage::new(&px, w, h, stride, PixelLayout::Rgb8).unwrap();
        let s = downscale(&img, 2).unwrap();
        assert_eq!((s.width, s.height, s.data.len()), (3, 2, 3 * 2 * 3));
        assert!(s.data.iter().all(|&v| v == 50));
        assert_eq!(s.image().unwrap().width(), 3);
        let same = downscale(&img, 1).unwrap();
        assert_eq!((same.width, same.data.len()), (5, 5 * 3 * 3));
    }
}
