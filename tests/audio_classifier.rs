//! AudioClassifier: save -> load round trip, shapes, probabilities and bad input.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use hlfp::audio::classifier::{
    AudioClassifier, AudioClassifierConfig, Backbone, FeatureNorm, OutputKind, PoolingHead,
    WindowNorm,
};
use rand::{Rng, SeedableRng};

fn labels(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("label_{i}")).collect()
}

fn small_cfg() -> AudioClassifierConfig {
    let mut cfg = AudioClassifierConfig::new(labels(5), "test front-end");
    cfg.window_frames = 32;
    cfg.n_mels = 16;
    cfg.channels = vec![4, 8];
    cfg
}

fn random_windows(n: usize, len: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..len).map(|_| rng.random_range(-80.0..0.0)).collect())
        .collect()
}

/// A model with non-trivial batch-norm statistics and feature norm, so a round trip that
/// dropped either would change the predictions.
fn trained_looking_model(cfg: AudioClassifierConfig) -> anyhow::Result<AudioClassifier> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let n = cfg.n_mels;
    let norm = FeatureNorm {
        mean: (0..n).map(|i| -40.0 + i as f32).collect(),
        std: (0..n).map(|i| 5.0 + 0.1 * i as f32).collect(),
    };
    let model = AudioClassifier::new(cfg.clone(), norm, vb)?;
    // Seeded weights: candle's own init is not, and a test must not depend on the draw.
    hlfp::audio::train::seeded_init(&varmap, 13, &dev)?;
    let flat: Vec<f32> = random_windows(8, cfg.window_len(), 3).concat();
    let x = Tensor::from_vec(flat, (8, cfg.window_frames, cfg.n_mels), &dev)?;
    for _ in 0..3 {
        model.forward_t(&x, true)?; // updates the running statistics
    }
    Ok(model)
}

/// A loaded model scores with batch norm folded into its convs (`Stages::fold`), the trained
/// one with the batch-norm ops: the same scores up to float rounding.
fn assert_same_scores(trained: &[f32], loaded: &[f32]) {
    assert_eq!(trained.len(), loaded.len());
    for (a, b) in trained.iter().zip(loaded) {
        assert!((a - b).abs() <= 1e-5, "{trained:?} vs {loaded:?}");
    }
}

/// `model` written to a temporary file and read back; the directory lives as long as the guard.
fn save_and_load(
    model: &AudioClassifier,
) -> anyhow::Result<(AudioClassifier, tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.safetensors");
    model.save(&path)?;
    Ok((AudioClassifier::load(&path, &Device::Cpu)?, dir, path))
}

#[test]
fn save_then_load_gives_identical_predictions_and_metadata() -> anyhow::Result<()> {
    let cfg = small_cfg();
    let model = trained_looking_model(cfg.clone())?;
    let (loaded, _dir, _) = save_and_load(&model)?;
    assert_eq!(loaded.labels(), cfg.labels.as_slice());
    assert_eq!(loaded.window_frames(), 32);
    assert_eq!(loaded.n_mels(), 16);
    assert_eq!(loaded.config(), model.config());
    assert_eq!(loaded.feature_norm(), model.feature_norm());
    for w in random_windows(4, cfg.window_len(), 11) {
        assert_same_scores(&model.predict(&w)?, &loaded.predict(&w)?);
    }
    Ok(())
}

#[test]
fn attention_head_round_trips_and_sums_frame_logits() -> anyhow::Result<()> {
    let mut cfg = small_cfg();
    cfg.head = PoolingHead::Attention;
    let model = trained_looking_model(cfg.clone())?;
    let (loaded, _dir, _) = save_and_load(&model)?;
    assert_eq!(loaded.config().head, PoolingHead::Attention);
    for w in random_windows(3, cfg.window_len(), 17) {
        let p = loaded.predict(&w)?;
        assert_same_scores(&model.predict(&w)?, &p);
        assert_eq!(p.len(), 5);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // Names parse to heads; unknown names are refused.
    assert_ne!(PoolingHead::parse("attention")?, PoolingHead::MeanMax);
    assert!(PoolingHead::parse("avg").is_err());
    Ok(())
}

#[test]
fn band_mean_norm_round_trips_and_ignores_a_microphones_colouration() -> anyhow::Result<()> {
    // A fixed dB offset per mel band (a microphone's or a room's colouration, plus a gain) must
    // not change a `band_mean` model's scores, and must change a model without it.
    let offsets: Vec<f32> = (0..16)
        .map(|b| 6.0 * ((b as f32) * 0.7).sin() - 4.0)
        .collect();
    let coloured = |w: &[f32]| -> Vec<f32> {
        w.iter()
            .enumerate()
            .map(|(i, v)| v + offsets[i % 16])
            .collect()
    };
    let mut cfg = small_cfg();
    cfg.head = PoolingHead::Attention;
    cfg.window_norm = WindowNorm::BandMean;
    let model = trained_looking_model(cfg.clone())?;
    let (loaded, _dir, _) = save_and_load(&model)?;
    assert_eq!(loaded.config().window_norm, WindowNorm::BandMean);
    cfg.window_norm = WindowNorm::None;
    let plain = trained_looking_model(cfg.clone())?;
    for w in random_windows(3, cfg.window_len(), 23) {
        let p = loaded.predict(&w)?;
        assert_same_scores(&model.predict(&w)?, &p);
        let q = loaded.predict(&coloured(&w))?;
        let moved = p
            .iter()
            .zip(&q)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(moved < 1e-4, "band_mean scores moved by {moved}");
        let (a, b) = (plain.predict(&w)?, plain.predict(&coloured(&w))?);
        let moved = a
            .iter()
            .zip(&b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            moved > 1e-3,
            "without band_mean the offset should move scores ({moved})"
        );
    }
    assert!(WindowNorm::parse("cmn").is_err());
    Ok(())
}

#[test]
fn sigmoid_output_round_trips_and_scores_each_label_on_its_own() -> anyhow::Result<()> {
    let mut cfg = small_cfg();
    cfg.head = PoolingHead::Attention;
    cfg.output = OutputKind::Sigmoid;
    let model = trained_looking_model(cfg.clone())?;
    let (loaded, _dir, _) = save_and_load(&model)?;
    assert_eq!(loaded.config().output, OutputKind::Sigmoid);
    // Each score is the sigmoid of its own logit: they need not sum to 1.
    for w in random_windows(3, cfg.window_len(), 29) {
        let p = loaded.predict(&w)?;
        assert_same_scores(&model.predict(&w)?, &p);
        let x = Tensor::from_vec(w.clone(), (1, cfg.window_frames, cfg.n_mels), &Device::Cpu)?;
        let logits = loaded
            .forward_t(&x, false)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for (s, l) in p.iter().zip(&logits) {
            assert!(
                (s - 1.0 / (1.0 + (-l).exp())).abs() < 1e-6,
                "{s} vs sigmoid({l})"
            );
        }
        assert!(
            (p.iter().sum::<f32>() - 1.0).abs() > 1e-3,
            "sigmoid scores do not sum to 1"
        );
    }
    assert!(OutputKind::parse("tanh").is_err());
    Ok(())
}

#[test]
fn a_sigmoid_model_trains_on_binary_cross_entropy() -> anyhow::Result<()> {
    // `train_step` returns the loss it stepped on: for a sigmoid model it must be the
    // one-vs-rest BCE of the batch's logits, not the softmax cross-entropy.
    let dev = Device::Cpu;
    for output in [OutputKind::Sigmoid, OutputKind::Softmax] {
        let mut cfg = small_cfg();
        cfg.output = output;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let model = AudioClassifier::new(cfg.clone(), FeatureNorm::identity(cfg.n_mels), vb)?;
        let xs: Vec<f32> = random_windows(4, cfg.window_len(), 31).concat();
        let ys = vec![0u32, 3, 1, 3];
        let x = Tensor::from_vec(xs.clone(), (4, cfg.window_frames, cfg.n_mels), &dev)?;
        let logits = model.forward_t(&x, true)?;
        let mut one_hot = vec![0f32; 4 * 5];
        ys.iter()
            .enumerate()
            .for_each(|(i, &y)| one_hot[i * 5 + y as usize] = 1.0);
        let t = Tensor::from_vec(one_hot, (4, 5), &dev)?;
        let bce = hlfp::audio::train::binary_cross_entropy(&logits, &t, 0.1)?.to_scalar::<f32>()?;
        let ce = hlfp::audio::train::soft_cross_entropy(&logits, &t, 0.1)?.to_scalar::<f32>()?;
        let mut opt: candle_nn::AdamW =
            candle_nn::Optimizer::new(varmap.all_vars(), Default::default())?;
        let loss = hlfp::audio::train::train_step(&model, &mut opt, xs, ys, 0.1, &dev)?;
        let want = if output == OutputKind::Sigmoid {
            bce
        } else {
            ce
        };
        assert!(
            (loss - want).abs() < 1e-4,
            "{output:?}: loss {loss}, want {want} (bce {bce}, ce {ce})"
        );
        assert!(
            (bce - ce).abs() > 1e-2,
            "the two losses must differ for the test to mean anything"
        );
    }
    Ok(())
}

#[test]
fn mobilenet_backbone_round_trips_and_differs_from_plain() -> anyhow::Result<()> {
    let mut cfg = small_cfg();
    cfg.backbone = Backbone::MobileNet;
    cfg.head = PoolingHead::Attention;
    let model = trained_looking_model(cfg.clone())?;
    let (loaded, _dir, path) = save_and_load(&model)?;
    assert_eq!(loaded.config().backbone, Backbone::MobileNet);
    assert_eq!(loaded.config(), model.config());
    // Every inverted-residual weight and batch-norm statistic was written and read back.
    let ws = random_windows(4, cfg.window_len(), 11);
    for w in &ws {
        assert_same_scores(&model.predict(w)?, &loaded.predict(w)?);
    }
    let st = safetensors::SafeTensors::deserialize(&std::fs::read(&path)?)?
        .names()
        .into_iter()
        .filter(|n| n.contains(".depthwise.bn.running_var"))
        .count();
    assert_eq!(
        st, 2,
        "one pooling and one residual block in the second stage"
    );
    // A plain model of the same channels is a different network.
    let plain = trained_looking_model(small_cfg())?;
    assert_ne!(plain.predict(&ws[0])?, model.predict(&ws[0])?);
    Ok(())
}

#[test]
fn batch_norm_statistics_are_saved() -> anyhow::Result<()> {
    // A fresh model (running mean 0, var 1) must predict differently from one whose statistics
    // were updated; otherwise the round-trip test above would not cover them.
    let cfg = small_cfg();
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let fresh = AudioClassifier::new(
        cfg.clone(),
        FeatureNorm::identity(cfg.n_mels),
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
    )?;
    let w = &random_windows(1, cfg.window_len(), 5)[0];
    let before = fresh.predict(w)?;
    let x = Tensor::from_vec(
        random_windows(8, cfg.window_len(), 3).concat(),
        (8, 32, 16),
        &dev,
    )?;
    fresh.forward_t(&x, true)?;
    let after = fresh.predict(w)?;
    assert_ne!(before, after);
    Ok(())
}

#[test]
fn predictions_are_probabilities_and_batch_matches_single() -> anyhow::Result<()> {
    let cfg = small_cfg();
    let model = trained_looking_model(cfg.clone())?;
    let windows = random_windows(6, cfg.window_len(), 21);
    let refs: Vec<&[f32]> = windows.iter().map(|w| w.as_slice()).collect();
    let batch = model.predict_batch(&refs)?;
    assert_eq!(batch.len(), 6);
    for (w, pb) in windows.iter().zip(&batch) {
        assert_eq!(pb.len(), 5);
        let sum: f32 = pb.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "sum {sum}");
        assert!(pb.iter().all(|p| (0.0..=1.0).contains(p)));
        let single = model.predict(w)?;
        for (a, b) in single.iter().zip(pb) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
    assert!(model.predict_batch(&[])?.is_empty());
    Ok(())
}

#[test]
fn wrong_length_and_non_finite_windows_are_errors() -> anyhow::Result<()> {
    let cfg = small_cfg();
    let model = trained_looking_model(cfg.clone())?;
    let err = model
        .predict(&vec![0.0; cfg.window_len() - 1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected 32 frames x 16 mels = 512"), "{err}");
    let mut w = vec![-50.0; cfg.window_len()];
    w[7] = f32::NAN;
    let err = model.predict(&w).unwrap_err().to_string();
    assert!(
        err.contains("non-finite") && err.contains("index 7"),
        "{err}"
    );
    w[7] = f32::INFINITY;
    assert!(model.predict(&w).is_err());
    let x = Tensor::zeros((1, 31, 16), DType::F32, &Device::Cpu)?;
    assert!(model.forward_t(&x, false).is_err());
    Ok(())
}

#[test]
fn bad_files_are_clear_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = AudioClassifier::load(dir.path().join("nope.safetensors"), &Device::Cpu);
    assert!(missing
        .unwrap_err()
        .to_string()
        .contains("nope.safetensors"));

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file")?;
    let err = AudioClassifier::load(&garbage, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a safetensors file"), "{err}");

    // Valid safetensors, but no metadata: a generic checkpoint, not one of ours.
    let plain = dir.path().join("plain.safetensors");
    let t = Tensor::zeros(3, DType::F32, &Device::Cpu)?;
    candle_core::safetensors::save(&std::collections::HashMap::from([("x", t)]), &plain)?;
    let err = AudioClassifier::load(&plain, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("__metadata__"), "{err}");

    // Our file with a tensor missing.
    let model = trained_looking_model(small_cfg())?;
    let good = dir.path().join("good.safetensors");
    model.save(&good)?;
    let bytes = std::fs::read(&good)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "head.weight")
        .collect();
    let cut = dir.path().join("cut.safetensors");
    safetensors::serialize_to_file(kept, header.metadata().clone(), &cut)?;
    let err = AudioClassifier::load(&cut, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("head"), "{err}");
    Ok(())
}

#[test]
fn invalid_configs_are_rejected() {
    let dev = Device::Cpu;
    let make = |cfg: AudioClassifierConfig, norm: FeatureNorm| {
        let varmap = VarMap::new();
        AudioClassifier::new(
            cfg,
            norm,
            VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        )
    };
    let mut dup = small_cfg();
    dup.labels = vec!["cat".into(), "cat".into()];
    assert!(make(dup, FeatureNorm::identity(16)).is_err());
    let mut empty = small_cfg();
    empty.labels.clear();
    assert!(make(empty, FeatureNorm::identity(16)).is_err());
    let mut tiny = small_cfg();
    tiny.window_frames = 3; // two 2x2 pools need >= 4 frames
    assert!(make(tiny, FeatureNorm::identity(16)).is_err());
    assert!(make(small_cfg(), FeatureNorm::identity(15)).is_err());
    let zero_std = FeatureNorm {
        mean: vec![0.0; 16],
        std: vec![0.0; 16],
    };
    assert!(make(small_cfg(), zero_std).is_err());
}

#[test]
fn feature_norm_is_per_bin_mean_and_std() -> anyhow::Result<()> {
    // Two frames of 2 bins: bin 0 = {1, 3} (mean 2, std 1), bin 1 = {5, 5} (std floored).
    let norm = FeatureNorm::from_windows(&[vec![1.0, 5.0, 3.0, 5.0]], 2)?;
    assert_eq!(norm.mean, vec![2.0, 5.0]);
    assert!((norm.std[0] - 1.0).abs() < 1e-6);
    assert_eq!(norm.std[1], 1e-3);
    assert!(FeatureNorm::from_windows(&[vec![1.0, 2.0, 3.0]], 2).is_err());
    assert!(FeatureNorm::from_windows(&[], 2).is_err());
    Ok(())
}

#[test]
fn shipped_model_loads_with_its_labels_and_front_end() -> anyhow::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/audio_cues.safetensors");
    let model = AudioClassifier::load(path, &Device::Cpu)?;
    // Every folder of audio/ and audio_extra/ is a label (issue 15).
    // With scripts/debian_sounds.py's clips: `animal` and `sfx` (sound effects) too.
    assert_eq!(model.labels().len(), 45);
    for l in [
        "cat",
        "dog",
        "chainsaw",
        "rain",
        "crying_baby",
        "speech",
        "rooster",
        "animal",
        "sfx",
    ] {
        assert!(model.labels().iter().any(|m| m == l), "missing {l}");
    }
    assert_eq!((model.window_frames(), model.n_mels()), (64, 64));
    assert_eq!(model.config().head, PoolingHead::Attention);
    assert_eq!(model.config().output, OutputKind::Sigmoid);
    assert_eq!(model.config().backbone, Backbone::MobileNet);
    // The model must have been trained on the front-end the detector runs.
    let fe: hlfp::audio::features::LogMelConfig = serde_json::from_str(&model.config().front_end)?;
    assert_eq!(fe, hlfp::audio::features::LogMelConfig::default());
    let p = model.predict(&vec![-60.0; 64 * 64])?;
    assert_eq!(p.len(), 45);
    assert!(p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));

    // The long-window members (two seeds of one recipe): same labels, front-end and network
    // shape, a 0.97 s window, and different weights.
    let mut outputs = Vec::new();
    for file in [
        "audio_cues_long_cue4.safetensors",
        "audio_cues_long_cue4_seed2.safetensors",
    ] {
        let long = format!("{}/models/{file}", env!("CARGO_MANIFEST_DIR"));
        let long = AudioClassifier::load(long, &Device::Cpu)?;
        assert_eq!(long.labels(), model.labels(), "{file}");
        assert_eq!((long.window_frames(), long.n_mels()), (96, 64), "{file}");
        assert_eq!(long.config().front_end, model.config().front_end, "{file}");
        assert_eq!(long.config().backbone, Backbone::MobileNet, "{file}");
        outputs.push(long.predict(&vec![-60.0; 96 * 64])?);
    }
    assert_ne!(outputs[0], outputs[1], "the two seeds are the same model");
    // The default spec joins the three; the ensemble slides the longest window.
    let spec = hlfp::audio::ensemble::map_paths(hlfp::audio::DEFAULT_MODEL, |p| {
        format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
    });
    let ensemble =
        hlfp::audio::ensemble::Ensemble::load(std::path::Path::new(&spec), &Device::Cpu)?;
    assert_eq!(ensemble.members().len(), 3);
    use hlfp::audio::detector::WindowScorer;
    assert_eq!(ensemble.window_frames(), 96);
    assert_eq!(ensemble.labels(), model.labels());
    Ok(())
}
