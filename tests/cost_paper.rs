//! Cost accounting against PAPER.md: every parameter count exactly, MACs against the paper and
//! against ptflops 0.7.5 itself, and `hlfp cost` end to end.
//!
//! The "ptflops" numbers below were printed by `scripts/ptflops_crosscheck.py` (PyTorch models
//! built from torchvision blocks, measured by ptflops 0.7.5: `pytorch` backend = the paper's
//! convention = our `macs_ptflops`; `aten` backend = conv + linear MACs plus the linear biases).

use hlfp::model::cost::{cost, split_superclass_map, Cost};
use hlfp::model::{ModelConfig, SuperclassMap, Variant};

fn full(v: Variant, k: usize) -> Cost {
    cost(&ModelConfig::new(v, k), None).unwrap()
}

fn nested_cfg(k: usize, map: SuperclassMap) -> ModelConfig {
    let mut cfg = ModelConfig::new(Variant::HlfpNested, k);
    cfg.superclasses = Some(map);
    cfg
}

fn cutout(v: Variant, k: usize, active: &[usize]) -> Cost {
    cost(&ModelConfig::new(v, k), Some(active)).unwrap()
}

fn within(actual: u64, expected_g: f64, tol: f64) -> bool {
    let g = actual as f64 / 1e9;
    ((g - expected_g) / expected_g).abs() <= tol
}

#[test]
fn full_model_params_match_paper_table() {
    use Variant::*;
    let table: [(Variant, [u64; 3]); 7] = [
        (Resnet18, [11_181_642, 11_227_812, 11_689_512]),
        (Resnet50, [23_528_522, 23_712_932, 25_557_032]),
        // 100 classes: PAPER.md says torchvision gives 58,348,710, but torchvision's
        // resnet152(num_classes=100) has 58,348,708 (= 58,164,298 + 90 x 2049), the paper's number.
        (Resnet152, [58_164_298, 58_348_708, 60_192_808]),
        // 1000 classes: the paper prints 818,213,928; trunk + 1000 x 816,641 = 818,085,928.
        (HlfpSmall, [9_611_338, 83_109_028, 818_085_928]),
        (HlfpBig, [27_464_778, 261_643_428, 2_603_429_928]),
        (HlfpLateSp, [19_986_506, 122_975_396, 1_152_864_296]),
        (Hlfp1bLateSp, [9_688_778, 9_700_388, 9_816_488]),
    ];
    for (v, counts) in table {
        for (k, want) in [10, 100, 1000].into_iter().zip(counts) {
            assert_eq!(full(v, k).params, want, "{v} with {k} classes");
        }
    }
}

#[test]
fn nested_full_params_match_paper() {
    let c100 = cost(
        &nested_cfg(100, SuperclassMap::contiguous(100, 68).unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(c100.params, 65_725_604);
    assert_eq!(c100.active_superclass_blocks, 68);
    let c1000 = cost(
        &nested_cfg(1000, SuperclassMap::contiguous(1000, 558).unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(c1000.params, 577_977_384);
    assert_eq!(
        (c1000.per_superclass_block.params, c1000.per_branch.params),
        (543_232, 273_409)
    );
}

#[test]
fn per_branch_and_trunk_params_match_paper() {
    let small = full(Variant::HlfpSmall, 10);
    assert_eq!(small.per_branch.params, 816_641);
    assert_eq!(small.breakdown.trunk.params, 1_444_928);
    assert_eq!(full(Variant::HlfpBig, 10).per_branch.params, 2_601_985);
    assert_eq!(full(Variant::HlfpBig, 10).breakdown.trunk.params, 1_444_928);
    let late = full(Variant::HlfpLateSp, 10);
    assert_eq!(late.per_branch.params, 1_144_321);
    assert_eq!(late.breakdown.trunk.params, 8_543_296);
    let nested = cost(
        &nested_cfg(100, SuperclassMap::contiguous(100, 68).unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(nested.breakdown.trunk.params, 1_444_928);
    assert_eq!(nested.per_superclass_block.params, 543_232);
    assert_eq!(nested.per_branch.params, 273_409);
    // Breakdown adds up.
    let b = small.breakdown;
    assert_eq!(
        b.trunk.params + b.superclass_blocks.params + b.branches.params + b.heads.params,
        small.params
    );
}

#[test]
fn hlfp_small_cutouts_match_table3() {
    let k5 = cutout(Variant::HlfpSmall, 10, &[5, 6, 7, 8, 9]);
    assert_eq!(k5.params, 5_528_133);
    assert_eq!((k5.active_branches, k5.active_classes), (5, 5));
    assert!(k5.cutout_changes_network);
    let first20: Vec<usize> = (0..20).collect();
    assert_eq!(cutout(Variant::HlfpSmall, 100, &first20).params, 17_777_748);
    let upper80: Vec<usize> = (20..100).collect();
    assert_eq!(cutout(Variant::HlfpSmall, 100, &upper80).params, 66_776_208);
}

#[test]
fn nested_cutouts_match_table3() {
    // A map of 100 classes into 68 superclasses where the lower 20 classes use 17 superclasses
    // and the upper 80 use 52 (one superclass is shared), as in the paper's cutouts.
    let cfg = nested_cfg(100, split_superclass_map(100, 68, 20, 17, 52).unwrap());
    let lower: Vec<usize> = (0..20).collect();
    let c = cost(&cfg, Some(&lower)).unwrap();
    assert_eq!((c.active_branches, c.active_superclass_blocks), (20, 17));
    assert_eq!(c.params, 16_148_052);
    let upper: Vec<usize> = (20..100).collect();
    let c = cost(&cfg, Some(&upper)).unwrap();
    assert_eq!((c.active_branches, c.active_superclass_blocks), (80, 52));
    assert_eq!(c.params, 51_565_712);
    // A superclass shared by two selected classes runs once.
    assert_eq!(
        (
            cfg.superclasses.as_ref().unwrap().of_class[6],
            cfg.superclasses.as_ref().unwrap().of_class[7]
        ),
        (5, 5)
    );
    let c = cost(&cfg, Some(&[0, 1, 6, 7])).unwrap();
    assert_eq!(c.active_superclass_blocks, 2);
}

#[test]
fn resnet50_on_5_classes_and_resnet_cutouts() {
    assert_eq!(full(Variant::Resnet50, 5).params, 23_518_277);
    // A ResNet or 1b-late-SP cutout still runs everything: same cost as the full model.
    let c = cutout(Variant::Resnet50, 10, &[0, 1]);
    assert_eq!(c.params, 23_528_522);
    assert!(!c.cutout_changes_network);
    let c = cutout(Variant::Hlfp1bLateSp, 10, &[3]);
    assert_eq!(c.params, 9_688_778);
    assert!(!c.cutout_changes_network);
}

#[test]
fn macs_match_the_paper_within_half_a_percent() {
    let r50 = full(Variant::Resnet50, 10);
    assert!(
        within(r50.macs_ptflops, 4.130, 0.005),
        "{}",
        r50.macs_ptflops
    );
    assert!(within(r50.macs, 4.087, 0.005), "{}", r50.macs);
    let k5 = cutout(Variant::HlfpSmall, 10, &[0, 1, 2, 3, 4]);
    assert!(within(k5.macs_ptflops, 2.658, 0.005), "{}", k5.macs_ptflops);
    assert!(within(k5.macs, 2.619, 0.005), "{}", k5.macs);
    let upper80: Vec<usize> = (20..100).collect();
    let k80 = cutout(Variant::HlfpSmall, 100, &upper80);
    assert!(
        within(k80.macs_ptflops, 14.835, 0.005),
        "{}",
        k80.macs_ptflops
    );
    assert!(within(full(Variant::HlfpSmall, 10).macs, 3.425, 0.005));
    assert!(within(
        cutout(Variant::HlfpSmall, 10, &[7]).macs,
        1.975,
        0.005
    ));
    // Nested cutouts: the paper's 10.79 and 4.66 GMACs (ours 10.758 and 4.657 ptflops-style).
    let cfg = nested_cfg(100, split_superclass_map(100, 68, 20, 17, 52).unwrap());
    let upper = cost(&cfg, Some(&upper80)).unwrap();
    assert!(
        within(upper.macs_ptflops, 10.79, 0.005),
        "{}",
        upper.macs_ptflops
    );
    let lower20: Vec<usize> = (0..20).collect();
    let lower = cost(&cfg, Some(&lower20)).unwrap();
    assert!(
        within(lower.macs_ptflops, 4.66, 0.005),
        "{}",
        lower.macs_ptflops
    );
}

/// Exact agreement with ptflops 0.7.5 (`scripts/ptflops_crosscheck.py`), both backends.
#[test]
fn macs_equal_ptflops_exactly() {
    let contiguous_nested = |supers: usize, classes: usize| {
        cost(
            &nested_cfg(classes, SuperclassMap::contiguous(classes, supers).unwrap()),
            None,
        )
        .unwrap()
    };
    let mut cfg161 = ModelConfig::new(Variant::HlfpSmall, 3);
    cfg161.input_size = 161;
    // (what, cost, ptflops pytorch backend, ptflops aten backend, params)
    let rows: Vec<(&str, Cost, u64, u64, u64)> = vec![
        (
            "resnet18 k=10",
            full(Variant::Resnet18, 10),
            1_824_805_898,
            1_813_566_474,
            11_181_642,
        ),
        (
            "resnet50 k=10",
            full(Variant::Resnet50, 10),
            4_130_408_458,
            4_087_156_746,
            23_528_522,
        ),
        (
            "resnet50 k=1000",
            full(Variant::Resnet50, 1000),
            4_132_436_968,
            4_089_185_256,
            25_557_032,
        ),
        (
            "resnet152 k=10",
            full(Variant::Resnet152, 10),
            11_600_611_338,
            11_511_599_114,
            58_164_298,
        ),
        (
            "hlfp-small k=1",
            full(Variant::HlfpSmall, 1),
            2_008_441_857,
            1_974_661_249,
            2_261_569,
        ),
        (
            "hlfp-small k=5",
            full(Variant::HlfpSmall, 5),
            2_657_907_717,
            2_619_060_869,
            5_528_133,
        ),
        (
            "hlfp-small k=10",
            full(Variant::HlfpSmall, 10),
            3_469_740_042,
            3_424_560_394,
            9_611_338,
        ),
        (
            "hlfp-small k=20",
            full(Variant::HlfpSmall, 20),
            5_093_404_692,
            5_035_559_444,
            17_777_748,
        ),
        (
            "hlfp-small k=80",
            full(Variant::HlfpSmall, 80),
            14_835_392_592,
            14_701_553_744,
            66_776_208,
        ),
        (
            "hlfp-small k=3 @161",
            cost(&cfg161, None).unwrap(),
            1_308_123_715,
            1_288_182_339,
            3_894_851,
        ),
        (
            "hlfp-big k=10",
            full(Variant::HlfpBig, 10),
            6_260_191_242,
            6_202_345_994,
            27_464_778,
        ),
        (
            "hlfp-late-sp k=10",
            full(Variant::HlfpLateSp, 10),
            3_988_750_090,
            3_944_768_778,
            19_986_506,
        ),
        (
            "hlfp-1b-late-sp k=10",
            full(Variant::Hlfp1bLateSp, 10),
            3_385_652_746,
            3_344_585_994,
            9_688_778,
        ),
        (
            "hlfp-late-big-sp k=10",
            full(Variant::HlfpLateBigSp, 10),
            4_964_994_570,
            4_917_774_858,
            41_116_746,
        ),
        (
            "nested 17/20",
            contiguous_nested(17, 20),
            4_656_572_436,
            4_602_038_804,
            16_148_052,
        ),
        (
            "nested 52/80",
            contiguous_nested(52, 80),
            10_758_291_536,
            10_655_361_104,
            51_565_712,
        ),
    ];
    for (what, c, pytorch, aten, params) in rows {
        assert_eq!(c.macs_ptflops, pytorch, "{what}: ptflops-style");
        // ptflops' aten backend counts the linear bias adds too; our `macs` does not.
        let linear_bias = match c.variant {
            Variant::Resnet18 | Variant::Resnet50 | Variant::Resnet152 | Variant::Hlfp1bLateSp => {
                c.num_classes as u64
            }
            _ => c.active_branches as u64,
        };
        assert_eq!(c.macs + linear_bias, aten, "{what}: conv+linear");
        assert_eq!(c.params, params, "{what}: params");
    }
}

#[test]
fn cutout_of_the_full_model_equals_a_model_with_that_many_classes() {
    // The nested cutout with the split map costs the same as a full nested model with the same
    // superclass and class counts (what ptflops measured above).
    let cfg = nested_cfg(100, split_superclass_map(100, 68, 20, 17, 52).unwrap());
    let upper: Vec<usize> = (20..100).collect();
    let cut = cost(&cfg, Some(&upper)).unwrap();
    let whole = cost(
        &nested_cfg(80, SuperclassMap::contiguous(80, 52).unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(
        (cut.params, cut.macs, cut.macs_ptflops),
        (whole.params, whole.macs, whole.macs_ptflops)
    );
}

#[test]
fn bad_inputs_are_errors() {
    let cfg = ModelConfig::new(Variant::HlfpSmall, 10);
    assert!(cost(&cfg, Some(&[10]))
        .unwrap_err()
        .to_string()
        .contains("out of range"));
    assert!(cost(&cfg, Some(&[1, 1])).is_err());
    // Nested without a map, or with a map for another class count.
    assert!(cost(&ModelConfig::new(Variant::HlfpNested, 10), None).is_err());
    assert!(cost(
        &nested_cfg(10, SuperclassMap::contiguous(12, 3).unwrap()),
        None
    )
    .is_err());
}

mod cli {
    use std::process::Command;

    fn hlfp(args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_hlfp"))
            .arg("cost")
            .args(args)
            .output()
            .unwrap()
    }

    fn json(args: &[&str]) -> serde_json::Value {
        let out = hlfp(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    #[test]
    fn json_cutout_by_index_gives_paper_numbers() {
        let v = json(&[
            "--variant",
            "hlfp-small",
            "--classes",
            "10",
            "--active",
            "0,1,2,3,4",
            "--json",
        ]);
        assert_eq!(v["params"], 5_528_133);
        assert_eq!(v["macs"], 2_619_060_864u64);
        assert_eq!(v["macs_ptflops"], 2_657_907_717u64);
        assert_eq!(v["active_branches"], 5);
        assert_eq!(v["breakdown"]["trunk"]["params"], 1_444_928);
        assert_eq!(v["input_size"], 224);
    }

    #[test]
    fn json_cutout_by_name_and_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        let names = dir.path().join("classes.txt");
        std::fs::write(&names, "# pets and vehicles\ncat\ndog\ncar\nbus\n").unwrap();
        let supers = dir.path().join("supers.txt");
        std::fs::write(
            &supers,
            "cat,animal\ndog,animal\ncar,vehicle\nbus,vehicle\n",
        )
        .unwrap();
        let n = names.to_str().unwrap();
        let s = supers.to_str().unwrap();
        let v = json(&[
            "--variant",
            "hlfp-nested",
            "--class-names",
            n,
            "--superclasses",
            s,
            "--active-names",
            "cat,dog",
            "--json",
        ]);
        assert_eq!(v["active_superclass_blocks"], 1);
        assert_eq!(v["params"], 1_444_928 + 543_232 + 2 * 273_409);
        let v = json(&[
            "--variant",
            "hlfp-nested",
            "--classes",
            "100",
            "--num-superclasses",
            "68",
            "--json",
        ]);
        assert_eq!(v["params"], 65_725_604);
        // Unknown class name and bad index: clear errors, no panic.
        let out = hlfp(&[
            "--variant",
            "hlfp-small",
            "--class-names",
            n,
            "--active-names",
            "cow",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("unknown class \"cow\""),
            "{err}"
        );
        let out = hlfp(&[
            "--variant",
            "hlfp-small",
            "--classes",
            "10",
            "--active",
            "3,12",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("out of range") && !err.contains("panicked"),
            "{err}"
        );
        let out = hlfp(&["--variant", "hlfp-tiny", "--classes", "10"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("unknown variant"),
            "{err}"
        );
        let out = hlfp(&["--variant", "hlfp-nested", "--classes", "10"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("--num-superclasses"),
            "{err}"
        );
    }

    #[test]
    fn readable_output_and_markdown_table() {
        let out = hlfp(&["--variant", "resnet50", "--classes", "10", "--active", "1"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(
            text.contains("23,528,522") && text.contains("4.130") && text.contains("whole network"),
            "{text}"
        );
        let out = hlfp(&["--table"]);
        let md = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        for needle in [
            "| hlfp-small | 10 | all | 9,611,338 | 3.425 | 3.470 |",
            "| 5,528,133 | 2.619 | 2.658 |",
            "16,148,052",
            "51,565,712",
            "our reconstruction",
        ] {
            assert!(md.contains(needle), "{needle} missing from\n{md}");
        }
    }
}
