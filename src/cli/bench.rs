//! `hlfp bench`: batch-1 latency of ResNet50 and HLFP-small cutouts (folded inference path) on
//! the CPU or, with `--device cuda`, on a GPU; and `--memory`: peak RSS of loading a 1000-class
//! HLFP-small cutout from a file.

use anyhow::Context;
use candle_core::{Device, Tensor};
use hlfp::engine::EngineModel;
use hlfp::model::spec::{ConvDesc, NetSpec, UnitSpace};
use hlfp::model::{weights, InferenceModel, ModelConfig, Selection, Variant};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

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
    /// Inference path to time (default: `engine` on the CPU, `candle` on CUDA).
    #[arg(long, value_enum)]
    pub path: Option<PathChoice>,
    /// Where to run: `cpu` or `cuda[:N]` (needs the `cuda` feature). On CUDA every timed pass
    /// ends with a device synchronisation, and each model's output is checked against the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CUDA: keep candle's device defaults (CUDA event tracking, memory returned to the driver
    /// at every synchronisation) and skip the CUDA-graph timings, to compare with the set-up
    /// of `hlfp::gpu::cuda_device`.
    #[arg(long)]
    pub cuda_untuned: bool,
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

/// One measured model.
#[derive(Serialize, Debug)]
struct Row {
    name: String,
    path: String,
    variant: String,
    classes: usize,
    active: usize,
    gmacs_conv_linear: f64,
    median_ms: f64,
    p90_ms: f64,
    min_ms: f64,
    gflops: f64,
    pytorch_ms: Option<f64>,
    /// CUDA: median and p90 latency of the same forward replayed as one CUDA graph.
    graph_median_ms: Option<f64>,
    graph_p90_ms: Option<f64>,
    /// CUDA: largest |logit difference| between the graph replay and the eager pass.
    graph_max_abs_diff_vs_eager: Option<f64>,
    /// Largest |logit difference| against the CPU engine on the same weights and input
    /// (candle path only; on CUDA this is the GPU-vs-CPU check).
    max_abs_diff_vs_cpu_engine: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(t) = args.threads {
        anyhow::ensure!(t > 0, "--threads must be at least 1");
        // candle's CPU kernels size their thread pools from this variable.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    if let Some(path) = &args.memory_child {
        return memory_child(path, &args);
    }
    if args.memory {
        return memory(&args);
    }
    latency(&args)
}

fn bench_cfg(variant: Variant, k: usize, size: usize) -> ModelConfig {
    let mut c = ModelConfig::new(variant, k);
    c.input_size = size;
    c
}

/// One benchmark case: a model config and the branches it runs.
struct Case {
    name: &'static str,
    cfg: ModelConfig,
    active: Vec<usize>,
}

fn cases(size: usize) -> Vec<Case> {
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

/// Which inference path to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PathChoice {
    /// The GEMM engine (what the CLI and the nodes run on the CPU).
    Engine,
    /// candle's ops with BN folded (the CUDA path's code, here on the CPU).
    Candle,
    /// Both, with the ratio.
    Both,
}

/// A loaded model of one path.
enum Runner {
    Engine(EngineModel),
    Candle(InferenceModel),
}

#[cfg(feature = "cuda")]
type Graph = hlfp::gpu::GraphForward;
/// No CUDA graphs without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
type Graph = std::convert::Infallible;

/// One timed (case, path): its model, selection and samples.
struct Job {
    case: usize,
    path: PathChoice,
    model: usize,
    sel: Selection,
    gains: Vec<f32>,
    macs: f64,
    diff: Option<f64>,
    graph: Option<Graph>,
    graph_diff: Option<f64>,
    ms: Vec<f64>,
    graph_ms: Vec<f64>,
}

/// Least-squares line y = slope * x + intercept, with R^2.
fn fit_line(points: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let intercept = my - slope * mx;
    let ss_tot: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    let ss_res: f64 = points
        .iter()
        .map(|p| (p.1 - slope * p.0 - intercept).powi(2))
        .sum();
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        1.0
    };
    (slope, intercept, r2)
}

fn latency(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.iters > 0, "--iters must be at least 1");
    let dev = match args.device.as_str() {
        "cpu" => Device::Cpu,
        s => {
            let n = s
                .strip_prefix("cuda")
                .map(|r| r.strip_prefix(':').unwrap_or(r))
                .map(|r| {
                    if r.is_empty() {
                        Ok(0)
                    } else {
                        r.parse::<usize>()
                    }
                })
                .with_context(|| format!("unknown device {s:?}; expected cpu or cuda[:N]"))?
                .with_context(|| format!("bad device {s:?}; expected cpu or cuda[:N]"))?;
            hlfp::gpu::cuda_device(n, !args.cuda_untuned)?
        }
    };
    let on_gpu = !dev.is_cpu();
    let threads = args.threads.unwrap_or(2);
    let cases = cases(args.size);
    let paths: Vec<PathChoice> = match (args.path, on_gpu) {
        (None, false) => vec![PathChoice::Engine],
        (None, true) | (Some(PathChoice::Candle), _) => vec![PathChoice::Candle],
        (Some(_), true) => anyhow::bail!(
            "--device {}: only --path candle runs on a GPU (the engine is CPU code)",
            args.device
        ),
        (Some(PathChoice::Both), false) => vec![PathChoice::Engine, PathChoice::Candle],
        (Some(p), false) => vec![p],
    };
    let pb = ProgressBar::new((paths.len() * cases.len() * (args.iters + args.warmup)) as u64);
    pb.set_style(ProgressStyle::with_template(
        "{msg:36} {bar:30} {pos}/{len} [{elapsed}]",
    )?);
    let x_cpu = seeded_input(args.seed, args.size, &Device::Cpu)?;
    let img: Vec<f32> = x_cpu.flatten_all()?.to_vec1()?;
    let x = x_cpu.to_device(&dev)?;

    // Load every model once (cutouts of a model are selections, not reloads), then time the
    // cases in interleaved rounds: each round runs every case once, so a slow spell of this
    // shared machine hits all cases alike instead of whichever case was running then.
    let mut models: Vec<Runner> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    // The config loaded last (classes, variant), its model index per path, and the index of its
    // CPU engine: timed on the engine path, the reference the candle path is checked against.
    type Loaded = ((usize, Variant), Vec<(PathChoice, usize)>, usize);
    let mut loaded: Option<Loaded> = None;
    for (ci, case) in cases.iter().enumerate() {
        let key = (case.cfg.num_classes(), case.cfg.variant);
        if loaded.as_ref().map(|l| l.0) != Some(key) {
            pb.set_message(format!("loading {}", case.name));
            // Generated on the CPU (the same values whatever the device), then moved.
            let mut map = weights::random_tensors(&case.cfg, args.seed, &Device::Cpu)?;
            models.push(Runner::Engine(EngineModel::load(&case.cfg, &map, threads)?));
            let engine = models.len() - 1;
            let mut here = Vec::new();
            for &path in &paths {
                if path == PathChoice::Engine {
                    here.push((path, engine));
                    continue;
                }
                if on_gpu {
                    for t in map.values_mut() {
                        *t = t.to_device(&dev)?;
                    }
                }
                models.push(Runner::Candle(InferenceModel::from_tensors(
                    &case.cfg, &map, None, &dev,
                )?));
                here.push((path, models.len() - 1));
            }
            loaded = Some((key, here, engine));
        }
        let (_, here, engine) = loaded.as_ref().context("models")?;
        let sel = Selection::from_indices(&case.cfg, &case.active)?;
        let macs = conv_linear_macs(&case.cfg, &sel)? as f64;
        let Runner::Engine(reference) = &models[*engine] else {
            anyhow::bail!("internal: model {engine} is not the CPU engine");
        };
        for &(path, mi) in here {
            let mut job = Job {
                case: ci,
                path,
                model: mi,
                sel: sel.clone(),
                gains: vec![1.0f32; case.cfg.num_classes()],
                macs,
                diff: None,
                graph: None,
                graph_diff: None,
                ms: Vec::with_capacity(args.iters),
                graph_ms: Vec::new(),
            };
            if let Runner::Candle(m) = &models[mi] {
                pb.set_message(format!("checking {}", case.name));
                job.diff = Some(diff_vs_cpu(m, reference, &x, case, &sel, &img)?);
                if on_gpu && !args.cuda_untuned {
                    let (g, d) = make_graph(m, &x, &sel)?;
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
            let case = &cases[job.case];
            let t0 = Instant::now();
            match &models[job.model] {
                Runner::Engine(m) => {
                    let y = m.forward_image(&img, &case.active, &job.gains)?;
                    std::hint::black_box(y);
                }
                Runner::Candle(m) => {
                    let y = m.forward(&x, &job.sel, &[])?;
                    if on_gpu {
                        // Kernels run asynchronously: wait for them inside the timed region.
                        dev.synchronize()?;
                    } else {
                        // CPU ops are synchronous; reading one value keeps the work honest.
                        let _ = y.flatten_all()?.get(0)?.to_scalar::<f32>()?;
                    }
                    std::hint::black_box(y);
                }
            }
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
            path: format!("{:?}", job.path).to_lowercase(),
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
    if let Some(p) = &args.pytorch {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or(""))
            .with_context(|| {
                format!(
                    "{}: expected the JSON line of scripts/bench_pytorch.py --json",
                    p.display()
                )
            })?;
        for row in &mut rows {
            row.pytorch_ms = v["median_ms"][&row.name].as_f64();
        }
    }
    let main_path = format!("{:?}", paths[0]).to_lowercase();
    // The headline latency: the CUDA-graph median where measured (GPU), else the eager median.
    let med = |name: &str| -> f64 {
        rows.iter()
            .find(|r| r.name == name && r.path == main_path)
            .map_or(f64::NAN, headline_ms)
    };
    let eager = |name: &str| -> f64 {
        rows.iter()
            .find(|r| r.name == name && r.path == main_path)
            .map_or(f64::NAN, |r| r.median_ms)
    };
    let gm = |name: &str| -> f64 {
        rows.iter()
            .find(|r| r.name == name)
            .map_or(f64::NAN, |r| r.gmacs_conv_linear)
    };
    // Latency against active branches of the 10-class model.
    let line_pts: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.path == main_path && r.classes == 10 && r.variant == "hlfp-small")
        .map(|r| (r.active as f64, headline_ms(r)))
        .collect();
    let (slope, intercept, r2) = fit_line(&line_pts);
    let full = med("hlfp-small k=10");
    let torch_full = rows
        .iter()
        .find(|r| r.name == "hlfp-small k=10" && r.path == main_path)
        .and_then(|r| r.pytorch_ms);
    let k1_ratio = med("hlfp-small cutout 1/10") / full;
    let k100_ratio = med("hlfp-small k=100 cutout 5") / med("hlfp-small k=5 (5-class model)");
    let gmed = |name: &str| -> Option<f64> {
        rows.iter()
            .find(|r| r.name == name && r.path == main_path)
            .and_then(|r| r.graph_median_ms)
    };
    let k1_vs_r50 = eager("hlfp-small cutout 1/10") / eager("resnet50");
    let k1_vs_r50_graph = gmed("hlfp-small cutout 1/10")
        .zip(gmed("resnet50"))
        .map(|(a, b)| a / b);
    let mut goals = serde_json::json!([
        {"goal": "HLFP-small full <= 1.0x PyTorch eager", "value": torch_full.map(|t| full / t),
         "met": torch_full.map(|t| full / t <= 1.0)},
        {"goal": "latency(k=1)/latency(k=10) <= 0.64", "value": k1_ratio, "met": k1_ratio <= 0.64},
        {"goal": "k=100 cutout 5 within 10% of a 5-class model", "value": k100_ratio,
         "met": (k100_ratio - 1.0).abs() <= 0.10},
    ]);
    if on_gpu {
        let list = goals.as_array_mut().context("goals")?;
        list.push(
            serde_json::json!({"goal": "GPU: cutout k=1 <= 0.66x ResNet50 (eager)",
            "value": k1_vs_r50, "met": k1_vs_r50 <= 0.66}),
        );
        list.push(
            serde_json::json!({"goal": "GPU: cutout k=1 <= 0.66x ResNet50 (CUDA graph)",
            "value": k1_vs_r50_graph, "met": k1_vs_r50_graph.map(|v| v <= 0.66)}),
        );
    }
    let ratios = serde_json::json!({
        "k5_vs_full_latency": med("hlfp-small cutout 5/10") / full,
        "k2_vs_full_latency": med("hlfp-small cutout 2/10") / full,
        "k1_vs_full_latency": k1_ratio,
        "k1_vs_full_macs": gm("hlfp-small cutout 1/10") / gm("hlfp-small k=10"),
        "full_vs_resnet50_latency": full / med("resnet50"),
        "k1_vs_resnet50_latency": k1_vs_r50,
        "k1_vs_resnet50_graph_latency": k1_vs_r50_graph,
        "k1_vs_full_graph_latency": gmed("hlfp-small cutout 1/10")
            .zip(gmed("hlfp-small k=10"))
            .map(|(a, b)| a / b),
        "k100_cutout5_vs_5class_latency": k100_ratio,
    });
    if !args.no_plot {
        let png = &args.plot;
        let title = if on_gpu {
            format!(
                "batch-1 latency on {} against active branches",
                device_name(&dev)
            )
        } else {
            "batch-1 CPU latency against active branches".to_string()
        };
        write_plot(png, &title, &rows, &main_path, (slope, intercept))?;
    }
    if args.json {
        let out = serde_json::json!({
            "device": device_name(&dev), "threads": threads, "batch": 1, "input_size": args.size,
            "iters": args.iters, "warmup": args.warmup, "seed": args.seed,
            "rows": rows, "ratios": ratios, "goals": goals,
            "latency_vs_active": {"path": main_path, "slope_ms_per_branch": slope,
                                   "intercept_ms": intercept, "r2": r2},
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let on = if on_gpu {
        format!("{}, synchronised after each pass", device_name(&dev))
    } else {
        format!("CPU, {threads} threads")
    };
    println!(
        "batch 1, {0}x{0}, {on}, median of {1} after {2} warm-up, seed {3}",
        args.size, args.iters, args.warmup, args.seed
    );
    println!(
        "{:<31} {:>7} {:>6} {:>10} {:>10} {:>8} {:>7} {:>8} {:>8} {:>9}",
        "model",
        "path",
        "active",
        "GMACs(c+l)",
        "median ms",
        "p90 ms",
        "GFLOPS",
        "vs full",
        "vs R50",
        "PyTorch"
    );
    for row in &rows {
        let same = |name: &str| {
            rows.iter()
                .find(|r| r.name == name && r.path == row.path)
                .map_or(f64::NAN, |r| r.median_ms)
        };
        println!(
            "{:<31} {:>7} {:>6} {:>10.3} {:>10.2} {:>8.2} {:>7.1} {:>8.3} {:>8.3} {:>9}",
            row.name,
            row.path,
            row.active,
            row.gmacs_conv_linear,
            row.median_ms,
            row.p90_ms,
            row.gflops,
            row.median_ms / same("hlfp-small k=10"),
            row.median_ms / same("resnet50"),
            row.pytorch_ms.map_or("-".into(), |t| format!("{t:.2} ms"))
        );
    }
    if rows.iter().any(|r| r.graph_median_ms.is_some()) {
        println!("as one CUDA graph (input copy, one launch, output copy, synchronisation):");
        for row in &rows {
            let g = |name: &str| {
                rows.iter()
                    .find(|r| r.name == name && r.path == row.path)
                    .and_then(|r| r.graph_median_ms)
                    .unwrap_or(f64::NAN)
            };
            if let Some(t) = row.graph_median_ms {
                println!(
                    "{:<31} {:>7} {:>6} median {:>7.3} ms  p90 {:>7.3} ms  vs eager {:>6.3}  vs full {:>6.3}  vs R50 {:>6.3}",
                    row.name,
                    row.path,
                    row.active,
                    t,
                    row.graph_p90_ms.unwrap_or(f64::NAN),
                    t / row.median_ms,
                    t / g("hlfp-small k=10"),
                    t / g("resnet50")
                );
            }
        }
    }
    if paths.contains(&PathChoice::Candle) {
        let worst = rows
            .iter()
            .filter_map(|r| r.max_abs_diff_vs_cpu_engine)
            .fold(0.0f64, f64::max);
        let what = if on_gpu { "CUDA" } else { "candle path" };
        println!("largest |logit difference|, {what} vs CPU engine, over all models: {worst:.2e}");
    }
    if paths.len() == 2 {
        let e = |n: &str| med(n);
        let c = |n: &str| {
            rows.iter()
                .find(|r| r.name == n && r.path == "candle")
                .map_or(f64::NAN, |r| r.median_ms)
        };
        println!(
            "engine vs candle path: ResNet50 {:.2}x, HLFP-small k=10 {:.2}x, cutout 1/10 {:.2}x",
            e("resnet50") / c("resnet50"),
            e("hlfp-small k=10") / c("hlfp-small k=10"),
            e("hlfp-small cutout 1/10") / c("hlfp-small cutout 1/10")
        );
    }
    println!(
        "latency vs active branches ({main_path}{}, 10-class HLFP-small): {slope:.3} ms per branch + {intercept:.3} ms (R^2 {r2:.3})",
        if rows.iter().any(|r| r.graph_median_ms.is_some()) { ", CUDA graph" } else { "" }
    );
    for g in goals.as_array().into_iter().flatten() {
        println!(
            "goal {:<48} value {:>7} -> {}",
            g["goal"].as_str().unwrap_or(""),
            g["value"]
                .as_f64()
                .map_or("n/a".into(), |v| format!("{v:.3}")),
            match g["met"].as_bool() {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "unknown (pass --pytorch FILE)",
            }
        );
    }
    Ok(())
}

/// Latency against active branches (10-class HLFP-small rows of `path`) with the fitted line,
/// and ResNet50 as a horizontal reference.
fn write_plot(
    png: &std::path::Path,
    title: &str,
    rows: &[Row],
    path: &str,
    (slope, intercept): (f64, f64),
) -> anyhow::Result<()> {
    use hlfp::plot::{figure_image, Figure, Mark, Panel, Series};
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.path == path && r.classes == 10 && r.variant == "hlfp-small")
        .map(|r| (r.active as f64, headline_ms(r)))
        .collect();
    let r50 = rows
        .iter()
        .find(|r| r.path == path && r.name == "resnet50")
        .map_or(f64::NAN, headline_ms);
    let graphs = rows.iter().any(|r| r.graph_median_ms.is_some());
    let how = if graphs { ", CUDA graph" } else { "" };
    let mut series = vec![
        Series {
            name: format!("HLFP-small, measured ({path}{how})"),
            points: pts,
            rgb: (31, 119, 180),
            mark: Mark::Dots,
        },
        Series {
            name: format!("fit: {slope:.2} ms/branch + {intercept:.2} ms"),
            points: vec![(0.0, intercept), (10.0, intercept + 10.0 * slope)],
            rgb: (31, 119, 180),
            mark: Mark::Line,
        },
        Series {
            name: format!("ResNet50{how}"),
            points: vec![(0.0, r50), (10.0, r50)],
            rgb: (214, 39, 40),
            mark: Mark::Line,
        },
    ];
    if graphs {
        series.push(Series {
            name: "HLFP-small, eager (one launch per kernel)".into(),
            points: rows
                .iter()
                .filter(|r| r.path == path && r.classes == 10 && r.variant == "hlfp-small")
                .map(|r| (r.active as f64, r.median_ms))
                .collect(),
            rgb: (255, 127, 14),
            mark: Mark::Dots,
        });
    }
    let torch: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.path == path && r.classes == 10 && r.variant == "hlfp-small")
        .filter_map(|r| r.pytorch_ms.map(|t| (r.active as f64, t)))
        .collect();
    if !torch.is_empty() {
        series.push(Series {
            name: "PyTorch eager (same machine)".into(),
            points: torch,
            rgb: (120, 120, 120),
            mark: Mark::Dots,
        });
    }
    let fig = Figure {
        title: title.into(),
        x_label: "active branches (of 10)".into(),
        panels: vec![Panel {
            y_label: "median latency (ms)".into(),
            series,
            y_range: None,
        }],
        markers: vec![],
        text: super::common::load_font(None),
        width: 760,
        panel_height: 440,
    };
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    figure_image(&fig)?
        .save(png)
        .with_context(|| format!("writing {}", png.display()))?;
    eprintln!("wrote {}", png.display());
    Ok(())
}

/// The latency a row is judged by: its CUDA-graph median where measured, else its eager median.
fn headline_ms(r: &Row) -> f64 {
    r.graph_median_ms.unwrap_or(r.median_ms)
}

/// Capture `m`'s forward pass on `x` as a CUDA graph; also the largest |difference| between the
/// graph's and the eager logits.
#[cfg(feature = "cuda")]
fn make_graph(m: &InferenceModel, x: &Tensor, sel: &Selection) -> anyhow::Result<(Graph, f64)> {
    let eager = m.forward(x, sel, &[])?;
    let graph = hlfp::gpu::GraphForward::capture(x, |t| m.forward(t, sel, &[]))?;
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

/// The device as the report names it.
fn device_name(dev: &Device) -> String {
    match dev.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Run `m` (the candle path, on any device) and the CPU engine on the same weights and input
/// once; the largest absolute difference of their logits.
fn diff_vs_cpu(
    m: &InferenceModel,
    cpu_model: &EngineModel,
    x: &Tensor,
    case: &Case,
    sel: &Selection,
    img: &[f32],
) -> anyhow::Result<f64> {
    let gpu: Vec<f32> = m.forward(x, sel, &[])?.flatten_all()?.to_vec1()?;
    let gains = vec![1.0f32; case.cfg.num_classes()];
    let cpu = cpu_model.forward_image(img, &case.active, &gains)?;
    anyhow::ensure!(
        cpu.len() == gpu.len(),
        "{}: {} logits on the GPU, {} on the CPU",
        case.name,
        gpu.len(),
        cpu.len()
    );
    Ok(cpu
        .iter()
        .zip(&gpu)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, f64::max))
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

/// Conv and linear multiply-accumulates of one image for the active classes of `sel` (BN, ReLU,
/// pooling and adds not counted: the "conv+linear" convention of PAPER.md).
pub fn conv_linear_macs(cfg: &ModelConfig, sel: &Selection) -> anyhow::Result<u64> {
    let spec = NetSpec::new(cfg)?;
    let out = |h: usize, d: &ConvDesc| (h + 2 * d.pad - d.shape[2]) / d.stride + 1;
    let conv = |h: usize, d: &ConvDesc| -> (usize, u64) {
        let ho = out(h, d);
        let rows = match d.units {
            Some(u) if u.space == UnitSpace::Class => d.shape[0] / u.n * sel.len(),
            Some(u) if u.space == UnitSpace::Superclass => {
                d.shape[0] / u.n * sel.superclasses().len()
            }
            _ => d.shape[0],
        };
        (
            ho,
            (ho * ho * rows * d.shape[1] * d.shape[2] * d.shape[3]) as u64,
        )
    };
    let (mut h, mut macs) = conv(cfg.input_size, &spec.stem);
    h = (h + 2 - 3) / 2 + 1; // max-pool 3x3/2, padding 1
    for b in spec.trunk.iter().chain(&spec.branch) {
        let h_in = h;
        for c in &b.convs {
            let (ho, m) = conv(h, c);
            h = ho;
            macs += m;
        }
        if let Some(d) = &b.downsample {
            macs += conv(h_in, d).1;
        }
    }
    let [rows, fan_in] = spec.head.shape;
    let head_rows = if spec.head.per_branch {
        sel.len()
    } else {
        rows
    };
    macs += (head_rows * fan_in) as u64;
    Ok(macs)
}

/// `--memory`: stream a random weights file, then measure loads in fresh processes.
fn memory(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.active >= 1 && args.active <= args.classes,
        "--active must be in 1..=--classes"
    );
    let own_dir = args.dir.is_none();
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("hlfp-bench-memory-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let result = memory_in(args, &dir);
    if own_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn memory_in(args: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut cfg = bench_cfg(Variant::HlfpSmall, args.classes, args.size);
    cfg.width = 1.0;
    let path = dir.join(format!(
        "hlfp-small-{}-seed{}.safetensors",
        args.classes, args.seed
    ));
    let t0 = Instant::now();
    let bytes = if path.exists() {
        std::fs::metadata(&path)?.len()
    } else {
        eprintln!("writing {} (streamed) ...", path.display());
        weights::write_random_safetensors(&path, &cfg, args.seed)?
    };
    let write_s = t0.elapsed().as_secs_f64();
    let writer_hwm = vm_hwm_kib()?;
    let exe = std::env::current_exe()?;
    let mut results = vec![];
    let mut loads = vec![args.active];
    if args.full {
        loads.push(args.classes);
    }
    for n in loads {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            "bench",
            "--classes",
            &args.classes.to_string(),
            "--active",
            &n.to_string(),
        ]);
        cmd.args([
            "--size",
            &args.size.to_string(),
            "--seed",
            &args.seed.to_string(),
        ]);
        if let Some(t) = args.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        cmd.arg("--memory-child").arg(&path);
        let out = cmd.output()?;
        anyhow::ensure!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("child output")?;
        results.push(v);
    }
    let report = serde_json::json!({
        "file": path.display().to_string(), "file_bytes": bytes, "write_s": write_s,
        "writer_vm_hwm_kib": writer_hwm, "loads": results,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "HLFP-small, {} classes, file {:.2} GB (written in {:.1} s, writer peak RSS {:.0} MiB)",
            args.classes,
            bytes as f64 / 1e9,
            write_s,
            writer_hwm as f64 / 1024.0
        );
        println!(
            "{:>9} {:>14} {:>14} {:>10} {:>12}",
            "branches", "params loaded", "peak RSS MiB", "load s", "forward ms"
        );
        for r in &results {
            println!(
                "{:>9} {:>14} {:>14.0} {:>10.2} {:>12.1}",
                r["loaded_branches"],
                r["params_loaded"],
                r["vm_hwm_kib"].as_f64().unwrap_or(0.0) / 1024.0,
                r["load_s"].as_f64().unwrap_or(0.0),
                r["forward_ms"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

/// The child of `--memory`: load `args.active` branches of `path`, run one forward on a cutout of
/// (at most) 5 of them, print VmHWM as JSON.
fn memory_child(path: &std::path::Path, args: &Args) -> anyhow::Result<()> {
    let mut cfg = bench_cfg(Variant::HlfpSmall, args.classes, args.size);
    cfg.width = 1.0;
    let dev = Device::Cpu;
    let load_sel = Selection::from_indices(&cfg, &(0..args.active).collect::<Vec<_>>())?;
    let t0 = Instant::now();
    let m = InferenceModel::load_file(path, &cfg, Some(&load_sel), &dev)?;
    let load_s = t0.elapsed().as_secs_f64();
    let after_load = vm_hwm_kib()?;
    let run_sel = Selection::from_indices(&cfg, &(0..args.active.min(5)).collect::<Vec<_>>())?;
    let x = seeded_input(args.seed, args.size, &dev)?;
    let t1 = Instant::now();
    let y = m.forward(&x, &run_sel, &[])?;
    let _ = y.flatten_all()?.get(0)?.to_scalar::<f32>()?;
    let forward_ms = t1.elapsed().as_secs_f64() * 1e3;
    let spec = NetSpec::new(&cfg)?;
    let params_loaded: usize = spec
        .tensors()
        .iter()
        .filter(|t| !t.name.contains("running_"))
        .map(|t| {
            let n: usize = t.shape.iter().product();
            match t.units {
                Some(u) if u.space == UnitSpace::Class => n / u.n * args.active,
                _ => n,
            }
        })
        .sum();
    let out = serde_json::json!({
        "loaded_branches": args.active, "forward_branches": run_sel.len(), "params_loaded": params_loaded,
        "load_s": load_s, "forward_ms": forward_ms, "vm_hwm_kib_after_load": after_load, "vm_hwm_kib": vm_hwm_kib()?,
    });
    println!("{out}");
    Ok(())
}

/// Peak resident set size of this process (Linux `/proc/self/status` VmHWM), in KiB.
fn vm_hwm_kib() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/self/status")
        .context("reading /proc/self/status (Linux only)")?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gmacs(v: Variant, k: usize, active: usize) -> f64 {
        let c = ModelConfig::new(v, k);
        let sel = Selection::from_indices(&c, &(0..active).collect::<Vec<_>>()).unwrap();
        conv_linear_macs(&c, &sel).unwrap() as f64 / 1e9
    }

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

    #[test]
    fn conv_linear_macs_match_paper() {
        // PAPER.md, conv+linear convention: ResNet50 4.087, HLFP-small k=5 2.619, k=10 3.425, k=1 1.975.
        for (got, want) in [
            (gmacs(Variant::Resnet50, 1000, 1000), 4.087),
            (gmacs(Variant::HlfpSmall, 10, 5), 2.619),
            (gmacs(Variant::HlfpSmall, 10, 10), 3.425),
            (gmacs(Variant::HlfpSmall, 10, 1), 1.975),
        ] {
            assert!((got - want).abs() / want < 0.005, "{got} vs {want}");
        }
    }
}
