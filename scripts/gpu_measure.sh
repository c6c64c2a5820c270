#!/usr/bin/env bash
# The CUDA measurements of issue 3 in one go, on a machine with an NVIDIA GPU (not run in CI).
#
#   scripts/gpu_measure.sh BIN_DIR OUT_DIR
#
# BIN_DIR holds `hlfp` built with `--features cuda` and, optionally, the test binaries
# `parity` and `cuda` (from `cargo test --release --features cuda --no-run`).
# Writes to OUT_DIR: gpu.txt (nvidia-smi), tests.txt, bench_own.json (our CUDA convs, eager and
# CUDA graph), bench_candle_conv.json (candle's conv2d, --cuda-candle-conv),
# bench_unfused.json (--cuda-unfused-epilogue), bench_untuned.json (candle's device defaults), torch_cuda.json and torch_cuda_fp32.json (PyTorch
# eager and CUDA graph, TF32 convs as PyTorch defaults and off; scripts/bench_pytorch.py), bench_own_2.json (a second sitting) and
# latency_vs_branches_cuda.png.
set -uo pipefail
bin=${1:?BIN_DIR}; out=${2:?OUT_DIR}
mkdir -p "$out"
# cudarc loads the CUDA libraries at run time: put the toolkit's (or PyTorch's) on the path.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, q, "lib") for p in nvidia.__path__ for q in os.listdir(p)))' 2>/dev/null); do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >"$out/gpu.txt" 2>&1
for t in parity cuda; do
    [ -x "$bin/$t" ] && "$bin/$t" --test-threads 1 --nocapture 2>&1 | tee -a "$out/tests.txt"
done
iters=${ITERS:-200}; warm=${WARMUP:-20}
bench() { "$bin/hlfp" bench --device cuda --iters "$iters" --warmup "$warm" --json "$@"; }
bench --plot "$out/latency_vs_branches_cuda.png" >"$out/bench_own.json"
echo "bench (own convs, tuned device, + CUDA graphs): rc $?"
bench --cuda-candle-conv --no-plot >"$out/bench_candle_conv.json"
echo "bench (candle conv2d, tuned device, + CUDA graphs): rc $?"
bench --cuda-unfused-epilogue --no-plot >"$out/bench_unfused.json"
echo "bench (bias, residual, ReLU as candle ops): rc $?"
bench --no-plot --cuda-untuned >"$out/bench_untuned.json"
echo "bench (own convs, candle's device defaults): rc $?"
PYTHONUNBUFFERED=1 python3 scripts/bench_pytorch.py --device cuda --cuda-graph --iters "$iters" \
    --warmup "$warm" --json >"$out/torch_cuda.json"
echo "pytorch: rc $?"
PYTHONUNBUFFERED=1 python3 scripts/bench_pytorch.py --device cuda --cuda-graph --no-tf32 \
    --iters "$iters" --warmup "$warm" --json >"$out/torch_cuda_fp32.json"
echo "pytorch (TF32 off): rc $?"
# A second sitting of ours, so run-to-run spread is visible next to the differences.
bench --no-plot >"$out/bench_own_2.json"
echo "bench (own convs, again): rc $?"
