//! Every tensor name and shape a config's weight file holds, and seeded random weights with
//! those names (for benchmarks and memory tests that need full-size models without training).

use crate::model::{BlockSpec, ModelConfig, Variant};
use crate::Result;
use candle_core::{Device, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::HashMap;

/// The raw (unfolded) tensors of a model, name -> shape, in file order (docs/WEIGHTS.md).
pub fn weight_shapes(cfg: &ModelConfig) -> Result<Vec<(String, Vec<usize>)>> {
    let arch = cfg.architecture()?;
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let bn = |out: &mut Vec<(String, Vec<usize>)>, prefix: String, c: usize| {
        for p in ["weight", "bias", "running_mean", "running_var"] {
            out.push((format!("{prefix}.{p}"), vec![c]));
        }
    };
    out.push(("conv1.weight".into(), vec![arch.stem_channels, 3, 7, 7]));
    bn(&mut out, "bn1".into(), arch.stem_channels);
    // (prefix, spec, number of stacked branches n)
    let mut blocks: Vec<(String, BlockSpec, usize)> = Vec::new();
    for layer in &arch.trunk {
        for (i, b) in layer.blocks.iter().enumerate() {
            blocks.push((format!("{}.{i}", layer.name), *b, 1));
        }
    }
    for (j, b) in arch.branch.iter().enumerate() {
        let n = if cfg.variant == Variant::HlfpNested && j == 0 {
            cfg.superclasses.as_ref().map_or(0, |m| m.len())
        } else {
            arch.num_branches
        };
        blocks.push((format!("branch.{j}"), *b, n));
    }
    for (prefix, spec, n) in blocks {
        // Per-branch input channels. Block 0's dense conv reads the whole trunk output, which is
        // the same count, so dense and grouped inputs have the same weight shape.
        let cin = spec.cin();
        match spec {
            BlockSpec::Bottleneck { mid, cout, .. } => {
                out.push((format!("{prefix}.conv1.weight"), vec![n * mid, cin, 1, 1]));
                bn(&mut out, format!("{prefix}.bn1"), n * mid);
                out.push((format!("{prefix}.conv2.weight"), vec![n * mid, mid, 3, 3]));
                bn(&mut out, format!("{prefix}.bn2"), n * mid);
                out.push((format!("{prefix}.conv3.weight"), vec![n * cout, mid, 1, 1]));
                bn(&mut out, format!("{prefix}.bn3"), n * cout);
            }
            BlockSpec::Basic { cout, .. } => {
                out.push((format!("{prefix}.conv1.weight"), vec![n * cout, cin, 3, 3]));
                bn(&mut out, format!("{prefix}.bn1"), n * cout);
                out.push((format!("{prefix}.conv2.weight"), vec![n * cout, cout, 3, 3]));
                bn(&mut out, format!("{prefix}.bn2"), n * cout);
            }
        }
        if spec.has_downsample() {
            out.push((
                format!("{prefix}.downsample.0.weight"),
                vec![n * spec.cout(), cin, 1, 1],
            ));
            bn(&mut out, format!("{prefix}.downsample.1"), n * spec.cout());
        }
    }
    if arch.branch.is_empty() {
        out.push(("fc.weight".into(), vec![arch.head_out, arch.head_in]));
        out.push(("fc.bias".into(), vec![arch.head_out]));
    } else {
        let rows = if cfg.variant.is_branched() {
            arch.num_branches
        } else {
            arch.head_out
        };
        out.push(("branch_fc.weight".into(), vec![rows, arch.head_in]));
        out.push(("branch_fc.bias".into(), vec![rows]));
    }
    Ok(out)
}

/// Seeded random weights: He-scaled convs, BatchNorm near identity, small heads.
pub fn random_weights(cfg: &ModelConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut map = HashMap::new();
    for (name, shape) in weight_shapes(cfg)? {
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let values: Vec<f32> = if name.ends_with("running_var") {
            (0..n).map(|_| rng.random_range(0.8..1.2)).collect()
        } else if name.ends_with("running_mean") || name.ends_with(".bias") {
            (0..n).map(|_| rng.random_range(-0.05..0.05)).collect()
        } else if shape.len() == 1 {
            // BatchNorm gamma.
            (0..n).map(|_| rng.random_range(0.8..1.2)).collect()
        } else {
            let a = (6.0 / fan_in as f32).sqrt();
            (0..n).map(|_| rng.random_range(-a..a)).collect()
        };
        let t =
            Tensor::from_vec(values, shape, &Device::Cpu).map_err(|e| crate::Error::Candle {
                context: format!("building random {name}"),
                source: e,
            })?;
        map.insert(name, t);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_count_the_papers_parameters() {
        // Parameters = every tensor but the BatchNorm running statistics.
        let params = |cfg: &ModelConfig| -> usize {
            weight_shapes(cfg)
                .unwrap()
                .iter()
                .filter(|(n, _)| !n.contains("running_"))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum()
        };
        assert_eq!(params(&ModelConfig::new(Variant::Resnet50, 10)), 23_528_522);
        assert_eq!(params(&ModelConfig::new(Variant::HlfpSmall, 10)), 9_611_338);
        assert_eq!(
            params(&ModelConfig::new(Variant::Hlfp1bLateSp, 10)),
            9_688_778
        );
        assert_eq!(params(&ModelConfig::new(Variant::Resnet18, 10)), 11_181_642);
    }
}
