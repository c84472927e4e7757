//! clipseek: CLIP photo search that runs in the browser and natively.
//!
//! This file is only the module map. The core (`model`, `encode`, `index`) is plain Rust
//! that builds and is tested natively and compiles unchanged to wasm32; `web` is the
//! only module that knows about the browser. `hub`, `model_cache` and `ingest` are the
//! browser app's rules (hub layout, the model download and its storage, what to index)
//! kept free of the browser so they are tested natively, as is `page`, the page's own
//! rules (folder identity, crash budget, search, the worker protocol).

pub mod clip;
pub mod encode;
#[cfg(not(target_arch = "wasm32"))]
pub mod files;
pub mod hub;
pub mod index;
pub mod ingest;
pub mod model;
pub mod model_cache;
pub mod models;
pub mod page;
pub mod splitmix;
pub mod zip;

#[cfg(target_arch = "wasm32")]
pub mod web;
