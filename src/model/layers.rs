//! The network's convolution layers, one kind per use, all behind [`ConvLayer`] so that one
//! [`super::net::Net`] runs every backend:
//! - [`ConvBn`]: convolution + BatchNorm with autograd (training);
//! - [`FoldedConv`]: BatchNorm folded, run with candle's ops on any device (the `candle` backend);
//! - [`EngineConv`]: the same folded weights run by the CPU engine's GEMM kernels with a fused
//!   bias/residual/ReLU epilogue (the `engine` backend).
//!
//! BatchNorm is folded in one place ([`FoldedConv::fold`], one [`BN_EPS`]); an [`EngineConv`] is
//! made from a [`FoldedConv`], never folded again.

use crate::kernels::cpu_conv::{ConvSpec, GemmConv, Scratch};
use candle_core::{DType, Device, ModuleT, Storage, Tensor};
use candle_nn::BatchNorm;
use std::cell::RefCell;

/// BatchNorm epsilon of torchvision's ResNets.
pub const BN_EPS: f64 = 1e-5;

/// A convolution (with its normalisation) that can run and can be cut down to some branches.
pub trait ConvLayer: Sized + Send + Sync {
    /// Apply the layer. `train` selects batch statistics for BatchNorm layers.
    fn run(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.run_act(x, train, None, false)
    }
    /// Keep only the output-row groups `units` of a tensor stacked over `n` groups. Grouped
    /// layers then run with `groups = units.len()`.
    fn select_units(&self, units: &[usize], n: usize) -> candle_core::Result<Self>;
    /// `relu?(conv(x) + residual?)`: the layer with an optional residual add and ReLU, fused
    /// where the layer can.
    fn run_act(
        &self,
        x: &Tensor,
        train: bool,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> candle_core::Result<Tensor>;
}

/// `relu?(y + residual?)` with candle's ops.
fn add_relu(y: Tensor, residual: Option<&Tensor>, relu: bool) -> candle_core::Result<Tensor> {
    let y = match residual {
        Some(r) => (y + r)?,
        None => y,
    };
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// Row indices `u*r..(u+1)*r` for every unit `u`, as a u32 tensor for `index_select`.
pub fn unit_rows(
    units: &[usize],
    rows_per_unit: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let idx: Vec<u32> = units
        .iter()
        .flat_map(|&u| (u * rows_per_unit..(u + 1) * rows_per_unit).map(|r| r as u32))
        .collect();
    Tensor::from_vec(idx, units.len() * rows_per_unit, device)
}

fn rows_of(t: &Tensor, units: &[usize], n: usize) -> candle_core::Result<Tensor> {
    let r = t.dim(0)? / n.max(1);
    t.index_select(&unit_rows(units, r, t.device())?, 0)
}

/// A convolution. 1x1 convs (most of the network) run as ONE batched matmul over the groups,
/// because candle's grouped `conv2d` runs one conv per group and then concatenates, a loop
/// whose overhead grows with the number of branches; kxk convs on the CPU run as im2col +
/// matmul ([`crate::kernels::im2col_op`]), whose backward pass is GEMMs too.
pub fn conv(
    x: &Tensor,
    w: &Tensor,
    pad: usize,
    stride: usize,
    groups: usize,
) -> candle_core::Result<Tensor> {
    let (cout, cin_g, kh, kw) = w.dims4()?;
    let depthwise = cin_g == 1 && groups == cout && x.dim(1)? == cout;
    if depthwise && kh == kw && kh % 2 == 1 && kh > 1 && pad == kh / 2 && stride == 1 {
        // One filter per channel: per-plane shifted multiply-adds beat a GEMM per channel.
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            return crate::kernels::depthwise::depthwise_conv(x, w);
        }
    }
    if kh != 1 || kw != 1 || pad != 0 {
        // On the CPU, im2col + matmul: candle's conv2d backward is far slower than a GEMM.
        if x.device().is_cpu() && x.dtype() == DType::F32 && kh == kw {
            return crate::kernels::im2col_op::conv_im2col(x, w, pad, stride, groups);
        }
        return x.conv2d(w, pad, stride, 1, groups);
    }
    let x = subsample(x, stride)?;
    let (b, cin, h, wd) = x.dims4()?;
    if cin != cin_g * groups || cout % groups != 0 {
        candle_core::bail!(
            "grouped conv: input has {cin} channels, weight {:?} with {groups} groups",
            w.dims()
        );
    }
    let xs = x.reshape((b, groups, cin_g, h * wd))?;
    let ws = w.reshape((1, groups, cout / groups, cin_g))?;
    ws.broadcast_matmul(&xs)?.reshape((b, cout, h, wd))
}

/// Every `stride`-th row and column (what a 1x1 conv with that stride and no padding reads).
fn subsample(x: &Tensor, stride: usize) -> candle_core::Result<Tensor> {
    if stride == 1 {
        return Ok(x.clone());
    }
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = (h.div_ceil(stride), w.div_ceil(stride));
    let x = x
        .pad_with_zeros(2, 0, ho * stride - h)?
        .pad_with_zeros(3, 0, wo * stride - w)?;
    let x = x
        .reshape((b, c, ho, stride, wo * stride))?
        .narrow(3, 0, 1)?
        .squeeze(3)?;
    x.reshape((b, c, ho, wo, stride))?
        .narrow(4, 0, 1)?
        .squeeze(4)
}

/// Convolution followed by BatchNorm: the autograd path.
#[derive(Debug, Clone)]
pub struct ConvBn {
    /// Conv weight `[cout, cin/groups, kh, kw]` (no bias: BN follows).
    pub weight: Tensor,
    /// The BatchNorm; in train mode it updates its running statistics.
    pub bn: BatchNorm,
    /// Spatial stride.
    pub stride: usize,
    /// Zero padding.
    pub pad: usize,
    /// Groups the conv runs with.
    pub groups: usize,
    /// Whether the conv is grouped over branches (so a cutout sets groups = active branches).
    pub grouped: bool,
    /// The dtype the convolution computes in (mixed precision): F32, or BF16/F16 with the
    /// input and the f32 weight cast down for the conv and its output cast back to f32 for
    /// BatchNorm, as autocast does. Gradients flow back through the casts to the f32 weight.
    pub compute: DType,
    /// Training-mode BatchNorm runs as [`crate::kernels::bn_train`]'s fused op where it applies
    /// (false: candle's layer, for A/B measurements).
    pub fused_bn: bool,
}

impl ConvBn {
    /// The conv weight `{conv}.weight` of `shape` (`[cout, cin/groups, k, k]`, Kaiming-normal
    /// when created) and the BatchNorm under `bn`, read from (or created in) `vb`.
    pub fn load_weights(
        vb: &candle_nn::VarBuilder,
        conv: &str,
        shape: &[usize],
        bn: &str,
    ) -> candle_core::Result<(Tensor, BatchNorm)> {
        let weight = vb.get_with_hints(
            shape.to_vec(),
            &format!("{conv}.weight"),
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let cout = *shape
            .first()
            .ok_or_else(|| candle_core::Error::Msg(format!("{conv}: empty weight shape")))?;
        Ok((weight, candle_nn::batch_norm(cout, BN_EPS, vb.pp(bn))?))
    }

    /// The conv weight and BatchNorm tensors (running statistics included) under the names
    /// [`Self::load_weights`] reads.
    pub fn push_tensors(&self, conv: &str, bn: &str, out: &mut impl Extend<(String, Tensor)>) {
        out.extend([(format!("{conv}.weight"), self.weight.clone())]);
        if let Some((w, b)) = self.bn.weight_and_bias() {
            out.extend([
                (format!("{bn}.weight"), w.clone()),
                (format!("{bn}.bias"), b.clone()),
            ]);
        }
        out.extend([
            (format!("{bn}.running_mean"), self.bn.running_mean().clone()),
            (format!("{bn}.running_var"), self.bn.running_var().clone()),
        ]);
    }

    /// This layer for inference: its BatchNorm (running statistics) folded into the conv
    /// ([`FoldedConv::fold`]), same stride, padding and groups.
    pub fn folded(&self, cuda: CudaKernels) -> candle_core::Result<FoldedConv> {
        let (gamma, beta) = self.bn.weight_and_bias().ok_or_else(|| {
            candle_core::Error::Msg("cannot fold a BatchNorm without affine parameters".into())
        })?;
        FoldedConv::fold(
            &self.weight,
            gamma,
            beta,
            self.bn.running_mean(),
            self.bn.running_var(),
            self.stride,
            self.pad,
            self.groups,
            self.grouped,
            cuda,
        )
    }

    /// The convolution alone, in [`Self::compute`] precision, output in the BatchNorm's dtype.
    fn conv_only(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let f = self.bn.running_mean().dtype();
        let c = self.compute;
        let y = if c == x.dtype() && c == self.weight.dtype() {
            conv(x, &self.weight, self.pad, self.stride, self.groups)?
        } else if x.device().is_cpu() {
            // candle's CPU backend has no bf16 GEMM: round the operands and the result to
            // `c` around an f32 conv (what tensor cores do: low-precision inputs, f32
            // accumulation). The casts' backward rounds the gradients the same way.
            let round = |t: &Tensor| t.to_dtype(c)?.to_dtype(f);
            round(&conv(
                &round(x)?,
                &round(&self.weight)?,
                self.pad,
                self.stride,
                self.groups,
            )?)?
        } else {
            conv(
                &x.to_dtype(c)?,
                &self.weight.to_dtype(c)?,
                self.pad,
                self.stride,
                self.groups,
            )?
            .to_dtype(f)?
        };
        Ok(y)
    }
}

impl ConvLayer for ConvBn {
    /// `relu?(bn(conv(x)) + residual?)`: in training on the CPU one fused op after the conv.
    fn run_act(
        &self,
        x: &Tensor,
        train: bool,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        let y = self.conv_only(x)?;
        if train && self.fused_bn && crate::kernels::bn_train::fused_bn_applies(&y) {
            return crate::kernels::bn_train::bn_train(&y, &self.bn, residual, relu);
        }
        add_relu(self.bn.forward_t(&y, train)?, residual, relu)
    }

    fn select_units(&self, units: &[usize], n: usize) -> candle_core::Result<Self> {
        // A cut-down BatchNorm holds copies of the running statistics: training a cutout does
        // not update the full model's statistics (the paper trains on all classes).
        let (w, b) = self.bn.weight_and_bias().ok_or_else(|| {
            candle_core::Error::Msg("branch BatchNorm without affine parameters".into())
        })?;
        let bn = BatchNorm::new(
            units.len() * (self.weight.dim(0)? / n.max(1)),
            rows_of(self.bn.running_mean(), units, n)?,
            rows_of(self.bn.running_var(), units, n)?,
            rows_of(w, units, n)?,
            rows_of(b, units, n)?,
            self.bn.eps(),
        )?;
        Ok(ConvBn {
            weight: rows_of(&self.weight, units, n)?,
            bn,
            groups: if self.grouped { units.len() } else { 1 },
            ..self.clone()
        })
    }
}

/// Which of our CUDA kernels the candle backend uses (both on by default; off gives candle's
/// own ops, for A/B measurements). Ignored on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaKernels {
    /// kxk convs as one im2col + one GEMM for all groups ([`crate::kernels::cuda_conv`]);
    /// false: candle's `conv2d`, one per group.
    pub own_conv: bool,
    /// Bias, residual and ReLU in one kernel; false: three candle ops.
    pub fused_epilogue: bool,
}

impl Default for CudaKernels {
    fn default() -> Self {
        CudaKernels {
            own_conv: true,
            fused_epilogue: true,
        }
    }
}

/// Convolution with BatchNorm folded into its weight and bias, run with candle's ops.
#[derive(Debug, Clone)]
pub struct FoldedConv {
    /// `weight * gamma / sqrt(var + eps)`, per output channel.
    pub weight: Tensor,
    /// `beta - mean * gamma / sqrt(var + eps)`, shaped `[1, cout, 1, 1]`.
    pub bias: Tensor,
    /// Spatial stride.
    pub stride: usize,
    /// Zero padding.
    pub pad: usize,
    /// Groups the conv runs with.
    pub groups: usize,
    /// Whether the conv is grouped over branches.
    pub grouped: bool,
    /// Which CUDA kernels run it on a GPU.
    pub cuda: CudaKernels,
}

impl FoldedConv {
    /// Fold BN `(gamma, beta, mean, var)` into a bias-free conv weight: the one BatchNorm fold.
    #[allow(clippy::too_many_arguments)]
    pub fn fold(
        weight: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        stride: usize,
        pad: usize,
        groups: usize,
        grouped: bool,
        cuda: CudaKernels,
    ) -> candle_core::Result<Self> {
        let cout = weight.dim(0)?;
        let scale = gamma.broadcast_div(&(var + BN_EPS)?.sqrt()?)?;
        let w = weight.broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?;
        let b = (beta - mean.mul(&scale)?)?.reshape((1, cout, 1, 1))?;
        Ok(FoldedConv {
            weight: w,
            bias: b,
            stride,
            pad,
            groups,
            grouped,
            cuda,
        })
    }

    /// The convolution without bias: [`conv`], or our CUDA kernel for square kxk f32 convs.
    fn conv(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        #[cfg(feature = "cuda")]
        {
            let (_, _, kh, kw) = self.weight.dims4()?;
            if self.cuda.own_conv
                && x.device().is_cuda()
                && x.dtype() == DType::F32
                && kh == kw
                && kh > 1
            {
                return crate::kernels::cuda_conv::conv_cuda(
                    x,
                    &self.weight,
                    self.pad,
                    self.stride,
                    self.groups,
                );
            }
        }
        conv(x, &self.weight, self.pad, self.stride, self.groups)
    }
}

impl ConvLayer for FoldedConv {
    fn run_act(
        &self,
        x: &Tensor,
        _train: bool,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        let y = self.conv(x)?;
        #[cfg(feature = "cuda")]
        if self.cuda.fused_epilogue && x.device().is_cuda() && x.dtype() == DType::F32 {
            return crate::kernels::cuda_conv::bias_residual_act(y, &self.bias, residual, relu);
        }
        add_relu(y.broadcast_add(&self.bias)?, residual, relu)
    }

    fn select_units(&self, units: &[usize], n: usize) -> candle_core::Result<Self> {
        let r = self.weight.dim(0)? / n.max(1);
        let rows = unit_rows(units, r, self.weight.device())?;
        Ok(FoldedConv {
            weight: self.weight.index_select(&rows, 0)?,
            bias: self.bias.index_select(&rows, 1)?,
            groups: if self.grouped { units.len() } else { 1 },
            ..self.clone()
        })
    }
}

thread_local! {
    /// im2col buffer reused by every [`EngineConv`] on this thread (one forward pass at a time).
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A folded convolution run by the CPU engine ([`GemmConv`]): the `engine` backend's layer.
/// Reads and writes CPU f32 tensors in place of candle's conv, bias, add and ReLU.
#[derive(Debug, Clone)]
pub struct EngineConv {
    /// The kernel with its packed weights.
    pub kernel: GemmConv,
    /// Threads each GEMM may use.
    pub threads: usize,
    /// Whether the conv is grouped over branches.
    pub grouped: bool,
}

impl EngineConv {
    /// The engine form of a folded conv (same weights, copied to the CPU).
    pub fn from_folded(f: &FoldedConv, threads: usize) -> candle_core::Result<Self> {
        let (out_c, in_per_group, k, kw) = f.weight.dims4()?;
        if k != kw {
            candle_core::bail!("the engine runs square kernels only, got {k}x{kw}");
        }
        let spec = ConvSpec {
            in_c: in_per_group * f.groups,
            out_c,
            kernel: k,
            stride: f.stride,
            pad: f.pad,
            groups: f.groups,
        };
        let weight = f.weight.flatten_all()?.to_vec1::<f32>()?;
        let bias = f.bias.flatten_all()?.to_vec1::<f32>()?;
        let kernel = GemmConv::new(spec, weight, bias).map_err(msg)?;
        Ok(EngineConv {
            kernel,
            threads: threads.max(1),
            grouped: f.grouped,
        })
    }
}

fn msg(e: crate::Error) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// The contiguous f32 values of a CPU tensor.
pub(crate) fn cpu_f32<'a>(
    s: &'a Storage,
    t: &Tensor,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let Storage::Cpu(cpu) = s else {
        candle_core::bail!(
            "{what}: the engine runs on the CPU, got a {:?} tensor",
            t.device()
        )
    };
    crate::kernels::im2col_op::f32_slice(cpu, t.layout(), what)
}

impl ConvLayer for EngineConv {
    fn run_act(
        &self,
        x: &Tensor,
        _train: bool,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        let s = self.kernel.spec;
        let (b, c, h, w) = x.dims4()?;
        if c != s.in_c {
            candle_core::bail!("conv expects {} input channels, got {c}", s.in_c);
        }
        let (ho, wo) = self.kernel.checked_out_hw(h, w).map_err(msg)?;
        let (per_in, per_out) = (c * h * w, s.out_c * ho * wo);
        let x = x.contiguous()?;
        let residual = residual.map(Tensor::contiguous).transpose()?;
        if let Some(r) = &residual {
            if r.dims() != [b, s.out_c, ho, wo] {
                candle_core::bail!(
                    "residual {:?} does not match the conv output {:?}",
                    r.dims(),
                    [b, s.out_c, ho, wo]
                );
            }
        }
        let (xs, _) = x.storage_and_layout();
        let xd = cpu_f32(&xs, &x, "engine conv input")?;
        let rs = residual.as_ref().map(|r| (r.storage_and_layout().0, r));
        let rd = match &rs {
            Some((st, r)) => Some(cpu_f32(st, r, "engine conv residual")?),
            None => None,
        };
        // SAFETY: `forward_slice` writes every output value (GEMM without reading its
        // destination, or the depthwise pass) before its epilogue reads them.
        let out = unsafe {
            crate::kernels::written_vec(b * per_out, |out| {
                SCRATCH.with(|scratch| -> candle_core::Result<()> {
                    let mut scratch = scratch.borrow_mut();
                    for i in 0..b {
                        self.kernel
                            .forward_slice(
                                &xd[i * per_in..(i + 1) * per_in],
                                h,
                                w,
                                rd.map(|r| &r[i * per_out..(i + 1) * per_out]),
                                relu,
                                self.threads,
                                &mut scratch,
                                &mut out[i * per_out..(i + 1) * per_out],
                            )
                            .map_err(msg)?;
                    }
                    Ok(())
                })
            })?
        };
        Tensor::from_vec(out, (b, s.out_c, ho, wo), x.device())
    }

    fn select_units(&self, units: &[usize], n: usize) -> candle_core::Result<Self> {
        let s = self.kernel.spec;
        let n = n.max(1);
        let (og, kg) = (s.out_c / n, s.k_per_group());
        let mut weight = Vec::with_capacity(units.len() * og * kg);
        let mut bias = Vec::with_capacity(units.len() * og);
        for &u in units {
            if u >= n {
                candle_core::bail!("branch {u} out of range (the layer has {n})");
            }
            weight.extend_from_slice(&self.kernel.weight[u * og * kg..(u + 1) * og * kg]);
            bias.extend_from_slice(&self.kernel.bias[u * og..(u + 1) * og]);
        }
        let spec = ConvSpec {
            in_c: if self.grouped {
                s.in_c / n * units.len()
            } else {
                s.in_c
            },
            out_c: og * units.len(),
            groups: if self.grouped { units.len() } else { 1 },
            ..s
        };
        Ok(EngineConv {
            kernel: GemmConv::new(spec, weight, bias).map_err(msg)?,
            ..self.clone()
        })
    }
}

/// An inference layer on one of the two backends (every layer of a model uses the same one).
#[derive(Debug, Clone)]
pub enum InferConv {
    /// candle's ops (any device).
    Candle(FoldedConv),
    /// The CPU engine.
    Engine(EngineConv),
}

impl ConvLayer for InferConv {
    fn run_act(
        &self,
        x: &Tensor,
        train: bool,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        match self {
            InferConv::Candle(c) => c.run_act(x, train, residual, relu),
            InferConv::Engine(c) => c.run_act(x, train, residual, relu),
        }
    }

    fn select_units(&self, units: &[usize], n: usize) -> candle_core::Result<Self> {
        Ok(match self {
            InferConv::Candle(c) => InferConv::Candle(c.select_units(units, n)?),
            InferConv::Engine(c) => InferConv::Engine(c.select_units(units, n)?),
        })
    }
}
