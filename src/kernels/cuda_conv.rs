//! Inference convolutions on CUDA as one im2col kernel and one batched GEMM, whatever the
//! number of groups.
//!
//! candle's `conv2d` runs a grouped convolution as one convolution per group followed by a
//! concatenation, so an HLFP branch layer over `k` active branches costs about `3k` kernel
//! launches. Here the input `[B, G*Cg, H, W]` is viewed as `[B*G, Cg, H, W]` (the same memory),
//! candle's own `im2col` kernel turns it into `[B*G, Ho*Wo, Cg*k*k]` in one launch, and one
//! strided-batched GEMM multiplies every group by its weights: two launches per layer for any
//! number of active branches. Forward only: training keeps [`crate::model::layers::conv`].

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::kernels;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Shape, Tensor};

/// `[N, C, H, W] -> [N, Ho*Wo, C*k*k]` (columns ordered channel, ky, kx like a flattened
/// `[cout, cin, k, k]` weight), on CUDA with candle's `im2col_f32` kernel.
#[derive(Debug, Clone, Copy)]
struct Im2ColRows {
    kernel: usize,
    stride: usize,
    pad: usize,
}

impl Im2ColRows {
    fn out_hw(&self, h: usize, w: usize) -> candle_core::Result<(usize, usize)> {
        if self.stride == 0 || h + 2 * self.pad < self.kernel || w + 2 * self.pad < self.kernel {
            candle_core::bail!(
                "im2col: {h}x{w} input too small for kernel {} pad {} (or stride 0)",
                self.kernel,
                self.pad
            );
        }
        Ok((
            (h + 2 * self.pad - self.kernel) / self.stride + 1,
            (w + 2 * self.pad - self.kernel) / self.stride + 1,
        ))
    }
}

impl CustomOp1 for Im2ColRows {
    fn name(&self) -> &'static str {
        "im2col-rows-cuda"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("im2col-rows-cuda runs on CUDA only (the CPU uses model::im2col)")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let (ho, wo) = self.out_hw(h, w)?;
        let dev = s.device().clone();
        let src = s.as_cuda_slice::<f32>()?;
        let src = src.slice(l.start_offset()..);
        let numel = n * ho * wo * c * self.kernel * self.kernel;
        let info = dev.clone_htod(&[l.dims(), l.stride()].concat())?;
        let func = dev.get_or_load_func("im2col_f32", &kernels::CONV)?;
        // SAFETY: every element is written by the kernel below.
        let dst = unsafe { dev.alloc::<f32>(numel)? };
        let (dilation, k) = (1usize, self.kernel);
        let mut b = func.builder();
        b.arg(&numel);
        b.arg(&ho);
        b.arg(&wo);
        b.arg(&k);
        b.arg(&k);
        b.arg(&self.stride);
        b.arg(&self.pad);
        b.arg(&dilation);
        b.arg(&info);
        b.arg(&src);
        b.arg(&dst);
        // SAFETY: the argument list matches candle-kernels' IM2COL_OP signature.
        unsafe { b.launch(LaunchConfig::for_num_elems(numel as u32)) }
            .map_err(|e| candle_core::Error::Msg(format!("im2col launch: {e}")))?;
        let out = CudaStorage::wrap_cuda_slice(dst, dev);
        Ok((out, Shape::from((n, ho * wo, c * k * k))))
    }
}

/// A (possibly grouped) square-kernel convolution of `x [B, Cin, H, W]` (f32, on CUDA) with
/// `w [Cout, Cin/groups, k, k]`: one im2col launch and one batched GEMM.
pub fn conv_cuda(
    x: &Tensor,
    w: &Tensor,
    pad: usize,
    stride: usize,
    groups: usize,
) -> candle_core::Result<Tensor> {
    let (cout, cin_g, kh, kw) = super::im2col_op::check_square_grouped(x, w, groups)?;
    let (b, _, h, wd) = x.dims4()?;
    let op = Im2ColRows {
        kernel: kh,
        stride,
        pad,
    };
    let (ho, wo) = op.out_hw(h, wd)?;
    // The same memory seen as B*G images of Cg channels: one launch covers every group.
    let xs = x.contiguous()?.reshape((b * groups, cin_g, h, wd))?;
    let cols = xs.apply_op1_no_bwd(&op)?; // [B*G, P, K]
    let k = cin_g * kh * kw;
    let p = ho * wo;
    let cols_t = cols.reshape((b, groups, p, k))?.transpose(2, 3)?; // [B, G, K, P], a view
    let ws = w.reshape((1, groups, cout / groups, k))?;
    let ws = if b == 1 {
        ws
    } else {
        ws.broadcast_as((b, groups, cout / groups, k))?
            .contiguous()?
    };
    ws.matmul(&cols_t)?.reshape((b, cout, ho, wo))
}

/// The fused epilogue's CUDA source, compiled once at run time with NVRTC.
const EPILOGUE_SRC: &str = r#"
extern "C" __global__ void hlfp_bias_act(float *y, const float *bias,
    unsigned long long n, unsigned long long p, unsigned long long c, int relu) {
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
       i += (unsigned long long)blockDim.x * gridDim.x) {
    float v = y[i] + bias[(i / p) % c];
    y[i] = relu ? fmaxf(v, 0.0f) : v;
  }
}
extern "C" __global__ void hlfp_bias_res_act(float *y, const float *bias, const float *res,
    unsigned long long n, unsigned long long p, unsigned long long c, int relu) {
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
       i += (unsigned long long)blockDim.x * gridDim.x) {
    float v = y[i] + bias[(i / p) % c] + res[i];
    y[i] = relu ? fmaxf(v, 0.0f) : v;
  }
}
"#;

fn epilogue_ptx() -> candle_core::Result<&'static str> {
    static PTX: std::sync::OnceLock<std::result::Result<String, String>> =
        std::sync::OnceLock::new();
    PTX.get_or_init(|| {
        candle_core::cuda_backend::cudarc::nvrtc::compile_ptx(EPILOGUE_SRC)
            .map(|p| p.to_src())
            .map_err(|e| format!("compiling the fused epilogue with NVRTC: {e}"))
    })
    .as_ref()
    .map(String::as_str)
    .map_err(|e| candle_core::Error::Msg(e.clone()))
}

/// `y = act(y + bias[channel] (+ residual))` in place, one kernel: `y [B, C, H, W]` contiguous,
/// `bias` C values, `residual` shaped like `y`.
#[derive(Debug, Clone, Copy)]
struct Epilogue {
    relu: bool,
}

fn contiguous_f32<'a>(
    s: &'a CudaStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, f32>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(s.as_cuda_slice::<f32>()?.slice(a..b)),
        None => candle_core::bail!("fused epilogue: {what} must be contiguous"),
    }
}

impl Epilogue {
    fn launch(
        &self,
        y: &mut CudaStorage,
        ly: &Layout,
        bias: (&CudaStorage, &Layout),
        residual: Option<(&CudaStorage, &Layout)>,
    ) -> candle_core::Result<()> {
        let (_, c, h, w) = ly.shape().dims4()?;
        let n = ly.shape().elem_count();
        let p = h * w;
        if bias.1.shape().elem_count() != c {
            candle_core::bail!(
                "fused epilogue: {} bias values for {c} channels",
                bias.1.shape().elem_count()
            );
        }
        if let Some((_, lr)) = residual {
            if lr.shape() != ly.shape() {
                candle_core::bail!(
                    "fused epilogue: residual {:?} vs output {:?}",
                    lr.shape(),
                    ly.shape()
                );
            }
        }
        let dev = y.device().clone();
        let b = contiguous_f32(bias.0, bias.1, "bias")?;
        let r = residual
            .map(|(s, l)| contiguous_f32(s, l, "residual"))
            .transpose()?;
        let (start, end) = ly.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("fused epilogue: output must be contiguous".into())
        })?;
        let mut ys = y.as_cuda_slice_mut::<f32>()?.slice_mut(start..end);
        let name = if r.is_some() {
            "hlfp_bias_res_act"
        } else {
            "hlfp_bias_act"
        };
        let func = dev.get_or_load_custom_func(name, "hlfp_epilogue", epilogue_ptx()?)?;
        let (n64, p64, c64, relu) = (n as u64, p as u64, c as u64, i32::from(self.relu));
        let mut lb = func.builder();
        lb.arg(&mut ys);
        lb.arg(&b);
        if let Some(r) = &r {
            lb.arg(r);
        }
        lb.arg(&n64);
        lb.arg(&p64);
        lb.arg(&c64);
        lb.arg(&relu);
        let blocks = n.div_ceil(256).clamp(1, 65_535) as u32;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match the kernels above; sizes were checked.
        unsafe { lb.launch(cfg) }
            .map_err(|e| candle_core::Error::Msg(format!("fused epilogue launch: {e}")))?;
        Ok(())
    }
}

fn cuda_only() -> candle_core::Result<()> {
    candle_core::bail!("the fused epilogue runs on CUDA only")
}

impl candle_core::InplaceOp2 for Epilogue {
    fn name(&self) -> &'static str {
        "hlfp-bias-act"
    }
    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        cuda_only()
    }
    fn cuda_fwd(
        &self,
        y: &mut CudaStorage,
        ly: &Layout,
        b: &CudaStorage,
        lb: &Layout,
    ) -> candle_core::Result<()> {
        self.launch(y, ly, (b, lb), None)
    }
}

impl candle_core::InplaceOp3 for Epilogue {
    fn name(&self) -> &'static str {
        "hlfp-bias-res-act"
    }
    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        cuda_only()
    }
    fn cuda_fwd(
        &self,
        y: &mut CudaStorage,
        ly: &Layout,
        b: &CudaStorage,
        lb: &Layout,
        r: &CudaStorage,
        lr: &Layout,
    ) -> candle_core::Result<()> {
        self.launch(y, ly, (b, lb), Some((r, lr)))
    }
}

/// `act(y + bias (+ residual))` as one in-place kernel on CUDA tensors. `y` must be a fresh,
/// contiguous `[B, C, H, W]` tensor nobody else holds (a GEMM's output); `bias` has C values.
pub fn bias_residual_act(
    y: Tensor,
    bias: &Tensor,
    residual: Option<&Tensor>,
    relu: bool,
) -> candle_core::Result<Tensor> {
    let y = y.contiguous()?;
    let bias = bias.contiguous()?;
    let op = Epilogue { relu };
    match residual {
        Some(r) => y.inplace_op3(&bias, &r.contiguous()?, &op)?,
        None => y.inplace_op2(&bias, &op)?,
    }
    Ok(y)
}
