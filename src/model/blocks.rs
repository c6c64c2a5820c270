//! Residual blocks generic over their conv layer ([`super::layers`]), the stem and the
//! classifier head: the pieces [`super::net::Net`] is assembled from.

use super::layers::{unit_rows, ConvLayer};
use candle_core::{DType, Device, Module, Tensor, D};

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
    let h = stem.run_act(x, train, None, true)?;
    if !train && h.device().is_cpu() && h.dtype() == DType::F32 {
        return cpu_max_pool(&h);
    }
    // After ReLU every value is >= 0, so zero padding gives the same max as PyTorch's -inf padding.
    let h = h.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    if train {
        max_pool_3x3_s2_differentiable(&h)
    } else {
        h.max_pool2d_with_stride(3, 2)
    }
}

/// The stem's 3x3/2 pad-1 max-pool with the CPU kernel, one image at a time (no padded copy).
fn cpu_max_pool(h: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, hh, ww) = h.dims4()?;
    let h = h.contiguous()?;
    let (storage, _) = h.storage_and_layout();
    let flat = super::layers::cpu_f32(&storage, &h, "stem max-pool")?;
    let mut out = Vec::new();
    let mut one = Vec::new();
    let mut size = (0, 0);
    for img in flat.chunks_exact((c * hh * ww).max(1)) {
        size = crate::kernels::cpu_conv::maxpool3x3s2(img, c, hh, ww, &mut one);
        out.extend_from_slice(&one);
    }
    Tensor::from_vec(out, (b, c, size.0, size.1), h.device())
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
    use super::super::layers::conv;
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
