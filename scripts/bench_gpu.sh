#!/usr/bin/env bash
# The GPU benchmark for a machine with a real GPU (Vulkan; e.g. an NVIDIA H200):
# ViT-B/32 (random weights, tests/fixtures/vit-b32-random) images/s at batch 1, 8, 32, 64
# and text queries/s for each precision the device offers (f32, and f16 with shader-f16),
# then the matmul kernel's TFLOP/s and its fraction of the peak you pass.
#
#   bash scripts/bench_gpu.sh --peak-f32-tflops 67 --peak-f16-tflops 990
#   bash scripts/bench_gpu.sh --batches 1,8 --seconds 2 --matmul 8192,8192,8192
#
# Peaks are the vendor's dense figures for the exact part, without tensor cores (WGSL has
# no tensor-core path): for an H200 SXM about 67 TFLOP/s f32 and about 134 TFLOP/s f16
# (packed half2); check the datasheet of the part at hand. WGPU_BACKEND (default vulkan)
# is honoured, and WGPU_ADAPTER_NAME (a substring) picks among several adapters.
# Prints plain lines and a final `json: [...]` line for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="$(mktemp -d)"
  chmod 700 "$XDG_RUNTIME_DIR"
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader || true
fi
cargo build --release --example gpu_bench
exec target/release/examples/gpu_bench "$@"
