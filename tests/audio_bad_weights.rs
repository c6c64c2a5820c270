//! The audio classifier refuses weights holding NaN or infinity at load: a NaN weight makes
//! every window score NaN, and the detector then silently never fires.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use hlfp::audio::classifier::{AudioClassifier, AudioClassifierConfig, FeatureNorm};

fn saved_model(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let mut cfg = AudioClassifierConfig::new(vec!["bark".into(), "meow".into()], "test");
    cfg.window_frames = 16;
    cfg.n_mels = 8;
    cfg.channels = vec![4];
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let norm = FeatureNorm {
        mean: vec![-40.0; 8],
        std: vec![10.0; 8],
    };
    let model = AudioClassifier::new(cfg, norm, vb)?;
    let path = dir.join("good.safetensors");
    model.save(&path)?;
    Ok(path)
}

/// `good` with element 0 of `tensor` replaced by `value`.
fn poisoned(
    good: &std::path::Path,
    tensor: &str,
    value: f32,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(good)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let mut owned: Vec<(String, Tensor)> = Vec::new();
    for (name, view) in st.tensors() {
        let mut v: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if name == tensor {
            v[0] = value;
        }
        owned.push((name, Tensor::from_vec(v, view.shape(), &Device::Cpu)?));
    }
    safetensors::serialize_to_file(owned, header.metadata().clone(), out)?;
    Ok(())
}

#[test]
fn non_finite_audio_weights_are_refused_at_load() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let good = saved_model(dir.path())?;
    AudioClassifier::load(&good, &Device::Cpu)?;
    for (tensor, value) in [
        ("head.weight", f32::NAN),
        ("blocks.0.conv.weight", f32::INFINITY),
        ("head.bias", f32::NEG_INFINITY),
    ] {
        let bad = dir.path().join("bad.safetensors");
        poisoned(&good, tensor, value, &bad)?;
        let e = AudioClassifier::load(&bad, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(tensor) && e.contains("NaN or infinity"),
            "{tensor}={value}: {e}"
        );
    }
    Ok(())
}
