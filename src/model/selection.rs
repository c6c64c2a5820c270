//! Cutout selections: which classes (and, for HLFP-nested, which superclasses) run.

use super::{ModelConfig, Variant};
use crate::{Error, Result};

/// The active classes of a forward pass: sorted, unique class indices, plus (HLFP-nested) the
/// sorted, unique superclasses those classes read. Logits come back in the order of
/// [`Selection::classes`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selection {
    classes: Vec<usize>,
    superclasses: Vec<usize>,
    num_classes: usize,
}

impl Selection {
    /// Every class of the model (the full model).
    pub fn all(cfg: &ModelConfig) -> Self {
        let classes: Vec<usize> = (0..cfg.num_classes()).collect();
        let superclasses = supers_of(cfg, &classes);
        Selection {
            classes,
            superclasses,
            num_classes: cfg.num_classes(),
        }
    }

    /// A selection from class indices. Duplicates are merged and the order is sorted (a
    /// selection is a set); an empty list or an index `>= k` is an error.
    pub fn from_indices(cfg: &ModelConfig, indices: &[usize]) -> Result<Self> {
        let k = cfg.num_classes();
        if indices.is_empty() {
            return Err(Error::Config("a selection needs at least one class".into()));
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= k) {
            return Err(Error::Config(format!(
                "class index {bad} is out of range: the model has {k} classes (0..{k})"
            )));
        }
        let mut classes = indices.to_vec();
        classes.sort_unstable();
        classes.dedup();
        let superclasses = supers_of(cfg, &classes);
        Ok(Selection {
            classes,
            superclasses,
            num_classes: k,
        })
    }

    /// A selection from class names (see [`Selection::from_indices`]); an unknown name is an
    /// error that lists the model's classes.
    pub fn from_names(cfg: &ModelConfig, names: &[&str]) -> Result<Self> {
        if names.is_empty() {
            return Err(Error::Config("a selection needs at least one class".into()));
        }
        let idx = names
            .iter()
            .map(|n| cfg.class_index(n))
            .collect::<Result<Vec<_>>>()?;
        Self::from_indices(cfg, &idx)
    }

    /// Active class indices, sorted and unique.
    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    /// Superclasses the active classes read (HLFP-nested only; empty otherwise), sorted.
    pub fn superclasses(&self) -> &[usize] {
        &self.superclasses
    }

    /// Number of active classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Always false: a selection holds at least one class.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Number of classes of the model this selection was made for.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// True when every class is active.
    pub fn is_all(&self) -> bool {
        self.classes.len() == self.num_classes
    }
}

fn supers_of(cfg: &ModelConfig, classes: &[usize]) -> Vec<usize> {
    match (&cfg.superclasses, cfg.variant) {
        (Some(map), Variant::HlfpNested) => {
            let mut s: Vec<usize> = classes
                .iter()
                .filter_map(|&c| map.of_class.get(c).copied())
                .collect();
            s.sort_unstable();
            s.dedup();
            s
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SuperclassMap;

    #[test]
    fn indices_are_sorted_unique_and_checked() {
        let cfg = ModelConfig::new(Variant::HlfpSmall, 5);
        let s = Selection::from_indices(&cfg, &[3, 1, 3]).unwrap();
        assert_eq!(s.classes(), &[1, 3]);
        assert!(!s.is_all());
        assert!(Selection::all(&cfg).is_all());
        let e = Selection::from_indices(&cfg, &[5]).unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        assert!(Selection::from_indices(&cfg, &[]).is_err());
        let e = Selection::from_names(&cfg, &["class1", "zebra"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("zebra") && e.contains("class0"), "{e}");
        assert_eq!(
            Selection::from_names(&cfg, &["class4", "class0"])
                .unwrap()
                .classes(),
            &[0, 4]
        );
    }

    #[test]
    fn nested_selection_collects_superclasses() {
        let mut cfg = ModelConfig::new(Variant::HlfpNested, 6);
        cfg.superclasses = Some(SuperclassMap::contiguous(6, 3).unwrap());
        let s = Selection::from_indices(&cfg, &[0, 5, 1]).unwrap();
        assert_eq!(s.superclasses(), &[0, 2]);
        assert_eq!(Selection::all(&cfg).superclasses(), &[0, 1, 2]);
    }
}
