//! Conversions between ROS message shapes and the library's types, and the rejection counters
//! the nodes keep. No decisions: cue validity is the guidance state machine's, scores are the
//! model's; this file only moves fields and refuses what cannot be represented.

use super::msgs::{
    AudioDataStamped, Classification, DiagnosticArray, DiagnosticStatus, Header, Image, KeyValue,
    LabelInfo, ObjectHypothesis, Time, VisionClass,
};
use crate::pipeline::{CueInput, Frame, FrameResult};
use crate::vision::encoding::{to_rgb8_into, ImageView};
use crate::{Error, Result};
use std::collections::BTreeMap;

/// Counts of rejected inputs by reason (e.g. `truncated`, `unknown_encoding`), for logs and
/// `/diagnostics`. The node keeps one per input topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectionCounter {
    by_kind: BTreeMap<&'static str, u64>,
}

impl RejectionCounter {
    /// Count one rejection of this kind.
    pub fn count(&mut self, kind: &'static str) {
        *self.by_kind.entry(kind).or_insert(0) += 1;
    }

    /// Rejections of one kind.
    pub fn get(&self, kind: &str) -> u64 {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }

    /// All rejections.
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// `(kind, count)` pairs, sorted by kind.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.by_kind.iter().map(|(k, v)| (*k, *v))
    }
}

/// The fields of an `Image` message as an encoding view.
pub fn image_view(msg: &Image) -> ImageView<'_> {
    ImageView {
        width: msg.width,
        height: msg.height,
        encoding: &msg.encoding,
        step: msg.step,
        is_bigendian: msg.is_bigendian != 0,
        data: &msg.data,
    }
}

/// The cues a `vision_msgs/Classification` on `cues` carries: one per hypothesis, `class_id` the
/// visual class name, `score` the confidence. Class names and scores are checked by the
/// guidance state machine, not here.
pub fn cues_from_classification(msg: &Classification, source: &str) -> Vec<CueInput> {
    msg.results
        .iter()
        .map(|h| CueInput {
            class: h.class_id.clone(),
            // f64 to f32: NaN and infinities stay so and are refused by the state machine.
            score: h.score as f32,
            source: source.to_string(),
        })
        .collect()
}

/// An image message as runtime frame `id`: decoded to packed RGB8, stamp and frame_id kept.
/// A message that cannot be decoded is an error naming the reason.
pub fn frame_from_image(msg: Image, id: u64) -> Result<Frame> {
    let mut rgb = Vec::new();
    let layout = to_rgb8_into(&image_view(&msg), &mut rgb)
        .map_err(|e| Error::BadInput(format!("image {id} rejected ({}): {e}", e.kind())))?;
    Ok(Frame {
        id,
        stamp_ns: msg.header.stamp.to_ns(),
        frame_id: msg.header.frame_id,
        width: layout.width as u32,
        height: layout.height as u32,
        rgb,
    })
}

/// The `classification` message of a runtime result: the frame's header, the top classes
/// best first.
pub fn classification_from_result(r: &FrameResult) -> Classification {
    classification_msg(
        Header {
            stamp: Time::from_ns(r.stamp_ns),
            frame_id: r.frame_id.clone(),
        },
        r.top.iter().map(|c| (c.class.as_str(), c.score)),
    )
}

/// A `Classification` with `header` (copied from the input frame) and the given
/// `(class, score)` pairs in order. Non-finite scores are left out: JSON cannot carry them.
pub fn classification_msg<'a>(
    header: Header,
    scores: impl IntoIterator<Item = (&'a str, f32)>,
) -> Classification {
    Classification {
        header,
        results: scores
            .into_iter()
            .filter(|(_, s)| s.is_finite())
            .map(|(c, s)| ObjectHypothesis {
                class_id: c.to_string(),
                score: f64::from(s),
            })
            .collect(),
    }
}

/// The `LabelInfo` for a class list (id = index in the model's output). Fails above 65535
/// classes: `uint16` ids, with 65535 reserved for "unlabeled" by vision_msgs.
pub fn label_info_msg(header: Header, classes: &[String], threshold: f32) -> Result<LabelInfo> {
    if classes.len() > usize::from(u16::MAX) {
        return Err(Error::Config(format!(
            "{} classes do not fit LabelInfo's uint16 ids (at most 65535)",
            classes.len()
        )));
    }
    Ok(LabelInfo {
        header,
        class_map: classes
            .iter()
            .enumerate()
            .map(|(i, name)| VisionClass {
                class_id: i as u16,
                class_name: name.clone(),
            })
            .collect(),
        threshold: if threshold.is_finite() {
            threshold
        } else {
            0.0
        },
    })
}

/// One named status for `/diagnostics`, values given as `(key, value)` text.
pub fn diagnostic_status(
    name: &str,
    hardware_id: &str,
    level: u8,
    message: &str,
    values: &[(String, String)],
) -> DiagnosticStatus {
    DiagnosticStatus {
        level,
        name: name.to_string(),
        message: message.to_string(),
        hardware_id: hardware_id.to_string(),
        values: values
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    }
}

/// A `DiagnosticArray` with one status.
pub fn diagnostic_array(header: Header, status: DiagnosticStatus) -> DiagnosticArray {
    DiagnosticArray {
        header,
        status: vec![status],
    }
}

/// The mono samples in `[-1, 1)` of an `AudioDataStamped` holding interleaved S16LE audio with
/// `channels` channels (downmixed by averaging). Refuses an odd byte count or a sample count
/// that is not a multiple of `channels`.
pub fn s16le_mono(msg: &AudioDataStamped, channels: u32) -> Result<Vec<f32>> {
    let bytes = &msg.audio.data;
    if channels == 0 {
        return Err(Error::BadInput("audio: channels must be at least 1".into()));
    }
    if bytes.len() % 2 != 0 {
        return Err(Error::BadInput(format!(
            "audio: {} bytes is not a whole number of S16LE samples (2 bytes each)",
            bytes.len()
        )));
    }
    let ch = channels as usize;
    let samples = bytes.len() / 2;
    if samples % ch != 0 {
        return Err(Error::BadInput(format!(
            "audio: {samples} samples is not a whole number of {ch}-channel frames"
        )));
    }
    let pcm = bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0);
    if ch == 1 {
        return Ok(pcm.collect());
    }
    let all: Vec<f32> = pcm.collect();
    Ok(all
        .chunks_exact(ch)
        .map(|f| f.iter().sum::<f32>() / ch as f32)
        .collect())
}
