//! `hlfp eval-audio --fold MODEL:LIST ...`: the held-out-by-source evaluation. For each fold
//! (a model and the clips its training never saw), the non-animal clips become one continuous
//! background stream (false cues per minute, per class and per source), each other-animal
//! label its own stream (false cues per class), and the cat/dog clips are mixed into the
//! background at `--mix-snr-db` (recall and onset latency per source) and streamed alone
//! (clean recall). Folds are pooled; `--sweep-on` gives the trade-off curve and `--png` draws it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hlfp::audio::cues::{ClassCue, CueConfig, CueMap};
use hlfp::audio::detector::{DetectorConfig, WindowScorer};
use hlfp::audio::eval::{run_clip, sweep_detector_config, MemoScorer};
use hlfp::audio::features::LogMelConfig;
use hlfp::audio::operating_point::{apply, choose, OperatingPoint, SweepPoint};
use hlfp::audio::pipeline::AudioPipeline;
use hlfp::audio::sources::{label_kind, ClipSource, LabelKind};
use hlfp::audio::streams::{concat, detections, mix_into, Detection, Stream, StreamClip};
use hlfp::audio::wav::read_wav;
use hlfp::stats::{median, poisson_rate_interval, quantile, wilson_interval};

use super::eval_audio::{list_clips, Args};
use super::listen::{build_pipeline, load_scorer};

/// Classes the trade-off is reported for (the dog sound label also cues `english_springer`,
/// which would count every dog cue twice).
const CLASSES: [&str; 2] = ["cat", "dog"];

/// Everything one detector setting did on one or more folds.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Tally {
    bg_minutes: f64,
    bg_minutes_per_source: BTreeMap<String, f64>,
    /// class -> false cues on the background stream.
    bg_false: BTreeMap<String, usize>,
    /// "source/class" -> false cues.
    bg_false_per_source: BTreeMap<String, usize>,
    /// (class, clip playing when it fired) of every false cue on the background, in order.
    bg_false_clips: Vec<(String, String)>,
    /// other-animal label -> minutes.
    animal_minutes: BTreeMap<String, f64>,
    /// "label/class" -> false cues on that animal's stream.
    animal_false: BTreeMap<String, usize>,
    mixed: Vec<Detection>,
    /// (label, source, detected) of each clip streamed alone.
    clean: Vec<(String, String, bool)>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.bg_minutes += o.bg_minutes;
        for (k, v) in o.bg_minutes_per_source {
            *self.bg_minutes_per_source.entry(k).or_default() += v;
        }
        for (k, v) in o.bg_false {
            *self.bg_false.entry(k).or_default() += v;
        }
        for (k, v) in o.bg_false_per_source {
            *self.bg_false_per_source.entry(k).or_default() += v;
        }
        self.bg_false_clips.extend(o.bg_false_clips);
        for (k, v) in o.animal_minutes {
            *self.animal_minutes.entry(k).or_default() += v;
        }
        for (k, v) in o.animal_false {
            *self.animal_false.entry(k).or_default() += v;
        }
        self.mixed.extend(o.mixed);
        self.clean.extend(o.clean);
    }

    fn recall_mixed(&self, label: &str, source: Option<&str>) -> (usize, usize) {
        let hits = self
            .mixed
            .iter()
            .filter(|d| d.label == label && source.is_none_or(|s| d.source == s));
        let n = hits.clone().count();
        (hits.filter(|d| d.latency_s.is_some()).count(), n)
    }

    fn latencies(&self, label: &str, source: Option<&str>) -> Vec<f64> {
        self.mixed
            .iter()
            .filter(|d| d.label == label && source.is_none_or(|s| d.source == s))
            .filter_map(|d| d.latency_s)
            .collect()
    }

    fn recall_clean(&self, label: &str, source: Option<&str>) -> (usize, usize) {
        let it = self
            .clean
            .iter()
            .filter(|(l, s, _)| l == label && source.is_none_or(|x| s == x));
        let n = it.clone().count();
        (it.filter(|c| c.2).count(), n)
    }

    fn bg_rate(&self, class: &str) -> f64 {
        self.bg_false.get(class).copied().unwrap_or(0) as f64 / self.bg_minutes.max(1e-9)
    }

    fn animal_rate(&self, class: &str) -> f64 {
        let n: usize = self
            .animal_false
            .iter()
            .filter(|(k, _)| k.ends_with(&format!("/{class}")))
            .map(|(_, v)| v)
            .sum();
        n as f64 / self.animal_minutes.values().sum::<f64>().max(1e-9)
    }

    /// One line per class: recall (mixed, clean), false cues per minute, latency.
    fn summary(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for c in CLASSES {
            let (h, n) = self.recall_mixed(c, None);
            let (hc, nc) = self.recall_clean(c, None);
            let lat = self.latencies(c, None);
            let bg = self.bg_false.get(c).copied().unwrap_or(0);
            out.insert(
                c.to_string(),
                serde_json::json!({
                    "recall_mixed": h as f64 / n.max(1) as f64, "mixed_clips": n,
                    "recall_mixed_hits": h,
                    "recall_mixed_ci95": wilson_interval(h, n),
                    "recall_clean": hc as f64 / nc.max(1) as f64, "clean_clips": nc,
                    "bg_false_cues": bg,
                    "bg_false_cues_per_min": self.bg_rate(c),
                    "bg_false_cues_per_min_ci95": poisson_rate_interval(bg, self.bg_minutes),
                    "other_animal_false_cues_per_min": self.animal_rate(c),
                    "median_onset_latency_s": median(&lat),
                    "p95_onset_latency_s": quantile(&lat, 0.95),
                }),
            );
        }
        out.insert("bg_minutes".into(), self.bg_minutes.into());
        out.insert(
            "other_animal_minutes".into(),
            // A float sum starts at -0.0: no animal streams would print "-0.0" minutes.
            self.animal_minutes.values().fold(0.0, |a, m| a + m).into(),
        );
        serde_json::Value::Object(out)
    }
}

/// One fold's audio, built once and streamed under every setting.
struct FoldAudio {
    background: Stream,
    animals: Vec<Stream>,
    mixed: Stream,
    targets: Vec<StreamClip>,
}

fn load_fold(args: &Args, list: &Path, map: &CueMap) -> anyhow::Result<FoldAudio> {
    let mut bg = Vec::new();
    let mut animals: BTreeMap<String, Vec<StreamClip>> = BTreeMap::new();
    let mut targets = Vec::new();
    for (label, path) in list_clips(&args.data, Some(list))? {
        let rel = path
            .strip_prefix(&args.data)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let src = ClipSource::from_rel_path(&rel)?;
        let wav = read_wav(&path)?;
        if wav.sample_rate_hz != 16_000 {
            bail!("{}: streams are built at 16 kHz", path.display());
        }
        let clip = StreamClip {
            label: label.clone(),
            source: src.source,
            rel_path: rel,
            samples: wav.samples,
        };
        if !map.classes_for(&label).is_empty() {
            // Cue clips (cat, dog, chainsaw): only cat and dog are the cues under test.
            if label_kind(&label) == LabelKind::AnimalCue {
                targets.push(clip);
            }
        } else if label_kind(&label) == LabelKind::OtherAnimal {
            animals.entry(label).or_default().push(clip);
        } else {
            bg.push(clip);
        }
    }
    // Interleave sources so the stream changes scene often, deterministically.
    bg.sort_by_key(|c| (hash_str(&c.rel_path) % 1000, c.rel_path.clone()));
    let background = concat(&bg, 16_000);
    if background.samples.is_empty() {
        bail!(
            "{}: no non-animal clips for the background stream",
            list.display()
        );
    }
    let mixed = mix_into(
        &background.samples,
        &targets,
        16_000,
        args.mix_snr_db,
        2.0,
        3.0,
    )?;
    Ok(FoldAudio {
        background,
        animals: animals.values().map(|v| concat(v, 16_000)).collect(),
        mixed,
        targets,
    })
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn stream_cues<S: WindowScorer>(
    p: &mut AudioPipeline<S>,
    s: &Stream,
) -> anyhow::Result<Vec<ClassCue>> {
    p.reset();
    let (mut events, mut cues) = (Vec::new(), Vec::new());
    for chunk in s.samples.chunks(16_000) {
        p.push(chunk, s.rate_hz, &mut events, &mut cues)?;
    }
    p.finish(&mut events, &mut cues)?;
    Ok(cues)
}

fn run_setting<S: WindowScorer>(
    p: &mut AudioPipeline<S>,
    fold: &FoldAudio,
    pad_s: f64,
) -> anyhow::Result<Tally> {
    let mut t = Tally {
        bg_minutes: fold.background.minutes(),
        ..Default::default()
    };
    for seg in &fold.background.segments {
        *t.bg_minutes_per_source
            .entry(seg.source.clone())
            .or_default() += seg.len_s / 60.0;
    }
    for c in stream_cues(p, &fold.background)? {
        if !CLASSES.contains(&c.class.as_str()) {
            continue;
        }
        *t.bg_false.entry(c.class.clone()).or_default() += 1;
        if let Some(seg) = fold.background.segment_at(c.time_s) {
            *t.bg_false_per_source
                .entry(format!("{}/{}", seg.source, c.class))
                .or_default() += 1;
            t.bg_false_clips
                .push((c.class.clone(), seg.rel_path.clone()));
        }
    }
    for a in &fold.animals {
        let label = a
            .segments
            .first()
            .map(|s| s.label.clone())
            .unwrap_or_default();
        *t.animal_minutes.entry(label.clone()).or_default() += a.minutes();
        for c in stream_cues(p, a)? {
            if CLASSES.contains(&c.class.as_str()) {
                *t.animal_false
                    .entry(format!("{label}/{}", c.class))
                    .or_default() += 1;
            }
        }
    }
    let cues = stream_cues(p, &fold.mixed)?;
    t.mixed = detections(&fold.mixed, &cues, &p.cue_map().clone(), 1.0);
    for c in &fold.targets {
        let r = run_clip(p, &c.label, &c.samples, 16_000, pad_s)?;
        let hit = r.cues.iter().any(|q| q.class == c.label);
        t.clean.push((c.label.clone(), c.source.clone(), hit));
    }
    Ok(t)
}

/// Parse `MODEL:LIST`.
fn parse_fold(s: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (m, l) = s
        .split_once(':')
        .with_context(|| format!("--fold {s:?}: expected MODEL.safetensors:LIST.txt"))?;
    Ok((PathBuf::from(m), PathBuf::from(l)))
}

/// Run the held-out-by-source evaluation.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let file = CueConfig::load(&args.cues)?;
    let mut op_total = Tally::default();
    let min_ons = if args.sweep_min_on.is_empty() {
        vec![file.detector.min_on_windows]
    } else {
        args.sweep_min_on.clone()
    };
    let settings: Vec<(usize, f32)> = min_ons
        .iter()
        .flat_map(|&m| args.sweep_on.iter().map(move |&on| (m, on)))
        .collect();
    let mut sweep_total: Vec<Tally> = vec![Tally::default(); settings.len()];
    for spec in &args.fold {
        let (model, list) = parse_fold(spec)?;
        let mut memo = MemoScorer::new(load_scorer(&model)?);
        let map = build_pipeline(&args.cues, &mut memo, 16_000)?
            .cue_map()
            .clone();
        let fold = load_fold(args, &list, &map)?;
        tracing::info!(
            "fold {}: {:.1} min background, {} other-animal streams, {} cue clips ({:.1} min mixed)",
            list.display(),
            fold.background.minutes(),
            fold.animals.len(),
            fold.targets.len(),
            fold.mixed.minutes()
        );
        let mut p = build_pipeline(&args.cues, &mut memo, 16_000)?;
        op_total.merge(run_setting(&mut p, &fold, args.pad_s)?);
        for (i, &(min_on, on)) in settings.iter().enumerate() {
            let det: DetectorConfig =
                sweep_detector_config(&file.detector, on, min_on, memo.labels())?;
            let mut p =
                AudioPipeline::new(LogMelConfig::default(), det, map.clone(), &mut memo, 16_000)?;
            sweep_total[i].merge(run_setting(&mut p, &fold, args.pad_s)?);
        }
        let (hits, misses) = memo.counts();
        tracing::info!("{misses} windows scored, {hits} from the cache");
    }
    let sweep: Vec<serde_json::Value> = settings
        .iter()
        .zip(&sweep_total)
        .map(|((m, on), t)| serde_json::json!({"on": on, "min_on_windows": m, "summary": t.summary()}))
        .collect();
    let chosen = if args.choose_limits.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::to_value(choose_operating_point(
            args,
            &file,
            &settings,
            &sweep_total,
        )?)?
    };
    let report = serde_json::json!({
        "chosen": chosen,
        "mix_snr_db": args.mix_snr_db,
        "operating_point": op_total.summary(),
        "per_source": per_source(&op_total),
        "bg_false_cue_clips": false_cue_clips(&op_total)
            .iter()
            .map(|(clip, class, cues)| serde_json::json!({"clip": clip, "class": class, "cues": cues}))
            .collect::<Vec<_>>(),
        "other_animals": op_total.animal_false,
        "other_animal_minutes": op_total.animal_minutes,
        "sweep": sweep,
    });
    if let Some(png) = &args.png {
        // Each class's curve at its own `min_on_windows`: the detector its operating point runs.
        let curves: Vec<Vec<Tally>> = CLASSES
            .iter()
            .map(|c| {
                settings
                    .iter()
                    .zip(&sweep_total)
                    .filter(|((m, _), _)| *m == file.detector.min_on_for(c))
                    .map(|(_, t)| t.clone())
                    .collect()
            })
            .collect();
        draw(png, args, &op_total, &curves, &file.detector)?;
    }
    if let Some(md) = &args.report_md {
        std::fs::write(md, markdown(&op_total, args.mix_snr_db))
            .with_context(|| format!("write {}", md.display()))?;
    }
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// `--choose-limits`: the operating point chosen from the pooled sweep, and with `--write-cues`
/// the cue file that runs it.
fn choose_operating_point(
    args: &Args,
    file: &CueConfig,
    settings: &[(usize, f32)],
    sweep: &[Tally],
) -> anyhow::Result<OperatingPoint> {
    let sweeps: BTreeMap<String, Vec<SweepPoint>> = CLASSES
        .iter()
        .map(|c| {
            let pts = settings
                .iter()
                .zip(sweep)
                .map(|(&(min_on_windows, on), t)| {
                    let (hits, n) = t.recall_mixed(c, None);
                    SweepPoint {
                        on,
                        min_on_windows,
                        recall: hits as f64 / n.max(1) as f64,
                        false_cues_per_min: t.bg_rate(c),
                    }
                })
                .collect();
            (c.to_string(), pts)
        })
        .collect();
    let op =
        choose(&sweeps, &args.choose_limits, args.choose_min_recall).context("--choose-limits")?;
    for c in &op.classes {
        tracing::info!(
            "chosen for {}: on {:.2}, {} window(s) in a row (validation recall {:.2}, {:.2} false cues/min; limit {}/min{})",
            c.class,
            c.point.on,
            c.point.min_on_windows,
            c.point.recall,
            c.point.false_cues_per_min,
            op.limit_per_min,
            if op.min_recall_met { "" } else { ", minimum recall NOT met at any limit" }
        );
    }
    if let Some(out) = &args.write_cues {
        let labels_of = |class: &str| -> Vec<String> {
            file.cues
                .iter()
                .filter(|(_, classes)| classes.iter().any(|c| c == class))
                .map(|(l, _)| l.clone())
                .collect()
        };
        let chosen = CueConfig {
            cues: file.cues.clone(),
            detector: apply(&file.detector, &op, labels_of)?,
        };
        let folds: Vec<&str> = args.fold.iter().map(String::as_str).collect();
        let text = format!(
            "# Written by `hlfp eval-audio --choose-limits {limits:?} --choose-min-recall {r}` from the\n\
             # validation sweep of {folds:?}, on top of {base}.\n\
             # Limit {lim} false cues/min of background (minimum recall met: {met}).\n{body}",
            limits = args.choose_limits,
            r = args.choose_min_recall,
            base = args.cues.display(),
            lim = op.limit_per_min,
            met = op.min_recall_met,
            body = toml::to_string(&chosen).context("serialising the chosen cue file")?,
        );
        std::fs::write(out, text).with_context(|| format!("write {}", out.display()))?;
    }
    Ok(op)
}

fn per_source(t: &Tally) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let mut keys: Vec<(String, String)> = t
        .mixed
        .iter()
        .map(|d| (d.label.clone(), d.source.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    for (label, src) in keys {
        let (h, n) = t.recall_mixed(&label, Some(&src));
        let (hc, nc) = t.recall_clean(&label, Some(&src));
        let lat = t.latencies(&label, Some(&src));
        out.insert(
            format!("{label}/{src}"),
            serde_json::json!({"clips": n, "recall_mixed": h as f64 / n.max(1) as f64,
                "recall_clean": hc as f64 / nc.max(1) as f64,
                "median_onset_latency_s": median(&lat)}),
        );
    }
    for (src, min) in &t.bg_minutes_per_source {
        let f = |c: &str| {
            t.bg_false_per_source
                .get(&format!("{src}/{c}"))
                .copied()
                .unwrap_or(0)
        };
        out.insert(
            format!("background/{src}"),
            serde_json::json!({"minutes": min, "false_cat": f("cat"), "false_dog": f("dog")}),
        );
    }
    serde_json::Value::Object(out)
}

/// The background clips that raised false cues at the operating point as (clip, class, cues),
/// most cues first: what a user would listen to before changing thresholds or adding data.
fn false_cue_clips(t: &Tally) -> Vec<(&str, &str, usize)> {
    let mut n: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (class, clip) in &t.bg_false_clips {
        *n.entry((clip.as_str(), class.as_str())).or_default() += 1;
    }
    let mut rows: Vec<_> = n
        .into_iter()
        .map(|((clip, class), k)| (clip, class, k))
        .collect();
    rows.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    rows
}

/// A 95 % interval as the tables print it.
fn ci95(ci: Option<(f64, f64)>) -> String {
    ci.map_or("-".into(), |(lo, hi)| format!("95 % {lo:.2}-{hi:.2}"))
}

/// The per-source tables as Markdown (for the card and the notes): the totals with 95 %
/// intervals (Wilson for a recall, exact Poisson for a rate).
fn markdown(t: &Tally, snr: f64) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| cue source | label | clips | recall at {snr} dB | recall clean | median onset latency at {snr} dB |\n| --- | --- | ---: | ---: | ---: | ---: |"
    );
    let mut keys: Vec<(String, String)> = t
        .mixed
        .iter()
        .map(|d| (d.label.clone(), d.source.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    let lat = |v: Vec<f64>| median(&v).map_or("-".to_string(), |m| format!("{m:.2} s"));
    for (label, src) in &keys {
        let (h, n) = t.recall_mixed(label, Some(src));
        let (hc, nc) = t.recall_clean(label, Some(src));
        let _ = writeln!(
            s,
            "| {src} | {label} | {n} | {:.2} ({h}/{n}) | {:.2} ({hc}/{nc}) | {} |",
            h as f64 / n.max(1) as f64,
            hc as f64 / nc.max(1) as f64,
            lat(t.latencies(label, Some(src)))
        );
    }
    for c in CLASSES {
        let (h, n) = t.recall_mixed(c, None);
        let (hc, nc) = t.recall_clean(c, None);
        let _ = writeln!(
            s,
            "| **all** | **{c}** | {n} | **{:.2}** ({h}/{n}; {}) | {:.2} ({hc}/{nc}) | {} |",
            h as f64 / n.max(1) as f64,
            ci95(wilson_interval(h, n)),
            hc as f64 / nc.max(1) as f64,
            lat(t.latencies(c, None))
        );
    }
    let _ = writeln!(
        s,
        "\n| background source | minutes | false cat cues | false dog cues |\n| --- | ---: | ---: | ---: |"
    );
    for (src, min) in &t.bg_minutes_per_source {
        let f = |c: &str| {
            t.bg_false_per_source
                .get(&format!("{src}/{c}"))
                .copied()
                .unwrap_or(0)
        };
        let _ = writeln!(s, "| {src} | {min:.1} | {} | {} |", f("cat"), f("dog"));
    }
    let all = |c: &str| {
        let k = t.bg_false.get(c).copied().unwrap_or(0);
        let ci = ci95(poisson_rate_interval(k, t.bg_minutes));
        format!("{k} ({:.2}/min; {ci})", t.bg_rate(c))
    };
    let _ = writeln!(
        s,
        "| **all** | {:.1} | {} | {} |",
        t.bg_minutes,
        all("cat"),
        all("dog")
    );
    let clips = false_cue_clips(t);
    if !clips.is_empty() {
        let _ = writeln!(
            s,
            "\n| background clip playing at a false cue | cue | cues |\n| --- | --- | ---: |"
        );
        for (clip, class, cues) in &clips {
            let _ = writeln!(s, "| {clip} | {class} | {cues} |");
        }
    }
    let _ = writeln!(
        s,
        "\n| other animal | minutes | false cat cues / min | false dog cues / min |\n| --- | ---: | ---: | ---: |"
    );
    for (label, min) in &t.animal_minutes {
        let f = |c: &str| {
            t.animal_false
                .get(&format!("{label}/{c}"))
                .copied()
                .unwrap_or(0)
        };
        let _ = writeln!(
            s,
            "| {label} | {min:.1} | {:.2} ({}) | {:.2} ({}) |",
            f("cat") as f64 / min.max(1e-9),
            f("cat"),
            f("dog") as f64 / min.max(1e-9),
            f("dog")
        );
    }
    s
}

/// `curves`: one threshold sweep per class of [`CLASSES`], in order.
fn draw(
    png: &Path,
    args: &Args,
    op: &Tally,
    curves: &[Vec<Tally>],
    det: &DetectorConfig,
) -> anyhow::Result<()> {
    use hlfp::plot::{figure_image, Figure, Mark, Panel, Series};
    let font = super::common::load_font(None);
    let colours = [(200u8, 80u8, 20u8), (30u8, 90u8, 200u8)];
    let mut series = Vec::new();
    for ((c, rgb), sweep) in CLASSES.iter().zip(colours).zip(curves) {
        let mut pts: Vec<(f64, f64)> = sweep
            .iter()
            .map(|t| {
                let (h, n) = t.recall_mixed(c, None);
                (t.bg_rate(c), h as f64 / n.max(1) as f64)
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        series.push(Series {
            name: format!(
                "{c} (threshold sweep, {} window(s) in a row)",
                det.min_on_for(c)
            ),
            points: pts,
            rgb,
            mark: Mark::Line,
        });
        let (h, n) = op.recall_mixed(c, None);
        series.push(Series {
            name: format!("{c}: chosen operating point"),
            points: vec![(op.bg_rate(c), h as f64 / n.max(1) as f64)],
            rgb,
            mark: Mark::Dots,
        });
    }
    let fig = Figure {
        title: format!(
            "Held out by source: cue recall at {} dB vs false cues per minute of background ({:.1} min)",
            args.mix_snr_db, op.bg_minutes
        ),
        x_label: "false cues per minute of non-animal background".into(),
        panels: vec![Panel {
            y_label: "cue recall".into(),
            series,
            y_range: Some((0.0, 1.02)),
            integer_y: false,
        }],
        markers: vec![(0.1, "goal 0.1/min".into())],
        spans: Vec::new(),
        note: None,
        text: font,
        width: 900,
        panel_height: 560,
    };
    figure_image(&fig)?
        .save(png)
        .with_context(|| format!("write {}", png.display()))?;
    Ok(())
}
