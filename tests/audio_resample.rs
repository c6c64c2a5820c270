//! Resampler: every device rate to 16 kHz keeps a sine's frequency, amplitude and timing;
//! streaming in random chunks equals batch; a device rate change keeps the timeline.

use hlfp::audio::resample::{resample, StreamResampler};
use rand::{rngs::StdRng, Rng, SeedableRng};

const OUT_HZ: u32 = 16_000;

fn sine(rate_hz: u32, f_hz: f64, amp: f64, n: usize, t0_s: f64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (amp * (2.0 * std::f64::consts::PI * f_hz * (t0_s + i as f64 / rate_hz as f64)).sin())
                as f32
        })
        .collect()
}

/// Amplitude and phase (rad) of the `f_hz` component of `y` over `range` (16 kHz samples,
/// t = j / 16000), by projection on sin and cos over a whole number of cycles.
fn fit(y: &[f32], f_hz: f64, range: std::ops::Range<usize>) -> (f64, f64) {
    let n = range.len() as f64;
    let (mut s, mut c) = (0.0, 0.0);
    for j in range {
        let w = 2.0 * std::f64::consts::PI * f_hz * j as f64 / OUT_HZ as f64;
        s += y[j] as f64 * w.sin();
        c += y[j] as f64 * w.cos();
    }
    let (s, c) = (2.0 * s / n, 2.0 * c / n);
    (s.hypot(c), c.atan2(s))
}

/// Check the 0.5-amplitude sine of `f_hz` (phase 0 at t = 0) over two windows of `y`: amplitude
/// within 1%, phase equal in both (no frequency drift) and within half an output sample of 0
/// (the filter delay is trimmed; rubato reports it in whole samples).
fn check_sine(
    y: &[f32],
    f_hz: f64,
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
    what: &str,
) {
    let (amp_a, ph_a) = fit(y, f_hz, a);
    let (amp_b, ph_b) = fit(y, f_hz, b);
    for amp in [amp_a, amp_b] {
        assert!((amp - 0.5).abs() < 0.005, "{what}: amplitude {amp}");
    }
    let half_sample_rad = std::f64::consts::PI * f_hz / OUT_HZ as f64;
    assert!(
        (ph_a - ph_b).abs() < 0.01,
        "{what}: phase drifts {ph_a} -> {ph_b} (frequency off)"
    );
    for ph in [ph_a, ph_b] {
        assert!(
            ph.abs() <= half_sample_rad,
            "{what}: phase {ph} rad, more than half a sample"
        );
    }
}

#[test]
fn sine_keeps_frequency_amplitude_and_timing_from_every_device_rate() {
    for rate in [8_000u32, 16_000, 22_050, 44_100, 48_000] {
        for f_hz in [440.0, 1_000.0, 3_000.0] {
            let x = sine(rate, f_hz, 0.5, rate as usize, 0.0);
            let y = resample(&x, rate, OUT_HZ).unwrap();
            assert_eq!(y.len(), 16_000, "rate {rate}");
            // Away from the clip edges (filter ramp-in/out).
            check_sine(
                &y,
                f_hz,
                1_000..3_000,
                13_000..15_000,
                &format!("{rate} Hz, {f_hz} Hz"),
            );
            // The check is sensitive: the same sine read as 1% off in frequency fails it.
            let (_, p1) = fit(&y, f_hz * 1.01, 1_000..3_000);
            let (_, p2) = fit(&y, f_hz * 1.01, 13_000..15_000);
            assert!((p1 - p2).abs() > 0.1);
        }
    }
}

#[test]
fn streaming_in_random_chunks_equals_batch() {
    let mut rng = StdRng::seed_from_u64(3);
    for rate in [8_000u32, 22_050, 44_100, 48_000] {
        let x: Vec<f32> = (0..rate as usize * 3 / 2)
            .map(|_| rng.random_range(-0.5f32..0.5))
            .collect();
        let batch = resample(&x, rate, OUT_HZ).unwrap();
        let mut r = StreamResampler::new(rate, OUT_HZ).unwrap();
        for max_chunk in [1usize, 100, 1024, 5000] {
            let mut out = Vec::new();
            let mut pos = 0;
            while pos < x.len() {
                let n = rng.random_range(0..=max_chunk).min(x.len() - pos);
                r.process(&x[pos..pos + n], &mut out).unwrap();
                pos += n;
            }
            r.flush(&mut out).unwrap(); // flush also resets for the next round
            assert_eq!(out, batch, "rate {rate}, max chunk {max_chunk}");
        }
    }
}

#[test]
fn passthrough_at_the_model_rate_is_exact_and_has_no_latency() {
    let x: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
    let mut r = StreamResampler::new(16_000, OUT_HZ).unwrap();
    assert_eq!(r.latency_samples(), 0);
    let mut out = Vec::new();
    r.process(&x, &mut out).unwrap();
    r.flush(&mut out).unwrap();
    assert_eq!(out, x);
}

#[test]
fn device_rate_change_flushes_and_keeps_a_continuous_timeline() {
    // 0.75 s at 44.1 kHz, then the device reopens at 48 kHz for 0.75 s; one continuous 1 kHz sine.
    let a = sine(44_100, 1_000.0, 0.5, 33_075, 0.0);
    let b = sine(48_000, 1_000.0, 0.5, 36_000, 0.75);
    let mut r = StreamResampler::new(44_100, OUT_HZ).unwrap();
    let mut out = Vec::new();
    r.process(&a, &mut out).unwrap();
    r.set_input_rate(48_000, &mut out).unwrap();
    assert_eq!(out.len(), 12_000, "old stream flushed to exactly 0.75 s");
    assert_eq!(r.input_rate_hz(), 48_000);
    r.process(&b, &mut out).unwrap();
    r.flush(&mut out).unwrap();
    assert_eq!(out.len(), 24_000);
    // Both halves are the same sine at the right times (edges around the switch excluded).
    check_sine(
        &out,
        1_000.0,
        1_000..3_000,
        9_000..11_000,
        "before the switch",
    );
    check_sine(
        &out,
        1_000.0,
        13_000..15_000,
        21_000..23_000,
        "after the switch",
    );
    // Same rate again is a no-op.
    assert_eq!(r.set_input_rate(48_000, &mut out).unwrap(), 0);
}

#[test]
fn bad_rates_are_rejected_with_the_rate() {
    let e = StreamResampler::new(0, OUT_HZ).err().unwrap().to_string();
    assert!(e.contains("0 Hz"), "{e}");
    let mut r = StreamResampler::new(48_000, OUT_HZ).unwrap();
    let e = r
        .set_input_rate(5, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 Hz"), "{e}");
    assert_eq!(
        r.input_rate_hz(),
        48_000,
        "a rejected change leaves the resampler as it was"
    );
}

#[test]
fn reset_drops_buffered_audio() {
    let mut r = StreamResampler::new(48_000, OUT_HZ).unwrap();
    let mut junk = Vec::new();
    r.process(&[0.9; 700], &mut junk).unwrap();
    r.reset();
    let x = sine(48_000, 1_000.0, 0.5, 48_000, 0.0);
    let mut out = Vec::new();
    r.process(&x, &mut out).unwrap();
    r.flush(&mut out).unwrap();
    assert_eq!(out, resample(&x, 48_000, OUT_HZ).unwrap());
}
