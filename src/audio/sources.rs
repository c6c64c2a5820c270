//! Where each audio clip came from: its source dataset and its source recording (the unit that
//! must never be split between training and evaluation), which labels are cues, other animals or
//! non-animal background, and splits that hold out whole sources or whole recordings.
//!
//! Clip paths are relative to the data root (`../shared/data`), e.g.
//! `audio/cat/sasmaz_kedi-part1_cat_20.wav` or `audio_extra/dog/gheja_192235__...wav`; the label is
//! the parent folder and the source is the file name's prefix up to the first `_`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::{Error, Result};

/// Animal labels that are not cues: their clips test false cues on other animals. `animal` holds
/// the other animals of `scripts/debian_sounds.py` (horses, elephants, insects, ...).
pub const OTHER_ANIMAL_LABELS: [&str; 10] = [
    "animal", "bird", "chicken", "cow", "donkey", "frog", "lion", "monkey", "rooster", "sheep",
];

/// Labels whose clips contain a cued animal.
pub const ANIMAL_CUE_LABELS: [&str; 2] = ["cat", "dog"];

/// What a label is, for mixing and for the false-cue measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LabelKind {
    /// `cat` or `dog`.
    AnimalCue,
    /// Another animal (see [`OTHER_ANIMAL_LABELS`]).
    OtherAnimal,
    /// Everything else: rain, speech, tools, crying babies, chainsaws, ...
    NonAnimal,
}

/// The kind of `label`.
pub fn label_kind(label: &str) -> LabelKind {
    if ANIMAL_CUE_LABELS.contains(&label) {
        LabelKind::AnimalCue
    } else if OTHER_ANIMAL_LABELS.contains(&label) {
        LabelKind::OtherAnimal
    } else {
        LabelKind::NonAnimal
    }
}

/// A clip's identity: label (parent folder), path relative to the data root, source dataset and
/// source recording.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClipSource {
    /// Sound label (the clip's folder).
    pub label: String,
    /// Path relative to the data root, `/`-separated.
    pub rel_path: String,
    /// Source dataset: the file name's prefix (`esc10`, `sasmaz`, `catmeows`, ...).
    pub source: String,
    /// Source recording (see [`recording_of`]).
    pub recording: String,
}

impl ClipSource {
    /// Identify the clip at `rel_path` (`.../<label>/<source>_<rest>.wav`).
    pub fn from_rel_path(rel_path: &str) -> Result<Self> {
        let mut parts = rel_path.rsplit('/');
        let file = parts.next().unwrap_or_default();
        let label = parts.next().filter(|l| !l.is_empty()).ok_or_else(|| {
            Error::BadInput(format!("clip path {rel_path:?} is not <label>/<file>.wav"))
        })?;
        let stem = file.strip_suffix(".wav").unwrap_or(file);
        let source = stem
            .split_once('_')
            .map(|(s, _)| s)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "clip {rel_path:?}: file name does not start with <source>_"
                ))
            })?;
        Ok(Self {
            label: label.to_string(),
            rel_path: rel_path.to_string(),
            source: source.to_string(),
            recording: recording_of(stem),
        })
    }
}

/// The source recording of a clip from its file stem (`<source>_<rest>`), following what each
/// source's names say (shared/data/SOURCES.md): ESC-10 takes `A`/`B` of one Freesound recording,
/// CatMeows clips of one cat, FSDD digits of one speaker, UrbanSound8K and gheja slices of one
/// Freesound id, Traer takes of one object, Sharwin clips of one class in one room, and ESC-50's
/// renamed cats (takes cannot be told apart) are one recording each group. Other stems are their
/// own recording.
pub fn recording_of(stem: &str) -> String {
    let Some((source, rest)) = stem.split_once('_') else {
        return stem.to_string();
    };
    let fields: Vec<&str> = rest.split('_').collect();
    let key = match source {
        "esc10" => match rest.rsplit_once('-') {
            Some((head, take))
                if take.len() == 1 && take.chars().all(|c| c.is_ascii_uppercase()) =>
            {
                head.to_string()
            }
            _ => rest.to_string(),
        },
        // `B_ANI01_MC_FN_SIM01_303`, `other_I_CLE01_...`: the cat id is the first field that
        // ends in two digits after letters.
        "catmeows" => fields
            .iter()
            .find(|f| {
                f.len() >= 4
                    && f[f.len() - 2..].chars().all(|c| c.is_ascii_digit())
                    && f[..f.len() - 2].chars().all(|c| c.is_ascii_uppercase())
            })
            .map(|f| f.to_string())
            .unwrap_or_else(|| rest.to_string()),
        "esc50" => "all".to_string(),
        "fsdd" => fields.get(1).map_or(rest, |s| s).to_string(),
        "us8k" => rest.split('-').next().unwrap_or(rest).to_string(),
        "gheja" => fields
            .first()
            .filter(|f| f.chars().all(|c| c.is_ascii_digit()))
            .map_or(rest, |s| s)
            .to_string(),
        "traer" => rest
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .to_string(),
        "sharwin" if fields.len() >= 3 && fields[0] != "fs" => {
            format!("{}_{}", fields[0], fields[1])
        }
        _ => rest.to_string(),
    };
    format!("{source}_{key}")
}

/// Which side of a split a clip is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Split {
    /// Used for training.
    Train,
    /// Kept out of training for choosing detector thresholds.
    Validation,
    /// Never seen in training or threshold choice.
    Test,
}

/// Split `clips`: every clip of a source in `test_sources` is `Test`; of the rest, per label,
/// every `val_every`-th recording (recordings sorted by key) is `Validation` (0 = none), the
/// rest `Train`. A recording never straddles two sides. Errors on an unknown test source.
pub fn split_by_source(
    clips: &[ClipSource],
    test_sources: &[String],
    val_every: usize,
) -> Result<Vec<Split>> {
    let known: BTreeSet<&str> = clips.iter().map(|c| c.source.as_str()).collect();
    if let Some(bad) = test_sources.iter().find(|s| !known.contains(s.as_str())) {
        return Err(Error::Config(format!(
            "test source {bad:?} has no clips; sources are {known:?}"
        )));
    }
    if val_every == 1 {
        return Err(Error::Config("val_every must be 0 (none) or >= 2".into()));
    }
    let mut val: BTreeSet<(&str, &str)> = BTreeSet::new();
    if val_every >= 2 {
        let mut per_label: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for c in clips.iter().filter(|c| !test_sources.contains(&c.source)) {
            per_label
                .entry(c.label.as_str())
                .or_default()
                .insert(c.recording.as_str());
        }
        for (label, recs) in per_label {
            for (i, r) in recs.into_iter().enumerate() {
                if i % val_every == val_every - 1 {
                    val.insert((label, r));
                }
            }
        }
    }
    // A recording lives under one label in practice; keying validation by (label, recording)
    // and then marking every clip of a validation recording keeps that true regardless.
    let val_recs: BTreeSet<&str> = val.iter().map(|(_, r)| *r).collect();
    Ok(clips
        .iter()
        .map(|c| {
            if test_sources.contains(&c.source) {
                Split::Test
            } else if val_recs.contains(c.recording.as_str()) {
                Split::Validation
            } else {
                Split::Train
            }
        })
        .collect())
}

// The recording split of `train-audio --split every` (the first recipe), by recording only.

/// One clip's identity: its label (the folder) and its path relative to the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipRef {
    /// Sound label (folder name).
    pub label: String,
    /// Path relative to the data directory, e.g. `cat/sasmaz_kedi-part1_cat_11.wav`.
    pub rel_path: String,
}

/// The source recording of the clip at `rel_path` (`.../<label>/<file>.wav`): [`recording_of`]
/// of its file stem, so both splits keep the same clips together (ESC-10 takes, one cat of
/// CatMeows, ...); names without a `<source>_` prefix are their own recording.
pub fn recording_key(rel_path: &str) -> String {
    let stem = rel_path.strip_suffix(".wav").unwrap_or(rel_path);
    recording_of(stem.rsplit('/').next().unwrap_or(stem))
}

/// Deterministic stratified split: per label, recordings (see [`recording_key`]) sorted by name,
/// every `every`-th one (the 5th, 10th, ... for `every` = 5) held out with all its clips.
/// Returns `true` for held-out clips, in input order. Labels with fewer than `every` recordings
/// still hold out one (the last), so every label is evaluated.
pub fn holdout_mask(clips: &[ClipRef], every: usize) -> Result<Vec<bool>> {
    if every < 2 {
        return Err(Error::Config(format!(
            "holdout_every must be >= 2, got {every}"
        )));
    }
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in clips {
        groups
            .entry(c.label.as_str())
            .or_default()
            .push(recording_key(&c.rel_path));
    }
    let mut held: HashSet<(String, String)> = HashSet::new();
    for (label, keys) in groups.iter_mut() {
        keys.sort();
        keys.dedup();
        if keys.len() < 2 {
            continue;
        }
        let mut any = false;
        for (i, k) in keys.iter().enumerate() {
            if i % every == every - 1 {
                held.insert((label.to_string(), k.clone()));
                any = true;
            }
        }
        if !any {
            if let Some(k) = keys.last() {
                held.insert((label.to_string(), k.clone()));
            }
        }
    }
    Ok(clips
        .iter()
        .map(|c| held.contains(&(c.label.clone(), recording_key(&c.rel_path))))
        .collect())
}

/// A validation split carved from the *training* side of `held` (a mask from
/// [`holdout_mask`]): among the clips not held out, every `every`-th recording of each label
/// (same rule as [`holdout_mask`]). Returns `true` for validation clips, in input order; a
/// held-out clip is never a validation clip, so thresholds chosen on this split never see the
/// held-out clips.
pub fn validation_mask(clips: &[ClipRef], held: &[bool], every: usize) -> Result<Vec<bool>> {
    if held.len() != clips.len() {
        return Err(Error::BadInput(format!(
            "held-out mask has {} entries for {} clips",
            held.len(),
            clips.len()
        )));
    }
    let rest: Vec<ClipRef> = clips
        .iter()
        .zip(held)
        .filter(|(_, &h)| !h)
        .map(|(c, _)| c.clone())
        .collect();
    let mut sub = holdout_mask(&rest, every)?.into_iter();
    Ok(held
        .iter()
        .map(|&h| !h && sub.next().unwrap_or(false))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_follow_the_source_naming() {
        assert_eq!(recording_of("esc10_1-110389-A"), "esc10_1-110389");
        assert_eq!(recording_of("esc10_1-110389-B"), "esc10_1-110389");
        assert_eq!(
            recording_of("catmeows_B_ANI01_MC_FN_SIM01_303"),
            "catmeows_ANI01"
        );
        assert_eq!(
            recording_of("catmeows_other_I_CLE01_EU_FN_FER01_108"),
            "catmeows_CLE01"
        );
        assert_eq!(recording_of("esc50_cat9"), recording_of("esc50_cat10"));
        assert_eq!(recording_of("fsdd_9_yweweler_7"), "fsdd_yweweler");
        assert_eq!(recording_of("us8k_176638-1-0-0"), "us8k_176638");
        assert_eq!(
            recording_of("gheja_192235__ligidium__miniature-dachshunds-playing_1"),
            "gheja_192235"
        );
        assert_eq!(recording_of("traer_HairDryer02"), "traer_HairDryer");
        assert_eq!(recording_of("sharwin_clap_large_5"), "sharwin_clap_large");
        assert_eq!(
            recording_of("sharwin_fs_alarm_file5"),
            "sharwin_fs_alarm_file5"
        );
        assert_eq!(
            recording_of("sasmaz_kedi-part1_cat_20"),
            "sasmaz_kedi-part1_cat_20"
        );
    }

    fn clip(p: &str) -> ClipSource {
        ClipSource::from_rel_path(p).unwrap()
    }

    #[test]
    fn a_split_keeps_sources_and_recordings_whole() {
        let clips: Vec<ClipSource> = [
            "audio/dog/esc10_1-1-A.wav",
            "audio/dog/esc10_1-1-B.wav",
            "audio/dog/esc10_1-2-A.wav",
            "audio/dog/esc10_1-3-A.wav",
            "audio_extra/speech/fsdd_0_george_1.wav",
            "audio_extra/speech/fsdd_1_george_2.wav",
            "audio_extra/speech/fsdd_0_lucas_1.wav",
            "audio_extra/cat/catmeows_B_ANI01_MC_FN_SIM01_303.wav",
        ]
        .iter()
        .map(|p| clip(p))
        .collect();
        let s = split_by_source(&clips, &["catmeows".to_string()], 2).unwrap();
        assert_eq!(s[7], Split::Test);
        // dog recordings 1-1, 1-2, 1-3: the 2nd (1-2) is validation; both takes of 1-1 train.
        assert_eq!(
            &s[..4],
            &[Split::Train, Split::Train, Split::Validation, Split::Train]
        );
        // speech speakers george, lucas: lucas (2nd) is validation, george's clips both train.
        assert_eq!(&s[4..7], &[Split::Train, Split::Train, Split::Validation]);
        assert!(split_by_source(&clips, &["nope".to_string()], 0).is_err());
        assert_eq!(clip("audio/rooster/esc10_1-1-A.wav").label, "rooster");
        assert_eq!(label_kind("rooster"), LabelKind::OtherAnimal);
        assert_eq!(label_kind("animal"), LabelKind::OtherAnimal);
        assert_eq!(label_kind("sfx"), LabelKind::NonAnimal);
        assert_eq!(label_kind("crying_baby"), LabelKind::NonAnimal);
        assert!(ClipSource::from_rel_path("x.wav").is_err());
    }
}
