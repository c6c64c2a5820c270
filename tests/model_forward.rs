//! Forward pass of every variant: shapes, cutouts equal to the full model, softmax over the
//! selection, gains, the per-selection cache, and the training path's gradients.

mod model_util;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use hlfp::model::{probabilities, HlfpModel, Selection, Variant};
use model_util::*;

const BRANCHED: [Variant; 5] = [
    Variant::HlfpSmall,
    Variant::HlfpBig,
    Variant::HlfpLateSp,
    Variant::HlfpNested,
    Variant::HlfpLateBigSp,
];

#[test]
fn every_variant_builds_and_gives_one_logit_per_selected_class() {
    let x = input(2);
    for v in Variant::ALL {
        let c = cfg(v, 4);
        let m = model(&c, 1);
        let full = m.forward(&x, &Selection::all(&c), &[]).unwrap();
        assert_eq!(full.dims(), &[2, 4], "{v}");
        let cut = m
            .forward(&x, &Selection::from_indices(&c, &[3, 1]).unwrap(), &[])
            .unwrap();
        assert_eq!(cut.dims(), &[2, 2], "{v}");
        assert!(
            to_vec2(&full).iter().flatten().all(|l| l.is_finite()),
            "{v}"
        );
    }
}

#[test]
fn cutout_logits_equal_full_model_logits() {
    let x = input(2);
    let k = 6;
    let cutouts: [&[usize]; 4] = [&[0], &[2, 5], &[1, 3, 4], &[0, 1, 2, 3, 5]];
    for v in BRANCHED
        .into_iter()
        .chain([Variant::Hlfp1bLateSp, Variant::Resnet18])
    {
        let c = cfg(v, k);
        let m = model(&c, 2);
        let full = m.forward(&x, &Selection::all(&c), &[]).unwrap();
        for idx in cutouts {
            let sel = Selection::from_indices(&c, idx).unwrap();
            let cut = m.forward(&x, &sel, &[]).unwrap();
            for (j, &class) in sel.classes().iter().enumerate() {
                let (a, b) = (col(&cut, j), col(&full, class));
                for (p, q) in a.iter().zip(&b) {
                    assert!(
                        (p - q).abs() <= 1e-5,
                        "{v} cutout {idx:?} class {class}: {p} vs {q}"
                    );
                }
            }
        }
    }
}

#[test]
fn softmax_is_over_the_selection() {
    let c = cfg(Variant::HlfpSmall, 5);
    let m = model(&c, 3);
    let sel = Selection::from_indices(&c, &[0, 4]).unwrap();
    let p = probabilities(&m.forward(&input(3), &sel, &[]).unwrap()).unwrap();
    assert_eq!(p.dims(), &[3, 2]);
    for row in to_vec2(&p) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
        assert!(row.iter().all(|&q| q > 0.0));
    }
}

#[test]
fn gain_one_is_identity_and_a_gain_changes_only_its_class() {
    let x = input(2);
    for v in [Variant::HlfpSmall, Variant::HlfpNested] {
        let c = cfg(v, 4);
        let m = model(&c, 4);
        for sel in [
            Selection::all(&c),
            Selection::from_indices(&c, &[1, 2, 3]).unwrap(),
        ] {
            let base = m.forward(&x, &sel, &[]).unwrap();
            let ones = m.forward(&x, &sel, &[1.0; 4]).unwrap();
            assert_eq!(max_diff(&base, &ones), 0.0, "{v}");
            let mut seen = Vec::new();
            for g in [0.5f32, 1.5] {
                let mut gains = [1.0f32; 4];
                gains[2] = g;
                let out = m.forward(&x, &sel, &gains).unwrap();
                let j = sel.classes().iter().position(|&cl| cl == 2).unwrap();
                for (i, _) in sel.classes().iter().enumerate() {
                    let d: f32 = col(&out, i)
                        .iter()
                        .zip(col(&base, i))
                        .map(|(a, b)| (a - b).abs())
                        .sum();
                    if i == j {
                        assert!(d > 1e-4, "{v}: gain {g} did not move class 2 ({d})");
                    } else {
                        assert_eq!(d, 0.0, "{v}: gain on class 2 moved column {i}");
                    }
                }
                seen.push(col(&out, j));
            }
            assert_ne!(
                seen[0], seen[1],
                "{v}: gains 0.5 and 1.5 give the same logit"
            );
        }
    }
}

#[test]
fn gain_scales_the_gated_feature_maps_of_its_branch() {
    let c = cfg(Variant::HlfpSmall, 3);
    let m = model(&c, 5);
    let sel = Selection::all(&c);
    let x = input(1);
    let stage = m.architecture().gain_stage;
    let ch = m.architecture().branch[stage].cout();
    let norm = |t: &Tensor, branch: usize| -> f32 {
        t.narrow(1, branch * ch, ch)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let base = m.forward_traced(&x, &sel, &[]).unwrap();
    for g in [0.25f32, 0.5, 1.8] {
        let t = m.forward_traced(&x, &sel, &[1.0, g, 1.0]).unwrap();
        let ungated = t.ungated.as_ref().unwrap();
        assert_eq!(
            max_diff(ungated, base.ungated.as_ref().unwrap()),
            0.0,
            "maps before the gain moved"
        );
        let gated = &t.branch_blocks[stage];
        let (n0, n1) = (norm(ungated, 1), norm(gated, 1));
        assert!(n0 > 0.0);
        assert!(
            (n1 / n0 - g).abs() < 1e-5,
            "gain {g}: norm ratio {}",
            n1 / n0
        );
        if g < 1.0 {
            assert!(
                n1 < n0,
                "a gain below 1 must shrink (inhibit) the branch's maps"
            );
        }
        assert_eq!(norm(gated, 0), norm(ungated, 0));
        assert_eq!(norm(gated, 2), norm(ungated, 2));
    }
}

#[test]
fn changing_selection_reuses_cached_cuts() {
    let c = cfg(Variant::HlfpSmall, 6);
    let m = model(&c, 6);
    let x = input(1);
    let a = Selection::from_indices(&c, &[0, 3]).unwrap();
    let b = Selection::from_indices(&c, &[1]).unwrap();
    let first = m.forward(&x, &a, &[]).unwrap();
    assert_eq!(m.cached_sets(), 1);
    m.forward(&x, &b, &[]).unwrap();
    assert_eq!(m.cached_sets(), 2);
    let again = m.forward(&x, &a, &[]).unwrap();
    assert_eq!(
        m.cached_sets(),
        2,
        "a repeated selection must hit the cache"
    );
    assert_eq!(max_diff(&first, &again), 0.0);
    m.forward(&x, &Selection::all(&c), &[]).unwrap();
    assert_eq!(m.cached_sets(), 2, "the full selection needs no cut");
}

#[test]
fn train_mode_backpropagates_into_branch_weights() {
    let c = cfg(Variant::HlfpSmall, 3);
    let vm = VarMap::new();
    let m = HlfpModel::load(&c, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let x = input(2);
    let logits = m.forward_t(&x, &Selection::all(&c), &[], true).unwrap();
    let target = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &target).unwrap();
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    for name in [
        "conv1.weight",
        "branch.0.conv1.weight",
        "branch.2.conv3.weight",
        "branch_fc.weight",
    ] {
        let g = grads
            .get(data.get(name).unwrap().as_tensor())
            .unwrap_or_else(|| panic!("no grad for {name}"));
        let s: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(s > 0.0, "zero grad for {name}");
    }
    // Train-mode BatchNorm moved the running statistics of the trunk.
    let rm: f32 = data
        .get("bn1.running_mean")
        .unwrap()
        .as_tensor()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(rm > 0.0);
    drop(data);
    // A train-mode cutout runs too.
    let cut = m
        .forward_t(&x, &Selection::from_indices(&c, &[1]).unwrap(), &[], true)
        .unwrap();
    assert_eq!(cut.dims(), &[2, 1]);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let c = cfg(Variant::HlfpSmall, 3);
    let m = model(&c, 7);
    let sel = Selection::all(&c);
    let wrong = Tensor::zeros((1, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
    let e = m.forward(&wrong, &sel, &[]).unwrap_err().to_string();
    assert!(
        e.contains("[batch, 3, 64, 64]") && e.contains("[1, 3, 32, 32]"),
        "{e}"
    );
    let e = m
        .forward(
            &Tensor::zeros((3, 64, 64), DType::F32, &Device::Cpu).unwrap(),
            &sel,
            &[],
        )
        .unwrap_err();
    assert!(e.to_string().contains("expected input"), "{e}");
    let e = m
        .forward(&input(1), &sel, &[1.0, 2.0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 gains"), "{e}");
    let e = m
        .forward(&input(1), &sel, &[1.0, f32::NAN, 1.0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("finite"), "{e}");
    let other = cfg(Variant::HlfpSmall, 5);
    let e = m
        .forward(&input(1), &Selection::all(&other), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 classes"), "{e}");
    assert!(Selection::from_names(&c, &["zebra"])
        .unwrap_err()
        .to_string()
        .contains("zebra"));
    assert!(Selection::from_indices(&c, &[3]).is_err());
}
