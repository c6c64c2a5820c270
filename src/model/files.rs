//! Finding a model on disk: its safetensors weights and its [`ModelConfig`].
//!
//! `hlfp train --out DIR` writes `DIR/model.safetensors` with its config in the sidecar
//! `DIR/model.json`, and a checkpoint `DIR/checkpoint/{model.safetensors, state.json}` whose
//! `state.json` holds the config under `"model"`. So a model is named by its weights file (the
//! config is the sidecar `<weights stem>.json`, else a `state.json` beside it) or by such a
//! directory; an explicit config file overrides both.

use crate::model::ModelConfig;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// A model's weights file and config.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    /// The safetensors file.
    pub weights: PathBuf,
    /// Where the config was read from.
    pub config_path: PathBuf,
    /// The config.
    pub config: ModelConfig,
}

impl ModelFiles {
    /// Resolve `model` (a `.safetensors` file or a directory holding `model.safetensors`) and its
    /// config (`config` if given, else the sidecar `<stem>.json`, else `state.json` beside it).
    pub fn resolve(model: &Path, config: Option<&Path>) -> Result<Self> {
        let weights = if model.is_dir() {
            model.join("model.safetensors")
        } else {
            model.to_path_buf()
        };
        if !weights.is_file() {
            return Err(Error::Config(format!(
                "model weights {} not found; expected a .safetensors file or a directory with \
                 model.safetensors (as `hlfp train --out` writes)",
                weights.display()
            )));
        }
        let candidates: Vec<PathBuf> = match config {
            Some(c) => vec![c.to_path_buf()],
            None => {
                let dir = weights.parent().unwrap_or(Path::new("."));
                vec![ModelConfig::sidecar_path(&weights), dir.join("state.json")]
            }
        };
        let Some(config_path) = candidates.iter().find(|p| p.is_file()).cloned() else {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            return Err(Error::Config(format!(
                "no model config found for {} (tried {}); pass --config FILE.json",
                weights.display(),
                tried.join(", ")
            )));
        };
        let text = std::fs::read_to_string(&config_path).map_err(|source| Error::Io {
            path: config_path.clone(),
            source,
        })?;
        let config = parse_config(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", config_path.display())))?;
        config.architecture()?;
        Ok(Self {
            weights,
            config_path,
            config,
        })
    }
}

/// A [`ModelConfig`] from JSON: the config itself, or an object holding it under `"model"` (a
/// training checkpoint's `state.json`).
pub fn parse_config(text: &str) -> std::result::Result<ModelConfig, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let inner = match value.get("model") {
        Some(m) if value.get("variant").is_none() => m.clone(),
        _ => value,
    };
    serde_json::from_value(inner).map_err(|e| {
        format!("not a model config (expected variant, class_names, input_size, width): {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Variant;

    #[test]
    fn config_reads_plain_and_checkpoint_state() {
        let cfg = ModelConfig::new(Variant::HlfpSmall, 3);
        let plain = serde_json::to_string(&cfg).unwrap();
        assert_eq!(parse_config(&plain).unwrap(), cfg);
        let state = format!(r#"{{"model": {plain}, "epochs_done": 3}}"#);
        assert_eq!(parse_config(&state).unwrap(), cfg);
        let e = parse_config(r#"{"epochs": 3}"#).unwrap_err();
        assert!(e.contains("not a model config"), "{e}");
        assert!(parse_config("{").unwrap_err().contains("not valid JSON"));
    }
}
