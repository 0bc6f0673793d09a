//! Signalling bodies: a viewer's SDP offer, as WHEP sends it (the body is
//! the SDP, `application/sdp`) or as rtcbot-style clients do (JSON
//! `{"sdp": "...", "type": "offer"}`, optionally with `"token"`), checked
//! for what a framehub peer needs before any WebRTC state is made.
//!
//! Errors carry the HTTP status to answer with: 400 for a body that is not
//! an offer, 406 for an offer framehub cannot serve (no H.264), 413 for a
//! body over [`MAX_OFFER_BYTES`].

use str0m::change::SdpOffer;

/// Longest offer body accepted, in bytes. Browser offers with a video
/// transceiver and a data channel are 3–8 KiB; 64 KiB leaves room for many
/// codecs and candidates and matches the protocol's text-message bound.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Why an offer was refused, with the HTTP status to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The body is over [`MAX_OFFER_BYTES`] (413).
    #[error("the offer is {0} bytes, over the {MAX_OFFER_BYTES}-byte limit")]
    TooBig(usize),
    /// The JSON body does not parse, or lacks a string `sdp` (400).
    #[error("malformed offer: {0}")]
    BadJson(String),
    /// The JSON body's `type` is not `offer` (400).
    #[error("expected type 'offer', got '{0}'")]
    NotAnOffer(String),
    /// The SDP does not parse (400).
    #[error("malformed SDP: {0}")]
    BadSdp(String),
    /// No video m-section (400).
    #[error("the offer has no video m-section (add a recvonly video transceiver)")]
    NoVideo,
    /// Video offered, but not H.264 with `packetization-mode=1` in a profile
    /// framehub's encoder sends (Constrained Baseline or Baseline) (406).
    #[error("the offer has no H.264 (Constrained Baseline, packetization-mode=1); framehub sends only that")]
    NoH264,
    /// No data channel (`m=application … webrtc-datachannel`) (400): events
    /// and control travel over it.
    #[error("the offer has no data channel (create one before the offer: events and control travel over it)")]
    NoDataChannel,
}

impl OfferError {
    /// The HTTP status for this refusal (RFC 9110 §15).
    pub fn status(&self) -> u16 {
        match self {
            OfferError::TooBig(_) => 413,
            OfferError::NoH264 => 406,
            _ => 400,
        }
    }
}

/// A checked SDP offer.
#[derive(Debug)]
pub struct Offer {
    pub(crate) sdp: SdpOffer,
    /// The `a=mid` of the first video m-section.
    pub(crate) video_mid: String,
}

/// An rtcbot-style JSON body: the offer and an optional token.
#[derive(Debug, serde::Deserialize)]
struct JsonOffer {
    sdp: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    token: Option<String>,
}

/// Parses a JSON offer body (`{"sdp": "...", "type": "offer", "token"?}`):
/// the offer and the token, if the body has one.
///
/// Errors: [`OfferError`] (see its variants for the status).
pub fn parse_json_offer(body: &[u8]) -> Result<(Offer, Option<String>), OfferError> {
    if body.len() > MAX_OFFER_BYTES {
        return Err(OfferError::TooBig(body.len()));
    }
    let json: JsonOffer =
        serde_json::from_slice(body).map_err(|e| OfferError::BadJson(e.to_string()))?;
    match json.kind.as_deref() {
        Some("offer") | None => {}
        Some(other) => return Err(OfferError::NotAnOffer(other.chars().take(32).collect())),
    }
    Ok((check_sdp(&json.sdp)?, json.token))
}

/// Parses a WHEP body: the SDP offer itself.
///
/// Errors: [`OfferError`] (see its variants for the status).
pub fn parse_sdp_offer(body: &[u8]) -> Result<Offer, OfferError> {
    if body.len() > MAX_OFFER_BYTES {
        return Err(OfferError::TooBig(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| OfferError::BadSdp("not UTF-8".into()))?;
    check_sdp(text)
}

/// Parses `sdp` and checks it offers video with H.264 and a data channel.
fn check_sdp(sdp: &str) -> Result<Offer, OfferError> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err(OfferError::BadSdp("it does not start with v=0".into()));
    }
    // str0m's parser is the judge of the syntax; it must not take the hub
    // down whatever it is given (it is fuzzed upstream; caught here too).
    let parsed = std::panic::catch_unwind(|| SdpOffer::from_sdp_string(sdp))
        .map_err(|_| OfferError::BadSdp("the SDP parser failed".into()))?
        .map_err(|e| OfferError::BadSdp(describe(&e.to_string())))?;
    let mut video = false;
    let mut h264 = false;
    let mut data = false;
    let mut video_mid = None;
    let mut section = "";
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            section = m.split(' ').next().unwrap_or("");
            video |= section == "video";
            data |= section == "application" && line.contains("webrtc-datachannel");
        } else if section == "video" {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                video_mid.get_or_insert_with(|| mid.trim().to_string());
            } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
                h264 |= map
                    .split_once(' ')
                    .is_some_and(|(_, c)| c.eq_ignore_ascii_case("H264/90000"));
            }
        }
    }
    if !video {
        return Err(OfferError::NoVideo);
    }
    if !h264 {
        return Err(OfferError::NoH264);
    }
    if !data {
        return Err(OfferError::NoDataChannel);
    }
    // BUNDLE (RFC 9143) needs a mid on every m-section; str0m requires it.
    let video_mid = video_mid
        .filter(|m| !m.is_empty() && m.len() <= 16)
        .ok_or_else(|| {
            OfferError::BadSdp("the video m-section has no a=mid (1..16 bytes)".into())
        })?;
    Ok(Offer {
        sdp: parsed,
        video_mid,
    })
}

/// The parser's message without its memory addresses, on one line, short.
fn describe(error: &str) -> String {
    error
        .lines()
        .filter(|l| !l.contains("PointerOffset") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a browser's offer: one recvonly video with H.264 and VP8,
    /// and a data channel (CRLF line ends, as on the wire).
    pub(crate) const OFFER: &str = include_str!("../testdata/browser-offer.sdp");

    #[test]
    fn a_browser_offer_passes_both_ways() {
        assert!(parse_sdp_offer(OFFER.as_bytes()).is_ok());
        let body = serde_json::json!({"sdp": OFFER, "type": "offer", "token": "t"}).to_string();
        let (_, token) = parse_json_offer(body.as_bytes()).expect("offer");
        assert_eq!(token.as_deref(), Some("t"));
    }

    #[test]
    fn what_is_missing_is_named() {
        let no_h264 = OFFER
            .replace("SAVPF 96 102", "SAVPF 96")
            .replace("a=rtcp-fb:102 nack pli\r\n", "")
            .replace("a=rtpmap:102 H264/90000\r\n", "")
            .replace(
            "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n",
            "",
        );
        assert_eq!(
            parse_sdp_offer(no_h264.as_bytes()).unwrap_err(),
            OfferError::NoH264
        );
        let no_dc = &OFFER[..OFFER.find("m=application").expect("m=application")];
        assert_eq!(
            parse_sdp_offer(no_dc.as_bytes()).unwrap_err(),
            OfferError::NoDataChannel
        );
        let body = serde_json::json!({"sdp": OFFER, "type": "answer"}).to_string();
        assert!(matches!(
            parse_json_offer(body.as_bytes()),
            Err(OfferError::NotAnOffer(_))
        ));
        assert_eq!(OfferError::NoH264.status(), 406);
        assert_eq!(OfferError::NoDataChannel.status(), 400);
    }

    #[test]
    fn garbage_is_400_and_big_is_413() {
        for body in [&b"{"[..], b"null", b"{\"sdp\": 3}", b"[]"] {
            let e = parse_json_offer(body).unwrap_err();
            assert_eq!(e.status(), 400, "{e}");
        }
        for body in [&b""[..], b"hello", b"v=0\r\nm=video", &[0xff, 0xfe][..]] {
            let e = parse_sdp_offer(body).unwrap_err();
            assert_eq!(e.status(), 400, "{e}");
        }
        let big = vec![b'v'; MAX_OFFER_BYTES + 1];
        assert_eq!(parse_sdp_offer(&big).unwrap_err().status(), 413);
    }

    #[test]
    fn mutated_offers_never_panic() {
        let bytes = OFFER.as_bytes();
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.to_vec();
            b[i] = b'#';
            let _ = parse_sdp_offer(&b);
            let _ = parse_sdp_offer(&bytes[..i]);
        }
    }
}
