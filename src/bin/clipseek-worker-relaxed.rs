//! Entry point of the encoder worker's relaxed-SIMD build: the same worker as
//! `clipseek-worker`, compiled with the crate feature `relaxed-simd` so that the 8-bit
//! kernel uses `i32x4_relaxed_dot_i8x16_i7x16_add` (`encode::quant::kernels`).
//! `www/encoder-worker.js` loads it only where the browser validates relaxed SIMD. All of
//! its logic is in `clipseek::web::worker`; natively it only points at the CLI.

#[cfg(target_arch = "wasm32")]
fn main() {
    clipseek::web::start_worker();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("clipseek-worker-relaxed is the browser app's encoder worker (relaxed-SIMD build): it runs inside the page built by `trunk build`; natively, use the `clipseek` CLI.");
}
