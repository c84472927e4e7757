//! The page's photos in IndexedDB: [`IdbPhotoStore`], the browser's [`PhotoStore`]. One
//! record per photo in `photos` (key: its stored path; path, size, date, hex content hash,
//! model, insertion sequence and a Float32Array embedding — the layout schema version 1
//! wrote, so old records still load — plus two optional properties: `taken`, the EXIF date
//! taken in ms, and `browser`, set when the browser decoded the photo; a record without
//! them reads as "no EXIF date", "our decoders", and a later save of that path adds them),
//! one thumbnail Blob per photo in `thumbs` (same key), the folder claims of the tabs in
//! `photo-claims` (name → owner), the refused files in `photo-refused` (key
//! `[folder, rel, size, mtime]`) and the index's generation in `photo-meta` (key
//! `generation`).
//!
//! Every promise of the trait is kept inside one transaction: a save reads the generation
//! and the claims it depends on and writes its records in the same read-write transaction,
//! aborting it (so nothing of the batch stays) when a check fails; IndexedDB runs
//! read-write transactions over the same stores one after another, also across tabs, so a
//! claim or a clear cannot slip in between. It must not decide what to store (that is
//! `page`), and never drops a failure. Reference: `page::photo_store` (the trait and the
//! memory twin), `page::photo_contract` (what both pass, here in Chromium through
//! `tests/idb_contract.rs`).

use std::collections::HashMap;

use js_sys::{Array, Float32Array, Object, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, BlobPropertyBag, IdbKeyRange};

use super::idb::{key, schema, Database, IdbError, Store, Tx};
use super::{describe_js, prop, set_prop};
use crate::hub::{parse_hex32, to_hex};
use crate::page::photo_store::{
    claim_name, Claim, Loaded, PhotoRecord, PhotoStore, PhotoStoreError, PlantUnreadable,
    SaveGuard, Thumb,
};
use crate::page::refused::{RefusedFile, RefusedKey};

const GENERATION: &str = "generation";

impl From<IdbError> for PhotoStoreError {
    fn from(e: IdbError) -> Self {
        match e {
            IdbError::QuotaExceeded => PhotoStoreError::Full,
            IdbError::Failed { op, message, .. } => PhotoStoreError::Failed { op, message },
            IdbError::Aborted { message } => PhotoStoreError::Failed {
                op: "finish saving",
                message,
            },
            other @ (IdbError::Unavailable | IdbError::Blocked) => PhotoStoreError::Failed {
                op: "open its storage",
                message: other.to_string(),
            },
        }
    }
}

fn js_failed(op: &'static str, e: &JsValue) -> PhotoStoreError {
    PhotoStoreError::Failed {
        op,
        message: describe_js(e),
    }
}

fn record_to_js(r: &PhotoRecord) -> Result<JsValue, PhotoStoreError> {
    let o: JsValue = Object::new().into();
    let embedding = Float32Array::from(r.embedding.as_slice());
    set_prop(&o, "path", &JsValue::from_str(&r.path))
        .and_then(|()| set_prop(&o, "size", &JsValue::from_f64(r.size_bytes as f64)))
        .and_then(|()| set_prop(&o, "mtime", &JsValue::from_f64(r.modified_ms as f64)))
        .and_then(|()| set_prop(&o, "hash", &JsValue::from_str(&to_hex(&r.content_hash))))
        .and_then(|()| set_prop(&o, "model", &JsValue::from_str(&r.model_id)))
        .and_then(|()| set_prop(&o, "seq", &JsValue::from_f64(r.seq)))
        .and_then(|()| set_prop(&o, "embedding", &embedding))
        .and_then(|()| match r.browser_decoded {
            // Only when set: records without it (all before it existed) read as false.
            true => set_prop(&o, "browser", &JsValue::TRUE),
            false => Ok(()),
        })
        .map_err(|e| js_failed("save the index", &e))?;
    if let Some(taken) = r.taken_ms {
        set_prop(&o, "taken", &JsValue::from_f64(taken as f64))
            .map_err(|e| js_failed("save the index", &e))?;
    }
    Ok(o)
}

fn record_from_js(v: &JsValue) -> Option<PhotoRecord> {
    Some(PhotoRecord {
        path: prop(v, "path")?.as_string()?,
        size_bytes: prop(v, "size")?.as_f64()? as u64,
        modified_ms: prop(v, "mtime")?.as_f64()? as i64,
        content_hash: parse_hex32(&prop(v, "hash")?.as_string()?)?,
        // Absent from records stored before the date was recorded: no EXIF date.
        taken_ms: prop(v, "taken").and_then(|t| t.as_f64()).map(|t| t as i64),
        model_id: prop(v, "model")?.as_string()?,
        seq: prop(v, "seq")?.as_f64()?,
        embedding: prop(v, "embedding")?
            .dyn_into::<Float32Array>()
            .ok()?
            .to_vec(),
        browser_decoded: prop(v, "browser").is_some_and(|b| b.is_truthy()),
    })
}

fn refused_key(k: &RefusedKey) -> JsValue {
    key(&[
        JsValue::from_str(&k.folder),
        JsValue::from_str(&k.rel),
        JsValue::from_f64(k.size_bytes as f64),
        JsValue::from_f64(k.modified_ms as f64),
    ])
}

fn refused_to_js(f: &RefusedFile) -> Result<JsValue, PhotoStoreError> {
    let o: JsValue = Object::new().into();
    set_prop(&o, "folder", &JsValue::from_str(&f.key.folder))
        .and_then(|()| set_prop(&o, "rel", &JsValue::from_str(&f.key.rel)))
        .and_then(|()| set_prop(&o, "size", &JsValue::from_f64(f.key.size_bytes as f64)))
        .and_then(|()| set_prop(&o, "mtime", &JsValue::from_f64(f.key.modified_ms as f64)))
        .and_then(|()| set_prop(&o, "reason", &JsValue::from_str(&f.reason)))
        .map_err(|e| js_failed("remember a refused file", &e))?;
    Ok(o)
}

fn refused_from_js(v: &JsValue) -> Option<RefusedFile> {
    Some(RefusedFile {
        key: RefusedKey {
            folder: prop(v, "folder")?.as_string()?,
            rel: prop(v, "rel")?.as_string()?,
            size_bytes: prop(v, "size")?.as_f64()? as u64,
            modified_ms: prop(v, "mtime")?.as_f64()? as i64,
        },
        reason: prop(v, "reason")?.as_string()?,
    })
}

/// The stored generation (0 when none was written yet).
async fn read_generation(meta: &Store) -> Result<u64, PhotoStoreError> {
    Ok(meta
        .get(&JsValue::from_str(GENERATION))
        .await?
        .and_then(|v| v.as_f64())
        .map_or(0, |g| g as u64))
}

/// Keys `[name + "/", name + "0")`: every path under the folder `name` ('0' follows '/').
fn under_range(name: &str) -> Result<IdbKeyRange, PhotoStoreError> {
    IdbKeyRange::bound_with_lower_open_and_upper_open(
        &JsValue::from_str(&format!("{name}/")),
        &JsValue::from_str(&format!("{name}0")),
        false,
        true,
    )
    .map_err(|e| js_failed("select stored photos", &e))
}

/// Aborts `tx` (nothing of it stays) and returns `error`. Later transactions over these
/// stores are ordered after this one, so they see the rollback.
fn refuse<T>(tx: &Tx, error: PhotoStoreError) -> Result<T, PhotoStoreError> {
    tx.abort();
    Err(error)
}

/// The IndexedDB photo store. Cheap to clone.
#[derive(Clone)]
pub struct IdbPhotoStore {
    db: Database,
}

impl IdbPhotoStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The thumbnails that `photos` copy from photos not in the batch, read first: a write
    /// transaction must not wait on anything but its own requests.
    async fn copied_thumbs(
        &self,
        photos: &[(PhotoRecord, Thumb<Blob>)],
    ) -> Result<HashMap<String, Blob>, PhotoStoreError> {
        let mut out = HashMap::new();
        let sources: Vec<&String> = photos
            .iter()
            .filter_map(|(_, t)| match t {
                Thumb::CopyOf(source) => Some(source),
                _ => None,
            })
            .collect();
        if sources.is_empty() {
            return Ok(out);
        }
        let tx = self.db.read(&[schema::THUMBS])?;
        let store = tx.store(schema::THUMBS)?;
        for source in sources {
            if out.contains_key(source) {
                continue;
            }
            if let Some(blob) = store
                .get(&JsValue::from_str(source))
                .await?
                .and_then(|b| b.dyn_into::<Blob>().ok())
            {
                out.insert(source.clone(), blob);
            }
        }
        tx.done().await?;
        Ok(out)
    }

    /// Saves in one transaction; `guard: None` skips the generation and claim checks (the
    /// old `Library::save`).
    pub(crate) async fn save_checked(
        &self,
        photos: &[(PhotoRecord, Thumb<Blob>)],
        guard: Option<&SaveGuard>,
    ) -> Result<(), PhotoStoreError> {
        let mut copies = self.copied_thumbs(photos).await?;
        let tx = self.db.write(&[
            schema::PHOTOS,
            schema::THUMBS,
            schema::PHOTO_META,
            schema::PHOTO_CLAIMS,
        ])?;
        let records = tx.store(schema::PHOTOS)?;
        let thumbs = tx.store(schema::THUMBS)?;
        if let Some(guard) = guard {
            let stored = read_generation(&tx.store(schema::PHOTO_META)?).await?;
            if stored != guard.generation {
                return refuse(
                    &tx,
                    PhotoStoreError::Cleared {
                        expected: guard.generation,
                        stored,
                    },
                );
            }
        }
        let claims = tx.store(schema::PHOTO_CLAIMS)?;
        let mut checked: HashMap<String, bool> = HashMap::new();
        for (photo, thumb) in photos {
            let name = claim_name(&photo.path);
            if !claims_hold(&claims, guard, name, &mut checked).await? {
                let name = name.to_owned();
                return refuse(&tx, PhotoStoreError::FolderTaken { name });
            }
            let key = JsValue::from_str(&photo.path);
            records.put(&key, &record_to_js(photo)?)?;
            put_thumb(&thumbs, &key, &photo.path, thumb, &mut copies)?;
        }
        Ok(tx.done().await?)
    }
}

/// Does the store (`claims`, inside the save's transaction) still give `name` to the
/// owner of every claim of `guard` on it? Asked once per name (`checked`).
async fn claims_hold(
    claims: &Store,
    guard: Option<&SaveGuard>,
    name: &str,
    checked: &mut HashMap<String, bool>,
) -> Result<bool, PhotoStoreError> {
    if let Some(&ok) = checked.get(name) {
        return Ok(ok);
    }
    let wanted: Vec<&Claim> = guard
        .map(|g| g.claims.iter().filter(|c| c.name == name).collect())
        .unwrap_or_default();
    if wanted.is_empty() {
        return Ok(true);
    }
    let owner = claims
        .get(&JsValue::from_str(name))
        .await?
        .and_then(|v| v.as_string());
    let ok = wanted.iter().all(|c| owner.as_deref() == Some(&c.owner));
    checked.insert(name.to_owned(), ok);
    Ok(ok)
}

/// Writes (or removes) the thumbnail of `path`; `copies` are the thumbnails a later photo
/// of the batch may copy.
fn put_thumb(
    thumbs: &Store,
    key: &JsValue,
    path: &str,
    thumb: &Thumb<Blob>,
    copies: &mut HashMap<String, Blob>,
) -> Result<(), PhotoStoreError> {
    let blob = match thumb {
        Thumb::Jpeg(b) => Some(b.clone()),
        Thumb::CopyOf(source) => copies.get(source).cloned(),
        Thumb::None => None,
    };
    match blob {
        Some(b) => {
            thumbs.put(key, &b)?;
            // A later photo of this batch copying this one gets this thumbnail.
            copies.insert(path.to_owned(), b);
        }
        None => {
            thumbs.delete(key)?;
            copies.remove(path);
        }
    }
    Ok(())
}

impl PhotoStore for IdbPhotoStore {
    type Blob = Blob;

    fn blob(&self, bytes: &[u8]) -> Result<Blob, PhotoStoreError> {
        let parts = Array::of1(&Uint8Array::from(bytes));
        let options = BlobPropertyBag::new();
        options.set_type("image/jpeg");
        Blob::new_with_u8_array_sequence_and_options(&parts, &options)
            .map_err(|e| js_failed("hold a thumbnail", &e))
    }

    async fn blob_bytes(&self, blob: &Blob) -> Result<Vec<u8>, PhotoStoreError> {
        super::read_blob(blob)
            .await
            .map_err(|e| js_failed("read a thumbnail", &e))
    }

    async fn load_all(&self) -> Result<Loaded, PhotoStoreError> {
        let tx = self.db.read(&[schema::PHOTOS, schema::PHOTO_META])?;
        let store = tx.store(schema::PHOTOS)?;
        let keys = store.keys(None).await?;
        let values = store.get_all(None).await?;
        let generation = read_generation(&tx.store(schema::PHOTO_META)?).await?;
        tx.done().await?;
        let mut loaded = Loaded {
            generation,
            ..Loaded::default()
        };
        for (k, v) in keys.iter().zip(&values) {
            match record_from_js(v) {
                Some(r) => loaded.records.push(r),
                None => loaded
                    .unreadable
                    .push(k.as_string().unwrap_or_else(|| describe_js(k))),
            }
        }
        loaded.records.sort_by(|a, b| a.seq.total_cmp(&b.seq));
        Ok(loaded)
    }

    async fn get(&self, path: &str) -> Result<Option<PhotoRecord>, PhotoStoreError> {
        let tx = self.db.read(&[schema::PHOTOS])?;
        let value = tx
            .store(schema::PHOTOS)?
            .get(&JsValue::from_str(path))
            .await?;
        tx.done().await?;
        match value {
            None => Ok(None),
            Some(v) => record_from_js(&v)
                .map(Some)
                .ok_or_else(|| PhotoStoreError::Unreadable {
                    path: path.to_owned(),
                    message: format!("it is not a photo record ({})", describe_js(&v)),
                }),
        }
    }

    async fn save(
        &self,
        photos: &[(PhotoRecord, Thumb<Blob>)],
        guard: &SaveGuard,
    ) -> Result<(), PhotoStoreError> {
        self.save_checked(photos, Some(guard)).await
    }

    async fn thumbs(&self, paths: &[String]) -> Result<Vec<Option<Blob>>, PhotoStoreError> {
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

    async fn remove(&self, paths: &[String]) -> Result<(), PhotoStoreError> {
        let tx = self.db.write(&[schema::PHOTOS, schema::THUMBS])?;
        let records = tx.store(schema::PHOTOS)?;
        let thumbs = tx.store(schema::THUMBS)?;
        for path in paths {
            let key = JsValue::from_str(path);
            records.delete(&key)?;
            thumbs.delete(&key)?;
        }
        Ok(tx.done().await?)
    }

    async fn clear(&self) -> Result<u64, PhotoStoreError> {
        let tx = self.db.write(&[
            schema::PHOTOS,
            schema::THUMBS,
            schema::PHOTO_CLAIMS,
            schema::PHOTO_REFUSED,
            schema::PHOTO_META,
        ])?;
        let meta = tx.store(schema::PHOTO_META)?;
        let next = read_generation(&meta).await? + 1;
        for store in [
            schema::PHOTOS,
            schema::THUMBS,
            schema::PHOTO_CLAIMS,
            schema::PHOTO_REFUSED,
        ] {
            tx.store(store)?.clear()?;
        }
        meta.put(
            &JsValue::from_str(GENERATION),
            &JsValue::from_f64(next as f64),
        )?;
        tx.done().await?;
        Ok(next)
    }

    async fn generation(&self) -> Result<u64, PhotoStoreError> {
        let tx = self.db.read(&[schema::PHOTO_META])?;
        let g = read_generation(&tx.store(schema::PHOTO_META)?).await?;
        tx.done().await?;
        Ok(g)
    }

    async fn claim(&self, claim: &Claim) -> Result<bool, PhotoStoreError> {
        let tx = self.db.write(&[schema::PHOTO_CLAIMS, schema::PHOTOS])?;
        let claims = tx.store(schema::PHOTO_CLAIMS)?;
        let name = JsValue::from_str(&claim.name);
        if let Some(owner) = claims.get(&name).await?.and_then(|v| v.as_string()) {
            tx.done().await?;
            return Ok(owner == claim.owner);
        }
        let photos = tx.store(schema::PHOTOS)?;
        let held = photos.get(&name).await?.is_some()
            || photos.count(Some(&under_range(&claim.name)?)).await? > 0;
        if held {
            tx.done().await?;
            return Ok(false);
        }
        claims.put(&name, &JsValue::from_str(&claim.owner))?;
        tx.done().await?;
        Ok(true)
    }

    async fn refused(&self) -> Result<Vec<RefusedFile>, PhotoStoreError> {
        let tx = self.db.read(&[schema::PHOTO_REFUSED])?;
        let values = tx.store(schema::PHOTO_REFUSED)?.get_all(None).await?;
        tx.done().await?;
        // An unreadable entry only means that file is read once more.
        Ok(values.iter().filter_map(refused_from_js).collect())
    }

    async fn put_refused(&self, files: &[RefusedFile]) -> Result<(), PhotoStoreError> {
        let tx = self.db.write(&[schema::PHOTO_REFUSED])?;
        let store = tx.store(schema::PHOTO_REFUSED)?;
        for f in files {
            store.put(&refused_key(&f.key), &refused_to_js(f)?)?;
        }
        Ok(tx.done().await?)
    }
}

impl PlantUnreadable for IdbPhotoStore {
    async fn plant_unreadable(&self, path: &str) -> Result<(), PhotoStoreError> {
        let tx = self.db.write(&[schema::PHOTOS])?;
        tx.store(schema::PHOTOS)?.put(
            &JsValue::from_str(path),
            &JsValue::from_str("not a photo record"),
        )?;
        Ok(tx.done().await?)
    }
}
