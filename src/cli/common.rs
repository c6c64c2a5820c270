//! Options shared by the commands that run a vision model.

use hlfp::guidance::{GuidanceConfig, Policy};
use hlfp::plot::{register_font, FONT_CANDIDATES};
use hlfp::vision::classifier::{DeviceChoice, VisionClassifier};
use std::path::{Path, PathBuf};

/// The shipped default vision model (weights; its config is the `.json` next to it).
pub const DEFAULT_MODEL: &str = "models/hlfp_small.safetensors";

/// Which model to run, where, and how cues steer it.
#[derive(clap::Args, Debug, Clone)]
pub struct VisionArgs {
    /// Vision model weights; the ModelConfig is read from the `.json` next to it.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Where inference runs: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// CPU threads for the GEMM engine.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// What cues do: focus (cutout + gains), boost (gains only) or off.
    #[arg(long, default_value = "focus")]
    pub policy: String,
    /// Gain of a cue with score 1.
    #[arg(long, default_value_t = 1.8)]
    pub gain_max: f32,
    /// How long a cue holds (ms).
    #[arg(long, default_value_t = 3000)]
    pub ttl_ms: u64,
    /// Classes that no cue may cut out or inhibit (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub protected: Vec<String>,
}

impl VisionArgs {
    /// Load the model named by the arguments.
    pub fn load(&self) -> anyhow::Result<VisionClassifier> {
        let device: DeviceChoice = self.device.parse()?;
        VisionClassifier::load_bundle(&self.model, device, self.threads).map_err(|e| {
            anyhow::anyhow!(
                "loading the vision model {}: {e}\n(train one with `hlfp train`, or pass --model)",
                self.model.display()
            )
        })
    }

    /// The guidance configuration the arguments describe.
    pub fn guidance(&self) -> anyhow::Result<GuidanceConfig> {
        let policy: Policy = serde_json::from_value(serde_json::Value::String(self.policy.clone()))
            .map_err(|_| {
                anyhow::anyhow!(
                    "unknown policy {:?}: expected focus, boost or off",
                    self.policy
                )
            })?;
        Ok(GuidanceConfig {
            policy,
            gain_max: self.gain_max,
            ttl_ms: self.ttl_ms,
            protected: self.protected.clone(),
            ..GuidanceConfig::default()
        })
    }
}

/// Register the plots' font; false (a PNG without text) when none can be read.
pub fn load_font(explicit: Option<&Path>) -> bool {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => FONT_CANDIDATES.iter().map(PathBuf::from).collect(),
    };
    for path in candidates {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        // plotters keeps the font for the rest of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        match register_font(bytes) {
            Ok(()) => return true,
            Err(e) => tracing::warn!("{}: {e}", path.display()),
        }
    }
    tracing::warn!("no font found (install fonts-dejavu-core or pass --font): PNG without text");
    false
}

/// The candle device for a `--device` argument of the training and evaluation commands:
/// `auto`, `cpu`, `cuda` or `cuda:N` ([`DeviceChoice`], the one spelling every command and
/// both nodes accept; CUDA needs the `cuda` feature).
pub fn candle_device(spec: &str) -> anyhow::Result<candle_core::Device> {
    Ok(spec.parse::<DeviceChoice>()?.device()?)
}
