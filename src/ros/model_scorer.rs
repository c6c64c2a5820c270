//! The model behind `hlfp_node`: the runtime's [`VisionClassifier`] as the vision node's
//! [`FrameScorer`] (the guidance state's active branches with its gains, a softmax over the
//! active set), and the `device` parameter mapped to the classifier's [`DeviceChoice`]. One
//! model path for the CLI, the runtime and the node; no file I/O here.

use super::params::DeviceSpec;
use super::vision_core::FrameScorer;
use crate::guidance::GuidanceState;
use crate::vision::classifier::{softmax, DeviceChoice, VisionClassifier};
use crate::{Error, Result};

impl FrameScorer for VisionClassifier {
    fn score(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
        state: &GuidanceState,
    ) -> Result<Vec<(usize, f32)>> {
        let logits = self.logits_rgb8(rgb, width, height, &state.active, &state.gains)?;
        if logits.len() != state.active.len() {
            return Err(Error::Runtime(format!(
                "model returned {} logits for {} active classes",
                logits.len(),
                state.active.len()
            )));
        }
        // Softmax over the active set: the scores of a cutout compare the classes it ran.
        Ok(state.active.iter().copied().zip(softmax(&logits)).collect())
    }
}

/// The classifier's device for a `device` parameter: `auto` is CUDA 0 when the binary has the
/// `cuda` feature and a GPU answers, else the CPU GEMM engine; `cuda:N` without CUDA fails at
/// load time with an error naming the feature.
pub fn device_choice(spec: DeviceSpec) -> DeviceChoice {
    match spec {
        DeviceSpec::Auto => DeviceChoice::Auto,
        DeviceSpec::Cpu => DeviceChoice::Cpu,
        DeviceSpec::Cuda(n) => DeviceChoice::Cuda(n as usize),
    }
}
