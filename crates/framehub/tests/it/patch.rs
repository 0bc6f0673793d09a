//! Region updates (`image_patch`, protocol §4.3) over real sockets.

use std::time::Duration;

use framehub::proto::FrameHeader;
use framehub::{Frame, Server, StreamConfig};

use crate::common::*;

fn decode_png(payload: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut r = png::Decoder::new(std::io::Cursor::new(payload))
        .read_info()
        .unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    (info.width, info.height, buf)
}

/// The length-prefixed images of an `image_patch` payload.
fn split(payload: &[u8]) -> Vec<&[u8]> {
    let mut parts = vec![];
    let mut rest = payload;
    while !rest.is_empty() {
        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        parts.push(&rest[4..4 + n]);
        rest = &rest[4 + n..];
    }
    parts
}

/// Draws PNG patch `parts` at `rects` over `picture` (RGBA, `w` wide), as the browser does.
fn apply(picture: &mut [u8], w: u32, rects: &[[u32; 4]], parts: &[&[u8]]) {
    assert_eq!(rects.len(), parts.len(), "one image per rect");
    for (r, part) in rects.iter().zip(parts) {
        let (pw, ph, px) = decode_png(part);
        assert_eq!((pw, ph), (r[2], r[3]), "the image has its rect's size");
        for y in 0..ph {
            let src = &px[(y * pw * 4) as usize..((y + 1) * pw * 4) as usize];
            let at = (((r[1] + y) * w + r[0]) * 4) as usize;
            picture[at..at + src.len()].copy_from_slice(src);
        }
    }
}

fn no_stills() -> StreamConfig {
    StreamConfig::default().still_after(None)
}

#[tokio::test]
async fn png_patches_rebuild_the_published_frames_exactly() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (w, h) = (300, 200);
    let stream = server.add_stream("s", w, h, no_stills()).unwrap();
    let mut c = Client::open(addr, "/s", &["image/png", "framehub/patch"]).await;
    let mut pic = pattern(w, h, 1);
    stream.publish(Frame::rgba(w, h, pic.clone())).unwrap();
    let (head, payload) = c.recv_frame().await;
    assert!(matches!(head, FrameHeader::ImageFrame { .. }), "{head:?}");
    let mut shown = decode_png(&payload).2;
    c.ack(head.seq()).await;
    // Small changes in two places, then one pixel, then nothing at all.
    let changes: [&[(u32, u32)]; 3] = [&[(10, 10), (11, 12), (250, 150)], &[(299, 199)], &[]];
    for (i, points) in changes.iter().enumerate() {
        for &(x, y) in *points {
            let at = ((y * w + x) * 4) as usize;
            pic[at] = pic[at].wrapping_add(99);
        }
        stream.publish(Frame::rgba(w, h, pic.clone())).unwrap();
        let (head, payload) = c.recv_frame().await;
        let FrameHeader::ImagePatch {
            rects,
            mime,
            width,
            height,
            ..
        } = &head
        else {
            panic!("change {i}: expected a patch, got {head:?}");
        };
        assert_eq!((mime.as_str(), *width, *height), ("image/png", w, h));
        assert_eq!(
            rects.len(),
            if points.is_empty() {
                0
            } else {
                points.len().min(2)
            }
        );
        apply(&mut shown, w, rects, &split(&payload));
        assert!(
            shown == pic,
            "change {i}: the patched picture is the published one"
        );
        c.ack(head.seq()).await;
    }
    assert!(stream.patch_count() >= 3);
}

#[tokio::test]
async fn a_one_pixel_change_on_1080p_costs_under_5_percent_of_a_frame() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (w, h) = (1920, 1080);
    let stream = server.add_stream("s", w, h, no_stills()).unwrap();
    let mut c = Client::open(addr, "/s", &["image/jpeg", "framehub/patch"]).await;
    let mut pic = pattern(w, h, 3);
    stream.publish(Frame::rgba(w, h, pic.clone())).unwrap();
    let (head, full) = c.recv_frame().await;
    assert!(matches!(head, FrameHeader::ImageFrame { .. }));
    c.ack(head.seq()).await;
    let at = ((500 * w + 700) * 4) as usize;
    pic[at] ^= 0xff;
    stream.publish(Frame::rgba(w, h, pic.clone())).unwrap();
    let (head, patch) = c.recv_frame().await;
    let FrameHeader::ImagePatch { rects, .. } = &head else {
        panic!("expected a patch, got {head:?}");
    };
    assert_eq!(rects, &[[640, 448, 64, 64]]);
    // JPEG patch: within JPEG tolerance of the published pixels of its rect.
    let (pw, ph, px) = framehub_codec::decode_jpeg_rgba(split(&patch)[0]).unwrap();
    assert_eq!((pw, ph), (64, 64));
    let mut err = 0u64;
    for y in 0..64u32 {
        for x in 0..64u32 {
            for ch in 0..3 {
                let a = px[((y * 64 + x) * 4 + ch) as usize];
                let b = pic[(((448 + y) * w + 640 + x) * 4 + ch) as usize];
                err += u64::from(a.abs_diff(b));
            }
        }
    }
    let mean = err as f64 / (64.0 * 64.0 * 3.0);
    assert!(mean < 12.0, "mean error {mean}");
    let share = patch.len() as f64 / full.len() as f64;
    assert!(
        share < 0.05,
        "patch {} B vs frame {} B",
        patch.len(),
        full.len()
    );
}

#[tokio::test]
async fn viewers_without_patches_or_behind_get_whole_frames_from_the_same_encode() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (w, h) = (256, 128);
    let stream = server.add_stream("s", w, h, no_stills()).unwrap();
    let mut p = Client::open(addr, "/s", &["image/jpeg", "framehub/patch"]).await;
    let mut plain = Client::open(addr, "/s", &["image/jpeg"]).await;
    let mut pic = pattern(w, h, 5);
    stream.publish(Frame::rgba(w, h, pic.clone())).unwrap();
    for c in [&mut p, &mut plain] {
        let (head, _) = c.recv_frame().await;
        assert!(matches!(head, FrameHeader::ImageFrame { .. }));
        c.ack(head.seq()).await;
    }
    pic[0] ^= 1;
    stream.publish(Frame::rgba(w, h, pic.clone())).unwrap();
    let (head, _) = p.recv_frame().await;
    assert!(matches!(head, FrameHeader::ImagePatch { .. }), "{head:?}");
    p.ack(head.seq()).await;
    let (head, _) = plain.recv_frame().await;
    assert!(matches!(head, FrameHeader::ImageFrame { .. }), "{head:?}");
    plain.ack(head.seq()).await;
    let jpeg = framehub::proto::OutputFormat::Image(framehub::proto::ImageFormat::Jpeg);
    assert_eq!(
        stream.encode_count(jpeg),
        2,
        "each frame encoded once for both viewers"
    );

    // The patching viewer stops acking (the plain one keeps acking, so
    // frames are still encoded): with its credit (2) spent, frames pass it
    // by. When it acks again it gets a whole frame, never a patch over a
    // frame it does not hold.
    let mut next = |k: u8| {
        pic[4] = k;
        stream.publish(Frame::rgba(w, h, pic.clone())).unwrap();
    };
    for k in 0..5u8 {
        next(k);
        let (head, _) = plain.recv_frame().await;
        plain.ack(head.seq()).await;
        if k < 2 {
            let (head, _) = p.recv_frame().await;
            assert!(matches!(head, FrameHeader::ImagePatch { .. }), "{head:?}");
        }
    }
    assert!(
        p.recv_within(Duration::from_millis(100)).await.is_none(),
        "no credit"
    );
    p.ack(3).await;
    let (head, _) = p.recv_frame().await;
    assert!(
        matches!(head, FrameHeader::ImageFrame { .. }),
        "behind: whole, {head:?}"
    );
    // Caught up: patches again.
    p.ack(head.seq()).await;
    next(9);
    let (head, _) = p.recv_frame().await;
    assert!(matches!(head, FrameHeader::ImagePatch { .. }), "{head:?}");
}
