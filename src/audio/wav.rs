//! WAV input (hound): any supported WAV to mono f32 at its own rate, with non-finite samples
//! sanitised and counted.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// A decoded clip: mono samples in [-1, 1] (floats may exceed it) at the file's rate.
#[derive(Debug, Clone, PartialEq)]
pub struct WavClip {
    /// Mono samples (channels averaged).
    pub samples: Vec<f32>,
    /// The file's sample rate.
    pub sample_rate_hz: u32,
    /// Channels in the file before the downmix.
    pub channels: u16,
    /// NaN or infinite samples that were replaced by 0.
    pub non_finite: usize,
}

impl WavClip {
    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate_hz as f64
    }
}

/// Replace NaN and ±Inf by 0 in place; returns how many were replaced. Every stage after the
/// input assumes finite samples, so sources call this before the front-end.
pub fn sanitize(samples: &mut [f32]) -> usize {
    let mut n = 0;
    for s in samples.iter_mut() {
        if !s.is_finite() {
            *s = 0.0;
            n += 1;
        }
    }
    n
}

/// Average interleaved channels into `out` (cleared first). A trailing partial frame is dropped.
pub fn downmix_into(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    out.clear();
    if channels <= 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() * scale),
    );
}

/// Decode a WAV stream: 16/24/32-bit integer PCM or 32-bit float, any channel count.
/// 8-bit, other widths, non-WAV data and empty files are errors naming what was found.
pub fn decode_wav<R: Read>(reader: R, name: &str) -> Result<WavClip> {
    let bad = |m: String| Error::BadInput(format!("{name}: {m}"));
    let wav =
        hound::WavReader::new(reader).map_err(|e| bad(format!("not a readable WAV file ({e})")))?;
    let spec = wav.spec();
    if spec.channels == 0 {
        return Err(bad("WAV header says 0 channels".into()));
    }
    if spec.sample_rate == 0 {
        return Err(bad("WAV header says 0 Hz".into()));
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ (16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            wav.into_samples::<i32>()
                .map(|s| s.map(|v| (v as f64 * scale) as f32))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad(format!("corrupt {bits}-bit PCM data ({e})")))?
        }
        (hound::SampleFormat::Float, 32) => wav
            .into_samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(format!("corrupt 32-bit float data ({e})")))?,
        (fmt, bits) => {
            let kind = match fmt {
                hound::SampleFormat::Int => "integer",
                hound::SampleFormat::Float => "float",
            };
            return Err(bad(format!(
                "unsupported WAV sample format {bits}-bit {kind}; expected 16/24/32-bit integer \
                 PCM or 32-bit float"
            )));
        }
    };
    let channels = spec.channels as usize;
    if interleaved.len() < channels {
        return Err(bad("WAV file has no samples (zero length)".into()));
    }
    let mut samples = Vec::with_capacity(interleaved.len() / channels);
    downmix_into(&interleaved, channels, &mut samples);
    // Sanitise after the downmix: a NaN in one channel poisons the average anyway, and the count
    // is then per output sample.
    let non_finite = sanitize(&mut samples);
    Ok(WavClip {
        samples,
        sample_rate_hz: spec.sample_rate,
        channels: spec.channels,
        non_finite,
    })
}

/// Read a WAV file from disk, see [`decode_wav`].
pub fn read_wav(path: &Path) -> Result<WavClip> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_wav(std::io::BufReader::new(file), &path.display().to_string())
}
