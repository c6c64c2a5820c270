//! 2x2 max-pooling (stride 2, odd edges dropped) of `[B, C, H, W]` f32 CPU tensors, for
//! scoring: candle's generic CPU pooling indexes every input through its layout, which made it
//! about a seventh of the audio classifier's time per window. Forward only; training keeps
//! candle's `max_pool2d`, whose backward pass this op does not have.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use super::im2col_op::f32_slice;

/// `[B, C, H, W]` -> `[B, C, H / 2, W / 2]`, each output the max of its 2x2 input block.
#[derive(Debug, Clone, Copy)]
struct MaxPool2;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let x = f32_slice(s, l, "2x2 max-pool input")?;
        if h < 2 || w < 2 {
            candle_core::bail!("2x2 max-pool needs planes of at least 2x2, got {h}x{w}");
        }
        let (ho, wo) = (h / 2, w / 2);
        // SAFETY: `pool_plane` writes every value of its `ho * wo` output and reads none.
        let out = unsafe {
            super::written_vec(b * c * ho * wo, |out| -> candle_core::Result<()> {
                for (plane, o) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(ho * wo)) {
                    pool_plane(plane, o, w, wo);
                }
                Ok(())
            })?
        };
        Ok((CpuStorage::F32(out), Shape::from((b, c, ho, wo))))
    }
}

super::wide_fn! {
    /// One plane `w` wide into `out`, `wo` wide: the max of each 2x2 block. Pairs of columns
    /// are zipped, not indexed, so the loop has no bounds checks and vectorises (about 2x
    /// faster than indexing `2 * j` and `2 * j + 1`). `max` ignores NaN whatever the order.
    fn pool_plane(plane: &[f32], out: &mut [f32], w: usize, wo: usize) {
        for (i, row) in out.chunks_exact_mut(wo).enumerate() {
            // Rows 2i and 2i + 1, cut to the columns the output reads.
            let top = &plane[2 * i * w..2 * i * w + 2 * wo];
            let bottom = &plane[(2 * i + 1) * w..(2 * i + 1) * w + 2 * wo];
            for ((v, t), b) in row
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                *v = t[0].max(b[0]).max(t[1].max(b[1]));
            }
        }
    }
}

/// 2x2 max-pool with stride 2 for scoring: this crate's kernel for contiguous f32 CPU tensors,
/// candle's `max_pool2d` for anything else. Same values as `x.max_pool2d(2)`; no gradient.
pub fn max_pool2(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 4 {
        x.contiguous()?.apply_op1_no_bwd(&MaxPool2)
    } else {
        x.max_pool2d(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_candle_max_pool_on_even_and_odd_planes() {
        // Narrow and wide planes, even and odd.
        for dims in [
            (2, 3, 6, 8),
            (1, 2, 5, 7),
            (1, 2, 2, 2),
            (1, 1, 4, 300),
            (1, 2, 3, 261),
        ] {
            let x = Tensor::randn(0f32, 1.0, dims, &Device::Cpu).unwrap();
            let ours = max_pool2(&x).unwrap();
            let theirs = x.max_pool2d(2).unwrap();
            assert_eq!(ours.dims(), theirs.dims(), "{dims:?}");
            assert_eq!(
                ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{dims:?}"
            );
        }
        // A plane smaller than the window is an error, as in candle.
        let x = Tensor::zeros((1, 1, 1, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(x.max_pool2d(2).is_err());
        let e = max_pool2(&x).unwrap_err().to_string();
        assert!(e.contains("at least 2x2, got 1x4"), "{e}");
        // A transposed (non-contiguous) input is pooled as laid out logically.
        let x = Tensor::randn(0f32, 1.0, (1, 2, 4, 6), &Device::Cpu).unwrap();
        let xt = x.transpose(2, 3).unwrap();
        assert_eq!(
            max_pool2(&xt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            xt.max_pool2d(2)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
    }
}
