//! The evaluator's counting with a scripted classifier whose logits are known, so every number
//! below is worked out by hand: full top-1, cutouts on their own images only, and the
//! label-guided gain acting on the true class alone.

use candle_core::{Device, Tensor};
use hlfp::eval::{Classifier, EvalConfig, Evaluator, Subset};
use hlfp::model::{ModelConfig, Selection, Variant};

/// Image `i` carries its id in every pixel; its logits are `TABLE[id]`, and a gain `g_c`
/// multiplies logit `c` (a monotone stand-in for the branch gain).
struct Scripted {
    cfg: ModelConfig,
}

const TABLE: [[f32; 3]; 4] = [
    [2.0, 1.0, 0.0], // class 0: right
    [2.0, 1.5, 0.0], // class 1: wrong (0), right in cutout {1,2}, right with gain 1.5
    [0.0, 3.0, 1.0], // class 2: wrong everywhere
    [1.0, 0.5, 0.9], // class 0: right, and still right with gain 1.5 on class 0
];
const LABELS: [u32; 4] = [0, 1, 2, 0];

impl Classifier for Scripted {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }
    fn backend(&self) -> &'static str {
        "scripted"
    }
    fn logits(&self, x: &Tensor, sel: &Selection, gains: &[f32]) -> hlfp::Result<Tensor> {
        let ids: Vec<f32> = x
            .flatten_from(1)
            .unwrap()
            .max(1)
            .unwrap()
            .to_vec1()
            .unwrap();
        let rows: Vec<f32> = ids
            .iter()
            .flat_map(|&id| {
                sel.classes()
                    .iter()
                    .map(move |&c| TABLE[id as usize][c] * gains.get(c).copied().unwrap_or(1.0))
            })
            .collect();
        Ok(Tensor::from_vec(rows, (ids.len(), sel.len()), &Device::Cpu).unwrap())
    }
}

fn images(ids: &[usize]) -> Tensor {
    let v: Vec<f32> = ids
        .iter()
        .flat_map(|&i| vec![i as f32; 3 * 4 * 4])
        .collect();
    Tensor::from_vec(v, (ids.len(), 3, 4, 4), &Device::Cpu).unwrap()
}

fn model() -> Scripted {
    let mut cfg = ModelConfig::new(Variant::HlfpSmall, 3);
    cfg.input_size = 64;
    cfg.width = 0.125;
    Scripted { cfg }
}

#[test]
fn full_cutout_and_gain_counts_match_hand_computation() {
    let m = model();
    let cfg = EvalConfig {
        cutouts: vec![Subset {
            name: "upper".into(),
            classes: vec![2, 1],
        }],
        gains: vec![1.5, 0.0],
    };
    let mut ev = Evaluator::new(&m, cfg).unwrap();
    // Two batches, so the tallies must accumulate.
    ev.add_batch(&images(&[0, 1]), &LABELS[..2]).unwrap();
    ev.add_batch(&images(&[2, 3]), &LABELS[2..]).unwrap();
    let r = ev.report(vec![], vec![]).unwrap();

    assert_eq!((r.images, r.correct), (4, 2));
    assert_eq!(r.top1, 0.5);
    assert_eq!(
        r.confusion,
        vec![vec![2, 0, 0], vec![1, 0, 0], vec![0, 1, 0]]
    );
    let per: Vec<(u64, u64)> = r.per_class.iter().map(|c| (c.images, c.correct)).collect();
    assert_eq!(per, vec![(2, 2), (1, 0), (1, 0)]);

    // The cutout sees only images 1 and 2 (classes 1 and 2): it gets image 1 right, the full
    // model gets neither.
    let c = &r.cutouts[0];
    assert_eq!(c.class_indices, vec![1, 2]);
    assert_eq!(c.classes, vec!["class1", "class2"]);
    assert_eq!((c.images, c.top1, c.full_top1_on_subset), (2, 0.5, 0.0));
    assert_eq!(c.change_points, 50.0);
    let cc = hlfp::model::cost(&m.cfg, Some(&[1, 2])).unwrap();
    assert_eq!(
        (c.params, c.macs, c.macs_ptflops),
        (cc.params, cc.macs, cc.macs_ptflops)
    );

    // Gains: 1.0 is added as the reference; 1.5 on the true class fixes image 1 only; 0
    // silences the true class everywhere.
    let sweep: Vec<(f64, f64)> = r.attention_sweep.iter().map(|g| (g.gain, g.top1)).collect();
    assert_eq!(sweep, vec![(0.0, 0.0), (1.0, 0.5), (1.5, 0.75)]);
    assert_eq!(r.attention_sweep[2].change_points, 25.0);
    assert_eq!(r.attention["1.0"], r.top1);
    assert_eq!(r.attention["1.5"], 0.75);
}

#[test]
fn bad_configs_and_batches_are_errors() {
    let m = model();
    let bad_cutout = EvalConfig {
        cutouts: vec![Subset {
            name: "x".into(),
            classes: vec![3],
        }],
        gains: vec![],
    };
    let e = Evaluator::new(&m, bad_cutout).err().unwrap().to_string();
    assert!(e.contains("out of range"), "{e}");
    let bad_gain = EvalConfig {
        cutouts: vec![],
        gains: vec![f64::NAN],
    };
    assert!(Evaluator::new(&m, bad_gain).is_err());

    let mut ev = Evaluator::new(&m, EvalConfig::default()).unwrap();
    let e = ev.add_batch(&images(&[0]), &[3]).unwrap_err().to_string();
    assert!(e.contains("label 3"), "{e}");
    assert!(ev.add_batch(&images(&[0, 1]), &[0]).is_err());
    // No gains asked: no sweep.
    ev.add_batch(&images(&[0]), &[0]).unwrap();
    assert!(ev.report(vec![], vec![]).unwrap().attention.is_empty());
}
