//! Unit tests of the guidance state machine, one behaviour each.

use super::*;

fn classes(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("c{i}")).collect()
}

fn cue(class: &str, score: f32, time_ms: u64) -> Cue {
    Cue {
        class: class.into(),
        score,
        source: "test".into(),
        time_ms,
    }
}

/// A config without context classes, fades or rate limits, so each test turns on what it needs.
fn plain() -> GuidanceConfig {
    GuidanceConfig {
        policy: Policy::Focus,
        ttl_ms: 1000,
        fade_ms: 0,
        gain_max: 1.8,
        gain_min: 1.0,
        protected: vec![],
        context: vec![],
        context_size: 0,
        max_cues: 4,
        min_interval_ms: 0,
        admit_burst: 100,
        admit_refill_ms: 0,
    }
}

fn g(cfg: GuidanceConfig) -> Guidance {
    Guidance::new(classes(10), &cfg).unwrap()
}

#[test]
fn no_cue_means_full_model_with_unit_gains() {
    let s = g(plain()).state_at(5);
    assert_eq!(s.active, (0..10).collect::<Vec<_>>());
    assert!(s.gains.iter().all(|&x| x == 1.0));
    assert!(!s.is_cutout());
}

#[test]
fn focus_cuts_out_to_cued_protected_and_context() {
    let mut m = g(GuidanceConfig {
        protected: vec!["c9".into()],
        context: vec!["c0".into()],
        ..plain()
    });
    m.submit(&cue("c4", 1.0, 10)).unwrap();
    let s = m.state_at(10);
    assert_eq!(s.active, vec![0, 4, 9]);
    assert!((s.gains[4] - 1.8).abs() < 1e-6);
    assert_eq!(s.gains[0], 1.0);
    assert_eq!(s.cued.len(), 1);
    assert_eq!(s.cued[0].class, "c4");
}

#[test]
fn boost_keeps_all_branches_and_off_changes_nothing() {
    let mut m = g(GuidanceConfig {
        policy: Policy::Boost,
        ..plain()
    });
    m.submit(&cue("c2", 0.5, 0)).unwrap();
    let s = m.state_at(0);
    assert_eq!(s.active.len(), 10);
    assert!((s.gains[2] - 1.4).abs() < 1e-6);

    let mut m = g(GuidanceConfig {
        policy: Policy::Off,
        ..plain()
    });
    m.submit(&cue("c2", 0.5, 0)).unwrap();
    let s = m.state_at(0);
    assert_eq!(s.active.len(), 10);
    assert!(s.gains.iter().all(|&x| x == 1.0));
    assert_eq!(m.stats().accepted, 1, "off still tracks cues");
}

#[test]
fn ttl_expiry_is_exact_without_fade() {
    let mut m = g(plain());
    m.submit(&cue("c3", 1.0, 100)).unwrap();
    assert!(m.state_at(1099).active.contains(&3));
    assert!(m.state_at(1099).is_cutout());
    let s = m.state_at(1100);
    assert!(!s.is_cutout() && s.cued.is_empty());
    assert_eq!(s.gains[3], 1.0);
    assert_eq!(m.stats().expired, 1);
}

#[test]
fn gain_fades_linearly_after_ttl_and_class_leaves_at_fade_end() {
    let mut m = g(GuidanceConfig {
        fade_ms: 400,
        ..plain()
    });
    m.submit(&cue("c3", 1.0, 0)).unwrap();
    assert!((m.state_at(999).gains[3] - 1.8).abs() < 1e-6);
    // Fade starts at the TTL: at 1000 the full gain, at 1200 halfway, at 1300 a quarter.
    let s = m.state_at(1000);
    assert!((s.gains[3] - 1.8).abs() < 1e-6 && s.cued[0].fading);
    assert!((m.state_at(1200).gains[3] - 1.4).abs() < 1e-6);
    let s = m.state_at(1399);
    assert!(s.active.contains(&3) && s.gains[3] > 1.0);
    let s = m.state_at(1400);
    assert!(!s.active.contains(&3) || !s.is_cutout());
    assert_eq!(s.gains[3], 1.0);
}

#[test]
fn gain_from_confidence_is_clamped() {
    let mut m = g(GuidanceConfig {
        gain_min: 1.3,
        ..plain()
    });
    m.submit(&cue("c1", 0.1, 0)).unwrap();
    assert!((m.state_at(0).gains[1] - 1.3).abs() < 1e-6);
}

#[test]
fn protected_class_is_never_inhibited() {
    // gain_max < 1: cues inhibit, except protected classes.
    let mut m = g(GuidanceConfig {
        gain_max: 0.5,
        gain_min: 0.5,
        protected: vec!["c0".into()],
        ..plain()
    });
    m.submit(&cue("c0", 1.0, 0)).unwrap();
    m.submit(&cue("c1", 1.0, 0)).unwrap();
    let s = m.state_at(0);
    assert_eq!(s.gains[0], 1.0);
    assert!((s.gains[1] - 0.5).abs() < 1e-6);
    assert!(s.active.contains(&0));
}

#[test]
fn union_of_cues() {
    let mut m = g(plain());
    for (c, t) in [("c1", 0), ("c5", 10), ("c7", 20)] {
        m.submit(&cue(c, 1.0, t)).unwrap();
    }
    assert_eq!(m.state_at(20).active, vec![1, 5, 7]);
}

#[test]
fn unknown_class_and_bad_scores_are_rejected_and_counted() {
    let mut m = g(plain());
    let e = m.submit(&cue("dog", 1.0, 0)).unwrap_err();
    assert!(e.to_string().contains("unknown class \"dog\""), "{e}");
    for s in [f32::NAN, f32::INFINITY, -0.1, 1.5] {
        let e = m.submit(&cue("c1", s, 0)).unwrap_err();
        assert!(matches!(e, CueRejection::BadScore { .. }), "{s}");
    }
    let st = m.stats();
    assert_eq!(
        (st.rejected_unknown, st.rejected_bad_score, st.rejected()),
        (1, 4, 5)
    );
    assert!(m.state_at(0).cued.is_empty());
}

#[test]
fn cap_evicts_oldest_then_weakest() {
    let mut m = g(GuidanceConfig {
        max_cues: 2,
        ..plain()
    });
    m.submit(&cue("c1", 0.9, 0)).unwrap();
    m.submit(&cue("c2", 0.2, 10)).unwrap();
    m.state_at(10);
    m.submit(&cue("c3", 0.5, 20)).unwrap();
    // c1 is the oldest: evicted.
    assert_eq!(m.state_at(20).active, vec![2, 3]);
    assert_eq!(m.stats().evicted, 1);
    // Same-time newcomers: the weakest of all candidates loses.
    m.submit(&cue("c4", 0.1, 30)).unwrap();
    m.submit(&cue("c5", 0.8, 30)).unwrap();
    let s = m.state_at(30);
    assert_eq!(s.active, vec![4, 5]);
    m.submit(&cue("c6", 0.05, 30)).unwrap();
    assert_eq!(m.state_at(30).active, vec![4, 5], "too weak to enter");
    assert_eq!(m.stats().evicted, 4);
}

#[test]
fn repeat_within_interval_refreshes_ttl_but_keeps_score() {
    let mut m = g(GuidanceConfig {
        min_interval_ms: 500,
        ..plain()
    });
    m.submit(&cue("c1", 0.5, 0)).unwrap();
    m.state_at(0);
    m.submit(&cue("c1", 1.0, 300)).unwrap();
    let s = m.state_at(300);
    assert!((s.gains[1] - 1.4).abs() < 1e-6, "score kept");
    assert_eq!(m.stats().rate_limited, 1);
    // TTL now runs from 300.
    assert!(m.state_at(1299).active.contains(&1));
    assert!(!m.state_at(1300).is_cutout());
    // After the interval a repeat updates the score.
    let mut m = g(GuidanceConfig {
        min_interval_ms: 500,
        ..plain()
    });
    m.submit(&cue("c1", 0.5, 0)).unwrap();
    m.submit(&cue("c1", 1.0, 600)).unwrap();
    assert!((m.state_at(600).gains[1] - 1.8).abs() < 1e-6);
}

#[test]
fn admission_token_bucket_limits_new_classes() {
    let mut m = g(GuidanceConfig {
        max_cues: 10,
        admit_burst: 2,
        admit_refill_ms: 100,
        ..plain()
    });
    for c in ["c1", "c2", "c3"] {
        m.submit(&cue(c, 1.0, 0)).unwrap();
    }
    assert_eq!(m.state_at(0).active, vec![1, 2]);
    assert_eq!(m.stats().rate_limited, 1);
    m.submit(&cue("c3", 1.0, 99)).unwrap();
    assert_eq!(m.state_at(99).active, vec![1, 2], "no token yet");
    m.submit(&cue("c3", 1.0, 100)).unwrap();
    assert_eq!(m.state_at(100).active, vec![1, 2, 3], "one token refilled");
}

#[test]
fn equal_time_cues_in_any_order_give_same_state() {
    let cues = [
        cue("c1", 0.3, 5),
        cue("c2", 0.9, 5),
        cue("c1", 0.7, 5),
        cue("c3", 0.5, 5),
    ];
    let cfg = GuidanceConfig {
        max_cues: 2,
        min_interval_ms: 100,
        ..plain()
    };
    let mut a = g(cfg.clone());
    let mut b = g(cfg);
    for c in &cues {
        a.submit(c).unwrap();
    }
    for c in cues.iter().rev() {
        b.submit(c).unwrap();
    }
    assert_eq!(a.state_at(5), b.state_at(5));
    assert_eq!(a.stats(), b.stats());
}

#[test]
fn time_never_goes_back_and_future_cues_wait() {
    let mut m = g(plain());
    m.submit(&cue("c1", 1.0, 500)).unwrap();
    assert!(m.state_at(499).cued.is_empty(), "not due yet");
    assert!(m.state_at(500).active.contains(&1));
    assert_eq!(m.state_at(100).time_ms, 500);
}

#[test]
fn set_config_keeps_cues_and_shrinks_cap() {
    let mut m = g(plain());
    for (c, t) in [("c1", 0), ("c2", 1), ("c3", 2)] {
        m.submit(&cue(c, 1.0, t)).unwrap();
    }
    m.state_at(2);
    m.set_config(&GuidanceConfig {
        max_cues: 2,
        policy: Policy::Boost,
        ..plain()
    })
    .unwrap();
    let s = m.state_at(2);
    assert_eq!(
        s.cued.iter().map(|c| c.index).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(s.active.len(), 10);
    assert!(m
        .set_config(&GuidanceConfig {
            ttl_ms: 0,
            ..plain()
        })
        .is_err());
    assert_eq!(
        m.config().policy,
        Policy::Boost,
        "unchanged after a bad config"
    );
}

#[test]
fn backlog_is_bounded() {
    let mut m = g(plain());
    for i in 0..MAX_PENDING {
        m.submit(&cue("c1", 1.0, i as u64)).unwrap();
    }
    assert!(matches!(
        m.submit(&cue("c1", 1.0, 0)),
        Err(CueRejection::Backlog { .. })
    ));
    m.state_at(0);
    assert!(
        m.submit(&cue("c1", 1.0, 0)).is_ok(),
        "observing drains the backlog"
    );
}
