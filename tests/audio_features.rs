//! Log-mel front-end: parity with the numpy reference (scripts/make_audio_fixtures.py) and
//! streaming == batch for random chunkings.

use hlfp::audio::features::{log_mel, LogMel, LogMelConfig};
use rand::{rngs::StdRng, Rng, SeedableRng};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/audio_logmel_ref.json"
);

/// The generator of scripts/make_audio_fixtures.py, re-implemented: chirp + LCG noise + zeros.
fn reference_signal(g: &serde_json::Value) -> Vec<f32> {
    let sr = g["sample_rate_hz"].as_f64().unwrap();
    let n_signal = g["n_signal"].as_u64().unwrap() as usize;
    let n_zeros = g["n_zeros"].as_u64().unwrap() as usize;
    let f0 = g["chirp_hz"][0].as_f64().unwrap();
    let f1 = g["chirp_hz"][1].as_f64().unwrap();
    let a_chirp = g["chirp_amplitude"].as_f64().unwrap();
    let a_noise = g["noise_amplitude"].as_f64().unwrap();
    let mut state: u64 = g["lcg_seed"].as_u64().unwrap();
    let k = (f1 - f0) / (n_signal as f64 / sr);
    let mut x = Vec::with_capacity(n_signal + n_zeros);
    for n in 0..n_signal {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = 2.0 * ((state >> 40) as f64 / (1u64 << 24) as f64) - 1.0;
        let t = n as f64 / sr;
        let chirp = a_chirp * (2.0 * std::f64::consts::PI * (f0 * t + 0.5 * k * t * t)).sin();
        x.push((chirp + a_noise * noise) as f32);
    }
    x.extend(std::iter::repeat_n(0.0f32, n_zeros));
    x
}

fn load_fixture() -> (serde_json::Value, Vec<f32>) {
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let x = reference_signal(&v["generator"]);
    (v, x)
}

#[test]
fn matches_numpy_reference_within_1e_3_db() {
    let (v, x) = load_fixture();
    // The Rust generator must reproduce the script's input first.
    for (i, want) in v["first_samples"].as_array().unwrap().iter().enumerate() {
        assert_eq!(x[i], want.as_f64().unwrap() as f32, "sample {i}");
    }
    let sum: f64 = x.iter().map(|&s| s as f64).sum();
    assert!((sum - v["sum_samples"].as_f64().unwrap()).abs() < 1e-9);

    let cfg = LogMelConfig::default();
    assert_eq!(v["config"]["n_fft"], cfg.n_fft);
    assert_eq!(v["config"]["hop_samples"], cfg.hop_samples);
    assert_eq!(v["config"]["n_mels"], cfg.n_mels);
    let got = log_mel(&x, &cfg).unwrap();
    let want: Vec<f64> = v["logmel_db"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .collect();
    assert_eq!(
        cfg.num_frames(x.len()),
        v["n_frames"].as_u64().unwrap() as usize
    );
    assert_eq!(got.len(), want.len());
    let mut worst = 0f64;
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let d = (g as f64 - w).abs();
        worst = worst.max(d);
        assert!(
            d < 1e-3,
            "value {i} (frame {}, mel {}): {g} vs {w}",
            i / 64,
            i % 64
        );
    }
    // The fixture's silent tail (frames 24..26) sits exactly on the floor.
    assert!(got[24 * 64..].iter().all(|&d| d == -100.0));
    println!("worst |rust - numpy| = {worst:.2e} dB");
}

#[test]
fn streaming_equals_batch_for_random_chunks() {
    let (_, x) = load_fixture();
    let cfg = LogMelConfig::default();
    let batch = log_mel(&x, &cfg).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut stage = LogMel::new(cfg.clone()).unwrap();
    for trial in 0..20 {
        stage.reset();
        let mut out = Vec::new();
        let mut pos = 0;
        let max_chunk = [1usize, 7, 160, 513, 5000][trial % 5];
        while pos < x.len() {
            let n = rng.random_range(0..=max_chunk).min(x.len() - pos);
            let expected = stage.frames_next(n);
            let got = stage.process(&x[pos..pos + n], &mut out);
            assert_eq!(got, expected);
            pos += n;
        }
        assert_eq!(out, batch, "trial {trial} (max chunk {max_chunk})");
        assert_eq!(stage.frames_emitted() as usize, cfg.num_frames(x.len()));
    }
}

#[test]
fn reset_forgets_the_previous_stream() {
    let (_, x) = load_fixture();
    let cfg = LogMelConfig::default();
    let mut stage = LogMel::new(cfg.clone()).unwrap();
    let mut junk = Vec::new();
    stage.process(&[0.3; 300], &mut junk);
    stage.reset();
    let mut out = Vec::new();
    stage.process(&x, &mut out);
    assert_eq!(out, log_mel(&x, &cfg).unwrap());
}

#[test]
fn shorter_than_one_frame_gives_nothing() {
    let cfg = LogMelConfig::default();
    assert!(log_mel(&[0.1; 511], &cfg).unwrap().is_empty());
    assert!(log_mel(&[], &cfg).unwrap().is_empty());
}
