//! CDR (the ROS 2 wire format) for bag messages: the 4-byte encapsulation header and the
//! serde structs of the message types that `src/ros/msgs.rs` does not define, with
//! `cdr-encoding` doing the (de)serialisation. The layouts follow [`super::schema`].

use byteorder::{BigEndian, LittleEndian};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::BagError;
use crate::ros::msgs::Header;

/// Encapsulation header of little-endian plain CDR (`CDR_LE`, options 0).
const CDR_LE: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

/// Decode one CDR message (encapsulation header included) into `T`. Plain CDR in either byte
/// order is accepted; anything else (XCDR2, parameter lists) is refused.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BagError> {
    let Some((head, body)) = bytes.split_first_chunk::<4>() else {
        return Err(BagError::Cdr(format!(
            "{} bytes: shorter than the 4-byte CDR encapsulation header",
            bytes.len()
        )));
    };
    let decoded = match [head[0], head[1]] {
        [0x00, 0x01] => cdr_encoding::from_bytes::<T, LittleEndian>(body),
        [0x00, 0x00] => cdr_encoding::from_bytes::<T, BigEndian>(body),
        other => {
            return Err(BagError::Cdr(format!(
                "encapsulation {other:02x?}: expected plain CDR (00 00 or 00 01)"
            )))
        }
    };
    decoded
        .map(|(msg, _)| msg)
        .map_err(|e| BagError::Cdr(e.to_string()))
}

/// Encode `msg` as little-endian CDR with its encapsulation header.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, BagError> {
    let body =
        cdr_encoding::to_vec::<T, LittleEndian>(msg).map_err(|e| BagError::Cdr(e.to_string()))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&CDR_LE);
    out.extend_from_slice(&body);
    Ok(out)
}

/// `sensor_msgs/msg/CompressedImage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedImage {
    /// Stamp and frame of the capture.
    pub header: Header,
    /// `jpeg` or `png` (image_transport writes e.g. `bgr8; jpeg compressed bgr8`).
    pub format: String,
    /// The encoded image.
    pub data: Vec<u8>,
}

/// `audio_common_msgs/msg/AudioData` of mgonzs13/audio_common: the array of the message's
/// sample format holds the interleaved samples, the others are empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TypedAudioData {
    /// `paFloat32` samples.
    pub float32_data: Vec<f32>,
    /// `paInt32` samples.
    pub int32_data: Vec<i32>,
    /// `paInt16` samples.
    pub int16_data: Vec<i16>,
    /// `paInt8` samples.
    pub int8_data: Vec<i8>,
    /// `paUInt8` samples (offset binary, 128 = silence).
    pub uint8_data: Vec<u8>,
}

/// `audio_common_msgs/msg/AudioInfo` of mgonzs13/audio_common.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioInfo {
    /// PortAudio sample format (`paFloat32` = 1, `paInt32` = 2, `paInt16` = 8, `paInt8` = 16,
    /// `paUInt8` = 32).
    pub format: i32,
    /// Interleaved channels.
    pub channels: i32,
    /// Sample rate in Hz.
    pub rate: i32,
    /// Frames per message.
    pub chunk: i32,
}

/// `audio_common_msgs/msg/Audio` of mgonzs13/audio_common.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Audio {
    /// The samples.
    pub audio_data: TypedAudioData,
    /// Their format, rate and channels.
    pub info: AudioInfo,
}

/// `audio_common_msgs/msg/AudioStamped` of mgonzs13/audio_common.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioStamped {
    /// Capture stamp.
    pub header: Header,
    /// The samples and their format.
    pub audio: Audio,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ros::msgs::{Classification, ObjectHypothesis, Time};

    #[test]
    fn classification_bytes_follow_cdr_alignment() {
        let msg = Classification {
            header: Header {
                stamp: Time { sec: 1, nanosec: 2 },
                frame_id: "c".into(),
            },
            results: vec![ObjectHypothesis {
                class_id: "ab".into(),
                score: 0.5,
            }],
        };
        let bytes = encode(&msg).unwrap();
        let want: Vec<u8> = [
            &CDR_LE[..],
            &[1, 0, 0, 0, 2, 0, 0, 0],    // stamp
            &[2, 0, 0, 0, b'c', 0, 0, 0], // frame_id "c\0", padded to 4
            &[1, 0, 0, 0],                // one result
            &[3, 0, 0, 0, b'a', b'b', 0], // class_id "ab\0"
            &[0; 5],                      // pad to 8 (offset 27 -> 32, after the header)
            &0.5f64.to_le_bytes(),
        ]
        .concat();
        assert_eq!(bytes, want);
        assert_eq!(decode::<Classification>(&bytes).unwrap(), msg);
    }

    #[test]
    fn big_endian_decodes_and_unknown_encapsulations_are_refused() {
        let be = [&[0u8, 0, 0, 0][..], &[0, 0, 0, 7], &[0, 0, 0, 9]].concat();
        let t: crate::ros::msgs::Time = decode(&be).unwrap();
        assert_eq!((t.sec, t.nanosec), (7, 9));
        let e = decode::<crate::ros::msgs::Time>(&[0, 7, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
        assert!(e.unwrap_err().to_string().contains("plain CDR"));
        assert!(decode::<crate::ros::msgs::Time>(&[0, 1]).is_err());
        assert!(decode::<crate::ros::msgs::Time>(&[0, 1, 0, 0, 1, 0]).is_err());
    }
}
