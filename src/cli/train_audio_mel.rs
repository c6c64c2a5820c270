//! `hlfp train-audio --split source`: several data directories, whole sources held out as the
//! test set, a validation split by recording, and training on precomputed mel power with
//! mel-domain augmentation (`hlfp::audio::melaug`). Writes `<out>.safetensors`, `<out>.md`,
//! `<out>.test.txt` and `<out>.val.txt` (clip lists relative to the data directories' parent).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::Device;
use hlfp::audio::classifier::AudioClassifier;
use hlfp::audio::features::{log_mel, LogMelConfig};
use hlfp::audio::melaug::{MelAugmentConfig, MelClip, MelSampler};
use hlfp::audio::sources::{label_kind, split_by_source, ClipSource, LabelKind, Split};
use hlfp::audio::train::{self, Clip};

use super::train_audio::{accuracy_table, model_config, read_clip, scan, with_ext, Args};

/// Every clip under the `--data` directories, with its path relative to their parent.
pub fn scan_sources(dirs: &[PathBuf]) -> anyhow::Result<Vec<(ClipSource, PathBuf)>> {
    let mut out = Vec::new();
    for d in dirs {
        let name = d
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("data dir {} has no UTF-8 name", d.display()))?;
        for r in scan(d)? {
            let rel = format!("{name}/{}", r.rel_path);
            out.push((ClipSource::from_rel_path(&rel)?, d.join(&r.rel_path)));
        }
    }
    out.sort();
    Ok(out)
}

/// Mel power of unit-variance white noise through the front-end (`seconds` of it, seeded).
fn unit_noise_power(fe: &LogMelConfig, seconds: usize) -> anyhow::Result<Vec<f32>> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0015_E000);
    let noise = hlfp::audio::augment::white_noise(seconds * fe.sample_rate_hz as usize, &mut rng);
    Ok(MelClip::from_db(0, &log_mel(&noise, fe)?).power)
}

/// Every clip weighted by (clips of its label from its source)^(power - 1), so that each
/// source of a label is drawn in proportion to its size^power (`--source-weight-power`).
fn source_weighted(
    clips: Vec<MelClip>,
    sources: &[&str],
    power: f64,
) -> anyhow::Result<Vec<MelClip>> {
    if !(0.0..=1.0).contains(&power) {
        bail!("--source-weight-power must be in [0, 1], got {power}");
    }
    if clips.len() != sources.len() {
        bail!(
            "{} training clips but {} sources",
            clips.len(),
            sources.len()
        );
    }
    let mut per_source: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    for (c, s) in clips.iter().zip(sources) {
        *per_source.entry((c.label, s)).or_default() += 1;
    }
    Ok(clips
        .into_iter()
        .zip(sources)
        .map(|(c, s)| {
            let n = per_source[&(c.label, *s)] as f64;
            let w = n.powf(power - 1.0);
            c.with_weight(w)
        })
        .collect())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let fe = LogMelConfig::default();
    let clips = scan_sources(&args.data)?;
    let mut labels: Vec<String> = clips.iter().map(|(c, _)| c.label.clone()).collect();
    labels.sort();
    labels.dedup();
    let refs: Vec<ClipSource> = clips.iter().map(|(c, _)| c.clone()).collect();
    let split = split_by_source(&refs, &args.test_sources, args.val_every)?;

    let model_cfg = model_config(args, labels.clone(), &fe)?;
    model_cfg.validate()?;

    let list = |which: Split| -> String {
        refs.iter()
            .zip(&split)
            .filter(|(_, s)| **s == which)
            .map(|(c, _)| format!("{}\n", c.rel_path))
            .collect()
    };
    let test_path = with_ext(&args.out, "test.txt");
    let val_path = with_ext(&args.out, "val.txt");
    if let Some(dir) = test_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(&test_path, list(Split::Test))?;
    std::fs::write(&val_path, list(Split::Validation))?;

    // Training clips as mel power (the front-end runs once per clip); validation and test
    // clips as waveforms for the window evaluation.
    let label_ix = |l: &str| labels.iter().position(|x| x == l).unwrap_or(0);
    let mut mel_clips = Vec::new();
    let mut mel_sources: Vec<&str> = Vec::new();
    let mut eval_val = Vec::new();
    let mut eval_test = Vec::new();
    for ((c, path), s) in clips.iter().zip(&split) {
        let samples = read_clip(path, fe.sample_rate_hz)?;
        match s {
            Split::Train => {
                let db = log_mel(&samples, &fe)?;
                if !db.is_empty() {
                    mel_clips.push(MelClip::from_db(label_ix(&c.label), &db));
                    mel_sources.push(&c.source);
                }
            }
            Split::Validation | Split::Test => {
                let clip = Clip {
                    label: label_ix(&c.label),
                    rel_path: c.rel_path.clone(),
                    samples,
                };
                if *s == Split::Test {
                    eval_test.push(clip);
                } else {
                    eval_val.push(clip);
                }
            }
        }
    }
    let mel_clips = source_weighted(mel_clips, &mel_sources, args.source_weight_power)?;
    let mut n_train = vec![0usize; labels.len()];
    mel_clips.iter().for_each(|c| n_train[c.label] += 1);
    let weights: Vec<f64> = labels
        .iter()
        .zip(&n_train)
        .map(|(l, &n)| {
            if n == 0 {
                return 0.0;
            }
            let w = (n as f64).powf(args.label_weight_power);
            if label_kind(l) == LabelKind::AnimalCue {
                w * args.cue_weight
            } else {
                w
            }
        })
        .collect();
    // Backgrounds mixed under other windows: non-animal labels that are not cues themselves.
    let background: Vec<usize> = labels
        .iter()
        .enumerate()
        .filter(|(_, l)| label_kind(l) == LabelKind::NonAnimal && l.as_str() != "chainsaw")
        .map(|(i, _)| i)
        .collect();
    tracing::info!(
        "{} labels, {} training clips, {} validation, {} test (sources {:?})",
        labels.len(),
        mel_clips.len(),
        eval_val.len(),
        eval_test.len(),
        args.test_sources
    );
    if mel_clips.is_empty() {
        bail!("no training clips left");
    }

    let mut aug = MelAugmentConfig::new(args.window_frames, fe.n_mels);
    aug.freq_shift_bins = args.freq_shift_bins;
    aug.reverb_prob = args.reverb_prob;
    aug.validate()
        .context("--freq-shift-bins or --reverb-prob")?;
    let mut sampler = MelSampler::new(
        &mel_clips,
        &weights,
        &background,
        unit_noise_power(&fe, 8)?,
        aug.clone(),
        args.seed,
    )?;
    let window_samples = fe.n_fft + (args.window_frames - 1) * fe.hop_samples;
    let cfg = super::train_audio::train_config(args, window_samples, fe.n_mels)?;

    let total = (cfg.epochs * cfg.steps_per_epoch) as u64;
    let bar = indicatif::ProgressBar::new(total);
    let steps_per_epoch = cfg.steps_per_epoch.max(1);
    let train_started = Instant::now();
    let model = train::train_with(model_cfg, &mut sampler, &cfg, &Device::Cpu, &mut |s| {
        bar.set_position(s.step as u64);
        if s.step % steps_per_epoch == 0 {
            bar.suspend(|| {
                tracing::info!(
                    "epoch {} done: step {}/{}, loss (avg) {:.3}, lr {:.1e}, {:.0} s",
                    s.epoch,
                    s.step,
                    s.total_steps,
                    s.loss_ema,
                    s.lr,
                    train_started.elapsed().as_secs_f64()
                )
            });
        }
    })?;
    bar.finish_and_clear();
    let train_s = train_started.elapsed().as_secs_f64();
    let model_path = with_ext(&args.out, "safetensors");
    model.save(&model_path)?;
    let model = AudioClassifier::load(&model_path, &Device::Cpu)?;

    let stage = std::cell::RefCell::new(hlfp::audio::features::LogMel::new(fe.clone())?);
    let features = |x: &[f32]| -> hlfp::Result<Vec<f32>> { Ok(stage.borrow_mut().clip(x)) };
    let (eval_name, eval_clips) = if eval_test.is_empty() {
        ("validation", &eval_val)
    } else {
        ("test", &eval_test)
    };
    let report = train::evaluate(
        &model,
        eval_clips,
        window_samples,
        args.eval_hop_frames,
        args.cue_threshold,
        &features,
    )?;
    let table = accuracy_table(&report);
    print!("{table}");

    let mut per_source: BTreeMap<(&str, &str), [usize; 3]> = BTreeMap::new();
    for ((c, _), s) in clips.iter().zip(&split) {
        let e = per_source
            .entry((c.source.as_str(), c.label.as_str()))
            .or_default();
        e[match s {
            Split::Train => 0,
            Split::Validation => 1,
            Split::Test => 2,
        }] += 1;
    }
    let mut card = String::new();
    let _ = writeln!(card, "# Training run `{}`\n", model_path.display());
    let _ = writeln!(
        card,
        "```\n{}\n```\n",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        card,
        "- Labels ({}): `{}`; network: {} blocks {:?}, head `{}`, window norm `{}`, output `{}`, window {} \
         frames; {} bytes.",
        labels.len(),
        labels.join("`, `"),
        args.backbone,
        args.channels,
        args.head,
        args.window_norm,
        args.output,
        args.window_frames,
        std::fs::metadata(&model_path).map(|m| m.len()).unwrap_or(0)
    );
    let _ = writeln!(
        card,
        "- Split: test sources {:?} (whole sources), validation every {}th recording per label of \
         the rest; lists in `{}` and `{}`.",
        args.test_sources,
        args.val_every,
        test_path.display(),
        val_path.display()
    );
    let _ = writeln!(
        card,
        "- Training: {} x {} steps x {} windows, AdamW lr {:e} (cosine to 5 %), weight decay \
         {:e}, label smoothing {}, seed {}; label weight (clips)^{} x {} for cat/dog; {:.0} s \
         training, {:.0} s in all.",
        cfg.epochs,
        cfg.steps_per_epoch,
        cfg.batch_size,
        cfg.lr,
        cfg.weight_decay,
        cfg.label_smoothing,
        cfg.seed,
        args.label_weight_power,
        args.cue_weight,
        train_s,
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        card,
        "- Mel-domain augmentation: {aug:?}; SpecAugment {:?}; mixup {:?}.\n",
        cfg.spec_augment, cfg.mixup
    );
    let _ = writeln!(card, "## Clips per source and label (train / val / test)\n");
    let _ = writeln!(
        card,
        "| source | label | train | val | test |\n| --- | --- | ---: | ---: | ---: |"
    );
    for ((src, label), n) in &per_source {
        let _ = writeln!(card, "| {src} | {label} | {} | {} | {} |", n[0], n[1], n[2]);
    }
    let _ = writeln!(
        card,
        "\n## Window accuracy on the {eval_name} clips\n\n{table}"
    );
    let card_path = with_ext(&args.out, "md");
    std::fs::write(&card_path, card)?;
    tracing::info!(
        "wrote {}, {}, {} and {}",
        model_path.display(),
        card_path.display(),
        test_path.display(),
        val_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_of_a_label_are_drawn_in_proportion_to_size_to_the_power() {
        // Label 0: four clips of source a, one of b; label 1: one clip of a.
        let clip = |label| MelClip::from_db(label, &[0.0; 4]);
        let clips = vec![clip(0), clip(0), clip(0), clip(0), clip(0), clip(1)];
        let sources = ["a", "a", "a", "a", "b", "a"];
        let share = |power: f64| {
            let w = source_weighted(clips.clone(), &sources, power).unwrap();
            let a: f64 = w[..4].iter().map(|c| c.weight).sum();
            (a / (a + w[4].weight), w[5].weight)
        };
        assert_eq!(share(1.0), (0.8, 1.0), "every clip alike");
        assert_eq!(share(0.0), (0.5, 1.0), "every source alike");
        let (a, lone) = share(0.5);
        assert!(
            (a - 2.0 / 3.0).abs() < 1e-12 && lone == 1.0,
            "sqrt(4) : sqrt(1)"
        );
        let err = source_weighted(clips.clone(), &sources, 1.5).unwrap_err();
        assert!(err.to_string().contains("--source-weight-power"), "{err}");
        let err = source_weighted(clips.clone(), &sources[..2], 1.0).unwrap_err();
        assert!(
            err.to_string().contains("6 training clips but 2 sources"),
            "{err}"
        );
    }
}
