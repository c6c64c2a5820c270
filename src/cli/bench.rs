//! `hlfp bench`: batch-1 CPU latency of ResNet50 and HLFP-small cutouts (folded inference path),
//! and `--memory`: peak RSS of loading a 1000-class HLFP-small cutout from a file.

use anyhow::Context;
use candle_core::{Device, Tensor};
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
    variant: String,
    classes: usize,
    active: usize,
    gmacs_conv_linear: f64,
    median_ms: f64,
    p90_ms: f64,
    min_ms: f64,
    gflops: f64,
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

fn latency(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.iters > 0, "--iters must be at least 1");
    let dev = Device::Cpu;
    let threads = candle_core::utils::get_num_threads();
    // (label, config, active classes)
    let runs: Vec<(&str, ModelConfig, Vec<usize>)> = vec![
        (
            "resnet50",
            bench_cfg(Variant::Resnet50, 10, args.size),
            (0..10).collect(),
        ),
        (
            "hlfp-small full k=10",
            bench_cfg(Variant::HlfpSmall, 10, args.size),
            (0..10).collect(),
        ),
        (
            "hlfp-small cutout k=5",
            bench_cfg(Variant::HlfpSmall, 10, args.size),
            (0..5).collect(),
        ),
        (
            "hlfp-small cutout k=1",
            bench_cfg(Variant::HlfpSmall, 10, args.size),
            vec![0],
        ),
    ];
    let pb = ProgressBar::new((runs.len() * (args.iters + args.warmup)) as u64);
    pb.set_style(ProgressStyle::with_template(
        "{msg:24} {bar:30} {pos}/{len} [{elapsed}]",
    )?);
    let x = seeded_input(args.seed, args.size, &dev)?;
    let mut rows = Vec::new();
    let mut model: Option<(Variant, InferenceModel)> = None;
    for (label, cfg, active) in &runs {
        pb.set_message(label.to_string());
        // The three HLFP rows share one full model: cutouts are selections, not reloads.
        if model.as_ref().map(|m| m.0) != Some(cfg.variant) {
            let map = weights::random_tensors(cfg, args.seed, &dev)?;
            model = Some((
                cfg.variant,
                InferenceModel::from_tensors(cfg, &map, None, &dev)?,
            ));
        }
        let m = &model.as_ref().context("model")?.1;
        let sel = Selection::from_indices(cfg, active)?;
        for _ in 0..args.warmup {
            m.forward(&x, &sel, &[])?;
            pb.inc(1);
        }
        let mut ms = Vec::with_capacity(args.iters);
        for _ in 0..args.iters {
            let t0 = Instant::now();
            let y = m.forward(&x, &sel, &[])?;
            // CPU ops are synchronous; reading one value keeps the work from being skipped.
            let _ = y.flatten_all()?.get(0)?.to_scalar::<f32>()?;
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
            pb.inc(1);
        }
        ms.sort_by(f64::total_cmp);
        let median = percentile(&ms, 0.5);
        let macs = conv_linear_macs(cfg, &sel)? as f64;
        rows.push(Row {
            name: label.to_string(),
            variant: cfg.variant.name().into(),
            classes: cfg.num_classes(),
            active: sel.len(),
            gmacs_conv_linear: macs / 1e9,
            median_ms: median,
            p90_ms: percentile(&ms, 0.9),
            min_ms: ms[0],
            gflops: 2.0 * macs / (median / 1e3) / 1e9,
        });
    }
    pb.finish_and_clear();
    let r = |a: usize, b: usize| rows[a].median_ms / rows[b].median_ms;
    let mr = |a: usize, b: usize| rows[a].gmacs_conv_linear / rows[b].gmacs_conv_linear;
    let ratios = serde_json::json!({
        "k5_vs_full_latency": r(2, 1), "k5_vs_full_macs": mr(2, 1),
        "k1_vs_full_latency": r(3, 1), "k1_vs_full_macs": mr(3, 1),
        "full_vs_resnet50_latency": r(1, 0), "full_vs_resnet50_macs": mr(1, 0),
        "k5_vs_resnet50_latency": r(2, 0), "k5_vs_resnet50_macs": mr(2, 0),
        "k1_vs_resnet50_latency": r(3, 0), "k1_vs_resnet50_macs": mr(3, 0),
    });
    if args.json {
        let out = serde_json::json!({
            "device": "cpu", "threads": threads, "batch": 1, "input_size": args.size,
            "iters": args.iters, "warmup": args.warmup, "seed": args.seed,
            "path": "InferenceModel (BN folded, candle conv2d)", "rows": rows, "ratios": ratios,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "batch 1, {0}x{0}, CPU, {threads} threads, {1} iters after {2} warm-up, seed {3}, folded inference path",
        args.size, args.iters, args.warmup, args.seed
    );
    println!(
        "{:<24} {:>6} {:>11} {:>10} {:>8} {:>7} {:>10} {:>10}",
        "model", "active", "GMACs(c+l)", "median ms", "p90 ms", "GFLOPS", "vs full", "vs R50"
    );
    for (i, row) in rows.iter().enumerate() {
        let vs_full = if i == 0 {
            "-".to_string()
        } else {
            format!("{:.3}", r(i, 1))
        };
        println!(
            "{:<24} {:>6} {:>11.3} {:>10.2} {:>8.2} {:>7.1} {:>10} {:>10.3}",
            row.name,
            row.active,
            row.gmacs_conv_linear,
            row.median_ms,
            row.p90_ms,
            row.gflops,
            vs_full,
            r(i, 0)
        );
    }
    println!(
        "MAC ratios: k5/full {:.3}, k1/full {:.3}, full/R50 {:.3}, k5/R50 {:.3}, k1/R50 {:.3}",
        mr(2, 1),
        mr(3, 1),
        mr(1, 0),
        mr(2, 0),
        mr(3, 0)
    );
    Ok(())
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
