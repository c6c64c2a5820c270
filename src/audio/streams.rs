//! Continuous test streams for the detector: clips concatenated into one long recording (the
//! false-cue measurement on background and on other animals), and cue clips mixed into a
//! background bed at a set SNR (recall and onset latency). Times are stream seconds.

use crate::audio::augment::{active_blocks, power};
use crate::audio::cues::{ClassCue, CueMap};
use crate::{Error, Result};

/// Where one clip sits in a stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Segment {
    /// Sound label of the clip.
    pub label: String,
    /// Source dataset of the clip.
    pub source: String,
    /// Clip path (relative to the data root).
    pub rel_path: String,
    /// Start in the stream, seconds.
    pub start_s: f64,
    /// Length, seconds.
    pub len_s: f64,
    /// Sound onset inside the stream (start + the clip's first active block), seconds.
    pub onset_s: f64,
}

/// A stream and what is in it.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// Mono samples.
    pub samples: Vec<f32>,
    /// Sample rate.
    pub rate_hz: u32,
    /// The clips, in order.
    pub segments: Vec<Segment>,
}

impl Stream {
    /// Length in minutes.
    pub fn minutes(&self) -> f64 {
        self.samples.len() as f64 / self.rate_hz.max(1) as f64 / 60.0
    }

    /// The segment holding stream time `t_s` (the last one starting at or before it).
    pub fn segment_at(&self, t_s: f64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.start_s <= t_s);
        i.checked_sub(1).map(|i| &self.segments[i])
    }
}

/// A clip to put into a stream.
#[derive(Debug, Clone)]
pub struct StreamClip {
    /// Sound label.
    pub label: String,
    /// Source dataset.
    pub source: String,
    /// Path relative to the data root.
    pub rel_path: String,
    /// Mono samples at the stream rate.
    pub samples: Vec<f32>,
}

/// Seconds from a clip's start to its sound: the first 10 ms block within `within_db` of its
/// loudest block (0 for a silent clip).
pub fn sound_onset_s(samples: &[f32], rate_hz: u32, within_db: f32) -> f64 {
    active_blocks(samples, within_db)
        .first()
        .map_or(0.0, |&s| s as f64 / rate_hz as f64)
}

/// Onset threshold of [`sound_onset_s`] used by the streams: 20 dB below the loudest block.
pub const ONSET_WITHIN_DB: f32 = 20.0;

/// Clips end to end, as one stream.
pub fn concat(clips: &[StreamClip], rate_hz: u32) -> Stream {
    let mut s = Stream {
        rate_hz,
        ..Default::default()
    };
    for c in clips {
        let start_s = s.samples.len() as f64 / rate_hz as f64;
        s.segments.push(Segment {
            label: c.label.clone(),
            source: c.source.clone(),
            rel_path: c.rel_path.clone(),
            start_s,
            len_s: c.samples.len() as f64 / rate_hz as f64,
            onset_s: start_s + sound_onset_s(&c.samples, rate_hz, ONSET_WITHIN_DB),
        });
        s.samples.extend_from_slice(&c.samples);
    }
    s
}

/// Mix `targets` into `bed` (looped as needed), one every `len + gap_s` seconds after `lead_s`,
/// each scaled so the power of its active part (blocks within [`ONSET_WITHIN_DB`] of its
/// loudest) is `snr_db` above the bed's power under the whole clip.
pub fn mix_into(
    bed: &[f32],
    targets: &[StreamClip],
    rate_hz: u32,
    snr_db: f64,
    lead_s: f64,
    gap_s: f64,
) -> Result<Stream> {
    if bed.is_empty() || power(bed) <= 0.0 {
        return Err(Error::BadInput(
            "the background bed is empty or silent".into(),
        ));
    }
    let r = rate_hz as f64;
    let total: usize = targets
        .iter()
        .map(|t| t.samples.len() + (gap_s * r) as usize)
        .sum::<usize>()
        + (lead_s * r) as usize;
    let mut out: Vec<f32> = bed.iter().copied().cycle().take(total).collect();
    let mut segments = Vec::with_capacity(targets.len());
    let mut pos = (lead_s * r) as usize;
    for t in targets {
        let end = pos + t.samples.len();
        let act = active_blocks(&t.samples, ONSET_WITHIN_DB);
        let act_power = if act.is_empty() {
            0.0
        } else {
            act.iter()
                .map(|&s| power(&t.samples[s..(s + 160).min(t.samples.len())]))
                .sum::<f64>()
                / act.len() as f64
        };
        if act_power <= 0.0 {
            return Err(Error::BadInput(format!(
                "target clip {} is silent",
                t.rel_path
            )));
        }
        let bed_power = power(&out[pos..end]).max(1e-12);
        let gain = (bed_power * 10f64.powf(snr_db / 10.0) / act_power).sqrt() as f32;
        for (o, &x) in out[pos..end].iter_mut().zip(&t.samples) {
            *o = (*o + gain * x).clamp(-1.0, 1.0);
        }
        let start_s = pos as f64 / r;
        segments.push(Segment {
            label: t.label.clone(),
            source: t.source.clone(),
            rel_path: t.rel_path.clone(),
            start_s,
            len_s: t.samples.len() as f64 / r,
            onset_s: start_s + act[0] as f64 / r,
        });
        pos = end + (gap_s * r) as usize;
    }
    Ok(Stream {
        samples: out,
        rate_hz,
        segments,
    })
}

/// Per inserted clip: whether a cue of its class came while it played (or up to `tail_s` after
/// it ended), and the latency of the first such cue from the sound onset (0 if earlier).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Detection {
    /// The clip's label.
    pub label: String,
    /// Its source.
    pub source: String,
    /// Latency of the first correct cue from the onset, when there was one.
    pub latency_s: Option<f64>,
}

/// Score the cues of a mixed stream against its segments (clips whose label maps to no class
/// are skipped).
pub fn detections(stream: &Stream, cues: &[ClassCue], map: &CueMap, tail_s: f64) -> Vec<Detection> {
    stream
        .segments
        .iter()
        .filter(|s| !map.classes_for(&s.label).is_empty())
        .map(|s| {
            let classes = map.classes_for(&s.label);
            let end = s.start_s + s.len_s + tail_s;
            let first = cues
                .iter()
                .filter(|c| c.time_s >= s.start_s && c.time_s <= end && classes.contains(&c.class))
                .map(|c| c.time_s)
                .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.min(t))));
            Detection {
                label: s.label.clone(),
                source: s.source.clone(),
                latency_s: first.map(|t| (t - s.onset_s).max(0.0)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(label: &str, samples: Vec<f32>) -> StreamClip {
        StreamClip {
            label: label.into(),
            source: "src".into(),
            rel_path: format!("{label}.wav"),
            samples,
        }
    }

    #[test]
    fn concat_places_segments_end_to_end_with_onsets() {
        let mut a = vec![0.0; 1600];
        a[800..].iter_mut().for_each(|v| *v = 0.5);
        let s = concat(&[clip("rain", a), clip("cat", vec![0.1; 3200])], 16_000);
        assert_eq!(s.samples.len(), 4800);
        assert!((s.segments[0].onset_s - 0.05).abs() < 1e-9);
        assert!((s.segments[1].start_s - 0.1).abs() < 1e-9);
        assert_eq!(s.segment_at(0.15).unwrap().label, "cat");
        assert_eq!(s.segment_at(0.0).unwrap().label, "rain");
        assert!((s.minutes() - 0.3 / 60.0).abs() < 1e-9);
    }

    #[test]
    fn mixing_sets_the_active_part_snr() {
        let bed: Vec<f32> = (0..16_000)
            .map(|i| 0.01 * ((i as f32) * 0.37).sin())
            .collect();
        let mut t = vec![0.0; 8000];
        t[4000..]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = ((i as f32) * 0.1).sin());
        let s = mix_into(&bed, &[clip("cat", t.clone())], 16_000, 10.0, 0.5, 1.0).unwrap();
        let seg = &s.segments[0];
        assert!((seg.onset_s - 0.75).abs() < 0.011, "{}", seg.onset_s);
        let i0 = 8000 + 4000;
        let added: Vec<f32> = (i0..i0 + 4000)
            .map(|i| s.samples[i] - bed[i % bed.len()])
            .collect();
        let snr = 10.0 * (power(&added) / power(&bed[..8000])).log10();
        assert!((snr - 10.0).abs() < 0.5, "{snr}");
        assert!(mix_into(&[0.0; 10], &[clip("cat", t)], 16_000, 10.0, 0.0, 0.0).is_err());
    }
}
