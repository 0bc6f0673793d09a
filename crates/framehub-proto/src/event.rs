//! Input events in the renderview vocabulary (pygfx / jupyter_rfb / rendercanvas).
//!
//! On the wire an event is a JSON object whose `event_type` names the kind
//! (`"pointer_down"`, `"wheel"`, `"key_down"`, …), sent inside a client
//! `{"type":"event","event":{...}}` message (`docs/protocol.md` §5).
//! pdum.rfb's clients name the kind `type` and its time `timestamp`;
//! renderview's JSON form (jupyter_rfb, rendercanvas) says `event_type` and
//! `time_stamp`. Both are accepted ([`InputEvent::from_json`] reads them
//! into one form); what the hub hands on always says `event_type` and
//! `timestamp`.
//! [`InputEvent::from_json`] parses **and validates** one: known type, finite
//! numbers within ±[`MAX_COORD`], bounded strings and lists. Anything else is
//! an [`EventError`]; the hub drops such an event and counts it, it never
//! closes the connection for it.

use serde::{Deserialize, Serialize};

/// Largest magnitude accepted for a coordinate or wheel delta, in pixels.
/// Generous (the largest framebuffer is 16384 px) but finite, so a hostile
/// client cannot hand the publisher `1e308`.
pub const MAX_COORD: f64 = 1.0e6;
/// Longest accepted `key` / `code` string, in bytes (the longest
/// `KeyboardEvent.key` names, such as `"AudioVolumeDown"`, are ~20 bytes).
pub const MAX_KEY_LEN: usize = 64;
/// Longest accepted `char` event text, in bytes.
pub const MAX_CHAR_LEN: usize = 256;
/// Largest accepted device pixel ratio.
pub const MAX_PIXEL_RATIO: f64 = 16.0;
/// Largest accepted viewport side, in CSS or device pixels.
pub const MAX_VIEWPORT: f64 = 32768.0;

/// A keyboard modifier, as listed in an event's `modifiers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Modifier {
    /// The Shift key.
    Shift,
    /// The Control key.
    Control,
    /// The Alt (Option) key.
    Alt,
    /// The Meta (Command, Windows) key.
    Meta,
}

/// Fields shared by pointer events. Coordinates are **framebuffer pixels**
/// (floats; the client maps through letterboxing and zoom).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointerEvent {
    /// Horizontal position in framebuffer pixels, left = 0.
    pub x: f64,
    /// Vertical position in framebuffer pixels, top = 0.
    pub y: f64,
    /// Whether the pointer is over the picture (false in the letterbox bars).
    #[serde(default = "default_true")]
    pub inside: bool,
    /// The browser's device pixel ratio.
    #[serde(default = "default_ratio")]
    pub pixel_ratio: f64,
    /// The button that changed: 0 none, 1 left, 2 right, 3 middle, 4 back, 5 forward.
    #[serde(default)]
    pub button: u8,
    /// Buttons held down, same numbering as `button`.
    #[serde(default)]
    pub buttons: Vec<u8>,
    /// Modifier keys held down.
    #[serde(default)]
    pub modifiers: Vec<Modifier>,
    /// DOM `timeStamp / 1000`, in seconds.
    #[serde(default)]
    pub timestamp: f64,
}

/// A wheel event: the pointer fields plus the scroll deltas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WheelEvent {
    /// Where the pointer was.
    #[serde(flatten)]
    pub pointer: PointerEvent,
    /// Horizontal scroll in pixels (a line is 16 px, a page the element's width).
    #[serde(default)]
    pub dx: f64,
    /// Vertical scroll in pixels, positive = down (a line is 16 px, a page the element's height).
    #[serde(default)]
    pub dy: f64,
}

/// A key press or release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyEvent {
    /// `KeyboardEvent.key`, such as `"a"`, `"A"`, `"Enter"`.
    pub key: String,
    /// `KeyboardEvent.code`, such as `"KeyA"`.
    #[serde(default)]
    pub code: String,
    /// Modifier keys held down.
    #[serde(default)]
    pub modifiers: Vec<Modifier>,
    /// DOM `timeStamp / 1000`, in seconds.
    #[serde(default)]
    pub timestamp: f64,
}

/// Text input (framehub extension), including IME composition results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CharEvent {
    /// The text typed.
    pub data: String,
    /// Whether an IME composition is still in progress.
    #[serde(default)]
    pub is_composing: bool,
}

/// The viewer's size, synthesised by the server from `set_viewport`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResizeEvent {
    /// Width in CSS pixels.
    pub width: f64,
    /// Height in CSS pixels.
    pub height: f64,
    /// Width in device pixels.
    pub pwidth: u32,
    /// Height in device pixels.
    pub pheight: u32,
    /// Device pixel ratio (`pwidth / width`).
    pub ratio: f64,
}

/// A hint from the hub to the publisher (never from a viewer): every viewer
/// of the stream now receives pictures at a reduced size (adaptive quality),
/// so rendering at `width`×`height` would do; when they recover, another hint
/// gives the stream's full size again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownscaleHint {
    /// Suggested width in pixels.
    pub width: u32,
    /// Suggested height in pixels.
    pub height: u32,
}

/// One validated input event, tagged on the wire by `event_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", rename_all = "snake_case")]
pub enum InputEvent {
    /// A button was pressed.
    PointerDown(PointerEvent),
    /// A button was released.
    PointerUp(PointerEvent),
    /// The pointer moved (coalesced by the client to one per animation frame).
    PointerMove(PointerEvent),
    /// The pointer entered the view (extension).
    PointerEnter(PointerEvent),
    /// The pointer left the view (extension).
    PointerLeave(PointerEvent),
    /// A double click (extension).
    DoubleClick(PointerEvent),
    /// The wheel turned.
    Wheel(WheelEvent),
    /// A key went down.
    KeyDown(KeyEvent),
    /// A key went up.
    KeyUp(KeyEvent),
    /// Text was typed (extension).
    Char(CharEvent),
    /// The viewer's size changed (from `set_viewport`).
    Resize(ResizeEvent),
    /// Made by the hub, not a viewer (extension): see [`DownscaleHint`].
    Downscale(DownscaleHint),
}

/// Why an input event was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// The object does not parse as any known event (unknown `event_type`,
    /// a missing or mistyped field).
    #[error("malformed event: {0}")]
    Malformed(String),
    /// A number is not finite or out of its range.
    #[error("field '{0}' out of range")]
    OutOfRange(&'static str),
    /// A string or list is longer than allowed.
    #[error("field '{0}' too long")]
    TooLong(&'static str),
}

fn default_true() -> bool {
    true
}
fn default_ratio() -> f64 {
    1.0
}

fn check_num(name: &'static str, v: f64, min: f64, max: f64) -> Result<(), EventError> {
    if v.is_finite() && v >= min && v <= max {
        Ok(())
    } else {
        Err(EventError::OutOfRange(name))
    }
}

fn check_modifiers(m: &[Modifier]) -> Result<(), EventError> {
    if m.len() > 4 {
        return Err(EventError::TooLong("modifiers"));
    }
    Ok(())
}

impl PointerEvent {
    fn validate(&self) -> Result<(), EventError> {
        check_num("x", self.x, -MAX_COORD, MAX_COORD)?;
        check_num("y", self.y, -MAX_COORD, MAX_COORD)?;
        check_num("pixel_ratio", self.pixel_ratio, 0.0, MAX_PIXEL_RATIO)?;
        check_num("timestamp", self.timestamp, 0.0, 1.0e12)?;
        if self.button > 5 {
            return Err(EventError::OutOfRange("button"));
        }
        if self.buttons.len() > 5 {
            return Err(EventError::TooLong("buttons"));
        }
        if self.buttons.iter().any(|b| *b > 5) {
            return Err(EventError::OutOfRange("buttons"));
        }
        check_modifiers(&self.modifiers)
    }
}

impl ResizeEvent {
    /// Checks every size is finite, positive and at most [`MAX_VIEWPORT`].
    pub fn validate(&self) -> Result<(), EventError> {
        check_num("width", self.width, 0.0, MAX_VIEWPORT)?;
        check_num("height", self.height, 0.0, MAX_VIEWPORT)?;
        check_num("pwidth", f64::from(self.pwidth), 0.0, MAX_VIEWPORT)?;
        check_num("pheight", f64::from(self.pheight), 0.0, MAX_VIEWPORT)?;
        check_num("ratio", self.ratio, 0.0, MAX_PIXEL_RATIO)
    }
}

impl InputEvent {
    /// Parses and validates one event object (the value of a client
    /// message's `event` field).
    ///
    /// Errors: [`EventError`] when the type is unknown, a field is missing or
    /// of the wrong type, a number is not finite or out of range, or a string
    /// or list is too long.
    ///
    /// The kind may be named `event_type` (renderview) or `type` (pdum.rfb's
    /// wire form), the time `timestamp` or `time_stamp`; when both names are
    /// given, `event_type` and `timestamp` win.
    pub fn from_json(mut value: serde_json::Value) -> Result<Self, EventError> {
        if let Some(obj) = value.as_object_mut() {
            for (alias, key) in [("type", "event_type"), ("time_stamp", "timestamp")] {
                if !obj.contains_key(key) {
                    if let Some(v) = obj.remove(alias) {
                        obj.insert(key.to_string(), v);
                    }
                }
            }
        }
        let ev: InputEvent =
            serde_json::from_value(value).map_err(|e| EventError::Malformed(e.to_string()))?;
        if let InputEvent::Downscale(_) = ev {
            return Err(EventError::Malformed(
                "downscale comes from the hub only".into(),
            ));
        }
        ev.validate()?;
        Ok(ev)
    }

    /// Checks the bounds described in the module docs.
    pub fn validate(&self) -> Result<(), EventError> {
        match self {
            InputEvent::PointerDown(p)
            | InputEvent::PointerUp(p)
            | InputEvent::PointerMove(p)
            | InputEvent::PointerEnter(p)
            | InputEvent::PointerLeave(p)
            | InputEvent::DoubleClick(p) => p.validate(),
            InputEvent::Wheel(w) => {
                w.pointer.validate()?;
                check_num("dx", w.dx, -MAX_COORD, MAX_COORD)?;
                check_num("dy", w.dy, -MAX_COORD, MAX_COORD)
            }
            InputEvent::KeyDown(k) | InputEvent::KeyUp(k) => {
                if k.key.len() > MAX_KEY_LEN {
                    return Err(EventError::TooLong("key"));
                }
                if k.code.len() > MAX_KEY_LEN {
                    return Err(EventError::TooLong("code"));
                }
                check_num("timestamp", k.timestamp, 0.0, 1.0e12)?;
                check_modifiers(&k.modifiers)
            }
            InputEvent::Char(c) => {
                if c.data.len() > MAX_CHAR_LEN {
                    Err(EventError::TooLong("data"))
                } else {
                    Ok(())
                }
            }
            InputEvent::Resize(r) => r.validate(),
            InputEvent::Downscale(_) => Ok(()),
        }
    }

    /// The renderview name of this event, as in its `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            InputEvent::PointerDown(_) => "pointer_down",
            InputEvent::PointerUp(_) => "pointer_up",
            InputEvent::PointerMove(_) => "pointer_move",
            InputEvent::PointerEnter(_) => "pointer_enter",
            InputEvent::PointerLeave(_) => "pointer_leave",
            InputEvent::DoubleClick(_) => "double_click",
            InputEvent::Wheel(_) => "wheel",
            InputEvent::KeyDown(_) => "key_down",
            InputEvent::KeyUp(_) => "key_up",
            InputEvent::Char(_) => "char",
            InputEvent::Resize(_) => "resize",
            InputEvent::Downscale(_) => "downscale",
        }
    }

    /// The pointer fields, for pointer and wheel events.
    pub fn pointer(&self) -> Option<&PointerEvent> {
        match self {
            InputEvent::PointerDown(p)
            | InputEvent::PointerUp(p)
            | InputEvent::PointerMove(p)
            | InputEvent::PointerEnter(p)
            | InputEvent::PointerLeave(p)
            | InputEvent::DoubleClick(p) => Some(p),
            InputEvent::Wheel(w) => Some(&w.pointer),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_pointer_down_with_defaults() {
        let ev =
            InputEvent::from_json(json!({"event_type":"pointer_down","x":10.5,"y":3,"button":1}))
                .unwrap();
        let p = ev.pointer().unwrap();
        assert_eq!((p.x, p.y, p.button, p.inside), (10.5, 3.0, 1, true));
        assert_eq!(ev.event_type(), "pointer_down");
    }

    #[test]
    fn parses_wheel_and_keys() {
        let w = InputEvent::from_json(
            json!({"event_type":"wheel","x":1,"y":2,"dx":0,"dy":-48,"modifiers":["Shift"]}),
        )
        .unwrap();
        match w {
            InputEvent::Wheel(w) => {
                assert_eq!(w.dy, -48.0);
                assert_eq!(w.pointer.modifiers, vec![Modifier::Shift]);
            }
            other => panic!("{other:?}"),
        }
        let k = InputEvent::from_json(json!({"event_type":"key_down","key":"r","code":"KeyR"}))
            .unwrap();
        assert_eq!(k.event_type(), "key_down");
    }

    #[test]
    fn accepts_pdum_rfb_and_renderview_key_names() {
        // pdum.rfb 0.3's widget.js: `type` and `timestamp`.
        let pdum = InputEvent::from_json(
            json!({"type":"pointer_down","x":4,"y":5,"button":1,"buttons":[1],"modifiers":[],"timestamp":2.5}),
        )
        .unwrap();
        assert_eq!(pdum.event_type(), "pointer_down");
        assert_eq!(pdum.pointer().unwrap().timestamp, 2.5);
        // renderview's JSON form: `event_type` and `time_stamp`.
        let rv = InputEvent::from_json(
            json!({"event_type":"pointer_down","x":4,"y":5,"button":1,"buttons":[1],"modifiers":[],"time_stamp":2.5}),
        )
        .unwrap();
        assert_eq!(rv, pdum);
        // Both names: the framehub name wins.
        let both = InputEvent::from_json(
            json!({"type":"wheel","event_type":"pointer_move","x":1,"y":2,"time_stamp":9,"timestamp":3}),
        )
        .unwrap();
        assert_eq!(both.event_type(), "pointer_move");
        assert_eq!(both.pointer().unwrap().timestamp, 3.0);
        // Validation is the same whichever name is used.
        assert_eq!(
            InputEvent::from_json(json!({"type":"pointer_move","x":1e300,"y":0})),
            Err(EventError::OutOfRange("x"))
        );
        assert!(matches!(
            InputEvent::from_json(json!({"type":"downscale","width":1,"height":1})),
            Err(EventError::Malformed(_))
        ));
        // What the hub hands on says `event_type` and `timestamp`.
        let v = serde_json::to_value(&pdum).unwrap();
        assert_eq!(
            (v["event_type"].as_str(), v.get("type")),
            (Some("pointer_down"), None)
        );
    }

    #[test]
    fn round_trips_through_json() {
        let ev = InputEvent::from_json(json!({"event_type":"pointer_move","x":1,"y":2})).unwrap();
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["event_type"], "pointer_move");
        assert_eq!(InputEvent::from_json(v).unwrap(), ev);
    }

    #[test]
    fn refuses_unknown_type_and_bad_fields() {
        assert!(matches!(
            InputEvent::from_json(json!({"event_type":"explode"})),
            Err(EventError::Malformed(_))
        ));
        // The hub's own hint cannot be forged by a viewer.
        assert!(matches!(
            InputEvent::from_json(json!({"event_type":"downscale","width":1,"height":1})),
            Err(EventError::Malformed(_))
        ));
        assert!(matches!(
            InputEvent::from_json(json!({"event_type":"pointer_move","x":"a","y":0})),
            Err(EventError::Malformed(_))
        ));
        assert_eq!(
            InputEvent::from_json(json!({"event_type":"pointer_move","x":1e300,"y":0})),
            Err(EventError::OutOfRange("x"))
        );
        assert_eq!(
            InputEvent::from_json(json!({"event_type":"pointer_down","x":0,"y":0,"button":9})),
            Err(EventError::OutOfRange("button"))
        );
        let long = "x".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            InputEvent::from_json(json!({"event_type":"key_down","key":long})),
            Err(EventError::TooLong("key"))
        );
        assert!(InputEvent::from_json(
            json!({"event_type":"pointer_down","x":0,"y":0,"modifiers":["Hyper"]})
        )
        .is_err());
    }
}
