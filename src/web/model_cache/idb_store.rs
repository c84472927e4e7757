//! The model cache in IndexedDB: [`IdbChunkStore`], the browser's
//! [`ChunkStore`](crate::model_cache::ChunkStore), usable from the page and from workers.
//!
//! Layout (`idb::schema`): one manifest per file in `model-files`, key `[model key, file]`
//! (the [`FileManifest`] as a plain object); one record per chunk in `model-chunks`, key
//! `[model key, file, index]`: `{index, blob, sha256, len}` with the bytes as a Blob (an
//! ArrayBuffer value reads back about ten times slower). A record that cannot be read is
//! said on the console once and treated as absent (the engine then fetches it again); a
//! failed write is always an error. It passes `model_cache::contract` in Chromium
//! (`tests/idb_contract.rs`).

use std::ops::Range;

use js_sys::{Array, Object, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, IdbKeyRange};

use super::log_once;
use crate::model_cache::{
    cache_state, open_verified, CacheState, ChunkStore, DownloadError, FileManifest, FileState,
    StoreError, StoredChunk, VerifiedModel,
};
use crate::web::idb::{self, schema, Database, IdbError};
use crate::web::{describe_js, prop, set_prop};

impl From<IdbError> for StoreError {
    fn from(e: IdbError) -> Self {
        match e {
            IdbError::QuotaExceeded => StoreError::Full,
            IdbError::Failed { op, message, .. } => StoreError::Failed { op, message },
            IdbError::Aborted { message } => StoreError::Failed {
                op: "finish saving",
                message,
            },
            other @ (IdbError::Unavailable | IdbError::Blocked) => StoreError::Failed {
                op: "use its storage",
                message: other.to_string(),
            },
        }
    }
}

fn js_failed(op: &'static str, e: &JsValue) -> StoreError {
    StoreError::Failed {
        op,
        message: describe_js(e),
    }
}

/// The model cache of one model (hub + model + revision) in IndexedDB.
#[derive(Clone)]
pub struct IdbChunkStore {
    db: Database,
    key: String,
}

impl IdbChunkStore {
    pub fn new(db: Database, model_key: String) -> Self {
        Self { db, key: model_key }
    }

    fn file_key(&self, file: &str) -> JsValue {
        idb::key(&[JsValue::from_str(&self.key), JsValue::from_str(file)])
    }

    fn chunk_key(&self, file: &str, index: u64) -> JsValue {
        idb::key(&[
            JsValue::from_str(&self.key),
            JsValue::from_str(file),
            JsValue::from_f64(index as f64),
        ])
    }

    fn chunk_range(&self, file: &str) -> Result<IdbKeyRange, IdbError> {
        idb::prefix_range(&[JsValue::from_str(&self.key), JsValue::from_str(file)])
    }

    /// How much of the model is stored.
    pub async fn state(&self) -> Result<CacheState, DownloadError> {
        Ok(cache_state(self).await?)
    }

    /// Removes this model from the cache.
    pub async fn remove(&self) -> Result<(), DownloadError> {
        Ok(self.remove_model().await?)
    }

    /// The model's files, once every one of them is verified.
    pub async fn open_verified(&self) -> Result<VerifiedModel<Self>, DownloadError> {
        open_verified(self).await
    }
}

fn chunk_record(chunk: &StoredChunk<Blob>) -> Result<JsValue, StoreError> {
    let record: JsValue = Object::new().into();
    set_prop(&record, "index", &JsValue::from_f64(chunk.index as f64))
        .and_then(|()| set_prop(&record, "blob", &chunk.blob))
        .and_then(|()| set_prop(&record, "sha256", &JsValue::from_str(&chunk.sha256)))
        .and_then(|()| set_prop(&record, "len", &JsValue::from_f64(chunk.len as f64)))
        .map_err(|e| js_failed("save to storage", &e))?;
    Ok(record)
}

fn read_chunk(value: &JsValue) -> Option<StoredChunk<Blob>> {
    Some(StoredChunk {
        index: prop(value, "index")?.as_f64()? as u64,
        blob: prop(value, "blob")?.dyn_into::<Blob>().ok()?,
        sha256: prop(value, "sha256")?.as_string()?,
        len: prop(value, "len")?.as_f64()? as u64,
    })
}

fn manifest_value(manifest: &FileManifest) -> Result<JsValue, StoreError> {
    serde_wasm_bindgen::to_value(manifest).map_err(|e| StoreError::Failed {
        op: "save to storage",
        message: e.to_string(),
    })
}

impl ChunkStore for IdbChunkStore {
    type Blob = Blob;

    fn model_key(&self) -> &str {
        &self.key
    }

    fn blob(&self, bytes: &[u8]) -> Result<Blob, StoreError> {
        let parts = Array::of1(&Uint8Array::from(bytes));
        Blob::new_with_u8_array_sequence(&parts).map_err(|e| js_failed("hold the bytes", &e))
    }

    async fn read(&self, blob: &Blob, range: Range<u64>) -> Result<Vec<u8>, StoreError> {
        let slice = blob
            .slice_with_f64_and_f64(range.start as f64, range.end as f64)
            .map_err(|e| js_failed("read from storage", &e))?;
        crate::web::read_blob(&slice)
            .await
            .map_err(|e| js_failed("read from storage", &e))
    }

    async fn manifest(&self, file: &str) -> Result<Option<FileManifest>, StoreError> {
        let tx = self.db.read(&[schema::MODEL_FILES])?;
        let value = tx
            .store(schema::MODEL_FILES)?
            .get(&self.file_key(file))
            .await?;
        tx.done().await?;
        let Some(value) = value else { return Ok(None) };
        match serde_wasm_bindgen::from_value(value) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                log_once(
                    "an unreadable model manifest (fetched again)",
                    &e.to_string(),
                );
                Ok(None)
            }
        }
    }

    async fn put_manifest(&self, file: &str, manifest: &FileManifest) -> Result<(), StoreError> {
        let value = manifest_value(manifest)?;
        let tx = self.db.write(&[schema::MODEL_FILES])?;
        tx.store(schema::MODEL_FILES)?
            .put(&self.file_key(file), &value)?;
        Ok(tx.done().await?)
    }

    async fn chunks(&self, file: &str) -> Result<Vec<StoredChunk<Blob>>, StoreError> {
        let tx = self.db.read(&[schema::MODEL_CHUNKS])?;
        let values = tx
            .store(schema::MODEL_CHUNKS)?
            .get_all(Some(&self.chunk_range(file)?))
            .await?;
        tx.done().await?;
        let mut chunks = Vec::with_capacity(values.len());
        for value in &values {
            match read_chunk(value) {
                Some(c) => chunks.push(c),
                None => {
                    log_once(
                        "an unreadable model chunk (fetched again)",
                        &describe_js(value),
                    );
                }
            }
        }
        chunks.sort_by_key(|c| c.index);
        Ok(chunks)
    }

    async fn put_chunk(&self, file: &str, chunk: &StoredChunk<Blob>) -> Result<(), StoreError> {
        let record = chunk_record(chunk)?;
        let tx = self.db.write(&[schema::MODEL_CHUNKS])?;
        tx.store(schema::MODEL_CHUNKS)?
            .put(&self.chunk_key(file, chunk.index), &record)?;
        Ok(tx.done().await?)
    }

    async fn put_whole(
        &self,
        file: &str,
        chunk: &StoredChunk<Blob>,
        manifest: &FileManifest,
    ) -> Result<(), StoreError> {
        let record = chunk_record(chunk)?;
        let value = manifest_value(manifest)?;
        let tx = self
            .db
            .write(&[schema::MODEL_FILES, schema::MODEL_CHUNKS])?;
        let chunks = tx.store(schema::MODEL_CHUNKS)?;
        chunks.delete(&self.chunk_range(file)?.into())?;
        chunks.put(&self.chunk_key(file, chunk.index), &record)?;
        tx.store(schema::MODEL_FILES)?
            .put(&self.file_key(file), &value)?;
        Ok(tx.done().await?)
    }

    fn blob_of_parts(&self, parts: &mut dyn Iterator<Item = Vec<u8>>) -> Result<Blob, StoreError> {
        // Each part is copied out of wasm memory as it comes and dropped there.
        let list = Array::new();
        for part in parts {
            list.push(&Uint8Array::from(&part[..]));
        }
        Blob::new_with_u8_array_sequence(&list).map_err(|e| js_failed("hold the bytes", &e))
    }

    async fn put_derived(
        &self,
        file: &str,
        chunk: &StoredChunk<Blob>,
        manifest: &FileManifest,
        source: &str,
    ) -> Result<bool, StoreError> {
        let record = chunk_record(chunk)?;
        let value = manifest_value(manifest)?;
        let tx = self
            .db
            .write(&[schema::MODEL_FILES, schema::MODEL_CHUNKS])?;
        let files = tx.store(schema::MODEL_FILES)?;
        let verified = files
            .get(&self.file_key(source))
            .await?
            .and_then(|v| serde_wasm_bindgen::from_value::<FileManifest>(v).ok())
            .is_some_and(|m| m.state == FileState::Verified);
        if verified {
            let chunks = tx.store(schema::MODEL_CHUNKS)?;
            chunks.delete(&self.chunk_range(file)?.into())?;
            chunks.put(&self.chunk_key(file, chunk.index), &record)?;
            files.put(&self.file_key(file), &value)?;
        }
        tx.done().await?;
        Ok(verified)
    }

    async fn delete_chunk(&self, file: &str, index: u64) -> Result<(), StoreError> {
        let tx = self.db.write(&[schema::MODEL_CHUNKS])?;
        tx.store(schema::MODEL_CHUNKS)?
            .delete(&self.chunk_key(file, index))?;
        Ok(tx.done().await?)
    }

    async fn reset_file(&self, file: &str) -> Result<(), StoreError> {
        let tx = self
            .db
            .write(&[schema::MODEL_FILES, schema::MODEL_CHUNKS])?;
        tx.store(schema::MODEL_CHUNKS)?
            .delete(&self.chunk_range(file)?.into())?;
        tx.store(schema::MODEL_FILES)?
            .delete(&self.file_key(file))?;
        Ok(tx.done().await?)
    }

    async fn remove_model(&self) -> Result<(), StoreError> {
        let range = idb::prefix_range(&[JsValue::from_str(&self.key)])?;
        let tx = self
            .db
            .write(&[schema::MODEL_FILES, schema::MODEL_CHUNKS])?;
        tx.store(schema::MODEL_CHUNKS)?
            .delete(&range.clone().into())?;
        tx.store(schema::MODEL_FILES)?.delete(&range.into())?;
        Ok(tx.done().await?)
    }
}
