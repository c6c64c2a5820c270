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
