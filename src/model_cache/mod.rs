//! The model cache without the browser: how a model's files are cut into chunks
//! ([`chunker`]), where the chunks are kept ([`ChunkStore`], with [`MemoryChunkStore`] for
//! tests and one [`contract`] both it and the IndexedDB store pass), the download's
//! decisions ([`rules`]) and the engine that downloads, resumes and verifies a model
//! through a [`Hub`] and an [`Env`] ([`Download`]), how large a model is before it is
//! fetched ([`weights_size`]), and reading a verified model back tensor by tensor ([`reader`]).
//!
//! It must not name `web_sys`, `js_sys` or `JsValue`: `web::model_cache` provides the
//! browser's store, hub and host, and this module is tested natively with fakes of them.
//! What the download does and why (chunk sizes, resume, verification, retries) is written
//! in [`download`]. Reference: RFC 9110 (Range, Content-Range, ETag), huggingface_hub's
//! `hf_hub_download`, huggingface/ratchet's ranged per-tensor loading.

pub mod chunker;
pub mod contract;
pub mod download;
mod error;
pub mod net;
pub mod packed;
pub mod progress;
pub mod reader;
pub mod rules;
mod size;
pub mod store;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use download::{Download, DownloadError};
pub use net::{Answer, Env, Hub};
pub use packed::{load_packed, save_packed, PackedError};
pub use progress::{Phase, Progress};
pub use reader::{
    load_weights, load_weights_timed, open_verified, ChunkFile, ReadTimes, VerifiedModel,
};
pub use size::weights_size;
pub use store::{
    cache_state, CacheState, ChunkStore, FileManifest, FileState, MemoryChunkStore, StoreError,
    StoredChunk,
};
