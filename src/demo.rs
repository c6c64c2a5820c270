//! The cross-modal demo, pure parts: the scenario (which photo is shown when, where the target
//! appears), the audio track (a real sound placed into quiet background), and the report and
//! timeline computed from the runtime's records. `hlfp demo` does the I/O around them.
//!
//! The target "walks through the view" in episodes: a few consecutive frames of the target
//! class, separated by frames of other classes. A frame counts as a detection when the model's
//! top-1 is the target. Per phase (before the cue, while it is active) the report gives the
//! share of target frames detected, the share of other frames wrongly called the target, the
//! share of episodes found and the median time from an episode's first frame to its first
//! detection, and the compute (active branches, MACs, latency).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::pipeline::{FrameResult, Record};
use crate::plot::{Figure, Mark, Panel, Series, Span};
use crate::stats::median;
use crate::{Error, Result};

/// How the scenario is laid out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioConfig {
    /// The class the robot is looking for (a vision class).
    pub target: String,
    /// Frames per second of the replay.
    pub fps: f64,
    /// Length of the replay in seconds.
    pub seconds: f64,
    /// Frames per target episode.
    pub episode_frames: usize,
    /// Mean gap between episode starts in seconds (drawn uniformly in 0.5x..1.5x).
    pub episode_every_s: f64,
    /// Seed of the layout.
    pub seed: u64,
}

/// One frame of the scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioFrame {
    /// Frame id (its position in the replay).
    pub id: u64,
    /// Planned time in seconds from the start.
    pub t_s: f64,
    /// The class the photo shows.
    pub class: String,
    /// The photo.
    pub path: PathBuf,
    /// Which target episode it belongs to, if any.
    pub episode: Option<usize>,
}

/// The whole replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Its settings.
    pub config: ScenarioConfig,
    /// Frames in replay order.
    pub frames: Vec<ScenarioFrame>,
}

impl Scenario {
    /// Lay out the replay from photos grouped by class. Target photos are used in a shuffled
    /// cycle, distractors drawn at random from the other classes. Errors when the target or
    /// any distractor class is missing.
    pub fn build(config: ScenarioConfig, photos: &BTreeMap<String, Vec<PathBuf>>) -> Result<Self> {
        if !(config.fps > 0.0 && config.seconds > 0.0 && config.episode_every_s > 0.0)
            || config.episode_frames == 0
        {
            return Err(Error::Config(format!(
                "demo scenario needs fps, seconds, episode_every_s and episode_frames > 0: {config:?}"
            )));
        }
        let target_photos = photos
            .get(&config.target)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Error::Config(format!(
                    "no photos of the target class {:?}; classes with photos: {:?}",
                    config.target,
                    photos.keys().collect::<Vec<_>>()
                ))
            })?;
        let others: Vec<(&String, &Vec<PathBuf>)> = photos
            .iter()
            .filter(|(c, v)| **c != config.target && !v.is_empty())
            .collect();
        if others.is_empty() {
            return Err(Error::Config(
                "the demo needs photos of at least one class besides the target".into(),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let n = (config.seconds * config.fps).round().max(1.0) as usize;
        // Episode starts: the first after one mean gap, then gaps of 0.5x..1.5x the mean.
        let gap = config.episode_every_s * config.fps;
        let mut starts = Vec::new();
        let mut at = gap;
        while (at as usize) + config.episode_frames <= n {
            starts.push(at as usize);
            at += gap * rng.random_range(0.5..1.5) + config.episode_frames as f64;
        }
        let mut cycle: Vec<&PathBuf> = target_photos.iter().collect();
        cycle.shuffle(&mut rng);
        let mut next_target = 0usize;
        let mut frames = Vec::with_capacity(n);
        for i in 0..n {
            let episode = starts
                .iter()
                .position(|&s| (s..s + config.episode_frames).contains(&i));
            let (class, path) = if episode.is_some() {
                let p = cycle[next_target % cycle.len()];
                next_target += 1;
                (config.target.clone(), p.clone())
            } else {
                let (c, v) = others[rng.random_range(0..others.len())];
                (c.clone(), v[rng.random_range(0..v.len())].clone())
            };
            frames.push(ScenarioFrame {
                id: i as u64,
                t_s: i as f64 / config.fps,
                class,
                path,
                episode,
            });
        }
        Ok(Self { config, frames })
    }

    /// Number of target episodes.
    pub fn episodes(&self) -> usize {
        self.frames
            .iter()
            .filter_map(|f| f.episode)
            .max()
            .map_or(0, |e| e + 1)
    }
}

/// `background` with `event` added from sample `at` on (clipped to the background's length),
/// scaled so that the event's RMS is `snr_db` above the background's (or unscaled when the
/// background is silent).
pub fn place_sound(background: &[f32], event: &[f32], at: usize, snr_db: f32) -> Vec<f32> {
    let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt();
    let (b, e) = (rms(background), rms(event));
    let scale = if b > 0.0 && e > 0.0 {
        b * 10f32.powf(snr_db / 20.0) / e
    } else {
        1.0
    };
    let mut out = background.to_vec();
    for (o, v) in out.iter_mut().skip(at).zip(event) {
        *o = (*o + v * scale).clamp(-1.0, 1.0);
    }
    out
}

/// Quiet seeded background noise (uniform, peak `amp`).
pub fn background_noise(samples: usize, amp: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..samples).map(|_| rng.random_range(-amp..=amp)).collect()
}

/// Numbers for one phase of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseReport {
    /// Frames classified in the phase.
    pub frames: usize,
    /// Of them, frames that show the target.
    pub target_frames: usize,
    /// Target frames whose top-1 was the target.
    pub target_detected: usize,
    /// `target_detected / target_frames`.
    pub detection_rate: Option<f64>,
    /// Other frames whose top-1 was the target (false alarms).
    pub false_alarms: usize,
    /// `false_alarms / (frames - target_frames)`.
    pub false_alarm_rate: Option<f64>,
    /// Target episodes that started in the phase.
    pub episodes: usize,
    /// Of them, episodes with at least one detection.
    pub episodes_found: usize,
    /// Median seconds from an episode's first frame to its first detection (found ones).
    pub median_time_to_detect_s: Option<f64>,
    /// Mean branches run per frame.
    pub mean_active_branches: f64,
    /// Mean multiply-accumulates per frame, in millions.
    pub mean_mmacs: f64,
    /// Median inference latency per frame (ms).
    pub median_latency_ms: f64,
}

/// The demo's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoReport {
    /// The target class.
    pub target: String,
    /// Runtime time (s) of the first cue for the target, if one came.
    pub cue_at_s: Option<f64>,
    /// Cue events received (time in s, class).
    pub cues: Vec<(f64, String)>,
    /// Frames before the target was cued.
    pub before: PhaseReport,
    /// Frames while the target was cued.
    pub guided: PhaseReport,
    /// Frames after the cue expired.
    pub after: PhaseReport,
    /// Frames dropped by the runtime under overload.
    pub dropped_frames: usize,
    /// Frames that failed.
    pub failed_frames: usize,
}

fn is_detection(r: &FrameResult, target: &str) -> bool {
    r.top.first().is_some_and(|c| c.class == target)
}

fn phase(scenario: &Scenario, results: &[&FrameResult]) -> PhaseReport {
    let target = &scenario.config.target;
    let by_id: HashMap<u64, &ScenarioFrame> = scenario.frames.iter().map(|f| (f.id, f)).collect();
    let mut p = PhaseReport {
        frames: results.len(),
        ..Default::default()
    };
    // Episode -> (time of its first frame, time of its first detection).
    let mut episodes: BTreeMap<usize, (f64, Option<f64>)> = BTreeMap::new();
    let (mut branches, mut macs, mut lat) = (0.0, 0.0, Vec::new());
    for r in results {
        let Some(f) = by_id.get(&r.id) else { continue };
        let t = r.time_ms as f64 / 1e3;
        let hit = is_detection(r, target);
        if f.class == *target {
            p.target_frames += 1;
            p.target_detected += hit as usize;
        } else {
            p.false_alarms += hit as usize;
        }
        if let Some(e) = f.episode {
            let entry = episodes.entry(e).or_insert((t, None));
            if hit && entry.1.is_none() {
                entry.1 = Some(t);
            }
        }
        branches += r.active.len() as f64;
        macs += r.macs as f64 / 1e6;
        lat.push(r.latency_ms);
    }
    // Only episodes whose first frame falls in this phase count here.
    let firsts: HashMap<usize, u64> = scenario
        .frames
        .iter()
        .filter_map(|f| f.episode.map(|e| (e, f.id)))
        .fold(HashMap::new(), |mut m, (e, id)| {
            m.entry(e).or_insert(id);
            m
        });
    let ids: std::collections::HashSet<u64> = results.iter().map(|r| r.id).collect();
    let mut ttd = Vec::new();
    for (e, (start, found)) in &episodes {
        if !firsts.get(e).is_some_and(|id| ids.contains(id)) {
            continue;
        }
        p.episodes += 1;
        if let Some(t) = found {
            p.episodes_found += 1;
            ttd.push(t - start);
        }
    }
    let n = results.len().max(1) as f64;
    let others = p.frames - p.target_frames;
    p.detection_rate =
        (p.target_frames > 0).then(|| p.target_detected as f64 / p.target_frames as f64);
    p.false_alarm_rate = (others > 0).then(|| p.false_alarms as f64 / others as f64);
    p.median_time_to_detect_s = median(&ttd);
    p.mean_active_branches = branches / n;
    p.mean_mmacs = macs / n;
    p.median_latency_ms = median(&lat).unwrap_or(0.0);
    p
}

impl DemoReport {
    /// Compute the report from the runtime's records. A frame belongs to the guided phase when
    /// the target was among its cued classes, to `before` when no cue for the target had come
    /// yet, and to `after` otherwise.
    pub fn from_records(scenario: &Scenario, records: &[Record]) -> Self {
        let target = &scenario.config.target;
        let cues: Vec<(f64, String)> = records
            .iter()
            .filter_map(|r| match r {
                Record::Cue(c) if c.queued => Some((c.time_ms as f64 / 1e3, c.class.clone())),
                _ => None,
            })
            .collect();
        let cue_at_s = cues.iter().find(|(_, c)| c == target).map(|(t, _)| *t);
        let results: Vec<&FrameResult> = records
            .iter()
            .filter_map(|r| match r {
                Record::Result(f) => Some(f),
                _ => None,
            })
            .collect();
        let guided = |r: &&&FrameResult| r.cued.iter().any(|c| c == target);
        let before: Vec<&FrameResult> = results
            .iter()
            .filter(|r| !guided(r) && cue_at_s.is_none_or(|t| (r.time_ms as f64 / 1e3) < t))
            .copied()
            .collect();
        let during: Vec<&FrameResult> = results.iter().filter(guided).copied().collect();
        let after: Vec<&FrameResult> = results
            .iter()
            .filter(|r| !guided(r) && cue_at_s.is_some_and(|t| (r.time_ms as f64 / 1e3) >= t))
            .copied()
            .collect();
        Self {
            target: target.clone(),
            cue_at_s,
            cues,
            before: phase(scenario, &before),
            guided: phase(scenario, &during),
            after: phase(scenario, &after),
            dropped_frames: records
                .iter()
                .filter(|r| matches!(r, Record::Dropped(_)))
                .count(),
            failed_frames: records
                .iter()
                .filter(|r| matches!(r, Record::Error(_)))
                .count(),
        }
    }

    /// The report as a markdown table for the docs: the rows of [`Self::text`] that do not
    /// depend on the machine (no latency; the cue's arrival to 0.1 s), so a rerun with the
    /// same models gives the same table unless the cue's real-time arrival moves a frame.
    pub fn markdown(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.0} %", v * 100.0));
        let mut s = format!(
            "Target {:?}; the cue {}.\n\n",
            self.target,
            self.cue_at_s
                .map_or("never arrived".into(), |t| format!("arrived at {t:.1} s"))
        );
        s += "| | before the cue | cue active | after it expired |\n|---|---:|---:|---:|\n";
        let row = |name: &str, f: &dyn Fn(&PhaseReport) -> String| {
            format!(
                "| {name} | {} | {} | {} |\n",
                f(&self.before),
                f(&self.guided),
                f(&self.after)
            )
        };
        s += &row("frames", &|p| p.frames.to_string());
        s += &row("target frames detected (top-1 = target)", &|p| {
            format!(
                "{}/{}, {}",
                p.target_detected,
                p.target_frames,
                pct(p.detection_rate)
            )
        });
        s += &row("false alarms (other frames called the target)", &|p| {
            pct(p.false_alarm_rate)
        });
        s += &row("appearances found", &|p| {
            format!("{}/{}", p.episodes_found, p.episodes)
        });
        s += &row("active branches (mean)", &|p| {
            format!("{:.1}", p.mean_active_branches)
        });
        s += &row("MMACs per frame (mean)", &|p| {
            format!("{:.1}", p.mean_mmacs)
        });
        s += &format!(
            "\nDropped frames {}, failed frames {}.\n",
            self.dropped_frames, self.failed_frames
        );
        s
    }

    /// A short human-readable report.
    pub fn text(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.0} %", v * 100.0));
        let secs = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} s"));
        let mut s = format!(
            "target {:?}; cue {}\n",
            self.target,
            self.cue_at_s
                .map_or("never arrived".into(), |t| format!("arrived at {t:.2} s"))
        );
        s += &format!(
            "{:<28}{:>14}{:>14}{:>14}\n",
            "", "before cue", "cue active", "after expiry"
        );
        let row = |name: &str, f: &dyn Fn(&PhaseReport) -> String| {
            format!(
                "{name:<28}{:>14}{:>14}{:>14}\n",
                f(&self.before),
                f(&self.guided),
                f(&self.after)
            )
        };
        s += &row("frames", &|p| p.frames.to_string());
        s += &row("target frames detected", &|p| {
            format!(
                "{}/{} {}",
                p.target_detected,
                p.target_frames,
                pct(p.detection_rate)
            )
        });
        s += &row("false alarms (others)", &|p| pct(p.false_alarm_rate));
        s += &row("episodes found", &|p| {
            format!("{}/{}", p.episodes_found, p.episodes)
        });
        s += &row("median time to detect", &|p| {
            secs(p.median_time_to_detect_s)
        });
        s += &row("active branches (mean)", &|p| {
            format!("{:.1}", p.mean_active_branches)
        });
        s += &row("MMACs per frame (mean)", &|p| {
            format!("{:.1}", p.mean_mmacs)
        });
        s += &row("latency ms (median)", &|p| {
            format!("{:.1}", p.median_latency_ms)
        });
        s += &format!(
            "dropped frames {}, failed frames {}\n",
            self.dropped_frames, self.failed_frames
        );
        s
    }
}

/// The stretches of time (s) during which the target was cued: from the first frame that ran
/// with the cue to the first frame after it that ran without (or the last frame).
pub fn cue_windows(records: &[Record], target: &str) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut open: Option<f64> = None;
    let mut last_t = None;
    for r in records {
        let Record::Result(f) = r else { continue };
        let t = f.time_ms as f64 / 1e3;
        let cued = f.cued.iter().any(|c| c == target);
        match (cued, open) {
            (true, None) => open = Some(t),
            (false, Some(t0)) => {
                out.push((t0, t));
                open = None;
            }
            _ => {}
        }
        last_t = Some(t);
    }
    if let (Some(t0), Some(t1)) = (open, last_t) {
        out.push((t0, t1));
    }
    out
}

/// The timeline figure: the target's score per frame (target frames and others apart), active
/// branches, and latency, against runtime time, with the cue arrivals marked, the stretch
/// during which the cue held shaded, and a note on what the probability is a softmax over.
pub fn timeline_figure(scenario: &Scenario, records: &[Record], text: bool) -> Figure {
    let target = &scenario.config.target;
    let shows: HashMap<u64, bool> = scenario
        .frames
        .iter()
        .map(|f| (f.id, f.class == *target))
        .collect();
    let (mut on_target, mut on_other, mut branches, mut latency) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in records {
        let Record::Result(f) = r else { continue };
        let t = f.time_ms as f64 / 1e3;
        let score = f
            .top
            .iter()
            .find(|c| c.class == *target)
            .map_or(0.0, |c| c.score as f64);
        if shows.get(&f.id).copied().unwrap_or(false) {
            on_target.push((t, score));
        } else {
            on_other.push((t, score));
        }
        branches.push((t, f.active.len() as f64));
        latency.push((t, f.latency_ms));
    }
    // Cues that arrive together (one sound mapped to several classes) share one marker.
    let mut markers: Vec<(f64, String)> = Vec::new();
    for r in records {
        let Record::Cue(c) = r else { continue };
        if !c.queued {
            continue;
        }
        let t = c.time_ms as f64 / 1e3;
        match markers.last_mut() {
            Some((t0, label)) if t - *t0 < 0.25 => *label += &format!(", {}", c.class),
            _ => markers.push((t, format!("cue arrived: {}", c.class))),
        }
    }
    let spans = cue_windows(records, target)
        .into_iter()
        .map(|x| Span {
            x,
            name: format!("cue for {target} holds"),
        })
        .collect();
    let counts = span_of(branches.iter().map(|p| p.1));
    let note = counts.map(|(few, all)| {
        if few < all {
            format!(
                "P({target}) is a softmax over the classes whose branches run: over all {all} \
                 without a cue, over only {few} while the cutout runs, so values inside the \
                 shaded stretch are not comparable with those outside it."
            )
        } else {
            format!(
                "P({target}) is a softmax over all {all} classes throughout; the cue only \
                 raises the gains of the cued classes' branches."
            )
        }
    });
    let dots = |name: &str, points, rgb| Series {
        name: name.into(),
        points,
        rgb,
        mark: Mark::Dots,
    };
    Figure {
        title: format!("guided search for {target:?}: score, compute and cues over time"),
        x_label: "time (s)".into(),
        panels: vec![
            Panel {
                y_label: format!("P({target})"),
                series: vec![
                    dots(
                        &format!("frames showing a {target}"),
                        on_target,
                        (214, 39, 40),
                    ),
                    dots("other frames", on_other, (150, 150, 150)),
                ],
                y_range: Some((0.0, 1.0)),
                integer_y: false,
            },
            Panel {
                y_label: "active branches".into(),
                series: vec![Series {
                    name: "branches run per frame".into(),
                    points: branches,
                    rgb: (31, 119, 180),
                    mark: Mark::Steps,
                }],
                y_range: None,
                integer_y: true,
            },
            Panel {
                y_label: "latency (ms)".into(),
                series: vec![dots("inference latency per frame", latency, (44, 160, 44))],
                ..Default::default()
            },
        ],
        markers,
        spans,
        note,
        text,
        width: 1060,
        panel_height: 220,
    }
}

fn span_of(values: impl Iterator<Item = f64>) -> Option<(usize, usize)> {
    values.fold(None, |acc, v| {
        let v = v as usize;
        Some(match acc {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        })
    })
}
