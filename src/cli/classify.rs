//! `hlfp classify`: one image through the vision model, optionally with a cue, as the guided
//! runtime would see it at the cue's arrival.

use super::common::VisionArgs;
use hlfp::guidance::{Cue, Guidance};
use hlfp::pipeline::folder::decode_rgb8;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `hlfp classify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Image file (JPEG or PNG).
    #[arg(long)]
    pub image: PathBuf,
    /// A cue as `class` or `class:score` (repeatable), applied before classifying.
    #[arg(long)]
    pub cue: Vec<String>,
    /// How many classes to print.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Print a markdown table without the latency, the same on every machine (the README's
    /// example is generated this way; see docs/generated/).
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    #[command(flatten)]
    pub vision: VisionArgs,
}

fn parse_cue(s: &str) -> anyhow::Result<(String, f32)> {
    match s.rsplit_once(':') {
        Some((c, v)) => Ok((
            c.to_string(),
            v.parse()
                .map_err(|_| anyhow::anyhow!("cue {s:?}: score {v:?} is not a number"))?,
        )),
        None => Ok((s.to_string(), 1.0)),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut model = args.vision.load()?;
    let classes = model.config().class_names.clone();
    let mut guidance = Guidance::new(classes.clone(), &args.vision.guidance()?)?;
    for c in &args.cue {
        let (class, score) = parse_cue(c)?;
        let cue = Cue {
            class: class.clone(),
            score,
            source: "cli".into(),
            time_ms: 0,
        };
        guidance.submit(&cue).map_err(|r| {
            anyhow::anyhow!(
                "cue {class:?} refused: {}",
                serde_json::to_string(&r).unwrap_or_default()
            )
        })?;
    }
    let state = guidance.state_at(0);
    let (w, h, rgb) = decode_rgb8(&args.image)?;
    let t = Instant::now();
    let logits = model.logits_rgb8(&rgb, w as usize, h as usize, &state.active, &state.gains)?;
    let latency_ms = t.elapsed().as_secs_f64() * 1e3;
    let probs = hlfp::vision::classifier::softmax(&logits);
    if let Some(p) = probs.iter().find(|p| !p.is_finite()) {
        anyhow::bail!(
            "the model gave a non-finite probability ({p}) for this image: refusing to print it"
        );
    }
    let mut top: Vec<(usize, f32)> = state.active.iter().copied().zip(probs).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(args.top);
    let macs = model.macs(&state.active)?;
    if args.markdown {
        let pct = |p: f32| format!("{:.0} %", p * 100.0);
        let cues: Vec<String> = state
            .cued
            .iter()
            .map(|c| format!("{} (gain {:.2})", c.class, c.gain))
            .collect();
        println!(
            "{} of {} branches, {:.3} GMACs; cues: {}\n",
            state.active.len(),
            classes.len(),
            macs as f64 / 1e9,
            if cues.is_empty() {
                "none".into()
            } else {
                cues.join(", ")
            }
        );
        println!("| class | probability |\n|---|---:|");
        for (i, p) in top {
            println!("| {} | {} |", classes[i], pct(p));
        }
    } else if args.json {
        let out = serde_json::json!({
            "image": args.image,
            "top": top.iter().map(|(i, p)| serde_json::json!({"class": classes[*i], "index": i, "score": p})).collect::<Vec<_>>(),
            "active": state.active.iter().map(|&i| &classes[i]).collect::<Vec<_>>(),
            "gains": state.cued.iter().map(|c| serde_json::json!({"class": c.class, "gain": c.gain})).collect::<Vec<_>>(),
            "policy": state.policy,
            "macs": macs,
            "latency_ms": latency_ms,
            "device": model.device_name(),
            "backend": model.model().backend().name(),
        });
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{} ({}x{}), {} of {} branches, {:.3} GMACs, {latency_ms:.1} ms on {}",
            args.image.display(),
            w,
            h,
            state.active.len(),
            classes.len(),
            macs as f64 / 1e9,
            model.device_name()
        );
        for c in &state.cued {
            println!("  cue {} (gain {:.2})", c.class, c.gain);
        }
        for (i, p) in top {
            println!("  {:>6.2}%  {}", p * 100.0, classes[i]);
        }
    }
    Ok(())
}
