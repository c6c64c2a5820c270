//! Sound label -> visual class mapping (`config/cues.toml`), validated at load time against the
//! classifier's labels and the vision model's classes, and the `ClassCue` it emits.

use std::collections::BTreeMap;

use crate::audio::detector::{DetectorConfig, SoundEvent};
use crate::{Error, Result};

/// The 14 image classes of `shared/data/images` (the vision models' class list), used when no
/// model class list is given.
pub const DATA_VISUAL_CLASSES: [&str; 14] = [
    "ant",
    "bee",
    "cassette_player",
    "cat",
    "chain_saw",
    "church",
    "dog",
    "english_springer",
    "french_horn",
    "garbage_truck",
    "gas_pump",
    "golf_ball",
    "parachute",
    "tench",
];

/// Contents of `config/cues.toml`: the mapping and the detector settings that go with it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CueConfig {
    /// Sound label -> visual classes it cues. Labels not listed cue nothing.
    pub cues: BTreeMap<String, Vec<String>>,
    /// Detector settings (windows, smoothing, thresholds, hold, refractory, silence gate).
    #[serde(default)]
    pub detector: DetectorConfig,
}

impl CueConfig {
    /// Parse TOML text; `name` is used in errors.
    pub fn from_toml(text: &str, name: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(format!("{name}: {e}")))
    }

    /// Read and parse a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }
}

/// A visual class cue derived from a sound: the guidance layer's input.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassCue {
    /// Visual class (a vision model class name).
    pub class: String,
    /// Score of the sound event that caused it.
    pub score: f32,
    /// Where the cue came from: always `"audio"` here.
    pub source: &'static str,
    /// Stream time of the sound event's onset, in seconds.
    pub time_s: f64,
}

/// A validated mapping, indexed for lookups by sound label.
#[derive(Debug, Clone)]
pub struct CueMap {
    map: BTreeMap<String, Vec<String>>,
}

impl CueMap {
    /// Validate `cues` against the classifier's `sound_labels` and the vision model's
    /// `visual_classes`: every key must be a sound label and every value a visual class, with
    /// no empty or duplicate lists. The error names every unknown entry and the valid ones.
    pub fn new(
        cues: &BTreeMap<String, Vec<String>>,
        sound_labels: &[String],
        visual_classes: &[String],
    ) -> Result<Self> {
        let unknown_labels: Vec<&str> = cues
            .keys()
            .filter(|k| !sound_labels.contains(k))
            .map(String::as_str)
            .collect();
        if !unknown_labels.is_empty() {
            return Err(Error::Config(format!(
                "cue mapping names unknown sound labels {unknown_labels:?}; the classifier's \
                 labels are {sound_labels:?}"
            )));
        }
        let mut unknown_classes: Vec<&str> = cues
            .values()
            .flatten()
            .filter(|c| !visual_classes.contains(c))
            .map(String::as_str)
            .collect();
        unknown_classes.dedup();
        if !unknown_classes.is_empty() {
            return Err(Error::Config(format!(
                "cue mapping names unknown visual classes {unknown_classes:?}; the model's \
                 classes are {visual_classes:?}"
            )));
        }
        for (label, classes) in cues {
            if classes.is_empty() {
                return Err(Error::Config(format!(
                    "cue mapping for sound label {label:?} is empty; remove it or list classes"
                )));
            }
            let mut sorted = classes.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != classes.len() {
                return Err(Error::Config(format!(
                    "cue mapping for sound label {label:?} repeats a class: {classes:?}"
                )));
            }
        }
        Ok(Self { map: cues.clone() })
    }

    /// Visual classes a sound label cues (empty when it cues none).
    pub fn classes_for(&self, label: &str) -> &[String] {
        self.map.get(label).map_or(&[], Vec::as_slice)
    }

    /// Every visual class some sound label reaches.
    pub fn reachable_classes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map.values().flatten().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    /// The cues of one sound event, appended to `out`.
    pub fn cues_for(&self, event: &SoundEvent, out: &mut Vec<ClassCue>) {
        out.extend(self.classes_for(&event.label).iter().map(|c| ClassCue {
            class: c.clone(),
            score: event.score,
            source: "audio",
            time_s: event.onset_s,
        }));
    }
}
