//! Convolution for training on the CPU as im2col + matmul, with autograd.
//!
//! candle's CPU `conv2d` backward runs `conv_transpose2d` and a convolution whose kernel is the
//! whole gradient map, both far from GEMM speed; they made training ~10x slower than the
//! forward pass. Here a kxk convolution is an [`Im2Col`] custom op (its backward is col2im)
//! followed by a `matmul`, so forward and backward both run as GEMMs. Other devices keep
//! candle's `conv2d`.

use super::cpu_conv::{im2col, Im2ColGeom};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// `[B, C, H, W] -> [B, C*k*k, Ho*Wo]`, rows ordered (channel, ky, kx) like a flattened
/// `[cout, cin, k, k]` weight. Differentiable: the backward pass is [`Col2Im`].
#[derive(Debug, Clone, Copy)]
pub struct Im2Col {
    /// Kernel side.
    pub kernel: usize,
    /// Spatial stride.
    pub stride: usize,
    /// Zero padding.
    pub pad: usize,
}

/// The contiguous f32 data of a CPU storage under `l`, or an error naming `what`.
pub(crate) fn f32_slice<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        other => candle_core::bail!("{what}: f32 input expected, got {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "im2col")?;
        let (b, c, h, w) = l.shape().dims4()?;
        if h + 2 * self.pad < self.kernel || w + 2 * self.pad < self.kernel || self.stride == 0 {
            candle_core::bail!(
                "im2col: {h}x{w} input too small for kernel {} pad {} (or stride 0)",
                self.kernel,
                self.pad
            );
        }
        let g = Im2ColGeom {
            c,
            h,
            w,
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
        };
        let (ho, wo) = g.out_hw();
        let per = g.rows() * ho * wo;
        let mut out = vec![0f32; b * per];
        // Parallel over images; each image's rows are filled in parallel inside for b = 1.
        let threads = if b == 1 { 2 } else { 1 };
        out.par_chunks_mut(per.max(1))
            .zip(x.par_chunks((c * h * w).max(1)))
            .for_each(|(cols, img)| im2col(img, &g, cols, threads));
        Ok((CpuStorage::F32(out), Shape::from((b, g.rows(), ho * wo))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (_, c, h, w) = arg.dims4()?;
        let op = Col2Im {
            geom: Im2ColGeom {
                c,
                h,
                w,
                kernel: self.kernel,
                stride: self.stride,
                pad: self.pad,
            },
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// The adjoint of [`Im2Col`]: `[B, C*k*k, Ho*Wo] -> [B, C, H, W]`, summing every column entry
/// back into the input pixel it was read from.
#[derive(Debug, Clone, Copy)]
pub struct Col2Im {
    /// The forward op's geometry.
    pub geom: Im2ColGeom,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let cols = f32_slice(s, l, "col2im")?;
        let g = self.geom;
        let (ho, wo) = g.out_hw();
        let (b, rows, p) = l.shape().dims3()?;
        if rows != g.rows() || p != ho * wo {
            candle_core::bail!(
                "col2im: got [{b}, {rows}, {p}], expected [_, {}, {}]",
                g.rows(),
                ho * wo
            );
        }
        let k = g.kernel;
        let (h, w) = (g.h, g.w);
        let mut out = vec![0f32; b * g.c * h * w];
        // One task per (image, channel) plane: its k*k column rows write only into it.
        out.par_chunks_mut((h * w).max(1))
            .enumerate()
            .for_each(|(bc, plane)| {
                let (bi, c) = (bc / g.c, bc % g.c);
                for ky in 0..k {
                    for kx in 0..k {
                        let r = (c * k + ky) * k + kx;
                        let row = &cols[(bi * rows + r) * p..(bi * rows + r + 1) * p];
                        for oy in 0..ho {
                            let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                            let src = &row[oy * wo..(oy + 1) * wo];
                            for (ox, v) in src.iter().enumerate() {
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                if ix >= 0 && ix < w as isize {
                                    dst[ix as usize] += v;
                                }
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, g.c, h, w))))
    }
}

/// Check that `w [Cout, Cin/groups, k, k]` is a square kernel that splits `x [B, Cin, H, W]`
/// into `groups`; returns `w`'s dims.
pub fn check_square_grouped(
    x: &Tensor,
    w: &Tensor,
    groups: usize,
) -> candle_core::Result<(usize, usize, usize, usize)> {
    let (cout, cin_g, kh, kw) = w.dims4()?;
    let cin = x.dims4()?.1;
    if kh != kw || groups == 0 || cin != cin_g * groups || cout % groups != 0 {
        candle_core::bail!(
            "conv: input has {cin} channels, weight {:?} with {groups} groups",
            w.dims()
        );
    }
    Ok((cout, cin_g, kh, kw))
}

/// A (possibly grouped) kxk convolution of `x [B, Cin, H, W]` with `w [Cout, Cin/groups, k, k]`
/// as im2col + one batched matmul over the groups. CPU, f32, square kernels.
pub fn conv_im2col(
    x: &Tensor,
    w: &Tensor,
    pad: usize,
    stride: usize,
    groups: usize,
) -> candle_core::Result<Tensor> {
    let (cout, cin_g, kh, kw) = check_square_grouped(x, w, groups)?;
    let b = x.dim(0)?;
    let op = Im2Col {
        kernel: kh,
        stride,
        pad,
    };
    let cols = x.contiguous()?.apply_op1(op)?; // [B, Cin*k*k, P]
    let (_, _, p) = cols.dims3()?;
    let (h, wd) = (x.dim(2)?, x.dim(3)?);
    let ho = (h + 2 * pad - kh) / stride + 1;
    let wo = (wd + 2 * pad - kw) / stride + 1;
    let kk = cin_g * kh * kw;
    let cols = cols.reshape((b, groups, kk, p))?;
    let ws = w.reshape((1, groups, cout / groups, kk))?;
    ws.broadcast_matmul(&cols)?.reshape((b, cout, ho, wo))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{Device, Var};

    pub(crate) fn tensor(shape: &[usize], salt: usize) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 31 + salt * 7) % 97) as f32 / 97.0 - 0.5)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Direct-loop convolution and the gradients of `sum(conv(x, w) * up)`: (y, dx, dw).
    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f32],
        w: &[f32],
        up: &[f32],
        (b, cin, h, wd): (usize, usize, usize, usize),
        (cout, k, stride, pad, groups): (usize, usize, usize, usize, usize),
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (ho, wo) = (
            (h + 2 * pad - k) / stride + 1,
            (wd + 2 * pad - k) / stride + 1,
        );
        let (cig, cog) = (cin / groups, cout / groups);
        let mut y = vec![0f32; b * cout * ho * wo];
        let (mut dx, mut dw) = (vec![0f32; x.len()], vec![0f32; w.len()]);
        for bi in 0..b {
            for co in 0..cout {
                let g = co / cog;
                for oy in 0..ho {
                    for ox in 0..wo {
                        let yi = ((bi * cout + co) * ho + oy) * wo + ox;
                        for ci in 0..cig {
                            let c = g * cig + ci;
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (oy * stride + ky) as isize - pad as isize;
                                    let ix = (ox * stride + kx) as isize - pad as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((bi * cin + c) * h + iy as usize) * wd + ix as usize;
                                    let wi = ((co * cig + ci) * k + ky) * k + kx;
                                    y[yi] += x[xi] * w[wi];
                                    dx[xi] += w[wi] * up[yi];
                                    dw[wi] += x[xi] * up[yi];
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn max_abs(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Check `conv(x, w)` against [`naive`] on deterministic inputs: output shape, forward
    /// values, and both gradients of `sum(conv(x, w) * up)`.
    pub(crate) fn check_conv_against_naive(
        conv: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
        (b, cin, h, w): (usize, usize, usize, usize),
        (cout, k, stride, pad, groups): (usize, usize, usize, usize, usize),
    ) {
        let (ho, wo) = (
            (h + 2 * pad - k) / stride + 1,
            (w + 2 * pad - k) / stride + 1,
        );
        let x = Var::from_tensor(&tensor(&[b, cin, h, w], 1)).unwrap();
        let wt = Var::from_tensor(&tensor(&[cout, cin / groups, k, k], 2)).unwrap();
        let up = tensor(&[b, cout, ho, wo], 3);
        let (y, dx, dw) = naive(
            &values(&x),
            &values(&wt),
            &values(&up),
            (b, cin, h, w),
            (cout, k, stride, pad, groups),
        );
        let ours = conv(&x, &wt).unwrap();
        let case = format!("b{b} c{cin}->{cout} {h}x{w} k{k} s{stride} p{pad} g{groups}");
        assert_eq!(ours.dims(), &[b, cout, ho, wo], "{case}");
        assert!(max_abs(&values(&ours), &y) < 1e-5, "forward {case}");
        let grads = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let d = max_abs(&values(grads.get(&x).unwrap()), &dx);
        assert!(d < 1e-5, "input gradient {case}: {d}");
        let d = max_abs(&values(grads.get(&wt).unwrap()), &dw);
        assert!(d < 1e-5, "weight gradient {case}: {d}");
    }

    /// Forward values and both gradients equal a direct-loop convolution, for strides, pads,
    /// groups and odd sizes (the stem's 7x7/2, the 3x3/2 downsampling conv, grouped branch
    /// convs). Odd sizes with stride 2 are where candle's own conv2d backward fails.
    #[test]
    fn im2col_conv_and_gradients_match_direct_convolution() {
        for (b, cin, cout, h, w, k, stride, pad, groups) in [
            (2, 3, 4, 9, 9, 7, 2, 3, 1),
            (2, 4, 6, 8, 7, 3, 1, 1, 1),
            (1, 4, 4, 9, 8, 3, 2, 1, 1),
            (3, 6, 9, 5, 5, 3, 1, 1, 3),
            (2, 4, 4, 6, 6, 3, 2, 1, 2),
            (2, 2, 2, 4, 4, 1, 1, 0, 1),
        ] {
            check_conv_against_naive(
                |x, w| conv_im2col(x, w, pad, stride, groups),
                (b, cin, h, w),
                (cout, k, stride, pad, groups),
            );
        }
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let x = tensor(&[1, 3, 2, 2], 0);
        let w = tensor(&[4, 3, 7, 7], 0);
        assert!(
            conv_im2col(&x, &w, 0, 1, 1).is_err(),
            "input smaller than kernel"
        );
        let w = tensor(&[4, 2, 3, 3], 0);
        assert!(conv_im2col(&tensor(&[1, 3, 5, 5], 0), &w, 1, 1, 1).is_err());
        let xi = tensor(&[1, 3, 5, 5], 0)
            .to_dtype(candle_core::DType::F64)
            .unwrap();
        let w = tensor(&[4, 3, 3, 3], 0)
            .to_dtype(candle_core::DType::F64)
            .unwrap();
        assert!(conv_im2col(&xi, &w, 1, 1, 1).is_err(), "f64 is rejected");
    }
}
