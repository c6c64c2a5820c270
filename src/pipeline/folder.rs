//! A frame source replaying an image folder (jpg/png, sorted by name) at a set fps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::io::FrameSource;
use super::types::Frame;
use crate::{Error, Result};

/// Highest replay rate accepted, in frames per second (a period of 1 ms).
pub const MAX_FPS: f64 = 1000.0;

/// Lowest non-zero replay rate accepted, in frames per second (one frame per 1000 s).
pub const MIN_FPS: f64 = 0.001;

/// The frame period of a rate: `None` for 0 (unpaced), else 1/fps. Errors for rates that are
/// not finite, negative, or outside [`MIN_FPS`]..=[`MAX_FPS`] (1e-300 would overflow a
/// `Duration`, 1e300 would round to a zero period).
pub fn frame_period(fps: f64) -> Result<Option<Duration>> {
    if fps == 0.0 {
        return Ok(None);
    }
    if !(fps.is_finite() && (MIN_FPS..=MAX_FPS).contains(&fps)) {
        return Err(Error::Config(format!(
            "frame rate {fps}: expected 0 (unpaced) or {MIN_FPS}..={MAX_FPS} frames per second"
        )));
    }
    Ok(Some(Duration::from_secs_f64(1.0 / fps)))
}

/// Extensions read as images (compared without case).
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Frames from the image files of a folder, in name order, paced at `fps` (0 = as fast as the
/// runtime takes them). Unreadable files are reported as errors (counted by the runtime as bad
/// frames) and skipped.
#[derive(Debug)]
pub struct ImageFolderSource {
    files: Vec<PathBuf>,
    next: usize,
    period: Option<Duration>,
    ticker: Option<tokio::time::Interval>,
    frame_id: String,
    looped: bool,
}

impl ImageFolderSource {
    /// List the images in `dir`. Errors if the folder cannot be read or holds no image.
    pub fn open(dir: &Path, fps: f64, frame_id: impl Into<String>) -> Result<Self> {
        frame_period(fps)?;
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::BadInput(format!(
                "{}: no image files (expected .jpg, .jpeg or .png)",
                dir.display()
            )));
        }
        Self::from_files(files, fps, frame_id)
    }

    /// Replay the given image files in the given order (e.g. a scripted scenario).
    pub fn from_files(files: Vec<PathBuf>, fps: f64, frame_id: impl Into<String>) -> Result<Self> {
        let period = frame_period(fps)?;
        if files.is_empty() {
            return Err(Error::BadInput("no image files to replay".into()));
        }
        Ok(Self {
            files,
            next: 0,
            period,
            ticker: None,
            frame_id: frame_id.into(),
            looped: false,
        })
    }

    /// Start again from the first file after the last (an endless replay).
    pub fn looped(mut self, yes: bool) -> Self {
        self.looped = yes;
        self
    }

    /// The files that will be read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// Decode an image file to RGB8 (width, height, pixels), within the limits of
/// [`crate::vision::decode`] (truncated JPEGs and oversized images are errors).
pub fn decode_rgb8(path: &Path) -> Result<(u32, u32, Vec<u8>)> {
    let img = crate::vision::decode::load_image(path)?;
    let (w, h) = img.dimensions();
    Ok((w, h, img.into_raw()))
}

impl FrameSource for ImageFolderSource {
    async fn next_frame(&mut self) -> Option<Result<Frame>> {
        if self.next >= self.files.len() && !self.looped {
            return None;
        }
        if let Some(period) = self.period {
            let ticker = self.ticker.get_or_insert_with(|| {
                let mut t = tokio::time::interval(period);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            ticker.tick().await;
        }
        let seq = self.next as u64;
        let path = self.files[self.next % self.files.len()].clone();
        self.next += 1;
        let decoded = tokio::task::spawn_blocking(move || decode_rgb8(&path))
            .await
            .map_err(|e| Error::Runtime(format!("image decoding task: {e}")));
        let stamp_ns = match self.period {
            Some(p) => {
                i64::try_from(p.as_nanos().saturating_mul(u128::from(seq))).unwrap_or(i64::MAX)
            }
            None => seq as i64,
        };
        Some(decoded.and_then(|d| d).map(|(width, height, rgb)| Frame {
            id: seq,
            stamp_ns,
            frame_id: self.frame_id.clone(),
            width,
            height,
            rgb,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn folder_replays_images_in_order_and_reports_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        image::RgbImage::from_pixel(4, 3, image::Rgb([10, 20, 30]))
            .save(dir.path().join("a.png"))
            .unwrap();
        std::fs::write(dir.path().join("b.jpg"), b"not a jpeg").unwrap();
        image::RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3]))
            .save(dir.path().join("c.png"))
            .unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
        let mut src = ImageFolderSource::open(dir.path(), 0.0, "cam").unwrap();
        assert_eq!(src.files().len(), 3);
        let a = src.next_frame().await.unwrap().unwrap();
        assert_eq!(
            (a.id, a.width, a.height, &a.rgb[..3]),
            (0, 4, 3, &[10u8, 20, 30][..])
        );
        assert!(a.validate().is_ok());
        let b = src.next_frame().await.unwrap().unwrap_err().to_string();
        assert!(b.contains("b.jpg"), "{b}");
        let c = src.next_frame().await.unwrap().unwrap();
        assert_eq!((c.id, c.width), (2, 2));
        assert!(src.next_frame().await.is_none());
    }

    #[test]
    fn empty_folder_and_bad_fps_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ImageFolderSource::open(dir.path(), 10.0, "cam").is_err());
        assert!(ImageFolderSource::open(dir.path(), f64::NAN, "cam").is_err());
    }

    #[test]
    fn frame_rates_outside_the_documented_range_are_errors_not_panics() {
        let files = vec![PathBuf::from("a.png")];
        // 1e-300 overflowed Duration::from_secs_f64; 1e300 made a zero tokio interval.
        for fps in [
            1e-300,
            1e300,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            MAX_FPS * 1.01,
            MIN_FPS / 2.0,
        ] {
            let e = ImageFolderSource::from_files(files.clone(), fps, "cam").unwrap_err();
            assert!(e.to_string().contains("frame rate"), "{fps}: {e}");
        }
        for fps in [0.0, MIN_FPS, 10.0, MAX_FPS] {
            assert!(ImageFolderSource::from_files(files.clone(), fps, "cam").is_ok());
        }
        assert_eq!(
            frame_period(MAX_FPS).unwrap(),
            Some(Duration::from_millis(1))
        );
    }
}
