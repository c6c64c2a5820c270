//! Stacked line/point panels over a shared x axis: training curves (loss and top-1 against
//! epochs), the demo timeline (target score, active branches and latency against time, with
//! the cue events as vertical markers), latency against active branches.

use super::FONT_FAMILY;
use crate::{Error, Result};
use image::RgbImage;
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
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Y axis description.
    pub y_label: String,
    /// Series drawn in this panel.
    pub series: Vec<Series>,
    /// Fixed y range; `None` = fit the data (with a margin).
    pub y_range: Option<(f64, f64)>,
}

/// The whole figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Title line.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Panels, top to bottom.
    pub panels: Vec<Panel>,
    /// Vertical markers across all panels: (x, label).
    pub markers: Vec<(f64, String)>,
    /// Draw text (title, axes, legend); needs a registered font.
    pub text: bool,
    /// Width in pixels.
    pub width: u32,
    /// Height of one panel in pixels.
    pub panel_height: u32,
}

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
        .chain(fig.markers.iter().map(|m| m.0).filter(|x| x.is_finite()));
    let (x0, x1) = span(xs).ok_or_else(|| Error::BadInput("figure without data".into()))?;
    let x_range = if x1 - x0 < 1e-12 {
        (x0 - 0.5, x1 + 0.5)
    } else {
        (x0, x1)
    };
    let title_px = if fig.text { 40 } else { 4 };
    let (w, h) = (
        fig.width.max(200),
        title_px + fig.panel_height.max(80) * fig.panels.len() as u32,
    );
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let body = if fig.text {
            let (top, body) = root.split_vertically(title_px);
            top.titled(&fig.title, (FONT_FAMILY, 22))
                .map_err(plot_err)?;
            body
        } else {
            root.margin(title_px, 0, 0, 0)
        };
        let areas = body.split_evenly((fig.panels.len(), 1));
        for (i, (panel, area)) in fig.panels.iter().zip(areas.iter()).enumerate() {
            let last = i + 1 == fig.panels.len();
            let ys = panel
                .series
                .iter()
                .flat_map(|s| finite(&s.points).map(|(_, y)| y));
            let (y0, y1) = panel
                .y_range
                .or_else(|| span(ys).map(padded))
                .unwrap_or((0.0, 1.0));
            let mut builder = ChartBuilder::on(area);
            builder.margin(8);
            if fig.text {
                builder
                    .x_label_area_size(if last { 36 } else { 18 })
                    .y_label_area_size(64);
            }
            let mut chart = builder
                .build_cartesian_2d(x_range.0..x_range.1, y0..y1)
                .map_err(plot_err)?;
            let mut mesh = chart.configure_mesh();
            mesh.light_line_style(RGBColor(235, 235, 235));
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
            for (mx, label) in &fig.markers {
                let c = RGBColor(200, 60, 30);
                chart
                    .draw_series(LineSeries::new(
                        vec![(*mx, y0), (*mx, y1)],
                        c.stroke_width(2),
                    ))
                    .map_err(plot_err)?;
                if fig.text && i == 0 {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            label.clone(),
                            (*mx, y1),
                            (FONT_FAMILY, 13).into_font().color(&c),
                        )))
                        .map_err(plot_err)?;
                }
            }
            for s in &panel.series {
                let colour = RGBColor(s.rgb.0, s.rgb.1, s.rgb.2);
                let pts: Vec<(f64, f64)> = finite(&s.points).collect();
                let drawn = match s.mark {
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
                if fig.text {
                    drawn.label(s.name.clone()).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 4), (x + 14, y + 4)], colour.filled())
                    });
                }
            }
            if fig.text && panel.series.len() > 1 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(180, 180, 180))
                    .label_font((FONT_FAMILY, 12))
                    .draw()
                    .map_err(plot_err)?;
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
            x_label: "t".into(),
            panels: vec![
                Panel {
                    y_label: "a".into(),
                    series: vec![Series {
                        name: "a".into(),
                        points: points.clone(),
                        rgb: (200, 0, 0),
                        mark: Mark::Line,
                    }],
                    y_range: None,
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
                },
            ],
            markers: vec![(1.5, "cue".into())],
            text: false,
            width: 400,
            panel_height: 120,
        }
    }

    #[test]
    fn draws_the_series_colours_and_the_marker() {
        let img = figure_image(&fig(vec![(0.0, 0.1), (1.0, 0.9), (3.0, 0.5)])).unwrap();
        assert_eq!(img.dimensions(), (400, 4 + 240));
        let has = |r: u8, g: u8, b: u8| img.pixels().any(|p| p.0 == [r, g, b]);
        assert!(has(200, 0, 0), "line colour drawn");
        assert!(has(0, 0, 200), "dot colour drawn");
        assert!(has(200, 60, 30), "marker drawn");
    }

    #[test]
    fn empty_or_non_finite_data_is_an_error_not_a_panic() {
        assert!(
            figure_image(&fig(vec![])).is_ok(),
            "the marker alone gives an x range"
        );
        let mut f = fig(vec![(f64::NAN, 1.0)]);
        f.markers.clear();
        assert!(figure_image(&f).is_err());
        f.panels.clear();
        assert!(figure_image(&f).is_err());
    }
}
