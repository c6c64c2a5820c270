//! ImageFolder datasets (`DIR/<class>/**/*.jpg|jpeg|png`, the Imagenette layout): class list,
//! scan, image decoding, and a [`DatasetReport`] of everything skipped and why.
//!
//! Nothing is skipped silently and nothing is mislabelled: a label is always the index of the
//! class folder's name in the class list; folders the list does not name are skipped and
//! reported, as are listed classes without a folder, files that are not images, and images
//! that fail to decode.

use crate::{Error, Result};
use image::RgbImage;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// One labelled image file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// The image file.
    pub path: PathBuf,
    /// Index into the dataset's class list.
    pub label: u32,
}

/// How much of each image the scan checks before a sample is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// Only the extension (corrupt files are found later, by the loader).
    None,
    /// Read the header (format and dimensions): cheap, catches most corrupt files.
    #[default]
    Header,
    /// Decode every image fully: slow, catches truncated data too.
    Decode,
}

/// What a scan found and what it skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DatasetReport {
    /// Accepted images.
    pub images: usize,
    /// Accepted images per class (in class-list order).
    pub per_class: Vec<usize>,
    /// Files skipped because their extension is not an image type we read.
    pub unsupported: Vec<PathBuf>,
    /// Image files skipped because they failed to decode, with the decoder's message.
    pub corrupt: Vec<(PathBuf, String)>,
    /// Subfolders of the root that the class list does not name (skipped).
    pub skipped_folders: Vec<String>,
    /// Classes in the list without a folder (they have no samples).
    pub missing_classes: Vec<String>,
    /// Files directly in the root, outside any class folder (skipped).
    pub stray_files: Vec<PathBuf>,
}

impl DatasetReport {
    /// Number of skipped files and folders plus missing classes: zero for a clean dataset.
    pub fn warning_count(&self) -> usize {
        self.unsupported.len()
            + self.corrupt.len()
            + self.skipped_folders.len()
            + self.missing_classes.len()
            + self.stray_files.len()
    }

    /// One line per warning kind with its count and the first few names, for logs.
    pub fn warnings(&self) -> Vec<String> {
        fn few<T: std::fmt::Debug>(v: &[T]) -> String {
            let shown: Vec<String> = v.iter().take(3).map(|x| format!("{x:?}")).collect();
            let more = if v.len() > 3 {
                format!(" and {} more", v.len() - 3)
            } else {
                String::new()
            };
            format!("{}{more}", shown.join(", "))
        }
        let mut out = Vec::new();
        if !self.corrupt.is_empty() {
            out.push(format!(
                "{} corrupt image(s) skipped: {}",
                self.corrupt.len(),
                few(&self.corrupt)
            ));
        }
        if !self.unsupported.is_empty() {
            out.push(format!(
                "{} unsupported file(s) skipped (not .jpg/.jpeg/.png): {}",
                self.unsupported.len(),
                few(&self.unsupported)
            ));
        }
        if !self.skipped_folders.is_empty() {
            out.push(format!(
                "{} folder(s) not in the class list skipped: {}",
                self.skipped_folders.len(),
                few(&self.skipped_folders)
            ));
        }
        if !self.missing_classes.is_empty() {
            out.push(format!(
                "{} listed class(es) have no folder: {}",
                self.missing_classes.len(),
                few(&self.missing_classes)
            ));
        }
        if !self.stray_files.is_empty() {
            out.push(format!(
                "{} file(s) outside class folders skipped: {}",
                self.stray_files.len(),
                few(&self.stray_files)
            ));
        }
        out
    }
}

/// Parse a class list: one class name per line; blank lines and `#` comments are ignored.
/// Duplicates and names with path separators are errors.
pub fn parse_class_list(text: &str) -> Result<Vec<String>> {
    let mut classes: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        if name.contains('/') || name.contains('\\') || name == "." || name == ".." {
            return Err(Error::Config(format!(
                "class list line {}: {name:?} is not a folder name",
                n + 1
            )));
        }
        if classes.iter().any(|c| c == name) {
            return Err(Error::Config(format!(
                "class list line {}: duplicate class {name:?}",
                n + 1
            )));
        }
        classes.push(name.to_string());
    }
    if classes.is_empty() {
        return Err(Error::Config("class list names no class".into()));
    }
    Ok(classes)
}

/// Read and parse a class list file.
pub fn read_class_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_class_list(&text)
}

/// Decode an encoded image (JPEG or PNG, recognised by content) into RGB8, within the limits
/// of [`crate::vision::decode`].
pub fn decode_rgb8(bytes: &[u8]) -> Result<RgbImage> {
    crate::vision::decode::decode_image(bytes)
}

/// Read and decode an image file into RGB8 ([`crate::vision::decode::load_image`]).
pub fn load_rgb8(path: &Path) -> Result<RgbImage> {
    crate::vision::decode::load_image(path)
}

fn check_header(path: &Path) -> std::result::Result<(), String> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not a JPEG or PNG image (unknown format)".into());
    }
    match reader.into_dimensions() {
        Ok((w, h)) if w > 0 && h > 0 => Ok(()),
        Ok((w, h)) => Err(format!("image is {w}x{h}")),
        Err(e) => Err(e.to_string()),
    }
}

fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Files under `dir`, recursively, in sorted order (hidden entries included, so they are reported).
fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.path()).map_err(io_err(dir)))
        .collect::<Result<_>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk_files(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// A scanned ImageFolder: class names, labelled samples in a deterministic (sorted) order, and
/// the report of what was skipped.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    /// The dataset root.
    pub root: PathBuf,
    /// Class names; a sample's label indexes this.
    pub classes: Vec<String>,
    /// Accepted samples, sorted by class then path.
    pub samples: Vec<Sample>,
    /// What was skipped.
    pub report: DatasetReport,
}

impl ImageFolder {
    /// Scan `root`. With `classes`, labels follow that list (folders it does not name are
    /// skipped and reported); without, the classes are the sorted subfolder names.
    pub fn open(root: &Path, classes: Option<&[String]>, verify: Verify) -> Result<Self> {
        if !root.is_dir() {
            return Err(Error::Config(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        let mut report = DatasetReport::default();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
            .map_err(io_err(root))?
            .map(|e| e.map(|e| e.path()).map_err(io_err(root)))
            .collect::<Result<_>>()?;
        entries.sort();
        let mut folders: Vec<(String, PathBuf)> = Vec::new();
        for p in entries {
            if !p.is_dir() {
                report.stray_files.push(p);
                continue;
            }
            match p.file_name().and_then(|n| n.to_str()) {
                Some(name) if !name.starts_with('.') => folders.push((name.to_string(), p.clone())),
                _ => report.skipped_folders.push(p.display().to_string()),
            }
        }
        let classes: Vec<String> = match classes {
            Some(list) => {
                if list.is_empty() {
                    return Err(Error::Config("empty class list".into()));
                }
                list.to_vec()
            }
            None => folders.iter().map(|(n, _)| n.clone()).collect(),
        };
        if classes.is_empty() {
            return Err(Error::Config(format!(
                "{} has no class folders",
                root.display()
            )));
        }
        for (name, _) in &folders {
            if !classes.contains(name) {
                report.skipped_folders.push(name.clone());
            }
        }
        report.per_class = vec![0; classes.len()];
        let mut samples = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let Some((_, dir)) = folders.iter().find(|(n, _)| n == class) else {
                report.missing_classes.push(class.clone());
                continue;
            };
            let mut files = Vec::new();
            walk_files(dir, &mut files)?;
            for path in files {
                if !is_image_file(&path) {
                    report.unsupported.push(path);
                    continue;
                }
                let check = match verify {
                    Verify::None => Ok(()),
                    Verify::Header => check_header(&path),
                    Verify::Decode => load_rgb8(&path).map(|_| ()).map_err(|e| e.to_string()),
                };
                match check {
                    Ok(()) => {
                        report.per_class[label] += 1;
                        samples.push(Sample {
                            path,
                            label: label as u32,
                        });
                    }
                    Err(msg) => report.corrupt.push((path, msg)),
                }
            }
        }
        report.images = samples.len();
        for w in report.warnings() {
            tracing::warn!("{}: {w}", root.display());
        }
        Ok(Self {
            root: root.to_path_buf(),
            classes,
            samples,
            report,
        })
    }

    /// Scan with the class list read from a file (see [`parse_class_list`]).
    pub fn open_with_class_file(root: &Path, class_file: &Path, verify: Verify) -> Result<Self> {
        let classes = read_class_list(class_file)?;
        Self::open(root, Some(&classes), verify)
    }

    /// Number of accepted samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when no sample was accepted.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}
