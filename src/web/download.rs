//! The model download as the page and the workers name it: the engine of
//! `crate::model_cache` over the browser's drivers of `web::model_cache` (IndexedDB store,
//! `fetch` hub, page host). This file only names the combination; the rules, the engine and
//! their tests are in `crate::model_cache`, the browser calls in `web::model_cache`.

pub use super::model_cache::note_blocked;
use super::model_cache::{BrowserEnv, FetchHub, IdbChunkStore};
pub use crate::model_cache::{load_weights, CacheState, DownloadError, Phase, Progress};

/// The model cache of one model (hub + model + revision) in IndexedDB.
pub type ModelStore = IdbChunkStore;
/// Downloads a model into its [`ModelStore`] through `fetch`.
pub type Download = crate::model_cache::Download<IdbChunkStore, FetchHub, BrowserEnv>;
/// A verified model in IndexedDB, ready to be loaded.
pub type VerifiedModel = crate::model_cache::VerifiedModel<IdbChunkStore>;
/// The weights in IndexedDB, read by byte range.
pub type BlobFile = crate::model_cache::ChunkFile<IdbChunkStore>;
