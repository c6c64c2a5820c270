//! The model behind `hlfp_node`: an [`InferenceModel`] and the inference [`Preprocessor`] as a
//! [`FrameScorer`]. It runs the guidance state's active branches with its gains and returns a
//! softmax over the active set. No file I/O: the binary loads the model and passes it in.

use super::params::DeviceSpec;
use super::vision_core::FrameScorer;
use crate::error::CandleContext;
use crate::guidance::GuidanceState;
use crate::model::infer::InferenceModel;
use crate::model::selection::Selection;
use crate::vision::preprocess::{PreprocessConfig, Preprocessor};
use crate::Result;
use candle_core::{Device, Tensor};

/// A loaded model scoring frames on `device`.
pub struct ModelScorer {
    model: InferenceModel,
    pre: Preprocessor,
    input: Vec<f32>,
    device: Device,
}

impl ModelScorer {
    /// Score with `model` on `device`, preprocessing with the ImageNet recipe at the model's
    /// input size.
    pub fn new(model: InferenceModel, device: Device) -> Result<Self> {
        let cfg = PreprocessConfig::imagenet(model.config().input_size);
        let input = vec![0.0; cfg.output_len()];
        Ok(Self {
            model,
            pre: Preprocessor::new(cfg)?,
            input,
            device,
        })
    }

    /// The model's class names, in output order.
    pub fn classes(&self) -> &[String] {
        &self.model.config().class_names
    }
}

impl FrameScorer for ModelScorer {
    fn score(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
        state: &GuidanceState,
    ) -> Result<Vec<(usize, f32)>> {
        self.pre.process_into(rgb, width, height, &mut self.input)?;
        let s = self.pre.config().input_size;
        let x = Tensor::from_slice(&self.input, (1, 3, s, s), &self.device).ctx("input tensor")?;
        let sel = Selection::from_indices(self.model.config(), &state.active)?;
        let logits = self.model.forward(&x, &sel, &state.gains)?;
        let row = logits
            .squeeze(0)
            .and_then(|l| l.to_vec1::<f32>())
            .ctx("logits to host")?;
        // Softmax over the active set: the scores of a cutout compare the classes it ran.
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = row.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        Ok(sel
            .classes()
            .iter()
            .zip(exp)
            .map(|(&c, e)| (c, e / sum))
            .collect())
    }
}

/// The candle device for a `device` parameter: `auto` is CUDA 0 when available (built with the
/// `cuda` feature and a GPU present), else the CPU; `cuda:N` without CUDA is an error.
pub fn candle_device(spec: DeviceSpec) -> Result<Device> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Auto => Device::cuda_if_available(0).ctx("device auto"),
        DeviceSpec::Cuda(n) => Device::new_cuda(n as usize).ctx(format!("device cuda:{n}")),
    }
}
