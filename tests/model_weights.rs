//! Weights I/O and the folded inference path: BN folding equals the BatchNorm path, safetensors
//! round trips, cutout-only loading, the streaming writer, and clear errors on bad files.

mod model_util;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use hlfp::model::{weights, HlfpModel, InferenceModel, ModelConfig, Selection, Variant};
use model_util::*;
use std::collections::HashMap;

const VARIANTS: [Variant; 5] = [
    Variant::HlfpSmall,
    Variant::HlfpNested,
    Variant::HlfpLateBigSp,
    Variant::Hlfp1bLateSp,
    Variant::Resnet50,
];

#[test]
fn folded_inference_equals_batchnorm_path() {
    let x = input(2);
    for v in VARIANTS {
        let c = cfg(v, 4);
        let m = model(&c, 11);
        let inf = InferenceModel::from_model(&m, None).unwrap();
        let gains = [1.0, 1.7, 0.4, 1.0];
        for sel in [
            Selection::all(&c),
            Selection::from_indices(&c, &[0, 2]).unwrap(),
        ] {
            let a = m.forward(&x, &sel, &gains).unwrap();
            let b = inf.forward(&x, &sel, &gains).unwrap();
            let d = max_diff(&a, &b);
            assert!(d < 1e-4, "{v} {:?}: folded differs by {d}", sel.classes());
        }
    }
}

#[test]
fn save_then_load_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let x = input(1);
    for v in [Variant::HlfpSmall, Variant::HlfpNested, Variant::Resnet18] {
        let c = cfg(v, 4);
        let m = model(&c, 12);
        let path = dir.path().join(format!("{v}.safetensors"));
        m.save_safetensors(&path).unwrap();
        let sel = Selection::all(&c);
        let want = m.forward(&x, &sel, &[]).unwrap();
        // Autograd path from the memory-mapped file.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu) }
            .unwrap();
        let again = HlfpModel::load(&c, vb).unwrap();
        assert_eq!(
            max_diff(&want, &again.forward(&x, &sel, &[]).unwrap()),
            0.0,
            "{v}"
        );
        // Folded path from the file.
        let inf = InferenceModel::load_file(&path, &c, None, &Device::Cpu).unwrap();
        assert!(
            max_diff(&want, &inf.forward(&x, &sel, &[]).unwrap()) < 1e-4,
            "{v}"
        );
    }
}

#[test]
fn cutout_loading_equals_full_load_cutout() {
    let dir = tempfile::tempdir().unwrap();
    let x = input(2);
    for v in [Variant::HlfpSmall, Variant::HlfpNested, Variant::HlfpBig] {
        let c = cfg(v, 6);
        let path = dir.path().join(format!("{v}.safetensors"));
        weights::write_random_safetensors(&path, &c, 13).unwrap();
        let full = InferenceModel::load_file(&path, &c, None, &Device::Cpu).unwrap();
        let cut_sel = Selection::from_indices(&c, &[1, 4, 5]).unwrap();
        let cut = InferenceModel::load_file(&path, &c, Some(&cut_sel), &Device::Cpu).unwrap();
        assert_eq!(cut.loaded_classes(), &[1, 4, 5]);
        let gains = [1.0, 1.3, 1.0, 1.0, 0.6, 1.0];
        for idx in [&[1usize, 4, 5][..], &[4], &[1, 5]] {
            let sel = Selection::from_indices(&c, idx).unwrap();
            let d = max_diff(
                &full.forward(&x, &sel, &gains).unwrap(),
                &cut.forward(&x, &sel, &gains).unwrap(),
            );
            assert!(d <= 1e-5, "{v} {idx:?}: {d}");
        }
        let e = cut
            .forward(&x, &Selection::from_indices(&c, &[0, 1]).unwrap(), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("class 0 is not loaded"), "{e}");
    }
}

#[test]
fn streamed_random_file_equals_in_memory_random_weights() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(Variant::HlfpSmall, 3);
    let path = dir.path().join("w.safetensors");
    let bytes = weights::write_random_safetensors(&path, &c, 21).unwrap();
    assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
    let mem = weights::random_tensors(&c, 21, &Device::Cpu).unwrap();
    let file = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert_eq!(file.len(), mem.len());
    for (name, t) in &mem {
        assert_eq!(max_diff(t, &file[name]), 0.0, "{name}");
    }
    // Every tensor named in the spec, e.g. the contract's branch and head names.
    for name in [
        "conv1.weight",
        "layer2.3.bn3.running_var",
        "branch.0.downsample.0.weight",
        "branch_fc.bias",
    ] {
        assert!(mem.contains_key(name), "{name}");
    }
}

#[test]
fn torchvision_trunk_names_and_branch_layout() {
    let c = ModelConfig::new(Variant::HlfpSmall, 10);
    let specs: HashMap<String, Vec<usize>> = weights::tensor_specs(&c)
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.shape))
        .collect();
    assert_eq!(specs["conv1.weight"], [64, 3, 7, 7]);
    assert_eq!(specs["layer1.0.downsample.0.weight"], [256, 64, 1, 1]);
    assert_eq!(specs["layer2.0.downsample.1.running_mean"], [512]);
    assert_eq!(specs["branch.0.conv1.weight"], [10 * 128, 512, 1, 1]);
    assert_eq!(specs["branch.0.downsample.0.weight"], [10 * 512, 512, 1, 1]);
    assert_eq!(specs["branch.1.conv1.weight"], [10 * 64, 512, 1, 1]);
    assert_eq!(specs["branch.1.conv2.weight"], [10 * 64, 64, 3, 3]);
    assert_eq!(specs["branch.2.conv3.weight"], [10 * 128, 32, 1, 1]);
    assert_eq!(specs["branch_fc.weight"], [10, 128]);
    let r = weights::tensor_specs(&ModelConfig::new(Variant::Resnet50, 1000)).unwrap();
    assert!(r
        .iter()
        .any(|s| s.name == "fc.weight" && s.shape == [1000, 2048]));
    assert!(r.iter().any(|s| s.name == "layer4.2.bn3.weight"));
}

#[test]
fn bad_weight_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(Variant::HlfpSmall, 3);
    let mut map = weights::random_tensors(&c, 31, &Device::Cpu).unwrap();
    let dev = Device::Cpu;

    map.remove("branch.1.bn2.running_var");
    let missing = dir.path().join("missing.safetensors");
    candle_core::safetensors::save(&map, &missing).unwrap();
    let e = InferenceModel::load_file(&missing, &c, None, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing tensor `branch.1.bn2.running_var`")
            && e.contains("missing.safetensors"),
        "{e}"
    );

    map.insert(
        "branch.1.bn2.running_var".into(),
        Tensor::ones(7, DType::F32, &dev).unwrap(),
    );
    let shaped = dir.path().join("shaped.safetensors");
    candle_core::safetensors::save(&map, &shaped).unwrap();
    let e = InferenceModel::load_file(&shaped, &c, None, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("branch.1.bn2.running_var") && e.contains("[7]") && e.contains("[24]"),
        "{e}"
    );
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&shaped], DType::F32, &dev) }.unwrap();
    assert!(HlfpModel::load(&c, vb).is_err());

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    let e = InferenceModel::load_file(&garbage, &c, None, &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid safetensors"), "{e}");
    let e = InferenceModel::load_file(dir.path().join("nope"), &c, None, &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");

    let other = cfg(Variant::HlfpSmall, 5);
    let e = InferenceModel::from_tensors(&c, &map, Some(&Selection::all(&other)), &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 classes"), "{e}");
}

#[test]
fn cutout_load_never_reads_other_branches_rows() {
    // Poison class 0's rows of a branch tensor in the file: a cutout without class 0 must not see
    // them (it reads only its own rows), while a full load does (class 0 only).
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(Variant::HlfpSmall, 4);
    let path = dir.path().join("w.safetensors");
    weights::write_random_safetensors(&path, &c, 41).unwrap();
    let sel = Selection::from_indices(&c, &[1, 3]).unwrap();
    let x = input(1);
    let clean = InferenceModel::load_file(&path, &c, Some(&sel), &Device::Cpu)
        .unwrap()
        .forward(&x, &sel, &[])
        .unwrap();
    let all = Selection::all(&c);
    let clean_full = InferenceModel::load_file(&path, &c, None, &Device::Cpu)
        .unwrap()
        .forward(&x, &all, &[])
        .unwrap();

    let mut bytes = std::fs::read(&path).unwrap();
    let (header_len, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let info = meta.info("branch.1.conv2.weight").unwrap();
    let (start, end) = (
        8 + header_len + info.data_offsets.0,
        8 + header_len + info.data_offsets.1,
    );
    let class0 = start..start + (end - start) / 4;
    bytes[class0].fill(0x41); // every weight becomes 12.08
    std::fs::write(&path, &bytes).unwrap();

    let cut = InferenceModel::load_file(&path, &c, Some(&sel), &Device::Cpu)
        .unwrap()
        .forward(&x, &sel, &[])
        .unwrap();
    assert_eq!(max_diff(&clean, &cut), 0.0);
    let full = InferenceModel::load_file(&path, &c, None, &Device::Cpu)
        .unwrap()
        .forward(&x, &all, &[])
        .unwrap();
    let (out, before) = (to_vec2(&full), to_vec2(&clean_full));
    assert!(
        (out[0][0] - before[0][0]).abs() > 1e-3,
        "poison did not reach class 0: {out:?}"
    );
    assert_eq!(out[0][1..], before[0][1..]);
}
