//! Compute kernels the model's layers call: the CPU GEMM convolution with its fused epilogue
//! (the "engine" backend), the im2col autograd convolution and the fused BatchNorm used in
//! training, and on CUDA the grouped im2col convolution, its epilogue and CUDA graphs.
//!
//! Kernels know tensor shapes, not the network: which layers exist, their names and how a
//! cutout slices them live in [`crate::model::spec`].

pub mod bn_train;
pub mod cpu_conv;
#[cfg(feature = "cuda")]
pub mod cuda_conv;
pub mod cuda_graph;
pub mod depthwise;
pub mod im2col_op;
pub mod pool;

/// Below this many output values a CPU kernel pass runs on the calling thread: handing a small
/// pass (one audio window's planes or epilogue) to the rayon pool costs more than doing it.
pub(crate) const PARALLEL_MIN_VALUES: usize = 1 << 16;

/// Define a function whose body is compiled twice, for baseline x86-64 and for AVX2, and runs
/// the AVX2 copy when the CPU has it. The crate targets baseline x86-64, whose SSE2 vectors hold
/// 4 floats; elementwise loops in the body get 8-float vectors this way (the GEMM crate
/// dispatches the same way). Same operations in the same order, so the same results.
macro_rules! wide_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) {
            #[inline(always)]
            fn body($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($a: $t),*) {
                    body($($a),*)
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU was just checked to support AVX2.
                    return unsafe { avx2($($a),*) };
                }
            }
            body($($a),*)
        }
    };
}
pub(crate) use wide_fn;

/// A vector of `n` values written by `write`, without zeroing them first: a kernel's output
/// buffer, which its kernel overwrites anyway (zeroing each conv output cost about 4 % of
/// scoring an audio window). On an error the vector is dropped unread.
///
/// # Safety
/// `write` must write every one of the `n` values before it reads any of them, on every path
/// that returns `Ok` (the GEMM with `read_dst = false`, the depthwise pass and the 2x2 pool
/// only write their outputs).
pub(crate) unsafe fn written_vec<E>(
    n: usize,
    write: impl FnOnce(&mut [f32]) -> Result<(), E>,
) -> Result<Vec<f32>, E> {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    // SAFETY: the capacity is `n` values, and the caller promises that nothing reads a value
    // before `write` has written it; the length is set only once all of them are written.
    let buf = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr(), n) };
    write(buf)?;
    unsafe { v.set_len(n) };
    Ok(v)
}
