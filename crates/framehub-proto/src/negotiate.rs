//! Transport negotiation (`docs/protocol.md` §2.3).

use serde::{Deserialize, Serialize};

use crate::message::{Hello, Transport};

/// `hello.supported` entry for H.264 Annex B through WebCodecs.
pub const SUPPORTS_H264: &str = "webcodecs/h264-annexb";
/// `hello.supported` extension: region updates (`image_patch`).
pub const SUPPORTS_PATCH: &str = "framehub/patch";
/// `hello.supported` extension: lossless PNG stills also on a video session.
pub const SUPPORTS_STILL_PNG: &str = "framehub/still-png";

/// An image format a stream can encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// JPEG (lossy, 4:2:0).
    Jpeg,
    /// PNG (lossless).
    Png,
    /// WebP.
    Webp,
}

impl ImageFormat {
    /// The MIME type, as listed in `hello.supported` and sent in frame headers.
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Webp => "image/webp",
        }
    }

    /// The format of a MIME type, if it is one of ours.
    pub fn from_mime(mime: &str) -> Option<Self> {
        match mime {
            "image/jpeg" => Some(ImageFormat::Jpeg),
            "image/png" => Some(ImageFormat::Png),
            "image/webp" => Some(ImageFormat::Webp),
            _ => None,
        }
    }
}

/// The format a session's frames are encoded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutputFormat {
    /// Whole images of this format.
    Image(ImageFormat),
    /// H.264 access units.
    H264,
}

/// What a stream can produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// `Some(codec string)` when the stream has H.264 enabled.
    pub h264_codec: Option<String>,
    /// The stream's preferred image format.
    pub preferred_image: ImageFormat,
    /// Image formats the stream can encode (WebP only when built with it).
    pub image_formats: Vec<ImageFormat>,
    /// Target bit rate (video), bit/s, reported in stats.
    pub bitrate: u64,
    /// Frame-rate cap, frames/s (0: none), reported in stats.
    pub fps: f64,
}

impl Default for Offer {
    fn default() -> Self {
        Offer {
            h264_codec: None,
            preferred_image: ImageFormat::Jpeg,
            image_formats: vec![ImageFormat::Jpeg, ImageFormat::Png],
            bitrate: 0,
            fps: 0.0,
        }
    }
}

/// The outcome of negotiation.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    /// `image` or `webcodecs`.
    pub transport: Transport,
    /// What the frames are encoded in.
    pub format: OutputFormat,
    /// The client takes `image_patch` messages.
    pub patch: bool,
    /// The client takes PNG stills on a video session.
    pub still_png: bool,
}

/// Chooses a transport: `webcodecs` when the client lists
/// `webcodecs/h264-annexb` and the stream has H.264; otherwise `image` with
/// the stream's preferred format if listed, else the first of PNG, JPEG, WebP
/// that is listed and the stream can encode. `None`: nothing in common (close 1003).
pub fn negotiate(hello: &Hello, offer: &Offer) -> Option<Negotiated> {
    let lists = |s: &str| hello.supported.iter().any(|x| x == s);
    let patch = lists(SUPPORTS_PATCH);
    let still_png = lists(SUPPORTS_STILL_PNG);
    if offer.h264_codec.is_some() && lists(SUPPORTS_H264) {
        return Some(Negotiated {
            transport: Transport::Webcodecs,
            format: OutputFormat::H264,
            patch,
            still_png,
        });
    }
    let can = |f: ImageFormat| offer.image_formats.contains(&f) && lists(f.mime());
    let format = if can(offer.preferred_image) {
        offer.preferred_image
    } else {
        [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp]
            .into_iter()
            .find(|f| can(*f))?
    };
    Some(Negotiated {
        transport: Transport::Image,
        format: OutputFormat::Image(format),
        patch,
        still_png,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(s: &[&str]) -> Hello {
        Hello {
            supported: s.iter().map(|x| x.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn prefers_stream_format_then_png_jpeg_webp() {
        let offer = Offer::default();
        let n = negotiate(&hello(&["image/png", "image/jpeg"]), &offer).unwrap();
        assert_eq!(n.format, OutputFormat::Image(ImageFormat::Jpeg));
        let n = negotiate(&hello(&["image/png"]), &offer).unwrap();
        assert_eq!(n.format, OutputFormat::Image(ImageFormat::Png));
        let png_pref = Offer {
            preferred_image: ImageFormat::Webp,
            ..Offer::default()
        };
        let n = negotiate(
            &hello(&["image/jpeg", "image/png", "image/webp"]),
            &png_pref,
        )
        .unwrap();
        assert_eq!(
            n.format,
            OutputFormat::Image(ImageFormat::Png),
            "webp not encodable here"
        );
        assert!(negotiate(&hello(&["image/gif"]), &offer).is_none());
    }

    #[test]
    fn video_only_when_both_sides_have_it() {
        let offer = Offer {
            h264_codec: Some("avc1.42E01F".into()),
            ..Offer::default()
        };
        let n = negotiate(
            &hello(&["webcodecs/h264-annexb", "image/jpeg", "framehub/patch"]),
            &offer,
        )
        .unwrap();
        assert_eq!(
            (n.transport, n.format, n.patch),
            (Transport::Webcodecs, OutputFormat::H264, true)
        );
        let n = negotiate(
            &hello(&["webcodecs/h264-annexb", "image/jpeg"]),
            &Offer::default(),
        )
        .unwrap();
        assert_eq!(n.transport, Transport::Image);
    }
}
