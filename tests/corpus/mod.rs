//! The bad-input corpus: a deterministic generator of images, model configs and weights, WAVs,
//! cue lines and command lines, each with what the `hlfp` binary must do with it. Same seed,
//! same bytes: every case is made from fixed values and a seeded ChaCha stream.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use hlfp::model::{weights, ModelConfig, Variant};
use rand::{Rng, SeedableRng};

/// Classes of the corpus's vision model.
pub const CLASSES: [&str; 3] = ["cat", "dog", "chain_saw"];

/// How the process must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit code 0.
    Ok,
    /// Exit code 1, or 2 for a command line clap refuses (an error report, not a panic's 101
    /// or a signal).
    Error,
    /// Killed by SIGPIPE (the reader went away) or exit code 0.
    PipeClosed,
}

/// One bad input and what `hlfp` must do with it.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique name, e.g. `image/truncated-jpeg`.
    pub name: String,
    /// Arguments after `hlfp`.
    pub args: Vec<OsString>,
    /// Bytes for standard input (`None` = empty).
    pub stdin: Option<Vec<u8>>,
    /// Close standard output before the process writes (a reader that went away).
    pub closed_stdout: bool,
    /// Required exit.
    pub exit: Exit,
    /// Text the standard error must contain (case-insensitive), e.g. what was wrong.
    pub stderr_has: Vec<&'static str>,
}

fn case(name: &str, args: &[&dyn AsRefOs], exit: Exit, stderr_has: &[&'static str]) -> Case {
    Case {
        name: name.to_string(),
        args: args.iter().map(|a| a.os()).collect(),
        stdin: None,
        closed_stdout: false,
        exit,
        stderr_has: stderr_has.to_vec(),
    }
}

/// Strings and paths as arguments.
pub trait AsRefOs {
    fn os(&self) -> OsString;
}
impl AsRefOs for &str {
    fn os(&self) -> OsString {
        OsString::from(*self)
    }
}
impl AsRefOs for String {
    fn os(&self) -> OsString {
        OsString::from(self)
    }
}
impl AsRefOs for PathBuf {
    fn os(&self) -> OsString {
        self.clone().into_os_string()
    }
}

pub fn png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

pub fn jpeg(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut out),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    out
}

/// A grey PNG of `w`x`h` written row by row (small on disk, large decoded).
fn big_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().unwrap();
        let mut s = wr.stream_writer().unwrap();
        let row = vec![128u8; w as usize];
        for _ in 0..h {
            std::io::Write::write_all(&mut s, &row).unwrap();
        }
        s.finish().unwrap();
    }
    out
}

/// A WAV with a hand-written header (format tag, bits, channels, rate, declared data bytes).
pub fn wav_bytes(
    tag: u16,
    bits: u16,
    channels: u16,
    rate: u32,
    declared: u32,
    data: &[u8],
) -> Vec<u8> {
    let align = channels.wrapping_mul(bits / 8);
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&36u32.wrapping_add(declared).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&rate.wrapping_mul(align as u32).to_le_bytes());
    v.extend_from_slice(&align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&declared.to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// 16-bit mono PCM bytes of `samples` (clamped to full scale).
pub fn pcm16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect()
}

/// A 16 kHz mono 32-bit float WAV of `samples`.
pub fn float_wav(samples: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    wav_bytes(3, 32, 1, 16_000, data.len() as u32, &data)
}

/// Noise then a tone: something for the detector to look at.
pub fn noise_and_tone(seconds: f32, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = (seconds * 16_000.0) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.05 * rng.random_range(-1.0f32..1.0)
                + 0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
        })
        .collect()
}

/// The tiny vision model (weights + sidecar config) the corpus runs; returns the weights path.
pub fn tiny_model(dir: &Path, name: &str, edit: impl FnOnce(&mut ModelConfig)) -> PathBuf {
    let mut cfg = ModelConfig::new(Variant::HlfpSmall, CLASSES.len());
    cfg.class_names = CLASSES.iter().map(|s| s.to_string()).collect();
    cfg.width = 0.125;
    cfg.input_size = 64;
    let w = dir.join(format!("{name}.safetensors"));
    weights::write_random_safetensors(&w, &cfg, 3).unwrap();
    edit(&mut cfg);
    std::fs::write(
        ModelConfig::sidecar_path(&w),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    w
}

/// Copy of the safetensors file `good` with element 0 of `tensor` set to `value`.
pub fn poisoned(good: &Path, tensor: &str, value: f32, out: &Path) {
    let bytes = std::fs::read(good).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut owned: Vec<(String, Vec<u8>, Vec<usize>, safetensors::Dtype)> = Vec::new();
    for (name, view) in st.tensors() {
        let mut data = view.data().to_vec();
        if name == tensor {
            data[..4].copy_from_slice(&value.to_le_bytes());
        }
        owned.push((name, data, view.shape().to_vec(), view.dtype()));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, d, s, t)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*t, s.clone(), d).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, header.metadata().clone(), out).unwrap();
    let json = ModelConfig::sidecar_path(good);
    if json.exists() {
        std::fs::copy(json, ModelConfig::sidecar_path(out)).unwrap();
    }
}

/// Write the corpus's files under `dir` and list its cases. `root` is the crate root (the
/// shipped audio model and cue config live there).
pub fn generate(dir: &Path, root: &Path) -> Vec<Case> {
    use Exit::*;
    let mut cases = Vec::new();
    let f = |name: &str| dir.join(name);
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);

    // ---- vision models --------------------------------------------------------------------
    let model = tiny_model(dir, "good", |_| {});
    let good_img = write(
        "good.png",
        &png(&image::RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
        })),
    );
    let classify = |name: &str, model: &PathBuf, image: &PathBuf, exit, has: &[&'static str]| {
        case(
            name,
            &[
                &"classify",
                &"--image",
                image,
                &"--model",
                model,
                &"--threads",
                &"1",
            ],
            exit,
            has,
        )
    };
    cases.push(classify("model/good", &model, &good_img, Ok, &[]));
    let m = tiny_model(dir, "huge_input", |c| c.input_size = 100_000);
    cases.push(classify(
        "model/input-size-100000",
        &m,
        &good_img,
        Error,
        &["input size", "1024"],
    ));
    let m = tiny_model(dir, "zero_input", |c| c.input_size = 0);
    cases.push(classify(
        "model/input-size-0",
        &m,
        &good_img,
        Error,
        &["input size"],
    ));
    let m = tiny_model(dir, "width_nan", |c| c.width = 1e300);
    cases.push(classify(
        "model/width-1e300",
        &m,
        &good_img,
        Error,
        &["width"],
    ));
    let m = tiny_model(dir, "no_classes", |c| c.class_names.clear());
    cases.push(classify(
        "model/zero-classes",
        &m,
        &good_img,
        Error,
        &["classes"],
    ));
    let m = tiny_model(dir, "many_classes", |c| {
        c.class_names = (0..5000).map(|i| format!("c{i}")).collect()
    });
    cases.push(classify(
        "model/5000-classes",
        &m,
        &good_img,
        Error,
        &["1..=1000 classes"],
    ));
    let m = tiny_model(dir, "dup_classes", |c| c.class_names[1] = "cat".into());
    cases.push(classify(
        "model/duplicate-class",
        &m,
        &good_img,
        Error,
        &["unique"],
    ));
    let m = tiny_model(dir, "gain_stage", |c| c.gain_stage = Some(usize::MAX));
    cases.push(classify(
        "model/gain-stage-max",
        &m,
        &good_img,
        Error,
        &["gain stage"],
    ));
    let m = tiny_model(dir, "wrong_classes", |c| c.class_names.push("extra".into()));
    cases.push(classify(
        "model/config-weights-mismatch",
        &m,
        &good_img,
        Error,
        &["branch"],
    ));
    for (name, json) in [
        ("not_json", "{ this is not json"),
        (
            "unknown_variant",
            r#"{"variant":"hlfp-tiny","class_names":["a"],"input_size":64,"width":1}"#,
        ),
        (
            "negative_size",
            r#"{"variant":"hlfp-small","class_names":["a"],"input_size":-5,"width":1}"#,
        ),
        (
            "size_overflow",
            r#"{"variant":"hlfp-small","class_names":["a"],"input_size":1e30,"width":1}"#,
        ),
        (
            "width_string",
            r#"{"variant":"hlfp-small","class_names":["a"],"input_size":64,"width":"wide"}"#,
        ),
        ("empty_json", ""),
    ] {
        let w = f(&format!("{name}.safetensors"));
        std::fs::copy(&model, &w).unwrap();
        std::fs::write(ModelConfig::sidecar_path(&w), json).unwrap();
        cases.push(classify(
            &format!("model/config-{name}"),
            &w,
            &good_img,
            Error,
            &["config"],
        ));
    }
    for (tensor, value, label) in [
        ("layer1.0.conv1.weight", f32::NAN, "nan-conv"),
        ("branch.1.conv2.weight", f32::INFINITY, "inf-branch"),
        ("layer2.0.bn1.running_var", -1.0, "negative-variance"),
    ] {
        let out = f(&format!("{label}.safetensors"));
        poisoned(&model, tensor, value, &out);
        cases.push(classify(
            &format!("model/{label}"),
            &out,
            &good_img,
            Error,
            &["NaN or infinity"],
        ));
    }
    let bytes = std::fs::read(&model).unwrap();
    for (label, data) in [
        ("truncated-weights", bytes[..bytes.len() / 2].to_vec()),
        (
            "garbage-weights",
            (0..4096).map(|_| rng.random::<u8>()).collect(),
        ),
        ("empty-weights", Vec::new()),
        ("header-claims-1tb", {
            let mut v = (1u64 << 40).to_le_bytes().to_vec();
            v.extend_from_slice(b"{}");
            v
        }),
    ] {
        let w = write(&format!("{label}.safetensors"), &data);
        std::fs::copy(
            ModelConfig::sidecar_path(&model),
            ModelConfig::sidecar_path(&w),
        )
        .unwrap();
        cases.push(classify(
            &format!("model/{label}"),
            &w,
            &good_img,
            Error,
            &["loading the vision model"],
        ));
    }
    let w = f("missing_json.safetensors");
    std::fs::copy(&model, &w).unwrap();
    cases.push(classify(
        "model/missing-config",
        &w,
        &good_img,
        Error,
        &["missing_json.safetensors"],
    ));
    cases.push(classify(
        "model/missing-weights",
        &f("nowhere.safetensors"),
        &good_img,
        Error,
        &["nowhere.safetensors"],
    ));

    // ---- images ---------------------------------------------------------------------------
    let photo = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, (x ^ y) as u8])
    });
    let full_jpeg = jpeg(&photo);
    let full_png = png(&photo);
    for (label, bytes, has) in [
        (
            "truncated-jpeg",
            full_jpeg[..full_jpeg.len() / 2].to_vec(),
            "truncated JPEG",
        ),
        ("jpeg-header-only", full_jpeg[..200].to_vec(), "JPEG"),
        (
            "truncated-png",
            full_png[..full_png.len() / 2].to_vec(),
            "decoding image",
        ),
        ("empty-file", Vec::new(), "not a JPEG or PNG"),
        (
            "random-bytes",
            (0..2048).map(|_| rng.random::<u8>()).collect(),
            "not a JPEG or PNG",
        ),
        (
            "text-named-jpg",
            b"hello, I am not a picture".to_vec(),
            "not a JPEG or PNG",
        ),
        ("png-12000x12000", big_png(12_000, 12_000), "too large"),
        ("png-1x100000", big_png(1, 100_000), "too large"),
    ] {
        let ext = if label.contains("png") { "png" } else { "jpg" };
        let p = write(&format!("{label}.{ext}"), &bytes);
        cases.push(classify(
            &format!("image/{label}"),
            &model,
            &p,
            Error,
            &[has],
        ));
    }
    let p = write(
        "tiny.png",
        &png(&image::RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9]))),
    );
    cases.push(classify("image/1x1-png", &model, &p, Ok, &[]));
    cases.push(classify(
        "image/missing",
        &model,
        &f("nowhere.png"),
        Error,
        &["nowhere.png"],
    ));

    // ---- command lines --------------------------------------------------------------------
    let frames = f("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for i in 0..3u8 {
        std::fs::write(
            frames.join(format!("f{i}.png")),
            png(&image::RgbImage::from_pixel(
                32,
                24,
                image::Rgb([i * 60, 80, 120]),
            )),
        )
        .unwrap();
    }
    std::fs::write(frames.join("f9_cut.jpg"), &full_jpeg[..full_jpeg.len() / 2]).unwrap();
    let out = f("run.jsonl");
    let run = |name: &str, extra: &[&str], exit, has: &[&'static str]| {
        let mut args: Vec<&dyn AsRefOs> = vec![&"run", &"--frames"];
        args.push(&frames);
        args.extend([
            &"--model" as &dyn AsRefOs,
            &model,
            &"--threads",
            &"1",
            &"--out",
            &out,
        ]);
        let mut c = case(name, &args, exit, has);
        c.args.extend(extra.iter().map(OsString::from));
        c
    };
    cases.push(run(
        "cli/run-good",
        &["--fps", "0", "--every-frame"],
        Ok,
        &[],
    ));
    for fps in ["1e-300", "1e300", "-1", "NaN", "inf", "1001"] {
        cases.push(run(
            &format!("cli/fps-{fps}"),
            &[format!("--fps={fps}").as_str()],
            Error,
            &["frame rate"],
        ));
    }
    cases.push(run(
        "cli/fps-word",
        &["--fps", "fast"],
        Error,
        &["invalid value"],
    ));
    cases.push(run(
        "cli/policy-bogus",
        &["--policy", "bogus"],
        Error,
        &["unknown policy"],
    ));
    cases.push(run(
        "cli/device-bogus",
        &["--device", "tpu:9"],
        Error,
        &["device"],
    ));
    cases.push(run(
        "cli/gain-nan",
        &["--gain-max", "NaN"],
        Error,
        &["gain"],
    ));
    cases.push(run(
        "cli/protected-unknown",
        &["--protected", "zebra"],
        Error,
        &["zebra"],
    ));
    cases.push(run("cli/top-0", &["--fps", "0", "--top", "0"], Ok, &[]));
    // 0 means one thread; a million would ask for a million GEMM scratch buffers.
    for (threads, exit, has) in [("0", Ok, &[][..]), ("1000000", Error, &["at most 256"][..])] {
        cases.push(case(
            &format!("cli/threads-{threads}"),
            &[
                &"classify",
                &"--image",
                &good_img,
                &"--model",
                &model,
                &"--threads",
                &threads,
            ],
            exit,
            has,
        ));
    }
    cases.push(case(
        "cli/cost-table-closed-pipe",
        &[&"cost", &"--table"],
        PipeClosed,
        &[],
    ));
    cases.last_mut().unwrap().closed_stdout = true;
    cases.push(case("cli/no-command", &[], Error, &["usage"]));

    // ---- cue lines on stdin ---------------------------------------------------------------
    let cue_case = |name: &str, stdin: Vec<u8>| {
        let mut c = run(
            name,
            &["--fps", "0", "--every-frame", "--cues-stdin"],
            Ok,
            &[],
        );
        c.stdin = Some(stdin);
        c
    };
    cases.push(cue_case("cues/endless-line", vec![b'x'; 8 << 20]));
    cases.push(cue_case(
        "cues/binary",
        (0..65_536).map(|_| rng.random::<u8>()).collect(),
    ));
    cases.push(cue_case(
        "cues/bad-json",
        b"{\"class\":1}\n{\"class\":\"cat\",\"score\":\"high\"}\n{\"class\":\"cat\",\"score\":1e999}\n{\n\"cat\"\n".to_vec(),
    ));
    cases.push(cue_case(
        "cues/out-of-range-scores",
        b"{\"class\":\"cat\",\"score\":-1}\n{\"class\":\"dog\",\"score\":7}\n{\"class\":\"cat\",\"score\":null}\n".to_vec(),
    ));
    cases.push(cue_case("cues/flood", b"cat\ndog\nzebra\n".repeat(30_000)));

    // ---- WAVs through `listen` (the shipped audio model) -----------------------------------
    let audio_model = hlfp::audio::ensemble::map_paths(hlfp::audio::DEFAULT_MODEL, |p| {
        root.join(p).display().to_string()
    });
    let cues_toml = root.join("config/cues.toml");
    let listen = |name: &str, wav: &PathBuf, exit, has: &[&'static str]| {
        case(
            name,
            &[
                &"listen",
                &"--wav",
                wav,
                &"--model",
                &audio_model,
                &"--cues",
                &cues_toml,
            ],
            exit,
            has,
        )
    };
    let tone = noise_and_tone(2.0, 1);
    let p = write("good.wav", &float_wav(&tone));
    cases.push(listen("wav/good", &p, Ok, &[]));
    let mut burst = tone.clone();
    burst[..10].iter_mut().for_each(|s| *s = 1e30);
    let p = write("burst-1e30.wav", &float_wav(&burst));
    // One window (the first) holds the burst: skipped and counted, the stream goes on.
    cases.push(listen(
        "wav/ten-samples-1e30",
        &p,
        Ok,
        &["\"bad_windows\":1"],
    ));
    let mut nan = tone.clone();
    nan.iter_mut().step_by(7).for_each(|s| *s = f32::NAN);
    let p = write("nan.wav", &float_wav(&nan));
    cases.push(listen(
        "wav/nan-samples",
        &p,
        Ok,
        &["NaN/Inf samples replaced"],
    ));
    let data = pcm16(&tone);
    let p = write(
        "cut-off.wav",
        &wav_bytes(1, 16, 1, 16_000, data.len() as u32 * 4, &data),
    );
    cases.push(listen("wav/cut-off-recording", &p, Ok, &["cut off"]));
    let p = write(
        "streaming.wav",
        &wav_bytes(1, 16, 1, 16_000, u32::MAX, &data),
    );
    cases.push(listen("wav/streaming-header", &p, Ok, &[]));
    let f64_data: Vec<u8> = tone
        .iter()
        .flat_map(|&s| (s as f64).to_le_bytes())
        .collect();
    let p = write(
        "f64.wav",
        &wav_bytes(3, 64, 1, 16_000, f64_data.len() as u32, &f64_data),
    );
    cases.push(listen("wav/float64", &p, Ok, &[]));
    for (label, bytes, has) in [
        (
            "8-bit",
            wav_bytes(1, 8, 1, 16_000, 100, &[128; 100]),
            "8-bit integer",
        ),
        (
            "zero-channels",
            wav_bytes(1, 16, 0, 16_000, 100, &[0; 100]),
            "0 channels",
        ),
        (
            "65535-channels",
            wav_bytes(1, 16, 65_535, 16_000, 100, &[0; 100]),
            "at most 64",
        ),
        ("zero-rate", wav_bytes(1, 16, 1, 0, 100, &[0; 100]), "0 Hz"),
        (
            "4ghz-rate",
            wav_bytes(1, 16, 1, u32::MAX, 100, &[0; 100]),
            "at most 768000",
        ),
        (
            "adpcm",
            wav_bytes(2, 4, 1, 16_000, 100, &[0; 100]),
            "format tag",
        ),
        ("no-data", wav_bytes(1, 16, 1, 16_000, 0, &[]), "no samples"),
        (
            "not-riff",
            b"RIFX....WAVEfmt ".to_vec(),
            "not a readable WAV",
        ),
        (
            "random",
            (0..4096).map(|_| rng.random::<u8>()).collect(),
            "not a readable WAV",
        ),
    ] {
        let p = write(&format!("{label}.wav"), &bytes);
        cases.push(listen(&format!("wav/{label}"), &p, Error, &[has]));
    }
    let good_wav = dir.join("good.wav");
    let bad_audio = f("nan-audio.safetensors");
    poisoned(
        &root.join("models/audio_cues.safetensors"),
        "head.weight",
        f32::NAN,
        &bad_audio,
    );
    cases.push(case(
        "audio-model/nan-head",
        &[
            &"listen", &"--wav", &good_wav, &"--model", &bad_audio, &"--cues", &cues_toml,
        ],
        Error,
        &["NaN or infinity"],
    ));
    let p = write("garbage-audio.safetensors", b"nope");
    cases.push(case(
        "audio-model/garbage",
        &[
            &"listen", &"--wav", &good_wav, &"--model", &p, &"--cues", &cues_toml,
        ],
        Error,
        &["not a safetensors file"],
    ));
    // `run --wav`: a bad window must not stop the cues or change the exit code.
    let burst_wav = dir.join("burst-1e30.wav");
    let mut c = run("wav/run-with-1e30-burst", &["--fps", "5"], Ok, &[]);
    c.args.extend([
        OsString::from("--wav"),
        burst_wav.into_os_string(),
        OsString::from("--audio-model"),
        OsString::from(&audio_model),
        OsString::from("--cues"),
        cues_toml.clone().into_os_string(),
    ]);
    cases.push(c);
    cases
}
