//! WebRTC signalling bodies (`framehub_webrtc::signal`): the JSON offer of
//! `POST /<stream>/webrtc` and the SDP of WHEP. Both take bytes from any
//! HTTP client and promise to be panic-free; an accepted offer has a video
//! m-section with H.264 and a data channel, and the STUN router
//! (`framehub_webrtc::stun`) never panics on the same bytes.
#![no_main]

use framehub_webrtc::{parse_json_offer, parse_sdp_offer, stun};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if parse_sdp_offer(data).is_ok() {
        let text = std::str::from_utf8(data).expect("an accepted offer is UTF-8");
        assert!(text.contains("H264/90000") || text.contains("h264/90000"));
        assert!(text.contains("webrtc-datachannel"));
    }
    let _ = parse_json_offer(data);
    let _ = stun::local_ufrag(data);
});
