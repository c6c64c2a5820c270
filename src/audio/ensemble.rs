//! Several audio classifiers trained on the same labels, their scores averaged per window.
//!
//! Models trained with different recipes or seeds make different mistakes on sounds none of
//! them has heard; averaging their scores keeps what they agree on. Each member keeps its own
//! feature normalisation and network; they must share labels, window and mel bins.

use std::path::Path;

use candle_core::Device;

use crate::audio::classifier::AudioClassifier;
use crate::audio::detector::WindowScorer;
use crate::error::{Error, Result};

/// Separates the weights files of an ensemble in a model path (`a.safetensors+b.safetensors`).
pub const SEPARATOR: char = '+';

/// Classifiers whose per-label scores are averaged.
#[derive(Debug, Clone)]
pub struct Ensemble {
    members: Vec<AudioClassifier>,
}

impl Ensemble {
    /// Join `members`; they must agree on labels (in order), window frames, mel bins and output
    /// kind (averaging a softmax with a sigmoid would mix two meanings of a score).
    pub fn new(members: Vec<AudioClassifier>) -> Result<Self> {
        let first = members
            .first()
            .ok_or_else(|| Error::Config("an ensemble needs at least one model".into()))?;
        for (i, m) in members.iter().enumerate().skip(1) {
            let (a, b) = (first.config(), m.config());
            if a.labels != b.labels
                || a.window_frames != b.window_frames
                || a.n_mels != b.n_mels
                || a.output != b.output
                || a.front_end != b.front_end
            {
                return Err(Error::Config(format!(
                    "ensemble member {i} differs from member 0 in labels, window ({} vs {} \
                     frames), mel bins ({} vs {}), output ({} vs {}) or front-end",
                    b.window_frames,
                    a.window_frames,
                    b.n_mels,
                    a.n_mels,
                    b.output.name(),
                    a.output.name()
                )));
            }
        }
        Ok(Self { members })
    }

    /// Load `spec`: one weights file, or several joined by [`SEPARATOR`].
    pub fn load(spec: &Path, device: &Device) -> Result<Self> {
        let s = spec.to_string_lossy();
        let members = s
            .split(SEPARATOR)
            .map(|p| AudioClassifier::load(p, device))
            .collect::<Result<Vec<_>>>()?;
        Self::new(members)
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
        self.members[0].window_frames()
    }

    fn score(&mut self, window: &[f32]) -> Result<Vec<f32>> {
        // One model (every CLI path's usual case): its scores, no copy per window.
        if let [only] = self.members.as_slice() {
            return only.predict(window);
        }
        let mut sum = self.members[0].predict(window)?;
        for m in &self.members[1..] {
            for (s, v) in sum.iter_mut().zip(m.predict(window)?) {
                *s += v;
            }
        }
        let n = self.members.len() as f32;
        Ok(sum.into_iter().map(|s| s / n).collect())
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
        let err = Ensemble::new(vec![model(&["x", "y"], 4, 1), model(&["x", "y"], 8, 1)]);
        assert!(err.unwrap_err().to_string().contains("8 vs 4 frames"));
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
    }
}
