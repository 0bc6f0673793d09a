//! Frames a program publishes.

use std::borrow::Cow;

use framehub_codec::{PixelLayout, RawImage};

use crate::error::Error;

/// One picture to publish: `height` rows of `width` pixels, 8-bit RGBA or RGB,
/// row-major, row `y` starting at byte `y * stride`. Borrowed (copied once
/// at `publish`) or owned (taken without a copy when tightly packed).
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    pub(crate) data: Cow<'a, [u8]>,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) stride: usize,
    pub(crate) layout: PixelLayout,
}

impl<'a> Frame<'a> {
    /// An RGBA8 frame, tightly packed (stride = `width * 4`).
    pub fn rgba(width: u32, height: u32, data: impl Into<Cow<'a, [u8]>>) -> Self {
        Frame {
            data: data.into(),
            width,
            height,
            stride: width as usize * 4,
            layout: PixelLayout::Rgba8,
        }
    }

    /// An RGB8 frame, tightly packed (stride = `width * 3`).
    pub fn rgb(width: u32, height: u32, data: impl Into<Cow<'a, [u8]>>) -> Self {
        Frame {
            data: data.into(),
            width,
            height,
            stride: width as usize * 3,
            layout: PixelLayout::Rgb8,
        }
    }

    /// The same frame with rows `stride` bytes apart (padded rows, a crop of a larger buffer).
    pub fn with_stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Checks the shape and turns the frame into an owned, tightly packed buffer.
    pub(crate) fn into_owned_tight(self) -> Result<(Vec<u8>, u32, u32, PixelLayout), Error> {
        RawImage::new(
            &self.data,
            self.width,
            self.height,
            self.stride,
            self.layout,
        )
        .map_err(|e| Error::InvalidFrame(e.to_string()))?;
        let row = self.width as usize * self.layout.bytes_per_pixel();
        let len = row * self.height as usize;
        let data = if self.stride == row {
            let mut v = self.data.into_owned();
            v.truncate(len);
            v
        } else {
            let mut v = Vec::with_capacity(len);
            for y in 0..self.height as usize {
                v.extend_from_slice(&self.data[y * self.stride..y * self.stride + row]);
            }
            v
        };
        Ok((data, self.width, self.height, self.layout))
    }
}

/// A published frame as the hub keeps it: tightly packed, shared by the encoders.
#[derive(Debug)]
pub(crate) struct RawFrame {
    /// Publish counter of the stream, from 1.
    pub id: u64,
    /// Publish time, µs since the stream was created.
    pub timestamp_us: u64,
    /// Publish time.
    pub published_at: std::time::Instant,
    pub width: u32,
    pub height: u32,
    pub layout: PixelLayout,
    pub data: Vec<u8>,
}

impl RawFrame {
    pub fn image(&self) -> Result<RawImage<'_>, framehub_codec::CodecError> {
        RawImage::new(
            &self.data,
            self.width,
            self.height,
            self.width as usize * self.layout.bytes_per_pixel(),
            self.layout,
        )
    }
}
