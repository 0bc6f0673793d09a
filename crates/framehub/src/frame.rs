//! Frames a program publishes.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, Weak};

use framehub_codec::{PixelLayout, RawImage};

use crate::error::Error;
use crate::events::lock;

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

    /// Checks the shape and turns the frame into an owned, tightly packed
    /// buffer: an owned, tightly packed frame is taken as it is (and freed
    /// when the hub drops it); a borrowed (or padded) one is copied once,
    /// into a buffer from `pool` when one of the right size is idle, which
    /// goes back to `pool` when the hub drops the frame.
    pub(crate) fn into_owned_tight(
        self,
        pool: &FramePool,
    ) -> Result<(FrameBuf, u32, u32, PixelLayout), Error> {
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
        let data = match self.data {
            // A publisher that hands over its buffers never takes one from
            // the pool, so this one is not kept for it either.
            Cow::Owned(mut v) if self.stride == row => {
                v.truncate(len);
                FrameBuf::unpooled(v)
            }
            data => {
                let mut v = pool.take(len);
                if self.stride == row {
                    v.extend_from_slice(&data[..len]);
                } else {
                    for y in 0..self.height as usize {
                        v.extend_from_slice(&data[y * self.stride..y * self.stride + row]);
                    }
                }
                pool.wrap(v)
            }
        };
        Ok((data, self.width, self.height, self.layout))
    }
}

/// Idle frame buffers of one stream, recycled: a frame the hub no longer
/// holds gives its buffer back, and the next `publish` copies into it
/// instead of into a fresh allocation. A fresh multi-megabyte allocation
/// comes from the kernel as untouched pages (the allocator hands large
/// blocks back when they are freed), so the copy into it also pays a page
/// fault per 4 KiB page; this made `publish` of a 1280×720 RGB frame
/// about twice as slow as the copy itself while viewers were connected
/// (docs/benchmarks.md, Python package).
#[derive(Debug, Default)]
pub(crate) struct FramePool {
    idle: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Idle buffers a stream keeps at most. A publisher at full speed needs
/// one: each publish takes a buffer and (once the encoders have moved on)
/// the hub drops one frame; a second absorbs drops that come in bursts.
const POOL_BUFFERS: usize = 2;

impl FramePool {
    /// An empty buffer with room for at least `len` bytes: an idle one when
    /// its capacity fits (at most twice `len`, so that a stream that shrank
    /// does not keep its larger buffers in use), else a new allocation.
    fn take(&self, len: usize) -> Vec<u8> {
        let mut idle = lock(&self.idle);
        while let Some(mut v) = idle.pop() {
            if v.capacity() >= len && v.capacity() / 2 <= len {
                v.clear();
                return v;
            }
        }
        drop(idle);
        Vec::with_capacity(len)
    }

    /// `data` as a frame buffer that comes back to this pool when dropped.
    fn wrap(&self, data: Vec<u8>) -> FrameBuf {
        FrameBuf {
            data,
            pool: Arc::downgrade(&self.idle),
        }
    }

    /// Buffers idle now.
    #[cfg(test)]
    fn idle(&self) -> usize {
        lock(&self.idle).len()
    }
}

/// The pixels of a published frame; the buffer goes back to its stream's
/// [`FramePool`] (if the stream still exists and the pool has room) when
/// the last holder drops the frame.
#[derive(Debug)]
pub(crate) struct FrameBuf {
    data: Vec<u8>,
    pool: Weak<Mutex<Vec<Vec<u8>>>>,
}

impl FrameBuf {
    /// `data` as a frame buffer that is freed when dropped.
    fn unpooled(data: Vec<u8>) -> FrameBuf {
        FrameBuf {
            data,
            pool: Weak::new(),
        }
    }
}

impl std::ops::Deref for FrameBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for FrameBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            let mut idle = lock(&pool);
            if idle.len() < POOL_BUFFERS {
                idle.push(std::mem::take(&mut self.data));
            }
        }
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
    pub data: FrameBuf,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(pool: &FramePool, frame: Frame<'_>) -> FrameBuf {
        frame.into_owned_tight(pool).unwrap().0
    }

    #[test]
    fn dropped_frame_buffer_is_reused() {
        let pool = FramePool::default();
        let pixels = [7u8; 4 * 3 * 2];
        let a = publish(&pool, Frame::rgb(4, 2, &pixels[..]));
        assert_eq!(&a[..], &pixels[..]);
        let ptr = a.as_ptr();
        drop(a);
        assert_eq!(pool.idle(), 1);
        let other = [9u8; 4 * 3 * 2];
        let b = publish(&pool, Frame::rgb(4, 2, &other[..]));
        assert_eq!(b.as_ptr(), ptr, "the idle buffer was not reused");
        assert_eq!(&b[..], &other[..]);
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn padded_rows_are_packed_into_a_reused_buffer() {
        let pool = FramePool::default();
        drop(publish(&pool, Frame::rgba(2, 2, &[0u8; 16][..])));
        assert_eq!(pool.idle(), 1);
        // Rows of 2 RGBA pixels, 12 bytes apart.
        let mut padded = [0u8; 12 + 8];
        padded[..8].copy_from_slice(&[1; 8]);
        padded[12..].copy_from_slice(&[2; 8]);
        let b = publish(&pool, Frame::rgba(2, 2, &padded[..]).with_stride(12));
        assert_eq!(&b[..], &[1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]);
    }

    #[test]
    fn pool_is_bounded_and_forgets_other_sizes() {
        let pool = FramePool::default();
        let frames: Vec<FrameBuf> = (0..5)
            .map(|_| publish(&pool, Frame::rgba(8, 8, &[0u8; 256][..])))
            .collect();
        drop(frames);
        assert_eq!(pool.idle(), POOL_BUFFERS);
        // A smaller frame (less than half) does not take the large buffers, and drops them.
        let small = publish(&pool, Frame::rgba(2, 2, &[0u8; 16][..]));
        assert_eq!(pool.idle(), 0);
        assert!(small.data.capacity() < 256);
    }

    #[test]
    fn owned_frames_are_taken_without_copy_and_not_pooled() {
        let pool = FramePool::default();
        let pixels = vec![5u8; 16];
        let ptr = pixels.as_ptr();
        let a = publish(&pool, Frame::rgba(2, 2, pixels));
        assert_eq!(a.as_ptr(), ptr, "an owned, tight frame was copied");
        drop(a);
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn buffer_outliving_its_pool_is_freed() {
        let pool = FramePool::default();
        let a = publish(&pool, Frame::rgb(1, 1, &[1u8, 2, 3][..]));
        drop(pool);
        assert_eq!(&a[..], &[1, 2, 3]);
        drop(a);
    }
}
