//! The runtime's vision classifier: bundle loading, preprocessing + GEMM engine, softmax over the
//! active set, MACs per active set, agreement with candle's folded model on the same input.

use candle_core::{Device, Tensor};
use hlfp::model::{InferenceModel, Selection};
use hlfp::pipeline::{Frame, FrameClassifier};
use hlfp::vision::classifier::{softmax, DeviceChoice, VisionClassifier};
use hlfp::vision::preprocess::{PreprocessConfig, Preprocessor};
use std::path::PathBuf;

fn weights() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity/hlfp_small_w8.safetensors")
}

fn frame(w: u32, h: u32) -> Frame {
    let rgb = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
    Frame {
        id: 7,
        stamp_ns: 1,
        frame_id: "cam".into(),
        width: w,
        height: h,
        rgb,
    }
}

#[test]
fn engine_classifier_agrees_with_candle_and_scores_over_the_active_set() {
    let mut clf = VisionClassifier::load_bundle(&weights(), DeviceChoice::Cpu, 2).unwrap();
    let cfg = clf.config().clone();
    assert_eq!(cfg.num_classes(), 3);
    let f = frame(80, 60);

    // Same preprocessing, candle's BN-folded model: the logits agree.
    let mut pre = Preprocessor::new(PreprocessConfig::imagenet(cfg.input_size)).unwrap();
    let x = pre.process(&f.rgb, 80, 60).unwrap();
    let s = cfg.input_size;
    let xt = Tensor::from_vec(x, (1, 3, s, s), &Device::Cpu).unwrap();
    let candle = InferenceModel::load_file(weights(), &cfg, None, &Device::Cpu).unwrap();
    let gains = [1.0, 1.6, 0.7];
    let want = candle
        .forward(&xt, &Selection::all(&cfg), &gains)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let got = clf.logits_rgb8(&f.rgb, 80, 60, &[0, 1, 2], &gains).unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-4, "engine {got:?} vs candle {want:?}");
    }

    // Scores are the softmax over the active set only (paper eq. 2), in active order.
    let full = clf.classify(&f, &[0, 1, 2], &[1.0; 3]).unwrap();
    let cut = clf.classify(&f, &[0, 2], &[1.0; 3]).unwrap();
    assert_eq!(
        cut.scores.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![0, 2]
    );
    let sum: f32 = cut.scores.iter().map(|s| s.1).sum();
    assert!((sum - 1.0).abs() < 1e-5);
    let logits = clf
        .logits_rgb8(&f.rgb, 80, 60, &[0, 1, 2], &[1.0; 3])
        .unwrap();
    let expect = softmax(&[logits[0], logits[2]]);
    assert!((cut.scores[0].1 - expect[0]).abs() < 1e-5);
    // Fewer branches, fewer MACs.
    assert!(cut.macs < full.macs, "{} !< {}", cut.macs, full.macs);
}

#[test]
fn bad_frames_and_bundles_are_errors() {
    let mut clf = VisionClassifier::load_bundle(&weights(), DeviceChoice::Cpu, 1).unwrap();
    let mut f = frame(10, 10);
    f.rgb.pop();
    assert!(clf.classify(&f, &[0], &[1.0; 3]).is_err());
    assert!(clf.classify(&frame(10, 10), &[5], &[1.0; 3]).is_err());
    let missing = PathBuf::from("/nonexistent/model.safetensors");
    let err = VisionClassifier::load_bundle(&missing, DeviceChoice::Cpu, 1)
        .err()
        .unwrap();
    assert!(err.to_string().contains("not found"), "{err}");
    // A weights file without its sidecar config names the config it looked for.
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("model.safetensors");
    std::fs::copy(weights(), &lone).unwrap();
    let err = VisionClassifier::load_bundle(&lone, DeviceChoice::Cpu, 1)
        .err()
        .unwrap();
    assert!(err.to_string().contains("model.json"), "{err}");
}
