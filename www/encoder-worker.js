// Starts one clipseek encoder worker: loads the wasm-bindgen bundle Trunk built from the
// `clipseek-worker` binary (no-modules target, hence importScripts) and its wasm. The Rust
// side (src/web/worker.rs) then listens for messages and says "started". The page adds
// `?v=<build hash>` to this script's URL; it is passed on to the bundle and the wasm, whose
// names Trunk does not hash, so a new build never meets an old worker in a cache.
/* global wasm_bindgen */
const version = new URL(self.location.href).searchParams.get("v");
const query = version ? `?v=${encodeURIComponent(version)}` : "";

importScripts(`./clipseek-worker.js${query}`);

wasm_bindgen({ module_or_path: `./clipseek-worker_bg.wasm${query}` }).catch((error) => {
  self.postMessage({
    kind: "failed",
    error: `The encoder could not start: ${error?.message ?? error}`,
  });
});
