//! Regression tests from the fuzz targets in `fuzz/` (see `fuzz/README.md`).
//!
//! Each test replays the minimised input of one crash. A test of a bug that
//! is not fixed yet is `#[ignore]`d with the reason; drop the `#[ignore]` with
//! the fix. `cargo test -p framehub-codec --no-default-features --test
//! fuzz_regressions -- --include-ignored` runs them all.

use framehub_codec::annexb::{nal_units, parse_sps};

/// Fuzz target `annexb`, found 2026-11-22 after ~41 s (899,879 runs); the
/// input minimised to these 14 bytes, an SPS payload (`parse_sps` is called
/// on `0x67` followed by the input).
///
/// profile_idc 83 (Scalable High: one of the profiles with scaling
/// matrices), chroma_format_idc 0, seq_scaling_matrix_present_flag 1, list 0
/// present, and a `delta_scale` Exp-Golomb code of 63 bits whose value is
/// near 2^31. `skip_scaling_list` added it to `last` in i32 and panicked
/// with "attempt to add with overflow" (debug builds; release builds
/// wrapped). Fixed: a `delta_scale` outside −128..=127 (its range in
/// H.264 §7.4.2.1.1.1) makes the SPS malformed, so `parse_sps` answers None.
const SPS_SCALING_LIST_HUGE_DELTA: &[u8] =
    b"\x53\xfc\xff\xff\x00\xff\x00\x00\x00\x00\xff\xff\xff\xf8";

#[test]
fn sps_scaling_list_with_huge_delta_does_not_panic() {
    let mut nal = vec![0x67];
    nal.extend_from_slice(SPS_SCALING_LIST_HUGE_DELTA);
    // Panicked here. Any result is fine; the SPS is absurd but must not panic.
    let _ = parse_sps(&nal);
    // The same NAL in an Annex-B stream, as a publisher's bytes would come.
    let mut stream = vec![0, 0, 0, 1];
    stream.extend_from_slice(&nal);
    for (_, nal) in nal_units(&stream) {
        let _ = parse_sps(nal);
    }
}
