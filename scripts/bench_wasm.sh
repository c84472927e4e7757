#!/usr/bin/env bash
# The WebAssembly benchmark: builds examples/wasm_bench.rs for wasm32 (+simd128, from
# .cargo/config.toml), binds it for Node with wasm-bindgen, makes the full-size synthetic
# ViT-B/32 once, waits for a quiet machine and times it in Node (1 thread) with
# scripts/bench_wasm.mjs. Writes target/bench/wasm.json. Figures go to BENCHMARKS.md.
#
#   MODEL_DIR      the synthetic model folder (default /tmp/clipseek-b32; made if missing)
#   RUNS, WARMUP   timed and warm-up calls (default 5 and 3; text uses max(RUNS, 15))
#   QUIET_TIMEOUT  seconds to wait for an idle machine before timing (default 600; 0: don't wait)
#   PEER_DIR       a writable copy of shared/peers, set up with its setup.sh: if set, its
#                  onnxruntime-web wasm fp32 + int8 rows (Node, 1 thread) run first, in the
#                  same session, into target/bench/ort-web.json; then our run also times
#                  them in alternating rounds with our engine in one process (`paired` in
#                  wasm.json), which keeps the ratios fair when the machine's load changes
#   PEER_MODELS    the peer's model folder (default /tmp/peer-models; ONNX files in onnx/)
#   SKIP_BUILD=1   reuse target/bench/pkg
#   KERNEL=relaxed build with the crate feature relaxed-simd (the page's second worker
#                  module: the relaxed-SIMD int8 kernel) into target/bench/pkg-relaxed and
#                  run Node with --experimental-wasm-relaxed-simd (Node 20 has it behind
#                  that flag); writes wasm-relaxed.json. Timings only: Node 20's V8
#                  computes the relaxed dot product wrongly (its cos figures are void)
#
# Needs: the wasm32 target and wasm-bindgen-cli at Cargo.lock's version (scripts/setup), Node 20.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CLIPSEEK_ROOT"

MODEL_DIR="${MODEL_DIR:-/tmp/clipseek-b32}"
RUNS="${RUNS:-5}"
WARMUP="${WARMUP:-3}"
QUIET_TIMEOUT="${QUIET_TIMEOUT:-600}"
OUT_DIR="target/bench"
PKG="$OUT_DIR/pkg"
FEATURES=()
NODE_FLAGS=()
SUFFIX=""
if [[ "${KERNEL:-}" == relaxed ]]; then
  PKG="$OUT_DIR/pkg-relaxed"
  FEATURES=(--features relaxed-simd)
  NODE_FLAGS=(--experimental-wasm-relaxed-simd)
  SUFFIX="-relaxed"
fi

say() { printf 'bench_wasm: %s\n' "$*" >&2; }
die() { printf 'bench_wasm: error: %s\n' "$*" >&2; exit 1; }

# Waits until the whole machine uses at most 0.25 cores (5 s windows), like the peer
# harness's wait_quiet.py; gives up after QUIET_TIMEOUT seconds and says so.
wait_quiet() {
  local deadline=$((SECONDS + QUIET_TIMEOUT)) b0 t0 b1 t1 busy
  while :; do
    read -r b0 t0 < <(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    sleep 5
    read -r b1 t1 < <(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    busy="$(awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v n="$(nproc)" 'BEGIN{printf "%.2f", (t ? b / t : 0) * n}')"
    if awk -v x="$busy" 'BEGIN{exit !(x <= 0.25)}'; then
      say "machine quiet ($busy cores busy); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      say "machine still busy ($busy cores) after ${QUIET_TIMEOUT}s: timing anyway (see other_cores_busy)"
      return 0
    fi
  done
}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  want="$(awk '$0 == "name = \"wasm-bindgen\"" {f = 1; next} f && /^version = / {gsub(/"/, "", $3); print $3; exit}' Cargo.lock)"
  have="$( (wasm-bindgen --version 2>/dev/null || true) | awk '{print $2}')"
  [[ "$have" == "$want" ]] || die "wasm-bindgen-cli $want is needed (found '${have:-none}'): run scripts/setup"

  say "building examples/wasm_bench.rs for wasm32-unknown-unknown (release)"
  nice cargo build --release --target wasm32-unknown-unknown --example wasm_bench "${FEATURES[@]}"
  rm -rf "$PKG"
  wasm-bindgen --target nodejs --out-dir "$PKG" \
    target/wasm32-unknown-unknown/release/examples/wasm_bench.wasm
  say "wasm: $(du -h "$PKG/wasm_bench_bg.wasm" | cut -f1)"
fi

if [[ ! -f "$MODEL_DIR/model.safetensors" || ! -f "$MODEL_DIR/native-fingerprint.json" ]]; then
  say "making the synthetic ViT-B/32 in $MODEL_DIR"
  nice cargo run --release --example make_synthetic_model -- "$MODEL_DIR"
fi

mkdir -p "$OUT_DIR"
if [[ -n "${PEER_DIR:-}" ]]; then
  [[ -f "$PEER_DIR/bench_ort.mjs" ]] || die "PEER_DIR=$PEER_DIR has no bench_ort.mjs"
  if ((QUIET_TIMEOUT > 0)); then wait_quiet; fi
  say "peer: onnxruntime-web wasm, Node, 1 thread, fp32 + int8"
  node "$PEER_DIR/bench_ort.mjs" --models "${PEER_MODELS:-/tmp/peer-models}/onnx" \
    --runtimes web --threads 1 --variants fp32,int8 \
    --runs "$RUNS" --warmup "$WARMUP" --out "$CLIPSEEK_ROOT/$OUT_DIR/ort-web.json"
fi

if ((QUIET_TIMEOUT > 0)); then wait_quiet; fi
say "clipseek wasm, Node, 1 thread"
paired=()
if [[ -n "${PEER_DIR:-}" ]]; then
  paired=(--paired-ort "$PEER_DIR" --onnx "${PEER_MODELS:-/tmp/peer-models}/onnx")
fi
node "${NODE_FLAGS[@]}" scripts/bench_wasm.mjs --pkg "$PKG" --model "$MODEL_DIR" --runs "$RUNS" \
  --warmup "$WARMUP" --out "$OUT_DIR/wasm$SUFFIX.json" "${paired[@]}"
