//! Plots drawn into RGB images (plotters' bitmap backend); the caller writes the PNG.
//!
//! Text needs a TrueType font registered once per process with [`register_font`] (pure Rust,
//! no system font library). Without one, plots are drawn without text.

pub mod confusion;
pub mod lines;

pub use confusion::{confusion_image, ConfusionPlotConfig};
pub use lines::{figure_image, Figure, Mark, Panel, Series, Span, MARKER_RGB, SPAN_RGB};

use crate::{Error, Result};

/// The font family name plots draw their text with.
pub const FONT_FAMILY: &str = "sans-serif";

/// Usual locations of a free sans-serif TrueType font (Debian's `fonts-dejavu-core` first).
pub const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Register `bytes` (a TrueType or OpenType font) as the plots' font. The bytes must live for the
/// whole process (plotters keeps a reference), hence `'static`.
pub fn register_font(bytes: &'static [u8]) -> Result<()> {
    plotters::style::register_font(FONT_FAMILY, plotters::style::FontStyle::Normal, bytes)
        .map_err(|_| Error::BadInput("font file is not a TrueType/OpenType font".into()))
}
