//! Property tests of the guidance state machine: bounds, protected classes, exact expiry,
//! order independence of equal-time cues, the size of the active set, and the `off` policy.

use hlfp::guidance::{Cue, Guidance, GuidanceConfig, GuidanceState, Policy};
use proptest::prelude::*;

const K: usize = 8;

fn classes() -> Vec<String> {
    (0..K).map(|i| format!("c{i}")).collect()
}

/// A class name: mostly known, sometimes unknown.
fn class_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0..K).prop_map(|i| format!("c{i}")),
        1 => Just("unknown".to_string()),
    ]
}

/// A score: mostly valid, sometimes NaN, infinite or out of range.
fn score() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => 0.0f32..=1.0,
        1 => prop_oneof![
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(-0.5f32),
            Just(1.5f32),
        ],
    ]
}

fn subset() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set(0..K, 0..3)
        .prop_map(|s| s.into_iter().map(|i| format!("c{i}")).collect())
}

fn config() -> impl Strategy<Value = GuidanceConfig> {
    (
        prop_oneof![Just(Policy::Focus), Just(Policy::Boost), Just(Policy::Off)],
        1u64..2000,
        0u64..1000,
        (0.3f32..3.0, 0.0f32..=1.0),
        subset(),
        (subset(), 0usize..4),
        1usize..6,
        0u64..500,
        (1u32..5, 0u64..300),
    )
        .prop_map(
            |(
                policy,
                ttl_ms,
                fade_ms,
                (gain_max, f),
                protected,
                (context, context_size),
                max_cues,
                min_interval_ms,
                (admit_burst, admit_refill_ms),
            )| {
                // gain_min anywhere in [0.2, gain_max].
                let gain_min = (0.2 + f * (gain_max - 0.2)).max(0.2).min(gain_max);
                GuidanceConfig {
                    policy,
                    ttl_ms,
                    fade_ms,
                    gain_max,
                    gain_min,
                    protected,
                    context,
                    context_size,
                    max_cues,
                    min_interval_ms,
                    admit_burst,
                    admit_refill_ms,
                }
            },
        )
}

/// A timed script: (time step before the cue, class, score, observe after?).
fn script() -> impl Strategy<Value = Vec<(u64, String, f32, bool)>> {
    proptest::collection::vec((0u64..400, class_name(), score(), any::<bool>()), 0..40)
}

fn idx(name: &str) -> usize {
    classes().iter().position(|c| c == name).unwrap()
}

/// The invariants every state must satisfy.
fn check_state(cfg: &GuidanceConfig, s: &GuidanceState) -> Result<(), TestCaseError> {
    let lo = cfg.gain_min.min(1.0);
    let hi = cfg.gain_max.max(1.0);
    prop_assert_eq!(s.gains.len(), K);
    for (i, &g) in s.gains.iter().enumerate() {
        prop_assert!(g.is_finite(), "gain {i} = {g}");
        prop_assert!(g >= lo && g <= hi, "gain {i} = {g} outside [{lo}, {hi}]");
    }
    prop_assert!(
        s.active.windows(2).all(|w| w[0] < w[1]),
        "active sorted, distinct"
    );
    prop_assert!(s.active.iter().all(|&i| i < K));
    for p in &cfg.protected {
        let p = idx(p);
        prop_assert!(s.active.contains(&p), "protected {p} active");
        prop_assert!(s.gains[p] >= 1.0, "protected {p} gain {}", s.gains[p]);
    }
    let n_context = if cfg.context.is_empty() {
        cfg.context_size.min(K)
    } else {
        cfg.context.len()
    };
    prop_assert!(
        s.active.len() == K || s.active.len() <= cfg.protected.len() + n_context + cfg.max_cues,
        "active {:?} too large",
        s.active
    );
    prop_assert!(s.cued.len() <= cfg.max_cues);
    match cfg.policy {
        Policy::Off => {
            prop_assert_eq!(s.active.len(), K);
            prop_assert!(s.gains.iter().all(|&g| g == 1.0));
        }
        Policy::Boost => prop_assert_eq!(s.active.len(), K),
        Policy::Focus => {
            for c in &s.cued {
                prop_assert!(s.active.contains(&c.index), "cued {} active", c.index);
            }
        }
    }
    for (i, &g) in s.gains.iter().enumerate() {
        if g != 1.0 {
            prop_assert!(s.cued.iter().any(|c| c.index == i), "gain on uncued {i}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Bounds, protected classes, the size of the active set and `off` hold after any script.
    #[test]
    fn invariants_hold_for_any_script(cfg in config(), script in script(), tail in 0u64..4000) {
        let mut m = Guidance::new(classes(), &cfg).unwrap();
        let mut t = 0u64;
        for (dt, class, score, observe) in script {
            t += dt;
            let _ = m.submit(&Cue { class, score, source: "p".into(), time_ms: t });
            if observe {
                check_state(&cfg, &m.state_at(t))?;
            }
        }
        check_state(&cfg, &m.state_at(t))?;
        check_state(&cfg, &m.state_at(t + tail))?;
    }

    /// Without cap or token limits a class is cued at t exactly when some cue for it came at
    /// s <= t < s + ttl + fade: live at the last millisecond, gone at the next.
    #[test]
    fn expiry_is_exact(
        ttl_ms in 1u64..1000,
        fade_ms in 0u64..500,
        min_interval_ms in 0u64..300,
        cues in proptest::collection::vec((0u64..3000, 0..K), 1..12),
    ) {
        let cfg = GuidanceConfig {
            policy: Policy::Focus,
            ttl_ms,
            fade_ms,
            min_interval_ms,
            max_cues: K,
            admit_burst: 1000,
            admit_refill_ms: 0,
            context_size: 0,
            ..GuidanceConfig::default()
        };
        let mut m = Guidance::new(classes(), &cfg).unwrap();
        for &(t, c) in &cues {
            m.submit(&Cue { class: format!("c{c}"), score: 1.0, source: String::new(), time_ms: t }).unwrap();
        }
        let life = ttl_ms + fade_ms;
        let mut checks: Vec<u64> = cues
            .iter()
            .flat_map(|&(s, _)| [s, s + ttl_ms - 1, s + ttl_ms, s + life - 1, s + life])
            .collect();
        checks.sort_unstable();
        checks.dedup();
        for t in checks {
            let st = m.state_at(t);
            let got: Vec<usize> = st.cued.iter().map(|c| c.index).collect();
            let mut want: Vec<usize> = cues
                .iter()
                .filter(|&&(s, _)| s <= t && t < s + life)
                .map(|&(_, c)| c)
                .collect();
            want.sort_unstable();
            want.dedup();
            prop_assert_eq!(&got, &want, "cued at t = {}", t);
            for c in &st.cued {
                // Full gain until the TTL of the latest cue, fading (and > 1 for a positive
                // fade) after it.
                let last = cues.iter().filter(|&&(s, k)| k == c.index && s <= t).map(|&(s, _)| s).max().unwrap();
                if t < last + ttl_ms {
                    prop_assert!((c.gain - cfg.gain_max).abs() < 1e-6, "full gain at {}", t);
                } else {
                    prop_assert!(c.gain > 1.0 && c.gain <= cfg.gain_max, "fading at {}", t);
                }
            }
        }
    }

    /// Cues that arrive between two observations give the same state and counters in any order.
    #[test]
    fn order_of_equal_time_cues_does_not_matter(
        cfg in config(),
        batches in proptest::collection::vec(
            (0u64..600, proptest::collection::vec((class_name(), score()), 1..8)), 1..6),
        seed in any::<u64>(),
    ) {
        let mut a = Guidance::new(classes(), &cfg).unwrap();
        let mut b = Guidance::new(classes(), &cfg).unwrap();
        let mut t = 0;
        for (i, (dt, batch)) in batches.into_iter().enumerate() {
            t += dt;
            let cues: Vec<Cue> = batch
                .into_iter()
                .map(|(class, score)| Cue { class, score, source: "s".into(), time_ms: t })
                .collect();
            // A deterministic permutation of the batch for b (a rotation and a reversal).
            let mut shuffled = cues.clone();
            let n = shuffled.len();
            shuffled.rotate_left((seed as usize + i) % n);
            if (seed >> i) & 1 == 1 {
                shuffled.reverse();
            }
            for c in &cues {
                let _ = a.submit(c);
            }
            for c in &shuffled {
                let _ = b.submit(c);
            }
            let (sa, sb) = (a.state_at(t), b.state_at(t));
            // NaN-free by the bounds property, so == is exact comparison.
            prop_assert_eq!(sa, sb);
            prop_assert_eq!(a.stats(), b.stats());
        }
    }

    /// Under `off` nothing changes, whatever arrives.
    #[test]
    fn off_policy_is_identity(script in script()) {
        let cfg = GuidanceConfig { policy: Policy::Off, ..GuidanceConfig::default() };
        let mut m = Guidance::new(classes(), &cfg).unwrap();
        let mut t = 0;
        for (dt, class, score, _) in script {
            t += dt;
            let _ = m.submit(&Cue { class, score, source: String::new(), time_ms: t });
            let s = m.state_at(t);
            prop_assert_eq!(s.active, (0..K).collect::<Vec<_>>());
            prop_assert!(s.gains.iter().all(|&g| g == 1.0));
        }
    }
}
