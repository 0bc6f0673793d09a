//! Text control messages from a viewer: `ClientMessage::parse`, then
//! `InputEvent::from_json` on the `event` of an `event` message.
//!
//! Input bytes become a `&str` with `from_utf8` (or lossily when they are not
//! UTF-8, so every input reaches the parser). Besides "never panics", checks
//! the bounds `parse` promises and that a validated event still validates
//! after a trip through JSON (what the hub hands to the publisher).
#![no_main]

use framehub_proto::message::{ProtocolError, MAX_SUPPORTED, MAX_TEXT_MESSAGE, MAX_TOKEN_LEN};
use framehub_proto::{ClientMessage, InputEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lossy;
    let text = match std::str::from_utf8(data) {
        Ok(s) => s,
        Err(_) => {
            lossy = String::from_utf8_lossy(data);
            &lossy
        }
    };
    let msg = match ClientMessage::parse(text) {
        Ok(m) => m,
        Err(ProtocolError::TooBig(n)) => {
            assert!(n > MAX_TEXT_MESSAGE);
            return;
        }
        Err(e) => {
            assert_eq!(e.close_code(), framehub_proto::close_code::POLICY);
            return;
        }
    };
    assert!(text.len() <= MAX_TEXT_MESSAGE);
    match msg {
        ClientMessage::Hello(h) => {
            assert!(h.supported.len() <= MAX_SUPPORTED);
            assert!(h.supported.iter().all(|s| s.len() <= 64));
            assert!(h.token.as_ref().is_none_or(|t| t.len() <= MAX_TOKEN_LEN));
            assert!(h
                .device_pixel_ratio
                .is_none_or(|r| r.is_finite() && r > 0.0 && r <= 16.0));
        }
        ClientMessage::RequestKeyframe { reason } => assert!(reason.chars().count() <= 128),
        ClientMessage::Unknown(t) => assert!(t.chars().count() <= 64),
        ClientMessage::SetViewport(r) => {
            assert!(r.validate().is_ok());
            let _ = InputEvent::Resize(r).validate();
        }
        ClientMessage::Event(v) => {
            assert!(v.is_object());
            if let Ok(ev) = InputEvent::from_json(v) {
                assert!(ev.validate().is_ok());
                let _ = ev.event_type();
                let _ = ev.pointer();
                let json = serde_json::to_value(&ev).expect("a valid event serialises");
                let back = InputEvent::from_json(json)
                    .expect("a valid event, serialised, must parse and validate again");
                assert_eq!(back.event_type(), ev.event_type());
            }
        }
        ClientMessage::Ack(_) | ClientMessage::DecoderReset | ClientMessage::Visibility { .. } => {}
    }
});
