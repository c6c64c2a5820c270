//! Training-mode BatchNorm (+ ReLU) fused into one custom op for the CPU.
//!
//! candle's `BatchNorm::forward_train` is about nine tensor ops (a transposed copy, two means, a
//! subtraction, a square, a division, the affine pair, a transpose back), each a full pass over
//! the activations with a fresh buffer, and autograd adds about twice as many in the backward
//! pass; a ReLU after it adds one more each way. Training HLFP-small on the CPU was bound by these
//! passes, not by the GEMMs. [`bn_train`] does the forward in two passes (channel statistics,
//! then normalise + affine + ReLU) and the backward in two (the per-channel sums, then the input
//! gradient), and updates the running statistics as candle's layer does (same momentum, unbiased
//! variance). Other devices and dtypes keep candle's layer.

use super::im2col_op::f32_slice;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, Var};
use candle_nn::BatchNorm;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// What the forward pass leaves for the backward pass and the running-statistics update.
#[derive(Debug, Default)]
struct Saved {
    /// Batch mean per channel.
    mean: Vec<f32>,
    /// `1 / sqrt(biased batch variance + eps)` per channel.
    invstd: Vec<f32>,
    /// Biased batch variance per channel.
    var: Vec<f32>,
    /// The scale the forward pass used.
    gamma: Vec<f32>,
    /// Values per channel (batch x spatial).
    count: usize,
}

fn lock(s: &Mutex<Saved>) -> std::sync::MutexGuard<'_, Saved> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// `(batch, channels, spatial)` of a `[B, C, ...]` layout.
fn bcs(l: &Layout, what: &str) -> candle_core::Result<(usize, usize, usize)> {
    let dims = l.shape().dims();
    if dims.len() < 2 || dims[0] == 0 || dims[1] == 0 {
        candle_core::bail!("{what}: expected a non-empty [B, C, ...] tensor, got {dims:?}");
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

/// Forward: `relu?(gamma * (x - mean) * invstd + beta + residual?)` with batch statistics, on
/// `(x, [gamma; beta])` (a [`CustomOp2`]) or `(x, [gamma; beta], residual)` (a [`CustomOp3`]).
struct BnForward {
    eps: f64,
    relu: bool,
    saved: Arc<Mutex<Saved>>,
}

impl BnForward {
    fn forward(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        residual: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "batch norm input")?;
        let gb = f32_slice(s2, l2, "batch norm weight and bias")?;
        let r = residual
            .map(|(s, l)| f32_slice(s, l, "batch norm residual"))
            .transpose()?;
        let (b, c, hw) = bcs(l1, "batch norm")?;
        if gb.len() != 2 * c {
            candle_core::bail!(
                "batch norm: {c} channels but {} weight and bias values (expected {})",
                gb.len(),
                2 * c
            );
        }
        if let Some(r) = r {
            if r.len() != x.len() {
                candle_core::bail!(
                    "batch norm: residual has {} values, the input {}",
                    r.len(),
                    x.len()
                );
            }
        }
        let (gamma, beta) = gb.split_at(c);
        let n = b * hw;
        if n < 2 {
            candle_core::bail!("batch norm in training needs more than one value per channel");
        }
        // Two-pass statistics in f64 per channel (the sums of a large batch lose f32 digits).
        let stats: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let rows = (0..b).map(|bi| &x[(bi * c + ch) * hw..(bi * c + ch + 1) * hw]);
                let sum: f64 = rows.clone().flatten().map(|&v| v as f64).sum();
                let mean = sum / n as f64;
                let ss: f64 = rows
                    .flatten()
                    .map(|&v| {
                        let d = v as f64 - mean;
                        d * d
                    })
                    .sum();
                (mean as f32, (ss / n as f64) as f32)
            })
            .collect();
        let mean: Vec<f32> = stats.iter().map(|s| s.0).collect();
        let var: Vec<f32> = stats.iter().map(|s| s.1).collect();
        let invstd: Vec<f32> = var
            .iter()
            .map(|&v| (1.0 / (v as f64 + self.eps).sqrt()) as f32)
            .collect();
        let mut y = vec![0f32; x.len()];
        let relu = self.relu;
        y.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .enumerate()
            .for_each(|(row, (yr, xr))| {
                let ch = row % c;
                let scale = gamma[ch] * invstd[ch];
                let shift = beta[ch] - mean[ch] * scale;
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = v * scale + shift;
                }
                if let Some(r) = r {
                    for (o, &v) in yr.iter_mut().zip(&r[row * hw..(row + 1) * hw]) {
                        *o += v;
                    }
                }
                if relu {
                    for o in yr.iter_mut() {
                        *o = o.max(0.0);
                    }
                }
            });
        *lock(&self.saved) = Saved {
            mean,
            invstd,
            var,
            gamma: gamma.to_vec(),
            count: n,
        };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    /// `(dx, d[gamma; beta], d residual)`.
    fn backward(
        &self,
        x: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
        residual: bool,
    ) -> candle_core::Result<(Tensor, Tensor, Option<Tensor>)> {
        let op = BnBackward {
            relu: self.relu,
            masked_grad: residual && self.relu,
            saved: self.saved.clone(),
        };
        let grad = grad_res.contiguous()?;
        let packed = x.apply_op3_no_bwd(res, &grad, &op)?;
        let (n, c) = (x.elem_count(), x.dim(1)?);
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dgb = packed.narrow(0, n, 2 * c)?;
        let dr = match (residual, self.relu) {
            (false, _) => None,
            // Without a ReLU the residual's gradient is the output's.
            (true, false) => Some(grad),
            (true, true) => Some(packed.narrow(0, n + 2 * c, n)?.reshape(x.shape())?),
        };
        Ok((dx, dgb, dr))
    }
}

impl CustomOp2 for BnForward {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        _gb: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dgb, _) = self.backward(x, res, grad_res, false)?;
        Ok((Some(dx), Some(dgb)))
    }
}

impl CustomOp3 for BnForward {
    fn name(&self) -> &'static str {
        "batch-norm-residual-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _gb: &Tensor,
        _residual: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dgb, dr) = self.backward(x, res, grad_res, true)?;
        Ok((Some(dx), Some(dgb), dr))
    }
}

/// Backward of [`BnForward`] on `(x, y, dy)`: one flat tensor `[dx..., dgamma..., dbeta...]`,
/// followed by the ReLU-masked `dy` (the residual's gradient) when `masked_grad`.
struct BnBackward {
    relu: bool,
    masked_grad: bool,
    saved: Arc<Mutex<Saved>>,
}

impl CustomOp3 for BnBackward {
    fn name(&self) -> &'static str {
        "batch-norm-train-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "batch norm backward input")?;
        let y = f32_slice(s2, l2, "batch norm backward output")?;
        let dy = f32_slice(s3, l3, "batch norm backward gradient")?;
        let (b, c, hw) = bcs(l1, "batch norm backward")?;
        let saved = lock(&self.saved);
        if saved.mean.len() != c || y.len() != x.len() || dy.len() != x.len() {
            candle_core::bail!("batch norm backward: shapes differ from the forward pass");
        }
        let (mean, invstd, gamma) = (&saved.mean, &saved.invstd, &saved.gamma);
        let relu = self.relu;
        // The gradient through the ReLU: zero where the output was clamped.
        let g = |i: usize| if relu && y[i] <= 0.0 { 0.0 } else { dy[i] };
        // dbeta = sum g, dgamma = sum g * xhat, per channel.
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut sg, mut sgx) = (0f64, 0f64);
                for bi in 0..b {
                    let base = (bi * c + ch) * hw;
                    for (i, &xi) in x.iter().enumerate().skip(base).take(hw) {
                        let gi = g(i) as f64;
                        sg += gi;
                        sgx += gi * ((xi - mean[ch]) * invstd[ch]) as f64;
                    }
                }
                (sg, sgx)
            })
            .collect();
        let n = (b * hw) as f32;
        let extra = if self.masked_grad { x.len() } else { 0 };
        let mut out = vec![0f32; x.len() + 2 * c + extra];
        let (dx, rest) = out.split_at_mut(x.len());
        let (dgb, dr) = rest.split_at_mut(2 * c);
        // dx = gamma * invstd / n * (n g - dbeta - xhat dgamma)
        dx.par_chunks_mut(hw).enumerate().for_each(|(row, dxr)| {
            let ch = row % c;
            let k = gamma[ch] * invstd[ch] / n;
            let (sg, sgx) = (sums[ch].0 as f32, sums[ch].1 as f32);
            let base = row * hw;
            for (j, o) in dxr.iter_mut().enumerate() {
                let i = base + j;
                let xhat = (x[i] - mean[ch]) * invstd[ch];
                *o = k * (n * g(i) - sg - xhat * sgx);
            }
        });
        for ch in 0..c {
            dgb[ch] = sums[ch].1 as f32;
            dgb[c + ch] = sums[ch].0 as f32;
        }
        if self.masked_grad {
            dr.par_chunks_mut(hw.max(1))
                .enumerate()
                .for_each(|(row, d)| {
                    for (j, o) in d.iter_mut().enumerate() {
                        *o = g(row * hw + j);
                    }
                });
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// Whether [`bn_train`] handles `x` (f32 on the CPU; other inputs use candle's layer).
pub fn fused_bn_applies(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && x.rank() >= 2
}

/// Training-mode `relu?(bn(x) + residual?)` for `x [B, C, ...]` (f32, CPU) with batch
/// statistics, as one op with its own backward; updates `bn`'s running mean and variance as
/// candle's layer does (`running = (1 - momentum) running + momentum stat`, the variance
/// unbiased).
pub fn bn_train(
    x: &Tensor,
    bn: &BatchNorm,
    residual: Option<&Tensor>,
    relu: bool,
) -> candle_core::Result<Tensor> {
    let (gamma, beta) = bn.weight_and_bias().ok_or_else(|| {
        candle_core::Error::Msg("fused batch norm needs the affine weight and bias".into())
    })?;
    let saved = Arc::new(Mutex::new(Saved::default()));
    let op = BnForward {
        eps: bn.eps(),
        relu,
        saved: saved.clone(),
    };
    // One small [gamma; beta] tensor; its backward splits the gradient back.
    let gb = Tensor::cat(&[gamma.flatten_all()?, beta.flatten_all()?], 0)?;
    let x = x.contiguous()?;
    let y = match residual {
        None => x.apply_op2(&gb, op)?,
        Some(r) => x.apply_op3(&gb, &r.contiguous()?, op)?,
    };
    let s = lock(&saved);
    let m = bn.momentum();
    let dev = x.device();
    let c = s.mean.len();
    let unbias = s.count as f64 / (s.count as f64 - 1.0);
    let mean = Tensor::from_slice(&s.mean, c, dev)?;
    let var = Tensor::from_slice(&s.var, c, dev)?;
    // `running_*()` are the layer's variables: `Var::from_tensor` shares their storage.
    let rm = Var::from_tensor(bn.running_mean())?;
    rm.set(&((rm.as_tensor() * (1.0 - m))? + (mean * m)?)?)?;
    let rv = Var::from_tensor(bn.running_var())?;
    rv.set(&((rv.as_tensor() * (1.0 - m))? + (var * (m * unbias))?)?)?;
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, ModuleT};

    fn values(n: usize, salt: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0 - 1.0) * scale + offset)
            .collect()
    }

    /// A BatchNorm whose parameters and running statistics are fresh variables.
    fn layer(c: usize) -> (BatchNorm, Var, Var) {
        let dev = Device::Cpu;
        let gamma = Var::from_vec(values(c, 1, 0.5, 1.0), c, &dev).unwrap();
        let beta = Var::from_vec(values(c, 2, 0.3, 0.1), c, &dev).unwrap();
        let rm = Tensor::from_vec(values(c, 3, 0.2, 0.0), c, &dev).unwrap();
        let rv = Tensor::from_vec(values(c, 4, 0.2, 1.0), c, &dev).unwrap();
        let bn = BatchNorm::new(
            c,
            Var::from_tensor(&rm).unwrap().as_tensor().clone(),
            Var::from_tensor(&rv).unwrap().as_tensor().clone(),
            gamma.as_tensor().clone(),
            beta.as_tensor().clone(),
            1e-5,
        )
        .unwrap();
        (bn, gamma, beta)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn matches_candles_layer_forward_backward_and_running_stats() {
        let dev = Device::Cpu;
        let cases = [
            (3, 5, 4, 6, true, false),
            (2, 3, 1, 1, false, false),
            (4, 7, 3, 3, true, true),
            (2, 4, 3, 5, false, true),
        ];
        for &(b, c, h, w, relu, with_residual) in &cases {
            let shape = (b, c, h, w);
            let r = Var::from_vec(values(b * c * h * w, 7, 1.5, -0.2), shape, &dev).unwrap();
            let residual = with_residual.then_some(&r);
            // Channels with different means and spreads; some values negative for the ReLU.
            let x = Var::from_vec(values(b * c * h * w, 5, 2.0, 0.3), shape, &dev).unwrap();
            let up = Tensor::from_vec(values(b * c * h * w, 6, 1.0, 0.0), shape, &dev).unwrap();

            let (ref_bn, ref_g, ref_b) = layer(c);
            let y_ref = ref_bn.forward_t(x.as_tensor(), true).unwrap();
            let y_ref = match residual {
                Some(r) => (y_ref + r.as_tensor()).unwrap(),
                None => y_ref,
            };
            let y_ref = if relu { y_ref.relu().unwrap() } else { y_ref };
            let g_ref = (&y_ref * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();

            let (bn, g, be) = layer(c);
            let y = bn_train(x.as_tensor(), &bn, residual.map(|r| r.as_tensor()), relu).unwrap();
            let grads = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();

            let case = format!("{shape:?} relu {relu} residual {with_residual}");
            assert!(max_diff(&y, &y_ref) < 1e-5, "{case}: output");
            for (name, a, b) in [
                ("dx", grads.get(x.as_tensor()), g_ref.get(x.as_tensor())),
                (
                    "dgamma",
                    grads.get(g.as_tensor()),
                    g_ref.get(ref_g.as_tensor()),
                ),
                (
                    "dbeta",
                    grads.get(be.as_tensor()),
                    g_ref.get(ref_b.as_tensor()),
                ),
            ] {
                let (a, b) = (a.unwrap(), b.unwrap());
                assert_eq!(a.dims(), b.dims(), "{case}: {name} shape");
                assert!(
                    max_diff(a, b) < 1e-4,
                    "{case}: {name} differs by {}",
                    max_diff(a, b)
                );
            }
            if with_residual {
                let a = grads.get(r.as_tensor()).unwrap();
                let b = g_ref.get(r.as_tensor()).unwrap();
                assert!(max_diff(a, b) < 1e-5, "{case}: d residual");
            }
            assert!(
                max_diff(bn.running_mean(), ref_bn.running_mean()) < 1e-6,
                "{case}"
            );
            assert!(
                max_diff(bn.running_var(), ref_bn.running_var()) < 1e-5,
                "{case}"
            );
            // Eval mode then uses the updated statistics, like candle's.
            let e = bn.forward_t(x.as_tensor(), false).unwrap();
            let e_ref = ref_bn.forward_t(x.as_tensor(), false).unwrap();
            assert!(max_diff(&e, &e_ref) < 1e-5, "{case}: eval after update");
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let dev = Device::Cpu;
        let (bn, _, _) = layer(3);
        // One value per channel has no batch variance.
        let one = Tensor::ones((1, 3, 1, 1), DType::F32, &dev).unwrap();
        assert!(bn_train(&one, &bn, None, true).is_err());
        // Channel count differs from the layer's.
        let x = Tensor::ones((2, 4, 2, 2), DType::F32, &dev).unwrap();
        let err = bn_train(&x, &bn, None, true).unwrap_err().to_string();
        assert!(err.contains("channels"), "{err}");
        // A residual of another shape.
        let x = Tensor::ones((2, 3, 2, 2), DType::F32, &dev).unwrap();
        let r = Tensor::ones((2, 3, 2, 1), DType::F32, &dev).unwrap();
        let err = bn_train(&x, &bn, Some(&r), true).unwrap_err().to_string();
        assert!(err.contains("residual"), "{err}");
        assert!(!fused_bn_applies(&x.to_dtype(DType::BF16).unwrap()));
    }
}
