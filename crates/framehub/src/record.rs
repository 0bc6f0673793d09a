//! MP4 recording of what a stream publishes ([`crate::Stream::record`]).
//!
//! A recording is one more subscriber of the stream's **own** H.264 chain
//! (video tier 0, full rate): it takes the access units the encode thread
//! already makes for the video viewers — no second encode — and counts as
//! demand for that chain, so the chain runs while recording even with no
//! viewer. A stream that offers no H.264 to viewers ([`crate::StreamConfig::h264`]
//! off) runs that chain, with the same settings, only while a recording
//! runs (then only the recording takes its units). It asks for a keyframe
//! to start (and again after losing units).
//!
//! The units go through the chain's bounded broadcast channel (the same 16
//! units a viewer has; a recording that falls further behind loses units,
//! counts them, and resumes at the next keyframe — viewers are never held
//! back) to the recording's own thread, which converts Annex B to
//! length-prefixed samples and writes **fragmented MP4** with
//! [`shiguredo_mp4`]'s segment muxer (`ftyp`+`moov` with the `avcC` built
//! from the first keyframe's SPS/PPS, then one `moof`+`mdat` per fragment;
//! when stopped, the total duration goes into the header and an `mfra`
//! index is appended). File I/O never runs on the async runtime or an
//! encode thread.
//!
//! **Timing** is variable frame rate at 90 kHz: each sample's time is its
//! frame's publish time (`FrameInfo::timestamp_us`), so a stream at rest
//! records no samples and a pause plays as long as it lasted. A sample's
//! duration is the time to the next one (the last one lasts until the
//! recording stops), so a sample is written once the next one arrives; a
//! fragment is closed at a keyframe, after
//! [`RecordOptions::fragment_duration`] of samples, or that long after its
//! first sample when the stream rests. A process that dies leaves a file
//! playable up to its last complete fragment.

use std::fs::File;
use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use framehub_proto::{FrameKind, OutputFormat};
use shiguredo_mp4::bitstream::h264::{
    build_avc1_box, parse_annexb_nal_units, H264NalUnitType, H264SampleEntryConfig, LengthSize,
};
use shiguredo_mp4::boxes::SampleEntry;
use shiguredo_mp4::mux::{Fmp4SegmentMuxer, Sample};
use shiguredo_mp4::TrackKind;
use tokio::sync::broadcast::error::RecvError;

use crate::stream::{Encoded, SourceKind, StreamShared, Variant};
use crate::Error;

/// Ticks per second of the recording's time scale (the usual one for video).
pub const TIMESCALE: u32 = 90_000;

/// A fragment is closed when its samples' bytes reach this (bounds the
/// memory a recording holds between two writes).
const MAX_FRAGMENT_BYTES: usize = 16 << 20;

/// The video tier a recording takes: tier 0, the stream's full rate and quality.
const TIER: u8 = 0;

/// How a recording is written ([`crate::Stream::record`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordOptions {
    /// Longest stretch of video one fragment holds, and longest time a
    /// finished sample waits before it is written (default 1 s; at least
    /// 10 ms). A process that dies loses at most about this much video
    /// (plus the picture on screen when it died). A fragment also ends
    /// before each keyframe, so it starts with one.
    pub fragment_duration: Duration,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            fragment_duration: Duration::from_secs(1),
        }
    }
}

impl RecordOptions {
    /// These options with `fragment_duration` set (see the field).
    pub fn fragment_duration(mut self, d: Duration) -> Self {
        self.fragment_duration = d;
        self
    }
}

/// What a finished recording wrote ([`Recording::stop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RecordingStats {
    /// Samples (access units, one picture each) in the file.
    pub frames: u64,
    /// Of those, keyframes.
    pub keyframes: u64,
    /// Access units not in the file: lost because the writer fell more than
    /// the chain's buffer behind, unreadable, or skipped while waiting for
    /// the keyframe after such a loss. Units before the first keyframe are
    /// not counted.
    pub dropped: u64,
    /// Bytes written to the file.
    pub bytes: u64,
    /// Playing time of the file: from the first recorded picture to the stop.
    pub duration: Duration,
}

/// Counters the writer thread updates while it runs.
#[derive(Debug, Default)]
struct Progress {
    frames: AtomicU64,
    dropped: AtomicU64,
    bytes: AtomicU64,
    finished: AtomicBool,
}

/// A recording in progress: made by [`crate::Stream::record`], ended by
/// [`Recording::stop`] (or, best effort, by dropping it).
///
/// It ends by itself when the stream is removed or its hub closes (the file
/// is finalized), and on an error (the file is finalized as far as it can
/// be); [`Recording::stop`] returns the error.
#[derive(Debug)]
pub struct Recording {
    path: PathBuf,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<Result<RecordingStats, Error>>>,
    progress: Arc<Progress>,
}

impl Recording {
    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Samples written so far (in complete fragments or waiting for the next one).
    pub fn frames(&self) -> u64 {
        self.progress.frames.load(Ordering::Relaxed)
    }

    /// Access units dropped so far (see [`RecordingStats::dropped`]).
    pub fn dropped(&self) -> u64 {
        self.progress.dropped.load(Ordering::Relaxed)
    }

    /// Bytes written to the file so far.
    pub fn bytes(&self) -> u64 {
        self.progress.bytes.load(Ordering::Relaxed)
    }

    /// Whether the writer has ended: stopped, the stream closed, or an error
    /// (then [`Recording::stop`] returns it).
    pub fn is_finished(&self) -> bool {
        self.progress.finished.load(Ordering::Relaxed)
    }

    /// Stops recording and finalizes the file: the picture on screen is
    /// written with a duration up to now, the last fragment and the `mfra`
    /// index are written, and the file is synced. Blocks until then (a few
    /// milliseconds unless the disk is slow; from async code, call it in
    /// `spawn_blocking`).
    ///
    /// Returns what was written. A stream that never published a frame
    /// leaves an empty file (`frames` 0).
    ///
    /// Errors: [`Error::Io`] when writing the file failed (disk full, …);
    /// [`Error::Recording`] when the stream's H.264 could not be muxed (its
    /// size changed while recording: the file holds the video up to the
    /// change).
    pub fn stop(mut self) -> Result<RecordingStats, Error> {
        self.finish()
    }

    fn finish(&mut self) -> Result<RecordingStats, Error> {
        self.stop.send_replace(true);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(Error::Recording("the recording thread panicked".into()))),
            None => Err(Error::Recording("the recording was already stopped".into())),
        }
    }
}

impl Drop for Recording {
    /// Stops and finalizes as [`Recording::stop`] does, waiting for it;
    /// an error is logged.
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.finish() {
                tracing::error!(path = %self.path.display(), error = %e, "recording failed");
            }
        }
    }
}

/// Keeps the recording's demand for the full-rate chain while it lives.
struct Demand(Arc<StreamShared>);

impl Demand {
    fn new(stream: &Arc<StreamShared>) -> Self {
        stream.recordings.fetch_add(1, Ordering::Relaxed);
        stream.set_demand(Self::variant(), true);
        Demand(Arc::clone(stream))
    }

    fn variant() -> Variant {
        Variant {
            format: OutputFormat::H264,
            tier: TIER,
        }
    }
}

impl Drop for Demand {
    fn drop(&mut self) {
        self.0.recordings.fetch_sub(1, Ordering::Relaxed);
        self.0.set_demand(Self::variant(), false);
    }
}

/// Starts recording `stream` to a new file at `path` (see [`crate::Stream::record`]).
pub(crate) fn start(
    stream: &Arc<StreamShared>,
    path: &Path,
    options: RecordOptions,
) -> Result<Recording, Error> {
    if !cfg!(feature = "h264") {
        return Err(Error::Recording(
            "framehub was built without its `h264` feature: nothing can be recorded".into(),
        ));
    }
    if stream.source == SourceKind::Remote && !stream.has_video() {
        return Err(Error::Recording(format!(
            "stream '{}' is a remote publisher's that offers no H.264 to record",
            stream.name
        )));
    }
    let started = Instant::now();
    let file = File::create(path)?;
    let rx = stream
        .subscribe_video(TIER)
        .ok_or_else(|| Error::Recording("the stream has no full-rate video chain".into()))?;
    let closed = stream.closed.subscribe();
    let demand = Demand::new(stream);
    stream.request_keyframe(TIER);
    let progress = Arc::new(Progress::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let writer = Writer {
        file,
        muxer: Fmp4SegmentMuxer::new().map_err(mux_error)?,
        entry: None,
        init_written: false,
        need_keyframe: true,
        pending: None,
        samples: Vec::new(),
        payload: Vec::new(),
        fragment_ticks: 0,
        fragment_started: None,
        first_ticks: None,
        start_us: stream.micros_since_created(started),
        fragment_duration: options.fragment_duration.max(Duration::from_millis(10)),
        keyframes: 0,
        total_ticks: 0,
        progress: Arc::clone(&progress),
    };
    let me = Arc::clone(stream);
    let thread = std::thread::Builder::new()
        .name(format!("framehub-rec-{}", stream.name))
        .spawn(move || {
            let out = run(&me, writer, rx, closed, stop_rx);
            drop(demand);
            out
        })?;
    Ok(Recording {
        path: path.to_path_buf(),
        stop,
        thread: Some(thread),
        progress,
    })
}

fn mux_error(e: shiguredo_mp4::mux::MuxError) -> Error {
    Error::Recording(format!("MP4 muxer: {e}"))
}

/// The writer thread: takes units until stopped, the stream closes or an
/// error, then finalizes the file.
fn run(
    stream: &Arc<StreamShared>,
    mut w: Writer,
    mut rx: tokio::sync::broadcast::Receiver<Arc<Encoded>>,
    mut closed: tokio::sync::watch::Receiver<bool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<RecordingStats, Error> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            w.progress.finished.store(true, Ordering::Relaxed);
            return Err(e.into());
        }
    };
    let result: Result<(), Error> = rt.block_on(async {
        loop {
            let deadline = w.flush_deadline();
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                _ = closed.wait_for(|c| *c) => break,
                r = rx.recv() => match r {
                    Ok(unit) => w.unit(stream, &unit, Instant::now())?,
                    Err(RecvError::Lagged(n)) => w.lost(stream, n),
                    Err(RecvError::Closed) => break,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()), if deadline.is_some() => {
                    w.flush()?;
                }
            }
        }
        // Units already made before the stop still go in.
        loop {
            match rx.try_recv() {
                Ok(unit) => w.unit(stream, &unit, Instant::now())?,
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => w.lost(stream, n),
                Err(_) => break,
            }
        }
        Ok(())
    });
    let end_us = stream.micros_since_created(Instant::now());
    let finalized = w.finalize(end_us);
    w.progress.finished.store(true, Ordering::Relaxed);
    match (result, finalized) {
        (Err(e), _) => {
            tracing::error!(stream = %stream.name, error = %e, "recording ended with an error");
            Err(e)
        }
        (Ok(()), r) => r,
    }
}

/// A finished picture waiting for the next one (which gives its duration).
struct Pending {
    /// Length-prefixed NAL units (parameter sets left out: they are in the `avcC`).
    data: Vec<u8>,
    keyframe: bool,
    /// Presentation time, ticks of [`TIMESCALE`] in the stream's clock.
    ticks: u64,
    /// The published frame it shows.
    source_id: u64,
    arrived: Instant,
}

/// The writer thread's state.
struct Writer {
    file: File,
    muxer: Fmp4SegmentMuxer,
    /// The sample entry (`avc1` with the `avcC`), from the first keyframe.
    entry: Option<SampleEntry>,
    init_written: bool,
    /// Units are skipped until a keyframe (at the start and after a loss).
    need_keyframe: bool,
    pending: Option<Pending>,
    /// The open fragment: its samples and their bytes.
    samples: Vec<Sample>,
    payload: Vec<u8>,
    fragment_ticks: u64,
    /// When the open fragment's first sample was put in it.
    fragment_started: Option<Instant>,
    /// Time of the first recorded sample (the file's zero).
    first_ticks: Option<u64>,
    /// The recording's start in the stream's clock, µs: an older picture
    /// (the resting frame) is shown from here.
    start_us: u64,
    fragment_duration: Duration,
    keyframes: u64,
    /// Playing time of the samples pushed so far, ticks.
    total_ticks: u64,
    progress: Arc<Progress>,
}

fn ticks(us: u64) -> u64 {
    us.saturating_mul(u64::from(TIMESCALE)) / 1_000_000
}

impl Writer {
    /// When the open fragment must be written even if no unit comes.
    fn flush_deadline(&self) -> Option<Instant> {
        self.fragment_started.map(|t| t + self.fragment_duration)
    }

    /// `n` units were lost: wait for a keyframe, and ask for one.
    fn lost(&mut self, stream: &StreamShared, n: u64) {
        self.progress.dropped.fetch_add(n, Ordering::Relaxed);
        if self.entry.is_some() {
            self.need_keyframe = true;
        }
        stream.request_keyframe(TIER);
    }

    /// Takes one access unit of the chain, arrived at `now`.
    fn unit(&mut self, stream: &StreamShared, enc: &Encoded, now: Instant) -> Result<(), Error> {
        let FrameKind::Video { keyframe, .. } = &enc.info.kind else {
            return Ok(());
        };
        let keyframe = *keyframe;
        let started = self.entry.is_some();
        if self.need_keyframe && !keyframe {
            if started {
                self.progress.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(());
        }
        let Ok(nals) = parse_annexb_nal_units(&enc.data) else {
            tracing::warn!(stream = %stream.name, "recording: an access unit is not Annex B; skipped");
            return self.skip(stream);
        };
        let (mut sps, mut pps) = (Vec::new(), Vec::new());
        let mut data = Vec::with_capacity(enc.data.len());
        for nal in &nals {
            match nal.nal_unit_type {
                H264NalUnitType::Sps => sps.push(nal.data.to_vec()),
                H264NalUnitType::Pps => pps.push(nal.data.to_vec()),
                H264NalUnitType::Aud => {}
                _ => {
                    let Ok(len) = u32::try_from(nal.data.len()) else {
                        return self.skip(stream);
                    };
                    data.extend_from_slice(&len.to_be_bytes());
                    data.extend_from_slice(nal.data);
                }
            }
        }
        if data.is_empty() {
            return self.skip(stream);
        }
        if keyframe && !sps.is_empty() {
            let config = H264SampleEntryConfig {
                length_size: LengthSize::FourBytes,
            };
            let Ok(avc1) = build_avc1_box(&sps, &pps, &config) else {
                tracing::warn!(stream = %stream.name, "recording: a keyframe's SPS/PPS cannot be read; skipped");
                return self.skip(stream);
            };
            let (w, h) = (avc1.visual.width, avc1.visual.height);
            let entry = SampleEntry::Avc1(avc1);
            match &self.entry {
                None => self.entry = Some(entry),
                Some(e) if *e == entry => {}
                Some(SampleEntry::Avc1(old)) if (old.visual.width, old.visual.height) != (w, h) => {
                    return Err(Error::Recording(format!(
                        "the stream's size changed from {}x{} to {w}x{h}: a recording keeps one size (the file holds the video up to the change)",
                        old.visual.width, old.visual.height
                    )));
                }
                Some(_) => {
                    return Err(Error::Recording(
                        "the stream's H.264 parameters changed: a recording keeps one set (the file holds the video up to the change)".into(),
                    ));
                }
            }
        }
        if self.entry.is_none() {
            // A keyframe without parameter sets cannot start the file.
            return Ok(());
        }
        self.need_keyframe = false;

        // Its time: the frame's publish time, never before the recording
        // started, and after the previous sample. The same picture again (a
        // keyframe re-encoded for a viewer, a sharper still) is timed by
        // when it came.
        let t = match &self.pending {
            None => ticks(enc.info.timestamp_us.max(self.start_us)),
            Some(p) if p.source_id == enc.info.source_id => p.ticks.saturating_add(ticks(
                now.saturating_duration_since(p.arrived).as_micros() as u64,
            )),
            Some(_) => ticks(enc.info.timestamp_us),
        };
        let t = match &self.pending {
            Some(p) => t.max(p.ticks + 1),
            None => t,
        };
        self.first_ticks.get_or_insert(t);
        let next = Pending {
            data,
            keyframe,
            ticks: t,
            source_id: enc.info.source_id,
            arrived: now,
        };
        if let Some(p) = self.pending.replace(next) {
            self.push(p, t, now)?;
        }
        self.progress.frames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// An unreadable unit: dropped, and the chain is broken until a keyframe.
    fn skip(&mut self, stream: &StreamShared) -> Result<(), Error> {
        self.lost(stream, 1);
        self.need_keyframe = true;
        Ok(())
    }

    /// Puts the finished sample `p` (shown until `end` ticks) into the open
    /// fragment, writing the fragment first when `p` should start a new one.
    fn push(&mut self, p: Pending, end: u64, now: Instant) -> Result<(), Error> {
        let duration = u32::try_from(end.saturating_sub(p.ticks).max(1)).unwrap_or(u32::MAX);
        let frag_ticks =
            self.fragment_duration.as_micros() as u64 * u64::from(TIMESCALE) / 1_000_000;
        if !self.samples.is_empty()
            && (p.keyframe
                || self.fragment_ticks >= frag_ticks
                || self.payload.len() + p.data.len() > MAX_FRAGMENT_BYTES)
        {
            self.flush()?;
        }
        let Some(timescale) = NonZeroU32::new(TIMESCALE) else {
            return Ok(());
        };
        self.samples.push(Sample {
            track_kind: TrackKind::Video,
            timescale,
            // The entry is named once per fragment; the muxer keeps it.
            sample_entry: if self.samples.is_empty() {
                self.entry.clone()
            } else {
                None
            },
            duration,
            keyframe: p.keyframe,
            composition_time_offset: None,
            data_offset: self.payload.len() as u64,
            data_size: p.data.len(),
        });
        if p.keyframe {
            self.keyframes += 1;
        }
        self.payload.extend_from_slice(&p.data);
        self.fragment_ticks += u64::from(duration);
        self.total_ticks += u64::from(duration);
        self.fragment_started.get_or_insert(now);
        Ok(())
    }

    /// Writes the open fragment (and, before the first, the init segment).
    fn flush(&mut self) -> Result<(), Error> {
        if self.samples.is_empty() {
            self.fragment_started = None;
            return Ok(());
        }
        let meta = self
            .muxer
            .create_media_segment_metadata(&self.samples)
            .map_err(mux_error)?;
        let mut out = Vec::with_capacity(meta.len() + self.payload.len() + 1024);
        if !self.init_written {
            out.extend_from_slice(&self.muxer.init_segment_bytes().map_err(mux_error)?);
        }
        out.extend_from_slice(&meta);
        out.extend_from_slice(&self.payload);
        self.samples.clear();
        self.payload.clear();
        self.fragment_ticks = 0;
        self.fragment_started = None;
        self.file.write_all(&out)?;
        self.init_written = true;
        self.progress
            .bytes
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Puts the total duration in the init segment at the start of the file
    /// (`mvhd`, `tkhd`, `mdhd`, `mehd`: fragmented MP4 writes 0 there
    /// first). Players that read only the header and the first fragments
    /// (Chromium's `<video>`) take the duration from it. The `moov` is
    /// decoded and encoded again with the crate's own boxes; it is
    /// rewritten only when its size is unchanged (it always is below
    /// 13 hours: the fields keep their 32-bit versions).
    fn write_durations(&mut self) -> Result<(), Error> {
        use shiguredo_mp4::boxes::{FtypBox, MoovBox};
        use shiguredo_mp4::{Decode, Encode};
        use std::io::{Seek, SeekFrom};
        let init = self.muxer.init_segment_bytes().map_err(mux_error)?;
        let Ok((_, ftyp_len)) = FtypBox::decode(&init) else {
            return Ok(());
        };
        let Some(Ok((mut moov, moov_len))) = init.get(ftyp_len..).map(MoovBox::decode) else {
            return Ok(());
        };
        let ms = self.total_ticks * 1000 / u64::from(TIMESCALE);
        let movie_scale = u64::from(moov.mvhd_box.timescale.get());
        let movie = self.total_ticks * movie_scale / u64::from(TIMESCALE);
        moov.mvhd_box.duration = movie;
        if let Some(mehd) = moov.mvex_box.as_mut().and_then(|m| m.mehd_box.as_mut()) {
            mehd.fragment_duration = movie;
        }
        for trak in &mut moov.trak_boxes {
            trak.tkhd_box.duration = movie;
            let media_scale = u64::from(trak.mdia_box.mdhd_box.timescale.get());
            trak.mdia_box.mdhd_box.duration = self.total_ticks * media_scale / u64::from(TIMESCALE);
        }
        let Ok(bytes) = moov.encode_to_vec() else {
            return Ok(());
        };
        if bytes.len() != moov_len {
            tracing::debug!(
                ms,
                "recording: the moov with durations changed size; left as it was"
            );
            return Ok(());
        }
        self.file.seek(SeekFrom::Start(ftyp_len as u64))?;
        self.file.write_all(&bytes)?;
        self.file.seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// Ends the file at `end_us` (stream clock): the picture on screen, the
    /// open fragment, the `mfra` index; syncs it.
    fn finalize(&mut self, end_us: u64) -> Result<RecordingStats, Error> {
        let now = Instant::now();
        if let Some(p) = self.pending.take() {
            let end = ticks(end_us).max(p.ticks + 1);
            self.push(p, end, now)?;
        }
        self.flush()?;
        if self.init_written {
            self.write_durations()?;
            let mfra = self.muxer.mfra_bytes().map_err(mux_error)?;
            self.file.write_all(&mfra)?;
            self.progress
                .bytes
                .fetch_add(mfra.len() as u64, Ordering::Relaxed);
        }
        self.file.sync_all()?;
        Ok(RecordingStats {
            frames: self.progress.frames.load(Ordering::Relaxed),
            keyframes: self.keyframes,
            dropped: self.progress.dropped.load(Ordering::Relaxed),
            bytes: self.progress.bytes.load(Ordering::Relaxed),
            duration: Duration::from_micros(
                self.total_ticks.saturating_mul(1_000_000) / u64::from(TIMESCALE),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::StreamConfig;
    use bytes::Bytes;
    use framehub_proto::FrameInfo;

    fn unit(data: &[u8], keyframe: bool, source_id: u64, timestamp_us: u64) -> Encoded {
        Encoded {
            info: FrameInfo {
                frame_id: source_id,
                source_id,
                timestamp_us,
                width: 64,
                height: 64,
                kind: FrameKind::Video {
                    codec: "avc1.42c01e".into(),
                    keyframe,
                    duration_us: None,
                },
                bytes: data.len(),
                encode_ms: 0.0,
            },
            data: Bytes::copy_from_slice(data),
            patch: None,
        }
    }

    /// Whatever bytes a remote publisher sends as units, the writer never
    /// panics: unreadable units are dropped and nothing is written.
    #[test]
    fn garbage_units_are_dropped_without_a_panic() {
        let stream = StreamShared::new("t".into(), 64, 64, StreamConfig::default());
        let path = std::env::temp_dir().join(format!("framehub-rec-{}.mp4", std::process::id()));
        let mut w = Writer {
            file: File::create(&path).unwrap(),
            muxer: Fmp4SegmentMuxer::new().unwrap(),
            entry: None,
            init_written: false,
            need_keyframe: true,
            pending: None,
            samples: Vec::new(),
            payload: Vec::new(),
            fragment_ticks: 0,
            fragment_started: None,
            first_ticks: None,
            start_us: 0,
            fragment_duration: Duration::from_secs(1),
            keyframes: 0,
            total_ticks: 0,
            progress: Arc::new(Progress::default()),
        };
        let now = Instant::now();
        let garbage: [&[u8]; 8] = [
            b"",
            b"not annex b",
            &[0, 0, 1],
            &[0, 0, 1, 0x80], // forbidden bit
            &[0, 0, 1, 0x67], // an SPS with nothing in it
            &[
                0, 0, 1, 0x67, 0xff, 0xff, 0, 0, 1, 0x68, 0xff, 0, 0, 1, 0x65, 1,
            ],
            &[0, 0, 1, 0x65, 0x88, 0x84], // a keyframe without parameter sets
            &[0, 0, 0, 1, 0x41, 0x9a],
        ];
        for (i, g) in garbage.iter().enumerate() {
            for key in [true, false] {
                w.unit(&stream, &unit(g, key, i as u64 + 1, i as u64 * 1000), now)
                    .unwrap();
            }
        }
        let stats = w.finalize(10_000).unwrap();
        assert_eq!(stats.frames, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        let _ = std::fs::remove_file(&path);
    }
}
