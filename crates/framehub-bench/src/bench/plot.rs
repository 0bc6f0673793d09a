//! SVG charts of a run (`framehub bench --plots DIR`): delivered frames/s
//! and server CPU against viewers (the fan-out sweep) and streams, frames/s
//! against resolution, and publish→receive latency CDFs per group of
//! scenarios.
//!
//! Drawn with `plotters`' SVG backend and no font feature: text goes into
//! the SVG as `<text>` (sans-serif), sized by plotters' rough estimate and
//! drawn by whatever shows the file, so nothing needs fontconfig or
//! FreeType. The charts are made from the JSON lines ([`Row`] reads the
//! fields it needs), so `--from FILE` redraws them from an earlier run.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use serde::Deserialize;

use super::FanoutFit;

/// The fields of one JSON line that the charts use.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    scenario: String,
    picture: String,
    transport: String,
    width: u32,
    height: u32,
    #[serde(default = "one")]
    streams: usize,
    viewers: usize,
    fps_min: f64,
    fps_median: f64,
    hub_cpu_pct: f64,
    server_cpu_pct: f64,
    #[serde(default)]
    latency_cdf: Vec<[f64; 2]>,
    #[serde(default)]
    fanout_fit: Option<FanoutFit>,
}

fn one() -> usize {
    1
}

impl Row {
    /// The group of a scenario: the part of its name before `-` (`fanout`,
    /// `res`, …), or `core` for the letters a–k.
    fn group(&self) -> &str {
        match self.scenario.split_once('-') {
            Some((g, _)) => g,
            None => "core",
        }
    }

    /// `picture, transport`: what tells apart the runs of one scenario.
    fn variant(&self) -> String {
        format!("{}, {}", self.picture, self.transport)
    }
}

/// A line (with its points marked) on a chart.
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    /// Draw thin and without point marks (a fit or a reference line).
    guide: bool,
}

/// Colours of successive series (Tableau 10).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];
const GREY: RGBColor = RGBColor(150, 150, 150);
const SIZE: (u32, u32) = (720, 440);

/// Draws `series` on one chart and writes it to `path`.
fn chart<X>(
    path: &Path,
    title: &str,
    (x_range, x_desc): (X, &str),
    (y_range, y_desc): (Range<f64>, &str),
    series: &[Series],
    legend: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| anyhow!("{e}"))?;
    c.configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(12)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .bold_line_style(RGBColor(225, 225, 225))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for s in series {
        let colour = s.colour;
        let style = if s.guide {
            colour.stroke_width(1)
        } else {
            colour.stroke_width(2)
        };
        c.draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(|e| anyhow!("{e}"))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
        if !s.guide && s.points.len() < 40 {
            c.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(legend)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("writing {}", path.display()))
}

/// A tick label: no trailing zeros (`0.5`, `2`, `500`).
fn tick(v: &f64) -> String {
    let s = if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The power of ten at or below `v` (> 0): a log axis that starts on a
/// decade gets tick labels from its start (plotters labels whole decades).
fn decade_below(v: f64) -> f64 {
    10f64.powf(v.max(1e-6).log10().floor())
}

/// Largest `y` of the series, for an axis that starts at 0 (at least `floor`).
fn top(series: &[Series], floor: f64) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(floor, f64::max)
        * 1.1
}

/// The rows of one group, by variant (`picture, transport`), in run order.
fn by_variant<'a>(rows: &'a [Row], group: &str) -> BTreeMap<String, Vec<&'a Row>> {
    let mut out: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.group() == group) {
        out.entry(r.variant()).or_default().push(r);
    }
    out
}

/// A label with the variant appended when there is more than one.
fn label(what: &str, variant: &str, variants: usize) -> String {
    if variants > 1 {
        format!("{what} ({variant})")
    } else {
        what.to_string()
    }
}

/// Draws every chart the rows allow into `dir` and returns the files written.
pub fn draw_all(rows: &[Row], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut colours = PALETTE.iter().copied().cycle();

    // Fan-out: frames/s and CPU against viewers.
    let fanout = by_variant(rows, "fanout");
    if !fanout.is_empty() {
        let n = fanout.len();
        let mut fps = Vec::new();
        let mut cpu = Vec::new();
        let mut max_viewers: f64 = 1.0;
        for (variant, rs) in &fanout {
            let pts = |f: fn(&Row) -> f64| -> Vec<(f64, f64)> {
                rs.iter().map(|r| (r.viewers as f64, f(r))).collect()
            };
            max_viewers = rs
                .iter()
                .map(|r| r.viewers as f64)
                .fold(max_viewers, f64::max);
            let (c1, c2) = (
                colours.next().unwrap_or(GREY),
                colours.next().unwrap_or(GREY),
            );
            fps.push(Series {
                label: label("median viewer", variant, n),
                points: pts(|r| r.fps_median),
                colour: c1,
                guide: false,
            });
            fps.push(Series {
                label: label("slowest viewer", variant, n),
                points: pts(|r| r.fps_min),
                colour: c2,
                guide: false,
            });
            cpu.push(Series {
                label: label("hub (encode + sessions + sockets)", variant, n),
                points: pts(|r| r.hub_cpu_pct),
                colour: c1,
                guide: false,
            });
            cpu.push(Series {
                label: label("with the bench's publisher", variant, n),
                points: pts(|r| r.server_cpu_pct),
                colour: c2,
                guide: false,
            });
            if let Some(fit) = rs.iter().rev().find_map(|r| r.fanout_fit.as_ref()) {
                // The fit is per viewer-frame; the chart's x is viewers at the measured rate.
                let rate = rs.iter().map(|r| r.fps_median).fold(0.0, f64::max);
                let line = |v: f64| fit.base_cpu_pct + fit.us_per_viewer_frame * v * rate / 1e4;
                cpu.push(Series {
                    label: label(
                        &format!(
                            "fit: {:.1} % + {:.1} µs per viewer-frame",
                            fit.base_cpu_pct, fit.us_per_viewer_frame
                        ),
                        variant,
                        n,
                    ),
                    points: vec![(0.0, line(0.0)), (max_viewers, line(max_viewers))],
                    colour: GREY,
                    guide: true,
                });
            }
        }
        let target = |y: f64, text: &str| Series {
            label: text.into(),
            points: vec![(1.0, y), (max_viewers * 1.2, y)],
            colour: GREY,
            guide: true,
        };
        fps.push(target(25.0, "target at 500 viewers: 25 frames/s"));
        let path = dir.join("fanout-fps.svg");
        chart(
            &path,
            "Fan-out: delivered frames/s per viewer (one 30 fps stream)",
            ((1.0..max_viewers * 1.2).log_scale(), "viewers"),
            (0.0..top(&fps, 30.0), "frames/s"),
            &fps,
            SeriesLabelPosition::LowerRight,
        )?;
        written.push(path);
        let path = dir.join("fanout-cpu.svg");
        chart(
            &path,
            "Fan-out: server CPU against viewers",
            (0.0..max_viewers * 1.05, "viewers"),
            (0.0..top(&cpu, 10.0), "CPU, % of one core"),
            &cpu,
            SeriesLabelPosition::UpperLeft,
        )?;
        written.push(path);
    }

    // Streams per hub: frames/s and CPU against streams.
    let streams = by_variant(rows, "streams");
    if !streams.is_empty() {
        let n = streams.len();
        let (mut fps, mut cpu) = (Vec::new(), Vec::new());
        let mut max_streams: f64 = 1.0;
        for (variant, rs) in &streams {
            let pts = |f: fn(&Row) -> f64| -> Vec<(f64, f64)> {
                rs.iter().map(|r| (r.streams as f64, f(r))).collect()
            };
            max_streams = rs
                .iter()
                .map(|r| r.streams as f64)
                .fold(max_streams, f64::max);
            let (c1, c2) = (
                colours.next().unwrap_or(GREY),
                colours.next().unwrap_or(GREY),
            );
            fps.push(Series {
                label: label("median viewer", variant, n),
                points: pts(|r| r.fps_median),
                colour: c1,
                guide: false,
            });
            fps.push(Series {
                label: label("slowest viewer", variant, n),
                points: pts(|r| r.fps_min),
                colour: c2,
                guide: false,
            });
            cpu.push(Series {
                label: label("hub", variant, n),
                points: pts(|r| r.hub_cpu_pct),
                colour: c1,
                guide: false,
            });
            cpu.push(Series {
                label: label("with the bench's publishers", variant, n),
                points: pts(|r| r.server_cpu_pct),
                colour: c2,
                guide: false,
            });
        }
        fps.push(Series {
            label: "target: 29 frames/s".into(),
            points: vec![(0.0, 29.0), (max_streams * 1.05, 29.0)],
            colour: GREY,
            guide: true,
        });
        let path = dir.join("streams-fps.svg");
        chart(
            &path,
            "Streams per hub: delivered frames/s per viewer (30 fps streams, 2 viewers each)",
            (0.0..max_streams * 1.05, "streams"),
            (0.0..top(&fps, 30.0), "frames/s"),
            &fps,
            SeriesLabelPosition::LowerRight,
        )?;
        written.push(path);
        let path = dir.join("streams-cpu.svg");
        chart(
            &path,
            "Streams per hub: server CPU against streams",
            (0.0..max_streams * 1.05, "streams"),
            (0.0..top(&cpu, 10.0), "CPU, % of one core"),
            &cpu,
            SeriesLabelPosition::UpperLeft,
        )?;
        written.push(path);
    }

    // Resolution: frames/s against megapixels.
    let res = by_variant(rows, "res");
    if !res.is_empty() {
        let n = res.len();
        let mut fps = Vec::new();
        let (mut lo, mut hi): (f64, f64) = (f64::MAX, 0.0);
        for (variant, rs) in &res {
            let points: Vec<(f64, f64)> = rs
                .iter()
                .map(|r| (f64::from(r.width) * f64::from(r.height) / 1e6, r.fps_median))
                .collect();
            for p in &points {
                lo = lo.min(p.0);
                hi = hi.max(p.0);
            }
            fps.push(Series {
                label: label("1 viewer, publisher as fast as possible", variant, n),
                points,
                colour: colours.next().unwrap_or(GREY),
                guide: false,
            });
        }
        let path = dir.join("resolution-fps.svg");
        chart(
            &path,
            "Resolution: delivered frames/s against picture size",
            (
                (decade_below(lo)..hi * 1.25).log_scale(),
                "megapixels per frame",
            ),
            (0.0..top(&fps, 30.0), "frames/s"),
            &fps,
            SeriesLabelPosition::UpperRight,
        )?;
        written.push(path);
    }

    // Latency CDFs, one chart per group.
    let mut groups: Vec<&str> = rows.iter().map(Row::group).collect();
    groups.dedup();
    groups.sort_unstable();
    groups.dedup();
    for group in groups {
        let mut cdfs = Vec::new();
        let (mut lo, mut hi): (f64, f64) = (f64::MAX, 0.0);
        let variants = by_variant(rows, group);
        let n = variants.len();
        let mut colours = PALETTE.iter().copied().cycle();
        for (variant, rs) in &variants {
            for r in rs.iter().filter(|r| !r.latency_cdf.is_empty()) {
                // Log axis: keep the points above 1 µs.
                let points: Vec<(f64, f64)> = r
                    .latency_cdf
                    .iter()
                    .map(|p| (p[0].max(0.001), p[1]))
                    .collect();
                for p in &points {
                    lo = lo.min(p.0);
                    hi = hi.max(p.0);
                }
                let what = if r.streams > 1 {
                    format!(
                        "{} ({} streams × {})",
                        r.scenario,
                        r.streams,
                        r.viewers / r.streams
                    )
                } else {
                    format!(
                        "{} ({} viewers, {}×{})",
                        r.scenario, r.viewers, r.width, r.height
                    )
                };
                cdfs.push(Series {
                    label: label(&what, variant, n),
                    points,
                    colour: colours.next().unwrap_or(GREY),
                    guide: false,
                });
            }
        }
        if cdfs.is_empty() {
            continue;
        }
        let path = dir.join(format!("latency-{group}.svg"));
        chart(
            &path,
            &format!("Publish → receive latency, CDF ({group} scenarios)"),
            ((decade_below(lo)..hi * 1.25).log_scale(), "latency, ms"),
            (0.0..1.02, "fraction of frames"),
            &cdfs,
            // The curves start at the first sample, right of the decade the axis starts on.
            SeriesLabelPosition::UpperLeft,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// Reads the rows of a JSON-lines results file (lines that do not parse are skipped).
pub fn read_rows(path: &Path) -> anyhow::Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Row>(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_svg_charts_from_rows() {
        let row = |scenario: &str, viewers: usize, streams: usize, fps: f64| Row {
            scenario: scenario.into(),
            picture: "natural".into(),
            transport: "jpeg".into(),
            width: 1280,
            height: 720,
            streams,
            viewers,
            fps_min: fps - 1.0,
            fps_median: fps,
            hub_cpu_pct: 2.0 + viewers as f64 * 0.1,
            server_cpu_pct: 3.0 + viewers as f64 * 0.1,
            latency_cdf: vec![[1.0, 0.0], [2.0, 0.5], [9.0, 1.0]],
            fanout_fit: None,
        };
        let rows = vec![
            row("fanout-1", 1, 1, 30.0),
            row("fanout-10", 10, 1, 30.0),
            row("streams-8", 16, 8, 30.0),
            row("res-720", 1, 1, 400.0),
            row("a", 1, 1, 400.0),
        ];
        let dir = std::env::temp_dir().join(format!("framehub-plot-test-{}", std::process::id()));
        let files = draw_all(&rows, &dir).expect("charts");
        let names: Vec<String> = files
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        for want in [
            "fanout-fps.svg",
            "fanout-cpu.svg",
            "streams-fps.svg",
            "resolution-fps.svg",
            "latency-fanout.svg",
            "latency-core.svg",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        let svg = std::fs::read_to_string(dir.join("fanout-fps.svg")).expect("svg");
        assert!(svg.starts_with("<svg") && svg.contains("median viewer"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
