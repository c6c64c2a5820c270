//! Fake window scorers shared by the audio tests.
#![allow(dead_code)]

use hlfp::audio::detector::WindowScorer;
use hlfp::Result;

/// Returns scripted scores, one row per call (the last row repeats); counts calls.
pub struct ScriptedScorer {
    pub labels: Vec<String>,
    pub window_frames: usize,
    pub rows: Vec<Vec<f32>>,
    pub calls: usize,
    pub window_lens: Vec<usize>,
}

impl ScriptedScorer {
    pub fn new(labels: &[&str], window_frames: usize, rows: Vec<Vec<f32>>) -> Self {
        Self {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            window_frames,
            rows,
            calls: 0,
            window_lens: Vec::new(),
        }
    }
}

impl WindowScorer for ScriptedScorer {
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn window_frames(&self) -> usize {
        self.window_frames
    }
    fn score(&mut self, window: &[f32]) -> Result<Vec<f32>> {
        self.window_lens.push(window.len());
        let row = self.rows[self.calls.min(self.rows.len() - 1)].clone();
        self.calls += 1;
        Ok(row)
    }
}

/// A tiny content-based classifier over log-mel windows: for each frame, is the energy in the
/// upper mel bins (32..64, above ~2.3 kHz) greater than in the lower ones (0..32)? `high` is
/// the fraction of such frames, `low` the fraction of other non-silent frames. Tones below/above ~2 kHz are told apart.
pub struct BandScorer {
    pub labels: Vec<String>,
    pub window_frames: usize,
    pub n_mels: usize,
}

impl BandScorer {
    pub fn new(low: &str, high: &str, window_frames: usize) -> Self {
        Self {
            labels: vec![low.to_string(), high.to_string()],
            window_frames,
            n_mels: 64,
        }
    }
}

impl WindowScorer for BandScorer {
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn window_frames(&self) -> usize {
        self.window_frames
    }
    fn score(&mut self, window: &[f32]) -> Result<Vec<f32>> {
        let half = self.n_mels / 2;
        let n = (window.len() / self.n_mels) as f32;
        // Near-silent frames (all bins below -60 dB) vote for neither label.
        let loud = |f: &&[f32]| f.iter().any(|&v| v > -60.0);
        let is_high = |f: &[f32]| f[half..].iter().sum::<f32>() > f[..half].iter().sum::<f32>();
        let frames: Vec<&[f32]> = window.chunks_exact(self.n_mels).filter(loud).collect();
        let high = frames.iter().filter(|f| is_high(f)).count() as f32;
        Ok(vec![(frames.len() as f32 - high) / n, high / n])
    }
}

/// `amp · sin(2π f t)` for `n` samples at `rate_hz`.
pub fn tone(rate_hz: u32, f_hz: f64, amp: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (amp * (2.0 * std::f64::consts::PI * f_hz * i as f64 / rate_hz as f64).sin()) as f32
        })
        .collect()
}
