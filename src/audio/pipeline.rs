//! The streaming audio path in one struct: device-rate samples -> sanitise -> resample ->
//! log-mel -> detector -> sound events and class cues.

use crate::audio::cues::{ClassCue, CueMap};
use crate::audio::detector::{Detector, DetectorConfig, DetectorStats, SoundEvent, WindowScorer};
use crate::audio::features::{LogMel, LogMelConfig};
use crate::audio::resample::StreamResampler;
use crate::audio::wav::sanitize;
use crate::Result;

/// Counters of an [`AudioPipeline`] since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PipelineStats {
    /// Input samples received (device rate).
    pub input_samples: u64,
    /// NaN/Inf input samples replaced by 0.
    pub non_finite_samples: u64,
    /// Samples at the model rate fed to the front-end.
    pub model_samples: u64,
    /// Log-mel frames computed.
    pub frames: u64,
    /// Detector counters.
    pub detector: DetectorStats,
}

/// Resample -> features -> detector -> cues, with reusable buffers: after the first chunk of a
/// given size, pushing does not allocate (beyond the event strings).
pub struct AudioPipeline<S: WindowScorer> {
    resampler: StreamResampler,
    features: LogMel,
    detector: Detector<S>,
    cue_map: CueMap,
    input: Vec<f32>,
    resampled: Vec<f32>,
    frames: Vec<f32>,
    new_events: Vec<SoundEvent>,
    stats: PipelineStats,
}

impl<S: WindowScorer> AudioPipeline<S> {
    /// Build the path for a source at `input_rate_hz`; the model rate is `features.sample_rate_hz`.
    pub fn new(
        features: LogMelConfig,
        detector: DetectorConfig,
        cue_map: CueMap,
        scorer: S,
        input_rate_hz: u32,
    ) -> Result<Self> {
        let detector = Detector::new(detector, &features, scorer)?;
        Ok(Self {
            resampler: StreamResampler::new(input_rate_hz, features.sample_rate_hz)?,
            features: LogMel::new(features)?,
            detector,
            cue_map,
            input: Vec::new(),
            resampled: Vec::new(),
            frames: Vec::new(),
            new_events: Vec::new(),
            stats: PipelineStats::default(),
        })
    }

    /// The detector (labels, smoothed scores, active events).
    pub fn detector(&self) -> &Detector<S> {
        &self.detector
    }

    /// The cue mapping in use.
    pub fn cue_map(&self) -> &CueMap {
        &self.cue_map
    }

    /// Counters since the start or the last reset.
    pub fn stats(&self) -> PipelineStats {
        PipelineStats {
            detector: self.detector.stats(),
            ..self.stats
        }
    }

    /// Worst-case delay in model-rate samples from a sound starting to the window that holds all
    /// of its first second being scored: resampler delay + one window + one hop.
    pub fn latency_samples(&self) -> usize {
        self.resampler.latency_samples() + self.detector.latency_samples()
    }

    /// Push `samples` captured at `rate_hz` (mono). A rate different from the previous push
    /// (a device reopened at another rate) flushes the resampler and rebuilds it; the timeline
    /// continues. Events and their cues are appended to `events` and `cues`.
    pub fn push(
        &mut self,
        samples: &[f32],
        rate_hz: u32,
        events: &mut Vec<SoundEvent>,
        cues: &mut Vec<ClassCue>,
    ) -> Result<()> {
        self.resampled.clear();
        if rate_hz != self.resampler.input_rate_hz() {
            self.resampler
                .set_input_rate(rate_hz, &mut self.resampled)?;
        }
        self.input.clear();
        self.input.extend_from_slice(samples);
        self.stats.input_samples += samples.len() as u64;
        self.stats.non_finite_samples += sanitize(&mut self.input) as u64;
        self.resampler.process(&self.input, &mut self.resampled)?;
        self.run_model_rate(events, cues)
    }

    /// End of stream: flush the resampler's tail through the detector.
    pub fn finish(&mut self, events: &mut Vec<SoundEvent>, cues: &mut Vec<ClassCue>) -> Result<()> {
        self.resampled.clear();
        self.resampler.flush(&mut self.resampled)?;
        self.run_model_rate(events, cues)
    }

    /// Change the detector's settings in place, keeping buffered audio and active events
    /// (see [`Detector::set_config`]).
    pub fn set_detector_config(&mut self, cfg: DetectorConfig) -> Result<()> {
        self.detector.set_config(cfg)
    }

    /// Forget all stream state (buffers, scores, events, counters).
    pub fn reset(&mut self) {
        self.resampler.reset();
        self.features.reset();
        self.detector.reset();
        self.stats = PipelineStats::default();
    }

    fn run_model_rate(
        &mut self,
        events: &mut Vec<SoundEvent>,
        cues: &mut Vec<ClassCue>,
    ) -> Result<()> {
        self.stats.model_samples += self.resampled.len() as u64;
        self.frames.clear();
        self.stats.frames += self.features.process(&self.resampled, &mut self.frames) as u64;
        self.new_events.clear();
        self.detector
            .process(&self.resampled, &self.frames, &mut self.new_events)?;
        for e in &self.new_events {
            self.cue_map.cues_for(e, cues);
        }
        events.append(&mut self.new_events);
        Ok(())
    }
}
