//! The differential test of the one model description: every variant in `Variant::ALL` (width
//! 1/8) through the training path (BatchNorm unfolded), the CPU engine and candle's backend,
//! each loaded whole and as a cutout (only the selected branches' rows read), for the full
//! model, a cutout, a cutout with gains and (nested) a cutout spanning two superclasses. Any
//! drift between backends, in BatchNorm folding, cutout slicing, the nested gather or the gain
//! stage shows up here. `tests/parity.rs` and [`pytorch_fixtures_on_both_backends`] tie the same
//! paths to PyTorch.

mod model_util;

use candle_core::{Device, Tensor};
use hlfp::model::{
    weights, Backend, InferenceModel, InferenceOptions, ModelConfig, Selection, Variant,
};
use model_util::{cfg, input, max_diff as max_abs_diff};
use std::collections::HashMap;
use std::path::PathBuf;

const TOL: f32 = 1e-4;
const K: usize = 6;

fn opts(backend: Backend) -> InferenceOptions {
    InferenceOptions::for_device(&Device::Cpu)
        .with_backend(backend)
        .with_threads(2)
}

/// The cases: (name, selection, gains). Nested: classes 1 and 4 read superclasses 0 and 2.
fn cases(c: &ModelConfig) -> Vec<(&'static str, Selection, Vec<f32>)> {
    let k = c.num_classes();
    let ones = vec![1.0f32; k];
    let gains: Vec<f32> = (0..k).map(|i| 0.6 + 0.35 * i as f32).collect();
    let cut = Selection::from_indices(c, &[1, 4]).unwrap();
    let mut v = vec![
        ("full", Selection::all(c), ones.clone()),
        ("cutout", cut.clone(), ones.clone()),
        ("cutout with gains", cut, gains.clone()),
        ("full with gains", Selection::all(c), gains.clone()),
    ];
    if c.variant == Variant::HlfpNested {
        let nested = Selection::from_indices(c, &[0, 1, 5]).unwrap();
        assert_eq!(nested.superclasses(), &[0, 2]);
        v.push(("nested cutout", nested.clone(), ones));
        v.push(("nested cutout with gains", nested, gains));
    }
    v
}

fn differential(variant: Variant) {
    let c = cfg(variant, K);
    let map = weights::random_tensors(&c, 7, &Device::Cpu).unwrap();
    let reference = model_util::model(&c, 7);
    let x = input(2);
    let full: HashMap<Backend, InferenceModel> = [Backend::Engine, Backend::Candle]
        .into_iter()
        .map(|b| {
            let m = InferenceModel::from_tensors_with(&c, &map, None, &opts(b)).unwrap();
            assert_eq!(m.backend(), b);
            (b, m)
        })
        .collect();
    for (case, sel, gains) in cases(&c) {
        let want = reference.forward(&x, &sel, &gains).unwrap();
        assert_eq!(want.dims(), &[2, sel.len()]);
        for b in [Backend::Engine, Backend::Candle] {
            let got = full[&b].forward(&x, &sel, &gains).unwrap();
            let d = max_abs_diff(&got, &want);
            assert!(d <= TOL, "{variant} {case}, {b} (whole model): off by {d}");
            // Loaded as a cutout: only the selection's rows, the same logits.
            let cut = InferenceModel::from_tensors_with(&c, &map, Some(&sel), &opts(b)).unwrap();
            let got = cut.forward(&x, &sel, &gains).unwrap();
            let d = max_abs_diff(&got, &want);
            assert!(d <= TOL, "{variant} {case}, {b} (cutout load): off by {d}");
            if variant.is_branched() {
                assert_eq!(cut.loaded_classes(), sel.classes(), "{variant} {b}");
            }
        }
    }
    // Gains move a branched model's logits and leave the others' alone.
    let all = Selection::all(&c);
    let plain = full[&Backend::Engine].forward(&x, &all, &[1.0; K]).unwrap();
    let mut g = vec![1.0f32; K];
    g[2] = 1.8;
    let gained = full[&Backend::Engine].forward(&x, &all, &g).unwrap();
    let moved = max_abs_diff(&plain, &gained);
    if variant.is_branched() {
        assert!(moved > 1e-3, "{variant}: a gain of 1.8 changed nothing");
    } else {
        assert_eq!(moved, 0.0, "{variant}: gains must not apply");
    }
}

#[test]
fn hlfp_small_backends_agree() {
    differential(Variant::HlfpSmall);
}

#[test]
fn hlfp_big_backends_agree() {
    differential(Variant::HlfpBig);
}

#[test]
fn hlfp_late_sp_backends_agree() {
    differential(Variant::HlfpLateSp);
}

#[test]
fn hlfp_1b_late_sp_backends_agree() {
    differential(Variant::Hlfp1bLateSp);
}

#[test]
fn hlfp_nested_backends_agree() {
    differential(Variant::HlfpNested);
}

#[test]
fn hlfp_late_big_sp_backends_agree() {
    differential(Variant::HlfpLateBigSp);
}

#[test]
fn resnet18_backends_agree() {
    differential(Variant::Resnet18);
}

#[test]
fn resnet50_backends_agree() {
    differential(Variant::Resnet50);
}

#[test]
fn resnet152_backends_agree() {
    differential(Variant::Resnet152);
}

#[test]
fn the_differential_covers_every_variant() {
    // One test per variant above; this fails when a variant is added without one.
    let src = include_str!("backend_parity.rs");
    for v in Variant::ALL {
        let name = format!("differential(Variant::{v:?});");
        assert!(src.contains(&name), "no differential test for {v}");
    }
}

/// The PyTorch fixtures (tests/fixtures/parity, from scripts/make_parity_fixtures.py) on both
/// backends, each loaded whole and as the fixture's cutout.
#[test]
fn pytorch_fixtures_on_both_backends() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.ok()?.file_name().into_string().ok()?;
            let stem = n.strip_suffix(".json")?;
            Some(stem.to_string())
        })
        .collect();
    names.sort();
    let mut covered = std::collections::HashSet::new();
    for name in &names {
        let cfg: ModelConfig = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        covered.insert(cfg.variant);
        let weights = dir.join(format!("{name}.safetensors"));
        let io = candle_core::safetensors::load(
            dir.join(format!("{name}.io.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        let k = cfg.num_classes();
        let idx = |key: &str| -> Vec<usize> {
            io[key]
                .to_vec1::<i64>()
                .unwrap()
                .iter()
                .map(|&i| i as usize)
                .collect()
        };
        let all = Selection::all(&cfg);
        let cut = Selection::from_indices(&cfg, &idx("cutout")).unwrap();
        let gains = io["gains"].to_vec1::<f32>().unwrap();
        let ones = vec![1.0f32; k];
        let x = &io["input"];
        let mut checks: Vec<(&str, &Selection, &[f32], &str)> = vec![
            ("full", &all, &ones, "logits_full"),
            ("cutout", &cut, &ones, "logits_cutout"),
            ("gains", &all, &gains, "logits_gain"),
        ];
        if io.contains_key("logits_cutout_gain") {
            checks.push(("cutout with gains", &cut, &gains, "logits_cutout_gain"));
        }
        let cut2 = io
            .contains_key("cutout2")
            .then(|| Selection::from_indices(&cfg, &idx("cutout2")).unwrap());
        if let Some(c2) = &cut2 {
            checks.push(("second cutout", c2, &ones, "logits_cutout2"));
            checks.push((
                "second cutout with gains",
                c2,
                &gains,
                "logits_cutout2_gain",
            ));
        }
        for b in [Backend::Engine, Backend::Candle] {
            let whole = InferenceModel::load_file_with(&weights, &cfg, None, &opts(b)).unwrap();
            for (case, sel, g, key) in &checks {
                let want: &Tensor = &io[*key];
                let d = max_abs_diff(&whole.forward(x, sel, g).unwrap(), want);
                assert!(d <= TOL, "{name} {case} on {b}: off PyTorch by {d}");
                let part =
                    InferenceModel::load_file_with(&weights, &cfg, Some(sel), &opts(b)).unwrap();
                let d = max_abs_diff(&part.forward(x, sel, g).unwrap(), want);
                assert!(
                    d <= TOL,
                    "{name} {case} on {b}, cutout load: off PyTorch by {d}"
                );
            }
        }
    }
    for v in Variant::ALL {
        assert!(
            covered.contains(&v),
            "no PyTorch fixture for {v} in {}",
            dir.display()
        );
    }
}

#[test]
fn the_engine_refuses_a_gpu_and_names_itself() {
    let c = cfg(Variant::HlfpSmall, 3);
    let map = weights::random_tensors(&c, 1, &Device::Cpu).unwrap();
    let m = InferenceModel::from_tensors(&c, &map, None, &Device::Cpu).unwrap();
    assert_eq!(
        m.backend(),
        Backend::Engine,
        "CPU deployments run the engine"
    );
    assert_eq!("candle".parse::<Backend>().unwrap(), Backend::Candle);
    let e = "gpu".parse::<Backend>().unwrap_err().to_string();
    assert!(e.contains("engine or candle"), "{e}");
}

#[test]
fn non_finite_weights_are_refused_at_load() {
    let c = cfg(Variant::HlfpSmall, 3);
    for (tensor, value) in [
        ("layer1.0.conv1.weight", f32::NAN),
        ("branch.1.conv2.weight", f32::INFINITY),
        ("layer2.0.bn1.running_var", -1.0),
    ] {
        let mut map = weights::random_tensors(&c, 1, &Device::Cpu).unwrap();
        let t = &map[tensor];
        let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v[0] = value;
        map.insert(
            tensor.to_string(),
            Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap(),
        );
        for b in [Backend::Engine, Backend::Candle] {
            let e = InferenceModel::from_tensors_with(&c, &map, None, &opts(b))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("NaN or infinity"),
                "{tensor}={value} on {b}: {e}"
            );
        }
    }
}
