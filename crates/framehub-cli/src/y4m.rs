//! A reader for YUV4MPEG2 (`.y4m`) streams, the format `ffmpeg -f yuv4mpegpipe`
//! writes, decoding each frame to RGBA8.
//!
//! A stream is one header line, `YUV4MPEG2` followed by space-separated tags
//! (`W<width> H<height> F<num>:<den> I<interlace> A<aspect> C<colourspace>
//! X<extension>`), then frames, each a `FRAME` line (optionally with
//! parameters) followed by the raw planes Y, Cb, Cr, 8 bits per sample.
//!
//! Supported colourspaces: `C420jpeg` (the default when `C` is absent),
//! `C420paldv`, `C420mpeg2`, `C420`, `C422`, `C444` and `Cmono`. The 4:2:0
//! variants differ only in chroma siting, which is ignored: chroma is
//! upsampled by **nearest neighbour** (each chroma sample covers its 2×2 or
//! 2×1 block of luma samples). High-bit-depth forms such as `C420p10` are refused.
//!
//! Colour conversion uses the ITU-R BT.601 matrix (Kr = 0.299, Kb = 0.114).
//! The range comes from an `XCOLORRANGE=FULL|LIMITED` tag, default limited
//! ("studio swing": Y' 16–235, Cb/Cr 16–240 centred on 128, per BT.601);
//! full range is JFIF's 0–255 for all three. Other `X` tags (such as `XYSCSS=`)
//! are ignored, as are the `I` and `A` tags.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

/// The first bytes of every stream.
const MAGIC: &[u8] = b"YUV4MPEG2 ";
/// Largest accepted width or height, in pixels.
pub const MAX_DIMENSION: u32 = 16384;
/// Longest accepted stream or frame header line, in bytes (newline excluded).
pub const MAX_HEADER_LEN: usize = 4096;

/// The chroma layout named by the header's `C` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colourspace {
    /// `C420jpeg`: 4:2:0, chroma centred (JPEG / MPEG-1 siting). The default.
    C420Jpeg,
    /// `C420paldv`: 4:2:0, PAL-DV siting.
    C420Paldv,
    /// `C420mpeg2`: 4:2:0, chroma left-aligned (MPEG-2 siting).
    C420Mpeg2,
    /// `C420`: 4:2:0, siting unspecified.
    C420,
    /// `C422`: 4:2:2, chroma halved horizontally only.
    C422,
    /// `C444`: no subsampling.
    C444,
    /// `Cmono`: luma only; decoded as grey.
    Mono,
}

impl Colourspace {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "420jpeg" => Self::C420Jpeg,
            "420paldv" => Self::C420Paldv,
            "420mpeg2" => Self::C420Mpeg2,
            "420" => Self::C420,
            "422" => Self::C422,
            "444" => Self::C444,
            "mono" => Self::Mono,
            _ => return None,
        })
    }

    /// log2 of the horizontal and vertical chroma subsampling; `None` for mono.
    fn shift(self) -> Option<(u32, u32)> {
        match self {
            Self::C420Jpeg | Self::C420Paldv | Self::C420Mpeg2 | Self::C420 => Some((1, 1)),
            Self::C422 => Some((1, 0)),
            Self::C444 => Some((0, 0)),
            Self::Mono => None,
        }
    }
}

/// Why a stream could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum Y4mError {
    /// The underlying reader failed.
    Io(io::Error),
    /// The input does not start with `YUV4MPEG2 `.
    BadMagic,
    /// The stream or a frame header line is longer than [`MAX_HEADER_LEN`].
    HeaderTooLong,
    /// The input ended before the stream header line was complete.
    TruncatedHeader,
    /// A required tag (`W` or `H`) is absent.
    MissingTag(char),
    /// A tag's value does not parse (or a size is zero).
    InvalidTag(String),
    /// The `C` tag names a colourspace this reader does not decode.
    UnsupportedColourspace(String),
    /// Width or height exceeds [`MAX_DIMENSION`].
    TooLarge {
        /// Declared width in pixels.
        width: u32,
        /// Declared height in pixels.
        height: u32,
    },
    /// A frame does not start with a `FRAME` line.
    BadFrameHeader {
        /// Index of the frame (0 = first).
        frame: u64,
        /// The start of what was found instead (lossy UTF-8, at most 32 bytes).
        found: String,
    },
    /// The input ended inside a frame.
    Truncated {
        /// Index of the frame (0 = first).
        frame: u64,
        /// Frame payload bytes received.
        got: usize,
        /// Frame payload bytes expected.
        expected: usize,
    },
}

impl fmt::Display for Y4mError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "read error: {e}"),
            Self::BadMagic => f.write_str("not a YUV4MPEG2 stream (bad magic)"),
            Self::HeaderTooLong => {
                write!(f, "YUV4MPEG2 header line longer than {MAX_HEADER_LEN} bytes")
            }
            Self::TruncatedHeader => f.write_str("input ended inside the YUV4MPEG2 header"),
            Self::MissingTag(c) => write!(f, "YUV4MPEG2 header has no {c} tag"),
            Self::InvalidTag(t) => write!(f, "invalid YUV4MPEG2 header tag '{t}'"),
            Self::UnsupportedColourspace(c) => write!(
                f,
                "unsupported colourspace 'C{c}' (supported: 8-bit 420jpeg, 420paldv, 420mpeg2, 420, 422, 444, mono)"
            ),
            Self::TooLarge { width, height } => write!(
                f,
                "frame size {width}x{height} exceeds the limit of {MAX_DIMENSION} per side"
            ),
            Self::BadFrameHeader { frame, found } => {
                write!(f, "frame {frame} header is not FRAME (found '{found}')")
            }
            Self::Truncated { frame, got, expected } => write!(
                f,
                "input ended inside frame {frame}: got {got} of {expected} bytes"
            ),
        }
    }
}

impl std::error::Error for Y4mError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Y4mError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// BT.601 Y'CbCr → R'G'B' coefficients.
///
/// From E'R = Y + 2(1−Kr)·Cr, E'B = Y + 2(1−Kb)·Cb, E'G = (Y − Kr·E'R − Kb·E'B)/Kg
/// with Kr = 0.299, Kb = 0.114 (ITU-R BT.601 §2.5). Limited range rescales Y by
/// 255/219 and chroma by 255/224 (e.g. R = 1.164·(Y−16) + 1.596·(Cr−128)).
#[derive(Debug, Clone)]
struct Matrix {
    /// Scaled luma per code value, plus 0.5 so the final cast rounds.
    luma: [f32; 256],
    r_cr: f32,
    g_cb: f32,
    g_cr: f32,
    b_cb: f32,
}

impl Matrix {
    fn bt601(full: bool) -> Self {
        const KR: f64 = 0.299;
        const KB: f64 = 0.114;
        const KG: f64 = 1.0 - KR - KB;
        let (y_off, ys, cs) = if full {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        Matrix {
            luma: std::array::from_fn(|y| ((y as f64 - y_off) * ys + 0.5) as f32),
            r_cr: (2.0 * (1.0 - KR) * cs) as f32,
            g_cb: (2.0 * KB * (1.0 - KB) / KG * cs) as f32,
            g_cr: (2.0 * KR * (1.0 - KR) / KG * cs) as f32,
            b_cb: (2.0 * (1.0 - KB) * cs) as f32,
        }
    }

    /// The chroma terms (R, G, B) of one Cb/Cr pair, shared by the luma samples it covers.
    #[inline]
    fn chroma(&self, cb: u8, cr: u8) -> [f32; 3] {
        let (u, v) = (f32::from(cb) - 128.0, f32::from(cr) - 128.0);
        [self.r_cr * v, -self.g_cb * u - self.g_cr * v, self.b_cb * u]
    }

    /// RGBA of luma `y` plus the chroma terms `c`; `as u8` saturates to 0..=255.
    #[inline]
    fn rgba(&self, y: u8, c: [f32; 3]) -> [u8; 4] {
        let yv = self.luma[usize::from(y)];
        [(yv + c[0]) as u8, (yv + c[1]) as u8, (yv + c[2]) as u8, 255]
    }
}

/// Reads a YUV4MPEG2 stream frame by frame from any [`Read`] (buffered internally).
pub struct Y4mReader<R: Read> {
    input: BufReader<R>,
    width: u32,
    height: u32,
    fps: Option<f64>,
    colourspace: Colourspace,
    full_range: bool,
    matrix: Matrix,
    /// Next frame's index (= frames read so far).
    frame: u64,
    /// Raw planes of the current frame.
    raw: Vec<u8>,
    /// Set at a clean end of input, so later calls keep returning `false`.
    ended: bool,
}

impl<R: Read> Y4mReader<R> {
    /// Reads and checks the stream header.
    ///
    /// Errors: [`Y4mError::BadMagic`], [`Y4mError::HeaderTooLong`],
    /// [`Y4mError::TruncatedHeader`], [`Y4mError::MissingTag`],
    /// [`Y4mError::InvalidTag`], [`Y4mError::UnsupportedColourspace`],
    /// [`Y4mError::TooLarge`], [`Y4mError::Io`].
    pub fn new(reader: R) -> Result<Self, Y4mError> {
        let mut input = BufReader::new(reader);
        let mut line = Vec::new();
        let state = read_line(&mut input, &mut line)?;
        let ended = matches!(state, Line::Eof | Line::Partial);
        let Some(text) = line.strip_prefix(MAGIC) else {
            return Err(if ended && MAGIC.starts_with(&line) && !line.is_empty() {
                Y4mError::TruncatedHeader
            } else {
                Y4mError::BadMagic
            });
        };
        match state {
            Line::Complete => {}
            Line::TooLong => return Err(Y4mError::HeaderTooLong),
            Line::Eof | Line::Partial => return Err(Y4mError::TruncatedHeader),
        }
        let text = String::from_utf8_lossy(text);
        let (mut width, mut height, mut fps) = (None, None, None);
        let (mut colourspace, mut full_range) = (Colourspace::C420Jpeg, false);
        for tag in text.split(' ').filter(|t| !t.is_empty()) {
            let invalid = || Y4mError::InvalidTag(tag.chars().take(64).collect());
            let (key, val) = tag.split_at(tag.chars().next().map_or(0, char::len_utf8));
            match key {
                "W" | "H" => {
                    let v: u32 = val.parse().map_err(|_| invalid())?;
                    if v == 0 {
                        return Err(invalid());
                    }
                    *(if key == "W" { &mut width } else { &mut height }) = Some(v);
                }
                "F" => {
                    let (n, d) = val.split_once(':').ok_or_else(invalid)?;
                    let n: u32 = n.parse().map_err(|_| invalid())?;
                    let d: u32 = d.parse().map_err(|_| invalid())?;
                    fps = (n > 0 && d > 0).then(|| f64::from(n) / f64::from(d));
                }
                "C" => {
                    colourspace = Colourspace::parse(val).ok_or_else(|| {
                        Y4mError::UnsupportedColourspace(val.chars().take(64).collect())
                    })?;
                }
                "X" => match val.split_once('=') {
                    Some(("COLORRANGE", "FULL")) => full_range = true,
                    Some(("COLORRANGE", "LIMITED")) => full_range = false,
                    Some(("COLORRANGE", _)) => return Err(invalid()),
                    _ => {} // XYSCSS= and other extensions carry nothing we need.
                },
                _ => {} // I (interlacing), A (aspect) and unknown tags are ignored.
            }
        }
        let width = width.ok_or(Y4mError::MissingTag('W'))?;
        let height = height.ok_or(Y4mError::MissingTag('H'))?;
        if width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(Y4mError::TooLarge { width, height });
        }
        Ok(Y4mReader {
            input,
            width,
            height,
            fps,
            colourspace,
            full_range,
            matrix: Matrix::bt601(full_range),
            frame: 0,
            raw: Vec::new(),
            ended: false,
        })
    }

    /// Frame width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Frame height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Frame rate in frames per second from the `F` tag; `None` when absent or `0:0`.
    pub fn fps(&self) -> Option<f64> {
        self.fps
    }

    /// The chroma layout from the `C` tag.
    pub fn colourspace(&self) -> Colourspace {
        self.colourspace
    }

    /// Whether samples are full range (0–255) rather than limited (16–235/240).
    pub fn full_range(&self) -> bool {
        self.full_range
    }

    /// Chroma plane size (width, height) in samples; (0, 0) for mono.
    fn chroma_size(&self) -> (usize, usize) {
        match self.colourspace.shift() {
            Some((sx, sy)) => (
                (self.width as usize).div_ceil(1 << sx),
                (self.height as usize).div_ceil(1 << sy),
            ),
            None => (0, 0),
        }
    }

    /// Reads the next frame and converts it to RGBA8 (row-major, stride
    /// width·4) into `out`, which is resized to width·height·4.
    ///
    /// Returns `Ok(false)` at a clean end of input (end of file before a frame
    /// header), and keeps doing so. Errors: [`Y4mError::BadFrameHeader`],
    /// [`Y4mError::Truncated`], [`Y4mError::Io`]; `out` is then unspecified.
    pub fn next_frame_rgba(&mut self, out: &mut Vec<u8>) -> Result<bool, Y4mError> {
        if self.ended {
            return Ok(false);
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = self.chroma_size();
        let (expected, frame) = (w * h + 2 * cw * ch, self.frame);
        let mut line = Vec::new();
        let state = read_line(&mut self.input, &mut line)?;
        let is_frame = line.starts_with(b"FRAME") && matches!(line.get(5), None | Some(b' '));
        match state {
            Line::Eof => {
                self.ended = true;
                return Ok(false);
            }
            Line::Complete if is_frame => {}
            Line::TooLong => return Err(Y4mError::HeaderTooLong),
            Line::Partial if is_frame || b"FRAME".starts_with(&line) => {
                return Err(Y4mError::Truncated {
                    frame,
                    got: 0,
                    expected,
                });
            }
            _ => {
                let found = String::from_utf8_lossy(&line[..line.len().min(32)]).into_owned();
                return Err(Y4mError::BadFrameHeader { frame, found });
            }
        }
        // `take` + `read_to_end` grows the buffer only as data arrives, so a
        // header claiming a huge size cannot make us allocate it up front.
        self.raw.clear();
        (&mut self.input)
            .take(expected as u64)
            .read_to_end(&mut self.raw)?;
        if self.raw.len() < expected {
            let got = self.raw.len();
            return Err(Y4mError::Truncated {
                frame,
                got,
                expected,
            });
        }
        out.resize(w * h * 4, 0);
        let (luma, chroma) = self.raw.split_at(w * h);
        let (cb, cr) = chroma.split_at(cw * ch);
        let (sx, sy) = self.colourspace.shift().unwrap_or((0, 0));
        let grey = self.matrix.chroma(128, 128);
        for (y, (yrow, orow)) in luma
            .chunks_exact(w)
            .zip(out.chunks_exact_mut(w * 4))
            .enumerate()
        {
            let c0 = (y >> sy) * cw;
            match (cb.get(c0..c0 + cw), cr.get(c0..c0 + cw)) {
                (Some(cbrow), Some(crrow)) if cw > 0 => {
                    // Nearest neighbour: each chroma sample serves 2^sx luma samples of this row.
                    let luma = yrow.chunks(1 << sx).zip(orow.chunks_mut(4 << sx));
                    for ((ys, px), (u, v)) in luma.zip(cbrow.iter().zip(crrow)) {
                        let c = self.matrix.chroma(*u, *v);
                        for (yv, px) in ys.iter().zip(px.chunks_exact_mut(4)) {
                            px.copy_from_slice(&self.matrix.rgba(*yv, c));
                        }
                    }
                }
                _ => {
                    for (yv, px) in yrow.iter().zip(orow.chunks_exact_mut(4)) {
                        px.copy_from_slice(&self.matrix.rgba(*yv, grey));
                    }
                }
            }
        }
        self.frame += 1;
        Ok(true)
    }
}

/// How a bounded line read ended.
enum Line {
    /// A newline was found (not stored).
    Complete,
    /// End of input before any byte.
    Eof,
    /// End of input after some bytes but before a newline.
    Partial,
    /// More than [`MAX_HEADER_LEN`] bytes without a newline.
    TooLong,
}

/// Reads one `\n`-terminated line into `line`, at most [`MAX_HEADER_LEN`] bytes.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> Result<Line, Y4mError> {
    line.clear();
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Line::Eof
            } else {
                Line::Partial
            });
        }
        let room = MAX_HEADER_LEN + 1 - line.len();
        let (n, done) = match buf.iter().take(room).position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len().min(room), false),
        };
        line.extend_from_slice(&buf[..n]);
        input.consume(if done { n + 1 } else { n });
        if line.len() > MAX_HEADER_LEN {
            return Ok(Line::TooLong);
        }
        if done {
            return Ok(Line::Complete);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BT.601 limited-range encoding of 8-bit R'G'B' (Rec. 601 §2.5.3 / §3.5 quantisation).
    fn ycbcr(rgb: [u8; 3], full: bool) -> [u8; 3] {
        let [r, g, b] = rgb.map(|c| f64::from(c) / 255.0);
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        let (cb, cr) = ((b - y) / 1.772, (r - y) / 1.402);
        let q = |v: f64| v.round().clamp(0.0, 255.0) as u8;
        if full {
            [q(255.0 * y), q(128.0 + 255.0 * cb), q(128.0 + 255.0 * cr)]
        } else {
            [
                q(16.0 + 219.0 * y),
                q(128.0 + 224.0 * cb),
                q(128.0 + 224.0 * cr),
            ]
        }
    }

    const RED: [u8; 3] = [255, 0, 0];
    const GREEN: [u8; 3] = [0, 255, 0];
    const BLUE: [u8; 3] = [0, 0, 255];
    const WHITE: [u8; 3] = [255, 255, 255];
    const BLACK: [u8; 3] = [0, 0, 0];
    const GREY: [u8; 3] = [128, 128, 128];
    const YELLOW: [u8; 3] = [255, 255, 0];
    const CYAN: [u8; 3] = [0, 255, 255];

    /// One 4:4:4 frame's planes from RGB pixels.
    fn planes_444(px: &[[u8; 3]], full: bool) -> Vec<u8> {
        let yuv: Vec<[u8; 3]> = px.iter().map(|p| ycbcr(*p, full)).collect();
        (0..3).flat_map(|c| yuv.iter().map(move |p| p[c])).collect()
    }

    fn stream(header: &str, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut s = format!("YUV4MPEG2 {header}\n").into_bytes();
        for f in frames {
            s.extend_from_slice(b"FRAME\n");
            s.extend_from_slice(f);
        }
        s
    }

    fn decode_all(data: &[u8]) -> Result<Vec<Vec<u8>>, Y4mError> {
        let mut r = Y4mReader::new(data)?;
        let mut frames = Vec::new();
        let mut out = Vec::new();
        while r.next_frame_rgba(&mut out)? {
            frames.push(out.clone());
        }
        Ok(frames)
    }

    fn assert_close(rgba: &[u8], want: &[[u8; 3]]) {
        assert_eq!(rgba.len(), want.len() * 4);
        for (i, (got, want)) in rgba.chunks_exact(4).zip(want).enumerate() {
            for c in 0..3 {
                let d = (i32::from(got[c]) - i32::from(want[c])).abs();
                assert!(d <= 3, "pixel {i}: got {got:?}, want {want:?}");
            }
            assert_eq!(got[3], 255);
        }
    }

    #[test]
    fn decodes_444_known_colours() {
        let px = [RED, GREEN, BLUE, WHITE, BLACK, GREY, YELLOW, CYAN];
        let data = stream("W4 H2 F25:1 Ip A1:1 C444", &[planes_444(&px, false)]);
        let mut r = Y4mReader::new(&data[..]).unwrap();
        assert_eq!((r.width(), r.height(), r.fps()), (4, 2, Some(25.0)));
        assert_eq!(
            (r.colourspace(), r.full_range()),
            (Colourspace::C444, false)
        );
        let mut out = Vec::new();
        assert!(r.next_frame_rgba(&mut out).unwrap());
        assert_close(&out, &px);
        assert!(!r.next_frame_rgba(&mut out).unwrap());
        assert!(!r.next_frame_rgba(&mut out).unwrap(), "stays at end");
        assert_eq!(r.frame, 1);
    }

    #[test]
    fn decodes_full_range() {
        let px = [RED, GREEN, BLUE, WHITE, BLACK, GREY, YELLOW, CYAN];
        let data = stream(
            "W4 H2 C444 XYSCSS=444 XCOLORRANGE=FULL",
            &[planes_444(&px, true)],
        );
        let frames = decode_all(&data).unwrap();
        assert_close(&frames[0], &px);
        // The same bytes read as limited range would be off by far more than 3.
        let limited = stream("W4 H2 C444", &[planes_444(&px, true)]);
        assert!(decode_all(&limited).unwrap()[0][..3] != frames[0][..3]);
    }

    #[test]
    fn decodes_420_nearest_neighbour_chroma() {
        // 4x4 luma, 2x2 chroma: four 2x2 blocks of red, green, blue, white.
        let blocks = [RED, GREEN, BLUE, WHITE];
        let want: Vec<[u8; 3]> = (0..16).map(|i| blocks[(i / 8) * 2 + (i % 4) / 2]).collect();
        let yuv: Vec<[u8; 3]> = blocks.iter().map(|c| ycbcr(*c, false)).collect();
        let mut planes: Vec<u8> = want.iter().map(|c| ycbcr(*c, false)[0]).collect();
        planes.extend(yuv.iter().map(|p| p[1]));
        planes.extend(yuv.iter().map(|p| p[2]));
        for cs in ["", " C420jpeg", " C420paldv", " C420mpeg2", " C420"] {
            let data = stream(
                &format!("W4 H4 F30000:1001{cs}"),
                &[planes.clone(), planes.clone()],
            );
            let frames = decode_all(&data).unwrap();
            assert_eq!(frames.len(), 2, "{cs}");
            assert_close(&frames[0], &want);
            assert_close(&frames[1], &want);
        }
    }

    #[test]
    fn odd_sizes_mono_and_422() {
        // 3x3 4:2:0 has 2x2 chroma: 9 + 4 + 4 bytes per frame.
        let data = stream("W3 H3 C420jpeg", &[vec![128; 17]]);
        assert_close(&decode_all(&data).unwrap()[0], &[[130, 130, 130]; 9]);
        let grey = ycbcr(GREY, false)[0];
        let data = stream("W2 H2 Cmono", &[vec![grey; 4]]);
        assert_close(&decode_all(&data).unwrap()[0], &[GREY; 4]);
        let data = stream("W2 H1 C422", &[vec![235, 16, 128, 128]]);
        assert_close(&decode_all(&data).unwrap()[0], &[WHITE, BLACK]);
    }

    #[test]
    fn parses_fps_and_frame_params() {
        let r = |h: &str| Y4mReader::new(format!("YUV4MPEG2 {h}\n").as_bytes()).map(|r| r.fps());
        let ntsc = r("W2 H2 F30000:1001").unwrap().unwrap();
        assert!((ntsc - 29.97).abs() < 0.001, "{ntsc}");
        assert_eq!(r("W2 H2 F0:0").unwrap(), None);
        assert_eq!(r("H2 W2").unwrap(), None);
        assert!(matches!(r("W2 H2 F30"), Err(Y4mError::InvalidTag(_))));
        let mut data = b"YUV4MPEG2 W1 H1 C444\nFRAME Ixyz Xfoo\n".to_vec();
        data.extend_from_slice(&[235, 128, 128]);
        assert_close(&decode_all(&data).unwrap()[0], &[WHITE]);
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let px = [RED, GREEN, BLUE, WHITE, BLACK, GREY, YELLOW, CYAN];
        let f = planes_444(&px, false);
        let data = stream("W4 H2 C444", &[f.clone(), f]);
        let err = decode_all(&data[..data.len() - 14]).unwrap_err();
        assert!(matches!(
            err,
            Y4mError::Truncated {
                frame: 1,
                got: 10,
                expected: 24
            }
        ));
        assert_eq!(
            err.to_string(),
            "input ended inside frame 1: got 10 of 24 bytes"
        );
        // Cut inside the second FRAME line.
        let err = decode_all(&data[..data.len() - 24 - 3]).unwrap_err();
        assert!(
            matches!(
                err,
                Y4mError::Truncated {
                    frame: 1,
                    got: 0,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_bad_headers() {
        let e = |d: &[u8]| {
            Y4mReader::new(d)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(e(b"hello world\n"), "not a YUV4MPEG2 stream (bad magic)");
        assert_eq!(
            e(b"\x89PNG\r\n\x1a\n"),
            "not a YUV4MPEG2 stream (bad magic)"
        );
        assert_eq!(e(b""), "not a YUV4MPEG2 stream (bad magic)");
        assert_eq!(e(b"YUV4MP"), "input ended inside the YUV4MPEG2 header");
        assert_eq!(
            e(b"YUV4MPEG2 W4 H4"),
            "input ended inside the YUV4MPEG2 header"
        );
        assert_eq!(e(b"YUV4MPEG2 H4\n"), "YUV4MPEG2 header has no W tag");
        assert_eq!(e(b"YUV4MPEG2 W4\n"), "YUV4MPEG2 header has no H tag");
        assert_eq!(e(b"YUV4MPEG2 W0 H4\n"), "invalid YUV4MPEG2 header tag 'W0'");
        assert_eq!(
            e(b"YUV4MPEG2 W-1 H4\n"),
            "invalid YUV4MPEG2 header tag 'W-1'"
        );
        assert!(e(b"YUV4MPEG2 W4 H4 C420p10\n").starts_with("unsupported colourspace 'C420p10'"));
        assert!(e(b"YUV4MPEG2 W4 H4 C444alpha\n").starts_with("unsupported colourspace"));
        assert_eq!(
            e(b"YUV4MPEG2 W16385 H4\n"),
            "frame size 16385x4 exceeds the limit of 16384 per side"
        );
        let mut long = b"YUV4MPEG2 W4 H4 X".to_vec();
        long.resize(10_000, b'a');
        assert_eq!(e(&long), "YUV4MPEG2 header line longer than 4096 bytes");
        let err = decode_all(b"YUV4MPEG2 W1 H1 C444\nFRAMX\n\0\0\0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame 0 header is not FRAME (found 'FRAMX')"
        );
    }

    #[test]
    fn never_panics_on_damaged_input() {
        let px = [RED, GREEN, BLUE, WHITE, BLACK, GREY, YELLOW, CYAN];
        let data = stream(
            "W4 H2 F25:1 C420mpeg2 XCOLORRANGE=LIMITED",
            &[planes_444(&px, false)[..12].to_vec()],
        );
        for cut in 0..data.len() {
            let _ = decode_all(&data[..cut]);
        }
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..2000 {
            let mut d = data.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed % d.len() as u64) as usize;
                d[i] = (seed >> 32) as u8;
            }
            let _ = decode_all(&d);
        }
    }

    /// A reader that hands out one byte per call and is interrupted in between.
    struct Trickle<'a>(&'a [u8], bool);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn works_through_tiny_interrupted_reads() {
        let px = [RED, GREEN, BLUE, WHITE, BLACK, GREY, YELLOW, CYAN];
        let data = stream("W4 H2 C444", &[planes_444(&px, false)]);
        let mut r = Y4mReader::new(Trickle(&data, false)).unwrap();
        let mut out = Vec::new();
        assert!(r.next_frame_rgba(&mut out).unwrap());
        assert_close(&out, &px);
        assert!(!r.next_frame_rgba(&mut out).unwrap());
    }
}
