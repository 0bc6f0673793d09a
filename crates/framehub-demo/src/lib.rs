//! Built-in demo picture sources for `framehub demo`.
//!
//! Each [`Scene`] owns its state, reacts to viewer input and renders RGBA8
//! frames on demand:
//!
//! * [`mandelbrot::Mandelbrot`] (`"default"`): an interactive fractal explorer
//!   that re-renders only when its view changes;
//! * [`plasma::Plasma`] (`"plasma"`): a full-motion animation (new picture every
//!   tick at 60 Hz) with a glow following the pointer;
//! * [`chart::Chart`] (`"chart"`): a live scrolling chart at 15 Hz with hover cursor.

#![deny(missing_docs)]

use framehub_proto::event::ResizeEvent;
use framehub_proto::InputEvent;

pub mod chart;
pub mod mandelbrot;
pub mod plasma;

/// Smallest framebuffer side a scene accepts from a `Resize`, in pixels.
pub const MIN_SIDE: u32 = 16;
/// Largest framebuffer width a scene accepts from a `Resize`, in pixels.
pub const MAX_WIDTH: u32 = 3840;
/// Largest framebuffer height a scene accepts from a `Resize`, in pixels.
pub const MAX_HEIGHT: u32 = 2160;

/// One demo picture source. Pixels are RGBA8, row-major, tightly packed (stride = width*4).
pub trait Scene: Send {
    /// The stream name it is served under.
    fn name(&self) -> &'static str;
    /// Current framebuffer size in pixels.
    fn size(&self) -> (u32, u32);
    /// Applies one input event (coordinates in framebuffer pixels). A `Resize` event
    /// resizes the scene to the viewer's device-pixel size (pwidth × pheight), clamped to
    /// 16..=3840 × 16..=2160 and rounded down to even numbers.
    fn handle_event(&mut self, ev: &InputEvent);
    /// Advances to time `t` (seconds since start) and, if the picture changed since the last call
    /// (or it has never rendered), renders into `buf` (resized to w*h*4) and returns true; false = nothing new.
    fn render(&mut self, t: f64, buf: &mut Vec<u8>) -> bool;
    /// How often `render` should be called, in Hz.
    fn tick_hz(&self) -> f64;
    /// Whether the picture changes every tick, so H.264 suits it better than
    /// a JPEG per frame (browsers without WebCodecs still get JPEG).
    fn continuous(&self) -> bool {
        false
    }
}

/// The framebuffer size a `Resize` asks for: the viewer's device-pixel size
/// (`pwidth` × `pheight`) clamped to [`MIN_SIDE`]..=[`MAX_WIDTH`] ×
/// [`MIN_SIDE`]..=[`MAX_HEIGHT`] and rounded down to even numbers (4:2:0
/// video encoders need even sides).
pub fn resize_target(r: &ResizeEvent) -> (u32, u32) {
    let w = r.pwidth.clamp(MIN_SIDE, MAX_WIDTH) & !1;
    let h = r.pheight.clamp(MIN_SIDE, MAX_HEIGHT) & !1;
    (w, h)
}

/// A fresh instance of every demo scene, the default (`"default"`) first.
pub fn all_scenes() -> Vec<Box<dyn Scene>> {
    vec![
        Box::new(mandelbrot::Mandelbrot::new()),
        Box::new(plasma::Plasma::new()),
        Box::new(chart::Chart::new()),
    ]
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Event constructors shared by the scene tests.
    use framehub_proto::event::{KeyEvent, PointerEvent, ResizeEvent, WheelEvent};
    use framehub_proto::InputEvent;

    pub fn pointer(x: f64, y: f64, button: u8, buttons: &[u8]) -> PointerEvent {
        PointerEvent {
            x,
            y,
            inside: true,
            pixel_ratio: 1.0,
            button,
            buttons: buttons.to_vec(),
            modifiers: vec![],
            timestamp: 0.0,
        }
    }
    pub fn down(x: f64, y: f64) -> InputEvent {
        InputEvent::PointerDown(pointer(x, y, 1, &[1]))
    }
    pub fn up(x: f64, y: f64) -> InputEvent {
        InputEvent::PointerUp(pointer(x, y, 1, &[]))
    }
    pub fn moved(x: f64, y: f64, buttons: &[u8]) -> InputEvent {
        InputEvent::PointerMove(pointer(x, y, 0, buttons))
    }
    pub fn wheel(x: f64, y: f64, dy: f64) -> InputEvent {
        InputEvent::Wheel(WheelEvent {
            pointer: pointer(x, y, 0, &[]),
            dx: 0.0,
            dy,
        })
    }
    pub fn key(k: &str) -> InputEvent {
        InputEvent::KeyDown(KeyEvent {
            key: k.to_string(),
            code: String::new(),
            modifiers: vec![],
            timestamp: 0.0,
        })
    }
    pub fn resize(pw: u32, ph: u32) -> InputEvent {
        InputEvent::Resize(ResizeEvent {
            width: f64::from(pw),
            height: f64::from(ph),
            pwidth: pw,
            pheight: ph,
            ratio: 1.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_target_clamps_and_rounds_to_even() {
        let r = |w, h| match test_util::resize(w, h) {
            InputEvent::Resize(r) => resize_target(&r),
            _ => unreachable!(),
        };
        assert_eq!(r(1001, 601), (1000, 600));
        assert_eq!(r(0, 5), (16, 16));
        assert_eq!(r(9999, 9999), (3840, 2160));
    }

    #[test]
    fn scenes_have_distinct_names_and_render() {
        let mut names = Vec::new();
        for mut s in all_scenes() {
            let (w, h) = s.size();
            let mut buf = Vec::new();
            assert!(s.render(0.0, &mut buf), "{} first render", s.name());
            assert_eq!(buf.len(), (w * h * 4) as usize);
            assert!(s.tick_hz() > 0.0);
            names.push(s.name());
        }
        assert_eq!(names, ["default", "plasma", "chart"]);
    }
}
