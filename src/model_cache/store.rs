//! Where the model cache keeps a model's files: the [`ChunkStore`] trait (one model's
//! manifests and chunks), its in-memory implementation [`MemoryChunkStore`] for native
//! tests, and [`cache_state`], how much of a model a store holds.
//!
//! A store keeps, per file of one model (hub + model + revision, the store's key), one
//! [`FileManifest`] and the file's chunks, each `{index, blob, sha256, len}`; it decides
//! nothing (what to keep, fetch or verify is the download engine's). The browser's
//! implementation is `web::model_cache::IdbChunkStore` (IndexedDB, chunks as Blobs); both
//! pass the same contract suite ([`super::contract`]). Writes are durable when the call
//! returns `Ok`; a failed write is an error, never silence.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::hub::{JSON_FILES, WEIGHTS_FILE};

/// Where a file's download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    Downloading,
    Verified,
}

/// What the cache knows about one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileManifest {
    pub url: String,
    pub size_bytes: u64,
    pub etag: Option<String>,
    /// Hex, when the hub published the file's SHA-256.
    pub sha256: Option<String>,
    pub chunk_bytes: u64,
    pub state: FileState,
    /// A checksum or header failure already caused one complete refetch.
    pub refetched: bool,
}

/// One stored chunk; `B` is the store's byte container (a `Blob` in the browser).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk<B> {
    pub index: u64,
    pub blob: B,
    /// Hex SHA-256 of the chunk's bytes as they were received.
    pub sha256: String,
    pub len: u64,
}

/// Why the storage failed. Each message is one plain sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("The browser's storage for this site is full.")]
    Full,
    #[error("The browser refused to {op}: {message}")]
    Failed { op: &'static str, message: String },
    #[error("The stored {what} could not be read back: {message}")]
    Unreadable { what: String, message: String },
}

/// The storage of one model's files (the store's key names the model).
///
/// Not `Send`: the browser runs it on one thread, so its futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait ChunkStore: Clone {
    /// How the store holds a chunk's bytes.
    type Blob: Clone;

    /// The model this store is for (`ModelSource::key`).
    fn model_key(&self) -> &str;
    /// Wraps bytes as a blob of this store (not stored yet).
    fn blob(&self, bytes: &[u8]) -> Result<Self::Blob, StoreError>;
    /// The bytes `range` of `blob` (relative to the blob's start), cut to the blob's end
    /// as `Blob.slice` does: a range past the end gives fewer bytes, not an error.
    async fn read(&self, blob: &Self::Blob, range: Range<u64>) -> Result<Vec<u8>, StoreError>;
    /// The manifest of `file`, `None` when there is none.
    async fn manifest(&self, file: &str) -> Result<Option<FileManifest>, StoreError>;
    /// Writes (or replaces) the manifest of `file`.
    async fn put_manifest(&self, file: &str, manifest: &FileManifest) -> Result<(), StoreError>;
    /// Every stored chunk of `file`, by index ascending.
    async fn chunks(&self, file: &str) -> Result<Vec<StoredChunk<Self::Blob>>, StoreError>;
    /// Writes (or replaces) chunk `chunk.index` of `file`.
    async fn put_chunk(
        &self,
        file: &str,
        chunk: &StoredChunk<Self::Blob>,
    ) -> Result<(), StoreError>;
    /// In one transaction: drops every chunk of `file`, stores `chunk` and `manifest`.
    async fn put_whole(
        &self,
        file: &str,
        chunk: &StoredChunk<Self::Blob>,
        manifest: &FileManifest,
    ) -> Result<(), StoreError>;
    /// Wraps bytes given in parts as one blob (not stored yet), taking each part as it
    /// comes, so that the whole never needs to be in memory at once beside the parts.
    fn blob_of_parts(
        &self,
        parts: &mut dyn Iterator<Item = Vec<u8>>,
    ) -> Result<Self::Blob, StoreError>;
    /// Stores a file derived from `source` (e.g. weights packed from the model's): as
    /// [`Self::put_whole`], in one transaction that first checks that `source`'s manifest is
    /// there and verified, and writes nothing otherwise (`Ok(false)`), so that a derived
    /// file never outlives its source's removal.
    async fn put_derived(
        &self,
        file: &str,
        chunk: &StoredChunk<Self::Blob>,
        manifest: &FileManifest,
        source: &str,
    ) -> Result<bool, StoreError>;
    /// Deletes chunk `index` of `file` (no error when it is not there).
    async fn delete_chunk(&self, file: &str, index: u64) -> Result<(), StoreError>;
    /// Forgets `file`: its manifest and every chunk, in one transaction.
    async fn reset_file(&self, file: &str) -> Result<(), StoreError>;
    /// Forgets every file of this model (other models are kept).
    async fn remove_model(&self) -> Result<(), StoreError>;
}

/// How much of a model the cache holds.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheState {
    Empty,
    Partial {
        stored_bytes: u64,
        total_bytes: Option<u64>,
    },
    Verified {
        total_bytes: u64,
    },
}

/// How much of the model `store` holds: verified once every file is.
pub async fn cache_state<S: ChunkStore>(store: &S) -> Result<CacheState, StoreError> {
    let mut verified = 0;
    let mut any = false;
    let mut total_bytes = None;
    for file in JSON_FILES.iter().chain([&WEIGHTS_FILE]) {
        if let Some(m) = store.manifest(file).await? {
            any = true;
            if m.state == FileState::Verified {
                verified += 1;
            }
            if *file == WEIGHTS_FILE {
                total_bytes = Some(m.size_bytes);
            }
        }
    }
    if verified == JSON_FILES.len() + 1 {
        return Ok(CacheState::Verified {
            total_bytes: total_bytes.unwrap_or(0),
        });
    }
    let stored_bytes: u64 = store
        .chunks(WEIGHTS_FILE)
        .await?
        .iter()
        .map(|c| c.len)
        .sum();
    if !any && stored_bytes == 0 {
        return Ok(CacheState::Empty);
    }
    Ok(CacheState::Partial {
        stored_bytes,
        total_bytes,
    })
}

type Files = BTreeMap<(String, String), FileManifest>;
type Chunks = BTreeMap<(String, String, u64), StoredChunk<Rc<[u8]>>>;

#[derive(Default, Debug)]
struct Backing {
    files: Files,
    chunks: Chunks,
    /// Writes left before the store answers [`StoreError::Full`] (`None`: no limit).
    writes_left: Option<u64>,
}

/// A [`ChunkStore`] in memory. Stores made with [`MemoryChunkStore::for_model`] from one
/// another share their backing, as IndexedDB stores of one database do.
#[derive(Clone, Debug)]
pub struct MemoryChunkStore {
    backing: Rc<RefCell<Backing>>,
    key: String,
}

impl MemoryChunkStore {
    pub fn new(model_key: &str) -> Self {
        Self {
            backing: Rc::default(),
            key: model_key.to_owned(),
        }
    }

    /// A store for another model on the same backing.
    pub fn for_model(&self, model_key: &str) -> Self {
        Self {
            backing: self.backing.clone(),
            key: model_key.to_owned(),
        }
    }

    /// After `writes` more successful writes, every write fails with [`StoreError::Full`]
    /// (`None` lifts the limit): the quota of a browser, for tests.
    pub fn limit_writes(&self, writes: Option<u64>) {
        self.backing.borrow_mut().writes_left = writes;
    }

    /// Replaces the bytes of a stored chunk without touching its recorded hash (a chunk
    /// that changed in storage, for tests). Returns whether the chunk was there.
    pub fn corrupt_chunk(&self, file: &str, index: u64, bytes: &[u8]) -> bool {
        let mut b = self.backing.borrow_mut();
        match b
            .chunks
            .get_mut(&(self.key.clone(), file.to_owned(), index))
        {
            Some(c) => {
                c.blob = Rc::from(bytes);
                true
            }
            None => false,
        }
    }

    fn spend_write(b: &mut Backing) -> Result<(), StoreError> {
        match b.writes_left {
            Some(0) => Err(StoreError::Full),
            Some(n) => {
                b.writes_left = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn file_key(&self, file: &str) -> (String, String) {
        (self.key.clone(), file.to_owned())
    }

    fn drop_chunks(&self, b: &mut Backing, file: &str) {
        b.chunks
            .retain(|(m, f, _), _| !(*m == self.key && f == file));
    }
}

impl ChunkStore for MemoryChunkStore {
    type Blob = Rc<[u8]>;

    fn model_key(&self) -> &str {
        &self.key
    }

    fn blob(&self, bytes: &[u8]) -> Result<Self::Blob, StoreError> {
        Ok(Rc::from(bytes))
    }

    async fn read(&self, blob: &Self::Blob, range: Range<u64>) -> Result<Vec<u8>, StoreError> {
        let len = blob.len() as u64;
        let (start, end) = (
            range.start.min(len),
            range.end.min(len).max(range.start.min(len)),
        );
        Ok(blob
            .get(start as usize..end as usize)
            .map(<[u8]>::to_vec)
            .unwrap_or_default())
    }

    async fn manifest(&self, file: &str) -> Result<Option<FileManifest>, StoreError> {
        Ok(self
            .backing
            .borrow()
            .files
            .get(&self.file_key(file))
            .cloned())
    }

    async fn put_manifest(&self, file: &str, manifest: &FileManifest) -> Result<(), StoreError> {
        let mut b = self.backing.borrow_mut();
        Self::spend_write(&mut b)?;
        b.files.insert(self.file_key(file), manifest.clone());
        Ok(())
    }

    async fn chunks(&self, file: &str) -> Result<Vec<StoredChunk<Self::Blob>>, StoreError> {
        let b = self.backing.borrow();
        let from = (self.key.clone(), file.to_owned(), 0);
        let to = (self.key.clone(), file.to_owned(), u64::MAX);
        Ok(b.chunks.range(from..=to).map(|(_, c)| c.clone()).collect())
    }

    async fn put_chunk(
        &self,
        file: &str,
        chunk: &StoredChunk<Self::Blob>,
    ) -> Result<(), StoreError> {
        let mut b = self.backing.borrow_mut();
        Self::spend_write(&mut b)?;
        b.chunks.insert(
            (self.key.clone(), file.to_owned(), chunk.index),
            chunk.clone(),
        );
        Ok(())
    }

    async fn put_whole(
        &self,
        file: &str,
        chunk: &StoredChunk<Self::Blob>,
        manifest: &FileManifest,
    ) -> Result<(), StoreError> {
        let mut b = self.backing.borrow_mut();
        Self::spend_write(&mut b)?;
        self.drop_chunks(&mut b, file);
        b.chunks.insert(
            (self.key.clone(), file.to_owned(), chunk.index),
            chunk.clone(),
        );
        b.files.insert(self.file_key(file), manifest.clone());
        Ok(())
    }

    fn blob_of_parts(
        &self,
        parts: &mut dyn Iterator<Item = Vec<u8>>,
    ) -> Result<Self::Blob, StoreError> {
        Ok(Rc::from(parts.flatten().collect::<Vec<u8>>()))
    }

    async fn put_derived(
        &self,
        file: &str,
        chunk: &StoredChunk<Self::Blob>,
        manifest: &FileManifest,
        source: &str,
    ) -> Result<bool, StoreError> {
        let verified = self
            .backing
            .borrow()
            .files
            .get(&self.file_key(source))
            .is_some_and(|m| m.state == FileState::Verified);
        if !verified {
            return Ok(false);
        }
        self.put_whole(file, chunk, manifest).await?;
        Ok(true)
    }

    async fn delete_chunk(&self, file: &str, index: u64) -> Result<(), StoreError> {
        let mut b = self.backing.borrow_mut();
        b.chunks.remove(&(self.key.clone(), file.to_owned(), index));
        Ok(())
    }

    async fn reset_file(&self, file: &str) -> Result<(), StoreError> {
        let mut b = self.backing.borrow_mut();
        self.drop_chunks(&mut b, file);
        b.files.remove(&self.file_key(file));
        Ok(())
    }

    async fn remove_model(&self) -> Result<(), StoreError> {
        let mut b = self.backing.borrow_mut();
        b.chunks.retain(|(m, _, _), _| *m != self.key);
        b.files.retain(|(m, _), _| *m != self.key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_cache::testing::block_on;

    #[test]
    fn the_memory_store_passes_the_contract() -> Result<(), String> {
        let base = MemoryChunkStore::new("unused");
        let report = block_on(crate::model_cache::contract::run_all(|key: &str| {
            base.for_model(key)
        }))?;
        let failed: Vec<String> = report
            .iter()
            .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
            .collect();
        assert!(failed.is_empty(), "contract failures: {failed:#?}");
        assert_eq!(report.len(), crate::model_cache::contract::CASES.len());
        Ok(())
    }

    #[test]
    fn a_full_memory_store_refuses_writes_until_the_limit_is_lifted() -> Result<(), String> {
        let s = MemoryChunkStore::new("m");
        s.limit_writes(Some(1));
        let chunk = StoredChunk {
            index: 0,
            blob: s.blob(b"abc").map_err(|e| e.to_string())?,
            sha256: String::new(),
            len: 3,
        };
        assert!(block_on(s.put_chunk("f", &chunk))?.is_ok());
        assert_eq!(block_on(s.put_chunk("f", &chunk))?, Err(StoreError::Full));
        s.limit_writes(None);
        assert!(block_on(s.put_chunk("f", &chunk))?.is_ok());
        assert!(s.corrupt_chunk("f", 0, b"xyz"));
        assert!(!s.corrupt_chunk("f", 1, b"xyz"));
        Ok(())
    }
}
