//! A small, panic-free reader for H.264 Annex-B byte streams (ITU-T H.264
//! Annex B) and sequence parameter sets (§7.3.2.1.1, VUI in Annex E).
//!
//! Everything here takes untrusted bytes: every index is checked, all
//! arithmetic is checked or saturating, and malformed input gives `None` (or
//! simply ends the NAL iteration) instead of a panic.
//!
//! * [`nal_units`] splits a byte stream at 3-byte (`00 00 01`) and 4-byte
//!   (`00 00 00 01`) start codes;
//! * [`parse_sps`] reads profile, constraint flags, level, the cropped picture
//!   size and the VUI colour description from an SPS NAL unit;
//! * [`level_for`] picks the smallest level of Table A-1 that fits a picture
//!   size and frame rate.

/// NAL unit type of a coded slice of a non-IDR picture (Table 7-1).
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of a coded slice of an IDR picture (Table 7-1).
pub const NAL_IDR: u8 = 5;
/// NAL unit type of supplemental enhancement information (Table 7-1).
pub const NAL_SEI: u8 = 6;
/// NAL unit type of a sequence parameter set (Table 7-1).
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set (Table 7-1).
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter (Table 7-1).
pub const NAL_AUD: u8 = 9;

/// Iterator over the NAL units of an Annex-B byte stream; see [`nal_units`].
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    rest: &'a [u8],
}

/// Splits an Annex-B byte stream into NAL units.
///
/// Yields `(nal_unit_type, nal)` where `nal` starts with the one-byte NAL
/// header (so `nal_unit_type == nal[0] & 0x1F`) and excludes the start code
/// and any trailing zero bytes (the extra `00` of a 4-byte start code, or
/// `trailing_zero_8bits`). Bytes before the first start code and empty NAL
/// units are skipped. Never panics.
pub fn nal_units(stream: &[u8]) -> NalUnits<'_> {
    let rest = match find_start_code(stream) {
        Some((_, after)) => stream.get(after..).unwrap_or(&[]),
        None => &[],
    };
    NalUnits { rest }
}

/// Finds the first `00 00 01` in `data`: returns (index of its first byte,
/// index just after it).
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (i, i + 3))
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (nal, next) = match find_start_code(self.rest) {
                Some((start, after)) => (
                    self.rest.get(..start).unwrap_or(&[]),
                    self.rest.get(after..).unwrap_or(&[]),
                ),
                None => (self.rest, &[][..]),
            };
            self.rest = next;
            // Trailing zeros belong to the next start code (4-byte form) or
            // are trailing_zero_8bits (§B.1.1); a NAL unit never ends in 00.
            let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            let nal = nal.get(..end).unwrap_or(&[]);
            if let Some(&header) = nal.first() {
                return Some((header & 0x1F, nal));
            }
        }
    }
}

/// The colour description of an SPS's VUI (H.264 Annex E, Tables E-3..E-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColourDescription {
    /// `colour_primaries` (Table E-3): 1 = BT.709, 2 = unspecified, 6 = BT.601 525.
    pub colour_primaries: u8,
    /// `transfer_characteristics` (Table E-4): 1 = BT.709, 13 = sRGB.
    pub transfer_characteristics: u8,
    /// `matrix_coefficients` (Table E-5): 1 = BT.709, 5/6 = BT.601.
    pub matrix_coefficients: u8,
}

/// `video_signal_type` of an SPS's VUI (H.264 §E.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoSignal {
    /// `video_format` (Table E-2), 0..=7; 5 = unspecified.
    pub video_format: u8,
    /// `video_full_range_flag`: `false` = limited range (luma 16..=235).
    pub full_range: bool,
    /// Present when `colour_description_present_flag` is set.
    pub colour_description: Option<ColourDescription>,
}

/// What [`parse_sps`] reads from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpsInfo {
    /// `profile_idc`: 66 (0x42) Baseline, 77 Main, 100 High.
    pub profile_idc: u8,
    /// The byte of `constraint_set0_flag`..`constraint_set5_flag` and the two
    /// reserved bits, most significant first (0x40 = constraint_set1: with
    /// profile 66 that is Constrained Baseline, §A.2.1.1).
    pub constraint_flags: u8,
    /// `level_idc`: ten times the level number (31 = level 3.1).
    pub level_idc: u8,
    /// Picture width in pixels, after the SPS frame cropping.
    pub width: u32,
    /// Picture height in pixels, after the SPS frame cropping.
    pub height: u32,
    /// The VUI `video_signal_type` fields, when the SPS has a VUI that
    /// carries them.
    pub video_signal: Option<VideoSignal>,
}

impl SpsInfo {
    /// The RFC 6381 codec string `avc1.PPCCLL` (upper-case hex of
    /// `profile_idc`, the constraint byte and `level_idc`), as WebCodecs
    /// expects it, e.g. `avc1.42C01F`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02X}{:02X}{:02X}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }

    /// Constrained Baseline: `profile_idc` 66 with `constraint_set1_flag`
    /// (H.264 §A.2.1.1: a Baseline stream that also obeys Main's constraints).
    pub fn is_constrained_baseline(&self) -> bool {
        self.profile_idc == 66 && self.constraint_flags & 0x40 != 0
    }
}

/// Removes emulation-prevention bytes: every `00 00 03` becomes `00 00`
/// (H.264 §7.4.1).
fn rbsp(nal_payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal_payload.len());
    let mut zeros = 0usize;
    for &b in nal_payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// MSB-first bit reader over an RBSP; every read returns `None` past the end.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn flag(&mut self) -> Option<bool> {
        self.bit().map(|b| b == 1)
    }

    /// `u(n)` for n <= 32.
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v: u32 = 0;
        for _ in 0..n.min(32) {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    fn byte(&mut self) -> Option<u8> {
        u8::try_from(self.bits(8)?).ok()
    }

    /// `ue(v)`, Exp-Golomb (§9.1); codes longer than 32 bits are rejected.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        let v = (1u64 << zeros) - 1 + u64::from(rest);
        u32::try_from(v).ok()
    }

    /// `se(v)` (§9.1.1).
    fn se(&mut self) -> Option<i32> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).ok()
    }
}

/// Skips a `scaling_list()` of `size` entries (§7.3.2.1.1.1).
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let mut last: i32 = 8;
    let mut next: i32 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            // delta_scale is in −128..=127 (ITU-T H.264 §7.4.2.1.1.1); more is a malformed SPS.
            if !(-128..=127).contains(&delta) {
                return None;
            }
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Profiles whose SPS carries chroma format, bit depths and scaling
/// matrices (§7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Parses an SPS NAL unit (`nal` starts with the NAL header byte, type 7, as
/// [`nal_units`] yields it).
///
/// Returns `None` when the NAL is not an SPS, is truncated or malformed, or
/// gives an empty or absurd picture size. Reads the High-profile extensions
/// too (skipping scaling matrices) and the VUI up to the colour description.
pub fn parse_sps(nal: &[u8]) -> Option<SpsInfo> {
    let (&header, payload) = nal.split_first()?;
    if header & 0x80 != 0 || header & 0x1F != NAL_SPS {
        return None;
    }
    let data = rbsp(payload);
    let mut r = BitReader::new(&data);
    let profile_idc = r.byte()?;
    let constraint_flags = r.byte()?;
    let level_idc = r.byte()?;
    let _sps_id = r.ue()?;
    let mut chroma_format_idc = 1u32;
    let mut separate_colour_plane = false;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        let _bit_depth_luma_minus8 = r.ue()?;
        let _bit_depth_chroma_minus8 = r.ue()?;
        let _qpprime_y_zero_transform_bypass = r.flag()?;
        if r.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let _log2_max_frame_num_minus4 = r.ue()?;
    match r.ue()? {
        0 => {
            let _log2_max_poc_lsb_minus4 = r.ue()?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.flag()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom_field = r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                let _offset_for_ref_frame = r.se()?;
            }
        }
        2 => {}
        _ => return None,
    }
    let _max_num_ref_frames = r.ue()?;
    let _gaps_in_frame_num_allowed = r.flag()?;
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.flag()?;
    }
    let _direct_8x8_inference = r.flag()?;
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.flag()? {
        crop_l = u64::from(r.ue()?);
        crop_r = u64::from(r.ue()?);
        crop_t = u64::from(r.ue()?);
        crop_b = u64::from(r.ue()?);
    }
    // CropUnitX / CropUnitY, equations 7-19..7-22 with SubWidthC/SubHeightC
    // from Table 6-1.
    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let (crop_x, crop_y) = if chroma_format_idc == 0 || separate_colour_plane {
        (1, field_factor)
    } else {
        let (sub_w, sub_h) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        (sub_w, sub_h * field_factor)
    };
    let full_w = width_mbs.checked_mul(16)?;
    let full_h = height_map_units
        .checked_mul(16)?
        .checked_mul(field_factor)?;
    let width = full_w.checked_sub(crop_x * crop_l.checked_add(crop_r)?)?;
    let height = full_h.checked_sub(crop_y * crop_t.checked_add(crop_b)?)?;
    if width == 0 || height == 0 {
        return None;
    }
    let width = u32::try_from(width).ok()?;
    let height = u32::try_from(height).ok()?;

    let mut video_signal = None;
    // A truncated VUI still leaves a usable SPS: read it best-effort.
    if r.flag() == Some(true) {
        video_signal = parse_vui_signal(&mut r);
    }
    Some(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width,
        height,
        video_signal,
    })
}

/// Reads the start of `vui_parameters()` (§E.1.1) up to the colour
/// description.
fn parse_vui_signal(r: &mut BitReader<'_>) -> Option<VideoSignal> {
    if r.flag()? {
        // aspect_ratio_info_present_flag
        if r.byte()? == 255 {
            // Extended_SAR: sar_width, sar_height
            r.bits(16)?;
            r.bits(16)?;
        }
    }
    if r.flag()? {
        // overscan_info_present_flag
        r.flag()?;
    }
    if !r.flag()? {
        // video_signal_type_present_flag
        return None;
    }
    let video_format = u8::try_from(r.bits(3)?).ok()?;
    let full_range = r.flag()?;
    let colour_description = if r.flag()? {
        Some(ColourDescription {
            colour_primaries: r.byte()?,
            transfer_characteristics: r.byte()?,
            matrix_coefficients: r.byte()?,
        })
    } else {
        None
    };
    Some(VideoSignal {
        video_format,
        full_range,
        colour_description,
    })
}

/// Table A-1 of ITU-T H.264 (08/2021), "Level limits": `(level_idc, MaxMBPS
/// macroblocks/s, MaxFS macroblocks)`. Level 1b is left out (it needs
/// `constraint_set3_flag` to be signalled).
const LEVEL_LIMITS: [(u8, u64, u64); 19] = [
    (10, 1_485, 99),
    (11, 3_000, 396),
    (12, 6_000, 396),
    (13, 11_880, 396),
    (20, 11_880, 396),
    (21, 19_800, 792),
    (22, 20_250, 1_620),
    (30, 40_500, 1_620),
    (31, 108_000, 3_600),
    (32, 216_000, 5_120),
    (40, 245_760, 8_192),
    (41, 245_760, 8_192),
    (42, 522_240, 8_704),
    (50, 589_824, 22_080),
    (51, 983_040, 36_864),
    (52, 2_073_600, 36_864),
    (60, 4_177_920, 139_264),
    (61, 8_355_840, 139_264),
    (62, 16_711_680, 139_264),
];

/// The smallest H.264 `level_idc` whose limits fit a `width` × `height`
/// picture at `fps` frames per second.
///
/// Checks, from ITU-T H.264 Table A-1 and §A.3.1: frame size in macroblocks
/// ≤ MaxFS, each side in macroblocks ≤ √(8·MaxFS), and macroblocks per
/// second ≤ MaxMBPS. Bit rate and DPB size are not considered (an encoder
/// may pick a higher level for those). A non-finite or negative `fps` counts
/// as 0; sizes beyond level 6.2 give 62.
pub fn level_for(width: u32, height: u32, fps: f32) -> u8 {
    let w_mbs = u64::from(width).div_ceil(16);
    let h_mbs = u64::from(height).div_ceil(16);
    let frame_mbs = w_mbs * h_mbs;
    let fps = if fps.is_finite() && fps > 0.0 {
        f64::from(fps)
    } else {
        0.0
    };
    let mbps = frame_mbs as f64 * fps;
    for &(level, max_mbps, max_fs) in &LEVEL_LIMITS {
        let side_limit = max_fs * 8;
        if frame_mbs <= max_fs
            && w_mbs * w_mbs <= side_limit
            && h_mbs * h_mbs <= side_limit
            && mbps <= max_mbps as f64
        {
            return level;
        }
    }
    62
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [
            0xAA, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0, 0,
        ];
        let nals: Vec<_> = nal_units(&stream).collect();
        assert_eq!(
            nals,
            vec![
                (7, &[0x67, 1, 2][..]),
                (8, &[0x68, 3][..]),
                (5, &[0x65, 4, 5][..])
            ]
        );
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1, 0, 0, 1, 0x41]).count(), 1);
    }

    #[test]
    fn removes_emulation_prevention() {
        assert_eq!(
            rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 3]
        );
    }

    /// Writes Exp-Golomb test data.
    struct BitWriter {
        out: Vec<u8>,
        bit: u32,
    }

    impl BitWriter {
        fn new() -> Self {
            BitWriter {
                out: Vec::new(),
                bit: 0,
            }
        }
        fn put(&mut self, v: u64, n: u32) {
            for i in (0..n).rev() {
                if self.bit.is_multiple_of(8) {
                    self.out.push(0);
                }
                let b = ((v >> i) & 1) as u8;
                let last = self.out.len() - 1;
                self.out[last] |= b << (7 - self.bit % 8);
                self.bit += 1;
            }
        }
        fn ue(&mut self, v: u32) {
            let v = u64::from(v) + 1;
            let len = 64 - v.leading_zeros();
            self.put(0, len - 1);
            self.put(v, len);
        }
        /// Adds the stop bit and emulation prevention, returns the NAL.
        fn finish_nal(mut self, header: u8) -> Vec<u8> {
            self.put(1, 1);
            let mut nal = vec![header];
            let mut zeros = 0;
            for b in self.out {
                if zeros >= 2 && b <= 3 {
                    nal.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                nal.push(b);
            }
            nal
        }
    }

    #[test]
    fn parses_a_hand_made_baseline_sps_with_cropping_and_vui() {
        // 1920x1080: 120x68 macroblocks, cropped by 8 lines at the bottom.
        let mut w = BitWriter::new();
        w.put(66, 8);
        w.put(0xC0, 8);
        w.put(40, 8);
        w.ue(0); // sps id
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(2); // poc type
        w.ue(1); // max refs
        w.put(0, 1);
        w.ue(119);
        w.ue(67);
        w.put(1, 1); // frame_mbs_only
        w.put(1, 1); // direct_8x8
        w.put(1, 1); // cropping
        w.ue(0);
        w.ue(0);
        w.ue(0);
        w.ue(4); // 4 * CropUnitY(2) = 8
        w.put(1, 1); // vui
        w.put(0, 1); // aspect
        w.put(0, 1); // overscan
        w.put(1, 1); // video signal type
        w.put(5, 3);
        w.put(0, 1); // limited
        w.put(1, 1); // colour description
        w.put(1, 8);
        w.put(1, 8);
        w.put(1, 8);
        let nal = w.finish_nal(0x67);
        let sps = parse_sps(&nal).expect("valid SPS");
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.codec_string(), "avc1.42C028");
        assert!(sps.is_constrained_baseline());
        assert_eq!(
            sps.video_signal,
            Some(VideoSignal {
                video_format: 5,
                full_range: false,
                colour_description: Some(ColourDescription {
                    colour_primaries: 1,
                    transfer_characteristics: 1,
                    matrix_coefficients: 1
                })
            })
        );
        // Every truncation is rejected or parsed without a panic.
        for n in 0..nal.len() {
            let _ = parse_sps(&nal[..n]);
        }
        // Not an SPS.
        assert_eq!(parse_sps(&[0x68, 0x42, 0, 0]), None);
    }

    #[test]
    fn parses_a_high_profile_sps() {
        // From an x264 1280x720 High 3.1 stream (with scaling matrix absent).
        let mut w = BitWriter::new();
        w.put(100, 8);
        w.put(0, 8);
        w.put(31, 8);
        w.ue(0);
        w.ue(1); // chroma 4:2:0
        w.ue(0);
        w.ue(0);
        w.put(0, 1);
        w.put(1, 1); // scaling matrix present
        w.put(1, 1); // list 0 present
        for _ in 0..16 {
            w.ue(0); // delta 0 (se 0)
        }
        for _ in 1..8 {
            w.put(0, 1);
        }
        w.ue(0);
        w.ue(0); // poc 0
        w.ue(2);
        w.ue(4);
        w.put(0, 1);
        w.ue(79);
        w.ue(44);
        w.put(1, 1);
        w.put(1, 1);
        w.put(0, 1); // no cropping
        w.put(0, 1); // no vui
        let sps = parse_sps(&w.finish_nal(0x67)).expect("valid SPS");
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!(sps.codec_string(), "avc1.64001F");
        assert_eq!(sps.video_signal, None);
        assert!(!sps.is_constrained_baseline());
    }

    #[test]
    fn levels_follow_table_a1() {
        assert_eq!(level_for(176, 144, 15.0), 10);
        // CIF at 30 fps: 396 MBs, 11 880 MB/s, the limits of both 1.3 and 2.
        assert_eq!(level_for(352, 288, 30.0), 13);
        assert_eq!(level_for(352, 288, 31.0), 21);
        assert_eq!(level_for(640, 360, 30.0), 30);
        assert_eq!(level_for(640, 480, 30.0), 30);
        assert_eq!(level_for(1280, 720, 30.0), 31);
        assert_eq!(level_for(1280, 720, 60.0), 32);
        assert_eq!(level_for(1920, 1080, 30.0), 40);
        assert_eq!(level_for(1920, 1080, 60.0), 42);
        assert_eq!(level_for(3840, 2160, 30.0), 51);
        // 256x1 macroblocks: 256 MBs fit level 1.1's MaxFS, but a side of
        // 256 MBs needs sqrt(8 * MaxFS) >= 256, i.e. MaxFS >= 8192: level 4.
        assert_eq!(level_for(4096, 16, 1.0), 40);
        assert_eq!(level_for(100_000, 100_000, 60.0), 62);
        // No usable frame rate: only the frame size counts.
        assert_eq!(level_for(640, 360, f32::NAN), 22);
    }

    #[test]
    fn garbage_never_panics() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Bias towards start codes and SPS headers so the parsers get deep.
            if round % 2 == 0 && buf.len() > 4 {
                buf[0..4].copy_from_slice(&[0, 0, 1, 0x67]);
            }
            if round % 3 == 0 {
                for b in buf.iter_mut() {
                    if *b < 0x40 {
                        *b = 0;
                    }
                }
            }
            for (_, nal) in nal_units(&buf) {
                let _ = parse_sps(nal);
            }
            let mut sps = vec![0x67];
            sps.extend_from_slice(&buf);
            let _ = parse_sps(&sps);
        }
    }
}
