//! Layers shared by both forward paths: conv+BN (autograd), folded conv (inference), residual
//! blocks generic over either, and the classifier head.

use candle_core::{DType, Device, Module, ModuleT, Tensor, D};
use candle_nn::BatchNorm;

/// BatchNorm epsilon of torchvision's ResNets.
pub const BN_EPS: f64 = 1e-5;

/// A convolution (with its normalisation) that can run and can be cut down to some branches.
pub trait ConvLayer: Sized + Send + Sync {
    /// Apply the layer. `train` selects batch statistics for BatchNorm layers.
    fn run(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor>;
    /// Keep only the output-row groups `units` of a tensor stacked over `n` groups. Grouped
    /// layers then run with `groups = units.len()`.
    fn select_units(&self, units: &[usize], n: usize) -> candle_core::Result<Self>;
    /// `relu?(run(x) + residual?)`: the layer with an optional residual add and ReLU. Layers
    /// that can fuse these into fewer passes over memory override it.
    fn run_act(
        &self,
        x: &Tensor,
        train: bool,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        add_relu(self.run(x, train)?, residual, relu)
    }
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
/// matmul ([`super::im2col`]), whose backward pass is GEMMs too.
pub fn conv(
    x: &Tensor,
    w: &Tensor,
    pad: usize,
    stride: usize,
    groups: usize,
) -> candle_core::Result<Tensor> {
    let (cout, cin_g, kh, kw) = w.dims4()?;
    if kh != 1 || kw != 1 || pad != 0 {
        // On the CPU, im2col + matmul: candle's conv2d backward is far slower than a GEMM.
        if x.device().is_cpu() && x.dtype() == DType::F32 && kh == kw {
            return super::im2col::conv_im2col(x, w, pad, stride, groups);
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
}

/// Whether training-mode BatchNorm runs as [`super::bn_train`]'s fused op where it applies;
/// `HLFP_TRAIN_BN=candle` selects candle's layer instead (an A/B switch for measurements).
fn fused_train_bn() -> bool {
    static FUSED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    switch_on("HLFP_TRAIN_BN", "candle", &FUSED)
}

impl ConvBn {
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

    /// `relu?(bn(conv(x)) + residual?)`: in training on the CPU one fused op after the conv.
    fn run_bn(
        &self,
        x: &Tensor,
        train: bool,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        let y = self.conv_only(x)?;
        if train && super::bn_train::fused_bn_applies(&y) && fused_train_bn() {
            return super::bn_train::bn_train(&y, &self.bn, residual, relu);
        }
        add_relu(self.bn.forward_t(&y, train)?, residual, relu)
    }
}

impl ConvLayer for ConvBn {
    fn run(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.run_bn(x, train, None, false)
    }

    fn run_act(
        &self,
        x: &Tensor,
        train: bool,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        self.run_bn(x, train, residual, relu)
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
            stride: self.stride,
            pad: self.pad,
            groups: if self.grouped { units.len() } else { 1 },
            grouped: self.grouped,
            compute: self.compute,
        })
    }
}

/// Convolution with BatchNorm folded into its weight and bias: the inference path.
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
}

impl FoldedConv {
    /// Fold BN `(gamma, beta, mean, var)` into a bias-free conv weight.
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
        })
    }
}

/// Whether the environment variable `var` is unset or set to anything but `off_value`, read once
/// per variable: the A/B switches that compare two implementations in one build.
/// `HLFP_TRAIN_BN=candle` trains with candle's BatchNorm instead of the fused op;
/// `HLFP_CUDA_EPILOGUE=unfused` runs bias, residual and ReLU as three candle ops instead of
/// [`super::cuda_conv::bias_residual_act`]; `HLFP_CUDA_CONV=candle` runs kxk convs with candle's
/// `conv2d` (one per group) instead of [`super::cuda_conv`] (one im2col and one GEMM per layer
/// for all groups).
fn switch_on(var: &'static str, off_value: &str, cell: &std::sync::OnceLock<bool>) -> bool {
    *cell.get_or_init(|| std::env::var(var).map_or(true, |v| v != off_value))
}

#[cfg(feature = "cuda")]
fn fused_cuda_epilogue() -> bool {
    static FUSED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    switch_on("HLFP_CUDA_EPILOGUE", "unfused", &FUSED)
}

#[cfg(feature = "cuda")]
fn own_cuda_conv() -> bool {
    static OWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    switch_on("HLFP_CUDA_CONV", "candle", &OWN)
}

/// The inference convolution: [`conv`], except square kxk f32 convs on CUDA.
fn conv_inference(
    x: &Tensor,
    w: &Tensor,
    pad: usize,
    stride: usize,
    groups: usize,
) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    {
        let (_, _, kh, kw) = w.dims4()?;
        if x.device().is_cuda() && x.dtype() == DType::F32 && kh == kw && kh > 1 && own_cuda_conv()
        {
            return super::cuda_conv::conv_cuda(x, w, pad, stride, groups);
        }
    }
    conv(x, w, pad, stride, groups)
}

impl ConvLayer for FoldedConv {
    fn run(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        conv_inference(x, &self.weight, self.pad, self.stride, self.groups)?
            .broadcast_add(&self.bias)
    }

    fn run_act(
        &self,
        x: &Tensor,
        train: bool,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() && x.dtype() == DType::F32 && fused_cuda_epilogue() {
            let y = conv_inference(x, &self.weight, self.pad, self.stride, self.groups)?;
            return super::cuda_conv::bias_residual_act(y, &self.bias, residual, relu);
        }
        add_relu(self.run(x, train)?, residual, relu)
    }

    fn select_units(&self, units: &[usize], n: usize) -> candle_core::Result<Self> {
        let r = self.weight.dim(0)? / n.max(1);
        let rows = unit_rows(units, r, self.weight.device())?;
        Ok(FoldedConv {
            weight: self.weight.index_select(&rows, 0)?,
            bias: self.bias.index_select(&rows, 1)?,
            stride: self.stride,
            pad: self.pad,
            groups: if self.grouped { units.len() } else { 1 },
            grouped: self.grouped,
        })
    }
}

/// A residual block: `convs` with ReLU between them, plus the shortcut, then ReLU.
#[derive(Debug, Clone)]
pub struct Block<L> {
    /// Main path (3 convs for a bottleneck, 2 for a basic block).
    pub convs: Vec<L>,
    /// Projection shortcut; identity when `None`.
    pub downsample: Option<L>,
}

impl<L: ConvLayer> Block<L> {
    /// Run the block.
    pub fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let shortcut = match &self.downsample {
            Some(d) => d.run(x, train)?,
            None => x.clone(),
        };
        let mut h = x.clone();
        let last = self.convs.len().saturating_sub(1);
        for (i, c) in self.convs.iter().enumerate() {
            // The last conv adds the shortcut; every conv ends with ReLU.
            h = c.run_act(&h, train, (i == last).then_some(&shortcut), true)?;
        }
        Ok(h)
    }

    /// The block cut down to the row groups `units` of `n`.
    pub fn select_units(&self, units: &[usize], n: usize) -> candle_core::Result<Self> {
        Ok(Block {
            convs: self
                .convs
                .iter()
                .map(|c| c.select_units(units, n))
                .collect::<candle_core::Result<_>>()?,
            downsample: self
                .downsample
                .as_ref()
                .map(|d| d.select_units(units, n))
                .transpose()?,
        })
    }
}

/// Stem: conv 7x7/2 (+BN), ReLU, max-pool 3x3/2 with padding 1.
pub fn stem_forward<L: ConvLayer>(
    stem: &L,
    x: &Tensor,
    train: bool,
) -> candle_core::Result<Tensor> {
    // After ReLU every value is >= 0, so zero padding gives the same max as PyTorch's -inf padding.
    let h = stem
        .run_act(x, train, None, true)?
        .pad_with_zeros(2, 1, 1)?
        .pad_with_zeros(3, 1, 1)?;
    if train {
        max_pool_3x3_s2_differentiable(&h)
    } else {
        h.max_pool2d_with_stride(3, 2)
    }
}

/// 3x3/2 max-pool (no padding) built from strided views and `maximum`, because candle's
/// `max_pool2d` has no backward pass when kernel != stride. Same values as `max_pool2d`.
fn max_pool_3x3_s2_differentiable(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = ((h - 3) / 2 + 1, (w - 3) / 2 + 1);
    // Pad so that every offset 0..3 has 2*out rows/cols to view as (out, 2) pairs.
    let x = x
        .pad_with_zeros(2, 0, (2 + 2 * ho).saturating_sub(h))?
        .pad_with_zeros(3, 0, (2 + 2 * wo).saturating_sub(w))?;
    let wp = x.dim(3)?;
    let mut out: Option<Tensor> = None;
    for dy in 0..3 {
        let rows = x
            .narrow(2, dy, 2 * ho)?
            .reshape((b, c, ho, 2, wp))?
            .narrow(3, 0, 1)?
            .squeeze(3)?;
        for dx in 0..3 {
            let v = rows
                .narrow(3, dx, 2 * wo)?
                .reshape((b, c, ho, wo, 2))?
                .narrow(4, 0, 1)?
                .squeeze(4)?;
            out = Some(match out {
                None => v,
                Some(o) => o.maximum(&v)?,
            });
        }
    }
    out.ok_or_else(|| candle_core::Error::Msg("empty pool".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_1x1_matmul_equals_conv2d() {
        for (h, stride, groups) in [(8, 1, 3), (7, 2, 4), (6, 2, 1), (5, 3, 2)] {
            let (b, cin_g, cout_g) = (2, 3, 5);
            let xv: Vec<f32> = (0..b * groups * cin_g * h * h)
                .map(|i| ((i * 13 % 29) as f32).cos())
                .collect();
            let wv: Vec<f32> = (0..groups * cout_g * cin_g)
                .map(|i| ((i * 7 % 17) as f32).sin())
                .collect();
            let x = Tensor::from_vec(xv, (b, groups * cin_g, h, h), &Device::Cpu).unwrap();
            let w = Tensor::from_vec(wv, (groups * cout_g, cin_g, 1, 1), &Device::Cpu).unwrap();
            let a = x.conv2d(&w, 0, stride, 1, groups).unwrap();
            let c = conv(&x, &w, 0, stride, groups).unwrap();
            assert_eq!(a.dims(), c.dims());
            let d: f32 = (a - c)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(d < 1e-5, "{h} {stride} {groups}: {d}");
        }
    }

    #[test]
    fn differentiable_pool_equals_max_pool2d() {
        for (h, w) in [(8, 8), (9, 7), (16, 11)] {
            let n = 2 * 3 * h * w;
            let v: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32).sin()).collect();
            let x = Tensor::from_vec(v, (2, 3, h, w), &Device::Cpu).unwrap();
            let a = x.max_pool2d_with_stride(3, 2).unwrap();
            let b = max_pool_3x3_s2_differentiable(&x).unwrap();
            assert_eq!(a.dims(), b.dims());
            let d: f32 = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(d, 0.0);
        }
    }
}

/// The classifier on pooled features.
#[derive(Debug, Clone)]
pub struct Head {
    /// `[rows, in_features]`.
    pub weight: Tensor,
    /// `[rows]`.
    pub bias: Tensor,
    /// HLFP: row `i` only sees branch `i`'s features (a per-branch dot product).
    pub per_branch: bool,
}

impl Head {
    /// Logits `[B, rows]` from pooled features `[B, rows * in]` (per-branch) or `[B, in]`.
    pub fn forward(&self, pooled: &Tensor) -> candle_core::Result<Tensor> {
        if self.per_branch {
            let (n, c) = self.weight.dims2()?;
            let b = pooled.dim(0)?;
            // All branch heads as one broadcast multiply and one reduction, not a loop.
            pooled
                .reshape((b, n, c))?
                .broadcast_mul(&self.weight.unsqueeze(0)?)?
                .sum(D::Minus1)?
                .broadcast_add(&self.bias)
        } else {
            candle_nn::Linear::new(self.weight.clone(), Some(self.bias.clone())).forward(pooled)
        }
    }

    /// Keep the rows of `units` (per-branch heads only; a dense head is returned unchanged).
    pub fn select_units(&self, units: &[usize]) -> candle_core::Result<Self> {
        if !self.per_branch {
            return Ok(self.clone());
        }
        let rows = unit_rows(units, 1, self.weight.device())?;
        Ok(Head {
            weight: self.weight.index_select(&rows, 0)?,
            bias: self.bias.index_select(&rows, 0)?,
            per_branch: true,
        })
    }
}

/// A `[1, n*c, 1, 1]` multiplier that scales each of `n` channel groups of size `c` by its gain.
pub fn gain_tensor(gains: &[f32], c: usize, device: &Device) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = gains
        .iter()
        .flat_map(|&g| std::iter::repeat_n(g, c))
        .collect();
    Tensor::from_vec(v, (1, gains.len() * c, 1, 1), device)?.to_dtype(DType::F32)
}
