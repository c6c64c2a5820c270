//! Checkpoints: `model.safetensors` (every model tensor, BatchNorm running statistics included),
//! `optimizer.safetensors` (momentum / moment buffers) and `state.json` (configs, steps, epochs,
//! metrics history). Resuming from one continues the run bit for bit.

use super::trainer::{EpochMetrics, TrainConfig, Trainer};
use crate::model::ModelConfig;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The JSON part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The model's config.
    pub model: ModelConfig,
    /// The recipe.
    pub train: TrainConfig,
    /// Epochs finished.
    pub epochs_done: u64,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Metrics of the finished epochs.
    pub history: Vec<EpochMetrics>,
}

/// Checkpoint file names inside a checkpoint directory.
pub struct Checkpoint;

impl Checkpoint {
    /// Model tensors.
    pub const MODEL: &'static str = "model.safetensors";
    /// Optimizer state.
    pub const OPTIMIZER: &'static str = "optimizer.safetensors";
    /// Configs, counters and history.
    pub const STATE: &'static str = "state.json";

    /// Write a checkpoint of `trainer` into `dir` (created if needed). Each file is written
    /// under a temporary name and renamed, so an interrupted save leaves the old file whole.
    pub fn save(trainer: &Trainer, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let state = TrainState {
            model: trainer.model_config().clone(),
            train: *trainer.config(),
            epochs_done: trainer.epochs_done,
            steps: trainer.optimizer().steps(),
            history: trainer.history.clone(),
        };
        save_tensors(&trainer.model().named_tensors(), &dir.join(Self::MODEL))?;
        save_tensors(
            &trainer.optimizer().state_tensors(),
            &dir.join(Self::OPTIMIZER),
        )?;
        let json =
            serde_json::to_string_pretty(&state).map_err(|e| Error::Config(e.to_string()))?;
        write_atomic(&dir.join(Self::STATE), json.as_bytes())
    }

    /// Read a checkpoint's state.
    pub fn read_state(dir: &Path) -> Result<TrainState> {
        let path = dir.join(Self::STATE);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Rebuild the trainer saved in `dir`, ready for its next epoch.
    pub fn resume(dir: &Path, device: &Device) -> Result<Trainer> {
        let state = Self::read_state(dir)?;
        let weights = load_tensors(&dir.join(Self::MODEL), device)?;
        let opt_state = load_tensors(&dir.join(Self::OPTIMIZER), device)?;
        let mut trainer = Trainer::from_tensors(state.model, state.train, weights, device)?;
        trainer.optimizer_mut().load_state(opt_state, state.steps)?;
        trainer.epochs_done = state.epochs_done;
        trainer.history = state.history;
        Ok(trainer)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = tmp_path(path);
    candle_core::safetensors::save(tensors, &tmp).map_err(|e| Error::Weights {
        path: tmp.clone(),
        msg: e.to_string(),
    })?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device).map_err(|e| Error::Weights {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}
