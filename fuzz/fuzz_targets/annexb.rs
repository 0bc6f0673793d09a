//! H.264 Annex-B reader: `annexb::nal_units` over the whole input, and
//! `annexb::parse_sps` on every NAL unit it yields. The module promises to be
//! panic-free on untrusted bytes (checked arithmetic, no unchecked index).
//!
//! Also checks what `nal_units` documents: each NAL is non-empty, starts with
//! its header byte (`type == nal[0] & 0x1F`), does not end in `00`, and is a
//! sub-slice of the input; and runs `parse_sps` once on the input itself
//! behind an SPS header byte, so the SPS parser is reached without needing a
//! start code first.
#![no_main]

use framehub_codec::annexb::{level_for, nal_units, parse_sps};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let range = data.as_ptr_range();
    for (ty, nal) in nal_units(data) {
        assert!(!nal.is_empty());
        assert_eq!(ty, nal[0] & 0x1F);
        assert_ne!(nal.last(), Some(&0));
        assert!(range.start <= nal.as_ptr() && nal.as_ptr_range().end <= range.end);
        check_sps(nal);
    }
    let mut sps = Vec::with_capacity(data.len() + 1);
    sps.push(0x67);
    sps.extend_from_slice(data);
    check_sps(&sps);
});

fn check_sps(nal: &[u8]) {
    if let Some(info) = parse_sps(nal) {
        assert_eq!(nal[0] & 0x1F, 7);
        assert!(info.width > 0 && info.height > 0);
        let codec = info.codec_string();
        assert_eq!(codec.len(), 11, "{codec}");
        let _ = info.is_constrained_baseline();
        let level = level_for(info.width, info.height, 30.0);
        assert!((10..=62).contains(&level));
    }
}
