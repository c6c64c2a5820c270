//! Stacked line/point panels over a shared x axis: training curves (loss and top-1 against
//! epochs), the demo timeline (target score, active branches and latency against time, with
//! the cue events as vertical markers), latency against active branches.

use super::FONT_FAMILY;
use crate::{Error, Result};
use image::RgbImage;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Points joined by a line.
    Line,
    /// Separate dots.
    Dots,
    /// A step line (value holds until the next point).
    Steps,
}

/// One named series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// (x, y) points; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
    /// RGB colour.
    pub rgb: (u8, u8, u8),
    /// Line or dots.
    pub mark: Mark,
}

/// One panel: a y axis and its series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Panel {
    /// Y axis description.
    pub y_label: String,
    /// Series drawn in this panel.
    pub series: Vec<Series>,
    /// Fixed y range; `None` = fit the data (with a margin).
    pub y_range: Option<(f64, f64)>,
    /// The values are counts: ticks only at integers, and the lowest tick at or below the
    /// smallest value.
    pub integer_y: bool,
}

/// A shaded stretch of the x axis across every panel (e.g. while a cue holds).
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Start and end on the x axis.
    pub x: (f64, f64),
    /// Legend name.
    pub name: String,
}

/// The whole figure.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figure {
    /// Title line.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Panels, top to bottom.
    pub panels: Vec<Panel>,
    /// Vertical markers across all panels: (x, label). Labels go to the first panel's legend
    /// (one entry per distinct label, with its x values), never next to the line, so two
    /// close markers cannot print over each other.
    pub markers: Vec<(f64, String)>,
    /// Shaded x stretches across all panels, named in the first panel's legend.
    pub spans: Vec<Span>,
    /// A note printed under the figure (how to read it), wrapped to the width.
    pub note: Option<String>,
    /// Draw text (title, axes, legend); needs a registered font.
    pub text: bool,
    /// Width in pixels.
    pub width: u32,
    /// Height of one panel in pixels.
    pub panel_height: u32,
}

/// Colour of the vertical markers (distinct from the series palette's red).
pub const MARKER_RGB: (u8, u8, u8) = (128, 0, 160);
/// Colour of the shaded spans (drawn at 15 % opacity).
pub const SPAN_RGB: (u8, u8, u8) = (128, 0, 160);
/// Width of the legend column right of each panel, in pixels.
const LEGEND_PX: u32 = 250;
/// Characters per legend line before it wraps.
const LEGEND_CHARS: usize = 34;

fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::BadInput(format!("drawing the figure: {e}"))
}

fn finite(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn padded((lo, hi): (f64, f64)) -> (f64, f64) {
    if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        let m = (hi - lo) * 0.06;
        (lo - m, hi + m)
    }
}

/// A tick step of 1, 2 or 5 times a power of ten that puts at most `max_ticks` ticks on
/// `lo..hi`; at least 1 when `integer`.
fn tick_step(lo: f64, hi: f64, max_ticks: usize, integer: bool) -> f64 {
    let width = (hi - lo).max(1e-12);
    let mag = 10f64.powf((width / max_ticks.max(1) as f64).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| width / s <= max_ticks as f64)
        .unwrap_or(10.0 * mag);
    if integer {
        step.max(1.0)
    } else {
        step
    }
}

/// The ticks on `lo..=hi`: multiples of `step`, rounded so they print without float noise.
fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut k = (lo / step).ceil();
    while k * step <= hi + step * 1e-9 {
        let t = k * step;
        out.push(if step >= 1.0 {
            t.round()
        } else {
            // Round to the step's own decimals (0.2 -> 1, 0.25 -> 2) so 3 x 0.2 prints as 0.6.
            let d = (0..10)
                .find(|&d| {
                    let x = step * 10f64.powi(d);
                    (x - x.round()).abs() < 1e-9
                })
                .unwrap_or(9);
            let scale = 10f64.powi(d);
            (k * step * scale).round() / scale
        });
        k += 1.0;
    }
    out
}

/// An axis value as a label: no trailing zeros ("5", "0.25", "12.5").
pub fn tick_label(v: f64) -> String {
    let s = format!("{:.4}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Split `text` into lines of at most `chars` characters at spaces (a longer word stays whole).
pub fn wrap(text: &str, chars: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > chars {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

/// The y range and ticks of a panel.
fn y_axis(panel: &Panel, max_ticks: usize) -> ((f64, f64), Vec<f64>) {
    let ys = panel
        .series
        .iter()
        .flat_map(|s| finite(&s.points).map(|(_, y)| y));
    let data = span(ys);
    if let Some((lo, hi)) = panel.y_range {
        let step = tick_step(lo, hi, max_ticks, panel.integer_y);
        return ((lo, hi), ticks(lo, hi, step));
    }
    let (lo, hi) = data.unwrap_or((0.0, 1.0));
    if panel.integer_y {
        // A constant count sits in the middle, between the ticks one below and one above.
        let (lo, hi) = if hi - lo < 1.0 {
            (lo.floor() - 1.0, hi.ceil() + 1.0)
        } else {
            (lo.floor(), hi.ceil())
        };
        let step = tick_step(lo, hi, max_ticks, true);
        // Ticks from a multiple of the step at or below the smallest value to one at or
        // above the largest, so every value lies between two ticks.
        let (t0, t1) = ((lo / step).floor() * step, (hi / step).ceil() * step);
        let pad = step * 0.3;
        ((t0 - pad, t1 + pad), ticks(t0, t1, step))
    } else {
        let (lo, hi) = padded((lo, hi));
        let step = tick_step(lo, hi, max_ticks, false);
        ((lo, hi), ticks(lo, hi, step))
    }
}

/// An f64 axis whose grid lines and labels sit exactly on the given ticks (no light lines).
struct TickedAxis {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl TickedAxis {
    fn new((lo, hi): (f64, f64), ticks: Vec<f64>) -> Self {
        Self {
            inner: (lo..hi).into(),
            ticks,
        }
    }
}

impl Ranged for TickedAxis {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
}

/// How a legend entry's swatch is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Swatch {
    Line,
    Dot,
    VLine,
    Band,
}

/// The legend entries of panel `i`: its series, and for the first panel the markers (one entry
/// per label, with its x values) and the spans.
fn legend(fig: &Figure, i: usize) -> Vec<(Swatch, (u8, u8, u8), String)> {
    let panel = &fig.panels[i];
    let mut out: Vec<(Swatch, (u8, u8, u8), String)> = panel
        .series
        .iter()
        .map(|s| {
            let sw = match s.mark {
                Mark::Dots => Swatch::Dot,
                Mark::Line | Mark::Steps => Swatch::Line,
            };
            (sw, s.rgb, s.name.clone())
        })
        .collect();
    if i == 0 {
        let mut labels: Vec<(&str, Vec<f64>)> = Vec::new();
        for (x, label) in &fig.markers {
            match labels.iter_mut().find(|(l, _)| l == label) {
                Some((_, xs)) => xs.push(*x),
                None => labels.push((label, vec![*x])),
            }
        }
        for (label, xs) in labels {
            let at: Vec<String> = xs.iter().map(|x| format!("{x:.2}")).collect();
            let name = format!("{label} (at {} {})", at.join(", "), fig.x_unit());
            out.push((Swatch::VLine, MARKER_RGB, name));
        }
        for s in &fig.spans {
            out.push((Swatch::Band, SPAN_RGB, s.name.clone()));
        }
    }
    out
}

impl Figure {
    /// The unit in the x label's parentheses ("time (s)" -> "s"), or "" when it has none.
    fn x_unit(&self) -> &str {
        self.x_label
            .rsplit_once('(')
            .and_then(|(_, u)| u.strip_suffix(')'))
            .unwrap_or("")
    }
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(Swatch, (u8, u8, u8), String)],
) -> Result<()> {
    let font = (FONT_FAMILY, 12).into_font().color(&BLACK);
    let line_px = 15;
    let mut y = 14;
    for (sw, rgb, name) in entries {
        let c = RGBColor(rgb.0, rgb.1, rgb.2);
        let mid = y + 6;
        match sw {
            Swatch::Line => area.draw(&PathElement::new(
                vec![(4, mid), (22, mid)],
                c.stroke_width(2),
            )),
            Swatch::Dot => area.draw(&Circle::new((13, mid), 3, c.filled())),
            Swatch::VLine => area.draw(&PathElement::new(
                vec![(13, mid - 7), (13, mid + 7)],
                c.stroke_width(2),
            )),
            Swatch::Band => area.draw(&Rectangle::new(
                [(4, mid - 6), (22, mid + 6)],
                c.mix(0.15).filled(),
            )),
        }
        .map_err(plot_err)?;
        for line in wrap(name, LEGEND_CHARS) {
            area.draw_text(&line, &font, (28, y)).map_err(plot_err)?;
            y += line_px;
        }
        y += 5;
    }
    Ok(())
}

/// Draw `fig`. Errors when it has no panel or no finite point at all.
pub fn figure_image(fig: &Figure) -> Result<RgbImage> {
    if fig.panels.is_empty() {
        return Err(Error::BadInput("figure without panels".into()));
    }
    let xs = fig
        .panels
        .iter()
        .flat_map(|p| p.series.iter())
        .flat_map(|s| finite(&s.points).map(|(x, _)| x))
        .chain(fig.markers.iter().map(|m| m.0).filter(|x| x.is_finite()))
        .chain(
            fig.spans
                .iter()
                .flat_map(|s| [s.x.0, s.x.1])
                .filter(|x| x.is_finite()),
        );
    let (x0, x1) = span(xs).ok_or_else(|| Error::BadInput("figure without data".into()))?;
    let x_range = if x1 - x0 < 1e-12 {
        (x0 - 0.5, x1 + 0.5)
    } else {
        (x0, x1)
    };
    let width = fig.width.max(200);
    let plot_w = if fig.text {
        width.saturating_sub(LEGEND_PX).max(100)
    } else {
        width
    };
    let x_ticks = ticks(
        x_range.0,
        x_range.1,
        tick_step(x_range.0, x_range.1, (plot_w / 70).max(2) as usize, false),
    );
    let title_px = if fig.text { 40 } else { 4 };
    let note_lines = match (&fig.note, fig.text) {
        (Some(n), true) => wrap(n, (width / 7) as usize),
        _ => Vec::new(),
    };
    let note_px = if note_lines.is_empty() {
        0
    } else {
        10 + 16 * note_lines.len() as u32
    };
    let panel_h = fig.panel_height.max(80);
    let (w, h) = (
        width,
        title_px + panel_h * fig.panels.len() as u32 + note_px,
    );
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (body, note_area) = root.split_vertically(h - note_px);
        let body = if fig.text {
            let (top, body) = body.split_vertically(title_px);
            top.titled(&fig.title, (FONT_FAMILY, 22))
                .map_err(plot_err)?;
            body
        } else {
            body.margin(title_px, 0, 0, 0)
        };
        let font = (FONT_FAMILY, 13).into_font().color(&BLACK);
        for (j, line) in note_lines.iter().enumerate() {
            note_area
                .draw_text(line, &font, (12, 4 + 16 * j as i32))
                .map_err(plot_err)?;
        }
        let areas = body.split_evenly((fig.panels.len(), 1));
        for (i, (panel, area)) in fig.panels.iter().zip(areas.iter()).enumerate() {
            let last = i + 1 == fig.panels.len();
            let (plot_area, legend_area) = area.split_horizontally(plot_w);
            let ((y0, y1), y_ticks) = y_axis(panel, (panel_h / 32).max(2) as usize);
            let mut builder = ChartBuilder::on(&plot_area);
            builder.margin(8);
            if fig.text {
                builder
                    .x_label_area_size(if last { 36 } else { 18 })
                    .y_label_area_size(64);
            }
            let mut chart = builder
                .build_cartesian_2d(
                    TickedAxis::new(x_range, x_ticks.clone()),
                    TickedAxis::new((y0, y1), y_ticks),
                )
                .map_err(plot_err)?;
            let mut mesh = chart.configure_mesh();
            mesh.bold_line_style(RGBColor(225, 225, 225))
                .x_label_formatter(&|v| tick_label(*v))
                .y_label_formatter(&|v| tick_label(*v));
            if fig.text {
                mesh.y_desc(panel.y_label.as_str())
                    .label_style((FONT_FAMILY, 13));
                if last {
                    mesh.x_desc(fig.x_label.as_str());
                }
            } else {
                mesh.disable_x_axis().disable_y_axis();
            }
            mesh.draw().map_err(plot_err)?;
            let band = RGBColor(SPAN_RGB.0, SPAN_RGB.1, SPAN_RGB.2).mix(0.15);
            for s in &fig.spans {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(s.x.0, y0), (s.x.1, y1)],
                        band.filled(),
                    )))
                    .map_err(plot_err)?;
            }
            let mc = RGBColor(MARKER_RGB.0, MARKER_RGB.1, MARKER_RGB.2);
            for (mx, _) in &fig.markers {
                chart
                    .draw_series(LineSeries::new(
                        vec![(*mx, y0), (*mx, y1)],
                        mc.stroke_width(2),
                    ))
                    .map_err(plot_err)?;
            }
            for s in &panel.series {
                let colour = RGBColor(s.rgb.0, s.rgb.1, s.rgb.2);
                let pts: Vec<(f64, f64)> = finite(&s.points).collect();
                match s.mark {
                    Mark::Line => chart
                        .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                        .map_err(plot_err)?,
                    Mark::Steps => {
                        let mut st = Vec::with_capacity(pts.len() * 2);
                        for (j, &(x, y)) in pts.iter().enumerate() {
                            if j > 0 {
                                st.push((x, pts[j - 1].1));
                            }
                            st.push((x, y));
                        }
                        chart
                            .draw_series(LineSeries::new(st, colour.stroke_width(2)))
                            .map_err(plot_err)?
                    }
                    Mark::Dots => chart
                        .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                        .map_err(plot_err)?,
                };
            }
            if fig.text {
                draw_legend(&legend_area, &legend(fig, i))?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| Error::BadInput("figure buffer size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(points: Vec<(f64, f64)>) -> Figure {
        Figure {
            title: String::new(),
            x_label: "t (s)".into(),
            panels: vec![
                Panel {
                    y_label: "a".into(),
                    series: vec![Series {
                        name: "a".into(),
                        points: points.clone(),
                        rgb: (200, 0, 0),
                        mark: Mark::Line,
                    }],
                    ..Default::default()
                },
                Panel {
                    y_label: "b".into(),
                    series: vec![Series {
                        name: "b".into(),
                        points,
                        rgb: (0, 0, 200),
                        mark: Mark::Dots,
                    }],
                    y_range: Some((0.0, 1.0)),
                    integer_y: false,
                },
            ],
            markers: vec![(1.5, "cue".into())],
            spans: vec![Span {
                x: (2.0, 2.5),
                name: "window".into(),
            }],
            note: None,
            text: false,
            width: 400,
            panel_height: 120,
        }
    }

    #[test]
    fn draws_the_series_colours_the_marker_and_the_span() {
        let img = figure_image(&fig(vec![(0.0, 0.1), (1.0, 0.9), (3.0, 0.5)])).unwrap();
        assert_eq!(img.dimensions(), (400, 4 + 240));
        let has = |r: u8, g: u8, b: u8| img.pixels().any(|p| p.0 == [r, g, b]);
        assert!(has(200, 0, 0), "line colour drawn");
        assert!(has(0, 0, 200), "dot colour drawn");
        assert!(
            has(MARKER_RGB.0, MARKER_RGB.1, MARKER_RGB.2),
            "marker drawn"
        );
        // The span: 15 % of its colour over white.
        let tint = |c: u8| (255.0 * 0.85 + c as f64 * 0.15) as i32;
        assert!(
            img.pixels().any(|p| (0..3)
                .all(
                    |k| (p.0[k] as i32 - tint([SPAN_RGB.0, SPAN_RGB.1, SPAN_RGB.2][k])).abs() <= 2
                )),
            "span shaded"
        );
    }

    #[test]
    fn empty_or_non_finite_data_is_an_error_not_a_panic() {
        assert!(
            figure_image(&fig(vec![])).is_ok(),
            "the marker alone gives an x range"
        );
        let mut f = fig(vec![(f64::NAN, 1.0)]);
        f.markers.clear();
        f.spans.clear();
        assert!(figure_image(&f).is_err());
        f.panels.clear();
        assert!(figure_image(&f).is_err());
    }

    #[test]
    fn every_mark_is_in_the_legend_once_per_label() {
        let mut f = fig(vec![(0.0, 1.0)]);
        f.markers = vec![
            (10.5, "cue dog, english_springer".into()),
            (13.25, "cue dog, english_springer".into()),
            (20.0, "cue cat".into()),
        ];
        let first: Vec<String> = legend(&f, 0).into_iter().map(|e| e.2).collect();
        assert_eq!(
            first,
            [
                "a",
                "cue dog, english_springer (at 10.50, 13.25 s)",
                "cue cat (at 20.00 s)",
                "window"
            ]
        );
        let second: Vec<String> = legend(&f, 1).into_iter().map(|e| e.2).collect();
        assert_eq!(second, ["b"], "markers and spans are named once");
    }

    #[test]
    fn integer_axes_have_integer_ticks_below_and_above_the_data() {
        let panel = |ys: &[f64]| Panel {
            series: vec![Series {
                name: "n".into(),
                points: ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect(),
                rgb: (0, 0, 0),
                mark: Mark::Steps,
            }],
            integer_y: true,
            ..Default::default()
        };
        for (ys, max_ticks) in [
            (vec![14.0, 3.0, 14.0], 6),
            (vec![3.0, 3.0], 6),
            (vec![1.0, 2.0], 6),
            (vec![5.0, 1000.0], 6),
        ] {
            let ((lo, hi), t) = y_axis(&panel(&ys), max_ticks);
            assert!(!t.is_empty() && t.len() <= max_ticks + 1, "{ys:?}: {t:?}");
            assert!(t.iter().all(|v| v.fract() == 0.0), "{ys:?}: {t:?}");
            let (min, max) = (
                ys.iter().copied().fold(f64::MAX, f64::min),
                ys.iter().copied().fold(f64::MIN, f64::max),
            );
            assert!(t[0] <= min && *t.last().unwrap() >= max, "{ys:?}: {t:?}");
            assert!(
                lo < t[0] && hi > *t.last().unwrap(),
                "ticks inside the range"
            );
        }
        assert_eq!(
            y_axis(&panel(&[14.0, 3.0]), 6).1,
            [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]
        );
        assert_eq!(y_axis(&panel(&[14.0, 14.0]), 6).1, [13.0, 14.0, 15.0]);
    }

    #[test]
    fn tick_labels_and_wrapping() {
        assert_eq!(ticks(0.0, 1.0, 0.2), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        let labels: Vec<String> = [5.0, 0.25, 12.5, -0.0, 0.30000000000000004]
            .iter()
            .map(|&v| tick_label(v))
            .collect();
        assert_eq!(labels, ["5", "0.25", "12.5", "0", "0.3"]);
        assert_eq!(tick_step(0.0, 30.0, 10, false), 5.0);
        assert_eq!(tick_step(0.0, 3.0, 10, true), 1.0);
        assert_eq!(wrap("one two three four", 9), ["one two", "three", "four"]);
        assert_eq!(wrap("a\nb", 40), ["a", "b"]);
    }
}
