//! Depthwise kxk convolution (stride 1, "same" zero padding) on the CPU, with autograd.
//!
//! A depthwise conv has one kxk filter per channel. As a grouped im2col + matmul it becomes one
//! tiny (1 x k*k) by (k*k x H*W) product per channel, and candle's grouped `conv2d` runs one
//! conv per channel: both spend their time on bookkeeping. Here each channel plane is k*k
//! shifted multiply-adds over whole rows of a zero-padded copy, in parallel over planes for
//! large inputs ([`correlate_plane`], which the CPU engine's depthwise branch runs too). The
//! backward pass is the
//! same op with the kernel rotated by 180 degrees (input gradient) and a per-channel
//! correlation of input and output gradient ([`DepthwiseWeightGrad`], weight gradient).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::im2col_op::f32_slice;
use super::PARALLEL_MIN_VALUES;

/// `x [B, C, H, W]` (*) `w [C, 1, k, k]` -> `[B, C, H, W]`, odd `k`, padding `k / 2`.
#[derive(Debug, Clone, Copy)]
pub struct Depthwise;

/// Check `x [B, C, H, W]` against `w [C, 1, k, k]` (odd square k); returns `(b, c, h, w, k)`.
fn geometry(xl: &Layout, wl: &Layout) -> candle_core::Result<(usize, usize, usize, usize, usize)> {
    let (b, c, h, w) = xl.shape().dims4()?;
    let (wc, one, kh, kw) = wl.shape().dims4()?;
    if wc != c || one != 1 || kh != kw || kh % 2 == 0 {
        candle_core::bail!(
            "depthwise conv: input {:?} needs a [{c}, 1, k, k] odd square kernel, got {:?}",
            xl.shape(),
            wl.shape()
        );
    }
    Ok((b, c, h, w, kh))
}

/// `out = taps (*) plane` for one channel plane, "same" padding. The plane is first copied
/// into `padded` (zero border of `k / 2`), so every output row is a sum of `k * k` shifted,
/// equal-length row slices with no edge cases: it vectorises, and the 3x3 case (every
/// depthwise conv of the networks here) is one pass with nine multiply-adds per value.
pub(crate) fn correlate_plane(
    plane: &[f32],
    taps: &[f32],
    k: usize,
    (h, w): (usize, usize),
    padded: &mut Vec<f32>,
    out: &mut [f32],
) {
    if h == 0 || w == 0 {
        return;
    }
    let p = k / 2;
    let pw = w + 2 * p;
    padded.clear();
    padded.resize((h + 2 * p) * pw, 0.0);
    for (i, row) in plane.chunks_exact(w).enumerate() {
        padded[(i + p) * pw + p..(i + p) * pw + p + w].copy_from_slice(row);
    }
    for (i, o) in out.chunks_exact_mut(w).enumerate() {
        let row = |ky: usize, kx: usize| &padded[(i + ky) * pw + kx..(i + ky) * pw + kx + w];
        if k == 3 {
            let (a0, a1, a2) = (row(0, 0), row(0, 1), row(0, 2));
            let (b0, b1, b2) = (row(1, 0), row(1, 1), row(1, 2));
            let (c0, c1, c2) = (row(2, 0), row(2, 1), row(2, 2));
            let t = &taps[..9];
            for j in 0..w {
                o[j] = t[0] * a0[j]
                    + t[1] * a1[j]
                    + t[2] * a2[j]
                    + t[3] * b0[j]
                    + t[4] * b1[j]
                    + t[5] * b2[j]
                    + t[6] * c0[j]
                    + t[7] * c1[j]
                    + t[8] * c2[j];
            }
        } else {
            o.fill(0.0);
            for ky in 0..k {
                for kx in 0..k {
                    let t = taps[ky * k + kx];
                    for (oj, v) in o.iter_mut().zip(row(ky, kx)) {
                        *oj += t * v;
                    }
                }
            }
        }
    }
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, c, h, w, k) = geometry(xl, wl)?;
        let x = f32_slice(xs, xl, "depthwise conv input")?;
        let wt = f32_slice(ws, wl, "depthwise conv kernel")?;
        let hw = h * w;
        let mut out = vec![0f32; b * c * hw];
        if hw == 0 {
            return Ok((CpuStorage::F32(out), Shape::from((b, c, h, w))));
        }
        let plane = |padded: &mut Vec<f32>, (bc, (o, x)): (usize, (&mut [f32], &[f32]))| {
            let ch = bc % c;
            correlate_plane(x, &wt[ch * k * k..(ch + 1) * k * k], k, (h, w), padded, o)
        };
        if out.len() < PARALLEL_MIN_VALUES {
            let mut padded = Vec::new();
            out.chunks_mut(hw)
                .zip(x.chunks(hw))
                .enumerate()
                .for_each(|item| plane(&mut padded, item));
        } else {
            out.par_chunks_mut(hw)
                .zip(x.par_chunks(hw))
                .enumerate()
                .for_each_with(Vec::new(), plane);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, c, h, w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // d x = grad (*) rot180(w): stride 1 and symmetric padding make the transpose a
        // correlation with the flipped kernel.
        let (c, _, k, _) = w.dims4()?;
        let flipped: Vec<f32> = w
            .flatten_all()?
            .to_vec1::<f32>()?
            .chunks(k * k)
            .flat_map(|t| t.iter().rev().copied().collect::<Vec<_>>())
            .collect();
        let flipped = Tensor::from_vec(flipped, (c, 1, k, k), w.device())?;
        let dx = grad.apply_op2_no_bwd(&flipped, &Depthwise)?;
        let dw = x
            .contiguous()?
            .apply_op2_no_bwd(&grad, &DepthwiseWeightGrad { kernel: k })?;
        Ok((Some(dx), Some(dw)))
    }
}

/// The weight gradient of [`Depthwise`]: `x [B, C, H, W]`, `grad [B, C, H, W]` ->
/// `[C, 1, k, k]`, entry (c, ky, kx) = sum over b, i, j of grad(i, j) * x(i + ky - p, j + kx - p).
#[derive(Debug, Clone, Copy)]
pub struct DepthwiseWeightGrad {
    /// Kernel side (odd).
    pub kernel: usize,
}

impl CustomOp2 for DepthwiseWeightGrad {
    fn name(&self) -> &'static str {
        "depthwise-conv-weight-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = xl.shape().dims4()?;
        let k = self.kernel;
        if gl.shape().dims() != xl.shape().dims() || k % 2 == 0 {
            candle_core::bail!(
                "depthwise weight gradient: input {:?} and gradient {:?} differ (or even kernel {k})",
                xl.shape(),
                gl.shape()
            );
        }
        let x = f32_slice(xs, xl, "depthwise weight-gradient input")?;
        let g = f32_slice(gs, gl, "depthwise weight-gradient gradient")?;
        let (hw, p) = (h * w, k / 2);
        let mut dw = vec![0f32; c * k * k];
        dw.par_chunks_mut(k * k).enumerate().for_each(|(ch, taps)| {
            for bi in 0..b {
                let off = (bi * c + ch) * hw;
                let (plane, gp) = (&x[off..off + hw], &g[off..off + hw]);
                for ky in 0..k {
                    for kx in 0..k {
                        let (i0, i1) = (p.saturating_sub(ky), (h + p).saturating_sub(ky).min(h));
                        let (j0, j1) = (p.saturating_sub(kx), (w + p).saturating_sub(kx).min(w));
                        if j0 >= j1 {
                            continue;
                        }
                        let mut acc = 0f32;
                        for i in i0..i1 {
                            let src = (i + ky - p) * w + (j0 + kx - p);
                            let n = j1 - j0;
                            acc += gp[i * w + j0..i * w + j0 + n]
                                .iter()
                                .zip(&plane[src..src + n])
                                .map(|(a, b)| a * b)
                                .sum::<f32>();
                        }
                        taps[ky * k + kx] += acc;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(dw), Shape::from((c, 1, k, k))))
    }
}

/// Depthwise convolution of `x [B, C, H, W]` with `w [C, 1, k, k]` (odd k, stride 1, padding
/// k / 2) with autograd. CPU, f32.
pub fn depthwise_conv(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, Depthwise)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::im2col_op::tests::{check_conv_against_naive, tensor};

    /// Forward values and both gradients equal a direct-loop grouped convolution.
    #[test]
    fn depthwise_conv_and_gradients_match_direct_convolution() {
        for (b, c, h, w, k) in [
            (2, 3, 6, 5, 3),
            (1, 4, 1, 7, 3),
            (3, 2, 5, 5, 5),
            (1, 2, 2, 2, 3),
        ] {
            check_conv_against_naive(depthwise_conv, (b, c, h, w), (c, k, 1, k / 2, c));
        }
    }

    #[test]
    fn bad_kernels_are_errors_not_panics() {
        let x = tensor(&[1, 3, 4, 4], 0);
        assert!(depthwise_conv(&x, &tensor(&[2, 1, 3, 3], 0)).is_err());
        assert!(depthwise_conv(&x, &tensor(&[3, 1, 2, 2], 0)).is_err());
        assert!(depthwise_conv(&x, &tensor(&[3, 2, 3, 3], 0)).is_err());
    }
}
