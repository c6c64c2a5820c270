//! Datasets: ImageFolder scanning and decoding, and the threaded batch loader.

pub mod image_folder;
pub mod loader;

pub use image_folder::{DatasetReport, ImageFolder, Sample, Verify};
pub use loader::{Batch, BatchLoader, LoaderConfig, Transform};
