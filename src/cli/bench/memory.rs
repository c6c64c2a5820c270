//! `hlfp bench --memory`: peak RSS of loading a cutout of a large model from a file, on each
//! backend, each load in a fresh process.

use super::{bench_cfg, seeded_input, Args};
use anyhow::Context;
use candle_core::Device;
use hlfp::model::{cost, weights, Backend, InferenceModel, InferenceOptions, Selection, Variant};
use std::time::Instant;

/// `--memory`: stream a random weights file, then measure loads in fresh processes.
pub(super) fn memory(args: &Args) -> anyhow::Result<()> {
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
    let backends = match args.path {
        Some(p) => vec![p
            .backend()
            .context("--memory measures one backend at a time or all")?],
        None => vec![Backend::Engine, Backend::Candle],
    };
    let runs: Vec<(Backend, usize)> = backends
        .iter()
        .flat_map(|&b| loads.iter().map(move |&n| (b, n)))
        .collect();
    for (backend, n) in runs {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["bench", "--path", backend.name()]);
        cmd.args([
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
            "{:>8} {:>9} {:>14} {:>14} {:>10} {:>12}",
            "backend", "branches", "params loaded", "peak RSS MiB", "load s", "forward ms"
        );
        for r in &results {
            println!(
                "{:>8} {:>9} {:>14} {:>14.0} {:>10.2} {:>12.1}",
                r["backend"].as_str().unwrap_or("?"),
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
pub(super) fn memory_child(path: &std::path::Path, args: &Args) -> anyhow::Result<()> {
    let mut cfg = bench_cfg(Variant::HlfpSmall, args.classes, args.size);
    cfg.width = 1.0;
    let dev = Device::Cpu;
    let backend = args
        .path
        .and_then(|p| p.backend())
        .unwrap_or(Backend::Engine);
    let opts = InferenceOptions::for_device(&dev).with_backend(backend);
    let opts = match args.threads {
        Some(t) => opts.with_threads(t),
        None => opts,
    };
    let loaded: Vec<usize> = (0..args.active).collect();
    let load_sel = Selection::from_indices(&cfg, &loaded)?;
    let t0 = Instant::now();
    let m = InferenceModel::load_file_with(path, &cfg, Some(&load_sel), &opts)?;
    let load_s = t0.elapsed().as_secs_f64();
    let after_load = vm_hwm_kib()?;
    let run_sel = Selection::from_indices(&cfg, &(0..args.active.min(5)).collect::<Vec<_>>())?;
    let x = seeded_input(args.seed, args.size, &dev)?;
    let t1 = Instant::now();
    let y = m.forward(&x, &run_sel, &[])?;
    let _ = y.flatten_all()?.get(0)?.to_scalar::<f32>()?;
    let forward_ms = t1.elapsed().as_secs_f64() * 1e3;
    let params_loaded = cost(&cfg, Some(&loaded))?.params;
    let out = serde_json::json!({
        "backend": m.backend().name(), "loaded_branches": args.active,
        "forward_branches": run_sel.len(), "params_loaded": params_loaded,
        "load_s": load_s, "forward_ms": forward_ms, "vm_hwm_kib_after_load": after_load,
        "vm_hwm_kib": vm_hwm_kib()?,
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
