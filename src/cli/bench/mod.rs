//! `hlfp bench`: batch-1 latency of ResNet50 and HLFP-small cutouts (folded inference) on the
//! CPU engine or candle's backend, or with `--device cuda` on a GPU ([`latency`], [`report`],
//! [`plot`]); and `--memory`: peak RSS of loading a 1000-class HLFP-small cutout from a file
//! on each backend ([`memory`]).

mod latency;
mod memory;
mod plot;
mod report;

use candle_core::{Device, Tensor};
use hlfp::model::{ModelConfig, Variant};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `hlfp bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Timed iterations per model (the median and p90 are over these).
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Untimed warm-up iterations per model.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// CPU threads for candle (sets RAYON_NUM_THREADS); default: all cores.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Input side in pixels.
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// Seed of the random weights and input.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Backend to time (default: `engine` on the CPU, `candle` on CUDA); with --memory, the
    /// backend to load with (default: both).
    #[arg(long, value_enum)]
    pub path: Option<PathChoice>,
    /// Where to run: auto, cpu, cuda or cuda:N (CUDA needs the `cuda` feature). On CUDA every timed pass
    /// ends with a device synchronisation, and each model's output is checked against the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CUDA: keep candle's device defaults (CUDA event tracking, memory returned to the driver
    /// at every synchronisation) and skip the CUDA-graph timings, to compare with the set-up
    /// of `hlfp::kernels::cuda_graph::cuda_device`.
    #[arg(long)]
    pub cuda_untuned: bool,
    /// CUDA: run kxk convs with candle's `conv2d` (one per group) instead of our im2col +
    /// one GEMM for all groups (an A/B switch).
    #[arg(long)]
    pub cuda_candle_conv: bool,
    /// CUDA: run bias, residual and ReLU as three candle ops instead of our fused kernel (an
    /// A/B switch).
    #[arg(long)]
    pub cuda_unfused_epilogue: bool,
    /// PNG of latency against active branches.
    #[arg(long, default_value = "runs/bench/latency_vs_branches.png")]
    pub plot: PathBuf,
    /// Do not write the PNG.
    #[arg(long)]
    pub no_plot: bool,
    /// PyTorch timings to show alongside: the JSON line of `scripts/bench_pytorch.py --json`.
    #[arg(long)]
    pub pytorch: Option<PathBuf>,
    /// Measure peak RSS instead: write a random HLFP-small weights file (streamed) and load a
    /// cutout from it in a fresh process.
    #[arg(long)]
    pub memory: bool,
    /// --memory: number of classes of the model written.
    #[arg(long, default_value_t = 1000)]
    pub classes: usize,
    /// --memory: branches in the cutout.
    #[arg(long, default_value_t = 5)]
    pub active: usize,
    /// --memory: also measure loading every branch.
    #[arg(long)]
    pub full: bool,
    /// --memory: directory for the weights file (default: a temporary directory, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Internal: load this file in this process and report VmHWM (used by --memory).
    #[arg(long, hide = true)]
    pub memory_child: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(t) = args.threads {
        anyhow::ensure!(t > 0, "--threads must be at least 1");
        // candle's CPU kernels size their thread pools from this variable.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    if let Some(path) = &args.memory_child {
        return memory::memory_child(path, &args);
    }
    if args.memory {
        return memory::memory(&args);
    }
    latency::latency(&args)
}

fn bench_cfg(variant: Variant, k: usize, size: usize) -> ModelConfig {
    let mut c = ModelConfig::new(variant, k);
    c.input_size = size;
    c
}

/// One measured model.
#[derive(Serialize, Debug)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) variant: String,
    pub(crate) classes: usize,
    pub(crate) active: usize,
    pub(crate) gmacs_conv_linear: f64,
    pub(crate) median_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) min_ms: f64,
    pub(crate) gflops: f64,
    pub(crate) pytorch_ms: Option<f64>,
    /// CUDA: median and p90 latency of the same forward replayed as one CUDA graph.
    pub(crate) graph_median_ms: Option<f64>,
    pub(crate) graph_p90_ms: Option<f64>,
    /// CUDA: largest |logit difference| between the graph replay and the eager pass.
    pub(crate) graph_max_abs_diff_vs_eager: Option<f64>,
    /// Largest |logit difference| against the CPU engine on the same weights and input
    /// (candle path only; on CUDA this is the GPU-vs-CPU check).
    pub(crate) max_abs_diff_vs_cpu_engine: Option<f64>,
}

impl Row {
    /// The headline latency: the CUDA-graph median where measured (GPU), else the eager median.
    pub(crate) fn headline_ms(&self) -> f64 {
        self.graph_median_ms.unwrap_or(self.median_ms)
    }
}

/// Which backend to time (`--path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PathChoice {
    /// The CPU engine (what the CLI and the nodes run on the CPU).
    Engine,
    /// candle's ops (what runs on CUDA; here also on the CPU).
    Candle,
    /// Both, with the ratio.
    Both,
}

impl PathChoice {
    /// The one backend chosen, or `None` for both.
    fn backend(self) -> Option<hlfp::model::Backend> {
        match self {
            PathChoice::Engine => Some(hlfp::model::Backend::Engine),
            PathChoice::Candle => Some(hlfp::model::Backend::Candle),
            PathChoice::Both => None,
        }
    }
}

/// The device as the report names it.
fn device_name(dev: &Device) -> String {
    match dev.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn seeded_input(seed: u64, size: usize, dev: &Device) -> anyhow::Result<Tensor> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0x5eed);
    let v: Vec<f32> = (0..3 * size * size)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    Ok(Tensor::from_vec(v, (1, 3, size, size), dev)?)
}

#[cfg(test)]
mod tests {
    use super::latency::cases;
    use super::plot::fit_line;

    #[test]
    fn line_fit_recovers_slope_intercept_and_r2() {
        let pts: Vec<(f64, f64)> = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|&x| (x, 3.0 * x + 7.0))
            .collect();
        let (m, b, r2) = fit_line(&pts);
        assert!((m - 3.0).abs() < 1e-12 && (b - 7.0).abs() < 1e-12 && (r2 - 1.0).abs() < 1e-12);
        let (_, _, r2) = fit_line(&[(1.0, 1.0), (2.0, 3.0), (3.0, 1.0)]);
        assert!(r2 < 0.01, "{r2}");
    }

    #[test]
    fn cases_cover_the_issue_list() {
        let c = cases(64);
        let names: Vec<&str> = c.iter().map(|c| c.name).collect();
        for want in [
            "resnet50",
            "hlfp-small k=10",
            "hlfp-small cutout 5/10",
            "hlfp-small cutout 2/10",
            "hlfp-small cutout 1/10",
            "hlfp-small k=100 cutout 5",
        ] {
            assert!(names.contains(&want), "{want}");
        }
        let k100 = c
            .iter()
            .find(|c| c.name == "hlfp-small k=100 cutout 5")
            .unwrap();
        assert_eq!((k100.cfg.num_classes(), k100.active.len()), (100, 5));
    }
}
