// Starts one clipseek encoder worker: loads the wasm-bindgen bundle Trunk built from the
// `clipseek-worker` binary (no-modules target, hence importScripts) and its wasm. The Rust
// side (src/web/worker.rs) then listens for messages and says "started". The page adds
// `?v=<build hash>` to this script's URL; it is passed on to the bundle and the wasm, whose
// names Trunk does not hash, so a new build never meets an old worker in a cache.
//
// Two builds of the worker exist: `clipseek-worker` (wasm simd128) and
// `clipseek-worker-relaxed` (the same code with the crate feature `relaxed-simd`, whose
// 8-bit kernel uses relaxed-SIMD dot products). A module holding relaxed opcodes fails
// validation where the engine lacks them, so the choice is made here, before loading: the
// relaxed build only where a tiny module using a relaxed instruction validates.
/* global wasm_bindgen */
const version = new URL(self.location.href).searchParams.get("v");
const query = version ? `?v=${encodeURIComponent(version)}` : "";

// (module (func (result v128) (i8x16.relaxed_swizzle (v128.const i64x2 0 0) (v128.const i64x2 0 0))))
function relaxedSimd() {
  const zeros = new Array(16).fill(0);
  const body = [0x00, 0xfd, 0x0c, ...zeros, 0xfd, 0x0c, ...zeros, 0xfd, 0x80, 0x02, 0x0b];
  const bytes = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
    0x03, 0x02, 0x01, 0x00,
    0x0a, body.length + 2, 0x01, body.length, ...body,
  ]);
  try {
    return WebAssembly.validate(bytes);
  } catch {
    return false;
  }
}

const name = relaxedSimd() ? "clipseek-worker-relaxed" : "clipseek-worker";
importScripts(`./${name}.js${query}`);

wasm_bindgen({ module_or_path: `./${name}_bg.wasm${query}` }).catch((error) => {
  self.postMessage({
    kind: "failed",
    error: `The encoder could not start: ${error?.message ?? error}`,
  });
});
