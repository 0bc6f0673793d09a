//! Binary media envelope: `u32 LE length | JSON header | payload`.
//!
//! `envelope::split` and `envelope::parse` take bytes from outside (a
//! publisher or a recorded stream). Besides "never panics", checks that
//! `split` cuts where the length prefix says, that `parse` agrees with
//! `split`, and that whatever `parse` accepts survives `encode` -> `parse`.
#![no_main]

use framehub_proto::envelope::{self, EnvelopeError, FrameHeader, MAX_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = envelope::split(data);
    match &split {
        Ok((header, payload)) => {
            let n = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
            assert!(n <= MAX_HEADER_LEN);
            assert_eq!(header.len(), n);
            assert_eq!(4 + header.len() + payload.len(), data.len());
            assert_eq!(*header, &data[4..4 + n]);
        }
        Err(EnvelopeError::Truncated(len)) => assert_eq!(*len, data.len()),
        Err(EnvelopeError::HeaderTooLong(n)) => assert!(*n > MAX_HEADER_LEN),
        Err(EnvelopeError::BadHeader(_)) => panic!("split never looks at the header"),
    }

    match envelope::parse(data) {
        Ok((header, payload)) => {
            let (_, split_payload) = split.expect("parse accepted what split refused");
            assert_eq!(payload, split_payload);
            // What we accept we can send again, and read back.
            let again = envelope::encode(&header, payload);
            let (header2, payload2) =
                envelope::parse(&again).expect("re-encoded envelope must parse");
            assert_eq!(payload2, payload);
            assert_eq!(header2.seq(), header.seq());
            assert_eq!(
                std::mem::discriminant(&header2),
                std::mem::discriminant(&header)
            );
            if let (
                FrameHeader::ImageFrame { mime: a, .. },
                FrameHeader::ImageFrame { mime: b, .. },
            ) = (&header, &header2)
            {
                assert_eq!(a, b);
            }
        }
        Err(EnvelopeError::BadHeader(_)) => {
            assert!(split.is_ok(), "BadHeader only after a good split");
        }
        Err(e) => assert_eq!(Err(e), split.map(|_| ())),
    }
});
