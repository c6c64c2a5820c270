//! The cue state machine: cues and times in, active branches and gains out. Pure: the caller
//! gives every time; nothing here reads a clock.

use std::cmp::Ordering;

use super::config::{GuidanceConfig, Policy, ResolvedConfig};
use super::cue::{Cue, CueRejection, CuedClass, GuidanceState, GuidanceStats};
use crate::Result;

/// Most cues that may wait between two observations before new ones are refused.
pub const MAX_PENDING: usize = 4096;

/// A validated cue waiting to be applied.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    time_ms: u64,
    class: usize,
    score: f32,
    source: String,
}

impl Pending {
    /// The canonical order in which cues of one observation window are applied: by time, class,
    /// score (highest first), source. Applying in this order is what makes the result
    /// independent of the order in which equal-time cues arrived.
    fn canonical(a: &Pending, b: &Pending) -> Ordering {
        a.time_ms
            .cmp(&b.time_ms)
            .then(a.class.cmp(&b.class))
            .then(b.score.total_cmp(&a.score))
            .then(a.source.cmp(&b.source))
    }
}

/// One live cue.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    class: usize,
    score: f32,
    /// TTL runs from here.
    refresh_ms: u64,
    /// Last cue that was not rate-limited (the per-class interval runs from here).
    accept_ms: u64,
}

/// The guidance state machine. Feed cues with [`Guidance::submit`]; read the state for a time
/// with [`Guidance::state_at`]. Time never goes backwards: a state asked for an earlier time
/// than already seen is the state at the latest time.
///
/// Semantics (see docs/guidance.md):
/// - a cue holds its gain `clamp(1 + (gain_max - 1)·score, gain_min, gain_max)` for `ttl_ms`
///   after its last refresh, then fades linearly to 1 over `fade_ms`; the class stays cued (and
///   in a focus cutout) until the fade ends, so a branch never carries a gain while cut out;
/// - cues submitted between two observations are applied together in a canonical order;
/// - protected classes are always active and their gain is never below 1.
#[derive(Debug, Clone)]
pub struct Guidance {
    classes: Vec<String>,
    cfg: ResolvedConfig,
    now_ms: u64,
    pending: Vec<Pending>,
    entries: Vec<Entry>,
    tokens: u32,
    token_anchor_ms: u64,
    stats: GuidanceStats,
}

impl Guidance {
    /// A state machine for `classes` (the model's class list, in branch order).
    pub fn new(classes: Vec<String>, config: &GuidanceConfig) -> Result<Self> {
        let cfg = config.resolve(&classes)?;
        Ok(Self {
            tokens: cfg.config.admit_burst,
            classes,
            cfg,
            now_ms: 0,
            pending: Vec::new(),
            entries: Vec::new(),
            token_anchor_ms: 0,
            stats: GuidanceStats::default(),
        })
    }

    /// The class list.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The config in force.
    pub fn config(&self) -> &GuidanceConfig {
        &self.cfg.config
    }

    /// Indices of the protected classes.
    pub fn protected(&self) -> &[usize] {
        &self.cfg.protected
    }

    /// Indices of the context classes kept in a focus cutout.
    pub fn context(&self) -> &[usize] {
        &self.cfg.context
    }

    /// Counters since creation.
    pub fn stats(&self) -> GuidanceStats {
        self.stats
    }

    /// The latest time seen.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Replace the config (e.g. a ROS parameter change). Live cues are kept; if the new cap is
    /// smaller, the weakest are evicted. On error nothing changes.
    pub fn set_config(&mut self, config: &GuidanceConfig) -> Result<()> {
        self.cfg = config.resolve(&self.classes)?;
        self.tokens = self.tokens.min(self.cfg.config.admit_burst);
        while self.entries.len() > self.cfg.config.max_cues {
            self.evict_weakest();
        }
        Ok(())
    }

    /// Take a cue. Unknown classes and bad scores are refused (and counted) at once; a valid cue
    /// waits and is applied, in canonical order with the others, when the state is next read
    /// for a time at or after `cue.time_ms`.
    pub fn submit(&mut self, cue: &Cue) -> std::result::Result<(), CueRejection> {
        let Some(class) = self.classes.iter().position(|c| *c == cue.class) else {
            self.stats.rejected_unknown += 1;
            return Err(CueRejection::UnknownClass {
                class: cue.class.clone(),
            });
        };
        if !cue.score.is_finite() || !(0.0..=1.0).contains(&cue.score) {
            self.stats.rejected_bad_score += 1;
            return Err(CueRejection::BadScore {
                class: cue.class.clone(),
                score: cue.score.to_string(),
            });
        }
        if self.pending.len() >= MAX_PENDING {
            self.stats.rejected_backlog += 1;
            return Err(CueRejection::Backlog { limit: MAX_PENDING });
        }
        self.pending.push(Pending {
            time_ms: cue.time_ms,
            class,
            score: cue.score,
            source: cue.source.clone(),
        });
        Ok(())
    }

    /// Move time to `t_ms` (never backwards), apply the cues due by then, and return the state.
    pub fn state_at(&mut self, t_ms: u64) -> GuidanceState {
        self.advance_to(t_ms);
        self.state()
    }

    /// Move time to `t_ms` (never backwards) and apply the cues due by then.
    pub fn advance_to(&mut self, t_ms: u64) {
        self.now_ms = self.now_ms.max(t_ms);
        let now = self.now_ms;
        let (mut due, later): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|p| p.time_ms <= now);
        self.pending = later;
        due.sort_by(Pending::canonical);
        for p in due {
            self.apply(p);
        }
        self.expire(now);
    }

    /// The state at the current time (call [`Guidance::advance_to`] first to move time).
    pub fn state(&self) -> GuidanceState {
        let k = self.classes.len();
        let t = self.now_ms;
        let policy = self.cfg.config.policy;
        let mut gains = vec![1.0f32; k];
        let mut cued = Vec::with_capacity(self.entries.len());
        for e in self.entries.iter().filter(|e| self.is_live(e, t)) {
            let gain = match policy {
                Policy::Off => 1.0,
                Policy::Focus | Policy::Boost => self.gain(e, t),
            };
            gains[e.class] = gain;
            cued.push(CuedClass {
                index: e.class,
                class: self.classes[e.class].clone(),
                score: e.score,
                gain,
                fading: t >= e.refresh_ms.saturating_add(self.cfg.config.ttl_ms),
                until_ms: self.end_ms(e),
            });
        }
        cued.sort_by_key(|c| c.index);
        let active = if policy == Policy::Focus && !cued.is_empty() {
            let mut a: Vec<usize> = self
                .cfg
                .protected
                .iter()
                .chain(&self.cfg.context)
                .copied()
                .chain(cued.iter().map(|c| c.index))
                .collect();
            a.sort_unstable();
            a.dedup();
            a
        } else {
            (0..k).collect()
        };
        GuidanceState {
            time_ms: t,
            policy,
            active,
            gains,
            cued,
        }
    }

    /// When a cue's TTL and fade are over.
    fn end_ms(&self, e: &Entry) -> u64 {
        e.refresh_ms
            .saturating_add(self.cfg.config.ttl_ms)
            .saturating_add(self.cfg.config.fade_ms)
    }

    fn is_live(&self, e: &Entry, t: u64) -> bool {
        t < self.end_ms(e)
    }

    /// Gain of a live cue at `t`: full for the TTL, then linear back to 1 over the fade.
    fn gain(&self, e: &Entry, t: u64) -> f32 {
        let c = &self.cfg.config;
        let mut full = c.cue_gain(e.score);
        if self.cfg.protected.binary_search(&e.class).is_ok() {
            full = full.max(1.0);
        }
        let hold_end = e.refresh_ms.saturating_add(c.ttl_ms);
        if t < hold_end || c.fade_ms == 0 {
            return full;
        }
        // Remaining fraction of the fade, in (0, 1] while live.
        let left = (self.end_ms(e) - t) as f64 / c.fade_ms as f64;
        let g = 1.0 + (full as f64 - 1.0) * left.clamp(0.0, 1.0);
        // Between 1 and `full` by construction; the clamp only guards rounding.
        (g as f32).clamp(full.min(1.0), full.max(1.0))
    }

    fn expire(&mut self, t: u64) {
        let before = self.entries.len();
        let ends: Vec<u64> = self.entries.iter().map(|e| self.end_ms(e)).collect();
        let mut i = 0;
        self.entries.retain(|_| {
            let keep = t < ends[i];
            i += 1;
            keep
        });
        self.stats.expired += (before - self.entries.len()) as u64;
    }

    /// Eviction order: oldest refresh first, then lowest score, then highest class index.
    fn weaker(a: (u64, f32, usize), b: (u64, f32, usize)) -> bool {
        a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(b.2.cmp(&a.2)) == Ordering::Less
    }

    fn weakest_index(&self) -> Option<usize> {
        let key = |e: &Entry| (e.refresh_ms, e.score, e.class);
        (0..self.entries.len()).reduce(|w, i| {
            if Self::weaker(key(&self.entries[i]), key(&self.entries[w])) {
                i
            } else {
                w
            }
        })
    }

    fn evict_weakest(&mut self) {
        if let Some(w) = self.weakest_index() {
            self.entries.remove(w);
            self.stats.evicted += 1;
        }
    }

    /// Take an admission token at `t`, refilling the bucket first.
    fn take_token(&mut self, t: u64) -> bool {
        let c = &self.cfg.config;
        if c.admit_refill_ms == 0 {
            return true;
        }
        if t > self.token_anchor_ms {
            let gained = (t - self.token_anchor_ms) / c.admit_refill_ms;
            let total = u64::from(self.tokens) + gained;
            if total >= u64::from(c.admit_burst) {
                self.tokens = c.admit_burst;
                // A full bucket banks nothing more.
                self.token_anchor_ms = t;
            } else {
                self.tokens = total as u32;
                self.token_anchor_ms += gained * c.admit_refill_ms;
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    fn apply(&mut self, p: Pending) {
        let t = p.time_ms;
        // Cues that ran out before this one do not count against the cap.
        self.expire(t);
        let min_interval = self.cfg.config.min_interval_ms;
        if let Some(e) = self.entries.iter_mut().find(|e| e.class == p.class) {
            if t < e.accept_ms.saturating_add(min_interval) || t < e.accept_ms {
                // A repeat too soon (or out of order): keep the score, refresh the TTL.
                e.refresh_ms = e.refresh_ms.max(t);
                self.stats.rate_limited += 1;
            } else {
                e.score = if t > e.accept_ms {
                    p.score
                } else {
                    e.score.max(p.score)
                };
                e.accept_ms = t;
                e.refresh_ms = e.refresh_ms.max(t);
                self.stats.accepted += 1;
            }
            return;
        }
        if self.entries.len() >= self.cfg.config.max_cues {
            let cand = (t, p.score, p.class);
            let weakest = self.weakest_index();
            let beats = weakest.is_some_and(|w| {
                let e = &self.entries[w];
                Self::weaker((e.refresh_ms, e.score, e.class), cand)
            });
            if !beats {
                self.stats.evicted += 1;
                return;
            }
            if !self.take_token(t) {
                self.stats.rate_limited += 1;
                return;
            }
            self.evict_weakest();
        } else if !self.take_token(t) {
            self.stats.rate_limited += 1;
            return;
        }
        self.entries.push(Entry {
            class: p.class,
            score: p.score,
            refresh_ms: t,
            accept_ms: t,
        });
        self.stats.accepted += 1;
    }
}
