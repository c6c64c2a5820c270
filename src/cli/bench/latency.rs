//! `hlfp bench` latency: batch-1 forward passes of every case on the chosen backends, timed in
//! interleaved rounds, each candle model checked against the CPU engine on the same weights.

use super::Row;
use super::{bench_cfg, percentile, seeded_input, Args, PathChoice};
use anyhow::Context;
use candle_core::{Device, Tensor};
use hlfp::model::{
    cost, weights, Backend, CudaKernels, InferenceModel, InferenceOptions, Selection, Variant,
};
use hlfp::vision::classifier::DeviceChoice;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// One benchmark case: a model config and the branches it runs.
pub(super) struct Case {
    pub(super) name: &'static str,
    pub(super) cfg: hlfp::model::ModelConfig,
    pub(super) active: Vec<usize>,
}

pub(super) fn cases(size: usize) -> Vec<Case> {
    let r50 = bench_cfg(Variant::Resnet50, 10, size);
    let k10 = bench_cfg(Variant::HlfpSmall, 10, size);
    let k100 = bench_cfg(Variant::HlfpSmall, 100, size);
    let k5 = bench_cfg(Variant::HlfpSmall, 5, size);
    vec![
        Case {
            name: "resnet50",
            cfg: r50,
            active: (0..10).collect(),
        },
        Case {
            name: "hlfp-small k=10",
            cfg: k10.clone(),
            active: (0..10).collect(),
        },
        Case {
            name: "hlfp-small cutout 5/10",
            cfg: k10.clone(),
            active: (0..5).collect(),
        },
        Case {
            name: "hlfp-small cutout 2/10",
            cfg: k10.clone(),
            active: (0..2).collect(),
        },
        Case {
            name: "hlfp-small cutout 1/10",
            cfg: k10,
            active: vec![0],
        },
        Case {
            name: "hlfp-small k=100 cutout 5",
            cfg: k100,
            active: vec![3, 17, 42, 64, 99],
        },
        Case {
            name: "hlfp-small k=5 (5-class model)",
            cfg: k5,
            active: (0..5).collect(),
        },
    ]
}

#[cfg(feature = "cuda")]
type Graph = hlfp::kernels::cuda_graph::GraphForward;
/// No CUDA graphs without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
type Graph = std::convert::Infallible;

/// One timed (case, path): its model, selection and samples.
struct Job {
    case: usize,
    backend: Backend,
    model: usize,
    sel: Selection,
    macs: f64,
    diff: Option<f64>,
    graph: Option<Graph>,
    graph_diff: Option<f64>,
    ms: Vec<f64>,
    graph_ms: Vec<f64>,
}

/// `hlfp bench` without `--memory`: time every case, then report.
pub fn latency(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.iters > 0, "--iters must be at least 1");
    let dev = match args.device.parse::<DeviceChoice>()? {
        DeviceChoice::Cuda(n) => hlfp::kernels::cuda_graph::cuda_device(n, !args.cuda_untuned)?,
        other => other.device()?,
    };
    let on_gpu = !dev.is_cpu();
    let threads = args.threads.unwrap_or(2);
    let cases = cases(args.size);
    let backends: Vec<Backend> = match (args.path, on_gpu) {
        (None, _) => vec![Backend::for_device(&dev)],
        (Some(PathChoice::Candle), _) => vec![Backend::Candle],
        (Some(_), true) => anyhow::bail!(
            "--device {}: only --path candle runs on a GPU (the engine is CPU code)",
            args.device
        ),
        (Some(PathChoice::Both), false) => vec![Backend::Engine, Backend::Candle],
        (Some(PathChoice::Engine), false) => vec![Backend::Engine],
    };
    let pb = ProgressBar::new((backends.len() * cases.len() * (args.iters + args.warmup)) as u64);
    pb.set_style(ProgressStyle::with_template(
        "{msg:36} {bar:30} {pos}/{len} [{elapsed}]",
    )?);
    let x_cpu = seeded_input(args.seed, args.size, &Device::Cpu)?;
    let x = x_cpu.to_device(&dev)?;

    // Load every model once (cutouts of a model are selections, not reloads), then time the
    // cases in interleaved rounds: each round runs every case once, so a slow spell of this
    // shared machine hits all cases alike instead of whichever case was running then.
    let mut models: Vec<InferenceModel> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    // The config loaded last (classes, variant), its model index per backend, and the index of
    // its CPU engine model: the reference every candle model is checked against.
    type Loaded = ((usize, Variant), Vec<(Backend, usize)>, usize);
    let mut loaded: Option<Loaded> = None;
    let cpu = InferenceOptions::for_device(&Device::Cpu).with_threads(threads);
    for (ci, case) in cases.iter().enumerate() {
        let key = (case.cfg.num_classes(), case.cfg.variant);
        if loaded.as_ref().map(|l| l.0) != Some(key) {
            pb.set_message(format!("loading {}", case.name));
            // Generated on the CPU (the same values whatever the device), then moved.
            let map = weights::random_tensors(&case.cfg, args.seed, &Device::Cpu)?;
            let engine_opts = cpu.clone().with_backend(Backend::Engine);
            models.push(InferenceModel::from_tensors_with(
                &case.cfg,
                &map,
                None,
                &engine_opts,
            )?);
            let engine = models.len() - 1;
            let mut here = Vec::new();
            for &backend in &backends {
                if backend == Backend::Engine {
                    here.push((backend, engine));
                    continue;
                }
                let mut opts = InferenceOptions::for_device(&dev)
                    .with_backend(Backend::Candle)
                    .with_threads(threads);
                opts.cuda = CudaKernels {
                    own_conv: !args.cuda_candle_conv,
                    fused_epilogue: !args.cuda_unfused_epilogue,
                };
                models.push(InferenceModel::from_tensors_with(
                    &case.cfg, &map, None, &opts,
                )?);
                here.push((backend, models.len() - 1));
            }
            loaded = Some((key, here, engine));
        }
        let (_, here, engine) = loaded.as_ref().context("models")?;
        let sel = Selection::from_indices(&case.cfg, &case.active)?;
        let macs = cost(&case.cfg, Some(&case.active))?.macs as f64;
        for &(backend, mi) in here {
            let mut job = Job {
                case: ci,
                backend,
                model: mi,
                sel: sel.clone(),
                macs,
                diff: None,
                graph: None,
                graph_diff: None,
                ms: Vec::with_capacity(args.iters),
                graph_ms: Vec::new(),
            };
            if backend == Backend::Candle {
                pb.set_message(format!("checking {}", case.name));
                job.diff = Some(max_abs_diff(
                    &models[mi],
                    &x,
                    &models[*engine],
                    &x_cpu,
                    &sel,
                )?);
                if on_gpu && !args.cuda_untuned {
                    let (g, d) = make_graph(&models[mi], &x, &sel)?;
                    job.graph = Some(g);
                    job.graph_diff = Some(d);
                }
            }
            jobs.push(job);
        }
    }
    pb.set_length((jobs.len() * (args.iters + args.warmup)) as u64);
    pb.set_message("timing, interleaved rounds");
    for round in 0..args.warmup + args.iters {
        for job in &mut jobs {
            let m = &models[job.model];
            let input = if m.backend() == Backend::Engine {
                &x_cpu
            } else {
                &x
            };
            let t0 = Instant::now();
            let y = m.forward(input, &job.sel, &[])?;
            if on_gpu && m.backend() == Backend::Candle {
                // Kernels run asynchronously: wait for them inside the timed region.
                dev.synchronize()?;
            } else {
                // CPU ops are synchronous; reading one value keeps the work honest.
                let _ = y.flatten_all()?.get(0)?.to_scalar::<f32>()?;
            }
            std::hint::black_box(y);
            let eager_ms = t0.elapsed().as_secs_f64() * 1e3;
            let graph_ms = match &job.graph {
                Some(g) => {
                    let t0 = Instant::now();
                    run_graph(g, &x, &dev)?;
                    Some(t0.elapsed().as_secs_f64() * 1e3)
                }
                None => None,
            };
            if round >= args.warmup {
                job.ms.push(eager_ms);
                job.graph_ms.extend(graph_ms);
            }
            pb.inc(1);
        }
    }
    let mut rows = Vec::new();
    for job in &mut jobs {
        let case = &cases[job.case];
        job.ms.sort_by(f64::total_cmp);
        job.graph_ms.sort_by(f64::total_cmp);
        let median = percentile(&job.ms, 0.5);
        let graph_median = (!job.graph_ms.is_empty()).then(|| percentile(&job.graph_ms, 0.5));
        rows.push(Row {
            name: case.name.to_string(),
            path: job.backend.name().to_string(),
            variant: case.cfg.variant.name().into(),
            classes: case.cfg.num_classes(),
            active: job.sel.len(),
            gmacs_conv_linear: job.macs / 1e9,
            median_ms: median,
            p90_ms: percentile(&job.ms, 0.9),
            min_ms: job.ms[0],
            gflops: 2.0 * job.macs / (graph_median.unwrap_or(median) / 1e3) / 1e9,
            pytorch_ms: None,
            graph_median_ms: graph_median,
            graph_p90_ms: (!job.graph_ms.is_empty()).then(|| percentile(&job.graph_ms, 0.9)),
            graph_max_abs_diff_vs_eager: job.graph_diff,
            max_abs_diff_vs_cpu_engine: job.diff,
        });
    }
    pb.finish_and_clear();
    super::report::print(args, &dev, threads, &backends, rows)
}

/// Capture `m`'s forward pass on `x` as a CUDA graph; also the largest |difference| between the
/// graph's and the eager logits.
#[cfg(feature = "cuda")]
fn make_graph(m: &InferenceModel, x: &Tensor, sel: &Selection) -> anyhow::Result<(Graph, f64)> {
    let eager = m.forward(x, sel, &[])?;
    let graph = hlfp::kernels::cuda_graph::GraphForward::capture(x, |t| m.forward(t, sel, &[]))?;
    let replay = graph.run(x)?;
    let d = (replay - eager)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()? as f64;
    Ok((graph, d))
}

#[cfg(not(feature = "cuda"))]
fn make_graph(_: &InferenceModel, _: &Tensor, _: &Selection) -> anyhow::Result<(Graph, f64)> {
    anyhow::bail!("CUDA graphs need the cuda feature")
}

/// One timed graph pass: input copy, one launch, output copy, synchronisation.
#[cfg(feature = "cuda")]
fn run_graph(g: &Graph, x: &Tensor, dev: &Device) -> anyhow::Result<()> {
    let y = g.run(x)?;
    dev.synchronize()?;
    std::hint::black_box(y);
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn run_graph(g: &Graph, _: &Tensor, _: &Device) -> anyhow::Result<()> {
    match *g {}
}

/// The largest |logit difference| between `m` on `x` and the CPU engine `reference` on
/// `x_cpu` (the same weights and input).
fn max_abs_diff(
    m: &InferenceModel,
    x: &Tensor,
    reference: &InferenceModel,
    x_cpu: &Tensor,
    sel: &Selection,
) -> anyhow::Result<f64> {
    let got: Vec<f32> = m.forward(x, sel, &[])?.flatten_all()?.to_vec1()?;
    let want: Vec<f32> = reference
        .forward(x_cpu, sel, &[])?
        .flatten_all()?
        .to_vec1()?;
    anyhow::ensure!(
        got.len() == want.len(),
        "{} logits vs {} on the CPU engine",
        got.len(),
        want.len()
    );
    Ok(got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, f64::max))
}
