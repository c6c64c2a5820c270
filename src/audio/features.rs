//! Log-mel front-end: the exact spectrogram every audio model in this crate sees, as a streaming
//! stage (`LogMel`) and a batch function (`log_mel`) that give identical frames.
//!
//! # The front-end, exactly (CED-compatible defaults, [`LogMelConfig::default`])
//!
//! | step | value |
//! | --- | --- |
//! | sample rate | 16 000 Hz mono f32 (resample first, see `resample.rs`) |
//! | frame | `n_fft` = 512 samples, `hop_samples` = 160 (10 ms), **no centre padding** |
//! | window | periodic Hann of `win_length` = 512: `w[n] = 0.5 - 0.5 cos(2πn/512)` |
//! | spectrum | real FFT of 512, power `|X[k]|²` for k = 0..=256 (257 bins), no scaling |
//! | mel | 64 triangular HTK filters, `mel(f) = 2595 log10(1 + f/700)`, f_min 0 Hz, f_max 8000 Hz, peak 1, no area normalisation (torchaudio `melscale_fbanks(norm=None, mel_scale="htk")`) |
//! | log | `10 · log10(max(mel_power, 1e-10))`, i.e. a fixed floor of -100 dB |
//!
//! Frame `k` covers samples `[k·hop, k·hop + n_fft)`, so `n` samples give
//! `(n - n_fft) / hop + 1` frames (0 when `n < n_fft`); frame `k` is centred on sample
//! `k·hop + n_fft/2` (= 16 ms after its start).
//!
//! ## Differences from CED (torchaudio `MelSpectrogram(center=True)` + `AmplitudeToDB(top_db=120)`)
//! - **No centre padding.** CED reflect-pads `n_fft/2` samples at both ends of a clip; a stream has
//!   no end to reflect, so we drop the padding and streaming equals batch exactly. Our frame `k`
//!   equals CED's frame `k + 1.6` in time: frames are the same numbers, shifted, and the clip loses
//!   the two half-frames at its edges.
//! - **Fixed floor instead of `top_db`.** `top_db = 120` clamps each *utterance* to 120 dB below its
//!   own maximum, which needs the whole clip before the first frame can be finished. We keep only
//!   the fixed `amin` floor (-100 dB). The two differ only for values more than 120 dB below the
//!   clip's peak, and only when the peak is above +20 dB (a full-scale 1 kHz sine peaks at about
//!   +42 dB in its mel bin): digital silence and empty bands (above 4 kHz in clips recorded at
//!   8 kHz). There CED writes `peak - 120` and we write -100 dB; both mean "nothing here", and a
//!   model trained on this front-end sees the same floor in training and in the stream.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::{Error, Result};

/// Sample rate every front-end frame assumes.
pub const SAMPLE_RATE_HZ: u32 = 16_000;
/// FFT length in samples.
pub const N_FFT: usize = 512;
/// Analysis window length in samples (periodic Hann).
pub const WIN_LENGTH: usize = 512;
/// Hop between frames in samples (10 ms at 16 kHz).
pub const HOP_SAMPLES: usize = 160;
/// Number of mel bins per frame.
pub const N_MELS: usize = 64;
/// Lowest mel filter edge in Hz.
pub const F_MIN_HZ: f32 = 0.0;
/// Highest mel filter edge in Hz (Nyquist at 16 kHz).
pub const F_MAX_HZ: f32 = 8_000.0;
/// Power floor before the log: `10·log10(1e-10)` = -100 dB.
pub const AMIN_POWER: f32 = 1e-10;

/// Numbers that define the log-mel front-end. The default is the CED-compatible front-end in the
/// module docs; a model card should record the exact config it was trained with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogMelConfig {
    /// Expected input sample rate.
    pub sample_rate_hz: u32,
    /// FFT length (power of two not required, but 512 is the fast path).
    pub n_fft: usize,
    /// Periodic Hann window length, `<= n_fft`; shorter windows sit centred in the FFT frame.
    pub win_length: usize,
    /// Hop between successive frames, `1..=n_fft`.
    pub hop_samples: usize,
    /// Mel bins per frame.
    pub n_mels: usize,
    /// Lowest mel edge in Hz.
    pub f_min_hz: f32,
    /// Highest mel edge in Hz, `<= sample_rate_hz / 2`.
    pub f_max_hz: f32,
    /// Power floor applied before `10·log10`.
    pub amin_power: f32,
}

impl Default for LogMelConfig {
    fn default() -> Self {
        Self {
            sample_rate_hz: SAMPLE_RATE_HZ,
            n_fft: N_FFT,
            win_length: WIN_LENGTH,
            hop_samples: HOP_SAMPLES,
            n_mels: N_MELS,
            f_min_hz: F_MIN_HZ,
            f_max_hz: F_MAX_HZ,
            amin_power: AMIN_POWER,
        }
    }
}

impl LogMelConfig {
    /// Check the numbers are usable; the error names the offending field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("LogMelConfig: {m}")));
        if self.sample_rate_hz == 0 {
            return bad("sample_rate_hz must be > 0".into());
        }
        if self.n_fft < 2 {
            return bad(format!("n_fft must be >= 2, got {}", self.n_fft));
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return bad(format!(
                "win_length must be in 1..=n_fft ({}), got {}",
                self.n_fft, self.win_length
            ));
        }
        if self.hop_samples == 0 || self.hop_samples > self.n_fft {
            return bad(format!(
                "hop_samples must be in 1..=n_fft ({}), got {}",
                self.n_fft, self.hop_samples
            ));
        }
        if self.n_mels == 0 {
            return bad("n_mels must be > 0".into());
        }
        let nyquist = self.sample_rate_hz as f32 / 2.0;
        if !(self.f_min_hz >= 0.0 && self.f_min_hz < self.f_max_hz && self.f_max_hz <= nyquist) {
            return bad(format!(
                "need 0 <= f_min_hz < f_max_hz <= {nyquist}, got {} and {}",
                self.f_min_hz, self.f_max_hz
            ));
        }
        if !(self.amin_power > 0.0 && self.amin_power.is_finite()) {
            return bad(format!("amin_power must be > 0, got {}", self.amin_power));
        }
        Ok(())
    }

    /// Number of FFT bins, `n_fft / 2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames that `n_samples` samples give in batch (no centre padding).
    pub fn num_frames(&self, n_samples: usize) -> usize {
        if n_samples < self.n_fft {
            0
        } else {
            (n_samples - self.n_fft) / self.hop_samples + 1
        }
    }

    /// Seconds between frames.
    pub fn hop_s(&self) -> f64 {
        self.hop_samples as f64 / self.sample_rate_hz as f64
    }
}

fn hz_to_mel_htk(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

fn mel_to_hz_htk(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// HTK triangular mel filterbank, `n_mels x n_bins` row-major, computed in f64 like torchaudio's
/// `melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm=None, mel_scale="htk")`.
pub fn mel_filterbank(cfg: &LogMelConfig) -> Result<Vec<f32>> {
    cfg.validate()?;
    let n_bins = cfg.n_bins();
    let nyquist = cfg.sample_rate_hz as f64 / 2.0;
    let m_min = hz_to_mel_htk(cfg.f_min_hz as f64);
    let m_max = hz_to_mel_htk(cfg.f_max_hz as f64);
    let f_pts: Vec<f64> = (0..cfg.n_mels + 2)
        .map(|i| mel_to_hz_htk(m_min + (m_max - m_min) * i as f64 / (cfg.n_mels + 1) as f64))
        .collect();
    let mut fb = vec![0f32; cfg.n_mels * n_bins];
    for k in 0..n_bins {
        // Bin centre frequencies are linspace(0, nyquist, n_bins), as in torchaudio.
        let f = nyquist * k as f64 / (n_bins - 1) as f64;
        for m in 0..cfg.n_mels {
            let down = (f - f_pts[m]) / (f_pts[m + 1] - f_pts[m]);
            let up = (f_pts[m + 2] - f) / (f_pts[m + 2] - f_pts[m + 1]);
            fb[m * n_bins + k] = down.min(up).max(0.0) as f32;
        }
    }
    Ok(fb)
}

/// Streaming log-mel stage: push samples of any chunk size, get whole frames out.
///
/// All buffers are allocated in [`LogMel::new`]; [`LogMel::process`] only appends to the caller's
/// output vector (reserve it once with [`LogMel::frames_next`] to stay allocation-free).
pub struct LogMel {
    cfg: LogMelConfig,
    fft: Arc<dyn RealToComplex<f32>>,
    /// Periodic Hann, zero-padded (centred) to `n_fft`.
    window: Vec<f32>,
    /// Non-zero span `(first_bin, weights)` of each mel filter, to skip the zeros.
    filters: Vec<(usize, Vec<f32>)>,
    /// Samples not yet covered by a complete frame (always `< n_fft` between calls).
    pending: Vec<f32>,
    fft_in: Vec<f32>,
    fft_out: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
    frames_emitted: u64,
}

impl LogMel {
    /// Build the stage: plans the FFT and precomputes the window and the mel filterbank.
    pub fn new(cfg: LogMelConfig) -> Result<Self> {
        cfg.validate()?;
        let fb = mel_filterbank(&cfg)?;
        let n_bins = cfg.n_bins();
        let filters = (0..cfg.n_mels)
            .map(|m| {
                let row = &fb[m * n_bins..(m + 1) * n_bins];
                let first = row.iter().position(|&w| w > 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w > 0.0).map_or(first, |l| l + 1);
                (first, row[first..last].to_vec())
            })
            .collect();
        let mut window = vec![0f32; cfg.n_fft];
        let offset = (cfg.n_fft - cfg.win_length) / 2;
        for n in 0..cfg.win_length {
            let phase = 2.0 * std::f64::consts::PI * n as f64 / cfg.win_length as f64;
            window[offset + n] = (0.5 - 0.5 * phase.cos()) as f32;
        }
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(cfg.n_fft);
        let fft_in = fft.make_input_vec();
        let fft_out = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Ok(Self {
            pending: Vec::with_capacity(cfg.n_fft),
            power: vec![0.0; n_bins],
            cfg,
            fft,
            window,
            filters,
            fft_in,
            fft_out,
            scratch,
            frames_emitted: 0,
        })
    }

    /// The config this stage computes.
    pub fn config(&self) -> &LogMelConfig {
        &self.cfg
    }

    /// Values per frame.
    pub fn n_mels(&self) -> usize {
        self.cfg.n_mels
    }

    /// Delay from a sample entering to the first frame that covers it being complete, in samples:
    /// a frame needs `n_fft` samples, so the newest sample of a frame is `n_fft - 1` samples after
    /// its first. Frames are time-stamped by their start (`k·hop`), so this is the look-ahead.
    pub fn latency_samples(&self) -> usize {
        self.cfg.n_fft
    }

    /// Frames the next `process` call with `n_new` samples will emit.
    pub fn frames_next(&self, n_new: usize) -> usize {
        self.cfg.num_frames(self.pending.len() + n_new)
    }

    /// Frames emitted since construction or the last [`LogMel::reset`]; frame `k` starts at sample
    /// `k · hop_samples` of the stream.
    pub fn frames_emitted(&self) -> u64 {
        self.frames_emitted
    }

    /// Forget buffered samples and the frame count, as for a new stream.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.frames_emitted = 0;
    }

    /// The frames of one whole clip, as a new stream (`reset` first): reuses this stage's FFT
    /// plan and filters across clips.
    pub fn clip(&mut self, samples: &[f32]) -> Vec<f32> {
        self.reset();
        let mut out = Vec::with_capacity(self.cfg.num_frames(samples.len()) * self.cfg.n_mels);
        self.process(samples, &mut out);
        out
    }

    /// Consume `input` (any length, including 0) and append every completed frame to `out`
    /// (`n_mels` values each, row-major). Returns the number of frames appended. Samples must be
    /// finite (sanitise first, see `wav::sanitize`); non-finite input gives non-finite frames.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> usize {
        let n_fft = self.cfg.n_fft;
        let hop = self.cfg.hop_samples;
        let mut rest = input;
        let mut frames = 0;
        while !rest.is_empty() {
            let take = (n_fft - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == n_fft {
                self.compute_frame(out);
                frames += 1;
                // Keep the overlap for the next frame.
                self.pending.copy_within(hop.., 0);
                self.pending.truncate(n_fft - hop);
            }
        }
        frames
    }

    fn compute_frame(&mut self, out: &mut Vec<f32>) {
        for ((dst, &x), &w) in self.fft_in.iter_mut().zip(&self.pending).zip(&self.window) {
            *dst = x * w;
        }
        // Lengths come from the same plan, so the FFT cannot fail; if it ever did, the frame is
        // floored rather than panicking in a stream.
        if self
            .fft
            .process_with_scratch(&mut self.fft_in, &mut self.fft_out, &mut self.scratch)
            .is_err()
        {
            self.fft_out
                .iter_mut()
                .for_each(|c| *c = Complex::new(0.0, 0.0));
        }
        for (p, c) in self.power.iter_mut().zip(&self.fft_out) {
            *p = c.re * c.re + c.im * c.im;
        }
        for (first, weights) in &self.filters {
            let mel: f32 = weights
                .iter()
                .zip(&self.power[*first..])
                .map(|(w, p)| w * p)
                .sum();
            out.push(10.0 * mel.max(self.cfg.amin_power).log10());
        }
        self.frames_emitted += 1;
    }
}

/// Batch log-mel of a whole clip: `num_frames(samples.len()) x n_mels` values, row-major.
/// Identical to pushing the same samples through a fresh [`LogMel`] in any chunking.
pub fn log_mel(samples: &[f32], cfg: &LogMelConfig) -> Result<Vec<f32>> {
    Ok(LogMel::new(cfg.clone())?.clip(samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_has_no_centre_padding() {
        let cfg = LogMelConfig::default();
        assert_eq!(cfg.num_frames(511), 0);
        assert_eq!(cfg.num_frames(512), 1);
        assert_eq!(cfg.num_frames(671), 1);
        assert_eq!(cfg.num_frames(672), 2);
        assert_eq!(cfg.num_frames(16_000), 97);
    }

    #[test]
    fn filterbank_triangles_peak_at_one_and_cover_the_band() {
        let cfg = LogMelConfig::default();
        let fb = mel_filterbank(&cfg).unwrap();
        let n_bins = cfg.n_bins();
        for m in 0..cfg.n_mels {
            let row = &fb[m * n_bins..(m + 1) * n_bins];
            let max = row.iter().cloned().fold(0f32, f32::max);
            // Bins are 31.25 Hz apart, so a peak can fall between bins; low filters are narrower
            // than a bin and see at least half their peak.
            assert!(max > 0.45 && max <= 1.0, "filter {m} peak {max}");
        }
        // Every bin strictly inside (0, 8000) Hz is covered by some filter.
        for k in 1..n_bins - 1 {
            let s: f32 = (0..cfg.n_mels).map(|m| fb[m * n_bins + k]).sum();
            assert!(s > 0.0, "bin {k} uncovered");
        }
    }

    #[test]
    fn bad_config_is_rejected_with_the_field_name() {
        let cfg = LogMelConfig {
            hop_samples: 0,
            ..Default::default()
        };
        let e = LogMel::new(cfg).err().unwrap().to_string();
        assert!(e.contains("hop_samples"), "{e}");
        let cfg = LogMelConfig {
            f_max_hz: 9000.0,
            ..Default::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("f_max_hz"));
    }

    #[test]
    fn silence_hits_the_fixed_floor() {
        let out = log_mel(&[0.0; 1000], &LogMelConfig::default()).unwrap();
        assert_eq!(out.len(), 4 * 64); // (1000 - 512) / 160 + 1
        assert!(out.iter().all(|&v| v == -100.0));
    }

    #[test]
    fn sine_energy_lands_in_its_mel_bin() {
        let cfg = LogMelConfig::default();
        let f_hz = 1000.0;
        let x: Vec<f32> = (0..2048)
            .map(|n| (2.0 * std::f32::consts::PI * f_hz * n as f32 / 16_000.0).sin())
            .collect();
        let out = log_mel(&x, &cfg).unwrap();
        let frame = &out[..64];
        let argmax = (0..64)
            .max_by(|&a, &b| frame[a].total_cmp(&frame[b]))
            .unwrap();
        // Filter centre frequencies in Hz from the HTK formula; 1 kHz must be closest to argmax.
        let m_max = hz_to_mel_htk(8000.0);
        let centre = |m: usize| mel_to_hz_htk(m_max * (m + 1) as f64 / 65.0);
        let best = (0..64)
            .min_by(|&a, &b| {
                (centre(a) - 1000.0)
                    .abs()
                    .total_cmp(&(centre(b) - 1000.0).abs())
            })
            .unwrap();
        assert!(
            (argmax as i64 - best as i64).abs() <= 1,
            "{argmax} vs {best}"
        );
        // Hann-windowed unit sine: |X| = N/4 = 128 at the peak bin, power 16384 = 42.1 dB.
        assert!(
            frame[argmax] > 38.0 && frame[argmax] < 43.0,
            "{}",
            frame[argmax]
        );
    }
}
