//! The training loop: seeded initialization, one optimizer step per batch (all classes,
//! label-smoothed cross-entropy, as the paper trains), epoch metrics, and evaluation.
//!
//! The loop reads no clock and writes no file: timing and logging are the caller's
//! (`hlfp train`), checkpoints are [`super::checkpoint`].

use super::optim::{Optimizer, OptimizerConfig};
use super::schedule::{label_smoothing_cross_entropy, LrSchedule};
use crate::data::loader::Batch;
use crate::error::CandleContext;
use crate::model::{HlfpModel, ModelConfig, NetSpec, Selection, TrainLayers};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The training recipe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Epochs to train.
    pub epochs: u64,
    /// Optimizer steps per epoch (the loader's `batches_per_epoch`), for the schedule.
    pub steps_per_epoch: u64,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine.
    pub min_lr: f64,
    /// Warm-up length in epochs (may be fractional).
    pub warmup_epochs: f64,
    /// Label smoothing epsilon.
    pub label_smoothing: f64,
    /// Weight decay (not applied to BatchNorm parameters and biases).
    pub weight_decay: f64,
    /// Seed of the initialization (the loader has its own).
    pub seed: u64,
    /// Precision of the convolutions (weights, optimizer state, BatchNorm and loss stay f32).
    #[serde(default)]
    pub precision: Precision,
    /// Training-mode BatchNorm as one fused op on the CPU (false: candle's layer, for A/B
    /// measurements; `hlfp train --candle-batch-norm`).
    #[serde(default = "fused_by_default")]
    pub fused_batch_norm: bool,
}

fn fused_by_default() -> bool {
    true
}

/// What the convolutions of a training run compute in. Weights, optimizer state, BatchNorm,
/// the head and the loss are f32 in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Mixed precision: convolutions (forward and backward GEMMs) in bfloat16 on f32 master
    /// weights, like PyTorch's autocast with bf16. bf16 has f32's exponent range, so no loss
    /// scaling is needed. Meant for CUDA (tensor cores); on the CPU, which has no bf16 GEMM in
    /// candle, it is emulated (operands and results rounded to bf16 around f32 convs), slower
    /// than f32 and useful for tests only.
    Bf16,
}

impl Precision {
    /// The dtype the convolutions compute in.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "f16" | "fp16" => Err(Error::Config(
                "precision f16 would need loss scaling, which hlfp train does not do; use bf16 (same speed on tensor cores, f32's range)".into(),
            )),
            other => Err(Error::Config(format!(
                "unknown precision {other:?}: expected f32 or bf16"
            ))),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl TrainConfig {
    /// The per-step schedule of this recipe.
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            base_lr: self.lr,
            min_lr: self.min_lr,
            warmup_steps: (self.warmup_epochs * self.steps_per_epoch as f64).round() as u64,
            total_steps: self.epochs * self.steps_per_epoch,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.steps_per_epoch == 0
            || self.lr.is_nan()
            || self.lr <= 0.0
            || !(0.0..1.0).contains(&self.label_smoothing)
        {
            return Err(Error::Config(format!(
                "train config needs steps_per_epoch > 0, lr > 0, 0 <= label_smoothing < 1: {self:?}"
            )));
        }
        Ok(())
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Global step index (0-based).
    pub step: u64,
    /// Batch loss.
    pub loss: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Images in the batch.
    pub images: usize,
    /// Correct top-1 predictions in the batch (train mode).
    pub correct: usize,
}

/// One epoch's numbers, one line of the metrics log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch index (0-based).
    pub epoch: u64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training top-1 (augmented images, train-mode BatchNorm).
    pub train_top1: f64,
    /// Images trained on.
    pub train_images: usize,
    /// Samples skipped by the loader (corrupt files).
    pub skipped: usize,
    /// Validation loss (no smoothing), when validated.
    pub val_loss: Option<f64>,
    /// Validation top-1, when validated.
    pub val_top1: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall-clock seconds, filled in by the caller.
    pub seconds: Option<f64>,
    /// Training images per second, filled in by the caller.
    pub images_per_s: Option<f64>,
}

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Seeded initial tensors for `cfg`, torchvision's ResNet initialization: convs Kaiming-normal
/// (fan-out, ReLU gain), BatchNorm weight 1 and bias 0, running statistics 0 and 1, the
/// classifier uniform in +-1/sqrt(fan_in). Each tensor has its own stream, so the values do
/// not depend on iteration order.
pub fn init_tensors(
    cfg: &ModelConfig,
    seed: u64,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let spec = NetSpec::new(cfg)?;
    let head_bias = format!("{}.bias", spec.head.name);
    let head_fan_in = spec.head.shape[1];
    let mut out = HashMap::new();
    for (i, t) in spec.tensors().into_iter().enumerate() {
        let n: usize = t.shape.iter().product();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(i as u64 + 1);
        let v: Vec<f32> = if t.shape.len() == 4 {
            let fan_out = t.shape[0] * t.shape[2] * t.shape[3];
            let std = (2.0 / fan_out as f64).sqrt();
            (0..n).map(|_| (gauss(&mut rng) * std) as f32).collect()
        } else if t.shape.len() == 2 || t.name == head_bias {
            let fan_in = if t.shape.len() == 2 {
                t.shape[1]
            } else {
                head_fan_in
            };
            let b = 1.0 / (fan_in as f64).sqrt();
            (0..n).map(|_| rng.random_range(-b..b) as f32).collect()
        } else if t.name.ends_with("running_var") || t.name.ends_with(".weight") {
            vec![1.0; n]
        } else {
            vec![0.0; n] // running_mean, BatchNorm bias
        };
        let tensor = Tensor::from_vec(v, t.shape.clone(), device).ctx(t.name.clone())?;
        out.insert(t.name, tensor);
    }
    Ok(out)
}

/// Overwrite `init` with the tensors of `pretrained` (e.g. a torchvision/timm ResNet50 state
/// dict as safetensors) whose name and shape match. Returns (copied, skipped) names.
pub fn merge_pretrained(
    init: &mut HashMap<String, Tensor>,
    pretrained: &HashMap<String, Tensor>,
) -> Result<(Vec<String>, Vec<String>)> {
    let (mut copied, mut skipped) = (Vec::new(), Vec::new());
    let mut names: Vec<&String> = pretrained.keys().collect();
    names.sort();
    for name in names {
        let src = &pretrained[name];
        match init.get(name) {
            Some(dst) if dst.dims() == src.dims() => {
                let t = src
                    .to_dtype(DType::F32)
                    .and_then(|t| t.to_device(dst.device()))
                    .ctx(name.clone())?;
                init.insert(name.clone(), t);
                copied.push(name.clone());
            }
            _ => skipped.push(name.clone()),
        }
    }
    Ok((copied, skipped))
}

/// A model, its variables and its optimizer, trained batch by batch.
pub struct Trainer {
    model: HlfpModel,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    opt: Optimizer,
    device: Device,
    all: Selection,
    /// Epochs finished.
    pub epochs_done: u64,
    /// Metrics of the finished epochs.
    pub history: Vec<EpochMetrics>,
    _varmap: VarMap,
}

impl Trainer {
    /// A trainer starting from seeded initial weights.
    pub fn new(model_cfg: ModelConfig, cfg: TrainConfig, device: &Device) -> Result<Self> {
        let init = init_tensors(&model_cfg, cfg.seed, device)?;
        Self::from_tensors(model_cfg, cfg, init, device)
    }

    /// A trainer starting from the given tensors (every tensor of the model's spec).
    pub fn from_tensors(
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let varmap = VarMap::new();
        let mut params = Vec::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| Error::Config("variable map lock poisoned".into()))?;
            for (name, t) in tensors {
                let var =
                    Var::from_tensor(&t.to_device(device).ctx(name.clone())?).ctx(name.clone())?;
                // BatchNorm running statistics are buffers, not parameters.
                if !(name.ends_with("running_mean") || name.ends_with("running_var")) {
                    params.push((name.clone(), var.clone()));
                }
                data.insert(name, var);
            }
        }
        let expected = NetSpec::new(&model_cfg)?.tensors().len();
        let have = varmap.data().lock().map(|d| d.len()).unwrap_or(0);
        let model = HlfpModel::load_with(
            &model_cfg,
            VarBuilder::from_varmap(&varmap, DType::F32, device),
            TrainLayers {
                compute: cfg.precision.dtype(),
                fused_bn: cfg.fused_batch_norm,
            },
        )?;
        if have != expected {
            return Err(Error::Weights {
                path: "<initial tensors>".into(),
                msg: format!("expected {expected} tensors for this model, got {have}"),
            });
        }
        let opt = Optimizer::new(cfg.optimizer, cfg.weight_decay, params)?;
        let all = Selection::all(&model_cfg);
        Ok(Self {
            model,
            model_cfg,
            cfg,
            opt,
            device: device.clone(),
            all,
            epochs_done: 0,
            history: Vec::new(),
            _varmap: varmap,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &HlfpModel {
        &self.model
    }

    /// The model's config.
    pub fn model_config(&self) -> &ModelConfig {
        &self.model_cfg
    }

    /// The recipe.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The optimizer (for checkpoints).
    pub fn optimizer(&self) -> &Optimizer {
        &self.opt
    }

    pub(crate) fn optimizer_mut(&mut self) -> &mut Optimizer {
        &mut self.opt
    }

    /// Change the epoch count (e.g. to extend a resumed run); the schedule follows.
    pub fn set_epochs(&mut self, epochs: u64) {
        self.cfg.epochs = epochs;
    }

    fn check_batch(&self, batch: &Batch) -> Result<()> {
        if batch.input_size != self.model_cfg.input_size {
            return Err(Error::BadInput(format!(
                "batch images are {0}x{0}, the model expects {1}x{1}",
                batch.input_size, self.model_cfg.input_size
            )));
        }
        let k = self.model_cfg.num_classes() as u32;
        if let Some(l) = batch.labels.iter().find(|&&l| l >= k) {
            return Err(Error::BadInput(format!(
                "label {l} out of range for {k} classes"
            )));
        }
        Ok(())
    }

    /// One optimizer step on `batch` over all classes.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepInfo> {
        self.check_batch(batch)?;
        let step = self.opt.steps();
        let lr = self.cfg.schedule().lr(step);
        let (x, y) = batch.to_tensors(&self.device)?;
        let logits = self.model.forward_t(&x, &self.all, &[], true)?;
        let loss = label_smoothing_cross_entropy(&logits, &y, self.cfg.label_smoothing)?;
        let grads = loss.backward().ctx("backward")?;
        self.opt.step(&grads, lr)?;
        let correct = count_correct(&logits, &y)?;
        Ok(StepInfo {
            step,
            loss: loss.to_scalar::<f32>().ctx("loss value")?,
            lr,
            images: batch.len(),
            correct,
        })
    }

    /// Train one epoch over `batches`, calling `on_step` after each step. Returns the epoch's
    /// metrics (validation and timing fields empty) and appends them to the history.
    pub fn train_epoch(
        &mut self,
        batches: impl IntoIterator<Item = Batch>,
        mut on_step: impl FnMut(&StepInfo),
    ) -> Result<EpochMetrics> {
        let (mut loss_sum, mut images, mut correct, mut skipped, mut lr) =
            (0.0f64, 0usize, 0usize, 0usize, 0.0);
        for batch in batches {
            skipped += batch.skipped.len();
            let info = self.train_step(&batch)?;
            loss_sum += info.loss as f64 * info.images as f64;
            images += info.images;
            correct += info.correct;
            lr = info.lr;
            on_step(&info);
        }
        let m = EpochMetrics {
            epoch: self.epochs_done,
            train_loss: loss_sum / images.max(1) as f64,
            train_top1: correct as f64 / images.max(1) as f64,
            train_images: images,
            skipped,
            val_loss: None,
            val_top1: None,
            lr,
            seconds: None,
            images_per_s: None,
        };
        self.epochs_done += 1;
        self.history.push(m.clone());
        Ok(m)
    }

    /// Mean loss (no smoothing) and top-1 of the eval-mode model over `batches`.
    pub fn evaluate(&self, batches: impl IntoIterator<Item = Batch>) -> Result<(f64, f64)> {
        let (mut loss_sum, mut images, mut correct) = (0.0f64, 0usize, 0usize);
        for batch in batches {
            self.check_batch(&batch)?;
            let (x, y) = batch.to_tensors(&self.device)?;
            let logits = self.model.forward(&x, &self.all, &[])?;
            let loss = label_smoothing_cross_entropy(&logits, &y, 0.0)?;
            loss_sum += loss.to_scalar::<f32>().ctx("loss value")? as f64 * batch.len() as f64;
            correct += count_correct(&logits, &y)?;
            images += batch.len();
        }
        Ok((
            loss_sum / images.max(1) as f64,
            correct as f64 / images.max(1) as f64,
        ))
    }
}

fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1).ctx("argmax")?;
    let eq = pred
        .eq(labels)
        .and_then(|e| e.to_dtype(DType::U32))
        .ctx("compare")?;
    Ok(eq
        .sum_all()
        .and_then(|s| s.to_scalar::<u32>())
        .ctx("count")? as usize)
}
