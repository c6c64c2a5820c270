//! Depthwise kxk convolution (stride 1, "same" zero padding) on the CPU, with autograd.
//!
//! A depthwise conv has one kxk filter per channel. As a grouped im2col + matmul it becomes one
//! tiny (1 x k*k) by (k*k x H*W) product per channel, and candle's grouped `conv2d` runs one
//! conv per channel: both spend their time on bookkeeping. Here each channel plane is k*k
//! shifted multiply-adds over the whole plane as one flat array (a zero-padded copy and
//! per-column masks stand in for the padding), in parallel over planes for large inputs
//! ([`correlate_plane`], which the CPU engine's depthwise branch runs too, with its bias and
//! ReLU). The backward pass is the same op with the kernel rotated by 180 degrees (input
//! gradient) and a per-channel correlation of input and output gradient
//! ([`DepthwiseWeightGrad`], weight gradient).

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

/// One channel's filter and what follows it: `act(taps (*) plane + bias)`, `act` ReLU or none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlaneFilter<'a> {
    /// The `k * k` taps, row-major.
    pub taps: &'a [f32],
    /// Kernel side (odd).
    pub k: usize,
    /// Added to every output value.
    pub bias: f32,
    /// Clamp the result at zero.
    pub relu: bool,
}

/// Reusable buffers of [`correlate_plane`]: one zero-padded copy of the plane, and the edge
/// masks of the geometry they were last built for (the same for every channel of a layer).
#[derive(Debug, Default, Clone)]
pub(crate) struct PlaneScratch {
    copy: Vec<f32>,
    masks: Vec<f32>,
    /// `(k, h, w)` of `masks`.
    geometry: (usize, usize, usize),
}

impl PlaneScratch {
    /// `k` masks of `h * w` values for tap column `kx`: 1 where output column `x` reads inside
    /// the row (`0 <= x + kx - k / 2 < w`), else 0. Built once per geometry.
    fn ensure_masks(&mut self, k: usize, h: usize, w: usize) {
        if self.geometry != (k, h, w) {
            let p = k / 2;
            self.masks.clear();
            for kx in 0..k {
                for q in 0..h * w {
                    let x = (q % w + kx) as isize - p as isize;
                    self.masks
                        .push(if x >= 0 && x < w as isize { 1.0 } else { 0.0 });
                }
            }
            self.geometry = (k, h, w);
        }
    }
}

/// `out = act(taps (*) plane + bias)` for one channel plane, "same" padding, in one long flat
/// pass instead of one short pass per row (the audio planes are 4 to 32 mel bins wide).
///
/// Seen as one flat array with `p = k / 2` zero rows (and `p` zeros) above and below, each
/// output is a sum of `k * k` shifted slices of the plane, except that a tap `s = kx - p`
/// columns to the side reads across a row's end in the `|s|` output columns nearest that side.
/// There the value read is multiplied by its tap column's mask, 0 (1 elsewhere): the padding
/// a direct loop would read, for finite inputs (a value times 0 is a zero, times 1 itself).
/// Taps, bias and ReLU are applied in the same order as a direct loop, so the values are equal
/// (a zero may differ in sign, which `==` does not see). The masks depend only on the geometry,
/// so one copy of each plane is all the per-channel work besides the pass.
pub(crate) fn correlate_plane(
    plane: &[f32],
    f: PlaneFilter,
    (h, w): (usize, usize),
    scratch: &mut PlaneScratch,
    out: &mut [f32],
) {
    if h == 0 || w == 0 {
        return;
    }
    let (k, p) = (f.k, f.k / 2);
    let lead = p * (w + 1);
    let n = h * w;
    let len = n + 2 * lead;
    // Every value is written below: growing the buffer is the only fill.
    if scratch.copy.len() < len {
        scratch.copy.resize(len, 0.0);
    }
    let copy = &mut scratch.copy[..len];
    copy[..lead].fill(0.0);
    copy[lead..lead + n].copy_from_slice(plane);
    copy[lead + n..].fill(0.0);
    scratch.ensure_masks(k, h, w);
    correlate_flat(&scratch.copy[..len], &scratch.masks, out, f, w);
}

super::wide_fn! {
    /// The flat pass of [`correlate_plane`]: `out[q] = act(sum over taps of t * copy[q + ky *
    /// w + kx] * masks[kx][q] + bias)`, the mask skipped for the centre column (all ones).
    fn correlate_flat(copy: &[f32], masks: &[f32], out: &mut [f32], f: PlaneFilter, w: usize) {
        let (k, n) = (f.k, out.len());
        let shifted = |ky: usize, kx: usize| {
            let at = ky * w + kx;
            &copy[at..at + n]
        };
        let mask = |kx: usize| &masks[kx * n..(kx + 1) * n];
        let finish = |v: f32| {
            let v = v + f.bias;
            if f.relu {
                v.max(0.0)
            } else {
                v
            }
        };
        if k == 3 {
            let (a0, a1, a2) = (shifted(0, 0), shifted(0, 1), shifted(0, 2));
            let (b0, b1, b2) = (shifted(1, 0), shifted(1, 1), shifted(1, 2));
            let (c0, c1, c2) = (shifted(2, 0), shifted(2, 1), shifted(2, 2));
            let (left, right) = (mask(0), mask(2));
            let t = &f.taps[..9];
            for j in 0..n {
                let (l, r) = (left[j], right[j]);
                let v = t[0] * (a0[j] * l)
                    + t[1] * a1[j]
                    + t[2] * (a2[j] * r)
                    + t[3] * (b0[j] * l)
                    + t[4] * b1[j]
                    + t[5] * (b2[j] * r)
                    + t[6] * (c0[j] * l)
                    + t[7] * c1[j]
                    + t[8] * (c2[j] * r);
                out[j] = finish(v);
            }
        } else {
            let t0 = f.taps[0];
            for ((o, v), m) in out.iter_mut().zip(shifted(0, 0)).zip(mask(0)) {
                *o = t0 * (v * m);
            }
            for tap in 1..k * k {
                let (t, kx) = (f.taps[tap], tap % k);
                for ((o, v), m) in out.iter_mut().zip(shifted(tap / k, kx)).zip(mask(kx)) {
                    *o += t * (v * m);
                }
            }
            out.iter_mut().for_each(|o| *o = finish(*o));
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
        let plane = |padded: &mut PlaneScratch, (bc, (o, x)): (usize, (&mut [f32], &[f32]))| {
            let ch = bc % c;
            let f = PlaneFilter {
                taps: &wt[ch * k * k..(ch + 1) * k * k],
                k,
                bias: 0.0,
                relu: false,
            };
            correlate_plane(x, f, (h, w), padded, o)
        };
        if out.len() < PARALLEL_MIN_VALUES {
            let mut padded = PlaneScratch::default();
            out.chunks_mut(hw)
                .zip(x.chunks(hw))
                .enumerate()
                .for_each(|item| plane(&mut padded, item));
        } else {
            out.par_chunks_mut(hw)
                .zip(x.par_chunks(hw))
                .enumerate()
                .for_each_with(PlaneScratch::default(), plane);
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

    /// The flat pass equals a direct loop that sums the same taps in the same order, value for
    /// value, on the audio model's plane widths (4 to 32 mel bins), with and without the fused
    /// bias and ReLU, and with one scratch buffer reused from large planes to small ones (as the
    /// engine's thread-local scratch is, layer after layer).
    #[test]
    fn flat_pass_equals_a_direct_loop_exactly_with_a_reused_scratch() {
        let mut scratch = PlaneScratch::default();
        for (h, w, k, relu) in [
            (48, 32, 3, true),
            (24, 16, 3, false),
            (12, 8, 3, true),
            (6, 4, 3, true),
            (1, 1, 3, false),
            (7, 5, 5, true),
            (2, 9, 3, false),
        ] {
            let plane: Vec<f32> = (0..h * w)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                .collect();
            let taps: Vec<f32> = (0..k * k).map(|i| (i as f32 - 4.0) / 5.0).collect();
            let bias = -0.25;
            let p = k / 2;
            let want: Vec<f32> = (0..h * w)
                .map(|q| {
                    let (i, j) = (q / w, q % w);
                    let mut acc = 0f32;
                    for ky in 0..k {
                        for kx in 0..k {
                            let (y, x) = (
                                (i + ky) as isize - p as isize,
                                (j + kx) as isize - p as isize,
                            );
                            let v = if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                                0.0
                            } else {
                                plane[y as usize * w + x as usize]
                            };
                            acc += taps[ky * k + kx] * v;
                        }
                    }
                    let v = acc + bias;
                    if relu {
                        v.max(0.0)
                    } else {
                        v
                    }
                })
                .collect();
            let mut out = vec![f32::NAN; h * w];
            let f = PlaneFilter {
                taps: &taps,
                k,
                bias,
                relu,
            };
            correlate_plane(&plane, f, (h, w), &mut scratch, &mut out);
            assert_eq!(out, want, "{h}x{w}, k {k}, relu {relu}");
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
