//! The confusion matrix as an image: rows are true classes, columns predicted classes, each cell
//! shaded by its share of the row (so classes with few images read the same as large ones) and,
//! with text, labelled with its count.

use super::FONT_FAMILY;
use crate::{Error, Result};
use image::RgbImage;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// How the confusion matrix is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionPlotConfig {
    /// Draw the title, the class names and the counts (needs a registered font).
    pub text: bool,
    /// Title line (e.g. the model and the top-1).
    pub title: String,
}

fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::BadInput(format!("drawing the confusion matrix: {e}"))
}

/// Draw `counts[t][p]` (true class `t`, predicted `p`) with `class_names` as labels.
pub fn confusion_image(
    counts: &[Vec<u64>],
    class_names: &[String],
    cfg: &ConfusionPlotConfig,
) -> Result<RgbImage> {
    let k = counts.len();
    if k == 0 || counts.iter().any(|r| r.len() != k) || class_names.len() != k {
        return Err(Error::BadInput(format!(
            "confusion matrix must be k x k with k class names; got {k} rows and {} names",
            class_names.len()
        )));
    }
    let cell = (640 / k).clamp(16, 48) as i32;
    let (label_px, title_px) = if cfg.text { (150, 36) } else { (8, 8) };
    let side = k as i32 * cell;
    let (w, h) = (label_px + side + 16, title_px + label_px + side + 16);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (x0, y0) = (label_px, title_px + label_px);
        let count_size = (cell as f64 * 0.38).clamp(8.0, 16.0);
        for (t, row) in counts.iter().enumerate() {
            let total: u64 = row.iter().sum();
            for (p, &n) in row.iter().enumerate() {
                let frac = if total == 0 {
                    0.0
                } else {
                    n as f64 / total as f64
                };
                let shade = |full: f64| (255.0 - (255.0 - full) * frac).round() as u8;
                let colour = RGBColor(shade(8.0), shade(48.0), shade(107.0));
                let (cx, cy) = (x0 + p as i32 * cell, y0 + t as i32 * cell);
                root.draw(&Rectangle::new(
                    [(cx, cy), (cx + cell - 1, cy + cell - 1)],
                    colour.filled(),
                ))
                .map_err(plot_err)?;
                if cfg.text && n > 0 {
                    let ink = if frac > 0.5 { WHITE } else { BLACK };
                    let style = (FONT_FAMILY, count_size)
                        .into_font()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    root.draw(&Text::new(
                        n.to_string(),
                        (cx + cell / 2, cy + cell / 2),
                        style,
                    ))
                    .map_err(plot_err)?;
                }
            }
        }
        // The diagonal's outline, so correct predictions stand out at any shade.
        for i in 0..k as i32 {
            let (cx, cy) = (x0 + i * cell, y0 + i * cell);
            root.draw(&Rectangle::new(
                [(cx, cy), (cx + cell - 1, cy + cell - 1)],
                RGBColor(200, 60, 40).stroke_width(1),
            ))
            .map_err(plot_err)?;
        }
        if cfg.text {
            let label = (FONT_FAMILY, 13.0).into_font().color(&BLACK);
            root.draw(&Text::new(cfg.title.clone(), (8, 8), label.clone()))
                .map_err(plot_err)?;
            for (i, name) in class_names.iter().enumerate() {
                let mid = i as i32 * cell + cell / 2;
                root.draw(&Text::new(
                    name.clone(),
                    (x0 - 6, y0 + mid),
                    label.pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(plot_err)?;
                root.draw(&Text::new(
                    name.clone(),
                    (x0 + mid, y0 - 6),
                    label
                        .transform(FontTransform::Rotate270)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(plot_err)?;
            }
            root.draw(&Text::new(
                "rows: true class, columns: predicted".to_string(),
                (8, 22),
                (FONT_FAMILY, 11.0).into_font().color(&BLACK),
            ))
            .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    RgbImage::from_raw(w as u32, h as u32, buf)
        .ok_or_else(|| Error::BadInput("confusion image buffer has the wrong size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_shaded_by_row_share_without_a_font() {
        let counts = vec![vec![3, 1], vec![0, 0]];
        let names = vec!["a".to_string(), "b".to_string()];
        let cfg = ConfusionPlotConfig {
            text: false,
            title: String::new(),
        };
        let img = confusion_image(&counts, &names, &cfg).unwrap();
        let cell = 48u32;
        let at = |t: u32, p: u32| *img.get_pixel(8 + p * cell + cell / 2, 16 + t * cell + cell / 2);
        // 3/4 of row 0 is darker than 1/4; an empty row stays white.
        assert!(at(0, 0).0[0] < at(0, 1).0[0]);
        assert_eq!(at(1, 0).0, [255, 255, 255]);
        assert!(confusion_image(&counts, &names[..1], &cfg).is_err());
    }
}
