//! WAV input: a streaming reader ([`WavStream`]) of any supported WAV to mono f32 at its own
//! rate, with non-finite samples sanitised and counted, and the whole-clip [`read_wav`] on top.
//!
//! Supported: RIFF/WAVE with 16/24/32-bit integer PCM or 32/64-bit float, plain or
//! `WAVE_FORMAT_EXTENSIBLE`, 1..=[`MAX_CHANNELS`] channels at 1..=[`MAX_SAMPLE_RATE_HZ`] Hz.
//! The data chunk is read in pieces, so a 10-minute 48 kHz recording streams through a few
//! kilobytes of buffer. A data size of 0 or 0xFFFFFFFF (what streaming writers put before they
//! know the length) means "until the end of the file"; a data chunk that ends before the size
//! its header claims (a recording cut off) keeps the samples it has and is reported by
//! [`WavStream::truncated`] and a warning.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// Most channels a WAV may have.
pub const MAX_CHANNELS: u16 = 64;

/// Highest sample rate accepted, in Hz.
pub const MAX_SAMPLE_RATE_HZ: u32 = 768_000;

/// Bytes of a `fmt ` chunk that are read; the rest (vendor extensions) is skipped.
const MAX_FMT_BYTES: u32 = 64;

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
    /// The file ended before its header's data size: these are the samples it had.
    pub truncated: bool,
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

/// How one sample is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Int(u16),
    Float(u16),
}

impl Encoding {
    fn bytes(self) -> usize {
        match self {
            Encoding::Int(b) | Encoding::Float(b) => b as usize / 8,
        }
    }

    fn decode(self, b: &[u8]) -> f32 {
        match self {
            Encoding::Int(16) => i16::from_le_bytes([b[0], b[1]]) as f32 / 32_768.0,
            Encoding::Int(24) => {
                (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0
            }
            Encoding::Int(_) => {
                (i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64 / 2_147_483_648.0) as f32
            }
            Encoding::Float(32) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Encoding::Float(_) => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
        }
    }
}

/// A WAV being read piece by piece (see the module docs for what is supported).
#[derive(Debug)]
pub struct WavStream<R> {
    reader: R,
    name: String,
    encoding: Encoding,
    channels: u16,
    sample_rate_hz: u32,
    /// Data bytes the header announced and not read yet; `None` = read until the end.
    remaining: Option<u64>,
    frames_read: u64,
    truncated: bool,
    non_finite: u64,
    bytes: Vec<u8>,
    interleaved: Vec<f32>,
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Read into `buf` until it is full or the reader ends; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> WavStream<R> {
    /// Read the header up to the start of the samples. `name` appears in errors. Errors: not a
    /// RIFF/WAVE file, no `fmt ` or `data` chunk, an unsupported format, or a channel count or
    /// rate outside the module's limits.
    pub fn new(mut reader: R, name: &str) -> Result<Self> {
        let bad = |m: String| Error::BadInput(format!("{name}: {m}"));
        let io = |e: std::io::Error| bad(format!("not a readable WAV file ({e})"));
        let mut riff = [0u8; 12];
        if read_full(&mut reader, &mut riff).map_err(io)? < 12
            || &riff[0..4] != b"RIFF"
            || &riff[8..12] != b"WAVE"
        {
            return Err(bad("not a readable WAV file (no RIFF/WAVE header)".into()));
        }
        let mut fmt: Option<(Encoding, u16, u32)> = None;
        loop {
            let mut head = [0u8; 8];
            if read_full(&mut reader, &mut head).map_err(io)? < 8 {
                return Err(bad(if fmt.is_none() {
                    "not a readable WAV file (no fmt chunk)".into()
                } else {
                    "WAV file has no samples (no data chunk)".into()
                }));
            }
            let size = read_u32(&head, 4);
            match &head[0..4] {
                b"fmt " => {
                    let keep = size.min(MAX_FMT_BYTES) as usize;
                    let mut body = vec![0u8; keep];
                    if read_full(&mut reader, &mut body).map_err(io)? < keep || keep < 16 {
                        return Err(bad("not a readable WAV file (short fmt chunk)".into()));
                    }
                    skip(
                        &mut reader,
                        u64::from(size - keep as u32) + u64::from(size % 2),
                    )
                    .map_err(io)?;
                    fmt = Some(parse_fmt(&body).map_err(bad)?);
                }
                b"data" => {
                    let Some((encoding, channels, sample_rate_hz)) = fmt else {
                        return Err(bad(
                            "not a readable WAV file (data chunk before fmt chunk)".into()
                        ));
                    };
                    return Ok(Self {
                        reader,
                        name: name.to_string(),
                        encoding,
                        channels,
                        sample_rate_hz,
                        remaining: (size != 0 && size != u32::MAX).then_some(u64::from(size)),
                        frames_read: 0,
                        truncated: false,
                        non_finite: 0,
                        bytes: Vec::new(),
                        interleaved: Vec::new(),
                    });
                }
                _ => skip(&mut reader, u64::from(size) + u64::from(size % 2)).map_err(io)?,
            }
        }
    }

    /// The file's sample rate in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// Channels in the file (the stream yields their average).
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Frames (mono samples) read so far.
    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }

    /// NaN or infinite samples replaced by 0 so far.
    pub fn non_finite(&self) -> u64 {
        self.non_finite
    }

    /// True once the file ended before the data size its header announced.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Replace `out` by up to `max_frames` mono samples; `Ok(0)` at the end of the data. A
    /// partial frame at a cut-off end is dropped.
    pub fn read_frames(&mut self, max_frames: usize, out: &mut Vec<f32>) -> Result<usize> {
        out.clear();
        let frame_bytes = self.encoding.bytes() * self.channels as usize;
        let mut want = max_frames.max(1) as u64 * frame_bytes as u64;
        if let Some(r) = self.remaining {
            want = want.min(r - r % frame_bytes as u64);
        }
        self.bytes.resize(want as usize, 0);
        let got = read_full(&mut self.reader, &mut self.bytes).map_err(|e| Error::Io {
            path: self.name.clone().into(),
            source: e,
        })?;
        if let Some(r) = self.remaining.as_mut() {
            *r -= got as u64;
            if (got as u64) < want {
                // The file ended before the size its header announced.
                self.truncated = true;
                *r = 0;
            }
        }
        let whole = got - got % frame_bytes;
        let sample_bytes = self.encoding.bytes();
        self.interleaved.clear();
        self.interleaved.extend(
            self.bytes[..whole]
                .chunks_exact(sample_bytes)
                .map(|b| self.encoding.decode(b)),
        );
        downmix_into(&self.interleaved, self.channels as usize, out);
        self.non_finite += sanitize(out) as u64;
        self.frames_read += out.len() as u64;
        Ok(out.len())
    }
}

/// Skip `n` bytes without buffering them.
fn skip<R: Read>(reader: &mut R, n: u64) -> std::io::Result<()> {
    std::io::copy(&mut reader.take(n), &mut std::io::sink()).map(|_| ())
}

/// Encoding, channels and rate of a `fmt ` chunk body (at least 16 bytes).
fn parse_fmt(b: &[u8]) -> std::result::Result<(Encoding, u16, u32), String> {
    let mut tag = read_u16(b, 0);
    let channels = read_u16(b, 2);
    let rate = read_u32(b, 4);
    let bits = read_u16(b, 14);
    // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID.
    if tag == 0xFFFE && b.len() >= 26 {
        tag = read_u16(b, 24);
    }
    if channels == 0 {
        return Err("WAV header says 0 channels".into());
    }
    if channels > MAX_CHANNELS {
        return Err(format!(
            "WAV header says {channels} channels; at most {MAX_CHANNELS} are supported"
        ));
    }
    if rate == 0 {
        return Err("WAV header says 0 Hz".into());
    }
    if rate > MAX_SAMPLE_RATE_HZ {
        return Err(format!(
            "WAV header says {rate} Hz; at most {MAX_SAMPLE_RATE_HZ} Hz is supported"
        ));
    }
    let encoding = match (tag, bits) {
        (1, 16 | 24 | 32) => Encoding::Int(bits),
        (3, 32 | 64) => Encoding::Float(bits),
        (1 | 3, _) => {
            let kind = if tag == 1 { "integer" } else { "float" };
            return Err(format!(
                "unsupported WAV sample format {bits}-bit {kind}; expected 16/24/32-bit integer \
                 PCM or 32/64-bit float"
            ));
        }
        _ => {
            return Err(format!(
                "unsupported WAV encoding (format tag {tag:#06x}); expected PCM or IEEE float"
            ))
        }
    };
    Ok((encoding, channels, rate))
}

/// Open a WAV file as a stream, see [`WavStream`].
pub fn open_wav(path: &Path) -> Result<WavStream<std::io::BufReader<std::fs::File>>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    WavStream::new(std::io::BufReader::new(file), &path.display().to_string())
}

/// Decode a whole WAV stream into memory (see [`WavStream`]; for long recordings read the
/// stream in pieces instead). A file with no samples is an error; a cut-off one keeps its
/// samples and logs a warning.
pub fn decode_wav<R: Read>(reader: R, name: &str) -> Result<WavClip> {
    let mut stream = WavStream::new(reader, name)?;
    let (mut samples, mut piece) = (Vec::new(), Vec::new());
    while stream.read_frames(1 << 16, &mut piece)? > 0 {
        samples.extend_from_slice(&piece);
    }
    if samples.is_empty() {
        return Err(Error::BadInput(format!(
            "{name}: WAV file has no samples (zero length)"
        )));
    }
    if stream.truncated() {
        tracing::warn!(
            "{name}: the file ends before the data size in its header (recording cut off?); \
             using the {} samples it has",
            samples.len()
        );
    }
    Ok(WavClip {
        samples,
        sample_rate_hz: stream.sample_rate_hz,
        channels: stream.channels,
        non_finite: stream.non_finite as usize,
        truncated: stream.truncated,
    })
}

/// Read a WAV file from disk into memory, see [`decode_wav`].
pub fn read_wav(path: &Path) -> Result<WavClip> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_wav(std::io::BufReader::new(file), &path.display().to_string())
}
