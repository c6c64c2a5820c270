//! Guidance configuration: policy, TTL and fade, gain bounds, protected and context classes,
//! cue-set cap and rate limits, with validation against a class list.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How live cues reshape the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Cutout: run only protected + context + cued branches (all branches while nothing is
    /// cued), with the cued branches' gains raised.
    #[default]
    Focus,
    /// All branches run; cued branches get their gains.
    Boost,
    /// Cues are tracked (stats) but change nothing: all branches, all gains 1.
    Off,
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::Focus => "focus",
            Policy::Boost => "boost",
            Policy::Off => "off",
        })
    }
}

impl std::str::FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "focus" => Ok(Policy::Focus),
            "boost" => Ok(Policy::Boost),
            "off" => Ok(Policy::Off),
            other => Err(Error::Config(format!(
                "guidance policy {other:?}: expected one of focus, boost, off"
            ))),
        }
    }
}

/// Configuration of the cue state machine. Every field has a default, so a config file may give
/// only the fields it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuidanceConfig {
    /// What cues do: `focus`, `boost` or `off`.
    pub policy: Policy,
    /// How long a cue holds its full gain after its last refresh.
    pub ttl_ms: u64,
    /// After the TTL, the gain fades linearly back to 1 over this time; the class stays in the
    /// focus cutout until the fade ends (0 = snap back at the TTL).
    pub fade_ms: u64,
    /// Gain of a cue with score 1: gain = clamp(1 + (gain_max - 1)·score, gain_min, gain_max).
    /// Below 1, cues inhibit their class (protected classes excepted).
    pub gain_max: f32,
    /// Lower bound of a cue's gain (set above 1 to give every cue at least that gain).
    pub gain_min: f32,
    /// Classes that no cue can cut out or inhibit (their gain is never below 1).
    pub protected: Vec<String>,
    /// Classes always kept in a focus cutout, so the softmax over the cutout compares the cued
    /// classes against known competitors. When empty, `context_size` classes are chosen.
    pub context: Vec<String>,
    /// When `context` is empty: how many context classes to pick, evenly spaced over the class
    /// list (a fixed set, independent of the cues, so the cutout does not churn).
    pub context_size: usize,
    /// Most classes cued at once; a new class beyond it evicts the oldest, then weakest, cue.
    pub max_cues: usize,
    /// Per class: a repeated cue sooner than this after the class's last accepted cue only
    /// refreshes its TTL (the score is kept) and is counted as rate-limited.
    pub min_interval_ms: u64,
    /// Token bucket for new classes entering the cue set: at most this many at once ...
    pub admit_burst: u32,
    /// ... and one more token every this many milliseconds. A new class without a token is
    /// dropped and counted as rate-limited, so a flood cannot thrash the active set.
    pub admit_refill_ms: u64,
}

impl Default for GuidanceConfig {
    fn default() -> Self {
        Self {
            policy: Policy::Focus,
            ttl_ms: 3000,
            fade_ms: 1000,
            // The paper's Imagenette gain.
            gain_max: 1.8,
            gain_min: 1.0,
            protected: Vec::new(),
            context: Vec::new(),
            context_size: 2,
            max_cues: 4,
            min_interval_ms: 200,
            admit_burst: 4,
            admit_refill_ms: 500,
        }
    }
}

/// Largest accepted gain bound: far above the paper's 1.1-1.8, low enough to stay finite.
pub const GAIN_LIMIT: f32 = 100.0;

/// A config checked against a class list, with class names resolved to indices.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedConfig {
    /// The validated config.
    pub config: GuidanceConfig,
    /// Sorted, deduplicated indices of the protected classes.
    pub protected: Vec<usize>,
    /// Sorted, deduplicated indices of the context classes (configured or chosen).
    pub context: Vec<usize>,
}

impl GuidanceConfig {
    /// Check the config against `classes` and resolve class names; the error names the field
    /// and what was expected.
    pub fn resolve(&self, classes: &[String]) -> Result<ResolvedConfig> {
        let k = classes.len();
        if k == 0 {
            return Err(Error::Config("guidance: the class list is empty".into()));
        }
        for (name, v) in [("gain_max", self.gain_max), ("gain_min", self.gain_min)] {
            if !v.is_finite() || v <= 0.0 || v > GAIN_LIMIT {
                return Err(Error::Config(format!(
                    "guidance.{name} = {v}: expected a finite number in (0, {GAIN_LIMIT}]"
                )));
            }
        }
        if self.gain_min > self.gain_max {
            return Err(Error::Config(format!(
                "guidance.gain_min = {} is above gain_max = {}: expected gain_min <= gain_max",
                self.gain_min, self.gain_max
            )));
        }
        if self.ttl_ms == 0 {
            return Err(Error::Config(
                "guidance.ttl_ms = 0: expected a positive TTL in milliseconds".into(),
            ));
        }
        if self.max_cues == 0 {
            return Err(Error::Config(
                "guidance.max_cues = 0: expected at least 1 cue".into(),
            ));
        }
        if self.admit_burst == 0 {
            return Err(Error::Config(
                "guidance.admit_burst = 0: expected at least 1 token".into(),
            ));
        }
        let lookup = |field: &str, names: &[String]| -> Result<Vec<usize>> {
            let mut idx = Vec::with_capacity(names.len());
            for n in names {
                match classes.iter().position(|c| c == n) {
                    Some(i) => idx.push(i),
                    None => {
                        return Err(Error::Config(format!(
                            "guidance.{field}: unknown class {n:?} (the model has {k} classes, e.g. {:?})",
                            &classes[..k.min(5)]
                        )))
                    }
                }
            }
            idx.sort_unstable();
            idx.dedup();
            Ok(idx)
        };
        let protected = lookup("protected", &self.protected)?;
        let context = if self.context.is_empty() {
            spread_context(k, self.context_size)
        } else {
            lookup("context", &self.context)?
        };
        Ok(ResolvedConfig {
            config: self.clone(),
            protected,
            context,
        })
    }

    /// The gain a cue of confidence `score` (in [0, 1]) gives its class before any fade.
    pub fn cue_gain(&self, score: f32) -> f32 {
        (1.0 + (self.gain_max - 1.0) * score).clamp(self.gain_min, self.gain_max)
    }
}

/// `n` class indices evenly spaced over `0..k` (index `i·k/n`), sorted and distinct.
fn spread_context(k: usize, n: usize) -> Vec<usize> {
    let n = n.min(k);
    (0..n).map(|i| i * k / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn defaults_resolve_and_spread_context() {
        let r = GuidanceConfig::default().resolve(&names(10)).unwrap();
        assert_eq!(r.context, vec![0, 5]);
        assert!(r.protected.is_empty());
        assert_eq!(spread_context(3, 5), vec![0, 1, 2]);
        assert_eq!(spread_context(10, 0), Vec::<usize>::new());
    }

    #[test]
    fn configured_context_replaces_spread() {
        let cfg = GuidanceConfig {
            context: vec!["c7".into(), "c3".into(), "c7".into()],
            ..Default::default()
        };
        assert_eq!(cfg.resolve(&names(10)).unwrap().context, vec![3, 7]);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let k = names(4);
        let cases = [
            (
                GuidanceConfig {
                    gain_max: f32::NAN,
                    ..Default::default()
                },
                "gain_max",
            ),
            (
                GuidanceConfig {
                    gain_min: 0.0,
                    ..Default::default()
                },
                "gain_min",
            ),
            (
                GuidanceConfig {
                    gain_min: 2.0,
                    gain_max: 1.5,
                    ..Default::default()
                },
                "gain_min",
            ),
            (
                GuidanceConfig {
                    ttl_ms: 0,
                    ..Default::default()
                },
                "ttl_ms",
            ),
            (
                GuidanceConfig {
                    max_cues: 0,
                    ..Default::default()
                },
                "max_cues",
            ),
            (
                GuidanceConfig {
                    admit_burst: 0,
                    ..Default::default()
                },
                "admit_burst",
            ),
            (
                GuidanceConfig {
                    protected: vec!["dog".into()],
                    ..Default::default()
                },
                "protected",
            ),
            (
                GuidanceConfig {
                    context: vec!["x".into()],
                    ..Default::default()
                },
                "context",
            ),
        ];
        for (cfg, field) in cases {
            let err = cfg.resolve(&k).unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
        assert!(GuidanceConfig::default().resolve(&[]).is_err());
    }

    #[test]
    fn cue_gain_follows_formula_and_bounds() {
        let cfg = GuidanceConfig {
            gain_max: 1.8,
            gain_min: 1.2,
            ..Default::default()
        };
        assert!((cfg.cue_gain(1.0) - 1.8).abs() < 1e-6);
        assert!((cfg.cue_gain(0.5) - 1.4).abs() < 1e-6);
        assert!(
            (cfg.cue_gain(0.0) - 1.2).abs() < 1e-6,
            "floored at gain_min"
        );
    }

    #[test]
    fn serde_defaults_and_policy_names() {
        let cfg: GuidanceConfig =
            serde_json::from_str(r#"{"policy":"boost","ttl_ms":500}"#).unwrap();
        assert_eq!(cfg.policy, Policy::Boost);
        assert_eq!(cfg.ttl_ms, 500);
        assert_eq!(cfg.fade_ms, GuidanceConfig::default().fade_ms);
        assert!(serde_json::from_str::<GuidanceConfig>(r#"{"ttl":5}"#).is_err());
        assert_eq!("off".parse::<Policy>().unwrap(), Policy::Off);
        assert!("cutout"
            .parse::<Policy>()
            .unwrap_err()
            .to_string()
            .contains("focus"));
    }
}
