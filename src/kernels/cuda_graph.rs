//! CUDA set-up for low-latency, batch-1 inference, and CUDA-graph replay of a forward pass.
//!
//! At batch 1 a GPU forward pass is a long chain of small kernels: the GPU finishes each one
//! faster than the host can issue the next, so latency is set by launch overhead, not
//! arithmetic. Two things cut it:
//! - [`cuda_device`] sets the device up for one-stream use: no per-tensor CUDA event tracking
//!   (candle records events on every tensor use so that several streams can share tensors) and
//!   a memory pool that keeps freed memory instead of handing it back to the driver at every
//!   synchronisation.
//! - [`GraphForward`] captures one forward pass into a CUDA graph and replays it with a single
//!   launch. Inputs are copied into a fixed buffer and outputs come from a fixed buffer, so the
//!   graph is valid for one input shape and one set of model arguments (selection, gains);
//!   capture another graph for another set.
//!
//! Without the `cuda` feature these functions return a clear error.

use crate::{Error, Result};
use candle_core::Device;
#[cfg(feature = "cuda")]
use candle_core::Tensor;

/// A CUDA device for inference on `ordinal`. With `tuned`, set up for one stream (no CUDA
/// event tracking; the memory pool keeps freed memory); without, candle's defaults.
#[cfg(feature = "cuda")]
pub fn cuda_device(ordinal: usize, tuned: bool) -> Result<Device> {
    use candle_core::cuda_backend::cudarc::driver::sys;
    let dev = Device::new_cuda(ordinal)
        .map_err(|e| Error::Config(format!("CUDA device {ordinal}: {e}")))?;
    if !tuned {
        return Ok(dev);
    }
    let cd = dev
        .as_cuda_device()
        .map_err(|e| Error::Config(format!("CUDA device {ordinal}: {e}")))?;
    // SAFETY: this program runs every tensor of this device on its one stream, so CUDA events
    // between streams are not needed; no tensor exists on the device yet.
    unsafe { cd.disable_event_tracking() };
    let ctx = cd.cuda_stream().context().clone();
    // SAFETY: plain driver calls on a live context; the pool handle is only used here.
    unsafe {
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        let r = sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device());
        if r == sys::CUresult::CUDA_SUCCESS && !pool.is_null() {
            let mut keep: u64 = u64::MAX;
            let r = sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut keep as *mut u64).cast(),
            );
            if r != sys::CUresult::CUDA_SUCCESS {
                tracing::warn!("CUDA memory pool release threshold not set: {r:?}");
            }
        }
    }
    Ok(dev)
}

/// A CUDA device for inference (needs the `cuda` feature; this build has none).
#[cfg(not(feature = "cuda"))]
pub fn cuda_device(ordinal: usize, _tuned: bool) -> Result<Device> {
    Err(Error::Config(format!(
        "CUDA device {ordinal}: this build has no CUDA support (rebuild with --features cuda)"
    )))
}

/// One forward pass captured as a CUDA graph: [`GraphForward::run`] copies the input into the
/// graph's input buffer, replays every kernel with one launch, and returns a copy of the output.
#[cfg(feature = "cuda")]
pub struct GraphForward {
    graph: candle_core::cuda_backend::cudarc::driver::CudaGraph,
    input: Tensor,
    output: Tensor,
}

// SAFETY: the graph and its executable are driver handles, valid from any thread once the
// context is bound, which cudarc does before every launch. `GraphForward` is not `Sync`, so one
// thread at a time uses it (a classifier behind `&mut`).
#[cfg(feature = "cuda")]
unsafe impl Send for GraphForward {}

#[cfg(feature = "cuda")]
impl std::fmt::Debug for GraphForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphForward")
            .field("input", &self.input.shape())
            .field("output", &self.output.shape())
            .finish()
    }
}

#[cfg(feature = "cuda")]
impl GraphForward {
    /// Capture `forward` for inputs shaped like `example` (f32, on a CUDA device made by
    /// [`cuda_device`] with `tuned`). `forward` runs once eagerly first, which fills candle's
    /// cache of small host-to-device uploads and any lazy state of the model.
    pub fn capture(example: &Tensor, forward: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let gpu = |what: &str, e: &dyn std::fmt::Display| {
            Error::BadInput(format!("CUDA graph {what}: {e}"))
        };
        let dev = example.device().clone();
        let cd = dev
            .as_cuda_device()
            .map_err(|e| gpu("needs a CUDA tensor", &e))?;
        if cd.is_event_tracking() {
            return Err(Error::Config(
                "CUDA graph capture needs a device from gpu::cuda_device(_, true)".into(),
            ));
        }
        let input = example
            .contiguous()
            .and_then(|t| t.copy())
            .map_err(|e| gpu("input buffer", &e))?;
        let _cache = cd.enable_cuda_graph_htod_cache();
        let warm = forward(&input)?;
        let output = warm
            .contiguous()
            .and_then(|t| t.copy())
            .map_err(|e| gpu("output buffer", &e))?;
        drop(warm);
        dev.synchronize().map_err(|e| gpu("synchronise", &e))?;
        let stream = cd.cuda_stream();
        stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| gpu("begin capture", &e))?;
        let captured = forward(&input).and_then(|y| {
            output
                .slice_set(&y, 0, 0)
                .map_err(|e| gpu("copy to the output buffer", &e))
        });
        // End the capture whatever happened, so the stream is usable again.
        let graph = stream.end_capture(sys::CUgraphInstantiate_flags(0));
        captured?;
        let graph = graph
            .map_err(|e| gpu("end capture", &e))?
            .ok_or_else(|| gpu("end capture", &"no graph was captured"))?;
        graph.upload().map_err(|e| gpu("upload", &e))?;
        Ok(GraphForward {
            graph,
            input,
            output,
        })
    }

    /// Replay the graph on `x` (same shape as the capture's example) and return its output.
    pub fn run(&self, x: &Tensor) -> Result<Tensor> {
        if x.shape() != self.input.shape() {
            return Err(Error::BadInput(format!(
                "CUDA graph captured for input {:?}, got {:?}",
                self.input.shape(),
                x.shape()
            )));
        }
        let e =
            |what: &str, e: candle_core::Error| Error::BadInput(format!("CUDA graph {what}: {e}"));
        self.input
            .slice_set(x, 0, 0)
            .map_err(|err| e("input copy", err))?;
        self.graph
            .launch()
            .map_err(|err| Error::BadInput(format!("CUDA graph launch: {err}")))?;
        self.output.copy().map_err(|err| e("output copy", err))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_the_cuda_feature_a_cuda_device_is_a_clear_error() {
        let e = super::cuda_device(0, true).unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
