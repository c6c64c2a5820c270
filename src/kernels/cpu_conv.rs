//! The CPU engine's kernels: convolutions as GEMMs (1x1 convs as plain matrix products, kxk
//! through im2col, grouped convs as one GEMM per group; depthwise convs, one filter per channel,
//! as shifted multiply-adds per plane) with bias, residual add and ReLU fused into one pass, and
//! the stem's max-pool.
//!
//! Layout: one image at a time, channels-major (`[C, H*W]`, the NCHW layout of one batch item),
//! f32. Weights are BatchNorm-folded `[out_c, in_c/groups * k * k]` (PyTorch's conv weight
//! flattened), so the im2col rows are ordered (channel, ky, kx) to match.

use super::depthwise::{correlate_plane, PlaneFilter, PlaneScratch};
use crate::{Error, Result};
use gemm::Parallelism;
use rayon::prelude::*;

/// Shape of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels (all groups).
    pub in_c: usize,
    /// Output channels (all groups).
    pub out_c: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Spatial stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// Number of groups; `in_c` and `out_c` must both divide by it.
    pub groups: usize,
}

impl ConvSpec {
    /// Output height and width for an input of `h` x `w`.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.pad - self.kernel) / self.stride + 1,
            (w + 2 * self.pad - self.kernel) / self.stride + 1,
        )
    }

    /// Rows of the im2col matrix per group (the GEMM's inner dimension).
    pub fn k_per_group(&self) -> usize {
        self.in_c / self.groups * self.kernel * self.kernel
    }

    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.pad == 0
    }

    /// One kxk filter per channel, stride 1, "same" padding: the depthwise kernel's case.
    fn is_depthwise(&self) -> bool {
        self.groups == self.in_c
            && self.out_c == self.in_c
            && self.kernel % 2 == 1
            && self.kernel > 1
            && self.stride == 1
            && self.pad == self.kernel / 2
    }
}

/// A convolution with its BatchNorm folded into `weight` and `bias`.
#[derive(Debug, Clone)]
pub struct GemmConv {
    /// Shape.
    pub spec: ConvSpec,
    /// `[out_c, in_c/groups * k * k]`, row-major.
    pub weight: Vec<f32>,
    /// `[out_c]`.
    pub bias: Vec<f32>,
}

/// Reusable buffers for [`GemmConv::forward_into`], so the hot path does not allocate.
#[derive(Debug, Default)]
pub struct Scratch {
    cols: Vec<f32>,
    padded: PlaneScratch,
}

/// Run `c = a * b` with row-major `a: [m, k]`, `b: [k, n]`, `c: [m, n]`, each with its own row
/// stride.
#[allow(clippy::too_many_arguments)]
fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    par: Parallelism,
) {
    debug_assert!(a.len() >= (m - 1) * lda + k);
    debug_assert!(b.len() >= (k - 1) * ldb + n);
    debug_assert!(c.len() >= (m - 1) * ldc + n);
    // SAFETY: the slices cover every element addressed by (m, n, k) and the strides (checked
    // above in debug builds and by construction in callers), and `c` does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            false,
            a.as_ptr(),
            1,
            lda as isize,
            b.as_ptr(),
            1,
            ldb as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        )
    }
}

fn parallelism(threads: usize) -> Parallelism {
    if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

impl GemmConv {
    /// Build from folded weights, checking their sizes.
    pub fn new(spec: ConvSpec, weight: Vec<f32>, bias: Vec<f32>) -> Result<Self> {
        // A conv with no input channels has nothing to convolve: refused like a bad group count.
        if spec.groups == 0
            || spec.in_c == 0
            || spec.in_c % spec.groups != 0
            || spec.out_c % spec.groups != 0
            || spec.kernel == 0
            || spec.stride == 0
        {
            return Err(Error::Config(format!("invalid conv spec {spec:?}")));
        }
        if weight.len() != spec.out_c * spec.k_per_group() || bias.len() != spec.out_c {
            return Err(Error::Config(format!(
                "conv {spec:?}: weight has {} values (expected {}), bias {} (expected {})",
                weight.len(),
                spec.out_c * spec.k_per_group(),
                bias.len(),
                spec.out_c
            )));
        }
        Ok(GemmConv { spec, weight, bias })
    }

    /// Convolve one image `x: [in_c, h*w]` into `out: [out_c, ho*wo]` (resized as needed), then
    /// add the bias and `residual` (same shape as `out`) and apply ReLU, in one pass.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_into(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        residual: Option<&[f32]>,
        relu: bool,
        threads: usize,
        scratch: &mut Scratch,
        out: &mut Vec<f32>,
    ) -> Result<(usize, usize)> {
        let (ho, wo) = self.checked_out_hw(h, w)?;
        out.resize(self.spec.out_c * ho * wo, 0.0);
        self.forward_slice(x, h, w, residual, relu, threads, scratch, out)
    }

    /// Output size for an `h` x `w` input, or an error when the input is smaller than the kernel.
    pub fn checked_out_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let s = &self.spec;
        if h + 2 * s.pad < s.kernel || w + 2 * s.pad < s.kernel {
            return Err(Error::BadInput(format!(
                "conv input {h}x{w} is smaller than its {}x{} kernel",
                s.kernel, s.kernel
            )));
        }
        Ok(s.out_hw(h, w))
    }

    /// [`Self::forward_into`] into a slice of exactly `out_c * ho * wo` values (one image of a
    /// batch written in place).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_slice(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        residual: Option<&[f32]>,
        relu: bool,
        threads: usize,
        scratch: &mut Scratch,
        out: &mut [f32],
    ) -> Result<(usize, usize)> {
        let s = &self.spec;
        if x.len() != s.in_c * h * w {
            return Err(Error::BadInput(format!(
                "conv input has {} values, expected {}x{}x{}",
                x.len(),
                s.in_c,
                h,
                w
            )));
        }
        let (ho, wo) = self.checked_out_hw(h, w)?;
        let p = ho * wo;
        if out.len() != s.out_c * p {
            return Err(Error::BadInput(format!(
                "conv output has room for {} values, expected {}",
                out.len(),
                s.out_c * p
            )));
        }
        if let Some(r) = residual {
            if r.len() != s.out_c * p {
                return Err(Error::BadInput(format!(
                    "residual has {} values, expected {}",
                    r.len(),
                    s.out_c * p
                )));
            }
        }
        let (cg, og, kg) = (s.in_c / s.groups, s.out_c / s.groups, s.k_per_group());
        if s.is_depthwise() {
            // A GEMM per channel would be a 1 x k*k by k*k x H*W product: bookkeeping only.
            // Bias and ReLU are applied as each plane is written, unless a residual comes first.
            let k2 = s.kernel * s.kernel;
            let fused = residual.is_none();
            for (((o, plane), taps), &bias) in out
                .chunks_exact_mut(p)
                .zip(x.chunks_exact(h * w))
                .zip(self.weight.chunks_exact(k2))
                .zip(&self.bias)
            {
                let f = PlaneFilter {
                    taps,
                    k: s.kernel,
                    bias: if fused { bias } else { 0.0 },
                    relu: fused && relu,
                };
                correlate_plane(plane, f, (h, w), &mut scratch.padded, o);
            }
            if !fused {
                epilogue(out, &self.bias, residual, relu, p, threads);
            }
            return Ok((ho, wo));
        }

        // The GEMM's right-hand side: the input itself for a stride-1 pointwise conv, else im2col.
        let cols: &[f32] = if s.is_pointwise() && s.stride == 1 {
            x
        } else {
            scratch.cols.resize(s.in_c * s.kernel * s.kernel * p, 0.0);
            let geom = Im2ColGeom {
                c: s.in_c,
                h,
                w,
                kernel: s.kernel,
                stride: s.stride,
                pad: s.pad,
            };
            im2col(x, &geom, &mut scratch.cols, threads);
            &scratch.cols
        };

        if s.groups == 1 {
            sgemm(
                s.out_c,
                p,
                kg,
                &self.weight,
                kg,
                cols,
                p,
                out,
                p,
                parallelism(threads),
            );
        } else {
            // Many small independent GEMMs: spread the groups over the threads.
            out.par_chunks_mut(og * p)
                .enumerate()
                .with_min_len(s.groups.div_ceil(threads.max(1)))
                .for_each(|(g, o)| {
                    let wg = &self.weight[g * og * kg..(g + 1) * og * kg];
                    let bg = &cols[g * cg * s.kernel * s.kernel * p..];
                    sgemm(og, p, kg, wg, kg, bg, p, o, p, Parallelism::None);
                });
        }
        epilogue(out, &self.bias, residual, relu, p, threads);
        Ok((ho, wo))
    }
}

/// One pass over the GEMM output: `out = act(out + bias[channel] + residual)`, over the rayon
/// pool only when `threads > 1` and the output is large (handing work to the pool costs more
/// than a small pass).
fn epilogue(
    out: &mut [f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    relu: bool,
    p: usize,
    threads: usize,
) {
    if threads > 1 && out.len() >= super::PARALLEL_MIN_VALUES {
        out.par_chunks_mut(p)
            .zip(bias.par_iter())
            .enumerate()
            .for_each(|(o, (row, b))| {
                let r = residual.map(|r| &r[o * p..(o + 1) * p]);
                epilogue_rows(row, std::slice::from_ref(b), r, relu, p)
            });
    } else {
        epilogue_rows(out, bias, residual, relu, p);
    }
}

super::wide_fn! {
    /// [`epilogue`] on the calling thread: `out` holds one row of `p` values per bias, and
    /// `residual` (when given) is laid out like `out`.
    fn epilogue_rows(
        out: &mut [f32],
        bias: &[f32],
        residual: Option<&[f32]>,
        relu: bool,
        p: usize,
    ) {
        for (o, (row, &b)) in out.chunks_mut(p).zip(bias).enumerate() {
            match residual {
                Some(r) => {
                    let r = &r[o * p..(o + 1) * p];
                    if relu {
                        row.iter_mut()
                            .zip(r)
                            .for_each(|(v, r)| *v = (*v + b + r).max(0.0));
                    } else {
                        row.iter_mut().zip(r).for_each(|(v, r)| *v += b + r);
                    }
                }
                None => {
                    if relu {
                        row.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
                    } else {
                        row.iter_mut().for_each(|v| *v += b);
                    }
                }
            }
        }
    }
}

/// The geometry of one image's im2col: `c` channels of `h x w`, a square `kernel`, `stride`, `pad`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Im2ColGeom {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Spatial stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

impl Im2ColGeom {
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.kernel) / self.stride + 1,
            (self.w + 2 * self.pad - self.kernel) / self.stride + 1,
        )
    }

    /// Rows of the column matrix: `c * kernel^2`.
    pub fn rows(&self) -> usize {
        self.c * self.kernel * self.kernel
    }
}

/// im2col of one image `x [c, h*w]`: `cols[(c*k + ky)*k + kx, oy*wo + ox] = x[c, oy*s + ky - pad,
/// ox*s + kx - pad]` (0 outside). `cols` holds `rows() * ho * wo` values.
pub fn im2col(x: &[f32], g: &Im2ColGeom, cols: &mut [f32], threads: usize) {
    let s = g;
    let (h, w) = (g.h, g.w);
    let (ho, wo) = g.out_hw();
    let k = s.kernel;
    let p = ho * wo;
    let fill = |(row_idx, row): (usize, &mut [f32])| {
        let c = row_idx / (k * k);
        let ky = (row_idx / k) % k;
        let kx = row_idx % k;
        let plane = &x[c * h * w..(c + 1) * h * w];
        for oy in 0..ho {
            let dst = &mut row[oy * wo..(oy + 1) * wo];
            let iy = (oy * s.stride + ky) as isize - s.pad as isize;
            if iy < 0 || iy >= h as isize {
                dst.fill(0.0);
                continue;
            }
            let src = &plane[iy as usize * w..(iy as usize + 1) * w];
            // Output columns whose input column `ox*stride + kx - pad` lies inside the row:
            // zeros left and right of them, a straight (or strided) copy in between.
            let (st, off) = (s.stride, kx as isize - s.pad as isize);
            let lo = if off >= 0 {
                0
            } else {
                ((-off) as usize).div_ceil(st)
            }
            .min(wo);
            let hi = if (w as isize) > off {
                (((w as isize - off) as usize).div_ceil(st)).clamp(lo, wo)
            } else {
                lo
            };
            dst[..lo].fill(0.0);
            dst[hi..].fill(0.0);
            let first = (lo * st) as isize + off;
            if hi > lo {
                let first = first as usize;
                if st == 1 {
                    dst[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
                } else {
                    for (d, v) in dst[lo..hi].iter_mut().zip(src[first..].iter().step_by(st)) {
                        *d = *v;
                    }
                }
            }
        }
    };
    if threads > 1 && cols.len() >= 1 << 15 {
        cols.par_chunks_mut(p).enumerate().for_each(fill);
    } else {
        cols.chunks_mut(p).enumerate().for_each(fill);
    }
}

/// 3x3 stride-2 pad-1 max-pool (the ResNet stem's), one image `[c, h*w]`.
pub fn maxpool3x3s2(x: &[f32], c: usize, h: usize, w: usize, out: &mut Vec<f32>) -> (usize, usize) {
    let (ho, wo) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
    out.resize(c * ho * wo, 0.0);
    out.par_chunks_mut(ho * wo).enumerate().for_each(|(ch, o)| {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for oy in 0..ho {
            for ox in 0..wo {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..3 {
                    let iy = (oy * 2 + ky) as isize - 1;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..3 {
                        let ix = (ox * 2 + kx) as isize - 1;
                        if ix >= 0 && ix < w as isize {
                            m = m.max(plane[iy as usize * w + ix as usize]);
                        }
                    }
                }
                o[oy * wo + ox] = m;
            }
        }
    });
    (ho, wo)
}

/// Global average pool of one image `[c, p]` into `[c]`.
pub fn global_avg_pool(x: &[f32], c: usize, p: usize, out: &mut Vec<f32>) {
    out.clear();
    out.extend((0..c).map(|ch| x[ch * p..(ch + 1) * p].iter().sum::<f32>() / p as f32));
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
        // Small LCG: deterministic, no dependency on rand's stream stability.
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// Our conv against candle's conv2d + bias + residual + relu on the same data.
    fn check(spec: ConvSpec, h: usize, w: usize, residual: bool, relu: bool, threads: usize) {
        let kg = spec.k_per_group();
        let x = rand_vec(spec.in_c * h * w, 1);
        let wt = rand_vec(spec.out_c * kg, 2);
        let b = rand_vec(spec.out_c, 3);
        let conv = GemmConv::new(spec, wt.clone(), b.clone()).unwrap();
        let (ho, wo) = spec.out_hw(h, w);
        let r = rand_vec(spec.out_c * ho * wo, 4);
        let mut out = Vec::new();
        let mut scratch = Scratch::default();
        let got = conv
            .forward_into(
                &x,
                h,
                w,
                residual.then_some(&r[..]),
                relu,
                threads,
                &mut scratch,
                &mut out,
            )
            .unwrap();
        assert_eq!(got, (ho, wo));

        let dev = Device::Cpu;
        let xt = Tensor::from_vec(x, (1, spec.in_c, h, w), &dev).unwrap();
        let wt = Tensor::from_vec(
            wt,
            (
                spec.out_c,
                spec.in_c / spec.groups,
                spec.kernel,
                spec.kernel,
            ),
            &dev,
        )
        .unwrap();
        let bt = Tensor::from_vec(b, (1, spec.out_c, 1, 1), &dev).unwrap();
        let mut y = xt
            .conv2d(&wt, spec.pad, spec.stride, 1, spec.groups)
            .unwrap()
            .broadcast_add(&bt)
            .unwrap();
        if residual {
            y = (y + Tensor::from_vec(r, (1, spec.out_c, ho, wo), &dev).unwrap()).unwrap();
        }
        if relu {
            y = y.relu().unwrap();
        }
        let want = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let max = want
            .iter()
            .zip(&out)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 1e-4, "{spec:?} {h}x{w}: max diff {max}");
    }

    #[test]
    fn matches_candle_conv2d_on_resnet_shapes() {
        let c = |in_c, out_c, kernel, stride, pad, groups| ConvSpec {
            in_c,
            out_c,
            kernel,
            stride,
            pad,
            groups,
        };
        check(c(3, 8, 7, 2, 3, 1), 33, 31, false, true, 2); // stem, odd sizes
        check(c(16, 8, 1, 1, 0, 1), 9, 9, false, true, 1); // pointwise
        check(c(16, 32, 1, 2, 0, 1), 9, 9, false, false, 2); // strided projection shortcut
        check(c(8, 8, 3, 1, 1, 1), 10, 7, true, true, 2); // 3x3 + residual + relu
        check(c(8, 8, 3, 2, 1, 1), 10, 7, false, true, 1); // strided 3x3
        check(c(12, 12, 3, 2, 1, 3), 8, 8, false, true, 2); // grouped 3x3 (3 branches)
        check(c(12, 24, 1, 1, 0, 3), 5, 5, true, true, 2); // grouped 1x1 + residual
        check(c(6, 4, 1, 1, 0, 2), 4, 4, false, false, 1); // grouped, no epilogue
        check(c(8, 8, 3, 1, 1, 8), 6, 5, false, true, 1); // depthwise 3x3 (own kernel)
        check(c(4, 4, 3, 1, 1, 4), 3, 8, true, false, 1); // depthwise + residual
        check(c(3, 3, 5, 1, 2, 3), 4, 4, false, true, 1); // depthwise 5x5, plane < kernel
        check(c(16, 16, 3, 1, 1, 16), 48, 32, false, false, 1); // depthwise, bias only
        check(c(8, 8, 3, 1, 1, 8), 6, 4, true, true, 1); // depthwise + residual + relu
    }

    #[test]
    fn bad_shapes_are_errors() {
        let spec = ConvSpec {
            in_c: 4,
            out_c: 4,
            kernel: 3,
            stride: 1,
            pad: 1,
            groups: 2,
        };
        assert!(GemmConv::new(spec, vec![0.0; 3], vec![0.0; 4]).is_err());
        assert!(
            GemmConv::new(ConvSpec { groups: 3, ..spec }, vec![0.0; 48], vec![0.0; 4]).is_err()
        );
        let none_in = ConvSpec {
            in_c: 0,
            groups: 1,
            ..spec
        };
        assert!(GemmConv::new(none_in, Vec::new(), vec![0.0; 4]).is_err());
        let conv = GemmConv::new(spec, vec![0.0; 4 * 2 * 9], vec![0.0; 4]).unwrap();
        let mut out = Vec::new();
        let mut s = Scratch::default();
        let err = conv
            .forward_into(&[0.0; 10], 3, 3, None, true, 1, &mut s, &mut out)
            .unwrap_err();
        assert!(err.to_string().contains("expected 4x3x3"), "{err}");
        assert!(conv
            .forward_into(&[0.0; 36], 3, 3, Some(&[0.0; 5]), true, 1, &mut s, &mut out)
            .is_err());
    }

    #[test]
    fn maxpool_and_avgpool() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = Vec::new();
        assert_eq!(maxpool3x3s2(&x, 1, 4, 4, &mut out), (2, 2));
        assert_eq!(out, vec![5.0, 7.0, 13.0, 15.0]);
        global_avg_pool(&x, 2, 8, &mut out);
        assert_eq!(out, vec![3.5, 11.5]);
    }
}
