//! `hlfp bench`'s report: the measured rows, ratios between cases, the goals and the table.

use super::{device_name, Args, Row};
use anyhow::Context;
use candle_core::Device;
use hlfp::model::Backend;

/// Print (or write as JSON) the timed rows: ratios, goals, the latency-vs-branches line and
/// the plot.
pub(super) fn print(
    args: &Args,
    dev: &Device,
    threads: usize,
    backends: &[Backend],
    mut rows: Vec<Row>,
) -> anyhow::Result<()> {
    let on_gpu = !dev.is_cpu();
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
    let main_path = backends.first().map_or("engine", |b| b.name()).to_string();
    // The headline latency: the CUDA-graph median where measured (GPU), else the eager median.
    let med = |name: &str| -> f64 {
        rows.iter()
            .find(|r| r.name == name && r.path == main_path)
            .map_or(f64::NAN, Row::headline_ms)
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
        .map(|r| (r.active as f64, r.headline_ms()))
        .collect();
    let (slope, intercept, r2) = super::plot::fit_line(&line_pts);
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
                device_name(dev)
            )
        } else {
            "batch-1 CPU latency against active branches".to_string()
        };
        super::plot::write_plot(png, &title, &rows, &main_path, (slope, intercept))?;
    }
    if args.json {
        let out = serde_json::json!({
            "device": device_name(dev), "threads": threads, "batch": 1, "input_size": args.size,
            "iters": args.iters, "warmup": args.warmup, "seed": args.seed,
            "rows": rows, "ratios": ratios, "goals": goals,
            "latency_vs_active": {"path": main_path, "slope_ms_per_branch": slope,
                                   "intercept_ms": intercept, "r2": r2},
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let on = if on_gpu {
        format!("{}, synchronised after each pass", device_name(dev))
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
    if backends.contains(&Backend::Candle) {
        let worst = rows
            .iter()
            .filter_map(|r| r.max_abs_diff_vs_cpu_engine)
            .fold(0.0f64, f64::max);
        let what = if on_gpu { "CUDA" } else { "candle path" };
        println!("largest |logit difference|, {what} vs CPU engine, over all models: {worst:.2e}");
    }
    if backends.len() == 2 {
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
