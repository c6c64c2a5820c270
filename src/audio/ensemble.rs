//! Several audio classifiers trained on the same labels, their scores averaged per window, or
//! routed: a member may own some labels, which are then scored by their owners alone.
//!
//! Models trained with different recipes or seeds make different mistakes on sounds none of
//! them has heard; averaging their scores keeps what they agree on. Models with different
//! windows hear different classes best (a meow over a longer window than a bark), so a member
//! can own labels. Each member keeps its own feature normalisation, network and window (it
//! reads the newest frames of the longest one); they must share labels and mel bins.

use std::path::Path;

use candle_core::Device;

use crate::audio::classifier::AudioClassifier;
use crate::audio::detector::WindowScorer;
use crate::error::{Error, Result};

/// Separates the members of an ensemble in a model path (`a.safetensors+b.safetensors`).
pub const SEPARATOR: char = '+';

/// Separates the labels a member owns from its weights file (`cat@long.safetensors`; several
/// labels joined by `,`).
pub const OWNS: char = '@';

/// In a member's owned labels: every label that no member owns by name. `dog,*@short` scores
/// `dog` (with its other owners) and everything else, like a member that owns nothing.
pub const UNOWNED: &str = "*";

/// Split one member of a model path into the labels it owns (empty: none) and its file.
pub fn split_member(part: &str) -> (Vec<&str>, &str) {
    match part.split_once(OWNS) {
        Some((labels, path)) => (labels.split(',').filter(|l| !l.is_empty()).collect(), path),
        None => (Vec::new(), part),
    }
}

/// The weights file of every member of `spec`, in order (owned labels dropped).
pub fn member_files(spec: &str) -> impl Iterator<Item = &str> {
    spec.split(SEPARATOR).map(|part| split_member(part).1)
}

/// `spec` with every member's file rewritten by `f` (owned labels and order kept): how a caller
/// resolves the files against its own directory.
pub fn map_paths(spec: &str, f: impl Fn(&str) -> String) -> String {
    spec.split(SEPARATOR)
        .map(|part| {
            let (labels, path) = split_member(part);
            if labels.is_empty() {
                f(path)
            } else {
                format!("{}{OWNS}{}", labels.join(","), f(path))
            }
        })
        .collect::<Vec<_>>()
        .join(&SEPARATOR.to_string())
}

/// Classifiers whose per-label scores are averaged (over a label's owners where it has any).
#[derive(Debug, Clone)]
pub struct Ensemble {
    members: Vec<AudioClassifier>,
    /// Per label, the members whose scores are averaged for it.
    scorers: Vec<Vec<usize>>,
    /// The longest member window.
    window_frames: usize,
}

impl Ensemble {
    /// Join `members`, every one scoring every label.
    pub fn new(members: Vec<AudioClassifier>) -> Result<Self> {
        let owners = vec![Vec::new(); members.len()];
        Self::with_owners(members, owners)
    }

    /// Join `members`, member `i` owning the labels `owners[i]` (empty: it owns none). A label
    /// with owners is scored by them alone, every other label by the members that own none or
    /// own [`UNOWNED`].
    /// Members must agree on labels (in order), mel bins, output kind (averaging a softmax
    /// with a sigmoid would mix two meanings of a score) and front-end; windows may differ.
    pub fn with_owners(members: Vec<AudioClassifier>, owners: Vec<Vec<String>>) -> Result<Self> {
        let first = members
            .first()
            .ok_or_else(|| Error::Config("an ensemble needs at least one model".into()))?;
        if owners.len() != members.len() {
            return Err(Error::Config(format!(
                "{} label lists for {} ensemble members",
                owners.len(),
                members.len()
            )));
        }
        for (i, m) in members.iter().enumerate().skip(1) {
            let (a, b) = (first.config(), m.config());
            if a.labels != b.labels
                || a.n_mels != b.n_mels
                || a.output != b.output
                || a.front_end != b.front_end
            {
                return Err(Error::Config(format!(
                    "ensemble member {i} differs from member 0 in labels, mel bins ({} vs {}), \
                     output ({} vs {}) or front-end",
                    b.n_mels,
                    a.n_mels,
                    b.output.name(),
                    a.output.name()
                )));
            }
        }
        let labels = first.labels();
        let mut owned_by: Vec<Vec<usize>> = vec![Vec::new(); labels.len()];
        for (i, own) in owners.iter().enumerate() {
            for l in own.iter().filter(|l| *l != UNOWNED) {
                let ix = labels.iter().position(|x| x == l).ok_or_else(|| {
                    Error::Config(format!(
                        "ensemble member {i} owns {l:?}, which is not one of the labels {labels:?}"
                    ))
                })?;
                owned_by[ix].push(i);
            }
        }
        let free: Vec<usize> = (0..members.len())
            .filter(|&i| owners[i].is_empty() || owners[i].iter().any(|l| l == UNOWNED))
            .collect();
        let mut scorers = Vec::with_capacity(labels.len());
        for (ix, owned) in owned_by.into_iter().enumerate() {
            let s = if owned.is_empty() {
                free.clone()
            } else {
                owned
            };
            if s.is_empty() {
                return Err(Error::Config(format!(
                    "no ensemble member scores {:?}: every member owns other labels (a member \
                     owning {UNOWNED:?} scores every label no one owns)",
                    labels[ix]
                )));
            }
            scorers.push(s);
        }
        let window_frames = members.iter().map(|m| m.window_frames()).max().unwrap_or(0);
        Ok(Self {
            members,
            scorers,
            window_frames,
        })
    }

    /// Load `spec`: one weights file, or several joined by [`SEPARATOR`], each optionally
    /// prefixed by the labels it owns and [`OWNS`] (`cat@long.safetensors+short.safetensors`).
    pub fn load(spec: &Path, device: &Device) -> Result<Self> {
        let s = spec.to_string_lossy();
        let mut members = Vec::new();
        let mut owners = Vec::new();
        for part in s.split(SEPARATOR) {
            let (labels, path) = split_member(part);
            members.push(AudioClassifier::load(path, device)?);
            owners.push(labels.into_iter().map(String::from).collect());
        }
        Self::with_owners(members, owners)
    }

    /// The member models.
    pub fn members(&self) -> &[AudioClassifier] {
        &self.members
    }
}

impl WindowScorer for Ensemble {
    fn labels(&self) -> &[String] {
        self.members[0].labels()
    }

    fn window_frames(&self) -> usize {
        self.window_frames
    }

    fn score(&mut self, window: &[f32]) -> Result<Vec<f32>> {
        // One model (every CLI path's usual case): its scores, no copy per window.
        if let [only] = self.members.as_slice() {
            return only.predict(window);
        }
        let n_mels = self.members[0].config().n_mels;
        if window.len() != self.window_frames * n_mels {
            return Err(Error::BadInput(format!(
                "ensemble window has {} values, expected {} frames x {n_mels} mel bins",
                window.len(),
                self.window_frames
            )));
        }
        // Each member reads the newest frames of the window, so all windows end together.
        let scores = self
            .members
            .iter()
            .map(|m| m.predict(&window[(self.window_frames - m.window_frames()) * n_mels..]))
            .collect::<Result<Vec<_>>>()?;
        Ok(self
            .scorers
            .iter()
            .enumerate()
            .map(|(l, who)| who.iter().map(|&i| scores[i][l]).sum::<f32>() / who.len() as f32)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::classifier::{AudioClassifierConfig, FeatureNorm};
    use candle_core::DType;
    use candle_nn::{VarBuilder, VarMap};

    fn model(labels: &[&str], frames: usize, seed: u64) -> AudioClassifier {
        let mut cfg =
            AudioClassifierConfig::new(labels.iter().map(|s| s.to_string()).collect(), "fe");
        cfg.window_frames = frames;
        cfg.n_mels = 8;
        cfg.channels = vec![2];
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let m = AudioClassifier::new(cfg, FeatureNorm::identity(8), vb).unwrap();
        crate::audio::train::seeded_init(&vm, seed, &Device::Cpu).unwrap();
        m
    }

    #[test]
    fn scores_are_the_members_mean() {
        let (a, b) = (model(&["x", "y"], 4, 1), model(&["x", "y"], 4, 2));
        let w: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let (pa, pb) = (a.predict(&w).unwrap(), b.predict(&w).unwrap());
        assert_ne!(pa, pb);
        let mut e = Ensemble::new(vec![a, b]).unwrap();
        let p = e.score(&w).unwrap();
        for i in 0..2 {
            assert!((p[i] - (pa[i] + pb[i]) / 2.0).abs() < 1e-6);
        }
        assert_eq!(e.labels(), ["x", "y"]);
        assert_eq!(e.window_frames(), 4);
    }

    #[test]
    fn members_must_agree() {
        assert!(Ensemble::new(vec![]).is_err());
        let err = Ensemble::new(vec![model(&["x", "y"], 4, 1), model(&["y", "x"], 4, 1)]);
        assert!(err.is_err(), "label order");
        let err = Ensemble::with_owners(
            vec![model(&["x", "y"], 4, 1), model(&["x", "y"], 4, 2)],
            vec![vec!["z".into()], vec![]],
        );
        assert!(err.unwrap_err().to_string().contains("owns \"z\""));
        let err = Ensemble::with_owners(
            vec![model(&["x", "y"], 4, 1), model(&["x", "y"], 4, 2)],
            vec![vec!["x".into()], vec!["x".into()]],
        );
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("no ensemble member scores \"y\""));
    }

    #[test]
    fn owners_alone_score_their_labels_and_shorter_windows_read_the_newest_frames() {
        // a: 8 frames, owns x; b and c: 4 frames, score y (8 mel bins each frame).
        let (a, b, c) = (
            model(&["x", "y"], 8, 1),
            model(&["x", "y"], 4, 2),
            model(&["x", "y"], 4, 3),
        );
        let w: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
        let newest = &w[32..];
        let pa = a.predict(&w).unwrap();
        let (pb, pc) = (b.predict(newest).unwrap(), c.predict(newest).unwrap());
        let mut e =
            Ensemble::with_owners(vec![a, b, c], vec![vec!["x".into()], vec![], vec![]]).unwrap();
        assert_eq!(e.window_frames(), 8, "the longest window");
        let p = e.score(&w).unwrap();
        assert!((p[0] - pa[0]).abs() < 1e-6, "x from its owner only");
        assert!(
            (p[1] - (pb[1] + pc[1]) / 2.0).abs() < 1e-6,
            "y from the others"
        );
        assert!(e.score(&w[..32]).is_err(), "a short window is an error");
    }

    #[test]
    fn a_member_owning_the_unowned_labels_also_scores_its_named_ones() {
        // a owns x; b owns x and every unowned label (y): x is averaged over a and b, y is b's.
        let (a, b) = (model(&["x", "y"], 4, 1), model(&["x", "y"], 4, 2));
        let w: Vec<f32> = (0..32).map(|i| (i as f32 * 0.29).cos() * 12.0).collect();
        let (pa, pb) = (a.predict(&w).unwrap(), b.predict(&w).unwrap());
        assert_ne!(pa, pb);
        let mut e = Ensemble::with_owners(
            vec![a, b],
            vec![vec!["x".into()], vec!["x".into(), UNOWNED.into()]],
        )
        .unwrap();
        let p = e.score(&w).unwrap();
        assert!(
            (p[0] - (pa[0] + pb[0]) / 2.0).abs() < 1e-6,
            "x from both owners"
        );
        assert!(
            (p[1] - pb[1]).abs() < 1e-6,
            "y from the wildcard member alone"
        );
        // The spec form, and the wildcard is not taken for a label.
        assert_eq!(split_member("x,*@b.st"), (vec!["x", "*"], "b.st"));
        let dir = tempfile::tempdir().unwrap();
        let (fa, fb) = (dir.path().join("a.st"), dir.path().join("b.st"));
        model(&["x", "y"], 4, 1).save(&fa).unwrap();
        model(&["x", "y"], 4, 2).save(&fb).unwrap();
        let spec = format!("x@{}+x,*@{}", fa.display(), fb.display());
        let mut loaded = Ensemble::load(Path::new(&spec), &Device::Cpu).unwrap();
        // A loaded model scores with batch norm folded: the same up to float rounding.
        for (a, b) in loaded.score(&w).unwrap().iter().zip(&p) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Without the wildcard nobody scores y.
        let err = Ensemble::with_owners(
            vec![model(&["x", "y"], 4, 1), model(&["x", "y"], 4, 2)],
            vec![vec!["x".into()], vec!["x".into()]],
        )
        .unwrap_err();
        assert!(err.to_string().contains("owning \"*\""), "{err}");
    }

    #[test]
    fn member_specs_keep_their_labels_when_paths_are_rewritten() {
        assert_eq!(
            split_member("cat,dog@m/a.st"),
            (vec!["cat", "dog"], "m/a.st")
        );
        assert_eq!(split_member("m/b.st"), (Vec::<&str>::new(), "m/b.st"));
        assert_eq!(
            member_files("cat@a.st+b.st").collect::<Vec<_>>(),
            ["a.st", "b.st"]
        );
        let spec = map_paths("cat@a.st+b.st", |p| format!("/share/{p}"));
        assert_eq!(spec, "cat@/share/a.st+/share/b.st");
    }

    #[test]
    fn load_joins_files_and_names_the_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (
            dir.path().join("a.safetensors"),
            dir.path().join("b.safetensors"),
        );
        model(&["x", "y"], 4, 1).save(&pa).unwrap();
        model(&["x", "y"], 4, 2).save(&pb).unwrap();
        let spec = format!("{}+{}", pa.display(), pb.display());
        let e = Ensemble::load(Path::new(&spec), &Device::Cpu).unwrap();
        assert_eq!(e.members().len(), 2);
        let one = Ensemble::load(&pa, &Device::Cpu).unwrap();
        assert_eq!(one.members().len(), 1);
        let bad = format!(
            "{}+{}",
            pa.display(),
            dir.path().join("nope.safetensors").display()
        );
        let err = Ensemble::load(Path::new(&bad), &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("nope.safetensors"), "{err}");
        let routed = format!("y@{}+{}", pa.display(), pb.display());
        let mut e = Ensemble::load(Path::new(&routed), &Device::Cpu).unwrap();
        let w: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let pa_y = model(&["x", "y"], 4, 1).predict(&w).unwrap()[1];
        assert!(
            (e.score(&w).unwrap()[1] - pa_y).abs() < 1e-5,
            "y from its owner"
        );
    }
}
