//! `hlfp bench`'s plot: latency against active branches with the fitted line.

use super::Row;
use anyhow::Context;

/// Least-squares line y = slope * x + intercept, with R^2.
pub(super) fn fit_line(points: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let intercept = my - slope * mx;
    let ss_tot: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    let ss_res: f64 = points
        .iter()
        .map(|p| (p.1 - slope * p.0 - intercept).powi(2))
        .sum();
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        1.0
    };
    (slope, intercept, r2)
}

/// Latency against active branches (10-class HLFP-small rows of `path`) with the fitted line,
/// and ResNet50 as a horizontal reference.
pub(super) fn write_plot(
    png: &std::path::Path,
    title: &str,
    rows: &[Row],
    path: &str,
    (slope, intercept): (f64, f64),
) -> anyhow::Result<()> {
    use hlfp::plot::{figure_image, Figure, Mark, Panel, Series};
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.path == path && r.classes == 10 && r.variant == "hlfp-small")
        .map(|r| (r.active as f64, r.headline_ms()))
        .collect();
    let r50 = rows
        .iter()
        .find(|r| r.path == path && r.name == "resnet50")
        .map_or(f64::NAN, Row::headline_ms);
    let graphs = rows.iter().any(|r| r.graph_median_ms.is_some());
    let how = if graphs { ", CUDA graph" } else { "" };
    let mut series = vec![
        Series {
            name: format!("HLFP-small, measured ({path}{how})"),
            points: pts,
            rgb: (31, 119, 180),
            mark: Mark::Dots,
        },
        Series {
            name: format!("fit: {slope:.2} ms/branch + {intercept:.2} ms"),
            points: vec![(0.0, intercept), (10.0, intercept + 10.0 * slope)],
            rgb: (31, 119, 180),
            mark: Mark::Line,
        },
        Series {
            name: format!("ResNet50{how}"),
            points: vec![(0.0, r50), (10.0, r50)],
            rgb: (214, 39, 40),
            mark: Mark::Line,
        },
    ];
    if graphs {
        series.push(Series {
            name: "HLFP-small, eager (one launch per kernel)".into(),
            points: rows
                .iter()
                .filter(|r| r.path == path && r.classes == 10 && r.variant == "hlfp-small")
                .map(|r| (r.active as f64, r.median_ms))
                .collect(),
            rgb: (255, 127, 14),
            mark: Mark::Dots,
        });
    }
    let torch: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.path == path && r.classes == 10 && r.variant == "hlfp-small")
        .filter_map(|r| r.pytorch_ms.map(|t| (r.active as f64, t)))
        .collect();
    if !torch.is_empty() {
        series.push(Series {
            name: "PyTorch eager (same machine)".into(),
            points: torch,
            rgb: (120, 120, 120),
            mark: Mark::Dots,
        });
    }
    let fig = Figure {
        title: title.into(),
        x_label: "active branches (of 10)".into(),
        panels: vec![Panel {
            y_label: "median latency (ms)".into(),
            series,
            y_range: None,
        }],
        markers: vec![],
        text: super::super::common::load_font(None),
        width: 760,
        panel_height: 440,
    };
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    figure_image(&fig)?
        .save(png)
        .with_context(|| format!("writing {}", png.display()))?;
    eprintln!("wrote {}", png.display());
    Ok(())
}
