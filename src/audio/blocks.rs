//! The audio classifier's feature extractor: a stack of stages, each halving time and
//! frequency, built either from plain conv blocks or from MobileNetV2-style inverted residuals
//! ([`Backbone`]). The tensor names written by `named_tensors` are the ones `VarBuilder` reads,
//! so one description serves training, saving and loading.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};
use crate::model::layers::{ConvBn, ConvLayer, CudaKernels, EngineConv, InferConv};
use crate::model::Backend;

/// Channel expansion of an inverted residual's 1x1 "expand" conv.
pub const EXPANSION: usize = 4;

/// Which blocks make up the stages after the first (the first is always a plain conv block:
/// a depthwise conv over a single input channel would learn nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backbone {
    /// conv3x3 + batch norm + ReLU + 2x2 max-pool per stage (the first shipped models).
    #[default]
    Plain,
    /// Per stage two MobileNetV2 inverted residuals (1x1 expand by [`EXPANSION`], 3x3
    /// depthwise, 1x1 linear projection, each with batch norm): the first pools 2x2 after its
    /// depthwise conv and changes the channel count, the second keeps the shape and adds its
    /// input back. About the plain stack's multiply-adds at the same channels, twice the depth.
    MobileNet,
}

impl Backbone {
    /// Name stored in the weights file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::MobileNet => "mobilenet",
        }
    }

    /// Parse a stored or command-line name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "plain" => Ok(Self::Plain),
            "mobilenet" => Ok(Self::MobileNet),
            _ => Err(Error::Config(format!(
                "unknown backbone {s:?}; expected \"plain\" or \"mobilenet\""
            ))),
        }
    }
}

/// A bias-free kxk conv (`groups` = channels for a depthwise one) followed by batch norm: the
/// vision model's layer ([`ConvBn`]), so the audio model trains on the same im2col conv and
/// fused batch-norm kernels. Its tensors live under `{prefix}.conv.weight` and `{prefix}.bn`.
fn conv_bn(
    c_in: usize,
    c_out: usize,
    k: usize,
    groups: usize,
    vb: VarBuilder,
) -> candle_core::Result<ConvBn> {
    let (weight, bn) = ConvBn::load_weights(&vb, "conv", &[c_out, c_in / groups, k, k], "bn")?;
    Ok(ConvBn {
        weight,
        bn,
        stride: 1,
        pad: k / 2,
        groups,
        grouped: false,
        compute: DType::F32,
        fused_bn: true,
    })
}

/// `c`'s weight and batch-norm tensors under `prefix`, as [`conv_bn`] reads them.
fn conv_bn_tensors(c: &ConvBn, prefix: &str, out: &mut Vec<(String, Tensor)>) {
    c.push_tensors(&format!("{prefix}.conv"), &format!("{prefix}.bn"), out);
}

/// 2x2 max-pool: candle's (with a gradient) in training, this crate's CPU kernel when scoring.
fn pool(x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
    if train {
        x.max_pool2d(2)
    } else {
        crate::kernels::pool::max_pool2(x)
    }
}

/// 1x1 expand + ReLU, 3x3 depthwise + ReLU (+ 2x2 max-pool), 1x1 linear projection; the input
/// is added back when the block keeps the shape.
#[derive(Debug, Clone)]
struct InvertedResidual<L = ConvBn> {
    expand: L,
    depthwise: L,
    project: L,
    pool: bool,
    residual: bool,
}

impl<L: ConvLayer> InvertedResidual<L> {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = self.expand.run_act(x, train, None, true)?;
        let mut h = self.depthwise.run_act(&h, train, None, true)?;
        if self.pool {
            h = pool(&h, train)?;
        }
        let residual = self.residual.then_some(x);
        self.project.run_act(&h, train, residual, false)
    }

    fn map<M>(
        &self,
        f: &impl Fn(&L) -> candle_core::Result<M>,
    ) -> candle_core::Result<InvertedResidual<M>> {
        Ok(InvertedResidual {
            expand: f(&self.expand)?,
            depthwise: f(&self.depthwise)?,
            project: f(&self.project)?,
            pool: self.pool,
            residual: self.residual,
        })
    }
}

impl InvertedResidual {
    fn new(c_in: usize, c_out: usize, pool: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        let hidden = c_in * EXPANSION;
        Ok(Self {
            expand: conv_bn(c_in, hidden, 1, 1, vb.pp("expand"))?,
            depthwise: conv_bn(hidden, hidden, 3, hidden, vb.pp("depthwise"))?,
            project: conv_bn(hidden, c_out, 1, 1, vb.pp("project"))?,
            pool,
            residual: !pool && c_in == c_out,
        })
    }

    fn named_tensors(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        conv_bn_tensors(&self.expand, &format!("{prefix}.expand"), out);
        conv_bn_tensors(&self.depthwise, &format!("{prefix}.depthwise"), out);
        conv_bn_tensors(&self.project, &format!("{prefix}.project"), out);
    }
}

/// One stage: halves time and frequency and sets the channel count.
#[derive(Debug, Clone)]
enum Stage<L = ConvBn> {
    /// conv3x3 + batch norm + ReLU + 2x2 max-pool.
    Plain(L),
    /// A pooling inverted residual, then a shape-keeping one.
    Inverted(Box<(InvertedResidual<L>, InvertedResidual<L>)>),
}

/// The stages of one [`Backbone`] with the given output channels per stage, on one kind of
/// layer: [`ConvBn`] to train and save, [`InferConv`] (batch norm folded, on the CPU engine or
/// candle's ops, [`Stages::on_backend`]) to score.
#[derive(Debug, Clone)]
pub struct Stages<L = ConvBn> {
    stages: Vec<Stage<L>>,
}

impl<L: ConvLayer> Stages<L> {
    /// `(b, 1, t, f)` -> `(b, channels.last(), t >> stages, f >> stages)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for stage in &self.stages {
            x = match stage {
                Stage::Plain(c) => pool(&c.run_act(&x, train, None, true)?, train)?,
                Stage::Inverted(pair) => {
                    let (down, same) = pair.as_ref();
                    same.forward_t(&down.forward_t(&x, train)?, train)?
                }
            };
        }
        Ok(x)
    }

    /// The same stages with every layer replaced by `f` of it.
    fn map<M>(&self, f: impl Fn(&L) -> candle_core::Result<M>) -> candle_core::Result<Stages<M>> {
        let stages = self
            .stages
            .iter()
            .map(|stage| {
                Ok(match stage {
                    Stage::Plain(c) => Stage::Plain(f(c)?),
                    Stage::Inverted(pair) => {
                        Stage::Inverted(Box::new((pair.0.map(&f)?, pair.1.map(&f)?)))
                    }
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Stages { stages })
    }
}

impl Stages {
    /// Build (or load, through `vb`) `channels.len()` stages reading one input channel. Stage
    /// `i`'s tensors live under `blocks.{i}`.
    pub fn new(
        backbone: Backbone,
        channels: &[usize],
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let mut stages = Vec::with_capacity(channels.len());
        let mut c_in = 1;
        for (i, &c_out) in channels.iter().enumerate() {
            let vb = vb.pp(format!("blocks.{i}"));
            stages.push(match backbone {
                Backbone::MobileNet if i > 0 => Stage::Inverted(Box::new((
                    InvertedResidual::new(c_in, c_out, true, vb.pp("down"))?,
                    InvertedResidual::new(c_out, c_out, false, vb.pp("same"))?,
                ))),
                _ => Stage::Plain(conv_bn(c_in, c_out, 3, 1, vb)?),
            });
            c_in = c_out;
        }
        Ok(Self { stages })
    }

    /// The stages for scoring on `backend`: every batch norm folded into its conv (running
    /// statistics, [`ConvBn::folded`]), then on the CPU engine's kernels (bias, residual and
    /// ReLU fused into each conv; `threads` per GEMM) or candle's ops. Gives
    /// [`Self::forward_t`]`(x, false)`'s output.
    pub fn on_backend(
        &self,
        backend: Backend,
        threads: usize,
    ) -> candle_core::Result<Stages<InferConv>> {
        self.map(|c| {
            let f = c.folded(CudaKernels::default())?;
            Ok(match backend {
                Backend::Engine => InferConv::Engine(EngineConv::from_folded(&f, threads)?),
                Backend::Candle => InferConv::Candle(f),
            })
        })
    }

    /// Every weight and batch-norm statistic, named as `new` reads them.
    pub fn named_tensors(&self, out: &mut Vec<(String, Tensor)>) {
        for (i, stage) in self.stages.iter().enumerate() {
            let p = format!("blocks.{i}");
            match stage {
                Stage::Plain(c) => conv_bn_tensors(c, &p, out),
                Stage::Inverted(pair) => {
                    let (down, same) = pair.as_ref();
                    down.named_tensors(&format!("{p}.down"), out);
                    same.named_tensors(&format!("{p}.same"), out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn stages(backbone: Backbone, channels: &[usize]) -> (VarMap, Stages) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let s = Stages::new(backbone, channels, vb).unwrap();
        (vm, s)
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(Backbone::parse("plain").unwrap(), Backbone::Plain);
        assert_eq!(Backbone::parse("mobilenet").unwrap(), Backbone::MobileNet);
        assert!(Backbone::parse("resnet").is_err());
        for b in [Backbone::Plain, Backbone::MobileNet] {
            assert_eq!(Backbone::parse(b.name()).unwrap(), b);
        }
    }

    #[test]
    fn every_stage_halves_time_and_frequency() {
        let x = Tensor::randn(0f32, 1.0, (2, 1, 32, 16), &Device::Cpu).unwrap();
        for b in [Backbone::Plain, Backbone::MobileNet] {
            let (_, s) = stages(b, &[4, 8, 12]);
            let y = s.forward_t(&x, false).unwrap();
            assert_eq!(y.dims(), &[2, 12, 4, 2], "{b:?}");
        }
    }

    #[test]
    fn named_tensors_are_exactly_the_trained_variables() {
        for b in [Backbone::Plain, Backbone::MobileNet] {
            let (vm, s) = stages(b, &[4, 8]);
            let mut named = Vec::new();
            s.named_tensors(&mut named);
            let mut got: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
            got.sort();
            let data = vm.data().lock().unwrap();
            let mut want: Vec<String> = data.keys().cloned().collect();
            want.sort();
            assert_eq!(got, want, "{b:?}");
        }
        // MobileNet: the second stage is two inverted residuals with a depthwise conv each.
        let (vm, _) = stages(Backbone::MobileNet, &[4, 8]);
        let data = vm.data().lock().unwrap();
        let dw = &data["blocks.1.down.depthwise.conv.weight"];
        assert_eq!(dw.dims(), &[4 * EXPANSION, 1, 3, 3]);
        assert_eq!(
            data["blocks.1.same.project.conv.weight"].dims(),
            &[8, 8 * EXPANSION, 1, 1]
        );
    }

    #[test]
    fn folded_stages_score_like_the_batch_norm_graph() {
        let x = Tensor::randn(0f32, 1.0, (2, 1, 16, 16), &Device::Cpu).unwrap();
        for b in [Backbone::Plain, Backbone::MobileNet] {
            let (vm, s) = stages(b, &[4, 8, 12]);
            // Batch-norm statistics and affine parameters far from the identity, so a fold
            // that dropped or misplaced any of them would change the output.
            for (i, (name, var)) in vm.data().lock().unwrap().iter().enumerate() {
                if name.contains(".bn") || name.starts_with("blocks.0.bn") {
                    let n = var.elem_count();
                    let v: Vec<f32> = (0..n)
                        .map(|j| 0.5 + ((i * 7 + j * 3) % 11) as f32 / 10.0)
                        .collect();
                    let signed = name.ends_with("bias") || name.ends_with("running_mean");
                    let v: Vec<f32> = if signed {
                        v.iter().map(|a| a - 1.0).collect()
                    } else {
                        v
                    };
                    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                }
            }
            let want = s.forward_t(&x, false).unwrap();
            let scale = want.abs().unwrap().max_all().unwrap();
            let m = scale.to_scalar::<f32>().unwrap();
            assert!(m > 0.1, "{b:?}: max value {m}");
            for backend in [Backend::Candle, Backend::Engine] {
                let got = s
                    .on_backend(backend, 1)
                    .unwrap()
                    .forward_t(&x, false)
                    .unwrap();
                assert_eq!(got.dims(), want.dims());
                let diff = (got - &want).unwrap().abs().unwrap().max_all().unwrap();
                let d = diff.to_scalar::<f32>().unwrap();
                assert!(
                    d <= 1e-5 * m,
                    "{b:?} on {backend:?}: max diff {d}, max value {m}"
                );
            }
        }
    }

    #[test]
    fn the_shape_keeping_block_adds_its_input() {
        // With the projection's batch-norm scale and shift at zero, the residual block is the
        // identity; the pooling block (no residual) gives zeros.
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let same = InvertedResidual::new(4, 4, false, vb.pp("same")).unwrap();
        let down = InvertedResidual::new(4, 4, true, vb.pp("down")).unwrap();
        for (name, var) in vm.data().lock().unwrap().iter() {
            if name.ends_with("project.bn.weight") {
                var.set(&var.zeros_like().unwrap()).unwrap();
            }
        }
        let x = Tensor::randn(0f32, 1.0, (1, 4, 6, 6), &Device::Cpu).unwrap();
        let y = same.forward_t(&x, false).unwrap();
        let diff = (y - &x).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let z = down.forward_t(&x, false).unwrap();
        assert_eq!(z.dims(), &[1, 4, 3, 3]);
        let m = z
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(m < 1e-6);
    }
}
