//! The audio cue source: a WAV replay through the real streaming pipeline (resampler, log-mel,
//! detector, cue map) on its own thread, delivering class cues to the runtime's cue interface.

mod audio_common;

use audio_common::{tone, BandScorer};
use hlfp::audio::cues::CueMap;
use hlfp::audio::detector::DetectorConfig;
use hlfp::audio::features::LogMelConfig;
use hlfp::audio::pipeline::AudioPipeline;
use hlfp::pipeline::{AudioCueSource, AudioInput, CueSource, WavReplay};
use std::collections::BTreeMap;

fn pipeline(rate_hz: u32) -> AudioPipeline<BandScorer> {
    let scorer = BandScorer::new("hum", "dog", 100);
    let mut cues = BTreeMap::new();
    cues.insert(
        "dog".to_string(),
        vec!["dog".to_string(), "english_springer".to_string()],
    );
    let classes: Vec<String> = ["cat", "dog", "english_springer"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let labels = vec!["hum".to_string(), "dog".to_string()];
    let map = CueMap::new(&cues, &labels, &classes).unwrap();
    AudioPipeline::new(
        LogMelConfig::default(),
        DetectorConfig::default(),
        map,
        scorer,
        rate_hz,
    )
    .unwrap()
}

/// 2 s of silence, 2 s of a 4 kHz tone (the "dog" band), 2 s of silence, at `rate_hz`.
fn scene(rate_hz: u32) -> Vec<f32> {
    let n = rate_hz as usize * 2;
    let mut x = vec![0.0; n];
    x.extend(tone(rate_hz, 4000.0, 0.3, n));
    x.extend(vec![0.0; n]);
    x
}

async fn drain(mut src: AudioCueSource) -> Vec<hlfp::Result<hlfp::pipeline::CueInput>> {
    let mut out = Vec::new();
    while let Some(c) = src.next_cue().await {
        out.push(c);
    }
    out
}

#[tokio::test]
async fn a_replayed_sound_becomes_cues_for_every_mapped_class() {
    for rate in [16_000, 44_100, 48_000] {
        let replay = WavReplay::new(scene(rate), rate, 20, false).unwrap();
        let (src, thread) = AudioCueSource::spawn(pipeline(rate), replay).unwrap();
        let got = drain(src).await;
        let summary = thread.join().unwrap();
        let classes: Vec<String> = got
            .iter()
            .map(|c| c.as_ref().unwrap().class.clone())
            .collect();
        assert_eq!(classes, ["dog", "english_springer"], "{rate} Hz");
        for c in &got {
            let c = c.as_ref().unwrap();
            assert_eq!(c.source, "audio");
            assert!(c.score >= 0.6, "{rate} Hz: score {}", c.score);
        }
        assert_eq!(summary.events.len(), 1, "{rate} Hz: {:?}", summary.events);
        let onset = summary.events[0].onset_s;
        assert!(
            (1.5..=3.2).contains(&onset),
            "{rate} Hz: onset {onset} s for a sound starting at 2 s"
        );
        assert_eq!(summary.stats.input_samples, 6 * rate as u64);
        assert!(summary.error.is_none());
    }
}

#[tokio::test]
async fn silence_gives_no_cue() {
    let replay = WavReplay::new(vec![0.0; 48_000], 16_000, 20, false).unwrap();
    let (src, thread) = AudioCueSource::spawn(pipeline(16_000), replay).unwrap();
    assert!(drain(src).await.is_empty());
    assert!(thread.join().unwrap().events.is_empty());
}

/// A paced replay hands chunks over no faster than real time.
#[tokio::test]
async fn paced_replay_keeps_to_real_time() {
    let mut replay = WavReplay::new(vec![0.0; 4_000], 16_000, 50, true).unwrap();
    let t = std::time::Instant::now();
    let mut n = 0;
    while let Some((chunk, rate)) = replay.next_chunk().unwrap() {
        assert_eq!(rate, 16_000);
        n += chunk.len();
    }
    assert_eq!(n, 4_000);
    assert!(t.elapsed().as_secs_f64() >= 0.24, "{:?}", t.elapsed());
}

struct Broken(u32);

impl AudioInput for Broken {
    fn next_chunk(&mut self) -> hlfp::Result<Option<(Vec<f32>, u32)>> {
        self.0 += 1;
        if self.0 > 3 {
            Err(hlfp::Error::BadInput("device unplugged".into()))
        } else {
            Ok(Some((vec![0.0; 320], 16_000)))
        }
    }
}

#[tokio::test]
async fn an_input_error_reaches_the_runtime_and_the_summary() {
    let (src, thread) = AudioCueSource::spawn(pipeline(16_000), Broken(0)).unwrap();
    let got = drain(src).await;
    assert_eq!(got.len(), 1);
    assert!(got[0]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("unplugged"));
    let s = thread.join().unwrap();
    assert!(s.error.unwrap().contains("unplugged"));
    assert_eq!(s.stats.input_samples, 960);
}

#[test]
fn replay_settings_are_checked() {
    assert!(WavReplay::new(vec![0.0], 0, 20, false).is_err());
    assert!(WavReplay::new(vec![0.0], 16_000, 0, false).is_err());
    assert_eq!(
        WavReplay::new(vec![0.0; 8_000], 16_000, 20, false)
            .unwrap()
            .duration_s(),
        0.5
    );
}
