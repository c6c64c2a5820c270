//! WAV input: supported formats decode to mono f32, bad files give clear errors, NaN/Inf are
//! replaced and counted.

mod shared_data;
use hlfp::audio::wav::{decode_wav, read_wav, sanitize};
use shared_data::shared_data;
use std::path::Path;

fn write_wav(path: &Path, spec: hound::WavSpec, frames: &[Vec<f64>]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for frame in frames {
        for &v in frame {
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample(v as f32).unwrap(),
                (_, 8) => w.write_sample((v * 127.0) as i8).unwrap(),
                (_, 16) => w.write_sample((v * 32768.0) as i16).unwrap(),
                (_, bits) => w
                    .write_sample((v * (1u64 << (bits - 1)) as f64) as i32)
                    .unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

fn spec(channels: u16, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: 22_050,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

#[test]
fn int_and_float_formats_decode_and_downmix() {
    let dir = tempfile::tempdir().unwrap();
    // Stereo frames (L, R); mono result is the mean.
    let frames = vec![vec![0.5, -0.25], vec![-0.5, 0.5], vec![0.25, 0.25]];
    let want = [0.125f32, 0.0, 0.25];
    for (bits, float) in [(16, false), (24, false), (32, false), (32, true)] {
        let p = dir.path().join(format!("s{bits}{float}.wav"));
        write_wav(&p, spec(2, bits, float), &frames);
        let clip = read_wav(&p).unwrap();
        assert_eq!(clip.sample_rate_hz, 22_050);
        assert_eq!(clip.channels, 2);
        assert_eq!(clip.non_finite, 0);
        assert_eq!(clip.samples.len(), 3);
        for (g, w) in clip.samples.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{bits}-bit float={float}: {g} vs {w}");
        }
    }
}

#[test]
fn float_nan_and_inf_are_replaced_by_zero_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nan.wav");
    let frames = vec![
        vec![0.5],
        vec![f64::NAN],
        vec![f64::INFINITY],
        vec![f64::NEG_INFINITY],
        vec![-0.5],
    ];
    write_wav(&p, spec(1, 32, true), &frames);
    let clip = read_wav(&p).unwrap();
    assert_eq!(clip.samples, vec![0.5, 0.0, 0.0, 0.0, -0.5]);
    assert_eq!(clip.non_finite, 3);
}

#[test]
fn sanitize_counts_only_non_finite() {
    let mut x = [1.0, f32::NAN, -1.0, f32::INFINITY, 0.0];
    assert_eq!(sanitize(&mut x), 2);
    assert_eq!(x, [1.0, 0.0, -1.0, 0.0, 0.0]);
}

#[test]
fn zero_length_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.wav");
    write_wav(&p, spec(1, 16, false), &[]);
    let e = read_wav(&p).unwrap_err().to_string();
    assert!(e.contains("no samples") && e.contains("empty.wav"), "{e}");
}

#[test]
fn eight_bit_wav_is_unsupported_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("u8.wav");
    write_wav(&p, spec(1, 8, false), &[vec![0.5], vec![-0.5]]);
    let e = read_wav(&p).unwrap_err().to_string();
    assert!(
        e.contains("unsupported WAV sample format 8-bit integer"),
        "{e}"
    );
    assert!(e.contains("expected 16/24/32-bit integer"), "{e}");
}

#[test]
fn non_wav_data_and_missing_files_are_clear_errors() {
    let e = decode_wav(&b"this is not a RIFF file at all"[..], "notes.txt")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("notes.txt") && e.contains("not a readable WAV"),
        "{e}"
    );
    let e = read_wav(Path::new("/nonexistent/x.wav"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/x.wav"), "{e}");
}

#[test]
#[ignore = "needs ../shared/data"]
fn real_clip_from_shared_data_reads_at_16k() {
    let dir = shared_data("audio/cat");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let clip = read_wav(&files[0]).unwrap();
    assert_eq!(clip.sample_rate_hz, 16_000);
    assert_eq!(clip.channels, 1);
    assert!(clip.duration_s() > 0.2 && clip.duration_s() <= 5.01);
    assert!(clip.samples.iter().any(|&s| s != 0.0));
}
