//! The photo index kept in IndexedDB: one record per indexed photo (its relative path,
//! size, date, content hash, the model it was embedded with, its insertion sequence and its
//! embedding) and one thumbnail Blob per photo, both keyed by the path. Records are written
//! batch by batch as photos are encoded, so a crash loses at most the batch in flight; at
//! start-up they are read back in insertion order into an `EmbeddingIndex`, so search works
//! before any folder is dropped again.
//!
//! It must not rank, decode or decide what to index (that is `index` and `ingest`), and
//! never loses a write silently: every function returns the storage error. Reference:
//! `EmbeddingIndex::upsert` (the in-memory twin of these records).

use js_sys::{Float32Array, Object};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::Blob;

use super::idb::{schema, Database, IdbError};
use super::{prop, set_prop};
use crate::hub::{parse_hex32, to_hex};

/// One stored photo.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoRecord {
    pub path: String,
    pub size_bytes: u64,
    pub modified_ms: i64,
    pub content_hash: [u8; 32],
    pub model_id: String,
    /// Insertion order: an entry keeps its number when it is replaced.
    pub seq: f64,
    pub embedding: Vec<f32>,
}

/// Where a photo's thumbnail comes from when it is saved.
pub enum Thumb {
    /// A new JPEG.
    Jpeg(Blob),
    /// Copy the thumbnail of another stored photo (same content, another path).
    CopyOf(String),
    None,
}

fn storage_error(e: JsValue) -> IdbError {
    IdbError::Failed {
        op: "save the index",
        name: "Error".into(),
        message: super::describe_js(&e),
    }
}

impl PhotoRecord {
    fn to_js(&self) -> Result<JsValue, IdbError> {
        let o: JsValue = Object::new().into();
        let embedding = Float32Array::from(self.embedding.as_slice());
        set_prop(&o, "path", &JsValue::from_str(&self.path))
            .and_then(|()| set_prop(&o, "size", &JsValue::from_f64(self.size_bytes as f64)))
            .and_then(|()| set_prop(&o, "mtime", &JsValue::from_f64(self.modified_ms as f64)))
            .and_then(|()| set_prop(&o, "hash", &JsValue::from_str(&to_hex(&self.content_hash))))
            .and_then(|()| set_prop(&o, "model", &JsValue::from_str(&self.model_id)))
            .and_then(|()| set_prop(&o, "seq", &JsValue::from_f64(self.seq)))
            .and_then(|()| set_prop(&o, "embedding", &embedding))
            .map_err(storage_error)?;
        Ok(o)
    }

    fn from_js(v: &JsValue) -> Option<Self> {
        Some(Self {
            path: prop(v, "path")?.as_string()?,
            size_bytes: prop(v, "size")?.as_f64()? as u64,
            modified_ms: prop(v, "mtime")?.as_f64()? as i64,
            content_hash: parse_hex32(&prop(v, "hash")?.as_string()?)?,
            model_id: prop(v, "model")?.as_string()?,
            seq: prop(v, "seq")?.as_f64()?,
            embedding: prop(v, "embedding")?
                .dyn_into::<Float32Array>()
                .ok()?
                .to_vec(),
        })
    }
}

/// The stored photo index.
#[derive(Clone)]
pub struct Library {
    db: Database,
}

impl Library {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Every stored photo, in insertion order, and how many records were unreadable.
    pub async fn load_all(&self) -> Result<(Vec<PhotoRecord>, usize), IdbError> {
        let tx = self.db.read(&[schema::PHOTOS])?;
        let values = tx.store(schema::PHOTOS)?.get_all(None).await?;
        tx.done().await?;
        let total = values.len();
        let mut records: Vec<PhotoRecord> =
            values.iter().filter_map(PhotoRecord::from_js).collect();
        let unreadable = total - records.len();
        records.sort_by(|a, b| a.seq.total_cmp(&b.seq));
        Ok((records, unreadable))
    }

    /// Saves photos and their thumbnails in one transaction (all or nothing).
    pub async fn save(&self, photos: &[(PhotoRecord, Thumb)]) -> Result<(), IdbError> {
        // Thumbnails to copy are read first: a write transaction must not wait on
        // anything but its own requests.
        let mut copies: Vec<Option<Blob>> = Vec::with_capacity(photos.len());
        let any_copy = photos.iter().any(|(_, t)| matches!(t, Thumb::CopyOf(_)));
        if any_copy {
            let tx = self.db.read(&[schema::THUMBS])?;
            let store = tx.store(schema::THUMBS)?;
            for (_, thumb) in photos {
                copies.push(match thumb {
                    Thumb::CopyOf(path) => store
                        .get(&JsValue::from_str(path))
                        .await?
                        .and_then(|b| b.dyn_into::<Blob>().ok()),
                    _ => None,
                });
            }
            tx.done().await?;
        }
        let tx = self.db.write(&[schema::PHOTOS, schema::THUMBS])?;
        let records = tx.store(schema::PHOTOS)?;
        let thumbs = tx.store(schema::THUMBS)?;
        for (i, (photo, thumb)) in photos.iter().enumerate() {
            let key = JsValue::from_str(&photo.path);
            records.put(&key, &photo.to_js()?)?;
            let blob = match thumb {
                Thumb::Jpeg(b) => Some(b.clone()),
                Thumb::CopyOf(_) => copies.get(i).cloned().flatten(),
                Thumb::None => None,
            };
            match blob {
                Some(b) => thumbs.put(&key, &b)?,
                None => thumbs.delete(&key)?,
            }
        }
        tx.done().await
    }

    /// The thumbnails of `paths`, in order (`None` where there is none).
    pub async fn thumbs(&self, paths: &[String]) -> Result<Vec<Option<Blob>>, IdbError> {
        let tx = self.db.read(&[schema::THUMBS])?;
        let store = tx.store(schema::THUMBS)?;
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            out.push(
                store
                    .get(&JsValue::from_str(path))
                    .await?
                    .and_then(|b| b.dyn_into::<Blob>().ok()),
            );
        }
        tx.done().await?;
        Ok(out)
    }

    /// Removes photos (records and thumbnails).
    pub async fn remove(&self, paths: &[String]) -> Result<(), IdbError> {
        let tx = self.db.write(&[schema::PHOTOS, schema::THUMBS])?;
        let records = tx.store(schema::PHOTOS)?;
        let thumbs = tx.store(schema::THUMBS)?;
        for path in paths {
            let key = JsValue::from_str(path);
            records.delete(&key)?;
            thumbs.delete(&key)?;
        }
        tx.done().await
    }

    /// Removes every photo.
    pub async fn clear(&self) -> Result<(), IdbError> {
        let tx = self.db.write(&[schema::PHOTOS, schema::THUMBS])?;
        tx.store(schema::PHOTOS)?.clear()?;
        tx.store(schema::THUMBS)?.clear()?;
        tx.done().await
    }
}
