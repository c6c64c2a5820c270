//! Matching a dataset's class folders to the model's classes, and naming class subsets.
//!
//! A dataset folder is labelled with the model's index of the class of the same name. Folders
//! the model does not know are skipped and reported with their image counts, never mapped onto
//! some other class; model classes without a folder are reported too.

use crate::data::image_folder::{ImageFolder, Sample};
use crate::{Error, Result};
use serde::Serialize;

/// A dataset class the model does not know: skipped, with how many images it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedClass {
    /// The folder name.
    pub name: String,
    /// Accepted images in that folder (none of them evaluated).
    pub images: usize,
}

/// The dataset relabelled to the model's class indices.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAlignment {
    /// Samples of known classes; `label` is the MODEL's class index.
    pub samples: Vec<Sample>,
    /// Dataset classes unknown to the model (skipped), in folder order.
    pub skipped_classes: Vec<SkippedClass>,
    /// Model classes with no folder (or an empty one) in the dataset, in model order.
    pub missing_classes: Vec<String>,
}

/// Relabel `folder` (scanned with its own class list, i.e. every subfolder) to `model_classes`.
pub fn align_classes(folder: &ImageFolder, model_classes: &[String]) -> ClassAlignment {
    let to_model: Vec<Option<usize>> = folder
        .classes
        .iter()
        .map(|c| model_classes.iter().position(|m| m == c))
        .collect();
    let count = |i: usize| folder.report.per_class.get(i).copied().unwrap_or(0);
    let skipped_classes = folder
        .classes
        .iter()
        .enumerate()
        .filter(|(i, _)| to_model[*i].is_none())
        .map(|(i, name)| SkippedClass {
            name: name.clone(),
            images: count(i),
        })
        .collect();
    let mut present = vec![false; model_classes.len()];
    let samples: Vec<Sample> = folder
        .samples
        .iter()
        .filter_map(|s| {
            let m = to_model.get(s.label as usize).copied().flatten()?;
            present[m] = true;
            Some(Sample {
                path: s.path.clone(),
                label: m as u32,
            })
        })
        .collect();
    let missing_classes = model_classes
        .iter()
        .zip(&present)
        .filter(|(_, p)| !**p)
        .map(|(n, _)| n.clone())
        .collect();
    ClassAlignment {
        samples,
        skipped_classes,
        missing_classes,
    }
}

/// The lower and upper halves of `k` classes by index (Table 3's split): `0..k/2` and `k/2..k`
/// (for odd k the upper half has the extra class).
pub fn halves(k: usize) -> Result<[Vec<usize>; 2]> {
    if k < 2 {
        return Err(Error::Config(format!(
            "splitting into halves needs at least 2 classes, the model has {k}"
        )));
    }
    Ok([(0..k / 2).collect(), (k / 2..k).collect()])
}

/// Parse a comma-separated class subset: each item a class name of `class_names` or an index.
/// Names win over indices (a class may be called "3"). Duplicates are merged; the result is
/// sorted. Unknown names, out-of-range indices and empty items are errors naming the classes.
pub fn parse_subset(spec: &str, class_names: &[String]) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(Error::Config(format!(
                "cutout {spec:?} has an empty class name; expected names or indices separated by commas"
            )));
        }
        let idx = match class_names.iter().position(|n| n == item) {
            Some(i) => i,
            None => match item.parse::<usize>() {
                Ok(i) if i < class_names.len() => i,
                _ => {
                    return Err(Error::Config(format!(
                        "cutout {spec:?}: unknown class {item:?}; the model knows {} (or indices 0..{})",
                        class_names.join(", "),
                        class_names.len()
                    )))
                }
            },
        };
        out.push(idx);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::image_folder::DatasetReport;
    use std::path::PathBuf;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn alignment_relabels_by_name_and_reports_unknown_and_missing() {
        let sample = |p: &str, label| Sample {
            path: PathBuf::from(p),
            label,
        };
        let folder = ImageFolder {
            root: PathBuf::from("/d"),
            classes: names(&["cat", "dog", "zebra"]),
            samples: vec![
                sample("c1", 0),
                sample("d1", 1),
                sample("z1", 2),
                sample("z2", 2),
            ],
            report: DatasetReport {
                images: 4,
                per_class: vec![1, 1, 2],
                ..DatasetReport::default()
            },
        };
        // The model's order differs from the folder's; "bird" has no folder.
        let a = align_classes(&folder, &names(&["dog", "bird", "cat"]));
        let got: Vec<(&str, u32)> = a
            .samples
            .iter()
            .map(|s| (s.path.to_str().unwrap(), s.label))
            .collect();
        assert_eq!(got, vec![("c1", 2), ("d1", 0)]);
        assert_eq!(
            a.skipped_classes,
            vec![SkippedClass {
                name: "zebra".into(),
                images: 2
            }]
        );
        assert_eq!(a.missing_classes, names(&["bird"]));
    }

    #[test]
    fn halves_split_by_index() {
        assert_eq!(
            halves(10).unwrap(),
            [vec![0, 1, 2, 3, 4], vec![5, 6, 7, 8, 9]]
        );
        assert_eq!(halves(3).unwrap(), [vec![0], vec![1, 2]]);
        assert!(halves(1).is_err());
    }

    #[test]
    fn subsets_parse_names_and_indices() {
        let n = names(&["cat", "dog", "3", "bee"]);
        assert_eq!(parse_subset("dog, cat,1", &n).unwrap(), vec![0, 1]);
        // "3" is a class name here, so it means class 2, not index 3.
        assert_eq!(parse_subset("3", &n).unwrap(), vec![2]);
        assert_eq!(parse_subset("bee,0", &n).unwrap(), vec![0, 3]);
        let e = parse_subset("cat,zebra", &n).unwrap_err().to_string();
        assert!(e.contains("zebra") && e.contains("cat, dog"), "{e}");
        assert!(parse_subset("4", &n).is_err());
        assert!(parse_subset("cat,,dog", &n).is_err());
    }
}
