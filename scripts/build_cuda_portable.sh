#!/usr/bin/env bash
# Build `hlfp` and the CUDA test binaries on a machine whose CUDA toolkit differs from the GPU
# machine's (here: Debian's CUDA 11.8 for the build, CUDA 13 on the GPU machine), as used for the
# H200 measurements in the README. Not run in CI.
#
#   scripts/build_cuda_portable.sh OUT_DIR [CUDA_VERSION_FEATURE]
#
# candle-core asks cudarc to link the build machine's CUDA libraries (`dynamic-linking`,
# version from nvcc). This script builds against a scratch copy of candle-core from the cargo
# registry whose cudarc features are `cuda-13000` (or the given cudarc version feature) and
# `dynamic-loading` instead, so the binary opens the GPU machine's libcublas/libcurand/libnvrtc
# at run time. Our sources are the committed ones (git archive HEAD). candle's kernels are
# compiled to PTX for compute capability $CUDA_COMPUTE_CAP (default 80), which newer drivers
# JIT-compile for their GPU. OUT_DIR gets hlfp, cuda, parity (stripped, xz-compressed) and the
# build machine's libcudart.so.11.0, which candle-kernels links; run them with
# scripts/gpu_measure.sh after unpacking.
set -euo pipefail
out=$(realpath -m "${1:?OUT_DIR}"); cuda_feature=${2:-cuda-13000}
repo=$(git rev-parse --show-toplevel)
rev=$(git -C "$repo" rev-parse --short HEAD)
work=${WORK:-$(mktemp -d)}
cargo fetch --manifest-path "$repo/Cargo.toml" --locked >/dev/null
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/candle-core-0.11.1 | head -1)
rm -rf "$work/candle-core" "$work/repo" && mkdir -p "$work/repo" "$out"
cp -r "$src" "$work/candle-core"
sed -i "s/\"cuda-version-from-build-system\",/\"$cuda_feature\",/; s/\"dynamic-linking\",/\"dynamic-loading\",/" \
    "$work/candle-core/Cargo.toml"
grep -q "\"$cuda_feature\"" "$work/candle-core/Cargo.toml" || { echo "patching candle-core failed" >&2; exit 1; }
git -C "$repo" archive HEAD | tar -x -C "$work/repo"
printf '\n[patch.crates-io]\ncandle-core = { path = "%s" }\n' "$work/candle-core" >>"$work/repo/Cargo.toml"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80} CARGO_TARGET_DIR="$work/target"
cd "$work/repo"
cargo build --release --features cuda --bin hlfp
cargo test --release --features cuda --no-run --test parity --test cuda 2>&1 | tee "$work/tests.log"
cp "$CARGO_TARGET_DIR/release/hlfp" "$out/hlfp"
for t in parity cuda; do
    cp "$(grep -o "$CARGO_TARGET_DIR/release/deps/$t-[0-9a-f]*" "$work/tests.log" | head -1)" "$out/$t"
done
strip "$out/hlfp" "$out/parity" "$out/cuda"
for f in hlfp parity cuda; do xz -f -T0 -3 "$out/$f"; done
cp -L "$(ldconfig -p | awk '/libcudart.so.11.0/{print $NF; exit}')" "$out/" 2>/dev/null || true
echo "built into $out (sources: $rev)"
