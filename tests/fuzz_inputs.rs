//! proptest fuzzing of every parser of outside bytes (stable Rust, no nightly): the image
//! decoder and the raw ROS encodings, the WAV reader, the model-config and safetensors
//! loaders, and the cue-line parser. Each must return (Ok or a clear error) without
//! panicking, and allocate at most a bound per input, measured by a counting allocator.
//!
//! All targets run inside ONE test function, one after another, so the allocator's peak
//! belongs to the target being fuzzed and not to a test on another thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

mod corpus;

/// Counts live heap bytes and their peak since the last [`reset_peak`].
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only adds atomic counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Heap bytes above the current level that `f` reached at its peak.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// Most heap one input may cost: a few times its own size plus a fixed allowance.
fn bound(input_len: usize, fixed_mb: usize) -> usize {
    8 * input_len + (fixed_mb << 20)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Bytes of `base` with some bytes overwritten and the end possibly cut.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    (prop::collection::vec((0..len, any::<u8>()), 0..16), 0..=len).prop_map(move |(edits, cut)| {
        let mut v = base.clone();
        for (i, b) in edits {
            v[i] = b;
        }
        v.truncate(cut.max(1));
        v
    })
}

/// A small RGB image with structure in both directions.
fn sample_image() -> image::RgbImage {
    image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 7]))
}

fn sample_png() -> Vec<u8> {
    corpus::png(&sample_image())
}

fn sample_jpeg() -> Vec<u8> {
    corpus::jpeg(&sample_image())
}

fn sample_wav() -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for i in 0..400i32 {
        w.write_sample((i * 37 % 2000) as i16).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

fn fuzz_images() {
    use hlfp::vision::decode::decode_image;
    let mut r = runner(256);
    let inputs = prop_oneof![
        mutated(sample_png()),
        mutated(sample_jpeg()),
        prop::collection::vec(any::<u8>(), 0..512),
    ];
    r.run(&inputs, |bytes| {
        let (_, peak) = peak_during(|| decode_image(&bytes));
        prop_assert!(
            peak <= bound(bytes.len(), 16),
            "{peak} bytes for {} input bytes",
            bytes.len()
        );
        Ok(())
    })
    .unwrap();
}

fn fuzz_raw_encodings() {
    use hlfp::vision::encoding::{to_rgb8, ImageView};
    let mut r = runner(512);
    let names = prop::sample::select(vec![
        "rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422", "uyvy", "yuyv", "16UC1", "", "rgb8\0",
    ]);
    let inputs = (
        0u32..4096,
        0u32..4096,
        names,
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..2048),
    );
    r.run(&inputs, |(width, height, encoding, step, data)| {
        let view = ImageView {
            width,
            height,
            encoding,
            step,
            is_bigendian: false,
            data: &data,
        };
        let (out, peak) = peak_during(|| to_rgb8(&view));
        if let Ok(rgb) = &out {
            prop_assert_eq!(rgb.len(), width as usize * height as usize * 3);
        }
        prop_assert!(peak <= bound(data.len(), 1), "{peak} bytes");
        Ok(())
    })
    .unwrap();
}

fn fuzz_wav() {
    use hlfp::audio::wav::decode_wav;
    let mut r = runner(512);
    let inputs = prop_oneof![
        mutated(sample_wav()),
        prop::collection::vec(any::<u8>(), 0..256).prop_map(|mut v| {
            // A plausible start, so the fuzzing reaches past the RIFF check.
            let head = b"RIFF\xff\xff\xff\xffWAVEfmt ";
            v.splice(0..0, head.iter().copied());
            v
        }),
    ];
    r.run(&inputs, |bytes| {
        let (out, peak) = peak_during(|| decode_wav(&bytes[..], "fuzz.wav"));
        if let Ok(clip) = &out {
            prop_assert!(clip.samples.iter().all(|s| s.is_finite()));
        }
        // The decoder reads 64 Ki frames per piece: at most 64 Ki x 64 ch x 8 B = 32 MiB.
        prop_assert!(peak <= bound(bytes.len(), 40), "{peak} bytes");
        Ok(())
    })
    .unwrap();
}

fn fuzz_model_configs() {
    use hlfp::model::files::parse_config;
    use hlfp::model::{ModelConfig, Variant};
    let mut r = runner(512);
    let json_values = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        Just("null".to_string()),
        Just("\"x\"".to_string()),
        Just("[]".to_string()),
    ];
    let fields = (
        prop::sample::select(Variant::ALL.map(|v| v.name()).to_vec()),
        0usize..3000,
        json_values.clone(),
        json_values.clone(),
        json_values,
    );
    r.run(&fields, |(variant, k, size, width, gain)| {
        let names: Vec<String> = (0..k).map(|i| format!("\"c{i}\"")).collect();
        let text = format!(
            r#"{{"variant":"{variant}","class_names":[{}],"input_size":{size},"width":{width},"gain_stage":{gain}}}"#,
            names.join(",")
        );
        let (arch, peak) = peak_during(|| {
            parse_config(&text).ok().map(|c: ModelConfig| (c.architecture().is_ok(), c))
        });
        if let Some((true, c)) = arch {
            prop_assert!((32..=1024).contains(&c.input_size) && (1..=1000).contains(&c.num_classes()));
            prop_assert!(c.width > 0.0 && c.width <= 4.0);
        }
        prop_assert!(peak <= bound(text.len(), 4), "{peak} bytes");
        Ok(())
    })
    .unwrap();
}

fn fuzz_safetensors_loader() {
    use hlfp::model::{weights, ModelConfig, Variant};
    use hlfp::vision::classifier::{DeviceChoice, VisionClassifier};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ModelConfig::new(Variant::HlfpSmall, 2);
    cfg.width = 0.0625;
    cfg.input_size = 32;
    let good = dir.path().join("good.safetensors");
    weights::write_random_safetensors(&good, &cfg, 1).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    // Mostly the header (where lengths and offsets live), some of the data.
    let header_len = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut r = runner(96);
    let inputs = prop_oneof![
        3 => mutated(bytes[..header_len].to_vec()).prop_map({
            let rest = bytes[header_len..].to_vec();
            move |mut head| { head.extend_from_slice(&rest); head }
        }),
        1 => mutated(bytes.clone()),
    ];
    let path = dir.path().join("fuzz.safetensors");
    r.run(&inputs, |data| {
        std::fs::write(&path, &data).unwrap();
        let (_, peak) = peak_during(|| VisionClassifier::load(&path, &cfg, DeviceChoice::Cpu, 1));
        // The model itself is ~1 MB of weights; anything far beyond means a size was trusted.
        prop_assert!(peak <= bound(data.len(), 64), "{peak} bytes");
        Ok(())
    })
    .unwrap();
}

fn fuzz_cue_lines() {
    use hlfp::pipeline::io::MAX_CUE_LINE_BYTES;
    use hlfp::pipeline::{CueSource, JsonLinesCueSource};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut r = runner(512);
    let line = prop_oneof![
        "[a-z_]{0,12}".prop_map(|s| s.into_bytes()),
        r#"\{"class":"[a-z]{0,5}","score":-?[0-9e.]{0,6}(,"source":"[a-z]{0,3}")?\}"#
            .prop_map(|s| s.into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    let inputs = prop::collection::vec(line, 0..32).prop_map(|ls| ls.join(&b'\n'));
    r.run(&inputs, |bytes| {
        let (n, peak) = peak_during(|| {
            rt.block_on(async {
                let mut src = JsonLinesCueSource::new(std::io::Cursor::new(bytes.clone()), "fuzz");
                let mut n = 0;
                while let Some(c) = src.next_cue().await {
                    if let Ok(c) = c {
                        // One line at most (the guidance refuses names it does not know).
                        assert!(c.class.len() <= MAX_CUE_LINE_BYTES && !c.class.contains('\n'));
                    }
                    n += 1;
                }
                n
            })
        });
        prop_assert!(n <= bytes.len() + 1);
        prop_assert!(peak <= bound(bytes.len(), 1), "{peak} bytes");
        Ok(())
    })
    .unwrap();
}

#[test]
fn parsers_of_outside_bytes_never_panic_and_allocate_within_bounds() {
    fuzz_images();
    fuzz_raw_encodings();
    fuzz_wav();
    fuzz_model_configs();
    fuzz_safetensors_loader();
    fuzz_cue_lines();
}
