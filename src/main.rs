//! Entry point of the browser app (built by Trunk for wasm32). Natively it only points
//! at the CLI: the app itself needs a browser.

#[cfg(target_arch = "wasm32")]
fn main() {
    clipseek::web::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("clipseek-app is the browser app: run `trunk serve` (see README.md), or use the `clipseek` CLI natively.");
}
