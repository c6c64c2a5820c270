//! Bag messages to the pipeline's inputs: images to [`Frame`]s (raw images through the node's
//! decoder in `ros::convert`, compressed ones through the image folder's JPEG/PNG decoder),
//! `Classification` cue messages to [`CueInput`]s (the node's `cues_from_classification`), and
//! audio messages to mono sample chunks. Every message that cannot be used is counted by
//! reason in [`BagStats`]; bad images and cue messages also reach the runtime as errors, so
//! they show in its records and counters like a bad frame from any other source.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::cdr::{self, AudioStamped, CompressedImage};
use super::read::BagMessage;
use super::{BagError, KnownType};
use crate::data::image_folder::decode_rgb8;
use crate::pipeline::{CueInput, Frame};
use crate::ros::convert::{cues_from_classification, image_view, s16le_mono, RejectionCounter};
use crate::ros::msgs::{AudioDataStamped, Classification, Image, Time};
use crate::vision::encoding::to_rgb8_into;
use crate::{Error, Result};

/// Which topics feed what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Image topic (`sensor_msgs/msg/Image` or `CompressedImage`); `None`: the first topic of
    /// either type that the bag defines.
    pub image_topic: Option<String>,
    /// Cue topic (`vision_msgs/msg/Classification`).
    pub cue_topic: String,
    /// Audio topic (`AudioDataStamped` or `AudioStamped`); `None`: audio is not read.
    pub audio_topic: Option<String>,
    /// Sample rate of messages that do not carry one (`AudioDataStamped`), in Hz.
    pub audio_rate_hz: u32,
    /// Interleaved channels of messages that do not carry them.
    pub audio_channels: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            image_topic: None,
            cue_topic: "/cues".into(),
            audio_topic: None,
            audio_rate_hz: 16_000,
            audio_channels: 1,
        }
    }
}

/// One input for the pipeline, from one bag message.
#[derive(Debug)]
pub enum BagInput {
    /// A frame, or why the image message could not be one.
    Frame(Result<Frame>),
    /// The cues of one cue message (one per hypothesis), or why it could not be read.
    Cues(Vec<Result<CueInput>>),
    /// Mono samples in `[-1, 1]` and their rate.
    Audio {
        /// The samples.
        samples: Vec<f32>,
        /// Their rate in Hz.
        rate_hz: u32,
    },
}

/// What a replay read and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BagStats {
    /// Messages read from the file.
    pub messages: u64,
    /// Image messages on the image topic.
    pub image_messages: u64,
    /// Frames decoded.
    pub frames: u64,
    /// Cue messages read.
    pub cue_messages: u64,
    /// Audio messages read.
    pub audio_messages: u64,
    /// Messages on topics the replay does not use.
    pub ignored_messages: u64,
    /// Messages or chunks skipped, by reason (`cdr`, `schema_mismatch`, `damaged_chunk`, an
    /// image rejection kind, ...).
    pub skipped: BTreeMap<String, u64>,
    /// The image topic read.
    pub image_topic: Option<String>,
    /// Every topic seen, with its schema name.
    pub topics: BTreeMap<String, String>,
    /// A fatal read error that ended the replay early (a truncated file).
    pub fatal: Option<String>,
}

impl BagStats {
    /// All skips.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    fn skip(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_string()).or_insert(0) += 1;
    }
}

/// What a channel is used for.
#[derive(Debug, Clone)]
enum Role {
    Image(KnownType),
    Cues,
    Audio(KnownType),
    Ignore,
    /// Used but unreadable: every message is skipped for this reason.
    Refused(&'static str, String),
}

/// Maps bag messages to pipeline inputs, choosing and checking channels as they appear.
#[derive(Debug)]
pub struct InputMapper {
    config: TopicConfig,
    roles: HashMap<u16, Role>,
    stats: BagStats,
    rejections: RejectionCounter,
}

impl InputMapper {
    /// A mapper for these topics.
    pub fn new(config: TopicConfig) -> Result<Self> {
        if config.audio_rate_hz == 0 || config.audio_channels == 0 {
            return Err(Error::Config(format!(
                "audio rate {} Hz and channels {}: expected both >= 1",
                config.audio_rate_hz, config.audio_channels
            )));
        }
        Ok(Self {
            stats: BagStats {
                image_topic: config.image_topic.clone(),
                ..BagStats::default()
            },
            config,
            roles: HashMap::new(),
            rejections: RejectionCounter::default(),
        })
    }

    /// What was read and skipped so far.
    pub fn stats(&self) -> &BagStats {
        &self.stats
    }

    /// Record a fatal read error (the replay ends after it).
    pub fn set_fatal(&mut self, e: &BagError) {
        self.stats.fatal = Some(e.to_string());
    }

    /// The input a read result gives, if any. Read errors and unusable messages are counted
    /// (and logged); bad images and cue messages come back as errors for the runtime.
    pub fn map(&mut self, item: std::result::Result<BagMessage, BagError>) -> Option<BagInput> {
        let msg = match item {
            Ok(m) => m,
            Err(e) => {
                self.stats.skip(match &e {
                    BagError::DamagedChunk { .. } => "damaged_chunk",
                    BagError::Truncated { .. } => "truncated",
                    BagError::BadSchema(_) => "bad_schema",
                    _ => "read_error",
                });
                tracing::warn!("bag: {e}");
                return None;
            }
        };
        self.stats.messages += 1;
        let role = self.role(&msg);
        match role {
            Role::Ignore => {
                self.stats.ignored_messages += 1;
                None
            }
            Role::Refused(reason, why) => {
                self.stats.skip(reason);
                let e = Error::BadInput(format!("{}: {why}", msg.channel.topic));
                match self.kind_of_use(&msg.channel.topic) {
                    Use::Image => {
                        self.stats.image_messages += 1;
                        Some(BagInput::Frame(Err(e)))
                    }
                    Use::Cues => {
                        self.stats.cue_messages += 1;
                        Some(BagInput::Cues(vec![Err(e)]))
                    }
                    Use::Audio | Use::None => {
                        self.stats.audio_messages += 1;
                        None
                    }
                }
            }
            Role::Image(kind) => {
                let id = self.stats.image_messages;
                self.stats.image_messages += 1;
                let frame = self.frame(kind, id, &msg.data);
                match &frame {
                    Ok(_) => self.stats.frames += 1,
                    Err((reason, _)) => self.stats.skip(reason),
                }
                Some(BagInput::Frame(frame.map_err(|(_, e)| {
                    Error::BadInput(format!("{} message {id}: {e}", msg.channel.topic))
                })))
            }
            Role::Cues => {
                self.stats.cue_messages += 1;
                match cdr::decode::<Classification>(&msg.data) {
                    Ok(c) => Some(BagInput::Cues(
                        cues_from_classification(&c, "bag")
                            .into_iter()
                            .map(Ok)
                            .collect(),
                    )),
                    Err(e) => {
                        self.stats.skip("cdr");
                        Some(BagInput::Cues(vec![Err(Error::BadInput(format!(
                            "{}: {e}",
                            msg.channel.topic
                        )))]))
                    }
                }
            }
            Role::Audio(kind) => {
                self.stats.audio_messages += 1;
                match self.audio(kind, &msg.data) {
                    Ok((samples, rate_hz)) => Some(BagInput::Audio { samples, rate_hz }),
                    Err((reason, e)) => {
                        self.stats.skip(reason);
                        tracing::warn!("bag: {}: {e}", msg.channel.topic);
                        None
                    }
                }
            }
        }
    }

    fn kind_of_use(&self, topic: &str) -> Use {
        if Some(topic) == self.stats.image_topic.as_deref() {
            Use::Image
        } else if topic == self.config.cue_topic {
            Use::Cues
        } else if Some(topic) == self.config.audio_topic.as_deref() {
            Use::Audio
        } else {
            Use::None
        }
    }

    /// The channel's role, decided (and logged when refused) at its first message.
    fn role(&mut self, msg: &BagMessage) -> Role {
        let ch = &msg.channel;
        if let Some(r) = self.roles.get(&ch.id) {
            return r.clone();
        }
        self.stats
            .topics
            .insert(ch.topic.clone(), ch.schema_name.clone());
        let known = KnownType::from_name(&ch.schema_name);
        let is_image = matches!(known, Some(KnownType::Image | KnownType::CompressedImage));
        if self.stats.image_topic.is_none() && is_image && ch.message_encoding == "cdr" {
            tracing::info!("bag: image topic {} ({})", ch.topic, ch.schema_name);
            self.stats.image_topic = Some(ch.topic.clone());
        }
        let (wanted, make): (&[KnownType], fn(KnownType) -> Role) =
            match self.kind_of_use(&ch.topic) {
                Use::Image => (&[KnownType::Image, KnownType::CompressedImage], Role::Image),
                Use::Cues => (&[KnownType::Classification], |_| Role::Cues),
                Use::Audio => (
                    &[KnownType::AudioDataStamped, KnownType::AudioStamped],
                    Role::Audio,
                ),
                Use::None => {
                    self.roles.insert(ch.id, Role::Ignore);
                    return Role::Ignore;
                }
            };
        let role = if ch.message_encoding != "cdr" {
            Role::Refused(
                "message_encoding",
                format!(
                    "message encoding {:?}: expected cdr (a ROS 2 bag)",
                    ch.message_encoding
                ),
            )
        } else {
            match known.filter(|k| wanted.contains(k)) {
                None => Role::Refused(
                    "unknown_schema",
                    format!(
                        "schema {:?}: expected one of {}",
                        ch.schema_name,
                        wanted
                            .iter()
                            .map(|k| k.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some(k) => match k.check(&ch.schema_text) {
                    Ok(()) => make(k),
                    Err(e) => Role::Refused("schema_mismatch", e.to_string()),
                },
            }
        };
        if let Role::Refused(_, why) = &role {
            tracing::warn!("bag: every message on {} is skipped: {why}", ch.topic);
        }
        self.roles.insert(ch.id, role.clone());
        role
    }

    fn frame(
        &mut self,
        kind: KnownType,
        id: u64,
        data: &[u8],
    ) -> std::result::Result<Frame, (&'static str, String)> {
        let cdr_err = |e: BagError| ("cdr", e.to_string());
        let (header, width, height, rgb) = if kind == KnownType::CompressedImage {
            let msg: CompressedImage = cdr::decode(data).map_err(cdr_err)?;
            let img = decode_rgb8(&msg.data)
                .map_err(|e| ("compressed", format!("format {:?}: {e}", msg.format)))?;
            let (w, h) = img.dimensions();
            (msg.header, w, h, img.into_raw())
        } else {
            let msg: Image = cdr::decode(data).map_err(cdr_err)?;
            let mut rgb = Vec::new();
            to_rgb8_into(&image_view(&msg), &mut rgb).map_err(|e| {
                self.rejections.count(e.kind());
                (e.kind(), e.to_string())
            })?;
            (msg.header, msg.width, msg.height, rgb)
        };
        Ok(Frame {
            id,
            stamp_ns: ns_from_time(header.stamp),
            frame_id: header.frame_id,
            width,
            height,
            rgb,
        })
    }

    fn audio(
        &self,
        kind: KnownType,
        data: &[u8],
    ) -> std::result::Result<(Vec<f32>, u32), (&'static str, String)> {
        let cdr_err = |e: BagError| ("cdr", e.to_string());
        let bad = |e: Error| ("audio", e.to_string());
        if kind == KnownType::AudioDataStamped {
            let msg: AudioDataStamped = cdr::decode(data).map_err(cdr_err)?;
            let samples = s16le_mono(&msg, self.config.audio_channels).map_err(bad)?;
            return Ok((samples, self.config.audio_rate_hz));
        }
        let msg: AudioStamped = cdr::decode(data).map_err(cdr_err)?;
        let info = msg.audio.info;
        let pick =
            |x: i32, default: u32| u32::try_from(x).ok().filter(|&v| v > 0).unwrap_or(default);
        let channels = pick(info.channels, self.config.audio_channels);
        let rate = pick(info.rate, self.config.audio_rate_hz);
        let interleaved = typed_samples(&msg).map_err(bad)?;
        Ok((downmix(&interleaved, channels).map_err(bad)?, rate))
    }
}

/// Where a topic's messages go.
enum Use {
    Image,
    Cues,
    Audio,
    None,
}

/// PortAudio sample format constants used by mgonzs13/audio_common's `AudioInfo.format`.
const PA_FLOAT32: i32 = 0x01;
const PA_INT32: i32 = 0x02;
const PA_INT16: i32 = 0x08;
const PA_INT8: i32 = 0x10;
const PA_UINT8: i32 = 0x20;

/// The interleaved samples of an `AudioStamped` in `[-1, 1]`: the array its `format` names, or
/// the only non-empty one when the format is 0.
fn typed_samples(msg: &AudioStamped) -> Result<Vec<f32>> {
    let d = &msg.audio.audio_data;
    let format = match msg.audio.info.format {
        0 => {
            let filled = [
                (!d.float32_data.is_empty(), PA_FLOAT32),
                (!d.int32_data.is_empty(), PA_INT32),
                (!d.int16_data.is_empty(), PA_INT16),
                (!d.int8_data.is_empty(), PA_INT8),
                (!d.uint8_data.is_empty(), PA_UINT8),
            ];
            let mut it = filled.iter().filter(|(f, _)| *f).map(|(_, p)| *p);
            match (it.next(), it.next()) {
                (Some(p), None) => p,
                (None, _) => return Ok(Vec::new()),
                _ => {
                    return Err(Error::BadInput(
                        "audio: format 0 and several sample arrays filled: expected one".into(),
                    ))
                }
            }
        }
        f => f,
    };
    Ok(match format {
        PA_FLOAT32 => d.float32_data.clone(),
        PA_INT32 => d.int32_data.iter().map(|&s| s as f32 / 2_147_483_648.0).collect(),
        PA_INT16 => d.int16_data.iter().map(|&s| f32::from(s) / 32_768.0).collect(),
        PA_INT8 => d.int8_data.iter().map(|&s| f32::from(s) / 128.0).collect(),
        PA_UINT8 => d
            .uint8_data
            .iter()
            .map(|&s| (f32::from(s) - 128.0) / 128.0)
            .collect(),
        other => {
            return Err(Error::BadInput(format!(
                "audio: sample format {other}: expected a PortAudio format (1 float32, 2 int32, 8 int16, 16 int8, 32 uint8)"
            )))
        }
    })
}

/// Average interleaved channels to mono.
fn downmix(interleaved: &[f32], channels: u32) -> Result<Vec<f32>> {
    let ch = channels as usize;
    if interleaved.len() % ch != 0 {
        return Err(Error::BadInput(format!(
            "audio: {} samples is not a whole number of {ch}-channel frames",
            interleaved.len()
        )));
    }
    if ch == 1 {
        return Ok(interleaved.to_vec());
    }
    Ok(interleaved
        .chunks_exact(ch)
        .map(|f| f.iter().sum::<f32>() / ch as f32)
        .collect())
}

/// Nanoseconds since the epoch of a ROS time.
pub fn ns_from_time(t: Time) -> i64 {
    i64::from(t.sec) * 1_000_000_000 + i64::from(t.nanosec)
}

/// The ROS time of `ns` nanoseconds since the epoch (seconds saturate at the `int32` range).
pub fn time_from_ns(ns: i64) -> Time {
    let sec = ns
        .div_euclid(1_000_000_000)
        .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    Time {
        sec,
        nanosec: ns.rem_euclid(1_000_000_000) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bag::cdr::{Audio, AudioInfo, TypedAudioData};

    #[test]
    fn times_round_trip_through_ns() {
        for ns in [0i64, 1, 1_700_000_000_123_456_789, -1] {
            assert_eq!(ns_from_time(time_from_ns(ns)), ns);
        }
        assert_eq!(
            time_from_ns(-1),
            Time {
                sec: -1,
                nanosec: 999_999_999
            }
        );
    }

    #[test]
    fn typed_audio_follows_the_format_and_downmixes() {
        let msg = AudioStamped {
            audio: Audio {
                audio_data: TypedAudioData {
                    int16_data: vec![16384, -16384, 0, 32767],
                    ..Default::default()
                },
                info: AudioInfo {
                    format: PA_INT16,
                    channels: 2,
                    rate: 8000,
                    chunk: 2,
                },
            },
            ..Default::default()
        };
        let s = typed_samples(&msg).unwrap();
        assert_eq!(s, vec![0.5, -0.5, 0.0, 32767.0 / 32768.0]);
        assert_eq!(downmix(&s, 2).unwrap(), vec![0.0, 32767.0 / 65536.0]);
        assert!(downmix(&s[..3], 2).is_err());
        let mut bad = msg.clone();
        bad.audio.info.format = 3;
        assert!(typed_samples(&bad)
            .unwrap_err()
            .to_string()
            .contains("PortAudio"));
        bad.audio.info.format = 0;
        assert_eq!(typed_samples(&bad).unwrap().len(), 4);
    }
}
