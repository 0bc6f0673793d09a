//! The feed's parsers (`framehub_proto::feed`): a remote publisher's text
//! messages (`SourceMessage::parse`), the hub's (`HubMessage::parse`) and
//! binary units (`parse_unit`). All take bytes from another process or
//! machine and promise to be panic-free and bounded.
//!
//! Also checks what `parse_unit` documents: the data and patch ranges lie
//! inside the message, the data is not empty, the patch range is exactly the
//! header's `bytes` at the end, every patch rectangle is inside the frame,
//! and the header survives a round trip through `encode_unit`.
#![no_main]

use framehub_proto::feed::{encode_unit, parse_unit, HubMessage, SourceMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = SourceMessage::parse(text) {
            assert_eq!(SourceMessage::parse(&m.to_json()), Ok(m));
        }
        if let Ok(m) = HubMessage::parse(text) {
            let _ = m.to_json();
        }
    }
    if let Ok(unit) = parse_unit(data) {
        assert!(!unit.data.is_empty() && unit.data.end <= data.len());
        let h = &unit.header;
        assert!(h.width > 0 && h.height > 0);
        if let (Some(p), Some(range)) = (&h.patch, &unit.patch) {
            assert_eq!(range.end, data.len());
            assert_eq!(range.len(), p.bytes);
            assert_eq!(range.start, unit.data.end);
            for [x, y, w, hh] in &p.rects {
                assert!(x + w <= h.width && y + hh <= h.height);
            }
        }
        let again = encode_unit(
            h,
            &data[unit.data.clone()],
            unit.patch.clone().map(|r| &data[r]),
        );
        let reparsed = parse_unit(&again).expect("a unit encoded from a parsed one parses");
        assert_eq!(&reparsed.header, h);
    }
});
