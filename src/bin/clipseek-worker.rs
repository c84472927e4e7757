//! Entry point of the browser app's encoder worker (built by Trunk for wasm32 as a
//! `data-type="worker"` target and started by `www/encoder-worker.js`); all of its logic is
//! in `clipseek::web::worker`. Natively it only points at the CLI.

#[cfg(target_arch = "wasm32")]
fn main() {
    clipseek::web::start_worker();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("clipseek-worker is the browser app's encoder worker: it runs inside the page built by `trunk build`; natively, use the `clipseek` CLI.");
}
