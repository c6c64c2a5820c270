//! Training on a tiny synthetic set (two sine frequencies through the real front-end): the loss
//! falls, a seeded run is reproducible, and evaluation counts windows and clips right.

use candle_core::Device;
use hlfp::audio::classifier::{AudioClassifierConfig, Backbone};
use hlfp::audio::features::{log_mel, LogMelConfig};
use hlfp::audio::train::{
    clip_windows, evaluate, smoothed_cross_entropy, train, AudioStepInfo, Clip, TrainAudioConfig,
};

const WINDOW_FRAMES: usize = 16;
// n_fft + (frames - 1) * hop
const WINDOW_SAMPLES: usize = 512 + (WINDOW_FRAMES - 1) * 160;

fn tone(freq_hz: f32, amp: f32, phase: f32, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| amp * (std::f32::consts::TAU * freq_hz * i as f32 / 16000.0 + phase).sin())
        .collect()
}

/// Label 0 = 500 Hz, label 1 = 2500 Hz, at several levels.
fn clips(amps: &[f32], len: usize) -> Vec<Clip> {
    let mut out = Vec::new();
    for (i, &a) in amps.iter().enumerate() {
        for (label, f) in [(0usize, 500.0f32), (1, 2500.0)] {
            out.push(Clip {
                label,
                rel_path: format!("{label}/{i}.wav"),
                samples: tone(f, a, i as f32, len),
            });
        }
    }
    out
}

fn model_cfg() -> AudioClassifierConfig {
    let mut cfg = AudioClassifierConfig::new(vec!["low".into(), "high".into()], "log-mel default");
    cfg.window_frames = WINDOW_FRAMES;
    cfg.channels = vec![4, 8];
    cfg
}

fn train_cfg(steps: usize, seed: u64) -> TrainAudioConfig {
    let mut cfg = TrainAudioConfig::new(WINDOW_SAMPLES);
    cfg.epochs = 1;
    cfg.steps_per_epoch = steps;
    cfg.batch_size = 8;
    cfg.lr = 1e-2;
    cfg.seed = seed;
    cfg.norm_windows = 32;
    cfg.label_smoothing = 0.0;
    cfg.background_labels.clear();
    cfg
}

fn features(x: &[f32]) -> hlfp::Result<Vec<f32>> {
    log_mel(x, &LogMelConfig::default())
}

#[test]
fn loss_falls_and_held_out_tones_are_classified() -> anyhow::Result<()> {
    loss_falls_and_held_out_tones_are_classified_with(Backbone::Plain)
}

#[test]
fn a_mobilenet_backbone_learns_the_tones_too() -> anyhow::Result<()> {
    loss_falls_and_held_out_tones_are_classified_with(Backbone::MobileNet)
}

fn loss_falls_and_held_out_tones_are_classified_with(backbone: Backbone) -> anyhow::Result<()> {
    let mut mcfg = model_cfg();
    mcfg.backbone = backbone;
    let train_set = clips(&[0.05, 0.2, 0.5], 9600);
    let mut losses = Vec::new();
    let mut on_step = |s: AudioStepInfo| losses.push(s.loss);
    let model = train(
        mcfg,
        &train_set,
        &train_cfg(40, 1),
        &features,
        &Device::Cpu,
        &mut on_step,
    )?;
    assert_eq!(losses.len(), 40);
    let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = losses[35..].iter().sum::<f32>() / 5.0;
    assert!(
        last < 0.5 * first && last < 0.3,
        "{backbone:?}: loss {first} -> {last}"
    );

    // Other levels and a different length: 1.0 s gives 98 frames -> windows at 0, 25, 50, 75.
    let held = clips(&[0.1, 0.8], 16000);
    let report = evaluate(&model, &held, WINDOW_SAMPLES, 25, 0.5, &features)?;
    assert_eq!(report.total_windows, 4 * 4);
    for e in &report.per_label {
        assert_eq!((e.clips, e.windows), (2, 8), "{}", e.label);
        assert_eq!(e.clip_correct_mean, 2, "{}", e.label);
        assert_eq!(e.clip_correct_max, 2, "{}", e.label);
        assert_eq!(e.window_correct, 8, "{}", e.label);
        assert_eq!(e.clip_hit_at_threshold, 2, "{}", e.label);
        assert_eq!(e.false_windows, 0, "{}", e.label);
    }
    assert_eq!(report.confusion, vec![vec![2, 0], vec![0, 2]]);
    Ok(())
}

#[test]
fn same_seed_same_model_other_seed_other_model() -> anyhow::Result<()> {
    let train_set = clips(&[0.1, 0.4], 6000);
    let run = |seed| -> anyhow::Result<Vec<f32>> {
        let m = train(
            model_cfg(),
            &train_set,
            &train_cfg(3, seed),
            &features,
            &Device::Cpu,
            &mut |_| {},
        )?;
        let w = features(&tone(1000.0, 0.3, 0.0, WINDOW_SAMPLES))?;
        Ok(m.predict(&w)?)
    };
    let a = run(3)?;
    assert_eq!(a, run(3)?);
    assert_ne!(a, run(4)?);
    Ok(())
}

#[test]
fn clip_windows_pad_short_clips_and_step_by_the_hop() -> anyhow::Result<()> {
    // A 0.1 s clip is padded to one window.
    let w = clip_windows(
        &tone(500.0, 0.3, 0.0, 1600),
        WINDOW_SAMPLES,
        WINDOW_FRAMES,
        64,
        25,
        &features,
    )?;
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].len(), WINDOW_FRAMES * 64);
    // 5 s = 80000 samples -> 497 frames -> windows start at 0, 25, ..., 475 (20 windows).
    let w = clip_windows(
        &vec![0.01; 80_000],
        WINDOW_SAMPLES,
        WINDOW_FRAMES,
        64,
        25,
        &features,
    )?;
    assert_eq!(w.len(), 20);
    assert!(clip_windows(&[0.0; 10], WINDOW_SAMPLES, WINDOW_FRAMES, 64, 0, &features).is_err());
    Ok(())
}

#[test]
fn bad_training_inputs_are_errors() {
    let set = clips(&[0.1], 6000);
    let mut cfg = train_cfg(2, 1);
    cfg.batch_size = 1; // batch norm needs two
    assert!(train(
        model_cfg(),
        &set,
        &cfg,
        &features,
        &Device::Cpu,
        &mut |_| {}
    )
    .is_err());
    // A label without clips.
    let only_low: Vec<Clip> = set.into_iter().filter(|c| c.label == 0).collect();
    let err = train(
        model_cfg(),
        &only_low,
        &train_cfg(2, 1),
        &features,
        &Device::Cpu,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no training clips"), "{err}");
    // A front-end giving the wrong number of frames for the window.
    let short = |x: &[f32]| log_mel(&x[..x.len() - 160], &LogMelConfig::default());
    let err = train(
        model_cfg(),
        &clips(&[0.1], 6000),
        &train_cfg(2, 1),
        &short,
        &Device::Cpu,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("front-end gave"), "{err}");
}

#[test]
fn label_smoothing_matches_pytorch() -> anyhow::Result<()> {
    // import torch
    // l = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]]); y = torch.tensor([0, 1])
    // F.cross_entropy(l, y, label_smoothing=0.1).item()  # 1.6054563522338867
    // F.cross_entropy(l, y).item()                         # 1.5754563808441162
    let logits = candle_core::Tensor::new(&[[2.0f32, -1.0, 0.5], [0.1, 0.2, 3.0]], &Device::Cpu)?;
    let y = candle_core::Tensor::new(&[0u32, 1], &Device::Cpu)?;
    let smoothed = smoothed_cross_entropy(&logits, &y, 0.1)?.to_scalar::<f32>()?;
    let plain = smoothed_cross_entropy(&logits, &y, 0.0)?.to_scalar::<f32>()?;
    assert!((smoothed - 1.605_456_4).abs() < 1e-4, "{smoothed}");
    assert!((plain - 1.575_456_4).abs() < 1e-4, "{plain}");
    Ok(())
}

#[test]
fn label_smoothing_trains_and_is_validated() -> anyhow::Result<()> {
    let train_set = clips(&[0.05, 0.2, 0.5], 9600);
    let mut cfg = train_cfg(30, 1);
    cfg.label_smoothing = 0.2;
    let model = train(
        model_cfg(),
        &train_set,
        &cfg,
        &features,
        &Device::Cpu,
        &mut |_| {},
    )?;
    // Smoothing caps the confidence: the true label's probability stays well below 1 but the
    // tone is still classified.
    let p = model.predict(&features(&tone(500.0, 0.3, 0.0, WINDOW_SAMPLES))?)?;
    assert!(p[0] > 0.5 && p[0] < 0.99, "{p:?}");
    for bad in [-0.1, 1.0, f64::NAN] {
        let mut cfg = train_cfg(1, 1);
        cfg.label_smoothing = bad;
        let e = train(
            model_cfg(),
            &train_set,
            &cfg,
            &features,
            &Device::Cpu,
            &mut |_| {},
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("label_smoothing"), "{bad}: {e}");
    }
    Ok(())
}
